"""People who are in both the training data and the test data (identity overlap).

A face model scored on people it was trained on is scored on faces it has, in part, learnt: its numbers say
less about strangers. The runner measures the overlap once per protocol run, records it in results.json
(``data.identity_overlap``, :meth:`IdentityOverlap.as_json`), warns when it is not zero, and the report shows it.

What can be compared:

- within one dataset (the protocol's split supplies the training parts): the subject ids of the training parts
  (``train`` and ``val``, everything a baseline is fitted with) against those of the ``test`` part;
- across datasets (a protocol's ``train_dataset``): only where both name their people the same way, i.e. both
  :class:`~facebench.data.datasets.DatasetSpec` declare a ``person_name_column`` (CACD's and AgeDB's celebrity
  names) and both tables have it; names are compared after :func:`normalise_name` (CACD writes
  ``Robin_Williams``, AgeDB ``RobinWilliams``).

Elsewhere the overlap is not measurable (``n`` is None) and the record says why: FG-NET's and MORPH's subject
numbers mean nothing to another dataset, a pair pack (``agedb_30.bin``, CACD-VS) names nobody, UTKFace has no
subject ids.

>>> normalise_name("Jean_Claude Van-Damme") == normalise_name("JeanClaudeVanDamme")
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from facebench.registry import DATASETS

if TYPE_CHECKING:
    from facebench.data.datasets import LoadedDataset
    from facebench.data.splits import Split

__all__ = ["IdentityOverlap", "IdentityOverlapWarning", "describe_identity_overlap", "identity_overlap",
           "normalise_name"]

#: The parts of a training split a baseline is fitted with (``val`` steers the learning-rate schedule).
TRAINING_PARTS: tuple[str, ...] = ("train", "val")
#: How many overlapping people results.json names, and the length each name is cut to.
N_EXAMPLES = 5
EXAMPLE_WIDTH = 40


class IdentityOverlapWarning(UserWarning):
    """Some people of the test data are also in the training data."""


def normalise_name(name: str) -> str:
    """A person's name as compared across datasets: lower case, letters and digits only (no spaces,
    underscores or punctuation)."""
    return "".join(character for character in name.casefold() if character.isalnum())


@dataclass(frozen=True, kw_only=True)
class IdentityOverlap:
    """How many people are in both the training and the test data, and what was compared."""

    #: People in both; None where the two sides cannot be compared (``compared`` says why).
    n: int | None
    #: The training side: dataset and parts, e.g. ``cacd train+val``.
    train: str
    #: The test side, e.g. ``agedb test``.
    test: str
    #: What was compared (``celebrity names (column 'name'), ...``), or why nothing could be.
    compared: str
    #: Up to :data:`N_EXAMPLES` of the people in both, as the test data spells them, each cut short.
    examples: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The ``data.identity_overlap`` object of results.json."""
        return {"n": self.n, "train": self.train, "test": self.test, "compared": self.compared,
                "examples": list(self.examples)}


def describe_identity_overlap(record: Mapping[str, Any]) -> str:
    """One sentence about a ``data.identity_overlap`` record: the runner's warning and the report's line."""
    n, train, test = record.get("n"), record.get("train"), record.get("test")
    if n is None:
        return f"Identity overlap between the training data and the test data not measured: {record.get('compared')}."
    if n == 0:
        return (f"Identity overlap: no person of the test data ({test}) is in the training data ({train}); "
                f"compared: {record.get('compared')}.")
    examples = ", ".join(record.get("examples") or ())
    return (f"Identity overlap: {n} {'person' if n == 1 else 'people'} of the test data ({test}) "
            f"{'is' if n == 1 else 'are'} also in the training data ({train}), e.g. {examples} (compared: "
            f"{record.get('compared')}), so {'that person' if n == 1 else 'those people'} may score better than "
            "strangers would.")


def _cut(name: str) -> str:
    return name if len(name) <= EXAMPLE_WIDTH else name[: EXAMPLE_WIDTH - 1] + "…"


def _part_names(split: Split, parts: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(part for part in parts if part in split.parts)


def _column_values(dataset: LoadedDataset, split: Split, parts: tuple[str, ...], column: str) -> pd.Series:
    """``column`` of the images in ``parts`` of ``split``, missing values dropped."""
    ids = {sample_id for part in parts for sample_id in split[part]}
    table = dataset.table
    return table.loc[table["sample_id"].isin(ids), column].dropna().astype(str)


def _name_column(dataset: LoadedDataset) -> tuple[str | None, str]:
    """The column that names ``dataset``'s people comparably across datasets, or None and why not."""
    column = getattr(DATASETS.get(dataset.name), "person_name_column", None)
    if column is None:
        return None, f"{dataset.name} identifies its people by its own numbers (or not at all)"
    if column not in dataset.table.columns or dataset.table[column].isna().all():
        return None, f"{dataset.name} as read here names no people (no '{column}' values)"
    return column, ""


def identity_overlap(*, train: LoadedDataset, train_split: Split, test: LoadedDataset, test_split: Split
                     ) -> IdentityOverlap:
    """The people in both the training parts of ``train_split`` and the ``test`` part of ``test_split``
    (see the module docstring for what is compared)."""
    train_parts, test_parts = _part_names(train_split, TRAINING_PARTS), _part_names(test_split, ("test",))
    train_side, test_side = f"{train.name} {'+'.join(train_parts)}", f"{test.name} {'+'.join(test_parts)}"
    if train is test:
        column, key = "subject_id", str  # one reader wrote both sides: ids compare as written
        compared = "subject ids (column 'subject_id')"
        if test.table[column].isna().all():
            return IdentityOverlap(n=None, train=train_side, test=test_side,
                                   compared=f"{test.name} has no subject ids")
        train_column = test_column = column
    else:
        (train_column, train_reason), (test_column, test_reason) = _name_column(train), _name_column(test)
        if train_column is None or test_column is None:
            reasons = "; ".join(reason for reason in (train_reason, test_reason) if reason)
            return IdentityOverlap(n=None, train=train_side, test=test_side,
                                   compared=f"{reasons}, so the two datasets' people cannot be matched")
        key = normalise_name
        columns = (f"column '{train_column}'" if train_column == test_column
                   else f"columns '{train_column}' and '{test_column}'")
        compared = f"people's names ({columns}), ignoring case, spaces, underscores and punctuation"
    trained = {key(value) for value in _column_values(train, train_split, train_parts, train_column)}
    spelled: dict[str, str] = {}  # key -> the test data's first spelling
    for value in _column_values(test, test_split, test_parts, test_column):
        spelled.setdefault(key(value), value)
    both = sorted(spelled.keys() & trained)
    examples = tuple(_cut(spelled[k]) for k in both[:N_EXAMPLES])
    return IdentityOverlap(n=len(both), train=train_side, test=test_side, compared=compared, examples=examples)
