"""Runs that differ only by their seed, and their numbers over seeds.

A training seed changes the model a run trains; the bootstrap interval of one run (over its test images) does not
see that variation. Runs of one baseline that agree on everything but the seed — the same resolved protocol
(``protocol.fingerprint``, which covers every ``--set`` and ``--grid`` value), baseline, params and data — are
therefore summarised together: the mean over seeds with Student's t interval over seeds
(:func:`facebench.metrics.intervals.t_interval`, via :func:`facebench.reports.bias_report.repeat_interval`),
beside each run's own bootstrap interval. The leaderboard shows one row per such group, and ``facebench sweep``
one line per grid point and baseline.

Submissions are never grouped: their seed drives only the bootstrap, not the predictions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from facebench.metrics import get_metric
from facebench.reports.bias_report import repeat_interval
from facebench.results import Run

T = TypeVar("T")

__all__ = ["OverSeeds", "group_by_seed", "over_seeds", "seed_group_key", "seed_of", "worst_group"]


def seed_of(run: Run) -> int | None:
    """The run's training seed (``provenance.seed``), None when not recorded."""
    seed = (run.results.get("provenance") or {}).get("seed")
    return seed if isinstance(seed, int) else None


def seed_group_key(run: Run) -> str | None:
    """What a baseline run's numbers depend on apart from its seed, as one string; None for a submission or a run
    without a recorded seed (never grouped). A model trained on another dataset adds that data's fingerprints."""
    if run.kind != "baseline" or seed_of(run) is None:
        return None
    results, baseline = run.results, run.results["baseline"]
    trained_on = baseline.get("train_data") or {}
    return json.dumps([results["protocol"]["name"], results["protocol"]["version"], results["protocol"]["fingerprint"],
                       baseline["name"], baseline.get("label"), baseline.get("params"), results["data"]["fingerprint"],
                       results["data"]["split_fingerprint"], trained_on.get("fingerprint"),
                       trained_on.get("split_fingerprint")], sort_keys=True, default=str)


def group_by_seed(items: Sequence[T], *, run_of: Callable[[T], Run] = lambda item: item) -> list[list[T]]:
    """``items`` grouped by :func:`seed_group_key` of their run, groups in first-seen order, each sorted by seed.

    A group holds one run per seed: a second run with the same key and seed (a copy of a run folder) and every
    ungroupable run form groups of their own.
    """
    groups: dict[tuple[str, int], list[T]] = {}
    for index, item in enumerate(items):
        run = run_of(item)
        key = seed_group_key(run)
        slot = 0
        while key is not None and any(seed_of(run_of(other)) == seed_of(run) for other in groups.get((key, slot), [])):
            slot += 1  # this seed is taken: a copy, kept apart
        groups.setdefault((key, slot) if key is not None else (f"#{index}", 0), []).append(item)
    return [sorted(group, key=lambda item: seed_of(run_of(item)) or 0) for group in groups.values()]


@dataclass(frozen=True, kw_only=True)
class OverSeeds:
    """The primary metric of runs that differ only by seed: its mean with the t interval over seeds (``primary``:
    value, ci_low, ci_high, n = number of seeds; no interval with one seed), each run's own value and bootstrap
    interval (``per_run``: seed, value, ci_low, ci_high, n = test samples), and the largest worst-vs-best gap of an
    attribute, averaged over seeds with its t interval (``largest_gap``: attribute, value, ci_low, ci_high, n)."""

    metric: str
    primary: dict[str, Any] | None
    per_run: tuple[dict[str, Any], ...]
    largest_gap: dict[str, Any] | None


def over_seeds(runs: Sequence[Run], *, confidence: float = 0.95) -> OverSeeds:
    """Summarise ``runs`` (one group of :func:`group_by_seed`) on their primary metric.

    The t interval's unit is the training run: with n seeds it has n − 1 degrees of freedom (t = 12.7 at 95 % for
    two seeds), so it is wide until there are several seeds; each run's own interval is shown beside it.
    """
    metric = runs[0].primary_metric
    per_run = tuple({"seed": seed_of(r), **{k: r.primary_value.get(k) for k in ("value", "ci_low", "ci_high", "n")}}
                    for r in runs)
    primary = repeat_interval([row["value"] for row in per_run], confidence)
    gaps: dict[str, list[float]] = {}
    for run in runs:
        for attribute, disparity in run.results["metrics"]["disparities"].get(metric, {}).items():
            if "*" not in attribute and disparity.get("gap") is not None:  # intersections: on each run's page
                gaps.setdefault(attribute, []).append(float(disparity["gap"]))
    summaries = [{"attribute": a, **repeat_interval(values, confidence)} for a, values in gaps.items()
                 if len(values) == len(runs)]
    largest = max(summaries, key=lambda s: s["value"], default=None)
    return OverSeeds(metric=metric, primary=primary, per_run=per_run, largest_gap=largest)


def worst_group(runs: Sequence[Run], attribute: str) -> dict[str, Any] | None:
    """The group of ``attribute`` whose primary metric, averaged over ``runs`` (one per seed), is worst by the
    metric's direction, among the groups every run scored and none flagged small: attribute, worst_group,
    worst_value (the mean); None when no group qualifies."""
    metric = runs[0].primary_metric
    tables = [run.results["metrics"]["by_group"].get(attribute) or {} for run in runs]
    means: dict[str, float] = {}
    for group in tables[0]:
        cells = [table.get(group, {}).get(metric) or {} for table in tables]
        if all(cell.get("value") is not None and cell.get("flag") != "small" for cell in cells):
            means[group] = sum(float(cell["value"]) for cell in cells) / len(cells)
    if not means:
        return None
    names = list(means)
    worst = names[int(get_metric(metric).badness([means[name] for name in names]).argmax())]
    return {"attribute": attribute, "worst_group": worst, "worst_value": means[worst]}
