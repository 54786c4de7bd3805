"""Comparability as a rule (:mod:`facebench.comparability`): when a published number may be read against a run.

The runs are genuine: predictions files scored by ``facebench evaluate`` on dataset folders in the real on-disk
formats (a UTKFace ``UTKFace/`` folder of real-format names, insightface's ``agedb_30.bin``), so results.json
says "real data" as it would on the user's copy. A scored file is a submission; where a case needs what
``facebench run`` records of a trained baseline (its model, params.init, source-validation score), the results
document is edited to exactly those keys.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
from fixtures_aifr import write_agedb_30_bin
from fixtures_utkface import write_files

from facebench.cli import main
from facebench.comparability import judge
from facebench.reports.bias_report import reference_rows, write_protocol_report
from facebench.reports.leaderboard import against_paper
from facebench.results import Run, load_run

#: Seed 000's paper: a pre-trained ResNet-50 fine-tuned on UTKFace's White images.
AGE_PRETRAINED = "trained from scratch; the paper fine-tunes a pre-trained ResNet-50 (section 3.1; the weights are not named)"
#: Seed 002's paper: an encoder pre-trained on MS-Celeb-1M + CASIA-WebFace.
FACE_ENCODER = "an encoder pre-trained on MS-Celeb-1M + CASIA-WebFace"


def _utkface_folder(root: Path) -> Path:
    """A UTKFace copy in the release's layout and name pattern: 12 images per race code, ages 5-82."""
    names = [f"{5 + 7 * k}_{k % 2}_{race}_2017011{race}{k:02d}0000{k:03d}.jpg.chip.jpg"
             for race in range(5) for k in range(12)]
    write_files(root, [f"UTKFace/{name}" for name in names])
    return root


def _evaluate(protocol: str, data_root: Path, out: Path, cache: Path, predictions_for, *args: str) -> Path:
    """Score predictions made by ``predictions_for(ids, path)`` for the protocol's test ids; the run folder."""
    common = ["--data-root", str(data_root), "--cache-dir", str(cache), "--no-progress", *args]
    listing = io.StringIO()
    with contextlib.redirect_stdout(listing):
        assert main(["evaluate", protocol, "--list-ids", *common]) == 0
    predictions = predictions_for(listing.getvalue().split(), out.parent / f"{out.name}-predictions")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["evaluate", protocol, "--predictions", str(predictions), "--name", "model", "--out", str(out),
                     *common]) == 0
    return out / protocol / "submission-model"


def _ages(ids: list[str], stem: Path) -> Path:
    path = stem.with_suffix(".csv")
    lines = ["sample_id,age"] + [f"{i},{int(Path(i).name.split('_')[0]) + (3 if n % 2 else -2)}"
                                 for n, i in enumerate(ids)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _embeddings(ids: list[str], stem: Path) -> Path:
    path = stem.with_suffix(".npz")
    np.savez(path, sample_id=np.asarray(ids), embedding=np.random.default_rng(0).normal(size=(len(ids), 8)))
    return path


def _as_trained_baseline(run_dir: Path, baseline: dict, **more) -> Run:
    """The run as ``facebench run`` records a trained baseline (its ``baseline`` block, and the source-validation
    score seed 000's rows need), written back to its results.json."""
    path = run_dir / "results.json"
    results = json.loads(path.read_text())
    results["baseline"] = {"kind": "baseline", "params": {}, "pretrained_on": "", **baseline}
    results.update(more)
    path.write_text(json.dumps(results))
    return load_run(run_dir)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """Run folders: seed 000's protocol scored on a real-format UTKFace copy with the quick and the paper
    profile, and seed 002's AgeDB-30 protocol on a real-format agedb_30.bin with the paper profile."""
    base = tmp_path_factory.mktemp("comparability")
    cache = base / "cache"
    utkface = _utkface_folder(base / "utkface")
    agedb = base / "agedb"
    agedb.mkdir()
    write_agedb_30_bin(agedb / "agedb_30.bin", n_pairs=20)
    return {
        "quick": _evaluate("age_utk_cross_ethnicity", utkface, base / "quick", cache, _ages),
        "paper": _evaluate("age_utk_cross_ethnicity", utkface, base / "paper", cache, _ages, "--profile", "paper"),
        "agedb": _evaluate("aifr_agedb30_bin", agedb, base / "agedb-runs", cache, _embeddings, "--profile", "paper"),
    }


@pytest.fixture(scope="module")
def comparable(folders) -> Run:
    """The paper-profile UTKFace run as `facebench run` records seed 000's source-only model there: ImageNet
    ResNet-50 weights, trained on the split's White images, with a source-validation MAE. It meets every
    condition of age_utk_cross_ethnicity."""
    mae = json.loads((folders["paper"] / "results.json").read_text())["metrics"]["overall"]["mae"]
    return _as_trained_baseline(folders["paper"], {"name": "source_only", "model": {"backbone": "resnet50",
                                                                                  "pretrained": "DEFAULT"}},
                                splits={"source_val": {"mae": mae}})


def _verdict_cells(report: Path) -> list[str]:
    """The "comparable" column of the report's published-numbers table, as text."""
    import re

    html = report.read_text()
    table = html[html.index('<table class="reference">'):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr><td>.*?</tr>", table, flags=re.S)
    return [re.sub(r"<[^>]+>", "", re.findall(r'<td class="text">(.*?)</td>', row, flags=re.S)[-1]).strip()
            for row in rows]


def test_a_quick_profile_run_on_real_data_shows_no_reference_row_as_comparable(folders) -> None:
    run = load_run(folders["quick"])
    assert not run.synthetic and run.protocol["profile"] == "quick"
    reference = run.results["reference"]
    assert reference and all("quick profile" in judge(run, row).reasons for row in reference)
    # The same run recorded as a trained baseline: still the quick profile, still reference only.
    baseline = _as_trained_baseline(folders["quick"], {"name": "source_only", "model": {"pretrained": None}})
    assert not any(judge(baseline, row).comparable for row in reference)
    cells = _verdict_cells(write_protocol_report(folders["quick"].parent))
    assert len(cells) == len(reference)
    assert all(cell.startswith("reference only: quick profile; trained from scratch") for cell in cells)
    assert not any(cell.startswith("comparable") for cell in cells)


def test_a_paper_profile_run_meeting_the_conditions_is_comparable(folders, comparable) -> None:
    assert comparable.protocol["profile"] == "paper" and comparable.protocol["overrides"] == []
    assert not comparable.synthetic and comparable.results["schema_version"] == "1.3"
    for row in comparable.results["reference"]:
        verdict = judge(comparable, row)
        assert verdict.comparable and verdict.line == "comparable", (row, verdict)
    cells = _verdict_cells(write_protocol_report(folders["paper"].parent))
    assert cells == ["comparable"] * len(comparable.results["reference"])


def test_the_leaderboard_row_says_whether_the_papers_numbers_are_comparable(folders, comparable) -> None:
    assert against_paper([comparable]) == {"comparable": True, "text": "comparable", "reasons": []}
    quick = load_run(folders["quick"])
    verdict = against_paper([quick])
    assert not verdict["comparable"] and verdict["text"].startswith("reference only: quick profile")
    assert verdict["text"] == "reference only: " + "; ".join(verdict["reasons"]) == judge(quick).line
    # Runs sharing a row (seeds) are comparable only together: the quick run's reasons spoil the pair.
    assert against_paper([comparable, quick]) == verdict


def test_the_official_pairs_with_a_pre_trained_encoder_are_comparable_on_trust(folders) -> None:
    run = load_run(folders["agedb"])
    assert run.data["pair_source"] == "listed" and run.protocol["comparability"]["pairs"]["source"] == "listed"
    row = run.results["reference"][0]
    assert judge(run, row).reasons == (f"a submission, whose training facebench does not record (the paper fine-tunes "
                                       f"{FACE_ENCODER})",)
    results = copy.deepcopy(run.results)
    results["baseline"] = {"name": "arcface", "kind": "baseline", "params": {"init": "gfd_encoder.pt"},
                           "model": {"pretrained": None}, "pretrained_on": "",
                           "train_data": {"dataset": "cacd", "synthetic": False}}
    trained = Run(results_path=run.results_path, outcomes_path=run.outcomes_path, results=results)
    verdict = judge(trained, row)
    # What the init encoder learnt from is not in results.json: the verdict says what it takes on trust.
    assert verdict.comparable and verdict.line == f"comparable, assuming its params.init is {FACE_ENCODER}"


def _edited(run: Run, edit) -> Run:
    results = copy.deepcopy(run.results)
    edit(results)
    return Run(results_path=run.results_path, outcomes_path=run.outcomes_path, results=results)


def _set(path: str, value):
    def edit(results):
        *parents, key = path.split(".")
        node = results
        for parent in parents:
            node = node[parent]
        node[key] = value
    return edit


def _drop(path: str):
    def edit(results):
        *parents, key = path.split(".")
        node = results
        for parent in parents:
            node = node[parent]
        del node[key]
    return edit


AGE_CASES = [
    (_set("data.synthetic", True), "synthetic data"),
    (_set("protocol.profile", "quick"), "quick profile"),
    (_set("protocol.overrides", ["evaluation.n_boot=10", "training.epochs=1"]),
     "paper profile changed by --set training.epochs=1"),
    (_set("baseline.train_data", {"dataset": "utkface", "synthetic": True}), "trained on synthetic UTKFace"),
    (_set("baseline.train_data", {"dataset": "cacd", "synthetic": False}),
     "trained on CACD; the paper trains on UTKFace's White (Caucasian) images"),
    (_set("baseline.model.pretrained", None), AGE_PRETRAINED),
    (_set("baseline.pretrained_on", "about 3 million photos"), "used as published, not trained on UTKFace's White "
                                                              "(Caucasian) images"),
    (_set("baseline.kind", "submission"), "a submission, whose training facebench does not record (the paper "
                                          "fine-tunes a pre-trained ResNet-50 (section 3.1; the weights are not named))"),
    (_set("protocol.comparability", None), "the protocol states no comparability conditions"),
    (_drop("protocol.comparability"), "its results.json (schema 1.3) predates comparability conditions"),
    (_drop("splits.source_val"), "no source-validation mae"),
]


@pytest.mark.parametrize(("edit", "reason"), AGE_CASES, ids=[reason[:40] for _, reason in AGE_CASES])
def test_each_failing_condition_gives_its_reason(comparable, edit, reason) -> None:
    row = next(r for r in comparable.results["reference"] if r["split"] == "source_val")
    assert judge(comparable, row).comparable
    verdict = judge(_edited(comparable, edit), row)
    assert verdict.reasons == (reason,) and verdict.line == f"reference only: {reason}"


AGEDB_CASES = [
    (_set("data.pair_source", "seeded"), "seeded pairs, the paper used the official AgeDB-30 pairs (insightface's "
                                         "agedb_30.bin)"),
    (_set("baseline.params", {}), f"trained from scratch; the paper fine-tunes {FACE_ENCODER}"),
    (lambda r: r["baseline"].update(params={}, model={"pretrained": "DEFAULT"}),
     f"started from backbone weights DEFAULT (not a face encoder); the paper fine-tunes {FACE_ENCODER}"),
    (lambda r: r["baseline"].update(params={}, pretrained_on="about 3 million photos"),
     f"used as published, pre-trained on about 3 million photos; the paper fine-tunes {FACE_ENCODER}"),
]


@pytest.mark.parametrize(("edit", "reason"), AGEDB_CASES, ids=[reason[:40] for _, reason in AGEDB_CASES])
def test_each_failing_condition_of_seed_002_gives_its_reason(folders, edit, reason) -> None:
    run = load_run(folders["agedb"])
    trained = _edited(run, lambda r: r.update(baseline={"name": "arcface", "kind": "baseline",
                                                        "params": {"init": "gfd.pt"}, "model": {"pretrained": None},
                                                        "pretrained_on": ""}))
    row = trained.results["reference"][0]
    assert judge(trained, row).comparable
    assert judge(_edited(trained, edit), row).reasons == (reason,)


def test_every_failing_condition_is_listed_in_one_line_and_rows_need_a_number(comparable) -> None:
    run = comparable
    both = _edited(run, lambda r: (r["data"].update(synthetic=True), r["protocol"].update(profile="quick")))
    assert judge(both).line == "reference only: synthetic data; quick profile"
    row = {"source": "s", "setting": "s", "metric": "rank1_mf2", "split": "test", "value": 0.6}
    assert judge(run, row).reasons == ("the run does not measure rank1_mf2",)
    row = {"source": "s", "setting": "s", "metric": "mae", "split": "target", "value": 7.0, "group": "race=martian"}
    assert judge(run, row).reasons == ("no race group martian in the run",)
    # Settings that cannot move the number leave a paper-profile run comparable.
    neutral = _edited(run, _set("protocol.overrides", ["dataset.synthetic.n=10", "evaluation.n_boot=5",
                                                       "training.device=cpu"]))
    assert judge(neutral).comparable


def test_runs_with_different_verdicts_are_named_on_their_line(comparable) -> None:
    quick = _edited(comparable, _set("protocol.profile", "quick"))
    quick = Run(results_path=Path("other/results.json"), outcomes_path=comparable.outcomes_path,
                results={**quick.results, "baseline": {**quick.results["baseline"], "label": "other model"}})
    (row, *_) = reference_rows([comparable, quick], comparable.results["reference"])
    assert [(v["runs"], v["text"], v["comparable"]) for v in row["verdicts"]] == [
        ([comparable.name], "comparable", True), (["other model"], "reference only: quick profile", False)]
    (row, *_) = reference_rows([comparable], comparable.results["reference"])
    assert row["verdicts"] == [{"text": "comparable", "comparable": True, "runs": []}]  # one verdict: no names


def test_every_builtin_protocol_states_its_comparability_conditions() -> None:
    from facebench.protocol import builtin_protocols, load_protocol

    for path in builtin_protocols():
        protocol = load_protocol(path, profile="paper")
        assert protocol.comparability is not None, path.stem
    conditions = {p.stem: load_protocol(p, profile="paper").comparability for p in builtin_protocols()}
    assert conditions["aifr_agedb30"].pairs.source == "listed"  # inherited: its seeded pairs are not the paper's
    assert conditions["aifr_fgnet"].training_data.dataset == "fgnet"  # the paper never trains on CACD
    assert conditions["age_utk_pairwise_mds"].pretrained.kind == "any_weights"
