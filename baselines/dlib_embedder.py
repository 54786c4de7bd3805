"""dlib's pre-trained face embedder: a fixed, off-the-shelf reference for the face-recognition task.

dlib's ``dlib_face_recognition_resnet_model_v1`` is a 29-layer ResNet (metric-learned on about 3 million
faces) mapping an aligned 150×150 face chip to a 128-d descriptor. The ``face_recognition_models`` package
ships its weights and the 5-point landmark model used for alignment. For each image:

1. find the face with ``dlib.get_frontal_face_detector()`` (HOG + linear SVM), upsampling the image
   ``upsample`` times first; with several detections the largest box is used;
2. **fallback**: when no face is detected — routine on small or synthetic (cartoon) faces, since the
   detector looks for faces of about 80×80 pixels or more — the whole image is taken as the face box. The
   inputs are already face crops, so this is usually a fair box, but the landmarks (and so the alignment)
   found in it may be poor; every such image is counted in :attr:`DlibResNet.fallbacks`;
3. place the 5 landmarks (eye corners, nose) with ``shape_predictor_5_face_landmarks`` inside the box;
4. ``compute_face_descriptor`` aligns the face with those landmarks (a similarity transform to dlib's
   chip, with ``padding`` around it), optionally averages ``num_jitters`` jittered copies, and returns
   the 128-d descriptor.

Nothing is trained: :meth:`DlibResNet.fit` records nothing. :meth:`DlibResNet.predict` returns (N, 128)
float32 descriptors, L2-normalised by default so they compare by cosine similarity like the other
embedders (dlib's own rule is Euclidean distance < 0.6 on the raw descriptors, which are close to unit
length anyway).

Install with ``pip install "facebench[dlib]"``: ``dlib-bin`` (prebuilt dlib wheels), ``face_recognition_models``
and ``setuptools<82``, because ``face_recognition_models`` imports ``pkg_resources``, which newer setuptools
no longer has.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facebench.baselines.base import Baseline, FitData
from facebench.baselines.params import DlibResNetParams
from facebench.baselines.training import LoopConfig, TrainHistory
from facebench.data.alignment import load_dlib as _load_dlib
from facebench.metrics.base import l2_normalize
from facebench.protocol import Protocol

__all__ = ["DESCRIPTOR_DIM", "DlibResNet", "load_dlib"]

DESCRIPTOR_DIM = 128
def load_dlib() -> tuple[Any, Any]:
    """``dlib`` and ``face_recognition_models``, or one sentence saying how to install them."""
    return _load_dlib(needed_by="baseline dlib_resnet")


class DlibResNet(Baseline):
    """dlib's 128-d ResNet face descriptor after 5-point alignment (no training)."""

    task = "face_recognition"
    pretrained_on = "about 3 million photos of real people's faces (dlib's metric-learning training set)"

    Params = DlibResNetParams

    def __init__(self, *, protocol: Protocol, params: DlibResNetParams) -> None:
        self.protocol = protocol
        self.params = params
        dlib, models = load_dlib()
        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape_predictor = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
        self.encoder = dlib.face_recognition_model_v1(models.face_recognition_model_location())
        #: Images (over all predict calls) in which no face was detected and the whole image was used.
        self.fallbacks = 0
        #: Images embedded so far (over all predict calls).
        self.n_embedded = 0

    def fit(self, data: FitData, loop: LoopConfig) -> TrainHistory:
        """Nothing to train: the descriptor is used as published."""
        return TrainHistory(device="cpu")

    def face_box(self, image: np.ndarray) -> tuple[Any, bool]:
        """The largest detected face of an (H, W, 3) uint8 image, or the whole image; and whether it fell back."""
        boxes = list(self.detector(image, self.params.upsample))
        if boxes:
            return max(boxes, key=lambda box: box.width() * box.height()), False
        height, width = image.shape[:2]
        return self._dlib.rectangle(0, 0, width - 1, height - 1), True

    def embed(self, image: np.ndarray) -> np.ndarray:
        """The 128-d descriptor of one (H, W, 3) uint8 RGB image."""
        box, fell_back = self.face_box(image)
        self.fallbacks += int(fell_back)
        self.n_embedded += 1
        landmarks = self.shape_predictor(image, box)
        descriptor = self.encoder.compute_face_descriptor(image, landmarks, self.params.num_jitters, self.params.padding)
        return np.asarray(descriptor, dtype=np.float32)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(N, 128) float32 descriptors of a (N, 3, S, S) uint8 image store."""
        out = np.zeros((len(images), DESCRIPTOR_DIM), dtype=np.float32)
        for i in range(len(images)):
            rgb = np.ascontiguousarray(np.asarray(images[i]).transpose(1, 2, 0), dtype=np.uint8)
            out[i] = self.embed(rgb)
        if self.params.normalize and len(out):
            out = l2_normalize(out).astype(np.float32)
        return out
