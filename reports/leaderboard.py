"""``facebench leaderboard RUNS_DIR... --out SITE``: a static, offline leaderboard site.

The site is built from ``results.json`` documents only (never from images) and works from ``file://``:

- ``index.html`` — one row per protocol, with its best entry on the primary metric;
- ``protocols/<protocol>/index.html`` — a sortable table of the protocol's baselines and submissions (primary
  metric with interval and ``n``, worst group, largest gap with its interval; baseline runs that differ only by
  seed share one row, with the mean and t interval over seeds and a list of the seed runs; each row says whether
  the paper's published numbers may be read against it, or every reason they may not) and the published
  reference numbers beside them, each marked comparable or "reference only" with the reason
  (:func:`facebench.comparability.judge`);
- ``protocols/<protocol>/<run>.html`` — the run's bias report, laid out by the same macros as the
  per-protocol report (:mod:`facebench.reports.bias_report`);
- ``runs/<protocol>/<run>/results.json`` and ``outcomes.csv`` — copies of each run's files, and
  ``manifest.json`` listing them: the data contract ``facebench compare --leaderboard SITE`` reads
  (see :data:`MANIFEST_SCHEMA` and :func:`build_site`).

Safety: every string from a results file is escaped by jinja2's autoescaping and the one script (column
sorting, ``static/sortable.js``) never uses ``innerHTML``; a Content-Security-Policy forbids every other
script and all network access. Links are relative paths that facebench makes from sanitised names
(:func:`safe_name`), never paths read from a results file. The site is built in a temporary folder next to
SITE and renamed into place at the end, so a failure leaves the previous site (or nothing) behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facebench.comparability import judge
from facebench.errors import UserInputError
from facebench.io import replace_folder, write_json, write_text
from facebench.progress import track
from facebench.reports.bias_report import (
    changes_against_reference,
    content_security_policy,
    environment,
    paper_table,
    reference_rows,
    run_view,
)
from facebench.reports.over_seeds import group_by_seed, over_seeds, worst_group
from facebench.results import Run, load_run, read_json

#: ``manifest.json``'s ``schema``; bump on any incompatible change of the manifest or the ``runs/`` layout.
MANIFEST_SCHEMA = "facebench-leaderboard/1"

#: The column-sorting script, inlined into the pages that have sortable tables.
SORT_SCRIPT = (Path(__file__).resolve().parent / "static" / "sortable.js").read_text(encoding="utf-8")

def safe_name(name: str) -> str:
    """A file or folder name made from ``name`` that cannot leave its parent folder or surprise a shell.

    Anything but letters, digits, ``.``, ``_`` and ``-`` becomes ``_``; leading dots are dropped (no ``..``,
    no hidden files); the result is at most 100 characters and never empty.

    >>> safe_name("submission-<script>alert(1)</script>")
    'submission-_script_alert_1_script_'
    >>> safe_name("../../etc"), safe_name(".."), safe_name("")
    ('_.._etc', '_', '_')
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).lstrip(".")[:100]
    return cleaned or "_"


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... whichever is not in ``taken`` yet (it is added to ``taken``)."""
    candidate, counter = name, 1
    while candidate in taken:
        counter += 1
        candidate = f"{name}-{counter}"
    taken.add(candidate)
    return candidate


@dataclass(frozen=True, kw_only=True)
class SiteEntry:
    """One run (:class:`facebench.results.Run`) and its place in the site."""

    run: Run
    protocol_slug: str         # the protocol's folder name in the site
    slug: str                  # the run's folder/page name in the site, unique within its protocol

    @property
    def protocol(self) -> str:
        return str(self.run.protocol["name"])

    @property
    def ranking(self) -> tuple[str, str]:
        """Runs share a ranking only when they share protocol name and version (a new version may change the
        test set, the metric or the procedure: its numbers are not comparable with the old ones)."""
        return str(self.run.protocol["name"]), str(self.run.protocol["version"])

    @property
    def page(self) -> str:
        """The run report's path relative to the site root."""
        return f"protocols/{self.protocol_slug}/{self.slug}.html"

    @property
    def files_dir(self) -> str:
        """The folder of the run's copied files, relative to the site root."""
        return f"runs/{self.protocol_slug}/{self.slug}"


# ----------------------------------------------------------------------------------------------- reading runs
def find_results(folders: Sequence[Path], *, exclude: Path | None = None) -> list[Path]:
    """Every ``results.json`` under ``folders`` (recursively), each file once, in path order.

    Hidden folders (a name starting with ``.``, such as an interrupted build's temporary site) are skipped,
    and so is ``exclude`` (the site being rebuilt, which holds copies of the runs) unless a folder lies
    inside it.
    """
    exclude = exclude.resolve() if exclude is not None else None
    found: dict[Path, None] = {}
    for folder in folders:
        folder = Path(folder)
        if not folder.exists():
            raise UserInputError(f"Run folder {folder} does not exist.")
        if not folder.is_dir():
            raise UserInputError(f"{folder} is not a folder of run directories.")
        root = folder.resolve()
        skip = exclude if exclude is not None and not root.is_relative_to(exclude) else None
        for path in sorted(root.rglob("results.json")):
            relative_parts = path.relative_to(root).parts[:-1]
            if any(part.startswith(".") for part in relative_parts):
                continue
            if skip is not None and path.is_relative_to(skip):
                continue
            found[path] = None
    if not found:
        raise UserInputError(f"No results.json found under {', '.join(str(f) for f in folders)}.")
    return list(found)


def collect_runs(folders: Sequence[Path], *, exclude: Path | None = None) -> list[SiteEntry]:
    """Read and check every run under ``folders`` and give each a unique, safe place in the site."""
    runs = [load_run(path) for path in find_results(folders, exclude=exclude)]
    versions: dict[str, set[str]] = {}
    for run in runs:
        versions.setdefault(str(run.protocol["name"]), set()).add(str(run.protocol["version"]))
    protocol_slugs: dict[tuple[str, str], str] = {}
    taken_protocols: set[str] = set()
    taken_runs: dict[str, set[str]] = {}
    entries = []
    for run in runs:
        name, version = str(run.protocol["name"]), str(run.protocol["version"])
        if (name, version) not in protocol_slugs:  # one table per protocol version
            label = name if len(versions[name]) == 1 else f"{name}-v{version}"
            protocol_slugs[(name, version)] = _unique(safe_name(label), taken_protocols)
        slug = protocol_slugs[(name, version)]
        # Two folders may hold run directories of the same name (e.g. runs copied from two machines).
        entries.append(SiteEntry(run=run, protocol_slug=slug,
                                 slug=_unique(safe_name(run.folder.name), taken_runs.setdefault(slug, set()))))
    return entries


# ------------------------------------------------------------------------------------------ leaderboard rows
def _badness(metric: str, value: float | None) -> float:
    """How bad ``value`` is for ``metric`` (lower is better; a missing value is worst), for ranking."""
    from facebench.metrics import get_metric

    if value is None:
        return float("inf")
    return float(get_metric(metric).badness([value])[0])


def _direction(metric: str) -> str:
    """How to read ``metric``: "lower is better", "higher is better" or "closer to 0 is better"."""
    from facebench.metrics import get_metric

    spec = get_metric(metric)
    if spec.worst_by_abs:
        return "closer to 0 is better"
    return "higher is better" if spec.higher_is_better else "lower is better"


def _pick_attribute(by_attribute: dict[str, Any]) -> str | None:
    """The attribute of the "worst group" column: race when the run has it, else its first attribute."""
    if "race" in by_attribute:
        return "race"
    singles = [a for a in by_attribute if "*" not in a]
    return (singles or list(by_attribute) or [None])[0]


def against_paper(runs: Sequence[Run]) -> dict[str, Any]:
    """Whether the paper's published numbers may be read against these runs (one row of the table: one run, or
    runs that differ only by seed), by the run-level rule of :func:`facebench.comparability.judge`:
    ``comparable``, ``text`` (the verdict's one line: "comparable" or "reference only: <every reason>") and
    ``reasons``. The reasons of all the runs are joined, so a seed group is comparable only when every seed's run
    is."""
    verdicts = [judge(run) for run in runs]
    reasons = list(dict.fromkeys(reason for verdict in verdicts for reason in verdict.reasons))
    if reasons:
        return {"comparable": False, "text": "reference only: " + "; ".join(reasons), "reasons": reasons}
    return {"comparable": True, "text": verdicts[0].line, "reasons": []}


def leaderboard_row(entry: SiteEntry) -> dict[str, Any]:
    """One row of a protocol's table: primary metric, worst group, largest gap, data, provenance, and whether
    the paper's numbers are comparable with it."""
    run = entry.run
    metrics = run.results["metrics"]
    disparities = metrics["disparities"].get(run.primary_metric, {})
    attribute = _pick_attribute(disparities)
    worst = None
    if attribute is not None and disparities[attribute].get("worst_group") is not None:
        worst = {"attribute": attribute, **disparities[attribute]}
    # The largest gap over the protocol's attributes; intersections (often tiny groups) are on the run page.
    gaps = [{"attribute": a, **d} for a, d in disparities.items()
            if "*" not in a and d.get("gap") is not None]
    largest = max(gaps, key=lambda d: d["gap"], default=None)
    return {
        "run": entry,
        "name": run.name,
        "kind": run.kind,
        "primary": run.primary_value,
        "worst": worst,
        "largest_gap": largest,
        "seeds": [],  # one run: see seed_group_row for runs that differ only by seed
        "synthetic": run.synthetic,
        "data_fingerprint": str(run.results["data"].get("fingerprint") or "")[:8],
        "profile": run.results["protocol"].get("profile", ""),
        "created": str((run.results.get("provenance") or {}).get("created_at") or "")[:10],
        "against_paper": against_paper([run]),
    }


def seed_group_row(entries: list[SiteEntry]) -> dict[str, Any]:
    """One row for runs that differ only by seed (:mod:`facebench.reports.over_seeds`): the primary metric's mean
    with the t interval over seeds, the worst group and the largest gap averaged over seeds (the gap with its t
    interval), and ``seeds``: each run's page, seed, value and own bootstrap interval."""
    runs = [entry.run for entry in entries]
    summary = over_seeds(runs)
    attribute = _pick_attribute(runs[0].results["metrics"]["disparities"].get(runs[0].primary_metric, {}))
    sizes = {row["n"] for row in summary.per_run}
    gap = summary.largest_gap
    return {
        "run": entries[0],
        "name": runs[0].name,
        "kind": runs[0].kind,
        "primary": {**(summary.primary or {}), "n": sizes.pop() if len(sizes) == 1 else None},
        "seeds": [{"slug": entry.slug, **row} for entry, row in zip(entries, summary.per_run, strict=True)],
        "worst": worst_group(runs, attribute) if attribute is not None else None,
        "largest_gap": None if gap is None else {"attribute": gap["attribute"], "gap": gap["value"],
                                                 "gap_ci_low": gap["ci_low"], "gap_ci_high": gap["ci_high"]},
        "synthetic": any(run.synthetic for run in runs),
        "data_fingerprint": str(runs[0].results["data"].get("fingerprint") or "")[:8],
        "profile": runs[0].results["protocol"].get("profile", ""),
        "created": max(str((run.results.get("provenance") or {}).get("created_at") or "")[:10] for run in runs),
        "against_paper": against_paper(runs),
    }


def _name_variants(rows: list[dict[str, Any]]) -> None:
    """Rows that share a name (one baseline at several settings, e.g. a sweep's grid points) get ``variant``: the
    ``--set``/``--grid`` overrides that tell them apart; every other row gets an empty one."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_name.setdefault(row["name"], []).append(row)
    for same in by_name.values():
        settings = [set(row["run"].run.protocol.get("overrides") or []) for row in same]
        common = set.intersection(*settings) if len(same) > 1 else settings[0]
        for row, own in zip(same, settings, strict=True):
            row["variant"] = ", ".join(sorted(own - common))


def protocol_table(entries: list[SiteEntry]) -> list[dict[str, Any]]:
    """The rows of one protocol's table, best first on the primary metric, each with its ``rank``. Baseline runs
    that differ only by seed share one row (:func:`seed_group_row`)."""
    def best_first(row: dict[str, Any]) -> tuple[float, str]:
        return _badness(row["run"].run.primary_metric, row["primary"].get("value")), row["name"]

    rows = [leaderboard_row(group[0]) if len(group) == 1 else seed_group_row(group)
            for group in group_by_seed(entries, run_of=lambda entry: entry.run)]
    _name_variants(rows)
    rows.sort(key=best_first)
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


# ---------------------------------------------------------------------------------------------- writing
def _page(template: str, *, script: str | None = None, **context: Any) -> str:
    """Render one site page: the wide layout, with ``script`` (if any) allowed by the page's CSP."""
    return environment().get_template(template).render(csp=content_security_policy(script), script=script,
                                                       wide=True, **context)


def _write_protocol(site: Path, entries: list[SiteEntry]) -> dict[str, Any]:
    """Write the table page of one protocol's runs; return the protocol's row of the index."""
    rows = protocol_table(entries)
    runs = [entry.run for entry in entries]
    newest = max(runs, key=lambda r: str((r.results.get("provenance") or {}).get("created_at") or ""))
    synthetic = any(run.synthetic for run in runs)
    fingerprints = {str(run.results["data"].get("fingerprint")) for run in runs}
    changes = changes_against_reference(runs)
    slug = entries[0].protocol_slug
    write_text(site / "protocols" / slug / "index.html", _page(
        "site_protocol.html.j2", script=SORT_SCRIPT, root="../../", protocol=newest.results["protocol"],
        data=newest.results["data"], rows=rows, synthetic=synthetic,
        reference=reference_rows(runs, newest.results.get("reference") or []), mixed_data=len(fingerprints) > 1,
        changes=changes, paper=paper_table(runs, newest.results.get("reference") or []),
        direction=_direction(newest.primary_metric)))
    best = rows[0]
    return {"protocol": newest.results["protocol"], "page": f"protocols/{slug}/index.html", "best": best,
            "n_baselines": sum(r.kind == "baseline" for r in runs),
            "n_submissions": sum(r.kind != "baseline" for r in runs),
            "synthetic": synthetic,
            "datasets": sorted({str(r.results["data"].get("dataset", "")) for r in runs})}


def _write_run(site: Path, entry: SiteEntry) -> dict[str, Any]:
    """Write one run's report page and copy its files; return its manifest entry."""
    run = entry.run
    files = site / entry.files_dir
    files.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run.results_path, files / "results.json")
    shutil.copyfile(run.outcomes_path, files / "outcomes.csv")
    write_text(site / entry.page, _page(
        "site_run.html.j2", root="../../", run=run_view(run), protocol=run.results["protocol"],
        data=run.results["data"], synthetic=run.synthetic, files=f"../../{entry.files_dir}/"))
    return {"protocol": entry.protocol, "name": run.name, "kind": run.kind, "run": entry.slug,
            "results": f"{entry.files_dir}/results.json", "outcomes": f"{entry.files_dir}/outcomes.csv",
            "primary_metric": run.primary_metric, "value": run.primary_value.get("value")}


def _write_site(site: Path, entries: list[SiteEntry], *, show_progress: bool) -> None:
    by_protocol: dict[tuple[str, str], list[SiteEntry]] = {}
    for entry in entries:
        by_protocol.setdefault(entry.ranking, []).append(entry)
    manifest = [_write_run(site, entry) for entry in track(entries, total=len(entries), description="leaderboard",
                                                          enabled=show_progress)]
    protocols = [_write_protocol(site, by_protocol[name]) for name in sorted(by_protocol)]
    write_text(site / "index.html", _page(
        "site_index.html.j2", script=SORT_SCRIPT, root="", protocols=protocols,
        synthetic=any(entry.run.synthetic for entry in entries), n_runs=len(entries)))
    write_json(site / "manifest.json", {"schema": MANIFEST_SCHEMA, "entries": manifest})


def _is_site(folder: Path) -> bool:
    """Whether ``folder`` is a site this command built (so it may be replaced)."""
    try:
        manifest = read_json(folder / "manifest.json")
        return manifest.get("schema") == MANIFEST_SCHEMA
    except (UserInputError, AttributeError):
        return False


def _check_replaceable(out: Path) -> None:
    """Refuse to replace anything but a previous leaderboard site or an empty folder."""
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out} is a file, not a folder.")
    if out.is_dir() and any(out.iterdir()) and not _is_site(out):
        raise UserInputError(f"--out {out} is a folder that is not a facebench leaderboard site; "
                             "pick an empty or new folder so nothing of yours is overwritten.")


def _publishable_permissions(site: Path) -> None:
    """Give the site ordinary permissions (temporary folders and atomic writes start private: 0700/0600)."""
    umask = os.umask(0)
    os.umask(umask)
    for folder, _, names in os.walk(site):
        os.chmod(folder, 0o777 & ~umask)
        for name in names:
            os.chmod(os.path.join(folder, name), 0o666 & ~umask)


def build_site(run_folders: Iterable[Path], *, out: Path, show_progress: bool = True) -> Path:
    """Build the leaderboard site at ``out`` from every run under ``run_folders``; return its ``index.html``.

    Besides the pages, ``out/manifest.json`` is ``{"schema": MANIFEST_SCHEMA, "entries": [...]}`` with one
    entry per run: ``protocol``, ``name`` (label or name), ``kind``, ``run`` (its folder name in the site),
    ``results`` and ``outcomes`` (paths relative to ``out``: ``runs/<protocol>/<run>/results.json`` and
    ``.../outcomes.csv``), ``primary_metric`` and ``value`` (the overall value of the primary metric).

    Raises :class:`UserInputError` for a missing folder, no results.json, a file that is not valid JSON or not
    a results document, or an ``out`` that is a folder of something else.
    """
    out = Path(out).absolute()
    entries = collect_runs([Path(f) for f in run_folders], exclude=out)
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building.", dir=out.parent))
    try:
        _write_site(staging, entries, show_progress=show_progress)
        _publishable_permissions(staging)
        replace_folder(staging, out)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
        raise
    return out / "index.html"


def cli_main(args) -> int:
    """``facebench leaderboard``: build the site and print the path of its index page."""
    index = build_site(args.runs, out=args.out)
    print(index)
    return 0
