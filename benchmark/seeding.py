"""Seeded random streams: every random draw in facebench comes from a stream named by what it is for.

Two helpers, one rule: a stream is a pure function of the run's seed and the names of what it serves, so
the same seed gives the same numbers, and adding a stream never shifts the draws of another one.

- :func:`rng_stream` — a numpy ``Generator`` for ``(seed, *parts)``; text parts enter as their CRC-32, whole
  numbers as they are (numpy's ``SeedSequence`` mixes the list).
- :func:`seed_for` — one 31-bit integer seed for ``(*parts)`` (DomainBed's ``seed_hash``), for APIs that take
  an integer (``torch.manual_seed``, a sub-run's ``LoopConfig.seed``).

>>> a = rng_stream(0, "race", "white", 3).integers(0, 1000, 3)
>>> b = rng_stream(0, "race", "white", 3).integers(0, 1000, 3)
>>> bool((a == b).all()), bool((a == rng_stream(1, "race", "white", 3).integers(0, 1000, 3)).all())
(True, False)
>>> seed_for(0, "anchors") == seed_for(0, "anchors") != seed_for(1, "anchors")
True
"""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import Any

import numpy as np

__all__ = ["rng_stream", "seed_for", "stream_key"]


def stream_key(seed: int, *parts: int | str) -> list[int]:
    """The entropy list of a stream: ``[seed, part, ...]`` with each text part replaced by its CRC-32.

    >>> stream_key(7, "a", 2)
    [7, 3904355907, 2]
    """
    return [int(seed), *(zlib.crc32(p.encode("utf-8")) if isinstance(p, str) else int(p) for p in parts)]


def rng_stream(seed: int, *parts: int | str) -> np.random.Generator:
    """A numpy random generator for ``(seed, *parts)``: ``default_rng(stream_key(seed, *parts))``."""
    return np.random.default_rng(stream_key(seed, *parts))


def seed_for(*parts: Any) -> int:
    """A 31-bit seed derived from any JSON-able values: stable across runs, machines and Python versions."""
    return int(hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF
