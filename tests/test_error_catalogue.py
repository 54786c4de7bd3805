"""The catalogue of bad inputs (docs/errors.md), one case each: every case goes through the CLI as a user would
type it and must end in exit 2 with one sentence (one line, at most MAX_MESSAGE characters, no traceback) that
contains the catalogue's words, and nothing half-written. docs/errors.md lists exactly these cases.

Checkpoints and images have their own end-to-end tests (tests/test_hostile_data.py), named in docs/errors.md.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_celeba import FAIRFACE_TRAIN, attr_lines, write_celeba_tree, write_fairface_tree

from facebench.cli import main
from facebench.errors import MAX_MESSAGE
from facebench.evaluate import score_predictions_file
from facebench.protocol import load_protocol
from facebench.run import prepare_data

ROOT = Path(__file__).resolve().parent.parent
AGE = ROOT / "protocols" / "age_utk_cross_ethnicity.yaml"
SMALL = ("dataset.synthetic.n=300", "dataset.synthetic.image_size=48", "dataset.synthetic.render_size=48",
         "evaluation.n_boot=50")
SETS = [arg for item in SMALL for arg in ("--set", item)]


@dataclass(frozen=True)
class Case:
    """One catalogue entry: ``make(tmp, env)`` prepares the input and returns the CLI arguments."""

    id: str
    family: str
    make: Callable[[Path, dict], list[str]]
    says: str  # words the one sentence must contain


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    """A scored age run (a predictions CSV through the one scoring path) to break copies of."""
    base = tmp_path_factory.mktemp("catalogue")
    cache = base / "cache"
    protocol = load_protocol(AGE, overrides=SMALL)
    dataset, split = prepare_data(protocol, data_root=None, cache_dir=cache, progress=False)
    ids = list(split["test"])
    ages = np.array([float(Path(i).name.split("_")[0]) for i in ids])
    predictions = base / "predictions.csv"
    pd.DataFrame({"sample_id": ids, "age": ages + 1.0}).to_csv(predictions, index=False)
    run = base / "board" / protocol.name / "submission-good"
    score_predictions_file(protocol=protocol, dataset=dataset, split=split, predictions=predictions, out_dir=run,
                           seed=0, baseline={"name": "good", "params": {}, "kind": "submission"})
    return {"base": base, "cache": cache, "run": run, "board": base / "board", "predictions": predictions,
            "ids": ids}


def _protocol(tmp: Path, text: str) -> list[str]:
    (tmp / "p.yaml").write_text(text, encoding="utf-8")
    return ["protocols", "validate", str(tmp / "p.yaml")]


def _edited_protocol(tmp: Path, edit: Callable[[str], str]) -> list[str]:
    return _protocol(tmp, edit(AGE.read_text(encoding="utf-8")))


def _evaluate(tmp: Path, env: dict, predictions: Path) -> list[str]:
    return ["evaluate", str(AGE), "--predictions", str(predictions), "--out", str(tmp / "out"),
            "--cache-dir", str(env["cache"]), "--no-progress", *SETS]


def _csv(tmp: Path, env: dict, text: str | bytes) -> list[str]:
    path = tmp / "bad.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return _evaluate(tmp, env, path)


def _results(tmp: Path, env: dict, edit: Callable[[dict], None] | None = None, *, text: str | None = None,
             outcomes_edit: Callable[[Path], None] | None = None) -> list[str]:
    run = tmp / "board" / "age_utk_cross_ethnicity" / "broken"
    shutil.copytree(env["run"], run)
    if text is not None:
        (run / "results.json").write_text(text, encoding="utf-8")
    elif edit is not None:
        doc = json.loads((run / "results.json").read_text())
        edit(doc)
        (run / "results.json").write_text(json.dumps(doc), encoding="utf-8")
    if outcomes_edit is not None:
        outcomes_edit(run)
    return ["compare", str(run), "--leaderboard", str(env["board"]), "--n-boot", "100"]


def _laughs() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


def _huge_npz(tmp: Path) -> Path:
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000, 128), }"
    header = header + " " * (118 - len(header)) + "\n"
    path = tmp / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("embedding.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
        buffer = io.BytesIO()
        np.save(buffer, np.array(["a.jpg"]))
        archive.writestr("sample_id.npy", buffer.getvalue())
    return path


def _manifest_escape(tmp: Path, env: dict) -> list[str]:
    site = tmp / "site"
    site.mkdir()
    (site / "manifest.json").write_text(json.dumps({"schema": "facebench-leaderboard/1", "entries": [
        {"protocol": "age_utk_cross_ethnicity", "results": "../../../../../../etc/hostname",
         "outcomes": "outcomes.csv"}]}))
    return ["compare", str(env["run"]), "--leaderboard", str(site), "--n-boot", "100"]


def _celeba(tmp: Path, attr: list[str] | None = None, annotations: str | None = None) -> list[str]:
    """``data verify celeba`` of the exact-byte fixture with its attribute file (and an annotation file) replaced."""
    files = {"Anno/list_attr_celeba.txt": ("\r\n".join(attr) + "\r\n").encode()} if attr else None
    root = write_celeba_tree(tmp / "celeba", files=files)
    argv = ["data", "verify", "celeba", "--root", str(root), "--no-progress", "--cache-dir", str(tmp / "cache")]
    if annotations is not None:
        (root / "labels.csv").write_text(annotations, encoding="utf-8")
        argv += ["--option", "race_annotations=labels.csv", "--option", "race_categories=[white, non_white]"]
    return argv


def _row_with_39_values() -> list[str]:
    lines = attr_lines()
    lines[4] = " ".join(lines[4].split()[:-1])
    return lines


def _fairface_unknown_race(tmp: Path) -> list[str]:
    rows = list(FAIRFACE_TRAIN)
    rows[2] = rows[2].replace("Black", "Hispanic")
    root = write_fairface_tree(tmp / "fairface", train=tuple(rows))
    return ["data", "verify", "fairface", "--root", str(root), "--no-progress", "--cache-dir", str(tmp / "cache")]


def _yours(tmp: Path) -> Path:
    """A folder of the user's that is not a leaderboard site."""
    (tmp / "mine").mkdir()
    (tmp / "mine" / "notes.txt").write_text("x")
    return tmp / "mine"


def _file(tmp: Path) -> Path:
    (tmp / "a-file").write_text("x")
    return tmp / "a-file"


CASES = [
    # protocol files and --set
    Case("protocol-unknown-key", "protocol",
         lambda tmp, env: _edited_protocol(tmp, lambda t: t.replace("n_boot:", "n_bot:", 1)), "unknown key"),
    Case("protocol-wrong-type", "protocol",
         lambda tmp, env: _edited_protocol(tmp, lambda t: re.sub(r"\bn_boot: *\d+", "n_boot: many", t, count=1)),
         "n_boot"),
    Case("protocol-not-yaml", "protocol", lambda tmp, env: _protocol(tmp, "name: [unclosed\n"), "not valid YAML"),
    Case("protocol-not-a-mapping", "protocol", lambda tmp, env: _protocol(tmp, "- a\n- b\n"), "mapping"),
    Case("protocol-alias-bomb", "protocol", lambda tmp, env: _protocol(tmp, _laughs()), "aliases expand"),
    Case("protocol-too-deep", "protocol",
         lambda tmp, env: _protocol(tmp, "a: " + "[" * 200_000 + "]" * 200_000 + "\n"), "nested more than"),
    Case("protocol-unknown-name", "protocol", lambda tmp, env: ["protocols", "validate", "age_utk_cross_ethnicty"],
         "did you mean"),
    Case("protocol-name-too-long", "protocol", lambda tmp, env: ["protocols", "validate", "x" * 100_000],
         "Unknown protocol"),
    Case("set-malformed", "protocol", lambda tmp, env: ["run", str(AGE), "--set", "training.epochs", "--no-progress"],
         "key.path=value"),
    Case("set-unknown-key", "protocol",
         lambda tmp, env: ["run", str(AGE), "--set", "training.epoch=3", "--no-progress"], "did you mean"),
    Case("grid-unknown-key", "protocol",
         lambda tmp, env: ["sweep", str(AGE), "--out", str(tmp / "runs"), "--grid", "training.lrr=0.001,0.002",
                           "--no-progress"], "(with --grid training.lrr=0.001): unknown key 'training.lrr'"),
    # dataset folders
    Case("data-root-missing", "dataset",
         lambda tmp, env: ["run", str(AGE), "--data-root", str(tmp / "nowhere"), "--no-progress"], "not a folder"),
    Case("data-root-without-images", "dataset",
         lambda tmp, env: (tmp / "empty" / "UTKFace").mkdir(parents=True) or
         ["data", "verify", "utkface", "--root", str(tmp / "empty"), "--no-progress"], "UTKFace"),
    Case("celeba-count-line", "dataset", lambda tmp, env: _celeba(tmp, attr_lines(count=202599)),
         "line 1 says 202599 images but the file lists 6"),
    Case("celeba-row-39-values", "dataset", lambda tmp, env: _celeba(tmp, _row_with_39_values()),
         "line 5 has 39 values"),
    Case("celeba-annotation-unknown-image", "dataset",
         lambda tmp, env: _celeba(tmp, annotations="image_id,label\n000001.jpg,white\n123456.jpg,white\n"),
         "which CelebA (list_attr_celeba.txt) does not list"),
    Case("celeba-annotation-unknown-label", "dataset",
         lambda tmp, env: _celeba(tmp, annotations="image_id,label,annotator\n000001.jpg,Caucasian,a\n"),
         "not one of the declared categories"),
    Case("fairface-unknown-race", "dataset", lambda tmp, env: _fairface_unknown_race(tmp), "has race 'Hispanic'"),
    # predictions files
    Case("predictions-missing", "predictions", lambda tmp, env: _evaluate(tmp, env, tmp / "none.csv"),
         "does not exist"),
    Case("predictions-wrong-columns", "predictions", lambda tmp, env: _csv(tmp, env, "id,years\na.jpg,3\n"),
         "expected exactly sample_id,age"),
    Case("predictions-nul-bytes", "predictions", lambda tmp, env: _csv(tmp, env, b"sample_id,age\n\x00\x00\n"),
         "NUL bytes"),
    Case("predictions-unknown-id", "predictions",
         lambda tmp, env: _csv(tmp, env, "sample_id,age\n" + "x" * 5_000_000 + ",3\n"), "sample_id"),
    Case("predictions-npz-huge-header", "predictions", lambda tmp, env: [
        "evaluate", str(ROOT / "protocols" / "aifr_morph.yaml"), "--predictions", str(_huge_npz(tmp)),
        "--out", str(tmp / "out"), "--cache-dir", str(env["cache"]), "--no-progress",
        "--set", "dataset.synthetic.n=60"], "claims shape"),
    # results.json and outcomes.csv
    Case("results-not-json", "results", lambda tmp, env: _results(tmp, env, text="{not json"), "not valid JSON"),
    Case("results-nan", "results", lambda tmp, env: _results(tmp, env, text='{"a": NaN}'), "NaN is not a JSON number"),
    Case("results-too-deep", "results", lambda tmp, env: _results(tmp, env, text="[" * 100_000 + "]" * 100_000),
         "nested more than"),
    Case("results-missing-key", "results", lambda tmp, env: _results(tmp, env, lambda d: d["protocol"].pop("task")),
         "it has no 'protocol.task'"),
    Case("results-wrong-type", "results",
         lambda tmp, env: _results(tmp, env, lambda d: d["metrics"]["overall"]["mae"].update(value="3.1")),
         "key 'metrics.overall.mae.value'"),
    Case("results-outcomes-outside", "results",
         lambda tmp, env: _results(tmp, env, lambda d: d["files"].update(outcomes="../../../../etc/hostname")),
         "outside its run directory"),
    Case("results-future-major", "results", lambda tmp, env: _results(tmp, env, lambda d: d.update(schema_version="2.0")),
         "schema version"),
    # leaderboard sites
    Case("site-manifest-escape", "site", _manifest_escape, "outside"),
    Case("site-out-not-a-site", "site", lambda tmp, env: ["leaderboard", str(env["board"]), "--out", str(_yours(tmp))],
         "not a facebench leaderboard site"),
    # command line
    Case("cli-unknown-flag", "cli", lambda tmp, env: ["run", str(AGE), "--epochs", "3"], "unrecognized arguments"),
    Case("cli-out-is-a-file", "cli", lambda tmp, env: ["run", str(AGE), "--out", str(_file(tmp))], "is a file, not a folder"),
    Case("cli-cache-dir-is-a-file", "cli", lambda tmp, env: ["run", str(AGE), "--cache-dir", str(_file(tmp))],
         "is a file, not a folder"),
    Case("cli-synth-out-is-a-file", "cli", lambda tmp, env: ["data", "synth", "utkface", "--out", str(_file(tmp))],
         "is a file, not a folder"),
    Case("cli-unknown-baseline", "cli",
         lambda tmp, env: ["run", str(AGE), "--baseline", "dan", "--no-progress", *SETS], "not a baseline of"),
]


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_sentence_exit_2_and_nothing_written(case: Case, env: dict, tmp_path: Path, capsys) -> None:
    argv = case.make(tmp_path, env)
    before = _listing(tmp_path)
    board_before = _listing(env["board"])
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse's own refusals
        code = exit_info.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("usage:", " "))]
    assert code == 2, err[:2000]
    assert len(lines) == 1 and "Traceback" not in err, err[:2000]
    assert len(lines[0]) <= MAX_MESSAGE + 40 and case.says in lines[0], lines[0][:500]
    assert _listing(tmp_path) == before  # nothing half-written
    assert _listing(env["board"]) == board_before


def test_docs_list_exactly_the_catalogued_cases() -> None:
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-z0-9-]+)`", text)) & (
        {c.id for c in CASES} | set(re.findall(r"\| `([a-z0-9-]+)` \|", text)))
    assert {c.id for c in CASES} <= documented
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", text, flags=re.M))
    assert listed == {c.id for c in CASES} | {"checkpoint-planted-pickle", "checkpoint-truncated",
                                              "checkpoint-other-run", "images-broken-files", "images-replaced"}


def test_every_reader_gives_the_same_answer_on_a_wrongly_typed_results_json(env: dict, tmp_path: Path, capsys) -> None:
    """One schema, one rule: compare, report and leaderboard refuse the same file with the same sentence."""
    board = tmp_path / "board" / "age_utk_cross_ethnicity"
    shutil.copytree(env["run"], board / "broken")
    doc = json.loads((board / "broken" / "results.json").read_text())
    doc["metrics"]["by_group"]["race"][next(iter(doc["metrics"]["by_group"]["race"]))]["mae"]["n"] = "many"
    (board / "broken" / "results.json").write_text(json.dumps(doc))
    sentences = []
    for argv in (["compare", str(board / "broken"), "--leaderboard", str(env["board"]), "--n-boot", "100"],
                 ["report", str(board)], ["leaderboard", str(tmp_path / "board"), "--out", str(tmp_path / "site")]):
        assert main(argv) == 2
        sentences.append(capsys.readouterr().err.strip())
    assert len(set(sentences)) == 1 and "Input should be a valid integer" in sentences[0], sentences
    assert not (tmp_path / "site").exists() and not (board / "report.html").exists()


def test_protocol_versions_never_share_a_ranking(env: dict, tmp_path: Path) -> None:
    board = tmp_path / "board" / "age_utk_cross_ethnicity"
    shutil.copytree(env["run"], board / "v1")
    shutil.copytree(env["run"], board / "v99")
    doc = json.loads((board / "v99" / "results.json").read_text())
    doc["protocol"]["version"] = 99
    (board / "v99" / "results.json").write_text(json.dumps(doc))
    assert main(["leaderboard", str(tmp_path / "board"), "--out", str(tmp_path / "site")]) == 0
    tables = sorted(p.parent.name for p in (tmp_path / "site" / "protocols").glob("*/index.html"))
    version = str(json.loads((env["run"] / "results.json").read_text())["protocol"]["version"])
    assert tables == sorted([f"age_utk_cross_ethnicity-v{version}", "age_utk_cross_ethnicity-v99"])
