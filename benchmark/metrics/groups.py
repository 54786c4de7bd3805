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
* **Random streams** are derived from ``(seed, attribute, group, chunk)`` only, so a group's numbers do not
  depend on which other groups or attributes are present, on their order, or on ``n_jobs``.
* **Intervals** are percentile intervals of the bootstrap values, except for rates
  (:attr:`Metric.is_rate`), which get a Wilson score interval (never zero-width at 0 % or 100 %).
  Rates are still bootstrapped, because the gap intervals of :meth:`Disaggregation.disparities` need draws.
* **Missing group values** leave a sample out of that attribute's groups (and of the intersections that
  involve the attribute), never out of ``overall`` or of other attributes.
* **Small groups** (``n < min_group_size``) are kept with ``flag="small"``; groups with no sample are not
  listed (e.g. unused categories and empty intersections).

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
import os
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..errors import UserInputError, did_you_mean
from .base import Metric, as_1d, check_same_length

__all__ = ["Disaggregation", "disaggregate", "disparities", "wilson_interval", "FRAME_COLUMNS",
           "DISPARITY_COLUMNS"]

#: Columns of :meth:`Disaggregation.frame` / :func:`disaggregate`, always in this order.
FRAME_COLUMNS = (
    "attribute", "group", "metric", "value", "ci_low", "ci_high", "n", "flag",
    "std_err", "ci_method", "level",
)
#: Columns of :meth:`Disaggregation.disparities` / :func:`disparities`, always in this order.
DISPARITY_COLUMNS = (
    "metric", "attribute", "worst_group", "best_group", "worst_value", "best_value",
    "gap", "gap_ci_low", "gap_ci_high", "ratio", "ratio_ci_low", "ratio_ci_high", "overall_gap",
    "worst_n", "best_n", "n_groups",
)

OVERALL_ATTRIBUTE = "overall"
OVERALL_GROUP = "all"
SMALL_FLAG = "small"
INTERSECTION_SEP = "*"

# Index-matrix elements per bootstrap chunk (int32 indices + float64 gather: ~3 MiB per chunk and thread).
_CHUNK_ELEMENTS = 1 << 18
# Below this many index elements in total, threads cost more than they save.
_PARALLEL_MIN_ELEMENTS = 1 << 20


# ----------------------------------------------------------------------------------------- Wilson
def wilson_interval(successes, n, *, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion (vectorised over ``successes`` and ``n``).

    ``p = k/n``, ``z`` the two-sided normal quantile; centre ``(p + z²/2n) / (1 + z²/n)`` and half-width
    ``z / (1 + z²/n) * sqrt(p(1-p)/n + z²/4n²)``. Unlike the Wald interval it is never zero-width at
    0 % or 100 %. ``n = 0`` gives NaN.

    >>> lo, hi = wilson_interval(0, 10)
    >>> round(float(lo), 6), round(float(hi), 4)     # upper end z²/(n+z²) = 3.8415/13.8415
    (0.0, 0.2775)
    >>> lo, hi = wilson_interval(10, 10)
    >>> round(float(lo), 4), round(float(hi), 6)
    (0.7225, 1.0)
    """
    _check_confidence(confidence)
    k = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    z = norm.ppf(0.5 + confidence / 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2.0 * n)) / denom
        half = (z / denom) * np.sqrt(np.maximum(p * (1.0 - p) / n + z * z / (4.0 * n * n), 0.0))
        # exact ends at 0 % and 100 % (the formula gives them only up to rounding)
        low = np.where(k <= 0, 0.0, np.clip(centre - half, 0.0, 1.0))
        high = np.where(k >= n, 1.0, np.clip(centre + half, 0.0, 1.0))
    bad = ~(n > 0)
    low = np.where(bad, np.nan, low)
    high = np.where(bad, np.nan, high)
    return low, high


# ----------------------------------------------------------------------------------------- validation
def _check_confidence(confidence: float) -> None:
    if not (isinstance(confidence, (int, float, np.floating)) and 0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence must be a number strictly between 0 and 1, got {confidence!r}.")


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _resolve_metrics(metric) -> tuple[Metric, ...]:
    from . import get_metric  # the registry lives in the package __init__

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
            order = sorted(range(len(values)), key=lambda i: values[i])
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


def _stream(seed: int, attribute: str, label: str, chunk: int) -> np.random.Generator:
    return np.random.default_rng(
        [seed, zlib.crc32(attribute.encode("utf-8")), zlib.crc32(label.encode("utf-8")), chunk]
    )


def _default_jobs() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


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
                 n_jobs: int | None = None) -> None:
        metrics = _resolve_metrics(metric)
        yt = as_1d(y_true, name="y_true")
        yp = as_1d(y_pred, name="y_pred")
        frame = _as_frame(groups)
        check_same_length(y_true=yt, y_pred=yp, groups=frame)
        outcomes = np.stack([m.outcomes(yt, yp) for m in metrics]) if len(yt) else np.empty((len(metrics), 0))
        self._setup(metrics, outcomes, frame, n_boot=n_boot, seed=seed, confidence=confidence,
                    intersections=intersections, min_group_size=min_group_size, n_jobs=n_jobs)

    @classmethod
    def from_outcomes(cls, outcomes: Mapping, groups, *, n_boot: int = 1000, seed: int = 0,
                      confidence: float = 0.95, intersections: int = 2, min_group_size: int = 30,
                      n_jobs: int | None = None) -> Disaggregation:
        """Build the engine from per-sample outcomes already computed by a task evaluator.

        ``outcomes`` maps a metric (name or :class:`Metric`) to its per-sample outcome array.

        >>> eng = Disaggregation.from_outcomes({"mae": [0.0, 2.0, 4.0]}, pd.Series(["a", "a", "b"], name="g"),
        ...                                    n_boot=10, min_group_size=1)
        >>> eng.frame()["value"].tolist()
        [2.0, 1.0, 4.0]
        """
        if not isinstance(outcomes, Mapping) or not outcomes:
            raise ValueError("outcomes must be a non-empty mapping from metric to per-sample outcome array.")
        metrics = _resolve_metrics(list(outcomes))
        arrays = [as_1d(np.asarray(v, dtype=float), name=f"outcome of {m.name}")
                  for m, v in zip(metrics, outcomes.values(), strict=True)]
        frame = _as_frame(groups)
        check_same_length(**{f"outcome of {m.name}": a for m, a in zip(metrics, arrays, strict=True)},
                          groups=frame)
        for m, a in zip(metrics, arrays, strict=True):
            if m.is_rate and not np.isin(a, (0.0, 1.0)).all():
                raise ValueError(f"Metric {m.name!r} is a rate but its outcome is not 0/1.")
        self = cls.__new__(cls)
        self._setup(metrics, np.stack(arrays), frame, n_boot=n_boot, seed=seed, confidence=confidence,
                    intersections=intersections, min_group_size=min_group_size, n_jobs=n_jobs)
        return self

    # ------------------------------------------------------------------ construction
    def _setup(self, metrics, outcomes, frame, *, n_boot, seed, confidence, intersections,
               min_group_size, n_jobs) -> None:
        self.metrics: tuple[Metric, ...] = metrics
        self.n_boot = _check_int(n_boot, "n_boot", 0)
        self.seed = _check_int(seed, "seed", 0)
        _check_confidence(confidence)
        self.confidence = float(confidence)
        self.intersections = _check_int(intersections, "intersections", 1)
        self.min_group_size = _check_int(min_group_size, "min_group_size", 0)
        self.n_jobs = _default_jobs() if n_jobs is None else _check_int(n_jobs, "n_jobs", 1)
        n_samples = outcomes.shape[1]
        if n_samples == 0:
            raise ValueError("There are no samples to score (y_true is empty).")
        self.n_samples = n_samples
        self._outcomes = np.ascontiguousarray(outcomes, dtype=float)
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

    def _compute(self) -> None:
        m, n_groups, n_boot = len(self.metrics), len(self._groups), self.n_boot
        sums = np.empty((m, n_groups, n_boot))
        means = np.empty((m, n_groups))
        tasks = []
        for gi, g in enumerate(self._groups):
            sub = self._outcomes if g.index is None else np.ascontiguousarray(self._outcomes[:, g.index])
            means[:, gi] = sub.mean(axis=1)
            n = sub.shape[1]
            rows = max(1, _CHUNK_ELEMENTS // n)
            for chunk, start in enumerate(range(0, n_boot, rows)):
                tasks.append((gi, g, sub, chunk, start, min(n_boot, start + rows)))

        seed = self.seed

        def run(task) -> None:
            gi, g, sub, chunk, start, stop = task
            n = sub.shape[1]
            rng = _stream(seed, g.attribute, g.label, chunk)
            idx = rng.integers(0, n, size=(stop - start, n), dtype=np.int32 if n < 2**31 else np.int64)
            for k in range(m):
                sums[k, gi, start:stop] = sub[k][idx].sum(axis=1)

        total = n_boot * int(self._ns.sum())
        if self.n_jobs > 1 and len(tasks) > 1 and total >= _PARALLEL_MIN_ELEMENTS:
            with ThreadPoolExecutor(max_workers=self.n_jobs) as pool:
                list(pool.map(run, tasks))
        else:
            for task in tasks:
                run(task)

        self._means = means
        self._values = np.stack([np.asarray(met.from_mean(means[k]), dtype=float).reshape(n_groups)
                                 for k, met in enumerate(self.metrics)])
        draws = sums / self._ns[None, :, None]
        self._draws = np.stack([np.asarray(met.from_mean(draws[k]), dtype=float).reshape(n_groups, n_boot)
                                for k, met in enumerate(self.metrics)])
        self._frame: pd.DataFrame | None = None

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
        alpha = 1.0 - self.confidence
        if draws.shape[-1] == 0:
            nan = np.full(draws.shape[:-1], np.nan)
            return nan, nan.copy()
        with np.errstate(invalid="ignore"):
            lo, hi = np.quantile(draws, [alpha / 2.0, 1.0 - alpha / 2.0], axis=-1)
        return lo, hi

    # ------------------------------------------------------------------ outputs
    def frame(self) -> pd.DataFrame:
        """Tidy table, one row per (metric, group), columns :data:`FRAME_COLUMNS`.

        Rows are metric-major (metrics in the order given); within a metric: ``overall/all``, then each
        attribute's groups, then the k-way intersections (attribute ``"a*b"``, group ``"x*y"``).
        ``std_err`` is the bootstrap standard deviation of the value; ``ci_method`` is ``"bootstrap"``,
        ``"wilson"`` or ``"none"`` (``n_boot=0``); ``level`` is 0 for overall, k for k-way groups.
        """
        if self._frame is not None:
            return self._frame.copy()
        lo, hi = self._quantiles(self._draws)
        if self.n_boot >= 2:
            std = self._draws.std(axis=-1, ddof=1)
        else:
            std = np.full(self._values.shape, np.nan)
        parts = []
        n_groups = len(self._groups)
        for k, met in enumerate(self.metrics):
            if met.is_rate:
                successes = np.rint(self._means[k] * self._ns)
                low, high = wilson_interval(successes, self._ns, confidence=self.confidence)
                method = "wilson"
            else:
                low, high = lo[k], hi[k]
                method = "bootstrap" if self.n_boot else "none"
            parts.append(pd.DataFrame({
                "attribute": [g.attribute for g in self._groups],
                "group": [g.label for g in self._groups],
                "metric": [met.name] * n_groups,
                "value": self._values[k],
                "ci_low": low,
                "ci_high": high,
                "n": self._ns.astype(np.int64),
                "flag": np.where(self._ns < self.min_group_size, SMALL_FLAG, ""),
                "std_err": std[k],
                "ci_method": [method] * n_groups,
                "level": np.array([g.level for g in self._groups], dtype=np.int64),
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

        ``attributes`` picks attributes (e.g. ``["race", "race*gender"]``); default: all of them.
        """
        if attributes is None:
            chosen = list(self.attributes)
        else:
            chosen = [str(a) for a in ([attributes] if isinstance(attributes, str) else attributes)]
            for a in chosen:
                if a not in self.attributes:
                    raise UserInputError(
                        f"Unknown attribute '{a}'{did_you_mean(a, self.attributes)}; "
                        f"known: {', '.join(self.attributes)}."
                    )
        rows = []
        for k, met in enumerate(self.metrics):
            values, draws = self._values[k], self._draws[k]
            overall = values[0]
            for attr in chosen:
                members = np.array([i for i, g in enumerate(self._groups) if g.attribute == attr], dtype=int)
                if members.size == 0:  # every value of the attribute is missing
                    rows.append({"metric": met.name, "attribute": attr, "worst_group": None,
                                 "best_group": None, "worst_n": 0, "best_n": 0, "n_groups": 0})
                    continue
                big = members[self._ns[members] >= self.min_group_size]
                compete = big if big.size >= 2 else members
                wi = int(compete[int(np.argmax(met.badness(values[compete])))])
                others = compete[compete != wi] if compete.size >= 2 else compete
                bi = int(others[int(np.argmin(met.badness(values[others])))])  # never wi, even on ties
                row = {
                    "metric": met.name, "attribute": attr,
                    "worst_group": self._groups[wi].label, "best_group": self._groups[bi].label,
                    "worst_value": values[wi], "best_value": values[bi],
                    "worst_n": int(self._ns[wi]), "best_n": int(self._ns[bi]), "n_groups": int(compete.size),
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
                    if np.isnan(rdraws).any() or not np.isfinite(ratio):
                        rlo = rhi = np.nan
                    else:
                        rlo, rhi = self._quantiles(rdraws)
                    row.update(gap=abs(diff), gap_ci_low=float(glo), gap_ci_high=float(ghi),
                               ratio=float(ratio), ratio_ci_low=_finite_or_nan(rlo),
                               ratio_ci_high=_finite_or_nan(rhi))
                rows.append(row)
        return pd.DataFrame(rows, columns=list(DISPARITY_COLUMNS))


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
                 min_group_size: int = 30, n_jobs: int | None = None) -> pd.DataFrame:
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
                          n_jobs=n_jobs).frame()


def disparities(y_true, y_pred, groups: pd.DataFrame, metric: str | Metric | Sequence[str | Metric], *,
                n_boot: int = 1000, seed: int = 0, confidence: float = 0.95,
                attributes: Sequence[str] | None = None, intersections: int = 1, min_group_size: int = 30,
                n_jobs: int | None = None) -> pd.DataFrame:
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
                          n_jobs=n_jobs).disparities(attributes=attributes)
