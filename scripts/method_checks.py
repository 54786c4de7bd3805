"""Run source-only, DANN and MMD on the covariate- and concept-shift known-answer data and print a table.

Usage: ``python scripts/method_checks.py [--family age|aifr] [--size quick|toy] [--seed N] [--out DIR] [--cache-dir DIR]``

``--family aifr`` runs ArcFace, ArcFace + Age and MT-MIM of ``aifr_morph`` on the ``age_entangled`` synthetic MORPH
instead (:mod:`facebench.known_answers.aifr`): rank-1 at the largest age gap and its change against ArcFace with a
95% person-bootstrap interval (:func:`facebench.known_answers.aifr.table_rows`).

``quick`` is the protocol's quick profile (8000 synthetic images, small CNN at 64 px, 10 epochs: CPU minutes
per run, six runs); ``toy`` is tests/test_known_answers.py's size. For each method and setting the table gives
the expected direction, the target (Black) MAE and its paired change against source-only on the same images
with a 95% bootstrap interval (:func:`facebench.known_answers.age.group_changes`), and the change against the
control, the adapted loop with its alignment term off (what alignment itself does).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from facebench.known_answers.age import (
    CONTROL_METHOD,
    EXPECTED,
    REFERENCE_METHOD,
    TARGET_GROUP,
    TOY_OVERRIDES,
    group_changes,
    run_setting,
)

SIZES: dict[str, tuple[str, ...]] = {"quick": ("training.device=cpu",), "toy": TOY_OVERRIDES}


def aifr_table(size: str, seed: int, out: Path, cache: Path) -> None:
    """The AIFR family's table (``--family aifr``)."""
    from facebench.known_answers import aifr

    overrides = {"quick": ("training.device=cpu",), "toy": aifr.TOY_OVERRIDES}[size]
    outcomes = aifr.run_setting(overrides=overrides, out_dir=out / aifr.SHIFT, cache_dir=cache, seed=seed)
    print(f"| method | setting | expected | rank-1 (largest age gap) | change vs {aifr.REFERENCE_METHOD} "
          "[95% person interval] | n people |")
    print("|---|---|---|---|---|---|")
    for row in aifr.table_rows(outcomes):
        print(f"| {row['method']} | {row['setting']} | {row['expected']} | {row['rank1']:.3f} | "
              f"{row['change']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}] | {row['n_people']} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=("age", "aifr"), default="age",
                        help="age: DANN/MMD on UTKFace (default); aifr: ArcFace, +Age, MT-MIM on age_entangled MORPH")
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="run folders (default: a temporary folder)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="synthetic data cache (default: under --out)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="method-checks-"))
    cache = args.cache_dir or out / "cache"
    if args.family == "aifr":
        aifr_table(args.size, args.seed, out, cache)
        return
    print(f"| method | setting | expected | {TARGET_GROUP} MAE | change vs {REFERENCE_METHOD} [95% interval] | "
          f"change vs {CONTROL_METHOD} [95% interval] | n |")
    print("|---|---|---|---|---|---|---|")
    for shift in EXPECTED:
        outcomes = run_setting(shift=shift, overrides=SIZES[args.size], out_dir=out / shift, cache_dir=cache,
                               seed=args.seed)
        # against the control (the same adapted loop without its alignment term) is what alignment itself does
        control = {row.method: row for row in group_changes(outcomes, shift=shift, reference=CONTROL_METHOD)}
        for row in group_changes(outcomes, shift=shift):
            expected = "-" if row.method in (REFERENCE_METHOD, CONTROL_METHOD) else EXPECTED[shift]
            other = control[row.method]
            print(f"| {row.method} | {shift} | {expected} | {row.mae:.2f} | "
                  f"{row.change:+.2f} [{row.ci_low:+.2f}, {row.ci_high:+.2f}] | "
                  f"{other.change:+.2f} [{other.ci_low:+.2f}, {other.ci_high:+.2f}] | {row.n} |", flush=True)

if __name__ == "__main__":
    main()
