"""``facebench compare``: is a candidate run worse than a leaderboard entry, and does it hold its gates?

``facebench compare RESULTS --leaderboard SITE_OR_DIR [--against NAME] [--gate GATES.yaml]`` pairs the
candidate's ``outcomes.csv`` with a reference entry's sample by sample, runs a paired bootstrap, checks the
gates, prints a markdown summary fit for a pull-request comment and exits 0 (pass), 1 (a significant
regression or a broken gate) or 2 (bad input, or results that cannot be compared). ``docs/ci.md`` is the
user's guide; the rules are:

**Which entry.** The leaderboard is a site built by ``facebench leaderboard`` (``SITE/manifest.json``, schema
``facebench-leaderboard/1``) or any folder, searched recursively for ``results.json`` files with their
``outcomes.csv``. Entries of the candidate's protocol (by name) compete. ``--against NAME`` picks the entry
whose ``baseline.label``, ``baseline.name`` or run folder is NAME (when several are called NAME, those on the
candidate's data; still several is an error). Without it: the best entry on the primary metric, by the
metric's direction, among the entries with the candidate's protocol version, data and split; the candidate
is left out only when it is literally the same file.

**Refusals (exit 2).** Protocol name, version, task or primary metric differ; ``data.fingerprint`` or
``data.split_fingerprint`` differ; the two ``outcomes.csv`` do not hold the same rows one to one (key: the
task's ``row_keys``, ``sample_id`` or, for face generation, ``sample_id`` + ``edit``; plus ``database`` where both
files have that column, as CACD retrieval does); a sample's group label or ``y_true`` differs between the files;
the primary metric is a set metric (FID, KID) and no ``no_significant_regression`` gate names a per-sample metric
to test instead (a set metric is a distance between two feature sets, not a mean of per-sample outcomes, so it
cannot be paired; with such a gate it is left out with a note giving both point estimates), or such a gate names
a set metric. ``protocol.fingerprint`` alone does *not* refuse: it hashes
the whole resolved protocol (training, model, profile, ``evaluation.n_boot``, baselines, reference numbers,
and any key a newer facebench adds), which legitimately differ between two models scored on the same
benchmark, and results.json does not say which part changed. What defines the measurement is checked
directly instead (above); a different fingerprint is reported as a note.

**Significance.** For the primary metric (and every metric named by a ``no_significant_regression`` gate):
the overall change is :func:`~facebench.metrics.paired.paired_difference` (plain paired bootstrap); per
attribute present in both outcomes files and both runs' ``metrics.by_group`` (intersections are not in
outcomes.csv), :func:`~facebench.metrics.paired.paired_group_changes` gives every group's paired change
(stratified, Holm-adjusted bootstrap p-values) and the change of the worst-vs-best gap. The candidate
*regresses* when it is worse overall and the interval excludes 0, or an attribute's gap is larger and its
interval excludes 0, or a group is worse with a Holm-adjusted p-value below 0.05. Intervals are 95 %.

**Gates** (:class:`GateFile`) compare the candidate's *point estimates*, as written in its results.json,
with their bounds (``<=`` / ``>=``); intervals do not enter. An undefined value (e.g. an infinite ratio)
breaks its gate. ``no_significant_regression`` applies the rule above to one more metric; the primary
metric is always checked.
"""

from __future__ import annotations

import sys

from facebench.comparison.entries import (
    LEADERBOARD_SCHEMA,
    choose_reference,
    leaderboard_runs,
    same_measurement,
)
from facebench.comparison.gates import Gate, GateFile, GateResult, check_gates, load_gates
from facebench.comparison.markdown import render_markdown
from facebench.comparison.pairing import (
    PairedOutcomes,
    check_comparable,
    metric_outcomes,
    min_group_size,
    pair_outcomes,
)
from facebench.comparison.verdict import (
    CONFIDENCE,
    DEFAULT_N_BOOT,
    DEFAULT_SEED,
    EXIT_FAIL,
    EXIT_PASS,
    Comparison,
    MetricComparison,
    check_bootstrap,
    compare,
    compare_metric,
)
from facebench.io import write_text
from facebench.results import Run, load_run

# The command's parts live in facebench.comparison (by concept); they are re-exported here so that
# ``from facebench.compare import ...`` keeps working for scripts and tests.
__all__ = ["Run", "load_run", "leaderboard_runs", "choose_reference", "same_measurement", "check_comparable",
           "PairedOutcomes", "pair_outcomes", "metric_outcomes", "min_group_size", "Gate", "GateFile",
           "load_gates", "check_gates", "GateResult", "MetricComparison", "Comparison", "compare",
           "compare_metric", "render_markdown", "cli_main", "EXIT_PASS", "EXIT_FAIL", "CONFIDENCE",
           "DEFAULT_N_BOOT", "DEFAULT_SEED", "LEADERBOARD_SCHEMA"]


def cli_main(args) -> int:
    """``facebench compare``: 0 pass, 1 a significant regression or a broken gate. Bad input raises
    :class:`UserInputError`, which :func:`facebench.cli.main` turns into exit code 2."""
    check_bootstrap(n_boot=args.n_boot, seed=args.seed)
    candidate = load_run(args.results)
    gates = load_gates(args.gate) if args.gate is not None else None
    entries = leaderboard_runs(args.leaderboard, protocol=candidate.protocol["name"])
    reference = choose_reference(candidate, entries, against=args.against, where=args.leaderboard)
    comparison = compare(candidate, reference, gates=gates, gate_file=args.gate, n_boot=args.n_boot,
                         seed=args.seed)
    text = render_markdown(comparison)
    if args.markdown is not None:
        write_text(args.markdown, text)
    sys.stdout.write(text)
    return comparison.exit_code
