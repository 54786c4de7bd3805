from __future__ import annotations

import pandas as pd
import pytest

from facebench.data.splits import Split, cross_ethnicity_split
from facebench.errors import UserInputError


def _table(n_per_race: int = 50) -> pd.DataFrame:
    races = ["white", "black", "asian", "indian", "others"]
    rows = [{"sample_id": f"UTKFace/{r}_{i}.jpg", "race": r} for r in races for i in range(n_per_race)]
    return pd.DataFrame(rows)


def test_cross_ethnicity_split_trains_on_the_source_only() -> None:
    table = _table()
    split = cross_ethnicity_split(table, seed=3, source="white", val_fraction=0.1, test_fraction=0.2)
    race = table.set_index("sample_id")["race"]
    assert set(race[list(split["train"])]) == {"white"} and set(race[list(split["val"])]) == {"white"}
    assert split.sizes() == {"train": 35, "val": 5, "test": 10 + 200, "target": 200}
    assert set(race[list(split["target"])]) == {"black", "asian", "indian", "others"}
    assert set(split["target"]) <= set(split["test"])
    assert not set(split["train"]) & set(split["test"])


def test_split_is_a_pure_function_of_table_and_seed() -> None:
    a = cross_ethnicity_split(_table(), seed=1)
    b = cross_ethnicity_split(_table().sample(frac=1, random_state=5), seed=1)
    c = cross_ethnicity_split(_table(), seed=2)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_split_rejects_overlap_and_bad_params() -> None:
    with pytest.raises(ValueError, match="in both"):
        Split(parts={"train": ("a",), "test": ("a",)}, description="")
    with pytest.raises(UserInputError, match="did you mean 'white'"):
        cross_ethnicity_split(_table(), seed=0, source="whte")
    with pytest.raises(UserInputError, match="sum to less than 1"):
        cross_ethnicity_split(_table(), seed=0, val_fraction=0.6, test_fraction=0.5)
