"""A synthetic CACD (+ CACD-VS) in its exact on-disk format, read back by :mod:`facebench.data.cacd`:
``CACD2000/{age}_{First_Last}_{k:04d}.jpg``, ``celebrity2000_meta.mat`` (MATLAB v5) and
``CACD_VS/{pairId:04d}_{0,1}.jpg`` (shared machinery: :mod:`facebench.data.synth.common`).
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.io

from facebench.data.pairs import fold_pairs
from facebench.data.synth.common import (
    _cached,
    _manifest,
    _Settings,
    _settings,
    _subjects,
    synthetic_names,
    write_atomically,
)
from facebench.data.synth.longitudinal import (
    CACD_GROUPS,
    LongitudinalConfig,
    expand_photos,
    sample_people,
    sub_seed,
)
from facebench.data.synth.population import GroupAppearance
from facebench.data.synth.utkface import encode_faces

# --- format constants (research notes A3-A6) ----------------------------------------------------------------

CACD_FOLDER = "CACD2000"
CACD_META = "celebrity2000_meta.mat"
CACD_VS_FOLDER = "CACD_VS"
CACD_YEARS = tuple(range(2004, 2014))
CACD_BIRTH_YEARS = tuple(range(1951, 1991))
CACD_MIN_AGE = 16
CACD_RANKS = 50
#: Header text of the written MAT file (scipy writes the current time there; fixed for byte determinism).
MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, written by facebench.synth (SYNTHETIC)"


# --- settings -----------------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class CacdSettings(_Settings):
    FORMAT: ClassVar[str] = "cacd"
    n_people: int = 200
    image_size: int = 250
    groups: tuple[GroupAppearance, ...] = CACD_GROUPS
    male_share: float = 0.5
    #: photos per celebrity per year (inclusive range); years 2004-2013 from age 16 on
    photos_per_year: tuple[int, int] = (2, 6)
    #: CACD-VS: folds (identities disjoint across folds), pairs per fold (first half positive, then negative)
    n_vs_folds: int = 10
    pairs_per_fold: int = 400

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_people > len(CACD_BIRTH_YEARS) * CACD_RANKS:
            raise ValueError("CacdSettings.n_people must be at most 2000 (ranks 1-50 in each of 40 birth years)")
        lo, hi = self.photos_per_year
        if not 1 <= lo <= hi:
            raise ValueError(f"CacdSettings.photos_per_year must satisfy 1 <= lo <= hi, got {self.photos_per_year}")
        if self.n_vs_folds < 0 or self.pairs_per_fold < 0 or self.pairs_per_fold % 2:
            raise ValueError("CacdSettings needs n_vs_folds >= 0 and an even pairs_per_fold >= 0")

    def config(self) -> LongitudinalConfig:
        return LongitudinalConfig(n_people=self.n_people, seed=self.seed, groups=self.groups,
                                  male_share=self.male_share, min_age=CACD_MIN_AGE, max_age=62, shift=self.shift)


# --- records and writer -------------------------------------------------------------------------------------

def cacd_records(settings: CacdSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(images, celebrities)`` of a synthetic CACD: images in ``celebrityImageData`` order (identity, then
    k) with render columns plus ``identity``, ``year``, ``birth``, ``rank``, ``lfw``, ``name``, ``file``; and one
    row per celebrity (``identity`` 1..n, ``name`` like ``Ada Quill``, ``birth``, ``rank``, ``lfw``, ``person``).

    Birth years: ``min(40, ceil(n/10))`` years evenly spread over 1951-1990 (all 40 for 400+ people), people
    dealt round-robin onto them; within a birth year the ranks are 1..5 (so CARC's test set, ranks 3-5,
    exists) plus distinct ranks drawn from 6..50.
    """
    config = settings.config()
    n = settings.n_people
    rng = np.random.default_rng(sub_seed(settings.seed, "cacd"))
    n_years = min(len(CACD_BIRTH_YEARS), -(-n // 10))
    years = np.unique(np.round(np.linspace(CACD_BIRTH_YEARS[0], CACD_BIRTH_YEARS[-1], n_years)).astype(np.int64))
    order = rng.permutation(n)
    birth = np.empty(n, np.int64)
    birth[order] = years[np.arange(n) % len(years)]
    rank = np.empty(n, np.int64)
    for year in years:
        members = np.flatnonzero(birth == year)
        m = len(members)
        ranks = np.r_[np.arange(1, min(m, 5) + 1), np.sort(rng.choice(np.arange(6, CACD_RANKS + 1),
                                                                       max(m - 5, 0), replace=False))]
        rank[rng.permutation(members)] = ranks
    lfw = (rng.random(n) < 0.3).astype(np.int64)

    # identities 1..n in order of birth year, then rank
    person_of_identity = np.lexsort((rank, birth))
    identity = np.empty(n, np.int64)
    identity[person_of_identity] = np.arange(1, n + 1)
    names = synthetic_names(n, settings.seed, dataset="cacd", third_part_share=0.08)

    rows_person, rows_year, rows_age, rows_exact = [], [], [], []
    lo, hi = settings.photos_per_year
    for person in range(n):
        for year in CACD_YEARS:
            age = year - birth[person]
            if age < CACD_MIN_AGE:
                continue
            k = int(rng.integers(lo, hi + 1))
            rows_person += [person] * k
            rows_year += [year] * k
            rows_age += [age] * k
            rows_exact += list(age + rng.uniform(-0.5, 0.5, k))
    photos = pd.DataFrame({"person": rows_person, "age_exact": rows_exact, "age": rows_age, "year": rows_year})
    images = expand_photos(sample_people(config), photos, config)
    p = images["person"].to_numpy(np.int64)
    images["identity"] = identity[p]
    images["birth"] = birth[p]
    images["rank"] = rank[p]
    images["lfw"] = lfw[p]
    images["name"] = ["_".join(names[i]) for i in p]
    images["k"] = images["photo"] + 1
    images["file"] = [f"{a}_{nm}_{k:04d}.jpg" for a, nm, k in zip(images["age"], images["name"], images["k"], strict=True)]
    images = images.sort_values(["identity", "k"], kind="stable").reset_index(drop=True)
    celebrities = pd.DataFrame({"identity": identity, "name": [" ".join(names[i]) for i in range(n)],
                                "birth": birth, "rank": rank, "lfw": lfw, "person": np.arange(n)})
    return images, celebrities.sort_values("identity").reset_index(drop=True)


def _cell(strings: Sequence[str]) -> np.ndarray:
    cell = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        cell[i, 0] = np.array([s])
    return cell


def _column(values: Any, dtype: Any) -> np.ndarray:
    return np.asarray(values, dtype=dtype).reshape(-1, 1)


def cacd_meta_bytes(images: pd.DataFrame, celebrities: pd.DataFrame) -> bytes:
    """``celebrity2000_meta.mat`` (MATLAB v5) for these records, with a fixed header text."""
    image_data = {
        "age": _column(images["age"], np.uint8),
        "identity": _column(images["identity"], np.uint16),
        "year": _column(images["year"], np.uint16),
        "feature": np.zeros((0, 0), np.uint8),
        "rank": _column(images["rank"], np.uint8),
        "lfw": _column(images["lfw"], np.uint8),
        "birth": _column(images["birth"], np.uint16),
        "name": _cell(list(images["file"])),
    }
    celebrity_data = {
        "name": _cell(list(celebrities["name"])),
        "identity": _column(celebrities["identity"], np.uint16),
        "birth": _column(celebrities["birth"], np.uint16),
        "rank": _column(celebrities["rank"], np.uint8),
        "lfw": _column(celebrities["lfw"], np.uint8),
    }
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"celebrityData": celebrity_data, "celebrityImageData": image_data},
                     format="5", oned_as="column")
    data = bytearray(buffer.getvalue())
    data[:116] = MAT_HEADER.ljust(116, b" ")  # scipy writes the current time there
    return bytes(data)


def cacd_vs_pairs(settings: CacdSettings, images: pd.DataFrame) -> tuple[list[tuple[int, int]], list[bool]]:
    """CACD-VS pairs as row positions in ``images``: ``n_vs_folds`` identity-disjoint folds, each first
    ``pairs_per_fold / 2`` positive pairs (two photos of one celebrity from different years), then as many
    negative pairs (two celebrities of the fold)."""
    if settings.n_vs_folds == 0 or settings.pairs_per_fold == 0:
        return [], []
    rng = np.random.default_rng(sub_seed(settings.seed, "cacd-vs"))
    return fold_pairs(rng, images["person"].to_numpy(), images["age"].to_numpy(), n_folds=settings.n_vs_folds,
                      pairs_per_fold=settings.pairs_per_fold, min_gap_same=1, min_gap_other=0, what="CACD-VS")


def write_cacd(out_dir: str | os.PathLike, *, n_people: int, seed: int, image_size: int = 250,
               progress: bool = False, **options: Any) -> Path:
    """Write a synthetic CACD under ``out_dir``: ``CACD2000/``, ``celebrity2000_meta.mat`` and ``CACD_VS/``.

    ``options``: the other :class:`CacdSettings` fields (``render_size``, ``groups``, ``male_share``,
    ``photos_per_year``, ``n_vs_folds``, ``pairs_per_fold``). CACD-VS images are byte copies of CACD2000 images.
    """
    settings = CacdSettings(n_people=n_people, seed=seed, image_size=image_size, **options)

    def build(tmp: Path) -> dict:
        images, celebrities = cacd_records(settings)
        pairs, issame = cacd_vs_pairs(settings, images)  # before writing: refuse impossible settings early
        files = list(images["file"])
        encode_faces(tmp / CACD_FOLDER, images, files, settings.image_size, settings.render_size, progress, "CACD")
        (tmp / CACD_META).write_bytes(cacd_meta_bytes(images, celebrities))
        vs = tmp / CACD_VS_FOLDER
        vs.mkdir()
        for pair_id, (a, b) in enumerate(pairs):
            shutil.copyfile(tmp / CACD_FOLDER / files[a], vs / f"{pair_id:04d}_0.jpg")
            shutil.copyfile(tmp / CACD_FOLDER / files[b], vs / f"{pair_id:04d}_1.jpg")
        vs_pairs = [[files[a], files[b], bool(s)] for (a, b), s in zip(pairs, issame, strict=True)]
        return _manifest(settings, images, _subjects(images, "identity", "name", "birth", "rank"),
                         vs_pairs=vs_pairs)

    return write_atomically(out_dir, (CACD_FOLDER, CACD_META, CACD_VS_FOLDER), "CACD", build)


# --- cached -------------------------------------------------------------------------------------------------

def synth_cacd_cached(settings: CacdSettings | Mapping[str, Any], cache_dir: str | os.PathLike, *,
                      progress: bool = False) -> Path:
    """``cache_dir / f"cacd-{fingerprint[:16]}"``, written first unless a complete copy is there."""
    return _cached(_settings(CacdSettings, settings), cache_dir, write_cacd, CACD_FOLDER, progress)
