"""Paired comparisons of two runs scored on the same samples.

Two models scored on the same test images give per-sample outcomes ``a`` and ``b``; the difference of their
means is estimated with a *paired* bootstrap (the same resampled images for both models), which is far
tighter than comparing two independent intervals because per-image difficulty cancels.

Three procedures, each resampling one way:

* :func:`paired_difference` — ``value(b) − value(a)`` over all samples, with a plain paired bootstrap
  (draw ``r`` resamples all ``n`` samples; the same indices for both runs). With ``metric=`` the value is
  the metric's (``finalize`` of the mean outcome, e.g. the square root for RMSE); without, the mean.
* :func:`paired_group_changes` — per attribute (a column of ``groups``): for every group, the paired
  difference of the group's metric value, resampled *within* the group (stratified), with a two-sided
  bootstrap p-value (:func:`bootstrap_p_value`) and Holm's correction across the attribute's groups; and
  the change of the attribute's worst-vs-best gap, with an interval from the very same draws. The draws
  are the disaggregation engine's (:class:`~facebench.metrics.groups.Disaggregation`, stratified, keyed by
  ``(seed, attribute, group)``): the two runs enter it as two metrics, and metrics of a group share their
  index matrices, so every draw resamples the same images for both runs.
* :func:`bootstrap_p_value` — the p-value that matches a percentile interval of the draws.

The outcomes of RMSE are squared errors, so here the change is ``sqrt(mean(1, 9)) − sqrt(mean(1, 4))``:

>>> r = paired_difference([1.0, 4.0], [1.0, 9.0], metric="rmse", n_boot=50)
>>> round(r.difference, 4), round(5 ** 0.5 - 2.5 ** 0.5, 4)
(0.6549, 0.6549)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from facebench.seeding import rng_stream

from .base import Metric, identity
from .significance import bootstrap_p_value  # noqa: F401  (public here too: compare's p-values)


@dataclass(frozen=True)
class PairedDifference:
    """value(b) − value(a) over the same n samples, with a percentile paired-bootstrap interval."""

    difference: float
    ci_low: float
    ci_high: float
    n: int

    @property
    def significant(self) -> bool:
        """The interval excludes 0."""
        return self.ci_low > 0 or self.ci_high < 0


def _paired_arrays(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("paired outcomes must be two 1-D arrays of the same length")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired outcomes must be finite")
    return a, b


def _resampled_means(columns: np.ndarray, *, n_boot: int, seed: int, label: str) -> np.ndarray:
    """Bootstrap means of every row of ``columns`` (k, n), all on the same resampled indices: (k, n_boot).

    The stream is ``default_rng([seed, crc32(label)])``; draws come in chunks of ``4_000_000 // n`` rows.
    """
    k, n = columns.shape
    rng = rng_stream(seed, label)
    out = np.empty((k, n_boot))
    chunk = max(1, 4_000_000 // n)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        for j in range(k):
            out[j, start:stop] = columns[j][idx].mean(axis=1)
    return out


def _resolve(metric) -> Metric:
    from .registry import get_metric

    return get_metric(metric)


def paired_difference(a, b, *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95,
                      label: str = "", metric: Metric | str | None = None, clusters=None) -> PairedDifference:
    """Paired bootstrap of value(b) − value(a); ``label`` salts the seed so groups get independent draws.

    ``a`` and ``b`` are per-sample outcomes of the same samples in the same order. The value is their mean,
    or with ``metric`` the metric's value ``metric.from_mean(mean)`` (identical to the mean for every
    metric but those with a ``finalize``, such as RMSE). With ``clusters`` (each sample's unit of
    independence, :mod:`facebench.metrics.clusters`) the draws resample units, the same ones for both runs.

    >>> r = paired_difference([1.0, 2.0, 3.0], [2.0, 3.0, 4.0], n_boot=200)
    >>> (r.difference, r.ci_low, r.ci_high, r.n)
    (1.0, 1.0, 1.0, 3)
    >>> r = paired_difference([1.0, 1.0], [4.0, 4.0], metric="rmse", n_boot=200)   # RMSE 1 -> 2
    >>> (r.difference, r.ci_low, r.ci_high)
    (1.0, 1.0, 1.0)
    """
    a, b = _paired_arrays(a, b)
    n = len(a)
    if n == 0:
        return PairedDifference(float("nan"), float("nan"), float("nan"), 0)
    finalize = identity if metric is None else _resolve(metric).finalize
    if clusters is not None:
        from .groups import Disaggregation

        base = _resolve("mean_signed_error" if metric is None else metric)  # only its finalize matters here
        run_a, run_b = (dataclasses.replace(base, name=f"{base.name}[{side}]", partial=False) for side in "ab")
        engine = Disaggregation.from_outcomes({run_a: a, run_b: b}, pd.DataFrame(index=range(n)), n_boot=n_boot,
                                              seed=seed, confidence=confidence, intersections=1, min_group_size=1,
                                              clusters=clusters)
        point = float(finalize(np.asarray(b.mean())) - finalize(np.asarray(a.mean())))
        low, high = _interval(engine.draws(run_b, "overall", "all") - engine.draws(run_a, "overall", "all"),
                              confidence=confidence)
        return PairedDifference(point, low, high, n)
    if finalize is identity:  # a mean: resample the per-sample differences themselves
        point = float((b - a).mean())
        draws = _resampled_means((b - a)[None, :], n_boot=n_boot, seed=seed, label=label)[0]
    else:
        point = float(finalize(np.asarray(b.mean())) - finalize(np.asarray(a.mean())))
        means = _resampled_means(np.stack([a, b]), n_boot=n_boot, seed=seed, label=label)
        draws = finalize(means[1]) - finalize(means[0])
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail]) if n_boot else (np.nan, np.nan)
    return PairedDifference(point, float(low), float(high), n)


@dataclass(frozen=True, kw_only=True)
class GroupChange:
    """One group's metric in run a and run b, and the paired change ``value_b − value_a``.

    ``worse``: b is worse than a at the point estimates (by the metric's direction, :meth:`Metric.badness`).
    ``p_value`` (:func:`bootstrap_p_value` of the change in badness) and ``p_holm`` (Holm-adjusted across
    the attribute's groups); ``significant = p_holm < alpha``.
    """

    group: str
    n: int
    value_a: float
    value_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    p_holm: float
    worse: bool
    significant: bool

    @property
    def regressed(self) -> bool:
        """Significantly worse in run b (after Holm's correction)."""
        return self.worse and self.significant


@dataclass(frozen=True, kw_only=True)
class GapChange:
    """The worst-vs-best gap of one attribute in run a and run b, and the paired change ``gap_b − gap_a``.

    Each run's worst and best groups are those of :meth:`Disaggregation.disparities` (fixed at the point
    estimates, so they may differ between the runs); a draw's gap is ``s · (worst draw − best draw)`` with
    ``s`` the sign of the point difference, as in the engine's gap intervals.
    """

    worst_a: str
    best_a: str
    gap_a: float
    worst_b: str
    best_b: str
    gap_b: float
    difference: float
    ci_low: float
    ci_high: float
    #: Bootstrap p-value of "no change in the gap", and Holm-adjusted across the attributes compared at once
    #: (several gaps are tested for one verdict, so one of them crossing 0.05 by chance must not fail CI).
    p_value: float = float("nan")
    p_holm: float = float("nan")
    alpha: float = 0.05

    @property
    def significant(self) -> bool:
        """The interval of the change excludes 0."""
        return self.ci_low > 0 or self.ci_high < 0

    @property
    def regressed(self) -> bool:
        """The gap is larger in run b, with a Holm-adjusted p-value below ``alpha``."""
        return self.difference > 0 and self.p_holm < self.alpha


@dataclass(frozen=True, kw_only=True)
class AttributeChange:
    """The paired changes of one attribute: every group (display order) and the gap (None: < 2 groups)."""

    attribute: str
    metric: str
    groups: tuple[GroupChange, ...]
    gap: GapChange | None

    @property
    def regressed_groups(self) -> tuple[GroupChange, ...]:
        return tuple(g for g in self.groups if g.regressed)


def paired_group_changes(a, b, groups, *, metric: Metric | str, n_boot: int = 1000, seed: int = 0,
                         confidence: float = 0.95, min_group_size: int = 1, clusters=None
                         ) -> tuple[AttributeChange, ...]:
    """Per-group and worst-vs-best-gap changes from run a to run b, one :class:`AttributeChange` per column.

    ``a``, ``b``: per-sample outcomes of ``metric`` for the same samples (NaN where a ``partial`` metric is
    undefined, at the same places in both); ``groups``: a DataFrame aligned by position, one column per
    attribute. With ``clusters`` (each sample's unit of independence) the draws resample units with all their
    rows, jointly for every group (:mod:`facebench.metrics.clusters`). Otherwise a stratified paired
    bootstrap (``n_boot`` draws, ``seed``; see the module docstring); intervals
    are percentile intervals at ``confidence``; ``min_group_size`` is the engine's rule for which groups
    compete for worst and best. The draws depend only on ``(seed, attribute, group)``.

    Hand-worked: group x goes from errors (1, 1) to (2, 2), group y stays at (3, 3). Every resample of x
    changes by exactly 1 and of y by 0; the gap (y worst, x best) shrinks from 2 to 1. With 99 draws the
    p-values are 2/100 and 1, Holm-adjusted 2 · 0.02 and max(0.04, 1):

    >>> (race,) = paired_group_changes([1, 1, 3, 3], [2, 2, 3, 3], pd.DataFrame({"race": list("xxyy")}),
    ...                                metric="mae", n_boot=99)
    >>> [(g.group, g.difference, g.ci_low, g.ci_high, g.p_value, g.p_holm, g.regressed) for g in race.groups]
    [('x', 1.0, 1.0, 1.0, 0.02, 0.04, True), ('y', 0.0, 0.0, 0.0, 1.0, 1.0, False)]
    >>> gap = race.gap
    >>> (gap.worst_a, gap.best_a, gap.gap_a, gap.gap_b, gap.difference, gap.ci_low, gap.ci_high)
    ('y', 'x', 2.0, 1.0, -1.0, -1.0, -1.0)
    >>> gap.regressed, gap.significant
    (False, True)
    """
    from .groups import Disaggregation
    from .significance import holm

    met = _resolve(metric)
    if met.aggregate is not None:
        raise ValueError(f"Metric {met.name!r} is not a mean of per-sample outcomes: it cannot be paired.")
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("paired outcomes must be two 1-D arrays of the same length")
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        raise ValueError(f"Metric {met.name!r} is defined on different samples in the two runs.")
    frame = groups.to_frame() if isinstance(groups, pd.Series) else groups
    run_a = dataclasses.replace(met, name=f"{met.name}[a]")
    run_b = dataclasses.replace(met, name=f"{met.name}[b]")
    engine = Disaggregation.from_outcomes({run_a: a, run_b: b}, frame, n_boot=n_boot, seed=seed,
                                          confidence=confidence, intersections=1,
                                          min_group_size=min_group_size, clusters=clusters)
    values = engine.frame().set_index(["metric", "attribute", "group"])
    gaps = engine.disparities().set_index(["metric", "attribute"])
    out = []
    for attribute in (str(c) for c in frame.columns):
        labels = [g for (m, attr, g) in values.index if m == run_a.name and attr == attribute]
        rows = []
        for group in labels:
            va = float(values.loc[(run_a.name, attribute, group), "value"])
            vb = float(values.loc[(run_b.name, attribute, group), "value"])
            da, db = engine.draws(run_a, attribute, group), engine.draws(run_b, attribute, group)
            low, high = _interval(db - da, confidence=confidence)
            rows.append(dict(group=group, n=int(values.loc[(run_a.name, attribute, group), "n"]), value_a=va,
                             value_b=vb, difference=vb - va, ci_low=low, ci_high=high,
                             p_value=bootstrap_p_value(met.badness(db) - met.badness(da)),
                             worse=bool(met.badness(vb) > met.badness(va))))
        adjusted = holm([r["p_value"] for r in rows]) if rows else []
        changes = tuple(GroupChange(**r, p_holm=float(p), significant=bool(p < 1 - confidence))
                        for r, p in zip(rows, adjusted, strict=True))
        gap = _gap_change(engine, gaps, run_a, run_b, attribute, confidence=confidence)
        out.append(AttributeChange(attribute=attribute, metric=met.name, groups=changes, gap=gap))
    tested = [i for i, change in enumerate(out) if change.gap is not None]
    adjusted = holm([out[i].gap.p_value for i in tested]) if tested else []
    for i, p in zip(tested, adjusted, strict=True):
        out[i] = dataclasses.replace(out[i], gap=dataclasses.replace(out[i].gap, p_holm=float(p),
                                                                     alpha=1 - confidence))
    return tuple(out)


def _interval(draws: np.ndarray, *, confidence: float) -> tuple[float, float]:
    """Percentile interval of the draws (NaN draws ignored; NaN when there are none)."""
    if draws.size == 0 or np.isnan(draws).all():
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2
    low, high = np.nanquantile(draws, [tail, 1 - tail])
    return float(low), float(high)


def _gap_change(engine, gaps: pd.DataFrame, run_a: Metric, run_b: Metric, attribute: str, *, confidence: float
                ) -> GapChange | None:
    """Each run's gap with its own worst and best groups (the engine's choice), and the paired change."""
    sides = []
    for run in (run_a, run_b):
        row = gaps.loc[(run.name, attribute)]
        if pd.isna(row["gap"]):
            return None
        worst, best = str(row["worst_group"]), str(row["best_group"])
        sign = -1.0 if row["worst_value"] - row["best_value"] < 0 else 1.0
        draws = sign * (engine.draws(run, attribute, worst) - engine.draws(run, attribute, best))
        sides.append((worst, best, float(row["gap"]), draws))
    (wa, ba, ga, da), (wb, bb, gb, db) = sides
    low, high = _interval(db - da, confidence=confidence)
    return GapChange(worst_a=wa, best_a=ba, gap_a=ga, worst_b=wb, best_b=bb, gap_b=gb, difference=gb - ga,
                     ci_low=low, ci_high=high, p_value=bootstrap_p_value(db - da), alpha=1 - confidence)
