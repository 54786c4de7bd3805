"""Rank-k / CMC identification and CACD MAP / P@k: hand-worked cases and independent transcriptions."""

from __future__ import annotations

import dataclasses
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from facebench.metrics import Disaggregation
from facebench.metrics.identification import (
    DEFAULT_BLOCK_ELEMENTS,
    RANK1,
    cmc,
    cmc_from_ranks,
    hits_at,
    identification_hits,
    mean_average_precision,
    rank_at,
    rank_k,
)


# ------------------------------------------------------------------------------------ transcriptions
def _ranks_by_sorting(probe, gallery, probe_ids, gallery_ids, exclude=None):
    """Independent reference: full cosine matrix, full sort, position of the first mate.

    Among equal similarities mates are sorted first (ties favour the probe). ``exclude[i]`` is a gallery
    index removed from probe i's list (-1: none).
    """
    p = np.asarray(probe, dtype=np.float64)
    g = np.asarray(gallery, dtype=np.float64)
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    g = g / np.linalg.norm(g, axis=1, keepdims=True)
    sim = p @ g.T
    gallery_ids = np.asarray(gallery_ids)
    out = []
    for i in range(len(p)):
        keep = np.ones(len(g), dtype=bool)
        if exclude is not None and exclude[i] >= 0:
            keep[exclude[i]] = False
        s = sim[i, keep]
        is_mate = gallery_ids[keep] == probe_ids[i]
        order = np.lexsort((~is_mate, -s))  # primary key: -similarity; then mates first
        out.append(int(np.flatnonzero(is_mate[order])[0]) + 1)
    return np.array(out)


def _carc_evaluation(dist, query_id, database_id, total_k=20):
    """Line-by-line transcription of CARC's evaluation.m (MATLAB, 1-based), dist = -cos."""
    q_pts = len(query_id)
    ap = np.zeros(q_pts)
    pat_k = np.zeros((q_pts, total_k))
    for i in range(q_pts):
        idx = np.argsort(dist[i, :], kind="stable")                     # [~, idx] = sort(dist(i,:), 'ascend')
        correct_rank = np.flatnonzero(database_id[idx] == query_id[i]) + 1  # find(...) is 1-based
        n_ans = len(correct_rank)
        for j in range(1, n_ans + 1):
            ap[i] = ap[i] + j / correct_rank[j - 1]
        for k in range(1, total_k + 1):
            pat_k[i, k - 1] = np.sum(database_id[idx[:k]] == query_id[i]) / k
        ap[i] = ap[i] / n_ans
    return ap, pat_k.mean(axis=0)


def _random_problem(seed, n_ids=40, n_gallery=200, n_probe=150, dim=24, noise=1.2, skew=False):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, dim))
    gids = np.concatenate([np.arange(n_ids), rng.integers(0, n_ids, n_gallery - n_ids)])
    if skew:  # one identity owns a large share of the gallery -> the mask path for the best mate
        gids[rng.random(n_gallery) < 0.3] = 0
        gids[:n_ids] = np.arange(n_ids)
    gallery = centres[gids] + noise * rng.standard_normal((n_gallery, dim))
    pids = rng.integers(0, n_ids, n_probe)
    probe = centres[pids] + noise * rng.standard_normal((n_probe, dim))
    return probe, gallery, pids, gids


# ------------------------------------------------------------------------------------ hand-worked
# gallery a=(1,0), b=(0,1), c=(1,1)
# probe (1, .1) id a: cos a .995, b .100, c .774          -> nothing beats a: rank 1
# probe (1, .9) id b: cos a .743, b .669, c .999          -> a and c beat b: rank 3
# probe (0, 1)  id c: cos a 0,    b 1,    c .707          -> b beats c: rank 2
GALLERY = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
PROBES = np.array([[1.0, 0.1], [1.0, 0.9], [0.0, 1.0]])
IDS = np.array(["a", "b", "c"])


def test_hand_worked_ranks_rank_k_and_cmc():
    assert identification_hits(PROBES, GALLERY, IDS, IDS).tolist() == [1, 3, 2]
    assert rank_k(PROBES, GALLERY, IDS, IDS, k=1) == pytest.approx(1 / 3)
    assert rank_k(PROBES, GALLERY, IDS, IDS, k=2) == pytest.approx(2 / 3)
    assert rank_k(PROBES, GALLERY, IDS, IDS, k=3) == 1.0
    assert cmc(PROBES, GALLERY, IDS, IDS, max_rank=5).tolist() == pytest.approx([1 / 3, 2 / 3, 1, 1, 1])
    # labels of another type, and a gallery in another order, give the same ranks
    perm = [2, 0, 1]
    assert identification_hits(PROBES, GALLERY[perm], [7, 8, 9], np.array([7, 8, 9])[perm]).tolist() == [1, 3, 2]


def test_ties_favour_the_probe():
    # every vector below is a multiple of an axis, so every cosine is exactly 0 or 1
    gallery = np.array([[1.0, 0.0], [2.0, 0.0], [5.0, 0.0], [0.0, 1.0]])
    gids = ["x", "y", "z", "w"]
    # probe of y: x, y, z all at cosine 1 -> nothing strictly above the mate -> rank 1
    assert identification_hits([[3.0, 0.0]], gallery, ["y"], gids).tolist() == [1]
    # probe of w along the first axis: the mate is at 0, three entries at 1 -> rank 4
    assert identification_hits([[3.0, 0.0]], gallery, ["w"], gids).tolist() == [4]
    # probe of w along the second axis: mate at 1 -> rank 1
    assert identification_hits([[0.0, 0.5]], gallery, ["w"], gids).tolist() == [1]
    # two mates, one tied with an impostor at the top: best mate counts, rank 1
    assert identification_hits([[1.0, 0.0]], gallery, ["x"], ["q", "x", "r", "x"]).tolist() == [1]


def test_tie_heavy_data_matches_transcription():
    rng = np.random.default_rng(3)
    axes = rng.integers(0, 4, 40)
    gallery = np.eye(4)[axes] * rng.integers(1, 5, 40)[:, None]   # cosines are exactly 0 or 1
    gids = rng.integers(0, 25, 40)
    gids[:25] = np.arange(25)
    probe = np.eye(4)[rng.integers(0, 4, 80)] * 3.0
    pids = rng.integers(0, 25, 80)
    expected = _ranks_by_sorting(probe, gallery, pids, gids)
    assert len(set(expected.tolist())) > 3  # the case really has varied ranks
    for dtype in (np.float32, np.float64):
        for chunk in (None, 1, 7):
            got = identification_hits(probe, gallery, pids, gids, chunk_size=chunk, dtype=dtype)
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("skew", [False, True], ids=["gather", "mask"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_data_matches_transcription_exactly(seed, skew):
    probe, gallery, pids, gids = _random_problem(seed, skew=skew)
    expected = _ranks_by_sorting(probe, gallery, pids, gids)
    assert expected.min() == 1 and expected.max() > 5  # hits and misses both occur
    got = identification_hits(probe, gallery, pids, gids, dtype=np.float64)
    np.testing.assert_array_equal(got, expected)
    assert rank_k(probe, gallery, pids, gids, k=1, dtype=np.float64) == np.mean(expected == 1)
    np.testing.assert_array_equal(cmc(probe, gallery, pids, gids, max_rank=20, dtype=np.float64),
                                  [np.mean(expected <= k) for k in range(1, 21)])


def test_float32_default_agrees_with_float64_on_random_data():
    probe, gallery, pids, gids = _random_problem(5)
    np.testing.assert_array_equal(identification_hits(probe, gallery, pids, gids),
                                  identification_hits(probe, gallery, pids, gids, dtype=np.float64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chunk_size_independence(dtype):
    probe, gallery, pids, gids = _random_problem(7, n_probe=131)
    reference = identification_hits(probe, gallery, pids, gids, dtype=dtype, chunk_size=131)
    for chunk in (1, 2, 10, 64, 130, 1000, None):
        np.testing.assert_array_equal(
            identification_hits(probe, gallery, pids, gids, dtype=dtype, chunk_size=chunk), reference)


# ------------------------------------------------------------------------------------ leave-one-out
def test_leave_one_out_by_hand():
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 1.0]])
    # cosines: (0,1) .994, (0,2) 0, (0,3) .196, (1,2) .110, (1,3) .303, (2,3) .981
    # ids 1,1,2,2: every image's nearest other image has its identity -> rank 1 everywhere
    assert identification_hits(x, x, [1, 1, 2, 2], [1, 1, 2, 2], exclude_self=True).tolist() == [1, 1, 1, 1]
    # ids 1,2,2,1: probe 0's mate is 3 (.196), beaten by 1 (.994)         -> 2
    #              probe 1's mate is 2 (.110), beaten by 0 and 3         -> 3
    #              probe 2's mate is 1 (.110), beaten by 3 (.981)        -> 2
    #              probe 3's mate is 0 (.196), beaten by 1 and 2         -> 3
    assert identification_hits(x, x, [1, 2, 2, 1], [1, 2, 2, 1], exclude_self=True).tolist() == [2, 3, 2, 3]
    # without excluding itself every probe would trivially find itself at cosine 1
    assert identification_hits(x, x, [1, 2, 2, 1], [1, 2, 2, 1]).tolist() == [1, 1, 1, 1]


def test_leave_one_out_matches_transcription_and_index_form():
    rng = np.random.default_rng(11)
    ids = np.repeat(np.arange(20), 5)
    x = rng.standard_normal((20, 16))[ids] + 1.3 * rng.standard_normal((100, 16))
    expected = _ranks_by_sorting(x, x, ids, ids, exclude=np.arange(100))
    got = identification_hits(x, x, ids, ids, exclude_self=True, dtype=np.float64)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(
        identification_hits(x, x, ids, ids, exclude_self=np.arange(100), dtype=np.float64), expected)
    # index form: exclude only for some probes (-1 = none); a probe compared with a permuted gallery
    perm = rng.permutation(100)
    cols = np.argsort(perm)                      # where probe i sits in the permuted gallery
    cols[::3] = -1
    exclude_ref = cols.copy()
    got = identification_hits(x, x[perm], ids, ids[perm], exclude_self=cols, dtype=np.float64, chunk_size=9)
    np.testing.assert_array_equal(got, _ranks_by_sorting(x, x[perm], ids, ids[perm], exclude=exclude_ref))


def test_leave_one_out_errors():
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"Probe 2 \(identity 'c'\) has no mate in the gallery other than itself"):
        identification_hits(x, x, ["a", "a", "c"], ["a", "a", "c"], exclude_self=True)
    with pytest.raises(ValueError, match="3 probes and 2 gallery entries"):
        identification_hits(x, x[:2], ["a", "a", "c"], ["a", "a"], exclude_self=True)
    with pytest.raises(ValueError, match="probe 1 has identity 'b' and gallery entry 1 has 'a'"):
        identification_hits(x, x, ["a", "b", "a"], ["a", "a", "b"], exclude_self=True)
    with pytest.raises(ValueError, match=r"exclude_self\[1\] = 3 is not a gallery index"):
        identification_hits(x, x, ["a", "a", "a"], ["a", "a", "a"], exclude_self=np.array([0, 3, -1]))
    with pytest.raises(ValueError, match="integer array"):
        identification_hits(x, x, ["a", "a", "a"], ["a", "a", "a"], exclude_self=np.array([True, False, True]))


# ------------------------------------------------------------------------------------ validation
def test_closed_set_names_the_first_probe_without_mate():
    with pytest.raises(ValueError, match=r"Probe 1 \(identity 'z'\) has no mate in the gallery;"):
        identification_hits(PROBES, GALLERY, ["a", "z", "y"], IDS)
    with pytest.raises(ValueError, match=r"Probe 0 \(identity 5\) has no mate"):
        rank_k(PROBES[:1], GALLERY, np.array([5]), np.array([1, 2, 3]))


def test_input_validation():
    with pytest.raises(ValueError, match="probe has 3 features but gallery has 2"):
        identification_hits(np.ones((2, 3)), GALLERY, ["a", "b"], IDS)
    with pytest.raises(ValueError, match="gallery row 1 is all zeros"):
        identification_hits(PROBES, [[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]], IDS, IDS)
    with pytest.raises(ValueError, match="probe row 2 contains NaN"):
        identification_hits([[1.0, 0.0], [1.0, 0.0], [np.nan, 1.0]], GALLERY, IDS, IDS)
    with pytest.raises(ValueError, match="Length mismatch"):
        identification_hits(PROBES, GALLERY, ["a", "b"], IDS)
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        identification_hits(PROBES, GALLERY, IDS, IDS, dtype=np.float16)
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1"):
        identification_hits(PROBES, GALLERY, IDS, IDS, chunk_size=0)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        rank_k(PROBES, GALLERY, IDS, IDS, k=0)
    with pytest.raises(ValueError, match="2-D"):
        identification_hits(PROBES[0], GALLERY, ["a"], IDS)


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    got = identification_hits(torch.tensor(PROBES, dtype=torch.float32), torch.tensor(GALLERY), IDS, IDS)
    assert got.tolist() == [1, 3, 2]


def test_return_types_are_fixed():
    ranks = identification_hits(PROBES, GALLERY, IDS, IDS)
    assert ranks.dtype == np.int64 and ranks.shape == (3,)
    assert type(rank_k(PROBES, GALLERY, IDS, IDS)) is float
    curve = cmc(PROBES, GALLERY, IDS, IDS)  # max_rank 20 > gallery size: still 20 values
    assert curve.dtype == np.float64 and curve.shape == (20,) and curve[-1] == 1.0


def test_memory_is_bounded_by_the_chunk():
    rng = np.random.default_rng(0)
    n_p, n_g, d = 3000, 20000, 8
    gallery = rng.standard_normal((n_g, d)).astype(np.float32)
    probe = rng.standard_normal((n_p, d)).astype(np.float32)
    ids = np.arange(n_g)
    full_matrix = n_p * n_g * 4  # 240 MB for the float32 similarity matrix
    tracemalloc.start()
    try:
        identification_hits(probe, gallery, ids[:n_p], ids, chunk_size=100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # chunk of 100 x 20000 similarities (8 MB) + a few same-size temporaries + the gallery copy
    assert peak < full_matrix / 8, peak
    assert DEFAULT_BLOCK_ELEMENTS * 4 <= 64 * 2**20


# ------------------------------------------------------------------------------------ engine hooks
def test_hits_metric_and_disaggregation():
    ranks = np.array([1, 3, 2, 1, 1, 7])
    assert hits_at(ranks, 1).tolist() == [1, 0, 0, 1, 1, 0]
    assert hits_at(ranks, 3).tolist() == [1, 1, 1, 1, 1, 0]
    assert cmc_from_ranks(ranks, max_rank=3).tolist() == pytest.approx([3 / 6, 4 / 6, 5 / 6])
    assert RANK1.name == "rank1" and RANK1.is_rate and RANK1.higher_is_better
    assert rank_at(3)(list("abcdef"), ranks) == pytest.approx(5 / 6)
    groups = pd.DataFrame({"race": ["x", "x", "x", "y", "y", "y"]})
    frame = Disaggregation.from_outcomes({RANK1: hits_at(ranks, 1)}, groups, n_boot=0,
                                         min_group_size=1).frame()
    # group x: ranks 1, 3, 2 -> 1/3; group y: ranks 1, 1, 7 -> 2/3
    assert frame["value"].tolist() == pytest.approx([0.5, 1 / 3, 2 / 3])
    assert set(frame["ci_method"]) == {"wilson"}
    with pytest.raises(ValueError, match="integers >= 1"):
        hits_at([0, 1], 1)


# ------------------------------------------------------------------------------------ MAP / P@k
def _unit(cosines):
    c = np.asarray(cosines, dtype=float)
    return np.stack([c, np.sqrt(1 - c**2)], axis=1)


def test_map_and_precision_by_hand():
    # database items 0..4, identities a b a c b, unit vectors at cosines .9 .8 .3 .5 .1 to the x axis
    db = _unit([0.9, 0.8, 0.3, 0.5, 0.1])
    db_ids = ["a", "b", "a", "c", "b"]
    # query 1 = (1, 0), identity a: cosines .9 .8 .3 .5 .1 -> order 0 1 3 2 4 (ids a b c a b)
    #   relevant ranks r = 1, 4 -> AP = (1/1 + 2/4) / 2 = 0.75
    #   P@1..5 = 1/1, 1/2, 1/3, 2/4, 2/5
    # query 2 = (0, 1), identity c: cosines sqrt(1-c^2) = .436 .600 .954 .866 .995 -> order 4 2 3 1 0
    #   (ids b a c b a); relevant rank r = 3 -> AP = (1/3) / 1 = 1/3
    #   P@1..5 = 0, 0, 1/3, 1/4, 1/5
    result = mean_average_precision([[1.0, 0.0], [0.0, 1.0]], db, ["a", "c"], db_ids, max_k=5)
    assert result.ap.tolist() == pytest.approx([0.75, 1 / 3])
    assert result.map == pytest.approx((0.75 + 1 / 3) / 2)
    assert result.precision_at.tolist() == pytest.approx([0.5, 0.25, 1 / 3, 0.375, 0.3])
    assert result.p_at_1 == 0.5
    assert result.n_relevant.tolist() == [2, 1]


def test_map_ties_keep_database_order():
    # two database items identical to the query: the stable sort keeps database order
    db = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # ids b, a, a: a's items sit at ranks 2 and 3 -> AP = (1/2 + 2/3) / 2
    r = mean_average_precision([[1.0, 0.0]], db, ["a"], ["b", "a", "a"], max_k=3)
    assert r.map == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert r.precision_at.tolist() == pytest.approx([0, 1 / 2, 2 / 3])
    # ids a, b, a: ranks 1 and 3 -> AP = (1 + 2/3) / 2
    r = mean_average_precision([[1.0, 0.0]], db, ["a"], ["a", "b", "a"], max_k=3)
    assert r.map == pytest.approx((1 + 2 / 3) / 2)
    assert r.precision_at.tolist() == pytest.approx([1, 1 / 2, 2 / 3])


@pytest.mark.parametrize("seed", [0, 1])
def test_map_matches_evaluation_m_transcription(seed):
    rng = np.random.default_rng(seed)
    n_ids = 12
    centres = rng.standard_normal((n_ids, 20))
    db_ids = np.concatenate([np.arange(n_ids), rng.integers(0, n_ids, 230)])
    q_ids = rng.integers(0, n_ids, 37)
    db = centres[db_ids] + 1.5 * rng.standard_normal((len(db_ids), 20))
    q = centres[q_ids] + 1.5 * rng.standard_normal((37, 20))
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    dn = db / np.linalg.norm(db, axis=1, keepdims=True)
    ap, pat_k = _carc_evaluation(-1 * qn @ dn.T, q_ids, db_ids)
    assert 0.2 < ap.mean() < 0.95  # a non-trivial case
    for chunk in (None, 1, 5):
        result = mean_average_precision(q, db, q_ids, db_ids, chunk_size=chunk)
        np.testing.assert_allclose(result.ap, ap, rtol=1e-12, atol=0)
        np.testing.assert_allclose(result.precision_at, pat_k, rtol=1e-12, atol=0)
        assert result.map == pytest.approx(ap.mean(), rel=1e-12)
        assert result.p_at_1 == pytest.approx(pat_k[0], rel=1e-12)
        assert result.precision_at.shape == (20,)


def test_map_tie_heavy_matches_evaluation_m_transcription():
    # axis-aligned vectors: every cosine is exactly 0 or 1, so most of the order is decided by ties
    rng = np.random.default_rng(9)
    db = np.eye(3)[rng.integers(0, 3, 60)] * rng.integers(1, 4, 60)[:, None]
    db_ids = rng.integers(0, 8, 60)
    db_ids[:8] = np.arange(8)
    q = np.eye(3)[rng.integers(0, 3, 25)] * 2.0
    q_ids = rng.integers(0, 8, 25)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    dn = db / np.linalg.norm(db, axis=1, keepdims=True)
    ap, pat_k = _carc_evaluation(-1 * qn @ dn.T, q_ids, db_ids)
    result = mean_average_precision(q, db, q_ids, db_ids, chunk_size=4)
    np.testing.assert_allclose(result.ap, ap, rtol=1e-12, atol=0)
    np.testing.assert_allclose(result.precision_at, pat_k, rtol=1e-12, atol=0)


def test_map_errors_and_result_is_frozen():
    db = _unit([0.9, 0.8, 0.3])
    with pytest.raises(ValueError, match=r"Query 1 \(identity 'z'\) has no relevant item"):
        mean_average_precision([[1.0, 0.0], [0.0, 1.0]], db, ["a", "z"], ["a", "b", "a"], max_k=3)
    with pytest.raises(ValueError, match="at least 20 database items, got 3"):
        mean_average_precision([[1.0, 0.0]], db, ["a"], ["a", "b", "a"])
    r = mean_average_precision([[1.0, 0.0]], db, ["a"], ["a", "b", "a"], max_k=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.map = 1.0
    with pytest.raises(ValueError):
        r.ap[0] = 0.0


def test_ranks_from_scores_agrees_with_identification_hits_on_cosine_scores() -> None:
    from facebench.metrics.identification import identification_hits, ranks_from_scores

    rng = np.random.default_rng(11)
    ids = rng.integers(0, 15, size=120)
    ids[:15] = np.arange(15)  # every identity at least twice, so every probe has a mate
    ids[15:30] = np.arange(15)
    x = rng.normal(size=(120, 8)) + 2.0 * rng.normal(size=(15, 8))[ids]
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected = identification_hits(x, x, ids, ids, exclude_self=True, dtype=np.float64)
    assert np.array_equal(ranks_from_scores(unit @ unit.T, ids, ids, exclude_self=True), expected)
    probe, gallery = x[:40], x[40:]
    scores = unit[:40] @ unit[40:].T
    keep = np.isin(ids[:40], ids[40:])
    assert np.array_equal(ranks_from_scores(scores[keep], ids[:40][keep], ids[40:]),
                          identification_hits(probe[keep], gallery, ids[:40][keep], ids[40:], dtype=np.float64))
    with pytest.raises(ValueError, match="no mate in the gallery other than itself"):
        ranks_from_scores(np.eye(3), [1, 2, 2], [1, 2, 2], exclude_self=True)
