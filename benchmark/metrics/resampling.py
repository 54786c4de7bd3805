"""Random streams and index matrices of the bootstrap and permutation procedures.

Every stream is keyed by ``(seed, attribute, group or block, chunk)`` only, so a group's numbers do not
depend on which other groups are present, on their order, or on the number of threads. Index matrices are
drawn in bounded-memory chunks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np

from facebench.seeding import rng_stream

__all__ = ["CHUNK_ELEMENTS", "PARALLEL_MIN_ELEMENTS", "RowReader", "bootstrap_stream", "default_jobs",
           "index_chunks", "missing_stream", "permutation_stream"]

# Index-matrix elements per bootstrap chunk (int32 indices + float64 gather: ~3 MiB per chunk and thread).
CHUNK_ELEMENTS = 1 << 18
# Below this many index elements in total, threads cost more than they save.
PARALLEL_MIN_ELEMENTS = 1 << 20


def bootstrap_stream(seed: int, attribute: str, label: str, chunk: int) -> np.random.Generator:
    return rng_stream(seed, attribute, label, chunk)


def missing_stream(seed: int, attribute: str, chunk: int) -> np.random.Generator:
    """Bootstrap stream of the samples with no group for ``attribute`` (a 5-word key: never a group's)."""
    return rng_stream(seed, attribute, 0, chunk, 1)


def permutation_stream(seed: int, attribute: str, block: str, chunk: int) -> np.random.Generator:
    return rng_stream(seed, attribute, block, chunk, 2)


def index_chunks(make_rng: Callable[[int], np.random.Generator], n: int, n_boot: int
                  ) -> Iterator[np.ndarray]:
    """The bootstrap index matrices of one stratum of ``n`` samples, chunk by chunk (as the engine draws them)."""
    rows = max(1, CHUNK_ELEMENTS // n)
    dtype = np.int32 if n < 2**31 else np.int64
    for chunk, start in enumerate(range(0, n_boot, rows)):
        yield make_rng(chunk).integers(0, n, size=(min(n_boot, start + rows) - start, n), dtype=dtype)


class RowReader:
    """Serves the rows of a chunked index-matrix stream in order, whatever the chunk sizes."""

    def __init__(self, chunks: Iterator[np.ndarray]) -> None:
        self._chunks = chunks
        self._buf: np.ndarray | None = None
        self._off = 0

    def take(self, rows: int) -> np.ndarray:
        parts = []
        while rows:
            if self._buf is None or self._off == len(self._buf):
                self._buf, self._off = next(self._chunks), 0
            t = min(rows, len(self._buf) - self._off)
            parts.append(self._buf[self._off:self._off + t])
            self._off += t
            rows -= t
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def default_jobs() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))
