"""Confidence intervals of the disaggregation engine: Wilson score intervals for rates and bootstrap
percentile intervals for everything else (:class:`~facebench.metrics.groups.Disaggregation`); and the t
interval over repeated training runs (:func:`t_interval`), whose unit is the run."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import norm, t

from .base import check_confidence

__all__ = ["DETECTION_POWER", "minimum_detectable_difference", "percentile_interval", "t_interval", "wilson_interval"]

#: Power at which :func:`minimum_detectable_difference` sizes the smallest detectable gap.
DETECTION_POWER = 0.80


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


def percentile_interval(draws, *, confidence: float = 0.95, skip_nan: bool = False
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of bootstrap draws along the last axis: the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles (numpy's linear interpolation). NaN draws make a NaN end, unless
    ``skip_nan`` (the cluster bootstrap, whose draws are NaN where no unit of a group was picked); no draws
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
    quantile = np.nanquantile if skip_nan else np.quantile
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN ends, as documented
        lo, hi = quantile(draws, [alpha / 2.0, 1.0 - alpha / 2.0], axis=-1)
    return lo, hi


def minimum_detectable_difference(std_err, *, confidence: float = 0.95, power: float = DETECTION_POWER):
    """The smallest true difference a two-sided test at ``confidence`` detects with probability ``power``,
    for an estimate with standard error ``std_err``: ``(z_(1+c)/2 + z_power) · SE`` (the normal-theory rule,
    Cohen 1988, §12; 2.80 · SE at 95 % and 80 %).

    A group's bootstrap standard error gives the smallest gap *from a fixed value* that its sample could
    show; a gap between two groups of similar size has about √2 times its standard error.

    >>> round(float(minimum_detectable_difference(1.0)), 4)
    2.8016
    """
    check_confidence(confidence)
    return (norm.ppf(0.5 + confidence / 2.0) + norm.ppf(power)) * np.asarray(std_err, dtype=float)


def t_interval(values, *, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``values`` (one number per repeated run: a training seed, a data draw) with Student's t interval
    over them (n − 1 degrees of freedom): the variation a new run brings, which a bootstrap over one run's test
    images does not see. NaN bounds with fewer than two values.

    >>> tuple(round(v, 3) for v in t_interval([0.6, 0.7, 0.8]))
    (0.7, 0.452, 0.948)
    """
    check_confidence(confidence)
    values = np.asarray(values, dtype=float)
    mean = float(values.mean()) if len(values) else float("nan")
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = float(t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, mean - half, mean + half
