"""Face alignment on landmarks as OpenFace does it (``openface.AlignDlib``), with dlib's 68-point model.

Seed 001 section 2.2 crops "the face [...] aligned on landmarks" with OpenFace before resizing to 200 px. OpenFace's
procedure, for one RGB image and an output side ``S``:

1. find the largest face box with dlib's HOG detector (``get_frontal_face_detector``, upsampling once);
2. place dlib's 68 landmarks in that box (``shape_predictor_68_face_landmarks``, shipped by the
   ``face_recognition_models`` package of the dlib extra);
3. take three of them, the inner eye corners (39, 42) and the bottom lip (57) — OpenFace's default
   ``INNER_EYES_AND_BOTTOM_LIP`` — and the affine map that sends them exactly to ``S`` times OpenFace's template
   points (its mean landmarks, scaled to the unit square: :data:`OPENFACE_TEMPLATE`);
4. warp the image with that map onto an ``S``×``S`` canvas (bilinear; black outside the photo).

One difference is deliberate: where OpenFace skips an image in which dlib finds no face, facebench uses the whole
image as the face box (the datasets' images are already face crops, so this is a fair box) and counts the image as
a *fallback* (:attr:`OpenFaceAligner.fallbacks`), so that no image silently leaves a test set. The synthetic faces
are detected in most images (measured: 37 of 40 synthetic CelebA images at 64×52 px, 25 of 40 synthetic UTKFace
images at 200 px).

The affine map is solved from the three point pairs, and PIL warps with the inverse map (output pixel → input
pixel), as OpenFace's ``align_v2`` does; its ``align_v1`` calls OpenCV, which facebench does not depend on.

>>> matrix = affine_from_points([(0, 0), (1, 0), (0, 1)], [(2, 3), (4, 3), (2, 5)])   # x' = 2x + 2, y' = 2y + 3
>>> matrix.round(6).tolist()
[[2.0, 0.0, 2.0], [0.0, 2.0, 3.0]]
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from facebench.errors import UserInputError

__all__ = ["OPENFACE_TEMPLATE", "OpenFaceAligner", "affine_from_points", "load_dlib", "warp_affine"]

#: OpenFace's template positions (``MINMAX_TEMPLATE`` of ``openface/align_dlib.py``: its mean 68-point landmarks,
#: min-max scaled to the unit square) of the three landmarks it aligns on by default, as (x, y) per landmark index.
OPENFACE_TEMPLATE: dict[int, tuple[float, float]] = {
    39: (0.363785, 0.177947),   # inner corner of the right eye (image left)
    42: (0.618963, 0.172778),   # inner corner of the left eye
    57: (0.500204, 0.750584),   # middle of the bottom lip
}

INSTALL_HINT = 'pip install "facebench[dlib]"'


def load_dlib(*, needed_by: str) -> tuple[Any, Any]:
    """Import ``dlib`` and ``face_recognition_models``, or raise one sentence saying who needs them and how to
    install them."""
    try:
        import dlib
        with warnings.catch_warnings():  # face_recognition_models imports the deprecated pkg_resources
            warnings.simplefilter("ignore")
            import face_recognition_models
    except ImportError as exc:
        missing = f"no module named {exc.name!r}" if exc.name else str(exc).rstrip(".")
        raise UserInputError(f"{needed_by} needs dlib and face_recognition_models, which cannot be imported "
                             f"({missing}): run {INSTALL_HINT}.") from None
    return dlib, face_recognition_models


def affine_from_points(source: Sequence[Sequence[float]], target: Sequence[Sequence[float]]) -> np.ndarray:
    """The 2×3 affine matrix ``M`` with ``M @ (x, y, 1) = (x', y')`` for three point pairs (exact, not a fit)."""
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.shape != (3, 2) or target.shape != (3, 2):
        raise ValueError("an affine map is fixed by exactly three point pairs")
    homogeneous = np.hstack([source, np.ones((3, 1))])
    return np.linalg.solve(homogeneous, target).T


def warp_affine(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp an (H, W, 3) uint8 image by the affine ``matrix`` (input → output coordinates) onto a ``size``×``size``
    canvas, bilinear, black outside the image: (size, size, 3) uint8."""
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]  # PIL maps output pixels back to input
    warped = Image.fromarray(image).transform((size, size), Image.AFFINE, data=tuple(inverse.ravel()),
                                              resample=Image.BILINEAR, fillcolor=(0, 0, 0))
    return np.asarray(warped, dtype=np.uint8)


class OpenFaceAligner:
    """OpenFace's ``AlignDlib.align`` (inner eyes and bottom lip) with dlib's 68-point model; see the module.

    Not thread-safe (dlib's detector and predictor are shared): one aligner per thread.
    """

    name = "openface"
    landmark_indices = (39, 42, 57)

    def __init__(self, *, upsample: int = 1) -> None:
        dlib, models = load_dlib(needed_by="alignment 'openface' (seed 001's OpenFace crop)")
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(models.pose_predictor_model_location())
        self.upsample = upsample
        #: How many images had no detected face and were aligned in the whole-image box.
        self.fallbacks = 0

    def landmarks(self, image: np.ndarray) -> tuple[np.ndarray, bool]:
        """dlib's 68 landmarks (68, 2) of the largest detected face, or of the whole image when none is detected;
        and whether a face was detected."""
        faces = self._detector(image, self.upsample)
        if len(faces):
            box = max(faces, key=lambda rect: rect.width() * rect.height())
        else:
            height, width = image.shape[:2]
            box = self._dlib.rectangle(0, 0, width - 1, height - 1)
        shape = self._predictor(image, box)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64), bool(len(faces))

    def align(self, image: np.ndarray, size: int) -> np.ndarray:
        """The (size, size, 3) uint8 aligned face of an (H, W, 3) uint8 RGB image."""
        points, detected = self.landmarks(np.ascontiguousarray(image))
        self.fallbacks += not detected
        template = [(size * x, size * y) for x, y in (OPENFACE_TEMPLATE[i] for i in self.landmark_indices)]
        matrix = affine_from_points(points[list(self.landmark_indices)], template)
        return warp_affine(image, matrix, size)
