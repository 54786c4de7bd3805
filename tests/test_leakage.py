"""Leakage between what a method learns from and what it is scored on.

1. No label of a target (or any other test) image reaches training: for every baseline that trains on
   unlabelled target images, replacing those images' labels by constants leaves the final weights
   bit-identical; changing the source labels does not (so the comparison can fail).
2. The labelled MDS anchors the pairwise model is given are not scored, and results.json counts them.
3. People in both the training and the test data are counted (``data.identity_overlap``) and warned about.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures_aifr import write_cacd_tree
from fixtures_utkface import write_files

import facebench.run as run_module
from facebench.baselines.specs import as_baseline_spec
from facebench.data.datasets import load_dataset
from facebench.data.identities import IdentityOverlapWarning, identity_overlap
from facebench.data.splits import Split, subject_holdout_split
from facebench.protocol import builtin_protocols, load_protocol
from facebench.registry import BASELINES, DATASETS
from facebench.reports.bias_report import write_protocol_report
from facebench.run import RunOptions, draw_anchors, prepare_data, prepare_training_data, run_protocol

PROTOCOLS = Path(__file__).resolve().parent.parent / "protocols"
#: White → Black with a ``target`` part; its own baselines are the pairwise model with MDS anchors.
PROTOCOL = PROTOCOLS / "age_utk_pairwise_mds.yaml"
TINY = ["dataset.synthetic.n=200", "dataset.synthetic.image_size=32", "dataset.synthetic.render_size=32",
        "model.image_size=16", "model.head_hidden=[16, 8]", "training.epochs=2", "training.batch_size=16",
        "training.device=cpu", "evaluation.n_boot=20"]

#: Every baseline that trains on unlabelled target images, in each way it can (DomainBed style): name, params,
#: and the training-log entries that show the target images entered training (so an equality below is not
#: the trivial one of a method that never looked at them). ``pairwise mds`` (Table 7's setting) trains on
#: source pairs only but is given labelled target anchors at prediction time.
CASES: dict[str, tuple[str, dict, set[str]]] = {
    "source_only smoothing": ("source_only", {"smoothing_weight": 0.01}, {"train_smooth"}),
    "dann": ("dann", {"layers": ["conv", "fc1"]}, {"train_adv"}),
    "dann smoothing": ("dann", {"layers": ["fc1"], "smoothing_weight": 0.01}, {"train_adv", "train_smooth"}),
    "mmd": ("mmd", {"layers": ["conv", "fc1"]}, {"train_mmd"}),
    "mmd multi_gaussian smoothing": ("mmd", {"kernel": "multi_gaussian", "smoothing_weight": 0.01},
                                     {"train_mmd", "train_smooth"}),
    "pairwise adversarial": ("pairwise", {"gamma": 0.5, "references": 2, "chunk_size": 32},
                             {"train_adv", "train_target_id"}),
    "pairwise smoothing": ("pairwise", {"smoothing_weight": 0.01, "references": 2, "chunk_size": 32},
                           {"train_smooth", "train_target_id"}),
    "pairwise mds": ("pairwise", {"references": 2, "chunk_size": 32}, set()),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny nets: see conftest


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("leakage-cache")


# ------------------------------------------------------------------------------- 1. labels and weights


def constant_labels_outside_training(table: pd.DataFrame, split: Split, anchors: list[str]) -> pd.DataFrame:
    """Every label (every column but ``sample_id``) of every image outside the train and val parts — the target
    images and the other test images — set to one constant per column (the first training image's value),
    except the declared anchors: the pairwise model is given their ages by design."""
    table = table.copy()
    rows = table["sample_id"].isin(set(split["test"]) | set(split["target"])) & ~table["sample_id"].isin(anchors)
    first = table.index[table["sample_id"] == split["train"][0]][0]
    for column in table.columns.drop("sample_id"):
        table.loc[rows, column] = table.at[first, column]
    return table


def permuted_source_ages(table: pd.DataFrame, split: Split, anchors: list[str]) -> pd.DataFrame:
    """The training images' ages shuffled among them (same ages, other images)."""
    table = table.copy()
    rows = table["sample_id"].isin(split["train"])
    table.loc[rows, "age"] = np.random.default_rng(0).permutation(table.loc[rows, "age"].to_numpy())
    return table


RELABEL = {"real": None, "constant target labels": constant_labels_outside_training,
           "permuted source ages": permuted_source_ages}


@dataclass(frozen=True, kw_only=True)
class Trained:
    weights: dict[str, torch.Tensor]  # the final checkpoint's state dict of every module the method trains
    predictions: bytes
    outcomes: pd.DataFrame
    results: dict


def _train(case: str, variant: str, *, out: Path, cache: Path) -> Trained:
    name, params, _ = CASES[case]
    protocol = load_protocol(PROTOCOL, overrides=[*TINY, f"baselines=[{json.dumps({'name': name, 'label': case, 'params': params})}]"])
    anchors_needed = as_baseline_spec(BASELINES.get(name)).load().target_anchors
    relabel = RELABEL[variant]
    original = run_module.prepare_data

    def prepare(protocol, **kwargs):
        dataset, split = original(protocol, **kwargs)
        if relabel is None:
            return dataset, split
        anchors = draw_anchors(split, anchors_needed, seed=0)  # the runner's own draw
        return replace(dataset, table=relabel(dataset.table, split, anchors)), split

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_module, "prepare_data", prepare)
        (run_dir,) = run_protocol(protocol, RunOptions(out_dir=out, cache_dir=cache, progress=False))
    state = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    return Trained(weights=state["modules"], predictions=(run_dir / "predictions.csv").read_bytes(),
                   outcomes=pd.read_csv(run_dir / "outcomes.csv", dtype={"sample_id": str}),
                   results=json.loads((run_dir / "results.json").read_text()))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache: Path):
    """``trained(case, variant)``: one run per case and labelling, made once for the module's tests."""
    done: dict[tuple[str, str], Trained] = {}

    def train(case: str, variant: str) -> Trained:
        if (case, variant) not in done:
            done[case, variant] = _train(case, variant, out=tmp_path_factory.mktemp("leakage-run"), cache=cache)
        return done[case, variant]

    return train


def differing_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Names of the state-dict entries that are not bit-identical (or are in one only)."""
    return sorted(k for k in a.keys() | b.keys() if k not in a or k not in b or not torch.equal(a[k], b[k]))


def test_every_baseline_that_sees_target_images_has_a_case() -> None:
    """Only the age-regression task hands baselines target images (FitData.target_images); a new baseline of
    that task needs a case here."""
    age_baselines = {name for name in BASELINES.names() if as_baseline_spec(BASELINES.get(name)).task == "age_regression"}
    assert age_baselines <= {name for name, _, _ in CASES.values()}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_target_labels_do_not_reach_the_final_weights(case: str, trained) -> None:
    real, constant = trained(case, "real"), trained(case, "constant target labels")
    logged = set(real.results["training"]["epochs"][-1])
    assert CASES[case][2] <= logged  # the target images did enter training
    # The relabelling took effect where labels are read (scoring), ...
    assert not np.array_equal(real.outcomes["y_true"], constant.outcomes["y_true"])
    # ... and not in the model: every tensor bit-identical, and so every prediction (the anchors kept their ages).
    assert real.weights and differing_tensors(real.weights, constant.weights) == []
    assert real.predictions == constant.predictions


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_source_labels_do_reach_the_final_weights(case: str, trained) -> None:
    """The comparison above is live: the same runs with the source ages shuffled end with other weights."""
    real, changed = trained(case, "real"), trained(case, "permuted source ages")
    assert differing_tensors(real.weights, changed.weights)


# ---------------------------------------------------------------------------------------- 2. MDS anchors


@pytest.mark.slow
def test_mds_anchors_are_not_scored_and_are_counted(tmp_path: Path, cache: Path) -> None:
    protocol = load_protocol(PROTOCOL, overrides=TINY)
    (run_dir,) = run_protocol(protocol, RunOptions(out_dir=tmp_path, cache_dir=cache, progress=False,
                                                   baselines=("rank + regression",)))
    results = json.loads((run_dir / "results.json").read_text())
    anchors = results["baseline"]["labelled_target_anchors"]
    _, split = prepare_data(protocol, data_root=None, cache_dir=cache, progress=False)
    assert len(anchors) == results["data"]["n_excluded_anchors"] == 2
    assert set(anchors) <= set(split["test"])  # they are test images, so they would have been scored
    outcomes = pd.read_csv(run_dir / "outcomes.csv", dtype={"sample_id": str})
    predictions = pd.read_csv(run_dir / "predictions.csv", dtype={"sample_id": str})
    assert not set(anchors) & (set(outcomes["sample_id"]) | set(predictions["sample_id"]))
    assert results["data"]["n_samples"] == len(outcomes) == len(split["test"]) - 2 == results["data"]["split_sizes"]["test"]
    assert results["metrics"]["overall"]["mae"]["n"] == len(split["test"]) - 2
    report = write_protocol_report(run_dir.parent).read_text(encoding="utf-8")
    assert f"2 labelled target anchor images (ages given to the method at prediction time) are not scored: " \
           f"{len(split['test']) - 2} test images are." in report


# ------------------------------------------------------------------------------------- 3. identity overlap


def test_celebrity_names_are_matched_across_datasets(tmp_path: Path) -> None:
    """CACD writes Robin_Williams, AgeDB RobinWilliams: the same person after normalisation."""
    cacd = load_dataset(DATASETS.get("cacd"), variant="metadata", synthetic_settings=None,
                        data_root=write_cacd_tree(tmp_path / "cacd"))
    agedb_files = ["0_RobinWilliams_60_m.jpg", "1_ZoëKravitz_25_f.jpg", "2_Jean_Claude_VanDamme_40_m.jpg",
                   "3_MariaCallas_35_f.jpg", "4_MariaCallas_50_f.jpg"]
    write_files(tmp_path / "agedb", [f"AgeDB/{name}" for name in agedb_files])
    agedb = load_dataset(DATASETS.get("agedb"), variant="images", synthetic_settings=None, data_root=tmp_path / "agedb")
    trained_on = subject_holdout_split(cacd.table, seed=0, val_fraction=0.25)
    tested_on = Split(parts={"test": tuple(agedb.table["sample_id"])}, description="every image")
    overlap = identity_overlap(train=cacd, train_split=trained_on, test=agedb, test_split=tested_on)
    assert (overlap.n, overlap.examples) == (3, ("Jean_Claude_VanDamme", "RobinWilliams", "ZoëKravitz"))
    assert (overlap.train, overlap.test) == ("cacd train+val", "agedb test")
    # FG-NET numbers its people: nothing to match, and the record says so rather than claiming 0.
    fgnet = replace(agedb, name="fgnet")
    unmatched = identity_overlap(train=cacd, train_split=trained_on, test=fgnet, test_split=tested_on)
    assert unmatched.n is None and "fgnet identifies its people by its own numbers" in unmatched.compared


@pytest.mark.slow
def test_runner_counts_records_warns_and_reports_people_in_train_and_test(tmp_path: Path, cache: Path) -> None:
    """Within one dataset: three people photographed for both the training and the test part."""
    original = run_module.prepare_data

    def prepare(protocol, **kwargs):
        dataset, split = original(protocol, **kwargs)
        table = dataset.table.copy()
        table["subject_id"] = table["sample_id"]  # everyone their own person ...
        for k, (trained_id, tested_id) in enumerate(zip(split["train"][:3], split["test"][:3], strict=True)):
            table.loc[table["sample_id"].isin([trained_id, tested_id]), "subject_id"] = f"Person {k}"  # ... but three
        return replace(dataset, table=table), split

    protocol = load_protocol(PROTOCOL, overrides=[*TINY, "baselines=[{name: source_only}]"])
    with pytest.MonkeyPatch.context() as patch, pytest.warns(IdentityOverlapWarning, match="3 people"):
        patch.setattr(run_module, "prepare_data", prepare)
        (run_dir,) = run_protocol(protocol, RunOptions(out_dir=tmp_path, cache_dir=cache, progress=False))
    record = json.loads((run_dir / "results.json").read_text())["data"]["identity_overlap"]
    assert record == {"n": 3, "train": "utkface train+val", "test": "utkface test",
                      "compared": "subject ids (column 'subject_id')", "examples": ["Person 0", "Person 1", "Person 2"]}
    report = write_protocol_report(run_dir.parent).read_text(encoding="utf-8")
    assert "Identity overlap: 3 people of the test data (utkface test) are also in the training data" in report


#: What the built-in protocols' synthetic data gives. None: the two sides cannot be matched (UTKFace has no
#: subject ids; FG-NET's and MORPH's numbers and the pair packs' pair-derived ids mean nothing to CACD).
#: aifr_agedb30 is 0: the synthetic CACD and AgeDB writers draw their made-up names from streams of their own
#: (they once shared one, and many synthetic AgeDB people shared a name, not a face, with a CACD one).
SYNTHETIC_OVERLAP: dict[str, int | None] = {
    "age_utk_cross_ethnicity": None, "age_utk_da_layers": None, "age_utk_dann_gamma": None,
    "age_utk_dann_pretrained": None, "age_utk_dann_vs_mmd": None, "age_utk_pairwise_mds": None,
    "aifr_agedb30_bin": None, "aifr_cacd_vs": None, "aifr_fgnet": None,
    "aifr_cacd": 0, "aifr_morph": 0, "aifr_morph_dlib": 0, "aifr_agedb30": 0,
    # seed 001's family trains on UTKFace, which names no one
    **{f"race_utk_{target}{table}": None for target in ("celeba", "fairface")
       for table in ("", "_augmentation", "_optimisers", "_summary")},
    # the generative family holds out whole people (generation_holdout)
    "gan_celeba_realism": 0, "gan_aging_morph": 0,
}


@pytest.mark.parametrize("path", builtin_protocols(), ids=lambda p: p.stem)
def test_builtin_protocols_on_small_synthetic_data(path: Path, cache: Path) -> None:
    protocol = load_protocol(path)
    small = ["dataset.synthetic.n=40", "dataset.synthetic.image_size=16", "dataset.synthetic.render_size=16"]
    if protocol.train_dataset is not None:
        small += ["train_dataset.synthetic.n=40", "train_dataset.synthetic.image_size=16",
                  "train_dataset.synthetic.render_size=16"]
    if protocol.dataset.name == "agedb":  # 40 people cannot fill AgeDB-30's 10 x 600 pairs
        small += ["dataset.synthetic.options={n_folds: 2, pairs_per_fold: 10}"]
    if protocol.split.name == "age_gap_pairs":
        small += ["split.params.n_folds=2", "split.params.pairs_per_fold=10"]
    if protocol.split.name == "generation_holdout" and protocol.split.params.get("train_groups"):
        small += ["split.params.test_per_domain=5"]  # seed 001 section 3's held-out CelebC and CelebO faces
    if protocol.split.name == "labelled_subset":  # seed 001's 2,000 + 500 labelled target images
        small += ["split.params.n_train=6", "split.params.n_test=4", "split.params.balanced_test=false"]
    protocol = load_protocol(path, overrides=small)
    dataset, split = prepare_data(protocol, data_root=None, cache_dir=cache, progress=False)
    train, train_split = prepare_training_data(protocol, dataset, split, data_root=None, train_data_root=None,
                                               cache_dir=cache, progress=False)
    overlap = identity_overlap(train=train, train_split=train_split, test=dataset, test_split=split)
    assert overlap.n == SYNTHETIC_OVERLAP[path.stem], overlap
