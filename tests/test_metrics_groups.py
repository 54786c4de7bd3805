"""The disaggregation engine: hand-worked values, intervals, determinism, fairlearn agreement, coverage."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from facebench.errors import UserInputError
from facebench.metrics import Disaggregation, disaggregate, disparities, wilson_interval
from facebench.metrics.groups import DISPARITY_COLUMNS, FRAME_COLUMNS

# errors (pred - true): +2, 0, -3, +6 | 0, +1, -5, 0
Y_TRUE = np.array([20, 30, 40, 50, 60, 70, 80, 90], dtype=float)
Y_PRED = np.array([22, 30, 37, 56, 60, 71, 75, 90], dtype=float)
GROUPS = pd.DataFrame({
    "race": ["a", "a", "a", "a", "b", "b", "b", "b"],
    "gender": ["f", "m", "f", "m", "f", "m", "f", "m"],
})


def _row(df, attribute, group, metric):
    sel = df[(df["attribute"] == attribute) & (df["group"] == group) & (df["metric"] == metric)]
    assert len(sel) == 1, (attribute, group, metric)
    return sel.iloc[0]


def _wilson_by_hand(k, n, confidence=0.95):
    """Wilson (1927) score interval, transcribed independently of the package."""
    z = norm.ppf(1 - (1 - confidence) / 2)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre - half, centre + half


# ------------------------------------------------------------------------------------ hand-worked
def test_columns_and_row_order():
    df = disaggregate(Y_TRUE, Y_PRED, GROUPS, "mae", n_boot=50, min_group_size=4)
    assert list(df.columns) == list(FRAME_COLUMNS)
    assert list(df.columns[:8]) == ["attribute", "group", "metric", "value", "ci_low", "ci_high", "n", "flag"]
    assert list(zip(df["attribute"], df["group"], strict=True)) == [
        ("overall", "all"),
        ("race", "a"), ("race", "b"),
        ("gender", "f"), ("gender", "m"),
        ("race*gender", "a*f"), ("race*gender", "a*m"), ("race*gender", "b*f"), ("race*gender", "b*m"),
    ]
    assert df["level"].tolist() == [0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert df["n"].tolist() == [8, 4, 4, 4, 4, 2, 2, 2, 2]
    assert df["flag"].tolist() == ["", "", "", "", ""] + ["small"] * 4


def test_values_by_hand():
    df = disaggregate(Y_TRUE, Y_PRED, GROUPS, ["mae", "rmse", "mean_signed_error", "cs5"], n_boot=20,
                      min_group_size=1)
    expected = {
        ("overall", "all"): (17 / 8, math.sqrt(75 / 8), 1 / 8, 7 / 8),
        ("race", "a"): (11 / 4, 3.5, 5 / 4, 3 / 4),
        ("race", "b"): (6 / 4, math.sqrt(26 / 4), -1.0, 1.0),
        ("gender", "f"): (10 / 4, math.sqrt(38 / 4), -6 / 4, 1.0),
        ("gender", "m"): (7 / 4, math.sqrt(37 / 4), 7 / 4, 3 / 4),
        ("race*gender", "a*f"): (2.5, math.sqrt(13 / 2), -0.5, 1.0),
        ("race*gender", "a*m"): (3.0, math.sqrt(18.0), 3.0, 0.5),
        ("race*gender", "b*f"): (2.5, math.sqrt(12.5), -2.5, 1.0),
        ("race*gender", "b*m"): (0.5, math.sqrt(0.5), 0.5, 1.0),
    }
    for (attr, group), values in expected.items():
        for metric, value in zip(["mae", "rmse", "mean_signed_error", "cs5"], values, strict=True):
            assert _row(df, attr, group, metric)["value"] == pytest.approx(value), (attr, group, metric)
    # metric-major row order
    assert df["metric"].tolist() == ["mae"] * 9 + ["rmse"] * 9 + ["mean_signed_error"] * 9 + ["cs5"] * 9


def test_intervals_bracket_values_and_methods():
    df = disaggregate(Y_TRUE, Y_PRED, GROUPS, ["mae", "cs5"], n_boot=200, min_group_size=1)
    assert (df["ci_low"] <= df["value"] + 1e-12).all() and (df["value"] <= df["ci_high"] + 1e-12).all()
    assert set(df.loc[df["metric"] == "mae", "ci_method"]) == {"bootstrap"}
    assert set(df.loc[df["metric"] == "cs5", "ci_method"]) == {"wilson"}
    assert (df["std_err"] >= 0).all()


def test_three_way_intersections_and_limit():
    g = GROUPS.assign(age=["y", "o"] * 4)
    df = disaggregate(Y_TRUE, Y_PRED, g, "mae", n_boot=10, intersections=3, min_group_size=1)
    attrs = list(dict.fromkeys(df["attribute"]))
    assert attrs == ["overall", "race", "gender", "age", "race*gender", "race*age", "gender*age",
                     "race*gender*age"]
    # race a: gender f,m,f,m ; age y,o,y,o -> a*f*y twice, a*m*o twice
    three = df[df["attribute"] == "race*gender*age"]
    assert three["group"].tolist() == ["a*f*y", "a*m*o", "b*f*y", "b*m*o"]
    assert _row(df, "race*gender*age", "a*m*o", "mae")["value"] == pytest.approx(3.0)
    only_single = disaggregate(Y_TRUE, Y_PRED, g, "mae", n_boot=10, intersections=1, min_group_size=1)
    assert only_single["level"].max() == 1


def test_missing_group_values_leave_only_that_attribute():
    g = GROUPS.copy()
    g.loc[7, "gender"] = None  # sample 7: error 0, gender m, race b
    g.loc[0, "race"] = np.nan  # sample 0: error +2, race a, gender f
    df = disaggregate(Y_TRUE, Y_PRED, g, "mae", n_boot=10, min_group_size=1)
    overall = _row(df, "overall", "all", "mae")
    assert overall["n"] == 8 and overall["value"] == pytest.approx(17 / 8)
    assert _row(df, "gender", "m", "mae")["n"] == 3
    assert _row(df, "gender", "m", "mae")["value"] == pytest.approx(7 / 3)
    assert _row(df, "gender", "f", "mae")["n"] == 4  # sample 0 still counts for gender
    assert _row(df, "race", "a", "mae")["n"] == 3
    assert _row(df, "race", "a", "mae")["value"] == pytest.approx(9 / 3)
    assert _row(df, "race", "b", "mae")["n"] == 4  # sample 7 still counts for race
    assert _row(df, "race*gender", "b*m", "mae")["n"] == 1
    assert _row(df, "race*gender", "a*f", "mae")["n"] == 1
    assert df[df["attribute"] == "race*gender"]["n"].sum() == 6
    assert not df["group"].isin(["nan", "None", "<NA>"]).any()


def test_small_group_flag_kept_not_dropped():
    g = pd.DataFrame({"grp": ["big"] * 6 + ["tiny"] * 2})
    df = disaggregate(Y_TRUE, Y_PRED, g, "mae", n_boot=10, min_group_size=3)
    tiny = _row(df, "grp", "tiny", "mae")
    assert tiny["flag"] == "small" and tiny["n"] == 2
    assert tiny["value"] == pytest.approx(2.5)  # errors -5, 0
    assert _row(df, "grp", "big", "mae")["flag"] == ""
    assert _row(df, "overall", "all", "mae")["flag"] == ""


def test_group_order_categorical_numeric_and_unused_categories():
    cat = pd.Categorical(["lo", "hi", "mid", "lo", "hi", "mid", "lo", "hi"],
                         categories=["lo", "mid", "hi", "unused"])
    df = disaggregate(Y_TRUE, Y_PRED, pd.DataFrame({"c": cat}), "mae", n_boot=5, min_group_size=1)
    assert df.loc[df["attribute"] == "c", "group"].tolist() == ["lo", "mid", "hi"]
    nums = pd.DataFrame({"k": [10, 2, 10, 2, 1, 1, 2, 10]})
    df = disaggregate(Y_TRUE, Y_PRED, nums, "mae", n_boot=5, min_group_size=1)
    assert df.loc[df["attribute"] == "k", "group"].tolist() == ["1", "2", "10"]


def test_series_groups_and_from_outcomes_match():
    s = pd.Series(GROUPS["race"].to_numpy(), name="race")
    a = disaggregate(Y_TRUE, Y_PRED, s, "mae", n_boot=30, min_group_size=1)
    b = Disaggregation.from_outcomes({"mae": np.abs(Y_PRED - Y_TRUE)}, s, n_boot=30, min_group_size=1).frame()
    pd.testing.assert_frame_equal(a, b)
    assert a["attribute"].tolist() == ["overall", "race", "race"]


# ------------------------------------------------------------------------------------ Wilson
def test_wilson_matches_hand_formula_and_never_zero_width():
    for k, n in [(0, 10), (10, 10), (3, 10), (1, 1), (57, 200)]:
        lo, hi = wilson_interval(k, n)
        elo, ehi = _wilson_by_hand(k, n)
        assert float(lo) == pytest.approx(max(elo, 0.0), abs=1e-12)
        assert float(hi) == pytest.approx(min(ehi, 1.0), abs=1e-12)
        assert hi - lo > 0.05
    # 0/10 upper end is z^2 / (n + z^2)
    assert float(wilson_interval(0, 10)[1]) == pytest.approx(3.841459 / 13.841459, abs=1e-6)
    assert float(wilson_interval(0, 10, confidence=0.9)[1]) == pytest.approx(_wilson_by_hand(0, 10, 0.9)[1])
    lo, hi = wilson_interval(np.array([0, 5]), np.array([0, 10]))
    assert np.isnan(lo[0]) and np.isnan(hi[0]) and 0 < lo[1] < 0.5 < hi[1] < 1


def test_rate_metric_uses_wilson_at_zero_and_hundred_percent():
    y_true = np.zeros(20)
    y_pred = np.r_[np.zeros(10), np.full(10, 9.0)]  # group "good" all within 5, "bad" none
    g = pd.DataFrame({"q": ["good"] * 10 + ["bad"] * 10})
    df = disaggregate(y_true, y_pred, g, "cs5", n_boot=100, min_group_size=1)
    good, bad = _row(df, "q", "good", "cs5"), _row(df, "q", "bad", "cs5")
    assert good["value"] == 1.0 and bad["value"] == 0.0
    assert good["ci_low"] == pytest.approx(_wilson_by_hand(10, 10)[0]) and good["ci_high"] == 1.0
    assert bad["ci_low"] == 0.0 and bad["ci_high"] == pytest.approx(_wilson_by_hand(0, 10)[1])
    overall = _row(df, "overall", "all", "cs5")
    assert (overall["ci_low"], overall["ci_high"]) == pytest.approx(_wilson_by_hand(10, 20))


def test_n_boot_zero():
    df = disaggregate(Y_TRUE, Y_PRED, GROUPS, ["mae", "cs5"], n_boot=0, min_group_size=1)
    mae = df[df["metric"] == "mae"]
    assert mae["ci_low"].isna().all() and (mae["ci_method"] == "none").all()
    assert df[df["metric"] == "cs5"]["ci_low"].notna().all()


# ------------------------------------------------------------------------------------ determinism
def _data(n=3000, seed=1):
    rng = np.random.default_rng(seed)
    y_true = rng.uniform(1, 90, n)
    race = rng.choice(["w", "x", "y", "z"], n)
    gender = rng.choice(["f", "m"], n)
    y_pred = y_true + rng.normal(0, 3 + (race == "z") * 2.0, n)
    return y_true, y_pred, pd.DataFrame({"race": race, "gender": gender})


def test_same_seed_same_numbers_other_seed_other_draws():
    yt, yp, g = _data()
    a = disaggregate(yt, yp, g, ["mae", "cs5"], n_boot=100, seed=3)
    b = disaggregate(yt, yp, g, ["mae", "cs5"], n_boot=100, seed=3)
    pd.testing.assert_frame_equal(a, b)
    c = disaggregate(yt, yp, g, ["mae", "cs5"], n_boot=100, seed=4)
    pd.testing.assert_series_equal(a["value"], c["value"])
    assert not np.allclose(a.loc[a["metric"] == "mae", "ci_low"], c.loc[c["metric"] == "mae", "ci_low"])


def test_independent_of_group_processing_order_and_of_other_groups():
    yt, yp, g = _data()
    cols = ["value", "ci_low", "ci_high", "std_err", "n"]
    full = disaggregate(yt, yp, g, "mae", n_boot=100, intersections=1).set_index(["attribute", "group"])
    # columns in another order
    swapped = disaggregate(yt, yp, g[["gender", "race"]], "mae", n_boot=100, intersections=1)
    swapped = swapped.set_index(["attribute", "group"]).loc[full.index]
    pd.testing.assert_frame_equal(full[cols], swapped[cols])
    # categories in reverse order: rows move, numbers stay
    rev = g.assign(race=pd.Categorical(g["race"], categories=["z", "y", "x", "w"]))
    rev_df = disaggregate(yt, yp, rev, "mae", n_boot=100, intersections=1).set_index(["attribute", "group"])
    assert rev_df.loc["race"].index.tolist() == ["z", "y", "x", "w"]
    pd.testing.assert_frame_equal(full[cols], rev_df.loc[full.index][cols])
    # other groups removed from the data entirely: group 'y' unchanged
    keep = (g["race"] == "y").to_numpy()
    alone = disaggregate(yt[keep], yp[keep], g.loc[keep, ["race"]], "mae", n_boot=100, intersections=1)
    alone = alone.set_index(["attribute", "group"])
    pd.testing.assert_series_equal(full.loc[("race", "y"), cols], alone.loc[("race", "y"), cols])


def test_threads_do_not_change_results():
    yt, yp, g = _data(n=6000)
    a = disaggregate(yt, yp, g, ["mae", "rmse"], n_boot=200, n_jobs=1)
    b = disaggregate(yt, yp, g, ["mae", "rmse"], n_boot=200, n_jobs=2)
    pd.testing.assert_frame_equal(a, b)


def test_groups_get_independent_streams():
    # groups "a" and "b" hold the same outcomes in the same order; so do attribute copies "h" and "k".
    # Shared random streams would make their draws identical (correlation 1) and shrink gap intervals.
    rng = np.random.default_rng(5)
    err = np.tile(rng.exponential(3.0, 300), 2)
    labels = np.repeat(["a", "b"], 300)
    g = pd.DataFrame({"h": labels, "k": labels})
    eng = Disaggregation(np.zeros(600), err, g, "mae", n_boot=400, intersections=1)
    pairs = [(("h", "a"), ("h", "b")), (("h", "a"), ("k", "a"))]
    for (a1, g1), (a2, g2) in pairs:
        d1, d2 = eng.draws("mae", a1, g1), eng.draws("mae", a2, g2)
        assert eng.frame().query("attribute == @a1 and group == @g1")["value"].item() == pytest.approx(
            eng.frame().query("attribute == @a2 and group == @g2")["value"].item())
        assert abs(np.corrcoef(d1, d2)[0, 1]) < 0.25
    # a big group is drawn in several memory-bounded chunks: no chunk may repeat another
    big = Disaggregation(np.zeros(5000), rng.exponential(3.0, 5000), pd.DataFrame({"g": ["x"] * 5000}),
                         "mae", n_boot=200)
    assert np.unique(big.draws("mae", "g", "x")).size == 200


def test_bootstrap_is_stratified_within_group():
    # each group has constant outcome: a within-group resample can never mix them -> zero-width intervals
    y_true = np.zeros(40)
    y_pred = np.r_[np.full(20, 1.0), np.full(20, 3.0)]
    g = pd.DataFrame({"g": ["a"] * 20 + ["b"] * 20})
    df = disaggregate(y_true, y_pred, g, "mae", n_boot=200, min_group_size=1)
    for grp, v in [("a", 1.0), ("b", 3.0)]:
        r = _row(df, "g", grp, "mae")
        assert r["ci_low"] == r["ci_high"] == v
    overall = _row(df, "overall", "all", "mae")
    assert overall["ci_low"] < 2.0 < overall["ci_high"]


# ------------------------------------------------------------------------------------ fairlearn
def test_agrees_with_fairlearn_metricframe():
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import mean_absolute_error

    rng = np.random.default_rng(7)
    n = 2000
    grp = rng.choice(["g1", "g2", "g3", "g4"], n)
    y_true = rng.uniform(1, 90, n)
    scale = pd.Series(grp).map({"g1": 2.0, "g2": 3.0, "g3": 4.0, "g4": 6.0}).to_numpy()
    y_pred = y_true + rng.normal(0, scale)
    mf = MetricFrame(metrics=mean_absolute_error, y_true=y_true, y_pred=y_pred, sensitive_features=grp,
                     n_boot=200, ci_quantiles=[0.025, 0.975], random_state=0)
    ours = disaggregate(y_true, y_pred, pd.DataFrame({"sensitive_feature_0": grp}), "mae",
                        n_boot=200, seed=0, intersections=1)
    by_group = ours[ours["level"] == 1].set_index("group")
    fl = mf.by_group
    fl.index = fl.index.astype(str)
    np.testing.assert_array_equal(by_group["value"].to_numpy(), fl.loc[by_group.index].to_numpy())
    assert _row(ours, "overall", "all", "mae")["value"] == mf.overall
    lo, hi = (s.copy() for s in mf.by_group_ci)
    lo.index, hi.index = lo.index.astype(str), hi.index.astype(str)
    width = by_group["ci_high"] - by_group["ci_low"]
    assert (np.abs(by_group["ci_low"] - lo.loc[by_group.index]) / width).max() < 0.2
    assert (np.abs(by_group["ci_high"] - hi.loc[by_group.index]) / width).max() < 0.2


# ------------------------------------------------------------------------------------ coverage
def test_bootstrap_and_wilson_cover_true_values():
    """200 simulated data sets, each one group of one call (groups are resampled independently)."""
    n_sets, n_each, sigma = 200, 40, 4.0
    rng = np.random.default_rng(123)
    err = rng.normal(0.0, sigma, size=(n_sets, n_each)).ravel()
    sets = np.repeat([f"s{i:03d}" for i in range(n_sets)], n_each)
    df = disaggregate(np.zeros(err.size), err, pd.DataFrame({"sim": sets}), ["mae", "cs5"],
                      n_boot=400, seed=0, intersections=1, n_jobs=1)
    sim = df[df["attribute"] == "sim"]
    true_mae = sigma * math.sqrt(2 / math.pi)
    true_cs5 = 2 * norm.cdf(5 / sigma) - 1
    for metric, truth in [("mae", true_mae), ("cs5", true_cs5)]:
        rows = sim[sim["metric"] == metric]
        assert len(rows) == n_sets
        coverage = ((rows["ci_low"] <= truth) & (truth <= rows["ci_high"])).mean()
        assert 0.88 <= coverage <= 0.99, (metric, coverage)


# ------------------------------------------------------------------------------------ disparities
def test_disparities_directions_and_hand_values():
    d = disparities(Y_TRUE, Y_PRED, GROUPS, ["mae", "cs5", "mean_signed_error"], n_boot=200, min_group_size=1)
    assert list(d.columns) == list(DISPARITY_COLUMNS)
    race = d[d["attribute"] == "race"].set_index("metric")
    # MAE: a 2.75 (worst, max), b 1.5
    assert (race.loc["mae", "worst_group"], race.loc["mae", "best_group"]) == ("a", "b")
    assert race.loc["mae", "gap"] == pytest.approx(1.25)
    assert race.loc["mae", "ratio"] == pytest.approx(2.75 / 1.5)
    assert race.loc["mae", "overall_gap"] == pytest.approx(2.75 - 17 / 8)
    # CS@5: a 0.75 (worst, min), b 1.0; ratio best / worst
    assert (race.loc["cs5", "worst_group"], race.loc["cs5", "best_group"]) == ("a", "b")
    assert race.loc["cs5", "gap"] == pytest.approx(0.25)
    assert race.loc["cs5", "ratio"] == pytest.approx(1.0 / 0.75)
    # signed error: a +1.25 vs b -1.0 -> worst is a (|1.25|); gender f -1.5 vs m +1.75 -> worst m
    assert race.loc["mean_signed_error", "worst_group"] == "a"
    assert race.loc["mean_signed_error", "gap"] == pytest.approx(2.25)
    assert race.loc["mean_signed_error", "ratio"] == pytest.approx(1.25 / 1.0)
    gender = d[(d["attribute"] == "gender") & (d["metric"] == "mean_signed_error")].iloc[0]
    assert (gender["worst_group"], gender["best_group"]) == ("m", "f")
    assert (d["ratio"].dropna() >= 1).all() and (d["gap"] >= 0).all()


def test_disparity_gap_interval_contains_gap_and_uses_frame_draws():
    yt, yp, g = _data()
    eng = Disaggregation(yt, yp, g, ["mae", "cs5"], n_boot=300, seed=2, intersections=1)
    d = eng.disparities()
    for _, r in d.iterrows():
        assert r["gap_ci_low"] <= r["gap"] <= r["gap_ci_high"]
        assert r["ratio_ci_low"] <= r["ratio"] <= r["ratio_ci_high"]
    r = d[(d["metric"] == "mae") & (d["attribute"] == "race")].iloc[0]
    assert r["worst_group"] == "z"  # simulated with the largest error
    assert r["gap_ci_low"] > 0  # clearly separated
    diff = eng.draws("mae", "race", r["worst_group"]) - eng.draws("mae", "race", r["best_group"])
    assert r["gap_ci_low"] == pytest.approx(np.quantile(diff, 0.025))
    assert r["gap_ci_high"] == pytest.approx(np.quantile(diff, 0.975))
    # the wrapper gives the same numbers
    pd.testing.assert_frame_equal(d, disparities(yt, yp, g, ["mae", "cs5"], n_boot=300, seed=2))
    frame = eng.frame().set_index(["metric", "attribute", "group"])
    assert frame.loc[("mae", "race", r["worst_group"]), "value"] == r["worst_value"]


def test_small_groups_do_not_compete_when_two_big_groups_exist():
    y_true = np.zeros(64)
    y_pred = np.r_[np.full(30, 1.0), np.full(30, 2.0), np.full(4, 50.0)]
    g = pd.DataFrame({"g": ["a"] * 30 + ["b"] * 30 + ["tiny"] * 4})
    d = disparities(y_true, y_pred, g, "mae", n_boot=50, min_group_size=30).iloc[0]
    assert (d["worst_group"], d["best_group"], d["n_groups"]) == ("b", "a", 2)
    d = disparities(y_true, y_pred, g, "mae", n_boot=50, min_group_size=31).iloc[0]  # none big: all compete
    assert (d["worst_group"], d["best_group"], d["n_groups"]) == ("tiny", "a", 3)


def test_ratio_is_nan_when_best_is_zero_and_single_group_rows():
    y_true = np.zeros(8)
    y_pred = np.r_[np.zeros(4), np.full(4, 2.0)]
    g = pd.DataFrame({"g": ["a"] * 4 + ["b"] * 4, "one": ["x"] * 8})
    d = disparities(y_true, y_pred, g, "mae", n_boot=50, min_group_size=1).set_index("attribute")
    assert d.loc["g", "gap"] == 2.0 and np.isnan(d.loc["g", "ratio"])
    assert np.isnan(d.loc["one", "gap"]) and d.loc["one", "worst_group"] == "x"


def test_tied_groups_still_compare_two_groups():
    y_true = np.zeros(8)
    y_pred = np.array([1.0, 3.0, 3.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    g = pd.DataFrame({"g": ["a"] * 4 + ["b"] * 4})  # both MAE 2.0
    eng = Disaggregation(y_true, y_pred, g, "mae", n_boot=200, min_group_size=1)
    d = eng.disparities().iloc[0]
    assert (d["worst_group"], d["best_group"], d["gap"]) == ("a", "b", 0.0)
    assert d["gap_ci_low"] < 0 < d["gap_ci_high"]  # group a varies, group b does not: a real interval


def test_all_missing_attribute_is_reported_not_dropped():
    g = pd.DataFrame({"a": [None] * 8, "race": GROUPS["race"]})
    df = disaggregate(Y_TRUE, Y_PRED, g, "mae", n_boot=10, min_group_size=1)
    assert "a" not in set(df["attribute"]) and _row(df, "overall", "all", "mae")["n"] == 8
    d = disparities(Y_TRUE, Y_PRED, g, "mae", n_boot=10, min_group_size=1).set_index("attribute")
    assert d.loc["a", "n_groups"] == 0 and np.isnan(d.loc["a", "gap"])
    assert d.loc["race", "gap"] == pytest.approx(1.25)


def test_disparities_attribute_selection():
    yt, yp, g = _data(n=600)
    d = disparities(yt, yp, g, "mae", n_boot=20, attributes=["race*gender"])
    assert d["attribute"].tolist() == ["race*gender"]
    assert "*" in d.iloc[0]["worst_group"]
    with pytest.raises(UserInputError, match="did you mean 'race'"):
        disparities(yt, yp, g, "mae", n_boot=20, attributes=["rac"])


# ------------------------------------------------------------------------------------ validation
def test_input_validation():
    with pytest.raises(ValueError, match="Length mismatch"):
        disaggregate(Y_TRUE, Y_PRED[:-1], GROUPS, "mae")
    with pytest.raises(ValueError, match="Length mismatch"):
        disaggregate(Y_TRUE, Y_PRED, GROUPS.iloc[:5], "mae")
    with pytest.raises(ValueError, match="NaN or infinite"):
        disaggregate(np.r_[Y_TRUE[:-1], np.nan], Y_PRED, GROUPS, "mae")
    with pytest.raises(ValueError, match="NaN or infinite"):
        disaggregate(Y_TRUE, np.r_[Y_PRED[:-1], np.inf], GROUPS, "mae")
    with pytest.raises(UserInputError, match="did you mean 'mae'"):
        disaggregate(Y_TRUE, Y_PRED, GROUPS, "maee")
    with pytest.raises(ValueError, match="confidence"):
        disaggregate(Y_TRUE, Y_PRED, GROUPS, "mae", confidence=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        disaggregate(Y_TRUE, Y_PRED, GROUPS, "mae", n_boot=-1)
    with pytest.raises(ValueError, match="intersections"):
        disaggregate(Y_TRUE, Y_PRED, GROUPS, "mae", intersections=0)
    with pytest.raises(TypeError, match="DataFrame"):
        disaggregate(Y_TRUE, Y_PRED, ["a"] * 8, "mae")
    with pytest.raises(ValueError, match="reserved"):
        disaggregate(Y_TRUE, Y_PRED, pd.DataFrame({"overall": ["a"] * 8}), "mae")
    with pytest.raises(ValueError, match="more than once"):
        disaggregate(Y_TRUE, Y_PRED, GROUPS, ["mae", "mae"])
    with pytest.raises(ValueError, match="no samples"):
        disaggregate([], [], pd.DataFrame({"g": []}), "mae")
    with pytest.raises(TypeError):
        disaggregate(Y_TRUE, Y_PRED, GROUPS, "mae", n_boot=10, seed=0, intersections=2, min_group_size=1,
                     n_jobs=1, extra=1)
