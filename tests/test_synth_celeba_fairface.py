"""Synthetic CelebA and FairFace: the exact byte formats, read back by the real readers, another camera than the
synthetic UTKFace's (same renderer), compressed skin tones, annotations, determinism, atomic writing, the synthetic
mark that results carry."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facebench.data.celeba import ATTRIBUTES, read_celeba
from facebench.data.datasets import CELEBA, FAIRFACE, load_dataset
from facebench.data.fairface import read_fairface
from facebench.data.synth import celeba as synth_celeba
from facebench.data.synth.camera import CELEBA_CAMERA, Camera
from facebench.data.synth.celeba import CelebaSettings, celeba_records, compress_skin_tones, write_celeba
from facebench.data.synth.fairface import FairfaceSettings, fairface_records, write_fairface
from facebench.data.synth.population import DEFAULT_GROUPS, SynthConfig, sample_population
from facebench.errors import UserInputError
from facebench.protocol import SyntheticData

CELEBA_SMALL = dict(n_people=6, seed=4, image_size=32)
FAIRFACE_SMALL = dict(n_people=20, seed=4, image_size=32)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("synth")
    return {"celeba": write_celeba(base / "celeba", **CELEBA_SMALL),
            "fairface": write_fairface(base / "fairface", **FAIRFACE_SMALL)}


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_synthetic_celeba_writes_the_release_bytes(written: dict[str, Path]) -> None:
    root = written["celeba"]
    attr = (root / "Anno/list_attr_celeba.txt").read_bytes()
    assert attr.endswith(b"\r\n") and b"\n" not in attr.replace(b"\r\n", b"")
    lines = attr.decode().split("\r\n")[:-1]
    assert lines[0] == str(len(lines) - 2) and lines[1] == " ".join(ATTRIBUTES) + " "  # count; names, trailing space
    assert all(re.fullmatch(r"\d{6}\.jpg -?1( (-1| 1)){39}", line) for line in lines[2:]), lines[2]
    assert [line[:10] for line in lines[2:]] == [f"{k:06d}.jpg" for k in range(1, len(lines) - 1)]
    for name in ("Anno/identity_CelebA.txt", "Eval/list_eval_partition.txt"):
        text = (root / name).read_bytes().decode()
        assert text.endswith("\r\n") and all(re.fullmatch(r"\d{6}\.jpg \d+", x) for x in text.split("\r\n")[:-1])
    bbox = (root / "Anno/list_bbox_celeba.txt").read_bytes().decode().split("\r\n")
    assert bbox[1] == "image_id x_1 y_1 width height" and re.fullmatch(r"000001\.jpg [ \d]{5}[ \d]{4}[ \d]{4}[ \d]{4}", bbox[2])
    marks = (root / "Anno/list_landmarks_align_celeba.txt").read_bytes().decode().split("\r\n")
    assert marks[1].startswith("lefteye_x lefteye_y") and re.fullmatch(r"000001\.jpg \d+( {1,4}\d+){9}", marks[2])
    with Image.open(root / "Img/img_align_celeba/000001.jpg") as image:
        assert image.size == (26, 32) and image.format == "JPEG"  # CelebA's 178:218, at height 32


def test_synthetic_celeba_reads_back_with_its_annotations(written: dict[str, Path]) -> None:
    root = written["celeba"]
    manifest = json.loads((root / "SYNTHETIC.json").read_text())
    categories = manifest["race_annotations"]["categories"]
    result = read_celeba(root, race_annotations=manifest["race_annotations"]["file"], race_categories=categories)
    table = result.table
    assert not result.rejected and result.n_unlisted == 0
    assert table["subject_id"].nunique() == CELEBA_SMALL["n_people"] == len(manifest["subjects"])
    truth = {str(s["identity"]): s for s in manifest["subjects"]}
    assert all(truth[s]["gender"] == g for s, g in zip(table["subject_id"], table["gender"], strict=True))
    assert (table["Male"] == (table["gender"] == "male")).all()
    # identity-disjoint partitions, train images numbered first
    assert table.groupby("subject_id")["partition"].nunique().max() == 1
    order = table["partition"].map({"train": 0, "valid": 1, "test": 2}).tolist()
    assert order == sorted(order)
    agreement = result.annotations.agreement()
    assert agreement.statistic == "cohen_kappa" and agreement.n_items == len(table)
    agree = table["annotated_race"].notna()
    matches = [truth[s]["group"] == a for s, a in zip(table["subject_id"][agree], table["annotated_race"][agree],
                                                      strict=True)]
    assert np.mean(matches) > 0.8


def test_the_synthetic_celeba_is_another_camera_and_compresses_skin_tones() -> None:
    settings = CelebaSettings(n_people=150, seed=1, image_size=32)
    celeba = celeba_records(settings)
    utk = sample_population(SynthConfig(n=len(celeba), seed=1))
    assert celeba["scale"].mean() == pytest.approx(CELEBA_CAMERA.scale[0], abs=0.02) and utk["scale"].mean() > 0.97
    assert celeba["yaw"].abs().max() > 0.15 > utk["yaw"].abs().max()
    assert celeba["shading"].max() <= 0.30 < utk["shading"].mean()
    assert celeba["jpeg_quality"].min() >= 85
    women = celeba["gender"] == "female"
    assert celeba.loc[women, "lip_redness"].mean() > utk.loc[utk["gender"] == "female", "lip_redness"].mean() + 0.1
    full, half = (compress_skin_tones(DEFAULT_GROUPS, c) for c in (1.0, 0.5))
    gap = [abs(g.skin_lightness - full[0].skin_lightness) for g in full]
    assert [abs(g.skin_lightness - half[0].skin_lightness) for g in half] == pytest.approx([x / 2 for x in gap])
    assert settings.to_dict()["camera"]["yaw"] == CELEBA_CAMERA.yaw  # recorded in SYNTHETIC.json's config
    with pytest.raises(ValueError, match="unknown camera setting 'yaww'"):
        CelebaSettings(n_people=2, camera={"yaww": 0.1})
    changed = CelebaSettings(n_people=2, camera={"yaw": 0.3}).camera  # a protocol's option changes CelebA's camera
    assert changed == dataclasses.replace(CELEBA_CAMERA, yaw=0.3) and isinstance(changed, Camera)


def test_synthetic_fairface_writes_its_csvs_and_reads_back(written: dict[str, Path]) -> None:
    root = written["fairface"]
    text = (root / "fairface_label_train.csv").read_text(encoding="utf-8")
    assert text.startswith("file,age,gender,race,service_test\ntrain/1.jpg,") and "\r" not in text
    result = read_fairface(root)
    manifest = json.loads((root / "SYNTHETIC.json").read_text())
    truth = {s["file"]: s for s in manifest["subjects"]}
    assert not result.rejected and len(result.table) == FAIRFACE_SMALL["n_people"] == len(truth)
    assert all(truth[f]["group"] == d for f, d in zip(result.table["sample_id"], result.table["race_detail"], strict=True))
    assert set(result.table["partition"]) == {"train", "val"}
    with Image.open(root / "val/1.jpg") as image:
        assert image.size == (32, 32)
    records = fairface_records(FairfaceSettings(n_people=700, seed=2, image_size=32))
    shares = records["race"].value_counts(normalize=True)
    assert len(shares) == 7 and shares.max() < 0.25  # near-balanced, unlike the synthetic UTKFace
    assert records["jpeg_quality"].min() < 70  # Flickr compression, not UTKFace's


def test_same_settings_same_bytes_and_nothing_half_written(written: dict[str, Path], tmp_path: Path,
                                                            monkeypatch) -> None:
    again = write_fairface(tmp_path / "fairface", **FAIRFACE_SMALL)
    assert _hashes(again) == _hashes(written["fairface"])
    with pytest.raises(UserInputError, match="already exists"):
        write_celeba(written["celeba"], **CELEBA_SMALL)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synth_celeba, "encode_faces", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_celeba(tmp_path / "broken", **CELEBA_SMALL)
    assert not (tmp_path / "broken").exists() and not list(tmp_path.glob(".broken*"))


def test_synthetic_datasets_load_for_a_protocol_and_are_marked_synthetic(tmp_path: Path) -> None:
    celeba = load_dataset(CELEBA, variant="aligned", synthetic_settings=SyntheticData(n=3, seed=1, image_size=24),
                          data_root=None, cache_dir=tmp_path, progress=False,
                          options={"race_annotations": "race_annotations.csv",
                                   "race_categories": ["white", "black", "asian", "indian", "others"]})
    assert celeba.synthetic and celeba.manifest["format"] == "celeba" and celeba.table["annotated_race"].notna().any()
    fairface = load_dataset(FAIRFACE, variant="trainval", synthetic_settings=SyntheticData(n=6, seed=1, image_size=24),
                            data_root=None, cache_dir=tmp_path, progress=False)
    assert fairface.synthetic and fairface.manifest["format"] == "fairface"
    # the attributes and annotators' labels are labels: they enter the data fingerprint
    changed = celeba.table.copy()
    changed["Smiling"] = ~changed["Smiling"]
    assert type(celeba)(**{**celeba.__dict__, "table": changed}).fingerprint() != celeba.fingerprint()
    with pytest.raises(UserInputError, match="dataset options: FairFace has no option 'race_annotations'"):
        load_dataset(FAIRFACE, variant="trainval", synthetic_settings=SyntheticData(n=6, seed=1, image_size=24),
                     data_root=None, cache_dir=tmp_path, progress=False, options={"race_annotations": "x.csv"})
