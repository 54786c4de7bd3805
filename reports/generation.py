"""The report's section for the ``face_generation`` task (seed 001 section 3, seed 004): sample grids, realism,
edit success, identity and ageing per group, the gaps between groups in plain sentences, and what the judges are.

Sample grids show faces: the source face and its edits. They are shown for synthetic data only, unless the report is
built with ``real_faces=True`` (``facebench report --show-real-faces``): a report must not carry real-dataset faces
by default.
"""

from __future__ import annotations

import base64
from typing import Any

from facebench.metrics import get_metric
from facebench.results import Run

__all__ = ["gap_sentence", "generation_view"]

#: Largest grid image inlined into a report.
MAX_GRID_BYTES = 4 * 1024 * 1024


def _number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}g}" if abs(value) < 0.01 and value != 0 else f"{value:.{digits}f}"


def gap_sentence(metric: str, attribute: str, gap: dict[str, Any]) -> str:
    """One plain sentence for the gap between the worst and best group of ``attribute`` on ``metric``.

    >>> gap_sentence("kid@verifier", "domain", {"worst_group": "CelebO", "best_group": "CelebC", "worst_value": 0.02,
    ...              "best_value": 0.01, "gap": 0.01, "gap_ci_low": 0.004, "gap_ci_high": 0.016})   # doctest: +ELLIPSIS
    'kid@verifier (lower is better): the CelebO faces score 0.020, the CelebC faces 0.010; CelebO is worse by 0.010 (95 % interval 0.004 to 0.016), an interval that excludes 0.'
    """
    spec = get_metric(metric)
    direction = "higher is better" if spec.higher_is_better else "closer to 0 is better" if spec.worst_by_abs \
        else "lower is better"
    low, high = gap.get("gap_ci_low"), gap.get("gap_ci_high")
    if low is None or high is None:
        verdict = "no interval could be computed"
    elif low > 0 or high < 0:
        verdict = "an interval that excludes 0"
    else:
        verdict = "an interval that includes 0: no gap is established at this size"
    interval = f" (95 % interval {_number(low)} to {_number(high)})" if low is not None else ""
    return (f"{metric} ({direction}): the {gap['worst_group']} faces score {_number(gap['worst_value'])}, the "
            f"{gap['best_group']} faces {_number(gap['best_value'])}; {gap['worst_group']} is worse by "
            f"{_number(gap['gap'])}{interval}, {verdict}.")


def _cell(value: dict[str, Any] | None) -> dict[str, str]:
    """A per-group value as text: value, interval and n (a flag for small groups)."""
    if not value or value.get("value") is None:
        return {"value": "—", "interval": "", "n": ""}
    interval = (f"[{_number(value.get('ci_low'))}, {_number(value.get('ci_high'))}]"
                if value.get("ci_low") is not None else "")
    n = f"n={value.get('n')}" + (f", {value.get('n_units')} people" if value.get("n_units") else "")
    return {"value": _number(value["value"]), "interval": interval,
            "n": n + (" (small)" if value.get("flag") == "small" else "")}


def _grids(run: Run, show: bool) -> list[dict[str, str]]:
    folder = run.folder / "samples"
    if not show or not folder.is_dir():
        return []
    columns_file = folder / "grid_columns.txt"
    columns = columns_file.read_text(encoding="utf-8").split("\n") if columns_file.is_file() else []
    grids = []
    for path in sorted(folder.glob("grid-*.png")):
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_GRID_BYTES:
            continue
        grids.append({"name": path.stem.removeprefix("grid-"), "columns": ", ".join(c for c in columns if c),
                      "uri": "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")})
    return grids


def generation_view(runs: list[Run], *, real_faces: bool = False) -> dict[str, Any] | None:
    """The generation section's data (None for other tasks): per run the sample grids (synthetic data, or
    ``real_faces``), per-group tables of every metric, the gap sentences for the domain (or race) and gender, the
    ageing table (Table 1's layout: the real target group's mean estimated age and ours) and the judges."""
    if not runs or runs[0].protocol.get("task") != "face_generation":
        return None
    views = []
    for run in runs:
        metrics = run.results["metrics"]
        by_group = metrics["by_group"]
        view = metrics.get("differentials") or {}
        names = list(metrics["overall"])
        domain = "domain" if "domain" in by_group else "race"
        tables = []
        for attribute in (domain, "gender", f"{domain}*gender", "edit", "source_group*target_group"):
            groups = by_group.get(attribute)
            if groups:
                tables.append({"attribute": attribute, "metrics": names,
                               "rows": [{"group": g, "values": [_cell(values.get(m)) for m in names]}
                                        for g, values in groups.items()]})
        sentences = [gap_sentence(metric, attribute, gap)
                     for metric, per_attribute in metrics["disparities"].items()
                     for attribute, gap in per_attribute.items() if attribute in (domain, "gender")]
        ageing = None
        generic = view.get("generic_ages")
        if generic and "target_group" in by_group:
            ageing = []
            for group, values in by_group["target_group"].items():
                offset = values.get("aging_offset")
                base = generic.get(group)
                if offset is None or base is None or offset.get("value") is None:
                    continue
                shift = {k: (None if offset.get(k) is None else base + offset[k]) for k in ("value", "ci_low", "ci_high")}
                ageing.append({"group": group, "generic": base, "ours": shift, "offset": offset})
        show = run.synthetic or real_faces
        views.append({"name": run.name, "grids": _grids(run, show), "hidden": not show and (run.folder / "samples").is_dir(),
                      "tables": tables, "sentences": sentences, "ageing": ageing,
                      "threshold": view.get("verifier_threshold"), "judges": view.get("judges"),
                      "manifest": (run.folder / "samples" / "study_manifest.csv").is_file(),
                      "folder": run.folder.name})
    return {"runs": views, "synthetic": any(r.synthetic for r in runs)}
