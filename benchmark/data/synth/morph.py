"""A synthetic MORPH Album 2 (non-commercial release) in its exact on-disk format, read back by
:mod:`facebench.data.morph`: ``MORPH_nonCommercial/morph_2008_nonCommercial.csv`` and
``MORPH_nonCommercial/Album2/*.JPG`` (shared machinery: :mod:`facebench.data.synth.common`).
"""

from __future__ import annotations

import datetime as dt
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
    MORPH_GROUPS,
    MORPH_MALE_SHARE,
    LongitudinalConfig,
    expand_photos,
    morph_like,
    sample_people,
    sample_photo_ages,
    sub_seed,
)
from facebench.data.synth.population import GroupAppearance
from facebench.data.synth.utkface import encode_faces

# --- format constants (research notes A3-A6) ----------------------------------------------------------------

MORPH_FOLDER = "MORPH_nonCommercial"
MORPH_CSV = "morph_2008_nonCommercial.csv"
MORPH_HEADER = "id_num,picture_num,dob,doa,race,gender,facial_hair,age,age_diff,glasses,photo"
#: Synthetic group -> MORPH race code (``indian`` has no MORPH code: it is written as ``O``).
MORPH_RACE_CODES: dict[str, str] = {"black": "B", "white": "W", "hispanic": "H", "asian": "A", "others": "O",
                                    "indian": "O"}
#: Capture dates of the synthetic MORPH release (Album 2 was collected 2003-2007).
MORPH_FIRST_DOA = dt.date(2003, 1, 1)
MORPH_LAST_DOA = dt.date(2007, 12, 31)


# --- settings -----------------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class MorphSettings(_Settings):
    FORMAT: ClassVar[str] = "morph"
    n_people: int = 200
    image_size: int = 200
    groups: tuple[GroupAppearance, ...] = MORPH_GROUPS
    male_share: float = MORPH_MALE_SHARE

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_people > 300_000:
            raise ValueError("MorphSettings.n_people must be at most 300000 (six-digit id numbers)")
        unknown = sorted({g.name for g in self.groups} - set(MORPH_RACE_CODES))
        if unknown:
            raise ValueError(f"MORPH has no race code for synthetic group(s) {unknown}; use {sorted(MORPH_RACE_CODES)}")

    def config(self) -> LongitudinalConfig:
        return morph_like(self.n_people, self.seed, groups=self.groups, male_share=self.male_share, shift=self.shift)


# --- records and writer -------------------------------------------------------------------------------------

def _floor_years(dob: dt.date, doa: dt.date) -> int:
    return doa.year - dob.year - ((doa.month, doa.day) < (dob.month, dob.day))


def morph_records(settings: MorphSettings) -> pd.DataFrame:
    """The photos of a synthetic MORPH release in CSV row order: render columns plus the CSV fields
    (``id_num``, ``picture_num``, ``dob``, ``doa`` as dates, ``race_code``, ``gender_code``, ``age_diff`` days
    or ``<NA>``, ``photo``)."""
    config = settings.config()
    people = sample_people(config)
    ages = sample_photo_ages(config)
    rng = np.random.default_rng(sub_seed(settings.seed, "morph"))
    n = config.n_people

    person = ages["person"].to_numpy(np.int64)
    age_exact = ages["age_exact"].to_numpy(float)
    starts = np.flatnonzero(np.r_[True, person[1:] != person[:-1]])
    counts = np.diff(np.r_[starts, len(person)])
    rank = np.arange(len(person)) - np.repeat(starts, counts)
    first_age = np.repeat(age_exact[starts], counts)
    offset = np.round((age_exact - first_age) * 365.2425).astype(np.int64)
    # strictly increasing capture days per person (at least one day apart)
    shifted = pd.Series(offset - rank).groupby(person).cummax().to_numpy()
    offset = shifted + rank
    span = offset[starts + counts - 1]
    window = (MORPH_LAST_DOA - MORPH_FIRST_DOA).days
    first_doa = MORPH_FIRST_DOA.toordinal() + (rng.random(n) * np.maximum(window - span, 1)).astype(np.int64)
    dob = first_doa - np.round(age_exact[starts] * 365.2425).astype(np.int64)
    doa_ord = np.repeat(first_doa, counts) + offset
    dob_ord = np.repeat(dob, counts)
    dobs = [dt.date.fromordinal(int(d)) for d in dob_ord]
    doas = [dt.date.fromordinal(int(d)) for d in doa_ord]
    ages = ages.assign(age=[_floor_years(b, a) for b, a in zip(dobs, doas, strict=True)], dob=dobs, doa=doas,
                       age_diff=pd.array([pd.NA if r == 0 else int(d) for r, d in
                                          zip(rank, np.diff(doa_ord, prepend=0), strict=True)], dtype="Int64"))
    photos = expand_photos(people, ages, config)

    id_num = 1000 + rng.choice(330_000 - 1000, n, replace=False)
    start_num = np.where(rng.random(n) < 0.98, 0, rng.integers(1, 4, n))
    one_digit = rng.random(n) < 0.25
    p = photos["person"].to_numpy(np.int64)
    photos["id_num"] = id_num[p]
    photos["picture_num"] = start_num[p] + photos["photo"].to_numpy(np.int64)
    photos["race_code"] = [MORPH_RACE_CODES[g] for g in photos["race"]]
    photos["gender_code"] = np.where(photos["gender"] == "male", "M", "F")
    photos["photo_path"] = [
        f"Album2/{i:06d}_{(str(k) if one else f'{k:02d}')}{g}{a}.JPG"
        for i, k, one, g, a in zip(photos["id_num"], photos["picture_num"], one_digit[p], photos["gender_code"],
                                   photos["age"], strict=True)
    ]
    order = rng.permutation(len(photos))  # the release's rows are not grouped by subject
    return photos.iloc[order].reset_index(drop=True)


def _morph_csv(records: pd.DataFrame) -> str:
    lines = [MORPH_HEADER]
    for r in records.itertuples(index=False):
        age_diff = "" if pd.isna(r.age_diff) else f"{float(r.age_diff):.1f}"
        lines.append(f"{r.id_num},{r.picture_num},{r.dob:%m/%d/%Y},{r.doa:%m/%d/%Y},{r.race_code},"
                     f"{r.gender_code},,{r.age},{age_diff},,{r.photo_path}")
    return "\n".join(lines) + "\n"


def write_morph(out_dir: str | os.PathLike, *, n_people: int, seed: int, image_size: int = 200,
                progress: bool = False, **options: Any) -> Path:
    """Write a synthetic MORPH Album 2 (non-commercial) release under ``out_dir``; return ``out_dir``.

    ``options``: the other :class:`MorphSettings` fields (``render_size``, ``groups``, ``male_share``).
    """
    settings = MorphSettings(n_people=n_people, seed=seed, image_size=image_size, **options)

    def build(tmp: Path) -> dict:
        records = morph_records(settings)
        folder = tmp / MORPH_FOLDER
        folder.mkdir()
        encode_faces(folder, records, list(records["photo_path"]), settings.image_size, settings.render_size,
                progress, "MORPH")
        (folder / MORPH_CSV).write_text(_morph_csv(records), encoding="utf-8", newline="")
        return _manifest(settings, records, _subjects(records.sort_values(["person", "photo"]), "id_num"))

    return write_atomically(out_dir, (MORPH_FOLDER,), "MORPH", build)


# --- cached -------------------------------------------------------------------------------------------------

def synth_morph_cached(settings: MorphSettings | Mapping[str, Any], cache_dir: str | os.PathLike, *,
                       progress: bool = False) -> Path:
    """``cache_dir / f"morph-{fingerprint[:16]}"``, written first unless a complete copy is there."""
    return _cached(_settings(MorphSettings, settings), cache_dir, write_morph, MORPH_FOLDER, progress)
