"""Submissions are validated before scoring: every malformed predictions file is refused by `facebench evaluate`
with exit code 2 and one sentence naming the file (and the line, row, column or id), and nothing is written.

The age protocol takes a CSV (sample_id,age), the face-recognition protocols an .npz (sample_id, embedding);
each case below breaks one rule of docs/submissions.md. A valid file of each kind is scored as a control.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import set_flags

from facebench.cli import main
from facebench.errors import UserInputError
from facebench.protocol import load_protocol
from facebench.run import prepare_data

PROTOCOLS = Path(__file__).resolve().parent.parent / "protocols"
AGE = PROTOCOLS / "age_utk_cross_ethnicity.yaml"
CACD = PROTOCOLS / "aifr_cacd.yaml"
# Tiny settings (the same in test_model_adapter.py, so that a session makes the synthetic data once).
AGE_SETTINGS = ("dataset.synthetic.n=700", "dataset.synthetic.image_size=32", "dataset.synthetic.render_size=32",
                "model.image_size=32", "evaluation.n_boot=100")
CACD_SETTINGS = ("dataset.synthetic.n=30", "dataset.synthetic.image_size=32", "dataset.synthetic.render_size=32",
                 "model.image_size=32", "evaluation.n_boot=100")

Case = Callable[[list[str]], tuple[bytes, str]]  # test ids -> (file content, a fragment the message must hold)



@pytest.fixture(scope="module")
def cache(submission_cache: Path) -> Path:
    return submission_cache


@pytest.fixture(scope="module")
def age_data(cache: Path) -> tuple:
    """(protocol, dataset, split) of the tiny age protocol."""
    protocol = load_protocol(AGE, overrides=AGE_SETTINGS)
    return (protocol, *prepare_data(protocol, data_root=None, cache_dir=cache, progress=False))


@pytest.fixture(scope="module")
def age_ids(age_data) -> list[str]:
    return list(age_data[2]["test"])


@pytest.fixture(scope="module")
def cacd_ids(cache: Path) -> list[str]:
    protocol = load_protocol(CACD, overrides=CACD_SETTINGS)
    return list(prepare_data(protocol, data_root=None, cache_dir=cache, progress=False)[1]["test"])


# ------------------------------------------------------------------------------------------ age CSV cases


def _csv(ids: list[str], ages: list[str] | None = None, *, header: str = "sample_id,age") -> bytes:
    ages = ages if ages is not None else [f"{20 + i % 50}.5" for i in range(len(ids))]
    return (header + "\n" + "".join(f"{i},{a}\n" for i, a in zip(ids, ages, strict=True))).encode()


def _with_age(row: int, value: str) -> Case:
    def case(ids: list[str]) -> tuple[bytes, str]:
        ages = [f"{20 + i % 50}.5" for i in range(len(ids))]
        ages[row] = value
        return _csv(ids, ages), f"line {row + 2} has age"
    return case


def _unknown_id(ids: list[str]) -> tuple[bytes, str]:
    return _csv(["UTKFace/nobody.jpg", *ids[1:]]), "line 2 has sample_id 'UTKFace/nobody.jpg', which is not in"


def _missing_ids(ids: list[str]) -> tuple[bytes, str]:
    return _csv(ids[:3] + ids[5:]), f"2 test images have no prediction, the first being '{ids[3]}'"


def _duplicate_id(ids: list[str]) -> tuple[bytes, str]:
    return _csv([*ids, ids[0]]), f"line {len(ids) + 2} repeats sample_id '{ids[0]}'"


def _empty_id(ids: list[str]) -> tuple[bytes, str]:
    return _csv(["", *ids[1:]]), "line 2 has an empty sample_id"


def _rows_as_text(ids: list[str], body: str) -> bytes:
    return ("sample_id,age\n" + "".join(f"{i},30\n" for i in ids) + body).encode()


def _extra_field_first_row(ids: list[str]) -> tuple[bytes, str]:
    return ("sample_id,age\n" + f"{ids[0]},30,male\n" + "".join(f"{i},30\n" for i in ids[1:])).encode(), \
        "line 2 has more fields than the header"


def _extra_field_later_row(ids: list[str]) -> tuple[bytes, str]:
    return ("sample_id,age\n" + "".join(f"{i},30\n" for i in ids[:3]) + f"{ids[3]},30,male\n"
            + "".join(f"{i},30\n" for i in ids[4:])).encode(), "Expected 2 fields in line 5, saw 3"


def _missing_field(ids: list[str]) -> tuple[bytes, str]:
    return ("sample_id,age\n" + f"{ids[0]}\n" + "".join(f"{i},30\n" for i in ids[1:])).encode(), \
        "line 2 has age '' (empty)"


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


CSV_CASES: dict[str, Case] = {
    "unknown id": _unknown_id,
    "missing ids": _missing_ids,
    "duplicate id": _duplicate_id,
    "empty id": _empty_id,
    "nan": _with_age(5, "nan"),
    "empty age": _with_age(5, ""),
    "inf": _with_age(0, "inf"),
    "minus inf": _with_age(2, "-Infinity"),
    "overflow to inf": _with_age(2, "1e400"),
    "non-numeric age": _with_age(2, "thirty"),
    "decimal comma": _with_age(1, '"30,5"'),
    "wrong column": lambda ids: (_csv(ids, header="sample_id,pred"), "columns are sample_id,pred; expected exactly sample_id,age"),
    "missing column": lambda ids: (b"sample_id\n" + "".join(f"{i}\n" for i in ids).encode(),
                                   "columns are sample_id; expected exactly sample_id,age"),
    "extra column": lambda ids: (("sample_id,age,gender\n" + "".join(f"{i},30,male\n" for i in ids)).encode(),
                                 "columns are sample_id,age,gender; expected"),
    "columns swapped": lambda ids: (("age,sample_id\n" + "".join(f"30,{i}\n" for i in ids)).encode(),
                                    "columns are age,sample_id; expected"),
    "no header": lambda ids: (_csv(ids)[len(b"sample_id,age\n"):], "; expected exactly sample_id,age"),
    "extra field in the first row": _extra_field_first_row,
    "extra field in a later row": _extra_field_later_row,
    "missing field": _missing_field,
    "empty file": lambda ids: (b"", "not a readable CSV (No columns to parse from file)"),
    "header only": lambda ids: (b"sample_id,age\n", f"{len(ids)} test images have no prediction"),
    "binary garbage": lambda ids: (bytes(np.random.default_rng(0).integers(128, 256, 512, dtype=np.uint8)),
                                   "not a readable CSV ('utf-8' codec can't decode"),
    "binary with NUL bytes": lambda ids: (b"sample_id,age\x00\x00\x01\x02" * 20, "contains NUL bytes"),
    "an npz": lambda ids: (_npz_bytes(sample_id=np.array(ids), embedding=np.ones((len(ids), 4))), "not a readable CSV"),
    "control characters in the header": lambda ids: (_csv(ids, header="sample_id,a\x0bge"),
                                                     "columns are sample_id,a\\x0bge; expected"),
}


# ------------------------------------------------------------------------------------------ embeddings .npz cases


def _embeddings(n: int) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, 8)).astype(np.float32)


def _npz(ids: list[str], matrix: np.ndarray | None = None, **extra: np.ndarray) -> bytes:
    return _npz_bytes(sample_id=np.array(ids), embedding=_embeddings(len(ids)) if matrix is None else matrix, **extra)


def _bad_row(row: int, value: float, fragment: str) -> Case:
    def case(ids: list[str]) -> tuple[bytes, str]:
        matrix = _embeddings(len(ids)).astype(np.float64)
        matrix[row, 3] = value
        return _npz(ids, matrix), f"row {row} ('{ids[row]}') has {fragment}"
    return case


def _zip_of(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _npy(matrix: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, matrix)
    return buffer.getvalue()


NPZ_CASES: dict[str, Case] = {
    "unknown id": lambda ids: (_npz([*ids[:-1], "CACD2000/nobody.jpg"]), "sample_id 'CACD2000/nobody.jpg' is not in"),
    "missing ids": lambda ids: (_npz(ids[1:]), f"1 test images have no embedding, the first being '{ids[0]}'"),
    "duplicate id": lambda ids: (_npz([*ids, ids[4]]), f"sample_id '{ids[4]}' appears 2 times"),
    "nan row": _bad_row(4, np.nan, "a NaN or infinite value"),
    "inf row": _bad_row(7, -np.inf, "a NaN or infinite value"),
    "beyond float32": _bad_row(2, 1e300, "a value beyond float32's range"),
    "width 0": lambda ids: (_npz(ids, np.ones((len(ids), 0), np.float32)), "width 0"),
    "1-D embedding": lambda ids: (_npz(ids, np.ones(len(ids), np.float32)), f"embedding 2-D with one row per sample_id (got ({len(ids)},) and ({len(ids)},))"),
    "3-D embedding": lambda ids: (_npz(ids, np.ones((len(ids), 2, 4), np.float32)), "embedding 2-D"),
    "fewer rows than ids": lambda ids: (_npz(ids, _embeddings(len(ids) - 1)), "one row per sample_id"),
    "numeric ids": lambda ids: (_npz_bytes(sample_id=np.arange(len(ids)), embedding=_embeddings(len(ids))),
                                "sample_id has dtype int64, not strings"),
    "ids not UTF-8": lambda ids: (_npz_bytes(sample_id=np.array([b"\xff", *map(str.encode, ids[1:])]),
                                             embedding=_embeddings(len(ids))), "sample_id holds bytes that are not UTF-8"),
    "2-D ids": lambda ids: (_npz_bytes(sample_id=np.array(ids)[:, None], embedding=_embeddings(len(ids))), "sample_id must be 1-D"),
    "text embedding": lambda ids: (_npz(ids, _embeddings(len(ids)).astype(str)), "not real numbers"),
    "complex embedding": lambda ids: (_npz(ids, _embeddings(len(ids)).astype(np.complex64)), "dtype complex64, not real numbers"),
    "bool embedding": lambda ids: (_npz(ids, _embeddings(len(ids)) > 0), "dtype bool, not real numbers"),
    "wrong array names": lambda ids: (_npz_bytes(ids=np.array(ids), embeddings=_embeddings(len(ids))),
                                      "arrays are embeddings, ids; expected exactly sample_id and embedding"),
    "extra array": lambda ids: (_npz(ids, age=np.ones(len(ids))), "arrays are age, embedding, sample_id; expected"),
    "no arrays": lambda ids: (_npz_bytes(), "arrays are none; expected"),
    "pickled ids": lambda ids: (_npz_bytes(sample_id=np.array(ids, dtype=object), embedding=_embeddings(len(ids))),
                                "not a readable .npz archive (Object arrays cannot be loaded"),
    "a CSV": lambda ids: (_csv(ids), "not a readable .npz archive (it is not a zip file"),
    "empty file": lambda ids: (b"", "not a readable .npz archive (it is not a zip file"),
    "binary garbage": lambda ids: (bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8)), "not a readable .npz archive (it is not a zip file"),
    "a single .npy": lambda ids: (_npy(_embeddings(len(ids))), "it is a single .npy array"),
    "truncated": lambda ids: (_npz(ids)[:200], "not a readable .npz archive"),
    "zip of other files": lambda ids: (_zip_of(sample_id=b"x", embedding=b"y"), "member 'embedding' is not a .npy array"),
}


# ------------------------------------------------------------------------------------------ the checks


def _refused(capsys, code: int, path: Path, fragment: str, out: Path) -> None:
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    message = lines[0]
    assert message.startswith("facebench: error: ") and message.endswith("."), message
    assert not re.search(r"\.\s+[A-Z]", message.removeprefix("facebench: error: ")), f"more than one sentence: {message}"
    assert str(path) in message, message
    assert fragment in message, message
    assert not out.exists(), sorted(p.relative_to(out) for p in out.rglob("*"))  # no run folder, no report


@pytest.mark.parametrize("name", list(CSV_CASES))
def test_malformed_age_csv_is_refused_and_nothing_written(name, age_ids, cache, tmp_path, capsys) -> None:
    content, fragment = CSV_CASES[name](age_ids)
    path = tmp_path / "mine.csv"
    path.write_bytes(content)
    out = tmp_path / "out"
    code = main(["evaluate", str(AGE), "--predictions", str(path), "--out", str(out), "--cache-dir", str(cache),
                 *set_flags(AGE_SETTINGS)])
    _refused(capsys, code, path, fragment, out)


@pytest.mark.parametrize("name", list(NPZ_CASES))
def test_malformed_embeddings_npz_is_refused_and_nothing_written(name, cacd_ids, cache, tmp_path, capsys) -> None:
    content, fragment = NPZ_CASES[name](cacd_ids)
    path = tmp_path / "mine.npz"
    path.write_bytes(content)
    out = tmp_path / "out"
    code = main(["evaluate", str(CACD), "--predictions", str(path), "--out", str(out), "--cache-dir", str(cache),
                 *set_flags(CACD_SETTINGS)])
    _refused(capsys, code, path, fragment, out)


@pytest.mark.parametrize(("protocol", "name", "folder"), [(AGE, "absent.csv", False), (AGE, "folder.csv", True),
                                                          (CACD, "absent.npz", False), (CACD, "folder.npz", True)])
def test_a_missing_predictions_file_is_refused(protocol, name, folder, age_ids, cacd_ids, cache, tmp_path, capsys) -> None:
    path = tmp_path / name
    if folder:
        path.mkdir()
    out = tmp_path / "out"
    settings = AGE_SETTINGS if protocol == AGE else CACD_SETTINGS
    code = main(["evaluate", str(protocol), "--predictions", str(path), "--out", str(out), "--cache-dir", str(cache),
                 *set_flags(settings)])
    _refused(capsys, code, path, "is not a file" if folder else "does not exist", out)


def test_valid_files_of_both_kinds_are_scored(age_ids, cacd_ids, cache, tmp_path) -> None:
    """The control: the files the cases above break are accepted as they are."""
    for protocol, settings, name, content in ((AGE, AGE_SETTINGS, "mine.csv", _csv(age_ids)),
                                              (CACD, CACD_SETTINGS, "mine.npz", _npz(cacd_ids))):
        path = tmp_path / name
        path.write_bytes(content)
        assert main(["evaluate", str(protocol), "--predictions", str(path), "--out", str(tmp_path / "out"),
                     "--cache-dir", str(cache), *set_flags(settings)]) == 0
    for protocol in ("age_utk_cross_ethnicity", "aifr_cacd"):
        folder = tmp_path / "out" / protocol
        assert sorted(p.name for p in folder.iterdir()) == ["report.html", "submission-mine"]
        assert json.loads((folder / "submission-mine" / "results.json").read_text())["baseline"]["kind"] == "submission"


# ------------------------------------------------------------------------------------------ later failures


def _disk_full(*args, **kwargs):
    raise OSError(28, "No space left on device")


def _evaluate_age(path: Path, out: Path, cache: Path, name: str = "mine") -> int:
    return main(["evaluate", str(AGE), "--predictions", str(path), "--name", name, "--out", str(out),
                 "--cache-dir", str(cache), *set_flags(AGE_SETTINGS)])


def test_a_failure_while_writing_the_results_leaves_nothing(age_ids, cache, tmp_path, monkeypatch) -> None:
    import facebench.evaluate

    path = tmp_path / "mine.csv"
    path.write_bytes(_csv(age_ids))
    out = tmp_path / "out"

    monkeypatch.setattr(facebench.evaluate, "write_json", _disk_full)  # after predictions.csv and outcomes.csv
    with pytest.raises(OSError, match="No space left"):
        _evaluate_age(path, out, cache)
    assert not out.exists()


def test_a_scoring_error_after_validation_is_one_sentence_and_leaves_nothing(age_ids, cache, tmp_path, monkeypatch,
                                                                             capsys) -> None:
    import facebench.evaluate

    path = tmp_path / "mine.csv"
    path.write_bytes(_csv(age_ids))
    out = tmp_path / "out"

    def nothing_to_score(*args, **kwargs):
        raise UserInputError(f"{path}: nothing to score.")

    monkeypatch.setattr(facebench.evaluate, "score_outcomes", nothing_to_score)
    _refused(capsys, _evaluate_age(path, out, cache), path, "nothing to score", out)


def test_a_failed_resubmission_keeps_the_earlier_one_and_a_good_one_replaces_it(age_data, tmp_path,
                                                                                 monkeypatch) -> None:
    import facebench.evaluate
    from facebench.adapters import score_submission

    protocol, dataset, split = age_data
    out = tmp_path / "out"
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_bytes(_csv(list(split["test"])))
    second.write_bytes(_csv(list(split["test"]), ["40"] * len(split["test"])))

    def submit(path: Path) -> Path:
        return score_submission(protocol=protocol, dataset=dataset, split=split, predictions=path, out=out,
                                name="mine", source=str(path), seed=0)

    run_dir = submit(first)
    assert run_dir == out / "age_utk_cross_ethnicity" / "submission-mine"
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    with monkeypatch.context() as patch:
        patch.setattr(facebench.evaluate, "write_json", _disk_full)
        with pytest.raises(OSError, match="No space left"):
            submit(second)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
    assert [p.name for p in run_dir.parent.iterdir()] == ["submission-mine"]  # no temporary folder left
    assert submit(second) == run_dir
    assert json.loads((run_dir / "results.json").read_text())["baseline"]["source"] == str(second)
    assert [p.name for p in run_dir.parent.iterdir()] == ["submission-mine"]
