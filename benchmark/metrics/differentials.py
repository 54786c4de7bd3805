"""Demographic differentials of a verifier, NIST FRVT style, on similarity scores (higher = more similar;
a match when ``score >= threshold``; see ``docs/metrics.md``, "Verification"):

* :func:`tar_at_far` -- TAR at the smallest impostor-score threshold whose FAR does not exceed the target.
* :func:`global_threshold` and :func:`demographic_differentials` -- one global threshold from all impostor
  scores, then FMR and FNMR per group, with the fairness summaries FDR (de Freitas Pereira & Marcel),
  GARBE (Howard et al.) and the inequity rate.

The insightface 10-fold accuracy protocol, on distances, is :mod:`facebench.metrics.verification`.

Importing this module registers two rate metrics, ``fmr`` and ``fnmr`` (lower is better), used by the
disaggregation engine for the per-group values and Wilson intervals:

>>> from facebench.metrics import get_metric
>>> get_metric("fmr").is_rate, get_metric("fnmr").higher_is_better
(True, False)
>>> get_metric("fmr")([0, 0, 0, 0], [1, 0, 0, 0])    # 4 impostor pairs, one declared a match
0.25
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from facebench.seeding import rng_stream

from .base import Metric, check_confidence, check_int, check_same_length
from .groups import Disaggregation
from .intervals import wilson_interval
from .pair_inputs import as_bool, as_scores, check_rate, frozen
from .registry import METRIC_NAMES, get_metric, register_metric

__all__ = [
    "PAIR_RULES",
    "DIFFERENTIAL_COLUMNS",
    "FMR",
    "FNMR",
    "TarAtFar",
    "GroupRates",
    "TargetDifferentials",
    "DifferentialsResult",
    "tar_at_far",
    "global_threshold",
    "demographic_differentials",
    "gini",
    "garbe",
    "fdr",
    "max_min_ratio",
    "inequity_rate",
]


#: Columns of :meth:`DifferentialsResult.to_frame`, always in this order.
DIFFERENTIAL_COLUMNS = ("target_fmr", "threshold", "group", "metric", "value", "ci_low", "ci_high", "n",
                        "flag")

#: The pair-to-group rules of :func:`demographic_differentials`.
PAIR_RULES = ("same_group", "first")


# ===================================================================================== metrics
def _fmr_outcome(y_true, y_pred) -> np.ndarray:
    same = as_bool(y_true, name="y_true (issame)")
    if same.any():
        raise ValueError("fmr is defined on impostor pairs only: y_true (issame) must be all False/0.")
    return as_bool(y_pred, name="y_pred (declared match)").astype(float)


def _fnmr_outcome(y_true, y_pred) -> np.ndarray:
    same = as_bool(y_true, name="y_true (issame)")
    if not same.all():
        raise ValueError("fnmr is defined on genuine pairs only: y_true (issame) must be all True/1.")
    return 1.0 - as_bool(y_pred, name="y_pred (declared match)").astype(float)


#: False match rate: outcome 1 for an impostor pair declared a match (``score >= threshold``).
FMR = Metric(name="fmr", description="false match rate: share of impostor pairs with score >= threshold",
             higher_is_better=False, outcome=_fmr_outcome, is_rate=True)
#: False non-match rate: outcome 1 for a genuine pair declared a non-match (``score < threshold``).
FNMR = Metric(name="fnmr", description="false non-match rate: share of genuine pairs with score < threshold",
              higher_is_better=False, outcome=_fnmr_outcome, is_rate=True)


def _register(metric: Metric) -> None:
    if metric.name in METRIC_NAMES:
        existing = get_metric(metric.name)
        if existing is metric:
            return
        if existing.description != metric.description:  # someone else's metric: let the registry refuse
            register_metric(metric)
        register_metric(metric, replace=True)  # this module imported again (e.g. reloaded)
        return
    register_metric(metric)


_register(FMR)
_register(FNMR)


# ===================================================================================== thresholds
def _threshold_at(impostor: np.ndarray, target: float) -> float:
    """Smallest impostor score ``v`` with ``#{s >= v} / N <= target``; above the maximum if none."""
    s = np.sort(impostor)
    n = s.size
    u = np.unique(s)
    count_ge = n - np.searchsorted(s, u, side="left")
    ok = count_ge / n <= target
    if ok.any():
        return float(u[int(np.argmax(ok))])  # ok is False...False True...True: first True
    return float(np.nextafter(s[-1], np.inf))


def global_threshold(impostor_scores, target_fmr: float) -> float:
    """One decision threshold from *all* impostor scores at a nominal FMR (match: ``score >= τ``).

    The exact form of "the (1 - target) quantile of the impostor scores": with ``FMR(τ) =
    #{impostor s >= τ} / N``, ``τ`` is the **smallest impostor score whose FMR is <= target_fmr**. As FMR
    only changes at impostor scores, this gives the largest achievable FMR that does not exceed the
    target (the closest from below). Ties: all impostors equal to ``τ`` are matches, so a block of tied
    scores is either wholly in or wholly out and the achieved FMR can sit well below the target. If even
    the largest impostor score gives too high an FMR (e.g. ``target_fmr < 1/N``), ``τ`` is the next
    float above the largest impostor score and FMR is 0.

    >>> global_threshold([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], 0.2)   # FMR 2/10
    0.9
    >>> global_threshold([0.1, 0.5, 0.5, 0.5, 0.9], 0.5)    # 0.5 would give 4/5: only 0.9 (1/5) fits
    0.9
    >>> global_threshold([0.1, 0.5, 0.9], 1e-3) > 0.9       # nothing fits: just above the maximum
    True
    """
    imp = as_scores(impostor_scores, name="impostor_scores")
    if imp.size == 0:
        raise ValueError("global_threshold needs at least one impostor score.")
    return _threshold_at(imp, check_rate(target_fmr, name="target_fmr"))


@dataclass(frozen=True)
class TarAtFar:
    """Outcome of :func:`tar_at_far`.

    Attributes:
        tar: ``#{genuine >= threshold} / n_genuine``.
        far: the achieved ``#{impostor >= threshold} / n_impostor`` (<= ``target_far``).
        threshold: the decision threshold (match: ``score >= threshold``).
        target_far: the requested FAR.
        n_genuine, n_impostor: score counts.
        tar_ci_low, tar_ci_high: Wilson interval of ``tar`` at ``confidence`` (threshold held fixed).
        confidence: interval level.
    """

    tar: float
    far: float
    threshold: float
    target_far: float
    n_genuine: int
    n_impostor: int
    tar_ci_low: float
    tar_ci_high: float
    confidence: float


def tar_at_far(genuine_scores, impostor_scores, far: float, *, confidence: float = 0.95) -> TarAtFar:
    """True accept rate at a false accept rate, on similarity scores (higher = more similar).

    Rule: ``threshold`` = the smallest impostor score ``τ`` with ``FAR(τ) = #{impostor >= τ} / N_imp
    <= far`` (see :func:`global_threshold`; the next float above the largest impostor score when no
    impostor score qualifies); ``TAR = #{genuine >= τ} / N_gen``. No interpolation: one fixed threshold
    on all the scores given (not per fold).

    >>> r = tar_at_far([0.85, 0.95, 1.2, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], 0.2)
    >>> r.threshold, r.far, r.tar        # τ = 0.9: impostors 0.9, 1.0 (2/10); genuine 0.95, 1.2 (2/4)
    (0.9, 0.2, 0.5)
    """
    gen = as_scores(genuine_scores, name="genuine_scores")
    imp = as_scores(impostor_scores, name="impostor_scores")
    if gen.size == 0 or imp.size == 0:
        raise ValueError("tar_at_far needs at least one genuine and one impostor score.")
    target = check_rate(far, name="far")
    conf = check_confidence(confidence)
    tau = _threshold_at(imp, target)
    k = int(np.sum(gen >= tau))
    lo, hi = wilson_interval(k, gen.size, confidence=conf)
    return TarAtFar(tar=k / gen.size, far=int(np.sum(imp >= tau)) / imp.size, threshold=tau,
                    target_far=target, n_genuine=int(gen.size), n_impostor=int(imp.size),
                    tar_ci_low=float(lo), tar_ci_high=float(hi), confidence=conf)


# ===================================================================================== summaries
def max_min_ratio(values) -> float:
    """``max / min`` of non-negative rates: ``inf`` when ``min == 0 < max``; ``1.0`` when all are 0.

    NaN for fewer than one value or a NaN/negative value.

    >>> max_min_ratio([0.01, 0.02, 0.04]), max_min_ratio([0.0, 0.1]), max_min_ratio([0.0, 0.0])
    (4.0, inf, 1.0)
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0 or np.isnan(x).any() or (x < 0).any():
        return float("nan")
    hi, lo = float(x.max()), float(x.min())
    if lo == 0.0:
        return 1.0 if hi == 0.0 else float("inf")
    return hi / lo


def gini(values) -> float:
    """Sample-corrected Gini coefficient of Howard et al. (2022), used by GARBE.

    ``G(x) = n/(n-1) * sum_i sum_j |x_i - x_j| / (2 n^2 mean(x))`` over ordered pairs ``(i, j)``.
    NaN when ``n < 2`` or a value is NaN; when ``mean(x) == 0``: 0.0 if all values are equal, else NaN
    (undefined).

    Hand-worked, ``x = (0.01, 0.02, 0.04)``: the ordered-pair sum is ``2 * (0.01 + 0.03 + 0.02) = 0.12``,
    ``2 n^2 mean = 2 * 9 * 0.07/3 = 0.42``, so ``G = 3/2 * 0.12/0.42 = 3/7``.

    >>> round(gini([0.01, 0.02, 0.04]), 12), round(3 / 7, 12)
    (0.428571428571, 0.428571428571)
    >>> gini([0.0, 0.0]), gini([0.3, 0.3])
    (0.0, 0.0)
    """
    x = np.asarray(values, dtype=float)
    return float(_gini_rows(x[None, :])[0]) if x.ndim == 1 else float("nan")


def _gini_rows(x: np.ndarray) -> np.ndarray:
    """:func:`gini` of every row of a 2-D array."""
    n = x.shape[1]
    if n < 2:
        return np.full(x.shape[0], np.nan)
    total = np.abs(x[:, :, None] - x[:, None, :]).sum(axis=(1, 2))
    mean = x.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = n / (n - 1) * total / (2.0 * n * n * mean)
    equal = (x == x[:, :1]).all(axis=1)
    g = np.where(mean == 0, np.where(equal, 0.0, np.nan), g)
    return np.where(np.isnan(x).any(axis=1), np.nan, g)


def garbe(fmr, fnmr, alpha: float = 0.5) -> float:
    """GARBE (Gini Aggregation Rate for Biometric Equitability, Howard et al. 2022).

    ``GARBE = alpha * G(FMR) + (1 - alpha) * G(FNMR)`` with :func:`gini` over the groups; 0 = equitable.

    >>> round(garbe([0.01, 0.02, 0.04], [0.1, 0.1, 0.1], alpha=0.5), 12)     # (3/7 + 0) / 2
    0.214285714286
    """
    a = check_rate(alpha, name="alpha")
    return a * gini(fmr) + (1.0 - a) * gini(fnmr)


def fdr(fmr, fnmr, alpha: float = 0.5) -> float:
    """Fairness Discrepancy Rate (de Freitas Pereira & Marcel, 2021); 1 = fair, 0 = maximally unfair.

    ``FDR = 1 - (alpha * max_ij |FMR_i - FMR_j| + (1 - alpha) * max_ij |FNMR_i - FNMR_j|)``; the max over
    pairs is ``max - min``. NaN for fewer than 2 groups or a NaN value.

    >>> round(fdr([0.01, 0.02, 0.04], [0.10, 0.30, 0.20], alpha=0.5), 12)   # 1 - (0.03 + 0.2) / 2
    0.885
    """
    a = check_rate(alpha, name="alpha")
    x, y = np.asarray(fmr, dtype=float), np.asarray(fnmr, dtype=float)
    if x.size < 2 or y.size < 2 or np.isnan(x).any() or np.isnan(y).any():
        return float("nan")
    return 1.0 - (a * float(x.max() - x.min()) + (1.0 - a) * float(y.max() - y.min()))


def inequity_rate(fmr, fnmr, alpha: float = 0.5) -> float:
    """Inequity rate ``(max FMR / min FMR) ** alpha * (max FNMR / min FNMR) ** (1 - alpha)``.

    Ratios by :func:`max_min_ratio` (``inf`` when a minimum is 0 and the maximum is not; ``1`` when all
    are 0); ``inf ** 0 = 1``, so a weight of 0 switches its ratio off. 1 = equitable.

    >>> inequity_rate([0.01, 0.04], [0.1, 0.1], alpha=0.5)      # sqrt(4) * 1
    2.0
    >>> inequity_rate([0.0, 0.04], [0.1, 0.2], alpha=0.5)
    inf
    """
    a = check_rate(alpha, name="alpha")
    r1, r2 = max_min_ratio(fmr), max_min_ratio(fnmr)
    if np.isnan(r1) or np.isnan(r2):
        return float("nan")
    return float(np.power(r1, a) * np.power(r2, 1.0 - a))


# ===================================================================================== differentials
@dataclass(frozen=True, eq=False)
class GroupRates:
    """One rate (FMR or FNMR) for every group of :attr:`DifferentialsResult.groups` (read-only arrays).

    ``value`` is NaN and ``n`` 0 for a group without pairs of the kind; ``ci_low``/``ci_high`` are Wilson
    score intervals (never zero-width at 0 errors), or cluster-bootstrap percentile intervals when the pairs'
    people are given; ``flag`` is ``"small"`` when ``0 < n < min_group_size``. ``draws``: the cluster
    bootstrap's draws ``(groups, n_boot)`` (None for Wilson intervals).
    """

    metric: str
    value: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n: np.ndarray
    flag: tuple[str, ...]
    draws: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class TargetDifferentials:
    """Everything :func:`demographic_differentials` computes at one nominal FMR.

    Attributes:
        target_fmr: the nominal FMR.
        threshold: the global threshold (:func:`global_threshold` over *all* impostor pairs).
        global_fmr, global_fnmr: achieved FMR over all impostor pairs (<= target) and FNMR over all
            genuine pairs, cross-group pairs included.
        fmr, fnmr: per-group rates (:class:`GroupRates`), aligned with ``groups``.
        compared: the groups that enter the summaries below (see :func:`demographic_differentials`).
        fmr_ratio, fnmr_ratio: :func:`max_min_ratio` over ``compared``.
        fmr_gap, fnmr_gap: ``max - min`` over ``compared`` (the A and B of FDR).
        fdr, garbe, inequity_rate: :func:`fdr`, :func:`garbe`, :func:`inequity_rate` over ``compared``.
        fdr_ci, garbe_ci: bootstrap percentile intervals ``(low, high)`` with the threshold held fixed;
            ``(nan, nan)`` when ``n_boot=0`` or fewer than 2 groups are compared.
    """

    target_fmr: float
    threshold: float
    global_fmr: float
    global_fnmr: float
    groups: tuple[str, ...]
    fmr: GroupRates
    fnmr: GroupRates
    compared: tuple[str, ...]
    fmr_ratio: float
    fnmr_ratio: float
    fmr_gap: float
    fnmr_gap: float
    fdr: float
    garbe: float
    inequity_rate: float
    fdr_ci: tuple[float, float]
    garbe_ci: tuple[float, float]


@dataclass(frozen=True, eq=False)
class DifferentialsResult:
    """Outcome of :func:`demographic_differentials`.

    Attributes:
        pair_rule: one sentence stating the pair-to-group rule used and how many pairs it left out of
            every group (it begins with the rule's name, e.g. ``"same_group: ..."``).
        pair_rule_name: ``"same_group"`` or ``"first"``.
        groups: all groups that received at least one pair, sorted.
        targets: one :class:`TargetDifferentials` per nominal FMR, in the order given.
        alpha, confidence, n_boot, seed, min_group_size: the arguments.
        n_genuine, n_impostor: pair counts; n_unassigned_genuine, n_unassigned_impostor: pairs in no group
            (cross-group, or a missing label).
    """

    pair_rule: str
    pair_rule_name: str
    groups: tuple[str, ...]
    targets: tuple[TargetDifferentials, ...]
    alpha: float
    confidence: float
    n_boot: int
    seed: int
    min_group_size: int
    n_genuine: int
    n_impostor: int
    n_unassigned_genuine: int
    n_unassigned_impostor: int

    def at(self, target_fmr: float) -> TargetDifferentials:
        """The :class:`TargetDifferentials` for one nominal FMR."""
        for t in self.targets:
            if t.target_fmr == float(target_fmr):
                return t
        raise KeyError(f"No result at target FMR {target_fmr!r}; have {[t.target_fmr for t in self.targets]}.")

    def to_frame(self) -> pd.DataFrame:
        """Tidy table, one row per (target, metric, group with n > 0); columns :data:`DIFFERENTIAL_COLUMNS`.

        Rows are target-major (targets in the order given), then ``fmr`` before ``fnmr``, then groups
        sorted. ``ci_low``/``ci_high`` are Wilson intervals; ``flag`` is ``"small"`` or ``""``.
        """
        rows = []
        for t in self.targets:
            for rates in (t.fmr, t.fnmr):
                for i, g in enumerate(t.groups):
                    if rates.n[i] == 0:
                        continue
                    rows.append((t.target_fmr, t.threshold, g, rates.metric, float(rates.value[i]),
                                 float(rates.ci_low[i]), float(rates.ci_high[i]), int(rates.n[i]),
                                 rates.flag[i]))
        df = pd.DataFrame(rows, columns=list(DIFFERENTIAL_COLUMNS))
        return df.astype({"target_fmr": float, "threshold": float, "group": object, "metric": object,
                          "value": float, "ci_low": float, "ci_high": float, "n": np.int64,
                          "flag": object})

    def summary(self) -> dict[float, dict[str, float]]:
        """``{target_fmr: {"fdr", "garbe", "fmr_ratio", "fnmr_ratio", "inequity_rate"}}``."""
        return {t.target_fmr: {"fdr": t.fdr, "garbe": t.garbe, "fmr_ratio": t.fmr_ratio,
                               "fnmr_ratio": t.fnmr_ratio, "inequity_rate": t.inequity_rate}
                for t in self.targets}


def _labels(values, name: str) -> np.ndarray:
    """Object array of ``str`` labels, ``None`` where missing."""
    raw = values.to_numpy() if isinstance(values, (pd.Series, pd.Index)) else np.asarray(values, dtype=object)
    if raw.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got an array of shape {raw.shape}.")
    ser = pd.Series(raw, dtype=object)
    missing = ser.isna().to_numpy()
    out = ser.astype(str).to_numpy(dtype=object)
    out[missing] = None
    return out


def _pair_rule_sentence(rule: str, n_imp: int, n_gen: int, n_missing: int) -> str:
    missing = f"; {n_missing} pair(s) with a missing label are in no group" if n_missing else ""
    if rule == "same_group":
        return (f"same_group: a pair belongs to group g only when both of its sides are in g; the "
                f"{n_imp} cross-group impostor pair(s) count toward the global threshold only and the "
                f"{n_gen} cross-group genuine pair(s) toward no group{missing}.")
    return (f"first: a pair belongs to the group of its first side (group1), whatever the second side's "
            f"group; {n_imp} impostor and {n_gen} genuine pair(s) are cross-group{missing}.")


def _group_rates(metric: Metric, outcomes: np.ndarray, labels: np.ndarray, groups: tuple[str, ...], *,
                 confidence: float, min_group_size: int) -> GroupRates:
    """Per-group value, Wilson interval, n and flag through the disaggregation engine."""
    k = len(groups)
    value, lo, hi = np.full(k, np.nan), np.full(k, np.nan), np.full(k, np.nan)
    n = np.zeros(k, dtype=np.int64)
    flag = [""] * k
    if outcomes.size:
        eng = Disaggregation.from_outcomes({metric: outcomes}, pd.DataFrame({"group": labels}), n_boot=0,
                                           confidence=confidence, intersections=1,
                                           min_group_size=min_group_size, n_jobs=1)
        frame = eng.frame()
        frame = frame[frame["attribute"] == "group"]
        pos = {g: i for i, g in enumerate(groups)}
        for row in frame.itertuples(index=False):
            i = pos[row.group]
            value[i], lo[i], hi[i], n[i], flag[i] = row.value, row.ci_low, row.ci_high, row.n, row.flag
    return GroupRates(metric=metric.name, value=frozen(value), ci_low=frozen(lo), ci_high=frozen(hi),
                      n=frozen(n, dtype=np.int64), flag=tuple(flag))


def _clustered_rates(false_match: np.ndarray, false_non_match: np.ndarray, labels: np.ndarray,
                     groups: tuple[str, ...], units, *, n_boot: int, seed: int, confidence: float,
                     min_group_size: int) -> tuple[GroupRates, GroupRates]:
    """FMR and FNMR per group with intervals that resample the pairs' people (:mod:`facebench.metrics.clusters`).

    ``false_match`` is the 0/1 outcome of every pair (NaN on genuine pairs), ``false_non_match`` likewise (NaN on
    impostor pairs): one engine over all pairs, so both rates of a draw come from the same people.
    """
    fmr, fnmr = (dataclasses.replace(m, partial=True) for m in (FMR, FNMR))
    eng = Disaggregation.from_outcomes({fmr: false_match, fnmr: false_non_match},
                                       pd.DataFrame({"group": labels}), n_boot=n_boot, seed=seed,
                                       confidence=confidence, intersections=1, min_group_size=min_group_size,
                                       clusters=units)
    frame = eng.frame()
    frame = frame[frame["attribute"] == "group"].set_index(["metric", "group"])
    out = []
    for metric in (fmr, fnmr):
        k = len(groups)
        value, lo, hi = np.full(k, np.nan), np.full(k, np.nan), np.full(k, np.nan)
        n, flag, draws = np.zeros(k, dtype=np.int64), [""] * k, np.full((k, n_boot), np.nan)
        for i, g in enumerate(groups):
            if (metric.name, g) in frame.index:
                row = frame.loc[(metric.name, g)]
                value[i], lo[i], hi[i], n[i], flag[i] = row["value"], row["ci_low"], row["ci_high"], row["n"], row["flag"]
                draws[i] = eng.draws(metric, "group", g)
        out.append(GroupRates(metric=metric.name, value=frozen(value), ci_low=frozen(lo), ci_high=frozen(hi),
                              n=frozen(n, dtype=np.int64), flag=tuple(flag), draws=frozen(draws)))
    return out[0], out[1]


def _stream(seed: int, metric: str, group: str, target: float) -> np.random.Generator:
    return rng_stream(seed, metric, group, repr(float(target)))


def _percentile(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    a = 1.0 - confidence
    if draws.size == 0 or np.isnan(draws).any():
        return (float("nan"), float("nan"))
    lo, hi = np.quantile(draws, [a / 2.0, 1.0 - a / 2.0])
    return (float(lo), float(hi))


def demographic_differentials(scores, issame, group1, group2, *,
                              target_fmrs: float | Sequence[float] = (1e-2, 1e-3, 1e-4),
                              pair_rule: str = "same_group", alpha: float = 0.5, n_boot: int = 1000,
                              seed: int = 0, confidence: float = 0.95,
                              min_group_size: int = 30, units=None) -> DifferentialsResult:
    """NIST-style demographic differentials of a verification system, with FDR, GARBE and inequity rate.

    Args:
        scores: similarity score per pair (higher = more similar); a match is ``score >= threshold``.
        issame: True for a genuine (mated) pair, False for an impostor pair.
        group1, group2: group label of each side of each pair (strings; missing values allowed).
        target_fmrs: nominal FMRs; for each, ONE threshold from all impostor scores
            (:func:`global_threshold`), so per-group FMRs scatter around the target.
        pair_rule: ``"same_group"`` (default): a pair belongs to group g only when both sides are in g;
            cross-group impostor pairs count toward the global threshold and the global FMR only.
            ``"first"``: a pair belongs to its first side's group. A missing label on a side the rule
            reads puts the pair in no group.
        alpha: weight of the false-match side in FDR, GARBE and the inequity rate.
        n_boot: bootstrap draws for the FDR and GARBE intervals (0: none).
        seed: fixes the bootstrap (streams per seed, metric, group and target).
        confidence: level of the Wilson and bootstrap intervals.
        min_group_size: groups with fewer impostor (FMR) or genuine (FNMR) pairs are flagged ``"small"``.
        units: the two people of every pair, shape ``(n, 2)`` (None: pairs are taken as independent). With
            them, per-group intervals and the FDR/GARBE intervals come from a cluster bootstrap that resamples
            people (``n_boot`` draws; :mod:`facebench.metrics.clusters`), not from Wilson intervals and
            binomial redraws, which treat pairs that share people as independent.

    Per group g and target: ``FMR_g = #{impostor pairs of g: s >= τ} / #impostor pairs of g`` and
    ``FNMR_g = #{genuine pairs of g: s < τ} / #genuine pairs of g``, computed by
    :class:`~facebench.metrics.groups.Disaggregation` from 0/1 outcomes with the rate metrics ``fmr`` and
    ``fnmr``, each with its n and a Wilson interval.

    Summaries use the **compared** groups: those with at least one impostor and one genuine pair; among
    them, only those with at least ``min_group_size`` of each when two or more such groups exist (the
    engine's disparity convention). With fewer than two compared groups every summary is NaN.
    ``fmr_ratio``/``fnmr_ratio`` are max/min (:func:`max_min_ratio`: ``inf`` when the minimum is 0);
    :func:`fdr`, :func:`garbe` and :func:`inequity_rate` as documented there. The FDR and GARBE
    intervals are stratified percentile bootstraps with the threshold held fixed: each group's error count
    is redrawn as ``Binomial(n, rate)`` -- exactly the distribution of the count in a with-replacement
    resample of the group's 0/1 outcomes. Pairs that share a subject are not independent, so both the
    Wilson and the bootstrap intervals are optimistic.

    Hand-worked: groups a and b with 4 and 5 impostor pairs and one genuine pair each, plus one
    cross-group impostor pair (score 0.95). The ten impostor scores put the FMR=0.2 threshold at 0.9
    (0.9 and 0.95 are 2/10), so group a has FMR 1/4 (its 0.9), group b 0/5, and the cross-group 0.95
    counts only globally; the genuine 0.85 of a is a false non-match, the 0.99 of b is not.

    >>> scores = [0.9, 0.1, 0.2, 0.3,  0.4, 0.5, 0.6, 0.7,  0.95, 0.8, 0.85, 0.99]
    >>> issame = [False] * 10 + [True, True]
    >>> g1 = ["a"] * 4 + ["b"] * 4 + ["a", "b", "a", "b"]
    >>> g2 = ["a"] * 4 + ["b"] * 4 + ["b", "b", "a", "b"]
    >>> r = demographic_differentials(scores, issame, g1, g2, target_fmrs=[0.2], n_boot=0,
    ...                               min_group_size=1)
    >>> t = r.at(0.2)
    >>> t.threshold, t.global_fmr, t.fmr.value.tolist(), t.fnmr.value.tolist()
    (0.9, 0.2, [0.25, 0.0], [1.0, 0.0])
    >>> s = r.summary()[0.2]
    >>> s["fdr"], s["fmr_ratio"], s["fnmr_ratio"]             # 1 - (0.5 * 0.25 + 0.5 * 1)
    (0.375, inf, inf)
    >>> r.pair_rule.split(";")[0]
    'same_group: a pair belongs to group g only when both of its sides are in g'
    >>> print(r.to_frame()[["group", "metric", "value", "n"]].to_string(index=False))
    group metric  value  n
        a    fmr   0.25  4
        b    fmr   0.00  5
        a   fnmr   1.00  1
        b   fnmr   0.00  1
    """
    s = as_scores(scores, name="scores")
    same = as_bool(issame, name="issame")
    l1, l2 = _labels(group1, "group1"), _labels(group2, "group2")
    check_same_length(scores=s, issame=same, group1=l1, group2=l2)
    if pair_rule not in PAIR_RULES:
        raise ValueError(f"pair_rule must be one of {', '.join(PAIR_RULES)}, got {pair_rule!r}.")
    a = check_rate(alpha, name="alpha")
    n_boot = check_int(n_boot, "n_boot", 0)
    seed = check_int(seed, "seed", 0)
    conf = check_confidence(confidence)
    min_group_size = check_int(min_group_size, "min_group_size", 1)
    targets = [target_fmrs] if isinstance(target_fmrs, (int, float, np.integer, np.floating)) \
        else list(target_fmrs)
    if not targets:
        raise ValueError("target_fmrs needs at least one value.")
    targets = [check_rate(t, name="target_fmrs", low_open=True) for t in targets]
    if len(set(targets)) != len(targets):
        raise ValueError(f"target_fmrs has repeated values: {targets}.")
    imp, gen = ~same, same
    if not imp.any() or not gen.any():
        raise ValueError("demographic_differentials needs at least one genuine and one impostor pair.")

    missing1, missing2 = pd.isna(l1), pd.isna(l2)
    if pair_rule == "same_group":
        both = ~missing1 & ~missing2
        ok = both & (l1 == l2)
        n_missing = int((~both).sum())
        cross = both & ~ok
    else:
        ok = ~missing1
        n_missing = int(missing1.sum())
        cross = ~missing1 & ~missing2 & (l1 != l2)
    assigned = np.where(ok, l1, None).astype(object)
    groups = tuple(sorted({str(v) for v in assigned[ok]}))
    sentence = _pair_rule_sentence(pair_rule, int((cross & imp).sum()), int((cross & gen).sum()), n_missing)

    s_imp, s_gen = s[imp], s[gen]
    lab_imp, lab_gen = assigned[imp], assigned[gen]
    results = []
    for target in targets:
        tau = _threshold_at(s_imp, target)
        fm = (s_imp >= tau).astype(float)
        fnm = (s_gen < tau).astype(float)
        if units is not None and n_boot:
            false_match, false_non_match = np.full(s.size, np.nan), np.full(s.size, np.nan)
            false_match[imp], false_non_match[gen] = fm, fnm
            fmr_rates, fnmr_rates = _clustered_rates(false_match, false_non_match, assigned, groups, units,
                                                     n_boot=n_boot, seed=seed, confidence=conf,
                                                     min_group_size=min_group_size)
        else:
            fmr_rates = _group_rates(FMR, fm, lab_imp, groups, confidence=conf, min_group_size=min_group_size)
            fnmr_rates = _group_rates(FNMR, fnm, lab_gen, groups, confidence=conf, min_group_size=min_group_size)
        results.append(_summarise(target, tau, float(fm.mean()), float(fnm.mean()), groups, fmr_rates,
                                  fnmr_rates, alpha=a, n_boot=n_boot, seed=seed, confidence=conf,
                                  min_group_size=min_group_size))

    return DifferentialsResult(
        pair_rule=sentence, pair_rule_name=pair_rule, groups=groups, targets=tuple(results), alpha=a,
        confidence=conf, n_boot=n_boot, seed=seed, min_group_size=min_group_size,
        n_genuine=int(gen.sum()), n_impostor=int(imp.sum()),
        n_unassigned_genuine=int((gen & ~ok).sum()), n_unassigned_impostor=int((imp & ~ok).sum()),
    )


def _summarise(target, tau, global_fmr, global_fnmr, groups, fmr_rates: GroupRates, fnmr_rates: GroupRates,
               *, alpha, n_boot, seed, confidence, min_group_size) -> TargetDifferentials:
    eligible = np.flatnonzero((fmr_rates.n > 0) & (fnmr_rates.n > 0))
    big = eligible[(fmr_rates.n[eligible] >= min_group_size) & (fnmr_rates.n[eligible] >= min_group_size)]
    idx = big if big.size >= 2 else eligible
    nan2 = (float("nan"), float("nan"))
    if idx.size < 2:
        nan = float("nan")
        return TargetDifferentials(
            target_fmr=target, threshold=tau, global_fmr=global_fmr, global_fnmr=global_fnmr, groups=groups,
            fmr=fmr_rates, fnmr=fnmr_rates, compared=tuple(groups[i] for i in idx), fmr_ratio=nan,
            fnmr_ratio=nan, fmr_gap=nan, fnmr_gap=nan, fdr=nan, garbe=nan, inequity_rate=nan,
            fdr_ci=nan2, garbe_ci=nan2)
    x, y = fmr_rates.value[idx], fnmr_rates.value[idx]
    fdr_ci = garbe_ci = nan2
    if n_boot and fmr_rates.draws is not None:  # the cluster bootstrap's joint draws; drop draws missing a group
        xs, ys = fmr_rates.draws[idx].T, fnmr_rates.draws[idx].T
        keep = ~(np.isnan(xs).any(axis=1) | np.isnan(ys).any(axis=1))
        xs, ys = xs[keep], ys[keep]
        fdr_ci = _percentile(1.0 - (alpha * (xs.max(1) - xs.min(1)) + (1.0 - alpha) * (ys.max(1) - ys.min(1))),
                             confidence)
        garbe_ci = _percentile(alpha * _gini_rows(xs) + (1.0 - alpha) * _gini_rows(ys), confidence)
    elif n_boot:
        xs = np.empty((n_boot, idx.size))
        ys = np.empty((n_boot, idx.size))
        for col, i in enumerate(idx):
            for draws, rates in ((xs, fmr_rates), (ys, fnmr_rates)):
                n = int(rates.n[i])
                rng = _stream(seed, rates.metric, groups[i], target)
                draws[:, col] = rng.binomial(n, rates.value[i], size=n_boot) / n
        fdr_draws = 1.0 - (alpha * (xs.max(1) - xs.min(1)) + (1.0 - alpha) * (ys.max(1) - ys.min(1)))
        garbe_draws = alpha * _gini_rows(xs) + (1.0 - alpha) * _gini_rows(ys)
        fdr_ci = _percentile(fdr_draws, confidence)
        garbe_ci = _percentile(garbe_draws, confidence)
    return TargetDifferentials(
        target_fmr=target, threshold=tau, global_fmr=global_fmr, global_fnmr=global_fnmr, groups=groups,
        fmr=fmr_rates, fnmr=fnmr_rates, compared=tuple(groups[i] for i in idx),
        fmr_ratio=max_min_ratio(x), fnmr_ratio=max_min_ratio(y),
        fmr_gap=float(x.max() - x.min()), fnmr_gap=float(y.max() - y.min()),
        fdr=fdr(x, y, alpha), garbe=garbe(x, y, alpha), inequity_rate=inequity_rate(x, y, alpha),
        fdr_ci=fdr_ci, garbe_ci=garbe_ci)
