"""Strict reader for MORPH Album 2, the non-commercial release (research notes A3).

Layout of the dataset root (the folder that *contains* ``MORPH_nonCommercial/``)::

    MORPH_nonCommercial/morph_2008_nonCommercial.csv
    MORPH_nonCommercial/Album2/320711_00M34.JPG
    ...

The CSV has a header and eleven columns::

    id_num,picture_num,dob,doa,race,gender,facial_hair,age,age_diff,glasses,photo
    320711,0,03/13/1971,10/12/2005,B,M,,34,,,Album2/320711_00M34.JPG

* ``dob``, ``doa``: date of birth and date of acquisition, ``MM/DD/YYYY`` (a one-digit month or day is
  accepted too: it is unambiguous); kept as ISO ``YYYY-MM-DD`` strings in the ``dob`` and ``doa`` columns.
* ``age``: whole years. It must equal the floor of the years between ``dob`` and ``doa`` (true for every
  row of the release); a row where it does not is rejected, never corrected.
* ``race``: ``B`` black, ``W`` white, ``A`` asian, ``H`` Hispanic, ``O`` other. MORPH's categories do not
  all exist in the FaceTable vocabulary (:data:`~facebench.data.table.RACES`): **Hispanic (``H``) is mapped
  to ``"others"``**, as is ``O``. The code is kept in ``race_code`` and the finer label in ``race_detail``
  (``black``, ``white``, ``asian``, ``hispanic``, ``other``), so an analysis can still separate them.
* ``gender``: ``M`` / ``F``.
* ``age_diff``: days since the subject's previous capture, empty for the first one; printed ``2.0`` in
  some copies. Kept as a nullable whole number (``<NA>`` when empty), not cross-checked.
* ``photo``: ``Album2/{id_num:06d}_{picture_num}{gender}{age}.JPG`` with ``picture_num`` printed with one or
  two digits (``009055_0M54.JPG``, ``320711_00M34.JPG``).

The CSV is the ground truth. Where a file *name* contradicts its row (three names in the release carry the
wrong gender letter), the row is kept with the CSV's labels and the contradiction is reported in
:attr:`MorphReadResult.conflicts`. A row that cannot be trusted (a field count other than eleven, a bad
date, an unknown code, an age inconsistent with the dates, a duplicated photo) is rejected with a reason.

``sample_id`` is ``MORPH_nonCommercial/`` + ``photo``; ``subject_id`` is ``id_num`` without leading zeros.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facebench.data.table import (
    GENDERS,
    RACES,
    Parsed,
    ReadResult,
    Reject,
    age_band,
    age_band_names,
    check_face_table,
    check_variant,
    list_folder,
    read_summary,
    resolve_dataset_root,
    vocabulary_counts,
)
from facebench.data.utkface import AGE_BAND_EDGES
from facebench.errors import UserInputError

#: The release folder, the CSV inside it and the image folder inside it.
FOLDER = "MORPH_nonCommercial"
CSV_NAME = "morph_2008_nonCommercial.csv"
IMAGE_FOLDER = "Album2"

#: Where the CSV lives relative to the dataset root (also the locator of rejected rows without a photo).
CSV_PATH = f"{FOLDER}/{CSV_NAME}"

#: The CSV header, exactly.
HEADER: tuple[str, ...] = (
    "id_num", "picture_num", "dob", "doa", "race", "gender", "facial_hair", "age", "age_diff", "glasses", "photo",
)

#: MORPH race codes onto the FaceTable vocabulary. Hispanic has no entry there: it is mapped to "others".
RACE_CODES: dict[str, str] = {"B": "black", "W": "white", "A": "asian", "H": "others", "O": "others"}

#: MORPH race codes onto the finer ``race_detail`` labels (the only place Hispanic stays separate).
RACE_DETAIL: dict[str, str] = {"B": "black", "W": "white", "A": "asian", "H": "hispanic", "O": "other"}

#: MORPH gender codes onto the FaceTable vocabulary.
GENDER_CODES: dict[str, str] = {"M": "male", "F": "female"}

#: The only variant: Album 2 of the non-commercial release.
VARIANTS: tuple[str, ...] = ("album2",)

#: Oldest age accepted (the FaceTable bound).
MAX_AGE = 130

#: FaceTable columns of a MORPH read, in order.
COLUMNS: tuple[str, ...] = (
    "sample_id", "subject_id", "age", "gender", "race", "race_code", "gender_code", "race_detail",
    "dob", "doa", "picture_num", "age_diff", "facial_hair", "glasses",
)

_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_DATE = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})", re.ASCII)
_AGE_DIFF = re.compile(r"([0-9]+)(?:\.0*)?", re.ASCII)
#: ``Album2/{id_num:06d}_{picture_num}{gender}{age}.JPG``; the letter is compared with the CSV, not trusted.
PHOTO = re.compile(r"Album2/([0-9]+)_([0-9]+)([A-Za-z])([0-9]+)\.(?:JPG|jpg)", re.ASCII)


@dataclass(frozen=True)
class Conflict:
    """A file name that contradicts its CSV row; the row is kept with the CSV's labels."""

    sample_id: str
    reason: str


@dataclass(frozen=True)
class MorphReadResult(ReadResult):
    """A :class:`ReadResult` plus where it was read and the name-vs-CSV contradictions."""

    root: str
    variant: str
    conflicts: tuple[Conflict, ...]


def _check_variant(variant: str) -> None:
    check_variant(variant, VARIANTS, title="MORPH")


def floor_years(dob: dt.date, doa: dt.date) -> int:
    """Whole years between ``dob`` and ``doa`` (a birthday counts on its day; 29 February on 1 March).

    >>> floor_years(dt.date(1971, 3, 13), dt.date(2005, 10, 12))
    34
    >>> floor_years(dt.date(1984, 2, 29), dt.date(2001, 2, 28)), floor_years(dt.date(1984, 2, 29), dt.date(2001, 3, 1))
    (16, 17)
    """
    return doa.year - dob.year - ((doa.month, doa.day) < (dob.month, dob.day))


def parse_date(text: str) -> dt.date | None:
    """``MM/DD/YYYY`` (one-digit month or day accepted) as a date, or ``None`` when it is not one.

    >>> parse_date("03/13/1971"), parse_date("13/03/1971")
    (datetime.date(1971, 3, 13), None)
    """
    match = _DATE.fullmatch(text)
    if match is None:
        return None
    month, day, year = (int(g) for g in match.groups())
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


@dataclass(frozen=True)
class MorphRow:
    """One valid CSV row, labels as the CSV states them."""

    sample_id: str
    subject_id: str
    age: int
    race_code: str
    gender_code: str
    dob: dt.date
    doa: dt.date
    picture_num: int
    age_diff: int | None
    facial_hair: str
    glasses: str
    conflict: str | None  # what the file name contradicts, if anything


def parse_morph_row(fields: list[str]) -> Parsed[MorphRow]:
    """Parse the eleven fields of one CSV row: its :class:`MorphRow`, or the reason it is rejected.

    >>> row = parse_morph_row("320711,0,03/13/1971,10/12/2005,B,M,,34,,,Album2/320711_00M34.JPG".split(","))
    >>> row.ok, row.value.age
    (True, 34)
    >>> parse_morph_row("320711,0,03/13/1971,10/12/2005,B,M,,35,,,Album2/320711_00M35.JPG".split(",")).reason
    'age 35 but dob 03/13/1971 and doa 10/12/2005 give 34'
    """
    if len(fields) != len(HEADER):
        return Parsed.reject(f"{len(fields)} field{'s' if len(fields) != 1 else ''} instead of {len(HEADER)}")
    id_num, picture_num, dob_text, doa_text, race_code, gender_code, facial_hair, age_text, age_diff_text, \
        glasses, photo = fields
    problems: list[str] = []
    if _DIGITS.fullmatch(id_num) is None:
        problems.append(f"id_num '{id_num}' not a whole number")
    if _DIGITS.fullmatch(picture_num) is None:
        problems.append(f"picture_num '{picture_num}' not a whole number")
    dob, doa = parse_date(dob_text), parse_date(doa_text)
    if dob is None:
        problems.append(f"dob '{dob_text}' not a valid MM/DD/YYYY date")
    if doa is None:
        problems.append(f"doa '{doa_text}' not a valid MM/DD/YYYY date")
    if race_code not in RACE_CODES:
        problems.append("race field empty" if race_code == "" else f"race code '{race_code}' not one of B, W, A, H, O")
    if gender_code not in GENDER_CODES:
        problems.append("gender field empty" if gender_code == "" else f"gender code '{gender_code}' not M/F")
    age: int | None = None
    if _DIGITS.fullmatch(age_text) is None:
        problems.append("age field empty" if age_text == "" else f"age '{age_text}' not a whole number")
    elif int(age_text) > MAX_AGE:
        problems.append(f"age {int(age_text)} above {MAX_AGE}")
    else:
        age = int(age_text)
    age_diff: int | None = None
    if age_diff_text != "":
        match = _AGE_DIFF.fullmatch(age_diff_text)
        if match is None:
            problems.append(f"age_diff '{age_diff_text}' not a whole number of days")
        else:
            age_diff = int(match.group(1))
    name = PHOTO.fullmatch(photo)
    if name is None:
        problems.append(f"photo '{photo}' not like Album2/{{id_num:06d}}_{{picture_num}}{{gender}}{{age}}.JPG")
    if dob is not None and doa is not None and age is not None:
        if doa < dob:
            problems.append(f"doa {doa_text} before dob {dob_text}")
        elif floor_years(dob, doa) != age:
            problems.append(f"age {age} but dob {dob_text} and doa {doa_text} give {floor_years(dob, doa)}")
    if problems:
        return Parsed.reject("; ".join(problems))
    assert name is not None and dob is not None and doa is not None and age is not None
    name_id, name_picture, name_gender, name_age = name.groups()
    conflicts = []
    if int(name_id) != int(id_num):
        conflicts.append(f"file name id {name_id} but CSV id_num {id_num}")
    if int(name_picture) != int(picture_num):
        conflicts.append(f"file name picture number {name_picture} but CSV picture_num {picture_num}")
    if name_gender != gender_code:
        conflicts.append(f"file name gender '{name_gender}' but CSV gender '{gender_code}'")
    if int(name_age) != age:
        conflicts.append(f"file name age {name_age} but CSV age {age}")
    row = MorphRow(
        sample_id=f"{FOLDER}/{photo}",
        subject_id=str(int(id_num)),
        age=age,
        race_code=race_code,
        gender_code=gender_code,
        dob=dob,
        doa=doa,
        picture_num=int(picture_num),
        age_diff=age_diff,
        facial_hair=facial_hair,
        glasses=glasses,
        conflict="; ".join(conflicts) + " (CSV kept)" if conflicts else None,
    )
    return Parsed.accept(row)


# ---------------------------------------------------------------------------------------------------------
# Reading


def _resolve_base(root: Path) -> Path:
    """The dataset root: ``root`` itself, or its parent when ``root`` is ``MORPH_nonCommercial/``."""
    if (root.is_dir() and not (root / FOLDER).is_dir() and Path(os.path.abspath(root)).name != FOLDER
            and (root / CSV_NAME).is_file()):
        raise UserInputError(
            f"MORPH root {root} holds {CSV_NAME} but is not named {FOLDER}/; rename it so that image paths "
            f"({FOLDER}/Album2/...) match the release."
        )
    return resolve_dataset_root(root, FOLDER, title="MORPH")


def _read_csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """``(line number, fields)`` of every non-blank data row; the header is checked here."""
    if not path.is_file():
        raise UserInputError(f"MORPH CSV {path} does not exist.")
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise UserInputError(f"MORPH CSV {path} is empty.")
            if tuple(header) != HEADER:
                raise UserInputError(
                    f"MORPH CSV {path} has header '{','.join(header)}'; expected '{','.join(HEADER)}'."
                )
            rows = [(reader.line_num, fields) for fields in reader if fields]
    except UnicodeDecodeError:
        raise UserInputError(f"MORPH CSV {path} is not UTF-8 text.") from None
    except csv.Error as error:
        raise UserInputError(f"MORPH CSV {path} is not valid CSV: {error}.") from None
    return rows


def _album_files(base: Path) -> dict[str, str | None]:
    """``{sample_id: None}`` for every file in ``Album2/``, ``{sample_id: reason}`` for each entry there that is not
    a readable file (a dangling or looping link, a folder named like an image)."""
    directory = base / FOLDER / IMAGE_FOLDER
    if not directory.is_dir():
        raise UserInputError(
            f"MORPH folder {base / FOLDER} has no {IMAGE_FOLDER}/ folder; extract the images there or pass "
            "check_files=False to read the labels alone."
        )
    names, problems = list_folder(directory, title="MORPH")
    return {f"{FOLDER}/{IMAGE_FOLDER}/{name}": None for name in names} | {
        f"{FOLDER}/{IMAGE_FOLDER}/{name}": reason for name, reason in problems.items()}


def read_morph(root: str | os.PathLike, *, variant: str = "album2", check_files: bool = True) -> MorphReadResult:
    """Read MORPH Album 2 labels from the CSV into a FaceTable; reject untrustworthy rows with a reason.

    ``root`` is the folder that contains ``MORPH_nonCommercial/``, or that folder itself. With
    ``check_files`` (default) a row whose image is not in ``Album2/`` is rejected (the folder is listed
    once; images are never opened). Rows are sorted by ``sample_id``; rejects by ``sample_id``, where a
    row with the wrong number of fields is located as ``MORPH_nonCommercial/morph_2008_nonCommercial.csv:<line>``.
    """
    _check_variant(variant)
    base = _resolve_base(Path(root))
    rows = _read_csv_rows(base / CSV_PATH)
    if not rows:
        raise UserInputError(f"MORPH CSV {base / CSV_PATH} has a header but no rows.")
    files = _album_files(base) if check_files else None

    parsed: list[tuple[int, Parsed[MorphRow], str]] = []  # (line, row or reason, locator)
    for line, fields in rows:
        outcome = parse_morph_row(fields)
        if outcome.value is not None:
            parsed.append((line, outcome, outcome.value.sample_id))
        else:
            photo = fields[-1] if len(fields) == len(HEADER) else ""
            locator = f"{FOLDER}/{photo}" if PHOTO.fullmatch(photo) else f"{CSV_PATH}:{line}"
            parsed.append((line, outcome, locator))
    lines_of: dict[str, list[int]] = {}
    for line, _, locator in parsed:
        lines_of.setdefault(locator, []).append(line)

    accepted: list[MorphRow] = []
    rejected: list[Reject] = []
    conflicts: list[Conflict] = []
    for _, outcome, locator in parsed:
        row = outcome.value
        if row is None:
            rejected.append(Reject(locator, str(outcome.reason)))
            continue
        lines = lines_of[locator]
        if len(lines) > 1:
            rejected.append(Reject(locator, f"photo listed on {len(lines)} rows (lines {', '.join(map(str, lines))})"))
            continue
        if files is not None and (locator not in files or files[locator] is not None):
            rejected.append(Reject(locator, files.get(locator) or "image file missing"))
            continue
        accepted.append(row)
        if row.conflict:
            conflicts.append(Conflict(locator, row.conflict))
    rejected.sort(key=lambda r: (r.sample_id, r.reason))
    conflicts.sort(key=lambda c: c.sample_id)
    if not accepted:
        first = rejected[0]
        raise UserInputError(
            f"No valid MORPH rows in {base / CSV_PATH}: all {len(rows)} rows were rejected, "
            f"e.g. {first.sample_id} ({first.reason})."
        )
    accepted.sort(key=lambda r: r.sample_id)
    table = _table(accepted)
    check_face_table(table)
    return MorphReadResult(
        table=table, rejected=tuple(rejected), root=str(base), variant=variant, conflicts=tuple(conflicts)
    )


def _table(rows: list[MorphRow]) -> pd.DataFrame:
    text = pd.StringDtype()

    def strings(values: Iterable[str | None]) -> Any:
        return pd.array([v if v else pd.NA for v in values], dtype=text)

    return pd.DataFrame(
        {
            "sample_id": strings(r.sample_id for r in rows),
            "subject_id": strings(r.subject_id for r in rows),
            "age": np.asarray([r.age for r in rows], dtype=np.int64),
            "gender": strings(GENDER_CODES[r.gender_code] for r in rows),
            "race": strings(RACE_CODES[r.race_code] for r in rows),
            "race_code": strings(r.race_code for r in rows),
            "gender_code": strings(r.gender_code for r in rows),
            "race_detail": strings(RACE_DETAIL[r.race_code] for r in rows),
            "dob": strings(r.dob.isoformat() for r in rows),
            "doa": strings(r.doa.isoformat() for r in rows),
            "picture_num": np.asarray([r.picture_num for r in rows], dtype=np.int64),
            "age_diff": pd.array([pd.NA if r.age_diff is None else r.age_diff for r in rows], dtype="Int64"),
            "facial_hair": strings(r.facial_hair for r in rows),
            "glasses": strings(r.glasses for r in rows),
        },
        columns=list(COLUMNS),
    )


# ---------------------------------------------------------------------------------------------------------
# Summary


def verify_summary(result: MorphReadResult) -> dict[str, Any]:
    """JSON-ready summary of a read: sizes, every rejected row and name conflict, and group counts."""
    table = result.table
    return read_summary("morph", result, root=result.root, variant=result.variant, groups={
        "race": vocabulary_counts(table["race"], RACES),
        "race_detail": vocabulary_counts(table["race_detail"], RACE_DETAIL.values()),
        "gender": vocabulary_counts(table["gender"], GENDERS),
        "age_band": vocabulary_counts(age_band(table["age"], AGE_BAND_EDGES), age_band_names(AGE_BAND_EDGES)),
    }, n_conflicts=len(result.conflicts),
        conflicts=[{"sample_id": c.sample_id, "reason": c.reason} for c in result.conflicts])
