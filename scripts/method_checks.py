"""Run every known-answer check (facebench.known_answers) over seeds and print one table.

Usage: ``python scripts/method_checks.py [--family age|aifr] [--size quick|toy] [--seeds 0 1 2]
[--check alignment pairwise] [--out DIR] [--cache-dir DIR]``

``--family aifr`` runs ArcFace, ArcFace + Age and MT-MIM of ``aifr_morph`` on the ``age_entangled`` synthetic MORPH
instead (:mod:`facebench.known_answers.aifr`): per seed, rank-1 at the largest age gap and its change against
ArcFace with a 95% person-bootstrap interval (:func:`facebench.known_answers.aifr.table_rows`).

``quick`` is each protocol's quick profile (8000 synthetic images, small CNN at 64 px, 10 epochs: CPU minutes per
run); ``toy`` is tests/test_known_answers.py's size. Each seed draws new faces and trains anew. For each method
the table gives the expected direction, every seed's paired change in target (Black) MAE against the check's
reference on the same images with its 95% bootstrap interval (this interval holds the trained models fixed), and
the mean over seeds with a 95% t interval over seeds (the variation a new training run brings). The verdict reads
the interval over seeds when there are two or more seeds, else the one run's interval (marked "1 seed").
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from facebench.known_answers.age import (
    CHECKS,
    TARGET_GROUP,
    TOY_OVERRIDES,
    group_changes,
    over_seeds,
    run_check,
)

SIZES: dict[str, tuple[str, ...]] = {"quick": ("training.device=cpu",), "toy": TOY_OVERRIDES}


def verdict(expected: str, low: float, high: float) -> str:
    """'holds' or 'fails' for an interval of the change (negative: better than the reference)."""
    if expected == "lower":
        return "holds" if high < 0 else "fails"
    return "fails" if high < 0 else "holds"  # "no better": not significantly lower


def aifr_table(size: str, seeds: list[int], out: Path, cache: Path) -> None:
    """The AIFR family's table (``--family aifr``), one block of rows per seed."""
    from facebench.known_answers import aifr

    overrides = {"quick": ("training.device=cpu",), "toy": aifr.TOY_OVERRIDES}[size]
    print(f"| seed | method | setting | expected | rank-1 (largest age gap) | change vs {aifr.REFERENCE_METHOD} "
          "[95% person interval] | n people |")
    print("|---|---|---|---|---|---|---|")
    for seed in seeds:
        outcomes = aifr.run_setting(overrides=overrides, out_dir=out / f"{aifr.SHIFT}-{seed}", cache_dir=cache, seed=seed)
        for row in aifr.table_rows(outcomes):
            print(f"| {seed} | {row['method']} | {row['setting']} | {row['expected']} | {row['rank1']:.3f} | "
                  f"{row['change']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}] | {row['n_people']} |",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=("age", "aifr"), default="age",
                        help="age: seed 000's checks on UTKFace (default); aifr: ArcFace, +Age, MT-MIM on age_entangled MORPH")
    parser.add_argument("--size", choices=sorted(SIZES), default="quick", help="data and training size (default quick)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="data and training seeds (default 0 1 2)")
    parser.add_argument("--check", nargs="+", choices=sorted({c.name for c in CHECKS}), default=None,
                        help="which checks (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="run folders (default: a temporary folder)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="synthetic data cache (default: under --out)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="method-checks-"))
    cache = args.cache_dir or out / "cache"
    if args.family == "aifr":
        aifr_table(args.size, args.seeds, out, cache)
        return
    print(f"| check | setting | method | reference | expected | {TARGET_GROUP} MAE (mean) | change per seed [95% paired] "
          f"| mean change [95% over seeds] | verdict |")
    print("|---|---|---|---|---|---|---|---|---|")
    for known in (c for c in CHECKS if args.check is None or c.name in args.check):
        per_seed = {}  # (reference, method) -> one GroupChange per seed
        references = (known.reference, *known.also_against)
        for seed in args.seeds:
            outcomes = run_check(known, overrides=SIZES[args.size], out_dir=out / f"{known.name}-{known.shift}-{seed}",
                                 cache_dir=cache, seed=seed)
            for reference in references:
                for row in group_changes(outcomes, shift=known.shift, reference=reference):
                    per_seed.setdefault((reference, row.method), []).append(row)
        for reference, method in ((r, m) for r in references for m in known.methods):
            rows = per_seed[reference, method]
            summary = over_seeds(rows)
            seeds = "; ".join(f"{r.change:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]" for r in rows)
            if summary.n_seeds > 1:
                overall = f"{summary.mean:+.2f} [{summary.ci_low:+.2f}, {summary.ci_high:+.2f}]"
                ruling = verdict(known.expected, summary.ci_low, summary.ci_high)
            else:
                overall, ruling = "-", verdict(known.expected, rows[0].ci_low, rows[0].ci_high) + " (1 seed)"
            mae = sum(r.mae for r in rows) / len(rows)
            print(f"| {known.name} | {known.shift} | {method} | {reference} | {known.expected} ({known.why}) | "
                  f"{mae:.2f} | {seeds} | {overall} | {ruling} |", flush=True)


if __name__ == "__main__":
    main()
