"""Whole runs on hostile data (issue 12): a UTKFace folder with broken images under valid names, a planted pickle
and a truncated file as the checkpoint of an unfinished run, and every image replaced under its own name."""

from __future__ import annotations

import json
import os
import pickle
import shlex
from pathlib import Path

import pytest
from fixtures_broken import add_broken_entries, replace_in_place

from facebench.cli import main
from facebench.data.synth import SynthConfig, write_utkface

pytestmark = pytest.mark.slow

AGE = Path(__file__).resolve().parent.parent / "protocols" / "age_utk_cross_ethnicity.yaml"
SMALL = ["--set", "model.image_size=32", "--set", "training.epochs=2", "--set", "evaluation.n_boot=100",
         "--no-progress"]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict:
    """A synthetic UTKFace copy (read through --data-root, like a real one) with ten broken entries added."""
    base = tmp_path_factory.mktemp("hostile")
    root = base / "utk"
    write_utkface(root, SynthConfig(n=700, seed=0, image_size=64, render_size=64))
    expected = add_broken_entries(root / "UTKFace")
    return {"root": root, "expected": expected, "cache": base / "cache", "out": base / "runs"}


def _run(hostile: dict, *extra: str) -> int:
    return main(["run", str(AGE), "--data-root", str(hostile["root"]), "--out", str(hostile["out"]),
                 "--cache-dir", str(hostile["cache"]), *SMALL, *extra])


@pytest.fixture(scope="module")
def first_run(hostile: dict) -> Path:
    assert _run(hostile) == 0  # broken images never crash a run
    (run_dir,) = (hostile["out"] / "age_utk_cross_ethnicity").glob("source_only-*")
    return run_dir


def test_verify_and_run_leave_out_the_same_broken_files_with_their_reasons(hostile: dict, first_run: Path,
                                                                          capsys) -> None:
    expected = {f"UTKFace/{name}": reason for name, reason in hostile["expected"].items()}
    capsys.readouterr()
    assert main(["data", "verify", "utkface", "--root", str(hostile["root"]), "--cache-dir", str(hostile["cache"]),
                 "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_samples"] == 700 and summary["n_rejected"] == len(expected) == 10
    verified = {r["sample_id"]: r["reason"] for r in summary["rejected"]}
    assert set(verified) == set(expected) and all(verified[s].startswith(r) for s, r in expected.items())

    results = json.loads((first_run / "results.json").read_text())
    data = results["data"]
    assert data["n_rejected"] == 10 and data["rejected"] == summary["rejected"]
    assert sum(data["split_sizes"][part] for part in ("train", "val", "test")) <= 700
    report = (first_run.parent / "report.html").read_text()
    assert "10 files of the dataset left out (malformed names or images that do not decode), e.g. " in report
    assert "zero-byte file" in report


def _error(capsys) -> str:
    """The last line of stderr (the progress lines before it are the console's): the one-sentence error."""
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("facebench: error:") == 1
    return err.splitlines()[-1]


def _plant(path: Path, marker: Path) -> None:
    class Planted:
        def __reduce__(self):
            return (os.system, (f"touch {shlex.quote(str(marker))}",))

    path.write_bytes(pickle.dumps({"epoch": 0, "fingerprint": path.parent.parent.name[-12:], "hook": Planted()},
                                  protocol=2))


def test_a_planted_or_truncated_checkpoint_is_refused_and_restart_trains_again(hostile: dict, first_run: Path,
                                                                               tmp_path: Path, capsys) -> None:
    finished = json.loads((first_run / "results.json").read_text())
    checkpoint = first_run / "checkpoints" / "last.pt"
    genuine = checkpoint.read_bytes()
    (first_run / "results.json").unlink()  # an unfinished run: the next run command resumes it
    marker = tmp_path / "ran"
    _plant(checkpoint, marker)
    capsys.readouterr()
    assert _run(hostile) == 2
    assert not marker.exists()
    assert _error(capsys) == (
        f"facebench: error: Checkpoint {checkpoint} cannot be resumed: it holds pickled Python objects "
        "('posix.system'), which are never loaded; run the same command with --restart to delete it and train from "
        "scratch.")
    assert not (first_run / "results.json").exists()

    checkpoint.write_bytes(genuine[: len(genuine) // 2])
    assert _run(hostile) == 2
    error = _error(capsys)
    assert error.startswith(f"facebench: error: Checkpoint {checkpoint} cannot be resumed: it is truncated or not a "
                            "torch checkpoint (")
    assert error.endswith("; run the same command with --restart to delete it and train from scratch.")

    assert _run(hostile, "--restart") == 0
    assert not marker.exists()
    again = json.loads((first_run / "results.json").read_text())
    assert again["training"]["resumed_from_epoch"] is None
    assert again["metrics"]["overall"] == finished["metrics"]["overall"]  # from scratch, deterministically


def test_every_image_replaced_under_its_own_name_is_new_data(hostile: dict, first_run: Path) -> None:
    before = json.loads((first_run / "results.json").read_text())
    folder = hostile["root"] / "UTKFace"
    faces = sorted(p for p in folder.iterdir() if p.is_file() and p.stat().st_size > 1000)
    assert len(faces) == 700
    originals = [p.read_bytes() for p in faces]
    for i, path in enumerate(faces):  # each file gets the next person's face: same name, size and mtime
        replace_in_place(path, originals[(i + 1) % len(faces)])
    assert _run(hostile) == 0
    runs = sorted((hostile["out"] / "age_utk_cross_ethnicity").glob("source_only-*"))
    assert len(runs) == 2  # a new run folder: the data changed, so the run hash did
    (new,) = [r for r in runs if r != first_run]
    after = json.loads((new / "results.json").read_text())
    assert after["data"]["fingerprint"] != before["data"]["fingerprint"]
    assert after["data"]["split_fingerprint"] == before["data"]["split_fingerprint"]  # same names, same labels
    assert after["metrics"]["overall"]["mae"]["value"] != before["metrics"]["overall"]["mae"]["value"]
