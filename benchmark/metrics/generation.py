"""Metrics for generated faces: FID, KID, identity preservation and age-group accuracy.

* **FID** (Heusel et al. 2017): the Fréchet distance between Gaussians fitted to real and generated
  features, ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``. The feature extractor is any callable
  (facebench ships no Inception weights: they cannot be downloaded here), or features are passed directly.
* **KID** (Bińkowski et al. 2018): the unbiased MMD² with the cubic polynomial kernel
  ``k(x, y) = (x·y / d + 1)^3``, averaged over random subsets (mean and standard deviation reported).
* **Identity preservation**: per group, the fraction of generated faces that a face verifier still
  matches to the source identity (``score >= threshold``), with Wilson intervals.
* **Age accuracy**: per group, the fraction of generated faces whose predicted age group is the target
  age group, with Wilson intervals.
* **Per group, through the engine** (task ``face_generation``): ``edit_success`` (the requested attribute read back
  by a classifier), ``identity_similarity`` (the verifier's cosine between source and edit), ``aging_offset``
  (estimated age minus the real target group's mean estimated age), and the set metrics ``fid@<extractor>`` and
  ``kid@<extractor>``: the realism of a group's generated faces against the real faces of the same group, bound to
  a run's features by :class:`SetDistance` (a :class:`~facebench.metrics.base.WeightedAggregate`, so the cluster
  bootstrap resamples source people and every group, gap and test comes from the same draws).

Closed forms make FID hand-checkable: for one-dimensional Gaussians ``N(m1, s1²)`` and ``N(m2, s2²)`` it is
``(m1 - m2)² + (s1 - s2)²``.

>>> frechet_distance([0.0], [[4.0]], [3.0], [[1.0]])       # (0 - 3)² + (2 - 1)²
10.0
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg

from .base import Metric, WeightedAggregate, as_1d, check_same_length
from .groups import Disaggregation

__all__ = [
    "frechet_distance",
    "feature_statistics",
    "extract_features",
    "fid",
    "kid",
    "KIDResult",
    "polynomial_kernel",
    "identity_preservation",
    "age_accuracy",
    "IDENTITY_PRESERVATION",
    "AGE_ACCURACY",
    "AGING_OFFSET",
    "EDIT_SUCCESS",
    "IDENTITY_SIMILARITY",
    "REALISM_EXTRACTORS",
    "SET_METRICS",
    "SetDistance",
    "is_set_metric",
]

#: Largest ``|imag|`` on the diagonal of ``sqrtm(S1 S2)`` that is discarded as round-off (as pytorch-fid).
IMAGINARY_TOLERANCE = 1e-3


# ----------------------------------------------------------------------------------------- FID
def _features(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be a numeric 2-D array (samples x features), got shape {arr.shape} "
                         f"and dtype {arr.dtype}; pass feature_extractor= to compute features from images.")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return arr


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, ``ddof=1``) covariance of ``(n, d)`` features, as FID uses them.

    >>> mu, sigma = feature_statistics([[0.0, 1.0], [2.0, 3.0]])
    >>> mu.tolist(), sigma.tolist()
    ([1.0, 2.0], [[2.0, 2.0], [2.0, 2.0]])
    """
    f = _features(features, "features")
    if f.shape[0] < 2:
        raise ValueError(f"A covariance needs at least 2 samples, got {f.shape[0]}.")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance(mu1, sigma1, mu2, sigma2, *, eps: float = 1e-6) -> float:
    """Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    ``|mu1 - mu2|² + tr(sigma1) + tr(sigma2) - 2 tr(sqrtm(sigma1 @ sigma2))`` with ``scipy.linalg.sqrtm``.
    When the square root is not finite (a singular product), it is recomputed with ``eps`` added to both
    diagonals (the pytorch-fid / clean-fid fallback). Imaginary parts from round-off are dropped; if the
    diagonal's imaginary part exceeds :data:`IMAGINARY_TOLERANCE` a ``ValueError`` is raised. The value is
    not clipped, so identical inputs can give a tiny negative number.

    >>> frechet_distance([1.0, 1.0], np.eye(2), [0.0, 0.0], np.eye(2))      # |mu1 - mu2|² = 2
    2.0
    >>> frechet_distance([0.0, 0.0], np.diag([4.0, 9.0]), [0.0, 0.0], np.eye(2))  # (2-1)² + (3-1)²
    5.0
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    s1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    s2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"Shape mismatch: mu1 {mu1.shape}, sigma1 {s1.shape}, mu2 {mu2.shape}, "
                         f"sigma2 {s2.shape}; expected (d,) and (d, d) with the same d.")
    for name, a in (("mu1", mu1), ("sigma1", s1), ("mu2", mu2), ("sigma2", s2)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinite values.")
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            offset = np.eye(d) * eps
            covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if not np.isfinite(covmean).all():
        raise ValueError("sqrtm(sigma1 @ sigma2) is not finite even after the eps offset; "
                         "check the covariances (or increase eps).")
    if np.iscomplexobj(covmean):
        worst = float(np.abs(np.diagonal(covmean).imag).max())
        if worst > IMAGINARY_TOLERANCE:
            raise ValueError(f"sqrtm(sigma1 @ sigma2) has an imaginary diagonal component of {worst:.3g}; "
                             "the covariances are not positive semi-definite.")
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def extract_features(images, feature_extractor: Callable, *, batch_size: int = 64) -> np.ndarray:
    """Run ``feature_extractor`` over ``images`` in batches and return ``(n, d)`` float64 features.

    ``images`` is anything sliceable with a length (numpy array, torch tensor, e.g. uint8 ``(N, 3, H, W)``);
    the callable gets one slice at a time and must return ``(batch, d)`` features (numpy or torch). Torch
    calls run under ``torch.no_grad()`` when torch is installed.

    >>> extract_features(np.arange(6.0).reshape(3, 2), lambda b: b * 2, batch_size=2).tolist()
    [[0.0, 2.0], [4.0, 6.0], [8.0, 10.0]]
    """
    if not callable(feature_extractor):
        raise TypeError(f"feature_extractor must be callable, got {type(feature_extractor).__name__}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    n = len(images)
    if n == 0:
        raise ValueError("There are no images.")
    try:
        import torch
        no_grad = torch.no_grad
    except ImportError:  # pragma: no cover - torch is a dependency
        from contextlib import nullcontext as no_grad
    parts = []
    with no_grad():
        for s in range(0, n, batch_size):
            out = feature_extractor(images[s:s + batch_size])
            out = _features(out, "feature_extractor output")
            expected = min(batch_size, n - s)
            if out.shape[0] != expected:
                raise ValueError(f"feature_extractor returned {out.shape[0]} rows for a batch of {expected}.")
            parts.append(out)
    dims = {p.shape[1] for p in parts}
    if len(dims) != 1:
        raise ValueError(f"feature_extractor returned different feature sizes across batches: {sorted(dims)}.")
    return np.concatenate(parts, axis=0)


def fid(real, fake, *, feature_extractor: Callable | None = None, batch_size: int = 64,
        eps: float = 1e-6) -> float:
    """Fréchet Inception Distance between real and generated samples (with any feature extractor).

    With ``feature_extractor=None`` both inputs are ``(n, d)`` features and are used as they are;
    otherwise they are images passed through :func:`extract_features`. FID is then
    :func:`frechet_distance` of the two :func:`feature_statistics`. FID is biased for small ``n``
    (it decreases with ``n``), so compare models at the same sample sizes.

    >>> x = np.array([[0.0], [2.0], [4.0]])            # mean 2, variance 4
    >>> fid(x, x + 3.0)                                 # shift by 3: 3²
    9.0
    >>> fid(x, 2.0 * x)                                 # mean 4, variance 16: (2-4)² + (2-4)²
    8.0
    """
    if feature_extractor is not None:
        real = extract_features(real, feature_extractor, batch_size=batch_size)
        fake = extract_features(fake, feature_extractor, batch_size=batch_size)
    mu1, s1 = feature_statistics(_features(real, "real"))
    mu2, s2 = feature_statistics(_features(fake, "fake"))
    if mu1.shape != mu2.shape:
        raise ValueError(f"real features have {mu1.shape[0]} dimensions but fake have {mu2.shape[0]}.")
    return frechet_distance(mu1, s1, mu2, s2, eps=eps)


# ----------------------------------------------------------------------------------------- KID
def polynomial_kernel(x, y) -> np.ndarray:
    """KID's kernel ``k(x, y) = (x·y / d + 1)^3`` between the rows of ``x`` and ``y``.

    >>> polynomial_kernel([[1.0, 1.0]], [[1.0, 0.0], [2.0, 2.0]]).tolist()   # (1/2+1)³, (4/2+1)³
    [[3.375, 27.0]]
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return (x @ y.T / x.shape[1] + 1.0) ** 3


@dataclass(frozen=True, eq=False)
class KIDResult:
    """Result of :func:`kid` (``subset_values`` is read-only).

    Attributes:
        mean: mean of the per-subset unbiased MMD² estimates (the KID).
        std: their standard deviation (``ddof=0``, as torch-fidelity).
        subset_values: the ``n_subsets`` estimates.
        n_subsets, subset_size: as used.
    """

    mean: float
    std: float
    subset_values: np.ndarray
    n_subsets: int
    subset_size: int


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    m = x.shape[0]
    kxx = polynomial_kernel(x, x)
    kyy = polynomial_kernel(y, y)
    kxy = polynomial_kernel(x, y)
    same = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(same - 2.0 * kxy.sum() / (m * m))


def kid(features_real, features_fake, *, n_subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> KIDResult:
    """Kernel Inception Distance: unbiased MMD² with ``k(x, y) = (x·y/d + 1)^3`` over random subsets.

    Each of ``n_subsets`` rounds draws ``subset_size`` real and ``subset_size`` fake rows without
    replacement (``numpy.random.default_rng(seed)``, real first) and computes::

        MMD² = [sum_{i!=j} k(x_i, x_j) + sum_{i!=j} k(y_i, y_j)] / (m (m-1)) - 2 sum_{i,j} k(x_i, y_j) / m²

    The estimator is unbiased, so it is about 0 (and can be negative) for samples of one distribution.
    ``subset_size`` larger than either sample raises ``ValueError`` (pass a smaller one for small sets).

    >>> real = np.array([[1.0], [-1.0]])
    >>> r = kid(real, real + 1.0, n_subsets=1, subset_size=2)
    >>> r.mean   # k(x,x') = (-1+1)³ = 0, k(y,y') = (0+1)³ = 1 (each twice); k(x,y) = 27, 1, -1, 1
    -13.0
    >>> (0 + 2) / (2 * 1) - 2 * (27 + 1 - 1 + 1) / 4
    -13.0
    >>> r = kid(real, real, n_subsets=1, subset_size=2)   # (0 + 0)/2 - 2*(8+0+0+8)/4
    >>> r.mean
    -8.0
    """
    x_all = _features(features_real, "features_real")
    y_all = _features(features_fake, "features_fake")
    if x_all.shape[1] != y_all.shape[1]:
        raise ValueError(f"features_real have {x_all.shape[1]} dimensions but features_fake have "
                         f"{y_all.shape[1]}.")
    for name, value, low in (("n_subsets", n_subsets, 1), ("subset_size", subset_size, 2), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    smallest = min(x_all.shape[0], y_all.shape[0])
    if subset_size > smallest:
        raise ValueError(f"subset_size={subset_size} exceeds the smaller sample ({smallest} rows: "
                         f"{x_all.shape[0]} real, {y_all.shape[0]} fake); pass subset_size <= {smallest}.")
    rng = np.random.default_rng(seed)
    values = np.empty(int(n_subsets), dtype=np.float64)
    for i in range(int(n_subsets)):
        xi = rng.choice(x_all.shape[0], size=subset_size, replace=False)
        yi = rng.choice(y_all.shape[0], size=subset_size, replace=False)
        values[i] = _unbiased_mmd2(x_all[xi], y_all[yi])
    values.setflags(write=False)
    return KIDResult(mean=float(values.mean()), std=float(values.std()), subset_values=values,
                     n_subsets=int(n_subsets), subset_size=int(subset_size))


# ----------------------------------------------------------------------------------------- per-group rates
def _flag(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Outcome of identity preservation: ``y_pred`` is the 0/1 "still the same person" decision."""
    return np.asarray(y_pred, dtype=float)


def _equal(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Outcome of age accuracy: predicted age group equals the target age group."""
    return (np.asarray(y_true, dtype=object) == np.asarray(y_pred, dtype=object)).astype(float)


#: Identity preservation as a rate metric: ``y_pred`` holds the 0/1 same-identity decisions
#: (``y_true`` is not used). :func:`identity_preservation` thresholds scores into those decisions.
IDENTITY_PRESERVATION = Metric(
    name="identity_preservation",
    description="Fraction of generated faces the verifier matches to the source identity (score >= threshold).",
    higher_is_better=True,
    outcome=_flag,
    is_rate=True,
    unit="",
)

#: Age-group accuracy as a rate metric: ``y_true`` the target age group, ``y_pred`` the predicted one.
AGE_ACCURACY = Metric(
    name="age_accuracy",
    description="Fraction of generated faces whose predicted age group is the target age group.",
    higher_is_better=True,
    outcome=_equal,
    is_rate=True,
    unit="",
)


def identity_preservation(verifier_scores_or_same_flags, groups, *, threshold: float | None = None,
                          n_boot: int = 1000, seed: int = 0, confidence: float = 0.95,
                          intersections: int = 2, min_group_size: int = 30,
                          n_jobs: int | None = None) -> pd.DataFrame:
    """Per-group identity-preservation rate with Wilson intervals (the engine's tidy frame).

    ``verifier_scores_or_same_flags`` is, per generated face, either a verifier similarity score between
    the generated face and its source (then ``threshold`` is required and a face counts as preserved when
    ``score >= threshold``) or an already-made boolean / 0-1 decision (then ``threshold`` must be None).
    ``groups`` is aligned by position; the other options are those of
    :class:`~facebench.metrics.groups.Disaggregation`. Rows have ``metric == "identity_preservation"``.

    >>> scores = [0.9, 0.2, 0.7, 0.5, 0.4, 0.8]          # >= 0.5: yes no yes yes no yes
    >>> df = identity_preservation(scores, pd.DataFrame({"race": list("aaabbb")}), threshold=0.5,
    ...                            n_boot=0, min_group_size=1)
    >>> df[["group", "value", "n", "ci_method"]].values.tolist()
    [['all', 0.6666666666666666, 6, 'wilson'], ['a', 0.6666666666666666, 3, 'wilson'], ['b', 0.6666666666666666, 3, 'wilson']]
    """
    values = as_1d(verifier_scores_or_same_flags, name="verifier_scores_or_same_flags")
    if threshold is None:
        if values.dtype.kind == "b":
            outcome = values.astype(float)
        elif values.dtype.kind in "iuf" and np.isin(values, (0, 1)).all():
            outcome = values.astype(float)
        else:
            raise ValueError("verifier_scores_or_same_flags holds scores (values other than 0/1); "
                             "pass threshold= to turn them into same-identity decisions (score >= threshold).")
    else:
        if values.dtype.kind not in "iuf":
            raise ValueError(f"threshold= needs numeric verifier scores, got dtype {values.dtype}.")
        thr = float(threshold)
        if not np.isfinite(thr):
            raise ValueError(f"threshold must be finite, got {threshold!r}.")
        outcome = (values.astype(float) >= thr).astype(float)
    return Disaggregation.from_outcomes(
        {IDENTITY_PRESERVATION: outcome}, groups, n_boot=n_boot, seed=seed, confidence=confidence,
        intersections=intersections, min_group_size=min_group_size, n_jobs=n_jobs,
    ).frame()


def age_accuracy(predicted_age_group, target_age_group, groups, *, n_boot: int = 1000, seed: int = 0,
                 confidence: float = 0.95, intersections: int = 2, min_group_size: int = 30,
                 n_jobs: int | None = None) -> pd.DataFrame:
    """Per-group accuracy of the age group of generated faces, with Wilson intervals (tidy frame).

    A face counts as correct when the predicted age group equals the target age group (labels of any
    type, compared by equality). Options as in :class:`~facebench.metrics.groups.Disaggregation`.

    >>> df = age_accuracy(["20-29", "30-39", "60+", "60+"], ["20-29", "20-29", "60+", "30-39"],
    ...                   pd.DataFrame({"gender": ["f", "f", "m", "m"]}), n_boot=0, min_group_size=1)
    >>> df[["group", "value", "n"]].values.tolist()
    [['all', 0.5, 4], ['f', 0.5, 2], ['m', 0.5, 2]]
    """
    pred = as_1d(predicted_age_group, name="predicted_age_group")
    target = as_1d(target_age_group, name="target_age_group")
    check_same_length(predicted_age_group=pred, target_age_group=target)
    outcome = _equal(target, pred)
    return Disaggregation.from_outcomes(
        {AGE_ACCURACY: outcome}, groups, n_boot=n_boot, seed=seed, confidence=confidence,
        intersections=intersections, min_group_size=min_group_size, n_jobs=n_jobs,
    ).frame()


# ----------------------------------------------------------------------------------------- face_generation
EDIT_SUCCESS = Metric(
    name="edit_success",
    description="Fraction of edits whose requested attribute (or age group) a classifier trained on real faces reads "
                "back from the generated face.",
    higher_is_better=True, outcome=_flag, is_rate=True)

IDENTITY_SIMILARITY = Metric(
    name="identity_similarity",
    description="Mean cosine similarity of the verifier's embeddings of source and generated face (seed 004 Table 2's "
                "verification confidence, on facebench's verifier).",
    higher_is_better=True, outcome=lambda y_true, y_pred: np.asarray(y_pred, dtype=float))

AGING_OFFSET = Metric(
    name="aging_offset",
    description="Mean estimated age of the aged faces minus the mean estimated age of the real faces of their target "
                "group (seed 004 Table 1's bracket, signed; 0 is ideal).",
    higher_is_better=False, worst_by_abs=True, unit="years",
    outcome=lambda y_true, y_pred: np.asarray(y_pred, dtype=float))

#: The realism feature extractors a set metric may name after ``@`` (facebench.baselines.judges implements them).
REALISM_EXTRACTORS: tuple[str, ...] = ("verifier", "classifier", "dlib", "inception")


class SetDistance(WeightedAggregate):
    """FID or KID of a set of generated faces against the real faces of the same group, as an aggregate metric.

    The engine hands over, per group, ``y_true``: each generated row's *reference cell* (an integer code of the
    attributes it shares with real faces, e.g. its gender and domain) and ``y_pred``: the row's index into the bound
    generated features. The real reference of a group is every real face whose cell is among the group's rows' cells,
    fixed for the group; a bootstrap draw re-weights the generated rows only (the source people are the units).

    * FID: ‖μ_w − μ_r‖² + tr Σ_w + tr Σ_r − 2 tr (Σ_r^½ Σ_w Σ_r^½)^½, with the weighted mean and (frequency-weighted,
      unbiased) covariance of the generated features; equal to :func:`fid` for unit weights.
    * KID: the unbiased MMD² with k(x, y) = (x·y/d + 1)³ between all generated and all real faces of the group (no
      subsets): [wᵀK_ff w − Σ w_i k_ii] / (W(W − 1)) + mean_{i≠j} k(r_i, r_j) − 2 Σ_i w_i mean_r k(f_i, r) / W, the
      U-statistic of the re-weighted sample (a row drawn twice is two samples).

    Unbound (as registered) it only names the metric; :meth:`bind` gives the run's copy.

    >>> fake, real = np.array([[0.0], [2.0], [4.0]]), np.array([[3.0], [5.0], [7.0]])
    >>> d = SetDistance("fid", "demo").bind(fake=fake, real=real, real_cells=np.zeros(3, dtype=int))
    >>> float(d(np.zeros(3), np.arange(3.0), np.arange(3)[None])[0]), fid(real, fake)
    (9.0, 9.0)
    """

    def __init__(self, kind: str, extractor: str, *, fake: np.ndarray | None = None, real: np.ndarray | None = None,
                 real_cells: np.ndarray | None = None) -> None:
        if kind not in ("fid", "kid"):
            raise ValueError(f"kind must be 'fid' or 'kid', got {kind!r}")
        self.kind, self.extractor = kind, extractor
        self.fake, self.real, self.real_cells = fake, real, real_cells
        self._references: dict[bytes, tuple] = {}
        self._pools: dict[tuple, dict[str, np.ndarray]] = {}

    def bind(self, *, fake: np.ndarray, real: np.ndarray, real_cells: np.ndarray) -> SetDistance:
        """This metric on one run's generated features ``fake`` (rows indexed by ``y_pred``) and real features
        ``real`` with their reference cells ``real_cells``."""
        fake, real = _features(fake, "fake"), _features(real, "real")
        if fake.shape[1] != real.shape[1] or len(real_cells) != len(real):
            raise ValueError("fake and real features need the same width, and real_cells one code per real row")
        return SetDistance(self.kind, self.extractor, fake=fake, real=real, real_cells=np.asarray(real_cells))

    def _reference(self, cells: np.ndarray) -> tuple | None:
        key = np.unique(cells).astype(np.int64).tobytes()
        if key not in self._references:
            real = self.real[np.isin(self.real_cells, np.frombuffer(key, dtype=np.int64))]
            if len(real) < 2:
                self._references[key] = None
            elif self.kind == "fid":
                mu, sigma = feature_statistics(real)
                # the symmetric square root of a PSD matrix from its eigendecomposition (exact where sqrtm warns about
                # a singular covariance: fewer faces than features); tr √(Σ_r Σ_w) = tr √(Σ_r^½ Σ_w Σ_r^½)
                values, vectors = np.linalg.eigh(sigma)
                root = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
                self._references[key] = (mu, np.trace(sigma), root)
            else:
                k = polynomial_kernel(real, real)
                m = len(real)
                self._references[key] = (real, (k.sum() - np.trace(k)) / (m * (m - 1)))
        return self._references[key]

    def weighted(self, y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The metric of every row of ``weights`` (B, n) at once.

        Rows whose weights are equal in every draw (a person's rows under the cluster bootstrap) enter every sum with
        one weight, so they are pooled first: the weighted sums Σ w_i f_i, Σ w_i f_i f_iᵀ and Σ w_i w_j k_ij become
        sums over pools, exactly (the cost follows the number of people, not of rows)."""
        if self.fake is None:
            raise ValueError(f"{self.kind}@{self.extractor} is a set metric: bind it to a run's features first")
        weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        out = np.full(weights.shape[0], np.nan)
        reference = self._reference(np.asarray(y_true))
        if reference is None:
            return out
        rows = np.asarray(y_pred).astype(np.int64)
        _, first, pool = np.unique(weights.T, axis=0, return_index=True, return_inverse=True)
        pool = pool.reshape(-1)
        w = weights[:, first]  # (B, P): each pool's weight per draw
        pooled = self._pooled(rows, pool, len(first), reference)
        total = w @ pooled["size"]
        ok = total > 1
        if not ok.any():
            return out
        w, total = w[ok], total[ok]
        mean = (w @ pooled["sum"]) / total[:, None]  # (B, d): Σ w_i f_i / W
        if self.kind == "fid":
            mu_r, trace_r, root_r = reference
            d = mean.shape[1]
            values = np.empty(len(total))
            for start in range(0, len(total), 64):  # bounded memory: 64 draws of (d, d) at a time
                stop = start + 64
                m = mean[start:stop]
                moment = (w[start:stop] @ pooled["moment"]).reshape(-1, d, d)  # Σ w_i f_i f_iᵀ
                sigma = (moment - total[start:stop, None, None] * np.einsum("bi,bj->bij", m, m)) \
                    / (total[start:stop, None, None] - 1.0)
                product = root_r @ sigma @ root_r
                eig = np.linalg.eigvalsh((product + np.swapaxes(product, 1, 2)) / 2.0)
                values[start:stop] = (((m - mu_r) ** 2).sum(axis=1) + np.trace(sigma, axis1=1, axis2=2) + trace_r
                                      - 2.0 * np.sqrt(np.clip(eig, 0, None)).sum(axis=1))
            out[ok] = values
            return out
        _, within_real = reference
        same = (np.einsum("bi,ij,bj->b", w, pooled["kernel"], w) - w @ pooled["diagonal"]) / (total * (total - 1.0))
        out[ok] = same + within_real - 2.0 * (w @ pooled["cross"]) / total
        return out

    def _pooled(self, rows: np.ndarray, pool: np.ndarray, n_pools: int, reference: tuple) -> dict[str, np.ndarray]:
        """Per-pool sums of the generated rows' features (and, for FID, second moments; for KID, kernel sums), cached
        per (rows, pools): the engine scores each group's draws in several blocks with the same pools."""
        key = (rows.tobytes(), pool.astype(np.int64).tobytes(), len(reference))
        if key in self._pools:
            return self._pools[key]
        f = self.fake[rows]
        out = {"size": np.bincount(pool, minlength=n_pools).astype(np.float64), "sum": _pool_sum(f, pool, n_pools)}
        if self.kind == "fid":
            order = np.argsort(pool, kind="stable")
            bounds = np.searchsorted(pool[order], np.arange(n_pools + 1))
            out["moment"] = np.stack([f[order[a:b]].T @ f[order[a:b]] for a, b in zip(bounds[:-1], bounds[1:],
                                                                                        strict=True)]).reshape(n_pools, -1)
        else:
            k_ff = polynomial_kernel(f, f)
            out["kernel"] = _pool_sum(_pool_sum(k_ff, pool, n_pools).T, pool, n_pools)
            out["diagonal"] = np.bincount(pool, weights=np.diag(k_ff), minlength=n_pools)
            out["cross"] = np.bincount(pool, weights=polynomial_kernel(f, reference[0]).mean(axis=1), minlength=n_pools)
        if len(self._pools) > 512:  # a bound on memory; entries are (pools x pools) at most
            self._pools.clear()
        self._pools[key] = out
        return out

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray, index: np.ndarray) -> np.ndarray:
        index = np.atleast_2d(index)
        weights = np.zeros((index.shape[0], len(y_pred)))
        for b, row in enumerate(index):
            weights[b] = np.bincount(row, minlength=len(y_pred))
        return self.weighted(y_true, y_pred, weights)


def _pool_sum(values: np.ndarray, pool: np.ndarray, n_pools: int) -> np.ndarray:
    """Sums of the rows of ``values`` per pool code 0..n_pools-1 (every pool non-empty).

    >>> _pool_sum(np.array([[1.0], [2.0], [4.0]]), np.array([1, 0, 1]), 2).tolist()
    [[2.0], [5.0]]
    """
    order = np.argsort(pool, kind="stable")
    starts = np.searchsorted(pool[order], np.arange(n_pools))
    return np.add.reduceat(values[order], starts, axis=0)


def _set_metric(kind: str, extractor: str) -> Metric:
    what = ("Fréchet distance" if kind == "fid" else "kernel (MMD², cubic polynomial) distance")
    return Metric(name=f"{kind}@{extractor}", higher_is_better=False, aggregate=SetDistance(kind, extractor),
                  description=f"{what} between the group's generated faces and the real held-out faces of the same group, "
                              f"on {extractor} features (lower: more realistic)")


#: ``fid@<extractor>`` and ``kid@<extractor>`` for every extractor, registered by the package.
SET_METRICS: tuple[Metric, ...] = tuple(_set_metric(kind, e) for e in REALISM_EXTRACTORS for kind in ("fid", "kid"))


def is_set_metric(metric: Metric) -> bool:
    """Whether ``metric`` is computed on sets of generated faces (FID, KID) rather than per sample."""
    return isinstance(metric.aggregate, SetDistance)
