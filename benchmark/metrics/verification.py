"""Face verification metrics: insightface 10-fold accuracy, TAR@FAR, and demographic differentials.

Three families, each documented with its reference and every tie and comparison rule spelled out
(see ``docs/metrics.md``, section "Verification"):

* :func:`kfold_accuracy` / :func:`kfold_accuracy_from_distances` -- the insightface ``arcface_torch``
  protocol (``eval/verification.py``): squared L2 distance of unit embeddings, "same" when
  ``dist < threshold``, best training-fold threshold per fold, unshuffled contiguous folds, and
  VAL@FAR=1e-3 by ``slinear`` interpolation of the training-fold FAR curve.
* :func:`tar_at_far` -- TAR at the smallest impostor-score threshold whose FAR does not exceed the target.
* :func:`global_threshold` and :func:`demographic_differentials` -- NIST FRVT style demographic
  differentials (one global threshold from all impostor scores, then FMR and FNMR per group), with the
  fairness summaries FDR (de Freitas Pereira & Marcel), GARBE (Howard et al.) and the inequity rate.

Score conventions: :func:`kfold_accuracy` works on *distances* (lower = more similar, as insightface
does); everything else works on *similarity scores* (higher = more similar) and declares a match when
``score >= threshold``.

Importing this module registers two rate metrics, ``fmr`` and ``fnmr`` (lower is better), used by the
disaggregation engine for the per-group values and Wilson intervals:

>>> from facebench.metrics import get_metric
>>> get_metric("fmr").is_rate, get_metric("fnmr").higher_is_better
(True, False)
>>> get_metric("fmr")([0, 0, 0, 0], [1, 0, 0, 0])    # 4 impostor pairs, one declared a match
0.25
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import METRIC_NAMES, get_metric, register_metric
from .base import Metric, as_1d, check_same_length
from .groups import Disaggregation, wilson_interval

__all__ = [
    "INSIGHTFACE_THRESHOLDS",
    "INSIGHTFACE_VAL_THRESHOLDS",
    "PAIR_RULES",
    "DIFFERENTIAL_COLUMNS",
    "FMR",
    "FNMR",
    "KFoldResult",
    "TarAtFar",
    "GroupRates",
    "TargetDifferentials",
    "DifferentialsResult",
    "kfold_accuracy",
    "kfold_accuracy_from_distances",
    "l2_normalize",
    "kfold_bounds",
    "legacy_slinear_interp",
    "tar_at_far",
    "global_threshold",
    "demographic_differentials",
    "gini",
    "garbe",
    "fdr",
    "max_min_ratio",
    "inequity_rate",
]


def _frozen(values, dtype=float) -> np.ndarray:
    arr = np.array(values, dtype=dtype)
    arr.setflags(write=False)
    return arr


#: insightface's accuracy thresholds on squared L2 distance: ``np.arange(0, 4, 0.01)`` (400 values).
INSIGHTFACE_THRESHOLDS = _frozen(np.arange(0, 4, 0.01))
#: insightface's VAL@FAR thresholds: ``np.arange(0, 4, 0.001)`` (4,000 values).
INSIGHTFACE_VAL_THRESHOLDS = _frozen(np.arange(0, 4, 0.001))

#: Columns of :meth:`DifferentialsResult.to_frame`, always in this order.
DIFFERENTIAL_COLUMNS = ("target_fmr", "threshold", "group", "metric", "value", "ci_low", "ci_high", "n",
                        "flag")

#: The pair-to-group rules of :func:`demographic_differentials`.
PAIR_RULES = ("same_group", "first")


# ===================================================================================== metrics
def _fmr_outcome(y_true, y_pred) -> np.ndarray:
    same = _as_bool(y_true, name="y_true (issame)")
    if same.any():
        raise ValueError("fmr is defined on impostor pairs only: y_true (issame) must be all False/0.")
    return _as_bool(y_pred, name="y_pred (declared match)").astype(float)


def _fnmr_outcome(y_true, y_pred) -> np.ndarray:
    same = _as_bool(y_true, name="y_true (issame)")
    if not same.all():
        raise ValueError("fnmr is defined on genuine pairs only: y_true (issame) must be all True/1.")
    return 1.0 - _as_bool(y_pred, name="y_pred (declared match)").astype(float)


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


# ===================================================================================== validation
def _as_bool(values, *, name: str) -> np.ndarray:
    """A 1-D boolean array from booleans or 0/1 numbers (anything else is refused)."""
    arr = as_1d(values, name=name)
    if arr.dtype.kind == "b":
        return arr.astype(bool)
    if arr.dtype.kind in "iuf" and np.isin(arr, (0, 1)).all():
        return arr.astype(bool)
    if arr.dtype.kind == "O" and all(isinstance(v, (bool, np.bool_)) for v in arr):
        return arr.astype(bool)
    raise ValueError(f"{name} must hold booleans or 0/1 values.")


def _as_scores(values, *, name: str) -> np.ndarray:
    arr = as_1d(values, name=name)
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}.")
    return arr.astype(float)


def _as_thresholds(values, *, name: str, minimum: int = 1) -> np.ndarray:
    arr = _as_scores(values, name=name)
    if arr.size < minimum:
        raise ValueError(f"{name} needs at least {minimum} value(s), got {arr.size}.")
    return arr


def _check_rate(value, *, name: str, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number in {'(0, 1]' if low_open else '[0, 1]'}, got {value!r}.")
    v = float(value)
    ok = (0.0 < v <= 1.0) if low_open else (0.0 <= v <= 1.0)
    if not ok:
        raise ValueError(f"{name} must be in {'(0, 1]' if low_open else '[0, 1]'}, got {value!r}.")
    return v


def _check_confidence(confidence) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.floating)) \
            or not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be a number strictly between 0 and 1, got {confidence!r}.")
    return float(confidence)


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


# ===================================================================================== k-fold (insightface)
def l2_normalize(embeddings) -> np.ndarray:
    """Rows divided by their L2 norm, as ``sklearn.preprocessing.normalize`` does (float64).

    A row whose norm is below ``10 * eps`` (numerically zero) is left as it is, like sklearn.

    >>> l2_normalize([[3.0, 4.0], [0.0, 0.0]]).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """
    x = np.asarray(embeddings, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array (pairs x dimensions), got shape {x.shape}.")
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms < 10 * np.finfo(float).eps] = 1.0
    return x / norms[:, None]


def kfold_bounds(n: int, n_folds: int) -> tuple[tuple[int, int], ...]:
    """``(start, stop)`` of each contiguous test fold, as ``sklearn.model_selection.KFold(shuffle=False)``.

    Every fold has ``n // n_folds`` pairs and the first ``n % n_folds`` folds one more. With
    ``n_folds=1`` the only fold is everything (insightface's ``LFold``: train = test = all pairs).

    >>> kfold_bounds(6, 3)
    ((0, 2), (2, 4), (4, 6))
    >>> kfold_bounds(7, 3)
    ((0, 3), (3, 5), (5, 7))
    """
    n = _check_int(n, "n", 1)
    k = _check_int(n_folds, "n_folds", 1)
    if k > n:
        raise ValueError(f"n_folds={k} is larger than the number of pairs ({n}).")
    sizes = np.full(k, n // k, dtype=np.int64)
    sizes[: n % k] += 1
    stops = np.cumsum(sizes)
    return tuple((int(b - s), int(b)) for s, b in zip(sizes, stops, strict=True))


def legacy_slinear_interp(x, y, x_new: float) -> float:
    """``interp1d(x, y, kind='slinear')(x_new)`` as scipy evaluated it before it refused repeated ``x``.

    insightface's VAL@FAR calls ``interp1d(far_train, thresholds, kind='slinear')`` on a FAR curve that
    is flat over many thresholds, i.e. with repeated ``x``. scipy up to about 1.8 built a degree-1
    B-spline on the knots ``r_[x0, x, x_last]`` without checking for repeats; current scipy raises
    ``ValueError: Expect x to not have duplicates``. This re-implements the old evaluation exactly:

    1. sort ``(x, y)`` by ``x`` with a stable sort (``argsort(kind="mergesort")``);
    2. ``x_new`` below ``x[0]`` or above ``x[-1]`` raises ``ValueError`` (interp1d's bounds check);
    3. ``j`` = the largest index ``<= len(x) - 2`` with ``x[j] <= x_new`` (so inside a run of equal ``x``
       the *last* point of the run is used);
    4. if ``x[j+1] == x[j]`` (only possible when ``x_new == x[-1]`` and the largest ``x`` is repeated)
       the B-spline basis vanishes and the value is ``0.0``; otherwise, with ``w = 1 / (x[j+1] - x[j])``,
       the value is ``y[j] * (w * (x[j+1] - x_new)) + y[j+1] * (w * (x_new - x[j]))``.

    >>> legacy_slinear_interp([0.0, 0.0, 0.5, 1.0], [10.0, 11.0, 12.0, 13.0], 0.25)   # from (0, 11)
    11.5
    >>> legacy_slinear_interp([0.0, 0.0, 0.5, 1.0], [10.0, 11.0, 12.0, 13.0], 0.0)    # last of the run
    11.0
    >>> legacy_slinear_interp([0.0, 1.0, 1.0], [1.0, 2.0, 3.0], 1.0)                  # degenerate end
    0.0
    """
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    if xs.ndim != 1 or xs.shape != ys.shape:
        raise ValueError(f"x and y must be 1-D arrays of one length, got shapes {xs.shape} and {ys.shape}.")
    if xs.size < 2:
        raise ValueError("x and y arrays must have at least 2 entries")
    order = np.argsort(xs, kind="mergesort")
    xs, ys = xs[order], ys[order]
    v = float(x_new)
    if not xs[0] <= v <= xs[-1]:
        side = "below" if v < xs[0] else "above"
        raise ValueError(f"A value ({v}) in x_new is {side} the interpolation range.")
    j = min(int(np.searchsorted(xs, v, side="right")) - 1, xs.size - 2)
    xa, xb = xs[j], xs[j + 1]
    if xb == xa:
        return 0.0
    w = 1.0 / (xb - xa)
    return float(0.0 + ys[j] * (w * (xb - v)) + ys[j + 1] * (w * (v - xa)))


@dataclass(frozen=True, eq=False)
class KFoldResult:
    """Outcome of :func:`kfold_accuracy` (arrays are read-only, one entry per fold).

    Attributes:
        mean, std: mean and population standard deviation (``ddof=0``) of ``fold_accuracies``: the
            "Accuracy-Flip: mean+-std" line of insightface when flip embeddings were given.
        fold_accuracies: accuracy on each held-out fold at that fold's ``best_thresholds``.
        best_thresholds: per fold, the first threshold maximising training-fold accuracy.
        val_at_far, val_std: mean and ``ddof=0`` std of ``fold_val`` (insightface's ``val, val_std``).
        far, far_std: mean and ``ddof=0`` std of ``fold_far`` (insightface reports the mean only).
        fold_val, fold_far: VAL (TAR) and FAR on each held-out fold at ``val_thresholds``; NaN where the
            held-out fold has no genuine (VAL) or no impostor (FAR) pair, or the training folds have no
            impostor pair (then both are NaN, and so are the means).
        val_thresholds: per fold, the interpolated distance threshold for ``far_target`` (0.0 where the
            training FAR never reaches the target, as insightface does; NaN where it is undefined).
        far_target: the FAR target (insightface: 1e-3).
        folds: ``(start, stop)`` pair positions of each held-out fold.
        n_pairs, n_genuine, n_impostor: pair counts.
    """

    mean: float
    std: float
    fold_accuracies: np.ndarray
    best_thresholds: np.ndarray
    val_at_far: float
    val_std: float
    far: float
    far_std: float
    fold_val: np.ndarray
    fold_far: np.ndarray
    val_thresholds: np.ndarray
    far_target: float
    folds: tuple[tuple[int, int], ...]
    n_pairs: int
    n_genuine: int
    n_impostor: int

    @property
    def n_folds(self) -> int:
        """Number of folds."""
        return len(self.folds)


def _count_below(sorted_values: np.ndarray, thresholds) -> np.ndarray:
    """How many of ``sorted_values`` are strictly below each threshold (``dist < thr``)."""
    return np.searchsorted(sorted_values, thresholds, side="left")


def kfold_accuracy_from_distances(dist, issame, n_folds: int = 10, *,
                                  thresholds=INSIGHTFACE_THRESHOLDS, far_target: float = 1e-3,
                                  val_thresholds=INSIGHTFACE_VAL_THRESHOLDS) -> KFoldResult:
    """insightface k-fold verification accuracy and VAL@FAR on precomputed pair distances.

    Lower distance = more similar; a pair is predicted "same" when ``dist < threshold`` (strict).

    * **Folds**: contiguous, unshuffled (:func:`kfold_bounds`, as sklearn ``KFold(n_folds)``); each fold
      is held out once and the other folds are its training set (``n_folds=1``: train = test = all).
    * **Accuracy**: per fold, training accuracy ``(TP + TN) / N`` at every entry of ``thresholds``; the
      best threshold is the *first* maximiser in the given order (``np.argmax``; with increasing
      thresholds: the smallest on ties); the fold's accuracy is the held-out accuracy at it. ``mean``
      and ``std`` (``ddof=0``) are over folds.
    * **VAL@FAR**: per fold, ``far_train[t]`` = share of training impostor pairs with
      ``dist < val_thresholds[t]``; if ``max(far_train) >= far_target`` the threshold is
      ``interp1d(far_train, val_thresholds, kind='slinear')(far_target)`` -- evaluated as scipy did when
      insightface was written, see :func:`legacy_slinear_interp` -- otherwise ``0.0``. VAL (share of
      held-out genuine pairs with ``dist < threshold``) and FAR (same for impostors) on the held-out fold.

    Hand-worked: 6 pairs, 3 folds of 2, thresholds 0.5 / 1.0 / 1.5.

    >>> dist   = [0.2, 1.2, 0.7, 0.4, 1.4, 1.6]
    >>> issame = [True, False, True, False, True, False]
    >>> r = kfold_accuracy_from_distances(dist, issame, n_folds=3, thresholds=[0.5, 1.0, 1.5],
    ...                                   val_thresholds=[0.0, 1.0, 2.0], far_target=0.5)
    >>> r.folds
    ((0, 2), (2, 4), (4, 6))

    Fold 1 holds out pairs 0-1 and trains on 0.7 S, 0.4 D, 1.4 S, 1.6 D: accuracies 1/4, 2/4, 3/4, so
    1.5 wins; held out, 0.2 S is right and 1.2 D is wrongly "same": 1/2. Fold 2 trains on 0.2 S, 1.2 D,
    1.4 S, 1.6 D: 3/4 at all three, a tie won by the first (0.5); held out: 0.7 S and 0.4 D both wrong: 0.
    Fold 3 trains on 0.2 S, 1.2 D, 0.7 S, 0.4 D: 2/4, 3/4, 2/4, so 1.0; held out: 1.4 S wrong, 1.6 D
    right: 1/2.

    >>> r.best_thresholds.tolist(), r.fold_accuracies.tolist()
    ([1.5, 0.5, 1.0], [0.5, 0.0, 0.5])
    >>> round(r.mean, 6), round(r.std, 6)          # std with ddof=0: sqrt(((1/6)^2*2 + (1/3)^2)/3)
    (0.333333, 0.235702)

    VAL at FAR=0.5, fold 1: training impostors 0.4, 1.6 give FAR 0, 1/2, 1 at 0, 1, 2; interpolating
    (0, 0) (0.5, 1) (1, 2) at 0.5 gives threshold 1.0; held out: VAL = 1 (0.2 < 1), FAR = 0 (1.2).

    >>> r.val_thresholds.tolist()[0], r.fold_val.tolist()[0], r.fold_far.tolist()[0]
    (1.0, 1.0, 0.0)
    """
    d = _as_scores(dist, name="dist")
    same = _as_bool(issame, name="issame")
    n = check_same_length(dist=d, issame=same)
    if n == 0:
        raise ValueError("kfold_accuracy needs at least one pair.")
    thr = _as_thresholds(thresholds, name="thresholds")
    vthr = _as_thresholds(val_thresholds, name="val_thresholds", minimum=2)
    target = _check_rate(far_target, name="far_target", low_open=True)
    folds = kfold_bounds(n, n_folds)
    k = len(folds)

    acc = np.empty(k)
    best = np.empty(k)
    val = np.full(k, np.nan)
    far = np.full(k, np.nan)
    vth = np.full(k, np.nan)
    for i, (start, stop) in enumerate(folds):
        test = np.zeros(n, dtype=bool)
        test[start:stop] = True
        train = ~test if k > 1 else test
        d_tr, s_tr = d[train], same[train]
        gen_tr, imp_tr = np.sort(d_tr[s_tr]), np.sort(d_tr[~s_tr])
        d_te, s_te = d[test], same[test]
        # accuracy: (TP + TN) / N on the training folds at every threshold, first argmax
        tp = _count_below(gen_tr, thr)
        tn = imp_tr.size - _count_below(imp_tr, thr)
        acc_train = (tp + tn) / d_tr.size
        b = int(np.argmax(acc_train))
        best[i] = thr[b]
        pred = d_te < thr[b]
        acc[i] = (np.sum(pred & s_te) + np.sum(~pred & ~s_te)) / d_te.size
        # VAL@FAR
        if imp_tr.size == 0:
            continue
        far_train = _count_below(imp_tr, vthr) / imp_tr.size
        if np.max(far_train) >= target:
            t = legacy_slinear_interp(far_train, vthr, target)
        else:
            t = 0.0
        vth[i] = t
        pred = d_te < t
        n_same, n_diff = int(s_te.sum()), int((~s_te).sum())
        if n_same:
            val[i] = np.sum(pred & s_te) / n_same
        if n_diff:
            far[i] = np.sum(pred & ~s_te) / n_diff

    return KFoldResult(
        mean=float(np.mean(acc)), std=float(np.std(acc)),
        fold_accuracies=_frozen(acc), best_thresholds=_frozen(best),
        val_at_far=float(np.mean(val)), val_std=float(np.std(val)),
        far=float(np.mean(far)), far_std=float(np.std(far)),
        fold_val=_frozen(val), fold_far=_frozen(far), val_thresholds=_frozen(vth),
        far_target=target, folds=folds, n_pairs=n, n_genuine=int(same.sum()),
        n_impostor=int((~same).sum()),
    )


def kfold_accuracy(emb1, emb2, issame, n_folds: int = 10, *, flip_emb1=None, flip_emb2=None,
                   thresholds=INSIGHTFACE_THRESHOLDS, far_target: float = 1e-3,
                   val_thresholds=INSIGHTFACE_VAL_THRESHOLDS) -> KFoldResult:
    """insightface (arcface_torch ``eval/verification.py``) k-fold accuracy and VAL@FAR on embeddings.

    ``emb1[i]`` and ``emb2[i]`` are the two faces of pair ``i`` (for an insightface ``.bin`` pack:
    ``emb[0::2]`` and ``emb[1::2]``). With ``flip_emb1``/``flip_emb2`` (embeddings of the horizontally
    flipped images; both or neither) each embedding becomes ``normalize(e + e_flip)`` -- the raw sum,
    then one L2 normalisation: insightface's "Accuracy-Flip"; without them, ``normalize(e)``.
    The distance is ``sum((e1 - e2) ** 2)`` (squared L2, in [0, 4]) and everything else is
    :func:`kfold_accuracy_from_distances`. Computation is in float64.

    >>> e1 = [[1.0, 0.0], [1.0, 0.0]]
    >>> e2 = [[2.0, 0.0], [0.0, 3.0]]            # same direction (dist 0), orthogonal (dist 2)
    >>> r = kfold_accuracy(e1, e2, [True, False], n_folds=2, thresholds=[1.0], val_thresholds=[0, 4])
    >>> r.fold_accuracies.tolist(), r.mean
    ([1.0, 1.0], 1.0)
    """
    a = _embeddings(emb1, "emb1")
    b = _embeddings(emb2, "emb2")
    if a.shape != b.shape:
        raise ValueError(f"emb1 and emb2 must have one shape, got {a.shape} and {b.shape}.")
    if (flip_emb1 is None) != (flip_emb2 is None):
        raise ValueError("Give both flip_emb1 and flip_emb2, or neither.")
    if flip_emb1 is not None:
        fa = _embeddings(flip_emb1, "flip_emb1")
        fb = _embeddings(flip_emb2, "flip_emb2")
        if fa.shape != a.shape or fb.shape != a.shape:
            raise ValueError(f"flip embeddings must have the shape of emb1 {a.shape}, got {fa.shape} and "
                             f"{fb.shape}.")
        a, b = a + fa, b + fb
    a, b = l2_normalize(a), l2_normalize(b)
    dist = np.sum(np.square(np.subtract(a, b)), 1)
    return kfold_accuracy_from_distances(dist, issame, n_folds, thresholds=thresholds,
                                         far_target=far_target, val_thresholds=val_thresholds)


def _embeddings(values, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (pairs x dimensions), got shape {x.shape}.")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return x


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
    imp = _as_scores(impostor_scores, name="impostor_scores")
    if imp.size == 0:
        raise ValueError("global_threshold needs at least one impostor score.")
    return _threshold_at(imp, _check_rate(target_fmr, name="target_fmr"))


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
    gen = _as_scores(genuine_scores, name="genuine_scores")
    imp = _as_scores(impostor_scores, name="impostor_scores")
    if gen.size == 0 or imp.size == 0:
        raise ValueError("tar_at_far needs at least one genuine and one impostor score.")
    target = _check_rate(far, name="far")
    conf = _check_confidence(confidence)
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
    a = _check_rate(alpha, name="alpha")
    return a * gini(fmr) + (1.0 - a) * gini(fnmr)


def fdr(fmr, fnmr, alpha: float = 0.5) -> float:
    """Fairness Discrepancy Rate (de Freitas Pereira & Marcel, 2021); 1 = fair, 0 = maximally unfair.

    ``FDR = 1 - (alpha * max_ij |FMR_i - FMR_j| + (1 - alpha) * max_ij |FNMR_i - FNMR_j|)``; the max over
    pairs is ``max - min``. NaN for fewer than 2 groups or a NaN value.

    >>> round(fdr([0.01, 0.02, 0.04], [0.10, 0.30, 0.20], alpha=0.5), 12)   # 1 - (0.03 + 0.2) / 2
    0.885
    """
    a = _check_rate(alpha, name="alpha")
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
    a = _check_rate(alpha, name="alpha")
    r1, r2 = max_min_ratio(fmr), max_min_ratio(fnmr)
    if np.isnan(r1) or np.isnan(r2):
        return float("nan")
    return float(np.power(r1, a) * np.power(r2, 1.0 - a))


# ===================================================================================== differentials
@dataclass(frozen=True, eq=False)
class GroupRates:
    """One rate (FMR or FNMR) for every group of :attr:`DifferentialsResult.groups` (read-only arrays).

    ``value`` is NaN and ``n`` 0 for a group without pairs of the kind; ``ci_low``/``ci_high`` are Wilson
    score intervals (never zero-width at 0 errors); ``flag`` is ``"small"`` when ``0 < n <
    min_group_size``.
    """

    metric: str
    value: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n: np.ndarray
    flag: tuple[str, ...]


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
    return GroupRates(metric=metric.name, value=_frozen(value), ci_low=_frozen(lo), ci_high=_frozen(hi),
                      n=_frozen(n, dtype=np.int64), flag=tuple(flag))


def _stream(seed: int, metric: str, group: str, target: float) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(metric.encode()), zlib.crc32(group.encode("utf-8")),
                                  zlib.crc32(repr(float(target)).encode())])


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
                              min_group_size: int = 30) -> DifferentialsResult:
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
    s = _as_scores(scores, name="scores")
    same = _as_bool(issame, name="issame")
    l1, l2 = _labels(group1, "group1"), _labels(group2, "group2")
    check_same_length(scores=s, issame=same, group1=l1, group2=l2)
    if pair_rule not in PAIR_RULES:
        raise ValueError(f"pair_rule must be one of {', '.join(PAIR_RULES)}, got {pair_rule!r}.")
    a = _check_rate(alpha, name="alpha")
    n_boot = _check_int(n_boot, "n_boot", 0)
    seed = _check_int(seed, "seed", 0)
    conf = _check_confidence(confidence)
    min_group_size = _check_int(min_group_size, "min_group_size", 1)
    targets = [target_fmrs] if isinstance(target_fmrs, (int, float, np.integer, np.floating)) \
        else list(target_fmrs)
    if not targets:
        raise ValueError("target_fmrs needs at least one value.")
    targets = [_check_rate(t, name="target_fmrs", low_open=True) for t in targets]
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
    if n_boot:
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
