"""The markdown summary of a comparison, fit for a pull-request comment."""

from __future__ import annotations

import math
from typing import Any

from facebench.comparison.verdict import Comparison, by_harm
from facebench.metrics import get_metric

__all__ = ["render_markdown"]


def _md(text: Any) -> str:
    """Text safe inside a markdown table cell or a code span."""
    return str(text).replace("`", "'").replace("|", "\\|").replace("\n", " ")


def _fmt(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _signed(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{x:+.3f}"


def _p(p: float) -> str:
    return "—" if not math.isfinite(p) else f"{p:.2g}"


def _change(diff: float, low: float, high: float) -> str:
    return f"{_signed(diff)}, 95% CI {_signed(low)} to {_signed(high)}"


def _verdict(*, significant: bool, worse: bool, better: str, worse_word: str) -> str:
    if not significant:
        return "no significant change"
    return f"❌ significantly {worse_word}" if worse else f"✅ significantly {better}"


def _reasons(c: Comparison) -> list[str]:
    """One markdown sentence per reason to fail."""
    out = []
    for m in c.metrics:
        if m.overall_regressed:
            change = _change(m.overall.difference, m.overall.ci_low, m.overall.ci_high)
            out.append(f"`{m.metric}` is significantly worse overall: {_fmt(m.reference)} → "
                       f"{_fmt(m.candidate)} ({change}).")
        for a in m.gap_regressions:
            g = a.gap
            out.append(f"The `{m.metric}` gap across `{_md(a.attribute)}` is significantly larger: "
                       f"{_fmt(g.gap_a)} → {_fmt(g.gap_b)} ({_change(g.difference, g.ci_low, g.ci_high)}; "
                       f"Holm-adjusted p = {_p(g.p_holm)} across the attributes).")
        for a in m.attributes:
            if a.regressed_groups:
                named = ", ".join(f"**{_md(a.attribute)} = {_md(g.group)}** ({_signed(g.difference)}, "
                                  f"Holm-adjusted p = {_p(g.p_holm)})" for g in by_harm(a.regressed_groups))
                out.append(f"`{m.metric}` is significantly worse for {named}.")
    for gate in c.gates:
        if not gate.passed and gate.kind != "no_significant_regression":  # its regressions are listed above
            target = f"`{_md(gate.metric)}`" + (f", `{_md(gate.attribute)}`" if gate.attribute else "")
            observed = "undefined" if gate.observed is None else _fmt(gate.observed)
            out.append(f"Gate `{gate.kind}` ({target} {gate.rule}) is broken: {observed}.")
    return out


#: Whose labels the groups are: the reports' glossary says the same (facebench.reports.bias_report.GLOSSARY).
GROUP_LABELS = ("Groups are each dataset's own categories (`race = black`: the images the dataset's annotators "
                "labelled Black), not how the people pictured identify themselves.")


def render_markdown(comparison: Comparison) -> str:
    """The summary for a pull-request comment: verdict, reasons, tables, gates, method and notes."""
    c, cand, ref = comparison, comparison.candidate, comparison.reference
    primary = get_metric(cand.protocol["primary_metric"])
    lines = [
        f"## {'✅' if c.passed else '❌'} facebench compare: {'PASS' if c.passed else 'FAIL'}", "",
        f"**Candidate** `{_md(cand.name)}` vs **reference** `{_md(ref.name)}` "
        f"(`{_md(ref.results_path.parent.name)}`)", "",
        f"Protocol `{_md(cand.protocol['name'])}` v{_md(cand.protocol['version'])} "
        f"(task `{_md(cand.protocol['task'])}`, primary metric `{primary.name}`, "
        f"{'higher' if primary.higher_is_better else 'lower'} is better) · data "
        f"`{_md(cand.data.get('dataset', '?'))}` `{_md(str(cand.data['fingerprint'])[:12])}` · split "
        f"`{_md(str(cand.data['split_fingerprint'])[:12])}` · {c.n_rows} paired rows "
        f"(by {' + '.join(c.keys)})",
        "",
    ]
    if cand.synthetic or ref.synthetic:
        lines += ["> **SYNTHETIC data**: these runs were scored on facebench's synthetic faces; the numbers "
                  "test the pipeline, not real people.", ""]
    reasons = _reasons(c)
    lines += (["**Why it fails**", "", *[f"- {r}" for r in reasons], ""] if reasons
              else ["No significant regression, and every gate holds.", ""])

    lines += ["### Overall", "", "| metric | reference | candidate | change (95% CI) | verdict |",
              "|---|---:|---:|---|---|"]
    for m in c.metrics:
        verdict = _verdict(significant=m.overall.significant, worse=m.worse, better="better",
                           worse_word="worse")
        lines.append(f"| `{m.metric}` ({'higher' if m.higher_is_better else 'lower'} is better) | "
                     f"{_fmt(m.reference)} | {_fmt(m.candidate)} | "
                     f"{_change(m.overall.difference, m.overall.ci_low, m.overall.ci_high)} | {verdict} |")
    lines.append("")

    attributes = [(m, a) for m in c.metrics for a in m.attributes]
    if attributes:
        lines += ["### Worst-vs-best gaps", "", GROUP_LABELS, "",
                  "| metric | attribute | reference gap (worst vs best) | candidate gap (worst vs best) "
                  "| change (95% CI) | p (Holm) | verdict |", "|---|---|---|---|---|---:|---|"]
        for m, a in attributes:
            g = a.gap
            if g is None:
                lines.append(f"| `{m.metric}` | {_md(a.attribute)} | — | — | — | — | fewer than two groups "
                             "|")
                continue
            verdict = _verdict(significant=g.p_holm < g.alpha, worse=g.difference > 0, better="smaller",
                               worse_word="larger")
            lines.append(f"| `{m.metric}` | {_md(a.attribute)} | {_fmt(g.gap_a)} ({_md(g.worst_a)} vs "
                         f"{_md(g.best_a)}) | {_fmt(g.gap_b)} ({_md(g.worst_b)} vs {_md(g.best_b)}) | "
                         f"{_change(g.difference, g.ci_low, g.ci_high)} | {_p(g.p_holm)} | {verdict} |")
        lines += ["", "### Groups significantly worse", ""]
        worse = [(m, attribute, g) for m in c.metrics for attribute, g in m.group_regressions]
        for m, attribute, g in worse:
            change = _change(g.difference, g.ci_low, g.ci_high)
            lines.append(f"- **{_md(attribute)} = {_md(g.group)}** (`{m.metric}`, n = {g.n}): "
                         f"{_fmt(g.value_a)} → {_fmt(g.value_b)}, {change}, "
                         f"Holm-adjusted p = {_p(g.p_holm)}")
        if not worse:
            lines.append("None: no group is significantly worse (Holm-adjusted p < 0.05 within each "
                         "attribute).")
        lines += ["", "<details><summary>Every group</summary>", "",
                  "| metric | attribute | group | n | reference | candidate | change (95% CI) | p (Holm) |",
                  "|---|---|---|---:|---:|---:|---|---:|"]
        for m, a in attributes:
            for g in a.groups:
                mark = " ❌" if g.regressed else (" ✅" if g.significant else "")
                lines.append(f"| `{m.metric}` | {_md(a.attribute)} | {_md(g.group)} | {g.n} | "
                             f"{_fmt(g.value_a)} | {_fmt(g.value_b)} | "
                             f"{_change(g.difference, g.ci_low, g.ci_high)} | {_p(g.p_holm)}{mark} |")
        lines += ["", "</details>", ""]

    lines += ["### Gates", ""]
    if c.gates:
        lines += [f"From `{_md(c.gate_file)}`. A gate compares the candidate's point estimate (as in its "
                  "results.json) with its bound; intervals do not enter, and an undefined value breaks the "
                  "gate.", "", "| gate | metric | attribute | rule | candidate | verdict |",
                  "|---|---|---|---|---:|---|"]
        for gate in c.gates:
            observed = ("—" if gate.kind == "no_significant_regression"
                        else "undefined" if gate.observed is None else _fmt(gate.observed))
            lines.append(f"| `{gate.kind}` | `{_md(gate.metric)}` | {_md(gate.attribute or '—')} | "
                         f"{gate.rule} | {observed} | {'✅ pass' if gate.passed else '❌ broken'} |")
    else:
        lines.append("No gate file: only the significance check of the primary metric applies.")
    lines += ["", "### Method", "",
              f"Paired bootstrap on per-sample outcomes ({c.n_boot} resamples, seed {c.seed}, "
              f"{c.confidence:.0%} percentile intervals): overall, all rows resampled; per group, rows "
              "resampled within the group; the same rows for both runs. The overall change is significant "
              "when its interval excludes 0; per-group p-values are bootstrap p-values, Holm-adjusted across "
              "each attribute's groups; gap p-values are Holm-adjusted across the attributes. Gaps are "
              "|worst − best|, each run with its own worst and best groups.",
              ""]
    if c.notes:
        lines += ["**Notes**", "", *[f"- {_md(n)}" for n in c.notes], ""]
    lines.append(f"<sub>candidate `{_md(cand.results_path)}` · reference `{_md(ref.results_path)}`</sub>")
    return "\n".join(lines) + "\n"
