"""Absolute ages from predicted pairwise age differences (seed 000, sections 3.3 and 4.4.5).

The pairwise model predicts, for a pair of faces (i, j), a signed age difference d_ij ≈ age_i − age_j and
a rank probability P(i older than j). Two ways turn such a (possibly sparse) matrix into ages:

``"mds"`` — the paper's route. Metric MDS in one dimension by SMACOF (:func:`smacof_1d`) on the
dissimilarities |d_ij| minimises equation 1's stress. MDS sees only distances, so the embedding is
known up to a translation and a reflection (and, with noisy distances, its scale need not be exactly
years): the reflection is chosen to agree with the majority of the signed pairs (rank-head probabilities
where given, else the sign of the antisymmetrised d), then the labelled anchors (two target images in the
paper) fix translation and scale by a least-squares fit ``age = a·x + b``.

``"least_squares"`` — the cross-check. The closed-form minimiser of Σ_ij w_ij (a_i − a_j − d̂_ij)² over
the antisymmetrised d̂ with the anchors' ages held fixed: a graph-Laplacian linear system. With a
complete matrix its free ages are a_i = mean_j d̂_ij + c, one constant c for all of them.

>>> import numpy as np
>>> ages = np.array([20.0, 35.0, 50.0, 71.0])
>>> diff = ages[:, None] - ages[None, :]
>>> np.round(ages_from_differences(diff, None, {0: 20.0, 3: 71.0}), 6).tolist()
[20.0, 35.0, 50.0, 71.0]
>>> np.round(ages_from_differences(diff, None, {0: 20.0, 3: 71.0}, method="least_squares"), 6).tolist()
[20.0, 35.0, 50.0, 71.0]
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from scipy import linalg
from scipy.sparse.csgraph import connected_components, csgraph_from_dense, shortest_path

__all__ = ["ages_from_differences", "classical_mds_1d", "smacof_1d", "stress_1d"]


# ----------------------------------------------------------------------------------------- SMACOF


def _check_square(name: str, matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{name} must be a square (n, n) matrix, got shape {matrix.shape}")
    return matrix


def _prepare_weights(delta: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    n = len(delta)
    if weights is None:
        w = np.ones((n, n))
    else:
        w = _check_square("weights", weights)
        if w.shape != delta.shape:
            raise ValueError(f"weights has shape {w.shape}, dissimilarities {delta.shape}")
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise ValueError("weights must be finite and non-negative")
        if not np.allclose(w, w.T):
            raise ValueError("weights must be symmetric")
    w = w.copy()
    np.fill_diagonal(w, 0.0)
    return w


def stress_1d(x: np.ndarray, dissimilarities: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Equation 1's stress of a 1-D configuration: sqrt(Σ_{i≠j} w_ij (δ_ij − |x_i − x_j|)²).

    The sum runs over ordered pairs (both (i, j) and (j, i)), as in the paper; entries with weight 0
    (unknown dissimilarities, which may be NaN) do not count.
    """
    delta = _check_square("dissimilarities", dissimilarities)
    w = _prepare_weights(np.nan_to_num(delta), weights)
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    residual = np.where(w > 0, np.nan_to_num(delta) - np.abs(x[:, None] - x[None, :]), 0.0)
    return float(np.sqrt(np.sum(w * residual**2)))


def classical_mds_1d(dissimilarities: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Torgerson's classical MDS in one dimension (the first principal coordinate).

    Entries with weight 0 are unknown: they are filled with graph shortest-path distances over the known
    ones first (exact for points in a line when a monotone path exists, an over-estimate otherwise), so the
    result is a starting point for SMACOF, not a solution, on sparse data.
    """
    delta = _check_square("dissimilarities", dissimilarities)
    n = len(delta)
    w = _prepare_weights(np.nan_to_num(delta), weights)
    if n == 1:
        return np.zeros(1)
    full = np.where(w > 0, np.nan_to_num(delta), np.inf)
    if np.any(w == 0):
        np.fill_diagonal(full, 0.0)
        full = shortest_path(csgraph_from_dense(full, null_value=np.inf), directed=False)
        finite = np.isfinite(full)
        full[~finite] = full[finite].max() if finite.any() else 0.0
    np.fill_diagonal(full, 0.0)
    centred = full**2
    centred = centred - centred.mean(axis=0, keepdims=True) - centred.mean(axis=1, keepdims=True) + centred.mean()
    # scipy's subset eigh (dsyevr): numpy's full eigh is pathologically slow on some near-rank-1 matrices.
    values, vectors = linalg.eigh(-0.5 * (centred + centred.T) / 2, subset_by_index=[n - 1, n - 1])
    return vectors[:, 0] * np.sqrt(max(float(values[0]), 0.0))


def _guttman_operator(w: np.ndarray) -> np.ndarray | None:
    """V⁺ for the weighted Guttman transform; None when all weights are equal (then V⁺ = (I − 11ᵀ/n) / (w·n))."""
    off = w[~np.eye(len(w), dtype=bool)]
    if off.size == 0 or np.all(off == off[0]):
        return None
    v = -w.copy()
    np.fill_diagonal(v, w.sum(axis=1))
    n_components, _ = connected_components((w > 0).astype(np.int8), directed=False)
    if n_components == 1:  # V has the null space span(1) only: V⁺ = (V + 11ᵀ/n)⁻¹ − 11ᵀ/n
        j = np.full_like(v, 1.0 / len(v))
        return np.linalg.inv(v + j) - j
    return np.linalg.pinv(v, hermitian=True)


def _smacof_run(x: np.ndarray, delta: np.ndarray, w: np.ndarray, v_pinv: np.ndarray | None, *, max_iter: int,
                eps: float) -> tuple[np.ndarray, float]:
    wd = w * delta
    scale = float(np.sum(wd * delta)) or 1.0
    uniform = w[~np.eye(len(w), dtype=bool)][0] if len(w) > 1 else 1.0

    def raw_stress(y: np.ndarray) -> float:
        return float(np.sum(w * (delta - np.abs(y[:, None] - y[None, :])) ** 2))

    old = raw_stress(x)
    for _ in range(max_iter):
        # Guttman transform. In 1-D, B(X)X reduces to Σ_j w_ij δ_ij sign(x_i − x_j) (B_ij = 0 where x_i = x_j).
        bx = np.sum(wd * np.sign(x[:, None] - x[None, :]), axis=1)
        if v_pinv is None:
            x_new = (bx - bx.mean()) / (uniform * len(x))
        else:
            x_new = v_pinv @ bx
        new = raw_stress(x_new)
        x = x_new
        if old - new <= eps * max(old, 1e-300) or new <= 1e-28 * scale:
            old = new
            break
        old = new
    return x, old


def smacof_1d(dissimilarities: np.ndarray, *, weights: np.ndarray | None = None, n_init: int = 4,
              max_iter: int = 300, eps: float = 1e-9, seed: int = 0,
              init: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Metric MDS of a symmetric dissimilarity matrix into one dimension by SMACOF.

    Minimises the (weighted) stress of equation 1 by Guttman transforms X ← V⁺B(X)X (de Leeuw 1977; with
    all weights equal, V⁺B(X)X = B(X)X / n as in scikit-learn's ``_smacof_single``). ``weights`` of 0
    mark unknown dissimilarities (those entries may be NaN). One-dimensional MDS has many local minima
    (a fixed point is determined by the ordering of the points), so the run starts from ``n_init``
    random configurations plus the classical-MDS solution (plus ``init`` if given) and keeps the lowest
    stress. Deterministic for a given ``seed``.

    Returns ``(x, stress)``: the centred configuration (n,) and its stress, sqrt(Σ_{i≠j} w_ij(δ_ij − |x_i −
    x_j|)²) over ordered pairs (:func:`stress_1d`).
    """
    delta = _check_square("dissimilarities", dissimilarities)
    w = _prepare_weights(np.nan_to_num(delta), weights)
    known = w > 0
    if np.any(~np.isfinite(delta[known])):
        raise ValueError("dissimilarities with a positive weight must be finite")
    delta = np.where(known, delta, 0.0)
    if np.any(delta < 0):
        raise ValueError("dissimilarities must be non-negative")
    if not np.allclose(delta, delta.T):
        raise ValueError("dissimilarities must be symmetric")
    n = len(delta)
    if n_init < 0 or max_iter < 1:
        raise ValueError("n_init must be >= 0 and max_iter >= 1")
    if n <= 1 or not known.any():
        return np.zeros(n), 0.0
    v_pinv = _guttman_operator(w)

    rng = np.random.default_rng(seed)
    starts = [classical_mds_1d(delta, w)]
    if init is not None:
        init = np.asarray(init, dtype=np.float64).reshape(-1)
        if len(init) != n:
            raise ValueError(f"init has {len(init)} values for {n} points")
        starts.append(init)
    spread = float(np.sqrt(np.sum(w * delta**2) / max(np.sum(w), 1e-300))) or 1.0
    starts += [rng.uniform(0.0, spread, size=n) for _ in range(n_init)]

    best_x, best = None, np.inf
    for start in starts:
        x, raw = _smacof_run(start - start.mean(), delta, w, v_pinv, max_iter=max_iter, eps=eps)
        if best_x is None or raw < best - 1e-12 * max(best, 1.0):  # ties keep the earlier start
            best_x, best = x, raw
    best_x = best_x - best_x.mean()
    return best_x, float(np.sqrt(best))


# -------------------------------------------------------------------------------- ages from differences


def _symmetrise(diff: np.ndarray, *, odd: bool) -> tuple[np.ndarray, np.ndarray]:
    """Combine (i, j) and (j, i): (m_ij ∓ m_ji)/2 where both are known, the known one otherwise.

    ``odd`` gives the antisymmetrised matrix (m_ij − m_ji)/2, else the symmetrised (m_ij + m_ji)/2. Returns
    the combined matrix (0 where unknown) and the known-mask (symmetric, False on the diagonal).
    """
    a, b = diff, diff.T
    has_a, has_b = np.isfinite(a), np.isfinite(b)
    b_term = -b if odd else b
    combined = np.where(has_a & has_b, (np.nan_to_num(a) + np.nan_to_num(b_term)) / 2,
                        np.where(has_a, np.nan_to_num(a), np.where(has_b, np.nan_to_num(b_term), 0.0)))
    known = has_a | has_b
    np.fill_diagonal(known, False)
    combined = np.where(known, combined, 0.0)
    return combined, known


def _check_anchors(anchors: dict[int, float], n: int, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    if len(anchors) < minimum:
        raise ValueError(f"need at least {minimum} labelled anchors, got {len(anchors)}")
    index = np.array([int(i) for i in anchors], dtype=np.int64)
    values = np.array([float(v) for v in anchors.values()], dtype=np.float64)
    if np.any((index < 0) | (index >= n)):
        raise ValueError(f"anchor indices must lie in [0, {n}), got {sorted(anchors)}")
    if not np.all(np.isfinite(values)):
        raise ValueError("anchor ages must be finite")
    return index, values


def _orient(x: np.ndarray, evidence: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Reflect x if that makes more signed pairs agree: sign(x_i − x_j) vs sign(evidence_ij), i < j."""
    upper = np.triu(known, k=1)
    gaps = np.sign(x[:, None] - x[None, :])[upper]
    votes = np.sign(evidence[upper])
    agree = int(np.sum(gaps * votes > 0))
    disagree = int(np.sum(gaps * votes < 0))
    if disagree > agree:
        return -x
    if disagree == agree and float(np.sum(evidence[upper] * (x[:, None] - x[None, :])[upper])) < 0:
        return -x
    return x


def _connected(known: np.ndarray) -> np.ndarray:
    _, labels = connected_components(known.astype(np.int8), directed=False)
    return labels


def _least_squares(signed: np.ndarray, known: np.ndarray, fixed: np.ndarray, values: np.ndarray) -> np.ndarray:
    """argmin Σ_ij w_ij (a_i − a_j − d̂_ij)² with a[fixed] = values: the Dirichlet problem L_ff a_f = b_f − L_fk a_k.

    Setting the gradient to zero gives L a = b with L = D − W the graph Laplacian of the known pairs and
    b_i = Σ_j w_ij d̂_ij (d̂ antisymmetric); the fixed rows are dropped and their columns moved to the right.
    """
    n = len(signed)
    w = known.astype(np.float64)
    laplacian = np.diag(w.sum(axis=1)) - w
    rhs = np.sum(w * signed, axis=1)
    free = np.ones(n, dtype=bool)
    free[fixed] = False
    ages = np.zeros(n)
    ages[fixed] = values
    if free.any():
        system = laplacian[np.ix_(free, free)]
        right = rhs[free] - laplacian[np.ix_(free, ~free)] @ ages[~free]
        ages[free] = np.linalg.solve(system, right)
    return ages


def ages_from_differences(diff: np.ndarray, rank: np.ndarray | None, anchors: dict[int, float], *,
                          method: Literal["mds", "least_squares"] = "mds",
                          scale: Literal["anchors", "unit"] = "anchors", n_init: int = 4,
                          seed: int = 0, signed_init: bool = True) -> np.ndarray:
    """Ages of n images from predicted signed differences ``diff[i, j] ≈ age_i − age_j`` and labelled anchors.

    ``diff`` is (n, n) with NaN where a pair was not predicted (the diagonal is ignored); both orders of a
    pair may be given and are averaged (antisymmetrised). ``rank`` is an optional (n, n) matrix of
    P(i older than j) from the rank head (NaN where unknown), used by ``"mds"`` for the reflection.
    ``anchors`` maps image index → known age.

    ``method="mds"`` (seed 000 §3.3, §4.4.5): SMACOF on the symmetrised |d|, orientation by majority vote of
    the signed pairs, then ``age = a·x + b`` fitted to the anchors (``scale="anchors"``: least squares,
    exact with 2 anchors; needs ≥ 2 anchors) or ``a = 1`` (``scale="unit"``: the differences are already
    in years; only the translation comes from the anchors). If the anchors are tied in the embedding, or
    the fit wants a negative scale (anchors ordered against the majority of the signed pairs), the scale
    falls back to 1 with a warning.

    SMACOF starts from ``n_init`` random configurations, the classical-MDS solution and (``signed_init``)
    the least-squares solution of the signed differences; the lowest stress wins, deterministic for ``seed``.

    ``method="least_squares"``: minimise Σ_ij w_ij (a_i − a_j − d̂_ij)² with the anchors fixed (needs ≥ 1
    anchor). The pairs graph must connect every image to an anchor (to each other, for ``"mds"``).
    """
    diff = _check_square("diff", diff)
    n = len(diff)
    if method not in ("mds", "least_squares"):
        raise ValueError(f"method must be 'mds' or 'least_squares', got {method!r}")
    if scale not in ("anchors", "unit"):
        raise ValueError(f"scale must be 'anchors' or 'unit', got {scale!r}")
    anchor_index, anchor_ages = _check_anchors(anchors, n, 2 if method == "mds" else 1)
    signed, known = _symmetrise(diff, odd=True)
    labels = _connected(known)

    if method == "least_squares":
        anchored = np.isin(labels, labels[anchor_index])
        if not anchored.all():
            raise ValueError(f"{int((~anchored).sum())} image(s) share no chain of predicted pairs with any anchor")
        return _least_squares(signed, known, anchor_index, anchor_ages)

    if len(np.unique(labels)) > 1:
        raise ValueError("the predicted pairs do not connect all images: MDS needs one connected pairs graph")
    magnitude, _ = _symmetrise(np.abs(diff), odd=False)
    # One-dimensional SMACOF converges to the best configuration for whichever ordering it settles in, and
    # sparse graphs have many poor orderings: the signed least-squares solution is one more start. It only
    # proposes a start; the stress of equation 1 on |d| still picks the result among all starts.
    init = _least_squares(signed, known, np.array([0]), np.zeros(1)) if signed_init else None
    x, _ = smacof_1d(magnitude, weights=known.astype(np.float64), n_init=n_init, seed=seed, init=init)

    if rank is not None:
        rank = _check_square("rank", rank)
        if rank.shape != diff.shape:
            raise ValueError(f"rank has shape {rank.shape}, diff {diff.shape}")
        evidence, rank_known = _symmetrise(rank - 0.5, odd=True)
    if rank is not None and rank_known.any():
        x = _orient(x, evidence, rank_known)
    else:
        x = _orient(x, signed, known)

    xa = x[anchor_index]
    a = 1.0
    if scale == "anchors":
        spread = float(np.sum((xa - xa.mean()) ** 2))
        if spread > 1e-18 * max(float(np.sum(x**2)), 1.0):
            a = float(np.sum((xa - xa.mean()) * (anchor_ages - anchor_ages.mean())) / spread)
        else:
            a = float("nan")
        if not np.isfinite(a) or a <= 0:
            warnings.warn("MDS anchors give no positive scale (tied in the embedding, or ordered against the "
                          "signed pairs); using scale 1 (the differences are in years)", RuntimeWarning, stacklevel=2)
            a = 1.0
    b = float(np.mean(anchor_ages - a * xa))
    return a * x + b
