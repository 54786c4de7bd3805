"""The bias report: paired changes against source-only, escaping, plain-language sentences."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from facebench.reports.bias_report import changes_against_reference, load_runs, plain_language
from facebench.results import Run


def _run(folder: Path, name: str, errors: dict[str, list[float]], *, split: str = "s1", label: str | None = None) -> None:
    """A run folder whose outcomes have absolute errors ``errors`` per race (true age 30), and a results.json
    with the keys the reader requires (the values that nothing here reads are placeholders)."""
    run_dir = folder / f"{name}-x"
    run_dir.mkdir(parents=True)
    rows = [{"sample_id": f"{race}/{i}.jpg", "y_true": 30.0, "y_pred": 30.0 + e, "abs_error": e, "race": race}
            for race, values in errors.items() for i, e in enumerate(values)]
    pd.DataFrame(rows).to_csv(run_dir / "outcomes.csv", index=False)
    by_group = {"race": {race: {"mae": {"value": sum(v) / len(v), "n": len(v), "flag": ""}}
                         for race, v in errors.items()}}
    results = {"schema_version": "1.1", "baseline": {"name": name, "label": label},
               "protocol": {"name": "p", "version": 1, "title": "t", "task": "age_regression",
                            "primary_metric": "mae", "fingerprint": "f"},
               "data": {"synthetic": True, "fingerprint": "d", "split_fingerprint": split},
               "metrics": {"overall": {}, "by_group": by_group, "disparities": {}},
               "statistics": {"n_boot": 0, "confidence": 0.95, "interval_method": "", "min_group_size": 1,
                              "seed": 0},
               "provenance": {"seed": 0}, "files": {"outcomes": "outcomes.csv"}}
    (run_dir / "results.json").write_text(json.dumps(results))


def test_changes_against_source_only_are_paired_per_group(tmp_path: Path) -> None:
    _run(tmp_path, "source_only", {"white": [1, 2, 3, 4], "black": [5, 6, 7, 8]})
    # dann: white unchanged, black exactly 1 year better on every image -> a zero-width paired interval
    _run(tmp_path, "dann", {"white": [1, 2, 3, 4], "black": [4, 5, 6, 7]}, label="dann fc1")
    _run(tmp_path, "other", {"white": [9, 9, 9, 9], "black": [9, 9, 9, 9]}, split="another split")
    changes = changes_against_reference(load_runs(tmp_path), n_boot=200)
    assert set(changes["groups"]) == {"white", "black"}
    (row,) = changes["rows"]  # the run scored on another split is not paired
    assert row["name"] == "dann fc1" and not row["regressed"]  # better for black, the same for white
    black, white = row["cells"]["black"], row["cells"]["white"]
    assert (black.difference, black.ci_low, black.ci_high, black.n) == (-1.0, -1.0, -1.0, 4)
    # Holm across the two groups: 2 * 2/201 (every draw changes by -1) and 1 (no draw changes)
    assert (black.p_value, black.p_holm, white.p_holm) == (2 / 201, 4 / 201, 1.0)
    assert black.significant and not white.significant and white.difference == 0.0


def test_no_reference_run_means_no_change_table(tmp_path: Path) -> None:
    _run(tmp_path, "dann", {"white": [1.0]})
    _run(tmp_path, "mmd", {"white": [2.0]})
    assert changes_against_reference(load_runs(tmp_path)) is None


def test_plain_language_sentence_says_whose_label_a_group_is() -> None:
    gap = {"worst_group": "black", "best_group": "white", "gap": 2.1, "gap_ci_low": 1.7, "gap_ci_high": 2.5, "ratio": 1.3}
    assert plain_language("mae", "race", gap, "years", False, dataset="UTKFace") == (
        "MAE for faces labelled Black in UTKFace is 2.10 years worse (higher) than for faces labelled White in "
        "UTKFace (95% CI 1.70–2.50; ratio 1.30).")
    assert plain_language("mae", "race*gender", {**gap, "worst_group": "others*female", "best_group": "white*male"},
                          "years", False, dataset="synthetic UTKFace").startswith(
        "MAE for faces labelled Others and female in synthetic UTKFace is 2.10 years worse (higher) than for faces "
        "labelled White and male in synthetic UTKFace")
    assert plain_language("rank1", "age_gap", {**gap, "worst_group": "10-19", "best_group": "0-4"}, "", True,
                          dataset="MORPH Album 2") == (
        "RANK1 for faces with age gap 10-19 is 2.10 worse (lower) than for faces with age gap 0-4 "
        "(95% CI 1.70–2.50; ratio 1.30).")
    # Verification: a pair's group is its two faces' common label, or "mixed".
    assert plain_language("accuracy", "gender", {**gap, "worst_group": "mixed", "best_group": "female"}, "", True,
                          dataset="AgeDB", pairs=True).startswith(
        "ACCURACY for pairs whose faces carry different gender labels in AgeDB is 2.10 worse (lower) than for pairs "
        "whose faces are both labelled female in AgeDB")


def _value(v: float) -> dict:
    return {"value": v, "ci_low": v - 0.01, "ci_high": v + 0.01, "n": 100, "flag": ""}


def _document(name: str, label: str | None, overall: dict, by_group: dict, *, synthetic: bool = True,
              splits: dict | None = None) -> Run:
    """A scored run as the report receives it: a results document with the keys the comparability rule reads
    (a quick-profile baseline trained from scratch on seed 000's data)."""
    results = {"schema_version": "1.3", "baseline": {"name": name, "label": label, "kind": "baseline", "params": {},
                                                     "model": {"pretrained": None}},
               "protocol": {"name": "p", "version": 1, "title": "t", "task": "age_regression", "profile": "quick",
                            "primary_metric": "mae", "fingerprint": "f", "overrides": [],
                            "comparability": {"pairs": None, "training_data": None,
                                              "pretrained": {"kind": "any_weights", "paper": "a ResNet-50"}}},
               "data": {"dataset": "utkface", "synthetic": synthetic, "fingerprint": "d", "split_fingerprint": "s"},
               "metrics": {"overall": overall, "by_group": by_group, "disparities": {}}, "splits": splits or {}}
    return Run(results_path=Path(name) / "results.json", outcomes_path=Path(name) / "outcomes.csv", results=results)


def test_paper_table_lays_published_rows_and_ours_in_the_same_columns() -> None:
    from facebench.reports.bias_report import paper_table

    reference = [
        {"source": "T5", "setting": "x", "metric": "map", "split": "test", "value": 0.92, "method": "Baseline",
         "group": "database=2004-2006", "baseline": "arcface"},
        {"source": "T5", "setting": "x", "metric": "map", "split": "test", "value": 0.95, "method": "Baseline",
         "group": "database=2010-2012", "baseline": "arcface"},
        {"source": "T2", "setting": "x", "metric": "map", "split": "test", "value": 0.53, "method": "CARC",
         "group": "database=2004-2006"},
        {"source": "T2", "setting": "no method: not in the table", "metric": "map", "split": "test", "value": 0.1},
    ]
    run = _document("arcface", "arcface", {"map": _value(0.5)},
                    {"database": {"2004-2006": {"map": _value(0.44)}, "2010-2012": {"map": _value(0.65)}}})
    other = _document("mtmim", "mt-mim", {"map": _value(0.6)}, {})
    table = paper_table([run, other], reference)
    assert table["headers"] == ["map 2004-2006", "map 2010-2012"]
    assert [(r["method"], r["baseline"], r["cells"]) for r in table["published"]] == [
        ("Baseline", "arcface", [0.92, 0.95]), ("CARC", None, [0.53, None])]
    ours, theirs = table["measured"]
    assert [c["value"] for c in ours["cells"]] == [0.44, 0.65] and "arcface" in ours["matches"]
    assert theirs["cells"] == [None, None]
    assert ours["verdict"] == ("reference only: synthetic data; quick profile; trained from scratch; the paper "
                               "fine-tunes a ResNet-50") and not ours["comparable"]
    assert paper_table([run], reference[-1:]) is None  # nothing names a method: no paper table


def test_paper_table_renders_ours_under_the_method_and_the_rest_after(tmp_path: Path) -> None:
    from facebench.reports.bias_report import environment, paper_table

    reference = [{"source": "T", "setting": "s", "metric": "rank1", "split": "test", "value": 0.99,
                  "method": "Baseline (ArcFace)", "baseline": "arcface"}]
    runs = [_document(n, n, {"rank1": _value(v)}, {}) for n, v in (("mtmim", 0.3), ("arcface", 0.2))]
    template = environment().from_string('{% import "_macros.html.j2" as m %}{{ m.paper_table(paper) }}')
    html = template.render(paper=paper_table(runs, reference))
    order = [html.index(text) for text in ("Baseline (ArcFace)", "↳ arcface", "mtmim")]
    assert order == sorted(order)
    assert "0.990" in html and "0.200" in html
    assert html.count("reference only: synthetic data; quick profile; trained from scratch") == 2


def test_deviations_and_reference_notes_are_shown_and_escaped() -> None:
    from facebench.reports.bias_report import environment, paper_table, reference_rows

    template = environment().from_string('{% import "_macros.html.j2" as m %}{{ m.deviations_section(d) }}')
    html = template.render(d=[{"setting": "training.<b>epochs</b>", "kind": "different", "choice": "20 & more",
                               "reason": "<script>x</script>"}])
    assert "Deviations from the paper" in html and 'data-kind="different"' in html
    assert "training.&lt;b&gt;epochs&lt;/b&gt;" in html and "20 &amp; more" in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>" not in html
    # A results.json written before deviations were recorded says so instead of failing.
    assert "lists no deviations" in template.render(d=None)

    reference = [{"source": "T3", "setting": "s", "metric": "mae", "split": "target", "value": 6.986,
                  "method": "No Adaptation", "baseline": "source_only", "note": "Table 1 gives <7.946>"},
                 {"source": "T3", "setting": "s", "metric": "mae", "split": "source_val", "value": 6.326,
                  "method": "No Adaptation", "baseline": "source_only"}]
    runs = [_document("source_only", None, {"mae": _value(7.0)}, {})]
    paper = paper_table(runs, reference)
    assert paper["published"][0]["notes"] == ["Table 1 gives <7.946>", None]
    macros = '{% import "_macros.html.j2" as m %}'
    html = environment().from_string(macros + "{{ m.paper_table(paper) }}").render(paper=paper)
    assert "6.986" in html and "note: Table 1 gives &lt;7.946&gt;" in html
    assert html.index("6.986") < html.index("note: Table 1") < html.index("6.326")
    html = environment().from_string(macros + "{{ m.reference_table(r) }}").render(r=reference_rows(runs, reference))
    assert '<td class="text ref-note">Table 1 gives &lt;7.946&gt;</td>' in html


def _verification_view(attributes: dict[str, str | None], **top) -> dict:
    """A ``metrics.differentials`` block with one empty table per attribute and its pair rule (None: none)."""
    return {"comparisons": 4, "genuine": 2, **top, "by_attribute": {
        a: {"rates": [], "summary": {}, "det": {}, **({"pair_rule": rule} if rule else {})}
        for a, rule in attributes.items()}}


def _render_run_sections(differentials: dict) -> str:
    from facebench.reports.bias_report import environment, run_view

    run = _document("arcface", None, {"rank1": _value(0.9)}, {})
    run.results["protocol"]["task"] = "face_identification"
    run.results["metrics"]["differentials"] = differentials
    template = environment().from_string('{% import "_macros.html.j2" as m %}{{ m.run_sections(run) }}')
    return " ".join(template.render(run=run_view(run)).split())


def test_each_attribute_of_the_verification_view_states_its_own_pair_rule() -> None:
    html = _render_run_sections(_verification_view({"race": "same_group: ... the 7 cross-group impostor pair(s)",
                                                    "gender": "same_group: ... the 3 cross-group impostor pair(s)"},
                                                   comparison_set="Every probe–gallery comparison of the test set."))
    assert "<p class=\"muted\">Every probe–gallery comparison of the test set. One global threshold" in html
    assert 'data-attribute="race">Pair rule for race — same_group: ... the 7 cross-group' in html
    assert 'data-attribute="gender">Pair rule for gender — same_group: ... the 3 cross-group' in html


def test_a_schema_1_2_verification_view_shows_its_one_pair_rule_with_the_attribute_it_was_for() -> None:
    # 1.2 wrote one top-level pair_rule, overwritten per attribute: it was the last attribute's.
    html = _render_run_sections(_verification_view({"race": None, "gender": None}, pair_rule="same_group: gender's"))
    assert 'data-attribute="gender">Pair rule for gender — same_group: gender&#39;s' in html
    assert 'data-attribute="race">Pair rule for race — not recorded for this attribute' in html
    assert "does not say which" in html and "probe–gallery" not in html
