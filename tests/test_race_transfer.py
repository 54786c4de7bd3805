"""Seed 001's race-transfer family (issue 14 items 5-7): the dataset.options and repeats protocol keys (old
fingerprints unchanged), the race_classification task's predictions format, the runner's source split and
in-domain benchmark, the report's transfer section, and --predictions / --model for the task. One tiny run
(module fixture) is shared by the tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facebench.cli import main
from facebench.errors import UserInputError
from facebench.protocol import load_protocol
from facebench.tasks.race_classification import RACE_CLASSIFICATION, epochs_to_convergence

#: Fingerprints computed by the code before dataset.options and repeats existed (commit 38266f9).
OLD_FINGERPRINTS = {
    ("age_utk_cross_ethnicity", "quick"): "5ee50e455c16fd10b5b0b4fec61190d2cd284efb043204599f4178281af72275",
    ("aifr_fgnet", "quick"): "65914a9042909ede6b997259327a33cdfab3864f661de09279c3786bb9692f90",
    ("aifr_cacd", "paper"): "a781dc8e503104facee805bd1067b61868883147897595af8f149fb40413734e",
}

TINY = ["--set", "dataset.synthetic.n=120", "--set", "dataset.synthetic.image_size=48",
        "--set", "train_dataset.synthetic.n=300", "--set", "train_dataset.synthetic.render_size=48",
        "--set", "split.params.n_train=100", "--set", "split.params.n_test=60", "--set", "model.image_size=32",
        "--set", "training.epochs=2", "--set", "evaluation.n_boot=50", "--set", "repeats=2", "--no-progress"]
PROTOCOL = "race_utk_celeba_summary"


@pytest.mark.parametrize(("name", "profile"), list(OLD_FINGERPRINTS))
def test_protocols_without_the_new_keys_keep_their_fingerprints(name: str, profile: str) -> None:
    protocol = load_protocol(name, profile=profile)
    assert protocol.fingerprint() == OLD_FINGERPRINTS[(name, profile)]
    if protocol.train_dataset is not None:  # the shared-model hash reads this dump
        assert "options" not in protocol.train_dataset.fingerprint_dump()


def test_dataset_options_and_repeats_enter_the_fingerprint_when_set() -> None:
    plain = load_protocol("race_utk_celeba")
    assert plain.dataset.options["race_annotations"] == "race_annotations.csv"
    other = load_protocol("race_utk_celeba", overrides=["dataset.options.race_annotations=mine.csv"])
    assert other.fingerprint() != plain.fingerprint()
    assert load_protocol("race_utk_celeba", overrides=["repeats=3"]).fingerprint() != plain.fingerprint()


@pytest.mark.parametrize(("override", "fragment"), [
    ("dataset.options.bogus=1", "key 'dataset.options': CelebA has no option 'bogus'"),
    ("repeats=0", "repeats"),
    ("baselines.0.params.tune_optimizer=lbfgs", "tune_optimizer"),
])
def test_bad_protocol_keys_are_one_sentence(override: str, fragment: str) -> None:
    with pytest.raises(UserInputError, match=fragment.replace("(", r"\(")) as info:
        load_protocol("race_utk_celeba", overrides=[override])
    assert "\n" not in str(info.value)


def test_epochs_to_convergence() -> None:
    assert epochs_to_convergence([0.9, 0.5, 0.5, 0.5]) == 2
    assert epochs_to_convergence([]) is None


@pytest.mark.parametrize(("text", "fragment"), [
    ("sample_id,age\na,1\n", "expected exactly sample_id,label or sample_id,p_white"),
    ("sample_id,label\na,maybe\nb,white\n", "line 2 has label .maybe."),
    ("sample_id,p_white\na,1.5\nb,0\n", "line 2 has p_white"),
    ("sample_id,label\na,white\na,white\n", "line 3 repeats sample_id .a."),
    ("sample_id,label\na,white\nzz,white\n", "line 3 has sample_id .zz., which is not in this protocol's test set"),
    ("sample_id,label\na,white\n", "1 test images have no prediction"),
    ("sample_id,label\na,white,1\n", "line 2 has 3 fields"),
])
def test_bad_predictions_are_one_sentence(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "p.csv"
    path.write_text(text)
    with pytest.raises(UserInputError, match=fragment) as info:
        RACE_CLASSIFICATION.read_predictions(path, ("a", "b"))
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    out, cache = tmp_path_factory.mktemp("race-out"), tmp_path_factory.mktemp("race-cache")
    args = ["run", PROTOCOL, "--baseline", "Benchmark", "--baseline", "Baseline", "--out", str(out),
            "--cache-dir", str(cache), *TINY]
    assert main(args) == 0
    return out, cache


def test_run_scores_source_target_and_the_in_domain_benchmark(run: tuple[Path, Path]) -> None:
    out, _ = run
    results = [json.loads(p.read_text()) for p in sorted((out / PROTOCOL).glob("*/results.json"))]
    assert len(results) == 4  # two baselines, two repeats each
    for r in results:
        assert 0 <= r["splits"]["source"]["accuracy"]["value"] <= 1
        assert r["data"]["annotations"]["agreement"]["statistic"] == "cohen_kappa"
        assert {e["stage"] for e in r["training"]["epochs"]} == {"tune"}
    in_domain = [r for r in results if r["baseline"]["label"] == "Benchmark"]
    assert {r["provenance"]["seed"] for r in in_domain} == {0, 1}
    assert all(r["baseline"]["train_data"]["in_domain"] for r in in_domain)
    transfer = [r for r in results if r["baseline"]["label"] == "Baseline"]
    assert all(r["baseline"]["train_data"]["dataset"] == "utkface" for r in transfer)


def test_fairness_differences_equal_fairlearns(run: tuple[Path, Path]) -> None:
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    out, _ = run
    folder = next(p.parent for p in (out / PROTOCOL).glob("Baseline-*/results.json"))
    results = json.loads((folder / "results.json").read_text())
    outcomes = pd.read_csv(folder / "outcomes.csv", keep_default_na=False)
    y_true, y_pred = (outcomes["y_true"] == "white").astype(int), (outcomes["y_pred"] == "white").astype(int)
    fairness = results["metrics"]["differentials"]["fairness"]["gender"]
    assert fairness["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y_true, y_pred, sensitive_features=outcomes["gender"]))
    assert fairness["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y_true, y_pred, sensitive_features=outcomes["gender"]))
    confusion = results["metrics"]["differentials"]["confusion"]["overall"]["all"]
    assert sum(confusion.values()) == len(outcomes)


def test_report_shows_the_transfer_view_and_the_papers_table(run: tuple[Path, Path]) -> None:
    out, _ = run
    html = (out / PROTOCOL / "report.html").read_text()
    assert "Source, target and in-domain accuracy" in html and "in-domain benchmark" in html
    assert "mean of 2 repeats" in html and "Not comparable" in html
    assert "not how the people" in html and "Cohen" in html
    assert "Tuned + PreProcessing + Optimisers" in html  # the seed's Table 4 beside ours


def test_evaluate_predictions_and_model(run: tuple[Path, Path], tmp_path: Path) -> None:
    out, cache = run
    predictions = pd.read_csv(next((out / PROTOCOL).glob("Baseline-*/predictions.csv")))
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"sample_id": predictions["sample_id"],
                  "label": np.where(predictions["p_white"] >= 0.5, "white", "other")}).to_csv(labels, index=False)
    common = ["--out", str(out), "--cache-dir", str(cache), *TINY]
    assert main(["evaluate", PROTOCOL, "--predictions", str(labels), "--name", "labels", *common]) == 0
    assert (out / PROTOCOL / "submission-labels" / "results.json").is_file()
    bad = tmp_path / "bad.csv"
    bad.write_text("sample_id,p_white\n" + "".join(f"{s},2\n" for s in predictions["sample_id"]))
    assert main(["evaluate", PROTOCOL, "--predictions", str(bad), "--name", "bad", *common]) == 2
    assert not (out / PROTOCOL / "submission-bad").exists()
    model = tmp_path / "half.py"
    model.write_text("import torch\ndef build(task, image_size):\n    return lambda x: torch.full((len(x),), 0.75)\n")
    assert main(["evaluate", PROTOCOL, "--model", f"{model}:build", "--name", "half", *common]) == 0
    results = json.loads((out / PROTOCOL / "submission-half" / "results.json").read_text())
    assert results["metrics"]["overall"]["selection_rate@white"]["value"] == 1.0
