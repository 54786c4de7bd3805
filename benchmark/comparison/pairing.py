"""Pairing two runs sample by sample: the refusals (exit 2) and the aligned per-sample outcomes.

:func:`check_comparable` refuses results that measure something else; :func:`pair_outcomes` joins the two
``outcomes.csv`` one to one (same samples, group labels and true values); :func:`metric_outcomes` gives a
metric's per-sample outcomes from a paired frame; :func:`min_group_size` the engine's rule for which groups
compete for worst and best.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from facebench.errors import UserInputError, shorten
from facebench.metrics import Metric
from facebench.registry import TASKS
from facebench.results import Run

__all__ = ["check_comparable", "PairedOutcomes", "pair_outcomes", "metric_outcomes", "min_group_size"]


def check_comparable(candidate: Run, reference: Run) -> tuple[str, ...]:
    """Refuse (UserInputError) results that measure something else; return notes on what may differ."""
    cand, ref = candidate.results_path, reference.results_path
    for key, what in (("name", "protocol"), ("version", "protocol version"), ("task", "task"),
                      ("primary_metric", "primary metric")):
        a, b = candidate.protocol[key], reference.protocol[key]
        if a != b:
            raise UserInputError(f"{cand} and {ref} were scored with different {what}s ({shorten(a)} and {shorten(b)}), "
                                 "so they cannot be compared.")
    for key, what in (("fingerprint", "data"), ("split_fingerprint", "test splits")):
        a, b = str(candidate.data[key]), str(reference.data[key])
        if a != b:
            raise UserInputError(f"{cand} and {ref} were computed on different {what} ({key} {a[:12]} and "
                                 f"{b[:12]}), so they cannot be compared.")
    notes = []
    if candidate.protocol["fingerprint"] != reference.protocol["fingerprint"]:
        fingerprints = [str(run.protocol["fingerprint"])[:12] for run in (candidate, reference)]
        profiles = [str(run.protocol.get("profile")) for run in (candidate, reference)]
        notes.append(
            f"The protocol fingerprints differ ({' and '.join(fingerprints)}; profiles "
            f"{' and '.join(profiles)}): the runs used different protocol settings (training, model, "
            "profile, bootstrap size, reference numbers, or a facebench version with more protocol keys). "
            "They are compared because protocol version, data, split, task, primary metric and every "
            "sample's group labels agree.")
    return tuple(notes)


def _read_outcomes(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise UserInputError(f"Outcomes file {path} does not exist.")
    try:
        frame = pd.read_csv(path, dtype={"sample_id": str, "database": str}, keep_default_na=False,
                            na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise UserInputError(f"{path}: not a readable outcomes CSV ({str(exc).splitlines()[0]}).") from None
    if "sample_id" not in frame.columns:
        raise UserInputError(f"{path}: column 'sample_id' is missing.")
    return frame


@dataclass(frozen=True, kw_only=True)
class PairedOutcomes:
    """The two runs' outcomes aligned row by row (in the reference's order), and their shared attributes."""

    keys: tuple[str, ...]
    reference: pd.DataFrame = field(repr=False, compare=False)
    candidate: pd.DataFrame = field(repr=False, compare=False)
    attributes: tuple[str, ...]
    #: the columns naming each row's unit of independence, when both files have them (else rows are independent)
    unit_columns: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return len(self.reference)

    @property
    def groups(self) -> pd.DataFrame:
        return self.reference[list(self.attributes)]

    @property
    def clusters(self) -> np.ndarray | None:
        """Each row's unit label(s) for the cluster bootstrap (:mod:`facebench.metrics.clusters`), or None."""
        if not self.unit_columns:
            return None
        values = self.reference[list(self.unit_columns)].to_numpy(dtype=object)
        return values[:, 0] if len(self.unit_columns) == 1 else values


def _differ(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Row positions where two aligned columns differ (NaN equals NaN; numbers to 1e-6, the CSV precision)."""
    if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
        x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
        same = np.isclose(x, y, rtol=0.0, atol=1e-6) | (np.isnan(x) & np.isnan(y))
    else:
        both_missing = a.isna().to_numpy() & b.isna().to_numpy()
        same = both_missing | (a.astype(str).to_numpy() == b.astype(str).to_numpy())
    return np.flatnonzero(~same)


def _keyed(frame: pd.DataFrame, keys: tuple[str, ...], path: Path) -> pd.DataFrame:
    """``frame`` indexed by its key columns; a repeated key is refused."""
    for key in keys:
        if key not in frame.columns:
            raise UserInputError(f"{path}: column '{key}' is missing.")
    index = (pd.MultiIndex.from_frame(frame[list(keys)].astype(str)) if len(keys) > 1
             else pd.Index(frame[keys[0]].astype(str)))
    repeated = np.flatnonzero(index.duplicated())
    if repeated.size:
        raise UserInputError(f"{path}: line {int(repeated[0]) + 2} repeats {'/'.join(keys)} "
                             f"{shorten(index[int(repeated[0])])}, so its samples cannot be paired one to one.")
    return frame.set_index(index)


def pair_outcomes(candidate: Run, reference: Run) -> PairedOutcomes:
    """Join the two ``outcomes.csv`` one to one; refuse other samples, group labels or true values."""
    ref, cand = _read_outcomes(reference.outcomes_path), _read_outcomes(candidate.outcomes_path)
    task = TASKS.get(candidate.protocol["task"])
    keys = task.row_keys + (("database",) if "database" in set(ref.columns) & set(cand.columns) else ())
    ref, cand = _keyed(ref, keys, reference.outcomes_path), _keyed(cand, keys, candidate.outcomes_path)
    only_ref, only_cand = ref.index.difference(cand.index), cand.index.difference(ref.index)
    if len(only_ref) or len(only_cand):
        first, inside, outside = ((only_ref[0], reference, candidate) if len(only_ref)
                                  else (only_cand[0], candidate, reference))
        raise UserInputError(f"The outcomes of {reference.results_path} and {candidate.results_path} do not "
                             f"hold the same samples: {len(only_ref) + len(only_cand)} are in one file only, "
                             f"the first being {shorten(first)} (in {inside.outcomes_path}, not in "
                             f"{outside.outcomes_path}).")
    cand = cand.loc[ref.index]
    by_ref, by_cand = reference.results["metrics"]["by_group"], candidate.results["metrics"]["by_group"]
    attributes = tuple(a for a in by_cand if a in by_ref and a in ref.columns and a in cand.columns)
    scored_from_columns = bool(task.outcome_columns)
    # files written before the units were recorded lack them: then rows are resampled (a note says so)
    unit_columns = tuple(task.unit_columns) if all(
        c in frame.columns for c in task.unit_columns for frame in (ref, cand)) else ()
    for column in attributes + unit_columns + (() if scored_from_columns else ("y_true",)):
        for frame, run in ((ref, reference), (cand, candidate)):
            if column not in frame.columns:
                raise UserInputError(f"{run.outcomes_path}: column '{column}' is missing.")
        bad = _differ(ref[column], cand[column])
        if bad.size:
            i = int(bad[0])
            raise UserInputError(
                f"{reference.results_path} and {candidate.results_path} give sample {shorten(ref.index[i])} "
                f"different '{column}' values ({shorten(ref[column].iloc[i])} and {shorten(cand[column].iloc[i])}; "
                f"{bad.size} samples differ), so they were not computed on the same data.")
    return PairedOutcomes(keys=keys, reference=ref.reset_index(drop=True),
                          candidate=cand.reset_index(drop=True), attributes=attributes, unit_columns=unit_columns)


def metric_outcomes(frame: pd.DataFrame, metric: Metric, *, task: str, path: Path) -> np.ndarray:
    """Per-sample outcomes of ``metric``: the task's outcome column (``outcome_columns``, e.g. CACD's ``ap``
    for MAP), else ``metric.outcomes(y_true, y_pred)``. NaN only where a ``partial`` metric is undefined."""
    columns = dict(TASKS.get(task).outcome_columns)
    if columns and metric.name not in columns:
        raise UserInputError(f"Metric '{metric.name}' has no per-sample outcome column in task '{task}' "
                             f"(it has {', '.join(columns)}).")
    needed = (columns[metric.name],) if columns else ("y_true", "y_pred")
    for column in needed:
        if column not in frame.columns:
            raise UserInputError(f"{path}: column '{column}' is missing.")
    try:
        if columns:
            out = pd.to_numeric(frame[needed[0]], errors="raise").to_numpy(dtype=float)
        else:
            out = metric.outcomes(frame["y_true"].to_numpy(), frame["y_pred"].to_numpy())
    except (ValueError, TypeError) as exc:
        raise UserInputError(f"{path}: the outcomes of '{metric.name}' cannot be computed ({exc}).") from None
    if np.isinf(out).any() or (np.isnan(out).any() and not metric.partial):
        raise UserInputError(f"{path}: the outcomes of '{metric.name}' contain NaN or infinite values.")
    return out


def min_group_size(run: Run) -> int:
    """The protocol's ``min_group_size``: a group competes for worst/best when its ``n`` is at least this.

    Read from ``statistics.min_group_size`` (results schema 1.1). **Fallback for schema 1.0 files**, which do
    not store it: recovered from the run's ``"small"`` flags. Every flagged group has ``n`` below it and every
    other group at least it, so one more than the largest flagged ``n`` sorts the groups exactly as the run
    did (1 when nothing is flagged). Old leaderboards stay comparable without rescoring every entry.
    """
    statistics = run.statistics
    if statistics is not None:
        return int(statistics["min_group_size"])
    small = [int(value.get("n", 0)) for groups in run.results["metrics"]["by_group"].values()
             for metrics in groups.values() for value in metrics.values()
             if isinstance(value, dict) and value.get("flag") == "small"]
    return max(small) + 1 if small else 1
