"""Strict readers for CACD, the Cross-Age Celebrity Dataset, and its CACD-VS verification pairs (notes A4).

Layout of the dataset root (the folder that *contains* ``CACD2000/``)::

    CACD2000/53_Robin_Williams_0001.jpg          163,446 images, {age}_{Name_With_Underscores}_{k:04d}.jpg
    celebrity2000_meta.mat                       metadata, MATLAB v5 (scipy.io.loadmat)
    celebrity2000.mat                            metadata + LBP features, MATLAB v7.3 = HDF5 (h5py)
    CACD_VS/0000_0.jpg, CACD_VS/0000_1.jpg ...   4,000 verification pairs (read by :func:`read_cacd_vs`)

File names: the age is the first ``_`` token, the per-celebrity image index the last (four digits), and the
celebrity's name everything in between (it may itself contain underscores: ``Jean_Claude_Van_Damme``).

Variants of :func:`read_cacd`:

``metadata`` (default)
    Labels from ``celebrity2000_meta.mat`` (preferred: small) or ``celebrity2000.mat``; the format is told
    from the file's content, not its name. Its ``celebrityImageData`` struct has one entry per image:
    ``age, identity, year, feature, rank, lfw, birth, name`` (``name`` = the file name). ``subject_id`` is
    the ``identity`` number (``"1"`` .. ``"2000"``), and ``year`` (photo year), ``rank``, ``lfw`` and ``birth``
    are kept. A file whose name's age disagrees with the metadata age is rejected, as is a metadata entry
    with no file (unless ``check_files=False``) and a file the metadata does not list.
``names``
    The folder alone, for copies without the metadata: ``subject_id`` is the name from the file name
    (``Robin_Williams``), and ``year``, ``rank``, ``lfw`` and ``birth`` are missing (``<NA>``): the photo year
    is *not* derivable from a file name (it is ``birth + age``, and the birth year is in the metadata only).
    Subject ids therefore differ between the two variants; never mix their predictions.

CACD has no gender or race labels: those columns are all missing.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facebench.data.table import (
    Parsed,
    ReadResult,
    Reject,
    age_band,
    age_band_names,
    check_face_table,
    check_variant,
    list_folder,
    nothing_read_error,
    pair_face_table,
    parse_files,
    read_summary,
    resolve_dataset_root,
)
from facebench.data.utkface import AGE_BAND_EDGES
from facebench.errors import UserInputError

FOLDER = "CACD2000"
#: Metadata file names, in order of preference.
METADATA_FILES: tuple[str, ...] = ("celebrity2000_meta.mat", "celebrity2000.mat")
#: Fields of the per-image struct ``celebrityImageData``, in the order of the release.
IMAGE_FIELDS: tuple[str, ...] = ("age", "identity", "year", "feature", "rank", "lfw", "birth", "name")
#: Fields of the per-celebrity struct ``celebrityData``, in the order of the release.
CELEBRITY_FIELDS: tuple[str, ...] = ("name", "identity", "birth", "rank", "lfw")
#: The numeric per-image fields the reader uses (``feature`` is never read).
NUMERIC_FIELDS: tuple[str, ...] = ("age", "identity", "year", "rank", "lfw", "birth")

VARIANTS: tuple[str, ...] = ("metadata", "names", "vs")
MAX_AGE = 130

#: FaceTable columns of a CACD read, in order.
COLUMNS: tuple[str, ...] = (
    "sample_id", "subject_id", "age", "gender", "race", "race_code", "gender_code",
    "name", "image_index", "year", "rank", "lfw", "birth",
)

_NAME = re.compile(r"([0-9]+)_(.+)_([0-9]{4})\.jpg", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)


# ---------------------------------------------------------------------------------------------------------
# Names


@dataclass(frozen=True)
class CACDName:
    """The labels in one valid CACD file name."""

    age: int
    name: str
    index: int


def parse_cacd_name(file_name: str) -> Parsed[CACDName]:
    """Parse ``{age}_{Name}_{k:04d}.jpg``: its :class:`CACDName`, or the reason it is rejected.

    >>> parse_cacd_name("41_Jean_Claude_Van_Damme_0005.jpg").value
    CACDName(age=41, name='Jean_Claude_Van_Damme', index=5)
    >>> parse_cacd_name("53_Robin__Williams_0001.jpg").reason
    'empty field: double, leading or trailing underscore'
    """
    if not file_name.endswith(".jpg"):
        if file_name.lower().endswith(".jpg"):
            return Parsed.reject("not a CACD image name: extension is not lower-case '.jpg'")
        return Parsed.reject("not a CACD image name: does not end in '.jpg'")
    if "/" in file_name or "\\" in file_name:
        return Parsed.reject("path separator in the name")
    if any(ch.isspace() for ch in file_name):
        return Parsed.reject("space in the name")
    tokens = file_name[: -len(".jpg")].split("_")
    if len(tokens) < 3:
        return Parsed.reject(
            f"{len(tokens)} field{'s' if len(tokens) != 1 else ''}: "
            "expected {age}_{Name}_{index:04d}.jpg"
        )
    if any(token == "" for token in tokens):
        return Parsed.reject("empty field: double, leading or trailing underscore")
    problems = []
    if _DIGITS.fullmatch(tokens[0]) is None:
        problems.append(f"age '{tokens[0]}' not a whole number")
    elif int(tokens[0]) > MAX_AGE:
        problems.append(f"age {int(tokens[0])} above {MAX_AGE}")
    if not (len(tokens[-1]) == 4 and _DIGITS.fullmatch(tokens[-1])):
        problems.append(f"image index '{tokens[-1]}' not 4 digits")
    if problems:
        return Parsed.reject("; ".join(problems))
    match = _NAME.fullmatch(file_name)
    assert match is not None
    return Parsed.accept(CACDName(int(match.group(1)), match.group(2), int(match.group(3))))


# ---------------------------------------------------------------------------------------------------------
# Metadata (.mat, v5 or v7.3)


def read_cacd_metadata(path: str | os.PathLike) -> pd.DataFrame:
    """The per-image metadata (``celebrityImageData``) of either .mat file as a DataFrame.

    Columns: ``name`` (the file name; ``<NA>`` where a cell holds no text) and the numeric fields
    :data:`NUMERIC_FIELDS` as float64, exactly as stored (the reader checks they are whole numbers). One row
    per struct entry, in file order. A MATLAB v7.3 file (HDF5) is read with h5py, anything else with
    ``scipy.io.loadmat``; ``feature`` is never loaded.
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"CACD metadata file {path} does not exist.")
    import h5py

    columns = _read_v73(path) if h5py.is_hdf5(path) else _read_v5(path)
    lengths = {field: len(values) for field, values in columns.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{f} {n}" for f, n in lengths.items())
        raise UserInputError(f"CACD metadata {path} has fields of different lengths ({detail}).")
    frame = pd.DataFrame({field: np.asarray(columns[field], dtype=np.float64) for field in NUMERIC_FIELDS})
    frame.insert(0, "name", pd.array(columns["name"], dtype=pd.StringDtype()))
    return frame


def _missing_fields(path: Path, present: Iterable[str]) -> None:
    missing = [f for f in ("name", *NUMERIC_FIELDS) if f not in set(present)]
    if missing:
        raise UserInputError(f"CACD metadata {path} has no field {', '.join(missing)} in celebrityImageData.")


def _read_v5(path: Path) -> dict[str, Any]:
    import scipy.io

    try:
        contents = scipy.io.loadmat(path, variable_names=["celebrityImageData"])
    except (ValueError, TypeError, OSError, NotImplementedError, scipy.io.matlab.MatReadError) as error:
        raise UserInputError(f"CACD metadata {path} is not a readable MATLAB .mat file ({error}).") from None
    struct = contents.get("celebrityImageData")
    if not isinstance(struct, np.ndarray) or struct.dtype.names is None or struct.size != 1:
        raise UserInputError(f"CACD metadata {path} has no 1x1 struct 'celebrityImageData'.")
    record = struct.ravel()[0]
    _missing_fields(path, struct.dtype.names)
    columns: dict[str, Any] = {f: np.asarray(record[f], dtype=np.float64).ravel() for f in NUMERIC_FIELDS}
    columns["name"] = [_cell_text(cell) for cell in np.asarray(record["name"], dtype=object).ravel()]
    return columns


def _cell_text(cell: Any) -> str | None:
    """The text of one cell of a loadmat cell array (``array(['53_...jpg'], dtype='<U26')``), or None."""
    if isinstance(cell, str):
        return cell
    if isinstance(cell, np.ndarray) and cell.dtype.kind == "U" and cell.size == 1:
        return str(cell.ravel()[0])
    return None


def _read_v73(path: Path) -> dict[str, Any]:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            group = handle.get("celebrityImageData")
            if not isinstance(group, h5py.Group):
                raise UserInputError(f"CACD metadata {path} has no struct 'celebrityImageData'.")
            _missing_fields(path, group.keys())
            columns: dict[str, Any] = {f: np.asarray(group[f][()], dtype=np.float64).ravel() for f in NUMERIC_FIELDS}
            references = np.asarray(group["name"][()]).ravel()
            columns["name"] = [_h5_text(handle, reference) for reference in references]
    except OSError as error:
        raise UserInputError(f"CACD metadata {path} is not a readable HDF5 file ({error}).") from None
    return columns


def _h5_text(handle: Any, reference: Any) -> str | None:
    """A MATLAB char array stored as uint16 UTF-16 code units, behind an object reference; or None.

    Uses h5py's low-level calls: about 2.5x faster than ``handle[reference][()]`` over 163,446 names.
    """
    import h5py

    if not isinstance(reference, h5py.Reference) or not reference:
        return None
    target = h5py.h5r.dereference(reference, handle.id)
    if target is None or h5py.h5i.get_type(target) != h5py.h5i.DATASET:
        return None
    if h5py.h5a.exists(target, b"MATLAB_empty"):
        return ""
    dtype = target.dtype
    if dtype.kind not in "ui" or dtype.itemsize > 2:
        return None
    units = np.empty(target.get_space().shape, dtype=dtype)
    target.read(h5py.h5s.ALL, h5py.h5s.ALL, units)
    try:
        return units.astype("<u2").ravel().tobytes().decode("utf-16-le")
    except UnicodeDecodeError:
        return None


# ---------------------------------------------------------------------------------------------------------
# Reading the images


@dataclass(frozen=True)
class CACDReadResult(ReadResult):
    """A :class:`ReadResult` plus where and how it was read (``metadata``: the .mat used, if any)."""

    root: str
    variant: str
    metadata: str | None


def _check_variant(variant: str) -> None:
    check_variant(variant, VARIANTS, title="CACD")


def _list_folder(base: Path, folder: str, *, title: str) -> tuple[list[str], dict[str, str]]:
    """Sorted ``folder/name`` of every non-hidden file directly in ``base/folder``, and ``{folder/name: reason}`` of
    the entries there that are not readable files (a dangling or looping link, a folder named like an image)."""
    directory = base / folder
    if not directory.is_dir():
        raise UserInputError(f"{title} root {base} has no {folder}/ folder.")
    names, problems = list_folder(directory, title=title)
    return [f"{folder}/{name}" for name in names], {f"{folder}/{name}": reason for name, reason in problems.items()}


def _whole(value: float) -> int | None:
    return int(value) if math.isfinite(value) and value == int(value) else None


def read_cacd(
    root: str | os.PathLike,
    *,
    variant: str = "metadata",
    metadata: str | os.PathLike | None = None,
    check_files: bool = True,
) -> CACDReadResult:
    """Read CACD into a FaceTable; reject malformed names and metadata disagreements with a reason.

    ``root`` is the folder that contains ``CACD2000/`` (and the .mat files), or ``CACD2000/`` itself.
    ``metadata`` overrides where the .mat file is (default: :data:`METADATA_FILES` in the dataset root, the
    first that exists). With ``check_files=False`` the ``metadata`` variant reads the .mat alone and the
    image folder need not exist. Rows are sorted by ``sample_id`` (``CACD2000/<file name>``).
    """
    _check_variant(variant)
    root = Path(root)
    if variant == "vs":
        return _read_vs_table(root)
    base = resolve_dataset_root(root, FOLDER, title="CACD", also=METADATA_FILES if variant == "metadata" else ())
    if variant == "names":
        meta_path = None
        rows, rejected = _read_names(base)
    else:
        meta_path = Path(metadata) if metadata is not None else _find_metadata(base)
        rows, rejected = _read_with_metadata(base, meta_path, check_files=check_files)
    rejected.sort(key=lambda r: (r.sample_id, r.reason))
    if not rows:
        where = base / FOLDER
        raise nothing_read_error("CACD", where, n_seen=len(rejected), rejected=rejected,
                                 example="53_Robin_Williams_0001.jpg", unit="entries")
    rows.sort(key=lambda r: r["sample_id"])
    table = _table(rows)
    check_face_table(table)
    return CACDReadResult(
        table=table, rejected=tuple(rejected), root=str(base), variant=variant,
        metadata=None if meta_path is None else str(meta_path),
    )


def _find_metadata(base: Path) -> Path:
    for name in METADATA_FILES:
        if (base / name).is_file():
            return base / name
    raise UserInputError(
        f"CACD root {base} has neither {' nor '.join(METADATA_FILES)}; put the metadata there, pass its path, "
        "or read the file names alone with variant 'names'."
    )


def _read_names(base: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
    paths, problems = _list_folder(base, FOLDER, title="CACD")
    accepted, rejected = parse_files(paths, parse_cacd_name)
    rejected += [Reject(sample_id, reason) for sample_id, reason in problems.items()]
    rows = [{"sample_id": sample_id, "subject_id": parsed.name, "age": parsed.age, "name": parsed.name,
             "image_index": parsed.index} for sample_id, parsed in accepted]
    return rows, rejected


def _read_with_metadata(base: Path, path: Path, *, check_files: bool) -> tuple[list[dict[str, Any]], list[Reject]]:
    meta = read_cacd_metadata(path)
    if check_files and not (base / FOLDER).is_dir():
        raise UserInputError(
            f"CACD root {base} has no {FOLDER}/ folder; extract the images there or pass check_files=False to "
            "read the metadata alone."
        )
    paths, problems = _list_folder(base, FOLDER, title="CACD") if check_files else ([], {})
    files = set(paths) if check_files else None
    names = meta["name"].tolist()
    seen = Counter(n for n in names if not pd.isna(n))
    rows: list[dict[str, Any]] = []
    rejected: list[Reject] = []
    listed: set[str] = set()
    for i, name in enumerate(names):
        if pd.isna(name) or name == "":
            rejected.append(Reject(f"{path.name}:entry {i + 1}", "metadata name is empty or not text"))
            continue
        sample_id = f"{FOLDER}/{name}"
        listed.add(sample_id)
        outcome = parse_cacd_name(name)
        parsed = outcome.value
        if parsed is None:
            rejected.append(Reject(sample_id, str(outcome.reason)))
            continue
        if seen[name] > 1:
            rejected.append(Reject(sample_id, f"listed {seen[name]} times in the metadata"))
            continue
        values = {f: _whole(float(meta.at[i, f])) for f in NUMERIC_FIELDS}
        bad = [f"metadata {f} {float(meta.at[i, f]):g} not a whole number" for f, v in values.items() if v is None]
        if bad:
            rejected.append(Reject(sample_id, "; ".join(bad)))
            continue
        if values["identity"] < 1:
            rejected.append(Reject(sample_id, f"metadata identity {values['identity']} not positive"))
            continue
        if values["age"] != parsed.age:
            rejected.append(Reject(sample_id, f"file name age {parsed.age} but metadata age {values['age']}"))
            continue
        if files is not None and sample_id not in files:
            rejected.append(Reject(sample_id, problems.get(sample_id, "image file missing")))
            continue
        rows.append({"sample_id": sample_id, "subject_id": str(values["identity"]), "age": parsed.age,
                     "name": parsed.name, "image_index": parsed.index, "year": values["year"],
                     "rank": values["rank"], "lfw": values["lfw"], "birth": values["birth"]})
    for sample_id in sorted((files or set()) - listed):
        reason = parse_cacd_name(sample_id.split("/", 1)[1]).reason
        rejected.append(Reject(sample_id, "not listed in the metadata" if reason is None else reason))
    rejected += [Reject(sample_id, reason) for sample_id, reason in problems.items() if sample_id not in listed]
    return rows, rejected


def _table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    text = pd.StringDtype()
    n = len(rows)

    def ints(column: str) -> Any:
        return pd.array([r.get(column, pd.NA) for r in rows], dtype="Int64")

    return pd.DataFrame(
        {
            "sample_id": pd.array([r["sample_id"] for r in rows], dtype=text),
            "subject_id": pd.array([r["subject_id"] for r in rows], dtype=text),
            "age": np.asarray([r["age"] for r in rows], dtype=np.int64),
            "gender": pd.array([pd.NA] * n, dtype=text),
            "race": pd.array([pd.NA] * n, dtype=text),
            "race_code": pd.array([pd.NA] * n, dtype=text),
            "gender_code": pd.array([pd.NA] * n, dtype=text),
            "name": pd.array([r["name"] for r in rows], dtype=text),
            "image_index": np.asarray([r["image_index"] for r in rows], dtype=np.int64),
            "year": ints("year"),
            "rank": ints("rank"),
            "lfw": ints("lfw"),
            "birth": ints("birth"),
        },
        columns=list(COLUMNS),
    )


# ---------------------------------------------------------------------------------------------------------
# CACD-VS


VS_FOLDER = "CACD_VS"
#: 4,000 pairs in 10 folds of 400: in each fold the first 200 pairs are positive, the next 200 negative.
N_PAIRS = 4000
PAIRS_PER_FOLD = 400
POSITIVES_PER_FOLD = 200
_VS_NAME = re.compile(r"([0-9]{4})_([01])\.jpg", re.ASCII)


@dataclass(frozen=True)
class CACDVSReadResult:
    """The CACD-VS pairs (``pair_id, fold, issame, sample_id_1, sample_id_2``), the rejected files, the root."""

    pairs: pd.DataFrame
    rejected: tuple[Reject, ...]
    root: str


def read_cacd_vs(root: str | os.PathLike, *, require_complete: bool = True) -> CACDVSReadResult:
    """Read the CACD-VS pair folder ``CACD_VS/{pair:04d}_{0|1}.jpg`` into a pairs table.

    ``fold = pair_id // 400`` and ``issame = pair_id % 400 < 200`` (the release's ordering; there is no label
    file). A file with another name, a pair id above 3999 and a half pair are rejected with a reason. With
    ``require_complete`` (default) all 4,000 pairs must be present, since the 10-fold protocol needs every
    fold whole. ``root`` is the folder that contains ``CACD_VS/`` or ``CACD_VS/`` itself.
    """
    base = resolve_dataset_root(Path(root), VS_FOLDER, title="CACD-VS")
    halves: dict[int, set[str]] = {}
    rejected: list[Reject] = []
    paths, problems = _list_folder(base, VS_FOLDER, title="CACD-VS")
    rejected += [Reject(sample_id, reason) for sample_id, reason in problems.items()]
    for sample_id in paths:
        match = _VS_NAME.fullmatch(sample_id.split("/", 1)[1])
        if match is None:
            rejected.append(Reject(sample_id, "not a CACD-VS image name: expected {pair:04d}_{0|1}.jpg"))
        elif int(match.group(1)) >= N_PAIRS:
            rejected.append(Reject(sample_id, f"pair id {int(match.group(1))} above {N_PAIRS - 1}"))
        else:
            halves.setdefault(int(match.group(1)), set()).add(match.group(2))
    pair_ids = []
    for pair_id, sides in sorted(halves.items()):
        if sides == {"0", "1"}:
            pair_ids.append(pair_id)
        else:
            (side,) = sides
            other = "1" if side == "0" else "0"
            rejected.append(Reject(f"{VS_FOLDER}/{pair_id:04d}_{side}.jpg", f"half pair: no {pair_id:04d}_{other}.jpg"))
    rejected.sort(key=lambda r: (r.sample_id, r.reason))
    where = base / VS_FOLDER
    if not pair_ids:
        raise UserInputError(f"No CACD-VS pairs under {where}: expected files named like 0000_0.jpg and 0000_1.jpg.")
    if require_complete and len(pair_ids) != N_PAIRS:
        first = next(i for i in range(N_PAIRS) if i not in set(pair_ids))
        raise UserInputError(
            f"CACD-VS under {where} has {len(pair_ids)} of {N_PAIRS} pairs (first missing: {first:04d}); "
            "pass require_complete=False to read a partial copy."
        )
    ids = np.asarray(pair_ids, dtype=np.int64)
    text = pd.StringDtype()
    pairs = pd.DataFrame(
        {
            "pair_id": ids,
            "fold": ids // PAIRS_PER_FOLD,
            "issame": (ids % PAIRS_PER_FOLD) < POSITIVES_PER_FOLD,
            "sample_id_1": pd.array([f"{VS_FOLDER}/{i:04d}_0.jpg" for i in pair_ids], dtype=text),
            "sample_id_2": pd.array([f"{VS_FOLDER}/{i:04d}_1.jpg" for i in pair_ids], dtype=text),
        }
    )
    return CACDVSReadResult(pairs=pairs, rejected=tuple(rejected), root=str(base))


def _read_vs_table(root: Path) -> CACDReadResult:
    """CACD-VS as a FaceTable (variant ``vs``): one row per pair image with ``pair_id``, ``side`` (0/1),
    ``fold`` and ``issame``. The release names no identities; ``subject_id`` is derived from the pair
    layout alone (both images of a positive pair ``vs0007``; a negative pair's ``vs0207_0`` / ``vs0207_1``),
    which is exactly what the pairs assert and nothing more. Ages are not given and stay missing."""
    vs = read_cacd_vs(root)
    pairs = vs.pairs
    both = lambda column: np.repeat(pairs[column].to_numpy(), 2)  # noqa: E731 - each pair gives two rows
    table = pair_face_table(
        sample_ids=np.column_stack([pairs["sample_id_1"], pairs["sample_id_2"]]).ravel().tolist(),
        pair_ids=both("pair_id"), sides=np.tile([0, 1], len(pairs)), folds=both("fold"),
        issame=both("issame").astype(bool), subject_prefix="vs",
    ).sort_values("sample_id", ignore_index=True)
    return CACDReadResult(table=table, rejected=vs.rejected, root=str(Path(vs.root)), variant="vs", metadata=None)


# ---------------------------------------------------------------------------------------------------------
# Summary


def verify_summary(result: CACDReadResult) -> dict[str, Any]:
    """JSON-ready summary of a read: sizes, every rejected entry with its reason, and group counts."""
    table = result.table
    bands = age_band(table["age"], AGE_BAND_EDGES)
    groups: dict[str, dict[str, int]] = {
        "age_band": {label: int((bands == label).sum()) for label in age_band_names(AGE_BAND_EDGES)},
    }
    if result.variant == "metadata":
        groups["year"] = {str(y): int(n) for y, n in sorted(Counter(table["year"].dropna().tolist()).items())}
    return read_summary("cacd", result, root=result.root, variant=result.variant, groups=groups, metadata=result.metadata)
