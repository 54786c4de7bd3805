"""A synthetic FairFace in its exact on-disk format, read back by :mod:`facebench.data.fairface`.

Layout written under ``out_dir`` (the dataset root)::

    train/1.jpg ...                224 x 224 JPEGs at the default size
    val/1.jpg ...
    fairface_label_train.csv       file,age,gender,race,service_test  (LF line endings, as pandas writes)
    fairface_label_val.csv
    SYNTHETIC.json                 the manifest: settings and every image's synthetic group

One synthetic person per image (FairFace has no identities), in seven groups named like FairFace's categories
(``white``, ``black``, ``latino_hispanic``, ``east_asian``, ``southeast_asian``, ``indian``, ``middle_eastern``;
written as the CSV's ``White``, ``Latino_Hispanic``, ``East Asian`` ...) in FairFace's near-balanced proportions,
ages drawn per FairFace age bin in FairFace's proportions and written as the bin, photographed with
:data:`~facebench.data.synth.camera.FAIRFACE_CAMERA` (Flickr photos) by the same renderer as every synthetic
dataset. The looks of the four groups UTKFace's synthetic population does not have are guesses, like all group
appearances [UNVERIFIED]; so are the proportions (approximately the train file's counts), the 50% share of men
(FairFace has about 53%) and ``service_test`` (drawn with ``service_test_share``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from facebench.data.fairface import AGE_BINS, HEADER, LABEL_FILE, RACE_DETAIL
from facebench.data.synth.camera import FAIRFACE_CAMERA, Camera, apply_camera
from facebench.data.synth.common import _cached, _manifest, _Settings, _settings, write_atomically
from facebench.data.synth.longitudinal import HISPANIC, sub_seed
from facebench.data.synth.population import DEFAULT_GROUPS, GroupAppearance, SynthConfig, sample_population
from facebench.data.synth.render import cue_age
from facebench.data.synth.utkface import encode_faces

_BY_NAME = {g.name: g for g in DEFAULT_GROUPS}
#: Approximate image counts per category in fairface_label_train.csv [UNVERIFIED]: near-balanced by design.
FAIRFACE_RACE_COUNTS: dict[str, int] = {"white": 16527, "latino_hispanic": 13367, "indian": 12319, "east_asian": 12287,
                                        "black": 12233, "southeast_asian": 10795, "middle_eastern": 9216}
FAIRFACE_GROUPS: tuple[GroupAppearance, ...] = tuple(dataclasses.replace(g, proportion=float(FAIRFACE_RACE_COUNTS[g.name]))
                                                     for g in (
    _BY_NAME["white"], _BY_NAME["black"],
    dataclasses.replace(HISPANIC, name="latino_hispanic"),
    dataclasses.replace(_BY_NAME["asian"], name="east_asian"),
    GroupAppearance(name="southeast_asian", proportion=1.0, skin_lightness=0.60, skin_lightness_sd=0.07, aging_rate=0.92,
                    skin_warmth=0.9, hair_palette=(0.8, 0.18, 0.02, 0.0, 0.0, 0.0), light_eye_prob=0.0),
    _BY_NAME["indian"],
    GroupAppearance(name="middle_eastern", proportion=1.0, skin_lightness=0.68, skin_lightness_sd=0.08, aging_rate=0.95,
                    skin_warmth=0.5, hair_palette=(0.55, 0.35, 0.08, 0.02, 0.0, 0.0), light_eye_prob=0.06),
))
#: Synthetic group → the CSV's race value.
RACE_VALUES: dict[str, str] = {detail: race for race, detail in RACE_DETAIL.items()}
#: Approximate image counts per age bin in the train file [UNVERIFIED], and the ages each bin is drawn from.
AGE_BIN_COUNTS: tuple[int, ...] = (1792, 10408, 9103, 25598, 19250, 10744, 6228, 2779, 842)
AGE_BIN_RANGES: tuple[tuple[int, int], ...] = ((1, 2), (3, 9), (10, 19), (20, 29), (30, 39), (40, 49), (50, 59),
                                               (60, 69), (70, 85))
#: The val file's share of all images (10,954 of 97,698).
VAL_SHARE = 10954 / 97698


@dataclass(frozen=True, kw_only=True)
class FairfaceSettings(_Settings):
    """Settings of the synthetic FairFace (module docstring); ``n_people`` is the number of images."""

    FORMAT: ClassVar[str] = "fairface"
    n_people: int = 2000
    image_size: int = 224
    groups: tuple[GroupAppearance, ...] = FAIRFACE_GROUPS
    val_share: float = VAL_SHARE
    service_test_share: float = 0.5
    camera: Camera = FAIRFACE_CAMERA

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            object.__setattr__(self, "camera", Camera.of(self.camera, base=FAIRFACE_CAMERA))
        except TypeError as error:
            raise ValueError(f"FairfaceSettings.camera: {error}") from None
        unknown = sorted({g.name for g in self.groups} - set(RACE_VALUES))
        if unknown:
            raise ValueError(f"FairFace has no race category for synthetic group(s) {unknown}; use {sorted(RACE_VALUES)}")
        if self.n_people < 2:
            raise ValueError("FairfaceSettings.n_people must be at least 2 (a train and a val image)")
        if not 0.0 < self.val_share < 1.0 or not 0.0 <= self.service_test_share <= 1.0:
            raise ValueError("FairfaceSettings.val_share must be in (0, 1) and service_test_share in [0, 1]")


def fairface_records(settings: FairfaceSettings) -> pd.DataFrame:
    """One row per image: render columns (FairFace camera applied), ``age_bin``, ``file``, ``partition``,
    ``service_test``; train images first, each split numbered from 1."""
    n = settings.n_people
    population = sample_population(SynthConfig(n=n, seed=sub_seed(settings.seed, "fairface", "people"),
                                                groups=tuple(settings.groups), jpeg_quality=settings.camera.jpeg_quality))
    rng = np.random.default_rng(sub_seed(settings.seed, "fairface", "labels"))
    counts = np.asarray(AGE_BIN_COUNTS, float)
    bins = rng.choice(len(AGE_BINS), size=n, p=counts / counts.sum())
    lo = np.array([r[0] for r in AGE_BIN_RANGES])[bins]
    hi = np.array([r[1] for r in AGE_BIN_RANGES])[bins]
    age = rng.integers(lo, hi + 1)
    population["age"] = age.astype(np.int64)
    population["cue_age"] = cue_age(age, population["aging_rate"].to_numpy(float))
    population = apply_camera(population, settings.camera, sub_seed(settings.seed, "fairface", "camera"))
    population["person"] = np.arange(n, dtype=np.int64)
    population["age_bin"] = [AGE_BINS[b] for b in bins]
    n_val = min(max(1, int(round(n * settings.val_share))), n - 1)  # both label files have rows
    val = np.zeros(n, bool)
    val[rng.permutation(n)[:n_val]] = True
    population["partition"] = np.where(val, "val", "train")
    number = np.empty(n, np.int64)
    number[~val] = np.arange(1, (~val).sum() + 1)
    number[val] = np.arange(1, val.sum() + 1)
    population["file"] = [f"{p}/{k}.jpg" for p, k in zip(population["partition"], number, strict=True)]
    population["service_test"] = rng.random(n) < settings.service_test_share
    order = np.lexsort((number, val))
    return population.iloc[order].reset_index(drop=True)


def label_csv(records: pd.DataFrame) -> str:
    """One split's label file: the header, then ``train/1.jpg,20-29,Male,East Asian,False`` rows, LF endings."""
    lines = [",".join(HEADER)]
    for r in records.itertuples(index=False):
        lines.append(f"{r.file},{r.age_bin},{'Male' if r.gender == 'male' else 'Female'},{RACE_VALUES[r.race]},"
                     f"{'True' if r.service_test else 'False'}")
    return "\n".join(lines) + "\n"


def write_fairface(out_dir: str | os.PathLike, *, n_people: int, seed: int, image_size: int = 224,
                   progress: bool = False, **options: Any) -> Path:
    """Write a synthetic FairFace under ``out_dir``; return ``out_dir``. ``options``: the other
    :class:`FairfaceSettings` fields."""
    settings = FairfaceSettings(n_people=n_people, seed=seed, image_size=image_size, **options)

    def build(tmp: Path) -> dict:
        records = fairface_records(settings)
        (tmp / "train").mkdir()
        (tmp / "val").mkdir()
        encode_faces(tmp, records, list(records["file"]), settings.image_size, settings.render_size, progress, "FairFace")
        for part in ("train", "val"):
            (tmp / LABEL_FILE.format(part)).write_text(label_csv(records[records["partition"] == part]),
                                                       encoding="utf-8", newline="")
        images = [{"file": f, "group": g, "gender": s, "age": int(a), "aging_rate": float(r)} for f, g, s, a, r in
                  zip(records["file"], records["race"], records["gender"], records["age"], records["aging_rate"],
                      strict=True)]
        return _manifest(settings, records, images)

    entries = ("train", "val", LABEL_FILE.format("train"), LABEL_FILE.format("val"))
    return write_atomically(out_dir, entries, "FairFace", build)


def synth_fairface_cached(settings: FairfaceSettings | Mapping[str, Any], cache_dir: str | os.PathLike, *,
                          progress: bool = False) -> Path:
    """``cache_dir / f"fairface-{fingerprint[:16]}"``, written first unless a complete copy is there."""
    return _cached(_settings(FairfaceSettings, settings), cache_dir, write_fairface, LABEL_FILE.format("train"),
                   progress)
