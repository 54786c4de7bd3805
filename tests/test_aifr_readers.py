"""Strict readers for the age-invariant face recognition datasets: MORPH, CACD (+ CACD-VS), FG-NET, AgeDB."""

from __future__ import annotations

import json
import pickle
import pickletools
import random
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
from fixtures_aifr import (
    AGEDB_MALFORMED,
    AGEDB_VALID,
    CACD_CELEBRITIES,
    CACD_DUPLICATE,
    CACD_FILES_UNLISTED,
    CACD_META_REJECTED,
    CACD_VALID,
    FGNET_MALFORMED,
    FGNET_VALID,
    MORPH_CONFLICTS,
    MORPH_CSV,
    MORPH_DUPLICATE_ROWS,
    MORPH_HEADER,
    MORPH_MALFORMED,
    MORPH_NO_IMAGE_ROW,
    MORPH_VALID,
    agedb_pairs,
    cacd_metadata_entries,
    morph_rows,
    write_agedb_30_bin,
    write_agedb_tree,
    write_cacd_mat_v73,
    write_cacd_meta_v5,
    write_cacd_tree,
    write_cacd_vs_tree,
    write_fgnet_tree,
    write_morph_tree,
)
from fixtures_utkface import jpeg_bytes, write_files

from facebench.data import agedb, cacd, fgnet, morph
from facebench.data.agedb import (
    AgeDBName,
    agedb_bin_bytes,
    parse_agedb_name,
    read_agedb,
    read_agedb_bin,
    write_agedb_bin,
)
from facebench.data.cacd import CACDName, parse_cacd_name, read_cacd, read_cacd_metadata, read_cacd_vs
from facebench.data.fgnet import FGNETName, parse_fgnet_name, read_fgnet
from facebench.data.morph import Conflict, MorphRow, parse_morph_row, read_morph
from facebench.data.table import RACES, Parsed, ReadResult, Reject, check_face_table
from facebench.errors import UserInputError

# ================================================================================================== MORPH


@pytest.fixture()
def morph_root(tmp_path: Path) -> Path:
    return write_morph_tree(tmp_path / "data")


def _photo(row: str) -> str:
    return row.rsplit(",", 1)[1]


def _expected_morph_rejects(rows: list[str], *, check_files: bool = True) -> tuple[Reject, ...]:
    line = {row: i + 2 for i, row in enumerate(rows)}  # line 1 is the header
    expected = []
    for row, (photo, reason) in MORPH_MALFORMED.items():
        locator = f"MORPH_nonCommercial/{photo}" if photo else f"{MORPH_CSV}:{line[row]}"
        expected.append(Reject(locator, reason))
    lines = ", ".join(str(line[r]) for r in MORPH_DUPLICATE_ROWS)
    for row in MORPH_DUPLICATE_ROWS:
        expected.append(Reject(f"MORPH_nonCommercial/{_photo(row)}", f"photo listed on 2 rows (lines {lines})"))
    if check_files:
        expected.append(Reject(f"MORPH_nonCommercial/{_photo(MORPH_NO_IMAGE_ROW)}", "image file missing"))
    return tuple(sorted(expected, key=lambda r: (r.sample_id, r.reason)))


def test_morph_table_columns_and_dtypes(morph_root: Path) -> None:
    result = read_morph(morph_root)
    assert isinstance(result, ReadResult)
    table = result.table
    assert list(table.columns) == [
        "sample_id", "subject_id", "age", "gender", "race", "race_code", "gender_code", "race_detail",
        "dob", "doa", "picture_num", "age_diff", "facial_hair", "glasses",
    ]
    assert table["age"].dtype == "int64" and table["picture_num"].dtype == "int64"
    assert table["age_diff"].dtype == "Int64"
    assert isinstance(table["subject_id"].dtype, pd.StringDtype) and table["subject_id"].dtype.na_value is pd.NA
    assert table.index.equals(pd.RangeIndex(len(table)))
    assert table["sample_id"].is_monotonic_increasing
    assert table["facial_hair"].isna().all() and table["glasses"].isna().all()
    assert set(table["race"]) <= set(RACES)
    check_face_table(table)
    assert result.root == str(morph_root) and result.variant == "album2"


def test_morph_valid_rows_read_to_their_labels(morph_root: Path) -> None:
    table = read_morph(morph_root).table.set_index("sample_id")
    expected_ids = sorted(f"MORPH_nonCommercial/{_photo(r)}" for r in (*MORPH_VALID, *MORPH_CONFLICTS))
    assert table.index.tolist() == expected_ids
    for row, want in MORPH_VALID.items():
        got = table.loc[f"MORPH_nonCommercial/{_photo(row)}"]
        fields = row.split(",")
        assert (got["subject_id"], got["age"], got["gender"], got["race"], got["race_detail"]) == (
            want.subject_id, want.age, want.gender, want.race, want.race_detail)
        assert (got["dob"], got["doa"], got["picture_num"]) == (want.dob, want.doa, want.picture_num)
        assert (pd.isna(got["age_diff"]) if want.age_diff is None else got["age_diff"] == want.age_diff)
        assert (got["race_code"], got["gender_code"]) == (fields[4], fields[5])


def test_morph_hispanic_and_other_map_to_others_with_race_detail(morph_root: Path) -> None:
    table = read_morph(morph_root).table
    by_code = table.groupby("race_code")[["race", "race_detail"]].agg(lambda s: sorted(set(s)))
    assert by_code.loc["H"].tolist() == [["others"], ["hispanic"]]
    assert by_code.loc["O"].tolist() == [["others"], ["other"]]
    assert by_code.loc["B"].tolist() == [["black"], ["black"]]


def test_morph_name_conflicts_are_reported_and_the_csv_wins(morph_root: Path) -> None:
    result = read_morph(morph_root)
    expected = tuple(sorted((Conflict(f"MORPH_nonCommercial/{_photo(r)}", why) for r, why in MORPH_CONFLICTS.items()),
                            key=lambda c: c.sample_id))
    assert result.conflicts == expected
    table = result.table.set_index("sample_id")
    assert table.loc["MORPH_nonCommercial/Album2/307021_00F28.JPG", "gender"] == "male"
    assert table.loc["MORPH_nonCommercial/Album2/322863_00M23.JPG", "gender"] == "female"
    assert table.loc["MORPH_nonCommercial/Album2/282949_00M38.JPG", "gender"] == "female"
    assert table.loc["MORPH_nonCommercial/Album2/100005_00M31.JPG", "age"] == 30
    assert table.loc["MORPH_nonCommercial/Album2/100007_01M30.JPG", "subject_id"] == "100006"


def test_morph_rejects_carry_locator_and_reason(morph_root: Path) -> None:
    assert read_morph(morph_root).rejected == _expected_morph_rejects(morph_rows())


def test_morph_missing_image_is_a_reject_only_when_checking_files(morph_root: Path) -> None:
    result = read_morph(morph_root, check_files=False)
    assert f"MORPH_nonCommercial/{_photo(MORPH_NO_IMAGE_ROW)}" in set(result.table["sample_id"])
    assert result.rejected == _expected_morph_rejects(morph_rows(), check_files=False)
    # without check_files the images need not be there at all
    labels_only = write_morph_tree(morph_root.parent / "labels", images=False)
    assert read_morph(labels_only, check_files=False).table.equals(result.table)
    with pytest.raises(UserInputError, match=r"has no Album2/ folder; .*check_files=False"):
        read_morph(labels_only)


@pytest.mark.parametrize(
    "row, picture_num, conflict",
    [
        ("9055,0,06/15/1950,07/01/2004,B,M,,54,,,Album2/009055_0M54.JPG", 0, None),  # 1-digit picture number
        ("320711,0,03/13/1971,10/12/2005,B,M,,34,,,Album2/320711_00M34.JPG", 0, None),  # 2-digit
        ("320711,12,03/13/1971,04/02/2008,B,M,,37,,,Album2/320711_12M37.JPG", 12, None),
        ("320711,1,03/13/1971,04/02/2008,B,M,,37,,,Album2/320711_2M37.JPG", 1,
         "file name picture number 2 but CSV picture_num 1 (CSV kept)"),
        ("307021,0,01/02/1977,06/01/2005,B,M,,28,,,Album2/307021_00F28.JPG", 0,
         "file name gender 'F' but CSV gender 'M' (CSV kept)"),
    ],
)
def test_morph_picture_numbers_and_name_letters(row: str, picture_num: int, conflict: str | None) -> None:
    parsed = parse_morph_row(row.split(",")).value
    assert isinstance(parsed, MorphRow)
    assert parsed.picture_num == picture_num and parsed.conflict == conflict


@pytest.mark.parametrize(
    "dob, doa, age, ok",
    [
        ("05/20/1980", "05/20/2000", 20, True),  # on the birthday
        ("05/20/1980", "05/19/2000", 19, True),  # the day before
        ("05/20/1980", "05/19/2000", 20, False),
        ("02/29/1984", "02/28/2001", 16, True),
        ("02/29/1984", "03/01/2001", 17, True),
        ("02/29/1984", "02/28/2001", 17, False),
        ("02/30/1984", "03/01/2001", 17, False),  # no such date
        ("05/20/1980", "05/20/1980", 0, True),
    ],
)
def test_morph_age_must_equal_floor_years_between_dob_and_doa(dob: str, doa: str, age: int, ok: bool) -> None:
    row = f"1,0,{dob},{doa},W,F,,{age},,,Album2/000001_00F{age}.JPG"
    parsed = parse_morph_row(row.split(","))
    assert parsed.ok is ok and isinstance(parsed.value, MorphRow) is ok, parsed


def test_morph_root_can_be_the_release_folder_itself(morph_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from_root = read_morph(morph_root)
    from_folder = read_morph(morph_root / "MORPH_nonCommercial")
    pd.testing.assert_frame_equal(from_root.table, from_folder.table)
    assert from_folder.root == str(morph_root) and from_folder.rejected == from_root.rejected
    monkeypatch.chdir(morph_root / "MORPH_nonCommercial")
    assert read_morph(".").table["sample_id"].tolist() == from_root.table["sample_id"].tolist()


def test_morph_crlf_and_row_order_do_not_matter(tmp_path: Path, morph_root: Path) -> None:
    reference = read_morph(morph_root)
    crlf = read_morph(write_morph_tree(tmp_path / "crlf", newline="\r\n"))
    pd.testing.assert_frame_equal(crlf.table, reference.table)
    assert crlf.rejected == reference.rejected
    rows = morph_rows()
    random.Random(3).shuffle(rows)
    shuffled = read_morph(write_morph_tree(tmp_path / "shuffled", rows))
    pd.testing.assert_frame_equal(shuffled.table, reference.table)
    assert shuffled.rejected == _expected_morph_rejects(rows)


def test_morph_blank_lines_are_skipped(tmp_path: Path) -> None:
    root = write_morph_tree(tmp_path, list(MORPH_VALID))
    csv = root / MORPH_CSV
    csv.write_text(csv.read_text() + "\n\n", encoding="utf-8")
    assert len(read_morph(root).table) == len(MORPH_VALID) and read_morph(root).rejected == ()


def test_morph_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(UserInputError) as error:
        read_morph(missing)
    assert str(error.value) == f"MORPH root {missing} does not exist."
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match=r"^MORPH root .*empty has no MORPH_nonCommercial/ folder"):
        read_morph(tmp_path / "empty")
    (tmp_path / "typo" / "morph_noncommercial").mkdir(parents=True)
    with pytest.raises(UserInputError, match=r"did you mean 'morph_noncommercial'"):
        read_morph(tmp_path / "typo")
    (tmp_path / "nocsv" / "MORPH_nonCommercial").mkdir(parents=True)
    with pytest.raises(UserInputError) as error:
        read_morph(tmp_path / "nocsv")
    assert str(error.value) == f"MORPH CSV {tmp_path / 'nocsv' / MORPH_CSV} does not exist."
    renamed = tmp_path / "renamed"
    write_morph_tree(tmp_path / "r", list(MORPH_VALID)).joinpath("MORPH_nonCommercial").rename(renamed)
    with pytest.raises(UserInputError, match="is not named MORPH_nonCommercial/"):
        read_morph(renamed)


def test_morph_header_only_empty_and_bad_header(tmp_path: Path) -> None:
    root = write_morph_tree(tmp_path, [])
    with pytest.raises(UserInputError, match="has a header but no rows"):
        read_morph(root)
    (root / MORPH_CSV).write_bytes(b"")
    with pytest.raises(UserInputError, match=r"morph_2008_nonCommercial\.csv is empty\.$"):
        read_morph(root)
    (root / MORPH_CSV).write_text(MORPH_HEADER.replace("doa", "date") + "\n", encoding="utf-8")
    with pytest.raises(UserInputError, match=r"has header 'id_num,picture_num,dob,date,.*expected 'id_num,"):
        read_morph(root)
    (root / MORPH_CSV).write_bytes(MORPH_HEADER.encode() + b"\n\xff\xfe,\n")
    with pytest.raises(UserInputError, match="is not UTF-8 text"):
        read_morph(root)


def test_morph_all_rows_rejected(tmp_path: Path) -> None:
    root = write_morph_tree(tmp_path, list(MORPH_MALFORMED)[:2])
    with pytest.raises(UserInputError, match=r"all 2 rows were rejected, e\.g\. .*csv:2 \(12 fields instead of 11\)"):
        read_morph(root)


def test_morph_unknown_variant(morph_root: Path) -> None:
    with pytest.raises(UserInputError, match=r"did you mean 'album2'"):
        read_morph(morph_root, variant="album")


def test_morph_verify_summary(morph_root: Path) -> None:
    summary = morph.verify_summary(read_morph(morph_root))
    json.dumps(summary, allow_nan=False)
    assert summary["dataset"] == "morph" and summary["n_samples"] == len(MORPH_VALID) + len(MORPH_CONFLICTS) == 16
    assert summary["n_subjects"] == 12
    assert summary["n_conflicts"] == 5 and summary["n_rejected"] == len(_expected_morph_rejects(morph_rows()))
    assert summary["groups"]["race"] == {"white": 4, "black": 8, "asian": 2, "indian": 0, "others": 2}
    assert summary["groups"]["race_detail"] == {"black": 8, "white": 4, "asian": 2, "hispanic": 1, "other": 1}
    assert summary["groups"]["gender"] == {"male": 10, "female": 6}


# =================================================================================================== CACD


@pytest.mark.parametrize(
    "name, expected",
    [
        ("53_Robin_Williams_0001.jpg", CACDName(53, "Robin_Williams", 1)),
        ("23_Katie_Findlay_0013.jpg", CACDName(23, "Katie_Findlay", 13)),
        ("41_Jean_Claude_Van_Damme_0005.jpg", CACDName(41, "Jean_Claude_Van_Damme", 5)),
        ("16_Madonna_0100.jpg", CACDName(16, "Madonna", 100)),
        ("30_Robert_Downey_Jr._0002.jpg", CACDName(30, "Robert_Downey_Jr.", 2)),
        ("53_Robin_Williams_0001.jpg\n", "not a CACD image name: does not end in '.jpg'"),
        ("٥٣_Robin_Williams_0001.jpg", "age '٥٣' not a whole number"),
        ("53_Robin_Williams_00001.jpg", "image index '00001' not 4 digits"),
        ("x_Robin_Williams_1.jpg", "age 'x' not a whole number; image index '1' not 4 digits"),
        *CACD_FILES_UNLISTED.items(),
    ],
)
def test_cacd_names(name: str, expected: CACDName | str) -> None:
    if expected == "not listed in the metadata":
        assert isinstance(parse_cacd_name(name).value, CACDName)
    elif isinstance(expected, CACDName):
        assert parse_cacd_name(name) == Parsed.accept(expected)
    else:
        assert parse_cacd_name(name) == Parsed.reject(expected)


def _expected_cacd_rejects() -> tuple[Reject, ...]:
    expected = [Reject(f"CACD2000/{e.name}", why) for e, why in CACD_META_REJECTED.items()]
    expected += [Reject(f"CACD2000/{CACD_DUPLICATE.name}", "listed 2 times in the metadata")] * 2
    expected += [Reject(f"CACD2000/{n}", why) for n, why in CACD_FILES_UNLISTED.items()]
    return tuple(sorted(expected, key=lambda r: (r.sample_id, r.reason)))


def test_cacd_with_v5_metadata(tmp_path: Path) -> None:
    root = write_cacd_tree(tmp_path, meta="v5")
    result = read_cacd(root)
    assert result.metadata == str(root / "celebrity2000_meta.mat") and result.variant == "metadata"
    table = result.table
    assert list(table.columns) == [
        "sample_id", "subject_id", "age", "gender", "race", "race_code", "gender_code",
        "name", "image_index", "year", "rank", "lfw", "birth",
    ]
    assert table["sample_id"].tolist() == sorted(f"CACD2000/{e.name}" for e in CACD_VALID)
    for column in ("gender", "race", "race_code", "gender_code"):
        assert table[column].isna().all()
    for column in ("year", "rank", "lfw", "birth"):
        assert table[column].dtype == "Int64"
    by_id = table.set_index("sample_id")
    for entry in CACD_VALID:
        row = by_id.loc[f"CACD2000/{entry.name}"]
        assert (row["subject_id"], row["age"], row["year"], row["rank"], row["lfw"], row["birth"]) == (
            str(entry.identity), entry.age, entry.year, entry.rank, entry.lfw, entry.birth)
    assert by_id.loc["CACD2000/49_Jean_Claude_Van_Damme_0005.jpg", "name"] == "Jean_Claude_Van_Damme"
    assert by_id.loc["CACD2000/23_Katie_Findlay_0013.jpg", "image_index"] == 13
    assert result.rejected == _expected_cacd_rejects()
    check_face_table(table)


def test_cacd_v5_and_v73_read_to_the_same_table(tmp_path: Path) -> None:
    v5 = read_cacd(write_cacd_tree(tmp_path / "v5", meta="v5"))
    v73 = read_cacd(write_cacd_tree(tmp_path / "v73", meta="v73"))
    assert v73.metadata == str(tmp_path / "v73" / "celebrity2000.mat")
    pd.testing.assert_frame_equal(v5.table, v73.table)
    assert v5.rejected == v73.rejected
    frame5 = read_cacd_metadata(tmp_path / "v5" / "celebrity2000_meta.mat")
    frame73 = read_cacd_metadata(tmp_path / "v73" / "celebrity2000.mat")
    pd.testing.assert_frame_equal(frame5, frame73)
    assert frame5["name"].tolist() == [e.name for e in cacd_metadata_entries()]
    assert "24_Zoë_Kravitz_0002.jpg" in frame73["name"].tolist()  # UTF-16 decoded


def test_cacd_fixture_files_have_the_release_layouts(tmp_path: Path) -> None:
    v5 = write_cacd_meta_v5(tmp_path / "celebrity2000_meta.mat")
    contents = scipy.io.loadmat(v5)
    image = contents["celebrityImageData"]
    assert image.shape == (1, 1) and image.dtype.names == cacd.IMAGE_FIELDS
    assert contents["celebrityData"].dtype.names == cacd.CELEBRITY_FIELDS
    record = image[0, 0]
    assert record[0].dtype == np.uint8 and record[1].dtype == np.uint16 and record[3].shape == (0, 0)
    assert [str(x[0][0]) for x in record[7]] == [e.name for e in cacd_metadata_entries()]
    assert str(contents["celebrityData"][0, 0][0][0, 0][0]) == CACD_CELEBRITIES[0][0]
    v73 = write_cacd_mat_v73(tmp_path / "celebrity2000.mat")
    with pytest.raises(NotImplementedError):
        scipy.io.loadmat(v73)
    assert v73.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    with h5py.File(v73, "r") as handle:
        assert sorted(handle.keys()) == ["#refs#", "celebrityData", "celebrityImageData"]
        group = handle["celebrityImageData"]
        assert sorted(group.keys()) == sorted(cacd.IMAGE_FIELDS)
        assert group["age"].shape == (1, len(cacd_metadata_entries())) and group["age"].dtype == np.float64
        first = handle[group["name"][0, 0]][()]
        assert first.dtype == np.uint16 and first.tobytes().decode("utf-16") == CACD_VALID[0].name


def test_cacd_prefers_the_meta_file_and_accepts_an_explicit_path(tmp_path: Path) -> None:
    root = write_cacd_tree(tmp_path, meta="both")
    assert read_cacd(root).metadata == str(root / "celebrity2000_meta.mat")
    moved = tmp_path / "elsewhere.mat"
    (root / "celebrity2000.mat").rename(moved)
    (root / "celebrity2000_meta.mat").unlink()
    result = read_cacd(root / "CACD2000", metadata=moved)  # root may be CACD2000/ itself
    assert result.metadata == str(moved) and result.root == str(root)
    assert len(result.table) == len(CACD_VALID)


def test_cacd_without_checking_files_reads_the_metadata_alone(tmp_path: Path) -> None:
    write_cacd_meta_v5(tmp_path / "celebrity2000_meta.mat")  # no CACD2000/ at all
    with pytest.raises(UserInputError, match=r"has no CACD2000/ folder; .*pass check_files=False"):
        read_cacd(tmp_path)
    result = read_cacd(tmp_path, check_files=False)
    assert "CACD2000/40_Katie_Findlay_0020.jpg" in set(result.table["sample_id"])
    assert {r.reason for r in result.rejected} == {"file name age 30 but metadata age 31", "listed 2 times in the metadata"}


def test_cacd_names_variant_uses_the_file_names(tmp_path: Path) -> None:
    root = write_cacd_tree(tmp_path, meta=None)
    result = read_cacd(root, variant="names")
    assert result.metadata is None
    table = result.table.set_index("sample_id")
    accepted = [e.name for e in CACD_VALID] + ["30_Robin_Williams_0004.jpg", CACD_DUPLICATE.name, "33_Not_Listed_0001.jpg"]
    assert table.index.tolist() == sorted(f"CACD2000/{n}" for n in accepted)
    assert table.loc["CACD2000/49_Jean_Claude_Van_Damme_0005.jpg", "subject_id"] == "Jean_Claude_Van_Damme"
    assert table.loc["CACD2000/30_Robin_Williams_0004.jpg", "age"] == 30
    for column in ("year", "rank", "lfw", "birth"):
        assert table[column].isna().all()
    expected = sorted((Reject(f"CACD2000/{n}", r) for n, r in CACD_FILES_UNLISTED.items() if r != "not listed in the metadata"),
                      key=lambda r: (r.sample_id, r.reason))
    assert result.rejected == tuple(expected)


def test_cacd_metadata_problems(tmp_path: Path) -> None:
    root = write_cacd_tree(tmp_path, meta=None)
    with pytest.raises(UserInputError, match=r"has neither celebrity2000_meta\.mat nor celebrity2000\.mat; .*variant 'names'"):
        read_cacd(root)
    (root / "celebrity2000_meta.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(UserInputError, match=r"celebrity2000_meta\.mat is not a readable MATLAB \.mat file"):
        read_cacd(root)
    scipy.io.savemat(root / "celebrity2000_meta.mat", {"celebrityImageData": {"age": np.zeros((2, 1))}})
    with pytest.raises(UserInputError, match=r"has no field name, identity, year, rank, lfw, birth in celebrityImageData"):
        read_cacd(root)
    with pytest.raises(UserInputError, match=r"CACD metadata file .*missing\.mat does not exist\."):
        read_cacd(root, metadata=tmp_path / "missing.mat")


def test_cacd_metadata_values_must_be_whole(tmp_path: Path) -> None:
    root = write_cacd_tree(tmp_path, meta=None)
    entry = CACD_VALID[0]
    import dataclasses

    write_cacd_mat_v73(root / "celebrity2000.mat", [entry, dataclasses.replace(CACD_VALID[1], year=2005.5)])  # type: ignore[arg-type]
    result = read_cacd(root, check_files=False)
    assert result.table["sample_id"].tolist() == [f"CACD2000/{entry.name}"]
    assert result.rejected == (Reject(f"CACD2000/{CACD_VALID[1].name}", "metadata year 2005.5 not a whole number"),)


def test_cacd_v73_names_that_are_not_text_are_rejected(tmp_path: Path) -> None:
    root = write_cacd_tree(tmp_path, meta=None)
    path = write_cacd_mat_v73(root / "celebrity2000.mat", CACD_VALID[:3])
    with h5py.File(path, "r+") as handle:
        names = handle["celebrityImageData"]["name"]
        handle[names[0, 0]].attrs["MATLAB_empty"] = np.uint8(1)  # MATLAB's marker of ''
        numbers = handle["#refs#"].create_dataset("not_text", data=np.zeros((3, 1)))
        references = names[()]
        references[0, 1] = numbers.ref
        names[...] = references
    result = read_cacd(root, check_files=False)
    assert result.table["sample_id"].tolist() == [f"CACD2000/{CACD_VALID[2].name}"]
    assert result.rejected == (
        Reject("celebrity2000.mat:entry 1", "metadata name is empty or not text"),
        Reject("celebrity2000.mat:entry 2", "metadata name is empty or not text"),
    )


def test_cacd_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(UserInputError) as error:
        read_cacd(missing)
    assert str(error.value) == f"CACD root {missing} does not exist."
    (tmp_path / "cacd2000").mkdir()
    with pytest.raises(UserInputError, match=r"has no CACD2000/ folder \(did you mean 'cacd2000'\?\)"):
        read_cacd(tmp_path)
    (tmp_path / "root" / "CACD2000").mkdir(parents=True)
    with pytest.raises(UserInputError) as error:
        read_cacd(tmp_path / "root", variant="names")
    assert str(error.value) == (
        f"No CACD images under {tmp_path / 'root' / 'CACD2000'}: expected files named like 53_Robin_Williams_0001.jpg."
    )
    with pytest.raises(UserInputError, match=r"did you mean 'names'"):
        read_cacd(tmp_path / "root", variant="name")


def test_cacd_verify_summary(tmp_path: Path) -> None:
    summary = cacd.verify_summary(read_cacd(write_cacd_tree(tmp_path)))
    json.dumps(summary, allow_nan=False)
    assert summary["n_samples"] == len(CACD_VALID) and summary["n_subjects"] == 4
    assert summary["groups"]["year"] == {"2004": 1, "2005": 1, "2006": 1, "2009": 1, "2012": 1, "2013": 2}


# ------------------------------------------------------------------------------------------------ CACD-VS


@pytest.fixture(scope="module")
def cacd_vs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cacd_vs_tree(tmp_path_factory.mktemp("vs"))


def test_cacd_vs_complete(cacd_vs_root: Path) -> None:
    result = read_cacd_vs(cacd_vs_root)
    pairs = result.pairs
    assert list(pairs.columns) == ["pair_id", "fold", "issame", "sample_id_1", "sample_id_2"]
    assert pairs["pair_id"].tolist() == list(range(4000)) and result.rejected == ()
    assert pairs.groupby("fold").size().tolist() == [400] * 10
    assert pairs.groupby("fold")["issame"].sum().tolist() == [200] * 10
    assert pairs.loc[399, "issame"] == np.False_ and pairs.loc[400, "issame"] == np.True_
    assert pairs.loc[199, "issame"] and not pairs.loc[200, "issame"]
    assert pairs.loc[1234, ["sample_id_1", "sample_id_2"]].tolist() == ["CACD_VS/1234_0.jpg", "CACD_VS/1234_1.jpg"]
    assert read_cacd_vs(cacd_vs_root / "CACD_VS").root == str(cacd_vs_root)


def test_cacd_vs_partial(tmp_path: Path) -> None:
    root = write_cacd_vs_tree(tmp_path, n_pairs=5, skip=["0002_1.jpg"],
                              extra=["4000_0.jpg", "12_0.jpg", "0001_2.jpg", "readme.txt"])
    with pytest.raises(UserInputError, match=r"has 4 of 4000 pairs \(first missing: 0002\); pass require_complete=False"):
        read_cacd_vs(root)
    result = read_cacd_vs(root, require_complete=False)
    assert result.pairs["pair_id"].tolist() == [0, 1, 3, 4]
    assert result.rejected == (
        Reject("CACD_VS/0001_2.jpg", "not a CACD-VS image name: expected {pair:04d}_{0|1}.jpg"),
        Reject("CACD_VS/0002_0.jpg", "half pair: no 0002_1.jpg"),
        Reject("CACD_VS/12_0.jpg", "not a CACD-VS image name: expected {pair:04d}_{0|1}.jpg"),
        Reject("CACD_VS/4000_0.jpg", "pair id 4000 above 3999"),
        Reject("CACD_VS/readme.txt", "not a CACD-VS image name: expected {pair:04d}_{0|1}.jpg"),
    )


def test_cacd_vs_errors(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"^CACD-VS root .*nope does not exist\.$"):
        read_cacd_vs(tmp_path / "nope")
    (tmp_path / "CACD_VS").mkdir()
    with pytest.raises(UserInputError, match=r"^No CACD-VS pairs under .*CACD_VS: expected files named like 0000_0\.jpg"):
        read_cacd_vs(tmp_path)


# ================================================================================================= FG-NET


@pytest.mark.parametrize("name, expected", FGNET_VALID.items())
def test_fgnet_valid_names(name: str, expected: tuple[str, int, str | None]) -> None:
    subject, age, suffix = expected
    assert parse_fgnet_name(name) == Parsed.accept(FGNETName(subject, age, suffix or ""))


@pytest.mark.parametrize("name, reason", [*FGNET_MALFORMED.items(), ("001A02.JPG\n", "not an FG-NET image name: does not end in '.JPG'")])
def test_fgnet_malformed_names(name: str, reason: str) -> None:
    assert parse_fgnet_name(name) == Parsed.reject(reason)


def test_fgnet_tree(tmp_path: Path) -> None:
    root = write_fgnet_tree(tmp_path)
    result = read_fgnet(root)
    table = result.table
    assert list(table.columns) == [
        "sample_id", "subject_id", "age", "gender", "race", "race_code", "gender_code", "image_suffix",
    ]
    assert table["sample_id"].tolist() == sorted(f"FGNET/images/{n}" for n in FGNET_VALID)
    for sample_id, subject, age, suffix in table[["sample_id", "subject_id", "age", "image_suffix"]].itertuples(index=False):
        want = FGNET_VALID[sample_id.split("/")[-1]]
        assert (subject, age) == want[:2] and (pd.isna(suffix) if want[2] is None else suffix == want[2])
    for column in ("gender", "race", "race_code", "gender_code"):
        assert table[column].isna().all()
    assert result.rejected == tuple(Reject(f"FGNET/images/{n}", r) for n, r in sorted(FGNET_MALFORMED.items()))
    check_face_table(table)
    for other in (root / "FGNET", root / "FGNET" / "images"):
        again = read_fgnet(other)
        pd.testing.assert_frame_equal(again.table, table)
        assert again.root == str(root)
    summary = fgnet.verify_summary(result)
    json.dumps(summary, allow_nan=False)
    assert summary["n_subjects"] == 6 and sum(summary["groups"]["age_band"].values()) == len(FGNET_VALID)


def test_fgnet_errors(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"^FG-NET root .*nope does not exist\.$"):
        read_fgnet(tmp_path / "nope")
    (tmp_path / "FGNET").mkdir()
    with pytest.raises(UserInputError, match=r"FG-NET folder .*FGNET has no images/ folder"):
        read_fgnet(tmp_path)
    (tmp_path / "FGNET" / "images").mkdir()
    with pytest.raises(UserInputError) as error:
        read_fgnet(tmp_path)
    assert str(error.value) == f"No FG-NET images under {tmp_path / 'FGNET' / 'images'}: expected files named like 001A02.JPG."
    write_files(tmp_path, ["FGNET/images/1A02.JPG"])
    with pytest.raises(UserInputError, match=r"all 1 files were rejected, e\.g\. FGNET/images/1A02\.JPG \(subject '1'"):
        read_fgnet(tmp_path)
    (tmp_path / "other" / "fg-net").mkdir(parents=True)
    with pytest.raises(UserInputError, match=r"has no FGNET/images/ folder \(did you mean 'fg-net'\?\)"):
        read_fgnet(tmp_path / "other")


# ================================================================================================== AgeDB


@pytest.mark.parametrize("name, expected", AGEDB_VALID.items())
def test_agedb_valid_names(name: str, expected: tuple[str, int, str, str, int]) -> None:
    parsed = parse_agedb_name(name).value
    assert isinstance(parsed, AgeDBName)
    assert (parsed.name, parsed.age, parsed.gender_code, parsed.image_num) == (expected[0], expected[1], expected[3], expected[4])


@pytest.mark.parametrize("name, reason", AGEDB_MALFORMED.items())
def test_agedb_malformed_names(name: str, reason: str) -> None:
    assert parse_agedb_name(name) == Parsed.reject(reason)


def test_agedb_tree(tmp_path: Path) -> None:
    root = write_agedb_tree(tmp_path)
    result = read_agedb(root)
    table = result.table.set_index("sample_id")
    assert table.index.tolist() == sorted(f"AgeDB/{n}" for n in AGEDB_VALID)
    for name, (subject, age, gender, code, num) in AGEDB_VALID.items():
        row = table.loc[f"AgeDB/{name}"]
        assert (row["subject_id"], row["age"], row["gender"], row["gender_code"], row["image_num"]) == (
            subject, age, gender, code, num)
    assert table["race"].isna().all() and table["race_code"].isna().all()
    assert result.rejected == tuple(Reject(f"AgeDB/{n}", r) for n, r in sorted(AGEDB_MALFORMED.items()))
    check_face_table(result.table)
    pd.testing.assert_frame_equal(read_agedb(root / "AgeDB").table, result.table)
    summary = agedb.verify_summary(result)
    json.dumps(summary, allow_nan=False)
    assert summary["groups"]["gender"] == {"male": 3, "female": 3} and summary["n_subjects"] == 4


def test_agedb_errors(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"^AgeDB root .*nope does not exist\.$"):
        read_agedb(tmp_path / "nope")
    (tmp_path / "agedb").mkdir()
    with pytest.raises(UserInputError, match=r"has no AgeDB/ folder \(did you mean 'agedb'\?\)"):
        read_agedb(tmp_path)
    (tmp_path / "x" / "AgeDB").mkdir(parents=True)
    with pytest.raises(UserInputError) as error:
        read_agedb(tmp_path / "x")
    assert str(error.value) == f"No AgeDB images under {tmp_path / 'x' / 'AgeDB'}: expected files named like 0_MariaCallas_35_f.jpg."


# ------------------------------------------------------------------------------------------- agedb_30.bin


def test_agedb_bin_round_trip(tmp_path: Path) -> None:
    images, issame = agedb_pairs(6)
    path = write_agedb_bin(tmp_path / "agedb_30.bin", images, issame)
    got_images, got_issame = read_agedb_bin(path)
    assert got_images == images and all(type(b) is bytes for b in got_images)
    assert got_issame.dtype == np.bool_ and got_issame.tolist() == issame


def test_agedb_bin_behaves_like_a_python2_pickle(tmp_path: Path) -> None:
    path = write_agedb_30_bin(tmp_path / "agedb_30.bin")
    with open(path, "rb") as handle, pytest.raises(UnicodeDecodeError):
        pickle.load(handle)  # what insightface's first try hits on the real file
    with open(path, "rb") as handle:
        bins, issame_list = pickle.load(handle, encoding="bytes")
    assert isinstance(bins, list) and all(isinstance(b, bytes) for b in bins) and bins[0][:2] == b"\xff\xd8"
    assert isinstance(issame_list, list) and all(type(v) is bool for v in issame_list)
    opcodes = [op.name for op, _, _ in pickletools.genops(path.read_bytes())]
    assert opcodes[0] == "PROTO" and path.read_bytes()[:2] == b"\x80\x02"
    assert "BINSTRING" in opcodes  # JPEGs are over 255 bytes (SHORT_BINSTRING: see the exact-bytes test)
    assert not {"BINBYTES", "SHORT_BINBYTES", "BINUNICODE", "GLOBAL", "STACK_GLOBAL", "REDUCE"} & set(opcodes)


def test_agedb_bin_bytes_match_python2_pickle_dumps() -> None:
    # Python 2.7: pickle.dumps((['\xff', '\xfe'], [True]), 2)
    assert agedb_bin_bytes([b"\xff", b"\xfe"], [True]) == (
        b"\x80\x02]q\x00(U\x01\xffq\x01U\x01\xfeq\x02e]q\x03\x88a\x86q\x04."
    )
    long_image = b"\xff" * 300
    data = agedb_bin_bytes([long_image, b"\xfe"], np.array([False]))
    assert b"T" + (300).to_bytes(4, "little") + long_image in data


def test_agedb_bin_large_lists_use_batches_and_long_memo(tmp_path: Path) -> None:
    images = [b"\xff\xd8" + i.to_bytes(2, "big") for i in range(1202)]
    issame = [i % 2 == 0 for i in range(601)]
    path = write_agedb_bin(tmp_path / "big.bin", images, issame)
    opcodes = [op.name for op, _, _ in pickletools.genops(path.read_bytes())]
    assert opcodes.count("APPENDS") == 3 and "LONG_BINPUT" in opcodes  # 1000 + 202 images, 601 labels
    got_images, got_issame = read_agedb_bin(path)
    assert got_images == images and got_issame.tolist() == issame


def test_agedb_bin_reads_python3_pickles_and_numpy_labels(tmp_path: Path) -> None:
    images, issame = agedb_pairs(2)
    for protocol in (2, 4, 5):
        path = tmp_path / f"p{protocol}.bin"
        path.write_bytes(pickle.dumps((images, np.array(issame)), protocol=protocol))
        got_images, got_issame = read_agedb_bin(path)
        assert got_images == images and got_issame.tolist() == issame


def test_agedb_bin_errors(tmp_path: Path) -> None:
    missing = tmp_path / "agedb_30.bin"
    with pytest.raises(UserInputError) as error:
        read_agedb_bin(missing)
    assert str(error.value) == f"Verification pack {missing} does not exist."
    images, issame = agedb_pairs(3)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(agedb_bin_bytes(images, issame)[:-1])  # truncated: no STOP
    with pytest.raises(UserInputError, match=r"^Verification pack .*bad\.bin is not an insightface \.bin pickle"):
        read_agedb_bin(bad)
    odd = tmp_path / "odd.bin"
    odd.write_bytes(pickle.dumps((images[:5], issame), protocol=2))
    with pytest.raises(UserInputError) as error:
        read_agedb_bin(odd)
    assert str(error.value) == f"Verification pack {odd} has 5 images for 3 pairs; it needs exactly two per pair."
    triple = tmp_path / "triple.bin"
    triple.write_bytes(pickle.dumps((images, issame, 3)))
    with pytest.raises(UserInputError, match=r"does not hold a \(bins, issame_list\) pair\.$"):
        read_agedb_bin(triple)
    ints = tmp_path / "ints.bin"
    ints.write_bytes(pickle.dumps((images, [1, 0, 1])))
    with pytest.raises(UserInputError, match=r"holds a int as issame label 0 instead of a bool\.$"):
        read_agedb_bin(ints)
    with pytest.raises(ValueError, match="exactly two images per pair"):
        write_agedb_bin(tmp_path / "x.bin", images[:3], issame)


def test_agedb_bin_refuses_code_in_the_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Hostile:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "hostile.bin"
    path.write_bytes(pickle.dumps(([Hostile(), jpeg_bytes()], [True])))
    with pytest.raises(UserInputError, match=r"global 'pathlib.*touch' is not allowed"):
        read_agedb_bin(path)
    assert not marker.exists()
