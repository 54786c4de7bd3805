"""The results contract: what ``results.json`` holds (after lm-evaluation-harness ``result_schema.py``).

Every run directory (a baseline run or a scored submission) contains:

- ``results.json`` — the document typed by :class:`Results` below;
- ``predictions.csv`` — the predictions that were scored (the task's documented format);
- ``outcomes.csv`` — one row per scored sample: its outcome (e.g. absolute error) and its groups, so later
  comparisons can be paired sample by sample.

Numbers: every metric value is a :class:`MetricValue` ``{value, ci_low, ci_high, n}`` (+ ``flag``:
``"small"`` when the group has fewer than the protocol's ``min_group_size`` samples). Intervals are
percentile intervals of a bootstrap resampled *within* each group (Wilson intervals for rates) at the
protocol's confidence level. Group names are lower-case words (``white``, ``female``, ``30-44``);
intersections join attribute and group names with ``*`` (``race*gender`` → ``black*female``).

Bump :data:`SCHEMA_VERSION` on any incompatible change.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any, TypedDict

SCHEMA_VERSION = "1.0"


class MetricValue(TypedDict, total=False):
    value: float | None       # None when undefined (e.g. a ratio against a zero best value)
    ci_low: float | None
    ci_high: float | None
    n: int                    # samples the value was computed on
    flag: str                 # "" or "small"


class Disparity(TypedDict):
    worst_group: str          # by the metric's own direction (max MAE, min accuracy)
    best_group: str
    worst_value: float
    best_value: float
    gap: float                # |worst - best|, in the metric's unit
    gap_ci_low: float
    gap_ci_high: float
    ratio: float | None       # worst/best for lower-is-better, best/worst otherwise (>= 1: "times worse")


class Metrics(TypedDict):
    overall: dict[str, MetricValue]                              # metric -> value
    by_group: dict[str, dict[str, dict[str, MetricValue]]]       # attribute -> group -> metric -> value
    disparities: dict[str, dict[str, Disparity]]                 # metric -> attribute -> disparity
    # One row per (metric, attribute, group): that group against the rest of the test set — a permutation
    # test (mean metrics) or Fisher's exact test (rates), Holm-adjusted across the attribute's groups, with
    # effect sizes and gaps to the best group and to overall (see docs/metrics.md, section 2).
    group_tests: list[dict[str, Any]]


class Results(TypedDict):
    schema_version: str
    protocol: dict[str, Any]      # name, version, profile, title, fingerprint, primary_metric
    baseline: dict[str, Any]      # name, params, kind ("baseline" | "submission")
    data: dict[str, Any]          # dataset, synthetic, fingerprint, split_fingerprint, n_samples, n_rejected
    provenance: dict[str, Any]    # facebench_version, git_commit, torch, device, seed, duration_s, created_at, python
    metrics: Metrics              # on the protocol's test split
    splits: dict[str, dict[str, MetricValue]]   # other scored splits (e.g. "source_val") -> metric -> value
    training: dict[str, Any]      # per-epoch logs, resumed_from_epoch (baselines only)
    reference: list[dict[str, Any]]   # published numbers from the protocol, for side-by-side display
    files: dict[str, str]         # relative paths of predictions.csv and outcomes.csv


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the facebench checkout, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path or Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment() -> dict[str, Any]:
    import torch

    import facebench

    return {
        "facebench_version": facebench.__version__,
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
