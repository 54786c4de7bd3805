"""Smoke tests over protocol × baseline (DomainBed style): every built-in protocol validates with every
profile, and every baseline kind trains, predicts and scores end to end on tiny synthetic data."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from facebench.cli import main
from facebench.protocol import builtin_protocols, load_protocol, validate_all_profiles

TINY = ["--set", "dataset.synthetic.n=200", "--set", "dataset.synthetic.image_size=48",
        "--set", "dataset.synthetic.render_size=48", "--set", "model.image_size=32",
        "--set", "training.epochs=2", "--set", "evaluation.n_boot=50", "--set", "repeats=1", "--no-progress"]

#: What a split needs at TINY's dataset size (the race protocols' quick split is the paper's 2,000 / 500 images).
SPLIT_AT_TINY = {"labelled_subset": ["--set", "split.params.n_train=100", "--set", "split.params.n_test=60"]}


@pytest.mark.parametrize("path", builtin_protocols(), ids=lambda p: p.stem)
def test_every_builtin_protocol_validates(path: Path) -> None:
    protocols = validate_all_profiles(path)
    assert {p.profile for p in protocols} >= {"paper", "quick"}
    assert all(p.name == path.stem for p in protocols)


def _one_entry_per_baseline_kind() -> list[tuple[Path, str]]:
    """One (protocol, baseline label) per baseline kind, from the cheapest protocol that has it: protocols that
    train on their own dataset before those that train on another (``train_dataset``: two datasets to build; e.g.
    aifr_morph, not aifr_agedb30, for arcface: a minute less of suite time, the same code path for the baseline)."""
    chosen: dict[str, tuple[Path, str]] = {}
    for path in sorted(builtin_protocols(), key=lambda p: (load_protocol(p).train_dataset is not None, p.name)):
        if load_protocol(path).task == "face_generation":
            continue  # the generators train judges too: tests/test_gan.py runs each of their protocols at toy size
        for entry in load_protocol(path).baselines:
            chosen.setdefault(entry.name, (path, entry.display_name))
    return sorted(chosen.values(), key=lambda c: c[1])


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("smoke-cache")


@pytest.mark.slow
@pytest.mark.parametrize(("path", "label"), _one_entry_per_baseline_kind(), ids=lambda v: getattr(v, "stem", v))
def test_every_baseline_kind_runs_end_to_end(path: Path, label: str, cache: Path, tmp_path: Path) -> None:
    if label.startswith("dlib") and not all(importlib.util.find_spec(m) for m in ("dlib", "face_recognition_models")):
        pytest.skip('the dlib extra is not installed (pip install -e ".[dlib]"); test_face_recognition checks its error')
    split = SPLIT_AT_TINY.get(load_protocol(path).split.name, [])
    assert main(["run", str(path), "--baseline", label, "--out", str(tmp_path), "--cache-dir", str(cache), *TINY,
                 *split]) == 0
    (results_path,) = tmp_path.glob("*/*/results.json")
    results = json.loads(results_path.read_text())
    assert results["baseline"]["label"] == label
    primary = results["metrics"]["overall"][results["protocol"]["primary_metric"]]
    # Two epochs at 32 px only prove the path works: finite numbers with intervals, over every scored sample.
    assert primary["ci_low"] <= primary["value"] <= primary["ci_high"] and primary["n"] == results["data"]["n_samples"]
    assert (tmp_path / path.stem / "report.html").is_file()
