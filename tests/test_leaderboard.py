"""``facebench leaderboard``: the static site, its manifest (the contract with ``facebench compare``),
escaping, links that stay inside the site, bad input, and atomic replacement.

The runs are genuine: predictions files scored by ``facebench evaluate`` on a small synthetic UTKFace, built
once per test session by :func:`sample_runs` (``test_browser.py`` reuses them).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from facebench.cli import main
from facebench.errors import UserInputError
from facebench.reports import leaderboard
from facebench.reports.bias_report import content_security_policy, write_protocol_report
from facebench.reports.leaderboard import MANIFEST_SCHEMA, SORT_SCRIPT, build_site, safe_name

AGE = Path(__file__).resolve().parent.parent / "protocols" / "age_utk_cross_ethnicity.yaml"
SMALL = ["--set", "dataset.synthetic.n=700", "--set", "dataset.synthetic.image_size=64",
         "--set", "dataset.synthetic.render_size=64", "--set", "evaluation.n_boot=100", "--no-progress"]
XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
#: The second protocol's name: a path-like, HTML-like name the site must neither follow nor render.
ODD_PROTOCOL = "../odd <b>protocol</b>"


# ------------------------------------------------------------------------------------------------ the runs
def _predictions(ids: list[str], path: Path, *, noise: float, race_bias: float, seed: int) -> None:
    """A predictions file: true age (from the UTKFace file name) + noise + a bias growing with the race
    code."""
    rng = random.Random(seed)
    lines = ["sample_id,age"]
    for sample_id in ids:
        age, _, race = (int(x) for x in Path(sample_id).name.split("_")[:3])
        lines.append(f"{sample_id},{age + rng.gauss(0, noise) + race_bias * race:.3f}")
    path.write_text("\n".join(lines) + "\n")


def _edit_results(run_dir: Path, edit) -> None:
    path = run_dir / "results.json"
    results = json.loads(path.read_text())
    edit(results)
    path.write_text(json.dumps(results))


def sample_runs(tmp_path_factory) -> Path:
    """A folder of genuine run directories, built once per session (later calls return the same folder).

    - ``age/age_utk_cross_ethnicity/``: three scored predictions files — ``good-model`` (best MAE), the
      submission named ``<script>alert(1)</script>`` (a bias growing with the race code) and one re-labelled
      as a baseline (``source_only``, label "source only"), as `facebench run` would have written it;
    - ``other/``: a copy of ``good-model`` re-labelled as protocol ``../odd <b>protocol</b>`` on real data
      (``data.synthetic`` false), so that one protocol's pages have no SYNTHETIC banner.
    """
    root = tmp_path_factory.getbasetemp() / "leaderboard-runs"
    if (root / "DONE").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    cache, out = root / ".cache", root / "age"
    common = ["--cache-dir", str(cache), *SMALL]
    listing = io.StringIO()
    with contextlib.redirect_stdout(listing):
        assert main(["evaluate", str(AGE), "--list-ids", *common]) == 0
    ids = listing.getvalue().split()
    models = [("good-model", 2.0, 0.0, 1), (XSS, 3.0, 1.5, 2), ("source_only", 4.0, 0.5, 3)]
    for name, noise, bias, seed in models:
        predictions = root / f"predictions-{seed}.csv"
        _predictions(ids, predictions, noise=noise, race_bias=bias, seed=seed)
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["evaluate", str(AGE), "--predictions", str(predictions), "--name", name,
                         "--out", str(out), *common]) == 0
    protocol_dir = out / "age_utk_cross_ethnicity"
    (protocol_dir / "report.html").unlink()
    baseline_dir = protocol_dir / "source_only-0123456789ab"
    (protocol_dir / "submission-source_only").rename(baseline_dir)
    _edit_results(baseline_dir, lambda r: r["baseline"].update(kind="baseline", label="source only"))
    odd = root / "other" / "odd-run"
    shutil.copytree(protocol_dir / "submission-good-model", odd)

    def make_odd(results):
        results["protocol"].update(name=ODD_PROTOCOL, title="An <i>odd</i> protocol")
        results["data"]["synthetic"] = False

    _edit_results(odd, make_odd)
    (root / "DONE").touch()
    return root


def run_dirs(root: Path) -> list[Path]:
    """Every run directory under ``root`` (the folders holding a results.json)."""
    return sorted(p.parent for p in root.rglob("results.json") if ".cache" not in p.parts)


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return sample_runs(tmp_path_factory)




#: A 1x1 PNG: stands in for matplotlib's plots where a test is about files, not pages (keeps the tests fast).
TINY_PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGA"
            "WjR9awAAAABJRU5ErkJggg==")


@pytest.fixture
def fast_plots(monkeypatch) -> None:
    from facebench.reports import plots

    for name in ("forest_plot", "lines_by_band", "det_curves"):
        monkeypatch.setattr(plots, name, lambda *args, **kwargs: TINY_PNG)


def age_results(runs: Path) -> dict[str, dict]:
    """The age protocol's results documents by display name."""
    documents = [load(d / "results.json") for d in run_dirs(runs / "age")]
    return {r["baseline"].get("label") or r["baseline"]["name"]: r for r in documents}


# ------------------------------------------------------------------------------------------- HTML helpers
class PageParser(HTMLParser):
    """Collects a page's tables (rows of cell texts with their attributes), links, images and scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[dict] = []
        self.links: list[str] = []
        self.images: list[str] = []
        self.scripts: list[str] = []
        self.paragraphs: list[dict] = []   # every <p>: attributes and text (outside tables)
        self._paragraph: dict | None = None
        self._stack: list[dict] = []
        self._cell: dict | None = None
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "table":
            self._stack.append({"attrs": attributes, "rows": []})
        elif tag == "tr" and self._stack:
            self._stack[-1]["rows"].append({"attrs": attributes, "cells": []})
        elif tag in ("td", "th") and self._stack and self._stack[-1]["rows"]:
            self._cell = {"attrs": attributes, "text": ""}
            self._stack[-1]["rows"][-1]["cells"].append(self._cell)
        elif tag == "a" and "href" in attributes:
            self.links.append(attributes["href"])
        elif tag == "img":
            self.images.append(attributes.get("src", ""))
        elif tag == "script":
            self._in_script = True
            self.scripts.append("")
        elif tag == "p":
            self._paragraph = {"attrs": attributes, "text": ""}
            self.paragraphs.append(self._paragraph)

    def handle_endtag(self, tag):
        if tag == "table" and self._stack:
            self.tables.append(self._stack.pop())
        elif tag in ("td", "th"):
            self._cell = None
        elif tag == "script":
            self._in_script = False
        elif tag == "p":
            self._paragraph = None

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        elif self._cell is not None:
            self._cell["text"] += data
        elif self._paragraph is not None:
            self._paragraph["text"] += data


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(Path(path).read_text(encoding="utf-8"))
    return parser


def text(cell: dict) -> str:
    return " ".join(cell["text"].split())


def table(page: PageParser, **attrs: str) -> dict:
    (found,) = [t for t in page.tables if all(t["attrs"].get(k) == v for k, v in attrs.items())]
    return found


def fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def value_ci(v: dict, digits: int = 2) -> str:
    """How the pages print a value with its interval."""
    return f"{fmt(v['value'], digits)} [{fmt(v['ci_low'], digits)}, {fmt(v['ci_high'], digits)}]"


def expected_leaderboard_cells(results: dict) -> list[str]:
    """Cells 3 to 7 of a run's row in its protocol's table: primary [CI], n, worst group, largest gap."""
    primary = results["protocol"]["primary_metric"]
    overall = results["metrics"]["overall"][primary]
    disparities = results["metrics"]["disparities"][primary]
    race = disparities["race"]
    attribute = max((a for a in disparities if "*" not in a), key=lambda a: disparities[a]["gap"])
    gap = disparities[attribute]
    return [value_ci(overall), str(overall["n"]), f"{race['worst_group']} (race) {fmt(race['worst_value'])}",
            f"{attribute} {fmt(gap['gap'])} [{fmt(gap['gap_ci_low'])}, {fmt(gap['gap_ci_high'])}]"]


def expected_group_rows(results: dict, attribute: str) -> list[list[str]]:
    """The rows of a run page's table for ``attribute``: group (small), n, people (when people were resampled),
    every metric's value [CI], the primary metric's detectable gap."""
    metrics = results["metrics"]
    first = next(iter(metrics["overall"]))
    primary = results["protocol"]["primary_metric"]
    clustered = bool(results["statistics"]["units"]["columns"])
    return [[group + (" (small)" if values[first]["flag"] == "small" else ""), str(values[first]["n"]),
             *([str(values[first]["n_units"])] if clustered else []),
             *(value_ci(values[m]) for m in metrics["overall"]),
             f"±{values[primary]['detectable_gap']:.2f}"]
            for group, values in metrics["by_group"][attribute].items()]


def expected_disparity_row(results: dict, metric: str, attribute: str) -> list[str]:
    """A run page's disparity row: metric, attribute, worst (value), n, best (value), gap, CI, ratio,
    p (Holm)."""
    metrics = results["metrics"]
    gap = metrics["disparities"][metric][attribute]
    worst = metrics["by_group"][attribute][gap["worst_group"]][metric]
    (p_holm,) = [t["p_holm"] for t in metrics["group_tests"]
                 if (t["metric"], t["attribute"], t["group"]) == (metric, attribute, gap["worst_group"])]
    return [metric, attribute, f"{gap['worst_group']} ({fmt(gap['worst_value'])})", str(worst["n"]),
            f"{gap['best_group']} ({fmt(gap['best_value'])})", fmt(gap["gap"]),
            f"[{fmt(gap['gap_ci_low'])}, {fmt(gap['gap_ci_high'])}]", fmt(gap["ratio"]), f"{p_holm:.2g}"]


def data_rows(found: dict) -> list[dict]:
    """The table's rows that hold data cells (not the header row)."""
    return [row for row in found["rows"] if row["cells"] and row is not found["rows"][0]]


def manifest_entry(site: Path, name: str, protocol: str = "age_utk_cross_ethnicity") -> dict:
    entries = load(site / "manifest.json")["entries"]
    (entry,) = [e for e in entries if (e["name"], e["protocol"]) == (name, protocol)]
    return entry


def page_of(site: Path, name: str) -> Path:
    """The run report page of the age protocol's entry called ``name``."""
    entry = manifest_entry(site, name)
    return site / "protocols" / Path(entry["results"]).parent.parent.name / f"{entry['run']}.html"


# ------------------------------------------------------------------------------------------------- tests
def test_manifest_lists_every_run_with_copies_of_its_files(runs: Path, site: Path) -> None:
    manifest = load(site / "manifest.json")
    assert manifest["schema"] == MANIFEST_SCHEMA == "facebench-leaderboard/1"
    entries = {e["name"]: e for e in manifest["entries"]}
    assert len(manifest["entries"]) == 4  # the odd protocol's run is a copy of good-model, same name
    assert set(entries) == {"good-model", XSS, "source only"}
    by_protocol = {}
    for entry in manifest["entries"]:
        by_protocol.setdefault(entry["protocol"], []).append(entry)
        source = next(d for d in run_dirs(runs) if d.name == entry["run"]
                      and load(d / "results.json")["protocol"]["name"] == entry["protocol"])
        assert entry["results"] == f"runs/{safe_name(entry['protocol'])}/{entry['run']}/results.json"
        assert entry["outcomes"] == f"runs/{safe_name(entry['protocol'])}/{entry['run']}/outcomes.csv"
        assert (site / entry["results"]).read_bytes() == (source / "results.json").read_bytes()
        assert (site / entry["outcomes"]).read_bytes() == (source / "outcomes.csv").read_bytes()
        results = load(source / "results.json")
        assert entry["kind"] == results["baseline"]["kind"]
        assert entry["primary_metric"] == "mae"
        assert entry["value"] == results["metrics"]["overall"]["mae"]["value"]
    assert sorted(by_protocol) == [ODD_PROTOCOL, "age_utk_cross_ethnicity"]
    assert {e["run"] for e in by_protocol["age_utk_cross_ethnicity"]} == {
        "submission-good-model", "submission-script_alert_1___script", "source_only-0123456789ab"}
    assert entries["source only"]["kind"] == "baseline" and entries[XSS]["kind"] == "submission"
    # The odd protocol name became a plain folder name: nothing under SITE/.. was written.
    assert safe_name(ODD_PROTOCOL) == "_odd_b_protocol_b_"
    assert sorted(p.name for p in (site / "runs").iterdir()) == ["_odd_b_protocol_b_",
                                                                 "age_utk_cross_ethnicity"]
    assert sorted(p.name for p in site.parent.iterdir()) == ["site"]


def test_protocol_table_ranks_runs_and_shows_their_numbers(runs: Path, site: Path) -> None:
    page = parse(site / "protocols" / "age_utk_cross_ethnicity" / "index.html")
    rows = data_rows(table(page, id="leaderboard"))
    results = age_results(runs)
    maes = {name: r["metrics"]["overall"]["mae"]["value"] for name, r in results.items()}
    names = [text(row["cells"][1]) for row in rows]
    assert names == sorted(maes, key=maes.get)  # best (lowest MAE) first
    assert names[0] == "good-model"
    for rank, row in enumerate(rows, start=1):
        cells = [text(c) for c in row["cells"]]
        r = results[cells[1]]
        assert cells[0] == str(rank)
        assert cells[2] == r["baseline"]["kind"]
        assert cells[3:7] == expected_leaderboard_cells(r)
        assert float(row["cells"][3]["attrs"]["data-sort"]) == r["metrics"]["overall"]["mae"]["value"]
        assert cells[7].startswith("synthetic " + r["data"]["fingerprint"][:8])
        # Against the paper: every reason, synthetic quick-profile data first; a submission's training is unknown.
        assert cells[8].startswith("reference only synthetic data quick profile")  # summary, then each reason
        assert ("a submission, whose training facebench does not record" in cells[8]) == (cells[2] == "submission")
    # All three runs scored the same images: the paired change against the baseline source_only is shown.
    protocol_page = site / "protocols" / "age_utk_cross_ethnicity" / "index.html"
    assert "Change against source only" in protocol_page.read_text()
    # The biased submission's worst race is the one with the largest race code in the data ("others").
    assert text(rows[names.index(XSS)]["cells"][5]).startswith("others (race)")


def test_published_numbers_carry_each_runs_comparability_verdict(runs: Path, site: Path) -> None:
    """facebench.comparability's rule, per run: nothing here is comparable (quick profile everywhere, synthetic
    data on the age protocol); runs with different verdicts are named on their line."""
    reference = next(iter(age_results(runs).values()))["reference"]
    paper = "the paper fine-tunes a pre-trained ResNet-50 (section 3.1; the weights are not named)"
    submission = f"a submission, whose training facebench does not record ({paper})"

    def missing(row: dict) -> str:  # submissions, and this relabelled one, have no source-validation score
        return "; no source-validation mae" if row["split"] == "source_val" else ""

    pages = {
        "age_utk_cross_ethnicity": lambda r: (
            f"source only: reference only: synthetic data; quick profile; trained from scratch; {paper}{missing(r)} "
            f"good-model, {XSS}: reference only: synthetic data; quick profile; {submission}{missing(r)}"),
        "_odd_b_protocol_b_": lambda r: f"reference only: quick profile; {submission}{missing(r)}",
    }
    for slug, verdicts in pages.items():
        rows = data_rows(table(parse(site / "protocols" / slug / "index.html"), **{"class": "reference"}))
        assert [[text(c) for c in row["cells"]] for row in rows] == [
            [r["source"], r["setting"], r["split"], r["metric"], f"{r['value']:.3f}", verdicts(r), r.get("note") or ""]
            for r in reference]
    assert any(r.get("note") for r in reference)  # seed 000's Table 1 rows carry notes, shown beside the value


def test_synthetic_results_say_so_on_every_page(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) == 1 + 2 + 4  # index, two protocol pages, four run reports
    for page in pages:
        html = page.read_text()
        synthetic = "_odd_b_protocol_b_" not in page.parts  # the odd protocol's only run claims real data
        assert ("SYNTHETIC DATA" in html and "[SYNTHETIC]</title>" in html) == synthetic, page


def test_every_page_says_whose_labels_the_groups_are(site: Path) -> None:
    from facebench.reports.bias_report import GLOSSARY

    pages = sorted(site.rglob("*.html"))
    assert len(pages) == 7
    for page in pages:
        (glossary,) = [p for p in parse(page).paragraphs if p["attrs"].get("class") == "muted glossary"]
        assert " ".join(glossary["text"].split()) == GLOSSARY, page


def test_names_from_results_are_escaped_on_every_page(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    for page in pages:
        html = page.read_text()
        assert XSS not in html and "<b>protocol</b>" not in html and "<i>odd</i>" not in html, page
        parsed = parse(page)
        # The only script is facebench's own sorter, allowed by its hash and nothing else.
        assert parsed.scripts in ([], [SORT_SCRIPT]), page
        policy = content_security_policy(SORT_SCRIPT if parsed.scripts else None)
        assert f'content="{policy}"' in html.replace("&#39;", "'"), page
    for page in [site / "protocols" / "age_utk_cross_ethnicity" / "index.html", page_of(site, XSS)]:
        assert XSS_ESCAPED in page.read_text(), page
    for page in [site / "index.html", site / "protocols" / "_odd_b_protocol_b_" / "index.html"]:
        html = page.read_text()
        assert "An &lt;i&gt;odd&lt;/i&gt; protocol" in html, page
        assert "../odd &lt;b&gt;protocol&lt;/b&gt;" in html, page


def test_links_resolve_inside_the_site_and_pages_hold_no_images_but_plots(runs: Path, site: Path) -> None:
    root = site.resolve()
    n_links = 0
    for page in sorted(site.rglob("*.html")):
        parsed = parse(page)
        html = page.read_text()
        for href in parsed.links:
            parts = urlsplit(href)
            assert not parts.scheme and not parts.netloc and not href.startswith("/"), (page, href)
            target = (page.parent / unquote(parts.path)).resolve()
            assert target.is_relative_to(root) and target.is_file(), (page, href)
            n_links += 1
        assert all(src.startswith("data:image/png;base64,") for src in parsed.images), page
        # No path of the run folders (results' _path) and nothing from the network.
        assert str(runs) not in html and str(runs.resolve()) not in html, page
        assert "http://" not in html and "https://" not in html and "file:" not in html, page
    assert n_links >= 4 + 4 * 4  # index -> protocols and run pages -> back links and files
    suffixes = {p.suffix for p in site.rglob("*") if p.is_file()}
    assert suffixes == {".html", ".json", ".csv"}  # no images of any dataset


def test_run_report_has_group_tables_forest_plots_and_sorted_disparities(runs: Path, site: Path) -> None:
    results = age_results(runs)[XSS]
    metrics = results["metrics"]
    page = parse(page_of(site, XSS))
    html = page_of(site, XSS).read_text()
    # Per-group tables: every attribute, every group, each value with its interval and n, small groups marked.
    for attribute, groups in metrics["by_group"].items():
        rows = data_rows(table(page, **{"class": "groups", "data-attribute": attribute}))
        assert [row["attrs"]["data-group"] for row in rows] == list(groups)
        assert [[text(c) for c in row["cells"]] for row in rows] == expected_group_rows(results, attribute)
    assert any(v["mae"]["flag"] == "small" for v in metrics["by_group"]["race*gender*age_band"].values())
    # A forest plot per single attribute and the band plot, all inline PNGs.
    singles = [a for a in metrics["by_group"] if "*" not in a]
    assert len(page.images) == len(singles) + 1
    # Disparities: primary metric first, single attributes before intersections, then largest gap first,
    # with the worst group's Holm-adjusted p-value against the rest.
    rows = data_rows(table(page, **{"class": "disparities"}))
    keys = [(row["attrs"]["data-metric"], row["attrs"]["data-attribute"]) for row in rows]
    assert len(keys) == sum(len(v) for v in metrics["disparities"].values())
    assert keys[0][0] == "mae" and [k[0] for k in keys[:len(metrics["disparities"]["mae"])]] == ["mae"] * 7
    mae_keys = [k for k in keys if k[0] == "mae"]
    mae_gaps = metrics["disparities"]["mae"]
    order = sorted(mae_gaps, key=lambda a: ("*" in a, -mae_gaps[a]["gap"]))
    assert [a for _, a in mae_keys] == order
    for row, (metric, attribute) in zip(rows, keys, strict=True):
        assert [text(c) for c in row["cells"]] == expected_disparity_row(results, metric, attribute)
    race = metrics["disparities"]["mae"]["race"]
    assert (f"MAE for faces labelled {race['worst_group'].capitalize()} in synthetic UTKFace is {race['gap']:.2f} "
            f"years worse (higher) than for faces labelled {race['best_group'].capitalize()} in synthetic UTKFace "
            f"(95% CI {race['gap_ci_low']:.2f}–{race['gap_ci_high']:.2f}") in html


def test_rebuilding_replaces_the_site_and_skips_its_own_copies(runs: Path, fast_plots: None,
                                                               tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(runs / "age", work / "age")
    site = work / "site"  # inside the searched folder: its copies must not be read back as runs
    build_site([work], out=site, show_progress=False)
    first = load(site / "manifest.json")
    (site / "stale.txt").write_text("from an older build")
    build_site([work, work / "age"], out=site, show_progress=False)  # overlapping folders: each run once
    assert load(site / "manifest.json") == first and len(first["entries"]) == 3
    assert not (site / "stale.txt").exists()
    assert sorted(p.name for p in work.iterdir()) == ["age", "site"]  # no temporary folders left
    umask = os.umask(0)
    os.umask(umask)
    assert (site / "index.html").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_failed_build_leaves_the_previous_site_untouched(runs: Path, fast_plots: None, tmp_path: Path,
                                                           monkeypatch) -> None:
    site = tmp_path / "site"
    build_site([runs / "age"], out=site, show_progress=False)
    before = {p: p.read_bytes() for p in site.rglob("*") if p.is_file()}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(leaderboard, "_write_protocol", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        build_site([runs], out=site, show_progress=False)
    assert {p: p.read_bytes() for p in site.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_run_folders_with_the_same_name_get_distinct_places(runs: Path, fast_plots: None,
                                                            tmp_path: Path) -> None:
    for machine in ("a", "b"):
        shutil.copytree(runs / "age" / "age_utk_cross_ethnicity" / "submission-good-model",
                        tmp_path / machine / "run")
    site = tmp_path / "site"
    build_site([tmp_path / "a", tmp_path / "b"], out=site, show_progress=False)
    assert sorted(e["run"] for e in load(site / "manifest.json")["entries"]) == ["run", "run-2"]
    assert (site / "protocols" / "age_utk_cross_ethnicity" / "run-2.html").is_file()


@pytest.mark.parametrize("case, message", [
    ("missing", "Run folder {path} does not exist."),
    ("empty", "No results.json found under {path}."),
    ("invalid", "{path}/r/results.json is not valid JSON"),
    ("nan", "{path}/r/results.json is not valid JSON (NaN is not a JSON number)."),
    ("not-results", "{path}/r/results.json is not a facebench results.json: it has no 'protocol.name'."),
    ("outcomes-outside", "{path}/r/results.json names outcomes file '../../secret.csv', which is outside"),
    ("outcomes-symlink", "{path}/r/results.json names outcomes file 'outcomes.csv', which is outside"),
])
def test_bad_input_is_one_sentence_naming_the_file(runs: Path, tmp_path: Path, capsys, case, message) -> None:
    folder = tmp_path / "in"
    if case != "missing":
        folder.mkdir()
    if case in ("invalid", "nan", "not-results"):
        (folder / "r").mkdir()
        content = {"invalid": "{not json", "nan": '{"value": NaN}', "not-results": '{"protocol": {}}'}[case]
        (folder / "r" / "results.json").write_text(content)
    if case == "outcomes-outside":
        shutil.copytree(runs / "age" / "age_utk_cross_ethnicity" / "submission-good-model", folder / "r")
        _edit_results(folder / "r", lambda r: r["files"].update(outcomes="../../secret.csv"))
        (tmp_path / "secret.csv").write_text("secret\n")
    if case == "outcomes-symlink":
        shutil.copytree(runs / "age" / "age_utk_cross_ethnicity" / "submission-good-model", folder / "r")
        (tmp_path / "secret.csv").write_text("secret\n")
        (folder / "r" / "outcomes.csv").unlink()
        (folder / "r" / "outcomes.csv").symlink_to(tmp_path / "secret.csv")
    expected = message.format(path=folder)
    with pytest.raises(UserInputError) as error:
        build_site([folder], out=tmp_path / "site", show_progress=False)
    assert str(error.value).startswith(expected)
    assert main(["leaderboard", str(folder), "--out", str(tmp_path / "site")]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "site").exists()


def test_an_out_folder_of_something_else_is_never_replaced(runs: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(UserInputError, match="is a folder that is not a facebench leaderboard site"):
        build_site([runs / "age"], out=mine, show_progress=False)
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]


def test_cli_prints_the_index_page(runs: Path, fast_plots: None, tmp_path: Path, capsys) -> None:
    site = tmp_path / "site"
    assert main(["leaderboard", str(runs / "age"), "--out", str(site)]) == 0
    assert capsys.readouterr().out.strip() == str((site / "index.html").absolute())
    index = data_rows(table(parse(site / "index.html"), id="protocols"))
    assert [text(row["cells"][0]).split()[0] for row in index] == ["age_utk_cross_ethnicity"]


def test_the_protocol_report_shares_the_run_sections(runs: Path, tmp_path: Path) -> None:
    folder = tmp_path / "age_utk_cross_ethnicity"
    shutil.copytree(runs / "age" / "age_utk_cross_ethnicity", folder)
    html = write_protocol_report(folder).read_text()
    page = parse(folder / "report.html")
    assert XSS_ESCAPED in html and "<script" not in html and "SYNTHETIC DATA" in html
    assert len([t for t in page.tables if t["attrs"].get("class") == "disparities"]) == 3  # one per run
    assert re.search(r"script-src 'none'", html.replace("&#39;", "'"))
    assert "Change against source only" in html  # paired changes: all three runs share the split


def test_run_and_protocol_pages_show_the_protocols_deviations(runs: Path, site: Path) -> None:
    deviations = age_results(runs)[XSS]["protocol"]["deviations"]
    assert deviations
    for page in (page_of(site, XSS), site / "protocols" / "age_utk_cross_ethnicity" / "index.html"):
        rows = data_rows(table(parse(page), **{"class": "deviations"}))
        assert [row["attrs"]["data-kind"] for row in rows] == [d["kind"] for d in deviations]
        assert [text(row["cells"][2]) for row in rows] == [d["choice"] for d in deviations]
