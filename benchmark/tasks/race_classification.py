"""Race classification across datasets (seed 001 section 2): White vs Other, trained on one dataset, tested on another.

Why the protocol exists: seed 001 asks whether a classifier learns "a generalised concept of race" or only the
look of its training dataset, because selecting a "racially diverse" subset of an unlabelled dataset with such a
classifier is what people do; its answer (Table 1) is that a UTKFace-trained classifier falls far below its
source accuracy on CelebA. facebench measures that drop, and who it falls on (gender, age, CelebA attributes).

What the labels are: UTKFace's and FairFace's race labels, and CelebA's ``annotated_race``, are labels that
**annotators assigned from the photo**, not how the people pictured identify themselves. The two classes are the
paper's grouping: ``white`` (the dataset's White category) against ``other`` (every other category: Black, Asian,
Indian, Others, ...). Images without a label take no part.

Predictions are a CSV with one row per test image, either ``sample_id,label`` (``white`` or ``other``) or
``sample_id,p_white`` (the probability of ``white``, a number in [0, 1]; the label is ``white`` where it is at
least 0.5). Per-sample outcomes carry ``y_true``/``y_pred`` (the two labels) and the group columns: ``race`` (the
dataset's own category, e.g. ``black``), ``gender``, ``age_band`` (from ``age``; FairFace's own age bin; missing on
CelebA, which has no ages), and CelebA's ``Pale_Skin``, ``Young`` and ``Male`` attributes (``yes``/``no``; missing
elsewhere). The ``differentials`` view adds a confusion matrix per group and the demographic-parity and
equalized-odds differences per attribute (:mod:`facebench.metrics.classification`, equal to fairlearn's).

>>> RACE_CLASSIFICATION.baseline_kind, RACE_CLASSIFICATION.positive_label
('race_classification', 'white')
>>> binary_race(pd.Series(["white", "black", None, "others"])).tolist()
['white', 'other', <NA>, 'other']
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facebench.data.splits import race_label_column
from facebench.data.table import age_band
from facebench.errors import UserInputError, shorten
from facebench.fit_data import LabelFitData
from facebench.limits import read_text
from facebench.tasks.base import ExtraSplit, Task, check_sample_ids

__all__ = ["CELEBA_ATTRIBUTE_GROUPS", "RACE_CLASSIFICATION", "RaceClassificationTask", "binary_race",
           "epochs_to_convergence"]

POSITIVE, NEGATIVE = "white", "other"
#: The CelebA attributes the outcomes carry as groups (``yes``/``no``): seed 001 notes CelebA's people "of
#: different race, yet similar skin-tone"; ``Pale_Skin`` is the attribute closest to that, ``Young`` and ``Male``
#: stand in for age and gender.
CELEBA_ATTRIBUTE_GROUPS: tuple[str, ...] = ("Pale_Skin", "Young", "Male")
#: Largest predictions file read.
MAX_BYTES = 64 * 1024 * 1024


def binary_race(values: pd.Series) -> pd.Series:
    """The paper's two classes from a dataset's race categories: ``white`` stays, every other category is
    ``other``; a missing label stays missing."""
    values = values.astype("string")
    return values.where(values.isna() | (values == POSITIVE), NEGATIVE)


def epochs_to_convergence(losses: list[float], *, tolerance: float = 0.01) -> int | None:
    """Seed 001 Table 3's "epochs till convergence" (the paper gives no rule): the first epoch (1-based) from which
    the training loss stays within ``tolerance`` (relative) of the lowest loss of the stage. None for no epochs.

    >>> epochs_to_convergence([0.7, 0.5, 0.41, 0.4, 0.401])
    4
    """
    values = [float(v) for v in losses if v is not None and np.isfinite(v)]
    if not values:
        return None
    bound = min(values) * (1 + tolerance) + 1e-12
    epoch = len(values)
    while epoch > 1 and values[epoch - 2] <= bound:
        epoch -= 1
    return epoch


@dataclass(frozen=True, kw_only=True)
class RaceClassificationTask(Task):
    """Seed 001's White-vs-Other classifier, trained on a source dataset and scored on a target (module docstring)."""

    name: str = "race_classification"
    baseline_kind: str = "race_classification"
    predictions_file: str = "predictions.csv"
    description: str = ("CSV with header sample_id,label (label white or other) or sample_id,p_white (the probability "
                        "of white, in [0, 1]): one row per test image")
    group_attributes: tuple[str, ...] = ("race", "gender", "age_band", *CELEBA_ATTRIBUTE_GROUPS)
    #: Source accuracy: the held-out images of the training dataset (``train_dataset``'s validation part).
    extra_splits: tuple[ExtraSplit, ...] = (ExtraSplit(label="source", part="val", dataset="train"),)
    positive_label: str = POSITIVE
    label_columns: tuple[tuple[str, ...], ...] = (("sample_id", "label"), ("sample_id", "p_white"))

    def labels(self, table: pd.DataFrame) -> pd.Series:
        """Each image's class (``white``/``other``, missing without a label), indexed by ``sample_id``."""
        return binary_race(table.set_index("sample_id")[race_label_column(table)])

    def fit_data(self, table: pd.DataFrame, split, images) -> LabelFitData:
        """Labelled train and validation images (1 = white); images without a label never reach a split part."""
        labels = self.labels(table)

        def coded(part: str) -> np.ndarray:
            values = labels.reindex(list(split[part]))
            if values.isna().any():
                raise UserInputError(f"Split part '{part}' holds images without a race label, e.g. "
                                     f"{shorten(str(values[values.isna()].index[0]))}.")
            return (values == POSITIVE).to_numpy(dtype=np.float32)

        train, val = coded("train"), coded("val") if "val" in split.parts else np.zeros(0, np.float32)
        train_images = images("train")
        val_images = images("val") if len(val) else train_images[:0]  # no validation part: an empty one
        return LabelFitData(train_images=train_images, train_ages=np.full(len(train), np.nan), val_images=val_images,
                            val_ages=np.full(len(val), np.nan), train_labels=train, val_labels=val)

    def write_predictions(self, path: Path, sample_ids, outputs: np.ndarray) -> None:
        """Probabilities of ``white`` as ``sample_id,p_white``."""
        from facebench.io import atomic_write

        frame = pd.DataFrame({"sample_id": list(sample_ids), "p_white": np.asarray(outputs, dtype=float).reshape(-1)})
        with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
            frame.to_csv(handle, index=False, float_format="%.6f")

    def read_predictions(self, path: str | Path, expected_ids: tuple[str, ...]) -> pd.DataFrame:
        """Validate a predictions CSV against the test ids: ``sample_id, label, p_white`` in test order (``p_white``
        NaN for a label file). Every problem is one sentence naming the file and line."""
        path = Path(path)
        text = read_text(path, what="Predictions file", max_bytes=MAX_BYTES)
        try:
            rows = list(csv.reader(text.splitlines()))
        except csv.Error as error:
            raise UserInputError(f"{path}: not a readable CSV ({error}).") from None
        if not rows:
            raise UserInputError(f"{path}: the file is empty; expected a header {' or '.join(','.join(c) for c in self.label_columns)}.")
        header = tuple(rows[0])
        if header not in self.label_columns:
            shown = ",".join(repr(c)[1:-1] for c in header) or "missing"
            raise UserInputError(f"{path}: columns are {shorten(shown)}; expected exactly sample_id,label or "
                                 "sample_id,p_white.")
        ids, labels, probabilities = [], [], []
        for line, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            if len(row) != 2:
                raise UserInputError(f"{path}: line {line} has {len(row)} fields; the header has 2.")
            value = row[1].strip()
            if header[1] == "label":
                if value not in (POSITIVE, NEGATIVE):
                    raise UserInputError(f"{path}: line {line} has label {shorten(value)}; a label is white or other.")
                labels.append(value)
                probabilities.append(np.nan)
            else:
                try:
                    p = float(value)
                except ValueError:
                    p = np.nan
                if not (np.isfinite(p) and 0.0 <= p <= 1.0):
                    raise UserInputError(f"{path}: line {line} has p_white {shorten(value) if value else ''!r}, which "
                                         "is not a probability in [0, 1].")
                labels.append(POSITIVE if p >= 0.5 else NEGATIVE)
                probabilities.append(p)
            ids.append(row[0])
        check_sample_ids(path, ids, expected_ids)
        frame = pd.DataFrame({"sample_id": ids, "label": labels, "p_white": probabilities})
        return frame.set_index("sample_id").loc[list(expected_ids)].reset_index()

    def outcomes(self, table: pd.DataFrame, predictions: pd.DataFrame, *, protocol, split) -> pd.DataFrame:
        """sample_id, y_true, y_pred, p_white and the group columns (module docstring)."""
        rows = table.set_index("sample_id").loc[predictions["sample_id"]]
        column = race_label_column(table)
        y_true = binary_race(rows[column]).to_numpy(dtype=object)
        if pd.isna(y_true).any():
            raise UserInputError("Scored images must have a race label; the split gave one without.")
        if "age" in rows and rows["age"].notna().any():
            bands = age_band(rows["age"].astype("Float64").to_numpy(dtype=float, na_value=np.nan),
                             protocol.groups.age_bands).astype(object).to_numpy()
        elif "age_bin" in rows:  # FairFace: ages are bins only
            bands = rows["age_bin"].astype(object).to_numpy()
        else:
            bands = np.full(len(rows), None, dtype=object)
        out = pd.DataFrame({
            "sample_id": predictions["sample_id"].to_numpy(),
            "y_true": y_true,
            "y_pred": predictions["label"].to_numpy(dtype=object),
            "p_white": predictions["p_white"].to_numpy(dtype=float),
            "race": rows[column].astype(object).to_numpy(),
            "gender": rows["gender"].astype(object).to_numpy(),
            "age_band": bands,
        })
        for attribute in CELEBA_ATTRIBUTE_GROUPS:
            if attribute in rows:
                out[attribute] = np.where(rows[attribute].to_numpy(dtype=bool), "yes", "no").astype(object)
            else:
                out[attribute] = np.full(len(rows), None, dtype=object)
        return out.replace({pd.NA: None})

    def differentials(self, table: pd.DataFrame, predictions: pd.DataFrame, *, protocol, split, seed: int) -> dict:
        """Confusion matrices per group and the demographic-parity and equalized-odds differences per attribute."""
        from facebench.metrics.classification import demographic_parity_difference, equalized_odds_difference

        outcomes = self.outcomes(table, predictions, protocol=protocol, split=split)
        true = outcomes["y_true"].to_numpy(dtype=object) == POSITIVE
        pred = outcomes["y_pred"].to_numpy(dtype=object) == POSITIVE

        def matrix(mask: np.ndarray) -> dict[str, int]:
            t, p = true[mask], pred[mask]
            return {"tp": int((t & p).sum()), "fn": int((t & ~p).sum()), "fp": int((~t & p).sum()),
                    "tn": int((~t & ~p).sum())}

        confusion: dict[str, dict[str, dict[str, int]]] = {"overall": {"all": matrix(np.ones(len(true), bool))}}
        fairness: dict[str, dict[str, float | None]] = {}
        for attribute in protocol.groups.attributes:
            groups = outcomes[attribute]
            present = groups.notna().to_numpy()
            if not present.any():
                continue
            values = groups.to_numpy(dtype=object)
            confusion[attribute] = {str(g): matrix(values == g) for g in pd.unique(values[present])}
            y_t, y_p, sf = true[present].astype(int), pred[present].astype(int), values[present].astype(str)
            fairness[attribute] = {
                "demographic_parity_difference": _finite(demographic_parity_difference(y_t, y_p, sensitive_features=sf)),
                "equalized_odds_difference": _finite(equalized_odds_difference(y_t, y_p, sensitive_features=sf)),
                "n_groups": int(len(np.unique(sf))),
            }
        return {"kind": "binary_classification", "positive_label": POSITIVE, "negative_label": NEGATIVE,
                "confusion": confusion, "fairness": fairness,
                "note": "confusion counts with white as the positive class; fairness differences as fairlearn "
                        "computes them (between groups, worst case), the sensitive feature being the attribute"}


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


RACE_CLASSIFICATION = RaceClassificationTask()
