"""Confidence intervals of the disaggregation engine: Wilson score intervals for rates and bootstrap
percentile intervals for everything else (:class:`~facebench.metrics.groups.Disaggregation`)."""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from .base import check_confidence

__all__ = ["percentile_interval", "wilson_interval"]


def wilson_interval(successes, n, *, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion (vectorised over ``successes`` and ``n``).

    ``p = k/n``, ``z`` the two-sided normal quantile; centre ``(p + z²/2n) / (1 + z²/n)`` and half-width
    ``z / (1 + z²/n) * sqrt(p(1-p)/n + z²/4n²)``. Unlike the Wald interval it is never zero-width at
    0 % or 100 %. ``n = 0`` gives NaN.

    >>> lo, hi = wilson_interval(0, 10)
    >>> round(float(lo), 6), round(float(hi), 4)     # upper end z²/(n+z²) = 3.8415/13.8415
    (0.0, 0.2775)
    >>> lo, hi = wilson_interval(10, 10)
    >>> round(float(lo), 4), round(float(hi), 6)
    (0.7225, 1.0)
    """
    check_confidence(confidence)
    k = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    z = norm.ppf(0.5 + confidence / 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2.0 * n)) / denom
        half = (z / denom) * np.sqrt(np.maximum(p * (1.0 - p) / n + z * z / (4.0 * n * n), 0.0))
        # exact ends at 0 % and 100 % (the formula gives them only up to rounding)
        low = np.where(k <= 0, 0.0, np.clip(centre - half, 0.0, 1.0))
        high = np.where(k >= n, 1.0, np.clip(centre + half, 0.0, 1.0))
    bad = ~(n > 0)
    low = np.where(bad, np.nan, low)
    high = np.where(bad, np.nan, high)
    return low, high


def percentile_interval(draws, *, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of bootstrap draws along the last axis: the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles (numpy's linear interpolation). NaN draws make a NaN end; no draws
    (a last axis of length 0) give NaN ends.

    >>> lo, hi = percentile_interval(np.arange(5.0), confidence=0.5)    # the 25th and 75th percentiles
    >>> float(lo), float(hi)
    (1.0, 3.0)
    >>> percentile_interval(np.empty((2, 0)))[0].tolist()
    [nan, nan]
    """
    draws = np.asarray(draws, dtype=float)
    alpha = 1.0 - confidence
    if draws.shape[-1] == 0:
        nan = np.full(draws.shape[:-1], np.nan)
        return nan, nan.copy()
    with np.errstate(invalid="ignore"):
        lo, hi = np.quantile(draws, [alpha / 2.0, 1.0 - alpha / 2.0], axis=-1)
    return lo, hi
