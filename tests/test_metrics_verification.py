"""Verification metrics: hand-worked cases, an independent transcription of insightface's k-fold protocol,
tie rules, TAR@FAR against sklearn's ROC, global thresholds, and the demographic-differential family."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.interpolate import BSpline, interp1d
from scipy.stats import norm
from sklearn.metrics import roc_curve
from sklearn.model_selection import KFold
from sklearn.preprocessing import normalize

from facebench.metrics import get_metric
from facebench.metrics.differentials import (
    DIFFERENTIAL_COLUMNS,
    FMR,
    FNMR,
    demographic_differentials,
    fdr,
    garbe,
    gini,
    global_threshold,
    inequity_rate,
    max_min_ratio,
    tar_at_far,
)
from facebench.metrics.verification import (
    INSIGHTFACE_THRESHOLDS,
    INSIGHTFACE_VAL_THRESHOLDS,
    kfold_accuracy,
    kfold_accuracy_from_distances,
    kfold_bounds,
    legacy_slinear_interp,
)


# ===================================================================================== reference
# An independent transcription of deepinsight/insightface recognition/arcface_torch/eval/verification.py
# (calculate_roc's accuracy part, calculate_accuracy, calculate_val, calculate_val_far, and the flip-sum
# of test()), written loop-for-loop with sklearn's KFold and normalize, as the original is.
def _interp1d_slinear_old_scipy(x, y):
    """``interp1d(x, y, kind='slinear')`` as scipy <= 1.8 built it: stable sort, then the degree-1
    B-spline on knots r_[x0, x, x_last] with no duplicate check (newer scipy raises on repeated x)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ind = np.argsort(x, kind="mergesort")
    x, y = x[ind], y[ind]
    spline = BSpline.construct_fast(np.r_[x[0], x, x[-1]], y, 1)  # as make_interp_spline(k=1) did

    def f(x_new):
        if x_new < x[0] or x_new > x[-1]:
            raise ValueError("out of the interpolation range")
        return spline(x_new)
    return f


def _ref_calculate_accuracy(threshold, dist, actual_issame):
    predict_issame = np.less(dist, threshold)
    tp = np.sum(np.logical_and(predict_issame, actual_issame))
    fp = np.sum(np.logical_and(predict_issame, np.logical_not(actual_issame)))
    tn = np.sum(np.logical_and(np.logical_not(predict_issame), np.logical_not(actual_issame)))
    fn = np.sum(np.logical_and(np.logical_not(predict_issame), actual_issame))
    tpr = 0 if (tp + fn == 0) else float(tp) / float(tp + fn)
    fpr = 0 if (fp + tn == 0) else float(fp) / float(fp + tn)
    acc = float(tp + tn) / dist.size
    return tpr, fpr, acc


def _ref_calculate_val_far(threshold, dist, actual_issame):
    predict_issame = np.less(dist, threshold)
    true_accept = np.sum(np.logical_and(predict_issame, actual_issame))
    false_accept = np.sum(np.logical_and(predict_issame, np.logical_not(actual_issame)))
    n_same = np.sum(actual_issame)
    n_diff = np.sum(np.logical_not(actual_issame))
    return float(true_accept) / float(n_same), float(false_accept) / float(n_diff)


def _ref_insightface(e1, e2, issame, nrof_folds, f1=None, f2=None, thresholds=None, val_thresholds=None,
                     far_target=1e-3):
    if f1 is not None:
        e1, e2 = e1 + f1, e2 + f2
    e1, e2 = normalize(e1), normalize(e2)
    issame = np.asarray(issame)
    dist = np.sum(np.square(np.subtract(e1, e2)), 1)
    thresholds = np.arange(0, 4, 0.01) if thresholds is None else thresholds
    k_fold = KFold(n_splits=nrof_folds, shuffle=False)
    indices = np.arange(len(issame))
    accuracy = np.zeros(nrof_folds)
    best = np.zeros(nrof_folds)
    for fold_idx, (train_set, test_set) in enumerate(k_fold.split(indices)):
        acc_train = np.zeros(len(thresholds))
        for threshold_idx, threshold in enumerate(thresholds):
            _, _, acc_train[threshold_idx] = _ref_calculate_accuracy(threshold, dist[train_set],
                                                                     issame[train_set])
        best_threshold_index = np.argmax(acc_train)
        best[fold_idx] = thresholds[best_threshold_index]
        _, _, accuracy[fold_idx] = _ref_calculate_accuracy(thresholds[best_threshold_index], dist[test_set],
                                                           issame[test_set])
    thresholds = np.arange(0, 4, 0.001) if val_thresholds is None else val_thresholds
    val = np.zeros(nrof_folds)
    far = np.zeros(nrof_folds)
    for fold_idx, (train_set, test_set) in enumerate(k_fold.split(indices)):
        far_train = np.zeros(len(thresholds))
        for threshold_idx, threshold in enumerate(thresholds):
            _, far_train[threshold_idx] = _ref_calculate_val_far(threshold, dist[train_set], issame[train_set])
        if np.max(far_train) >= far_target:
            f = _interp1d_slinear_old_scipy(far_train, thresholds)
            threshold = f(far_target)
        else:
            threshold = 0.0
        val[fold_idx], far[fold_idx] = _ref_calculate_val_far(threshold, dist[test_set], issame[test_set])
    return {"mean": np.mean(accuracy), "std": np.std(accuracy), "accuracy": accuracy, "best": best,
            "val": np.mean(val), "val_std": np.std(val), "far": np.mean(far), "fold_val": val,
            "fold_far": far}


def _random_pairs(rng, n, d=24, noise=1.1):
    issame = rng.random(n) < 0.5
    e1 = rng.normal(size=(n, d))
    e2 = np.where(issame[:, None], e1 + noise * rng.normal(size=(n, d)), rng.normal(size=(n, d)))
    f1 = e1 + 0.4 * rng.normal(size=(n, d))
    f2 = e2 + 0.4 * rng.normal(size=(n, d))
    return e1, e2, f1, f2, issame


def _compare(ours, ref):
    assert ours.mean == pytest.approx(ref["mean"], abs=1e-12, rel=0)
    assert ours.std == pytest.approx(ref["std"], abs=1e-12, rel=0)
    np.testing.assert_allclose(ours.fold_accuracies, ref["accuracy"], atol=1e-12, rtol=0)
    np.testing.assert_allclose(ours.best_thresholds, ref["best"], atol=1e-12, rtol=0)
    assert ours.val_at_far == pytest.approx(ref["val"], abs=1e-12, rel=0)
    assert ours.val_std == pytest.approx(ref["val_std"], abs=1e-12, rel=0)
    assert ours.far == pytest.approx(ref["far"], abs=1e-12, rel=0)
    np.testing.assert_allclose(ours.fold_val, ref["fold_val"], atol=1e-12, rtol=0)
    np.testing.assert_allclose(ours.fold_far, ref["fold_far"], atol=1e-12, rtol=0)


# ===================================================================================== k-fold
def test_matches_independent_insightface_transcription_with_flip():
    rng = np.random.default_rng(0)
    e1, e2, f1, f2, issame = _random_pairs(rng, 1000)
    ours = kfold_accuracy(e1, e2, issame, 10, flip_emb1=f1, flip_emb2=f2)
    ref = _ref_insightface(e1, e2, issame, 10, f1, f2)
    _compare(ours, ref)
    assert 0.6 < ours.mean < 1.0  # a non-trivial problem: thresholds actually matter
    assert np.isfinite(ours.val_thresholds).all() and (ours.val_thresholds > 0).all()  # interpolated
    assert ours.far_target == 1e-3 and ours.n_folds == 10 and ours.n_pairs == 1000


def test_matches_transcription_without_flip_uneven_folds_and_the_zero_threshold_branch():
    rng = np.random.default_rng(1)
    e1, e2, _, _, issame = _random_pairs(rng, 1003, noise=0.9)
    _compare(kfold_accuracy(e1, e2, issame, 7), _ref_insightface(e1, e2, issame, 7))
    # val thresholds that never reach FAR 1e-3 on training impostors -> threshold 0.0, VAL = FAR = 0
    vthr = np.arange(0.05, 0.3, 0.001)  # not starting at 0: the fallback is 0.0, not the first threshold
    ours = kfold_accuracy(e1, e2, issame, 7, val_thresholds=vthr)
    _compare(ours, _ref_insightface(e1, e2, issame, 7, val_thresholds=vthr))
    assert ours.val_thresholds.tolist() == [0.0] * 7 and ours.val_at_far == 0.0


def test_matches_transcription_on_coarse_thresholds_with_distance_ties():
    # distances on a grid coincide with the thresholds: strict '<' and first-argmax both matter
    rng = np.random.default_rng(2)
    n = 300
    issame = rng.random(n) < 0.5
    dist = np.where(issame, rng.integers(0, 12, n), rng.integers(6, 20, n)) / 10.0
    thr = np.arange(0, 2.05, 0.1)
    ours = kfold_accuracy_from_distances(dist, issame, 5, thresholds=thr, val_thresholds=thr, far_target=0.05)
    # reference on the same distances (the embedding step is the identity here)
    k_fold = KFold(n_splits=5, shuffle=False)
    for i, (train, test) in enumerate(k_fold.split(np.arange(n))):
        acc_train = [_ref_calculate_accuracy(t, dist[train], issame[train])[2] for t in thr]
        b = int(np.argmax(acc_train))
        assert ours.best_thresholds[i] == thr[b]
        assert ours.fold_accuracies[i] == _ref_calculate_accuracy(thr[b], dist[test], issame[test])[2]
        far_train = np.array([_ref_calculate_val_far(t, dist[train], issame[train])[1] for t in thr])
        t = _interp1d_slinear_old_scipy(far_train, thr)(0.05) if far_train.max() >= 0.05 else 0.0
        assert ours.val_thresholds[i] == pytest.approx(float(t), abs=1e-12)
        val, far = _ref_calculate_val_far(t, dist[test], issame[test])
        assert (ours.fold_val[i], ours.fold_far[i]) == pytest.approx((val, far), abs=1e-12)


def test_hand_worked_six_pairs_two_folds():
    # fold 1 = pairs 0-2 (held out), fold 2 = pairs 3-5; thresholds 0.5, 1.0, 1.5, 2.0
    dist = [0.3, 0.9, 1.6, 0.4, 1.2, 1.8]
    issame = [True, True, False, True, False, False]
    r = kfold_accuracy_from_distances(dist, issame, 2, thresholds=[0.5, 1.0, 1.5, 2.0],
                                      val_thresholds=[0.0, 2.0])
    # fold 1 trains on 0.4 S, 1.2 D, 1.8 D: 0.5 -> 3/3 (first max; 1.0 also 3/3) ; held out at 0.5:
    #   0.3 S right, 0.9 S wrong (not < 0.5), 1.6 D right -> 2/3
    # fold 2 trains on 0.3 S, 0.9 S, 1.6 D: 0.5 -> 2/3, 1.0 -> 3/3, 1.5 -> 3/3, 2.0 -> 2/3 => 1.0 ;
    #   held out at 1.0: 0.4 S right, 1.2 D right, 1.8 D right -> 3/3
    assert r.folds == ((0, 3), (3, 6))
    assert r.best_thresholds.tolist() == [0.5, 1.0]
    assert r.fold_accuracies.tolist() == pytest.approx([2 / 3, 1.0])
    assert r.mean == pytest.approx(5 / 6)
    assert r.std == pytest.approx(1 / 6)  # ddof=0: |2/3 - 5/6|


def test_strict_less_than_at_a_threshold():
    # a genuine pair exactly at the threshold is NOT predicted same (dist < thr)
    r = kfold_accuracy_from_distances([0.5, 0.5], [True, True], 1, thresholds=[0.5], val_thresholds=[0, 1])
    assert r.fold_accuracies.tolist() == [0.0]
    r = kfold_accuracy_from_distances([0.5, 0.5], [True, True], 1, thresholds=[0.51],
                                      val_thresholds=[0, 1])
    assert r.fold_accuracies.tolist() == [1.0]


def test_ties_in_training_accuracy_pick_the_first_threshold_in_the_order_given():
    dist, same = [0.1, 0.9], [True, False]  # any threshold in (0.1, 0.9] is perfect
    r = kfold_accuracy_from_distances(dist, same, 1, thresholds=[0.2, 0.5, 0.8], val_thresholds=[0, 1])
    assert r.best_thresholds.tolist() == [0.2]
    r = kfold_accuracy_from_distances(dist, same, 1, thresholds=[0.8, 0.5, 0.2], val_thresholds=[0, 1])
    assert r.best_thresholds.tolist() == [0.8]


def test_flip_sum_is_normalize_of_the_raw_sum():
    rng = np.random.default_rng(3)
    e1, e2, f1, f2, issame = _random_pairs(rng, 200)
    # scale the flipped embeddings: normalize(e + f) differs from normalize(normalize(e) + normalize(f))
    f1, f2 = 5.0 * f1, 0.2 * f2
    ours = kfold_accuracy(e1, e2, issame, 4, flip_emb1=f1, flip_emb2=f2)
    a, b = normalize(e1 + f1), normalize(e2 + f2)
    direct = kfold_accuracy_from_distances(((a - b) ** 2).sum(1), issame, 4)
    np.testing.assert_array_equal(ours.fold_accuracies, direct.fold_accuracies)
    np.testing.assert_array_equal(ours.best_thresholds, direct.best_thresholds)
    a2, b2 = normalize(normalize(e1) + normalize(f1)), normalize(normalize(e2) + normalize(f2))
    other = kfold_accuracy_from_distances(((a2 - b2) ** 2).sum(1), issame, 4)
    no_flip = kfold_accuracy(e1, e2, issame, 4)
    assert not (np.array_equal(other.best_thresholds, ours.best_thresholds)
                and np.array_equal(no_flip.best_thresholds, ours.best_thresholds))
    with pytest.raises(ValueError, match="both flip_emb1 and flip_emb2"):
        kfold_accuracy(e1, e2, issame, 4, flip_emb1=f1)


def test_embeddings_are_l2_normalised_so_scale_does_not_matter():
    rng = np.random.default_rng(4)
    e1, e2, _, _, issame = _random_pairs(rng, 100)
    a = kfold_accuracy(e1, e2, issame, 5)
    b = kfold_accuracy(7.0 * e1, 0.01 * e2, issame, 5)
    np.testing.assert_allclose(a.fold_accuracies, b.fold_accuracies)


def test_fold_bounds_match_sklearn_kfold():
    for n, k in [(6, 3), (10, 3), (6000, 10), (11, 10), (5, 5)]:
        expected = [(int(t[0]), int(t[-1]) + 1) for _, t in KFold(n_splits=k).split(np.arange(n))]
        assert list(kfold_bounds(n, k)) == expected
    assert kfold_bounds(4, 1) == ((0, 4),)
    with pytest.raises(ValueError, match="larger than the number of pairs"):
        kfold_bounds(3, 4)


def test_degenerate_folds_give_nan_val_not_a_crash():
    # held-out fold 2 (pairs 2-3) has no genuine pair: its VAL is NaN, FAR is defined
    r = kfold_accuracy_from_distances([0.1, 1.5, 1.7, 1.9], [True, False, False, False], 2,
                                      thresholds=[1.0], val_thresholds=[0.0, 2.0], far_target=0.5)
    assert math.isnan(r.fold_val[1]) and not math.isnan(r.fold_far[1])
    assert math.isnan(r.val_at_far)
    assert r.fold_accuracies.tolist() == [1.0, 1.0]


def test_default_thresholds_are_insightface_and_read_only():
    np.testing.assert_array_equal(INSIGHTFACE_THRESHOLDS, np.arange(0, 4, 0.01))
    np.testing.assert_array_equal(INSIGHTFACE_VAL_THRESHOLDS, np.arange(0, 4, 0.001))
    with pytest.raises(ValueError):
        INSIGHTFACE_THRESHOLDS[0] = 1.0
    r = kfold_accuracy_from_distances([0.1, 1.9], [True, False], 1)
    with pytest.raises(ValueError):
        r.fold_accuracies[0] = 0.0


# ===================================================================================== interpolation
def test_legacy_slinear_matches_old_scipy_construction_with_ties():
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(2, 30))
        x = np.sort(rng.integers(0, 6, n)) / 5.0  # many repeats, as a FAR curve has
        y = np.sort(rng.random(n))
        f = _interp1d_slinear_old_scipy(x, y)
        for v in np.r_[np.unique(x), rng.uniform(x[0], x[-1], 5)]:
            assert legacy_slinear_interp(x, y, v) == pytest.approx(float(f(v)), abs=1e-15), (x, y, v)
    with pytest.raises(ValueError, match="below"):
        legacy_slinear_interp([0.1, 0.2], [1.0, 2.0], 0.0)


def test_old_scipy_construction_is_interp1d_when_x_has_no_repeats():
    rng = np.random.default_rng(6)
    x = rng.permutation(np.sort(rng.random(50)))
    y = rng.random(50)
    for v in rng.uniform(x.min(), x.max(), 20):
        expected = float(interp1d(x, y, kind="slinear")(v))
        assert legacy_slinear_interp(x, y, v) == pytest.approx(expected, abs=1e-14)
        assert float(_interp1d_slinear_old_scipy(x, y)(v)) == pytest.approx(expected, abs=1e-14)


# ===================================================================================== thresholds
def test_global_threshold_gives_fmr_at_most_target_and_as_close_as_possible():
    rng = np.random.default_rng(7)
    imp = np.round(rng.normal(size=20_000), 3)  # rounding makes ties
    for target in (1e-2, 1e-3, 1e-4, 0.37):
        tau = global_threshold(imp, target)
        fmr = np.mean(imp >= tau)
        assert fmr <= target
        lower = imp[imp < tau]
        if lower.size:  # the next impostor score down already exceeds the target
            assert np.mean(imp >= lower.max()) > target
        assert tau in set(imp.tolist())


def test_global_threshold_ties_and_edges():
    assert global_threshold([1.0, 2.0, 2.0, 3.0], 0.5) == 3.0      # 2.0 would give 3/4
    assert global_threshold([1.0, 2.0, 2.0, 3.0], 0.75) == 2.0     # exactly 3/4 is allowed (<=)
    assert global_threshold([1.0, 2.0, 2.0, 3.0], 1.0) == 1.0
    tau = global_threshold([1.0, 2.0, 3.0], 1e-4)                  # below 1/N: above the maximum
    assert tau > 3.0 and tau == np.nextafter(3.0, np.inf)
    assert global_threshold([0.1] * 10 + [0.2] * 3, 0.3) == 0.2     # 3/13 <= 0.3 < 13/13
    with pytest.raises(ValueError):
        global_threshold([], 0.1)
    with pytest.raises(ValueError):
        global_threshold([0.1], 1.5)


def test_tar_at_far_hand_and_against_sklearn_roc():
    # impostors 1..10 ; far 0.3 -> tau = 8 (8, 9, 10: 3/10) ; genuine >= 8: 8, 9.5, 12 of 5
    r = tar_at_far([8.0, 9.5, 12.0, 7.9, 2.0], np.arange(1.0, 11.0), 0.3)
    assert (r.threshold, r.far, r.tar) == (8.0, 0.3, 0.6)
    assert (r.n_genuine, r.n_impostor) == (5, 10)
    assert r.tar_ci_low < 0.6 < r.tar_ci_high
    # independent: sklearn's ROC (score >= threshold) at the same threshold
    rng = np.random.default_rng(8)
    gen = np.round(rng.normal(2.0, 1.0, 500), 2)
    imp = np.round(rng.normal(0.0, 1.0, 3000), 2)
    y = np.r_[np.ones(gen.size), np.zeros(imp.size)]
    fpr, tpr, thr = roc_curve(y, np.r_[gen, imp], drop_intermediate=False)
    for far in (1e-1, 1e-2, 1e-3):
        r = tar_at_far(gen, imp, far)
        i = int(np.flatnonzero(thr == r.threshold)[0])
        assert r.far == pytest.approx(fpr[i], abs=1e-15) and r.far <= far
        assert r.tar == pytest.approx(tpr[i], abs=1e-15)
        # the rule picks the SMALLEST impostor score with FAR <= far: the next impostor score down fails
        below = imp[imp < r.threshold]
        assert np.mean(imp >= below.max()) > far


# ===================================================================================== summaries
def test_gini_garbe_fdr_inequity_by_hand():
    fmr, fnmr = [0.01, 0.02, 0.04], [0.1, 0.2, 0.3]
    # G(FMR): ordered-pair sum 2*(0.01+0.03+0.02) = 0.12 ; 2 n^2 mean = 18 * 0.07/3 = 0.42 ; *3/2 -> 3/7
    assert gini(fmr) == pytest.approx(3 / 7, abs=1e-12)
    # G(FNMR): 2*(0.1+0.2+0.1) = 0.8 ; 18 * 0.2 = 3.6 ; 0.8/3.6 * 3/2 = 1/3
    assert gini(fnmr) == pytest.approx(1 / 3, abs=1e-12)
    assert garbe(fmr, fnmr, 0.5) == pytest.approx((3 / 7 + 1 / 3) / 2, abs=1e-12)   # 8/21
    assert garbe(fmr, fnmr, 0.25) == pytest.approx(0.25 * 3 / 7 + 0.75 / 3, abs=1e-12)
    assert fdr(fmr, fnmr, 0.5) == pytest.approx(1 - (0.5 * 0.03 + 0.5 * 0.2), abs=1e-12)   # 0.885
    assert fdr(fmr, fnmr, 0.25) == pytest.approx(1 - (0.25 * 0.03 + 0.75 * 0.2), abs=1e-12)
    assert max_min_ratio(fmr) == pytest.approx(4.0) and max_min_ratio(fnmr) == pytest.approx(3.0)
    assert inequity_rate(fmr, fnmr, 0.5) == pytest.approx(math.sqrt(12.0))
    # two groups: G = 2 * 2|a-b| / (2*4*mean) = |a-b|/(a+b)
    assert gini([0.1, 0.3]) == pytest.approx(0.5)
    # edge cases
    assert gini([0.0, 0.0, 0.0]) == 0.0 and gini([0.2, 0.2]) == 0.0
    assert math.isnan(gini([0.5])) and math.isnan(gini([1.0, -1.0]))     # n < 2 ; mean 0 but unequal
    assert max_min_ratio([0.0, 0.2]) == math.inf and max_min_ratio([0.0, 0.0]) == 1.0
    assert inequity_rate([0.0, 0.2], [0.1, 0.2], alpha=0.0) == pytest.approx(2.0)   # inf ** 0 == 1
    assert math.isnan(fdr([0.1], [0.2]))


# ===================================================================================== differentials
def _three_group_data(rng, with_cross=0):
    """Groups A, B, C: 100 impostor pairs each with 1, 2, 4 scores of 0.95 (others < 0.5) and 10 genuine
    pairs each with 1, 2, 3 scores of 0.9 (others 0.99). With target 0.025 the global threshold is 0.95
    (7/300 <= 0.025 < 8/300): FMR = .01/.02/.04 and FNMR = .1/.2/.3."""
    scores, same, g1, g2 = [], [], [], []
    for g, hi_imp, lo_gen in (("A", 1, 1), ("B", 2, 2), ("C", 4, 3)):
        imp = np.r_[np.full(hi_imp, 0.95), rng.uniform(0.0, 0.5, 100 - hi_imp)]
        gen = np.r_[np.full(lo_gen, 0.9), np.full(10 - lo_gen, 0.99)]
        scores += [*imp, *gen]
        same += [False] * 100 + [True] * 10
        g1 += [g] * 110
        g2 += [g] * 110
    return scores, same, g1, g2


def test_differentials_by_hand():
    scores, same, g1, g2 = _three_group_data(np.random.default_rng(9))
    r = demographic_differentials(scores, same, g1, g2, target_fmrs=[0.025], n_boot=500, min_group_size=10)
    t = r.at(0.025)
    assert t.threshold == 0.95 and t.global_fmr == pytest.approx(7 / 300)
    assert r.groups == ("A", "B", "C") and t.compared == ("A", "B", "C")
    np.testing.assert_allclose(t.fmr.value, [0.01, 0.02, 0.04])
    np.testing.assert_allclose(t.fnmr.value, [0.1, 0.2, 0.3])
    assert t.fmr.n.tolist() == [100] * 3 and t.fnmr.n.tolist() == [10] * 3
    s = r.summary()[0.025]
    assert set(s) == {"fdr", "garbe", "fmr_ratio", "fnmr_ratio", "inequity_rate"}
    assert s["fdr"] == pytest.approx(0.885, abs=1e-12)
    assert s["garbe"] == pytest.approx(8 / 21, abs=1e-12)
    assert s["fmr_ratio"] == pytest.approx(4.0) and s["fnmr_ratio"] == pytest.approx(3.0)
    assert s["inequity_rate"] == pytest.approx(math.sqrt(12.0))
    assert t.fmr_gap == pytest.approx(0.03) and t.fnmr_gap == pytest.approx(0.2)
    # bootstrap intervals (threshold fixed) bracket the point values
    assert t.fdr_ci[0] <= s["fdr"] <= t.fdr_ci[1] and t.fdr_ci[0] < t.fdr_ci[1]
    assert t.garbe_ci[0] <= s["garbe"] <= t.garbe_ci[1]
    again = demographic_differentials(scores, same, g1, g2, target_fmrs=[0.025], n_boot=500,
                                      min_group_size=10)
    assert again.at(0.025).fdr_ci == t.fdr_ci  # seeded
    none = demographic_differentials(scores, same, g1, g2, target_fmrs=[0.025], n_boot=0, min_group_size=10)
    assert all(math.isnan(v) for v in none.at(0.025).fdr_ci)


def test_wilson_intervals_from_the_engine_and_nonzero_width_at_zero_errors():
    scores, same, g1, g2 = _three_group_data(np.random.default_rng(10))
    r = demographic_differentials(scores, same, g1, g2, target_fmrs=[0.025, 1e-4], n_boot=0,
                                  min_group_size=10)
    z = norm.ppf(0.975)
    t = r.at(0.025)
    for i, k in enumerate([1, 2, 4]):  # Wilson by hand for FMR k/100
        p, n = k / 100, 100
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        assert (t.fmr.ci_low[i], t.fmr.ci_high[i]) == pytest.approx((centre - half, centre + half))
    # at 1e-4 with 300 impostors nothing fits: threshold above every impostor score, FMR 0 everywhere
    t4 = r.at(1e-4)
    assert t4.threshold > 0.95 and t4.global_fmr == 0.0
    assert t4.fmr.value.tolist() == [0.0, 0.0, 0.0]
    assert t4.fmr.ci_low.tolist() == [0.0, 0.0, 0.0]
    assert t4.fmr.ci_high == pytest.approx([z * z / (100 + z * z)] * 3)  # > 0: not zero-width
    # all FMR 0: ratio 1 (0/0), G(FMR) = 0 ; FNMR still .1/.2/.3 (0.9 < tau <= 0.99): G = 1/3
    assert t4.fmr_ratio == 1.0 and t4.garbe == pytest.approx(0.5 * 0.0 + 0.5 / 3, abs=1e-12)


def test_same_group_rule_excludes_cross_pairs_from_groups_but_keeps_them_in_the_threshold():
    rng = np.random.default_rng(11)
    scores, same, g1, g2 = _three_group_data(rng)
    # 100 cross-group impostor pairs A-vs-B: three score 0.97, the rest low
    cross = np.r_[np.full(3, 0.97), rng.uniform(0.0, 0.5, 97)]
    scores = np.r_[scores, cross]
    same = np.r_[same, np.zeros(100, dtype=bool)]
    g1 = np.r_[g1, ["A"] * 100]
    g2 = np.r_[g2, ["B"] * 100]
    same_only = np.asarray(scores)[~same & (g1 == g2)]
    all_imp = np.asarray(scores)[~same]
    # with 400 impostors, 0.97 gives 3/400 <= 0.02 < 10/400 ; without the cross pairs it would differ
    assert global_threshold(all_imp, 0.02) == 0.97 != global_threshold(same_only, 0.02)
    r = demographic_differentials(scores, same, g1, g2, target_fmrs=[0.02], n_boot=0, min_group_size=10)
    t = r.at(0.02)
    assert t.threshold == 0.97 and t.global_fmr == pytest.approx(3 / 400)
    assert t.fmr.n.tolist() == [100, 100, 100]               # the cross pairs are in no group
    assert t.fmr.value.tolist() == [0.0, 0.0, 0.0]           # 0.95 < 0.97 ; the 0.97s are cross-group
    assert r.n_unassigned_impostor == 100 and r.n_unassigned_genuine == 0
    assert r.pair_rule.startswith("same_group:") and "100 cross-group impostor" in r.pair_rule
    assert r.pair_rule_name == "same_group"
    # rule "first": the cross pairs belong to A (group1)
    f = demographic_differentials(scores, same, g1, g2, target_fmrs=[0.02], pair_rule="first", n_boot=0,
                                  min_group_size=10)
    tf = f.at(0.02)
    assert tf.threshold == 0.97
    assert tf.fmr.n.tolist() == [200, 100, 100]
    assert tf.fmr.value[0] == pytest.approx(3 / 200)
    assert f.pair_rule.startswith("first:") and f.n_unassigned_impostor == 0


def test_score_equal_to_threshold_is_a_match_on_both_sides():
    # impostors 0.5, 0.9 ; target 0.5 -> tau = 0.9 (1/2). Impostor 0.9 is a false match (>=); genuine 0.9 is
    # a match, so only the genuine 0.4 is a false non-match.
    r = demographic_differentials([0.5, 0.9, 0.9, 0.4], [False, False, True, True], ["a"] * 4, ["a"] * 4,
                                  target_fmrs=[0.5], n_boot=0, min_group_size=1)
    t = r.at(0.5)
    assert t.threshold == 0.9
    assert t.fmr.value.tolist() == [0.5] and t.fnmr.value.tolist() == [0.5]
    assert t.global_fmr == 0.5 and t.global_fnmr == 0.5
    assert math.isnan(t.fdr) and t.compared == ("a",)  # one group: no differential


def test_to_frame_layout_and_small_flags():
    scores, same, g1, g2 = _three_group_data(np.random.default_rng(12))
    r = demographic_differentials(scores, same, g1, g2, target_fmrs=(0.025, 1e-2), n_boot=0,
                                  min_group_size=50)
    df = r.to_frame()
    assert list(df.columns) == list(DIFFERENTIAL_COLUMNS)
    assert len(df) == 2 * 2 * 3
    assert df["target_fmr"].tolist() == [0.025] * 6 + [1e-2] * 6
    assert df["metric"].tolist()[:6] == ["fmr"] * 3 + ["fnmr"] * 3
    assert df["group"].tolist()[:6] == ["A", "B", "C"] * 2
    assert df.loc[df["metric"] == "fnmr", "flag"].eq("small").all()       # 10 genuine < 50
    assert df.loc[df["metric"] == "fmr", "flag"].eq("").all()             # 100 impostors
    assert (df["ci_low"] <= df["value"]).all() and (df["value"] <= df["ci_high"]).all()
    assert list(r.summary()) == [0.025, 1e-2]
    # no group has both counts >= 50, so all groups with both kinds of pairs are compared
    assert r.at(0.025).compared == ("A", "B", "C")


def test_compared_groups_follow_min_group_size_and_need_both_pair_kinds():
    scores, same, g1, g2 = _three_group_data(np.random.default_rng(13))
    # group D: 3 impostor pairs, 2 genuine pairs, all wrong -> extreme but small
    scores = np.r_[scores, [0.99, 0.99, 0.99, 0.1, 0.1]]
    same = np.r_[same, [False, False, False, True, True]]
    g1 = np.r_[g1, ["D"] * 5]
    g2 = np.r_[g2, ["D"] * 5]
    # group E: impostors only
    scores = np.r_[scores, [0.1]]
    same = np.r_[same, [False]]
    g1, g2 = np.r_[g1, ["E"]], np.r_[g2, ["E"]]
    r = demographic_differentials(scores, same, g1, g2, target_fmrs=[0.025], n_boot=0, min_group_size=10)
    t = r.at(0.025)
    assert r.groups == ("A", "B", "C", "D", "E")
    assert t.compared == ("A", "B", "C")               # D is small, E has no genuine pair
    assert t.fnmr.n.tolist()[-1] == 0 and math.isnan(t.fnmr.value[-1])
    assert "E" not in set(r.to_frame().query("metric == 'fnmr'")["group"])
    small = demographic_differentials(scores, same, g1, g2, target_fmrs=[0.025], n_boot=0, min_group_size=1)
    assert small.at(0.025).compared == ("A", "B", "C", "D")


def test_missing_labels_and_validation():
    scores = [0.9, 0.1, 0.8, 0.2]
    same = [True, False, True, False]
    r = demographic_differentials(scores, same, ["a", "a", None, "b"], ["a", "a", "b", "b"],
                                  target_fmrs=[0.5], n_boot=0, min_group_size=1)
    assert r.groups == ("a", "b") and r.n_unassigned_genuine == 1 and "missing label" in r.pair_rule
    with pytest.raises(ValueError, match="pair_rule"):
        demographic_differentials(scores, same, ["a"] * 4, ["a"] * 4, pair_rule="second")
    with pytest.raises(ValueError, match="Length mismatch"):
        demographic_differentials(scores, same, ["a"] * 3, ["a"] * 4)
    with pytest.raises(ValueError, match="genuine and one impostor"):
        demographic_differentials([0.1, 0.2], [True, True], ["a", "a"], ["a", "a"])
    with pytest.raises(ValueError, match="issame"):
        demographic_differentials(scores, [2, 0, 1, 0], ["a"] * 4, ["a"] * 4)


def test_rate_metrics_are_registered():
    assert get_metric("fmr") is FMR and get_metric("fnmr") is FNMR
    assert FMR.is_rate and FNMR.is_rate and not FMR.higher_is_better and not FNMR.higher_is_better
    assert FNMR([1, 1, 1, 1], [1, 0, 1, 1]) == 0.25
    with pytest.raises(ValueError, match="impostor pairs only"):
        FMR([1, 0], [1, 1])
    worst = FMR.worst(pd.Series({"a": 0.01, "b": 0.03}))
    assert worst == "b"
