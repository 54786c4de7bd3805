"""Classification metrics against scikit-learn and fairlearn, through the engine and on their own."""

from __future__ import annotations

import pickle
import warnings

import fairlearn.metrics as flm
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score

from facebench.errors import UserInputError
from facebench.metrics import (
    ACCURACY,
    BALANCED_ACCURACY,
    FAIRNESS_METRICS,
    METRIC_NAMES,
    Disaggregation,
    ExtendedMetric,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equal_opportunity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    get_fairness_metric,
    get_metric,
    true_positive_rate,
    wilson_interval,
)
from facebench.metrics.resampling import bootstrap_stream as _stream


def _multiclass(n=1500, seed=0, n_classes=4):
    rng = np.random.default_rng(seed)
    race = rng.choice(["w", "x", "y", "z"], n)
    gender = rng.choice(["f", "m"], n)
    y_true = rng.integers(0, n_classes, n)
    noisy = rng.random(n) < np.where(race == "z", 0.5, 0.25)
    y_pred = np.where(noisy, rng.integers(0, n_classes, n), y_true)
    return y_true, y_pred, pd.DataFrame({"race": race, "gender": gender})


def _masks(groups):
    """(attribute, group) -> boolean mask, for single attributes and the race*gender intersection."""
    out = {("overall", "all"): np.ones(len(groups), dtype=bool)}
    for col in groups.columns:
        for value in groups[col].unique():
            out[(col, str(value))] = (groups[col] == value).to_numpy()
    for r in groups["race"].unique():
        for s in groups["gender"].unique():
            out[("race*gender", f"{r}*{s}")] = ((groups["race"] == r) & (groups["gender"] == s)).to_numpy()
    return out


# ------------------------------------------------------------------------------------ per-group values
def test_accuracy_and_balanced_accuracy_equal_sklearn_per_group():
    y_true, y_pred, g = _multiclass()
    g = g.assign(race=np.where((g["race"] == "w") & (y_true == 3), "x", g["race"]))  # race w lacks class 3
    frame = Disaggregation(y_true, y_pred, g, ["accuracy", "balanced_accuracy"], n_boot=50,
                           min_group_size=1).frame().set_index(["metric", "attribute", "group"]).sort_index()
    for (attr, grp), mask in _masks(g).items():
        assert frame.loc[("accuracy", attr, grp), "value"] == pytest.approx(
            accuracy_score(y_true[mask], y_pred[mask]), abs=1e-12)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns when y_pred has a class y_true lacks
            expected = balanced_accuracy_score(y_true[mask], y_pred[mask])
        assert frame.loc[("balanced_accuracy", attr, grp), "value"] == pytest.approx(expected, abs=1e-12)
        assert frame.loc[("accuracy", attr, grp), "n"] == mask.sum()
    assert set(frame.loc["accuracy", "ci_method"]) == {"wilson"}
    assert set(frame.loc["balanced_accuracy", "ci_method"]) == {"bootstrap"}
    assert ACCURACY(y_true, y_pred) == pytest.approx(accuracy_score(y_true, y_pred))
    assert BALANCED_ACCURACY(y_true, y_pred) == pytest.approx(balanced_accuracy_score(y_true, y_pred))


def test_balanced_accuracy_on_string_labels():
    y_true = np.array(["cat", "cat", "dog", "dog", "dog", "bird"])
    y_pred = np.array(["cat", "dog", "dog", "dog", "cat", "cat"])
    assert BALANCED_ACCURACY(y_true, y_pred) == pytest.approx(balanced_accuracy_score(y_true, y_pred))


def test_balanced_accuracy_draws_are_sklearn_on_each_resample():
    y_true, y_pred, g = _multiclass(n=400, seed=3)
    eng = Disaggregation(y_true, y_pred, g, ["balanced_accuracy", "accuracy"], n_boot=60, seed=9,
                         intersections=1)
    draws = eng.draws("balanced_accuracy", "race", "x")
    acc = eng.draws("accuracy", "race", "x")
    mask = (g["race"] == "x").to_numpy()
    yt, yp = y_true[mask], y_pred[mask]
    # the engine's stream for ("race", "x"): one chunk of 60 rows (60 * n < 2**18)
    idx = _stream(9, "race", "x", 0).integers(0, mask.sum(), size=(60, mask.sum()), dtype=np.int32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [balanced_accuracy_score(yt[row], yp[row]) for row in idx]
    np.testing.assert_allclose(draws, expected, rtol=0, atol=1e-12)
    # the same resamples serve the mean metrics: accuracy draw b is on the same rows
    np.testing.assert_allclose(acc, [(yt[row] == yp[row]).mean() for row in idx], atol=1e-12)
    frame = eng.frame().set_index(["metric", "attribute", "group"])
    row = frame.loc[("balanced_accuracy", "race", "x")]
    assert row["ci_low"] == pytest.approx(np.quantile(draws, 0.025))
    assert row["ci_low"] < row["value"] < row["ci_high"]


def test_balanced_accuracy_draws_when_a_resample_loses_a_class():
    # a group of 6 with a class seen once: about a third of the resamples do not contain it
    y_true = np.array([0, 0, 0, 1, 1, 2] + [0, 1, 2] * 10)
    y_pred = np.array([0, 1, 0, 1, 2, 2] + [0, 1, 2] * 10)
    g = pd.Series(["tiny"] * 6 + ["big"] * 30, name="g")
    draws = Disaggregation(y_true, y_pred, g, "balanced_accuracy", n_boot=200, seed=5).draws(
        "balanced_accuracy", "g", "tiny")
    idx = _stream(5, "g", "tiny", 0).integers(0, 6, size=(200, 6), dtype=np.int32)
    assert sum(2 not in y_true[:6][row] for row in idx) > 20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [balanced_accuracy_score(y_true[:6][row], y_pred[:6][row]) for row in idx]
    np.testing.assert_allclose(draws, expected, rtol=0, atol=1e-12)


def test_stratified_overall_of_an_aggregate_metric():
    y_true, y_pred, g = _multiclass(n=300, seed=4)
    eng = Disaggregation(y_true, y_pred, g, "balanced_accuracy", n_boot=40, seed=1, intersections=1)
    strat = eng._stratified_overall(0, "gender")
    rows = {}
    for grp in ("f", "m"):
        pos = np.flatnonzero((g["gender"] == grp).to_numpy())
        rows[grp] = pos[_stream(1, "gender", grp, 0).integers(0, pos.size, size=(40, pos.size), dtype=np.int32)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [balanced_accuracy_score(y_true[np.r_[rows["f"][b], rows["m"][b]]],
                                            y_pred[np.r_[rows["f"][b], rows["m"][b]]]) for b in range(40)]
    np.testing.assert_allclose(strat, expected, atol=1e-12)
    t = eng.group_tests().set_index("group")
    assert t.loc["f", "effect_size_kind"] == "none" and np.isnan(t.loc["f", "effect_size"])
    assert 0 < t.loc["f", "p_value"] <= 1


def test_binary_rates_per_group_equal_fairlearn_and_use_the_subset_count():
    rng = np.random.default_rng(1)
    n = 1200
    g = pd.DataFrame({"race": rng.choice(["a", "b", "c"], n)})
    y_true = rng.integers(0, 2, n)
    y_pred = np.where(rng.random(n) < 0.3, 1 - y_true, y_true)
    names = ["tpr", "fpr", "tnr", "fnr", "selection_rate"]
    frame = Disaggregation(y_true, y_pred, g, names, n_boot=30, min_group_size=1, intersections=1).frame()
    frame = frame.set_index(["metric", "attribute", "group"])
    reference = {"tpr": flm.true_positive_rate, "fpr": flm.false_positive_rate, "tnr": flm.true_negative_rate,
                 "fnr": flm.false_negative_rate, "selection_rate": flm.selection_rate}
    for (attr, grp), mask in _masks(g.assign(gender="all")).items():
        if attr not in ("overall", "race"):
            continue
        for name in names:
            row = frame.loc[(name, attr, grp)]
            assert row["value"] == pytest.approx(reference[name](y_true[mask], y_pred[mask]), abs=1e-12)
        positives, negatives = (y_true[mask] == 1).sum(), (y_true[mask] == 0).sum()
        assert frame.loc[("tpr", attr, grp), "n"] == positives == frame.loc[("fnr", attr, grp), "n"]
        assert frame.loc[("fpr", attr, grp), "n"] == negatives == frame.loc[("tnr", attr, grp), "n"]
        assert frame.loc[("selection_rate", attr, grp), "n"] == mask.sum()
        hits = ((y_pred == 1) & (y_true == 1) & mask).sum()
        lo, hi = wilson_interval(hits, positives)
        assert (frame.loc[("tpr", attr, grp), "ci_low"], frame.loc[("tpr", attr, grp), "ci_high"]) == \
            pytest.approx((float(lo), float(hi)))


def test_per_class_rates_equal_sklearn_one_vs_rest():
    y_true, y_pred, g = _multiclass(n=800, seed=2)
    recalls = recall_score(y_true, y_pred, average=None, labels=[0, 1, 2, 3])
    for c in range(4):
        assert get_metric(f"tpr@{c}")(y_true, y_pred) == pytest.approx(recalls[c])
        assert true_positive_rate(c)(y_true, y_pred) == pytest.approx(recalls[c])
        others = y_true != c
        assert get_metric(f"fpr@{c}")(y_true, y_pred) == pytest.approx((y_pred[others] == c).mean())
    frame = Disaggregation(y_true, y_pred, g, ["tpr@2", "fpr@2"], n_boot=20, intersections=1).frame()
    row = frame[(frame["metric"] == "tpr@2") & (frame["group"] == "z")].iloc[0]
    mask = (g["race"] == "z").to_numpy()
    assert row["value"] == pytest.approx(recall_score(y_true[mask] == 2, y_pred[mask] == 2))
    assert row["n"] == (y_true[mask] == 2).sum()


def test_rate_undefined_in_a_group():
    y_true = np.array([1, 1, 0, 0, 0, 0])
    y_pred = np.array([1, 0, 1, 0, 0, 1])
    g = pd.DataFrame({"g": ["a", "a", "b", "b", "c", "c"]})
    eng = Disaggregation(y_true, y_pred, g, ["tpr", "accuracy"], n_boot=20, min_group_size=1)
    frame = eng.frame().set_index(["metric", "attribute", "group"])
    assert frame.loc[("tpr", "g", "a"), "value"] == 0.5
    b = frame.loc[("tpr", "g", "b")]
    assert b["n"] == 0 and np.isnan(b["value"]) and np.isnan(b["ci_low"]) and b["flag"] == "small"
    assert frame.loc[("accuracy", "g", "b"), "n"] == 2
    d = eng.disparities().set_index("metric")
    assert d.loc["tpr", "n_groups"] == 1 and d.loc["tpr", "worst_group"] == "a"
    assert eng.group_tests().query("metric == 'tpr'")["p_value"].isna().all()
    # the summaries leave the group out (fairlearn's TPR would count it as 0)
    assert equal_opportunity_difference(y_true, y_pred, sensitive_features=g["g"]) == 0.0
    assert flm.equal_opportunity_difference(y_true, y_pred, sensitive_features=g["g"]) == 0.5
    assert np.isnan(true_positive_rate()([0, 0], [1, 0]))


# ------------------------------------------------------------------------------------ fairness summaries
_PAIRS = [
    (demographic_parity_difference, flm.demographic_parity_difference),
    (demographic_parity_ratio, flm.demographic_parity_ratio),
    (equalized_odds_difference, flm.equalized_odds_difference),
    (equalized_odds_ratio, flm.equalized_odds_ratio),
    (equal_opportunity_difference, flm.equal_opportunity_difference),
    (equal_opportunity_ratio, flm.equal_opportunity_ratio),
]


@pytest.mark.parametrize("method", ["between_groups", "to_overall"])
def test_fairness_summaries_equal_fairlearn_on_random_data(method):
    for seed in range(8):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(60, 400))
        k = int(rng.integers(2, 6))
        sf = rng.choice([f"g{i}" for i in range(k)], n)
        y_true = rng.integers(0, 2, n)
        y_pred = (rng.random(n) < rng.uniform(0.2, 0.8, k)[np.searchsorted(np.unique(sf), sf)]).astype(int)
        for ours, theirs in _PAIRS:
            expected = theirs(y_true, y_pred, sensitive_features=sf, method=method)
            assert ours(y_true, y_pred, sensitive_features=sf, method=method) == expected, (ours.__name__, seed)
        for ours, theirs in _PAIRS[2:4]:
            expected = theirs(y_true, y_pred, sensitive_features=sf, method=method, agg="mean")
            got = ours(y_true, y_pred, sensitive_features=sf, method=method, agg="mean")
            assert got == pytest.approx(expected, abs=1e-15)


def test_fairness_summaries_with_two_sensitive_columns_and_string_labels():
    rng = np.random.default_rng(3)
    n = 500
    sf = pd.DataFrame({"race": rng.choice(["a", "b", "c"], n), "gender": rng.choice(["f", "m"], n)})
    y_true = rng.integers(0, 2, n)
    y_pred = np.where(rng.random(n) < 0.35, 1 - y_true, y_true)
    labels = np.array(["no", "yes"])
    for ours, theirs in _PAIRS:
        for method in ("between_groups", "to_overall"):
            expected = theirs(y_true, y_pred, sensitive_features=sf, method=method)
            assert ours(y_true, y_pred, sensitive_features=sf, method=method) == expected
            # the same data with text labels and pos_label="yes"
            assert ours(labels[y_true], labels[y_pred], sensitive_features=sf, pos_label="yes",
                        method=method) == expected


def test_fairness_summaries_by_hand_and_errors():
    # selection rates a: 2/2, b: 1/2 -> difference 0.5, ratio 0.5; overall 3/4 -> to_overall 0.25, 2/3
    y_true, y_pred, sf = [0, 1, 0, 1], [1, 1, 0, 1], ["a", "a", "b", "b"]
    assert demographic_parity_difference(y_true, y_pred, sensitive_features=sf) == 0.5
    assert demographic_parity_ratio(y_true, y_pred, sensitive_features=sf) == 0.5
    assert demographic_parity_difference(y_true, y_pred, sensitive_features=sf, method="to_overall") == 0.25
    assert demographic_parity_ratio(y_true, y_pred, sensitive_features=sf, method="to_overall") == \
        pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="method"):
        demographic_parity_difference(y_true, y_pred, sensitive_features=sf, method="pairwise")
    with pytest.raises(ValueError, match="agg"):
        equalized_odds_ratio(y_true, y_pred, sensitive_features=sf, agg="max")
    with pytest.raises(ValueError, match="Length mismatch"):
        demographic_parity_difference(y_true, y_pred, sensitive_features=["a"])
    with pytest.raises(ValueError, match="missing"):
        demographic_parity_difference(y_true, y_pred, sensitive_features=["a", None, "b", "b"])
    assert get_fairness_metric("equalized_odds_ratio") is equalized_odds_ratio
    assert set(FAIRNESS_METRICS) == {f.__name__ for f, _ in _PAIRS}
    with pytest.raises(UserInputError, match="did you mean 'equalized_odds_ratio'"):
        get_fairness_metric("equalised_odds_ratio")


# ------------------------------------------------------------------------------------ registry and spec
def test_registry_names_parsing_and_pickle():
    for name in ("accuracy", "balanced_accuracy", "selection_rate", "tpr", "fpr", "tnr", "fnr"):
        assert name in METRIC_NAMES and get_metric(name).name == name
    assert get_metric("tpr").higher_is_better and not get_metric("fpr").higher_is_better
    assert get_metric("tpr@cat").name == "tpr@cat" and get_metric("selection_rate@0").name == "selection_rate@0"
    assert get_metric("tpr@cat")(["cat", "dog", "cat"], ["cat", "cat", "dog"]) == 0.5
    with pytest.raises(UserInputError, match="did you mean 'accuracy'"):
        get_metric("acuracy")
    with pytest.raises(UserInputError, match="did you mean 'balanced_accuracy'"):
        get_metric("balanced_acuracy")
    with pytest.raises(UserInputError, match="tpr@<label>"):
        get_metric("zzz")
    for m in (ACCURACY, BALANCED_ACCURACY, get_metric("fpr"), get_metric("tpr@cat")):
        back = pickle.loads(pickle.dumps(m))
        assert back == m
    assert pickle.loads(pickle.dumps(get_metric("fnr")))([1, 1, 0], [0, 1, 0]) == 0.5


def test_label_errors_and_spec_checks():
    with pytest.raises(ValueError, match="different kinds"):
        ACCURACY([1, 2], ["1", "2"])
    with pytest.raises(ValueError, match="occurs in neither"):
        get_metric("tpr")(["a", "b"], ["a", "a"])
    with pytest.raises(ValueError, match="not a mean"):
        BALANCED_ACCURACY.outcomes([1, 2], [1, 2])
    with pytest.raises(ValueError, match="exactly one"):
        ExtendedMetric(name="x", description="", higher_is_better=True)
    with pytest.raises(ValueError, match="aggregate metric cannot"):
        ExtendedMetric(name="x", description="", higher_is_better=True, is_rate=True,
                       aggregate=lambda t, p, i: np.zeros(len(i)))
    partial_inf = ExtendedMetric(name="x", description="", higher_is_better=True, partial=True,
                                 outcome=lambda t, p: np.full(len(t), np.inf))
    with pytest.raises(ValueError, match="infinite"):
        partial_inf([1, 2], [1, 2])
    with pytest.raises(ValueError, match="not a mean"):
        Disaggregation.from_outcomes({"balanced_accuracy": [1.0, 0.0]}, pd.Series(["a", "b"], name="g"))
    with pytest.raises(ValueError, match="not 0/1"):
        Disaggregation.from_outcomes({"tpr": [0.5, np.nan]}, pd.Series(["a", "b"], name="g"))
    assert false_positive_rate("dog").name == "fpr@dog"


def test_balanced_accuracy_fast_permutation_path_equals_the_generic_one():
    y_true, y_pred, g = _multiclass(n=300, seed=6)
    generic = ExtendedMetric(name="ba_generic", description="", higher_is_better=True,
                             aggregate=lambda t, p, idx: BALANCED_ACCURACY.aggregate(t, p, idx))
    t = Disaggregation(y_true, y_pred, g, ["balanced_accuracy", generic], n_boot=30).group_tests(
        n_permutations=300)
    fast = t[t["metric"] == "balanced_accuracy"].set_index(["attribute", "group"]).sort_index()
    slow = t[t["metric"] == "ba_generic"].set_index(["attribute", "group"]).sort_index()
    pd.testing.assert_series_equal(fast["p_value"], slow["p_value"])
    pd.testing.assert_series_equal(fast["rest_value"], slow["rest_value"])
    assert (fast["p_value"] < 1).any()
