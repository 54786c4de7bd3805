"""Verification pairs: LFW-style folds of same/different pairs, shared by the synthetic writers (CACD-VS,
``agedb_30.bin``) and the splits that build pairs from a labelled folder (AgeDB-30's 30-year rule).

A :class:`PairList` is the ordered pair list a verification protocol scores: the two images of pair ``i``,
whether they show the same person, and the identity-disjoint fold the pair belongs to. Order matters: the
insightface 10-fold procedure holds out *contiguous* blocks of pairs, so a list built here keeps each fold
contiguous, positives first, then negatives (the LFW / CACD-VS / AgeDB-30 layout).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from facebench.errors import UserInputError


@dataclass(frozen=True)
class PairList:
    """Ordered verification pairs: ``first[i]`` and ``second[i]`` are sample ids; ``same[i]`` says whether
    they show one person; ``fold[i]`` is the pair's fold (contiguous blocks).

    >>> p = PairList(first=("a.jpg", "a.jpg"), second=("b.jpg", "c.jpg"), same=(True, False), fold=(0, 0))
    >>> len(p), p.n_folds, p.images(), p.keys()[1]
    (2, 1, ('a.jpg', 'b.jpg', 'c.jpg'), 'a.jpg|c.jpg')
    """

    first: tuple[str, ...]
    second: tuple[str, ...]
    same: tuple[bool, ...]
    fold: tuple[int, ...]

    def __post_init__(self) -> None:
        n = len(self.first)
        if not (len(self.second) == len(self.same) == len(self.fold) == n):
            raise ValueError("PairList fields must have one length")
        if any(a == b for a, b in zip(self.first, self.second, strict=True)):
            raise ValueError("a pair must hold two different images")
        if list(self.fold) != sorted(self.fold):
            raise ValueError("PairList folds must be contiguous blocks in increasing order")

    def __len__(self) -> int:
        return len(self.first)

    @property
    def n_folds(self) -> int:
        return len(set(self.fold))

    def images(self) -> tuple[str, ...]:
        """Every image that appears in a pair, sorted (what a predictions file must embed)."""
        return tuple(sorted(set(self.first) | set(self.second)))

    def keys(self) -> list[str]:
        """One id per pair, ``first|second`` (the pair's ``sample_id`` in outcomes.csv)."""
        return [f"{a}|{b}" for a, b in zip(self.first, self.second, strict=True)]

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for a, b, s, k in zip(self.first, self.second, self.same, self.fold, strict=True):
            digest.update(f"{a}\t{b}\t{int(s)}\t{k}\n".encode())
        return digest.hexdigest()


def pick_pairs(rng: np.random.Generator, person: np.ndarray, age: np.ndarray, needed: int, *, same: bool,
               min_gap: int, what: str) -> list[tuple[int, int]]:
    """``needed`` distinct unordered pairs of row indices (each returned in random order) of photos of the
    same person (``same``) or of two different people, whose ``age`` labels differ by at least ``min_gap``.

    Small sets are enumerated exactly; large ones are sampled by rejection. Raises :class:`UserInputError`
    when there are not enough such pairs.
    """
    m = len(person)
    if needed == 0:
        return []
    if m * (m - 1) // 2 <= 300_000:
        i, j = np.triu_indices(m, 1)
        ok = ((person[i] == person[j]) == same) & (np.abs(age[i] - age[j]) >= min_gap)
        candidates = np.flatnonzero(ok)
        if len(candidates) < needed:
            raise UserInputError(
                f"Only {len(candidates)} {what} exist but {needed} are needed; use more people or photos, or "
                "fewer pairs."
            )
        chosen = rng.choice(candidates, needed, replace=False)
        a, b = i[chosen], j[chosen]
    else:
        order = np.argsort(person, kind="stable")
        rank = np.empty(m, np.int64)
        rank[order] = np.arange(m)
        starts = np.searchsorted(person[order], person[order], side="left")
        ends = np.searchsorted(person[order], person[order], side="right")
        seen: set[tuple[int, int]] = set()
        pa: list[int] = []
        pb: list[int] = []
        for _ in range(200):
            ia = rng.integers(0, m, 4 * needed + 64)
            if same:  # a second photo of the same person
                r = rank[ia]
                pos = starts[r] + (rng.random(len(ia)) * (ends[r] - starts[r])).astype(np.int64)
                ib = order[pos]
            else:
                ib = rng.integers(0, m, len(ia))
            ok = (ia != ib) & ((person[ia] == person[ib]) == same) & (np.abs(age[ia] - age[ib]) >= min_gap)
            for x, y in zip(ia[ok], ib[ok], strict=True):
                key = (int(min(x, y)), int(max(x, y)))
                if key not in seen:
                    seen.add(key)
                    pa.append(int(x))
                    pb.append(int(y))
                    if len(pa) == needed:
                        break
            if len(pa) == needed:
                break
        else:
            raise UserInputError(f"Could not find {needed} {what}; use more people or photos, or fewer pairs.")
        a, b = np.array(pa), np.array(pb)
    swap = rng.random(needed) < 0.5
    first, second = np.where(swap, b, a), np.where(swap, a, b)
    return [(int(x), int(y)) for x, y in zip(first, second, strict=True)]


def identity_folds(rng: np.random.Generator, n_people: int, n_folds: int) -> list[np.ndarray]:
    """People (0..n-1) shuffled and split into ``n_folds`` near-equal, disjoint folds."""
    return [np.sort(f) for f in np.array_split(rng.permutation(n_people), n_folds)]


def fold_pairs(rng: np.random.Generator, person: np.ndarray, age: np.ndarray, *, n_folds: int, pairs_per_fold: int,
               min_gap_same: int, min_gap_other: int, what: str) -> tuple[list[tuple[int, int]], list[bool]]:
    """LFW-style folds: people (codes ``0..P-1`` in ``person``) disjoint across folds, each fold first its
    ``pairs_per_fold / 2`` positive pairs, then as many negative ones, with age gaps of at least
    ``min_gap_same`` / ``min_gap_other`` years. Returns row positions and the ``issame`` flags."""
    pairs: list[tuple[int, int]] = []
    issame: list[bool] = []
    person = np.asarray(person, dtype=np.int64)
    age = np.asarray(age, dtype=np.int64)
    half = pairs_per_fold // 2
    for k, fold in enumerate(identity_folds(rng, int(person.max()) + 1 if len(person) else 0, n_folds)):
        rows = np.flatnonzero(np.isin(person, fold))
        for same, gap in ((True, min_gap_same), (False, min_gap_other)):
            chosen = pick_pairs(rng, person[rows], age[rows], half, same=same, min_gap=gap,
                                what=f"{'positive' if same else 'negative'} {what} pairs in fold {k + 1}")
            pairs.extend((int(rows[a]), int(rows[b])) for a, b in chosen)
            issame.extend([same] * half)
    return pairs, issame


