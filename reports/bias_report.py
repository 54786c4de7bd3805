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

from facebench.comparability import judge
from facebench.comparison.entries import same_measurement
from facebench.comparison.pairing import pair_outcomes
from facebench.comparison.verdict import DEFAULT_N_BOOT, DEFAULT_SEED, compare_metric
from facebench.data.datasets import dataset_display_name
from facebench.data.identities import describe_identity_overlap
from facebench.data.table import RACES
from facebench.errors import UserInputError
from facebench.io import write_text
from facebench.metrics import get_metric
from facebench.metrics.intervals import t_interval
from facebench.registry import TASKS
from facebench.reports import plots
from facebench.results import Run, load_run

TEMPLATES = Path(__file__).resolve().parent / "templates"

#: The glossary line at the foot of every page (the report and each leaderboard page): whose labels groups are.
GLOSSARY = ("Groups: race, gender and age labels are each dataset's own categories, as the dataset's annotators "
            "assigned them (e.g. UTKFace's White, Black, Asian, Indian, Others), not how the people pictured "
            "identify themselves; on synthetic data they are the generator's groups.")


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
    env.globals["glossary"] = GLOSSARY
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


def group_phrase(attribute: str, group: str, *, dataset: str, pairs: bool = False) -> str:
    """Who a group is, in words that say whose label it is: the groups are the categories ``dataset``'s
    annotators assigned, not how the people pictured identify themselves. ``race=black`` → "faces labelled
    Black in UTKFace"; ``age_gap=10-19`` → "faces with age gap 10-19". With ``pairs`` (verification, where a
    pair's group is its two faces' common label or ``mixed``) the subject is the pair.

    >>> group_phrase("race*gender", "black*female", dataset="UTKFace")
    'faces labelled Black and female in UTKFace'
    >>> group_phrase("race*age_band", "indian*60+", dataset="UTKFace"), group_phrase("age_band", "0-14", dataset="UTKFace")
    ('faces labelled Indian in UTKFace, aged 60+', 'faces aged 0-14')
    >>> group_phrase("database", "2004-2006", dataset="CACD")
    'faces with database 2004-2006'
    >>> group_phrase("gender", "female", dataset="AgeDB", pairs=True), group_phrase("gender", "mixed", dataset="AgeDB", pairs=True)
    ('pairs whose faces are both labelled female in AgeDB', 'pairs whose faces carry different gender labels in AgeDB')
    >>> group_phrase("pair_type*age_band", "genuine*20-29", dataset="AgeDB", pairs=True)
    'genuine pairs, the younger face aged 20-29'
    """
    labelled, mixed, aged, others, noun = [], [], "", [], "pairs" if pairs else "faces"
    for name, label in zip(attribute.split("*"), str(group).split("*"), strict=False):
        if name in ("race", "gender"):
            if pairs and label == "mixed":
                mixed.append(name)
            else:  # race labels are the dataset's category names (UTKFace: White, Black, Asian, Indian, Others)
                labelled.append(label.capitalize() if name == "race" else label)
        elif name == "age_band":
            aged = f"the younger face aged {label}" if pairs else f"aged {label}"
        elif pairs and name == "pair_type":
            noun = f"{label} pairs"
        else:
            others.append(f"{name.replace('_', ' ')} {label}")
    clauses = []
    if labelled or mixed:
        said = ([f"are both labelled {' and '.join(labelled)}"] if labelled and pairs else
                [f"labelled {' and '.join(labelled)}"] if labelled else [])
        said += [f"carry different {' and '.join(mixed)} labels"] if mixed else []
        clauses.append(("whose faces " if pairs else "") + " and ".join(said) + f" in {dataset}")
    clauses += [aged] if aged else []
    clauses += [f"with {' and '.join(others)}"] if others else []
    # The first clause qualifies the noun directly ("faces aged 0-14"), the rest follow a comma; a pair's age
    # band is the younger face's, which is an aside ("genuine pairs, the younger face aged 20-29").
    aside = aged if pairs else None
    return noun + "".join((" " if i == 0 and c != aside else ", ") + c for i, c in enumerate(clauses))


def plain_language(metric: str, attribute: str, gap: dict[str, Any], unit: str, higher_is_better: bool, *,
                   dataset: str, pairs: bool = False) -> str:
    """One sentence a non-specialist can read, e.g. "MAE for faces labelled Black in UTKFace is 2.10 years worse
    (higher) than for faces labelled White in UTKFace (95% CI 1.70–2.50; ratio 1.30)."."""
    direction = "lower" if higher_is_better else "higher"
    unit_text = f" {unit}" if unit else ""
    worst = group_phrase(attribute, gap["worst_group"], dataset=dataset, pairs=pairs)
    best = group_phrase(attribute, gap["best_group"], dataset=dataset, pairs=pairs)
    return (
        f"{metric.upper()} for {worst} is {_fmt(gap['gap'])}{unit_text} worse ({direction}) than for {best} "
        f"(95% CI {_fmt(gap['gap_ci_low'])}–{_fmt(gap['gap_ci_high'])}; ratio {_fmt(gap['ratio'])})."
    )


def _sorted_gaps(metrics: dict[str, Any], primary: str, *, dataset: str, pairs: bool) -> list[dict[str, Any]]:
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
                         "sentence": plain_language(metric, attribute, gap, metric_unit, hib, dataset=dataset,
                                                    pairs=pairs)})

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
    task = str(run.protocol["task"])
    pairs = TASKS.get(task).pair_groups if task in TASKS else False  # a plugin task not installed here: faces
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
        if series:  # every race*age_band group small: nothing to draw
            band_plot = plots.lines_by_band(series, metric=primary, unit=unit, title=f"{primary} by age band, per race")
    tests = sorted((t for t in metrics.get("group_tests", []) if t["metric"] == primary and "*" not in t["attribute"]),
                   key=lambda t: (t["p_holm"] if t["p_holm"] is not None else 2.0, -abs(t["difference"] or 0)))
    pair_view = metrics.get("differentials", {})
    views = pair_view.get("by_attribute", {})
    # Before schema 1.3 one top-level pair_rule was written, the last attribute's (it was overwritten per
    # attribute): it is shown with that attribute only.
    old_rule = {list(views)[-1]: pair_view["pair_rule"]} if views and "pair_rule" in pair_view else {}
    differentials = []
    for attribute, view in views.items():
        differentials.append({
            "attribute": attribute, "rates": view["rates"], "summary": view["summary"],
            "pair_rule": view.get("pair_rule") or old_rule.get(attribute) or "not recorded for this attribute "
                         "(results.json before schema 1.3)",
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
        "pair_intervals": pair_view.get("intervals", "wilson"),
        "comparison_set": pair_view.get("comparison_set") or "The comparisons this task scores (results.json before "
                          "schema 1.3 does not say which).",
        "name": run.name,
        "kind": run.kind,
        "results": results,
        "primary": primary,
        "unit": unit,
        "metric_names": metric_names,
        "overall": metrics["overall"],
        "attributes": attributes,
        "gaps": _sorted_gaps(metrics, primary, dataset=dataset_words(results), pairs=pairs),
        "known_answer": known_answer_view(results),
        "verdict": judge(run),
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
def dataset_words(results: dict[str, Any]) -> str:
    """How group sentences name the run's data: "UTKFace", or "synthetic UTKFace" for the generated stand-in
    (whose groups are the generator's)."""
    name = dataset_display_name(str(results["data"].get("dataset", "")))
    return f"synthetic {name}" if results["data"].get("synthetic") else name


def _shift_sentence(injected: dict[str, Any]) -> str:
    """One line naming the known-answer shift kind a synthetic run's data has, so a reader knows whether an
    adaptation method could have helped."""
    if "shift" not in injected:  # results.json from before the setting: its data was the default kind
        return "Shift kind: default (mixed appearance and ageing-rate differences)."
    return f"Shift kind: {injected['shift']} — {injected['shift_meaning']}."


def known_answer_view(results: dict[str, Any]) -> dict[str, Any] | None:
    """The run's ``synthetic_truth`` laid out for the report: per group the injected ageing rate, the oracle's
    (implied) value and the measured value, then the implied and the measured gap in words. None on real data
    (and for results.json written before schema 1.3)."""
    truth = results.get("synthetic_truth")
    if not truth:
        return None
    metric, attribute = truth["metric"], truth["attribute"]
    unit = _metric_direction(metric)[1]
    unit_text = f" {unit}" if unit else ""
    words = dataset_words(results)
    rates = truth["injected"]["aging_rate"]
    implied = truth.get("implied") or {}
    measured_groups = results["metrics"]["by_group"].get(attribute, {})
    groups = [g for g in measured_groups if g in rates] + [g for g in rates if g not in measured_groups]
    rows = [{"group": g, "rate": rates.get(g), "implied": (implied.get("by_group") or {}).get(g, {}).get("value"),
             "measured": measured_groups.get(g, {}).get(metric)} for g in groups]

    def gap_sentence(gap: dict[str, Any] | None, what: str) -> str:
        if attribute not in results["metrics"]["by_group"]:
            return f"{what}: none ({attribute} is not one of this protocol's group attributes)."
        if not gap or gap.get("gap") is None:
            return f"{what}: none (fewer than two {attribute} groups large enough to compare)."
        interval = (f" [95% interval {_fmt(gap['gap_ci_low'])}–{_fmt(gap['gap_ci_high'])}]"
                    if "gap_ci_low" in gap else "")
        worst = group_phrase(attribute, gap["worst_group"], dataset=words)
        best = group_phrase(attribute, gap["best_group"], dataset=words)
        return (f"{what}: {_fmt(gap['gap'])}{unit_text}{interval}, {metric} {_fmt(gap['worst_value'])} for {worst} "
                f"against {_fmt(gap['best_value'])} for {best}.")

    return {
        "metric": metric, "attribute": attribute, "rule": truth["injected"]["rule"],
        "labels": truth["injected"]["labels"], "rows": rows,
        # results.json before the known-answer shifts carries no shift: its data was the default, mixed kind
        "shift": _shift_sentence(truth["injected"]),
        "oracle": implied.get("oracle") if implied else None,
        "implied": (gap_sentence(implied, "Implied gap (oracle)") if implied
                    else f"Implied gap: not derived — {truth.get('implied_reason')}."),
        "measured": gap_sentence(truth.get("measured"), "Measured gap"),
    }


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


def reference_rows(runs: list[Run], reference: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The published numbers, each with its comparability verdicts (:func:`facebench.comparability.judge`):
    one line per distinct verdict, naming the runs it is for when the runs differ."""
    rows = []
    for row in reference:
        verdicts: dict[str, list[str]] = {}
        for run in runs:
            verdicts.setdefault(judge(run, row).line, []).append(run.name)
        lines = [{"text": text, "comparable": not text.startswith("reference only"),
                  "runs": names if len(verdicts) > 1 else []} for text, names in verdicts.items()]
        rows.append({**row, "verdicts": lines})
    return rows


def paper_table(runs: list[Run], reference: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The paper's table layout: one column per (metric, split, group) of the published numbers that name a
    ``method``, one row per published method, then one row per run with our value and interval in the same
    cell positions and the run's comparability verdict. ``split: source_val`` reads ``results.splits``; a
    ``group`` reads ``metrics.by_group``."""
    entries = [r for r in reference if r.get("method")]
    if not entries:
        return None
    columns: list[tuple[str, str, str | None]] = []
    for r in entries:
        key = (r["metric"], r.get("split", "test"), r.get("group"))
        if key not in columns:
            columns.append(key)

    def ours(results: dict[str, Any], metric: str, split: str, group: str | None) -> dict[str, Any] | None:
        if split not in ("test", "target"):  # an extra split: seed 000's source_val, seed 001's source
            return (results.get("splits") or {}).get(split, {}).get(metric)
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
    measured = []
    for run in runs:
        baseline = run.results["baseline"]
        verdict = judge(run)
        measured.append({"name": run.name, "matches": {baseline["name"], run.name},
                         "synthetic": run.synthetic, "verdict": verdict.line, "comparable": verdict.comparable,
                         "cells": [ours(run.results, *c) for c in columns]})
    # Repeats (protocol.repeats, seed 001's n = 5): one more row per baseline, the mean over its runs with a t
    # interval over the repeats, beside each run's own bootstrap interval.
    by_name: dict[str, list[dict[str, Any]]] = {}
    for row in measured:
        by_name.setdefault(row["name"], []).append(row)
    for name, rows in by_name.items():
        if len(rows) > 1:
            cells = [repeat_interval([r["cells"][k]["value"] for r in rows if r["cells"][k]]) for k in range(len(columns))]
            measured.append({**rows[0], "name": f"{name}: mean of {len(rows)} repeats (t interval over repeats)",
                             "cells": cells})
    measured.sort(key=lambda r: r["name"])
    headers = [" ".join(x for x in (metric, "(source val)" if split == "source_val" else
                                   "(source)" if split == "source" else "",
                                   group.partition("=")[2] if group else "overall") if x) for metric, split, group in columns]
    return {"headers": headers, "published": published, "measured": measured}


def repeat_interval(values: list[float | None], confidence: float = 0.95) -> dict[str, Any] | None:
    """Mean of a run's repeats with the t interval over them (:func:`facebench.metrics.intervals.t_interval`); the
    interval is missing with one repeat.

    >>> r = repeat_interval([0.6, 0.7, 0.8]); round(r["value"], 3), round(r["ci_low"], 3), round(r["ci_high"], 3)
    (0.7, 0.452, 0.948)
    """
    finite = [float(v) for v in values if v is not None]
    if not finite:
        return None
    mean, low, high = t_interval(finite, confidence=confidence)
    if len(finite) < 2:
        return {"value": mean, "ci_low": None, "ci_high": None, "n": 1}
    return {"value": mean, "ci_low": low, "ci_high": high, "n": len(finite)}


def _difference(a: dict[str, Any] | None, b: dict[str, Any] | None, z: float = 1.959964) -> dict[str, Any] | None:
    """``a − b`` of two independent scores (source and target images), with a normal interval whose standard
    errors are read off each score's own 95 % interval (half-width / z)."""
    if not a or not b or a.get("value") is None or b.get("value") is None:
        return None
    def se(v: dict[str, Any]) -> float | None:
        return None if v.get("ci_low") is None or v.get("ci_high") is None else (v["ci_high"] - v["ci_low"]) / (2 * z)
    value = a["value"] - b["value"]
    sa, sb = se(a), se(b)
    if sa is None or sb is None:
        return {"value": value, "ci_low": None, "ci_high": None}
    half = z * (sa**2 + sb**2) ** 0.5
    return {"value": value, "ci_low": value - half, "ci_high": value + half}


#: What the race-transfer report says about its labels and why the protocol exists (seed 001 section 2).
RACE_TRANSFER_STATEMENT = (
    "What the labels are: race labels that annotators assigned from the photo (UTKFace's and FairFace's labels; for "
    "CelebA, which has none, the annotation file named in the protocol's dataset options), not how the people "
    "pictured identify themselves. The two classes, White against every other category, are the paper's grouping "
    "(seed 001 section 2.1), not a claim that the categories are natural kinds. Why the protocol exists: seed 001 asks "
    "whether a classifier trained on one dataset learns a concept of race that holds on another, since such "
    "classifiers are used to pick 'racially diverse' subsets of unlabelled data; a large drop from source to target "
    "accuracy, and who it falls on, is the measurement.")


def transfer_view(runs: list[Run]) -> dict[str, Any] | None:
    """Seed 001's view of a race_classification protocol: per baseline, source and target accuracy (mean over
    repeats with the t interval over repeats, and each run's own bootstrap interval), source − target, the epochs
    to convergence of each training stage, and whether the paper's direction holds (target below source by an
    interval that excludes zero; the in-domain benchmark between them). None for other tasks."""
    from facebench.tasks.race_classification import epochs_to_convergence

    if not runs or runs[0].protocol.get("task") != "race_classification":
        return None
    rows: dict[str, dict[str, Any]] = {}
    for run in runs:
        results = run.results
        source = (results.get("splits") or {}).get("source", {}).get("accuracy")
        target = results["metrics"]["overall"].get("accuracy")
        epochs = (results.get("training") or {}).get("epochs") or []
        convergence = {stage: epochs_to_convergence([e.get("train_loss") for e in epochs if e.get("stage") == stage])
                       for stage in dict.fromkeys(e.get("stage") for e in epochs if e.get("stage"))}
        row = rows.setdefault(run.name, {"name": run.name, "runs": [], "in_domain": bool(
            (results["baseline"].get("train_data") or {}).get("in_domain"))})
        row["runs"].append({"seed": (results.get("provenance") or {}).get("seed"), "source": source, "target": target,
                            "difference": _difference(source, target), "convergence": convergence,
                            "fairness": ((results["metrics"].get("differentials") or {}).get("fairness") or {}),
                            "confusion": ((results["metrics"].get("differentials") or {}).get("confusion") or {})})
    for row in rows.values():
        for key in ("source", "target"):
            row[key] = repeat_interval([(r[key] or {}).get("value") for r in row["runs"]])
        row["difference"] = repeat_interval([(r["difference"] or {}).get("value") for r in row["runs"]])
        stages = dict.fromkeys(s for r in row["runs"] for s in r["convergence"])
        row["convergence"] = {s: repeat_interval([r["convergence"].get(s) for r in row["runs"]]) for s in stages}
        d = row["difference"]
        if d and d.get("ci_low") is not None:
            row["direction"] = ("target below source (interval over repeats excludes 0)" if d["ci_low"] > 0 else
                                "target above source (interval excludes 0)" if d["ci_high"] < 0 else
                                "no clear difference (interval over repeats includes 0)")
        else:
            per_run = [r["difference"] for r in row["runs"] if r["difference"] and r["difference"]["ci_low"] is not None]
            row["direction"] = ("target below source (the run's interval excludes 0)" if per_run and
                                all(x["ci_low"] > 0 for x in per_run) else "not settled by one run")
    benchmark = next((r for r in rows.values() if r["in_domain"]), None)
    between = None
    if benchmark and benchmark["target"]:
        lines = []
        for row in rows.values():
            if row is benchmark or not row["source"] or not row["target"]:
                continue
            inside = row["target"]["value"] < benchmark["target"]["value"] < row["source"]["value"]
            lines.append(f"{row['name']}: target {row['target']['value']:.3f} "
                         f"{'<' if benchmark['target']['value'] > row['target']['value'] else '≥'} in-domain "
                         f"{benchmark['target']['value']:.3f} "
                         f"{'<' if benchmark['target']['value'] < row['source']['value'] else '≥'} source "
                         f"{row['source']['value']:.3f}{' (the paper direction)' if inside else ''}")
        between = lines
    annotations = runs[0].results["data"].get("annotations")
    return {"rows": list(rows.values()), "benchmark": benchmark["name"] if benchmark else None, "between": between,
            "statement": RACE_TRANSFER_STATEMENT, "annotations": annotations,
            "synthetic": any(r.synthetic for r in runs)}


def render_report(runs: list[Run], *, real_faces: bool = False) -> str:
    """The per-protocol report page (HTML) for ``runs``, the runs of one protocol. Generated-face grids of real data
    are left out unless ``real_faces`` (:mod:`facebench.reports.generation`)."""
    from facebench.reports.generation import generation_view

    first = runs[0].results
    views = [run_view(r) for r in runs]
    present = {g for v in views for g in v["race_primary"]}
    races = [r for r in RACES if r in present] + sorted(present - set(RACES))
    return environment().get_template("report.html.j2").render(
        protocol=first["protocol"], data=first["data"], synthetic=any(r.synthetic for r in runs),
        runs=views, races=races, reference=reference_rows(runs, first.get("reference", [])),
        changes=changes_against_reference(runs), paper=paper_table(runs, first.get("reference", [])),
        transfer=transfer_view(runs), generation=generation_view(runs, real_faces=real_faces),
        csp=content_security_policy(), script=None,
    )


def write_protocol_report(folder: Path, *, real_faces: bool = False) -> Path:
    """Render ``folder/report.html`` from the run directories in ``folder``; return its path. ``real_faces``: show the
    generated-face sample grids of runs on real data too (``facebench report --show-real-faces``)."""
    runs = load_runs(folder)
    path = Path(folder) / "report.html"
    write_text(path, render_report(runs, real_faces=real_faces))
    return path
