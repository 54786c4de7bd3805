"""Strict readers for CelebA (own parser of the release bytes, agreeing with torchvision's) and FairFace, and the
race annotation file: what they read, and one sentence naming file and line for everything they refuse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from fixtures_celeba import (
    CELEBA_ATTRS,
    CELEBA_BBOX,
    CELEBA_IDENTITY,
    CELEBA_IDS,
    CELEBA_LANDMARKS,
    CELEBA_MISSING_IMAGE,
    CELEBA_PARTITION,
    FAIRFACE_MISSING_IMAGE,
    FAIRFACE_TRAIN,
    FAIRFACE_VAL,
    attr_lines,
    celeba_files,
    write_celeba_tree,
    write_fairface_tree,
)

from facebench.cli import main
from facebench.data.annotations import write_annotations
from facebench.data.celeba import ATTRIBUTES, read_celeba
from facebench.data.datasets import CELEBA, FAIRFACE
from facebench.data.fairface import read_fairface
from facebench.data.table import Reject
from facebench.errors import UserInputError
from facebench.registry import DATASETS

CATEGORIES = ["white", "non_white"]


@pytest.fixture()
def celeba_root(tmp_path: Path) -> Path:
    return write_celeba_tree(tmp_path / "celeba")


# ================================================================================================== CelebA


def test_celeba_reads_every_file_of_the_release_layout(celeba_root: Path) -> None:
    result = read_celeba(celeba_root)
    table = result.table.set_index("image_id")
    kept = [n for n in CELEBA_IDS if n != CELEBA_MISSING_IMAGE]
    assert list(table.index) == kept and result.layout == "release" and result.n_unlisted == 1
    assert result.rejected == (Reject(f"Img/img_align_celeba/{CELEBA_MISSING_IMAGE}", "image file missing"),)
    assert table.loc["000001.jpg", "sample_id"] == "Img/img_align_celeba/000001.jpg"
    for i, name in enumerate(kept):
        row = table.loc[name]
        assert [bool(row[a]) for a in ATTRIBUTES] == [v == 1 for v in CELEBA_ATTRS[i]]
        assert row["subject_id"] == str(CELEBA_IDENTITY[i])
        assert row["partition"] == ("train", "valid", "test")[CELEBA_PARTITION[i]]
        assert row["gender"] == ("male" if CELEBA_ATTRS[i][20] == 1 else "female")
        assert row["gender_code"] == str(CELEBA_ATTRS[i][20])
        assert [row[f"bbox_{c}"] for c in ("x_1", "y_1", "width", "height")] == list(CELEBA_BBOX[i])
        assert [row[c] for c in ("lefteye_x", "lefteye_y", "rightmouth_x", "rightmouth_y")] == [
            CELEBA_LANDMARKS[i][k] for k in (0, 1, 8, 9)]
        assert row["wild_nose_x"] == CELEBA_LANDMARKS[i][4] + 100
    assert result.table["age"].isna().all() and result.table["race"].isna().all()  # CelebA labels neither
    summary = CELEBA.verify_summary(result)
    assert summary["groups"]["partition"] == {"train": 3, "valid": 2, "test": 0}
    assert summary["n_rejected"] == 1 and summary["n_unlisted_images"] == 1


def test_celeba_lf_copy_flat_layout_and_torchvision_root_read_the_same(tmp_path: Path, celeba_root: Path) -> None:
    expected = read_celeba(celeba_root).table.drop(columns="sample_id")
    lf = read_celeba(write_celeba_tree(tmp_path / "lf", newline="\n")).table.drop(columns="sample_id")
    flat_root = write_celeba_tree(tmp_path / "tv" / "celeba", layout="flat")
    flat = read_celeba(flat_root.parent)  # torchvision's root: the folder holding celeba/
    assert flat.layout == "flat" and flat.table["sample_id"].iloc[0] == "img_align_celeba/000001.jpg"
    for other in (lf, flat.table.drop(columns="sample_id")):
        assert other.equals(expected)


def test_celeba_agrees_with_torchvisions_own_parser(celeba_root: Path) -> None:
    """torchvision's CelebA md5-locks its files, but its parser ``_load_csv`` runs on any copy: where it can read a
    file, both readers must give the same names, images and values."""
    from torchvision.datasets import CelebA

    ours = read_celeba(celeba_root)
    shutil.copy(celeba_root / "Img/img_align_celeba/000001.jpg", celeba_root / "Img/img_align_celeba/000006.jpg")
    ours = read_celeba(celeba_root).table.set_index("image_id")
    for folder, name, header in (("Anno", "list_attr_celeba.txt", 1), ("Anno", "identity_CelebA.txt", None),
                                 ("Eval", "list_eval_partition.txt", None), ("Anno", "list_bbox_celeba.txt", 1),
                                 ("Anno", "list_landmarks_align_celeba.txt", 1)):
        theirs = CelebA._load_csv(SimpleNamespace(root=str(celeba_root), base_folder=folder), name, header=header)
        assert theirs.index == list(CELEBA_IDS)
        values = theirs.data.numpy()
        if name == "list_attr_celeba.txt":
            assert theirs.header == [*ATTRIBUTES, ""]  # the trailing space gives torchvision a 41st, empty name
            ours_values = np.where(ours.loc[theirs.index, list(ATTRIBUTES)].to_numpy(bool), 1, -1)
        elif name == "identity_CelebA.txt":
            ours_values = ours.loc[theirs.index, ["subject_id"]].astype(int).to_numpy()
        elif name == "list_eval_partition.txt":
            ours_values = ours.loc[theirs.index, ["partition"]].replace({"train": 0, "valid": 1, "test": 2}).to_numpy()
        elif name == "list_bbox_celeba.txt":
            assert theirs.header == ["image_id", "x_1", "y_1", "width", "height"]
            ours_values = ours.loc[theirs.index, ["bbox_x_1", "bbox_y_1", "bbox_width", "bbox_height"]].to_numpy()
        else:
            ours_values = ours.loc[theirs.index, theirs.header].to_numpy()
        np.testing.assert_array_equal(values, ours_values.astype(np.int64))


def _attr(lines: list[str]) -> dict[str, bytes]:
    return {"Anno/list_attr_celeba.txt": ("\r\n".join(lines) + "\r\n").encode()}


def _with_row(index: int, row: str) -> list[str]:
    lines = attr_lines()
    lines[index] = row
    return lines


ATTR = "list_attr_celeba.txt"
#: Broken copies (label files replaced by their release path) and the words of the one sentence.
CELEBA_REFUSALS = {
    "count-line-wrong": (_attr(attr_lines(count=202599)), f"{ATTR}: line 1 says 202599 images but the file lists 6"),
    "count-line-missing": (_attr(attr_lines()[1:]), f"{ATTR}: line 1 should be the number of images"),
    "row-with-39-values": (_attr(_with_row(4, " ".join(attr_lines()[4].split()[:-1]))),
                           f"{ATTR}: line 5 has 39 values for '000003.jpg'; expected an image name and 40"),
    "value-not-plus-minus-one": (_attr(_with_row(3, attr_lines()[3].replace(" -1", "  0", 1))),
                                 f"{ATTR}: line 4 column"),
    "header-misspelt": (_attr(_with_row(1, attr_lines()[1].replace("Attractive", "Atractive"))),
                        "line 2 is not the attribute names header: name 3 is 'Atractive', expected 'Attractive'"),
    "header-39-names": (_attr(_with_row(1, attr_lines()[1].replace("Young ", ""))), "first missing 'Young'"),
    "duplicate-row": (_attr([*attr_lines()[:2], *attr_lines()[2:4], attr_lines()[3], *attr_lines()[5:]]),
                      f"{ATTR}: line 5 lists 000002.jpg again (first on line 4)"),
    "bad-image-name": (_attr(_with_row(2, attr_lines()[2].replace("000001.jpg", "1.jpg"))),
                       f"{ATTR}: line 3 names image '1.jpg'"),
    "identity-row-missing": ({"Anno/identity_CelebA.txt": b"000001.jpg 2880\r\n000002.jpg 2937\r\n"},
                             "identity_CelebA.txt has no row for 000003.jpg, which list_attr_celeba.txt lists on line 5"),
    "partition-extra-image": ({"Eval/list_eval_partition.txt": celeba_files()["Eval/list_eval_partition.txt"] +
                               b"000007.jpg 2\r\n"},
                              "list_eval_partition.txt: line 7 lists 000007.jpg, which list_attr_celeba.txt does not"),
    "partition-code": ({"Eval/list_eval_partition.txt": celeba_files()["Eval/list_eval_partition.txt"].replace(
        b"000002.jpg 0", b"000002.jpg 3")}, "list_eval_partition.txt: line 2 has '3' for 000002.jpg"),
    "identity-zero": ({"Anno/identity_CelebA.txt": celeba_files()["Anno/identity_CelebA.txt"].replace(b"2937", b"0")},
                      "identity_CelebA.txt: line 2 has '0' for 000002.jpg; expected an identity number of 1 or more"),
    "bbox-header": ({"Anno/list_bbox_celeba.txt": celeba_files()["Anno/list_bbox_celeba.txt"].replace(b"x_1", b"x1")},
                    "list_bbox_celeba.txt: line 2 is not the bounding-box header"),
    "landmark-value": ({"Anno/list_landmarks_align_celeba.txt": celeba_files()["Anno/list_landmarks_align_celeba.txt"]
                        .replace(b" 69  109", b" 69  1o9")}, "list_landmarks_align_celeba.txt: line 3 column lefteye_y"),
}


@pytest.mark.parametrize("case", CELEBA_REFUSALS, ids=list(CELEBA_REFUSALS))
def test_celeba_refuses_a_damaged_label_file_naming_file_and_line(tmp_path: Path, case: str) -> None:
    files, words = CELEBA_REFUSALS[case]
    root = write_celeba_tree(tmp_path / "c", files=files)
    with pytest.raises(UserInputError) as error:
        read_celeba(root)
    message = str(error.value)
    assert words in message and "\n" not in message and message.endswith("."), message


def test_celeba_refuses_a_root_without_the_label_files(tmp_path: Path, celeba_root: Path) -> None:
    (celeba_root / "Eval/list_eval_partition.txt").unlink()
    with pytest.raises(UserInputError, match="has no Eval/list_eval_partition.txt"):
        read_celeba(celeba_root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="neither the release layout"):
        read_celeba(tmp_path / "empty")


# ------------------------------------------------------------------------------------------ annotations

def test_annotations_fill_annotated_race_by_strict_majority_and_give_an_agreement(celeba_root: Path) -> None:
    write_annotations(celeba_root / "labels.csv", [
        ("000001.jpg", "white", "ann_a"), ("000001.jpg", "white", "ann_b"),
        ("000002.jpg", "white", "ann_a"), ("000002.jpg", "non_white", "ann_b"),   # a tie: no label
        ("000003.jpg", "non_white", "ann_a"), ("000003.jpg", "non_white", "ann_b"),
        ("000004.jpg", "white", "ann_a")])                                         # one annotator only
    result = read_celeba(celeba_root, race_annotations="labels.csv", race_categories=CATEGORIES)
    table = result.table.set_index("image_id")
    assert table["annotated_race"].fillna("<none>").tolist() == ["white", "<none>", "non_white", "white", "<none>"]
    assert table["annotation_count"].tolist() == [2, 2, 2, 1, 0]
    assert result.table["race"].isna().all()  # annotators' labels never become the dataset's race
    agreement = result.annotations.agreement()
    assert (agreement.statistic, agreement.n_items, agreement.n_items_left_out) == ("cohen_kappa", 3, 1)
    assert agreement.kappa == pytest.approx(0.4)  # p_o = 2/3, p_e = 4/9 (hand-worked)
    summary = CELEBA.verify_summary(result)
    assert summary["groups"]["annotated_race"] == {"white": 2, "non_white": 1, "missing": 2}
    assert summary["annotations"]["agreement"]["kappa"] == pytest.approx(0.4)


ANNOTATION_REFUSALS = {
    "unknown-image": ("image_id,label\n000001.jpg,white\n123456.jpg,white\n",
                      "line 3 annotates image '123456.jpg', which CelebA (list_attr_celeba.txt) does not list"),
    "label-outside-categories": ("image_id,label\n000001.jpg,whtie\n",
                                 "line 2 has label 'whtie' (did you mean 'white'?), which is not one of the declared "
                                 "categories white, non_white"),
    "same-image-twice": ("image_id,label\n000001.jpg,white\n000001.jpg,white\n",
                         "line 3 labels image '000001.jpg' again (first on line 2)"),
    "same-annotator-twice": ("image_id,label,annotator\n000001.jpg,white,a\n000001.jpg,non_white,a\n",
                             "line 3 labels image '000001.jpg' by annotator 'a' again (first on line 2)"),
    "header": ("image,label\n000001.jpg,white\n", "line 1 is 'image,label'; expected the header"),
    "field-count": ("image_id,label,annotator\n000001.jpg,white\n", "line 2 has 2 fields; expected 3"),
    "empty-annotator": ("image_id,label,annotator\n000001.jpg,white,\n", "line 2 has an empty annotator"),
    "no-rows": ("image_id,label\n", "has a header but no annotations"),
}


@pytest.mark.parametrize("case", ANNOTATION_REFUSALS, ids=list(ANNOTATION_REFUSALS))
def test_annotation_file_refusals_name_file_and_line(celeba_root: Path, case: str) -> None:
    text, words = ANNOTATION_REFUSALS[case]
    (celeba_root / "labels.csv").write_text(text, encoding="utf-8")
    with pytest.raises(UserInputError) as error:
        read_celeba(celeba_root, race_annotations="labels.csv", race_categories=CATEGORIES)
    assert words in str(error.value) and "labels.csv" in str(error.value), str(error.value)


def test_annotation_options_come_together_and_categories_are_checked(celeba_root: Path) -> None:
    with pytest.raises(UserInputError, match="race_annotations needs race_categories too"):
        read_celeba(celeba_root, race_annotations="labels.csv")
    (celeba_root / "labels.csv").write_text("image_id,label\n000001.jpg,white\n")
    with pytest.raises(UserInputError, match="lists a category twice"):
        read_celeba(celeba_root, race_annotations="labels.csv", race_categories=["white", "white"])
    with pytest.raises(UserInputError, match="does not exist"):
        read_celeba(celeba_root, race_annotations="none.csv", race_categories=CATEGORIES)
    assert read_celeba(celeba_root, race_annotations=str(celeba_root / "labels.csv"),
                       race_categories="white, non_white").annotations.categories == tuple(CATEGORIES)


def test_cli_verify_celeba_with_annotation_options(celeba_root: Path, tmp_path: Path, capsys) -> None:
    write_annotations(celeba_root / "labels.csv", [("000001.jpg", "white", "a"), ("000001.jpg", "white", "b"),
                                                   ("000002.jpg", "non_white", "a"), ("000002.jpg", "non_white", "b")])
    argv = ["data", "verify", "celeba", "--root", str(celeba_root), "--no-progress", "--cache-dir", str(tmp_path / "c"),
            "--option", "race_annotations=labels.csv", "--option", "race_categories=[white, non_white]"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "celeba at" in out and "5 images accepted, 1 rejected" in out
    assert "annotated_race: white 1, non_white 1, missing 3" in out and "Cohen's kappa 1.000 over 2 images" in out
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["annotations"]["agreement"]["statistic"] == "cohen_kappa"
    assert main(argv[:8] + ["--option", "race_annotation=labels.csv"]) == 2
    assert "has no option 'race_annotation' (did you mean 'race_annotations'?)" in capsys.readouterr().err
    assert main(argv[:8] + ["--option", "race_annotations"]) == 2
    assert "is not of the form key=value" in capsys.readouterr().err


# ================================================================================================== FairFace


def test_fairface_reads_both_label_files(tmp_path: Path) -> None:
    result = read_fairface(write_fairface_tree(tmp_path / "ff"))
    table = result.table.set_index("sample_id")
    assert len(table) == len(FAIRFACE_TRAIN) + len(FAIRFACE_VAL) - 1
    assert result.rejected == (Reject(FAIRFACE_MISSING_IMAGE, "image file missing"),)
    assert list(table.index[:3]) == ["train/1.jpg", "train/2.jpg", "train/3.jpg"] and table.index[-1] == "val/3.jpg"
    row = table.loc["train/8.jpg"]
    assert (row["race"], row["race_detail"], row["race_code"], row["gender"], row["gender_code"], row["age_bin"],
            row["partition"], bool(row["service_test"])) == ("asian", "southeast_asian", "Southeast Asian", "male",
                                                            "Male", "60-69", "train", False)
    assert table.loc["train/7.jpg", "race"] == "others" and table.loc["train/7.jpg", "race_detail"] == "latino_hispanic"
    assert table.loc["train/6.jpg", "age_bin"] == "more than 70" and table["age"].isna().all()
    assert table["subject_id"].isna().all()
    summary = FAIRFACE.verify_summary(result)
    assert summary["groups"]["race_detail"]["east_asian"] == 3 and summary["groups"]["partition"] == {"train": 9, "val": 3}
    val_only = read_fairface(tmp_path / "ff", variant="val")
    assert len(val_only.table) == 3 and val_only.files == ("fairface_label_val.csv",)


FAIRFACE_REFUSALS = {
    "unknown-race": ("train/3.jpg,3-9,Female,Hispanic,False",
                     "fairface_label_train.csv: line 4 has race 'Hispanic'"),
    "race-with-underscore": ("train/3.jpg,3-9,Female,East_Asian,False",
                             "line 4 has race 'East_Asian' (did you mean 'East Asian'?)"),
    "age-bin": ("train/3.jpg,70+,Female,Black,False", "line 4 has age bin '70+'"),
    "gender": ("train/3.jpg,3-9,female,Black,False", "line 4 has gender 'female' (did you mean 'Female'?)"),
    "service-test": ("train/3.jpg,3-9,Female,Black,yes", "line 4 has service_test 'yes'"),
    "wrong-split-folder": ("val/3.jpg,3-9,Female,Black,False", "line 4 has file 'val/3.jpg'; expected a train image"),
    "field-count": ("train/3.jpg,3-9,Female,Black", "line 4 has 4 fields; expected 5"),
    "duplicate": ("train/2.jpg,3-9,Female,Black,False", "line 4 lists train/2.jpg again (first on line 3)"),
}


@pytest.mark.parametrize("case", FAIRFACE_REFUSALS, ids=list(FAIRFACE_REFUSALS))
def test_fairface_refuses_a_bad_row_naming_file_and_line(tmp_path: Path, case: str) -> None:
    row, words = FAIRFACE_REFUSALS[case]
    train = list(FAIRFACE_TRAIN)
    train[2] = row
    root = write_fairface_tree(tmp_path / "ff", train=tuple(train))
    with pytest.raises(UserInputError) as error:
        read_fairface(root)
    assert words in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_fairface_refuses_another_header_and_a_missing_label_file(tmp_path: Path) -> None:
    root = write_fairface_tree(tmp_path / "ff")
    (root / "fairface_label_val.csv").write_text("file,age,gender,race\nval/1.jpg,3-9,Male,White\n")
    with pytest.raises(UserInputError, match="line 1 is 'file,age,gender,race'; expected the header"):
        read_fairface(root)
    (root / "fairface_label_val.csv").unlink()
    with pytest.raises(UserInputError, match="has no fairface_label_val.csv"):
        read_fairface(root)
    assert len(read_fairface(root, variant="train").table) == len(FAIRFACE_TRAIN) - 1


def test_cli_verify_fairface_and_both_datasets_are_registered(tmp_path: Path, capsys) -> None:
    assert {"celeba", "fairface"} <= set(DATASETS.names())
    root = write_fairface_tree(tmp_path / "ff")
    assert main(["data", "verify", "fairface", "--root", str(root), "--no-progress",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "12 images accepted, 1 rejected" in out and "race_detail: white 3," in out


# ================================================================================================== fuzzing

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from facebench.errors import MAX_MESSAGE  # noqa: E402

_FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])
_lines = st.lists(st.one_of(st.sampled_from(attr_lines() + ["", " ", "-1", "000001.jpg 1", "1,2", "\r"]),
                            st.text(alphabet="0123456789 -.,jpg\t\r\x00é", max_size=40)), max_size=8)


def _one_sentence_or_nothing(call) -> None:
    try:
        call()
    except UserInputError as error:
        assert "\n" not in str(error) and 0 < len(str(error)) <= MAX_MESSAGE


@_FUZZ
@given(lines=_lines, newline=st.sampled_from(["\n", "\r\n"]), which=st.sampled_from(
    ["Anno/list_attr_celeba.txt", "Anno/identity_CelebA.txt", "Eval/list_eval_partition.txt",
     "Anno/list_bbox_celeba.txt", "labels.csv", "fairface_label_train.csv"]))
def test_every_celeba_fairface_and_annotation_file_parses_or_is_one_sentence(tmp_path_factory, lines, newline,
                                                                             which) -> None:
    base = tmp_path_factory.mktemp("fuzz")
    data = newline.join(lines).encode("utf-8", "surrogatepass")
    if which == "fairface_label_train.csv":
        root = write_fairface_tree(base / "ff")
        (root / which).write_bytes(data)
        _one_sentence_or_nothing(lambda: read_fairface(root))
        return
    root = write_celeba_tree(base / "c")
    (root / which).write_bytes(data)
    options = {"race_annotations": "labels.csv", "race_categories": CATEGORIES} if which == "labels.csv" else {}
    _one_sentence_or_nothing(lambda: read_celeba(root, **options))
