"""A synthetic FG-NET in its exact on-disk format, read back by :mod:`facebench.data.fgnet`:
``FGNET/images/{subject:03d}A{age:02d}[a|b].JPG`` (shared machinery: :mod:`facebench.data.synth.common`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from facebench.data.synth.common import (
    _cached,
    _manifest,
    _Settings,
    _settings,
    _subjects,
    write_atomically,
)
from facebench.data.synth.longitudinal import (
    FGNET_GROUPS,
    LongitudinalConfig,
    expand_photos,
    fgnet_like,
    sample_people,
    sample_photo_ages,
    sub_seed,
)
from facebench.data.synth.population import GroupAppearance
from facebench.data.synth.utkface import encode_faces

# --- format constants (research notes A3-A6) ----------------------------------------------------------------

FGNET_FOLDER = "FGNET"
FGNET_IMAGES = "FGNET/images"


# --- settings -----------------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class FgnetSettings(_Settings):
    FORMAT: ClassVar[str] = "fgnet"
    n_people: int = 82
    image_size: int = 200
    groups: tuple[GroupAppearance, ...] = FGNET_GROUPS
    male_share: float = 0.57

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_people > 999:
            raise ValueError("FgnetSettings.n_people must be at most 999 (three-digit subject numbers)")

    def config(self) -> LongitudinalConfig:
        return fgnet_like(self.n_people, self.seed, groups=self.groups, male_share=self.male_share, shift=self.shift)


# --- records and writer -------------------------------------------------------------------------------------

def fgnet_records(settings: FgnetSettings) -> pd.DataFrame:
    """Photos of a synthetic FG-NET: render columns plus ``subject`` (1-based) and ``file``
    (``{subject:03d}A{age:02d}[a|b].JPG``; at most two photos per person and age, suffixed ``a``/``b``)."""
    config = settings.config()
    ages = sample_photo_ages(config)
    ages["age"] = np.floor(ages["age_exact"]).astype(np.int64)
    # Most photos that land on an age already taken move to the nearest free age (FG-NET has few a/b pairs);
    # a third photo at one age always does.
    rng = np.random.default_rng(sub_seed(settings.seed, "fgnet"))
    new_age = ages["age"].to_numpy().copy()
    for _, rows in ages.groupby("person").indices.items():
        taken: dict[int, int] = {}
        for i in rows:
            a = int(new_age[i])
            if a in taken and (taken[a] >= 2 or rng.random() < 0.8):
                free = [b for b in range(config.min_age, config.max_age + 1) if b not in taken]
                if free:
                    a = min(free, key=lambda b: (abs(b - a), b))
            taken[a] = taken.get(a, 0) + 1
            new_age[i] = a
    ages["age_exact"] = new_age + (ages["age_exact"].to_numpy() - ages["age"].to_numpy())
    ages["age"] = new_age
    ages = ages[ages.groupby(["person", "age"]).cumcount() < 2]  # at most two photos at one age
    photos = expand_photos(sample_people(config), ages, config)
    same_age = photos.groupby(["person", "age"])["photo"]
    counts = same_age.transform("size").to_numpy()
    nth = same_age.cumcount().to_numpy()
    suffix = np.where(counts > 1, np.where(nth == 0, "a", "b"), "")
    photos["subject"] = photos["person"] + 1
    photos["file"] = [f"{s:03d}A{a:02d}{x}.JPG" for s, a, x in zip(photos["subject"], photos["age"], suffix, strict=True)]
    return photos


def write_fgnet(out_dir: str | os.PathLike, *, n_people: int = 82, seed: int, image_size: int = 200,
                progress: bool = False, **options: Any) -> Path:
    """Write a synthetic FG-NET under ``out_dir`` (``FGNET/images/*.JPG``); return ``out_dir``.

    ``options``: the other :class:`FgnetSettings` fields (``render_size``, ``groups``, ``male_share``).
    """
    settings = FgnetSettings(n_people=n_people, seed=seed, image_size=image_size, **options)

    def build(tmp: Path) -> dict:
        records = fgnet_records(settings)
        encode_faces(tmp / FGNET_IMAGES, records, list(records["file"]), settings.image_size, settings.render_size,
                progress, "FG-NET")
        return _manifest(settings, records, _subjects(records, "subject"))

    return write_atomically(out_dir, (FGNET_FOLDER,), "FG-NET", build)


# --- cached -------------------------------------------------------------------------------------------------

def synth_fgnet_cached(settings: FgnetSettings | Mapping[str, Any], cache_dir: str | os.PathLike, *,
                       progress: bool = False) -> Path:
    """``cache_dir / f"fgnet-{fingerprint[:16]}"``, written first unless a complete copy is there."""
    return _cached(_settings(FgnetSettings, settings), cache_dir, write_fgnet, FGNET_FOLDER, progress)
