"""Strict reader for FairFace (research notes A7; Kärkkäinen & Joo, WACV 2021; CC BY 4.0).

Layout of the dataset root (the images zip, padding 0.25 or 1.25, extracted beside the two label files)::

    train/1.jpg ...                 86,744 images
    val/1.jpg ...                   10,954 images
    fairface_label_train.csv        file,age,gender,race,service_test
    fairface_label_val.csv          val/1.jpg,3-9,Male,East Asian,False

Columns: ``file`` the image path (``train/N.jpg`` in the train file, ``val/N.jpg`` in the val file), ``age`` one
of nine bins (:data:`AGE_BINS`, ``more than 70`` as written in the CSV), ``gender`` ``Male``/``Female``, ``race``
one of seven categories (:data:`RACES`, with their spaces and underscore), ``service_test`` ``True``/``False``
(the images the authors used to test commercial services).

FairFace's race, gender and age were labelled by crowd workers from the photo (the paper's annotation
procedure), so they are perceived labels, like every race label facebench reads. The seven categories map onto
the FaceTable vocabulary (:data:`facebench.data.table.RACES`) as the authors' own four-class model groups them:
East and Southeast Asian → ``asian``; Latino_Hispanic and Middle Eastern → ``others``. The seven are kept in
``race_detail`` (``east_asian``, ``southeast_asian``, ``latino_hispanic``, ``middle_eastern``, ...) and the CSV
value in ``race_code``. Ages are bins only: ``age`` is missing and ``age_bin`` holds the bin (an ordered
category); ``gender_code`` the CSV value; ``partition`` ``train``/``val``; ``service_test`` a boolean. FairFace
has no identities (``subject_id`` missing).

Anything wrong in a label file (another header, a row with another number of fields, an unknown age bin, gender
or race, a ``file`` outside its split's folder, the same file twice) is refused with one sentence naming the file
and line. A listed image missing from its folder is *rejected* with its reason; unlisted images are ignored.

Variants: ``trainval`` (both label files), ``train`` or ``val`` (one of them).

>>> RACE_TO_TABLE["Southeast Asian"], RACE_DETAIL["Latino_Hispanic"], RACE_DETAIL["Middle Eastern"]
('asian', 'latino_hispanic', 'middle_eastern')
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facebench.data.table import (
    GENDERS,
    ReadResult,
    Reject,
    check_face_table,
    check_variant,
    list_folder,
    read_summary,
    vocabulary_counts,
)
from facebench.data.table import RACES as TABLE_RACES
from facebench.errors import UserInputError, did_you_mean, shorten
from facebench.limits import csv_rows

HEADER: tuple[str, ...] = ("file", "age", "gender", "race", "service_test")
#: Age bins as written in the CSV, in order.
AGE_BINS: tuple[str, ...] = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70")
#: The seven race categories as written, in the official model's index order (predict.py).
RACES: tuple[str, ...] = ("White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian",
                          "Middle Eastern")
#: Each category onto the FaceTable vocabulary (the authors' four-class grouping; the rest "others").
RACE_TO_TABLE: dict[str, str] = {"White": "white", "Black": "black", "Latino_Hispanic": "others",
                                 "East Asian": "asian", "Southeast Asian": "asian", "Indian": "indian",
                                 "Middle Eastern": "others"}
#: Each category as a ``race_detail`` label.
RACE_DETAIL: dict[str, str] = {race: race.lower().replace(" ", "_") for race in RACES}
GENDER_CODES: dict[str, str] = {"Male": "male", "Female": "female"}
SERVICE_TEST: dict[str, bool] = {"True": True, "False": False}
PARTS: tuple[str, ...] = ("train", "val")
VARIANTS: dict[str, tuple[str, ...]] = {"trainval": PARTS, "train": ("train",), "val": ("val",)}
LABEL_FILE = "fairface_label_{}.csv"
#: ``train/123.jpg``: the split's folder and a positive whole number.
FILE_NAME = re.compile(r"(train|val)/[1-9][0-9]*\.jpg", re.ASCII)
#: Largest label file read (the real train file is about 3 MB).
MAX_BYTES = 256 * 1024 * 1024

COLUMNS: tuple[str, ...] = ("sample_id", "subject_id", "age", "gender", "race", "race_code", "gender_code",
                            "race_detail", "age_bin", "partition", "service_test")


@dataclass(frozen=True)
class FairFaceReadResult(ReadResult):
    """A :class:`ReadResult` plus where and what was read."""

    root: str
    variant: str
    files: tuple[str, ...]


def _rows(path: Path, part: str) -> list[tuple[int, list[str]]]:
    """``(line, fields)`` of every data row of one label file, each checked (module docstring)."""
    if not path.is_file():
        raise UserInputError(f"FairFace root {path.parent} has no {path.name}; download the {part} labels "
                             "(github.com/joojs/fairface) and put them beside train/ and val/.")
    rows: list[tuple[int, list[str]]] = []
    seen: dict[str, int] = {}
    for line, fields in csv_rows(path, what="FairFace label file", header=HEADER, max_bytes=MAX_BYTES):
        where = f"FairFace label file {path}: line {line}"
        file, age, gender, race, service = fields
        checks = (("age bin", age, AGE_BINS), ("gender", gender, tuple(GENDER_CODES)), ("race", race, RACES),
                  ("service_test", service, tuple(SERVICE_TEST)))
        for what, value, allowed in checks:
            if value not in allowed:
                raise UserInputError(f"{where} has {what} {shorten(value)}{did_you_mean(value, allowed)}; "
                                     f"FairFace's are {', '.join(allowed)}.")
        match = FILE_NAME.fullmatch(file)
        if match is None or match.group(1) != part:
            raise UserInputError(f"{where} has file {shorten(file)}; expected a {part} image like {part}/1.jpg.")
        if file in seen:
            raise UserInputError(f"{where} lists {file} again (first on line {seen[file]}).")
        seen[file] = line
        rows.append((line, fields))
    return rows


def _resolve(root: Path, parts: tuple[str, ...]) -> Path:
    if not root.exists():
        raise UserInputError(f"FairFace root {root} does not exist.")
    if not root.is_dir():
        raise UserInputError(f"FairFace root {root} is not a folder.")
    if any((root / LABEL_FILE.format(p)).is_file() for p in parts):
        return root
    try:
        entries = sorted(entry.name for entry in os.scandir(root))
    except OSError as error:
        raise UserInputError(f"Cannot list FairFace root {root}: {error.strerror or error}.") from None
    wanted = [LABEL_FILE.format(p) for p in parts]
    hint = did_you_mean(wanted[0], entries)
    raise UserInputError(f"FairFace root {root} has no {' or '.join(wanted)}{hint}; point it at the folder that "
                         "holds the label files beside train/ and val/.")


def read_fairface(root: str | os.PathLike, *, variant: str = "trainval") -> FairFaceReadResult:
    """Read FairFace's label files into a FaceTable (module docstring); reject listed images that are missing."""
    check_variant(variant, VARIANTS, title="FairFace")
    parts = VARIANTS[variant]
    base = _resolve(Path(root), parts)
    records: list[list[str]] = []
    rejected: list[Reject] = []
    for part in parts:
        rows = _rows(base / LABEL_FILE.format(part), part)
        folder = base / part
        present, problems = list_folder(folder, title="FairFace") if folder.is_dir() else ([], {})
        present_set = set(present)
        for _, fields in rows:
            name = fields[0].split("/", 1)[1]
            if name in present_set:
                records.append([*fields, part])
            else:
                rejected.append(Reject(fields[0], problems.get(name, "image file missing")))
    if not records:
        first = rejected[0]
        raise UserInputError(f"No FairFace images under {base}: all {len(rejected)} listed images are missing, e.g. "
                             f"{first.sample_id} ({first.reason}).")
    frame = pd.DataFrame(records, columns=[*HEADER, "partition"])
    frame["number"] = frame["file"].str.extract(r"/(\d+)\.jpg$", expand=False).astype(np.int64)
    frame["order"] = frame["partition"].map({part: i for i, part in enumerate(PARTS)})
    frame = frame.sort_values(["order", "number"], kind="stable").reset_index(drop=True)
    text = pd.StringDtype()
    n = len(frame)
    table = pd.DataFrame({
        "sample_id": pd.array(frame["file"].tolist(), dtype=text),
        "subject_id": pd.array([pd.NA] * n, dtype=text),
        "age": pd.array([pd.NA] * n, dtype="Int64"),
        "gender": pd.array(frame["gender"].map(GENDER_CODES).tolist(), dtype=text),
        "race": pd.array(frame["race"].map(RACE_TO_TABLE).tolist(), dtype=text),
        "race_code": pd.array(frame["race"].tolist(), dtype=text),
        "gender_code": pd.array(frame["gender"].tolist(), dtype=text),
        "race_detail": pd.array(frame["race"].map(RACE_DETAIL).tolist(), dtype=text),
        "age_bin": pd.Categorical(frame["age"], categories=list(AGE_BINS), ordered=True),
        "partition": pd.array(frame["partition"].tolist(), dtype=text),
        "service_test": frame["service_test"].map(SERVICE_TEST).to_numpy(bool),
    }, columns=list(COLUMNS))
    check_face_table(table)
    return FairFaceReadResult(table=table, rejected=tuple(sorted(rejected, key=lambda r: r.sample_id)),
                              root=str(base), variant=variant, files=tuple(LABEL_FILE.format(p) for p in parts))


def verify_summary(result: FairFaceReadResult) -> dict[str, Any]:
    """JSON-ready summary: sizes, rejects, and counts per race (seven and mapped), gender, age bin and split."""
    table = result.table
    return read_summary("fairface", result, root=result.root, variant=result.variant, files=list(result.files), groups={
        "race_detail": vocabulary_counts(table["race_detail"], RACE_DETAIL.values()),
        "race": vocabulary_counts(table["race"], TABLE_RACES),
        "gender": vocabulary_counts(table["gender"], GENDERS),
        "age_bin": vocabulary_counts(table["age_bin"].astype("string"), AGE_BINS),
        "partition": vocabulary_counts(table["partition"], PARTS),
    })
