"""The disaggregation engine: per-subgroup metrics with stratified bootstrap and Wilson intervals.

:func:`disaggregate` scores a metric on the whole test set, on every group of every attribute (a column of
``groups``) and on every k-way intersection of attributes; :func:`disparities` reports, per attribute, the
worst and best group with an interval for the gap between them. Both are thin wrappers around one engine,
:class:`Disaggregation`, which computes everything once.

How the numbers are made
------------------------
* **Point values** are ``metric.finalize(mean(outcome))`` over the group's samples.
* **Bootstrap** (``n_boot`` resamples) is *stratified*: each group is resampled on its own, ``n`` of its own
  samples drawn with replacement, so every resample of a group has exactly the group's size (fairlearn's
  ``MetricFrame`` resamples the whole data set instead, so a small group can vanish from a draw). The
  ``overall`` row is a plain resample of all samples. Resamples are index matrices drawn in bounded-memory
  chunks, gathered and averaged row-wise: there is no Python loop over resamples.
* **Units of independence** (``clusters=``): when samples share people (a person's several images, a
  pair's two people), a draw resamples the *people* with all their rows instead, one draw of unit counts
  for the whole test set, so every group, the overall row and every gap come from the same people
  (:mod:`facebench.metrics.clusters`). Rates then get percentile intervals (Wilson's assumes independent
  rows) and group tests are two-sided bootstrap tests of the difference from those draws.
* **Random streams** are derived from ``(seed, attribute, group, chunk)`` only, so a group's numbers do not
  depend on which other groups or attributes are present, on their order, or on ``n_jobs``.
* **Intervals** are percentile intervals of the bootstrap values, except for rates
  (:attr:`Metric.is_rate`), which get a Wilson score interval (never zero-width at 0 % or 100 %); both live
  in :mod:`facebench.metrics.intervals`, the random streams in :mod:`facebench.metrics.resampling`.
  Rates are still bootstrapped, because the gap intervals of :meth:`Disaggregation.disparities` need draws.
* **Missing group values** leave a sample out of that attribute's groups (and of the intersections that
  involve the attribute), never out of ``overall`` or of other attributes.
* **Small groups** (``n < min_group_size``) are kept with ``flag="small"``; groups with no sample are not
  listed (e.g. unused categories and empty intersections).
* **Metrics defined on a subset** (:attr:`Metric.partial`, e.g. a true positive rate, defined on the
  positives only) have a NaN outcome elsewhere: every number of such a metric (value, ``n``, bootstrap,
  Wilson interval, tests) uses only the samples where its outcome is defined, so ``n`` is e.g. the number
  of positives of the group. A group with no such sample keeps its row, with ``n = 0`` and NaN numbers.
* **Metrics that are not a mean** (:attr:`Metric.aggregate`, e.g. balanced accuracy) are computed
  by a vectorised function of an index matrix, on the very resamples (same index matrices) the mean
  metrics of the group use.
* **Group tests** (:meth:`Disaggregation.group_tests`): each group against the rest of its attribute
  (permutation test on the difference of mean outcomes, Fisher's exact test for rates), Holm's correction
  across the groups of an attribute, Cohen's d / h, and gaps to the best group and to overall with
  bootstrap intervals; the overall's draws for the latter are *stratified* by the attribute's groups.
  The tests and effect sizes live in :mod:`facebench.metrics.significance`.

>>> y_true = [20, 30, 40, 50, 60, 70]
>>> y_pred = [22, 30, 37, 50, 61, 70]
>>> groups = pd.DataFrame({"gender": ["f", "f", "f", "m", "m", "m"],
...                        "race": ["a", "b", "a", "b", "a", "b"]})
>>> df = disaggregate(y_true, y_pred, groups, "mae", n_boot=50, min_group_size=3)
>>> print(df[["attribute", "group", "value", "n", "flag"]].to_string(index=False))
... # doctest: +NORMALIZE_WHITESPACE
  attribute group    value  n  flag
    overall   all 1.000000  6
     gender     f 1.666667  3
     gender     m 0.333333  3
       race     a 2.000000  3
       race     b 0.000000  3
gender*race   f*a 2.500000  2 small
gender*race   f*b 0.000000  1 small
gender*race   m*a 1.000000  1 small
gender*race   m*b 0.000000  2 small
>>> d = disparities(y_true, y_pred, groups, "mae", n_boot=50, min_group_size=3)
>>> print(d[["attribute", "worst_group", "best_group", "gap"]].to_string(index=False))
... # doctest: +NORMALIZE_WHITESPACE
attribute worst_group best_group      gap
    gender           f          m 1.333333
      race           a          b 2.000000
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact

from ..errors import UserInputError, did_you_mean
from .base import Metric, WeightedAggregate, as_1d, check_confidence, check_int, check_same_length
from .clusters import Units, encode_units, row_weights, unit_count_chunks
from .intervals import minimum_detectable_difference, percentile_interval, wilson_interval
from .registry import get_metric
from .resampling import (
    CHUNK_ELEMENTS,
    PARALLEL_MIN_ELEMENTS,
    RowReader,
    bootstrap_stream,
    default_jobs,
    index_chunks,
    missing_stream,
    permutation_stream,
)
from .significance import (
    DEFAULT_PERMUTATIONS,
    PooledAggregate,
    bootstrap_p_value,
    cohens_d,
    cohens_h,
    holm,
    permutation_pvalues,
)

__all__ = ["Disaggregation", "disaggregate", "disparities", "FRAME_COLUMNS", "DISPARITY_COLUMNS",
           "GROUP_TEST_COLUMNS"]

#: Columns of :meth:`Disaggregation.frame` / :func:`disaggregate`, always in this order.
FRAME_COLUMNS = (
    "attribute", "group", "metric", "value", "ci_low", "ci_high", "n", "flag",
    "std_err", "ci_method", "level", "n_units", "detectable_gap",
)
#: Columns of :meth:`Disaggregation.disparities` / :func:`disparities`, always in this order.
DISPARITY_COLUMNS = (
    "metric", "attribute", "worst_group", "best_group", "worst_value", "best_value",
    "gap", "gap_ci_low", "gap_ci_high", "ratio", "ratio_ci_low", "ratio_ci_high", "overall_gap",
    "worst_n", "best_n", "n_groups",
)

#: Columns of :meth:`Disaggregation.group_tests`, always in this order.
GROUP_TEST_COLUMNS = (
    "metric", "attribute", "group", "n", "value", "rest_value", "difference", "test", "p_value", "p_holm",
    "effect_size", "effect_size_kind", "gap_to_best", "gap_to_best_ci_low", "gap_to_best_ci_high",
    "ratio_to_best", "gap_to_overall", "gap_to_overall_ci_low", "gap_to_overall_ci_high", "significant",
)
OVERALL_ATTRIBUTE = "overall"
OVERALL_GROUP = "all"
SMALL_FLAG = "small"
INTERSECTION_SEP = "*"


# ----------------------------------------------------------------------------------------- validation
def _resolve_metrics(metric) -> tuple[Metric, ...]:
    items = [metric] if isinstance(metric, (str, Metric)) else list(metric)
    if not items:
        raise ValueError("At least one metric is needed.")
    metrics = tuple(get_metric(m) for m in items)
    names = [m.name for m in metrics]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"Metric(s) given more than once: {', '.join(dup)}.")
    return metrics


def _as_frame(groups) -> pd.DataFrame:
    if isinstance(groups, pd.Series):
        groups = groups.to_frame(name=groups.name if groups.name is not None else "group")
    elif isinstance(groups, Mapping):
        groups = pd.DataFrame(dict(groups))
    elif not isinstance(groups, pd.DataFrame):
        raise TypeError(
            f"groups must be a pandas DataFrame (one column per attribute), got {type(groups).__name__}."
        )
    names = [str(c) for c in groups.columns]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"groups has duplicate column name(s): {', '.join(dup)}.")
    if OVERALL_ATTRIBUTE in names:
        raise ValueError(f"'{OVERALL_ATTRIBUTE}' is reserved for the whole-test-set row; rename that column.")
    return groups


def _natural(value):
    """Sort key putting labels that start with a number in numeric order ("5-9" before "10-19").

    >>> sorted(["10-19", "0-4", "20+", "5-9"], key=_natural)
    ['0-4', '5-9', '10-19', '20+']
    """
    if isinstance(value, str):
        digits = value[: len(value) - len(value.lstrip("0123456789"))]
        return (0, int(digits), value) if digits else (1, 0, value)
    return (0, value, "")


def _encode(column: pd.Series, attribute: str) -> tuple[np.ndarray, list[str]]:
    """Codes 0..G-1 in display order (-1 where missing) and the G observed labels."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        raw = column.cat.codes.to_numpy().astype(np.int64)
        present = np.unique(raw[raw >= 0])
        remap = np.full(len(column.cat.categories), -1, dtype=np.int64)
        remap[present] = np.arange(present.size)
        codes = np.where(raw >= 0, remap[np.maximum(raw, 0)], -1)
        labels = [str(column.cat.categories[i]) for i in present]
    else:
        raw, uniques = pd.factorize(column, use_na_sentinel=True)
        values = list(uniques)
        try:
            order = sorted(range(len(values)), key=lambda i: _natural(values[i]))
        except TypeError:
            order = sorted(range(len(values)), key=lambda i: str(values[i]))
        rank = np.empty(len(values), dtype=np.int64)
        rank[order] = np.arange(len(values))
        raw = np.asarray(raw, dtype=np.int64)
        codes = np.where(raw >= 0, rank[np.maximum(raw, 0)] if len(values) else raw, -1)
        labels = [str(values[i]) for i in order]
    if len(set(labels)) != len(labels):
        raise ValueError(f"Attribute '{attribute}' has distinct values with the same text label: {labels}.")
    return codes, labels


def _split(codes: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """Ascending sample positions of each code 0..n_groups-1 (missing, -1, left out)."""
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes[codes >= 0], minlength=n_groups)
    start = int((codes < 0).sum())
    bounds = start + np.concatenate([[0], np.cumsum(counts)])
    return [order[bounds[i]:bounds[i + 1]] for i in range(n_groups)]


@dataclass(frozen=True)
class _Group:
    attribute: str
    label: str
    level: int
    index: np.ndarray | None  # sample positions; None = all samples


def _outcome_row(metric: Metric, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per-sample outcomes of a mean metric; a NaN placeholder row for an aggregate metric."""
    if metric.aggregate is not None:
        return np.full(len(y_true), np.nan)
    return metric.outcomes(y_true, y_pred)


@dataclass(frozen=True)
class _Block:
    """Metrics that share their defined samples, hence their bootstrap index matrices."""

    key: str  # "" for metrics defined on every sample; else the first metric's name
    mask: np.ndarray | None  # samples where the block's metrics are defined; None = all
    mean_ks: tuple[int, ...]
    agg_ks: tuple[int, ...]


def _blocks(metrics: Sequence[Metric], outcomes: np.ndarray) -> list[_Block]:
    """Group metrics by the samples where their outcome is defined (NaN marks the others)."""
    found: dict[bytes | None, tuple[str, np.ndarray | None, list[int], list[int]]] = {}
    for k, met in enumerate(metrics):
        if met.aggregate is not None:
            key, mask = None, None
        else:
            defined = ~np.isnan(outcomes[k])
            key, mask = (None, None) if defined.all() else (defined.tobytes(), defined)
        if key not in found:
            found[key] = ("" if key is None else met.name, mask, [], [])
        found[key][3 if met.aggregate is not None else 2].append(k)
    ordered = sorted(found.values(), key=lambda b: (b[0] != "", min(b[2] + b[3])))
    return [_Block(name, mask, tuple(mean_ks), tuple(agg_ks)) for name, mask, mean_ks, agg_ks in ordered]


# ----------------------------------------------------------------------------------------- engine
class Disaggregation:
    """Per-group metric values, intervals and bootstrap draws, computed once.

    Args:
        y_true, y_pred: 1-D arrays of equal length (numeric arrays must be finite).
        groups: DataFrame with one column per attribute, aligned **by position** with ``y_true`` (its
            index is ignored). A Series is taken as a one-column frame.
        metric: a name (``"mae"``), a :class:`Metric`, or a sequence of them.
        n_boot: bootstrap resamples per group (0: no bootstrap; percentile intervals are then NaN, Wilson
            intervals are still given).
        seed: non-negative integer; together with the attribute and group name it fixes every draw.
        confidence: two-sided interval level.
        intersections: largest k of the k-way attribute intersections (1: none).
        min_group_size: groups with fewer samples are flagged ``"small"``.
        n_jobs: threads for the bootstrap (default: available cores, at most 8). Results do not depend
            on it.
        clusters: each sample's unit of independence (its person): an array of ``n`` labels, or ``(n, 2)``
            for a pair's two people; None (default): samples are independent. With units, every draw
            resamples units with all their rows, jointly for every group, rates get percentile intervals
            instead of Wilson's, and group tests are bootstrap tests from the same draws
            (:mod:`facebench.metrics.clusters`).

    Attributes of the instance: ``metrics``, ``attributes`` (column names, then intersections ``"a*b"``),
    ``n_samples``, and the arguments above.

    >>> eng = Disaggregation([1, 2, 3, 4], [1, 2, 5, 4], pd.DataFrame({"g": ["x", "x", "y", "y"]}),
    ...                      ["mae", "rmse"], n_boot=20, min_group_size=1)
    >>> print(eng.frame().query("attribute == 'g'")[["group", "metric", "value"]].to_string(index=False))
    ... # doctest: +NORMALIZE_WHITESPACE
    group metric    value
         x    mae 0.000000
         y    mae 1.000000
         x   rmse 0.000000
         y   rmse 1.414214
    >>> eng.draws("mae", "g", "x").shape
    (20,)
    """

    def __init__(self, y_true, y_pred, groups, metric, *, n_boot: int = 1000, seed: int = 0,
                 confidence: float = 0.95, intersections: int = 2, min_group_size: int = 30,
                 n_jobs: int | None = None, clusters=None) -> None:
        metrics = _resolve_metrics(metric)
        yt = as_1d(y_true, name="y_true")
        yp = as_1d(y_pred, name="y_pred")
        frame = _as_frame(groups)
        check_same_length(y_true=yt, y_pred=yp, groups=frame)
        outcomes = (np.stack([_outcome_row(m, yt, yp) for m in metrics]) if len(yt)
                    else np.empty((len(metrics), 0)))
        self._setup(metrics, outcomes, frame, n_boot=n_boot, seed=seed, confidence=confidence,
                    intersections=intersections, min_group_size=min_group_size, n_jobs=n_jobs, y=(yt, yp),
                    clusters=clusters)

    @classmethod
    def from_outcomes(cls, outcomes: Mapping, groups, *, n_boot: int = 1000, seed: int = 0,
                      confidence: float = 0.95, intersections: int = 2, min_group_size: int = 30,
                      n_jobs: int | None = None, clusters=None) -> Disaggregation:
        """Build the engine from per-sample outcomes already computed by a task evaluator.

        ``outcomes`` maps a metric (name or :class:`Metric`) to its per-sample outcome array (NaN where a
        ``partial`` metric is undefined). Metrics with an ``aggregate`` function need ``y_true`` and
        ``y_pred``, so they are refused here.

        >>> eng = Disaggregation.from_outcomes({"mae": [0.0, 2.0, 4.0]}, pd.Series(["a", "a", "b"], name="g"),
        ...                                    n_boot=10, min_group_size=1)
        >>> eng.frame()["value"].tolist()
        [2.0, 1.0, 4.0]
        """
        if not isinstance(outcomes, Mapping) or not outcomes:
            raise ValueError("outcomes must be a non-empty mapping from metric to per-sample outcome array.")
        metrics = _resolve_metrics(list(outcomes))
        for m in metrics:
            if m.aggregate is not None:
                raise ValueError(
                    f"Metric {m.name!r} is not a mean of per-sample outcomes; build the engine from y_true and "
                    "y_pred (Disaggregation(y_true, y_pred, groups, metrics)) instead."
                )
        arrays = []
        for m, v in zip(metrics, outcomes.values(), strict=True):
            if m.partial:
                a = np.asarray(v, dtype=float)
                if a.ndim != 1:
                    raise ValueError(f"outcome of {m.name} must be one-dimensional, got shape {a.shape}.")
                arrays.append(m.check_partial_outcome(a))
            else:
                arrays.append(as_1d(np.asarray(v, dtype=float), name=f"outcome of {m.name}"))
        frame = _as_frame(groups)
        check_same_length(**{f"outcome of {m.name}": a for m, a in zip(metrics, arrays, strict=True)},
                          groups=frame)
        for m, a in zip(metrics, arrays, strict=True):
            if m.is_rate and not np.isin(a[~np.isnan(a)], (0.0, 1.0)).all():
                raise ValueError(f"Metric {m.name!r} is a rate but its outcome is not 0/1.")
        self = cls.__new__(cls)
        self._setup(metrics, np.stack(arrays), frame, n_boot=n_boot, seed=seed, confidence=confidence,
                    intersections=intersections, min_group_size=min_group_size, n_jobs=n_jobs, clusters=clusters)
        return self

    # ------------------------------------------------------------------ construction
    def _setup(self, metrics, outcomes, frame, *, n_boot, seed, confidence, intersections,
               min_group_size, n_jobs, y=None, clusters=None) -> None:
        self.metrics: tuple[Metric, ...] = metrics
        self.n_boot = check_int(n_boot, "n_boot", 0)
        self.seed = check_int(seed, "seed", 0)
        check_confidence(confidence)
        self.confidence = float(confidence)
        self.intersections = check_int(intersections, "intersections", 1)
        self.min_group_size = check_int(min_group_size, "min_group_size", 0)
        self.n_jobs = default_jobs() if n_jobs is None else check_int(n_jobs, "n_jobs", 1)
        n_samples = outcomes.shape[1]
        if n_samples == 0:
            raise ValueError("There are no samples to score (y_true is empty).")
        self.n_samples = n_samples
        self._outcomes = np.ascontiguousarray(outcomes, dtype=float)
        self._y = y  # (y_true, y_pred) for aggregate metrics; None when built from outcomes
        self._blocks = _blocks(metrics, self._outcomes)
        #: the units of independence (None: rows are independent); see :mod:`facebench.metrics.clusters`
        self.units: Units | None = None if clusters is None else encode_units(clusters, n_samples)
        if self.units is not None:
            for met in metrics:
                if met.aggregate is not None and not isinstance(met.aggregate, WeightedAggregate):
                    raise ValueError(f"Metric {met.name!r} cannot be cluster-bootstrapped: its aggregate function "
                                     "scores index rows, not row weights (it is not a WeightedAggregate).")
        self._strat_cache: dict[tuple[int, str], np.ndarray] = {}
        names = [str(c) for c in frame.columns]
        #: attribute names in row order: the columns, then the k-way intersections ("a*b"), groups or not
        self.attributes: tuple[str, ...] = tuple(
            INTERSECTION_SEP.join(names[j] for j in combo)
            for k in range(1, min(self.intersections, len(names)) + 1)
            for combo in itertools.combinations(range(len(names)), k)
        )
        self._groups = self._build_groups(frame)
        self._position = {(g.attribute, g.label): i for i, g in enumerate(self._groups)}
        self._ns = np.array([n_samples if g.index is None else g.index.size for g in self._groups])
        self._compute()

    def _build_groups(self, frame: pd.DataFrame) -> list[_Group]:
        out = [_Group(OVERALL_ATTRIBUTE, OVERALL_GROUP, 0, None)]
        names = [str(c) for c in frame.columns]
        encoded = [_encode(frame.iloc[:, j], names[j]) for j in range(len(names))]
        for name, (codes, labels) in zip(names, encoded, strict=True):
            for label, idx in zip(labels, _split(codes, len(labels)), strict=True):
                out.append(_Group(name, label, 1, idx))
        for k in range(2, min(self.intersections, len(names)) + 1):
            for combo in itertools.combinations(range(len(names)), k):
                codes = [encoded[j][0] for j in combo]
                valid = np.logical_and.reduce([c >= 0 for c in codes])
                key = np.zeros(len(valid), dtype=np.int64)
                for j, c in zip(combo, codes, strict=True):
                    key = key * len(encoded[j][1]) + np.maximum(c, 0)
                present, inverse = np.unique(key[valid], return_inverse=True)
                combined = np.full(len(valid), -1, dtype=np.int64)
                combined[valid] = inverse
                attr = INTERSECTION_SEP.join(names[j] for j in combo)
                for code, idx in zip(present, _split(combined, present.size), strict=True):
                    parts = []
                    for j in reversed(combo):
                        size = len(encoded[j][1])
                        parts.append(encoded[j][1][int(code % size)])
                        code //= size
                    out.append(_Group(attr, INTERSECTION_SEP.join(reversed(parts)), k, idx))
        return out

    def _positions(self, group: _Group, block: _Block) -> np.ndarray | None:
        """Positions of the group's samples where the block's metrics are defined (None: all samples)."""
        if block.mask is None:
            return group.index
        if group.index is None:
            return np.flatnonzero(block.mask)
        return group.index[block.mask[group.index]]

    def _compute(self) -> None:
        m, n_groups, n_boot = len(self.metrics), len(self._groups), self.n_boot
        raw = np.full((m, n_groups, n_boot), np.nan)  # bootstrap sums (mean metrics) or values (aggregate)
        means = np.full((m, n_groups), np.nan)  # mean outcome (mean metrics) or value (aggregate)
        nk = np.zeros((m, n_groups), dtype=np.int64)
        tasks, jobs = [], []
        for gi, g in enumerate(self._groups):
            for block in self._blocks:
                pos = self._positions(g, block)
                n = self.n_samples if pos is None else pos.size
                nk[list(block.mean_ks) + list(block.agg_ks), gi] = n
                if n == 0:
                    continue
                ks = list(block.mean_ks)
                if pos is None:
                    sub = self._outcomes if len(ks) == m else self._outcomes[ks]
                else:
                    sub = np.ascontiguousarray(self._outcomes[np.ix_(ks, pos)])
                if ks:
                    means[ks, gi] = sub.mean(axis=1)
                ysub = None
                if block.agg_ks:
                    yt, yp = self._y
                    ysub = (yt, yp) if pos is None else (yt[pos], yp[pos])
                    whole = np.arange(n)[None, :]
                    for k in block.agg_ks:
                        means[k, gi] = float(np.asarray(self.metrics[k].aggregate(*ysub, whole))[0])
                if self.units is not None:
                    jobs.append((gi, block, pos, sub, ysub))
                    continue
                rows = max(1, CHUNK_ELEMENTS // n)
                for chunk, start in enumerate(range(0, n_boot, rows)):
                    tasks.append((gi, g, block, sub, ysub, chunk, start, min(n_boot, start + rows)))

        seed, metrics = self.seed, self.metrics
        weight_sums = None
        if self.units is not None:
            weight_sums = self._cluster_draws(jobs, raw)

        def run(task) -> None:
            gi, g, block, sub, ysub, chunk, start, stop = task
            n = sub.shape[1] if block.mean_ks else len(ysub[0])
            rng = bootstrap_stream(seed, g.attribute, g.label, chunk)
            idx = rng.integers(0, n, size=(stop - start, n), dtype=np.int32 if n < 2**31 else np.int64)
            for j, k in enumerate(block.mean_ks):
                raw[k, gi, start:stop] = sub[j][idx].sum(axis=1)
            for k in block.agg_ks:
                raw[k, gi, start:stop] = metrics[k].aggregate(ysub[0], ysub[1], idx)

        total = n_boot * int(nk.max(axis=0).sum())
        if self.n_jobs > 1 and len(tasks) > 1 and total >= PARALLEL_MIN_ELEMENTS:
            with ThreadPoolExecutor(max_workers=self.n_jobs) as pool:
                list(pool.map(run, tasks))
        else:
            for task in tasks:
                run(task)

        self._nk = nk
        self._means = means
        self._raw, self._weight_sums = raw, weight_sums
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_draws = raw / (nk[:, :, None] if weight_sums is None else weight_sums)
        values, draws = [], []
        for k, met in enumerate(self.metrics):
            if met.aggregate is not None:
                values.append(means[k])
                draws.append(raw[k])
                mean_draws[k] = np.nan
            else:
                values.append(np.asarray(met.from_mean(means[k]), dtype=float).reshape(n_groups))
                draws.append(np.asarray(met.from_mean(mean_draws[k]), dtype=float).reshape(n_groups, n_boot))
        self._values = np.stack(values)
        self._draws = np.stack(draws)
        self._mean_draws = mean_draws  # bootstrap means of the outcome, before finalize (NaN: aggregate)
        self._frame: pd.DataFrame | None = None

    def _cluster_draws(self, jobs, raw: np.ndarray) -> np.ndarray:
        """Fill ``raw`` with cluster-bootstrap draws; return the matching total row weights (NaN: aggregate).

        One draw of unit counts serves every group (see :mod:`facebench.metrics.clusters`). For a mean metric
        ``raw`` holds the weighted sum of the group's outcomes and the returned array the sum of its weights;
        with one unit per row both are a product of the counts with per-unit totals, ``(B, U) @ (U,)``, so
        the cost does not grow with the rows. Pairs and aggregate metrics weight rows explicitly.
        """
        units, n_boot = self.units, self.n_boot
        weight_sums = np.full(raw.shape, np.nan)
        if n_boot == 0 or not jobs:
            return weight_sums
        n_units = units.n_units
        by_unit = units.second is None
        need_rows = not by_unit or any(block.agg_ks for _, block, _, _, _ in jobs)
        width = self.n_samples if need_rows else 0
        totals = []  # per job: (per-unit outcome sums (k, U), per-unit row counts (U,)) when by_unit
        for _, block, pos, sub, _ in jobs:
            if by_unit and block.mean_ks:
                codes = units.first if pos is None else units.first[pos]
                totals.append((np.stack([np.bincount(codes, weights=row, minlength=n_units) for row in sub]),
                               np.bincount(codes, minlength=n_units).astype(np.float64)))
            else:
                totals.append(None)
        for start, counts in unit_count_chunks(self.seed, n_units, n_boot, row_width=width):
            stop = start + counts.shape[0]
            weights = row_weights(units, counts) if need_rows else None
            for (gi, block, pos, sub, ysub), total in zip(jobs, totals, strict=True):
                w = None if weights is None else (weights if pos is None else weights[:, pos])
                ks = list(block.mean_ks)
                if ks:
                    if total is not None:
                        unit_sums, unit_rows = total
                        raw[ks, gi, start:stop] = (counts @ unit_sums.T).T
                        weight_sums[ks, gi, start:stop] = counts @ unit_rows
                    else:
                        raw[ks, gi, start:stop] = (w @ sub.T).T
                        weight_sums[ks, gi, start:stop] = w.sum(axis=1)
                for k in block.agg_ks:
                    raw[k, gi, start:stop] = self.metrics[k].aggregate.weighted(ysub[0], ysub[1], w)
        return weight_sums

    # ------------------------------------------------------------------ accessors
    def _metric_index(self, metric) -> int:
        name = metric.name if isinstance(metric, Metric) else str(metric)
        for k, m in enumerate(self.metrics):
            if m.name == name:
                return k
        raise UserInputError(
            f"Metric {name!r} was not computed here{did_you_mean(name, [m.name for m in self.metrics])}; "
            f"computed: {', '.join(m.name for m in self.metrics)}."
        )

    def _group_index(self, attribute: str, group: str) -> int:
        try:
            return self._position[(str(attribute), str(group))]
        except KeyError:
            raise UserInputError(f"There is no group '{group}' of attribute '{attribute}'.") from None

    def draws(self, metric, attribute: str, group: str) -> np.ndarray:
        """The ``n_boot`` bootstrap values of ``metric`` for one group (a copy)."""
        return self._draws[self._metric_index(metric), self._group_index(attribute, group)].copy()

    def _quantiles(self, draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return percentile_interval(draws, confidence=self.confidence, skip_nan=self.units is not None)

    def _units_per_group(self, k: int) -> np.ndarray:
        """Distinct units of independence among each group's samples where metric ``k`` is defined."""
        if self.units is None:
            return self._nk[k].astype(np.int64)
        block = self._block_of(k)
        return np.array([self.units.count_in(self._positions(g, block)) if self._nk[k, i] else 0
                         for i, g in enumerate(self._groups)], dtype=np.int64)

    # ------------------------------------------------------------------ outputs
    def frame(self) -> pd.DataFrame:
        """Tidy table, one row per (metric, group), columns :data:`FRAME_COLUMNS`.

        Rows are metric-major (metrics in the order given); within a metric: ``overall/all``, then each
        attribute's groups, then the k-way intersections (attribute ``"a*b"``, group ``"x*y"``).
        ``std_err`` is the bootstrap standard deviation of the value; ``ci_method`` is ``"bootstrap"``,
        ``"wilson"`` or ``"none"`` (``n_boot=0``); ``level`` is 0 for overall, k for k-way groups.
        For a ``partial`` metric ``n`` counts the group's samples where the metric is defined (it may be 0,
        with NaN numbers).
        """
        if self._frame is not None:
            return self._frame.copy()
        lo, hi = self._quantiles(self._draws)
        if self.n_boot >= 2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a group never drawn: NaN, as documented
                std = np.nanstd(self._draws, axis=-1, ddof=1) if self.units is not None else self._draws.std(
                    axis=-1, ddof=1)
        else:
            std = np.full(self._values.shape, np.nan)
        parts = []
        n_groups = len(self._groups)
        for k, met in enumerate(self.metrics):
            if met.is_rate and self.units is None:  # Wilson assumes independent rows
                successes = np.rint(self._means[k] * self._nk[k])
                low, high = wilson_interval(successes, self._nk[k], confidence=self.confidence)
                method = "wilson"
            else:
                low, high = lo[k], hi[k]
                method = ("none" if not self.n_boot else "bootstrap" if self.units is None
                          else "cluster_bootstrap")
            parts.append(pd.DataFrame({
                "attribute": [g.attribute for g in self._groups],
                "group": [g.label for g in self._groups],
                "metric": [met.name] * n_groups,
                "value": self._values[k],
                "ci_low": low,
                "ci_high": high,
                "n": self._nk[k].astype(np.int64),
                "flag": np.where(self._nk[k] < self.min_group_size, SMALL_FLAG, ""),
                "std_err": std[k],
                "ci_method": [method] * n_groups,
                "level": np.array([g.level for g in self._groups], dtype=np.int64),
                "n_units": self._units_per_group(k),
                "detectable_gap": minimum_detectable_difference(std[k], confidence=self.confidence),
            }))
        self._frame = pd.concat(parts, ignore_index=True)[list(FRAME_COLUMNS)]
        return self._frame.copy()

    def disparities(self, *, attributes: Sequence[str] | None = None) -> pd.DataFrame:
        """Worst vs best group per (metric, attribute), with bootstrap intervals for gap and ratio.

        Columns :data:`DISPARITY_COLUMNS`. Conventions:

        * *worst* and *best* follow the metric's direction (:meth:`Metric.badness`: highest MAE, lowest
          CS@k, largest ``|mean signed error|``); ties go to the first group in display order, and
          worst and best are always two different groups.
        * Only groups with ``n >= min_group_size`` compete when at least two such groups exist; otherwise
          all groups of the attribute compete. ``n_groups`` says how many competed. An attribute with a
          single group gets NaN gap and ratio; one with no group at all (every value missing) gets
          missing worst/best groups and NaN numbers.
        * ``gap = |worst_value - best_value|`` in the metric's unit. Its interval is the percentile
          interval of ``s * (worst_draws - best_draws)`` with ``s`` the sign of the point difference,
          using the very draws behind :meth:`frame` (the worst/best groups are fixed at their point
          estimates, so draws may go below 0 when the two groups are close).
        * ``ratio`` is "how many times worse", always ``>= 1`` at the point estimate: ``worst/best`` for
          lower-is-better, ``best/worst`` for higher-is-better, ``|worst|/|best|`` for ``worst_by_abs``.
          It is NaN when undefined: a negative value, or a zero denominator with a non-zero numerator
          (an infinite ratio); ``0/0`` is 1. A NaN ``ratio_ci_high`` with a finite ``ratio_ci_low``
          means the upper end is unbounded (denominator draws of 0).
        * ``overall_gap = |worst_value - overall value|``: how far the worst group sits from the whole
          test set.

        ``attributes`` picks attributes (e.g. ``["race", "race*gender"]``); default: all of them. For a
        ``partial`` metric, groups where it is defined on no sample (``n = 0``) do not compete.
        """
        chosen = self._chosen_attributes(attributes)
        rows = []
        for k, met in enumerate(self.metrics):
            values, draws = self._values[k], self._draws[k]
            overall = values[0]
            for attr in chosen:
                picked = self._worst_best(k, attr)
                if picked is None:  # every value of the attribute is missing (or the metric undefined)
                    rows.append({"metric": met.name, "attribute": attr, "worst_group": None,
                                 "best_group": None, "worst_n": 0, "best_n": 0, "n_groups": 0})
                    continue
                wi, bi, compete = picked
                row = {
                    "metric": met.name, "attribute": attr,
                    "worst_group": self._groups[wi].label, "best_group": self._groups[bi].label,
                    "worst_value": values[wi], "best_value": values[bi],
                    "worst_n": int(self._nk[k, wi]), "best_n": int(self._nk[k, bi]),
                    "n_groups": int(compete.size),
                    "overall_gap": abs(values[wi] - overall),
                }
                if compete.size < 2:
                    row.update(gap=np.nan, gap_ci_low=np.nan, gap_ci_high=np.nan,
                               ratio=np.nan, ratio_ci_low=np.nan, ratio_ci_high=np.nan)
                else:
                    diff = values[wi] - values[bi]
                    sign = -1.0 if diff < 0 else 1.0
                    glo, ghi = self._quantiles(sign * (draws[wi] - draws[bi]))
                    ratio = _times_worse(met, np.asarray(values[wi]), np.asarray(values[bi]))
                    rdraws = _times_worse(met, draws[wi], draws[bi], keep_inf=True)
                    if self.units is not None:  # drop the draws in which either group had no unit
                        rdraws = rdraws[~(np.isnan(draws[wi]) | np.isnan(draws[bi]))]
                    if np.isnan(rdraws).any() or not np.isfinite(ratio):
                        rlo = rhi = np.nan
                    else:
                        rlo, rhi = self._quantiles(rdraws)
                    row.update(gap=abs(diff), gap_ci_low=float(glo), gap_ci_high=float(ghi),
                               ratio=float(ratio), ratio_ci_low=_finite_or_nan(rlo),
                               ratio_ci_high=_finite_or_nan(rhi))
                rows.append(row)
        return pd.DataFrame(rows, columns=list(DISPARITY_COLUMNS))

    # ------------------------------------------------------------------ helpers shared by the outputs
    def _chosen_attributes(self, attributes) -> list[str]:
        if attributes is None:
            return list(self.attributes)
        chosen = [str(a) for a in ([attributes] if isinstance(attributes, str) else attributes)]
        for a in chosen:
            if a not in self.attributes:
                raise UserInputError(
                    f"Unknown attribute '{a}'{did_you_mean(a, self.attributes)}; "
                    f"known: {', '.join(self.attributes)}."
                )
        return chosen

    def _members(self, attribute: str) -> np.ndarray:
        return np.array([i for i, g in enumerate(self._groups) if g.attribute == attribute], dtype=int)

    def _worst_best(self, k: int, attribute: str):
        """``(worst, best, competing)`` group positions of metric ``k`` in ``attribute`` (None: no group).

        Groups where the metric is defined on no sample never compete; among the others, only groups with
        ``n >= min_group_size`` compete when there are at least two of them.
        """
        members = self._members(attribute)
        members = members[self._nk[k, members] > 0]
        if members.size == 0:
            return None
        met, values = self.metrics[k], self._values[k]
        big = members[self._nk[k, members] >= self.min_group_size]
        compete = big if big.size >= 2 else members
        wi = int(compete[int(np.argmax(met.badness(values[compete])))])
        others = compete[compete != wi] if compete.size >= 2 else compete
        bi = int(others[int(np.argmin(met.badness(values[others])))])  # never wi, even on ties
        return wi, bi, compete

    def _block_of(self, k: int) -> _Block:
        return next(b for b in self._blocks if k in b.mean_ks or k in b.agg_ks)

    def _stratified_overall(self, k: int, attribute: str) -> np.ndarray:
        """Bootstrap draws of the overall value of metric ``k`` resampled *within* the groups of ``attribute``.

        Draw ``b`` pools draw ``b`` of every group of the attribute (the very resamples behind
        :meth:`frame`) with a resample of the samples that have no group for the attribute (their own
        stream), so a group's draw and the overall's draw share that group's resample. For a mean metric
        this is ``finalize(sum_g n_g mean*_g / N)``; for an aggregate metric the concatenated index rows.
        """
        if self.units is not None:  # the overall's own draws come from the very unit counts of every group
            return self._draws[k, 0]
        cache_key = (k, attribute)
        if cache_key in self._strat_cache:
            return self._strat_cache[cache_key]
        met, n_boot = self.metrics[k], self.n_boot
        block = self._block_of(k)
        members = [int(i) for i in self._members(attribute) if self._nk[k, i] > 0]
        covered = np.zeros(self.n_samples, dtype=bool)
        for i in members:
            covered[self._groups[i].index] = True
        defined = np.ones(self.n_samples, dtype=bool) if block.mask is None else block.mask
        missing = np.flatnonzero(defined & ~covered)
        n_total = int(self._nk[k, 0])
        if n_boot == 0 or n_total == 0:
            out = np.full(n_boot, np.nan)
        elif met.aggregate is None:
            total = np.zeros(n_boot)
            for i in members:
                total += self._nk[k, i] * self._mean_draws[k, i]
            if missing.size:
                sums = np.concatenate([self._outcomes[k][missing][idx].sum(axis=1) for idx in index_chunks(
                    lambda c: missing_stream(self.seed, attribute, c), missing.size, n_boot)])
                total += sums
            out = np.asarray(met.from_mean(total / n_total), dtype=float).reshape(n_boot)
        else:
            yt, yp = self._y
            readers = [(self._groups[i].index, RowReader(index_chunks(
                lambda c, g=self._groups[i]: bootstrap_stream(self.seed, g.attribute, g.label, c),
                int(self._nk[k, i]), n_boot))) for i in members]
            if missing.size:
                readers.append((missing, RowReader(index_chunks(
                    lambda c: missing_stream(self.seed, attribute, c), missing.size, n_boot))))
            rows = max(1, CHUNK_ELEMENTS // n_total)
            out = np.empty(n_boot)
            for start in range(0, n_boot, rows):
                stop = min(n_boot, start + rows)
                idx = np.concatenate([pos[reader.take(stop - start)] for pos, reader in readers], axis=1)
                out[start:stop] = met.aggregate(yt, yp, idx)
        self._strat_cache[cache_key] = out
        return out

    # ------------------------------------------------------------------ group tests
    def group_tests(self, *, attributes: Sequence[str] | None = None, n_permutations: int | None = None,
                    alpha: float = 0.05) -> pd.DataFrame:
        """Each group against the rest of its attribute: test, Holm correction, effect size, gaps.

        One row per (metric, attribute, group), columns :data:`GROUP_TEST_COLUMNS`, for every attribute
        (intersections included; ``attributes`` picks some). "The rest" is the other groups of the same
        attribute (samples whose value of the attribute is missing are in neither); for a ``partial``
        metric only samples where it is defined take part.

        * ``value`` is the group's value (as in :meth:`frame`), ``rest_value`` the metric on the rest,
          ``difference = value - rest_value`` (signed, in the metric's unit).
        * ``p_value``: for a rate (:attr:`Metric.is_rate`), Fisher's exact test (two-sided) on the 2x2
          table successes/failures x group/rest; for a mean metric, a two-sided permutation test of the
          difference of the *mean outcomes* (for RMSE: of the mean squared errors, the same null
          hypothesis) with ``R`` random relabellings, ``p = (1 + #as extreme) / (R + 1)``, exact
          enumeration when there are at most ``R`` distinct splits. ``R = n_permutations``; by default
          ``max(DEFAULT_PERMUTATIONS, ceil(2 G / alpha))`` for an attribute of ``G`` groups, so that the
          smallest attainable Holm-adjusted p-value, ``G / (R + 1)``, stays below ``alpha / 2``. For an aggregate
          metric, the same permutation test on ``value - rest_value`` itself. The permutations come from
          a stream fixed by ``(seed, attribute)``, so the table is deterministic for a seed.
        * ``p_holm``: Holm's step-down adjustment over the groups of one attribute, per metric (groups
          that cannot be tested, NaN, are left out); ``significant = p_holm < alpha``.
        * ``effect_size``: Cohen's d with the pooled SD of the per-sample outcome (mean metrics,
          ``effect_size_kind="cohen_d"``), Cohen's h of the two proportions (rates, ``"cohen_h"``),
          NaN for aggregate metrics (``"none"``). Signed as group minus rest.
        * ``gap_to_best = badness(value) - badness(best value)`` (:meth:`Metric.badness`: > 0 means worse
          than the best group, in the metric's unit; the best group is the one :meth:`disparities` names),
          ``ratio_to_best`` the "times worse" ratio of :meth:`disparities` (1 for the best group), and
          ``gap_to_overall = badness(value) - badness(overall value)``. Their intervals are percentile
          intervals of the same expression over paired bootstrap draws; for the overall those draws are
          stratified by the attribute's groups (see :meth:`_stratified_overall`).

        Rows are sorted by severity: metric order, then ``p_holm`` (NaN last), then ``p_value``, then
        worst ``gap_to_overall`` first, then the attribute and group order of :meth:`frame`.
        """
        chosen = self._chosen_attributes(attributes)
        if n_permutations is not None:
            n_permutations = check_int(n_permutations, "n_permutations", 1)
        if not (isinstance(alpha, (int, float, np.floating)) and 0.0 < float(alpha) < 1.0):
            raise ValueError(f"alpha must be a number strictly between 0 and 1, got {alpha!r}.")
        stats: dict[tuple[int, int], dict] = {}
        for attr in chosen:
            members = self._members(attr)
            r = n_permutations
            if r is None:
                r = max(DEFAULT_PERMUTATIONS, math.ceil(2 * members.size / float(alpha)))
            for block in self._blocks:
                if self.units is None:
                    self._test_block(attr, members, block, r, stats)
                else:
                    self._test_block_clustered(members, block, stats)

        rows = []
        for k, met in enumerate(self.metrics):
            for a_pos, attr in enumerate(chosen):
                members = [int(i) for i in self._members(attr)]
                if not members:
                    continue
                p_holm = holm([stats[(k, i)]["p_value"] for i in members])
                picked = self._worst_best(k, attr)
                bi = None if picked is None else picked[1]
                overall_draws = self._stratified_overall(k, attr) if picked is not None else None
                values, draws = self._values[k], self._draws[k]
                for i, ph in zip(members, p_holm, strict=True):
                    s = stats[(k, i)]
                    row = {"metric": met.name, "attribute": attr, "group": self._groups[i].label,
                           "n": int(self._nk[k, i]), "value": values[i], **s, "p_holm": ph,
                           "_k": k, "_a": a_pos, "_g": i}
                    if bi is None or self._nk[k, i] == 0:
                        row.update(gap_to_best=np.nan, gap_to_best_ci_low=np.nan, gap_to_best_ci_high=np.nan,
                                   ratio_to_best=np.nan, gap_to_overall=np.nan, gap_to_overall_ci_low=np.nan,
                                   gap_to_overall_ci_high=np.nan)
                    else:
                        bad_g = met.badness(draws[i])
                        blo, bhi = self._quantiles(bad_g - met.badness(draws[bi]))
                        olo, ohi = self._quantiles(bad_g - met.badness(overall_draws))
                        row.update(
                            gap_to_best=float(met.badness(values[i]) - met.badness(values[bi])),
                            gap_to_best_ci_low=float(blo), gap_to_best_ci_high=float(bhi),
                            ratio_to_best=float(_times_worse(met, np.asarray(values[i]), np.asarray(values[bi]))),
                            gap_to_overall=float(met.badness(values[i]) - met.badness(values[0])),
                            gap_to_overall_ci_low=float(olo), gap_to_overall_ci_high=float(ohi),
                        )
                    rows.append(row)
        helper = ["_k", "_a", "_g"]
        df = pd.DataFrame(rows, columns=list(GROUP_TEST_COLUMNS[:-1]) + helper)
        df["significant"] = (df["p_holm"] < alpha).astype(bool)
        df["_severity"] = -df["gap_to_overall"].fillna(-np.inf)
        df = df.sort_values(["_k", "p_holm", "p_value", "_severity", "_a", "_g"], na_position="last",
                            kind="stable")
        df = df.drop(columns=helper + ["_severity"]).reset_index(drop=True)
        df["n"] = df["n"].astype(np.int64)
        return df[list(GROUP_TEST_COLUMNS)]

    def _test_block(self, attr: str, members: np.ndarray, block: _Block, n_permutations: int,
                    stats: dict) -> None:
        """Fill ``stats[(k, group)]`` for the metrics of one block in one attribute."""
        positions, live = self._prepare_tests(members, block, stats)
        if len(live) < 2:  # nothing to compare a group with
            return
        pool = np.concatenate([positions[j] for j in live])
        codes = np.repeat(np.arange(len(live)), [positions[j].size for j in live])
        perm_mean = [k for k in block.mean_ks if not self.metrics[k].is_rate]
        aggs = []
        if block.agg_ks:
            yt, yp = self._y
            yt_pool, yp_pool = yt[pool], yp[pool]
            aggs = [PooledAggregate(self.metrics[k].aggregate, yt_pool, yp_pool) for k in block.agg_ks]
        pvals = None
        if perm_mean or aggs:
            pvals = permutation_pvalues(
                self._outcomes[np.ix_(perm_mean, pool)], aggs, codes, len(live), n_permutations=n_permutations,
                stream=lambda chunk: permutation_stream(self.seed, attr, block.key, chunk), n_jobs=self.n_jobs)
        pooled = {k: self._outcomes[k][pool] for k in block.mean_ks}
        for c, j in enumerate(live):
            i = int(members[j])
            in_group = codes == c
            for k in block.mean_ks:
                met = self.metrics[k]
                xg, xr = pooled[k][in_group], pooled[k][~in_group]
                rest_value = float(met.from_mean(xr.mean()))
                s = stats[(k, i)]
                s["rest_value"] = rest_value
                s["difference"] = float(self._values[k, i] - rest_value)
                s["test"] = "fisher_exact" if met.is_rate else "permutation"
                if met.is_rate:
                    kg, kr = int(round(xg.sum())), int(round(xr.sum()))
                    table = [[kg, xg.size - kg], [kr, xr.size - kr]]
                    s["p_value"] = float(fisher_exact(table, alternative="two-sided").pvalue)
                    s["effect_size"] = float(cohens_h(xg.mean(), xr.mean()))
                else:
                    s["p_value"] = float(pvals[perm_mean.index(k), c])
                    s["effect_size"] = cohens_d(xg, xr)
            for a, k in enumerate(block.agg_ks):
                rest_idx = np.flatnonzero(~in_group)[None, :]
                rest_value = float(aggs[a](rest_idx)[0])
                s = stats[(k, i)]
                s["rest_value"] = rest_value
                s["difference"] = float(self._values[k, i] - rest_value)
                s["p_value"] = float(pvals[len(perm_mean) + a, c])
                s["test"] = "permutation"

    def _prepare_tests(self, members: np.ndarray, block: _Block, stats: dict) -> tuple[list, list[int]]:
        """NaN rows in ``stats`` for the block's metrics; each member's positions and the members with samples."""
        nan_row = {"rest_value": np.nan, "difference": np.nan, "p_value": np.nan, "effect_size": np.nan,
                   "test": "none"}
        for k in list(block.mean_ks) + list(block.agg_ks):
            kind = ("cohen_h" if self.metrics[k].is_rate else "none" if self.metrics[k].aggregate
                    else "cohen_d")
            for i in members:
                stats[(k, int(i))] = {**nan_row, "effect_size_kind": kind}
        positions = [self._positions(self._groups[i], block) for i in members]
        return positions, [j for j, pos in enumerate(positions) if pos.size > 0]

    def _test_block_clustered(self, members: np.ndarray, block: _Block, stats: dict) -> None:
        """Group-vs-rest tests from the cluster-bootstrap draws: the two-sided bootstrap p-value of the
        difference (:func:`~facebench.metrics.significance.bootstrap_p_value`, dual to its percentile interval).

        Rows are not exchangeable when people have several of them, so neither a permutation of rows nor
        Fisher's exact test is valid; the group's and the rest's values in one draw come from the same units.
        For a mean metric the difference is of the mean outcomes (the permutation test's statistic).
        """
        positions, live = self._prepare_tests(members, block, stats)
        if len(live) < 2:
            return
        idx = [int(members[j]) for j in live]
        for k in block.mean_ks:
            met = self.metrics[k]
            sums, weights = self._raw[k, idx], self._weight_sums[k, idx]
            outcome = self._outcomes[k]
            for c, i in enumerate(idx):
                rest_pos = np.concatenate([positions[j] for jj, j in enumerate(live) if jj != c])
                rest_mean = float(outcome[rest_pos].mean())
                with np.errstate(invalid="ignore", divide="ignore"):
                    rest_draws = (sums.sum(axis=0) - sums[c]) / (weights.sum(axis=0) - weights[c])
                    diff_draws = sums[c] / weights[c] - rest_draws
                s = stats[(k, i)]
                xg, xr = outcome[positions[live[c]]], outcome[rest_pos]
                s.update(rest_value=float(met.from_mean(rest_mean)),
                         difference=float(self._values[k, i] - float(met.from_mean(rest_mean))),
                         p_value=bootstrap_p_value(diff_draws), test="cluster_bootstrap",
                         effect_size=float(cohens_h(xg.mean(), xr.mean()) if met.is_rate else cohens_d(xg, xr)))
        for k in block.agg_ks:
            met = self.metrics[k]
            yt, yp = self._y
            for c, i in enumerate(idx):
                rest_pos = np.concatenate([positions[j] for jj, j in enumerate(live) if jj != c])
                rest_value = float(np.asarray(met.aggregate(yt[rest_pos], yp[rest_pos],
                                                            np.arange(rest_pos.size)[None, :]))[0])
                rest_draws = np.empty(self.n_boot)
                for start, counts in unit_count_chunks(self.seed, self.units.n_units, self.n_boot,
                                                       row_width=rest_pos.size):
                    w = row_weights(self.units, counts, rest_pos)
                    rest_draws[start:start + counts.shape[0]] = met.aggregate.weighted(yt[rest_pos], yp[rest_pos], w)
                s = stats[(k, i)]
                s.update(rest_value=rest_value, difference=float(self._values[k, i] - rest_value),
                         p_value=bootstrap_p_value(self._raw[k, i] - rest_draws), test="cluster_bootstrap")


def _finite_or_nan(x) -> float:
    x = float(x)
    return x if np.isfinite(x) else float("nan")


def _times_worse(metric: Metric, worst: np.ndarray, best: np.ndarray, *, keep_inf: bool = False) -> np.ndarray:
    """Elementwise "how many times worse": see :meth:`Disaggregation.disparities`."""
    if metric.worst_by_abs:
        num, den = np.abs(worst), np.abs(best)
    elif metric.higher_is_better:
        num, den = best, worst
    else:
        num, den = worst, best
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    out = np.where((num == 0) & (den == 0), 1.0, out)
    out = np.where((num < 0) | (den < 0), np.nan, out)
    if not keep_inf:
        out = np.where(np.isinf(out), np.nan, out)
    return out


# ----------------------------------------------------------------------------------------- wrappers
def disaggregate(y_true, y_pred, groups: pd.DataFrame, metric: str | Metric | Sequence[str | Metric], *,
                 n_boot: int = 1000, seed: int = 0, confidence: float = 0.95, intersections: int = 2,
                 min_group_size: int = 30, n_jobs: int | None = None, clusters=None) -> pd.DataFrame:
    """Per-group metric values with intervals, as a tidy DataFrame (columns :data:`FRAME_COLUMNS`).

    See the module docstring for how values and intervals are computed and :class:`Disaggregation`
    for the arguments; this is ``Disaggregation(...).frame()``.

    >>> df = disaggregate([10, 20, 30, 40], [12, 20, 30, 44], pd.DataFrame({"g": ["a", "a", "b", "b"]}),
    ...                   "mae", n_boot=100, min_group_size=1)
    >>> df[["attribute", "group", "value", "n"]].values.tolist()
    [['overall', 'all', 1.5, 4], ['g', 'a', 1.0, 2], ['g', 'b', 2.0, 2]]
    >>> bool((df["ci_low"] <= df["value"]).all() and (df["value"] <= df["ci_high"]).all())
    True
    """
    return Disaggregation(y_true, y_pred, groups, metric, n_boot=n_boot, seed=seed, confidence=confidence,
                          intersections=intersections, min_group_size=min_group_size,
                          n_jobs=n_jobs, clusters=clusters).frame()


def disparities(y_true, y_pred, groups: pd.DataFrame, metric: str | Metric | Sequence[str | Metric], *,
                n_boot: int = 1000, seed: int = 0, confidence: float = 0.95,
                attributes: Sequence[str] | None = None, intersections: int = 1, min_group_size: int = 30,
                n_jobs: int | None = None, clusters=None) -> pd.DataFrame:
    """Worst vs best group per (metric, attribute), with gap and ratio intervals.

    Columns :data:`DISPARITY_COLUMNS`; conventions in :meth:`Disaggregation.disparities`. The draws are
    those :func:`disaggregate` makes for the same seed, so the two tables are consistent. Intersections
    are included when ``intersections >= 2`` or when ``attributes`` names one (``"race*gender"``).

    >>> d = disparities([10, 20, 30, 40], [12, 20, 30, 44], pd.DataFrame({"g": ["a", "a", "b", "b"]}),
    ...                 ["mae", "cs3"], n_boot=100, min_group_size=1)
    >>> d[["metric", "worst_group", "best_group", "gap", "ratio"]].values.tolist()
    [['mae', 'b', 'a', 1.0, 2.0], ['cs3', 'b', 'a', 0.5, 2.0]]
    """
    if attributes is not None:
        names = [attributes] if isinstance(attributes, str) else list(attributes)
        intersections = max([intersections] + [len(str(a).split(INTERSECTION_SEP)) for a in names])
    return Disaggregation(y_true, y_pred, groups, metric, n_boot=n_boot, seed=seed, confidence=confidence,
                          intersections=intersections, min_group_size=min_group_size,
                          n_jobs=n_jobs, clusters=clusters).disparities(attributes=attributes)
