"""Print the race-transfer family's measured table (markdown) from a run folder of scripts/run_race_family.sh:
per protocol and baseline, source and target accuracy as the mean over repeats with the t interval over repeats
(facebench.metrics.intervals.t_interval, through the report's transfer view), each run's own bootstrap interval,
source − target, and where the in-domain benchmark's target accuracy lies.

Usage: python scripts/race_family_table.py OUT [--unique]
"""

from __future__ import annotations

import sys
from pathlib import Path

from facebench.reports.bias_report import load_runs, transfer_view

PROTOCOLS = ("race_utk_celeba", "race_utk_celeba_augmentation", "race_utk_celeba_optimisers", "race_utk_celeba_summary",
             "race_utk_fairface", "race_utk_fairface_augmentation", "race_utk_fairface_optimisers",
             "race_utk_fairface_summary")


def interval(v: dict | None) -> str:
    if not v:
        return "–"
    if v.get("ci_low") is None:
        return f"{v['value']:.3f}"
    return f"{v['value']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"


def runs_intervals(row: dict, key: str) -> str:
    return "; ".join(f"{r[key]['value']:.2f} [{r[key]['ci_low']:.2f}, {r[key]['ci_high']:.2f}]"
                     for r in row["runs"] if r.get(key))


def main(out: Path, unique: bool = False) -> None:
    """``unique``: a row whose runs scored exactly what an earlier row's did (the same shared model on the same
    target, e.g. Table 2's unaugmented rows are Table 1's fine-tuned ones) is listed under the table instead."""
    print("| protocol | baseline | source: mean [t interval] | target: mean [t interval] | source − target [t] "
          "| runs' own intervals (source / target) | in-domain target between? |")
    print("|---|---|---|---|---|---|---|")
    seen: dict[tuple, str] = {}
    same: list[str] = []
    views = {name: transfer_view(load_runs(out / name)) for name in PROTOCOLS if (out / name).is_dir()}
    # Each target's in-domain benchmark (its _summary protocol's), against which every transfer row of that
    # target is read: is the benchmark's target accuracy between the row's target and source accuracies?
    benches = {name.split("_")[2]: row for name, view in views.items() for row in view["rows"] if row["in_domain"]}
    for name, view in views.items():
        target = name.split("_")[2]
        bench = benches.get(target)
        for row in view["rows"]:
            runs = sorted(row["runs"], key=lambda r: r["seed"])
            scores = (target, *((r["source"] or {}).get("value") for r in runs),
                      *((r["target"] or {}).get("value") for r in runs))
            if unique and scores in seen and not row["in_domain"]:
                same.append(f"{name.removeprefix('race_utk_')} \"{row['name']}\" = {seen[scores]}")
                continue
            seen.setdefault(scores, f"{name.removeprefix('race_utk_')} \"{row['name']}\"")
            between = "–"
            if bench and row is not bench and row["source"] and row["target"]:
                b = bench["target"]["value"]
                between = "yes" if row["target"]["value"] < b < row["source"]["value"] else "no"
            print(f"| {name.removeprefix('race_utk_')} | {row['name']}{' (in-domain)' if row['in_domain'] else ''} "
                  f"| {interval(row['source'])} | {interval(row['target'])} | {interval(row['difference'])} "
                  f"| {runs_intervals(row, 'source')} / {runs_intervals(row, 'target')} | {between} |")
    if same:
        print("\nThe same models and scores (shared training, same target): " + "; ".join(same) + ".")


if __name__ == "__main__":
    main(Path(sys.argv[1]), unique="--unique" in sys.argv[2:])
