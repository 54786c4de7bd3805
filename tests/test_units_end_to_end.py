"""Units of independence end to end: the CACD, FG-NET and AgeDB-30 runs resample people, their intervals are
wider than the row-wise ones they replace, the report says so, and ``compare`` pairs people too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facebench.cli import main
from facebench.compare import compare, load_run

PROTOCOLS = Path(__file__).resolve().parent.parent / "protocols"
TINY = ["--set", "dataset.synthetic.image_size=48", "--set", "dataset.synthetic.render_size=48",
        "--set", "model.image_size=32", "--set", "training.epochs=1", "--set", "evaluation.n_boot=200",
        "--no-progress", "--baseline", "arcface"]
CASES = {  # protocol -> (extra settings, unit columns)
    "aifr_cacd": (["--set", "dataset.synthetic.n=120"], ["subject_id"]),
    "aifr_fgnet": ([], ["subject_id"]),
    "aifr_agedb30": ([], ["subject_id_1", "subject_id_2"]),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    out, cache = tmp_path_factory.mktemp("units-runs"), tmp_path_factory.mktemp("units-cache")
    folders = {}
    for name, (extra, _) in CASES.items():
        assert main(["run", str(PROTOCOLS / f"{name}.yaml"), "--out", str(out), "--cache-dir", str(cache),
                     *TINY, *extra]) == 0
        (folders[name],) = (out / name).glob("*/results.json")
    return folders


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_intervals_resample_people_and_are_wider_than_row_wise(runs, name) -> None:
    results = json.loads(runs[name].read_text())
    units = results["statistics"]["units"]
    assert units["unit"] == "person" and units["columns"] == CASES[name][1]
    outcomes = pd.read_csv(runs[name].parent / "outcomes.csv", keep_default_na=False)
    assert set(units["columns"]) <= set(outcomes.columns)
    primary = results["protocol"]["primary_metric"]
    ours, rows = results["metrics"]["overall"][primary], units["row_wise_overall"][primary]
    assert 1 < units["n_units"] < ours["n"] and ours["n_units"] == units["n_units"]
    assert ours["ci_high"] - ours["ci_low"] > rows["ci_high"] - rows["ci_low"]
    for groups in results["metrics"]["by_group"].values():
        for values in groups.values():
            assert values[primary]["n_units"] <= max(values[primary]["n"], 2 * values[primary]["n"] * (
                len(units["columns"]) - 1))
    assert {t["test"] for t in results["metrics"]["group_tests"]} <= {"cluster_bootstrap", "none"}
    if "differentials" in results["metrics"]:  # the verification view resamples the comparisons' people too
        assert results["metrics"]["differentials"]["intervals"] == "cluster_bootstrap"
    assert "cluster" in results["statistics"]["interval_method"]


@pytest.mark.slow
def test_report_says_what_was_resampled(runs) -> None:
    html = (runs["aifr_fgnet"].parent.parent / "report.html").read_text()
    results = json.loads(runs["aifr_fgnet"].read_text())
    assert f"resample the {results['statistics']['units']['n_units']} people of the test set" in html
    assert "narrower" in html and "detectable gap" in html


@pytest.mark.slow
def test_compare_resamples_people_and_says_when_it_cannot(runs, tmp_path) -> None:
    """A candidate whose average precision moves with the person: the paired interval of the change is wider
    when people are resampled than when the outcomes name no one (then a note says rows were resampled)."""
    source = runs["aifr_cacd"].parent

    def copy(name: str, *, shift: bool, drop_units: bool) -> Path:
        target = tmp_path / name / "aifr_cacd" / source.name
        shutil.copytree(source, target)
        frame = pd.read_csv(target / "outcomes.csv", dtype={"sample_id": str, "database": str}, keep_default_na=False)
        if shift:
            codes = pd.factorize(frame["subject_id"])[0]
            effect = np.random.default_rng(0).normal(0.0, 0.2, codes.max() + 1)[codes]
            frame["ap"] = np.clip(frame["ap"] + effect, 0.0, 1.0)
        if drop_units:
            frame = frame.drop(columns=["subject_id"])
        frame.to_csv(target / "outcomes.csv", index=False)
        return target / "results.json"

    widths = {}
    for drop in (False, True):
        reference = load_run(copy(f"ref-{drop}", shift=False, drop_units=drop))
        candidate = load_run(copy(f"cand-{drop}", shift=True, drop_units=drop))
        result = compare(candidate, reference, n_boot=400, seed=0)
        overall = result.metrics[0].overall
        widths[drop] = overall.ci_high - overall.ci_low
        assert any("as if independent" in note for note in result.notes) == drop
    assert widths[False] > 1.5 * widths[True]
