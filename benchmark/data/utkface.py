"""Strict reader for the real UTKFace on-disk format.

UTKFace encodes its labels in the file name, ``[age]_[gender]_[race]_[date&time].jpg``:

* ``age``: whole years, 0-116;
* ``gender``: ``0`` male, ``1`` female;
* ``race``: ``0`` white, ``1`` black, ``2`` asian, ``3`` indian, ``4`` others;
* ``date&time``: ``yyyymmddHHMMSSFFF`` (17 digits), when the image was added to UTKFace.

Layout of the dataset root (the folder that *contains* these folders):

=============  ===================  ======================================================
variant        folders              file names end in
=============  ===================  ======================================================
aligned        ``UTKFace/``         ``.jpg.chip.jpg`` (aligned & cropped faces, 23,708 files)
in_the_wild    ``part1..3/``        ``.jpg``
crop_part1     ``crop_part1/``      ``.jpg.chip.jpg`` (aligned crops of ``part1`` only)
=============  ===================  ======================================================

A handful of shipped names are malformed (race field missing, a space before ``.jpg``, a missing ``.``,
a double underscore, gender code ``3``). Third-party loaders "repair" them with guesses that disagree with
each other; this reader never repairs or imputes: every such file is rejected with a specific reason
(:class:`~facebench.data.table.Reject`) and counted by :func:`verify_summary`.

The reader only lists folders and parses names; it never opens an image, so reading all 23,708 files is
fast. An entry that stands where an image should but is not a readable file (a dangling or looping symbolic link,
a folder named like an image) is rejected with its reason too. Whether each image decodes is checked once per
file version after every reader, by :func:`facebench.data.files.check_images` (``facebench data verify`` and
every ``run``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facebench.data.table import (
    GENDERS,
    RACES,
    Parsed,
    ReadResult,
    Reject,
    age_band,
    age_band_names,
    check_variant,
    face_table,
    list_folder,
    nothing_read_error,
    vocabulary_counts,
)
from facebench.errors import UserInputError, did_you_mean

#: The strict name pattern: age, gender 0/1, race 0-4, 17-digit datetime, ``.jpg`` or ``.jpg.chip.jpg``.
#: ASCII digits only; match it with ``fullmatch`` (``$`` alone would accept a trailing newline).
UTKFACE_NAME = re.compile(r"^(\d+)_([01])_([0-4])_(\d{17})\.jpg(\.chip\.jpg)?$", re.ASCII)

#: UTKFace race codes onto the FaceTable vocabulary (:data:`facebench.data.table.RACES`).
RACE_CODES: dict[str, str] = {"0": "white", "1": "black", "2": "asian", "3": "indian", "4": "others"}

#: UTKFace gender codes onto the FaceTable vocabulary (:data:`facebench.data.table.GENDERS`).
GENDER_CODES: dict[str, str] = {"0": "male", "1": "female"}

#: The oldest age UTKFace documents (0-116); an older age in a name is rejected.
MAX_AGE = 116

#: Folder names of each variant, relative to the dataset root.
VARIANT_FOLDERS: dict[str, tuple[str, ...]] = {
    "aligned": ("UTKFace",),
    "in_the_wild": ("part1", "part2", "part3"),
    "crop_part1": ("crop_part1",),
}

CHIP_SUFFIX = ".jpg.chip.jpg"
PLAIN_SUFFIX = ".jpg"

#: The suffix every file of a variant must have.
VARIANT_SUFFIX: dict[str, str] = {"aligned": CHIP_SUFFIX, "in_the_wild": PLAIN_SUFFIX, "crop_part1": CHIP_SUFFIX}

#: An example valid name per variant, for error messages.
_EXAMPLE_NAME: dict[str, str] = {
    "aligned": "25_0_3_20170116174525125.jpg.chip.jpg",
    "in_the_wild": "25_0_3_20170116174525125.jpg",
    "crop_part1": "25_0_3_20170116174525125.jpg.chip.jpg",
}

#: Lower edges of the age bands used in summaries: 0-2, 3-9, 10-19, ..., 60-69, 70+ (whole years).
AGE_BAND_EDGES: tuple[int, ...] = (0, 3, 10, 20, 30, 40, 50, 60, 70)

#: FaceTable columns of a UTKFace read, in order.
COLUMNS: tuple[str, ...] = (
    "sample_id", "subject_id", "age", "gender", "race", "race_code", "gender_code", "captured_at",
)

_ASCII_DIGITS = re.compile(r"[0-9]+", re.ASCII)


# ---------------------------------------------------------------------------------------------------------
# Name parsing


@dataclass(frozen=True)
class UTKFaceLabels:
    """The labels encoded in one valid UTKFace file name (codes kept exactly as written)."""

    age: int
    gender_code: str
    race_code: str
    captured_at: str
    suffix: str  # ".jpg.chip.jpg" or ".jpg"

    @property
    def gender(self) -> str:
        return GENDER_CODES[self.gender_code]

    @property
    def race(self) -> str:
        return RACE_CODES[self.race_code]


def _check_variant(variant: str) -> None:
    check_variant(variant, VARIANT_FOLDERS, title="UTKFace")


def parse_utkface_name(name: str, *, variant: str | None = None) -> Parsed[UTKFaceLabels]:
    """Parse one UTKFace file name strictly, never repairing it: its labels, or the reason it is rejected.

    With ``variant`` given, a name with the other variant's suffix is rejected too.

    >>> parse_utkface_name("25_0_3_20170116174525125.jpg.chip.jpg").value.race
    'indian'
    >>> parse_utkface_name("39_1_20170116174525125.jpg.chip.jpg").reason
    'race field missing: 3 fields instead of 4'
    """
    if variant is not None:
        _check_variant(variant)
    match = UTKFACE_NAME.fullmatch(name)
    if match is None:
        return Parsed.reject(_diagnose(name))
    age_text, gender_code, race_code, captured_at, chip = match.groups()
    age = int(age_text)
    if age > MAX_AGE:
        return Parsed.reject(f"age {age} above {MAX_AGE}")
    suffix = CHIP_SUFFIX if chip else PLAIN_SUFFIX
    if variant is not None and suffix != VARIANT_SUFFIX[variant]:
        return Parsed.reject(
            f"wrong suffix for variant '{variant}': expected '{VARIANT_SUFFIX[variant]}', got '{suffix}'"
        )
    return Parsed.accept(UTKFaceLabels(age, gender_code, race_code, captured_at, suffix))


def _is_digits(text: str) -> bool:
    return _ASCII_DIGITS.fullmatch(text) is not None


def _diagnose(name: str) -> str:
    """Say why ``name`` does not match :data:`UTKFACE_NAME` (one short phrase)."""
    if not name.endswith(".jpg"):
        if name.lower().endswith(".jpg"):
            return "not a UTKFace image name: extension is not lower-case '.jpg'"
        return "not a UTKFace image name: does not end in '.jpg'"
    if any(ch.isspace() for ch in name):
        return "space in the name"
    if name.endswith(CHIP_SUFFIX):
        stem = name[: -len(CHIP_SUFFIX)]
    elif name.endswith("jpg.chip.jpg"):
        return "missing '.' before 'jpg' in '.jpg.chip.jpg'"
    elif name.endswith(".chip.jpg"):
        return "unexpected suffix: expected '.jpg.chip.jpg' or '.jpg'"
    else:
        stem = name[: -len(PLAIN_SUFFIX)]
    if "." in stem:
        return "unexpected '.' in the name"
    if "__" in stem:
        return "empty field: double underscore"
    fields = stem.split("_")
    if any(field == "" for field in fields):
        return "empty field: leading or trailing underscore"
    if len(fields) == 3 and len(fields[2]) == 17 and _is_digits(fields[2]):
        reason = "race field missing: 3 fields instead of 4"
        if fields[1] not in GENDER_CODES:
            reason += f", and gender code '{fields[1]}' not 0/1"
        return reason
    if len(fields) != 4:
        return f"{len(fields)} field{'s' if len(fields) != 1 else ''} instead of 4"
    age, gender_code, race_code, captured_at = fields
    problems = []
    if not _is_digits(age):
        problems.append(f"age '{age}' not a whole number")
    if gender_code not in GENDER_CODES:
        problems.append(f"gender code '{gender_code}' not 0/1")
    if race_code not in RACE_CODES:
        problems.append(f"race code '{race_code}' not 0-4")
    if not (len(captured_at) == 17 and _is_digits(captured_at)):
        problems.append(f"datetime '{captured_at}' not 17 digits")
    return "; ".join(problems) if problems else "does not match the UTKFace name pattern"


# ---------------------------------------------------------------------------------------------------------
# Finding and reading files


def _resolve_base(root: Path, variant: str) -> Path:
    """The dataset root: ``root`` itself, or its parent when ``root`` is one of the variant's folders."""
    if not root.exists():
        raise UserInputError(f"UTKFace root {root} does not exist.")
    if not root.is_dir():
        raise UserInputError(f"UTKFace root {root} is not a folder.")
    folders = VARIANT_FOLDERS[variant]
    if any((root / folder).is_dir() for folder in folders):
        return root
    absolute = Path(os.path.abspath(root))  # so that "." inside UTKFace/ works too; symlinks are kept
    if absolute.name in folders:
        return root.parent if root.name == absolute.name else absolute.parent
    expected = " or ".join(f"{folder}/" for folder in folders)
    try:
        subfolders = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    except OSError as error:
        raise UserInputError(f"Cannot list UTKFace root {root}: {error.strerror or error}.") from None
    hint = ""
    for folder in folders:  # case-insensitive first ("utkface/"), then difflib's closest name
        same = [name for name in subfolders if name.lower() == folder.lower()]
        hint = f" (did you mean '{same[0]}'?)" if same else did_you_mean(folder, subfolders)
        if hint:
            break
    itself = f" (or at {folders[0]}/ itself)" if len(folders) == 1 else ""
    raise UserInputError(
        f"UTKFace root {root} has no {expected} folder for variant '{variant}'{hint}; point it at the folder "
        f"that contains {expected}{itself}."
    )


def find_utkface_images(root: str | os.PathLike, *, variant: str = "aligned") -> tuple[Path, list[str]]:
    """List the candidate files of ``variant``: ``(dataset root, sorted relative paths with '/')``.

    Every non-hidden file directly inside the variant's folders is listed, valid name or not; hidden files
    (names starting with ``.``) and subfolders are skipped. Raises :class:`UserInputError` when the root or
    the variant's folders are missing.
    """
    base, paths, _ = _find(root, variant)
    return base, paths


def _find(root: str | os.PathLike, variant: str) -> tuple[Path, list[str], dict[str, str]]:
    """:func:`find_utkface_images` plus ``{relative path: reason}`` of the entries that are not readable files."""
    _check_variant(variant)
    base = _resolve_base(Path(root), variant)
    paths: list[str] = []
    problems: dict[str, str] = {}
    for folder in VARIANT_FOLDERS[variant]:
        directory = base / folder
        if not directory.is_dir():
            continue  # in_the_wild: a partial download with only some parts is read as is
        names, bad = list_folder(directory, title="UTKFace")
        paths.extend(f"{folder}/{name}" for name in names)
        problems.update({f"{folder}/{name}": reason for name, reason in bad.items()})
    paths.sort()
    return base, paths, problems


@dataclass(frozen=True)
class UTKFaceReadResult(ReadResult):
    """A :class:`ReadResult` that also records where and what was read (for :func:`verify_summary`)."""

    root: str
    variant: str
    folders: tuple[str, ...]


def _empty_error(base: Path, variant: str, paths: list[str], rejected: list[Reject]) -> UserInputError:
    folders = VARIANT_FOLDERS[variant]
    where = str(base / folders[0]) if len(folders) == 1 else f"{base} ({', '.join(f + '/' for f in folders)})"
    return nothing_read_error("UTKFace", where, n_seen=len(paths), rejected=rejected, example=_EXAMPLE_NAME[variant])


def read_utkface(root: str | os.PathLike, *, variant: str = "aligned") -> UTKFaceReadResult:
    """Read UTKFace labels from file names into a FaceTable; reject malformed names with a reason.

    ``root`` is the folder that contains ``UTKFace/`` (or ``part1..3/``, ``crop_part1/``), or that folder
    itself. ``sample_id`` is the path relative to the dataset root, e.g.
    ``UTKFace/25_0_3_20170116174525125.jpg.chip.jpg``. Rows are sorted by ``sample_id``. ``subject_id`` is
    all missing: UTKFace has no identities. Images are not opened; an entry that is not a readable file (a dangling
    or looping link, a folder with an image name) is rejected with its reason.
    """
    _check_variant(variant)
    base, paths, problems = _find(root, variant)
    rows: dict[str, list[Any]] = {column: [] for column in COLUMNS if column != "subject_id"}
    rejected: list[Reject] = []
    for sample_id in sorted([*paths, *problems]):
        if sample_id in problems:
            rejected.append(Reject(sample_id, problems[sample_id]))
            continue
        outcome = parse_utkface_name(sample_id.rsplit("/", 1)[1], variant=variant)
        labels = outcome.value
        if labels is None:
            rejected.append(Reject(sample_id, str(outcome.reason)))
            continue
        rows["sample_id"].append(sample_id)
        rows["age"].append(labels.age)
        rows["gender"].append(labels.gender)
        rows["race"].append(labels.race)
        rows["race_code"].append(labels.race_code)
        rows["gender_code"].append(labels.gender_code)
        rows["captured_at"].append(labels.captured_at)
    if not rows["sample_id"]:
        raise _empty_error(base, variant, [*paths, *problems], rejected)
    table = face_table(**{**rows, "age": np.asarray(rows["age"], dtype=np.int64)}, order=COLUMNS)  # no subject ids
    folders = tuple(f for f in VARIANT_FOLDERS[variant] if (base / f).is_dir())
    return UTKFaceReadResult(table=table, rejected=tuple(rejected), root=str(base), variant=variant, folders=folders)


# ---------------------------------------------------------------------------------------------------------
# Summaries


def verify_summary(result: ReadResult, *, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """JSON-ready summary of a read: sizes, every rejected file with its reason, and group counts.

    ``root`` defaults to the one recorded by :func:`read_utkface`. Group counts list every vocabulary entry
    (zeros included) in vocabulary order; age bands use :data:`AGE_BAND_EDGES`.
    """
    if root is None:
        if not isinstance(result, UTKFaceReadResult):
            raise ValueError("verify_summary needs root= for a ReadResult that does not record one")
        root = result.root
    table = result.table
    summary: dict[str, Any] = {"dataset": "utkface", "root": str(root)}
    if isinstance(result, UTKFaceReadResult):
        summary["variant"] = result.variant
        summary["folders"] = list(result.folders)
    summary.update(
        {
            "n_samples": int(len(table)),
            "n_rejected": len(result.rejected),
            "rejected": [{"sample_id": r.sample_id, "reason": r.reason} for r in result.rejected],
            "groups": {
                "race": vocabulary_counts(table["race"], RACES),
                "gender": vocabulary_counts(table["gender"], GENDERS),
                "age_band": vocabulary_counts(age_band(table["age"], AGE_BAND_EDGES), age_band_names(AGE_BAND_EDGES)),
            },
        }
    )
    return summary
