"""Input checks shared by the verification protocols (:mod:`facebench.metrics.verification`) and the
demographic differentials (:mod:`facebench.metrics.differentials`): scores, same/different labels, rates.

>>> as_bool([1, 0, 1], name="issame").tolist()
[True, False, True]
>>> check_rate(1e-3, name="far", low_open=True)
0.001
"""

from __future__ import annotations

import numpy as np

from .base import as_1d

__all__ = ["as_bool", "as_scores", "as_thresholds", "check_rate", "frozen"]


def frozen(values, dtype=float) -> np.ndarray:
    """A read-only copy of ``values`` (the arrays of frozen result dataclasses)."""
    arr = np.array(values, dtype=dtype)
    arr.setflags(write=False)
    return arr


def as_bool(values, *, name: str) -> np.ndarray:
    """A 1-D boolean array from booleans or 0/1 numbers (anything else is refused)."""
    arr = as_1d(values, name=name)
    if arr.dtype.kind == "b":
        return arr.astype(bool)
    if arr.dtype.kind in "iuf" and np.isin(arr, (0, 1)).all():
        return arr.astype(bool)
    if arr.dtype.kind == "O" and all(isinstance(v, (bool, np.bool_)) for v in arr):
        return arr.astype(bool)
    raise ValueError(f"{name} must hold booleans or 0/1 values.")


def as_scores(values, *, name: str) -> np.ndarray:
    """A 1-D float array of finite real numbers."""
    arr = as_1d(values, name=name)
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}.")
    return arr.astype(float)


def as_thresholds(values, *, name: str, minimum: int = 1) -> np.ndarray:
    """Scores (:func:`as_scores`) with at least ``minimum`` values."""
    arr = as_scores(values, name=name)
    if arr.size < minimum:
        raise ValueError(f"{name} needs at least {minimum} value(s), got {arr.size}.")
    return arr


def check_rate(value, *, name: str, low_open: bool = False) -> float:
    """``value`` as a float in [0, 1] (in (0, 1] when ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number in {'(0, 1]' if low_open else '[0, 1]'}, got {value!r}.")
    v = float(value)
    ok = (0.0 < v <= 1.0) if low_open else (0.0 <= v <= 1.0)
    if not ok:
        raise ValueError(f"{name} must be in {'(0, 1]' if low_open else '[0, 1]'}, got {value!r}.")
    return v
