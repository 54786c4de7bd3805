"""The :class:`Metric` spec shared by every task's metrics.

Every metric facebench disaggregates is a transform of the **mean of a per-sample outcome**: MAE is the
mean absolute error, RMSE the square root of the mean squared error, CS@5 the mean of an "error within
5 years" indicator. Writing a metric as ``finalize(mean(outcome(y_true, y_pred)))`` is what lets
:mod:`facebench.metrics.groups` bootstrap every group at once: a resample only changes which outcomes
are averaged, so a whole matrix of resamples reduces to one gather and one mean per row.

Two capabilities extend that form, both declared on :class:`Metric` (the engine reads them as plain
attributes): a ``partial`` metric's outcome is defined on a subset of the samples only (a true positive
rate: the positives), and an ``aggregate`` metric is not a mean at all (balanced accuracy) but a vectorised
function of an index matrix of (re)samples.

A metric also knows its direction, so "worst group" needs no user flag:

>>> m = Metric(name="mae_demo", description="mean absolute error", higher_is_better=False,
...            outcome=lambda t, p: np.abs(np.asarray(p, float) - np.asarray(t, float)))
>>> m([10, 20, 30], [12, 20, 27])
1.6666666666666667
>>> m.worst([1.0, 3.0, 2.0]), m.best([1.0, 3.0, 2.0])
(1, 0)
>>> m.worst(pd.Series({"a": 1.0, "b": 3.0}))
'b'
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Metric", "ExtendedMetric", "PartitionedAggregate", "WeightedAggregate", "identity", "as_1d", "check_same_length", "l2_normalize",
           "check_confidence", "check_int"]


def identity(x: np.ndarray) -> np.ndarray:
    """Return ``x`` unchanged: the default :attr:`Metric.finalize`.

    >>> identity(np.array([1.5, 2.0]))
    array([1.5, 2. ])
    """
    return x


def as_1d(values, *, name: str) -> np.ndarray:
    """Return ``values`` as a 1-D numpy array; numeric arrays must be finite.

    Non-numeric arrays (class labels, strings) are returned as they are, so that classification metrics
    can take labels.

    >>> as_1d([1, 2], name="y_true")
    array([1, 2])
    >>> as_1d([1.0, float("nan")], name="y_pred")
    Traceback (most recent call last):
    ...
    ValueError: y_pred contains 1 NaN or infinite value(s) (first at position 1); remove or impute them before scoring.
    """
    arr = np.asarray(values.to_numpy() if isinstance(values, (pd.Series, pd.Index)) else values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got an array of shape {arr.shape}.")
    if arr.dtype.kind in "fc":
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(
                f"{name} contains {int(bad.sum())} NaN or infinite value(s) "
                f"(first at position {int(np.flatnonzero(bad)[0])}); remove or impute them before scoring."
            )
    elif arr.dtype.kind == "O":
        missing = pd.isna(arr)
        if missing.any():
            raise ValueError(
                f"{name} contains {int(missing.sum())} missing value(s) "
                f"(first at position {int(np.flatnonzero(missing)[0])}); remove or impute them before scoring."
            )
    return arr


def check_same_length(**arrays) -> int:
    """Return the common length of the named arrays or raise a ``ValueError`` naming the mismatch.

    >>> check_same_length(y_true=[1, 2], y_pred=[3, 4])
    2
    >>> check_same_length(y_true=[1, 2], y_pred=[3])
    Traceback (most recent call last):
    ...
    ValueError: Length mismatch: y_true has 2 samples but y_pred has 1.
    """
    items = [(k, len(v)) for k, v in arrays.items()]
    first_name, first_len = items[0]
    for other, length in items[1:]:
        if length != first_len:
            raise ValueError(
                f"Length mismatch: {first_name} has {first_len} samples but {other} has {length}."
            )
    return first_len


def check_confidence(confidence: float) -> float:
    """``confidence`` as a float, refusing anything but a number strictly between 0 and 1."""
    if not (isinstance(confidence, (int, float, np.floating)) and 0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence must be a number strictly between 0 and 1, got {confidence!r}.")
    return float(confidence)


def check_int(value, name: str, minimum: int) -> int:
    """``value`` as an int, refusing booleans, non-integers and values below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


class PartitionedAggregate(ABC):
    """An ``aggregate`` function (see :class:`Metric`) that can also score every block of a permutation and
    each block's complement in one pass: the permutation test's fast path (balanced accuracy has one).
    A plain function is a valid ``aggregate`` too; the engine then scores groups and rests one by one."""

    @abstractmethod
    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray, index: np.ndarray) -> np.ndarray:
        """The ``B`` metric values of the rows of the ``(B, m)`` index matrix ``index``."""

    @abstractmethod
    def partition(self, y_true: np.ndarray, y_pred: np.ndarray, perm: np.ndarray, bounds: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Values of every block ``perm[:, bounds[g]:bounds[g+1]]`` and of its complement, ``(rows, G)`` each."""


class WeightedAggregate(ABC):
    """An ``aggregate`` function that can also score row-weighted samples: the cluster bootstrap's path
    (:mod:`facebench.metrics.clusters`), where a draw is a weight per row rather than a list of row indices."""

    @abstractmethod
    def weighted(self, y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The ``B`` metric values of the rows of the ``(B, n)`` non-negative weight matrix ``weights``
        (NaN for a row of zero weights)."""


@dataclass(frozen=True, kw_only=True)
class Metric:
    """A metric of the form ``finalize(mean(outcome(y_true, y_pred)))`` with a known direction, or an
    ``aggregate`` metric that is not a mean.

    Attributes:
        name: registry key, e.g. ``"mae"``.
        description: one line for reports.
        higher_is_better: direction used by :meth:`worst` and :meth:`best`.
        outcome: ``(y_true, y_pred) -> per-sample outcome`` as a float array of the same length. Exactly one
            of ``outcome`` and ``aggregate`` is given.
        finalize: applied to the mean(s) of the outcome; it must be vectorised (it receives the array of
            bootstrap means), e.g. ``np.sqrt`` for RMSE.
        is_rate: the outcome is 0/1 and the value is a proportion, so the per-group interval is a Wilson
            score interval instead of a bootstrap percentile interval. Requires ``finalize=identity``.
        unit: unit of the value for reports (``"years"``, ``""`` for proportions).
        worst_by_abs: the ideal value is 0 and the sign only says in which direction a group is off (mean
            signed error): worst is the largest ``|value|``, best the smallest. Requires
            ``higher_is_better=False``.
        partial: the per-sample outcome is defined only on a subset of the samples and is NaN elsewhere
            (a true positive rate is defined on the positives). The value is the mean over the samples
            where it is defined; the engine's ``n``, bootstrap, Wilson interval and tests use only those.
            Infinite outcomes are still an error.
        aggregate: for a metric that is not ``finalize(mean(outcome))``: a function
            ``aggregate(y_true, y_pred, index) -> values`` where ``index`` is an integer matrix of shape
            ``(B, m)`` whose rows are (re)samples of positions into ``y_true``/``y_pred``, returning the ``B``
            metric values, vectorised over the rows (a :class:`PartitionedAggregate` also has a fast path
            for permutation tests). The point value is ``aggregate(y_true, y_pred, arange(n)[None])[0]``.
            Such a metric has no ``outcome`` and needs ``finalize=identity``, ``is_rate=False`` and
            ``partial=False``; its intervals are bootstrap percentile intervals.

    The direction is summarised by :meth:`badness`, larger meaning worse; :meth:`worst`, :meth:`best` and
    the disparity statistics of :mod:`facebench.metrics.groups` use it and nothing else.

    >>> m = Metric(name="pos_hit", description="hit rate on positives", higher_is_better=True,
    ...            is_rate=True, partial=True,
    ...            outcome=lambda t, p: np.where(t == 1, (p == 1).astype(float), np.nan))
    >>> m([1, 1, 0, 1], [1, 0, 1, 1])          # 2 of the 3 positives are hit; the negative is ignored
    0.6666666666666666
    >>> top = Metric(name="max_err", description="largest absolute error", higher_is_better=False,
    ...              aggregate=lambda t, p, idx: np.abs(p - t)[idx].max(axis=1))
    >>> top(np.array([1.0, 2.0, 3.0]), np.array([1.0, 5.0, 2.0]))
    3.0
    """

    name: str
    description: str
    higher_is_better: bool
    outcome: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    finalize: Callable[[np.ndarray], np.ndarray] = identity
    is_rate: bool = False
    unit: str = ""
    worst_by_abs: bool = False
    partial: bool = False
    aggregate: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("A metric needs a non-empty string name.")
        if self.is_rate and self.finalize is not identity:
            raise ValueError(f"Metric {self.name!r}: a rate (is_rate=True) must use finalize=identity.")
        if self.worst_by_abs and self.higher_is_better:
            raise ValueError(
                f"Metric {self.name!r}: worst_by_abs=True means 0 is ideal, so higher_is_better must be False."
            )
        if (self.outcome is None) == (self.aggregate is None):
            raise ValueError(f"Metric {self.name!r}: give exactly one of outcome (a mean metric) and aggregate.")
        if self.aggregate is not None and (self.is_rate or self.partial or self.finalize is not identity):
            raise ValueError(
                f"Metric {self.name!r}: an aggregate metric cannot be a rate, partial or have a finalize step."
            )

    # ------------------------------------------------------------------ computing
    def outcomes(self, y_true, y_pred) -> np.ndarray:
        """Validated per-sample outcomes as a float array: finite, except NaN where a ``partial`` metric is
        undefined.

        >>> from facebench.metrics import get_metric
        >>> get_metric("mae").outcomes([10, 20], [13, 19])
        array([3., 1.])
        """
        if self.aggregate is not None:
            raise ValueError(
                f"Metric {self.name!r} is not a mean of per-sample outcomes (it has an aggregate function)."
            )
        yt = as_1d(y_true, name="y_true")
        yp = as_1d(y_pred, name="y_pred")
        n = check_same_length(y_true=yt, y_pred=yp)
        out = np.asarray(self.outcome(yt, yp), dtype=float)
        if out.shape != (n,):
            raise ValueError(
                f"Metric {self.name!r}: the outcome function returned shape {out.shape}, expected ({n},)."
            )
        if self.partial:
            return self.check_partial_outcome(out)
        if not np.isfinite(out).all():
            raise ValueError(f"Metric {self.name!r}: the per-sample outcome contains NaN or infinite values.")
        if self.is_rate and not np.isin(out, (0.0, 1.0)).all():
            raise ValueError(f"Metric {self.name!r} is a rate but its outcome is not 0/1.")
        return out

    def check_partial_outcome(self, out: np.ndarray) -> np.ndarray:
        """Check the outcomes of a ``partial`` metric (NaN where undefined; never infinite; 0/1 for a rate)."""
        if np.isinf(out).any():
            raise ValueError(f"Metric {self.name!r}: the per-sample outcome contains infinite values.")
        if self.is_rate and not np.isin(out[~np.isnan(out)], (0.0, 1.0)).all():
            raise ValueError(f"Metric {self.name!r} is a rate but its outcome is not 0/1.")
        return out

    def from_mean(self, mean):
        """Turn the mean outcome (scalar or array of bootstrap means) into metric value(s)."""
        out = self.finalize(np.asarray(mean, dtype=float))
        return float(out) if np.ndim(out) == 0 else out

    def __call__(self, y_true, y_pred) -> float:
        """The metric on the whole sample: ``finalize(mean(outcome))`` (over the defined samples of a
        ``partial`` metric, NaN if there are none), or the ``aggregate`` on all samples."""
        if self.aggregate is not None:
            yt = as_1d(y_true, name="y_true")
            yp = as_1d(y_pred, name="y_pred")
            n = check_same_length(y_true=yt, y_pred=yp)
            if n == 0:
                raise ValueError(f"Metric {self.name!r} needs at least one sample.")
            return float(np.asarray(self.aggregate(yt, yp, np.arange(n)[None, :]), dtype=float)[0])
        out = self.outcomes(y_true, y_pred)
        if out.size == 0:
            raise ValueError(f"Metric {self.name!r} needs at least one sample.")
        if not self.partial:
            return float(self.from_mean(out.mean()))
        defined = out[~np.isnan(out)]
        return float(self.from_mean(defined.mean())) if defined.size else float("nan")

    # ------------------------------------------------------------------ direction
    def badness(self, values) -> np.ndarray:
        """Map metric values to a score where larger is worse (NaN stays NaN).

        >>> from facebench.metrics import get_metric
        >>> get_metric("mae").badness([1.0, 2.0]).tolist()
        [1.0, 2.0]
        >>> get_metric("cs5").badness([0.8, 0.9]).tolist()
        [-0.8, -0.9]
        >>> get_metric("mean_signed_error").badness([-3.0, 1.0]).tolist()
        [3.0, 1.0]
        """
        v = np.asarray(values, dtype=float)
        if self.worst_by_abs:
            return np.abs(v)
        return -v if self.higher_is_better else v

    def _pick(self, values, *, worst: bool):
        if isinstance(values, Mapping):
            values = pd.Series(dict(values), dtype=float)
        labels = values.index if isinstance(values, pd.Series) else None
        score = self.badness(values.to_numpy(dtype=float) if labels is not None else values)
        if score.ndim != 1 or score.size == 0 or np.isnan(score).all():
            raise ValueError(f"Metric {self.name!r}: no (non-NaN) values to choose from.")
        filled = np.where(np.isnan(score), -np.inf if worst else np.inf, score)
        pos = int(np.argmax(filled) if worst else np.argmin(filled))
        return labels[pos] if labels is not None else pos

    def worst(self, values: Sequence[float] | np.ndarray | pd.Series | Mapping):
        """Position (or label, for a Series or Mapping) of the worst value; NaN ignored, first of ties.

        >>> from facebench.metrics import get_metric
        >>> get_metric("cs5").worst([0.9, 0.7, 0.8])
        1
        >>> get_metric("mean_signed_error").worst({"a": 1.0, "b": -4.0, "c": 2.0})
        'b'
        """
        return self._pick(values, worst=True)

    def best(self, values: Sequence[float] | np.ndarray | pd.Series | Mapping):
        """Position (or label, for a Series or Mapping) of the best value; NaN ignored, first of ties.

        >>> from facebench.metrics import get_metric
        >>> get_metric("mae").best([3.0, float("nan"), 2.0])
        2
        """
        return self._pick(values, worst=False)


#: The former name of a :class:`Metric` with ``partial`` or ``aggregate``: both are now members of
#: :class:`Metric` itself, so this is the same class.
ExtendedMetric = Metric


def l2_normalize(embeddings) -> np.ndarray:
    """Rows divided by their L2 norm, as ``sklearn.preprocessing.normalize`` does (float64).

    A row whose norm is below ``10 * eps`` (numerically zero) is left as it is, like sklearn.

    >>> l2_normalize([[3.0, 4.0], [0.0, 0.0]]).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """
    x = np.asarray(embeddings, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array (pairs x dimensions), got shape {x.shape}.")
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms < 10 * np.finfo(float).eps] = 1.0
    return x / norms[:, None]
