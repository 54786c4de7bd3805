"""The FaceTable: one row per image, the common currency of every dataset reader.

A FaceTable is a plain :class:`pandas.DataFrame` with these columns (more may follow, per dataset):

============  ==========================================================================================
column        meaning
============  ==========================================================================================
sample_id     image path relative to the dataset root, forward slashes; unique; the key of predictions
subject_id    identity of the person (string), or missing (``<NA>``) where the dataset has none (UTKFace)
age           age in whole years (int), or missing where the dataset has none
gender        ``"male"`` / ``"female"`` (the vocabulary in :data:`GENDERS`), or missing
race          one of :data:`RACES` for datasets that label it, or missing
race_code     the dataset's own race code, as written in the dataset (kept for audit)
gender_code   the dataset's own gender code, as written in the dataset
============  ==========================================================================================

A reader never guesses a missing label: it rejects the row and says why (see :class:`Reject`); its name or
row parser says so in one result type, :class:`Parsed`.
:func:`check_face_table` enforces the invariants, WILDS ``check_init`` style, so a bug in a reader fails
loudly instead of producing a subtly wrong benchmark.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Generic, TypeVar

import numpy as np
import pandas as pd

#: Documented vocabulary for gender. Datasets' own codes are mapped onto it and kept in ``gender_code``.
GENDERS: tuple[str, ...] = ("male", "female")

#: Documented vocabulary for race/ethnicity: UTKFace's five labels, lower-case.
#: Other datasets map onto it where their categories coincide and extend it otherwise (documented per reader).
RACES: tuple[str, ...] = ("white", "black", "asian", "indian", "others")

REQUIRED_COLUMNS: tuple[str, ...] = ("sample_id", "subject_id", "age", "gender", "race", "race_code", "gender_code")

T = TypeVar("T")


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """Result of parsing one file name or row: exactly one of ``value`` (accepted) and ``reason`` (rejected).

    Every reader's parser returns one, so a caller tests ``ok`` (or ``value is None``) and never the type.

    >>> Parsed.accept(34).value, Parsed.accept(34).ok
    (34, True)
    >>> Parsed.reject("age field empty")
    Parsed(value=None, reason='age field empty')
    >>> Parsed(None, None)
    Traceback (most recent call last):
    ...
    ValueError: Parsed needs exactly one of value and reason
    """

    value: T | None
    reason: str | None

    def __post_init__(self) -> None:
        if (self.value is None) == (self.reason is None):
            raise ValueError("Parsed needs exactly one of value and reason")

    @property
    def ok(self) -> bool:
        """Whether the name or row was accepted (``value`` set)."""
        return self.value is not None

    @classmethod
    def accept(cls, value: T) -> Parsed[T]:
        """An accepted result holding ``value``."""
        return cls(value, None)

    @classmethod
    def reject(cls, reason: str) -> Parsed[T]:
        """A rejected result with ``reason`` (one sentence fragment, as in :class:`Reject`)."""
        return cls(None, reason)


@dataclass(frozen=True)
class Reject:
    """A file or row a reader refused, and why (one sentence fragment, e.g. ``"race field missing"``)."""

    sample_id: str
    reason: str


@dataclass(frozen=True)
class ReadResult:
    """What a reader returns: the accepted rows as a FaceTable and the rejected ones with reasons."""

    table: pd.DataFrame
    rejected: tuple[Reject, ...]


def check_face_table(table: pd.DataFrame) -> pd.DataFrame:
    """Check the FaceTable invariants and return the table unchanged; raise ``ValueError`` on a violation.

    >>> t = pd.DataFrame({"sample_id": ["a.jpg"], "subject_id": [pd.NA], "age": [3], "gender": ["male"],
    ...                   "race": ["white"], "race_code": ["0"], "gender_code": ["0"]})
    >>> check_face_table(t) is t
    True
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"FaceTable is missing columns {missing}")
    if table["sample_id"].isna().any():
        raise ValueError("FaceTable has a missing sample_id")
    duplicated = table["sample_id"][table["sample_id"].duplicated()]
    if len(duplicated):
        raise ValueError(f"FaceTable has duplicate sample_id {duplicated.iloc[0]!r}")
    if table["sample_id"].str.contains("\\\\", regex=False).any() or table["sample_id"].str.startswith("/").any():
        raise ValueError("FaceTable sample_id must be a relative path with forward slashes")
    ages = table["age"].dropna()
    if len(ages) and ((ages < 0).any() or (ages > 130).any()):
        raise ValueError("FaceTable age outside 0..130")
    bad_gender = set(table["gender"].dropna()) - set(GENDERS)
    if bad_gender:
        raise ValueError(f"FaceTable gender outside the vocabulary: {sorted(bad_gender)}")
    bad_race = set(table["race"].dropna()) - set(RACES)
    if bad_race:
        raise ValueError(f"FaceTable race outside the vocabulary: {sorted(bad_race)}")
    return table


def age_band_names(edges: Iterable[int]) -> tuple[str, ...]:
    """Labels of the bands starting at ``edges``: ``(0, 3, 10)`` gives ``("0-2", "3-9", "10+")``."""
    edges = _check_edges(edges)
    labels = [f"{lo}-{hi - 1}" if hi - 1 > lo else f"{lo}" for lo, hi in pairwise(edges)]
    return (*labels, f"{edges[-1]}+")


def _check_edges(edges: Iterable[int]) -> tuple[int, ...]:
    edges = tuple(edges)
    if not edges or any(int(e) != e for e in edges) or any(b <= a for a, b in pairwise(edges)):
        raise ValueError(f"age band edges must be strictly increasing whole numbers, got {edges}")
    return tuple(int(e) for e in edges)


def age_band(ages: Iterable[float] | pd.Series, edges: Iterable[int]) -> pd.Series:
    """Age band label of each age, as an ordered categorical Series (index kept from a Series input).

    Band ``i`` holds ages in ``[edges[i], edges[i+1])``; the last band is open (``"70+"``). Missing ages give
    missing bands; an age below ``edges[0]`` is an error.

    >>> age_band([2, 3, 70], (0, 3, 10, 20, 70)).tolist()
    ['0-2', '3-9', '70+']
    """
    edges = _check_edges(edges)
    labels = age_band_names(edges)
    series = ages if isinstance(ages, pd.Series) else pd.Series(list(ages), dtype="object")
    values = pd.to_numeric(series.astype("object").where(series.notna(), np.nan)).astype("float64")
    if (values < edges[0]).any():
        raise ValueError(f"age {values[values < edges[0]].iloc[0]:g} below the first band edge {edges[0]}")
    bands = pd.cut(values, bins=[*edges, np.inf], right=False, labels=list(labels))
    return pd.Series(pd.Categorical(bands, categories=list(labels), ordered=True), index=series.index, name="age_band")


# --------------------------------------------------------------------------------------------- shared by readers


def vocabulary_counts(values: pd.Series, vocabulary: Iterable[str]) -> dict[str, int]:
    """Counts over ``vocabulary`` in order (zeros kept), then any other value sorted, then ``"missing"``.

    >>> vocabulary_counts(pd.Series(["b", None, "a", "z"]), ["a", "b", "c"])
    {'a': 1, 'b': 1, 'c': 0, 'z': 1, 'missing': 1}
    """
    present = values.astype("object").where(values.notna(), "missing").value_counts()
    counts = {str(v): int(present.get(v, 0)) for v in vocabulary}
    for value, count in sorted(present.items(), key=lambda kv: str(kv[0])):
        if str(value) not in counts and value != "missing":
            counts[str(value)] = int(count)
    if "missing" in present.index:
        counts["missing"] = int(present["missing"])
    return counts


def read_summary(dataset: str, result: ReadResult, *, root, variant: str | None,
                 groups: dict[str, dict[str, int]], **extra) -> dict:
    """The JSON-ready summary every ``facebench data verify`` prints: sizes, rejects with reasons, groups."""
    table = result.table
    summary = {"dataset": dataset, "root": str(root)}
    if variant is not None:
        summary["variant"] = variant
    summary.update(extra)
    summary.update({
        "n_samples": int(len(table)),
        "n_subjects": int(table["subject_id"].nunique()),
        "n_rejected": len(result.rejected),
        "rejected": [{"sample_id": r.sample_id, "reason": r.reason} for r in result.rejected],
        "groups": groups,
    })
    return summary


def resolve_dataset_root(root, folder: str, *, title: str, also: tuple[str, ...] = ()):
    """The dataset root: ``root`` when it holds ``folder`` (or one of the files ``also``), its parent when
    ``root`` *is* ``folder``; otherwise one sentence naming the path, with a did-you-mean on its subfolders."""
    import os
    from pathlib import Path

    from facebench.errors import UserInputError, did_you_mean

    root = Path(root)
    if not root.exists():
        raise UserInputError(f"{title} root {root} does not exist.")
    if not root.is_dir():
        raise UserInputError(f"{title} root {root} is not a folder.")
    if (root / folder).is_dir() or any((root / name).is_file() for name in also):
        return root
    absolute = Path(os.path.abspath(root))
    if absolute.name == folder:
        return root.parent if root.name == folder else absolute.parent
    try:
        subfolders = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    except OSError as error:
        raise UserInputError(f"Cannot list {title} root {root}: {error.strerror or error}.") from None
    same = [name for name in subfolders if name.lower() == folder.lower()]
    hint = f" (did you mean '{same[0]}'?)" if same else did_you_mean(folder, subfolders)
    raise UserInputError(
        f"{title} root {root} has no {folder}/ folder{hint}; point it at the folder that contains {folder}/ "
        f"(or at {folder}/ itself)."
    )


#: Name endings (compared in lower case) of image files. A folder, or something other than a file, under such a
#: name stands where an image should be: it is rejected with a reason, where other folders are skipped silently.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def list_folder(directory, *, title: str) -> tuple[list[str], dict[str, str]]:
    """The non-hidden entries directly in ``directory`` (images are not opened): the sorted names of the files, and
    ``{name: reason}`` for each entry that stands where a file should but cannot be read as one: a dangling
    symbolic link, a link loop, something that is not a regular file, and a folder named like an image
    (:data:`IMAGE_SUFFIXES`; other folders are skipped). One bad entry is named there and never blocks the
    listing; a folder that cannot be listed at all is one sentence naming it."""
    import errno
    import os

    from facebench.errors import UserInputError

    names: list[str] = []
    problems: dict[str, str] = {}
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_file():  # follows links: a link to a file is a file
                        names.append(entry.name)
                    elif entry.is_dir():
                        if entry.name.lower().endswith(IMAGE_SUFFIXES):
                            problems[entry.name] = "a folder, not an image file"
                    elif entry.is_symlink():
                        problems[entry.name] = "dangling symbolic link (its target does not exist)"
                    else:
                        problems[entry.name] = "not a regular file (a pipe, socket or device)"
                except OSError as error:  # is_file() raises ELOOP for a link that points at itself
                    problems[entry.name] = ("symbolic link loop" if error.errno == errno.ELOOP
                                            else f"cannot be read: {error.strerror or error}")
    except OSError as error:
        raise UserInputError(f"Cannot list {title} folder {directory}: {error.strerror or error}.") from None
    return sorted(names), dict(sorted(problems.items()))


def list_files(directory, *, title: str) -> list[str]:
    """Sorted names of the non-hidden files directly in ``directory`` (:func:`list_folder` without the entries
    that are not readable files)."""
    return list_folder(directory, title=title)[0]


def parse_files(sample_ids: Iterable[str], parse) -> tuple[list[tuple[str, T]], list[Reject]]:
    """Run a name parser (``name -> Parsed``) over ``sample_ids`` (``folder/.../name``): the accepted
    ``(sample_id, value)`` pairs and the rejects with their reasons, in input order.

    >>> ok = lambda name: Parsed.accept(int(name[:-4])) if name[:-4].isdigit() else Parsed.reject("not a number")
    >>> parse_files(["a/1.jpg", "a/x.jpg"], ok)
    ([('a/1.jpg', 1)], [Reject(sample_id='a/x.jpg', reason='not a number')])
    """
    rows: list[tuple[str, T]] = []
    rejected: list[Reject] = []
    for sample_id in sample_ids:
        parsed = parse(sample_id.rsplit("/", 1)[-1])
        if parsed.value is None:
            rejected.append(Reject(sample_id, str(parsed.reason)))
        else:
            rows.append((sample_id, parsed.value))
    return rows, rejected


def parse_folder(directory, prefix: str, parse, *, title: str) -> tuple[list[tuple[str, T]], list[Reject], int]:
    """:func:`list_folder` then :func:`parse_files` over ``prefix + name``: the accepted ``(sample_id, value)``
    pairs, the rejects sorted by ``sample_id`` (malformed names, and the entries that are not readable files with
    their reason) and how many entries were seen."""
    names, problems = list_folder(directory, title=title)
    rows, rejected = parse_files((f"{prefix}{name}" for name in names), parse)
    rejected += [Reject(f"{prefix}{name}", reason) for name, reason in problems.items()]
    rejected.sort(key=lambda reject: reject.sample_id)
    return rows, rejected, len(names) + len(problems)


def nothing_read_error(title: str, where, *, n_seen: int, rejected, example: str, unit: str = "files"):
    """The one sentence for a read that accepted nothing: no candidates at all, or every one rejected."""
    from facebench.errors import UserInputError

    expected = f"expected files named like {example}"
    if n_seen == 0 or not rejected:
        return UserInputError(f"No {title} images under {where}: {expected}.")
    first = rejected[0]
    return UserInputError(
        f"No valid {title} images under {where}: all {n_seen} {unit} were rejected, "
        f"e.g. {first.sample_id} ({first.reason}); {expected}."
    )


def check_variant(variant: str, known: Iterable[str], *, title: str) -> str:
    """Return ``variant`` if ``known`` lists it, else the one-sentence error with a did-you-mean.

    >>> check_variant("aligned", ("aligned", "wild"), title="UTKFace")
    'aligned'
    >>> check_variant("alinged", ("aligned", "wild"), title="UTKFace")
    Traceback (most recent call last):
    ...
    facebench.errors.UserInputError: Unknown UTKFace variant 'alinged' (did you mean 'aligned'?); choose one of aligned, wild.
    """
    from facebench.errors import UserInputError, did_you_mean

    known = tuple(known)
    if variant not in known:
        raise UserInputError(
            f"Unknown {title} variant '{variant}'{did_you_mean(variant, known)}; choose one of {', '.join(known)}."
        )
    return variant


def face_table(*, order: Iterable[str] | None = None, **columns) -> pd.DataFrame:
    """Build a FaceTable with the contract's dtypes, check its invariants and return it.

    A column given as a list becomes nullable strings (``None`` → ``<NA>``); numpy and pandas arrays are kept
    as they are (ages as int64, counts, flags). A required column that is not given is all-missing: nullable
    strings, or nullable Int64 for ``age``. ``order`` fixes the column order (a reader's ``COLUMNS``).

    >>> t = face_table(sample_id=["a.jpg", "b.jpg"], subject_id=["p1", None], age=np.array([3, 40]))
    >>> t.dtypes.astype(str).to_dict()["subject_id"], t["subject_id"].isna().tolist(), bool(t["race"].isna().all())
    ('string', [False, True], True)
    >>> face_table(sample_id=["a.jpg"]).dtypes["age"]
    Int64Dtype()
    """
    n = len(columns["sample_id"])
    text = pd.StringDtype()
    frame: dict[str, object] = {}
    for name in (*REQUIRED_COLUMNS, *columns):
        if name in frame:
            continue
        values = columns.get(name)
        if values is None:
            values = pd.array([pd.NA] * n, dtype="Int64" if name == "age" else text)
        elif not isinstance(values, (np.ndarray, pd.api.extensions.ExtensionArray)):
            values = pd.array([pd.NA if v is None else v for v in values], dtype=text)
        frame[name] = values
    table = pd.DataFrame(frame, columns=list(order) if order is not None else None)
    return check_face_table(table)


def pair_face_table(*, sample_ids: Iterable[str], pair_ids: Iterable[int], sides: Iterable[int],
                    folds: Iterable[int], issame: Iterable[bool], subject_prefix: str) -> pd.DataFrame:
    """The FaceTable of a pair list that names no people (CACD-VS's folder, insightface's ``agedb_30.bin``).

    Subject ids come from the pair layout alone: both images of a genuine pair share ``<prefix><pair>``; an
    impostor pair's images are ``<prefix><pair>_0`` and ``<prefix><pair>_1``. Age and gender stay missing.

    >>> t = pair_face_table(sample_ids=["a", "b", "c", "d"], pair_ids=[0, 0, 1, 1], sides=[0, 1, 0, 1],
    ...                     folds=[0, 0, 0, 0], issame=[True, True, False, False], subject_prefix="vs")
    >>> t["subject_id"].tolist()
    ['vs0000', 'vs0000', 'vs0001_0', 'vs0001_1']
    """
    pair_ids, sides = np.asarray(list(pair_ids), dtype=np.int64), np.asarray(list(sides), dtype=np.int64)
    issame = np.asarray(list(issame), dtype=bool)
    subjects = [f"{subject_prefix}{pair:04d}" if same else f"{subject_prefix}{pair:04d}_{side}"
                for pair, side, same in zip(pair_ids, sides, issame, strict=True)]
    return face_table(sample_id=list(sample_ids), subject_id=subjects, pair_id=pair_ids, side=sides,
                      fold=np.asarray(list(folds), dtype=np.int64), issame=issame)
