"""OpenFace's landmark alignment (facebench.data.alignment; seed 001 section 2.2's crop): the affine map and warp
against hand-worked cases, the whole procedure checked by dlib itself on the aligned output, the whole-image
fallback, the image store's alignment key, and a race-transfer run whose augmented model sees aligned images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dlib")

from facebench.data.alignment import OPENFACE_TEMPLATE, OpenFaceAligner, affine_from_points, warp_affine  # noqa: E402
from facebench.data.images import image_store  # noqa: E402
from facebench.data.synth import SynthConfig, write_utkface  # noqa: E402


def test_affine_from_points_sends_each_point_to_its_target() -> None:
    source = [(10.0, 20.0), (30.0, 22.0), (21.0, 50.0)]
    target = [(5.0, 5.0), (15.0, 5.0), (10.0, 20.0)]
    matrix = affine_from_points(source, target)
    mapped = np.hstack([np.array(source), np.ones((3, 1))]) @ matrix.T
    np.testing.assert_allclose(mapped, target, atol=1e-9)
    with pytest.raises(ValueError):
        affine_from_points(source[:2], target[:2])


def test_warp_moves_a_dot_where_the_map_says() -> None:
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    image[9:12, 19:22] = 255                      # a white dot centred at (x=20, y=10)
    matrix = np.array([[2.0, 0.0, -10.0], [0.0, 2.0, 5.0]])   # x' = 2x - 10, y' = 2y + 5: (20, 10) -> (30, 25)
    warped = warp_affine(image, matrix, 64)
    ys, xs = np.nonzero(warped[..., 0] > 128)
    assert abs(xs.mean() - 30) <= 1 and abs(ys.mean() - 25) <= 1
    assert warped.shape == (64, 64, 3) and warped[0, 0].tolist() == [0, 0, 0]   # black outside the photo


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("align-faces")
    write_utkface(root, SynthConfig(n=24, seed=3, image_size=200))
    return root, sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg"))[:12]


def test_aligned_faces_have_their_landmarks_on_openfaces_template(faces) -> None:
    """The procedure checked end to end by its own instrument: on the aligned output dlib finds the three landmarks
    where OpenFace's template puts them (the warp sends the detected ones there exactly; re-placing them adds dlib's own
    scatter, a few pixels at 128 px). A plain resize leaves them well off."""
    from PIL import Image

    root, ids = faces
    aligner, size = OpenFaceAligner(), 128
    target = np.array([OPENFACE_TEMPLATE[i] for i in aligner.landmark_indices]) * size
    aligned_errors, resized_errors = [], []
    for sample_id in ids:
        rgb = np.asarray(Image.open(root / sample_id).convert("RGB"))
        points, detected = aligner.landmarks(rgb)
        if not detected:
            continue
        aligned = aligner.align(rgb, size)
        again, _ = aligner.landmarks(aligned)   # the tight crop is seldom detected: the whole-image box
        aligned_errors.append(np.abs(again[list(aligner.landmark_indices)] - target).max())
        resized = np.asarray(Image.fromarray(rgb).resize((size, size)))
        before, _ = aligner.landmarks(resized)
        resized_errors.append(np.abs(before[list(aligner.landmark_indices)] - target).max())
    assert len(aligned_errors) >= 8, "dlib should detect most synthetic faces (10 of these 12 when written)"
    assert np.median(aligned_errors) < 6.0          # measured 3.2 px at 128 px
    assert np.median(resized_errors) > 4 * np.median(aligned_errors)   # measured 37 px


def test_an_image_without_a_face_falls_back_to_the_whole_image_and_is_counted() -> None:
    aligner = OpenFaceAligner()
    out = aligner.align(np.full((80, 80, 3), 127, dtype=np.uint8), 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert aligner.fallbacks == 1


def test_the_image_store_keys_alignment_and_keeps_the_unaligned_address(faces, tmp_path: Path) -> None:
    root, ids = faces
    plain = image_store(root, ids, 32, tmp_path, progress=False)
    aligned = image_store(root, ids, 32, tmp_path, progress=False, alignment="openface")
    stores = sorted((tmp_path / "images").glob("*.npy"))
    assert len(stores) == 2 and aligned.shape == plain.shape == (len(ids), 3, 32, 32)
    assert not np.array_equal(plain, aligned)
    assert np.array_equal(image_store(root, ids, 32, tmp_path, progress=False, alignment="openface"), aligned)


def test_an_augmented_race_model_trains_and_predicts_on_aligned_images(tmp_path: Path) -> None:
    """The runner hands the baseline aligned stores (Baseline.input_alignment) for training and the target: the
    aligned store of the scored target images is already in the cache after the run."""
    import json

    from facebench.cli import main
    from facebench.protocol import load_protocol
    from facebench.run import prepare_data

    out, cache = tmp_path / "out", tmp_path / "cache"
    overrides = ["dataset.synthetic.n=40", "dataset.synthetic.image_size=48", "train_dataset.synthetic.n=100",
                 "train_dataset.synthetic.image_size=64",
                 "train_dataset.synthetic.render_size=48", "split.params.n_train=30", "split.params.n_test=20",
                 "model.image_size=32", "training.epochs=1", "evaluation.n_boot=20", "repeats=1"]
    assert main(["run", "race_utk_celeba_summary", "--baseline", "Tuned + DataAugmentation", "--out", str(out),
                 "--cache-dir", str(cache), "--no-progress", *[a for o in overrides for a in ("--set", o)]]) == 0
    [results] = [json.loads(p.read_text()) for p in (out / "race_utk_celeba_summary").glob("*/results.json")]
    assert results["baseline"]["params"]["alignment"] == "openface"
    dataset, split = prepare_data(load_protocol("race_utk_celeba_summary", overrides=overrides), data_root=None,
                                  cache_dir=cache, progress=False)
    before = sorted((cache / "images").glob("*.npy"))
    image_store(dataset.root, list(split["test"]), 32, cache, progress=False, key=dataset.fingerprint(),
                alignment="openface")
    assert sorted((cache / "images").glob("*.npy")) == before   # the run built it: nothing new now
