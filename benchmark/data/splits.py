"""Splits: pure functions of a FaceTable and a seed.

A :class:`Split` names disjoint parts of the table by ``sample_id``. Its :meth:`Split.fingerprint` hashes
the ids of every part, so two results are comparable only when they scored exactly the same data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from facebench.data.pairs import PairList, fold_pairs
from facebench.data.table import RACES
from facebench.errors import UserInputError, did_you_mean
from facebench.seeding import rng_stream


@dataclass(frozen=True)
class Split:
    """Disjoint named parts (``train``, ``val``, ``test``, ``target``…) as tuples of sample ids.

    ``target`` holds images of the target domain that a domain-adaptation method may see *without labels*;
    ``test`` is what every method is scored on.
    """

    parts: dict[str, tuple[str, ...]]
    description: str
    #: Parts that re-use images of other parts (unlabelled target copies, the gallery/probe or query/database
    #: halves of ``test``); every other part must be disjoint from the rest.
    views: tuple[str, ...] = ()
    #: Verification protocols: the ordered pairs to score (their images are the ``test`` part).
    pairs: PairList | None = None
    #: Where ``pairs`` come from: ``"listed"`` (the dataset's own list, e.g. the official AgeDB-30 pairs) or
    #: ``"seeded"`` (drawn by facebench with a seed); None without pairs. Recorded in results.json, where the
    #: comparability rule reads it (a paper's published numbers are on the official pairs).
    pair_source: str | None = None

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for name, ids in self.parts.items():
            if name in self.views:
                continue
            for sample_id in ids:
                if sample_id in seen:
                    raise ValueError(f"sample {sample_id!r} is in both {seen[sample_id]!r} and {name!r}")
                seen[sample_id] = name

    def __getitem__(self, name: str) -> tuple[str, ...]:
        return self.parts[name]

    def sizes(self) -> dict[str, int]:
        return {name: len(ids) for name, ids in self.parts.items()}

    def exclude_from_test(self, sample_ids: Iterable[str], *, reason: str) -> Split:
        """This split with ``sample_ids`` taken out of its ``test`` part (ids not in it are ignored), and
        ``reason`` added to the description; the other parts stay as they are.

        The runner scores this split when a method was given labelled test images (the pairwise model's MDS
        anchors): an image whose label the method was handed would be scored against that same label. Its
        fingerprint differs from the protocol split's, so ``compare`` does not pair it with runs that scored
        every test image.

        >>> s = Split(parts={"train": ("a",), "test": ("b", "c", "d"), "target": ("c", "d")}, description="x",
        ...           views=("target",))
        >>> t = s.exclude_from_test(["c"], reason="1 labelled anchor not scored")
        >>> t.sizes(), t.description
        ({'train': 1, 'test': 2, 'target': 2}, 'x; 1 labelled anchor not scored')
        """
        if self.pairs is not None:  # the pairs are the test set: taking images out would break them
            raise ValueError("a split with verification pairs cannot exclude test images")
        excluded = set(sample_ids)
        test = tuple(sample_id for sample_id in self.parts["test"] if sample_id not in excluded)
        return Split(parts={**self.parts, "test": test}, description=f"{self.description}; {reason}",
                     views=self.views)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name in sorted(self.parts):
            digest.update(name.encode() + b"\0")
            for sample_id in sorted(self.parts[name]):
                digest.update(sample_id.encode() + b"\n")
        if self.pairs is not None:  # pair order decides the folds, so it is hashed as it is
            digest.update(b"pairs\0" + self.pairs.fingerprint().encode())
        return digest.hexdigest()


def cross_ethnicity_split(
    table: pd.DataFrame,
    *,
    seed: int,
    source: str = "white",
    target: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> Split:
    """Seed 000's setting: train/validate on one ethnicity, test on held-out source images and all others.

    The source images are shuffled with ``seed`` and cut into train / val / test; every labelled image of
    another ethnicity goes to ``test``. ``target`` — the images a domain-adaptation method may see, without
    labels — holds the images of the ``target`` ethnicity (seed 000 adapts Caucasian → African), or of all
    other ethnicities when ``target`` is None.

    >>> t = pd.DataFrame({"sample_id": [f"{i}.jpg" for i in range(10)],
    ...                   "race": ["white"] * 8 + ["black"] * 2})
    >>> s = cross_ethnicity_split(t, seed=0, val_fraction=0.25, test_fraction=0.25)
    >>> s.sizes()
    {'train': 4, 'val': 2, 'test': 4, 'target': 2}
    """
    if source not in RACES:
        raise UserInputError(f"split.params.source: unknown ethnicity '{source}'{did_you_mean(source, RACES)}.")
    if target is not None and (target not in RACES or target == source):
        raise UserInputError(f"split.params.target: '{target}' must be an ethnicity other than the source{did_you_mean(target, RACES)}.")
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UserInputError("split.params: val_fraction and test_fraction must be in (0, 1) and sum to less than 1.")
    labelled = table[table["race"].notna()]
    source_ids = np.sort(labelled.loc[labelled["race"] == source, "sample_id"].to_numpy(dtype=str))
    if len(source_ids) < 3:
        raise UserInputError(f"split.params.source: only {len(source_ids)} images of '{source}' in the dataset.")
    order = np.random.default_rng(seed).permutation(len(source_ids))
    shuffled = source_ids[order]
    n_val = max(1, round(val_fraction * len(shuffled)))
    n_test = max(1, round(test_fraction * len(shuffled)))
    val, test_source, train = shuffled[:n_val], shuffled[n_val : n_val + n_test], shuffled[n_val + n_test :]
    other = np.sort(labelled.loc[labelled["race"] != source, "sample_id"].to_numpy(dtype=str))
    target_ids = other if target is None else np.sort(labelled.loc[labelled["race"] == target, "sample_id"].to_numpy(dtype=str))
    return Split(
        parts={
            "train": tuple(sorted(train)),
            "val": tuple(sorted(val)),
            "test": tuple(sorted(test_source)) + tuple(other),
            "target": tuple(target_ids),
        },
        description=(f"train and validate on {source}; test on held-out {source} images and all other ethnicities"
                     + (f"; unlabelled target images: {target}" if target else "")),
        views=("target",),
    )


def largest_age_gap_split(
    table: pd.DataFrame,
    *,
    seed: int,
    n_test_subjects: int = 3000,
    val_fraction: float = 0.05,
) -> Split:
    """The MORPH AIFR identification setting: per test subject the two images with the largest age gap.

    Among subjects with at least two images, ``n_test_subjects`` are drawn with ``seed`` (all of them if
    fewer exist). Each test subject's youngest image goes to ``gallery`` and its oldest to ``probe`` (ties
    broken by sample id); their other images are unused. Every image of the remaining subjects is for
    training, with a ``val_fraction`` of those subjects held out for validation.

    >>> t = pd.DataFrame({"sample_id": [f"{s}_{a}.jpg" for s in "abcd" for a in (20, 30, 40)],
    ...                   "subject_id": [s for s in "abcd" for _ in range(3)], "age": [20, 30, 40] * 4})
    >>> s = largest_age_gap_split(t, seed=0, n_test_subjects=2, val_fraction=0.5)
    >>> s.sizes()
    {'train': 3, 'val': 3, 'gallery': 2, 'probe': 2, 'test': 4}
    >>> sorted(a.split("_")[1] for a in s["probe"])
    ['40.jpg', '40.jpg']
    """
    usable = table[table["subject_id"].notna() & table["age"].notna()]
    counts = usable.groupby("subject_id")["sample_id"].count()
    eligible = np.sort(counts[counts >= 2].index.to_numpy(dtype=str))
    if len(eligible) < 2:
        raise UserInputError("split: fewer than two subjects have two or more images; an age-gap split needs more.")
    order = np.random.default_rng(seed).permutation(len(eligible))
    test_subjects = set(eligible[order[: min(n_test_subjects, len(eligible) - 1)]])
    in_test = usable["subject_id"].isin(test_subjects)
    ranked = usable[in_test].sort_values(["subject_id", "age", "sample_id"])
    gallery = ranked.groupby("subject_id")["sample_id"].first()
    probe = ranked.groupby("subject_id")["sample_id"].last()
    rest = np.sort(usable.loc[~in_test, "subject_id"].unique().astype(str))
    rest = rest[rng_stream(seed, 1).permutation(len(rest))]
    n_val = round(val_fraction * len(rest))
    val_subjects = set(rest[:n_val])
    train = usable.loc[~in_test & ~usable["subject_id"].isin(val_subjects), "sample_id"]
    val = usable.loc[~in_test & usable["subject_id"].isin(val_subjects), "sample_id"]
    return Split(
        parts={
            "train": tuple(sorted(train)),
            "val": tuple(sorted(val)),
            "gallery": tuple(gallery.sort_index()),
            "probe": tuple(probe.sort_index()),
        } | {"test": tuple(gallery.sort_index()) + tuple(probe.sort_index())},
        description=(f"{len(test_subjects)} test subjects: youngest image in the gallery, oldest as the probe; "
                     f"training on the other {len(rest)} subjects"),
        views=("gallery", "probe"),
    )


#: CACD retrieval databases (CARC, seed 002 Table 2): label → capture years.
CACD_DATABASES: dict[str, tuple[int, ...]] = {
    "2004-2006": (2004, 2005, 2006), "2007-2009": (2007, 2008, 2009), "2010-2012": (2010, 2011, 2012),
}


def cacd_retrieval_split(
    table: pd.DataFrame,
    *,
    seed: int,
    test_ranks: tuple[int, int] = (3, 5),
    query_year: int = 2013,
    val_fraction: float = 0.05,
) -> Split:
    """CACD's retrieval setting (CARC ``main.m``): celebrities ranked 3-5 in their birth year are the test
    set; their images from ``query_year`` are queries, their images from 2004-06, 2007-09 and 2010-12 form
    three databases (parts ``db_2004-2006`` …). Every image of the other celebrities is for training (a
    ``val_fraction`` of those celebrities, drawn with ``seed``, for validation).

    >>> t = pd.DataFrame({"sample_id": [f"{s}_{y}.jpg" for s in "ab" for y in (2005, 2013)],
    ...                   "subject_id": [s for s in "ab" for _ in range(2)], "rank": [3, 3, 9, 9],
    ...                   "year": [2005, 2013] * 2})
    >>> s = cacd_retrieval_split(t, seed=0, val_fraction=0.0)
    >>> s["query"], s["db_2004-2006"], s["train"]
    (('a_2013.jpg',), ('a_2005.jpg',), ('b_2005.jpg', 'b_2013.jpg'))
    """
    if "rank" not in table.columns or table["rank"].isna().all():
        raise UserInputError("split cacd_retrieval needs CACD's metadata (rank, year): read CACD with variant 'metadata'.")
    low, high = test_ranks
    in_test = table["rank"].between(low, high).fillna(False).to_numpy(dtype=bool)
    test = table[in_test]
    parts: dict[str, tuple[str, ...]] = {"query": tuple(sorted(test.loc[test["year"] == query_year, "sample_id"]))}
    for label, years in CACD_DATABASES.items():
        parts[f"db_{label}"] = tuple(sorted(test.loc[test["year"].isin(years), "sample_id"]))
    rest = np.sort(table.loc[~in_test, "subject_id"].unique().astype(str))
    rest = rest[np.random.default_rng(seed).permutation(len(rest))]
    val_subjects = set(rest[: round(val_fraction * len(rest))])
    others = table[~in_test]
    parts["train"] = tuple(sorted(others.loc[~others["subject_id"].isin(val_subjects), "sample_id"]))
    parts["val"] = tuple(sorted(others.loc[others["subject_id"].isin(val_subjects), "sample_id"]))
    parts["test"] = tuple(sorted(set().union(*(parts[p] for p in parts if p == "query" or p.startswith("db_")))))
    return Split(
        parts=parts,
        description=(f"{test['subject_id'].nunique()} test celebrities (rank {low}-{high}): {query_year} queries against "
                     f"databases {', '.join(CACD_DATABASES)}; training on the other {len(rest)} celebrities"),
        views=("query", *(f"db_{label}" for label in CACD_DATABASES)),
    )


def subject_holdout_split(table: pd.DataFrame, *, seed: int, val_fraction: float = 0.05) -> Split:
    """A training dataset used whole (FG-NET, AgeDB and CACD-VS protocols train on another dataset):
    every subject trains, except a ``val_fraction`` of subjects drawn with ``seed`` for validation. A dataset
    without identities (UTKFace: ``subject_id`` all missing) holds out images instead.

    >>> t = pd.DataFrame({"sample_id": [f"{s}{i}.jpg" for s in "abcd" for i in (1, 2)],
    ...                   "subject_id": [s for s in "abcd" for _ in (1, 2)], "age": [20, 30] * 4})
    >>> subject_holdout_split(t, seed=0, val_fraction=0.25).sizes()
    {'train': 6, 'val': 2}
    """
    if table["subject_id"].isna().all():  # no identities at all (UTKFace, FairFace): every image is its own subject
        table = table.assign(subject_id=table["sample_id"])
    usable = table[table["subject_id"].notna()]
    subjects = np.sort(usable["subject_id"].unique().astype(str))
    subjects = subjects[np.random.default_rng(seed).permutation(len(subjects))]
    val_subjects = set(subjects[: round(val_fraction * len(subjects))])
    in_val = usable["subject_id"].astype(str).isin(val_subjects)
    return Split(
        parts={"train": tuple(sorted(usable.loc[~in_val, "sample_id"])), "val": tuple(sorted(usable.loc[in_val, "sample_id"]))},
        description=f"all {len(subjects) - len(val_subjects)} subjects train; {len(val_subjects)} subjects validate",
    )


def leave_one_out_split(table: pd.DataFrame, *, seed: int) -> Split:
    """FG-NET's leave-one-out identification: every image is a probe against all the others (``test``).

    Images without a subject or age are left out. ``seed`` is unused (the split is the whole dataset) and
    accepted so that every split builder has one signature.

    >>> t = pd.DataFrame({"sample_id": ["001A02.JPG", "001A10.JPG"], "subject_id": ["001", "001"], "age": [2, 10]})
    >>> leave_one_out_split(t, seed=0)["test"]
    ('001A02.JPG', '001A10.JPG')
    """
    usable = table[table["subject_id"].notna() & table["age"].notna()]
    counts = usable.groupby("subject_id")["sample_id"].transform("count")
    if (counts < 2).all():
        raise UserInputError("split leave_one_out: no subject has two images, so no probe has a mate.")
    return Split(parts={"test": tuple(sorted(usable["sample_id"]))},
                 description=f"leave-one-out over {len(usable)} images of {usable['subject_id'].nunique()} subjects: "
                             "each image a probe against all the others")


def age_gap_pairs_split(table: pd.DataFrame, *, seed: int, n_folds: int = 10, pairs_per_fold: int = 600,
                        min_gap: int = 30) -> Split:
    """AgeDB-30 built from a labelled folder: ``n_folds`` identity-disjoint folds, each with
    ``pairs_per_fold / 2`` genuine then as many impostor pairs, every pair ``min_gap`` or more years apart,
    drawn with ``seed`` (insightface's ``agedb_30.bin`` is 10 x (300 + 300) pairs with a 30-year gap).

    >>> t = pd.DataFrame({"sample_id": [f"{s}_{a}.jpg" for s in "abcd" for a in (10, 45)],
    ...                   "subject_id": [s for s in "abcd" for _ in (1, 2)], "age": [10, 45] * 4})
    >>> s = age_gap_pairs_split(t, seed=0, n_folds=2, pairs_per_fold=2)
    >>> s.pairs.same, s.pairs.fold
    ((True, False, True, False), (0, 0, 1, 1))
    """
    if pairs_per_fold < 2 or pairs_per_fold % 2:
        raise UserInputError(f"split age_gap_pairs: pairs_per_fold must be an even number >= 2, not {pairs_per_fold}.")
    usable = table[table["subject_id"].notna() & table["age"].notna()].sort_values("sample_id")
    person = pd.factorize(usable["subject_id"].astype(str), sort=True)[0]
    pairs, issame = fold_pairs(np.random.default_rng(seed), person, usable["age"].to_numpy(dtype=np.int64),
                               n_folds=n_folds, pairs_per_fold=pairs_per_fold, min_gap_same=min_gap,
                               min_gap_other=min_gap, what=f"{min_gap}-year")
    ids = usable["sample_id"].to_numpy(dtype=str)
    pair_list = PairList(first=tuple(ids[a] for a, _ in pairs), second=tuple(ids[b] for _, b in pairs),
                         same=tuple(bool(x) for x in issame),
                         fold=tuple(i // pairs_per_fold for i in range(len(pairs))))
    return Split(parts={"test": pair_list.images()}, pairs=pair_list, pair_source="seeded",
                 description=f"{n_folds} identity-disjoint folds of {pairs_per_fold // 2} genuine + "
                             f"{pairs_per_fold // 2} impostor pairs, each {min_gap}+ years apart (seed {seed})")


def listed_pairs_split(table: pd.DataFrame, *, seed: int) -> Split:
    """Pairs listed by the dataset itself (CACD-VS: columns ``pair_id``, ``side``, ``fold``, ``issame``).

    ``seed`` is unused: the release fixes the pairs and their folds.

    >>> t = pd.DataFrame({"sample_id": ["CACD_VS/0000_0.jpg", "CACD_VS/0000_1.jpg"], "pair_id": [0, 0],
    ...                   "side": [0, 1], "fold": [0, 0], "issame": [True, True]})
    >>> listed_pairs_split(t, seed=0).pairs.first
    ('CACD_VS/0000_0.jpg',)
    """
    needed = {"pair_id", "side", "fold", "issame"}
    if not needed <= set(table.columns):
        raise UserInputError("split listed_pairs needs a dataset that lists its pairs (e.g. CACD with variant 'vs').")
    sides = table.pivot(index="pair_id", columns="side", values="sample_id").sort_index()
    info = table[table["side"] == 0].set_index("pair_id").loc[sides.index]
    pair_list = PairList(first=tuple(sides[0].astype(str)), second=tuple(sides[1].astype(str)),
                         same=tuple(bool(x) for x in info["issame"]), fold=tuple(int(x) for x in info["fold"]))
    return Split(parts={"test": pair_list.images()}, pairs=pair_list, pair_source="listed",
                 description=f"{len(pair_list)} pairs listed by the dataset in {pair_list.n_folds} folds")


def race_label_column(table: pd.DataFrame) -> str:
    """Where a FaceTable keeps the race label seed 001 classifies: ``race`` (the dataset's own label: UTKFace,
    FairFace) or, for a dataset without one, ``annotated_race`` (annotators' labels supplied with the reader's
    ``race_annotations`` option: CelebA).

    >>> race_label_column(pd.DataFrame({"race": [pd.NA], "annotated_race": ["white"]}))
    'annotated_race'
    """
    if "race" in table.columns and table["race"].notna().any():
        return "race"
    if "annotated_race" in table.columns:
        return "annotated_race"

    raise UserInputError("This dataset has no race label: CelebA needs annotators' labels (dataset.options "
                         "race_annotations and race_categories).")


def labelled_subset_split(table: pd.DataFrame, *, seed: int, n_train: int = 2000, n_val: int = 0,
                          n_test: int = 500, balanced_test: bool = False) -> Split:
    """Seed 001's target data (section 2.1): of the images with a race label (:func:`race_label_column`), ``n_test``
    are the test set every model is scored on and ``n_train`` (+ ``n_val``) the labelled images the in-domain
    benchmark trains on ("Train: 2,000, Valid: 500"). People are kept on one side (whole subjects are drawn, with
    ``seed``; images without a subject are their own); the parts are cut at the first subject past each size, so
    sizes can exceed the request by a few images. Fewer labelled images than requested: one sentence.
    ``balanced_test``: the test set holds as many ``white`` as ``other`` images (seed 001's two classes; a subject
    counts in its first image's class), so that accuracy there is not the majority class's share.

    >>> t = pd.DataFrame({"sample_id": [f"{i}.jpg" for i in range(10)], "subject_id": [pd.NA] * 10,
    ...                   "race": ["white", "black"] * 5})
    >>> labelled_subset_split(t, seed=0, n_train=6, n_test=4).sizes()
    {'train': 6, 'val': 0, 'test': 4}
    """

    if min(n_train, n_test) < 1 or n_val < 0:
        raise UserInputError("split.params: n_train and n_test must be at least 1 and n_val at least 0.")
    column = race_label_column(table)
    labelled = table[table[column].notna()]
    subjects = labelled["subject_id"].astype("string").fillna(labelled["sample_id"].astype("string")).astype(str)
    if len(labelled) < n_train + n_val + n_test:
        raise UserInputError(f"split.params: {len(labelled)} images have a {column} label, fewer than n_train + n_val + "
                             f"n_test = {n_train + n_val + n_test}.")
    unique = np.sort(subjects.unique())
    order = unique[np.random.default_rng(seed).permutation(len(unique))]
    counts = subjects.value_counts()
    parts: dict[str, list[str]] = {"test": [], "train": [], "val": []}
    sizes = {"test": n_test, "train": n_train, "val": n_val}
    filled = {name: 0 for name in parts}
    names = [name for name in ("test", "train", "val") if sizes[name] > 0]
    k = 0
    assignment: dict[str, str] = {}
    if balanced_test:
        white = labelled.assign(_s=subjects.to_numpy()).groupby("_s")[column].first() == "white"
        quota = {True: n_test - n_test // 2, False: n_test // 2}
        taken = {True: 0, False: 0}
        for subject in order:
            kind = bool(white[subject])
            if taken[kind] < quota[kind]:
                assignment[subject] = "test"
                taken[kind] += int(counts[subject])
        if min(taken[c] - quota[c] for c in quota) < 0:
            raise UserInputError(f"split.params: too few images of one class for a balanced test set of {n_test}.")
        filled["test"] = sum(taken.values())
        # The rest in a fresh random order: the test set took every 'other' subject from the front of `order`
        # until its quota, so filling train from that front again would draw White people only.
        rest = np.array([s for s in order if s not in assignment])
        order = rest[np.random.default_rng([seed, 1]).permutation(len(rest))]
        names = [name for name in names if name != "test"]
    for subject in order:
        while k < len(names) and filled[names[k]] >= sizes[names[k]]:
            k += 1
        if k == len(names):
            break
        assignment[subject] = names[k]
        filled[names[k]] += int(counts[subject])
    part_of = subjects.map(assignment)
    ids = labelled["sample_id"].astype(str)
    return Split(parts={name: tuple(sorted(ids[part_of == name])) for name in ("train", "val", "test")},
                 description=f"{column}-labelled images: {filled['train']} train, {filled['val']} val, {filled['test']} "
                             f"test, disjoint in people (seed {seed})")


def generation_holdout_split(table: pd.DataFrame, *, seed: int, train_groups: tuple[str, ...] | list[str] = (),
                             test_fraction: float = 0.1, test_per_domain: int | None = None,
                             val_fraction: float = 0.0) -> Split:
    """Held-out people for a face generator, disjoint in people (whole subjects drawn with ``seed``).

    Without ``train_groups`` (seed 004 section 3.1: "90% for training and the rest for testing without
    overlapping"): a ``test_fraction`` of the people is ``test``, the rest ``train``. With ``train_groups`` (seed 001
    section 3: trained on CelebC, the faces annotated White): the generator's ``train`` part holds people of those race
    groups (:func:`race_label_column`) only; ``test`` holds ``test_per_domain`` images (default: a ``test_fraction``
    of the out-of-domain images) of held-out people of the train groups and as many of the other groups'; the other
    groups' remaining people, and images without a race label, form ``judge``: real faces the task's judges train on
    (with ``train``), never the generator. ``val_fraction`` of the train people validate.

    >>> t = pd.DataFrame({"sample_id": [f"{i}.jpg" for i in range(12)], "subject_id": [str(i // 2) for i in range(12)],
    ...                   "race": ["white"] * 8 + ["black"] * 4})
    >>> s = generation_holdout_split(t, seed=0, train_groups=["white"], test_per_domain=2)
    >>> s.sizes()
    {'train': 6, 'val': 0, 'test': 4, 'judge': 2}
    """
    if not 0 < test_fraction < 1 or not 0 <= val_fraction < 1:
        raise UserInputError("split.params: test_fraction must be in (0, 1) and val_fraction in [0, 1).")
    subjects = table["subject_id"].astype("string").fillna(table["sample_id"].astype("string")).astype(str)
    ids = table["sample_id"].astype(str)
    rng = np.random.default_rng(seed)

    def shuffled(mask: np.ndarray) -> np.ndarray:
        unique = np.sort(subjects[mask].unique())
        return unique[rng.permutation(len(unique))]

    def take(order: np.ndarray, n_images: int) -> set[str]:
        """Subjects from the front of ``order`` until they hold at least ``n_images`` images."""
        counts = subjects.value_counts()
        chosen, total = set(), 0
        for subject in order:
            if total >= n_images:
                break
            chosen.add(subject)
            total += int(counts[subject])
        return chosen

    judge: set[str] = set()
    if train_groups:
        race = table[race_label_column(table)].astype("string")
        inside = race.isin(list(train_groups)).fillna(False).to_numpy(dtype=bool)
        outside = (race.notna() & ~race.isin(list(train_groups))).fillna(False).to_numpy(dtype=bool)
        if not inside.any() or not outside.any():
            raise UserInputError(f"split.params.train_groups: the data have {int(inside.sum())} images of "
                                 f"{', '.join(train_groups)} and {int(outside.sum())} of other labelled groups; "
                                 "both are needed.")
        n = test_per_domain if test_per_domain is not None else max(1, round(test_fraction * int(outside.sum())))
        if n >= int(outside.sum()):
            raise UserInputError(f"split.params.test_per_domain: {n} test images per domain leave no other-group "
                                 f"image for the judges ({int(outside.sum())} in all).")
        test = take(shuffled(inside), n) | take(shuffled(outside), n)
        judge = set(subjects[~inside]) - test  # the other groups' rest, and faces without a label
        rest = [s for s in shuffled(inside) if s not in test]
    else:
        order = shuffled(np.ones(len(table), dtype=bool))
        test = take(order, max(1, round(test_fraction * len(table))))
        rest = [s for s in order if s not in test]
    val = set(rest[:round(val_fraction * len(rest))])
    part = subjects.map(lambda s: "test" if s in test else "judge" if s in judge else "val" if s in val else "train")
    parts = {name: tuple(sorted(ids[part == name])) for name in ("train", "val", "test", "judge")}
    groups = f" (train groups: {', '.join(train_groups)})" if train_groups else ""
    return Split(parts=parts, description=f"generation hold-out{groups}: {len(parts['train'])} train, {len(parts['val'])} "
                 f"val, {len(parts['test'])} test, {len(parts['judge'])} judge-only images, disjoint in people "
                 f"(seed {seed})")
