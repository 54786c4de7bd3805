"""Gate files (``facebench compare --gate GATES.yaml``): pydantic models, loading, checks and verdicts.

A gate compares the candidate's *point estimates*, as written in its results.json, with a bound (``<=`` /
``>=``); intervals do not enter, and an undefined value breaks its gate. ``no_significant_regression`` applies
the significance rule (:mod:`facebench.comparison.verdict`) to one more metric.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from facebench.errors import UserInputError, did_you_mean, validation_error
from facebench.metrics import METRIC_NAMES, get_metric
from facebench.protocol import read_yaml_mapping
from facebench.results import Run

if TYPE_CHECKING:  # verdict imports this module
    from facebench.comparison.verdict import MetricComparison

__all__ = ["MetricBound", "GapBound", "RatioBound", "RegressionCheck", "Gate", "GateFile", "load_gates",
           "check_gates", "GateResult", "evaluate_gates"]


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


def evaluate_gates(gates: GateFile | None, candidate: Run, comparisons: Sequence[MetricComparison]
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
