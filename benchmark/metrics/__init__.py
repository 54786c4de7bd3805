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

from ..errors import UserInputError  # noqa: F401  (the doctest above uses it)
from .base import ExtendedMetric, Metric, PartitionedAggregate
from .registry import _REGISTRY, METRIC_NAMES, get_metric, register_metric
from .regression import MAE, MEAN_SIGNED_ERROR, RMSE, cs_at

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
from .groups import Disaggregation, disaggregate, disparities  # noqa: E402
from .intervals import percentile_interval, wilson_interval  # noqa: E402
from .significance import cohens_d, cohens_h, holm, permutation_test  # noqa: E402

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
    "PartitionedAggregate",
    "disaggregate",
    "disparities",
    "wilson_interval",
    "percentile_interval",
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

# Task families whose metric objects live with their procedures (imported last, so that the built-in metrics
# above are registered first; differentials registers fmr and fnmr).
from . import differentials, generation, identification, verification  # noqa: E402,F401

#: CACD retrieval (CARC): the outcomes are computed per query by the task; these only aggregate them.
MAP = Metric(name="map", description="Mean average precision: mean over queries of each query's AP (CARC evaluation.m).",
             higher_is_better=True, outcome=lambda y_true, y_pred: y_pred)
P_AT_1 = Metric(name="p_at_1", description="Precision at 1: fraction of queries whose top database image is relevant.",
                higher_is_better=True, outcome=lambda y_true, y_pred: y_pred, is_rate=True)

for _m in (identification.rank_at(1), identification.rank_at(5), generation.IDENTITY_PRESERVATION,
           generation.AGE_ACCURACY, MAP, P_AT_1, generation.EDIT_SUCCESS, generation.IDENTITY_SIMILARITY,
           generation.AGING_OFFSET, *generation.SET_METRICS):
    if _m.name not in _REGISTRY:
        register_metric(_m)
