"""Strict reader for CelebA, aligned images (research notes A2), parsing the release's text files itself.

torchvision's ``CelebA`` md5-checks every label file, so it cannot read a partial copy, a re-saved copy or a test
fixture; this reader parses the same bytes itself and agrees with torchvision's parser wherever both can read
a file (``tests/test_celeba_fairface_readers.py`` runs ``torchvision.datasets.CelebA._load_csv`` on the fixture).

Layouts of the dataset root (either is found; ``root`` may also be the folder that holds torchvision's ``celeba/``)::

    release (Google Drive)                          flat (torchvision's ``celeba/`` folder)
    Img/img_align_celeba/000001.jpg ...             img_align_celeba/000001.jpg ...
    Anno/list_attr_celeba.txt                       list_attr_celeba.txt
    Anno/identity_CelebA.txt                        identity_CelebA.txt
    Eval/list_eval_partition.txt                    list_eval_partition.txt
    Anno/list_bbox_celeba.txt              (optional)  list_bbox_celeba.txt
    Anno/list_landmarks_align_celeba.txt   (optional)  list_landmarks_align_celeba.txt
    Anno/list_landmarks_celeba.txt         (optional)  list_landmarks_celeba.txt

Byte formats (every file: CRLF line endings in the release, LF accepted too; a final line ending optional):

* ``list_attr_celeba.txt``: line 1 the number of images; line 2 the 40 attribute names (:data:`ATTRIBUTES`, in
  that order, followed by a space in the release); then ``000001.jpg -1  1  1 -1 ...``: the name and 40 values
  printed ``%2d`` (the first unpadded), each -1 or 1.
* ``identity_CelebA.txt``: ``000001.jpg 2880``, no count or header line; identities are whole numbers ≥ 1.
* ``list_eval_partition.txt``: ``000001.jpg 0``, no count or header line; 0 train, 1 valid, 2 test.
* ``list_bbox_celeba.txt``: count, ``image_id x_1 y_1 width height``, right-aligned rows. Coordinates are in the
  *in-the-wild* images (``img_celeba``), not the aligned ones.
* ``list_landmarks_align_celeba.txt`` / ``list_landmarks_celeba.txt``: count, the ten names ``lefteye_x ...
  rightmouth_y`` (no ``image_id``), rows of ten whole numbers (aligned / in-the-wild image coordinates).

Every file must list exactly the images of ``list_attr_celeba.txt``. Anything else (a count line that does not
match, a wrong header, a row with 39 values, a value other than -1/1, an unknown partition code, a duplicated or
malformed image name, an image one file lists and another does not) is refused with one sentence naming the file
and line: the label files are the dataset's ground truth, and a damaged one is not read around. A listed image
missing from ``img_align_celeba/`` is *rejected* with its reason (a partial copy reads); unlisted files there are
ignored (counted in the summary).

FaceTable: ``sample_id`` the image path (``Img/img_align_celeba/000001.jpg``), ``subject_id`` the identity,
``gender`` from the ``Male`` attribute (``gender_code`` 1 / -1 as written), ``age``, ``race`` and ``race_code``
missing (CelebA has neither; ``Young`` is an attribute), ``image_id``, ``partition`` (train / valid / test, the
names torchvision uses), the 40 attributes as booleans under their own names, then the bbox (``bbox_x_1`` ...)
and landmark columns (``lefteye_x`` ...; in-the-wild ones prefixed ``wild_``) of the optional files present.

CelebA has **no race label**. A user may supply annotators' labels (reader options ``race_annotations``, a file
in the format of :mod:`facebench.data.annotations`, relative paths read from the dataset root, and
``race_categories``, its declared categories); they fill ``annotated_race`` and ``annotation_count``, never
``race``.

>>> len(ATTRIBUTES), ATTRIBUTES.index("Male"), PARTITIONS["1"]
(40, 20, 'valid')
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facebench.data.annotations import Annotations, read_annotations
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
from facebench.errors import UserInputError, did_you_mean, shorten
from facebench.limits import read_text

#: The 40 attribute names of ``list_attr_celeba.txt``, in file order.
ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes",
    "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling",
    "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
    "Wearing_Necktie", "Young",
)
BBOX_HEADER: tuple[str, ...] = ("image_id", "x_1", "y_1", "width", "height")
LANDMARKS_HEADER: tuple[str, ...] = ("lefteye_x", "lefteye_y", "righteye_x", "righteye_y", "nose_x", "nose_y",
                                     "leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y")
#: ``list_eval_partition.txt`` codes, named as torchvision names its splits.
PARTITIONS: dict[str, str] = {"0": "train", "1": "valid", "2": "test"}

IMAGE_FOLDER = "img_align_celeba"
ATTR_FILE, IDENTITY_FILE, PARTITION_FILE = "list_attr_celeba.txt", "identity_CelebA.txt", "list_eval_partition.txt"
BBOX_FILE, LANDMARKS_ALIGN_FILE, LANDMARKS_FILE = ("list_bbox_celeba.txt", "list_landmarks_align_celeba.txt",
                                                   "list_landmarks_celeba.txt")
#: Where each file lives in the release layout (the flat layout has them all beside ``img_align_celeba/``).
RELEASE_PATHS: dict[str, str] = {
    IMAGE_FOLDER: f"Img/{IMAGE_FOLDER}", ATTR_FILE: f"Anno/{ATTR_FILE}", IDENTITY_FILE: f"Anno/{IDENTITY_FILE}",
    PARTITION_FILE: f"Eval/{PARTITION_FILE}", BBOX_FILE: f"Anno/{BBOX_FILE}",
    LANDMARKS_ALIGN_FILE: f"Anno/{LANDMARKS_ALIGN_FILE}", LANDMARKS_FILE: f"Anno/{LANDMARKS_FILE}",
}
VARIANTS: tuple[str, ...] = ("aligned",)
#: Reader options (``facebench data verify celeba --option KEY=VALUE``; a protocol's dataset options).
READ_OPTIONS: tuple[str, ...] = ("race_annotations", "race_categories")

#: ``000001.jpg``: six ASCII digits.
IMAGE_NAME = re.compile(r"[0-9]{6}\.jpg", re.ASCII)
_INT = re.compile(r"-?[0-9]+", re.ASCII)
_POSITIVE = re.compile(r"[1-9][0-9]*", re.ASCII)
_COUNT = re.compile(r"[0-9]+", re.ASCII)

#: Largest label file read (the real list_attr_celeba.txt is about 26 MB).
MAX_BYTES = 512 * 1024 * 1024

BASE_COLUMNS: tuple[str, ...] = ("sample_id", "subject_id", "age", "gender", "race", "race_code", "gender_code",
                                 "image_id", "partition")


@dataclass(frozen=True)
class CelebAReadResult(ReadResult):
    """A :class:`ReadResult` plus what was read: layout, files, unlisted images and the annotations."""

    root: str
    variant: str
    layout: str                                   # "release" or "flat"
    files: tuple[str, ...]                        # label files read, relative to the root
    n_unlisted: int = 0                           # files in img_align_celeba/ that no label file lists
    annotations: Annotations | None = field(default=None, compare=False)


# ------------------------------------------------------------------------------------------------ layout

def _layout(root: Path) -> tuple[Path, str]:
    """``(dataset root, layout)``; ``root`` may be the dataset root or the folder holding torchvision's ``celeba/``."""
    if not root.exists():
        raise UserInputError(f"CelebA root {root} does not exist.")
    if not root.is_dir():
        raise UserInputError(f"CelebA root {root} is not a folder.")
    for base in (root, root / "celeba"):
        if (base / "Anno").is_dir() or (base / "Img").is_dir():
            return base, "release"
        if (base / ATTR_FILE).is_file() or (base / IMAGE_FOLDER).is_dir():
            return base, "flat"
    try:
        entries = sorted(entry.name for entry in os.scandir(root))
    except OSError as error:
        raise UserInputError(f"Cannot list CelebA root {root}: {error.strerror or error}.") from None
    hint = did_you_mean("Anno", entries) or did_you_mean(IMAGE_FOLDER, entries)
    raise UserInputError(
        f"CelebA root {root} has neither the release layout (Img/{IMAGE_FOLDER}/, Anno/, Eval/) nor torchvision's "
        f"flat one ({IMAGE_FOLDER}/ beside {ATTR_FILE}){hint}; point it at the folder that holds them."
    )


def _relative(layout: str, name: str) -> str:
    return RELEASE_PATHS[name] if layout == "release" else name


# ------------------------------------------------------------------------------------------------ text files

def _lines(path: Path) -> list[str]:
    """The file's lines without their CRLF or LF (a final line ending adds no empty line)."""
    text = read_text(path, what="CelebA file", max_bytes=MAX_BYTES)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


@dataclass(frozen=True)
class _Table:
    """One parsed label file: image names in file order, their values (strings, validated) and data line numbers."""

    path: Path
    names: list[str]
    values: np.ndarray        # (n, n_values) of str
    first_line: int           # line number of the first data row


def _parse(path: Path, *, n_values: int, header: Sequence[str] | None, counted: bool, what: str) -> _Table:
    """Count line (when ``counted``), header line (when given; a trailing space allowed), then rows of an image
    name and ``n_values`` whitespace-separated values. Values are checked by the caller."""
    lines = _lines(path)
    first = (1 if counted else 0) + (1 if header is not None else 0)
    if len(lines) <= first:
        raise UserInputError(f"CelebA file {path} has no image rows.")
    if counted:
        count = lines[0].strip()
        if _COUNT.fullmatch(count) is None:
            raise UserInputError(f"CelebA file {path}: line 1 should be the number of images (202599 in the release), "
                                 f"got {shorten(lines[0])}.")
        if int(count) != len(lines) - first:
            raise UserInputError(f"CelebA file {path}: line 1 says {int(count)} images but the file lists "
                                 f"{len(lines) - first}.")
    if header is not None:
        got = lines[first - 1].split()
        if tuple(got) != tuple(header):
            raise UserInputError(f"CelebA file {path}: line {first} is not the {what} header: "
                                 f"{_header_difference(got, header)}.")
    names: list[str] = []
    rows: list[list[str]] = []
    for offset, line in enumerate(lines[first:]):
        fields = line.split()
        number = first + offset + 1
        if len(fields) != n_values + 1:
            label = f" for {shorten(fields[0])}" if fields else ""
            raise UserInputError(f"CelebA file {path}: line {number} has {max(len(fields) - 1, 0)} values{label}; "
                                 f"expected an image name and {n_values}.")
        if IMAGE_NAME.fullmatch(fields[0]) is None:
            raise UserInputError(f"CelebA file {path}: line {number} names image {shorten(fields[0])}; expected a "
                                 "name like 000001.jpg.")
        names.append(fields[0])
        rows.append(fields[1:])
    values = np.array(rows, dtype=str).reshape(len(rows), n_values)
    table = _Table(path, names, values, first + 1)
    _check_unique(table)
    return table


def _header_difference(got: Sequence[str], expected: Sequence[str]) -> str:
    if len(got) != len(expected):
        missing = [name for name in expected if name not in got]
        extra = f", first missing {missing[0]!r}" if missing else ""
        return f"it lists {len(got)} names, expected the {len(expected)} of CelebA{extra}"
    i = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
    return f"name {i + 1} is {shorten(got[i])}, expected {expected[i]!r}"


def _check_unique(table: _Table) -> None:
    names = pd.Series(table.names)
    duplicated = names.duplicated()
    if duplicated.any():
        i = int(np.flatnonzero(duplicated.to_numpy())[0])
        j = int(np.flatnonzero((names == names[i]).to_numpy())[0])
        raise UserInputError(f"CelebA file {table.path}: line {table.first_line + i} lists {names[i]} again "
                             f"(first on line {table.first_line + j}).")


def _check_values(table: _Table, allowed: re.Pattern | set[str], *, columns: Sequence[str], expected: str) -> None:
    values = table.values
    if isinstance(allowed, set):
        bad = ~np.isin(values, list(allowed))
    else:
        bad = ~np.vectorize(lambda v: allowed.fullmatch(v) is not None, otypes=[bool])(values) if values.size else \
            np.zeros(values.shape, bool)
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        column = f" column {columns[j]}" if len(columns) > 1 else ""
        raise UserInputError(f"CelebA file {table.path}: line {table.first_line + i}{column} has {shorten(str(values[i, j]))} "
                             f"for {table.names[i]}; expected {expected}.")


def _align(table: _Table, reference: _Table) -> np.ndarray:
    """Row index in ``table`` of each image of ``reference``; refuses when the two list different images."""
    position = {name: i for i, name in enumerate(table.names)}
    index = np.fromiter((position.get(name, -1) for name in reference.names), dtype=np.int64,
                        count=len(reference.names))
    if (index < 0).any():
        k = int(np.flatnonzero(index < 0)[0])
        raise UserInputError(f"CelebA file {table.path} has no row for {reference.names[k]}, which "
                             f"{reference.path.name} lists on line {reference.first_line + k}.")
    if len(table.names) != len(reference.names):
        listed = set(reference.names)
        k = next(i for i, name in enumerate(table.names) if name not in listed)
        raise UserInputError(f"CelebA file {table.path}: line {table.first_line + k} lists {table.names[k]}, which "
                             f"{reference.path.name} does not list.")
    return index


# ------------------------------------------------------------------------------------------------ reading

def read_celeba(root: str | os.PathLike, *, variant: str = "aligned", race_annotations: str | os.PathLike | None = None,
                race_categories: Sequence[str] | str | None = None) -> CelebAReadResult:
    """Read CelebA's label files into a FaceTable (module docstring); reject listed images that are missing.

    ``race_annotations`` (with ``race_categories``): an annotation file (:mod:`facebench.data.annotations`),
    read from the dataset root when relative; it fills ``annotated_race`` and ``annotation_count``.
    """
    check_variant(variant, VARIANTS, title="CelebA")
    if (race_annotations is None) != (race_categories is None):
        given, other = (("race_annotations", "race_categories") if race_annotations is not None
                        else ("race_categories", "race_annotations"))
        raise UserInputError(f"CelebA option {given} needs {other} too: the annotation file and the categories "
                             "its labels are declared to take.")
    base, layout = _layout(Path(root))

    def path(name: str) -> Path:
        return base / _relative(layout, name)

    for name in (ATTR_FILE, IDENTITY_FILE, PARTITION_FILE):
        if not path(name).is_file():
            raise UserInputError(f"CelebA root {base} has no {_relative(layout, name)}; it is one of the three label "
                                 f"files every copy needs ({ATTR_FILE}, {IDENTITY_FILE}, {PARTITION_FILE}).")
    attr = _parse(path(ATTR_FILE), n_values=len(ATTRIBUTES), header=ATTRIBUTES, counted=True, what="attribute names")
    _check_values(attr, {"-1", "1"}, columns=ATTRIBUTES, expected="-1 or 1")
    identity = _parse(path(IDENTITY_FILE), n_values=1, header=None, counted=False, what="")
    _check_values(identity, _POSITIVE, columns=("identity",), expected="an identity number of 1 or more")
    partition = _parse(path(PARTITION_FILE), n_values=1, header=None, counted=False, what="")
    _check_values(partition, set(PARTITIONS), columns=("partition",), expected="0 (train), 1 (valid) or 2 (test)")

    identity_values = identity.values[_align(identity, attr), 0]
    partition_values = partition.values[_align(partition, attr), 0]
    positive = attr.values == "1"
    files = [_relative(layout, n) for n in (ATTR_FILE, IDENTITY_FILE, PARTITION_FILE)]
    extra: dict[str, np.ndarray] = {}
    for name, header, prefix, what in ((BBOX_FILE, BBOX_HEADER, "bbox_", "bounding-box"),
                                       (LANDMARKS_ALIGN_FILE, LANDMARKS_HEADER, "", "landmark"),
                                       (LANDMARKS_FILE, LANDMARKS_HEADER, "wild_", "landmark")):
        if not path(name).is_file():
            continue
        names = header[1:] if header[0] == "image_id" else header
        table = _parse(path(name), n_values=len(names), header=header, counted=True, what=what)
        _check_values(table, _INT, columns=names, expected="a whole number")
        rows = table.values[_align(table, attr)].astype(np.int64)
        for k, column in enumerate(names):
            extra[f"{prefix}{column}"] = rows[:, k]
        files.append(_relative(layout, name))

    image_folder = path(IMAGE_FOLDER)
    if not image_folder.is_dir():
        raise UserInputError(f"CelebA root {base} has no {_relative(layout, IMAGE_FOLDER)}/ folder; extract "
                             "img_align_celeba.zip there.")
    present, problems = list_folder(image_folder, title="CelebA")
    present_set = set(present)
    prefix = _relative(layout, IMAGE_FOLDER) + "/"
    listed = np.array(attr.names, dtype=object)
    in_folder = np.fromiter((n in present_set for n in attr.names), dtype=bool, count=len(attr.names))
    rejected = [Reject(prefix + n, problems.get(n, "image file missing")) for n in listed[~in_folder]]
    n_unlisted = len(present_set - set(attr.names))

    annotations = None
    if race_annotations is not None:
        if not isinstance(race_annotations, (str, os.PathLike)) or str(race_annotations).strip() == "":
            raise UserInputError(f"CelebA option race_annotations must be the path of an annotation file "
                                 f"(got {shorten(race_annotations)}).")
        file = Path(race_annotations)
        file = file if file.is_absolute() else base / file
        annotations = read_annotations(file, categories=race_categories, known_ids=set(attr.names),
                                       dataset=f"CelebA ({attr.path.name})", what="CelebA race annotation file")

    keep = in_folder
    male = positive[:, ATTRIBUTES.index("Male")]
    text = pd.StringDtype()
    columns = {
        "sample_id": pd.array([prefix + n for n in listed[keep]], dtype=text),
        "subject_id": pd.array(identity_values[keep].tolist(), dtype=text),
        "age": pd.array([pd.NA] * int(keep.sum()), dtype="Int64"),
        "gender": pd.array(np.where(male[keep], "male", "female").tolist(), dtype=text),
        "race": pd.array([pd.NA] * int(keep.sum()), dtype=text),
        "race_code": pd.array([pd.NA] * int(keep.sum()), dtype=text),
        "gender_code": pd.array(attr.values[keep, ATTRIBUTES.index("Male")].tolist(), dtype=text),
        "image_id": pd.array(listed[keep].tolist(), dtype=text),
        "partition": pd.array([PARTITIONS[c] for c in partition_values[keep]], dtype=text),
    }
    columns.update({name: positive[keep, k] for k, name in enumerate(ATTRIBUTES)})
    columns.update({name: values[keep] for name, values in extra.items()})
    table = pd.DataFrame(columns)
    if annotations is not None:
        consensus = annotations.consensus()
        table["annotated_race"] = pd.array(consensus["annotated_race"].reindex(table["image_id"]).tolist(), dtype=text)
        table["annotation_count"] = consensus["annotation_count"].reindex(table["image_id"]).fillna(0).astype(
            "int64").to_numpy()
    if table.empty:
        first = rejected[0]
        raise UserInputError(f"No CelebA images under {image_folder}: all {len(attr.names)} listed images are missing, "
                             f"e.g. {first.sample_id} ({first.reason}).")
    table = table.sort_values("sample_id", kind="stable").reset_index(drop=True)
    check_face_table(table)
    return CelebAReadResult(table=table, rejected=tuple(sorted(rejected, key=lambda r: r.sample_id)), root=str(base),
                            variant=variant, layout=layout, files=tuple(files), n_unlisted=n_unlisted,
                            annotations=annotations)


def verify_summary(result: CelebAReadResult) -> dict[str, Any]:
    """JSON-ready summary: sizes, rejects, gender / partition / ``Young`` counts, and the annotations' categories
    and annotator agreement when a file was supplied."""
    table = result.table
    groups = {
        "gender": vocabulary_counts(table["gender"], GENDERS),
        "partition": vocabulary_counts(table["partition"], PARTITIONS.values()),
        "Young": vocabulary_counts(table["Young"].map({True: "young", False: "not_young"}), ("young", "not_young")),
    }
    extra: dict[str, Any] = {"layout": result.layout, "files": list(result.files), "n_unlisted_images": result.n_unlisted}
    if result.annotations is not None:
        groups["annotated_race"] = vocabulary_counts(table["annotated_race"], result.annotations.categories)
        extra["annotations"] = {"file": result.annotations.path, "categories": list(result.annotations.categories),
                                "n_labels": int(len(result.annotations.frame)),
                                "agreement": result.annotations.agreement().to_dict(),
                                "agreement_line": result.annotations.agreement().line()}
    return read_summary("celeba", result, root=result.root, variant=result.variant, groups=groups, **extra)
