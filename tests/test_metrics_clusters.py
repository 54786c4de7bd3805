"""The cluster bootstrap (units of independence): hand-worked weights, an independent transcription of
"resample the people, keep all their rows", a coverage study with known intra-cluster correlation, and the
group tests' false-positive rate under the null."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facebench.metrics import Disaggregation
from facebench.metrics.clusters import encode_units, row_weights, unit_count_chunks


def _clustered(rep: int, *, n_clusters: int = 60, icc: float = 0.3, mu: float = 10.0, seed: int = 2026):
    """Outcomes ``mu + b_person + e`` with Var(b) / (Var(b) + Var(e)) = icc, 2 to 20 rows per person."""
    rng = np.random.default_rng([seed, rep])
    sizes = rng.integers(2, 21, n_clusters)
    person = np.repeat(np.arange(n_clusters), sizes)
    y = mu + rng.normal(0, np.sqrt(icc) * 2, n_clusters)[person] + rng.normal(0, np.sqrt(1 - icc) * 2, person.size)
    return person, y


def _one_group(n: int) -> pd.DataFrame:
    return pd.DataFrame({"g": np.zeros(n, dtype=int)})


# ----------------------------------------------------------------------------- hand-worked and transcription
def test_missing_unit_labels_are_units_of_their_own():
    units = encode_units(["a", None, "a", float("nan"), ""])
    assert units.n_units == 4
    assert units.first[0] == units.first[2]
    assert len({int(units.first[i]) for i in (1, 3, 4)}) == 3


def test_unit_counts_are_multinomial_draws_of_all_units():
    blocks = list(unit_count_chunks(3, 7, 50))
    counts = np.concatenate([c for _, c in blocks])
    assert counts.shape == (50, 7)
    assert (counts.sum(axis=1) == 7).all()
    # cutting the draws into smaller blocks never changes them
    small = np.concatenate([c for _, c in unit_count_chunks(3, 7, 50, row_width=10**6)])
    assert np.array_equal(counts, small)


def test_hand_worked_cluster_draw():
    # people: ann has outcomes 1, 3; bo has 10. A draw picking ann twice gives mean (1+3+1+3)/4 = 2; a draw
    # of ann and bo gives (1+3+10)/3.
    units = encode_units(["ann", "ann", "bo"])
    counts = np.array([[2.0, 0.0], [1.0, 1.0]])
    w = row_weights(units, counts)
    y = np.array([1.0, 3.0, 10.0])
    assert np.allclose((w @ y) / w.sum(axis=1), [2.0, 14.0 / 3.0])


def _transcribed_draws(person: np.ndarray, y: np.ndarray, rows: np.ndarray, *, seed: int, n_boot: int):
    """Resample the people of the whole test set, then average the group's rows of each copy of a person.

    Written from the procedure, not from the engine: a loop over draws and over the drawn people. Units are
    numbered in the sorted order of their labels as text (the engine's documented convention)."""
    person = person.astype(str)
    labels = np.unique(person)
    out = []
    for _, counts in unit_count_chunks(seed, labels.size, n_boot):
        for draw in counts:
            picked = np.repeat(labels, draw.astype(int))
            values = [y[rows][person[rows] == p] for p in picked]
            values = np.concatenate(values) if values else np.empty(0)
            out.append(values.mean() if values.size else np.nan)
    return np.array(out)


def test_engine_draws_equal_the_transcribed_cluster_bootstrap():
    rng = np.random.default_rng(0)
    person = rng.integers(0, 12, 80)
    y = rng.gamma(2.0, 2.0, 80)
    race = np.where(rng.random(80) < 0.4, "x", "y")  # crosses people: some persons are in both groups
    engine = Disaggregation.from_outcomes({"mae": y}, pd.DataFrame({"race": race}), n_boot=40, seed=5,
                                          clusters=person, min_group_size=1)
    for group in ("x", "y"):
        rows = np.flatnonzero(race == group)
        expected = _transcribed_draws(person, y, rows, seed=5, n_boot=40)
        assert np.allclose(engine.draws("mae", "race", group), expected, equal_nan=True)
    overall = _transcribed_draws(person, y, np.arange(80), seed=5, n_boot=40)
    assert np.allclose(engine.draws("mae", "overall", "all"), overall)


def test_pair_draws_equal_the_transcribed_pigeonhole_bootstrap():
    # a pair of two people enters a draw once for every copy of its first person times every copy of its
    # second; a pair of one person's two images once per copy of that person
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 9, 50), rng.integers(0, 9, 50)
    b[:10] = a[:10]
    y = rng.random(50)
    engine = Disaggregation.from_outcomes({"mae": y}, _one_group(50), n_boot=30, seed=2,
                                          clusters=np.stack([a, b], axis=1), intersections=1, min_group_size=1)
    a, b = a.astype(str), b.astype(str)
    people = np.unique(np.concatenate([a, b]))
    expected = []
    for _, counts in unit_count_chunks(2, people.size, 30):
        for draw in counts:
            multiset = np.repeat(people, draw.astype(int)).tolist()
            taken = []
            for i in range(50):
                if a[i] == b[i]:
                    taken += [y[i]] * multiset.count(a[i])
                else:
                    taken += [y[i]] * (multiset.count(a[i]) * multiset.count(b[i]))
            expected.append(np.mean(taken) if taken else np.nan)
    assert np.allclose(engine.draws("mae", "overall", "all"), expected, equal_nan=True)


def test_frame_reports_units_detectable_gap_and_no_wilson_for_clustered_rates():
    person, y = _clustered(0)
    hit = (y > 10).astype(float)
    frame = Disaggregation.from_outcomes({"accuracy": hit}, _one_group(y.size), n_boot=200, clusters=person,
                                         intersections=1, min_group_size=1).frame()
    row = frame.iloc[0]
    assert row["ci_method"] == "cluster_bootstrap"
    assert row["n_units"] == 60 and row["n"] == y.size
    assert row["detectable_gap"] == pytest.approx(2.8016 * row["std_err"], rel=1e-4)
    rowwise = Disaggregation.from_outcomes({"accuracy": hit}, _one_group(y.size), n_boot=200,
                                           intersections=1, min_group_size=1).frame().iloc[0]
    assert rowwise["ci_method"] == "wilson" and rowwise["n_units"] == y.size


def test_aggregate_metrics_are_cluster_bootstrapped_with_row_weights():
    rng = np.random.default_rng(3)
    person = rng.integers(0, 15, 90)
    y_true = rng.integers(0, 3, 90)
    y_pred = np.where(rng.random(90) < 0.7, y_true, rng.integers(0, 3, 90))
    engine = Disaggregation(y_true, y_pred, _one_group(90), "balanced_accuracy", n_boot=25, seed=1,
                            clusters=person, intersections=1, min_group_size=1)
    from sklearn.metrics import balanced_accuracy_score

    person = person.astype(str)
    labels = np.unique(person)
    expected = []
    for _, counts in unit_count_chunks(1, labels.size, 25):
        for draw in counts:
            rows = np.concatenate([np.flatnonzero(person == p) for p in np.repeat(labels, draw.astype(int))])
            expected.append(balanced_accuracy_score(y_true[rows], y_pred[rows]))
    assert np.allclose(engine.draws("balanced_accuracy", "overall", "all"), expected)


def test_aggregate_without_row_weights_is_refused_with_clusters():
    from facebench.metrics.base import Metric

    peak = Metric(name="peak_error", description="largest error", higher_is_better=False,
                  aggregate=lambda t, p, idx: np.abs(p - t)[idx].max(axis=1))
    with pytest.raises(ValueError, match="cannot be cluster-bootstrapped"):
        Disaggregation([1.0, 2.0], [1.0, 3.0], _one_group(2), peak, n_boot=5, clusters=["a", "b"])


# ----------------------------------------------------------------------------- coverage and false positives
def test_cluster_intervals_cover_the_truth_and_row_intervals_do_not():
    """1,000 clustered data sets (60 people, 2–20 rows each, intra-cluster correlation 0.3): the 95 % cluster
    bootstrap interval of the mean covers the true mean in 93–97 % of them; the row bootstrap's in far fewer."""
    covered = {"cluster": 0, "rows": 0}
    reps = 1000
    for rep in range(reps):
        person, y = _clustered(rep)
        for key, clusters in (("rows", None), ("cluster", person)):
            row = Disaggregation.from_outcomes({"mae": y}, _one_group(y.size), n_boot=999, seed=rep, clusters=clusters,
                                               intersections=1, min_group_size=1, n_jobs=1).frame().iloc[0]
            covered[key] += bool(row["ci_low"] <= 10.0 <= row["ci_high"])
    cluster, rows = covered["cluster"] / reps, covered["rows"] / reps
    assert 0.93 <= cluster <= 0.97, cluster
    assert rows < 0.80, rows  # the naive interval: about 62 % here


def test_pair_intervals_cover_the_truth():
    """Pairs of two people drawn from 80 (half of them one person's two images): pair outcomes share both
    people's effects. The pigeonhole interval covers the truth at least nominally (it is mildly conservative,
    as Owen 2007 shows); the row bootstrap's covers it in about half of the data sets."""
    covered = {"cluster": 0, "rows": 0}
    reps = 300
    for rep in range(reps):
        rng = np.random.default_rng([7, rep])
        effect = rng.normal(0, 1.0, 80)
        a, b = rng.integers(0, 80, 600), rng.integers(0, 80, 600)
        same = rng.random(600) < 0.5
        b = np.where(same, a, b)
        y = 10.0 + effect[a] + np.where(same, 0.0, effect[b]) + rng.normal(0, 1.0, 600)
        for key, clusters in (("rows", None), ("cluster", np.stack([a, b], axis=1))):
            row = Disaggregation.from_outcomes({"mae": y}, _one_group(600), n_boot=999, seed=rep, clusters=clusters,
                                               intersections=1, min_group_size=1, n_jobs=1).frame().iloc[0]
            covered[key] += bool(row["ci_low"] <= 10.0 <= row["ci_high"])
    assert 0.93 <= covered["cluster"] / reps <= 0.99
    assert covered["rows"] / reps < 0.7


def test_cluster_group_tests_keep_their_false_positive_rate():
    """No group effect, people nested in two groups: the permutation test of rows rejects far more than 5 %
    of the time; the cluster-bootstrap test about 5 %."""
    rejected = {"cluster": 0, "rows": 0}
    reps = 300
    for rep in range(reps):
        person, y = _clustered(rep, seed=11)
        groups = pd.DataFrame({"race": np.where(person % 2 == 0, "a", "b")})
        for key, clusters in (("rows", None), ("cluster", person)):
            tests = Disaggregation.from_outcomes({"mae": y}, groups, n_boot=999, seed=rep, clusters=clusters,
                                                 intersections=1, min_group_size=1, n_jobs=1
                                                 ).group_tests(n_permutations=999)
            assert set(tests["test"]) == {"cluster_bootstrap" if clusters is not None else "permutation"}
            rejected[key] += bool(tests["p_value"].iloc[0] < 0.05)
    assert rejected["cluster"] / reps <= 0.08
    assert rejected["rows"] / reps >= 0.2


def test_gap_intervals_use_joint_draws_when_people_cross_groups():
    """A person's rows fall in both age bands and carry the person's effect: the gap between the bands is
    within-person, so its joint cluster interval is narrower than independent group resamples would make it."""
    rng = np.random.default_rng(4)
    person = np.repeat(np.arange(40), 10)
    band = np.tile(np.repeat(["young", "old"], 5), 40)
    y = 5 + rng.normal(0, 3, 40)[person] + np.where(band == "old", 1.0, 0.0) + rng.normal(0, 0.3, 400)
    groups = pd.DataFrame({"band": band})
    joint = Disaggregation.from_outcomes({"mae": y}, groups, n_boot=500, clusters=person, intersections=1,
                                         min_group_size=1).disparities().iloc[0]
    assert joint["gap_ci_low"] > 0.8 and joint["gap_ci_high"] < 1.2
    draws = [Disaggregation.from_outcomes({"mae": y}, groups, n_boot=500, clusters=person, intersections=1,
                                          min_group_size=1).draws("mae", "band", g) for g in ("old", "young")]
    independent = np.random.default_rng(0).permutation(draws[1])  # break the pairing of the draws
    assert np.std(draws[0] - independent) > 5 * np.std(draws[0] - draws[1])


def test_verification_view_intervals_resample_the_pairs_people():
    """FMR/FNMR per group with the pairs' people: percentile intervals of a cluster bootstrap, wider than
    Wilson's where people's scores are correlated, and the FDR interval from the same joint draws."""
    from facebench.metrics.differentials import demographic_differentials

    rng = np.random.default_rng(0)
    people, n = 60, 3000
    a, b = rng.integers(0, people, n), rng.integers(0, people, n)
    same = rng.random(n) < 0.3
    b = np.where(same, a, b)
    race = np.array(["x", "y"])[np.arange(people) % 2]
    effect = rng.normal(0, 1, people)
    scores = np.where(same, 1 + effect[a], effect[a] + effect[b]) + rng.normal(0, 1, n)
    plain = demographic_differentials(scores, same, race[a], race[b], target_fmrs=[0.05], n_boot=200,
                                      min_group_size=1).at(0.05)
    clustered = demographic_differentials(scores, same, race[a], race[b], target_fmrs=[0.05], n_boot=200,
                                          min_group_size=1, units=np.stack([a, b], axis=1)).at(0.05)
    assert np.array_equal(plain.fmr.value, clustered.fmr.value)  # the point values do not change
    assert plain.fmr.draws is None and clustered.fmr.draws.shape == (2, 200)
    assert ((clustered.fmr.ci_high - clustered.fmr.ci_low) > 1.5 * (plain.fmr.ci_high - plain.fmr.ci_low)).all()
    assert clustered.fdr_ci[1] - clustered.fdr_ci[0] > plain.fdr_ci[1] - plain.fdr_ci[0]
