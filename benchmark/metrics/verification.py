"""Face verification accuracy: the insightface 10-fold protocol (see ``docs/metrics.md``, "Verification").

:func:`kfold_accuracy` / :func:`kfold_accuracy_from_distances` follow insightface ``arcface_torch``
(``eval/verification.py``): squared L2 distance of unit embeddings, "same" when ``dist < threshold``, best
training-fold threshold per fold, unshuffled contiguous folds, and VAL@FAR=1e-3 by ``slinear``
interpolation of the training-fold FAR curve. This module works on *distances* (lower = more similar, as
insightface does). TAR@FAR at a global threshold and the NIST FRVT style demographic differentials (FMR,
FNMR, FDR, GARBE) work on similarity scores and live in :mod:`facebench.metrics.differentials`.

>>> result = kfold_accuracy_from_distances([0.1, 1.9, 0.1, 1.9], [True, False, True, False], n_folds=2)
>>> result.folds, result.best_thresholds.tolist(), float(result.mean)   # each fold's threshold from the other
(((0, 2), (2, 4)), [0.11, 0.11], 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import check_int, check_same_length, l2_normalize
from .pair_inputs import as_bool, as_scores, as_thresholds, check_rate, frozen

__all__ = [
    "INSIGHTFACE_THRESHOLDS",
    "INSIGHTFACE_VAL_THRESHOLDS",
    "KFoldResult",
    "kfold_accuracy",
    "kfold_accuracy_from_distances",
    "l2_normalize",
    "kfold_bounds",
    "legacy_slinear_interp",
]


#: insightface's accuracy thresholds on squared L2 distance: ``np.arange(0, 4, 0.01)`` (400 values).
INSIGHTFACE_THRESHOLDS = frozen(np.arange(0, 4, 0.01))
#: insightface's VAL@FAR thresholds: ``np.arange(0, 4, 0.001)`` (4,000 values).
INSIGHTFACE_VAL_THRESHOLDS = frozen(np.arange(0, 4, 0.001))


def kfold_bounds(n: int, n_folds: int) -> tuple[tuple[int, int], ...]:
    """``(start, stop)`` of each contiguous test fold, as ``sklearn.model_selection.KFold(shuffle=False)``.

    Every fold has ``n // n_folds`` pairs and the first ``n % n_folds`` folds one more. With
    ``n_folds=1`` the only fold is everything (insightface's ``LFold``: train = test = all pairs).

    >>> kfold_bounds(6, 3)
    ((0, 2), (2, 4), (4, 6))
    >>> kfold_bounds(7, 3)
    ((0, 3), (3, 5), (5, 7))
    """
    n = check_int(n, "n", 1)
    k = check_int(n_folds, "n_folds", 1)
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
    d = as_scores(dist, name="dist")
    same = as_bool(issame, name="issame")
    n = check_same_length(dist=d, issame=same)
    if n == 0:
        raise ValueError("kfold_accuracy needs at least one pair.")
    thr = as_thresholds(thresholds, name="thresholds")
    vthr = as_thresholds(val_thresholds, name="val_thresholds", minimum=2)
    target = check_rate(far_target, name="far_target", low_open=True)
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
        fold_accuracies=frozen(acc), best_thresholds=frozen(best),
        val_at_far=float(np.mean(val)), val_std=float(np.std(val)),
        far=float(np.mean(far)), far_std=float(np.std(far)),
        fold_val=frozen(val), fold_far=frozen(far), val_thresholds=frozen(vth),
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
