"""`facebench compare`: paired bootstrap against a leaderboard entry, refusals, gates, exit codes 0/1/2.

Runs are made without training: a predictions CSV (true age from the UTKFace file name + small noise) is
scored on a small synthetic set by `facebench.evaluate.score_predictions_file`, the one scoring path of
`facebench run` and `facebench evaluate` (called directly: no HTML report is needed here). The "shifted"
submission adds one year to every prediction for the black group (UTKFace race code 1).
"""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facebench.cli import build_parser, main
from facebench.compare import (
    DEFAULT_N_BOOT,
    DEFAULT_SEED,
    Run,
    choose_reference,
    compare,
    load_gates,
    load_run,
    render_markdown,
)
from facebench.comparison.markdown import GROUP_LABELS
from facebench.evaluate import score_predictions_file
from facebench.metrics import holm
from facebench.metrics.paired import bootstrap_p_value, paired_difference, paired_group_changes
from facebench.protocol import load_protocol
from facebench.reports.bias_report import changes_against_reference
from facebench.run import prepare_data

AGE = Path(__file__).resolve().parent.parent / "protocols" / "age_utk_cross_ethnicity.yaml"
SMALL = ("dataset.synthetic.n=700", "dataset.synthetic.image_size=64", "dataset.synthetic.render_size=64",
         "evaluation.n_boot=100")
PROTOCOL = "age_utk_cross_ethnicity"
N_BOOT = ["--n-boot", "1000"]


def _evaluate(out: Path, cache: Path, name: str, *, shift_black: float = 0.0, overrides: tuple[str, ...] = ()
              ) -> Path:
    """Score true age + noise (+ ``shift_black`` years for race code 1) as OUT/<protocol>/submission-NAME."""
    protocol = load_protocol(AGE, overrides=SMALL + overrides)
    dataset, split = prepare_data(protocol, data_root=None, cache_dir=cache, progress=False)
    ids = list(split["test"])
    fields = [Path(i).name.split("_") for i in ids]  # {age}_{gender}_{race}_{datetime}.jpg.chip.jpg
    age = np.array([float(f[0]) for f in fields])
    black = np.array([f[2] == "1" for f in fields])
    predicted = age + np.random.default_rng(0).normal(0.0, 0.5, len(ids)) + shift_black * black
    out.mkdir(parents=True, exist_ok=True)
    predictions = out / f"{name}.csv"
    pd.DataFrame({"sample_id": ids, "age": predicted}).to_csv(predictions, index=False)
    run_dir = out / PROTOCOL / f"submission-{name}"
    baseline = {"name": name, "params": {}, "kind": "submission"}
    score_predictions_file(protocol=protocol, dataset=dataset, split=split, predictions=predictions,
                           out_dir=run_dir, seed=0, baseline=baseline)
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Run folders: 'clean' in the leaderboard folder, 'shifted' and 'other_seed' outside it."""
    cache = tmp_path_factory.mktemp("cache")
    board = tmp_path_factory.mktemp("board")
    work = tmp_path_factory.mktemp("work")
    return {
        "board": board,
        "clean": _evaluate(board, cache, "clean"),
        "shifted": _evaluate(work / "shifted", cache, "shifted", shift_black=1.0),
        # another synthetic draw (seed 1; smaller, to keep the test fast): other data, same protocol
        "other_seed": _evaluate(work / "other", cache, "clean",
                                overrides=("dataset.synthetic.seed=1", "dataset.synthetic.n=300")),
    }


def _copy_run(run: Path, folder: Path, *, edit=None, edit_outcomes=None) -> Path:
    """Copy a run folder to FOLDER/<protocol>/<name>, optionally editing its results.json or outcomes.csv."""
    target = folder / PROTOCOL / run.name
    shutil.copytree(run, target)
    if edit is not None:
        results = json.loads((target / "results.json").read_text())
        edit(results)
        (target / "results.json").write_text(json.dumps(results))
    if edit_outcomes is not None:
        frame = pd.read_csv(target / "outcomes.csv", dtype={"sample_id": str})
        edit_outcomes(frame).to_csv(target / "outcomes.csv", index=False)
    return target


def _compare(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["compare", *map(str, args), *N_BOOT])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _section(markdown: str, title: str) -> str:
    start = markdown.index(f"### {title}")
    end = markdown.find("\n###", start + 1)
    return markdown[start:end if end > 0 else None].split("<details>")[0]


# ----------------------------------------------------------------------------------------------- verdicts
def test_a_run_against_itself_passes_with_zero_width_paired_intervals(runs, capsys) -> None:
    code, out, err = _compare(capsys, runs["clean"], "--leaderboard", runs["board"], "--against", "clean")
    assert (code, err) == (0, "")
    assert out.startswith("## ✅ facebench compare: PASS")
    assert "SYNTHETIC" in out and PROTOCOL in out
    comparison = compare(load_run(runs["clean"]), load_run(runs["clean"]), n_boot=300, seed=0)
    (mae,) = comparison.metrics
    assert mae.overall.difference == mae.overall.ci_low == mae.overall.ci_high == 0.0
    assert {a.attribute for a in mae.attributes} == {"race", "gender", "age_band"}
    for attribute in mae.attributes:  # the same rows are resampled for both runs: every change is exactly 0
        assert all(g.difference == g.ci_low == g.ci_high == 0.0 and g.p_holm == 1.0 for g in attribute.groups)
        assert attribute.gap.difference == attribute.gap.ci_low == attribute.gap.ci_high == 0.0


def test_one_year_more_for_one_group_fails_and_names_the_group(runs, capsys, tmp_path) -> None:
    summary = tmp_path / "pr" / "comment.md"
    code, out, err = _compare(capsys, runs["shifted"], "--leaderboard", runs["board"], "--markdown", summary)
    assert (code, err) == (1, "")
    assert summary.read_text() == out
    assert out.startswith("## ❌ facebench compare: FAIL")
    assert "**Candidate** `shifted` vs **reference** `clean`" in out
    worse = _section(out, "Groups significantly worse")
    assert "**race = black**" in worse
    assert not any(f"race = {g}" in worse for g in ("white", "asian", "indian", "others"))
    assert "significantly worse for **race = black**" in out  # in the reasons at the top
    gap_row = next(line for line in _section(out, "Worst-vs-best gaps").splitlines() if "| race |" in line)
    assert "(black vs" in gap_row and "❌ significantly larger" in gap_row

    comparison = compare(load_run(runs["shifted"]), load_run(runs["clean"]), n_boot=1000, seed=0)
    (mae,) = comparison.metrics
    assert mae.overall_regressed and comparison.exit_code == 1
    race = next(a for a in mae.attributes if a.attribute == "race")
    assert [g.group for g in race.regressed_groups] == ["black"]
    assert race.gap.worst_b == "black" and race.gap.regressed
    unchanged = [g for g in race.groups if g.group != "black"]
    assert all(g.difference == 0.0 for g in unchanged)


def test_the_report_and_compare_give_the_same_numbers_and_verdict(runs) -> None:
    """The report's "change against source-only" is compare's machinery with compare's defaults: on the same
    pair, every group's change, interval and (Holm-adjusted) p-value and the verdict are identical."""
    clean, shifted = load_run(runs["clean"]), load_run(runs["shifted"])
    comparison = compare(shifted, clean)  # the CLI's defaults: --n-boot DEFAULT_N_BOOT --seed DEFAULT_SEED
    defaults = build_parser().parse_args(["compare", "x", "--leaderboard", "y"])
    assert (defaults.n_boot, defaults.seed) == (DEFAULT_N_BOOT, DEFAULT_SEED)
    (metric,) = comparison.metrics
    (race,) = (a for a in metric.attributes if a.attribute == "race")
    changes = changes_against_reference([clean, shifted], reference_name="clean")
    (row,) = changes["rows"]
    assert changes["metric"] == "mae" and changes["groups"] == [g.group for g in race.groups]
    assert row["cells"] == {g.group: g for g in race.groups}  # every field: n, values, interval, p, p_holm
    assert row["regressed"] is True and comparison.exit_code == 1
    flagged = [g.group for g in race.regressed_groups]
    assert "black" in flagged and row["cells"]["black"].regressed


def test_same_seed_same_numbers(runs) -> None:
    candidate, reference = load_run(runs["shifted"]), load_run(runs["clean"])
    first = render_markdown(compare(candidate, reference, n_boot=400, seed=3))
    assert GROUP_LABELS in first  # whose labels the groups are, once, above the group tables
    assert render_markdown(compare(candidate, reference, n_boot=400, seed=3)) == first
    assert render_markdown(compare(candidate, reference, n_boot=400, seed=4)) != first


def test_default_reference_is_the_best_other_entry_and_never_the_same_file(runs, capsys, tmp_path) -> None:
    # the leaderboard holds only the candidate itself: nothing else to compare with
    code, _, err = _compare(capsys, runs["clean"], "--leaderboard", runs["board"])
    assert code == 2 and "no other entry" in err
    # a copy of the same run is another file, so it is a fair reference: the comparison passes
    board = tmp_path / "board"
    _copy_run(runs["clean"], board)
    _copy_run(runs["shifted"], board)
    code, out, _ = _compare(capsys, runs["shifted"], "--leaderboard", board)
    assert code == 1 and "vs **reference** `clean`" in out  # clean has the lower (better) MAE


def _fake(name: str, primary: str, value: float, *, data: str = "d") -> Run:
    results = {"baseline": {"name": name}, "protocol": {"name": "p", "version": 1, "primary_metric": primary},
               "data": {"fingerprint": data, "split_fingerprint": "s"},
               "metrics": {"overall": {primary: {"value": value}}}}
    return Run(results_path=Path(f"/nonexistent/{name}/results.json"), outcomes_path=Path("x"),
               results=results)


def test_default_choice_follows_the_metric_direction_and_the_data() -> None:
    me = _fake("me", "mae", 5.0)
    entries = [_fake("a", "mae", 3.0), _fake("b", "mae", 2.0), _fake("c", "mae", 1.0, data="other")]
    assert choose_reference(me, entries, against=None, where="board").name == "b"  # c: other data
    me = _fake("me", "cs5", 0.5)
    assert choose_reference(me, [_fake("a", "cs5", 0.9), _fake("b", "cs5", 0.8)], against=None,
                            where="board").name == "a"


def test_leaderboard_site_manifest(runs, capsys, tmp_path) -> None:
    site = tmp_path / "site"
    run = _copy_run(runs["clean"], site / "runs")
    relative = run.relative_to(site).as_posix()
    manifest = {"schema": "facebench-leaderboard/1", "entries": [
        {"protocol": PROTOCOL, "name": "clean", "kind": "submission", "run": run.name,
         "results": f"{relative}/results.json", "outcomes": f"{relative}/outcomes.csv",
         "primary_metric": "mae", "value": 0.4},
        {"protocol": "aifr_morph", "name": "arcface", "kind": "baseline", "run": "arcface-1",
         "results": "runs/aifr_morph/arcface-1/results.json",
         "outcomes": "runs/aifr_morph/arcface-1/outcomes.csv",
         "primary_metric": "rank1", "value": 0.9},  # another protocol: never opened
    ]}
    (site / "manifest.json").write_text(json.dumps(manifest))
    code, out, _ = _compare(capsys, runs["shifted"] / "results.json", "--leaderboard", site)
    assert code == 1 and "**race = black**" in out
    (site / "manifest.json").write_text(json.dumps({**manifest, "schema": "something-else/2"}))
    code, _, err = _compare(capsys, runs["shifted"], "--leaderboard", site)
    assert code == 2 and "manifest.json: key 'schema'" in err


# ----------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("edit, message", [
    (lambda r: r["data"].update(fingerprint="0" * 64), "different data"),
    (lambda r: r["data"].update(split_fingerprint="1" * 64), "different test splits"),
    (lambda r: r["protocol"].update(version=2), "different protocol versions"),
    (lambda r: r["protocol"].update(primary_metric="cs5"), "different primary metrics"),
])
def test_results_that_measure_something_else_are_refused(runs, capsys, tmp_path, edit, message) -> None:
    _copy_run(runs["clean"], tmp_path / "board", edit=edit)
    code, out, err = _compare(capsys, runs["clean"], "--leaderboard", tmp_path / "board",
                              "--against", "clean")
    assert (code, out) == (2, "")
    assert message in err and err.startswith("facebench: error: ") and err.count("\n") == 1


def test_results_on_another_synthetic_set_are_refused(runs, capsys, tmp_path) -> None:
    board = tmp_path / "board"
    _copy_run(runs["other_seed"], board)
    code, _, err = _compare(capsys, runs["clean"], "--leaderboard", board, "--against", "clean")
    assert code == 2 and "different data" in err
    code, _, err = _compare(capsys, runs["clean"], "--leaderboard", board)  # no default on other data either
    assert code == 2 and "scored on the candidate's data" in err


def test_a_different_protocol_fingerprint_alone_is_a_note(runs, capsys, tmp_path) -> None:
    _copy_run(runs["clean"], tmp_path / "board", edit=lambda r: r["protocol"].update(fingerprint="f" * 64))
    code, out, _ = _compare(capsys, runs["clean"], "--leaderboard", tmp_path / "board", "--against", "clean")
    assert code == 0 and "The protocol fingerprints differ" in out


@pytest.mark.parametrize("edit_outcomes, message", [
    (lambda f: f.iloc[1:], "do not hold the same samples"),
    (lambda f: pd.concat([f, f.iloc[:1]]), "repeats sample_id"),
    (lambda f: f.assign(race=np.where(np.arange(len(f)) == 3, "zzz", f["race"])), "different 'race' values"),
    (lambda f: f.assign(y_true=f["y_true"] + 1.0), "different 'y_true' values"),
])
def test_outcomes_that_do_not_pair_one_to_one_are_refused(runs, capsys, tmp_path, edit_outcomes,
                                                           message) -> None:
    _copy_run(runs["clean"], tmp_path / "board", edit_outcomes=edit_outcomes)
    code, _, err = _compare(capsys, runs["clean"], "--leaderboard", tmp_path / "board", "--against", "clean")
    assert code == 2 and message in err


def test_bad_input_is_one_sentence_and_exit_2(runs, capsys, tmp_path) -> None:
    broken = tmp_path / "broken" / "results.json"
    broken.parent.mkdir()
    broken.write_text("{not json")
    cases = [
        ((tmp_path / "missing.json", "--leaderboard", runs["board"]), "does not exist"),
        ((broken, "--leaderboard", runs["board"]), "not valid JSON (line 1"),
        ((runs["clean"], "--leaderboard", tmp_path / "nowhere"), "--leaderboard"),
        ((runs["clean"], "--leaderboard", broken.parent), "not valid JSON"),
        ((runs["clean"], "--leaderboard", runs["board"], "--against", "claen"), "(did you mean 'clean'?)"),
    ]
    for args, message in cases:
        code, out, err = _compare(capsys, *args)
        assert (code, out) == (2, ""), args
        assert message in err and err.count("\n") == 1, (args, err)


# ----------------------------------------------------------------------------------------------- gates
def _gates(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gates.yaml"
    path.write_text(text)
    return path


def test_gates_pass_and_break_on_the_candidates_point_estimates(runs, capsys, tmp_path) -> None:
    results = json.loads((runs["shifted"] / "results.json").read_text())
    gap = results["metrics"]["disparities"]["mae"]["race"]["gap"]
    mae = results["metrics"]["overall"]["mae"]["value"]
    holding = _gates(tmp_path, f"""
gates:
  - max_gap: {{metric: mae, attribute: race, value: {gap + 0.01}}}
  - max_metric: {{metric: mae, value: 6.0}}
  - min_metric: {{metric: cs5, value: 0.5}}
  - max_ratio: {{metric: mae, attribute: race, value: 5}}
  - no_significant_regression: {{metric: cs5}}
""")
    code, out, _ = _compare(capsys, runs["clean"], "--leaderboard", runs["board"], "--against", "clean",
                            "--gate", holding)
    assert code == 0 and out.count("✅ pass") == 5
    assert "| `cs5` (higher is better) |" in out  # the extra regression check is analysed too
    code, out, _ = _compare(capsys, runs["shifted"], "--leaderboard", runs["board"], "--gate", holding)
    assert code == 1 and "❌ broken" not in out  # fails on the significance check, not on a gate

    breaking = _gates(tmp_path, f"""
gates:
  - max_gap: {{metric: mae, attribute: race, value: {gap - 0.01}}}
  - max_metric: {{metric: mae, value: {mae - 0.01}}}
""")
    comparison = compare(load_run(runs["shifted"]), load_run(runs["clean"]), n_boot=200,
                         gates=load_gates(breaking))
    assert [g.passed for g in comparison.gates] == [False, False]
    assert comparison.gates[0].observed == pytest.approx(gap)
    tiny = _gates(tmp_path, "gates:\n  - max_gap: {metric: mae, attribute: race, value: 0.0001}\n")
    code, out, _ = _compare(capsys, runs["clean"], "--leaderboard", runs["board"], "--against", "clean",
                            "--gate", tiny)
    assert code == 1 and "❌ broken" in out and "Gate `max_gap`" in out


@pytest.mark.parametrize("text, message", [
    ("gates:\n  - max_gapp: {metric: mae, attribute: race, value: 1}\n",
     "unknown key 'gates[0].max_gapp' (did you mean 'max_gap'?)"),
    ("gates:\n  - max_gap: {metrc: mae, attribute: race, value: 1}\n",
     "unknown key 'gates[0].max_gap.metrc' (did you mean 'metric'?)"),
    ("gates:\n  - max_gap: {metric: mae, attribute: race}\n",
     "required key 'gates[0].max_gap.value' is missing"),
    ("gates:\n  - {max_metric: {metric: mae, value: 1}, min_metric: {metric: mae, value: 0}}\n",
     "a gate has exactly one of the keys"),
    ("gates:\n  - max_gap: {metric: maee, attribute: race, value: 1}\n",
     "unknown metric 'maee' (did you mean 'mae'?)"),
    ("gates:\n  - max_gap: {metric: mae, attribute: rase, value: 1}\n", "'rase' is not an attribute"),
    ("gates:\n  - max_metric: {metric: rank1, value: 1}\n", "'rank1' is not a metric of"),
    ("gates: [\n", "not valid YAML"),
    ("- max_gap: {}\n", "a YAML mapping with the key 'gates'"),
    ("gatez: []\n", "unknown key 'gatez' (did you mean 'gates'?)"),
])
def test_malformed_gate_files_exit_2_naming_file_and_key(runs, capsys, tmp_path, text, message) -> None:
    path = _gates(tmp_path, text)
    code, out, err = _compare(capsys, runs["clean"], "--leaderboard", runs["board"], "--against", "clean",
                              "--gate", path)
    assert (code, out) == (2, "")
    assert str(path) in err and message in err, err


# ----------------------------------------------------------------------------------------------- statistics
def test_paired_group_changes_hand_worked() -> None:
    # x: errors (1, 1) -> (2, 2), y: (3, 3) unchanged, z: (0, 2) -> (2, 0) (same mean, not the same samples).
    groups = pd.DataFrame({"race": ["x", "x", "y", "y", "z", "z"]})
    (race,) = paired_group_changes([1, 1, 3, 3, 0, 2], [2, 2, 3, 3, 2, 0], groups, metric="mae", n_boot=199)
    x, y, z = race.groups
    assert (x.value_a, x.value_b, x.difference, x.ci_low, x.ci_high) == (1.0, 2.0, 1.0, 1.0, 1.0)
    assert (x.p_value, y.p_value) == (0.01, 1.0)  # 2 (0 + 1) / 200; all-zero draws
    assert z.difference == 0.0 and z.ci_low < 0 < z.ci_high  # the draws of z do move: pairs are (0,2),(2,0)
    assert [x.p_holm, y.p_holm] == pytest.approx(holm([x.p_value, y.p_value, z.p_value])[:2].tolist())
    assert x.regressed and not y.regressed and not z.regressed
    # gap: in a, y (3) is worst and x, z tie at 1 (the first, x, is best); in b, y (3) vs z (1): 2 in both
    gap = race.gap
    assert (gap.worst_a, gap.best_a, gap.gap_a) == ("y", "x", 2.0)
    assert (gap.worst_b, gap.best_b, gap.gap_b) == ("y", "z", 2.0)
    assert gap.difference == 0.0 and not gap.regressed
    # RMSE from squared errors: group x 1 -> 2 in every resample
    (race,) = paired_group_changes([1, 1, 9, 9, 1, 1], [4, 4, 9, 9, 1, 1], groups, metric="rmse", n_boot=50)
    assert (race.groups[0].difference, race.groups[0].ci_low, race.groups[0].ci_high) == (1.0, 1.0, 1.0)


def _engine_stream_indices(seed: int, attribute: str, group: str, n: int, n_boot: int) -> np.ndarray:
    """docs/metrics.md 1.2: draws of a group from default_rng([seed, crc32(attribute), crc32(group), chunk]),
    chunks of at most 2**18 index elements (int32 indices)."""
    rows = max(1, 2**18 // n)
    parts = [np.random.default_rng([seed, zlib.crc32(attribute.encode()), zlib.crc32(group.encode()), chunk])
             .integers(0, n, size=(min(n_boot, start + rows) - start, n), dtype=np.int32)
             for chunk, start in enumerate(range(0, n_boot, rows))]
    return np.concatenate(parts)


def test_stratified_paired_bootstrap_matches_an_independent_transcription() -> None:
    rng = np.random.default_rng(11)
    n_boot, seed, level = 700, 5, 0.95
    labels = np.array(["p"] * 40 + ["q"] * 25 + ["r"] * 3000)  # r: several index chunks
    rng.shuffle(labels)
    a = rng.gamma(2.0, 2.0, labels.size) ** 2  # squared errors: RMSE exercises finalize = sqrt
    b = a * rng.uniform(0.8, 1.4, labels.size)
    (got,) = paired_group_changes(a, b, pd.DataFrame({"race": labels}), metric="rmse", n_boot=n_boot,
                                  seed=seed, confidence=level)

    values, draws = {}, {}
    for group in ("p", "q", "r"):
        pos = np.flatnonzero(labels == group)
        idx = _engine_stream_indices(seed, "race", group, pos.size, n_boot)
        values[group] = (np.sqrt(a[pos].mean()), np.sqrt(b[pos].mean()))
        draws[group] = (np.sqrt(a[pos][idx].mean(axis=1)), np.sqrt(b[pos][idx].mean(axis=1)))
    expected_p = []
    for change in got.groups:
        da, db = draws[change.group]
        d = db - da
        value_a, value_b = values[change.group]
        assert change.difference == pytest.approx(value_b - value_a, rel=1e-12)
        assert (change.ci_low, change.ci_high) == pytest.approx(tuple(np.quantile(d, [0.025, 0.975])),
                                                                rel=1e-9)
        tail = min(np.sum(d <= 0), np.sum(d >= 0))
        expected_p.append(min(1.0, 2 * (tail + 1) / (n_boot + 1)))
        assert change.p_value == pytest.approx(expected_p[-1])
    m = len(expected_p)  # Holm, written out: max over the step-down sequence
    order = np.argsort(expected_p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * expected_p[i]))
        adjusted[i] = running
    assert [g.p_holm for g in got.groups] == pytest.approx(adjusted.tolist())

    def gap_draws(side: int, worst: str, best: str) -> np.ndarray:
        sign = 1.0 if values[worst][side] >= values[best][side] else -1.0
        return sign * (draws[worst][side] - draws[best][side])

    sides = [{g: values[g][side] for g in values} for side in (0, 1)]
    worst = [max(s, key=s.get) for s in sides]
    best = [min(s, key=s.get) for s in sides]
    assert (got.gap.worst_a, got.gap.best_a) == (worst[0], best[0])
    assert (got.gap.worst_b, got.gap.best_b) == (worst[1], best[1])
    change = gap_draws(1, worst[1], best[1]) - gap_draws(0, worst[0], best[0])
    assert (got.gap.ci_low, got.gap.ci_high) == pytest.approx(tuple(np.quantile(change, [0.025, 0.975])),
                                                              rel=1e-9)
    assert got.gap.difference == pytest.approx((sides[1][worst[1]] - sides[1][best[1]])
                                               - (sides[0][worst[0]] - sides[0][best[0]]))


def test_paired_difference_of_a_transformed_mean_matches_a_transcription() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.uniform(0, 9, 300), rng.uniform(0, 12, 300)
    got = paired_difference(a, b, metric="rmse", n_boot=500, seed=7, label="overall")
    idx = np.random.default_rng([7, zlib.crc32(b"overall")]).integers(0, 300, size=(500, 300))
    draws = np.sqrt(b[idx].mean(axis=1)) - np.sqrt(a[idx].mean(axis=1))
    assert got.difference == pytest.approx(np.sqrt(b.mean()) - np.sqrt(a.mean()))
    assert (got.ci_low, got.ci_high) == pytest.approx(tuple(np.quantile(draws, [0.025, 0.975])), rel=1e-12)
    assert bootstrap_p_value(draws) == min(1.0, 2 * (min((draws <= 0).sum(), (draws >= 0).sum()) + 1) / 501)


def test_retrieval_outcomes_pair_on_sample_and_database(tmp_path, capsys) -> None:
    """CACD-style outcomes (one row per query and database, outcome column 'ap') pair on both keys."""
    rng = np.random.default_rng(0)
    queries = [f"CACD2000/q{i}.jpg" for i in range(60)]
    rows = pd.DataFrame([{"sample_id": q, "database": db, "y_true": "id", "y_pred": 0.0, "ap": rng.uniform(),
                          "hit1": float(rng.uniform() < 0.5), "age_band": "15-29" if i % 2 else "30-44",
                          "gender": "", "race": ""}
                         for db in ("2004-2006", "2010-2012") for i, q in enumerate(queries)])
    rows["y_pred"] = rows["ap"]

    def write(name: str, frame: pd.DataFrame) -> Path:
        folder = tmp_path / "board" / "aifr_cacd" / name
        folder.mkdir(parents=True)
        frame.to_csv(folder / "outcomes.csv", index=False)
        by_group = {"database": {d: {"map": {"value": 0.5, "n": 60, "flag": ""}}
                                 for d in ("2004-2006", "2010-2012")}}
        results = {"schema_version": "1.0", "baseline": {"name": name},
                   "protocol": {"name": "aifr_cacd", "title": "CACD", "version": 1, "task": "face_retrieval",
                                "primary_metric": "map", "fingerprint": "f"},
                   "data": {"dataset": "cacd", "synthetic": True, "fingerprint": "d",
                            "split_fingerprint": "s"},
                   "metrics": {"overall": {"map": {"value": float(frame["ap"].mean()), "n": len(frame)}},
                               "by_group": by_group,
                               "disparities": {"map": {"database": {"gap": 0.0}}}},
                   "files": {"outcomes": "outcomes.csv"}}
        (folder / "results.json").write_text(json.dumps(results))
        return folder

    write("arcface", rows)
    worse = rows.copy()
    worse.loc[worse["database"] == "2010-2012", "ap"] *= 0.5
    candidate = write("mine", worse)
    code, out, err = _compare(capsys, candidate, "--leaderboard", tmp_path / "board", "--against", "arcface")
    assert code == 1, err
    assert "120 paired rows (by sample_id + database)" in out and "**database = 2010-2012**" in out
    assert "database = 2004-2006" not in _section(out, "Groups significantly worse")


def test_too_few_resamples_for_holm_are_explained(runs, capsys) -> None:
    comparison = compare(load_run(runs["shifted"]), load_run(runs["clean"]), n_boot=50, seed=0)
    (mae,) = comparison.metrics
    assert mae.overall_regressed and not mae.group_regressions  # 5 groups x 2/51 > 0.05: no group named
    assert "Raise --n-boot" in render_markdown(comparison)
    assert main(["compare", str(runs["clean"]), "--leaderboard", str(runs["board"]), "--n-boot", "0"]) == 2
    assert "--n-boot must be" in capsys.readouterr().err


def test_the_example_ci_workflow_uses_compare_as_documented() -> None:
    import yaml

    from facebench.cli import build_parser

    docs = Path(__file__).resolve().parent.parent / "docs"
    workflow = yaml.safe_load((docs / "examples" / "facebench-ci.yml").read_text())
    steps = workflow["jobs"]["fairness"]["steps"]
    script = next(step["run"] for step in steps if "facebench compare" in step.get("run", ""))
    compare_parser = build_parser()._subparsers._group_actions[0].choices["compare"]
    known = {option for action in compare_parser._actions for option in action.option_strings}
    used = {token for token in script.split() if token.startswith("--")}
    assert used and used <= known, used - known
    assert "docs/examples/facebench-ci.yml" in (docs / "ci.md").read_text()


def test_an_ambiguous_against_name_is_refused_and_a_run_folder_picks_one(runs, capsys, tmp_path) -> None:
    board = tmp_path / "board"
    _copy_run(runs["clean"], board)
    shutil.copytree(runs["clean"], board / PROTOCOL / "submission-clean-rerun")
    code, _, err = _compare(capsys, runs["clean"], "--leaderboard", board, "--against", "clean")
    assert code == 2 and "2 entries of protocol" in err and "submission-clean-rerun" in err
    code, out, _ = _compare(capsys, runs["clean"], "--leaderboard", board,
                            "--against", "submission-clean-rerun")
    assert code == 0 and "(`submission-clean-rerun`)" in out


def test_gap_p_values_are_holm_adjusted_across_attributes() -> None:
    """Several gaps decide one verdict, so their p-values are adjusted together (an independent Holm here)."""
    from facebench.metrics.paired import paired_group_changes

    rng = np.random.default_rng(5)
    n = 400
    groups = pd.DataFrame({"race": rng.choice(list("abc"), n), "gender": rng.choice(list("mf"), n),
                           "age_band": rng.choice(["0-19", "20-39", "40+"], n)})
    a = rng.gamma(2.0, 2.0, n)
    b = a + rng.normal(0.0, 1.0, n) + 0.4 * (groups["race"] == "c").to_numpy()
    changes = paired_group_changes(a, b, groups, metric="mae", n_boot=500, seed=1)
    raw = np.array([c.gap.p_value for c in changes])
    order = np.argsort(raw)
    m = len(raw)
    expected = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * raw[i]))
        expected[i] = running
    assert [c.gap.p_holm for c in changes] == pytest.approx(expected.tolist())
    for c in changes:
        assert c.gap.regressed == (c.gap.difference > 0 and c.gap.p_holm < 0.05)
