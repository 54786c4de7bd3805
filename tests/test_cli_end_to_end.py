"""The whole path on synthetic data: protocol → synthetic UTKFace → split → source_only → scoring → report.

Small settings keep it to seconds; the defaults are exercised by the demo (`tox -e demo`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from facebench.cli import main

AGE = Path(__file__).resolve().parent.parent / "protocols" / "age_utk_cross_ethnicity.yaml"
SMALL = ["--set", "dataset.synthetic.n=700", "--set", "dataset.synthetic.image_size=64",
         "--set", "dataset.synthetic.render_size=64", "--set", "model.image_size=32",
         "--set", "training.epochs=2", "--set", "evaluation.n_boot=100", "--no-progress"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, cache) -> Path:
    out = tmp_path_factory.mktemp("runs")
    assert main(["run", str(AGE), "--out", str(out), "--cache-dir", str(cache), *SMALL]) == 0
    (run,) = (out / "age_utk_cross_ethnicity").glob("source_only-*")
    return run


def test_run_writes_the_results_contract(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    assert results["schema_version"] == "1.3"
    statistics = results["statistics"]
    assert set(statistics) == {"n_boot", "confidence", "interval_method", "min_group_size", "seed", "units"}
    # UTKFace names no one: rows are the unit, and results.json says so
    assert statistics["units"]["unit"] == "image" and statistics["units"]["columns"] == []
    assert "independent" in statistics["units"]["note"]
    assert statistics["seed"] == results["provenance"]["seed"] and statistics["min_group_size"] >= 1
    assert results["protocol"]["name"] == "age_utk_cross_ethnicity" and results["protocol"]["profile"] == "quick"
    assert results["baseline"]["name"] == "source_only"
    from facebench.protocol import load_protocol

    stated = [d.model_dump(mode="json") for d in load_protocol(AGE).deviations]
    assert results["protocol"]["deviations"] == stated and stated
    # What the comparability rule reads (schema 1.3): the --set overrides, the stated conditions, the pairs.
    assert results["protocol"]["overrides"] == [SMALL[i + 1] for i, arg in enumerate(SMALL) if arg == "--set"]
    assert results["protocol"]["comparability"] == load_protocol(AGE).comparability.model_dump(mode="json")
    assert results["data"]["pair_source"] is None  # no pairs in an age split
    assert results["data"]["synthetic"] is True and len(results["data"]["fingerprint"]) == 64
    for key in ("facebench_version", "git_commit", "torch", "device", "seed", "duration_s"):
        assert key in results["provenance"]
    assert results["provenance"]["processes"] == 1  # a plain process (torchrun's runs record their world size)
    mae = results["metrics"]["overall"]["mae"]
    assert mae["ci_low"] <= mae["value"] <= mae["ci_high"] and mae["n"] == results["data"]["n_samples"]
    races = results["metrics"]["by_group"]["race"]
    assert set(races) == {"white", "black", "asian", "indian", "others"}
    assert sum(v["mae"]["n"] for v in races.values()) == mae["n"]
    assert "white*female" in results["metrics"]["by_group"]["race*gender"]
    gap = results["metrics"]["disparities"]["mae"]["race"]
    assert gap["worst_group"] != gap["best_group"] and gap["gap_ci_low"] <= gap["gap"] <= gap["gap_ci_high"]
    assert "mae" in results["splits"]["source_val"]
    assert len(results["training"]["epochs"]) == 2


def test_outcomes_and_predictions_agree_with_metrics(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    predictions = pd.read_csv(run_dir / "predictions.csv")
    outcomes = pd.read_csv(run_dir / "outcomes.csv")
    assert list(predictions.columns) == ["sample_id", "age"]
    assert predictions["sample_id"].str.startswith("UTKFace/").all()
    assert outcomes["abs_error"].mean() == pytest.approx(results["metrics"]["overall"]["mae"]["value"], abs=1e-5)
    black = outcomes[outcomes["race"] == "black"]["abs_error"].mean()
    assert black == pytest.approx(results["metrics"]["by_group"]["race"]["black"]["mae"]["value"], abs=1e-5)


def test_report_is_self_contained_and_marked_synthetic(run_dir: Path) -> None:
    html = (run_dir.parent / "report.html").read_text()
    assert html.count("SYNTHETIC") >= 2
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "data:image/png;base64," in html
    assert "MAE for" in html and "95% CI" in html
    assert "Deviations from the paper" in html and 'class="deviations"' in html
    results = json.loads((run_dir / "results.json").read_text())
    for deviation in results["protocol"]["deviations"]:
        assert deviation["setting"] in html


def test_synthetic_run_states_the_injected_effect_and_its_gap_beside_the_measured_gap(run_dir: Path) -> None:
    """The audit's known answer: results.json and the report carry the generator's ageing rates, the MAE gap an
    oracle reading every age cue exactly (as for White faces, the training group) would show, and beside them
    the measured gap with its interval."""
    from facebench.data.synth import AGING_RATES

    results = json.loads((run_dir / "results.json").read_text())
    truth = results["synthetic_truth"]
    assert truth["injected"]["aging_rate"] == AGING_RATES  # the default groups, read back from SYNTHETIC.json
    assert truth["metric"] == "mae" and truth["attribute"] == "race"
    # The oracle recomputed from outcomes.csv alone: an adult of rate r shows cue age 18 + (age - 18) r, read as
    # that age, so it is off by (age - 18)(1 - r) years; a child is read exactly.
    outcomes = pd.read_csv(run_dir / "outcomes.csv")
    rate = outcomes["race"].map(AGING_RATES)
    error = ((outcomes["y_true"] - 18).clip(lower=0) * (1 - rate)).abs()
    expected = error.groupby(outcomes["race"]).mean()
    implied = truth["implied"]
    assert implied["method"] == "oracle"
    assert {g: v["value"] for g, v in implied["by_group"].items()} == pytest.approx(expected.to_dict(), abs=1e-9)
    assert implied["best_group"] == "white" and implied["best_value"] == 0.0
    worst = max((g for g, v in implied["by_group"].items() if v["flag"] != "small"), key=lambda g: expected[g])
    assert implied["worst_group"] == worst and implied["gap"] == pytest.approx(expected[worst], abs=1e-9)
    measured = results["metrics"]["disparities"]["mae"]["race"]
    assert truth["measured"] == {k: measured[k] for k in truth["measured"]}
    assert set(truth["measured"]) >= {"gap", "gap_ci_low", "gap_ci_high", "worst_group", "best_group"}

    html = (run_dir.parent / "report.html").read_text()
    section = html[html.index('id="known-answer"'):]
    section = section[:section.index("</p>", section.index("known-answer-gaps"))]
    for race, value in AGING_RATES.items():
        assert f'<tr data-group="{race}"><td class="text">{race}</td><td>{value:.2f}</td>' in section
    assert f"Implied gap (oracle): {implied['gap']:.2f} years" in section
    assert (f"Measured gap: {measured['gap']:.2f} years [95% interval {measured['gap_ci_low']:.2f}–"
            f"{measured['gap_ci_high']:.2f}]") in section
    assert f"for faces labelled {worst.capitalize()} in synthetic UTKFace" in section


def test_report_sentences_say_whose_label_a_group_is(run_dir: Path) -> None:
    html = (run_dir.parent / "report.html").read_text()
    assert "faces labelled White in synthetic UTKFace" in html
    for race in ("white", "black", "asian", "indian", "others"):
        assert f"{race} faces" not in html.lower()
    from facebench.reports.bias_report import GLOSSARY

    assert f'<p class="muted glossary">{GLOSSARY}</p>' in html.replace("&#39;", "'")


def test_evaluate_scores_a_file_exactly_like_the_baseline(run_dir: Path, cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    code = main(["evaluate", str(AGE), "--predictions", str(run_dir / "predictions.csv"), "--name", "copy",
                 "--out", str(out), "--cache-dir", str(cache), *SMALL])
    assert code == 0
    mine = json.loads((out / "age_utk_cross_ethnicity" / "submission-copy" / "results.json").read_text())
    baseline = json.loads((run_dir / "results.json").read_text())
    assert mine["metrics"] == baseline["metrics"]
    assert mine["data"]["fingerprint"] == baseline["data"]["fingerprint"]
    assert mine["baseline"]["kind"] == "submission"


def test_list_ids_prints_the_test_split_and_predictions_are_required(run_dir: Path, cache: Path, capsys) -> None:
    assert main(["evaluate", str(AGE), "--list-ids", "--cache-dir", str(cache), *SMALL]) == 0
    ids = capsys.readouterr().out.split()
    assert ids == pd.read_csv(run_dir / "predictions.csv")["sample_id"].tolist()
    assert main(["evaluate", str(AGE), "--cache-dir", str(cache), *SMALL]) == 2
    assert "needs --predictions FILE" in capsys.readouterr().err


def test_submission_names_are_escaped_in_the_report(run_dir: Path, cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    assert main(["evaluate", str(AGE), "--predictions", str(run_dir / "predictions.csv"), "--name",
                 "<script>alert(1)</script>", "--out", str(out), "--cache-dir", str(cache), *SMALL]) == 0
    html = (out / "age_utk_cross_ethnicity" / "report.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    (folder,) = [p.name for p in (out / "age_utk_cross_ethnicity").iterdir() if p.is_dir()]
    assert folder.startswith("submission-script_alert") and "/" not in folder and "<" not in folder


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.drop(index=3), "test images have no prediction"),
        (lambda f: pd.concat([f, f.iloc[[0]]]), "repeats sample_id"),
        (lambda f: f.assign(age=f["age"].where(f.index != 5, float("nan"))), "line 7 has age"),
        (lambda f: f.assign(age=f["age"].astype(object).where(f.index != 2, "old")), "line 4 has age 'old'"),
        (lambda f: f.assign(sample_id=f["sample_id"].where(f.index != 0, "UTKFace/nobody.jpg")), "line 2 has sample_id 'UTKFace/nobody.jpg'"),
        (lambda f: f.rename(columns={"age": "pred"}), "expected exactly sample_id,age"),
    ],
)
def test_evaluate_refuses_malformed_predictions(run_dir: Path, cache: Path, tmp_path: Path, capsys, edit, message) -> None:
    bad = tmp_path / "bad.csv"
    edit(pd.read_csv(run_dir / "predictions.csv")).to_csv(bad, index=False)
    out = tmp_path / "eval"
    assert main(["evaluate", str(AGE), "--predictions", str(bad), "--out", str(out), "--cache-dir", str(cache), *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and str(bad) in err and len(err.splitlines()) == 1
    assert not out.exists()  # nothing half-written


def test_data_verify_json_on_the_synthetic_folder(cache: Path, capsys) -> None:
    (root,) = (cache / "synth").glob("utkface-*")
    assert main(["data", "verify", "utkface", "--root", str(root), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_samples"] == 700 and summary["n_rejected"] == 0 and summary["rejected"] == []
    assert sum(summary["groups"]["race"].values()) == 700


def test_data_verify_missing_root_is_one_sentence(tmp_path: Path, capsys) -> None:
    assert main(["data", "verify", "utkface", "--root", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_rerun_skips_a_finished_run(run_dir: Path, cache: Path, capsys) -> None:
    before = (run_dir / "results.json").stat().st_mtime_ns
    assert main(["run", str(AGE), "--out", str(run_dir.parent.parent), "--cache-dir", str(cache), *SMALL]) == 0
    assert (run_dir / "results.json").stat().st_mtime_ns == before
    assert "already done" in capsys.readouterr().err


@pytest.mark.slow
def test_killed_run_resumes_and_ends_with_the_same_metrics(run_dir: Path, cache: Path, tmp_path: Path) -> None:
    """Kill `facebench run` (SIGKILL) after its first epoch checkpoint; the same command finishes the job."""
    args = [sys.executable, "-m", "facebench", "run", str(AGE), "--cache-dir", str(cache), *SMALL,
            "--set", "training.epochs=4"]
    env = {**os.environ, "FACEBENCH_NO_PROGRESS": "1"}
    reference_out, killed_out = tmp_path / "reference", tmp_path / "killed"
    subprocess.run([*args, "--out", str(reference_out)], check=True, env=env, capture_output=True)

    process = subprocess.Popen([*args, "--out", str(killed_out)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    checkpoints = killed_out / "age_utk_cross_ethnicity"
    while not list(checkpoints.glob("*/checkpoints/last.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert list(checkpoints.glob("*/checkpoints/last.pt")), "no checkpoint was written before the deadline"
    assert not list(checkpoints.glob("*/results.json")), "the run finished before it could be killed"

    subprocess.run([*args, "--out", str(killed_out)], check=True, env=env, capture_output=True)
    (resumed,) = checkpoints.glob("*/results.json")
    (reference,) = (reference_out / "age_utk_cross_ethnicity").glob("*/results.json")
    resumed_results, reference_results = json.loads(resumed.read_text()), json.loads(reference.read_text())
    assert resumed_results["training"]["resumed_from_epoch"] >= 1
    assert resumed_results["metrics"] == reference_results["metrics"]
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.slow
def test_default_quick_run_shows_the_known_shift_at_a_realistic_size(tmp_path_factory) -> None:
    """The demo itself (quick profile, default synthetic data, seed 0): the training group (white) has the
    lowest MAE, lower than every other group's by more than the intervals and by at least 5 % (seed 000 reports
    5-20 % gaps on real UTKFace), and no group's gap exceeds the known answer's by more than a year: the oracle
    that reads every age cue exactly is off by (age − 18) × (1 − rate), 2.0 years more for Indian faces (rate
    0.88) than for White ones, so a model whose gap went far beyond that would be failing for another reason.
    (Measured: Indian 5.04 against White 3.81 with one torch thread; the exact numbers move with the thread
    count, which changes the order of float sums.)"""
    out = tmp_path_factory.mktemp("demo")
    assert main(["run", str(AGE), "--out", str(out), "--cache-dir", str(tmp_path_factory.mktemp("democache")),
                 "--no-progress"]) == 0
    (path,) = (out / "age_utk_cross_ethnicity").glob("source_only-*/results.json")
    results = json.loads(path.read_text())
    races = results["metrics"]["by_group"]["race"]
    # The known answer agrees on who fares best: the training group, whose cues the model learnt to read.
    assert results["synthetic_truth"]["implied"]["best_group"] == results["synthetic_truth"]["measured"]["best_group"]
    implied = {group: v["value"] for group, v in results["synthetic_truth"]["implied"]["by_group"].items()}
    white = races.pop("white")["mae"]
    assert white["n"] > 500
    for race, values in races.items():
        mae = values["mae"]
        assert white["ci_high"] < mae["ci_low"], race
        assert mae["value"] / white["value"] > 1.05, race
        assert mae["value"] - white["value"] < implied[race] - implied["white"] + 1.0, race


def test_data_synth_writes_the_utkface_format_and_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    out = tmp_path / "synthetic"
    assert main(["data", "synth", "utkface", "--out", str(out), "--n", "40", "--size", "64", "--seed", "3"]) == 0
    names = sorted(p.name for p in (out / "UTKFace").iterdir())
    assert len(names) == 40 and all(n.endswith(".jpg.chip.jpg") for n in names)
    assert main(["data", "verify", "utkface", "--root", str(out)]) == 0
    assert "40 images accepted, 0 rejected" in capsys.readouterr().out
    assert main(["data", "synth", "utkface", "--out", str(out), "--n", "40"]) == 2
    assert sorted(p.name for p in (out / "UTKFace").iterdir()) == names


def test_protocols_list_and_report_rebuild(run_dir: Path, capsys) -> None:
    assert main(["protocols", "list"]) == 0
    assert "age_utk_cross_ethnicity" in capsys.readouterr().out.split()
    report = run_dir.parent / "report.html"
    report.unlink()
    assert main(["report", str(run_dir.parent)]) == 0
    assert report.is_file()
    assert main(["report", str(run_dir.parent / "nothing-here")]) == 2
