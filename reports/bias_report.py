"""The per-protocol HTML bias report: every run of a protocol folder on one self-contained page.

The page is built from the ``results.json`` files only (never from images), rendered by jinja2 with
autoescaping on, with plots inlined as PNG data URIs: no network, no scripts from elsewhere, and no face
images of any dataset. Results on synthetic data carry a SYNTHETIC banner at the top of the page.

The pieces are shared with the leaderboard site (:mod:`facebench.reports.leaderboard`):
:func:`facebench.results.load_run` loads a run, :func:`run_view` prepares it for the templates, :func:`environment` is the
one jinja2 environment, and ``templates/_macros.html.j2`` lays out a run's sections for both the report and
the site's run pages.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from pathlib import Path
from typing import Any

import jinja2

from facebench.comparison.entries import same_measurement
from facebench.comparison.pairing import pair_outcomes
from facebench.comparison.verdict import DEFAULT_N_BOOT, DEFAULT_SEED, compare_metric
from facebench.data.identities import describe_identity_overlap
from facebench.data.table import RACES
from facebench.errors import UserInputError
from facebench.io import write_text
from facebench.metrics import get_metric
from facebench.reports import plots
from facebench.results import Run, load_run

TEMPLATES = Path(__file__).resolve().parent / "templates"


def load_runs(folder: Path) -> list[Run]:
    """Every run directly under ``folder`` (its run directories' results.json), in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserInputError(f"Run folder {folder} does not exist.")
    # Hidden folders are scratch space (a submission being written, a temporary site), never runs.
    runs = [load_run(path) for path in sorted(folder.glob("*/results.json")) if not path.parent.name.startswith(".")]
    if not runs:
        raise UserInputError(f"No run directories with results.json under {folder}.")
    return runs


def _fmt(value: float | None, digits: int = 2) -> str:
    """A number with ``digits`` decimals, or an em dash for a missing one.

    >>> _fmt(2.104), _fmt(None), _fmt(0.12345, 3)
    ('2.10', '—', '0.123')
    """
    return "—" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None, digits: int = 2) -> str:
    """A difference with its sign: ``+1.20`` / ``-0.30`` (an em dash when missing)."""
    return "—" if value is None else f"{value:+.{digits}f}"


def _pvalue(value: float | None) -> str:
    """A p-value to two significant digits (an em dash when missing)."""
    return "—" if value is None else f"{value:.2g}"


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The jinja2 environment of every facebench page: autoescaping on for all templates, strict undefined."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(fmt=_fmt, signed=_signed, pvalue=_pvalue)
    return env


def content_security_policy(script: str | None = None) -> str:
    """The page's Content-Security-Policy: nothing from the network, images only as data URIs, inline styles,
    and no script except (when given) exactly ``script``, allowed by its SHA-256 hash.

    Even if some text escaped escaping, the browser would refuse to run it or to fetch anything.
    """
    if script is None:
        scripts = "'none'"
    else:
        digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
        scripts = f"'sha256-{digest}'"
    return (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src {scripts}; "
            "base-uri 'none'; form-action 'none'")


def _metric_direction(metric: str) -> tuple[bool, str]:
    spec = get_metric(metric)
    return spec.higher_is_better, spec.unit


def group_phrase(attribute: str, group: str) -> str:
    """Who a group is, in words: ``race=black`` → "black faces", ``race*age_band=black*60+`` → "black faces
    aged 60+", ``age_gap=10-19`` → "faces with age gap 10-19".

    >>> group_phrase("race*gender", "black*female"), group_phrase("age_band", "0-14")
    ('black female faces', 'faces aged 0-14')
    >>> group_phrase("database", "2004-2006")
    'faces with database 2004-2006'
    """
    words, aged, others = [], "", []
    for name, label in zip(attribute.split("*"), str(group).split("*"), strict=False):
        if name in ("race", "gender"):
            words.append(label)
        elif name == "age_band":
            aged = f" aged {label}"
        else:
            others.append(f"{name.replace('_', ' ')} {label}")
    return " ".join([*words, "faces"]) + aged + (f" with {' and '.join(others)}" if others else "")


def plain_language(metric: str, attribute: str, gap: dict[str, Any], unit: str, higher_is_better: bool) -> str:
    """One sentence a non-specialist can read, e.g. "MAE for black faces is 2.10 years worse (higher) than for
    white faces (95% CI 1.70–2.50; ratio 1.30)."."""
    direction = "lower" if higher_is_better else "higher"
    unit_text = f" {unit}" if unit else ""
    return (
        f"{metric.upper()} for {group_phrase(attribute, gap['worst_group'])} is {_fmt(gap['gap'])}{unit_text} worse "
        f"({direction}) than for {group_phrase(attribute, gap['best_group'])} "
        f"(95% CI {_fmt(gap['gap_ci_low'])}–{_fmt(gap['gap_ci_high'])}; ratio {_fmt(gap['ratio'])})."
    )


def _sorted_gaps(metrics: dict[str, Any], primary: str) -> list[dict[str, Any]]:
    """Every (metric, attribute) disparity with its sentence, worst-group size and Holm-adjusted p-value, most
    severe first: the primary metric before the others, single attributes before intersections, then the
    largest gap first (gaps of different metrics are in different units, so they are never ranked together).
    """
    tests = {(t["metric"], t["attribute"], t["group"]): t for t in metrics.get("group_tests", [])}
    metric_order = list(metrics["overall"])
    gaps = []
    for metric, by_attribute in metrics["disparities"].items():
        hib, metric_unit = _metric_direction(metric)
        for attribute, gap in by_attribute.items():
            if gap.get("worst_group") is None:  # every value of the attribute missing: nothing to compare
                continue
            worst = metrics["by_group"].get(attribute, {}).get(gap["worst_group"], {}).get(metric, {})
            test = tests.get((metric, attribute, gap["worst_group"]), {})
            gaps.append({"metric": metric, "attribute": attribute, **gap,
                         "worst_n": worst.get("n"), "worst_small": worst.get("flag") == "small",
                         "p_holm": test.get("p_holm"),
                         "sentence": plain_language(metric, attribute, gap, metric_unit, hib)})

    def severity(gap: dict[str, Any]) -> tuple:
        metric = gap["metric"]
        return (metric != primary, metric_order.index(metric) if metric in metric_order else len(metric_order),
                "*" in gap["attribute"], -(gap["gap"] if gap["gap"] is not None else -1.0))

    gaps.sort(key=severity)
    return gaps


def run_view(run: Run) -> dict[str, Any]:
    """Everything the templates need for one run, precomputed (the templates only lay it out)."""
    results = run.results
    primary = run.primary_metric
    metrics = results["metrics"]
    higher_is_better, unit = _metric_direction(primary)
    metric_names = list(metrics["overall"])
    attributes = []
    for attribute, groups in metrics["by_group"].items():
        rows = [{"group": g, "values": values} for g, values in groups.items()]
        forest = None
        if "*" not in attribute:
            points = [{"group": g, **values[primary]} for g, values in groups.items() if values[primary]["value"] is not None]
            forest = plots.forest_plot(points, metric=primary, unit=unit, title=f"{primary} by {attribute}",
                                       overall=metrics["overall"].get(primary))
        attributes.append({"name": attribute, "rows": rows, "forest": forest})
    band_plot = None
    crossed = metrics["by_group"].get("race*age_band")
    if crossed:
        series: dict[str, list] = {}
        for label, values in crossed.items():
            race, band = label.split("*")
            value = values[primary]
            if value["value"] is not None and value.get("flag") != "small":
                series.setdefault(race, []).append((band, value["value"], value["ci_low"], value["ci_high"]))
        order = list(metrics["by_group"].get("age_band", {}))
        for points in series.values():
            points.sort(key=lambda p: order.index(p[0]) if p[0] in order else 99)
        band_plot = plots.lines_by_band(series, metric=primary, unit=unit, title=f"{primary} by age band, per race")
    tests = sorted((t for t in metrics.get("group_tests", []) if t["metric"] == primary and "*" not in t["attribute"]),
                   key=lambda t: (t["p_holm"] if t["p_holm"] is not None else 2.0, -abs(t["difference"] or 0)))
    differentials = []
    for attribute, view in metrics.get("differentials", {}).get("by_attribute", {}).items():
        differentials.append({
            "attribute": attribute, "rates": view["rates"], "summary": view["summary"],
            "det": plots.det_curves(view["det"], title=f"DET curve per {attribute} (same-group pairs)") if view["det"] else None,
        })
    training = results.get("training") or {}
    provenance = dict.fromkeys(("facebench_version", "git_commit", "torch", "device", "seed", "duration_s",
                                "created_at"))
    provenance.update(results.get("provenance") or {})
    return {
        "dir": run.folder.name,
        "tests": tests,
        "differentials": differentials,
        "pair_rule": metrics.get("differentials", {}).get("pair_rule", ""),
        "name": run.name,
        "kind": run.kind,
        "results": results,
        "primary": primary,
        "unit": unit,
        "metric_names": metric_names,
        "overall": metrics["overall"],
        "attributes": attributes,
        "gaps": _sorted_gaps(metrics, primary),
        "band_plot": band_plot,
        "epochs": training.get("epochs") or [],
        "resumed_from_epoch": training.get("resumed_from_epoch"),
        "provenance": provenance,
        "source_val": (results.get("splits") or {}).get("source_val", {}),
        "race_primary": {g: v[primary] for g, v in metrics["by_group"].get("race", {}).items()},
        "pretrained_note": pretrained_note(results),
        "units_note": units_note(results),
        "clustered": bool(((results.get("statistics") or {}).get("units") or {}).get("columns")),
        "unit_plural": plural(((results.get("statistics") or {}).get("units") or {}).get("unit") or "image"),
        "leakage": leakage_lines(results),
    }


def plural(noun: str) -> str:
    """``person`` → ``people``; other unit names take an s."""
    return "people" if noun == "person" else f"{noun}s"


def units_note(results: dict[str, Any]) -> str:
    """One paragraph: what the intervals resampled, and how much narrower rows-as-independent would have been."""
    statistics = results.get("statistics") or {}
    units = statistics.get("units")
    if units is None:
        return ("This run was scored before facebench recorded units of independence: its intervals resample "
                "images as if independent, which is too narrow where one person has several images.")
    if not units.get("columns"):
        return ("Images are treated as independent: this dataset does not say which images show the same "
                "person, so where one person has several images the intervals are too narrow.")
    primary = results["protocol"]["primary_metric"]
    text = (f"Intervals and tests resample the {units['n_units']} {plural(units['unit'])} of the test set, each with all "
            f"of their rows ({statistics.get('n_boot')} cluster-bootstrap draws): one {units['unit']}'s images "
            "succeed or fail together, so they are not independent observations.")
    ours, rows = results["metrics"]["overall"].get(primary), (units.get("row_wise_overall") or {}).get(primary)
    if ours and rows and None not in (ours["ci_low"], ours["ci_high"], rows["ci_low"], rows["ci_high"]):
        width, row_width = ours["ci_high"] - ours["ci_low"], rows["ci_high"] - rows["ci_low"]
        ratio = f", {width / row_width:.1f}× narrower" if row_width > 0 else ""
        text += (f" Treating images as independent would have given the overall {primary} the interval "
                 f"[{rows['ci_low']:.3f}, {rows['ci_high']:.3f}]{ratio}.")
    return text


def leakage_lines(results: dict[str, Any]) -> list[str]:
    """One sentence per leakage check the run recorded (results 1.3: ``data.identity_overlap``, and
    ``data.n_excluded_anchors`` where labelled test images were left out of scoring); none for older files."""
    data = results["data"]
    lines = []
    if data.get("identity_overlap"):
        lines.append(describe_identity_overlap(data["identity_overlap"]))
    excluded = data.get("n_excluded_anchors") or 0
    if excluded:
        lines.append(f"{excluded} labelled target anchor image{'s' if excluded != 1 else ''} (ages given to the method "
                     f"at prediction time) {'are' if excluded != 1 else 'is'} not scored: {data.get('n_samples')} test "
                     "images are.")
    return lines


def pretrained_note(results: dict[str, Any]) -> str:
    """For a model pre-trained on real faces and scored on synthetic ones: say that its numbers mean nothing."""
    learnt_from = results["baseline"].get("pretrained_on")
    if not learnt_from or not results["data"].get("synthetic"):
        return ""
    return (f"{results['baseline'].get('label') or results['baseline']['name']} was trained on {learnt_from} and "
            "is scored here on synthetic faces: its numbers say nothing about how it treats real faces, of any "
            "group. They show only that the pipeline runs; score it on the real dataset (--data-root) for numbers "
            "that mean something.")


def changes_against_reference(runs: list[Run], *, reference_name: str = "source_only", attribute: str = "race",
                              n_boot: int = DEFAULT_N_BOOT, seed: int = DEFAULT_SEED) -> dict[str, Any] | None:
    """Per-group change of every run's primary metric against the source-only run: ``facebench compare``'s
    numbers, so the report and the CI gate give the same verdicts and p-values on the same two runs.

    Each run measured like the reference (:func:`~facebench.comparison.entries.same_measurement`: protocol
    version, data, split) is paired with it sample by sample (:func:`~facebench.comparison.pairing.pair_outcomes`)
    and compared by :func:`~facebench.comparison.verdict.compare_metric` (stratified paired bootstrap per group,
    Holm-adjusted p-values within each attribute) with compare's default ``n_boot`` and ``seed``. The table
    shows ``attribute``'s groups; each row also says whether ``facebench compare`` without a gate file would
    fail the run (overall, any group of any attribute, or a gap). Returns None when the folder has no
    reference run or nothing to compare.
    """
    reference = next((r for r in runs if r.results["baseline"]["name"] == reference_name), None)
    if reference is None or len(runs) < 2:
        return None
    metric = get_metric(reference.primary_metric)
    groups: dict[str, None] = {}
    rows = []
    for run in runs:
        if run is reference or not same_measurement(run, reference):
            continue
        paired = pair_outcomes(run, reference)
        if attribute not in paired.attributes:
            continue
        comparison = compare_metric(metric, paired, candidate=run, reference=reference,
                                    n_boot=n_boot, seed=seed)
        (changes,) = (a for a in comparison.attributes if a.attribute == attribute)
        groups.update(dict.fromkeys(g.group for g in changes.groups))
        rows.append({"name": run.name, "cells": {g.group: g for g in changes.groups},
                     "regressed": comparison.regressed})
    if not rows:
        return None
    return {"metric": metric.name, "reference": reference.name, "attribute": attribute, "groups": list(groups),
            "rows": rows, "lower_is_better": not metric.higher_is_better}


def paper_table(runs: list[dict[str, Any]], reference: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The paper's table layout: one column per (metric, split, group) of the published numbers that name a
    ``method``, one row per published method, then one row per run with our value and interval in the same
    cell positions. ``split: source_val`` reads ``results.splits``; a ``group`` reads ``metrics.by_group``."""
    entries = [r for r in reference if r.get("method")]
    if not entries:
        return None
    columns: list[tuple[str, str, str | None]] = []
    for r in entries:
        key = (r["metric"], r.get("split", "test"), r.get("group"))
        if key not in columns:
            columns.append(key)

    def ours(results: dict[str, Any], metric: str, split: str, group: str | None) -> dict[str, Any] | None:
        if split == "source_val":
            return (results.get("splits") or {}).get("source_val", {}).get(metric)
        if group is None:
            return results["metrics"]["overall"].get(metric)
        attribute, _, label = group.partition("=")
        return results["metrics"]["by_group"].get(attribute, {}).get(label, {}).get(metric)

    published = []
    for method in dict.fromkeys(r["method"] for r in entries):
        cells, notes = {}, {}
        for r in entries:
            if r["method"] == method:
                cells[(r["metric"], r.get("split", "test"), r.get("group"))] = r["value"]
                notes[(r["metric"], r.get("split", "test"), r.get("group"))] = r.get("note")
        baseline = next((r.get("baseline") for r in entries if r["method"] == method and r.get("baseline")), None)
        published.append({"method": method, "baseline": baseline, "cells": [cells.get(c) for c in columns],
                          "notes": [notes.get(c) for c in columns],
                          "source": next(r["source"] for r in entries if r["method"] == method)})
    # A published row's ``baseline`` names our baseline, or one labelled entry of it ("dann conv+fc1").
    measured = [{"name": r["baseline"].get("label") or r["baseline"]["name"],
                 "matches": {r["baseline"]["name"], r["baseline"].get("label") or r["baseline"]["name"]},
                 "synthetic": r["data"]["synthetic"], "cells": [ours(r, *c) for c in columns]} for r in runs]
    headers = [" ".join(x for x in (metric, "(source val)" if split == "source_val" else "",
                                   group.partition("=")[2] if group else "overall") if x) for metric, split, group in columns]
    return {"headers": headers, "published": published, "measured": measured}


def render_report(runs: list[Run]) -> str:
    """The per-protocol report page (HTML) for ``runs``, the runs of one protocol."""
    first = runs[0].results
    views = [run_view(r) for r in runs]
    present = {g for v in views for g in v["race_primary"]}
    races = [r for r in RACES if r in present] + sorted(present - set(RACES))
    return environment().get_template("report.html.j2").render(
        protocol=first["protocol"], data=first["data"], synthetic=any(r.synthetic for r in runs),
        runs=views, races=races, reference=first.get("reference", []), changes=changes_against_reference(runs),
        paper=paper_table([r.results for r in runs], first.get("reference", [])),
        csp=content_security_policy(), script=None,
    )


def write_protocol_report(folder: Path) -> Path:
    """Render ``folder/report.html`` from the run directories in ``folder``; return its path."""
    runs = load_runs(folder)
    path = Path(folder) / "report.html"
    write_text(path, render_report(runs))
    return path
