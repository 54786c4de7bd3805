"""Scoring: predictions → per-sample outcomes → the disaggregation engine → results.

One function, :func:`score_predictions_file`, scores every predictions file, whether a baseline wrote it
during ``facebench run`` or a user submitted it with ``facebench evaluate``: the two paths cannot diverge.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facebench.data.datasets import LoadedDataset
from facebench.data.splits import Split
from facebench.distributed import launched
from facebench.io import atomic_write, write_json
from facebench.metrics import Disaggregation, get_metric
from facebench.metrics.clusters import Units
from facebench.metrics.generation import is_set_metric
from facebench.protocol import Protocol
from facebench.registry import TASKS
from facebench.results import INTERVAL_METHOD, ROW_INTERVAL_METHOD, SCHEMA_VERSION, Results, environment
from facebench.synthetic_truth import GROUP_ATTRIBUTE, synthetic_truth


@dataclass(frozen=True, kw_only=True)
class Scored:
    """Metric tables of one scored split: the engine's tidy frames and the per-sample outcomes.

    ``units``: the unit of independence the intervals resampled (``statistics.units`` of results.json).
    """

    outcomes: pd.DataFrame
    frame: pd.DataFrame
    gaps: pd.DataFrame
    tests: pd.DataFrame
    units: dict[str, Any]


def _number(value: Any) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _metric_value(row: pd.Series) -> dict[str, Any]:
    return {"value": _number(row["value"]), "ci_low": _number(row["ci_low"]), "ci_high": _number(row["ci_high"]),
            "n": int(row["n"]), "flag": str(row["flag"] or ""), "n_units": int(row["n_units"]),
            "detectable_gap": _number(row["detectable_gap"])}


def unit_clusters(task, outcomes: pd.DataFrame) -> np.ndarray | None:
    """The unit labels of every outcome row (one column, or a pair's two), or None when rows are independent.

    An ``outcomes.csv`` written before the task named its units lacks the columns: its rows are then taken as
    independent, which :func:`units_section` records.
    """
    columns = list(task.unit_columns)
    if not columns or not set(columns) <= set(outcomes.columns):
        return None
    values = outcomes[columns].to_numpy(dtype=object)
    return values[:, 0] if len(columns) == 1 else values


def units_section(task, units: Units | None) -> dict[str, Any]:
    """``statistics.units`` of results.json: what was resampled (the engine's units), and how many there are."""
    if units is None:
        return {"unit": "image", "columns": [], "n_units": None,
                "note": ("rows are treated as independent" if not task.unit_columns else
                         "the outcomes name no units (written before units were recorded): rows treated as independent")}
    return {"unit": task.unit_name, "columns": list(task.unit_columns), "n_units": units.n_units,
            "note": f"intervals and tests resample the {task.unit_name} of each row, with all of that {task.unit_name}'s rows"}


def score_outcomes(protocol: Protocol, outcomes: pd.DataFrame, *, seed: int, attributes: tuple[str, ...] | None = None,
                   group_tests: bool = True, sets: Any = None) -> Scored:
    """Disaggregate every metric of the protocol over its group attributes (and their intersections);
    ``group_tests=False`` skips the per-group significance tests (an oracle's exact values need none). Metrics of
    sets of samples (FID, KID) are scored by the task's :meth:`~facebench.tasks.base.Task.set_metrics` engine on
    ``sets`` (the predictions as the task prepared them), with the same units and options (their per-group values,
    intervals and gaps; no group tests: each would score every group's complement too); without ``sets`` they are left
    out."""
    attributes = protocol.groups.attributes if attributes is None else attributes
    metrics = [get_metric(name) for name in protocol.evaluation.metrics]
    per_set = [m for m in metrics if is_set_metric(m)]
    metrics = [m for m in metrics if not is_set_metric(m)]
    common = dict(n_boot=protocol.evaluation.n_boot, seed=seed, confidence=protocol.evaluation.confidence,
                  intersections=min(protocol.groups.intersections, max(len(attributes), 1)),
                  min_group_size=protocol.groups.min_group_size)
    task = TASKS.get(protocol.task)
    clusters = unit_clusters(task, outcomes)
    engine = _engine(task, metrics, outcomes, attributes, clusters=clusters, **common)
    frame = engine.frame()
    gaps = engine.disparities()
    tests = engine.group_tests() if attributes and group_tests else pd.DataFrame()
    if per_set and sets is not None:
        on_sets = task.set_metrics(sets, outcomes, per_set, attributes, clusters=clusters, **common)
        frame = pd.concat([frame, on_sets.frame()], ignore_index=True)
        gaps = pd.concat([gaps, on_sets.disparities()], ignore_index=True)
    units = units_section(task, engine.units)
    if clusters is not None:  # what the intervals would have claimed had rows been independent
        rows = _engine(task, metrics, outcomes, (), clusters=None, **{**common, "intersections": 1}).frame()
        units["row_wise_overall"] = {
            str(r["metric"]): {"ci_low": _number(r["ci_low"]), "ci_high": _number(r["ci_high"])}
            for _, r in rows[rows["attribute"] == "overall"].iterrows()}
    return Scored(outcomes=outcomes, frame=frame, gaps=gaps, tests=tests, units=units)


def _engine(task, metrics, outcomes: pd.DataFrame, attributes, **options) -> Disaggregation:
    columns = dict(task.outcome_columns)
    if columns:  # the task computed each metric's per-sample outcome itself (e.g. average precision)
        return Disaggregation.from_outcomes({m: outcomes[columns[m.name]].to_numpy() for m in metrics},
                                            outcomes[list(attributes)], **options)
    return Disaggregation(outcomes["y_true"].to_numpy(), outcomes["y_pred"].to_numpy(),
                          outcomes[list(attributes)], metrics, **options)


def metrics_section(scored: Scored) -> dict[str, Any]:
    """The ``metrics`` block of results.json from the engine's tidy frames."""
    overall: dict[str, Any] = {}
    by_group: dict[str, dict[str, dict[str, Any]]] = {}
    for _, row in scored.frame.iterrows():
        if row["attribute"] == "overall":
            overall[row["metric"]] = _metric_value(row)
        else:
            by_group.setdefault(row["attribute"], {}).setdefault(row["group"], {})[row["metric"]] = _metric_value(row)
    gaps: dict[str, dict[str, Any]] = {}
    for _, row in scored.gaps.iterrows():
        gaps.setdefault(row["metric"], {})[row["attribute"]] = {
            "worst_group": str(row["worst_group"]), "best_group": str(row["best_group"]),
            "worst_value": _number(row["worst_value"]), "best_value": _number(row["best_value"]),
            "gap": _number(row["gap"]), "gap_ci_low": _number(row["gap_ci_low"]),
            "gap_ci_high": _number(row["gap_ci_high"]), "ratio": _number(row["ratio"]),
        }
    tests = [
        {key: (_number(value) if isinstance(value, float) else value.item() if hasattr(value, "item") else value)
         for key, value in row.items()}
        for row in scored.tests.to_dict(orient="records")
    ]
    return {"overall": overall, "by_group": by_group, "disparities": gaps, "group_tests": tests}


#: ``data.rejected`` of results.json lists at most this many rejected files (``data.n_rejected`` counts them all).
REJECTED_LISTED = 50


def rejected_section(dataset: LoadedDataset, limit: int = REJECTED_LISTED) -> list[dict[str, str]]:
    """The first ``limit`` rejected files of the dataset (reader rejects and images that do not decode, sorted as
    read), each ``{sample_id, reason}`` cut to 200 characters: a folder of hostile names stays a short list."""
    def cut(text: str) -> str:
        return text if len(text) <= 200 else text[:199] + "…"

    return [{"sample_id": cut(r.sample_id), "reason": cut(r.reason)} for r in dataset.rejected[:limit]]


def score_predictions_file(
    *, protocol: Protocol, dataset: LoadedDataset, split: Split, predictions: Path, out_dir: Path, seed: int,
    baseline: dict[str, Any], training: dict[str, Any] | None = None, extra_splits: dict[str, Path] | None = None,
    started: float | None = None, device: str = "cpu", leakage_checks: dict[str, Any] | None = None,
    train_data: tuple[LoadedDataset, Split] | None = None, cache_dir: Path | None = None,
) -> Results:
    """Validate ``predictions`` against the test split, score it, and write the run directory atomically.

    ``extra_splits`` maps the label of one of the task's :attr:`~facebench.tasks.base.Task.extra_splits`
    (``"source_val"``) to the predictions file of its split part, scored overall only. ``leakage_checks``
    (the runner's ``n_excluded_anchors`` and ``identity_overlap``; see :mod:`facebench.results`) joins the
    ``data`` block. An extra split on the training data (``ExtraSplit.dataset == "train"``, seed 001's source
    accuracy) is read against ``train_data`` (the training dataset and its split; default: the test dataset's).
    Nothing is written if the predictions file is invalid.
    """
    started = time.perf_counter() if started is None else started
    task = TASKS.get(protocol.task)
    test_ids = split["test"]
    frame = task.read_predictions(predictions, test_ids)  # raises before anything is written
    frame = task.prepare_scoring(frame, dataset=dataset, split=split, protocol=protocol, seed=seed, cache_dir=cache_dir)
    outcomes = task.outcomes(dataset.table, frame, protocol=protocol, split=split)
    scored = score_outcomes(protocol, outcomes, seed=seed, sets=frame)
    metrics = metrics_section(scored)
    differentials = task.differentials(dataset.table, frame, protocol=protocol, split=split, seed=seed)  # None: no view

    # The known answer on synthetic data: an oracle's predictions scored by this same path, values only.
    exact = protocol.model_copy(update={"evaluation": protocol.evaluation.model_copy(update={"n_boot": 0})})

    def score_oracle(predicted: pd.DataFrame) -> dict[str, Any]:
        oracle_outcomes = task.outcomes(dataset.table, predicted, protocol=protocol, split=split)
        return metrics_section(score_outcomes(exact, oracle_outcomes, seed=seed, attributes=(GROUP_ATTRIBUTE,),
                                              group_tests=False))

    truth = synthetic_truth(protocol=protocol, dataset=dataset, split=split, measured=metrics,
                            score_oracle=score_oracle)

    splits: dict[str, dict[str, Any]] = {}
    parts = {extra.label: extra for extra in task.extra_splits}
    for label, path in (extra_splits or {}).items():
        if label not in parts:
            raise ValueError(f"Task {task.name} scores no extra split {label!r} (it has: {', '.join(parts) or 'none'}).")
        on_train = parts[label].dataset == "train" and train_data is not None
        table, part_split = (train_data[0].table, train_data[1]) if on_train else (dataset.table, split)
        predicted = task.read_predictions(path, part_split[parts[label].part])
        extra = task.outcomes(table, predicted, protocol=protocol, split=part_split)
        extra_scored = score_outcomes(protocol, extra, seed=seed, attributes=())
        splits[label] = metrics_section(extra_scored)["overall"]

    out_dir.mkdir(parents=True, exist_ok=True)
    if Path(predictions).resolve() != (out_dir / task.predictions_file).resolve():
        with atomic_write(out_dir / task.predictions_file, "wb") as handle, open(predictions, "rb") as source:
            shutil.copyfileobj(source, handle)
    with atomic_write(out_dir / "outcomes.csv", "w", encoding="utf-8", newline="") as handle:
        outcomes.to_csv(handle, index=False, float_format="%.6f")
    task.write_extras(out_dir, frame, dataset.table, protocol=protocol, split=split, seed=seed)

    results: Results = {
        "schema_version": SCHEMA_VERSION,
        "protocol": {"name": protocol.name, "version": protocol.version, "profile": protocol.profile,
                     "title": protocol.title, "fingerprint": protocol.fingerprint(),
                     "primary_metric": protocol.evaluation.primary_metric, "task": protocol.task,
                     "deviations": [d.model_dump(mode="json") for d in protocol.deviations],
                     "overrides": list(protocol.overrides),
                     "comparability": (None if protocol.comparability is None
                                       else protocol.comparability.model_dump(mode="json"))},
        "baseline": baseline,
        "data": {"dataset": dataset.name, "synthetic": dataset.synthetic, "fingerprint": dataset.fingerprint(),
                 "split_fingerprint": split.fingerprint(), "split": split.description,
                 "pair_source": split.pair_source,
                 "n_samples": len(outcomes), "split_sizes": split.sizes(), "n_rejected": len(dataset.rejected),
                 "rejected": rejected_section(dataset), **(leakage_checks or {}),
                 **({"annotations": dataset.annotations} if dataset.annotations is not None else {})},
        # processes: torchrun's world size (1 for a plain process); on the CPU a run on several processes is not
        # bit-identical to one process (BatchNorm's statistics are each process's own), so it is recorded.
        "provenance": {**environment(), "device": device, "seed": seed, "processes": launched()[1],
                       "duration_s": round(time.perf_counter() - started, 3),
                       "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        "metrics": {**metrics, **({"differentials": differentials} if differentials else {})},
        "splits": splits,
        "training": training or {},
        "reference": [r.model_dump() for r in protocol.reference],
        "files": {"predictions": task.predictions_file, "outcomes": "outcomes.csv"},
        "statistics": {"n_boot": protocol.evaluation.n_boot, "confidence": protocol.evaluation.confidence,
                       "interval_method": INTERVAL_METHOD if scored.units["columns"] else ROW_INTERVAL_METHOD,
                       "min_group_size": protocol.groups.min_group_size, "seed": seed, "units": scored.units},
        **({"synthetic_truth": truth} if truth is not None else {}),
    }
    write_json(out_dir / "results.json", results)
    return results
