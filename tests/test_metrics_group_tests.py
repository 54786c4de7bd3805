"""Group tests of the engine: Holm, permutation and Fisher tests, effect sizes, gaps, NaN-masked metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from facebench.errors import UserInputError
from facebench.metrics import (
    Disaggregation,
    ExtendedMetric,
    cohens_d,
    cohens_h,
    get_metric,
    holm,
    permutation_test,
)
from facebench.metrics.groups import GROUP_TEST_COLUMNS


# ------------------------------------------------------------------------------------ Holm
def _holm_by_hand(p):
    """Holm (1979), transcribed as the textbook step-down procedure with explicit loops."""
    idx = [i for i, v in enumerate(p) if not math.isnan(v)]
    m = len(idx)
    ranked = sorted(idx, key=lambda i: (p[i], i))
    out = [float("nan")] * len(p)
    running = 0.0
    for rank, i in enumerate(ranked, start=1):
        running = max(running, min(1.0, (m - rank + 1) * p[i]))
        out[i] = running
    return out


def test_holm_hand_example_and_transcription():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005=0.02, 3*0.01=0.03, 2*0.03=0.06, max(0.06, 0.04)=0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5]).tolist() == [0.5]
    assert holm([0.9, 0.8]).tolist() == [1.0, 1.0]  # capped at 1
    rng = np.random.default_rng(0)
    for size in (1, 2, 5, 17):
        for _ in range(20):
            p = rng.uniform(0, 1, size) ** 3
            p[rng.random(size) < 0.2] = np.nan
            p[rng.random(size) < 0.2] = p[0]  # ties
            np.testing.assert_allclose(holm(p), _holm_by_hand(list(p)), rtol=0, atol=1e-15)
    assert np.isnan(holm([np.nan, np.nan])).all()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([1.5])


def test_holm_against_statsmodels_if_installed():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = np.random.default_rng(1).uniform(0, 0.2, 12)
    np.testing.assert_allclose(holm(p), multitest.multipletests(p, method="holm")[1], atol=1e-15)


# ------------------------------------------------------------------------------------ effect sizes
def test_cohens_d_and_h_by_hand():
    # x: mean 2, var 1; y: mean 4.5, var 0.5; pooled var (2*1 + 1*0.5) / 3
    assert cohens_d([1, 2, 3], [4, 5]) == pytest.approx(-2.5 / math.sqrt(2.5 / 3))
    assert cohens_d([4, 5], [1, 2, 3]) == pytest.approx(2.5 / math.sqrt(2.5 / 3))
    assert cohens_d([2, 2], [2, 2]) == 0.0 and math.isnan(cohens_d([1, 1], [2, 2]))
    assert math.isnan(cohens_d([1], [2]))
    assert cohens_h(0.5, 0.25) == pytest.approx(math.pi / 6)  # pi/2 - pi/3
    assert cohens_h(1.0, 0.0) == pytest.approx(math.pi)
    assert cohens_h(np.array([0.5, 0.25]), 0.25).tolist() == pytest.approx([math.pi / 6, 0.0])


# ------------------------------------------------------------------------------------ permutation test
def test_permutation_test_hand_worked():
    # pooled 1..5, 10 splits into 3 + 2; T = (5 s - 45) / 6 for the 3-sum s; |T| >= 2.5 iff s in {6, 12}
    assert permutation_test([1, 2, 3], [4, 5]) == 0.2
    assert permutation_test([4, 5], [1, 2, 3]) == 0.2
    # ties: pooled 1,1,1,3 split 2 + 2: every split has |T| = 1, so p = 1
    assert permutation_test([1, 1], [1, 3]) == 1.0
    # Monte Carlo path (fewer permutations than splits): p = (1 + count) / (R + 1) and never 0
    p = permutation_test([1, 2, 3], [4, 5], n_permutations=9, seed=3)
    assert p * 10 == pytest.approx(round(p * 10)) and 0.1 <= p <= 1.0


def _abs_mean_diff(a, b, axis):
    return np.abs(np.mean(a, axis=axis) - np.mean(b, axis=axis))


def test_permutation_test_matches_scipy_exact_enumeration():
    rng = np.random.default_rng(2)
    x, y = rng.normal(0, 1, 6), rng.normal(0.8, 1, 5)  # C(11, 5) = 462 splits
    ref = stats.permutation_test((x, y), _abs_mean_diff, permutation_type="independent", vectorized=True,
                                 n_resamples=1000, alternative="greater").pvalue
    assert permutation_test(x, y, n_permutations=1000) == pytest.approx(ref, abs=1e-12)
    xi, yi = np.array([3, 1, 4, 1, 5]), np.array([9, 2, 6, 5])  # integer data: many exact ties
    ref = stats.permutation_test((xi, yi), _abs_mean_diff, permutation_type="independent", vectorized=True,
                                 n_resamples=500, alternative="greater").pvalue
    assert permutation_test(xi, yi, n_permutations=500) == pytest.approx(ref, abs=1e-12)


def test_permutation_test_matches_scipy_monte_carlo():
    rng = np.random.default_rng(4)
    x, y = rng.exponential(2.0, 40), rng.exponential(2.0, 30) + 1.5
    r = 20000
    ref = stats.permutation_test((x, y), _abs_mean_diff, permutation_type="independent", vectorized=True,
                                 n_resamples=r, alternative="greater", rng=np.random.default_rng(0)).pvalue
    ours = permutation_test(x, y, n_permutations=r, seed=1)
    assert 0.005 < ref < 0.5  # a case where the comparison means something
    se = math.sqrt(ref * (1 - ref) / r)
    assert abs(ours - ref) < 5 * math.sqrt(2) * se
    # the Welch t-test on the same data tells the same story (a loose sanity check of the scale)
    assert abs(ours - stats.ttest_ind(x, y, equal_var=False).pvalue) < 0.05


# ------------------------------------------------------------------------------------ engine: hand-worked
def test_group_tests_tiny_case_by_hand():
    eng = Disaggregation.from_outcomes({"mae": [1.0, 2.0, 3.0, 4.0, 5.0]},
                                       pd.Series(["a", "a", "a", "b", "b"], name="g"),
                                       n_boot=200, min_group_size=1)
    t = eng.group_tests()
    assert list(t.columns) == list(GROUP_TEST_COLUMNS)
    a, b = (t.set_index("group").loc[x] for x in ("a", "b"))
    assert (a["n"], a["value"], a["rest_value"], a["difference"]) == (3, 2.0, 4.5, -2.5)
    assert (b["n"], b["value"], b["rest_value"], b["difference"]) == (2, 4.5, 2.0, 2.5)
    assert a["p_value"] == 0.2 and b["p_value"] == 0.2  # exact enumeration, 10 splits
    assert a["p_holm"] == pytest.approx(0.4) and b["p_holm"] == pytest.approx(0.4)
    assert not a["significant"] and not b["significant"]
    assert a["effect_size"] == pytest.approx(-2.5 / math.sqrt(2.5 / 3)) and a["effect_size_kind"] == "cohen_d"
    assert b["effect_size"] == pytest.approx(2.5 / math.sqrt(2.5 / 3))
    # best (lowest MAE) is a; overall MAE is 3
    assert (a["gap_to_best"], a["ratio_to_best"], a["gap_to_overall"]) == (0.0, 1.0, -1.0)
    assert (b["gap_to_best"], b["ratio_to_best"], b["gap_to_overall"]) == (2.5, 2.25, 1.5)
    assert a["gap_to_best_ci_low"] == 0.0 and a["gap_to_best_ci_high"] == 0.0
    assert b["gap_to_best_ci_low"] <= 2.5 <= b["gap_to_best_ci_high"]


def test_rate_uses_fisher_exact_and_cohens_h():
    # group a: 9/10 successes, group b: 3/10
    outcome = np.r_[np.ones(9), 0, np.ones(3), np.zeros(7)]
    g = pd.Series(["a"] * 10 + ["b"] * 10, name="g")
    t = Disaggregation.from_outcomes({"cs5": outcome}, g, n_boot=50, min_group_size=1).group_tests()
    a = t.set_index("group").loc["a"]
    expected = stats.fisher_exact([[9, 1], [3, 7]]).pvalue
    assert a["p_value"] == pytest.approx(expected) and a["p_holm"] == pytest.approx(min(1.0, 2 * expected))
    assert a["effect_size"] == pytest.approx(2 * math.asin(math.sqrt(0.9)) - 2 * math.asin(math.sqrt(0.3)))
    assert a["effect_size_kind"] == "cohen_h"
    assert (a["value"], a["rest_value"]) == (0.9, 0.3) and a["difference"] == pytest.approx(0.6)


def test_engine_permutation_matches_standalone_and_scipy_on_two_groups():
    rng = np.random.default_rng(5)
    err = np.r_[rng.exponential(3, 60), rng.exponential(3, 50) + 0.1]
    g = pd.Series(["a"] * 60 + ["b"] * 50, name="g")
    t = Disaggregation.from_outcomes({"mae": err}, g, n_boot=0).group_tests(n_permutations=20000)
    pa, pb = t.set_index("group").loc[["a", "b"], "p_value"]
    assert pa == pb  # the two "vs rest" tests of a two-group attribute are the same split
    ref = stats.permutation_test((err[:60], err[60:]), _abs_mean_diff, vectorized=True, n_resamples=20000,
                                 alternative="greater", rng=np.random.default_rng(1)).pvalue
    assert 0.005 < ref < 0.5
    assert abs(pa - ref) < 5 * math.sqrt(2 * ref * (1 - ref) / 20000)


# ------------------------------------------------------------------------------------ engine: simulation
def _simulated(n=2400, seed=11):
    """Group z (5 %) has extra error (SD 3 -> 4.2: MAE +1 year, CS@5 -0.14); gender is independent of it.

    z is kept small so that "the rest" of a null race group is almost all null too: a large deviant group
    would shift every other group's "rest" and make them differ from it, rightly so.
    """
    rng = np.random.default_rng(seed)
    race = rng.choice(["w", "x", "y", "z"], n, p=[0.32, 0.32, 0.31, 0.05])
    gender = rng.choice(["f", "m"], n)
    y_true = rng.uniform(10, 80, n)
    y_pred = y_true + rng.normal(0, 3.0, n) + np.where(race == "z", rng.normal(0, 3.0, n), 0.0)
    return y_true, y_pred, pd.DataFrame({"race": race, "gender": gender})


def test_shifted_group_is_significant_after_holm_and_null_groups_are_not():
    y_true, y_pred, g = _simulated()
    eng = Disaggregation(y_true, y_pred, g, ["mae", "cs5"], n_boot=200, seed=3, intersections=1)
    t = eng.group_tests()
    for metric in ("mae", "cs5"):
        sub = t[t["metric"] == metric].set_index(["attribute", "group"])
        z = sub.loc[("race", "z")]
        assert z["significant"] and z["p_holm"] < 0.01 and z["p_holm"] >= z["p_value"]
        assert z["gap_to_overall"] > 0 and z["gap_to_overall_ci_low"] > 0  # clearly worse than overall
        assert z["gap_to_best_ci_low"] > 0
        nulls = sub.drop(index=[("race", "z")])
        assert not nulls["significant"].any(), nulls[["p_value", "p_holm"]]
        assert (nulls.loc["gender", "p_holm"] > 0.05).all()
    mae_z = t[(t["metric"] == "mae") & (t["group"] == "z")].iloc[0]
    assert mae_z["effect_size_kind"] == "cohen_d" and mae_z["effect_size"] > 0.3
    # severity order: metrics in the order given, p_holm non-decreasing inside a metric
    assert list(dict.fromkeys(t["metric"])) == ["mae", "cs5"]
    for _, part in t.groupby("metric", sort=False):
        assert part["p_holm"].is_monotonic_increasing
        assert part.iloc[0]["group"] == "z"


def test_group_tests_are_deterministic_for_a_seed():
    y_true, y_pred, g = _simulated(n=600)
    a = Disaggregation(y_true, y_pred, g, ["mae", "rmse", "cs5"], n_boot=100, seed=7).group_tests()
    b = Disaggregation(y_true, y_pred, g, ["mae", "rmse", "cs5"], n_boot=100, seed=7).group_tests()
    pd.testing.assert_frame_equal(a, b)
    c = Disaggregation(y_true, y_pred, g, ["mae", "rmse", "cs5"], n_boot=100, seed=8).group_tests()
    key = ["metric", "attribute", "group"]
    a, c = a.set_index(key).sort_index(), c.set_index(key).sort_index()
    pd.testing.assert_series_equal(a["value"], c["value"])
    cs5 = a.index.get_level_values("metric") == "cs5"  # Fisher: no randomness at all
    pd.testing.assert_series_equal(a.loc[cs5, "p_value"], c.loc[cs5, "p_value"])
    assert not np.allclose(a.loc[~cs5, "p_value"], c.loc[~cs5, "p_value"])  # permutations follow the seed


# ------------------------------------------------------------------------------------ engine: gaps
def test_gap_intervals_use_paired_draws_and_a_stratified_overall():
    y_true, y_pred, g = _simulated(n=900)
    eng = Disaggregation(y_true, y_pred, g, ["mae", "rmse"], n_boot=300, seed=2, intersections=1)
    t = eng.group_tests().set_index(["metric", "attribute", "group"])
    frame = eng.frame().set_index(["metric", "attribute", "group"])
    ns = {grp: int((g["race"] == grp).sum()) for grp in "wxyz"}
    for metric in ("mae", "rmse"):
        draws = {grp: eng.draws(metric, "race", grp) for grp in "wxyz"}
        best = min("wxyz", key=lambda grp: frame.loc[(metric, "race", grp), "value"])
        # stratified overall: group draws pooled with weights n_g / N (RMSE pools the mean squares)
        if metric == "mae":
            overall = sum(ns[k] * draws[k] for k in "wxyz") / sum(ns.values())
        else:
            overall = np.sqrt(sum(ns[k] * draws[k] ** 2 for k in "wxyz") / sum(ns.values()))
        for grp in "wxyz":
            row = t.loc[(metric, "race", grp)]
            assert row["value"] == frame.loc[(metric, "race", grp), "value"]
            assert row["gap_to_best"] == pytest.approx(row["value"] - frame.loc[(metric, "race", best), "value"])
            lo, hi = np.quantile(draws[grp] - draws[best], [0.025, 0.975])
            assert (row["gap_to_best_ci_low"], row["gap_to_best_ci_high"]) == pytest.approx((lo, hi))
            assert row["gap_to_overall"] == pytest.approx(row["value"] - frame.loc[(metric, "overall", "all"),
                                                                                   "value"])
            lo, hi = np.quantile(draws[grp] - overall, [0.025, 0.975])
            assert (row["gap_to_overall_ci_low"], row["gap_to_overall_ci_high"]) == pytest.approx((lo, hi))
        assert t.loc[(metric, "race", best), "gap_to_best"] == 0.0
    # the stratified overall is centred like the plain one but is not the frame's (plain) resample
    strat = eng._stratified_overall(0, "race")
    assert strat.mean() == pytest.approx(frame.loc[("mae", "overall", "all"), "value"], rel=0.02)


def test_higher_is_better_gaps_are_oriented_as_badness():
    y_true, y_pred, g = _simulated(n=900)
    t = Disaggregation(y_true, y_pred, g, "cs5", n_boot=100, intersections=1).group_tests()
    t = t[t["attribute"] == "race"].set_index("group")
    best = t["value"].idxmax()
    assert t.loc[best, "gap_to_best"] == 0.0
    assert (t["gap_to_best"] >= 0).all()
    assert t.loc["z", "gap_to_best"] == pytest.approx(t.loc[best, "value"] - t.loc["z", "value"])
    assert t.loc["z", "ratio_to_best"] == pytest.approx(t.loc[best, "value"] / t.loc["z", "value"])


def test_missing_attribute_values_rest_and_missing_stratum():
    y_true, y_pred, g = _simulated(n=600)
    g = g.copy()
    g.loc[:59, "race"] = None  # 60 samples without race
    eng = Disaggregation(y_true, y_pred, g, ["mae", "cs5"], n_boot=100, intersections=2)
    t = eng.group_tests().set_index(["metric", "attribute", "group"])
    err = np.abs(y_pred - y_true)
    race = g["race"].to_numpy()
    rest = (race != "w") & pd.notna(race)
    assert t.loc[("mae", "race", "w"), "rest_value"] == pytest.approx(err[rest].mean())
    assert t.loc[("mae", "race", "w"), "n"] == int((race == "w").sum())
    row = t.loc[("mae", "race", "w")]
    assert row["gap_to_overall_ci_low"] <= row["gap_to_overall"] <= row["gap_to_overall_ci_high"]
    assert t.loc[("mae", "race*gender", "w*f"), "p_value"] > 0
    strat = eng._stratified_overall(0, "race")
    assert strat.shape == (100,) and np.isfinite(strat).all()


def test_small_and_single_group_attributes():
    y_true, y_pred, _ = _simulated(n=200)
    g = pd.DataFrame({"one": ["x"] * 200, "two": ["a"] * 197 + ["b"] * 3})
    t = Disaggregation(y_true, y_pred, g, "mae", n_boot=50, intersections=1).group_tests()
    one = t[t["attribute"] == "one"].iloc[0]
    assert np.isnan(one["p_value"]) and np.isnan(one["p_holm"]) and not one["significant"]
    assert one["gap_to_best"] == 0.0  # the only group is its own best
    two = t[t["attribute"] == "two"].set_index("group")
    assert np.isfinite(two["p_value"]).all()  # a group of 3 is still tested (flagged small in frame())


def test_group_tests_validation():
    y_true, y_pred, g = _simulated(n=200)
    eng = Disaggregation(y_true, y_pred, g, "mae", n_boot=10)
    with pytest.raises(UserInputError, match="did you mean 'race'"):
        eng.group_tests(attributes=["rac"])
    assert set(eng.group_tests(attributes="gender")["attribute"]) == {"gender"}
    with pytest.raises(ValueError, match="n_permutations"):
        eng.group_tests(n_permutations=0)
    with pytest.raises(ValueError, match="alpha"):
        eng.group_tests(alpha=1.0)


# ------------------------------------------------------------------------------------ NaN-masked metrics
def _partial_mae():
    """MAE defined only where y_true >= 40 (NaN elsewhere): a non-rate partial metric."""
    return ExtendedMetric(
        name="mae_old", description="MAE on samples aged 40+", higher_is_better=False, partial=True,
        outcome=lambda t, p: np.where(np.asarray(t, float) >= 40, np.abs(np.asarray(p, float) - t), np.nan),
    )


def test_partial_metric_disaggregates_over_defined_samples_only():
    y_true, y_pred, g = _simulated(n=800)
    m = _partial_mae()
    eng = Disaggregation(y_true, y_pred, g, [m, "mae"], n_boot=120, seed=4, min_group_size=1)
    frame = eng.frame().set_index(["metric", "attribute", "group"])
    keep = y_true >= 40
    # same numbers as plain MAE on the defined samples only: same streams, same n, same draws
    ref = Disaggregation(y_true[keep], y_pred[keep], g[keep].reset_index(drop=True), "mae", n_boot=120, seed=4,
                         min_group_size=1).frame().set_index(["attribute", "group"])
    part = frame.loc["mae_old"]
    pd.testing.assert_frame_equal(part.loc[ref.index, ["value", "ci_low", "ci_high", "n", "std_err"]],
                                  ref[["value", "ci_low", "ci_high", "n", "std_err"]])
    assert frame.loc[("mae", "overall", "all"), "n"] == 800 and part.loc[("overall", "all"), "n"] == keep.sum()
    # the mean metric in the same engine is unaffected by the partial one
    alone = Disaggregation(y_true, y_pred, g, "mae", n_boot=120, seed=4, min_group_size=1).frame()
    pd.testing.assert_frame_equal(frame.loc["mae"].reset_index(drop=True),
                                  alone.drop(columns=["attribute", "group", "metric"]))
    # and from_outcomes accepts the NaN outcomes of a partial metric
    again = Disaggregation.from_outcomes({m: m.outcomes(y_true, y_pred)}, g, n_boot=120, seed=4, min_group_size=1)
    pd.testing.assert_frame_equal(again.frame(), eng.frame().query("metric == 'mae_old'").reset_index(drop=True))


def test_partial_metric_without_nan_equals_the_plain_metric():
    y_true, y_pred, g = _simulated(n=500)
    everywhere = ExtendedMetric(name="mae_all", description="", higher_is_better=False, partial=True,
                                outcome=get_metric("mae").outcome)
    a = Disaggregation(y_true, y_pred, g, everywhere, n_boot=80).frame().drop(columns="metric")
    b = Disaggregation(y_true, y_pred, g, "mae", n_boot=80).frame().drop(columns="metric")
    pd.testing.assert_frame_equal(a, b)


def test_group_where_a_partial_metric_is_undefined():
    y_true = np.r_[np.full(10, 50.0), np.full(10, 20.0)]  # group "young" has no sample aged 40+
    y_pred = y_true + np.r_[np.arange(10.0), np.arange(10.0)]
    g = pd.DataFrame({"age": ["old"] * 10 + ["young"] * 10, "other": ["p", "q"] * 10})
    m = _partial_mae()
    eng = Disaggregation(y_true, y_pred, g, m, n_boot=40, min_group_size=1)
    frame = eng.frame().set_index(["attribute", "group"])
    young = frame.loc[("age", "young")]
    assert young["n"] == 0 and np.isnan(young["value"]) and young["flag"] == "small"
    assert frame.loc[("age", "old"), "value"] == pytest.approx(4.5)
    d = eng.disparities().set_index("attribute")
    assert d.loc["age", "n_groups"] == 1 and d.loc["age", "worst_group"] == "old"
    t = eng.group_tests().set_index(["attribute", "group"])
    assert np.isnan(t.loc[("age", "young"), "p_value"]) and np.isnan(t.loc[("age", "old"), "p_value"])
    assert np.isfinite(t.loc[("other", "p"), "p_value"])


def test_threads_and_default_permutation_count():
    y_true, y_pred, g = _simulated(n=700)
    a = Disaggregation(y_true, y_pred, g, ["mae", "rmse"], n_boot=50, n_jobs=1).group_tests()
    b = Disaggregation(y_true, y_pred, g, ["mae", "rmse"], n_boot=50, n_jobs=2).group_tests()
    pd.testing.assert_frame_equal(a, b)
    # 60 groups: the default number of permutations grows so that G / (R + 1) stays below alpha / 2
    many = pd.Series(np.arange(700) % 60, name="k").astype(str)
    t = Disaggregation(y_true, y_pred, many, "mae", n_boot=0).group_tests(alpha=0.05)
    assert t["p_value"].min() >= 1 / 2401 and (t["p_value"] * 2401).round(6).mod(1).eq(0).all()
