"""FID, KID, identity preservation and age accuracy against closed forms and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
from scipy.stats import norm

from facebench.metrics.generation import (
    AGE_ACCURACY,
    IDENTITY_PRESERVATION,
    KIDResult,
    age_accuracy,
    extract_features,
    feature_statistics,
    fid,
    frechet_distance,
    identity_preservation,
    kid,
)


def _random_spd(rng, d, scale=1.0):
    a = rng.standard_normal((d, d))
    return scale * (a @ a.T / d + 0.1 * np.eye(d))


def _trace_sqrt_product(s1, s2):
    """tr((S1 S2)^(1/2)) by an independent route: eigenvalues of the symmetric S1^(1/2) S2 S1^(1/2)."""
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    lam = np.linalg.eigvalsh(root @ s2 @ root)
    return float(np.sqrt(np.clip(lam, 0, None)).sum())


def _with_moments(rng, n, mu, sigma):
    """n samples whose sample mean and (ddof=1) covariance are exactly mu and sigma (up to rounding)."""
    x = rng.standard_normal((n, len(mu)))
    x -= x.mean(axis=0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T
    return x @ np.linalg.cholesky(sigma).T + mu


def _wilson_by_hand(k, n, confidence=0.95):
    z = norm.ppf(1 - (1 - confidence) / 2)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return max(0.0, centre - half), min(1.0, centre + half)


# ------------------------------------------------------------------------------------ FID
def test_frechet_distance_closed_forms():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance([1.0], [[9.0]], [-1.0], [[4.0]]) == pytest.approx(4 + 1)
    # commuting (diagonal) covariances: |dmu|^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    expected = 3**2 + 4**2 + ((1 - 2) ** 2 + 0 + (3 - 1) ** 2)
    assert frechet_distance([3, 4, 0], np.diag(a), [0, 0, 0], np.diag(b)) == pytest.approx(expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frechet_distance_general_gaussians(seed):
    rng = np.random.default_rng(seed)
    d = 6
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = _random_spd(rng, d), _random_spd(rng, d, scale=2.0)
    expected = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * _trace_sqrt_product(s1, s2))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-9)


def test_fid_from_features_matches_the_gaussian_closed_form():
    rng = np.random.default_rng(4)
    d = 5
    mu1, mu2 = np.arange(d, dtype=float), np.ones(d)
    s1, s2 = _random_spd(rng, d), _random_spd(rng, d, scale=3.0)
    real = _with_moments(rng, 400, mu1, s1)
    fake = _with_moments(rng, 300, mu2, s2)
    expected = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * _trace_sqrt_product(s1, s2))
    assert fid(real, fake) == pytest.approx(expected, rel=1e-8)
    assert abs(fid(real, real)) < 1e-8
    mu, sigma = feature_statistics(real)
    np.testing.assert_allclose(mu, mu1, atol=1e-10)
    np.testing.assert_allclose(sigma, s1, atol=1e-10)


def test_fid_with_a_feature_extractor():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 8))
    rng = np.random.default_rng(0)
    real = torch.from_numpy(rng.integers(0, 256, (50, 3, 4, 4), dtype=np.uint8))
    fake = torch.from_numpy(rng.integers(0, 128, (40, 3, 4, 4), dtype=np.uint8))

    def extractor(batch):
        return net(batch.float() / 255.0)

    with torch.no_grad():
        f_real, f_fake = extractor(real).numpy(), extractor(fake).numpy()
    direct = fid(f_real, f_fake)
    assert direct > 0.01
    assert fid(real, fake, feature_extractor=extractor, batch_size=7) == pytest.approx(direct, rel=1e-6)
    assert fid(real, fake, feature_extractor=extractor, batch_size=1000) == pytest.approx(direct, rel=1e-6)
    # features are passed through unchanged when no extractor is given
    assert extract_features(real, extractor, batch_size=16).shape == (50, 8)


def test_fid_singular_product_uses_the_eps_fallback(monkeypatch):
    rng = np.random.default_rng(0)
    d = 4
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
    real_sqrtm = scipy.linalg.sqrtm
    calls = []

    def flaky_sqrtm(a, *args, **kwargs):
        calls.append(a.copy())
        if len(calls) == 1:
            return np.full_like(a, np.inf)  # what sqrtm gives for a defective singular product
        return real_sqrtm(a, *args, **kwargs)

    monkeypatch.setattr(scipy.linalg, "sqrtm", flaky_sqrtm)
    eps = 1e-3
    got = frechet_distance(mu1, s1, mu2, s2, eps=eps)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (s1 + eps * np.eye(d)) @ (s2 + eps * np.eye(d)))
    # the trace terms keep the original covariances; only the square root sees the offset
    expected = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                - 2 * _trace_sqrt_product(s1 + eps * np.eye(d), s2 + eps * np.eye(d)))
    assert got == pytest.approx(expected, rel=1e-9)


def test_fid_with_fewer_samples_than_dimensions_is_finite():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((6, 12)), rng.standard_normal((6, 12)) + 1.0
    value = fid(x, y)
    assert np.isfinite(value) and value > 0
    assert abs(fid(x, x)) < 1e-6


def test_fid_errors():
    with pytest.raises(ValueError, match="imaginary diagonal component"):
        frechet_distance([0.0, 0.0], np.diag([-1.0, 1.0]), [0.0, 0.0], np.eye(2))
    with pytest.raises(ValueError, match="Shape mismatch"):
        frechet_distance([0.0, 0.0], np.eye(2), [0.0], np.eye(1))
    with pytest.raises(ValueError, match="at least 2 samples"):
        fid(np.ones((1, 3)), np.ones((5, 3)))
    with pytest.raises(ValueError, match="feature_extractor"):
        fid(np.zeros((4, 3, 2, 2)), np.zeros((4, 3, 2, 2)))
    with pytest.raises(ValueError, match="3 dimensions but fake have 2"):
        fid(np.random.default_rng(0).standard_normal((5, 3)), np.random.default_rng(1).standard_normal((5, 2)))


# ------------------------------------------------------------------------------------ KID
def _mmd2_by_loops(x, y):
    """Unbiased MMD^2 with k(a, b) = (a.b/d + 1)^3, written with explicit loops."""
    m, d = len(x), x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def test_kid_estimator_matches_loops():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((7, 3)), rng.standard_normal((7, 3)) + 0.5
    # subset_size = n: every subset is a permutation of all rows, and MMD^2 does not depend on order
    result = kid(x, y, n_subsets=3, subset_size=7, seed=5)
    expected = _mmd2_by_loops(x, y)
    np.testing.assert_allclose(result.subset_values, [expected] * 3, rtol=1e-12)
    assert result.mean == pytest.approx(expected, rel=1e-12)
    assert result.std == pytest.approx(0.0, abs=1e-12)
    assert isinstance(result, KIDResult) and result.n_subsets == 3 and result.subset_size == 7


def test_kid_same_distribution_is_near_zero_and_shift_is_positive():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((600, 16)), rng.standard_normal((600, 16))
    shifted = rng.standard_normal((600, 16)) + 0.5
    same = kid(a, b, n_subsets=20, subset_size=200)
    moved = kid(a, shifted, n_subsets=20, subset_size=200)
    assert abs(same.mean) < 3 * same.std / math.sqrt(20) + 1e-3
    assert moved.mean > 10 * max(abs(same.mean), same.std)
    assert moved.mean - 3 * moved.std > 0


def test_kid_is_deterministic_by_seed_and_validates():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((50, 4)), rng.standard_normal((60, 4))
    r1 = kid(x, y, n_subsets=5, subset_size=20, seed=3)
    r2 = kid(x, y, n_subsets=5, subset_size=20, seed=3)
    r3 = kid(x, y, n_subsets=5, subset_size=20, seed=4)
    np.testing.assert_array_equal(r1.subset_values, r2.subset_values)
    assert not np.array_equal(r1.subset_values, r3.subset_values)
    assert r1.std == pytest.approx(np.std(r1.subset_values))
    with pytest.raises(ValueError, match="subset_size=51 exceeds the smaller sample"):
        kid(x, y, subset_size=51)
    with pytest.raises(ValueError, match="subset_size must be an integer >= 2"):
        kid(x, y, subset_size=1)
    with pytest.raises(ValueError):
        r1.subset_values[0] = 1.0


# ------------------------------------------------------------------------------------ per-group rates
def _row(df, attribute, group):
    sel = df[(df["attribute"] == attribute) & (df["group"] == group)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_identity_preservation_by_hand():
    scores = [0.91, 0.30, 0.50, 0.72, 0.49, 0.10, 0.66, 0.80]
    groups = pd.DataFrame({"race": ["a", "a", "a", "a", "b", "b", "b", "b"]})
    # threshold 0.5, same if score >= 0.5 (0.50 counts): a -> yes no yes yes (3/4); b -> no no yes yes (2/4)
    df = identity_preservation(scores, groups, threshold=0.5, n_boot=0, min_group_size=1)
    assert set(df["metric"]) == {"identity_preservation"}
    for attribute, group, k, n in (("overall", "all", 5, 8), ("race", "a", 3, 4), ("race", "b", 2, 4)):
        row = _row(df, attribute, group)
        assert row["value"] == pytest.approx(k / n) and row["n"] == n
        lo, hi = _wilson_by_hand(k, n)
        assert row["ci_low"] == pytest.approx(lo) and row["ci_high"] == pytest.approx(hi)
        assert row["ci_method"] == "wilson"
    # the same decisions given as flags
    flags = np.array(scores) >= 0.5
    df_flags = identity_preservation(flags, groups, n_boot=0, min_group_size=1)
    np.testing.assert_allclose(df_flags["value"], df["value"])
    df_01 = identity_preservation(flags.astype(int), groups, n_boot=0, min_group_size=1)
    np.testing.assert_allclose(df_01["value"], df["value"])


def test_identity_preservation_errors():
    groups = pd.DataFrame({"g": ["a", "b"]})
    with pytest.raises(ValueError, match="pass threshold="):
        identity_preservation([0.3, 0.9], groups)
    with pytest.raises(ValueError, match="Length mismatch"):
        identity_preservation([0.3, 0.9, 0.1], groups, threshold=0.5)
    with pytest.raises(ValueError, match="numeric verifier scores"):
        identity_preservation(["x", "y"], groups, threshold=0.5)


def test_age_accuracy_by_hand():
    predicted = ["20-29", "30-39", "60+", "60+", "0-9", "30-39"]
    target = ["20-29", "20-29", "60+", "30-39", "0-9", "30-39"]
    groups = pd.DataFrame({"gender": ["f", "f", "f", "m", "m", "m"]})
    # correct: yes no yes | no yes yes -> f 2/3, m 2/3, all 4/6
    df = age_accuracy(predicted, target, groups, n_boot=0, min_group_size=1)
    assert set(df["metric"]) == {"age_accuracy"}
    assert df["value"].tolist() == pytest.approx([4 / 6, 2 / 3, 2 / 3])
    lo, hi = _wilson_by_hand(2, 3)
    assert _row(df, "gender", "f")["ci_low"] == pytest.approx(lo)
    assert _row(df, "gender", "f")["ci_high"] == pytest.approx(hi)
    # integer age-group indices work the same way
    df_int = age_accuracy([1, 2, 5, 5], [1, 1, 5, 2], pd.DataFrame({"g": ["x", "x", "y", "y"]}),
                          n_boot=0, min_group_size=1)
    assert df_int["value"].tolist() == pytest.approx([0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="Length mismatch"):
        age_accuracy([1, 2], [1], pd.DataFrame({"g": ["x", "y"]}))


def test_metric_objects():
    assert IDENTITY_PRESERVATION.is_rate and IDENTITY_PRESERVATION.higher_is_better
    assert AGE_ACCURACY(["a", "b", "c", "d"], ["a", "x", "c", "d"]) == pytest.approx(0.75)
