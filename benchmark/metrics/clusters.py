"""Units of independence: who is in the data, and the cluster bootstrap that resamples them.

Face test sets are not collections of independent images. FG-NET has 1,002 probes of 82 people, CACD scores
each query once per database, and a verification pair involves two people who appear in other pairs. An
interval that resamples rows treats a person's ten images as ten independent observations and comes out too
narrow; a test that permutes rows finds differences that are one person's luck.

The remedy is to resample what is independent: the people. A sample (a row of outcomes) belongs to one
*unit* (its person) or, for a pair, to two (its two people). One cluster-bootstrap draw picks ``U`` units with
replacement from the ``U`` units of the test set; unit ``u`` is drawn ``K_u`` times, and every row of the
test set enters the draw with the weight

* ``K_u`` for a row of one unit (each copy of a drawn person brings all of that person's rows), and
* ``K_u · K_v`` for a pair of two different people ``u`` and ``v`` (the pair is in the draw as often as
  both of its people are: the *pigeonhole* bootstrap of crossed designs, Owen 2007, with both factors drawn
  from one pool of people); a pair of one person's two images counts as a row of one unit.

A group's value in a draw is the weighted mean of its rows' outcomes, ``Σ w·o / Σ w`` (a ratio estimator;
NaN when no unit of the group was drawn). Every group, the overall row and every gap are computed from the
same draws, so intervals of differences see that the same people sit in several groups (a celebrity in
several age bands, a person in pairs of two genders).

>>> units = encode_units(["ann", "ann", "bo", "cy"])
>>> units.first.tolist(), units.second is None, units.n_units
([0, 0, 1, 2], True, 3)
>>> counts = np.array([[2.0, 0.0, 1.0]])                 # ann twice, bo never, cy once
>>> row_weights(units, counts).tolist()
[[2.0, 2.0, 0.0, 1.0]]
>>> pairs = encode_units([["ann", "ann"], ["ann", "bo"], ["bo", "cy"]])
>>> pairs.first.tolist(), pairs.second.tolist()          # -1: a pair of one person
([0, 0, 1], [-1, 1, 2])
>>> row_weights(pairs, np.array([[2.0, 1.0, 3.0]])).tolist()
[[2.0, 2.0, 3.0]]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from facebench.seeding import rng_stream

__all__ = ["Units", "encode_units", "row_weights", "unit_count_chunks", "unit_stream"]


@dataclass(frozen=True)
class Units:
    """Integer unit codes of every row: ``first`` (n,), ``second`` (n,) or None; -1 in ``second`` marks a
    row of one unit. ``labels`` are the unit names in code order."""

    first: np.ndarray
    second: np.ndarray | None
    labels: tuple[str, ...]

    @property
    def n_units(self) -> int:
        return len(self.labels)

    def count_in(self, rows: np.ndarray | None) -> int:
        """How many distinct units the given rows involve (None: all rows)."""
        first = self.first if rows is None else self.first[rows]
        if self.second is None:
            return int(np.unique(first).size)
        second = self.second if rows is None else self.second[rows]
        return int(np.unique(np.concatenate([first, second[second >= 0]])).size)


def encode_units(clusters, n_rows: int | None = None) -> Units:
    """Codes for a 1-D array of unit labels (one unit per row) or an ``(n, 2)`` array (a pair's two units).

    A missing label (None, NaN, "") makes the row a unit of its own: nothing is known to tie it to another.
    Units are numbered in the sorted order of their labels as text (the order of the unit counts' columns).
    """
    arr = np.asarray(clusters.to_numpy() if isinstance(clusters, (pd.Series, pd.DataFrame)) else clusters,
                     dtype=object)
    if arr.ndim not in (1, 2) or (arr.ndim == 2 and arr.shape[1] not in (1, 2)):
        raise ValueError(f"clusters must have shape (n,) or (n, 2), got {arr.shape}.")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if n_rows is not None and len(arr) != n_rows:
        raise ValueError(f"Length mismatch: the outcomes have {n_rows} samples but clusters has {len(arr)}.")
    flat = pd.Series(arr.ravel(), dtype=object)
    text = flat.astype(str)
    blank = (flat.isna() | (text == "")).to_numpy()
    if blank.any():  # each unlabelled row (or pair side) is its own unit
        text[blank] = [f"\x00row{i}" for i in np.flatnonzero(blank)]
    codes, uniques = pd.factorize(text.to_numpy(dtype=object), sort=True)
    codes = codes.reshape(arr.shape).astype(np.int64)
    labels = tuple(str(u) for u in uniques)
    if arr.ndim == 1:
        return Units(codes, None, labels)
    first, second = codes[:, 0], codes[:, 1].copy()
    second[second == first] = -1
    return Units(first, second, labels)


def unit_stream(seed: int, chunk: int) -> np.random.Generator:
    """The stream of the unit counts of one chunk of draws: one per ``(seed, chunk)`` for the whole test set
    (a 3-word key never used by a group's or a permutation's stream)."""
    return rng_stream(seed, "units of independence", chunk)


def unit_count_chunks(seed: int, n_units: int, n_boot: int, *, row_width: int = 0
                      ) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, counts)`` for consecutive blocks of draws: ``counts[b, u]`` is how many times unit ``u`` was
    picked when ``n_units`` units are drawn with replacement (a multinomial count, float64).

    The draws depend on ``(seed, n_units, n_boot)`` only: each stream chunk holds ``CHUNK_ELEMENTS // n_units``
    draws, and ``row_width`` (the width of the row-weight matrices the caller will build) only cuts the
    chunks into smaller blocks, so that no block needs more than about ``CHUNK_ELEMENTS`` weights.
    """
    from .resampling import CHUNK_ELEMENTS

    per_chunk = max(1, CHUNK_ELEMENTS // n_units)
    per_block = max(1, CHUNK_ELEMENTS // max(n_units, row_width, 1))
    for chunk, start in enumerate(range(0, n_boot, per_chunk)):
        r = min(n_boot, start + per_chunk) - start
        picks = unit_stream(seed, chunk).integers(0, n_units, size=(r, n_units))
        flat = (picks + n_units * np.arange(r)[:, None]).ravel()
        counts = np.bincount(flat, minlength=r * n_units).reshape(r, n_units).astype(np.float64)
        for offset in range(0, r, per_block):
            yield start + offset, counts[offset:offset + per_block]


def row_weights(units: Units, counts: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """``(draws, n_rows)`` weight of every row (or of ``rows``) in each draw of ``counts`` ``(draws, U)``."""
    first = units.first if rows is None else units.first[rows]
    weights = counts[:, first]
    if units.second is not None:
        second = units.second if rows is None else units.second[rows]
        paired = second >= 0
        weights[:, paired] *= counts[:, second[paired]]
    return weights
