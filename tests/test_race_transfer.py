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
    assert load_protocol("race_utk_celeba", overrides=["repeats=4"]).fingerprint() != plain.fingerprint()


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
    summary = html[html.index("<h2>Summary</h2>"):]
    summary = summary[:summary.index("</table>")]
    # the repeats of one baseline are told apart by their seed in the summary table
    for label in ("Baseline", "Benchmark"):
        assert all(f'<td>{label} <span class="muted">seed {seed}</span></td>' in summary for seed in (0, 1))


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


def test_balanced_test_leaves_both_classes_to_train() -> None:
    """The balanced test set takes 'other' people from the front of the random order; train is then drawn in a
    fresh order, so it holds about the remaining share of 'other' (it used to draw White people only)."""
    from facebench.data.splits import labelled_subset_split

    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(400), 5)
    race = np.where(rng.random(400) < 0.2, "black", "white")[subjects]
    table = pd.DataFrame({"sample_id": [f"{i}.jpg" for i in range(len(subjects))], "subject_id": subjects.astype(str),
                          "race": race})
    split = labelled_subset_split(table, seed=0, n_train=400, n_test=300, balanced_test=True)
    label = table.set_index("sample_id")["race"]
    test, train = label.loc[list(split["test"])], label.loc[list(split["train"])]
    assert abs((test == "white").mean() - 0.5) < 0.02
    rest = label.drop(list(split["test"]))
    assert abs((train != "white").mean() - (rest != "white").mean()) < 0.08


def test_vggface_random_init_keeps_image_dependent_features() -> None:
    """torch's default conv init shrank the signal through VGG-Face's 13 layers: its features were 99 % constant
    and fine-tuning it fell to chance. Initialised as torchvision's VGG, they vary across images as VGG16's do."""
    import torch

    from facebench.baselines.race_transfer import backbone_units

    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    normalize, units, _ = backbone_units("vggface", None)
    with torch.no_grad():
        h = normalize(x)
        for unit in units:
            h = unit(h)
    features = h.mean((2, 3))
    assert float(features.std(0).mean() / features.abs().mean()) > 0.05


def test_feature_cache_key_follows_the_frozen_weights(tmp_path: Path) -> None:
    """The cache key hashes the frozen part's tensors: other weights (or another cut) are another entry, which
    lives under the run's cache folder."""
    import torch

    from facebench.baselines.race_transfer import FrozenPart, MLPHead, RaceNet, _cached_features, frozen_key

    assert frozen_key("small_cnn", None, 2, 1.0) != frozen_key("small_cnn", None, 3, 1.0)
    assert frozen_key("small_cnn", None, 2, 1.0) != frozen_key("small_cnn", None, 2, 0.8)
    conv = torch.nn.Conv2d(3, 4, 3)
    net = RaceNet(normalize=torch.nn.Identity(), frozen=[conv], trainable=[], width=4, head=MLPHead(4, (8,), 0.0),
                  frozen_key="k1")
    images = np.random.default_rng(0).integers(0, 255, (3, 8, 8, 3), dtype=np.uint8).transpose(0, 3, 1, 2).copy()
    first = _cached_features(FrozenPart(net), images, device=torch.device("cpu"), cache_dir=tmp_path)
    assert len(list((tmp_path / "features").glob("*.npy"))) == 1
    torch.nn.init.zeros_(conv.weight)
    net.frozen_key = "k2"
    second = _cached_features(FrozenPart(net), images, device=torch.device("cpu"), cache_dir=tmp_path)
    assert len(list((tmp_path / "features").glob("*.npy"))) == 2 and not np.allclose(first, second)


def test_tables_share_one_training_of_the_same_model(run: tuple[Path, Path]) -> None:
    """Table 1's "vggface tuned" is Table 4's "Baseline" (same params, other label, other protocol): its runs
    reuse the model trained for Table 4 (OUT/_trained/race_transfer-<hash>), nothing is trained again."""
    out, cache = run
    assert main(["run", "race_utk_celeba", "--baseline", "vggface tuned", "--out", str(out), "--cache-dir", str(cache),
                 *TINY]) == 0
    table1 = [json.loads(p.read_text()) for p in (out / "race_utk_celeba").glob("*/results.json")]
    table4 = [json.loads(p.read_text()) for p in (out / PROTOCOL).glob("Baseline-*/results.json")]
    assert len(table1) == 2
    assert {r["baseline"]["train_data"]["model_dir"] for r in table1} == \
        {r["baseline"]["train_data"]["model_dir"] for r in table4}
    assert all(r["training"]["resumed_from_epoch"] == 2 for r in table1)


def test_missing_weights_are_one_sentence_before_any_data(tmp_path: Path, capsys) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    code = main(["run", PROTOCOL, "--profile", "paper", "--baseline", "Benchmark", "--out", str(out),
                 "--cache-dir", str(cache), "--set", f"baselines.0.params.vggface_weights={tmp_path / 'none.pth'}"])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert "none.pth does not exist" in error and "\n" not in error
    assert not out.exists() and not cache.exists()


def test_missing_imagenet_weights_are_one_line_without_torchs_download_notice(monkeypatch, capsys) -> None:
    """torch.hub announces 'Downloading: ...' on stderr before it tries the network; without one, the user sees
    only facebench's sentence (the hub call is replaced by one that behaves as torch's does offline)."""
    import sys
    import urllib.error

    import torchvision.models._api as weights_api

    from facebench.baselines.nets import _pretrained_state_dict

    def offline(url, *args, **kwargs):
        sys.stderr.write(f'Downloading: "{url}" to /root/.cache/torch/hub/checkpoints/x.pth\n')
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(weights_api, "load_state_dict_from_url", offline)   # what Weights.get_state_dict calls
    with pytest.raises(UserInputError, match="could not load resnet50 weights") as error:
        _pretrained_state_dict("resnet50", "IMAGENET1K_V1")
    assert "Downloading" not in capsys.readouterr().err and "\n" not in str(error.value)
