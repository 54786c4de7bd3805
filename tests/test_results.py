"""The one results.json reader (facebench.results.load_run): one sentence naming the file and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facebench.compare import min_group_size
from facebench.errors import UserInputError
from facebench.results import REQUIRED_KEYS, Run, load_run


def _document() -> dict:
    return {"schema_version": "1.1",
            "protocol": {"name": "p", "version": 1, "title": "t", "task": "age_regression",
                         "primary_metric": "mae", "fingerprint": "f"},
            "baseline": {"name": "b"}, "data": {"synthetic": True, "fingerprint": "d", "split_fingerprint": "s"},
            "metrics": {"overall": {}, "by_group": {"race": {"white": {"mae": {"n": 7, "flag": "small"}},
                                                            "black": {"mae": {"n": 40, "flag": ""}}}},
                        "disparities": {}},
            "statistics": {"n_boot": 10, "confidence": 0.95, "interval_method": "x", "min_group_size": 30,
                           "seed": 0},
            "files": {"outcomes": "outcomes.csv"}}


def _write(folder: Path, doc: dict | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "outcomes.csv").write_text("sample_id\n")
    (folder / "results.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return folder


def test_a_complete_document_is_read_with_its_outcomes(tmp_path: Path) -> None:
    run = load_run(_write(tmp_path / "r", _document()))
    assert (run.name, run.kind, run.folder.name, run.primary_metric) == ("b", "baseline", "r", "mae")
    assert run.outcomes_path == (tmp_path / "r" / "outcomes.csv").resolve()
    assert run.statistics["min_group_size"] == 30


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["protocol"].pop("task"), "is not a facebench results.json: it has no 'protocol.task'."),
    (lambda d: d.pop("schema_version"), "it has no 'schema_version'."),
    (lambda d: d.update(schema_version="2." + "9" * 200), "has results schema version '2.999"),
    (lambda d: d["metrics"].update(by_group=[]), "key 'metrics.by_group': Input should be a valid dictionary (got [])."),
    (lambda d: d["statistics"].update(min_group_size="x" * 200), "key 'statistics.min_group_size': Input should be "
                                                                 "a valid integer (got 'xxx"),
    (lambda d: d["metrics"]["by_group"]["race"]["white"]["mae"].update(value="3.1"),
     "key 'metrics.by_group.race.white.mae.value': Input should be a valid number (got '3.1')."),
    (lambda d: d["data"].update(synthetic="yes"), "key 'data.synthetic': Input should be a valid boolean (got 'yes')."),
    (lambda d: d["protocol"].update(primary_metric="maee"), "(did you mean 'mae'?)"),
    (lambda d: d["files"].update(outcomes="../outcomes.csv"), "names outcomes file '../outcomes.csv', which is "
                                                              "outside its run directory."),
    (lambda d: d["files"].update(outcomes="gone.csv"), "names outcomes file 'gone.csv', which does not exist."),
])
def test_bad_documents_are_one_short_sentence_naming_file_and_key(tmp_path: Path, edit, message) -> None:
    doc = _document()
    edit(doc)
    folder = _write(tmp_path / "r", doc)
    with pytest.raises(UserInputError) as error:
        load_run(folder)
    text = str(error.value)
    assert text.startswith(str(folder / "results.json")) and message in text, text
    assert "\n" not in text and "x" * 100 not in text and "9" * 100 not in text  # echoed values cut short


@pytest.mark.parametrize("content, message", [("{not json", "is not valid JSON (line 1"),
                                              ('{"x": NaN}', "is not valid JSON (NaN is not a JSON number)."),
                                              ("[]", "holds no JSON object")])
def test_unreadable_json_is_refused(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(UserInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_run(_write(tmp_path / "r", content))


def test_every_required_key_is_checked(tmp_path: Path) -> None:
    for dotted in REQUIRED_KEYS:
        doc = _document()
        *parents, last = dotted.split(".")
        node = doc
        for key in parents:
            node = node[key]
        del node[last]
        with pytest.raises(UserInputError, match=f"it has no '{dotted}'"):
            load_run(_write(tmp_path / dotted, doc))


def test_min_group_size_is_read_from_statistics_and_recovered_from_flags_in_schema_1_0() -> None:
    doc = _document()
    run = Run(results_path=Path("r/results.json"), outcomes_path=Path("r/outcomes.csv"), results=doc)
    assert min_group_size(run) == 30
    del doc["statistics"]  # a schema 1.0 document: one more than the largest flagged n
    assert min_group_size(run) == 8
