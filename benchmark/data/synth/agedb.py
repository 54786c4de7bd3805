"""A synthetic AgeDB (+ insightface's ``agedb_30.bin``) in its exact on-disk format, read back by
:mod:`facebench.data.agedb`: ``AgeDB/{imgnum}_{Name}_{age}_{m|f}.jpg`` and ``agedb_30.bin``
(shared machinery: :mod:`facebench.data.synth.common`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from facebench.data.pairs import fold_pairs
from facebench.data.synth.common import (
    _cached,
    _jpeg_bytes,
    _manifest,
    _Settings,
    _settings,
    _subjects,
    synthetic_names,
    write_atomically,
)
from facebench.data.synth.longitudinal import (
    AGEDB_GROUPS,
    LongitudinalConfig,
    agedb_like,
    expand_photos,
    sample_people,
    sample_photo_ages,
    sub_seed,
)
from facebench.data.synth.population import GroupAppearance
from facebench.data.synth.render import render_faces
from facebench.data.synth.utkface import encode_faces

# --- format constants (research notes A3-A6) ----------------------------------------------------------------

AGEDB_FOLDER = "AgeDB"
AGEDB_BIN = "agedb_30.bin"
#: Side of the aligned crops stored in insightface ``.bin`` packs.
BIN_IMAGE_SIZE = 112


# --- settings -----------------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class AgedbSettings(_Settings):
    FORMAT: ClassVar[str] = "agedb"
    n_people: int = 568
    image_size: int = 200
    groups: tuple[GroupAppearance, ...] = AGEDB_GROUPS
    male_share: float = 0.62
    #: mean photos per person (AgeDB: 16,488 images of 568 people)
    photos_mean: float = 29.0
    #: agedb_30.bin: folds (identities disjoint across folds), pairs per fold (first half genuine, then
    #: impostor), and the smallest age gap of every pair (genuine and impostor)
    n_folds: int = 10
    pairs_per_fold: int = 600
    min_gap: int = 30

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 4 <= self.photos_mean <= 80:
            raise ValueError("AgedbSettings.photos_mean must lie in [4, 80]")
        if self.n_folds < 0 or self.pairs_per_fold < 0 or self.pairs_per_fold % 2 or self.min_gap < 0:
            raise ValueError("AgedbSettings needs n_folds >= 0, an even pairs_per_fold >= 0 and min_gap >= 0")

    def config(self) -> LongitudinalConfig:
        return agedb_like(self.n_people, self.seed, groups=self.groups, male_share=self.male_share,
                          photos_mean=self.photos_mean, shift=self.shift)


# --- records and writer -------------------------------------------------------------------------------------

def agedb_records(settings: AgedbSettings) -> pd.DataFrame:
    """Photos of a synthetic AgeDB: render columns plus ``imgnum`` (0..N-1, person by person), ``name``
    (CamelCase), ``gender_code`` (``m``/``f``) and ``file`` (``{imgnum}_{Name}_{age}_{m|f}.jpg``)."""
    config = settings.config()
    photos = expand_photos(sample_people(config), sample_photo_ages(config), config)
    names = synthetic_names(settings.n_people, settings.seed, dataset="agedb")
    photos["imgnum"] = np.arange(len(photos), dtype=np.int64)
    photos["name"] = ["".join(names[p]) for p in photos["person"]]
    photos["gender_code"] = np.where(photos["gender"] == "male", "m", "f")
    photos["file"] = [f"{i}_{nm}_{a}_{g}.jpg" for i, nm, a, g in
                      zip(photos["imgnum"], photos["name"], photos["age"], photos["gender_code"], strict=True)]
    return photos


def agedb_pairs(settings: AgedbSettings, photos: pd.DataFrame) -> tuple[list[tuple[int, int]], list[bool]]:
    """agedb_30 pairs as row positions in ``photos``: ``n_folds`` identity-disjoint folds, each first
    ``pairs_per_fold / 2`` genuine pairs, then as many impostor pairs, every pair ``min_gap`` or more years apart."""
    if settings.n_folds == 0 or settings.pairs_per_fold == 0:
        return [], []
    rng = np.random.default_rng(sub_seed(settings.seed, "agedb-30"))
    return fold_pairs(rng, photos["person"].to_numpy(), photos["age"].to_numpy(), n_folds=settings.n_folds,
                      pairs_per_fold=settings.pairs_per_fold, min_gap_same=settings.min_gap,
                      min_gap_other=settings.min_gap, what=f"AgeDB-{settings.min_gap}")


def write_agedb(out_dir: str | os.PathLike, *, n_people: int, seed: int, image_size: int = 200,
                progress: bool = False, **options: Any) -> Path:
    """Write a synthetic AgeDB under ``out_dir``: ``AgeDB/*.jpg`` and ``agedb_30.bin`` (112x112 JPEG crops of
    the same photos, rendered at 112 px); return ``out_dir``.

    ``options``: the other :class:`AgedbSettings` fields (``render_size``, ``groups``, ``male_share``,
    ``photos_mean``, ``n_folds``, ``pairs_per_fold``, ``min_gap``).
    """
    settings = AgedbSettings(n_people=n_people, seed=seed, image_size=image_size, **options)

    def build(tmp: Path) -> dict:
        photos = agedb_records(settings)
        pairs, issame = agedb_pairs(settings, photos)
        encode_faces(tmp / AGEDB_FOLDER, photos, list(photos["file"]), settings.image_size, settings.render_size,
                progress, "AgeDB")
        used = sorted({i for pair in pairs for i in pair})
        crops = render_faces(photos.iloc[used], size=BIN_IMAGE_SIZE) if used else []
        quality = photos["jpeg_quality"].to_numpy()
        encoded = {row: _jpeg_bytes(crops[k], quality[row]) for k, row in enumerate(used)}
        images = [encoded[i] for pair in pairs for i in pair]
        from facebench.data.agedb import write_agedb_bin  # the reader module's Python-2 pickle writer

        write_agedb_bin(tmp / AGEDB_BIN, images, issame)
        os.chmod(tmp / AGEDB_BIN, 0o644)
        files = list(photos["file"])
        bin_pairs = [[files[a], files[b], bool(s)] for (a, b), s in zip(pairs, issame, strict=True)]
        return _manifest(settings, photos, _subjects(photos, "name"), bin_pairs=bin_pairs)

    return write_atomically(out_dir, (AGEDB_FOLDER, AGEDB_BIN), "AgeDB", build)


# --- cached -------------------------------------------------------------------------------------------------

def synth_agedb_cached(settings: AgedbSettings | Mapping[str, Any], cache_dir: str | os.PathLike, *,
                       progress: bool = False) -> Path:
    """``cache_dir / f"agedb-{fingerprint[:16]}"``, written first unless a complete copy is there."""
    return _cached(_settings(AgedbSettings, settings), cache_dir, write_agedb, AGEDB_FOLDER, progress)
