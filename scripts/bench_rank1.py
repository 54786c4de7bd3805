"""Time facebench's rank_k(k=1) against a bare chunked matrix product + argmax, in one process.

Data: a gallery of 10,000 identities with one 512-d float32 embedding each (standard normal) and 10,000
probes that are noisy copies (probe i = gallery i + noise * N(0, I)), so every probe has exactly one mate.

(a) baseline: for each chunk of probes, ``np.matmul(chunk, gallery.T, out=buffer)`` then ``argmax`` per row
    (no normalisation, no validation; the nearest neighbour's index only).
(b) ``rank_k(probe, gallery, ids, ids, k=1)``: validation, L2 normalisation, the same kind of chunked
    matmul, the best mate's similarity and an exact rank (strict comparison count for non-hits).

Both use the same chunk size (rank_k's default, ``DEFAULT_BLOCK_ELEMENTS // n_gallery``) and run
alternately ``--repeats`` times; the best and the median of each are printed with their ratio. Peak extra
memory is measured in a separate pass (so tracing does not slow the timed runs) with **tracemalloc**
(every numpy buffer allocated during the call; BLAS-internal work buffers are not traced), and the
process's ``ru_maxrss`` growth over the whole script is printed as a cross-check.

Usage: python scripts/bench_rank1.py [--n 10000] [--dim 512] [--noise 1.0] [--repeats 5]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import tracemalloc

import numpy as np

from facebench.metrics.identification import DEFAULT_BLOCK_ELEMENTS, rank_k


def make_data(n: int, dim: int, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    gallery = rng.standard_normal((n, dim), dtype=np.float32)
    probe = gallery + np.float32(noise) * rng.standard_normal((n, dim), dtype=np.float32)
    ids = np.arange(n)
    return probe, gallery, ids


def bare_baseline(probe: np.ndarray, gallery: np.ndarray, chunk: int) -> np.ndarray:
    """Chunked matmul + argmax: the least work any rank-1 computation has to do."""
    n_p, n_g = probe.shape[0], gallery.shape[0]
    buf = np.empty((chunk, n_g), dtype=np.float32)
    nearest = np.empty(n_p, dtype=np.int64)
    gt = gallery.T
    for s in range(0, n_p, chunk):
        e = min(n_p, s + chunk)
        np.matmul(probe[s:e], gt, out=buf[:e - s])
        nearest[s:e] = buf[:e - s].argmax(axis=1)
    return nearest


def _peak_traced(fn) -> tuple[object, int]:
    tracemalloc.start()
    try:
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="probes = gallery entries = identities")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--noise", type=float, default=1.0, help="probe = gallery + noise * N(0, I)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    probe, gallery, ids = make_data(args.n, args.dim, args.noise)
    chunk = max(1, min(args.n, DEFAULT_BLOCK_ELEMENTS // args.n))
    data_mib = (probe.nbytes + gallery.nbytes) / 2**20

    # warm-up (BLAS thread pool, page faults of the first buffers)
    bare_baseline(probe[:chunk], gallery, chunk)
    rank_k(probe[:chunk], gallery, ids[:chunk], ids, k=1)

    t_base, t_rank = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        nearest = bare_baseline(probe, gallery, chunk)
        t_base.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        r1 = rank_k(probe, gallery, ids, ids, k=1)
        t_rank.append(time.perf_counter() - t0)

    base_r1 = float(np.mean(nearest == ids))
    # untimed check: argmax of *cosine* (gallery normalised) agrees with rank_k except on exact ties
    unit = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    cos_r1 = float(np.mean(bare_baseline(probe, unit, chunk) == ids))
    _, peak_base = _peak_traced(lambda: bare_baseline(probe, gallery, chunk))
    _, peak_rank = _peak_traced(lambda: rank_k(probe, gallery, ids, ids, k=1))
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    print(f"data: {args.n} probes x {args.n} gallery x {args.dim}-d float32 ({data_mib:.0f} MiB), "
          f"{args.n} identities, noise={args.noise}, chunk={chunk} probes, repeats={args.repeats}")
    print(f"rank-1: rank_k = {r1:.4f}; untimed cosine argmax = {cos_r1:.4f} (equal up to exact ties); "
          f"baseline's raw dot-product argmax = {base_r1:.4f} (not cosine: gallery norms differ)")
    print(f"(a) bare chunked matmul + argmax: best {min(t_base):7.3f} s  median {statistics.median(t_base):7.3f} s"
          f"  [{', '.join(f'{t:.3f}' for t in t_base)}]")
    print(f"(b) rank_k(k=1)                 : best {min(t_rank):7.3f} s  median {statistics.median(t_rank):7.3f} s"
          f"  [{', '.join(f'{t:.3f}' for t in t_rank)}]")
    print(f"ratio (b)/(a): best {min(t_rank) / min(t_base):.2f}x  median "
          f"{statistics.median(t_rank) / statistics.median(t_base):.2f}x  (target <= 1.5x)")
    print(f"peak extra memory, tracemalloc (numpy buffers made during the call): "
          f"(a) {peak_base / 2**20:.1f} MiB  (b) {peak_rank / 2**20:.1f} MiB")
    print(f"ru_maxrss growth over the whole script (includes the {data_mib:.0f} MiB of data): "
          f"{(rss1 - rss0) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
