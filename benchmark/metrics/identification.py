"""Closed-set identification (rank-k, CMC) and CACD-style retrieval (MAP, P@k).

Both compare L2-normalised embeddings by **cosine similarity** (higher = more alike).

Identification
--------------
Every probe is compared with every gallery entry; the probe's *rank* is the 1-based position of its best
same-identity gallery entry ("mate")::

    rank_i = 1 + #{gallery entries g : cos(p_i, g) > max_{m in mates(i)} cos(p_i, m)}

**Tie rule: ties favour the probe.** Only gallery entries with a *strictly* greater similarity than the
best mate push it down, so an impostor with exactly the mate's similarity does not count (a sorted list
would place mates first among equal similarities). Rank-k is the fraction of probes with ``rank <= k``;
the CMC curve is rank-k for ``k = 1..max_rank``. Identification is **closed set**: every probe's identity
must have at least one mate in the gallery, otherwise a ``ValueError`` names the first probe without one.

Worked example: three gallery entries ``a = (1, 0)``, ``b = (0, 1)``, ``c = (1, 1)`` and three probes.
Probe ``(1, 0.1)`` of identity ``a`` is closest to ``a`` (rank 1); probe ``(1, 0.9)`` of identity ``b`` has
cosines 0.743 (a), 0.669 (b), 0.999 (c): two entries beat its mate, rank 3; probe ``(0, 1)`` of identity
``c`` has cosines 0 (a), 1 (b), 0.707 (c): rank 2.

>>> gallery = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
>>> probes = np.array([[1.0, 0.1], [1.0, 0.9], [0.0, 1.0]])
>>> identification_hits(probes, gallery, ["a", "b", "c"], ["a", "b", "c"]).tolist()
[1, 3, 2]
>>> rank_k(probes, gallery, ["a", "b", "c"], ["a", "b", "c"], k=1)     # 1 of 3 probes at rank 1
0.3333333333333333
>>> cmc(probes, gallery, ["a", "b", "c"], ["a", "b", "c"], max_rank=3).round(4).tolist()
[0.3333, 0.6667, 1.0]

The computation is chunked over probes: one BLAS matrix product (numpy ``matmul``, float32 by default)
per chunk into a reused buffer; then, on cache-sized blocks of rows, the best mate's similarity by a
gather, a row maximum to find the probes already at rank 1, and a strict comparison count only for the
others. No sort is done, and memory stays bounded (about ``chunk_size x n_gallery`` similarities plus a
normalised copy of the gallery).

Retrieval (CACD, CARC ``evaluation.m``)
---------------------------------------
:func:`mean_average_precision` reproduces the CARC evaluation: the database is sorted per query by
*ascending* ``-cos`` (i.e. descending cosine) with a **stable** sort, so equal similarities keep database
order (MATLAB's ``sort`` is stable). With ``r_1 < ... < r_n`` the 1-based positions of the query's ``n``
relevant (same-identity) database items::

    AP = (1/n) * sum_{j=1..n} j / r_j          MAP = mean over queries of AP
    P@k = mean over queries of (#relevant among the first k) / k,   k = 1..20
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .base import Metric, as_1d, check_same_length

__all__ = [
    "identification_hits",
    "rank_k",
    "cmc",
    "cmc_from_ranks",
    "hits_at",
    "rank_at",
    "RANK1",
    "mean_average_precision",
    "RetrievalResult",
    "DEFAULT_BLOCK_ELEMENTS",
]

#: Default number of similarity values held per chunk (``chunk_size * n_gallery``): 2**24, i.e. 64 MiB in
#: float32. ``chunk_size=None`` picks ``max(1, DEFAULT_BLOCK_ELEMENTS // n_gallery)`` probes per chunk.
DEFAULT_BLOCK_ELEMENTS = 1 << 24

# The best mate is found by gathering each probe's mate columns (padded to the largest identity) when the
# largest identity holds at most this fraction of the gallery; otherwise by an identity mask over the row.
_GATHER_MAX_FRACTION = 1 / 16
# Similarities per post-processing block (max, comparison, count run on ~1 MiB at a time, in cache).
_CACHE_BLOCK_ELEMENTS = 1 << 18


# ----------------------------------------------------------------------------------------- inputs
def _as_matrix(x, name: str) -> np.ndarray:
    """2-D finite numeric array (numpy or anything with ``.detach()``, e.g. a torch tensor)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (samples x features), got shape {arr.shape}.")
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}.")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no feature columns.")
    return arr


def _row_norms(x: np.ndarray, name: str) -> np.ndarray:
    """L2 norms of the rows, accumulated in float64; raise on a non-finite or all-zero row."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    bad = ~np.isfinite(norms)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} row {first} contains NaN or infinite values (or overflows).")
    zero = norms == 0
    if zero.any():
        first = int(np.flatnonzero(zero)[0])
        raise ValueError(f"{name} row {first} is all zeros: its cosine similarity is undefined.")
    return norms


def _normalised(x: np.ndarray, norms: np.ndarray, dtype) -> np.ndarray:
    """``x / ||x||`` as ``dtype``: in ``dtype`` when ``x`` already has it, else in float64 and then cast."""
    if x.dtype == dtype:
        return x / norms.astype(dtype)[:, None]
    return (np.asarray(x, dtype=np.float64) / norms[:, None]).astype(dtype, copy=False)


def _check_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dt}.")
    return dt


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return int(value)


def _chunk_rows(chunk_size, n_rows: int, n_cols: int, budget: int) -> int:
    if chunk_size is None:
        return max(1, min(n_rows, budget // max(1, n_cols)))
    return min(_check_positive_int(chunk_size, "chunk_size"), max(1, n_rows))


def _encode_ids(query_ids, reference_ids, *, query_name: str, reference_name: str):
    """Integer codes: reference codes 0..n_ids-1, query codes into the same table (-1 = not present)."""
    q = as_1d(query_ids, name=query_name)
    r = as_1d(reference_ids, name=reference_name)
    rcode, uniques = pd.factorize(r, use_na_sentinel=True)
    qcode = pd.Index(uniques).get_indexer(q)
    return q, r, np.asarray(qcode, dtype=np.int64), np.asarray(rcode, dtype=np.int64), len(uniques)


def _label(x):
    """A label as a plain Python value for messages (``2``, not ``np.int64(2)``)."""
    return x.item() if isinstance(x, np.generic) else x


def _self_columns(exclude_self, probe_ids: np.ndarray, gallery_ids: np.ndarray) -> np.ndarray | None:
    """Gallery column to mask for each probe (-1: none), or None when nothing is excluded."""
    n_probe, n_gallery = len(probe_ids), len(gallery_ids)
    if exclude_self is None or (isinstance(exclude_self, (bool, np.bool_)) and not exclude_self):
        return None
    if isinstance(exclude_self, (bool, np.bool_)):
        if n_probe != n_gallery:
            raise ValueError(
                f"exclude_self=True means probe i is gallery entry i, but there are {n_probe} probes and "
                f"{n_gallery} gallery entries; pass an index array instead."
            )
        same = np.asarray(probe_ids == gallery_ids, dtype=bool)
        if same.shape != (n_probe,) or not same.all():
            first = int(np.flatnonzero(~same)[0]) if same.shape == (n_probe,) else 0
            raise ValueError(
                f"exclude_self=True needs the probe set to be the gallery set, but probe {first} has "
                f"identity {_label(probe_ids[first])!r} and gallery entry {first} has {_label(gallery_ids[first])!r}."
            )
        return np.arange(n_probe, dtype=np.int64)
    cols = np.asarray(exclude_self)
    if cols.dtype.kind not in "iu" or cols.shape != (n_probe,):
        raise ValueError(
            "exclude_self must be True/False or an integer array with one gallery index per probe "
            f"(-1 for none); got dtype {cols.dtype} and shape {cols.shape} for {n_probe} probes."
        )
    cols = cols.astype(np.int64)
    bad = (cols < -1) | (cols >= n_gallery)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"exclude_self[{first}] = {int(cols[first])} is not a gallery index (0..{n_gallery - 1}) or -1."
        )
    return cols


# ----------------------------------------------------------------------------------------- ranks
def _checked_inputs(queries, references, query_ids, reference_ids, *, names: tuple[str, str]):
    """Validate a (query, reference) pair of embedding matrices with their ids; encode the ids to integers.

    Returns ``(Q, R, query_ids, reference_ids, query_codes, reference_codes, n_identities)``.
    """
    q_name, r_name = names
    Q = _as_matrix(queries, q_name)
    R = _as_matrix(references, r_name)
    if Q.shape[1] != R.shape[1]:
        raise ValueError(f"{q_name} has {Q.shape[1]} features but {r_name} has {R.shape[1]}.")
    qids, rids, qcode, rcode, n_ids = _encode_ids(query_ids, reference_ids, query_name=f"{q_name}_ids",
                                                  reference_name=f"{r_name}_ids")
    check_same_length(**{q_name: Q, f"{q_name}_ids": qids})
    check_same_length(**{r_name: R, f"{r_name}_ids": rids})
    return Q, R, qids, rids, qcode, rcode, n_ids


def identification_hits(probe, gallery, probe_ids, gallery_ids, *, exclude_self=False,
                        chunk_size: int | None = None, dtype=np.float32) -> np.ndarray:
    """Per-probe rank (1-based, ``int64``) of the best same-identity gallery entry, by cosine similarity.

    ``rank = 1 + #{gallery entries with similarity strictly greater than the best mate's}``: ties favour
    the probe. ``rank <= k`` is the per-probe rank-k hit that the disaggregation engine averages per group
    (see :func:`hits_at` and :func:`rank_at`).

    Args:
        probe, gallery: ``(n, d)`` embeddings (numpy arrays or CPU/GPU tensors); rows are divided by their
            L2 norm (accumulated in float64) in the ``dtype`` of the computation. Zero or non-finite rows
            raise ``ValueError``.
        probe_ids, gallery_ids: identity labels (any hashable, compared by equality).
        exclude_self: leave-one-out. ``True``: the probe set *is* the gallery set (probe i = gallery entry
            i, same identities), and each probe is compared with all other entries (FG-NET protocol).
            An integer array of length ``n_probe``: the gallery index to hide from each probe (-1: none).
        chunk_size: probes per chunk; ``None``: ``DEFAULT_BLOCK_ELEMENTS // n_gallery``. Results do not
            depend on it (up to BLAS rounding of the similarities).
        dtype: ``float32`` (default, fast) or ``float64`` for the similarity computation.

    Raises ``ValueError`` naming the first probe without a mate (closed set), e.g. a FG-NET subject with
    a single image under ``exclude_self=True``.

    >>> g = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])   # entries 0 and 1 are the same direction
    >>> identification_hits([[3.0, 0.0]], g, ["y"], ["x", "y", "z"]).tolist()   # tie with 'x': rank 1
    [1]
    >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 1.0]])
    >>> identification_hits(x, x, [1, 1, 2, 2], [1, 1, 2, 2], exclude_self=True).tolist()
    [1, 1, 1, 1]
    >>> identification_hits(x, x, [1, 2, 2, 1], [1, 2, 2, 1], exclude_self=True).tolist()
    [2, 3, 2, 3]
    >>> identification_hits(x, x, [1, 1, 2, 3], [1, 1, 2, 3], exclude_self=True)
    Traceback (most recent call last):
    ...
    ValueError: Probe 2 (identity 2) has no mate in the gallery other than itself; closed-set identification needs every probe identity in the gallery.
    """
    dt = _check_dtype(dtype)
    P, G, pids, gids, pcode, gcode, n_ids = _checked_inputs(probe, gallery, probe_ids, gallery_ids,
                                                            names=("probe", "gallery"))
    n_p, n_g = P.shape[0], G.shape[0]
    if n_p == 0:
        raise ValueError("There are no probes.")
    self_cols = _self_columns(exclude_self, pids, gids)

    # closed set: every probe needs a mate (other than itself when it is excluded)
    counts = np.bincount(gcode, minlength=n_ids)
    mates = np.where(pcode >= 0, counts[np.maximum(pcode, 0)], 0)
    if self_cols is not None:
        masked = self_cols >= 0
        self_is_mate = np.zeros(n_p, dtype=bool)
        self_is_mate[masked] = gcode[self_cols[masked]] == pcode[masked]
        mates = mates - self_is_mate
    missing = np.flatnonzero(mates <= 0)
    if missing.size:
        i = int(missing[0])
        tail = " other than itself" if pcode[i] >= 0 else ""
        raise ValueError(
            f"Probe {i} (identity {_label(pids[i])!r}) has no mate in the gallery{tail}; closed-set identification "
            "needs every probe identity in the gallery."
        )

    p_norms = _row_norms(P, "probe")
    Gn = _normalised(G, _row_norms(G, "gallery"), dt)  # (n_g, d), C-contiguous
    GnT = Gn.T
    rows = _chunk_rows(chunk_size, n_p, n_g, DEFAULT_BLOCK_ELEMENTS)

    # mates of identity t are gallery columns order[start[t] : start[t] + counts[t]]
    order = np.argsort(gcode, kind="stable")
    start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    widest = int(counts.max())
    gather = widest <= max(1.0, _GATHER_MAX_FRACTION * n_g)
    offsets = np.arange(widest, dtype=np.int64)[None, :]

    ranks = np.empty(n_p, dtype=np.int64)
    buf = np.empty((rows, n_g), dtype=dt)
    sub = max(1, _CACHE_BLOCK_ELEMENTS // n_g)  # rows post-processed together while they sit in cache
    flags = np.empty((sub, n_g), dtype=bool)
    neg_inf = dt.type(-np.inf)
    for s in range(0, n_p, rows):
        e = min(n_p, s + rows)
        S = buf[:e - s]
        np.matmul(_normalised(P[s:e], p_norms[s:e], dt), GnT, out=S)
        if self_cols is not None:
            sc = self_cols[s:e]
            hide = np.flatnonzero(sc >= 0)
            S[hide, sc[hide]] = neg_inf
        for b0 in range(0, e - s, sub):
            b1 = min(e - s, b0 + sub)
            nb = b1 - b0
            Sb = S[b0:b1]
            pb = pcode[s + b0:s + b1]
            if gather:
                cols = order[start[pb][:, None] + np.minimum(offsets, counts[pb][:, None] - 1)]
                best = Sb[np.arange(nb)[:, None], cols].max(axis=1)
            else:
                best = np.where(gcode[None, :] == pb[:, None], Sb, neg_inf).max(axis=1)
            # rank 1 unless some entry beats the best mate; count strictly greater entries for the others
            beaten = np.flatnonzero(Sb.max(axis=1) > best)
            r = ranks[s + b0:s + b1]
            r[:] = 1
            if 2 * beaten.size > nb:  # mostly misses: compare the whole block
                above = np.greater(Sb, best[:, None], out=flags[:nb])
                r += above.view(np.uint8).sum(axis=1, dtype=np.int64)
            elif beaten.size:
                r[beaten] += np.count_nonzero(Sb[beaten] > best[beaten, None], axis=1)
    return ranks


def ranks_from_scores(scores, probe_ids, gallery_ids, *, exclude_self: bool = False) -> np.ndarray:
    """Per-probe rank of the best mate from a precomputed (n_probe, n_gallery) score matrix (higher = more
    alike), by the same rule and tie rule as :func:`identification_hits`. For scores no embedding pair can
    produce, e.g. FG-NET's per-probe fine-tuning, where row i comes from a model that never saw probe i.

    ``exclude_self=True``: square scores over one set, the diagonal ignored (leave-one-out).

    >>> s = np.array([[9.0, 0.8, 0.9, 0.1],
    ...               [0.8, 9.0, 0.2, 0.7],
    ...               [0.3, 0.2, 9.0, 0.4],
    ...               [0.1, 0.7, 0.5, 9.0]])
    >>> ranks_from_scores(s, [1, 1, 2, 2], [1, 1, 2, 2], exclude_self=True).tolist()
    [2, 1, 1, 2]

    Row 0's mate scores 0.8 and one impostor 0.9 (rank 2); row 2's mate 0.4 beats 0.3 and 0.2 (rank 1); row 3's
    mate 0.5 loses to 0.7 (rank 2).
    """
    scores = np.array(scores, dtype=np.float64)
    probe_ids, gallery_ids = np.asarray(probe_ids), np.asarray(gallery_ids)
    if scores.shape != (len(probe_ids), len(gallery_ids)):
        raise ValueError(f"scores must be (n_probe, n_gallery) = ({len(probe_ids)}, {len(gallery_ids)}), got {scores.shape}.")
    mate = probe_ids[:, None] == gallery_ids[None, :]
    if exclude_self:
        if scores.shape[0] != scores.shape[1]:
            raise ValueError("exclude_self needs square scores over one set of images.")
        np.fill_diagonal(scores, -np.inf)
        np.fill_diagonal(mate, False)
    if not np.isfinite(scores[~np.eye(*scores.shape, dtype=bool)] if exclude_self else scores).all():
        raise ValueError("scores must be finite (apart from the ignored diagonal).")
    missing = np.flatnonzero(~mate.any(axis=1))
    if missing.size:
        i = int(missing[0])
        raise ValueError(f"Probe {i} (identity {_label(probe_ids[i])!r}) has no mate in the gallery"
                         f"{' other than itself' if exclude_self else ''}; closed-set identification needs every "
                         "probe identity in the gallery.")
    best = np.where(mate, scores, -np.inf).max(axis=1)
    return 1 + (scores > best[:, None]).sum(axis=1).astype(np.int64)


def _check_ranks(ranks) -> np.ndarray:
    r = as_1d(ranks, name="ranks")
    if r.size == 0:
        raise ValueError("ranks is empty.")
    if r.dtype.kind not in "iuf" or (r < 1).any() or (r != np.floor(r)).any():
        raise ValueError("ranks must be integers >= 1 (as returned by identification_hits).")
    return r


def hits_at(ranks, k: int) -> np.ndarray:
    """Per-probe rank-k outcome ``1.0 if rank <= k else 0.0`` (float array, for the disaggregation engine).

    >>> hits_at([1, 3, 2], 2).tolist()
    [1.0, 0.0, 1.0]
    """
    k = _check_positive_int(k, "k")
    return (_check_ranks(ranks) <= k).astype(np.float64)


def cmc_from_ranks(ranks, max_rank: int = 20) -> np.ndarray:
    """CMC curve from per-probe ranks: element ``k-1`` is the fraction of probes with ``rank <= k``.

    Always ``max_rank`` values (float64), saturating at 1.0 past the largest rank.

    >>> cmc_from_ranks([1, 3, 2, 1], max_rank=4).tolist()
    [0.5, 0.75, 1.0, 1.0]
    """
    max_rank = _check_positive_int(max_rank, "max_rank")
    r = _check_ranks(ranks)
    counts = np.bincount(np.minimum(r.astype(np.int64), max_rank + 1), minlength=max_rank + 2)
    return np.cumsum(counts[1:max_rank + 1]) / r.size


def rank_k(probe, gallery, probe_ids, gallery_ids, k: int = 1, *, exclude_self=False,
           chunk_size: int | None = None, dtype=np.float32) -> float:
    """Rank-k identification rate: the fraction of probes whose best mate has rank ``<= k``.

    Arguments as in :func:`identification_hits`; ties favour the probe.

    >>> g = np.eye(3)
    >>> p = np.array([[1.0, 0.2, 0.0], [0.0, 0.5, 1.0], [0.0, 0.0, 1.0]])
    >>> rank_k(p, g, [0, 1, 2], [0, 1, 2], k=1)   # probe 1 prefers entry 2 (cos 0.89 vs 0.45)
    0.6666666666666666
    >>> rank_k(p, g, [0, 1, 2], [0, 1, 2], k=2)
    1.0
    """
    k = _check_positive_int(k, "k")
    ranks = identification_hits(probe, gallery, probe_ids, gallery_ids, exclude_self=exclude_self,
                                chunk_size=chunk_size, dtype=dtype)
    return float(np.mean(ranks <= k))


def cmc(probe, gallery, probe_ids, gallery_ids, max_rank: int = 20, *, exclude_self=False,
        chunk_size: int | None = None, dtype=np.float32) -> np.ndarray:
    """Cumulative match characteristic: rank-k for ``k = 1..max_rank`` (float64 array of ``max_rank``).

    Arguments as in :func:`identification_hits`; ``cmc(...)[k - 1] == rank_k(..., k)``.

    >>> g = np.eye(3)
    >>> p = np.array([[1.0, 0.2, 0.0], [0.0, 0.5, 1.0], [0.0, 0.0, 1.0]])
    >>> cmc(p, g, [0, 1, 2], [0, 1, 2], max_rank=3).round(4).tolist()
    [0.6667, 1.0, 1.0]
    """
    max_rank = _check_positive_int(max_rank, "max_rank")
    ranks = identification_hits(probe, gallery, probe_ids, gallery_ids, exclude_self=exclude_self,
                                chunk_size=chunk_size, dtype=dtype)
    return cmc_from_ranks(ranks, max_rank)


class _RankWithin:
    """Picklable outcome ``rank <= k`` (``y_pred`` holds the ranks; ``y_true`` is not used)."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        return (np.asarray(y_pred, dtype=float) <= self.k).astype(float)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _RankWithin) and other.k == self.k

    def __hash__(self) -> int:
        return hash(("rank_within", self.k))


def rank_at(k: int) -> Metric:
    """The rank-k identification rate as a :class:`~facebench.metrics.base.Metric` named ``"rank<k>"``.

    A rate (Wilson intervals per group). Its outcome reads ``y_true`` = probe identities (not used) and
    ``y_pred`` = per-probe ranks from :func:`identification_hits`; with the engine, pass the outcome
    directly: ``Disaggregation.from_outcomes({rank_at(1): hits_at(ranks, 1)}, groups)``.

    >>> m = rank_at(5)
    >>> m.name, m.is_rate, m.higher_is_better
    ('rank5', True, True)
    >>> m(["a", "b", "c", "d"], [1, 7, 5, 2])       # ranks 1, 5, 2 are within 5
    0.75
    """
    k = _check_positive_int(k, "k")
    return Metric(
        name=f"rank{k}",
        description=f"Rank-{k} identification rate: fraction of probes whose best mate is among the "
                    f"{k} most similar gallery entries (cosine; ties favour the probe).",
        higher_is_better=True,
        outcome=_RankWithin(k),
        is_rate=True,
        unit="",
    )


#: Rank-1 identification rate (``rank_at(1)``).
RANK1 = rank_at(1)


# ----------------------------------------------------------------------------------------- retrieval
def _stable_positions(values: np.ndarray, ordered: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Sorted 1-based positions of ``items`` in a stable ascending sort of ``values`` (no argsort).

    Position of item ``j`` = 1 + #{values < v_j} + #{values == v_j at a smaller index}; ``ordered`` is
    ``np.sort(values)``.
    """
    v = values[items]
    below = np.searchsorted(ordered, v, side="left")
    tied = np.searchsorted(ordered, v, side="right") - below > 1
    for j in np.flatnonzero(tied):  # exact ties are rare: resolve them by database order
        below[j] += np.count_nonzero(values[:items[j]] == v[j])
    return np.sort(below + 1)


@dataclass(frozen=True, eq=False)
class RetrievalResult:
    """Result of :func:`mean_average_precision` (arrays are read-only).

    Attributes:
        map: mean of :attr:`ap` over queries.
        ap: per-query average precision, shape ``(n_query,)``.
        precision_at: ``P@k`` for ``k = 1..max_k`` (element ``k-1``), shape ``(max_k,)``.
        p_at_1: ``precision_at[0]``.
        n_relevant: per-query number of relevant (same-identity) database items.
    """

    map: float
    ap: np.ndarray
    precision_at: np.ndarray
    p_at_1: float
    n_relevant: np.ndarray


def mean_average_precision(query, database, query_ids, database_ids, *, max_k: int = 20,
                           chunk_size: int | None = None) -> RetrievalResult:
    """MAP and P@1..P@``max_k`` exactly as CARC's ``evaluation.m`` (CACD retrieval protocol).

    Per query, the database is ordered by descending cosine similarity (``sort(-cos, 'ascend')``) with a
    **stable** sort: equal similarities keep database order, as MATLAB's ``sort`` does. With
    ``r_1 < ... < r_n`` the 1-based positions of the ``n`` database items of the query's identity,
    ``AP = (1/n) sum_j j / r_j``; ``P@k = mean over queries of (#relevant among the first k) / k``.
    Computed in float64, chunked over queries; the positions of the relevant items are found by binary
    search in the sorted similarities (ties resolved by database order), which equals the stable sort.

    Raises ``ValueError`` for a query with no relevant item (its AP would be 0/0, NaN in MATLAB) and when
    the database has fewer than ``max_k`` items (``evaluation.m`` would index past the end).

    Hand-worked (see the tests): database identities ``[a, b, a, c, b]`` at cosines ``0.9, 0.8, 0.3, 0.5,
    0.1`` for a query of identity ``a``; order ``0, 1, 3, 2, 4`` puts the two ``a`` items at ranks 1 and 4:
    ``AP = (1/1 + 2/4) / 2 = 0.75``; ``P@1 = 1``, ``P@2 = 1/2``, ``P@3 = 1/3``, ``P@4 = 2/4``, ``P@5 = 2/5``.

    >>> cos = np.array([0.9, 0.8, 0.3, 0.5, 0.1])
    >>> db = np.stack([cos, np.sqrt(1 - cos ** 2)], axis=1)       # unit vectors at those cosines to (1, 0)
    >>> r = mean_average_precision([[1.0, 0.0]], db, ["a"], ["a", "b", "a", "c", "b"], max_k=5)
    >>> round(r.map, 12), r.precision_at.round(4).tolist()
    (0.75, [1.0, 0.5, 0.3333, 0.5, 0.4])
    """
    max_k = _check_positive_int(max_k, "max_k")
    Q, D, qids, dids, qcode, dcode, n_ids = _checked_inputs(query, database, query_ids, database_ids,
                                                            names=("query", "database"))
    n_q, n_d = Q.shape[0], D.shape[0]
    if n_q == 0:
        raise ValueError("There are no queries.")
    if n_d < max_k:
        raise ValueError(f"P@k up to k={max_k} needs at least {max_k} database items, got {n_d}; "
                         "pass a smaller max_k.")
    counts = np.bincount(dcode, minlength=n_ids)
    n_rel = np.where(qcode >= 0, counts[np.maximum(qcode, 0)], 0)
    missing = np.flatnonzero(n_rel == 0)
    if missing.size:
        i = int(missing[0])
        raise ValueError(f"Query {i} (identity {_label(qids[i])!r}) has no relevant item in the database; "
                         "its average precision is undefined.")

    q_norms = _row_norms(Q, "query")
    Dn = _normalised(D, _row_norms(D, "database"), np.float64)
    # database items of identity t: members[first[t] : first[t] + counts[t]]
    members = np.argsort(dcode, kind="stable")
    first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    ks = np.arange(1, max_k + 1)
    ap = np.empty(n_q, dtype=np.float64)
    pk = np.empty((n_q, max_k), dtype=np.float64)
    rows = _chunk_rows(chunk_size, n_q, n_d, DEFAULT_BLOCK_ELEMENTS // 8)
    for s in range(0, n_q, rows):
        e = min(n_q, s + rows)
        neg = -(_normalised(Q[s:e], q_norms[s:e], np.float64) @ Dn.T)  # CARC's dist = -cos
        ordered = np.sort(neg, axis=1)
        for i in range(e - s):
            t = qcode[s + i]
            relevant = members[first[t]:first[t] + counts[t]]
            r = _stable_positions(neg[i], ordered[i], relevant)
            ap[s + i] = np.mean(np.arange(1, r.size + 1) / r)
            pk[s + i] = np.searchsorted(r, ks, side="right") / ks
    precision_at = pk.mean(axis=0)
    ap.setflags(write=False)
    precision_at.setflags(write=False)
    n_rel = n_rel.astype(np.int64)
    n_rel.setflags(write=False)
    return RetrievalResult(map=float(ap.mean()), ap=ap, precision_at=precision_at,
                           p_at_1=float(precision_at[0]), n_relevant=n_rel)
