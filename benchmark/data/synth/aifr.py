"""Synthetic stand-ins for the age-invariant face recognition datasets, in their exact on-disk formats
(research notes A3-A6): MORPH Album 2, CACD (+ CACD-VS), FG-NET and AgeDB (+ ``agedb_30.bin``).

Every writer renders a :mod:`longitudinal <facebench.data.synth.longitudinal>` population (the same people
at several ages), is deterministic for its settings, writes into a temporary sibling folder and renames it
into place (nothing half-written survives an interruption), refuses (:class:`UserInputError`) when one of
its top-level entries already exists (a non-empty folder or a file) or when ``SYNTHETIC.json`` is already
there, and marks the dataset root with ``SYNTHETIC.json``. Layouts under ``out_dir`` (the dataset root)::

    MORPH   MORPH_nonCommercial/morph_2008_nonCommercial.csv, MORPH_nonCommercial/Album2/*.JPG
    CACD    CACD2000/{age}_{First_Last}_{k:04d}.jpg, celebrity2000_meta.mat, CACD_VS/{pairId:04d}_{0,1}.jpg
    FG-NET  FGNET/images/{subject:03d}A{age:02d}[a|b].JPG
    AgeDB   AgeDB/{imgnum}_{Name}_{age}_{m|f}.jpg, agedb_30.bin

Besides the format's own labels, ``SYNTHETIC.json`` lists every subject with its synthetic ``group``,
``gender`` and ``aging_rate`` (under ``subjects``, keyed by the format's own subject key), so analyses can
use the true groups of datasets that carry no race label (CACD, FG-NET, AgeDB). Names are made-up syllable
names (never real people's). The same settings give byte-identical files on the same machine and library
versions.

What is synthetic rather than real, beyond the faces: MORPH's three file-name/CSV gender conflicts are not
reproduced; FG-NET's ``points/`` landmark files are not written; image sizes are square; group proportions
of CACD, FG-NET and AgeDB are guesses (:mod:`longitudinal <facebench.data.synth.longitudinal>`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.io
from PIL import Image

from facebench.data.pairs import fold_pairs
from facebench.data.synth.longitudinal import (
    AGEDB_GROUPS,
    CACD_GROUPS,
    FGNET_GROUPS,
    LONGITUDINAL_VERSION,
    MORPH_GROUPS,
    MORPH_MALE_SHARE,
    LongitudinalConfig,
    agedb_like,
    expand_photos,
    fgnet_like,
    fingerprint_of,
    morph_like,
    sample_people,
    sample_photo_ages,
    sub_seed,
)
from facebench.data.synth.population import GENERATOR_VERSION, GroupAppearance
from facebench.data.synth.render import render_faces
from facebench.data.synth.utkface import encode_faces
from facebench.errors import UserInputError

MANIFEST_NAME = "SYNTHETIC.json"
GENERATOR_NAME = "facebench.synth"
#: Faces rendered and encoded per block (bounds memory).
WRITE_BLOCK = 256

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

CACD_FOLDER = "CACD2000"
CACD_META = "celebrity2000_meta.mat"
CACD_VS_FOLDER = "CACD_VS"
CACD_YEARS = tuple(range(2004, 2014))
CACD_BIRTH_YEARS = tuple(range(1951, 1991))
CACD_MIN_AGE = 16
CACD_RANKS = 50
#: Header text of the written MAT file (scipy writes the current time there; fixed for byte determinism).
MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, written by facebench.synth (SYNTHETIC)"

FGNET_FOLDER = "FGNET"
FGNET_IMAGES = "FGNET/images"

AGEDB_FOLDER = "AgeDB"
AGEDB_BIN = "agedb_30.bin"
#: Side of the aligned crops stored in insightface ``.bin`` packs.
BIN_IMAGE_SIZE = 112


# --- settings -------------------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class _Settings:
    FORMAT: ClassVar[str] = ""

    n_people: int
    seed: int = 0
    image_size: int = 200
    #: internal render resolution; ``None`` renders at ``image_size`` (else rendered, then bilinear-resized)
    render_size: int | None = None

    def __post_init__(self) -> None:
        if self.n_people < 1:
            raise ValueError(f"{type(self).__name__}.n_people must be at least 1, got {self.n_people}")
        if self.image_size < 8 or (self.render_size is not None and self.render_size < 8):
            raise ValueError(f"{type(self).__name__} image_size and render_size must be at least 8 pixels")

    def to_dict(self) -> dict:
        """The settings as plain JSON-able data (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def fingerprint(self) -> str:
        """SHA-256 over the format, every setting, :data:`GENERATOR_VERSION` and the longitudinal version."""
        return fingerprint_of(self.FORMAT, self.to_dict())

    def options(self) -> dict[str, Any]:
        """The fields as keyword arguments of the format's writer."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


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
        return morph_like(self.n_people, self.seed, groups=self.groups, male_share=self.male_share)


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
                                  male_share=self.male_share, min_age=CACD_MIN_AGE, max_age=62)


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
        return fgnet_like(self.n_people, self.seed, groups=self.groups, male_share=self.male_share)


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
                          photos_mean=self.photos_mean)


# --- shared helpers -----------------------------------------------------------------------------------------

_ONSETS = ("b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
           "br", "cl", "dr", "fl", "gr", "kr", "pr", "st", "tr", "th", "sh", "qu", "vr", "zh")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ea", "ie", "ou", "y")
_ENDINGS = ("", "", "", "n", "r", "l", "s", "x", "th", "nd", "rk", "ck", "ll", "ne", "ra", "lo", "vin", "mer")


def synthetic_names(n: int, seed: int, *, third_part_share: float = 0.0) -> list[tuple[str, ...]]:
    """``n`` distinct made-up names as tuples of capitalised ASCII parts (first, [middle,] last)."""
    rng = np.random.default_rng(sub_seed(seed, "names"))

    def word(syllables: int) -> str:
        text = "".join(_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
                       for _ in range(syllables))
        return (text + _ENDINGS[rng.integers(len(_ENDINGS))]).capitalize()

    names: list[tuple[str, ...]] = []
    seen: set[str] = set()
    while len(names) < n:
        parts = [word(int(rng.integers(1, 3))), word(int(rng.integers(2, 4)))]
        if rng.random() < third_part_share:
            parts.insert(1, word(int(rng.integers(1, 3))))
        key = "".join(parts).lower()
        if key not in seen:
            seen.add(key)
            names.append(tuple(parts))
    return names


def _refuse_existing(out_dir: Path, entries: Sequence[str], what: str) -> None:
    for entry in (*entries, MANIFEST_NAME):
        path = out_dir / entry
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise UserInputError(
                f"{path} already exists{' and is not empty' if path.is_dir() else ''}, so no synthetic {what} "
                "data was written there; remove it or choose another output folder."
            )


def _write_atomically(out_dir: str | os.PathLike, entries: Sequence[str], what: str,
                      build: Callable[[Path], dict]) -> Path:
    """Run ``build(tmp)`` in a temporary sibling of ``out_dir`` (it writes ``entries`` there and returns the
    manifest), then move everything into ``out_dir`` (the manifest last); clean up on any failure."""
    out_dir = Path(out_dir)
    _refuse_existing(out_dir, entries, what)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".partial"))
    moved: list[str] = []
    try:
        os.chmod(tmp, 0o755)
        manifest = build(tmp)
        with open(tmp / MANIFEST_NAME, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2, allow_nan=False)
            handle.write("\n")
        if not out_dir.exists():
            try:
                os.rename(tmp, out_dir)
            except OSError as error:
                raise UserInputError(
                    f"The folder {out_dir} appeared while synthetic {what} data was being written ({error}); "
                    "nothing was written there."
                ) from error
            return out_dir
        _refuse_existing(out_dir, entries, what)  # again, just before moving
        for entry in entries:
            target = out_dir / entry
            if target.is_dir():
                target.rmdir()  # empty: checked above
            os.rename(tmp / entry, target)
            moved.append(entry)
        os.rename(tmp / MANIFEST_NAME, out_dir / MANIFEST_NAME)  # last: the manifest marks completion
        tmp.rmdir()
    except BaseException:
        for entry in moved:  # put back what was already moved, so that nothing half-written stays
            try:
                os.rename(out_dir / entry, tmp / entry)
            except OSError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _manifest(settings: _Settings, photos: pd.DataFrame, subjects: list[dict], **extra: Any) -> dict:
    return {
        "synthetic": True,
        "generator": GENERATOR_NAME,
        "generator_version": GENERATOR_VERSION,
        "longitudinal_version": LONGITUDINAL_VERSION,
        "fingerprint": settings.fingerprint(),
        "format": settings.FORMAT,
        "config": settings.to_dict(),
        "n_people": int(photos["person"].nunique()),
        "n_images": int(len(photos)),
        "subjects": subjects,
        **extra,
    }


def _subjects(photos: pd.DataFrame, key: str, *more: str) -> list[dict]:
    """One entry per person: the format's subject key, extra columns, and the synthetic identity labels."""
    first = photos.groupby("person", sort=True).first()
    counts = photos.groupby("person", sort=True).size()
    out = []
    for person, row in first.iterrows():
        entry = {key: _plain(row[key])}
        entry.update({m: _plain(row[m]) for m in more})
        entry.update({"group": str(row["race"]), "gender": str(row["gender"]),
                      "aging_rate": float(row["aging_rate"]), "n_images": int(counts[person])})
        out.append(entry)
    return out


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _jpeg_bytes(pixels: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


def _settings(cls: type[_Settings], settings: _Settings | Mapping[str, Any]) -> _Settings:
    if isinstance(settings, cls):
        return settings
    if isinstance(settings, Mapping):
        return cls(**settings)
    raise TypeError(f"expected {cls.__name__} or a mapping of its fields, got {type(settings).__name__}")


def _cached(settings: _Settings, cache_dir: str | os.PathLike, write: Callable[..., Path], entry: str,
            progress: bool) -> Path:
    folder = Path(cache_dir) / f"{settings.FORMAT}-{settings.fingerprint()[:16]}"

    def complete() -> bool:
        path = folder / MANIFEST_NAME
        if not path.is_file() or not (folder / entry).exists():
            return False
        with open(path, encoding="utf-8") as handle:
            return json.load(handle).get("fingerprint") == settings.fingerprint()

    if complete():
        return folder
    try:
        write(folder, progress=progress, **settings.options())
    except UserInputError:
        if complete():  # another process finished the same dataset first
            return folder
        raise
    return folder


# --- MORPH ---------------------------------------------------------------------------------------------------

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

    return _write_atomically(out_dir, (MORPH_FOLDER,), "MORPH", build)


# --- CACD ----------------------------------------------------------------------------------------------------

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
    names = synthetic_names(n, settings.seed, third_part_share=0.08)

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

    return _write_atomically(out_dir, (CACD_FOLDER, CACD_META, CACD_VS_FOLDER), "CACD", build)


# --- FG-NET --------------------------------------------------------------------------------------------------

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

    return _write_atomically(out_dir, (FGNET_FOLDER,), "FG-NET", build)


# --- AgeDB ---------------------------------------------------------------------------------------------------

def agedb_records(settings: AgedbSettings) -> pd.DataFrame:
    """Photos of a synthetic AgeDB: render columns plus ``imgnum`` (0..N-1, person by person), ``name``
    (CamelCase), ``gender_code`` (``m``/``f``) and ``file`` (``{imgnum}_{Name}_{age}_{m|f}.jpg``)."""
    config = settings.config()
    photos = expand_photos(sample_people(config), sample_photo_ages(config), config)
    names = synthetic_names(settings.n_people, settings.seed)
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

    return _write_atomically(out_dir, (AGEDB_FOLDER, AGEDB_BIN), "AgeDB", build)


# --- cached variants -----------------------------------------------------------------------------------------

def synth_morph_cached(settings: MorphSettings | Mapping[str, Any], cache_dir: str | os.PathLike, *,
                       progress: bool = False) -> Path:
    """``cache_dir / f"morph-{fingerprint[:16]}"``, written first unless a complete copy is there."""
    return _cached(_settings(MorphSettings, settings), cache_dir, write_morph, MORPH_FOLDER, progress)


def synth_cacd_cached(settings: CacdSettings | Mapping[str, Any], cache_dir: str | os.PathLike, *,
                      progress: bool = False) -> Path:
    """``cache_dir / f"cacd-{fingerprint[:16]}"``, written first unless a complete copy is there."""
    return _cached(_settings(CacdSettings, settings), cache_dir, write_cacd, CACD_FOLDER, progress)


def synth_fgnet_cached(settings: FgnetSettings | Mapping[str, Any], cache_dir: str | os.PathLike, *,
                       progress: bool = False) -> Path:
    """``cache_dir / f"fgnet-{fingerprint[:16]}"``, written first unless a complete copy is there."""
    return _cached(_settings(FgnetSettings, settings), cache_dir, write_fgnet, FGNET_FOLDER, progress)


def synth_agedb_cached(settings: AgedbSettings | Mapping[str, Any], cache_dir: str | os.PathLike, *,
                       progress: bool = False) -> Path:
    """``cache_dir / f"agedb-{fingerprint[:16]}"``, written first unless a complete copy is there."""
    return _cached(_settings(AgedbSettings, settings), cache_dir, write_agedb, AGEDB_FOLDER, progress)
