"""Significance and effect sizes: permutation tests (one group against the rest, every group from one
permutation), Holm's step-down correction, Cohen's d and h.

The disaggregation engine's group tests (:meth:`~facebench.metrics.groups.Disaggregation.group_tests`) use
these; Fisher's exact test for rates comes from scipy.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from facebench.seeding import rng_stream

from .base import PartitionedAggregate, as_1d, check_int
from .resampling import PARALLEL_MIN_ELEMENTS

__all__ = ["DEFAULT_PERMUTATIONS", "PooledAggregate", "bootstrap_p_value", "cohens_d", "cohens_h", "holm", "permutation_pvalues",
           "permutation_test"]

#: Default number of random permutations of :meth:`Disaggregation.group_tests` and :func:`permutation_test`.
DEFAULT_PERMUTATIONS = 2000

# Elements (rows x pooled samples) per permutation chunk: float64 keys + int64 order + float64 gather, ~24 MiB.
_PERM_CHUNK_ELEMENTS = 1 << 20
# Relative slack when counting permuted statistics "at least as extreme" as the observed one, so that
# numerically distinct but theoretically equal statistics (sums in another order) count as ties.
_TIE_TOLERANCE = 1e-9


def holm(p_values) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values; NaN entries are left out of the family and stay NaN.

    With the ``m`` finite p-values sorted, ``p_(1) <= ... <= p_(m)``, the adjusted value of ``p_(i)`` is
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``. Rejecting where the adjusted value is below ``alpha``
    controls the family-wise error rate at ``alpha`` under any dependence between the tests.

    >>> holm([0.01, 0.04, 0.03, 0.005]).tolist()    # 4*0.005, 3*0.01, 2*0.03, max(0.06, 1*0.04)
    [0.03, 0.06, 0.06, 0.02]
    >>> holm([0.2, float("nan")]).tolist()
    [0.2, nan]
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"holm expects a 1-D array of p-values, got shape {p.shape}.")
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if ok.size == 0:
        return out
    if ((p[ok] < 0) | (p[ok] > 1)).any():
        raise ValueError("p-values must lie in [0, 1].")
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    steps = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(steps))
    return out


def cohens_d(x, y) -> float:
    """Cohen's d of ``x`` against ``y`` with the pooled standard deviation (ddof = 1 in each sample).

    ``d = (mean(x) - mean(y)) / s_p``, ``s_p² = ((n_x - 1) s_x² + (n_y - 1) s_y²) / (n_x + n_y - 2)``.
    NaN when ``n_x + n_y < 3`` or when ``s_p = 0`` and the means differ; 0 when both are equal constants.

    >>> round(cohens_d([1, 2, 3], [4, 5]), 6)   # -2.5 / sqrt((2*1 + 1*0.5) / 3)
    -2.738613
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    nx, ny = x.size, y.size
    if nx < 1 or ny < 1 or nx + ny < 3:
        return float("nan")
    ssx = float(((x - x.mean()) ** 2).sum())
    ssy = float(((y - y.mean()) ** 2).sum())
    sp = math.sqrt((ssx + ssy) / (nx + ny - 2))
    diff = float(x.mean() - y.mean())
    if sp == 0.0:
        return 0.0 if diff == 0.0 else float("nan")
    return diff / sp


def cohens_h(p1, p2):
    """Cohen's h between two proportions: ``2 asin(sqrt(p1)) - 2 asin(sqrt(p2))`` (vectorised).

    >>> round(float(cohens_h(0.5, 0.25)), 6)      # pi/2 - pi/3 = pi/6
    0.523599
    """
    p1 = np.asarray(p1, dtype=float)
    p2 = np.asarray(p2, dtype=float)
    out = 2.0 * np.arcsin(np.sqrt(p1)) - 2.0 * np.arcsin(np.sqrt(p2))
    return float(out) if out.ndim == 0 else out


def _random_partition(rng: np.random.Generator, rows: int, n: int, bounds: np.ndarray) -> np.ndarray:
    """``rows`` uniformly random permutations of ``0..n-1`` (argsort of i.i.d. uniform keys; a tie of two
    53-bit keys has probability below ``n² / 2^54``). Only the set of positions falling between consecutive
    ``bounds`` matters, so with one inner bound an ``argpartition`` is enough."""
    keys = rng.random((rows, n))
    inner = bounds[1:-1]
    if inner.size == 1:
        return np.argpartition(keys, int(inner[0]), axis=1)
    return np.argsort(keys, axis=1)


def _complement(index: np.ndarray, n: int) -> np.ndarray:
    """Row-wise complement in ``0..n-1`` of an index matrix whose rows hold distinct positions."""
    rows = index.shape[0]
    mask = np.zeros((rows, n), dtype=bool)
    mask[np.arange(rows)[:, None], index] = True
    return np.argsort(mask, axis=1, kind="stable")[:, : n - index.shape[1]]


def permutation_pvalues(x: np.ndarray, aggs: Sequence[PooledAggregate],
                         codes: np.ndarray, n_groups: int, *, n_permutations: int,
                         stream: Callable[[int], np.random.Generator], n_jobs: int = 1) -> np.ndarray:
    """Two-sided permutation p-values of "group g against the rest", for every group and statistic.

    The pooled sample has ``N = codes.size`` items; ``codes`` (0..G-1, every group non-empty) say which
    group each belongs to. Statistics: for each row ``x[j]``, ``mean(x_g) - mean(x_rest)``; for each
    ``f`` in ``aggs`` (an aggregate metric bound to the pooled sample: a vectorised function of an index
    matrix into it), ``f(g) - f(rest)``.
    A random permutation of the pooled positions is cut into consecutive blocks of the group sizes, so the
    block of group g is a uniformly random subset of its size: one permutation serves every group.

    p-value: ``(1 + #{|T*| >= |T_obs|}) / (R + 1)`` over ``R = n_permutations`` permutations (Phipson and
    Smyth, 2010); when the number of distinct splits ``C(N, n_g)`` is at most ``n_permutations`` they are
    all enumerated instead and ``p = #{|T*| >= |T_obs|} / C(N, n_g)`` (exact). Returns an array of shape
    ``(len(x) + len(aggs), G)``; NaN when a group is the whole pooled sample.

    When ``f.partition(perm, bounds)`` gives ``(group_values, rest_values)`` (both ``(rows, G)``; the metric's
    aggregate is a :class:`~facebench.metrics.base.PartitionedAggregate`) every group and its rest are scored
    in one pass instead of ``2 G`` calls. Chunks of permutations come
    from ``stream(chunk)`` and may run on ``n_jobs`` threads: the result does not depend on it.
    """
    x = np.asarray(x, dtype=float).reshape(-1, codes.size)
    q, n = x.shape[0], codes.size
    n_stats = q + len(aggs)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=n_groups)
    if (sizes == 0).any():
        raise ValueError("every group of a permutation test needs at least one sample.")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    p = np.full((n_stats, n_groups), np.nan)
    if n_groups < 2 or n_stats == 0:
        return p
    totals = x.sum(axis=1)
    scale = np.r_[np.abs(x).mean(axis=1), np.ones(len(aggs))]
    observed = np.empty((n_stats, n_groups))
    for g in range(n_groups):
        gpos = order[bounds[g]:bounds[g + 1]]
        rpos = np.concatenate([order[:bounds[g]], order[bounds[g + 1]:]])
        sg = x[:, gpos].sum(axis=1)
        observed[:q, g] = sg / sizes[g] - (totals - sg) / (n - sizes[g])
        for j, f in enumerate(aggs):
            observed[q + j, g] = float(f(gpos[None, :])[0]) - float(f(rpos[None, :])[0])
    threshold = np.abs(observed) - _TIE_TOLERANCE * (np.abs(observed) + scale[:, None])
    exact = [g for g in range(n_groups) if math.comb(n, int(sizes[g])) <= n_permutations]
    sampled = [g for g in range(n_groups) if g not in exact]

    if sampled:
        rows = max(1, _PERM_CHUNK_ELEMENTS // n)

        def run(chunk: int) -> np.ndarray:
            start = chunk * rows
            counts = np.zeros((n_stats, n_groups))
            perm = _random_partition(stream(chunk), min(n_permutations, start + rows) - start, n, bounds)
            for j in range(q):
                sums = np.add.reduceat(x[j][perm], bounds[:-1], axis=1)
                stat = sums / sizes - (totals[j] - sums) / (n - sizes)
                counts[j] += (np.abs(stat) >= threshold[j]).sum(axis=0)
            for j, f in enumerate(aggs):
                both = f.partition(perm, bounds)
                if both is not None:  # all groups and their rests in one pass
                    stat = np.asarray(both[0], dtype=float) - np.asarray(both[1], dtype=float)
                    counts[q + j] += (np.abs(stat) >= threshold[q + j]).sum(axis=0)
                    continue
                for g in sampled:
                    gi = perm[:, bounds[g]:bounds[g + 1]]
                    ri = np.concatenate([perm[:, :bounds[g]], perm[:, bounds[g + 1]:]], axis=1)
                    stat = np.asarray(f(gi), dtype=float) - np.asarray(f(ri), dtype=float)
                    counts[q + j, g] += int((np.abs(stat) >= threshold[q + j, g]).sum())
            return counts

        n_chunks = -(-n_permutations // rows)
        if n_jobs > 1 and n_chunks > 1 and n_permutations * n >= PARALLEL_MIN_ELEMENTS:
            with ThreadPoolExecutor(max_workers=n_jobs) as pool:
                parts = list(pool.map(run, range(n_chunks)))
        else:
            parts = [run(chunk) for chunk in range(n_chunks)]
        counts = np.sum(parts, axis=0)
        p[:, sampled] = (1.0 + counts[:, sampled]) / (n_permutations + 1.0)

    for g in exact:
        ng = int(sizes[g])
        combos = np.array(list(itertools.combinations(range(n), ng)), dtype=np.intp).reshape(-1, ng)
        for j in range(q):
            sg = x[j][combos].sum(axis=1)
            stat = sg / ng - (totals[j] - sg) / (n - ng)
            p[j, g] = float((np.abs(stat) >= threshold[j, g]).mean())
        if aggs:
            rest = _complement(combos, n)
            for j, f in enumerate(aggs):
                stat = np.asarray(f(combos), dtype=float) - np.asarray(f(rest), dtype=float)
                p[q + j, g] = float((np.abs(stat) >= threshold[q + j, g]).mean())
    return p


def permutation_test(x, y, *, n_permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0) -> float:
    """Two-sided permutation test of equal means: p-value of ``|mean(x) - mean(y)|`` under relabelling.

    The engine's test of one group against the rest (:meth:`Disaggregation.group_tests`), for two plain
    samples. ``n_permutations`` random splits of the pooled sample into sizes ``len(x)``, ``len(y)`` give
    ``p = (1 + #{|T*| >= |T_obs|}) / (n_permutations + 1)``; when there are at most ``n_permutations``
    distinct splits, all are enumerated and the p-value is exact. It equals
    ``scipy.stats.permutation_test((x, y), lambda a, b: abs(mean(a) - mean(b)), alternative="greater")``
    (exactly when enumerated, within Monte Carlo error otherwise).

    >>> permutation_test([1, 2, 3], [4, 5])   # 10 splits; only {1,2,3} and {3,4,5} are as extreme
    0.2
    """
    xa = as_1d(np.asarray(x, dtype=float), name="x")
    ya = as_1d(np.asarray(y, dtype=float), name="y")
    if xa.size == 0 or ya.size == 0:
        raise ValueError("permutation_test needs at least one value in each sample.")
    n_permutations = check_int(n_permutations, "n_permutations", 1)
    seed = check_int(seed, "seed", 0)
    codes = np.r_[np.zeros(xa.size, dtype=np.int64), np.ones(ya.size, dtype=np.int64)]
    p = permutation_pvalues(np.r_[xa, ya][None, :], [], codes, 2, n_permutations=n_permutations,
                             stream=lambda chunk: rng_stream(seed, chunk, 2))
    return float(p[0, 0])


class PooledAggregate:
    """An aggregate metric's function bound to a pooled sample: ``index matrix -> values``."""

    def __init__(self, fn, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        self.fn, self.y_true, self.y_pred = fn, y_true, y_pred

    def __call__(self, index: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(self.y_true, self.y_pred, index), dtype=float)

    def partition(self, perm: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Every block of ``perm`` and its complement in one pass, or None when the function has no fast path."""
        if isinstance(self.fn, PartitionedAggregate):
            return self.fn.partition(self.y_true, self.y_pred, perm, bounds)
        return None


def bootstrap_p_value(draws) -> float:
    """Two-sided bootstrap p-value of "the statistic is 0", dual to the percentile interval of ``draws``.

    ``p = min(1, 2 · min(#{d ≤ 0} + 1, #{d ≥ 0} + 1) / (B + 1))`` over the ``B`` draws ``d`` (the ``+ 1``
    counts the observed statistic among the draws, so p is never 0: its smallest value is ``2 / (B + 1)``).
    NaN without draws.

    >>> bootstrap_p_value([1.0, 2.0, 3.0, -1.0])     # 2 * (1 + 1) / 5
    0.8
    >>> bootstrap_p_value([1.0] * 99)                # 2 * (0 + 1) / 100
    0.02
    >>> bootstrap_p_value([0.0, 0.0, 0.0])
    1.0
    """
    d = np.asarray(draws, dtype=float)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return float("nan")
    below, above = int((d <= 0).sum()), int((d >= 0).sum())
    return float(min(1.0, 2.0 * (min(below, above) + 1) / (d.size + 1)))
