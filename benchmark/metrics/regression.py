"""Age-regression metrics: MAE, RMSE, mean signed error and the cumulative score CS@k.

Each is a :class:`~facebench.metrics.base.Metric`, i.e. a transform of the mean of a per-sample outcome,
so :func:`facebench.metrics.groups.disaggregate` can bootstrap them without a Python loop.

Hand-computable examples (errors ``pred - true`` are ``+2, 0, -3, +6``):

>>> y_true, y_pred = [20, 30, 40, 50], [22, 30, 37, 56]
>>> MAE(y_true, y_pred)              # (2 + 0 + 3 + 6) / 4
2.75
>>> RMSE(y_true, y_pred)             # sqrt((4 + 0 + 9 + 36) / 4) = sqrt(12.25)
3.5
>>> MEAN_SIGNED_ERROR(y_true, y_pred)  # (2 + 0 - 3 + 6) / 4
1.25
>>> cs_at(5)(y_true, y_pred)         # 3 of the 4 errors are within 5 years
0.75
"""

from __future__ import annotations

import numpy as np

from .base import Metric

__all__ = ["MAE", "RMSE", "MEAN_SIGNED_ERROR", "cs_at", "CS_TOLERANCE"]

#: Absolute slack when testing ``|error| <= k`` for CS@k, so that an error such as
#: ``20.1 - 15.1 = 5.000000000000002`` still counts as "within 5 years".
CS_TOLERANCE = 1e-9


def _error(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    return np.asarray(y_pred, dtype=float) - np.asarray(y_true, dtype=float)


def _abs_error(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    return np.abs(_error(y_true, y_pred))


def _squared_error(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    return np.square(_error(y_true, y_pred))


MAE = Metric(
    name="mae",
    description="Mean absolute error |predicted - true|.",
    higher_is_better=False,
    outcome=_abs_error,
    unit="years",
)

RMSE = Metric(
    name="rmse",
    description="Root mean squared error sqrt(mean((predicted - true)^2)).",
    higher_is_better=False,
    outcome=_squared_error,
    finalize=np.sqrt,
    unit="years",
)

MEAN_SIGNED_ERROR = Metric(
    name="mean_signed_error",
    description="Mean signed error mean(predicted - true): positive over-estimates, negative under-estimates; "
    "the worst group is the one furthest from 0.",
    higher_is_better=False,
    worst_by_abs=True,
    outcome=_error,
    unit="years",
)


class _WithinK:
    """Picklable outcome ``|pred - true| <= k`` (a closure would not pickle)."""

    def __init__(self, k: float) -> None:
        self.k = k

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        return (_abs_error(y_true, y_pred) <= self.k + CS_TOLERANCE).astype(float)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _WithinK) and other.k == self.k

    def __hash__(self) -> int:
        return hash(("within", self.k))


def cs_at(k: float) -> Metric:
    """Cumulative score CS@k: the fraction of samples whose absolute error is at most ``k`` years.

    Higher is better; it is a rate, so per-group intervals are Wilson score intervals. The name is
    ``"cs<k>"`` (``"cs5"``, ``"cs2.5"``), which :func:`facebench.metrics.get_metric` parses back.

    >>> cs5 = cs_at(5)
    >>> cs5.name, cs5.higher_is_better, cs5.is_rate
    ('cs5', True, True)
    >>> cs5([10, 10, 10, 10], [15, 16, 4, 10])   # errors 5, 6, 6, 0 -> 2 of 4 within 5
    0.5
    >>> cs_at(2.5).name
    'cs2.5'
    """
    k = float(k)
    if not np.isfinite(k) or k < 0:
        raise ValueError(f"CS@k needs a finite k >= 0, got {k}.")
    label = str(int(k)) if k.is_integer() else repr(k)
    return Metric(
        name=f"cs{label}",
        description=f"Cumulative score: fraction of samples with |predicted - true| <= {label}.",
        higher_is_better=True,
        outcome=_WithinK(k),
        is_rate=True,
        unit="",
    )
