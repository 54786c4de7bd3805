"""The types of results.json that every reader relies on, checked once by :func:`facebench.results.load_run`.

``compare``, the bias report and the leaderboard read the same document, so they must accept and refuse the same
files: a results.json with the right keys but a string where a number belongs used to crash the report and the
leaderboard while ``compare`` printed PASS. The models are strict (no string-to-number coercion, no booleans for
whole numbers) and allow extra keys (newer minor versions add some; the contract is in
:mod:`facebench.results`). NaN and Infinity never get here: the JSON reader refuses them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ResultsDocument"]

_LOOSE = ConfigDict(strict=True, extra="allow")
Number = float | None


class _MetricValue(BaseModel):
    model_config = _LOOSE
    value: Number = None
    ci_low: Number = None
    ci_high: Number = None
    n: int = Field(ge=0)
    flag: str = ""
    n_units: int | None = Field(default=None, ge=0)
    detectable_gap: Number = None


class _Disparity(BaseModel):
    model_config = _LOOSE
    worst_group: str | None = None
    best_group: str | None = None
    worst_value: Number = None
    best_value: Number = None
    gap: Number = None
    gap_ci_low: Number = None
    gap_ci_high: Number = None
    ratio: Number = None


class _Metrics(BaseModel):
    model_config = _LOOSE
    overall: dict[str, _MetricValue]
    by_group: dict[str, dict[str, dict[str, _MetricValue]]]
    disparities: dict[str, dict[str, _Disparity]]
    group_tests: list[dict[str, Any]] = []
    differentials: dict[str, Any] | None = None


class _Protocol(BaseModel):
    model_config = _LOOSE
    name: str
    version: int | str
    title: str
    task: str
    primary_metric: str
    fingerprint: str
    profile: str | None = None
    deviations: list[dict[str, Any]] = []
    overrides: list[str] = []
    comparability: dict[str, Any] | None = None


class _Baseline(BaseModel):
    model_config = _LOOSE
    name: str
    label: str | None = None
    kind: str | None = None
    params: dict[str, Any] = {}
    pretrained_on: str | None = None


class _Data(BaseModel):
    model_config = _LOOSE
    synthetic: bool
    fingerprint: str
    split_fingerprint: str
    dataset: str | None = None
    split: str | None = None
    n_samples: int | None = Field(default=None, ge=0)
    n_rejected: int | None = Field(default=None, ge=0)


class _Statistics(BaseModel):
    model_config = _LOOSE
    n_boot: int = Field(ge=0)
    confidence: float = Field(gt=0.0, lt=1.0)
    interval_method: str = ""
    min_group_size: int = Field(ge=0)
    seed: int = Field(ge=0)
    units: dict[str, Any] | None = None


class _Training(BaseModel):
    model_config = _LOOSE
    epochs: list[dict[str, Any]] = []
    resumed_from_epoch: int | None = None


class ResultsDocument(BaseModel):
    """What every reader reads from a results.json, with its type."""

    model_config = _LOOSE
    schema_version: str
    protocol: _Protocol
    baseline: _Baseline
    data: _Data
    metrics: _Metrics
    statistics: _Statistics | None = None
    training: _Training = _Training()
    reference: list[dict[str, Any]] = []
    splits: dict[str, dict[str, _MetricValue]] = {}
    provenance: dict[str, Any] = {}
    files: dict[str, Any] = {}
