"""The strict UTKFace reader: name parsing, rejects with reasons, layout, errors, summary, age bands."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest
from fixtures_utkface import (
    HIDDEN,
    KNOWN_MALFORMED_ALIGNED,
    KNOWN_MALFORMED_IN_THE_WILD,
    OTHER_MALFORMED_ALIGNED,
    VALID_ALIGNED,
    VALID_IN_THE_WILD,
    jpeg_bytes,
    write_files,
    write_utkface_tree,
)
from PIL import Image

from facebench.data.table import Parsed, ReadResult, Reject, check_face_table
from facebench.data.utkface import (
    AGE_BAND_EDGES,
    UTKFaceLabels,
    age_band,
    age_band_names,
    find_utkface_images,
    parse_utkface_name,
    read_utkface,
    verify_summary,
)
from facebench.errors import UserInputError


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    return write_utkface_tree(tmp_path / "utk")


# ------------------------------------------------------------------------------------------- parsing names


@pytest.mark.parametrize(
    "name, age, gender, race",
    [
        ("25_0_3_20170116174525125.jpg.chip.jpg", 25, "male", "indian"),
        ("0_1_0_20170110215927291.jpg.chip.jpg", 0, "female", "white"),
        ("2_0_1_20161219195326347.jpg.chip.jpg", 2, "male", "black"),
        ("3_1_2_20161219203650636.jpg.chip.jpg", 3, "female", "asian"),
        ("9_0_4_20170103200348347.jpg.chip.jpg", 9, "male", "others"),
        ("116_1_2_20170112213001988.jpg.chip.jpg", 116, "female", "asian"),
        ("61_1_3_20170109150557335.jpg", 61, "female", "indian"),
        ("007_0_0_20170109150557335.jpg", 7, "male", "white"),
    ],
)
def test_valid_names_parse_to_their_labels(name: str, age: int, gender: str, race: str) -> None:
    outcome = parse_utkface_name(name)
    assert outcome.ok and outcome.reason is None
    labels = outcome.value
    assert isinstance(labels, UTKFaceLabels)
    assert (labels.age, labels.gender, labels.race) == (age, gender, race)
    digits = name.split(".")[0].split("_")
    assert (labels.gender_code, labels.race_code, labels.captured_at) == (digits[1], digits[2], digits[3])
    assert labels.suffix == (".jpg.chip.jpg" if name.endswith(".chip.jpg") else ".jpg")


@pytest.mark.parametrize("name", VALID_ALIGNED)
def test_every_fixture_valid_name_is_accepted_for_aligned(name: str) -> None:
    assert parse_utkface_name(name, variant="aligned").ok


@pytest.mark.parametrize("name, reason", {**KNOWN_MALFORMED_ALIGNED, **OTHER_MALFORMED_ALIGNED}.items())
def test_malformed_names_are_rejected_with_their_reason(name: str, reason: str) -> None:
    outcome = parse_utkface_name(name, variant="aligned")
    assert outcome == Parsed.reject(reason)


@pytest.mark.parametrize("path, reason", KNOWN_MALFORMED_IN_THE_WILD.items())
def test_known_malformed_in_the_wild_names_are_rejected(path: str, reason: str) -> None:
    assert parse_utkface_name(path.split("/")[1], variant="in_the_wild").reason == reason


def test_in_the_wild_rejects_the_aligned_suffix() -> None:
    outcome = parse_utkface_name("25_0_3_20170116174525125.jpg.chip.jpg", variant="in_the_wild")
    assert outcome.reason == "wrong suffix for variant 'in_the_wild': expected '.jpg', got '.jpg.chip.jpg'"


@pytest.mark.parametrize(
    "name",
    [
        "25_0_3_20170116174525125.jpg.chip.jpg\n",  # `$` alone would accept a trailing newline
        "٢٥_0_3_20170116174525125.jpg.chip.jpg",  # non-ASCII digits
        "25_0_3_٢٠١٧٠١١٦١٧٤٥٢٥١٢٥.jpg.chip.jpg",
        "25_0_3_20170116174525125.jpg.chip.jpg.chip.jpg",
        "",
    ],
)
def test_near_misses_are_rejected(name: str) -> None:
    outcome = parse_utkface_name(name)
    assert outcome.value is None and outcome.reason and not outcome.ok


def test_parse_outcome_holds_exactly_one_of_value_and_reason() -> None:
    with pytest.raises(ValueError):
        Parsed(None, None)
    with pytest.raises(ValueError):
        Parsed(UTKFaceLabels(1, "0", "0", "2" * 17, ".jpg"), "both")


def test_unknown_variant_suggests_the_closest() -> None:
    with pytest.raises(UserInputError, match=r"Unknown UTKFace variant 'in_the_wlid' \(did you mean 'in_the_wild'\?\)"):
        parse_utkface_name("25_0_3_20170116174525125.jpg", variant="in_the_wlid")


# ----------------------------------------------------------------------------------------- reading a tree


def test_read_aligned_table_contents(tree: Path) -> None:
    result = read_utkface(tree)
    assert isinstance(result, ReadResult)
    table = result.table
    assert list(table.columns) == [
        "sample_id", "subject_id", "age", "gender", "race", "race_code", "gender_code", "captured_at",
    ]
    assert table["sample_id"].tolist() == sorted(f"UTKFace/{name}" for name in VALID_ALIGNED)
    assert table.index.equals(pd.RangeIndex(len(VALID_ALIGNED)))
    assert table["age"].dtype == "int64"
    assert isinstance(table["subject_id"].dtype, pd.StringDtype) and table["subject_id"].dtype.na_value is pd.NA
    assert table["subject_id"].isna().all()
    row = table.set_index("sample_id").loc["UTKFace/25_0_3_20170116174525125.jpg.chip.jpg"]
    assert (row["age"], row["gender"], row["race"]) == (25, "male", "indian")
    assert (row["race_code"], row["gender_code"], row["captured_at"]) == ("3", "0", "20170116174525125")
    check_face_table(table)


def test_rejected_files_carry_sample_id_and_reason(tree: Path) -> None:
    result = read_utkface(tree)
    expected = tuple(Reject(f"UTKFace/{n}", r) for n, r in sorted(KNOWN_MALFORMED_ALIGNED.items()))
    assert result.rejected == expected


def test_hidden_files_and_subfolders_are_ignored(tree: Path) -> None:
    result = read_utkface(tree)
    seen = set(result.table["sample_id"]) | {r.sample_id for r in result.rejected}
    assert not any("/." in s for s in seen)
    assert not any("nested" in s for s in seen)
    assert len(seen) == len(VALID_ALIGNED) + len(KNOWN_MALFORMED_ALIGNED)
    assert all((tree / "UTKFace" / name).exists() for name in HIDDEN)


def test_pointing_at_the_utkface_folder_itself_gives_the_same_result(tree: Path) -> None:
    from_root = read_utkface(tree)
    from_folder = read_utkface(tree / "UTKFace")
    pd.testing.assert_frame_equal(from_root.table, from_folder.table)
    assert from_folder.rejected == from_root.rejected
    assert from_folder.root == str(tree)
    assert from_folder.table["sample_id"].str.startswith("UTKFace/").all()


def test_pointing_at_dot_inside_utkface(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree / "UTKFace")
    result = read_utkface(".")
    assert result.table["sample_id"].tolist() == sorted(f"UTKFace/{n}" for n in VALID_ALIGNED)


def test_images_are_not_opened(tmp_path: Path) -> None:
    write_files(tmp_path, [f"UTKFace/{n}" for n in VALID_ALIGNED], content=b"not a jpeg")
    assert len(read_utkface(tmp_path).table) == len(VALID_ALIGNED)


def test_fixture_images_are_valid_solid_colour_jpegs(tree: Path) -> None:
    with Image.open(tree / "UTKFace" / VALID_ALIGNED[0]) as image:
        assert image.format == "JPEG" and image.size == (8, 8)
    assert jpeg_bytes()[:2] == b"\xff\xd8"


def test_order_is_deterministic_whatever_the_creation_order(tmp_path: Path) -> None:
    names = [f"UTKFace/{n}" for n in (*VALID_ALIGNED, *KNOWN_MALFORMED_ALIGNED)]
    results = []
    for seed in (1, 2):
        shuffled = names[:]
        random.Random(seed).shuffle(shuffled)
        results.append(read_utkface(write_files(tmp_path / str(seed), shuffled)))
    pd.testing.assert_frame_equal(results[0].table, results[1].table)
    assert results[0].rejected == results[1].rejected
    assert results[0].table["sample_id"].is_monotonic_increasing


def test_find_lists_every_candidate_sorted(tree: Path) -> None:
    base, paths = find_utkface_images(tree / "UTKFace")
    assert base == tree
    assert paths == sorted(f"UTKFace/{n}" for n in (*VALID_ALIGNED, *KNOWN_MALFORMED_ALIGNED))


def test_in_the_wild_variant(tree: Path) -> None:
    write_files(tree, ["part3/25_0_3_20170116174525125.jpg.chip.jpg"])
    result = read_utkface(tree, variant="in_the_wild")
    assert result.table["sample_id"].tolist() == sorted(VALID_IN_THE_WILD)
    assert result.folders == ("part1", "part2", "part3")
    expected = dict(KNOWN_MALFORMED_IN_THE_WILD)
    expected["part3/25_0_3_20170116174525125.jpg.chip.jpg"] = (
        "wrong suffix for variant 'in_the_wild': expected '.jpg', got '.jpg.chip.jpg'"
    )
    assert result.rejected == tuple(Reject(s, r) for s, r in sorted(expected.items()))
    # pointing at one part reads the dataset root (all parts)
    assert read_utkface(tree / "part2", variant="in_the_wild").table.equals(result.table)


def test_in_the_wild_partial_download_reads_the_parts_present(tmp_path: Path) -> None:
    write_files(tmp_path, ["part2/40_0_1_20170113150547183.jpg"])
    result = read_utkface(tmp_path, variant="in_the_wild")
    assert result.folders == ("part2",)
    assert result.table["sample_id"].tolist() == ["part2/40_0_1_20170113150547183.jpg"]


def test_crop_part1_variant(tree: Path) -> None:
    result = read_utkface(tree, variant="crop_part1")
    assert result.table["sample_id"].tolist() == [
        "crop_part1/1_0_2_20161219140530307.jpg.chip.jpg",
        "crop_part1/26_1_0_20170116171048641.jpg.chip.jpg",
    ]
    assert [r.reason for r in result.rejected] == [
        "race field missing: 3 fields instead of 4",
        "race field missing: 3 fields instead of 4, and gender code '3' not 0/1",
    ]


# ------------------------------------------------------------------------------------------------- errors


def test_missing_root(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(UserInputError) as error:
        read_utkface(missing)
    assert str(error.value) == f"UTKFace root {missing} does not exist."


def test_root_is_a_file(tmp_path: Path) -> None:
    file = tmp_path / "UTKFace.tar.gz"
    file.write_bytes(b"")
    with pytest.raises(UserInputError, match="is not a folder"):
        read_utkface(file)


def test_root_without_the_variant_folder(tmp_path: Path) -> None:
    (tmp_path / "utkface").mkdir()
    with pytest.raises(UserInputError) as error:
        read_utkface(tmp_path)
    message = str(error.value)
    assert message.startswith(f"UTKFace root {tmp_path} has no UTKFace/ folder")
    assert "did you mean 'utkface'" in message
    with pytest.raises(UserInputError, match="no part1/ or part2/ or part3/ folder"):
        read_utkface(tmp_path, variant="in_the_wild")


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "UTKFace").mkdir()
    write_files(tmp_path, [f"UTKFace/{HIDDEN[0]}"])  # hidden files do not count
    with pytest.raises(UserInputError) as error:
        read_utkface(tmp_path)
    assert str(error.value) == (
        f"No UTKFace images under {tmp_path / 'UTKFace'}: "
        "expected files named like 25_0_3_20170116174525125.jpg.chip.jpg."
    )


def test_folder_with_only_rejected_files(tmp_path: Path) -> None:
    write_files(tmp_path, ["UTKFace/README.txt", "UTKFace/25_0_3_20170116174525125.jpg"])
    with pytest.raises(UserInputError, match=r"all 2 files were rejected, e\.g\. UTKFace/25_0_3_20170116174525125\.jpg \(wrong suffix"):
        read_utkface(tmp_path)


def test_unknown_variant_when_reading(tree: Path) -> None:
    with pytest.raises(UserInputError, match=r"did you mean 'aligned'"):
        read_utkface(tree, variant="algned")


# ------------------------------------------------------------------------------------------------ summary


def test_verify_summary_counts(tree: Path) -> None:
    summary = verify_summary(read_utkface(tree))
    json.dumps(summary, allow_nan=False)
    assert summary["dataset"] == "utkface"
    assert summary["root"] == str(tree)
    assert summary["variant"] == "aligned"
    assert summary["n_samples"] == len(VALID_ALIGNED) == 17
    assert summary["n_rejected"] == len(KNOWN_MALFORMED_ALIGNED) == 5
    assert summary["rejected"] == [
        {"sample_id": f"UTKFace/{n}", "reason": r} for n, r in sorted(KNOWN_MALFORMED_ALIGNED.items())
    ]
    groups = summary["groups"]
    assert groups["race"] == {"white": 6, "black": 3, "asian": 3, "indian": 3, "others": 2}
    assert groups["gender"] == {"male": 9, "female": 8}
    assert groups["age_band"] == {
        "0-2": 2, "3-9": 2, "10-19": 2, "20-29": 4, "30-39": 1, "40-49": 1,
        "50-59": 1, "60-69": 2, "70+": 2,
    }
    assert list(groups["age_band"]) == list(age_band_names(AGE_BAND_EDGES))


def test_verify_summary_of_a_plain_read_result_needs_a_root(tree: Path) -> None:
    result = read_utkface(tree)
    plain = ReadResult(result.table, result.rejected)
    with pytest.raises(ValueError):
        verify_summary(plain)
    assert verify_summary(plain, root="/data")["root"] == "/data"


# ---------------------------------------------------------------------------------------------- age bands


def test_age_band_names_and_edges() -> None:
    assert AGE_BAND_EDGES == (0, 3, 10, 20, 30, 40, 50, 60, 70)
    assert age_band_names(AGE_BAND_EDGES) == ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")
    ages = [0, 2, 3, 9, 10, 19, 20, 29, 59, 60, 69, 70, 116]
    assert age_band(ages, AGE_BAND_EDGES).tolist() == [
        "0-2", "0-2", "3-9", "3-9", "10-19", "10-19", "20-29", "20-29", "50-59", "60-69", "60-69", "70+", "70+",
    ]


def test_age_band_keeps_the_index_and_missing_values() -> None:
    bands = age_band(pd.Series([2, pd.NA, 70], index=[10, 11, 12], dtype="Int64"), AGE_BAND_EDGES)
    assert bands.index.tolist() == [10, 11, 12]
    assert bands.iloc[0] == "0-2" and pd.isna(bands.iloc[1]) and bands.iloc[2] == "70+"
    assert bands.cat.ordered and list(bands.cat.categories) == list(age_band_names(AGE_BAND_EDGES))


def test_age_band_custom_edges_and_bad_input() -> None:
    assert age_band([17, 18, 64, 65], edges=(0, 18, 65)).tolist() == ["0-17", "18-64", "18-64", "65+"]
    assert age_band_names((0, 1, 5)) == ("0", "1-4", "5+")
    with pytest.raises(ValueError):
        age_band([-1], AGE_BAND_EDGES)
    with pytest.raises(ValueError):
        age_band([1], edges=(0, 10, 5))
