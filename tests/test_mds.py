"""Ages from pairwise differences: SMACOF metric MDS (seed 000 §3.3, §4.4.5) and the least-squares cross-check."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from facebench.baselines.mds import ages_from_differences, classical_mds_1d, smacof_1d, stress_1d

METHODS = ("mds", "least_squares")


def _ages(n: int, seed: int) -> np.ndarray:
    ages = np.random.default_rng(seed).uniform(1.0, 90.0, n)
    ages[0], ages[1] = 15.0, 75.0  # the two anchors, well apart (two close anchors make the MDS scale noisy)
    return ages


def _differences(ages: np.ndarray, *, noise: float = 0.0, k: int | None = None, seed: int = 0) -> np.ndarray:
    """d_ij = age_i − age_j + N(0, noise²) (independently for (i, j) and (j, i)); with ``k``, each image is
    compared with k random others only (NaN elsewhere), in the order (image, other)."""
    rng = np.random.default_rng([seed, 1])
    n = len(ages)
    diff = ages[:, None] - ages[None, :] + rng.normal(0.0, noise, (n, n))
    if k is not None:
        mask = np.zeros((n, n), dtype=bool)
        for i in range(n):
            mask[i, rng.choice(np.delete(np.arange(n), i), size=k, replace=False)] = True
        diff = np.where(mask, diff, np.nan)
    return diff


def _anchors(ages: np.ndarray) -> dict[int, float]:
    return {0: float(ages[0]), 1: float(ages[1])}


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a - b)))


# ----------------------------------------------------------------------------------------------- SMACOF


def test_stress_matches_equation_1_computed_by_hand() -> None:
    rng = np.random.default_rng(3)
    points = rng.normal(size=7)
    delta = np.abs(points[:, None] - points[None, :]) + np.abs(rng.normal(size=(7, 7)))
    delta = (delta + delta.T) / 2
    np.fill_diagonal(delta, 0.0)
    x, stress = smacof_1d(delta, n_init=3, seed=1)
    total = 0.0
    for i in range(7):
        for j in range(7):
            if i != j:
                total += (delta[i, j] - abs(x[i] - x[j])) ** 2
    assert stress == pytest.approx(np.sqrt(total), rel=1e-12)
    assert stress_1d(x, delta) == pytest.approx(np.sqrt(total), rel=1e-12)
    # Weighted: zero-weight (unknown, NaN) entries do not count.
    weights = (rng.random((7, 7)) < 0.6).astype(float)
    weights = np.triu(weights, 1) + np.triu(weights, 1).T
    masked = np.where(weights > 0, delta, np.nan)
    by_hand = np.sqrt(sum(weights[i, j] * (delta[i, j] - abs(x[i] - x[j])) ** 2
                          for i in range(7) for j in range(7) if i != j))
    assert stress_1d(x, masked, weights) == pytest.approx(by_hand, rel=1e-12)


def test_smacof_recovers_a_line_up_to_translation_and_reflection_and_is_deterministic() -> None:
    truth = np.random.default_rng(0).uniform(0, 50, 30)
    delta = np.abs(truth[:, None] - truth[None, :])
    x, stress = smacof_1d(delta, seed=5)
    sign = np.sign(np.corrcoef(x, truth)[0, 1])
    np.testing.assert_allclose(sign * x, truth - truth.mean(), atol=1e-8)
    assert stress < 1e-6
    again, stress_again = smacof_1d(delta, seed=5)
    np.testing.assert_array_equal(x, again)
    assert stress == stress_again
    # Classical MDS alone is exact on complete 1-D distances too.
    c = classical_mds_1d(delta)
    np.testing.assert_allclose(np.sign(c @ truth) * c, truth - truth.mean(), atol=1e-8)


def test_smacof_never_worse_than_the_start_it_is_given() -> None:
    truth = np.random.default_rng(1).uniform(0, 50, 25)
    rng = np.random.default_rng(2)
    delta = np.abs(truth[:, None] - truth[None, :] + rng.normal(0, 3, (25, 25)))
    delta = (delta + delta.T) / 2
    _, best = smacof_1d(delta, n_init=0, init=truth)
    assert best <= stress_1d(truth - truth.mean(), delta) + 1e-9


def test_smacof_input_errors() -> None:
    with pytest.raises(ValueError, match="symmetric"):
        smacof_1d(np.array([[0.0, 1.0], [2.0, 0.0]]))
    with pytest.raises(ValueError, match="non-negative"):
        smacof_1d(np.array([[0.0, -1.0], [-1.0, 0.0]]))
    with pytest.raises(ValueError, match="square"):
        smacof_1d(np.zeros((2, 3)))


# -------------------------------------------------------------------------------- ages from differences


@pytest.mark.parametrize("method", METHODS)
def test_exact_differences_give_exact_ages(method: str) -> None:
    ages = _ages(40, seed=0)
    recovered = ages_from_differences(_differences(ages), None, _anchors(ages), method=method)
    np.testing.assert_allclose(recovered, ages, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_sparse_pairs_still_recover_ages(method: str) -> None:
    ages = _ages(60, seed=4)
    for k in (2, 4, 8):  # each image against k random others (plus whoever picked it)
        diff = _differences(ages, k=k, seed=k)
        assert np.isnan(diff).mean() > 0.8
        recovered = ages_from_differences(diff, None, _anchors(ages), method=method)
        np.testing.assert_allclose(recovered, ages, atol=1e-6)
        noisy = ages_from_differences(_differences(ages, noise=1.0, k=k, seed=k), None, _anchors(ages), method=method)
        assert _mae(noisy, ages) < 2.0


@pytest.mark.parametrize("method", METHODS)
def test_error_grows_smoothly_with_noise(method: str) -> None:
    noises = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
    errors = []
    for noise in noises:
        per_seed = []
        for seed in range(6):
            ages = _ages(40, seed=seed)
            diff = _differences(ages, noise=noise, k=6, seed=seed)
            per_seed.append(_mae(ages_from_differences(diff, None, _anchors(ages), method=method), ages))
        errors.append(np.mean(per_seed))
    assert errors[0] < 1e-6
    assert all(b > a for a, b in zip(errors[:-1], errors[1:], strict=True)), errors
    # Smoothly: roughly proportional to the noise, no jump to a wrong configuration.
    ratios = np.array(errors[1:]) / np.array(noises[1:])
    assert ratios.max() / ratios.min() < 3.0, errors


def test_reflection_from_the_signs_of_d_and_from_the_rank_head() -> None:
    # |d| is the same for ages and for 100 − ages, so SMACOF returns one configuration for both: one of the
    # two must be reflected, and only the signs of d can tell which.
    for seed in range(3):
        ages = _ages(20, seed=seed)
        for truth in (ages, 100.0 - ages):
            recovered = ages_from_differences(_differences(truth), None, _anchors(truth), signed_init=False, seed=seed)
            np.testing.assert_allclose(recovered, truth, atol=1e-6)
    # Unsigned distances: only the rank head's P(i older than j) tells which way round.
    ages = _ages(20, seed=9)
    distances = np.abs(ages[:, None] - ages[None, :])
    rank = np.where(ages[:, None] > ages[None, :], 0.9, 0.1)
    for seed in range(4):
        recovered = ages_from_differences(distances, rank, _anchors(ages), signed_init=False, seed=seed)
        np.testing.assert_allclose(recovered, ages, atol=1e-6)
    # A rank head that disagrees with the anchors: the scale would be negative; it falls back to 1.
    with pytest.warns(RuntimeWarning, match="scale 1"):
        ages_from_differences(distances, 1.0 - rank, _anchors(ages))


def test_the_two_methods_agree_on_noisy_complete_matrices() -> None:
    for seed in range(4):
        ages = _ages(50, seed=seed)
        diff = _differences(ages, noise=2.0, seed=seed)
        mds = ages_from_differences(diff, None, _anchors(ages), method="mds")
        lsq = ages_from_differences(diff, None, _anchors(ages), method="least_squares")
        assert _mae(mds, lsq) < 1.0
        assert np.corrcoef(mds, lsq)[0, 1] > 0.999
        unit = ages_from_differences(diff, None, _anchors(ages), method="mds", scale="unit")
        assert _mae(unit, lsq) < 0.5


def test_least_squares_closed_form_on_a_complete_matrix() -> None:
    rng = np.random.default_rng(0)
    n = 12
    diff = rng.normal(0, 10, (n, n))  # not even consistent: the closed form still holds
    np.fill_diagonal(diff, np.nan)
    anchors = {3: 30.0, 7: 55.0}
    ages = ages_from_differences(diff, None, anchors, method="least_squares")
    signed = np.nan_to_num((diff - diff.T) / 2)
    free = [i for i in range(n) if i not in anchors]
    means = signed.sum(axis=1) / n  # mean over j of d̂_ij (d̂_ii = 0)
    c = ages[free] - means[free]
    np.testing.assert_allclose(c, c[0], atol=1e-9)
    np.testing.assert_allclose(c[0], (sum(anchors.values()) + means[free].sum()) / len(anchors), atol=1e-9)
    assert ages[3] == 30.0 and ages[7] == 55.0


def test_input_errors() -> None:
    ages = _ages(6, seed=0)
    diff = _differences(ages)
    with pytest.raises(ValueError, match="at least 2"):
        ages_from_differences(diff, None, {0: 15.0})
    with pytest.raises(ValueError, match="anchor indices"):
        ages_from_differences(diff, None, {0: 15.0, 9: 3.0})
    with pytest.raises(ValueError, match="method"):
        ages_from_differences(diff, None, _anchors(ages), method="spectral")  # type: ignore[arg-type]
    split = diff.copy()
    split[:3, 3:] = np.nan
    split[3:, :3] = np.nan
    with pytest.raises(ValueError, match="connect"):
        ages_from_differences(split, None, _anchors(ages))
    with pytest.raises(ValueError, match="no chain"):
        ages_from_differences(split, None, _anchors(ages), method="least_squares")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ages_from_differences(diff, None, {0: 15.0}, method="least_squares")  # one anchor is enough here
