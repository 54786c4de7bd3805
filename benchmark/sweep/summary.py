"""A sweep's summary: per grid point and baseline, the primary metric's mean over seeds with the t interval over
seeds beside each seed's run and its own bootstrap interval, the change against the first row paired by seed, and
the largest worst-vs-best gap averaged over seeds (:mod:`facebench.reports.over_seeds`); then the jobs that failed,
with their logs.

Why the paired change: a seed fixes the synthetic data, the split and the initial weights, so two rows' runs of one
seed differ only by the setting; the t interval over the seeds' differences leaves out the variation that seeds
share, which the two rows' own intervals over seeds both carry. Runs are paired only when both scored the same data
(``data.fingerprint``).

It is printed as a rich table and written atomically (:func:`facebench.io.write_text`) as ``SWEEP/summary.md``,
``summary.csv`` (one row per grid point and baseline) and ``runs.csv`` (one row per run: status, value, interval,
run folder, log).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from facebench.io import write_text
from facebench.reports.over_seeds import OverSeeds, group_by_seed, over_seeds
from facebench.results import Run, load_run
from facebench.sweep.jobs import Job
from facebench.sweep.manifest import JobRecord

SYNTHETIC_LINE = "SYNTHETIC DATA: these numbers measure the pipeline on generated faces, not real-world bias."


@dataclass(frozen=True, kw_only=True)
class SummaryRow:
    """One grid point and baseline: the seeds planned and, once runs finished, their summary over seeds."""

    point: tuple[str, ...]
    baseline: str
    seeds_planned: int
    runs: tuple[Run, ...]
    over: OverSeeds | None
    #: the sweep's first row, which every other row's ``change`` is measured against
    is_reference: bool = False
    #: :func:`paired_change` against the first row (None for it, or where no seed pairs)
    change: dict[str, Any] | None = None

    @property
    def synthetic(self) -> bool:
        return any(run.synthetic for run in self.runs)


def _keys(jobs: Sequence[Job]) -> list[str]:
    return list(dict.fromkeys(setting.partition("=")[0] for job in jobs for setting in job.point))


def summary_rows(jobs: Sequence[Job]) -> list[SummaryRow]:
    """Rows in grid order, baselines in protocol order; runs of one label that differ in more than the seed (two
    baselines sharing a label) get a row each. Each row carries its paired change against the first."""
    by_row: dict[tuple[tuple[str, ...], str], list[Job]] = {}
    for job in jobs:
        by_row.setdefault((job.point, job.baseline), []).append(job)
    rows = []
    for (point, baseline), same in by_row.items():
        runs = [load_run(d) for job in same for d in job.run_dirs if (d / "results.json").is_file()]
        groups = group_by_seed(runs) or [[]]
        for group in groups:
            rows.append(SummaryRow(point=point, baseline=baseline, seeds_planned=len(same), runs=tuple(group),
                                   over=over_seeds(group) if group else None))
    return [replace(row, is_reference=i == 0, change=paired_change(row, rows[0])) for i, row in enumerate(rows)]


def paired_change(row: SummaryRow, reference: SummaryRow, *, confidence: float = 0.95) -> dict[str, Any] | None:
    """``row`` − ``reference`` on the primary metric, paired by seed: the mean of the seeds' differences with
    Student's t interval over them (``n_seeds`` − 1 degrees of freedom; no interval from one seed), over the seeds
    both rows finished on the same data. None for the reference row itself, or when no seed pairs.

    >>> from types import SimpleNamespace as R
    >>> def run(seed, value, data="d"):
    ...     return R(primary_value={"value": value}, results={"provenance": {"seed": seed}, "data": {"fingerprint": data}})
    >>> first = SummaryRow(point=(), baseline="a", seeds_planned=2, runs=(run(0, 5.0), run(1, 6.0)), over=None)
    >>> other = SummaryRow(point=(), baseline="b", seeds_planned=2, runs=(run(0, 4.0), run(1, 5.5)), over=None)
    >>> {k: round(v, 3) for k, v in paired_change(other, first).items()}   # differences -1.0 and -0.5
    {'value': -0.75, 'ci_low': -3.927, 'ci_high': 2.427, 'n_seeds': 2}
    >>> paired_change(first, first) is None
    True
    """
    from facebench.metrics.intervals import t_interval

    if row is reference:
        return None

    def by_seed(runs: Sequence[Run]) -> dict[int, tuple[float, str]]:
        return {int(run.results["provenance"]["seed"]): (float(run.primary_value["value"]),
                                                         str(run.results["data"]["fingerprint"]))
                for run in runs if run.primary_value.get("value") is not None}

    ours, theirs = by_seed(row.runs), by_seed(reference.runs)
    differences = [ours[seed][0] - theirs[seed][0] for seed in sorted(ours)
                   if seed in theirs and ours[seed][1] == theirs[seed][1]]
    if not differences:
        return None
    mean, low, high = t_interval(differences, confidence=confidence)
    finite = len(differences) > 1
    return {"value": mean, "ci_low": low if finite else None, "ci_high": high if finite else None,
            "n_seeds": len(differences)}


def fmt(value: float | None, digits: int = 3) -> str:
    """
    >>> fmt(7.12345), fmt(None)
    ('7.123', '—')
    """
    return "—" if value is None else f"{value:.{digits}f}"


def interval(cell: dict[str, Any] | None) -> str:
    """``value [low, high]``; the bracket is left out where there is no interval (one seed).

    >>> interval({"value": 7.0, "ci_low": 6.5, "ci_high": 7.5}), interval({"value": 7.0, "ci_low": None})
    ('7.000 [6.500, 7.500]', '7.000')
    """
    if not cell or cell.get("value") is None:
        return "—"
    if cell.get("ci_low") is None or cell.get("ci_high") is None:
        return fmt(cell["value"])
    return f"{fmt(cell['value'])} [{fmt(cell['ci_low'])}, {fmt(cell['ci_high'])}]"


def headers(metric: str) -> list[str]:
    """The summary table's columns (terminal and summary.md)."""
    return ["grid point", "baseline", "seeds", f"{metric}: mean [t interval over seeds]",
            "each seed [its bootstrap interval]", "change vs the first row, paired by seed [t interval]",
            "largest gap: mean [t interval over seeds]"]


def _cells(row: SummaryRow) -> list[str]:
    over, change = row.over, row.change
    gap = over.largest_gap if over else None
    return [
        ", ".join(row.point) or "(protocol as given)",
        row.baseline,
        f"{len(row.runs)}/{row.seeds_planned}",
        interval(over.primary) if over else "—",
        "; ".join(f"seed {r['seed']}: {interval(r)}" for r in over.per_run) if over else "—",
        "(reference)" if row.is_reference else (f"{interval(change)} ({change['n_seeds']} seeds)" if change else "—"),
        f"{gap['attribute']} {interval(gap)}" if gap else "—",
    ]


def failed_lines(jobs: Sequence[Job], records: dict[str, JobRecord], sweep_dir: Path) -> list[str]:
    """One line per failed job: what it is, its log and the last error line of the log."""
    lines = []
    for job in jobs:
        record = records.get(job.key)
        if record is not None and record.status == "failed":
            log = sweep_dir / record.log if record.log else None
            lines.append(f"{job.describe()}: log {log or '(none)'}" + (f" — {record.error}" if record.error else ""))
    return lines


def markdown(rows: Sequence[SummaryRow], *, title: str, metric: str, failed: Sequence[str]) -> str:
    lines = [f"# {title}", ""]
    if any(row.synthetic for row in rows):
        lines += [f"**{SYNTHETIC_LINE}**", ""]
    lines += ["The mean over seeds carries Student's t interval over seeds (its unit is the training run: n − 1 "
              "degrees of freedom); beside it, each seed's run with its own bootstrap interval over test images. "
              "Change vs the first row: the mean over seeds of (this row − the first row) on runs of the same seed "
              "and data, with the t interval over those differences; a seed fixes data, split and initial weights, "
              "so the pairing removes what the two rows' seeds share. Largest gap: the widest worst-vs-best gap of "
              "the primary metric over the protocol's attributes, averaged over seeds.", ""]
    columns = headers(metric)
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(row)) + " |")
    if failed:
        lines += ["", "## Failed jobs", "", *[f"- {line}" for line in failed],
                  "", "Run the sweep again with `--retry-failed` to submit them again."]
    return "\n".join(lines) + "\n"


def summary_frame(rows: Sequence[SummaryRow], keys: Sequence[str]) -> pd.DataFrame:
    """summary.csv: one row per grid point and baseline (grid values as columns)."""
    records = []
    for row in rows:
        values = dict(setting.partition("=")[::2] for setting in row.point)
        over = row.over
        primary = (over.primary if over else None) or {}
        gap = (over.largest_gap if over else None) or {}
        change = row.change or {}
        records.append({**{key: values.get(key) for key in keys}, "baseline": row.baseline,
                        "metric": over.metric if over else None, "seeds_done": len(row.runs),
                        "seeds_planned": row.seeds_planned, "mean": primary.get("value"),
                        "t_low": primary.get("ci_low"), "t_high": primary.get("ci_high"),
                        "gap_attribute": gap.get("attribute"), "gap_mean": gap.get("value"),
                        "gap_t_low": gap.get("ci_low"), "gap_t_high": gap.get("ci_high"),
                        "change_vs_first": change.get("value"), "change_t_low": change.get("ci_low"),
                        "change_t_high": change.get("ci_high"), "change_seeds": change.get("n_seeds"),
                        "synthetic": row.synthetic})
    return pd.DataFrame.from_records(records, columns=[*keys, "baseline", "metric", "seeds_done", "seeds_planned",
                                                       "mean", "t_low", "t_high", "gap_attribute", "gap_mean",
                                                       "gap_t_low", "gap_t_high", "change_vs_first", "change_t_low",
                                                       "change_t_high", "change_seeds", "synthetic"])


def runs_frame(jobs: Sequence[Job], records: dict[str, JobRecord], keys: Sequence[str], sweep_dir: Path
               ) -> pd.DataFrame:
    """runs.csv: one row per job's run folder, with its status, value, bootstrap interval, folder and log."""
    rows = []
    for job in jobs:
        record = records.get(job.key)
        values = dict(setting.partition("=")[::2] for setting in job.point)
        for run_dir in job.run_dirs:
            done = (run_dir / "results.json").is_file()
            cell = load_run(run_dir).primary_value if done else {}
            rows.append({**{key: values.get(key) for key in keys}, "baseline": job.baseline, "seed": job.seed,
                         "status": "finished" if done else (record.status if record else "pending"),
                         "value": cell.get("value"), "ci_low": cell.get("ci_low"), "ci_high": cell.get("ci_high"),
                         "n": cell.get("n"), "run_dir": str(run_dir),
                         "job_id": record.job_id if record else None,
                         "log": str(sweep_dir / record.log) if record and record.log else None,
                         "error": record.error if record else None})
    return pd.DataFrame.from_records(rows, columns=[*keys, "baseline", "seed", "status", "value", "ci_low", "ci_high",
                                                    "n", "run_dir", "job_id", "log", "error"])


def _csv(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


def write_summary(sweep_dir: Path, jobs: Sequence[Job], records: dict[str, JobRecord], *, title: str) -> list[SummaryRow]:
    """Write summary.md, summary.csv and runs.csv into ``sweep_dir`` (each atomically) and print the table."""
    rows = summary_rows(jobs)
    keys = _keys(jobs)
    metric = next((row.over.metric for row in rows if row.over), "primary metric")
    failed = failed_lines(jobs, records, sweep_dir)
    write_text(sweep_dir / "summary.md", markdown(rows, title=title, metric=metric, failed=failed))
    write_text(sweep_dir / "summary.csv", _csv(summary_frame(rows, keys)))
    write_text(sweep_dir / "runs.csv", _csv(runs_frame(jobs, records, keys, sweep_dir)))
    print_summary(rows, metric=metric, title=title, failed=failed)
    return rows


def print_summary(rows: Sequence[SummaryRow], *, metric: str, title: str, failed: Sequence[str]) -> None:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from facebench.progress import console

    if any(row.synthetic for row in rows):
        console.print(f"[bold yellow]{SYNTHETIC_LINE}[/]")
    table = Table(title=Text(title), show_lines=True)
    for column in headers(metric):
        table.add_column(Text(column), overflow="fold")  # "[t interval ...]" is text, not markup
    for row in rows:
        cells = _cells(row)
        cells[4] = cells[4].replace("; ", "\n")
        table.add_row(*(Text(cell) for cell in cells))  # grid values such as [conv, fc1] are text, not markup
    console.print(table)
    for line in failed:
        console.print(f"[bold red]failed[/] {escape(line)}")
    if failed:
        console.print("run the same command with --retry-failed to submit them again")
