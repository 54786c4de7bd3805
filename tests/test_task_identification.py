"""The face-identification task: embeddings file validation and per-probe outcomes with age gaps."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from facebench.data.splits import largest_age_gap_split
from facebench.errors import UserInputError
from facebench.tasks import FACE_IDENTIFICATION

PROTOCOL = SimpleNamespace(groups=SimpleNamespace(age_bands=(0, 30, 60)))


def _table() -> pd.DataFrame:
    rows = []
    for subject, race, ages in (("s1", "black", (20, 25, 41)), ("s2", "white", (30, 33)), ("s3", "white", (18, 50)),
                                ("s4", "black", (22, 23)), ("s5", "white", (40, 41))):
        for age in ages:
            rows.append({"sample_id": f"Album2/{subject}_{age}.JPG", "subject_id": subject, "age": age,
                         "race": race, "gender": "male"})
    return pd.DataFrame(rows)


def _embeddings(split, table: pd.DataFrame) -> tuple[dict[str, np.ndarray], str]:
    """Each subject has its own direction; the first test subject's probe leans towards the second test
    subject's direction, so it ranks 2nd and every other probe ranks 1st."""
    subject = table.set_index("sample_id")["subject_id"]
    tested = sorted({subject[p] for p in split["probe"]})
    directions = {s: np.eye(5)[i] for i, s in enumerate(sorted(table["subject_id"].unique()))}
    vectors = {sample_id: directions[subject[sample_id]].copy() for sample_id in split["test"]}
    confused = next(p for p in split["probe"] if subject[p] == tested[0])
    vectors[confused] = directions[tested[1]] * 0.9 + directions[tested[0]] * 0.4
    return vectors, tested[0]


def test_outcomes_rank_each_probe_and_bin_the_age_gap(tmp_path: Path) -> None:
    table = _table()
    split = largest_age_gap_split(table, seed=0, n_test_subjects=4, val_fraction=0.0)
    assert len(split["probe"]) == 4 and len(split["train"]) == 2  # one subject left for training
    vectors, confused = _embeddings(split, table)
    path = tmp_path / "mine.npz"
    FACE_IDENTIFICATION.write_predictions(path, list(vectors), np.stack(list(vectors.values())))
    predictions = FACE_IDENTIFICATION.read_predictions(path, split["test"])
    outcomes = FACE_IDENTIFICATION.outcomes(table, predictions, protocol=PROTOCOL, split=split).set_index("y_true")
    assert outcomes["rank"].to_dict() == {s: (2 if s == confused else 1) for s in outcomes.index}
    gaps = {s: int(table[table.subject_id == s].age.max() - table[table.subject_id == s].age.min()) for s in outcomes.index}
    expected_bins = {s: ("0-4" if g < 5 else "5-9" if g < 10 else "10-19" if g < 20 else "20+") for s, g in gaps.items()}
    assert outcomes["age_gap"].to_dict() == expected_bins


def test_the_pair_view_states_each_attributes_own_pair_rule_and_which_comparisons_it_scores(tmp_path: Path) -> None:
    table = _table()
    table["gender"] = np.where(table["subject_id"].isin(["s1", "s2"]), "female", "male")
    split = largest_age_gap_split(table, seed=0, n_test_subjects=4, val_fraction=0.0)
    vectors, _ = _embeddings(split, table)
    path = tmp_path / "mine.npz"
    FACE_IDENTIFICATION.write_predictions(path, list(vectors), np.stack(list(vectors.values())))
    predictions = FACE_IDENTIFICATION.read_predictions(path, split["test"])
    protocol = SimpleNamespace(groups=SimpleNamespace(age_bands=(0, 30, 60), min_group_size=1))
    view = FACE_IDENTIFICATION.differentials(table, predictions, protocol=protocol, split=split, seed=0)
    labels = table.set_index("sample_id")
    probes, gallery = list(split["probe"]), list(split["gallery"])
    assert view["comparison_set"].startswith(f"Every probe–gallery comparison of the test set ({len(probes)} probes × "
                                             f"{len(gallery)} gallery images)")
    assert "pair_rule" not in view  # one per attribute, not one overwritten by the last attribute
    for attribute in ("race", "gender"):
        # cross-group impostor pairs: probe and gallery image of different people with different labels
        crossed = sum(labels.at[p, attribute] != labels.at[g, attribute] and labels.at[p, "subject_id"] !=
                      labels.at[g, "subject_id"] for p in probes for g in gallery)
        rule = view["by_attribute"][attribute]["pair_rule"]
        assert rule.startswith(f"same_group: a pair belongs to group g only when both of its sides are in g; the "
                               f"{crossed} cross-group impostor pair(s)"), attribute
    assert view["by_attribute"]["race"]["pair_rule"] != view["by_attribute"]["gender"]["pair_rule"]


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"sample_id": np.array(["a", "b"]), "embedding": np.ones((2, 3)), "extra": np.ones(2)}, "expected exactly sample_id and embedding"),
        ({"sample_id": np.array(["a", "a"]), "embedding": np.ones((2, 3))}, "appears 2 times"),
        ({"sample_id": np.array(["a", "b"]), "embedding": np.array([[1.0, np.nan, 0], [1, 1, 1]])}, "row 0 ('a') has a NaN"),
        ({"sample_id": np.array(["a", "z"]), "embedding": np.ones((2, 3))}, "'z' is not in this protocol's test set"),
        ({"sample_id": np.array(["a"]), "embedding": np.ones((1, 3))}, "1 test images have no embedding, the first being 'b'"),
        ({"sample_id": np.array(["a", "b"]), "embedding": np.ones(2)}, "embedding 2-D"),
    ],
)
def test_malformed_embedding_files_are_one_sentence(tmp_path: Path, arrays, message) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(UserInputError) as info:
        FACE_IDENTIFICATION.read_predictions(path, ("a", "b"))
    assert message in str(info.value) and str(path) in str(info.value)


def test_not_an_npz_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    path.write_text("sample_id,embedding\n")
    with pytest.raises(UserInputError, match="not a readable .npz"):
        FACE_IDENTIFICATION.read_predictions(path, ("a",))
