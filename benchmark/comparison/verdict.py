"""The comparison of two paired runs: paired bootstrap per metric, the regression rule and the verdict.

The candidate *regresses* on a metric when it is worse overall and the interval excludes 0, or an
attribute's gap is larger with a Holm-adjusted p-value below 0.05, or a group is worse with a Holm-adjusted
p-value below 0.05 (see :mod:`facebench.compare` for the whole rule set).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facebench.comparison.gates import GateFile, GateResult, check_gates, evaluate_gates
from facebench.comparison.pairing import (
    PairedOutcomes,
    check_comparable,
    metric_outcomes,
    min_group_size,
    pair_outcomes,
)
from facebench.errors import UserInputError, shorten
from facebench.metrics import Metric, get_metric
from facebench.metrics.generation import is_set_metric
from facebench.metrics.paired import (
    AttributeChange,
    GroupChange,
    PairedDifference,
    paired_difference,
    paired_group_changes,
)
from facebench.registry import TASKS
from facebench.results import Run

__all__ = ["EXIT_PASS", "EXIT_FAIL", "CONFIDENCE", "DEFAULT_N_BOOT", "DEFAULT_SEED", "by_harm",
           "MetricComparison", "Comparison", "check_bootstrap", "compare", "compare_metric"]

EXIT_PASS = 0
EXIT_FAIL = 1
#: Level of every interval of the comparison; per-group tests use alpha = 1 - CONFIDENCE after Holm.
CONFIDENCE = 0.95
#: Resamples and seed of the paired bootstrap unless told otherwise (``--n-boot``, ``--seed``); the bias
#: report's change against source-only uses them too, so it gives compare's numbers.
DEFAULT_N_BOOT = 2000
DEFAULT_SEED = 0


def by_harm(groups: Sequence[GroupChange]) -> tuple[GroupChange, ...]:
    """Groups ordered by the size of their change, largest first."""
    return tuple(sorted(groups, key=lambda g: -abs(g.difference)))


@dataclass(frozen=True, kw_only=True)
class MetricComparison:
    """One metric, reference against candidate: the overall paired change and the per-attribute changes."""

    metric: str
    higher_is_better: bool
    reference: float
    candidate: float
    overall: PairedDifference
    worse: bool
    attributes: tuple[AttributeChange, ...]

    @property
    def overall_regressed(self) -> bool:
        return self.worse and self.overall.significant

    @property
    def gap_regressions(self) -> tuple[AttributeChange, ...]:
        return tuple(a for a in self.attributes if a.gap is not None and a.gap.regressed)

    @property
    def group_regressions(self) -> tuple[tuple[str, GroupChange], ...]:
        """(attribute, group) pairs significantly worse; within an attribute the largest change first."""
        return tuple((a.attribute, g) for a in self.attributes for g in by_harm(a.regressed_groups))

    @property
    def regressed(self) -> bool:
        return self.overall_regressed or bool(self.gap_regressions) or bool(self.group_regressions)


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """Everything ``facebench compare`` decided; :func:`render_markdown` writes it up."""

    candidate: Run
    reference: Run
    n_rows: int
    keys: tuple[str, ...]
    n_boot: int
    seed: int
    confidence: float
    metrics: tuple[MetricComparison, ...]
    gates: tuple[GateResult, ...]
    gate_file: str | None
    notes: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not any(m.regressed for m in self.metrics) and all(g.passed for g in self.gates)

    @property
    def exit_code(self) -> int:
        return EXIT_PASS if self.passed else EXIT_FAIL


def check_bootstrap(*, n_boot: int, seed: int) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise UserInputError(f"--n-boot must be a whole number of at least 1, got {shorten(n_boot)}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserInputError(f"--seed must be a whole number of at least 0, got {shorten(seed)}.")


def compare(candidate: Run, reference: Run, *, gates: GateFile | None = None,
            gate_file: str | os.PathLike | None = None, n_boot: int = DEFAULT_N_BOOT,
            seed: int = DEFAULT_SEED) -> Comparison:
    """Compare two runs: refusals (:func:`check_comparable`, :func:`pair_outcomes`), paired bootstrap, gates.

    ``gate_file`` names the gates' file in messages. The same ``seed`` gives the same numbers.
    """
    check_bootstrap(n_boot=n_boot, seed=seed)
    if gates is not None:
        check_gates(gates, candidate, path=gate_file or "the gate file")
    notes = list(check_comparable(candidate, reference))
    paired = pair_outcomes(candidate, reference)
    task = TASKS.get(candidate.protocol["task"])
    if task.unit_columns and not paired.unit_columns:
        notes.append(f"The outcomes files do not name each row's {task.unit_name} (written before facebench "
                     "recorded units of independence), so rows were resampled as if independent: the intervals "
                     "are too narrow and the p-values too small. Rescore both runs to resample people.")
    names = _tested_metrics(candidate, reference, gates, notes, gate_file=gate_file or "the gate file")
    comparisons = [compare_metric(get_metric(name), paired, candidate=candidate, reference=reference,
                                  n_boot=n_boot, seed=seed) for name in names]
    resolution = 2.0 / (n_boot + 1)  # the smallest bootstrap p-value
    largest = max((len(a.groups) for m in comparisons for a in m.attributes), default=0)
    if largest * resolution >= 1 - CONFIDENCE:
        notes.append(f"With {n_boot} resamples the smallest bootstrap p-value is {resolution:.2g}, so a "
                     f"Holm-adjusted p-value across {largest} groups cannot fall below "
                     f"{1 - CONFIDENCE:g}: no group can be called significantly worse. Raise --n-boot.")
    if not paired.attributes:
        notes.append("The two outcomes files share no group attribute: only the overall change was tested.")
    return Comparison(candidate=candidate, reference=reference, n_rows=paired.n, keys=paired.keys,
                      n_boot=n_boot, seed=seed, confidence=CONFIDENCE, metrics=tuple(comparisons),
                      gates=evaluate_gates(gates, candidate, comparisons),
                      gate_file=None if gate_file is None else str(gate_file), notes=tuple(notes))


def _tested_metrics(candidate: Run, reference: Run, gates: GateFile | None, notes: list[str], *,
                    gate_file: str | os.PathLike) -> list[str]:
    """The metrics the paired bootstrap tests: the primary metric and each ``no_significant_regression`` gate's.

    A set metric (FID, KID: a distance between two sets of features, not a mean of per-sample outcomes) cannot be
    paired sample by sample. As the primary metric it is left out with a note giving both point estimates, provided
    a gate names a per-sample metric to test instead; otherwise, and when a gate names one, one sentence refuses."""
    primary = candidate.protocol["primary_metric"]
    gated = [g.spec.metric for g in (gates.gates if gates else ()) if g.kind == "no_significant_regression"]
    for name in gated:
        if is_set_metric(get_metric(name)):
            raise UserInputError(f"{gate_file}: metric {shorten(name)} of a no_significant_regression gate is a "
                                 "set metric (a distance between feature sets, not a mean of per-sample outcomes), "
                                 "so compare cannot pair it; gate its point estimate with max_metric or max_gap instead.")
    if not is_set_metric(get_metric(primary)):
        return list(dict.fromkeys([primary, *gated]))
    per_sample = [m for m in candidate.results["metrics"]["overall"] if get_metric(m).aggregate is None]
    if not gated:
        raise UserInputError(
            f"The primary metric {shorten(primary)} is a set metric (a distance between the generated and the "
            "real faces' feature sets, not a mean of per-sample outcomes), so compare cannot pair it: pass --gate "
            "with a no_significant_regression gate on a per-sample metric"
            + (f" ({', '.join(per_sample)})" if per_sample else "") + ", and max_metric or max_gap gates for the set metrics.")
    values = [run.overall(primary) for run in (reference, candidate)]
    shown = ", ".join("undefined" if v is None else f"{v:.4g}" for v in values)
    notes.append(f"The primary metric '{primary}' is a set metric (a distance between feature sets), which cannot "
                 f"be paired sample by sample: not tested (reference, candidate: {shown}); the gates' metrics "
                 "were tested instead.")
    return list(dict.fromkeys(gated))


def compare_metric(metric: Metric, paired: PairedOutcomes, *, candidate: Run, reference: Run, n_boot: int,
                   seed: int) -> MetricComparison:
    """One metric, reference against candidate, on their paired outcomes: the overall paired change and
    every shared attribute's per-group changes (Holm-adjusted) and gap change. The bias report's "change
    against source-only" calls this too, so the report and the CI gate cannot disagree."""
    if metric.aggregate is not None:
        raise UserInputError(f"Metric '{metric.name}' is not a mean of per-sample outcomes, so compare "
                             "cannot pair it.")
    task = candidate.protocol["task"]
    a = metric_outcomes(paired.reference, metric, task=task, path=reference.outcomes_path)
    b = metric_outcomes(paired.candidate, metric, task=task, path=candidate.outcomes_path)
    defined = ~np.isnan(a)
    if not np.array_equal(defined, ~np.isnan(b)):
        raise UserInputError(f"Metric '{metric.name}' is defined on different samples in "
                             f"{reference.outcomes_path} and {candidate.outcomes_path}, so they were not "
                             "computed on the same data.")
    if not defined.any():
        raise UserInputError(f"Metric '{metric.name}' is defined on no sample of {candidate.outcomes_path}.")
    clusters = paired.clusters
    overall = paired_difference(a[defined], b[defined], n_boot=n_boot, seed=seed, confidence=CONFIDENCE,
                                label="overall", metric=metric,
                                clusters=None if clusters is None else clusters[defined])
    attributes = ()
    if paired.attributes:
        attributes = paired_group_changes(a, b, paired.groups, metric=metric, n_boot=n_boot, seed=seed,
                                          confidence=CONFIDENCE, min_group_size=min_group_size(candidate),
                                          clusters=clusters)
    value_a = float(metric.from_mean(a[defined].mean()))
    value_b = float(metric.from_mean(b[defined].mean()))
    return MetricComparison(metric=metric.name, higher_is_better=metric.higher_is_better, reference=value_a,
                            candidate=value_b, overall=overall, attributes=attributes,
                            worse=bool(metric.badness(value_b) > metric.badness(value_a)))
