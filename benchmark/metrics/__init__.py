"""Metrics and the disaggregation engine.

Metrics are looked up by name; ``cs<k>`` names are parsed into :func:`~facebench.metrics.regression.cs_at`
and ``tpr@<label>`` (also ``fpr``, ``tnr``, ``fnr``, ``selection_rate``) into the per-class rates of
:mod:`facebench.metrics.classification`:

>>> get_metric("mae").higher_is_better
False
>>> get_metric("cs7").name
'cs7'
>>> "rmse" in METRIC_NAMES
True
>>> get_metric("tpr@cat").name, get_metric("balanced_accuracy").higher_is_better
('tpr@cat', True)
>>> try:
...     get_metric("maee")
... except UserInputError as err:
...     print(err)   # doctest: +ELLIPSIS
Unknown metric 'maee' (did you mean 'mae'?); known metrics: mae, rmse, mean_signed_error, cs5, cs10, ...

Other task modules add theirs with :func:`register_metric`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from ..errors import UserInputError, did_you_mean
from .base import Metric
from .regression import MAE, MEAN_SIGNED_ERROR, RMSE, cs_at

_REGISTRY: dict[str, Metric] = {}
_CS_PATTERN = re.compile(r"^cs(\d+(?:\.\d+)?)$")


class _MetricNames(Sequence):
    """Live, read-only view of the registered metric names (in registration order)."""

    def __getitem__(self, i):
        return tuple(_REGISTRY)[i]

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __contains__(self, name: object) -> bool:
        return name in _REGISTRY

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_REGISTRY))

    def __repr__(self) -> str:
        return repr(tuple(_REGISTRY))


#: Names accepted by :func:`get_metric` (besides any ``cs<k>``); a live view of the registry.
METRIC_NAMES: Sequence[str] = _MetricNames()


def register_metric(metric: Metric, *, replace: bool = False) -> Metric:
    """Add ``metric`` to the registry under ``metric.name`` and return it.

    >>> m = register_metric(get_metric("mae"), replace=True)
    >>> register_metric(m)
    Traceback (most recent call last):
    ...
    ValueError: A metric named 'mae' is already registered; pass replace=True to override it.
    """
    if not isinstance(metric, Metric):
        raise TypeError(f"register_metric expects a Metric, got {type(metric).__name__}.")
    if metric.name in _REGISTRY and not replace:
        raise ValueError(
            f"A metric named {metric.name!r} is already registered; pass replace=True to override it."
        )
    _REGISTRY[metric.name] = metric
    return metric


def get_metric(name: str | Metric) -> Metric:
    """Return the registered metric called ``name`` (a :class:`Metric` is returned as it is).

    Raises :class:`~facebench.errors.UserInputError` with a did-you-mean suggestion for unknown names.
    """
    if isinstance(name, Metric):
        return name
    if not isinstance(name, str):
        raise UserInputError(f"A metric must be given by name or as a Metric, got {name!r}.")
    key = name.strip()
    if key in _REGISTRY:
        return _REGISTRY[key]
    match = _CS_PATTERN.match(key)
    if match:
        return cs_at(float(match.group(1)))
    per_class = parse_classification_metric(key)
    if per_class is not None:
        return per_class
    raise UserInputError(
        f"Unknown metric {name!r}{did_you_mean(key, _REGISTRY)}; known metrics: "
        f"{', '.join(_REGISTRY)} (and cs<k> for any k; tpr@<label>, fpr@<label>, tnr@<label>, fnr@<label>, "
        "selection_rate@<label> for any class label)."
    )


for _m in (MAE, RMSE, MEAN_SIGNED_ERROR, cs_at(5), cs_at(10)):
    register_metric(_m)
del _m

from .classification import (  # noqa: E402
    ACCURACY,
    BALANCED_ACCURACY,
    CLASSIFICATION_METRICS,
    FAIRNESS_METRICS,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equal_opportunity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_negative_rate,
    false_positive_rate,
    get_fairness_metric,
    parse_classification_metric,
    selection_rate,
    true_negative_rate,
    true_positive_rate,
)
from .groups import (  # noqa: E402
    Disaggregation,
    ExtendedMetric,
    cohens_d,
    cohens_h,
    disaggregate,
    disparities,
    holm,
    permutation_test,
    wilson_interval,
)

for _m in CLASSIFICATION_METRICS:
    register_metric(_m)
del _m

__all__ = [
    "Metric",
    "METRIC_NAMES",
    "get_metric",
    "register_metric",
    "MAE",
    "RMSE",
    "MEAN_SIGNED_ERROR",
    "cs_at",
    "Disaggregation",
    "ExtendedMetric",
    "disaggregate",
    "disparities",
    "wilson_interval",
    "holm",
    "cohens_d",
    "cohens_h",
    "permutation_test",
    "ACCURACY",
    "BALANCED_ACCURACY",
    "CLASSIFICATION_METRICS",
    "selection_rate",
    "true_positive_rate",
    "false_positive_rate",
    "true_negative_rate",
    "false_negative_rate",
    "parse_classification_metric",
    "FAIRNESS_METRICS",
    "get_fairness_metric",
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "equal_opportunity_difference",
    "equal_opportunity_ratio",
]

# Task families whose metric objects live with their procedures (imported last: they use the registry above).
from . import generation, identification, verification  # noqa: E402,F401

#: CACD retrieval (CARC): the outcomes are computed per query by the task; these only aggregate them.
MAP = Metric(name="map", description="Mean average precision: mean over queries of each query's AP (CARC evaluation.m).",
             higher_is_better=True, outcome=lambda y_true, y_pred: y_pred)
P_AT_1 = Metric(name="p_at_1", description="Precision at 1: fraction of queries whose top database image is relevant.",
                higher_is_better=True, outcome=lambda y_true, y_pred: y_pred, is_rate=True)

for _m in (identification.rank_at(1), identification.rank_at(5), generation.IDENTITY_PRESERVATION,
           generation.AGE_ACCURACY, MAP, P_AT_1):
    if _m.name not in _REGISTRY:
        register_metric(_m)
