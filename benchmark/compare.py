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
``data.split_fingerprint`` differ; the two ``outcomes.csv`` do not hold the same samples one to one (key
``sample_id``, plus ``database`` where both files have that column, as CACD retrieval does); a sample's group
label or ``y_true`` differs between the files. ``protocol.fingerprint`` alone does *not* refuse: it hashes
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

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from facebench.errors import UserInputError, did_you_mean, validation_error
from facebench.io import write_text
from facebench.metrics import METRIC_NAMES, Metric, get_metric
from facebench.metrics.paired import (
    AttributeChange,
    GroupChange,
    PairedDifference,
    paired_difference,
    paired_group_changes,
)
from facebench.protocol import read_yaml_mapping
from facebench.registry import TASKS
from facebench.results import Run, load_run, read_json

__all__ = ["Run", "load_run", "leaderboard_runs", "choose_reference", "check_comparable", "PairedOutcomes",
           "pair_outcomes", "metric_outcomes", "Gate", "GateFile", "load_gates", "check_gates", "GateResult",
           "MetricComparison", "Comparison", "compare", "compare_metric", "min_group_size", "same_measurement", "render_markdown", "cli_main", "EXIT_PASS",
           "EXIT_FAIL", "CONFIDENCE", "DEFAULT_N_BOOT", "DEFAULT_SEED", "LEADERBOARD_SCHEMA"]

EXIT_PASS = 0
EXIT_FAIL = 1
#: Level of every interval of the comparison; per-group tests use alpha = 1 - CONFIDENCE after Holm.
CONFIDENCE = 0.95
#: Resamples and seed of the paired bootstrap unless told otherwise (``--n-boot``, ``--seed``); the bias
#: report's change against source-only uses them too, so it gives compare's numbers.
DEFAULT_N_BOOT = 2000
DEFAULT_SEED = 0
LEADERBOARD_SCHEMA = "facebench-leaderboard/1"


# ----------------------------------------------------------------------------------------------- runs
def leaderboard_runs(source: str | os.PathLike, *, protocol: str) -> tuple[Run, ...]:
    """The entries of ``protocol`` in a leaderboard site (``manifest.json``) or a folder of run directories.

    A folder is searched recursively for ``results.json``; every one found must be a valid results file.
    Entries come sorted by path (ties of the default choice go to the first).
    """
    source = Path(source)
    if not source.exists():
        raise UserInputError(f"--leaderboard {source} does not exist.")
    manifest = source / "manifest.json"
    if manifest.is_file():
        return _site_runs(source, manifest, protocol=protocol)
    if not source.is_dir():
        raise UserInputError(f"--leaderboard {source} is neither a leaderboard site nor a folder of runs.")
    runs = [load_run(path) for path in sorted(source.rglob("results.json"))]
    return tuple(r for r in runs if r.protocol["name"] == protocol)


def _site_runs(site: Path, manifest: Path, *, protocol: str) -> tuple[Run, ...]:
    doc = read_json(manifest)
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if schema != LEADERBOARD_SCHEMA:
        raise UserInputError(f"{manifest}: key 'schema' is {schema!r}; expected '{LEADERBOARD_SCHEMA}'.")
    entries = doc.get("entries")
    if not isinstance(entries, list):
        raise UserInputError(f"{manifest}: key 'entries' must be a list.")
    runs = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise UserInputError(f"{manifest}: entries[{i}] must be an object.")
        for key in ("protocol", "results", "outcomes"):
            if not isinstance(entry.get(key), str):
                raise UserInputError(f"{manifest}: key 'entries[{i}].{key}' is missing or not a string.")
        if entry["protocol"] != protocol:
            continue
        results = site / entry["results"]
        if not results.is_file():
            raise UserInputError(f"{manifest}: entries[{i}].results names {results}, which does not exist.")
        runs.append(load_run(results, outcomes=site / entry["outcomes"]))
    return tuple(sorted(runs, key=lambda r: str(r.results_path)))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def same_measurement(a: Run, b: Run) -> bool:
    """Same protocol version, data and split: the entries the default choice considers."""
    return (a.protocol["version"] == b.protocol["version"] and a.data["fingerprint"] == b.data["fingerprint"]
            and a.data["split_fingerprint"] == b.data["split_fingerprint"])


def choose_reference(candidate: Run, entries: Sequence[Run], *, against: str | None,
                     where: str | os.PathLike) -> Run:
    """The entry to compare with: ``--against NAME``, or the best comparable entry on the primary metric."""
    protocol = candidate.protocol["name"]
    if not entries:
        raise UserInputError(f"{where} has no entry of protocol '{protocol}' to compare with.")
    if against is not None:
        matches = [r for r in entries if against in r.names]
        if not matches:
            known = sorted({r.name for r in entries})
            hint = did_you_mean(against, sorted({n for r in entries for n in r.names}))
            raise UserInputError(f"--against {against}: no entry of protocol '{protocol}' in {where} has "
                                 f"that name{hint}; entries: {', '.join(known)}.")
        if len(matches) > 1:
            matches = [r for r in matches if same_measurement(r, candidate)] or matches
        if len(matches) > 1:
            paths = ", ".join(str(r.results_path) for r in matches)
            raise UserInputError(f"--against {against}: {len(matches)} entries of protocol '{protocol}' in "
                                 f"{where} have that name ({paths}); name one by its run folder or narrow "
                                 "--leaderboard.")
        return matches[0]
    others = [r for r in entries if not _same_file(r.results_path, candidate.results_path)]
    comparable = [r for r in others if same_measurement(r, candidate)]
    if not comparable:
        raise UserInputError(
            f"{where} has no other entry of protocol '{protocol}' version {candidate.protocol['version']} "
            f"scored on the candidate's data and split (data {candidate.data['fingerprint'][:12]}, split "
            f"{candidate.data['split_fingerprint'][:12]}); {len(others)} other entries were scored "
            "otherwise.")
    metric = get_metric(candidate.protocol["primary_metric"])
    scored = [(float(metric.badness(r.overall(metric.name))), i) for i, r in enumerate(comparable)
              if r.overall(metric.name) is not None]
    if not scored:
        raise UserInputError(f"No entry of protocol '{protocol}' in {where} has a value of '{metric.name}'.")
    return comparable[min(scored)[1]]


def check_comparable(candidate: Run, reference: Run) -> tuple[str, ...]:
    """Refuse (UserInputError) results that measure something else; return notes on what may differ."""
    cand, ref = candidate.results_path, reference.results_path
    for key, what in (("name", "protocol"), ("version", "protocol version"), ("task", "task"),
                      ("primary_metric", "primary metric")):
        a, b = candidate.protocol[key], reference.protocol[key]
        if a != b:
            raise UserInputError(f"{cand} and {ref} were scored with different {what}s ({a!r} and {b!r}), "
                                 "so they cannot be compared.")
    for key, what in (("fingerprint", "data"), ("split_fingerprint", "test splits")):
        a, b = str(candidate.data[key]), str(reference.data[key])
        if a != b:
            raise UserInputError(f"{cand} and {ref} were computed on different {what} ({key} {a[:12]} and "
                                 f"{b[:12]}), so they cannot be compared.")
    notes = []
    if candidate.protocol["fingerprint"] != reference.protocol["fingerprint"]:
        fingerprints = [str(run.protocol["fingerprint"])[:12] for run in (candidate, reference)]
        profiles = [str(run.protocol.get("profile")) for run in (candidate, reference)]
        notes.append(
            f"The protocol fingerprints differ ({' and '.join(fingerprints)}; profiles "
            f"{' and '.join(profiles)}): the runs used different protocol settings (training, model, "
            "profile, bootstrap size, reference numbers, or a facebench version with more protocol keys). "
            "They are compared because protocol version, data, split, task, primary metric and every "
            "sample's group labels agree.")
    return tuple(notes)


# ----------------------------------------------------------------------------------------------- outcomes
def _read_outcomes(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise UserInputError(f"Outcomes file {path} does not exist.")
    try:
        frame = pd.read_csv(path, dtype={"sample_id": str, "database": str}, keep_default_na=False,
                            na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise UserInputError(f"{path}: not a readable outcomes CSV ({str(exc).splitlines()[0]}).") from None
    if "sample_id" not in frame.columns:
        raise UserInputError(f"{path}: column 'sample_id' is missing.")
    return frame


@dataclass(frozen=True, kw_only=True)
class PairedOutcomes:
    """The two runs' outcomes aligned row by row (in the reference's order), and their shared attributes."""

    keys: tuple[str, ...]
    reference: pd.DataFrame = field(repr=False, compare=False)
    candidate: pd.DataFrame = field(repr=False, compare=False)
    attributes: tuple[str, ...]

    @property
    def n(self) -> int:
        return len(self.reference)

    @property
    def groups(self) -> pd.DataFrame:
        return self.reference[list(self.attributes)]


def _differ(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Row positions where two aligned columns differ (NaN equals NaN; numbers to 1e-6, the CSV precision)."""
    if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
        x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
        same = np.isclose(x, y, rtol=0.0, atol=1e-6) | (np.isnan(x) & np.isnan(y))
    else:
        both_missing = a.isna().to_numpy() & b.isna().to_numpy()
        same = both_missing | (a.astype(str).to_numpy() == b.astype(str).to_numpy())
    return np.flatnonzero(~same)


def _keyed(frame: pd.DataFrame, keys: tuple[str, ...], path: Path) -> pd.DataFrame:
    """``frame`` indexed by its key columns; a repeated key is refused."""
    for key in keys:
        if key not in frame.columns:
            raise UserInputError(f"{path}: column '{key}' is missing.")
    index = (pd.MultiIndex.from_frame(frame[list(keys)].astype(str)) if len(keys) > 1
             else pd.Index(frame[keys[0]].astype(str)))
    repeated = np.flatnonzero(index.duplicated())
    if repeated.size:
        raise UserInputError(f"{path}: line {int(repeated[0]) + 2} repeats {'/'.join(keys)} "
                             f"{index[int(repeated[0])]!r}, so its samples cannot be paired one to one.")
    return frame.set_index(index)


def pair_outcomes(candidate: Run, reference: Run) -> PairedOutcomes:
    """Join the two ``outcomes.csv`` one to one; refuse other samples, group labels or true values."""
    ref, cand = _read_outcomes(reference.outcomes_path), _read_outcomes(candidate.outcomes_path)
    keys = ("sample_id", "database") if "database" in set(ref.columns) & set(cand.columns) else ("sample_id",)
    ref, cand = _keyed(ref, keys, reference.outcomes_path), _keyed(cand, keys, candidate.outcomes_path)
    only_ref, only_cand = ref.index.difference(cand.index), cand.index.difference(ref.index)
    if len(only_ref) or len(only_cand):
        first, inside, outside = ((only_ref[0], reference, candidate) if len(only_ref)
                                  else (only_cand[0], candidate, reference))
        raise UserInputError(f"The outcomes of {reference.results_path} and {candidate.results_path} do not "
                             f"hold the same samples: {len(only_ref) + len(only_cand)} are in one file only, "
                             f"the first being {first!r} (in {inside.outcomes_path}, not in "
                             f"{outside.outcomes_path}).")
    cand = cand.loc[ref.index]
    by_ref, by_cand = reference.results["metrics"]["by_group"], candidate.results["metrics"]["by_group"]
    attributes = tuple(a for a in by_cand if a in by_ref and a in ref.columns and a in cand.columns)
    scored_from_columns = bool(getattr(TASKS.get(candidate.protocol["task"]), "outcome_columns", ()))
    for column in attributes + (() if scored_from_columns else ("y_true",)):
        for frame, run in ((ref, reference), (cand, candidate)):
            if column not in frame.columns:
                raise UserInputError(f"{run.outcomes_path}: column '{column}' is missing.")
        bad = _differ(ref[column], cand[column])
        if bad.size:
            i = int(bad[0])
            raise UserInputError(
                f"{reference.results_path} and {candidate.results_path} give sample {ref.index[i]!r} "
                f"different '{column}' values ({ref[column].iloc[i]!r} and {cand[column].iloc[i]!r}; "
                f"{bad.size} samples differ), so they were not computed on the same data.")
    return PairedOutcomes(keys=keys, reference=ref.reset_index(drop=True),
                          candidate=cand.reset_index(drop=True), attributes=attributes)


def metric_outcomes(frame: pd.DataFrame, metric: Metric, *, task: str, path: Path) -> np.ndarray:
    """Per-sample outcomes of ``metric``: the task's outcome column (``outcome_columns``, e.g. CACD's ``ap``
    for MAP), else ``metric.outcomes(y_true, y_pred)``. NaN only where a ``partial`` metric is undefined."""
    columns = dict(getattr(TASKS.get(task), "outcome_columns", ()))
    if columns and metric.name not in columns:
        raise UserInputError(f"Metric '{metric.name}' has no per-sample outcome column in task '{task}' "
                             f"(it has {', '.join(columns)}).")
    needed = (columns[metric.name],) if columns else ("y_true", "y_pred")
    for column in needed:
        if column not in frame.columns:
            raise UserInputError(f"{path}: column '{column}' is missing.")
    try:
        if columns:
            out = pd.to_numeric(frame[needed[0]], errors="raise").to_numpy(dtype=float)
        else:
            out = metric.outcomes(frame["y_true"].to_numpy(), frame["y_pred"].to_numpy())
    except (ValueError, TypeError) as exc:
        raise UserInputError(f"{path}: the outcomes of '{metric.name}' cannot be computed ({exc}).") from None
    if np.isinf(out).any() or (np.isnan(out).any() and not getattr(metric, "partial", False)):
        raise UserInputError(f"{path}: the outcomes of '{metric.name}' contain NaN or infinite values.")
    return out


def min_group_size(run: Run) -> int:
    """The protocol's ``min_group_size``: a group competes for worst/best when its ``n`` is at least this.

    Read from ``statistics.min_group_size`` (results schema 1.1). **Fallback for schema 1.0 files**, which do
    not store it: recovered from the run's ``"small"`` flags. Every flagged group has ``n`` below it and every
    other group at least it, so one more than the largest flagged ``n`` sorts the groups exactly as the run
    did (1 when nothing is flagged). Old leaderboards stay comparable without rescoring every entry.
    """
    statistics = run.statistics
    if statistics is not None:
        return int(statistics["min_group_size"])
    small = [int(value.get("n", 0)) for groups in run.results["metrics"]["by_group"].values()
             for metrics in groups.values() for value in metrics.values()
             if isinstance(value, dict) and value.get("flag") == "small"]
    return max(small) + 1 if small else 1


# ----------------------------------------------------------------------------------------------- gates
class _GateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricBound(_GateSpec):
    """``max_metric`` / ``min_metric``: the candidate's overall value of ``metric`` against ``value``."""

    metric: str
    value: float = Field(allow_inf_nan=False)


class GapBound(_GateSpec):
    """``max_gap``: the candidate's worst-vs-best gap of ``metric`` across ``attribute`` is <= ``value``."""

    metric: str
    attribute: str
    value: float = Field(ge=0, allow_inf_nan=False)


class RatioBound(_GateSpec):
    """``max_ratio``: the candidate's worst/best ratio ("times worse", >= 1) is <= ``value``."""

    metric: str
    attribute: str
    value: float = Field(ge=1, allow_inf_nan=False)


class RegressionCheck(_GateSpec):
    """``no_significant_regression``: the candidate is not significantly worse on ``metric``."""

    metric: str


class Gate(_GateSpec):
    """One gate: a mapping with exactly one of the keys below.

    >>> gate = Gate.model_validate({"max_gap": {"metric": "mae", "attribute": "race", "value": 2}})
    >>> gate.kind, gate.spec.value
    ('max_gap', 2.0)
    """

    max_gap: GapBound | None = None
    max_ratio: RatioBound | None = None
    max_metric: MetricBound | None = None
    min_metric: MetricBound | None = None
    no_significant_regression: RegressionCheck | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Gate:
        if sum(getattr(self, name) is not None for name in type(self).model_fields) != 1:
            raise ValueError(f"a gate has exactly one of the keys {', '.join(type(self).model_fields)}")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)

    @property
    def spec(self) -> MetricBound | GapBound | RatioBound | RegressionCheck:
        return getattr(self, self.kind)


class GateFile(_GateSpec):
    """A gates file: ``gates:`` followed by a list of gates (see docs/ci.md)."""

    gates: tuple[Gate, ...] = Field(min_length=1)


def load_gates(path: str | os.PathLike) -> GateFile:
    """Read and validate a gates YAML file; one sentence naming the file and the key on any problem."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"Gate file {path} does not exist.")
    raw = read_yaml_mapping(path, what="a gate file must be a YAML mapping with the key 'gates'")
    try:
        return GateFile.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, where=str(path), model=GateFile) from None


def check_gates(gates: GateFile, candidate: Run, *, path: str | os.PathLike) -> None:
    """Every gate names a known metric of the candidate's protocol and an attribute it reports a gap for."""
    overall = candidate.results["metrics"]["overall"]
    disparities = candidate.results["metrics"]["disparities"]
    for i, gate in enumerate(gates.gates):
        spec, key = gate.spec, f"gates[{i}].{gate.kind}"
        try:
            get_metric(spec.metric)
        except UserInputError:
            raise UserInputError(f"{path}: key '{key}.metric': unknown metric '{spec.metric}'"
                                 f"{did_you_mean(spec.metric, METRIC_NAMES)}.") from None
        if spec.metric not in overall:
            raise UserInputError(f"{path}: key '{key}.metric': '{spec.metric}' is not a metric of "
                                 f"{candidate.results_path}{did_you_mean(spec.metric, overall)}; it has "
                                 f"{', '.join(overall)}.")
        attribute = getattr(spec, "attribute", None)
        known = disparities.get(spec.metric, {})
        if attribute is not None and attribute not in known:
            raise UserInputError(f"{path}: key '{key}.attribute': '{attribute}' is not an attribute of "
                                 f"{candidate.results_path}{did_you_mean(attribute, known)}; it has "
                                 f"{', '.join(known) or 'none'}.")


@dataclass(frozen=True, kw_only=True)
class GateResult:
    """One gate checked: ``observed`` is the candidate's point estimate (None: undefined, or a significance
    check, which has no single value)."""

    kind: str
    metric: str
    attribute: str | None
    rule: str
    observed: float | None
    passed: bool


def _evaluate_gates(gates: GateFile | None, candidate: Run, comparisons: Sequence[MetricComparison]
                    ) -> tuple[GateResult, ...]:
    by_metric = {c.metric: c for c in comparisons}
    out = []
    for gate in gates.gates if gates is not None else ():
        spec, kind = gate.spec, gate.kind
        attribute = getattr(spec, "attribute", None)
        if kind == "no_significant_regression":
            out.append(GateResult(kind=kind, metric=spec.metric, attribute=None,
                                  rule="no significant regression", observed=None,
                                  passed=not by_metric[spec.metric].regressed))
            continue
        if attribute is None:
            observed = candidate.overall(spec.metric)
        else:
            observed = candidate.results["metrics"]["disparities"][spec.metric][attribute].get(
                "gap" if kind == "max_gap" else "ratio")
            observed = None if observed is None or not math.isfinite(float(observed)) else float(observed)
        lower = kind == "min_metric"
        passed = observed is not None and (observed >= spec.value if lower else observed <= spec.value)
        rule = f"{'>=' if lower else '<='} {spec.value:g}"
        out.append(GateResult(kind=kind, metric=spec.metric, attribute=attribute, rule=rule,
                              observed=observed, passed=passed))
    return tuple(out)


# ----------------------------------------------------------------------------------------------- comparison
def _by_harm(groups: Sequence[GroupChange]) -> tuple[GroupChange, ...]:
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
        return tuple((a.attribute, g) for a in self.attributes for g in _by_harm(a.regressed_groups))

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


def _check_bootstrap(*, n_boot: int, seed: int) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise UserInputError(f"--n-boot must be a whole number of at least 1, got {n_boot!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserInputError(f"--seed must be a whole number of at least 0, got {seed!r}.")


def compare(candidate: Run, reference: Run, *, gates: GateFile | None = None,
            gate_file: str | os.PathLike | None = None, n_boot: int = DEFAULT_N_BOOT,
            seed: int = DEFAULT_SEED) -> Comparison:
    """Compare two runs: refusals (:func:`check_comparable`, :func:`pair_outcomes`), paired bootstrap, gates.

    ``gate_file`` names the gates' file in messages. The same ``seed`` gives the same numbers.
    """
    _check_bootstrap(n_boot=n_boot, seed=seed)
    if gates is not None:
        check_gates(gates, candidate, path=gate_file or "the gate file")
    notes = list(check_comparable(candidate, reference))
    paired = pair_outcomes(candidate, reference)
    names = [candidate.protocol["primary_metric"]]
    names += [g.spec.metric for g in (gates.gates if gates else ()) if g.kind == "no_significant_regression"]
    comparisons = [compare_metric(get_metric(name), paired, candidate=candidate, reference=reference,
                                  n_boot=n_boot, seed=seed) for name in dict.fromkeys(names)]
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
                      gates=_evaluate_gates(gates, candidate, comparisons),
                      gate_file=None if gate_file is None else str(gate_file), notes=tuple(notes))


def compare_metric(metric: Metric, paired: PairedOutcomes, *, candidate: Run, reference: Run, n_boot: int,
                   seed: int) -> MetricComparison:
    """One metric, reference against candidate, on their paired outcomes: the overall paired change and
    every shared attribute's per-group changes (Holm-adjusted) and gap change. The bias report's "change
    against source-only" calls this too, so the report and the CI gate cannot disagree."""
    if getattr(metric, "aggregate", None) is not None:
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
    overall = paired_difference(a[defined], b[defined], n_boot=n_boot, seed=seed, confidence=CONFIDENCE,
                                label="overall", metric=metric)
    attributes = ()
    if paired.attributes:
        attributes = paired_group_changes(a, b, paired.groups, metric=metric, n_boot=n_boot, seed=seed,
                                          confidence=CONFIDENCE, min_group_size=min_group_size(candidate))
    value_a = float(metric.from_mean(a[defined].mean()))
    value_b = float(metric.from_mean(b[defined].mean()))
    return MetricComparison(metric=metric.name, higher_is_better=metric.higher_is_better, reference=value_a,
                            candidate=value_b, overall=overall, attributes=attributes,
                            worse=bool(metric.badness(value_b) > metric.badness(value_a)))


# ----------------------------------------------------------------------------------------------- markdown
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
                                  f"Holm-adjusted p = {_p(g.p_holm)})" for g in _by_harm(a.regressed_groups))
                out.append(f"`{m.metric}` is significantly worse for {named}.")
    for gate in c.gates:
        if not gate.passed and gate.kind != "no_significant_regression":  # its regressions are listed above
            target = f"`{_md(gate.metric)}`" + (f", `{_md(gate.attribute)}`" if gate.attribute else "")
            observed = "undefined" if gate.observed is None else _fmt(gate.observed)
            out.append(f"Gate `{gate.kind}` ({target} {gate.rule}) is broken: {observed}.")
    return out


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
        lines += ["### Worst-vs-best gaps", "",
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


# ----------------------------------------------------------------------------------------------- CLI
def cli_main(args) -> int:
    """``facebench compare``: 0 pass, 1 a significant regression or a broken gate. Bad input raises
    :class:`UserInputError`, which :func:`facebench.cli.main` turns into exit code 2."""
    _check_bootstrap(n_boot=args.n_boot, seed=args.seed)
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
