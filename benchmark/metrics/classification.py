"""Classification metrics (accuracy, balanced accuracy, per-class rates) and group-fairness summaries.

Per-group metrics, for the disaggregation engine (:class:`~facebench.metrics.groups.Disaggregation`):

* ``accuracy`` -- ``mean(y == ŷ)``, a rate (Wilson intervals).
* ``selection_rate`` -- ``mean(ŷ == pos)``, a rate; "higher is better" treats ``pos`` as the favourable
  outcome, as fairlearn does.
* ``tpr``, ``fnr`` (defined on the positives ``y == pos``) and ``fpr``, ``tnr`` (defined on the negatives
  ``y != pos``) -- rates whose per-sample outcome is NaN outside the subset where they are defined
  (:attr:`~facebench.metrics.base.Metric.partial`), so the engine's ``n`` of a group is its
  number of positives (negatives) and the Wilson interval uses that count. One-vs-rest: any label other
  than ``pos`` is a negative, so these are also the per-class rates of a multi-class problem.
* ``balanced_accuracy`` -- the mean over the classes present in ``y`` of the per-class recall
  (scikit-learn's ``balanced_accuracy_score``). Not a mean of per-sample outcomes, so it is an
  :attr:`~facebench.metrics.base.Metric.aggregate` metric: computed on every bootstrap resample
  by one vectorised bincount, with a percentile interval.

Names: ``tpr`` etc. use ``pos_label=1``; ``tpr@<label>`` (e.g. ``"tpr@cat"``, ``"fpr@0"``) any other class,
and :func:`facebench.metrics.get_metric` parses them.

>>> y_true = [1, 1, 1, 0, 0, 2]
>>> y_pred = [1, 0, 1, 0, 1, 2]
>>> ACCURACY(y_true, y_pred)                      # 4 of 6
0.6666666666666666
>>> BALANCED_ACCURACY(y_true, y_pred)             # recalls 1/2 (class 0), 2/3 (1), 1/1 (2)
0.7222222222222222
>>> true_positive_rate()(y_true, y_pred), false_positive_rate()(y_true, y_pred)   # 2/3 and 1/3
(0.6666666666666666, 0.3333333333333333)

Group-fairness summaries (one number over the groups of ``sensitive_features``), equal to fairlearn's
functions of the same names: :func:`demographic_parity_difference`, :func:`demographic_parity_ratio`,
:func:`equalized_odds_difference`, :func:`equalized_odds_ratio`, :func:`equal_opportunity_difference`,
:func:`equal_opportunity_ratio`.

>>> sf = ["a", "a", "a", "b", "b", "b"]
>>> demographic_parity_difference(y_true, y_pred, sensitive_features=sf)   # selection 2/3 vs 1/3
0.3333333333333333
>>> equal_opportunity_ratio([1, 1, 0, 1, 1, 0], [1, 0, 0, 1, 1, 1], sensitive_features=sf)  # 1/2 / 1
0.5
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from ..errors import UserInputError, did_you_mean
from .base import Metric, PartitionedAggregate, WeightedAggregate, as_1d, check_same_length

__all__ = [
    "ACCURACY",
    "BALANCED_ACCURACY",
    "CLASSIFICATION_METRICS",
    "FAIRNESS_METRICS",
    "accuracy",
    "selection_rate",
    "true_positive_rate",
    "false_positive_rate",
    "true_negative_rate",
    "false_negative_rate",
    "parse_classification_metric",
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "equal_opportunity_difference",
    "equal_opportunity_ratio",
    "get_fairness_metric",
]

_NUMERIC = "iufb"
_TEXT = "USa"


# ------------------------------------------------------------------------------------------ labels
def _check_comparable(y_true: np.ndarray, y_pred: np.ndarray) -> None:
    kinds = {y_true.dtype.kind, y_pred.dtype.kind}
    if kinds & set(_NUMERIC) and kinds & set(_TEXT):
        raise ValueError(
            f"y_true and y_pred hold labels of different kinds ({y_true.dtype} and {y_pred.dtype}): "
            "numbers cannot equal strings; encode both the same way."
        )


def _is_label(values: np.ndarray, label) -> np.ndarray:
    """``values == label``; a label given as text (``"tpr@1"``) matches numeric labels by value."""
    if isinstance(label, str) and values.dtype.kind in _NUMERIC:
        try:
            label = float(label)
        except ValueError:
            return np.zeros(values.shape, dtype=bool)
    return np.asarray(values == label, dtype=bool).reshape(values.shape)


def _label_text(label) -> str:
    return str(label)


# ------------------------------------------------------------------------------------------ outcomes
class _Correct:
    """Picklable outcome ``y == ŷ`` as 0/1."""

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        _check_comparable(y_true, y_pred)
        return np.asarray(y_true == y_pred, dtype=bool).reshape(y_true.shape).astype(float)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Correct)

    def __hash__(self) -> int:
        return hash("correct")


#: kind -> (subset where defined: None = all, True = positives, False = negatives; outcome counts ŷ == pos?)
_RATE_KINDS = {
    "selection_rate": (None, True),
    "tpr": (True, True),
    "fnr": (True, False),
    "fpr": (False, True),
    "tnr": (False, False),
}


class _Rate:
    """Picklable outcome of a one-vs-rest rate: 0/1 on the samples where it is defined, NaN elsewhere."""

    def __init__(self, kind: str, pos_label) -> None:
        self.kind = kind
        self.pos_label = pos_label

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        _check_comparable(y_true, y_pred)
        t = _is_label(y_true, self.pos_label)
        p = _is_label(y_pred, self.pos_label)
        if not t.any() and not p.any() and len(t):
            seen = ", ".join(map(str, pd.unique(np.r_[y_true[:1000], y_pred[:1000]])[:10]))
            raise ValueError(
                f"pos_label {self.pos_label!r} occurs in neither y_true nor y_pred (labels seen: {seen})."
            )
        subset, counts_selected = _RATE_KINDS[self.kind]
        out = (p if counts_selected else ~p).astype(float)
        if subset is not None:
            out[t != subset] = np.nan
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Rate) and (other.kind, other.pos_label) == (self.kind, self.pos_label)

    def __hash__(self) -> int:
        return hash(("rate", self.kind, _label_text(self.pos_label)))


class _BalancedAccuracy(PartitionedAggregate, WeightedAggregate):
    """Vectorised balanced accuracy of every row of an index matrix (the engine's ``aggregate``).

    Per row ``r``: ``mean_c hits[r, c] / total[r, c]`` over the classes ``c`` with ``total[r, c] > 0``, where
    ``total`` counts the row's samples of true class ``c`` and ``hits`` those predicted correctly: one
    ``bincount`` over ``class + C * row`` for each.
    """

    @staticmethod
    def _encode(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
        _check_comparable(y_true, y_pred)
        classes, codes = np.unique(y_true, return_inverse=True)
        correct = np.asarray(y_true == y_pred, dtype=bool).reshape(y_true.shape).astype(float)
        return codes.reshape(-1), classes.size, correct

    @staticmethod
    def _score(hits: np.ndarray, total: np.ndarray) -> np.ndarray:
        present = total > 0
        recall = np.where(present, hits / np.where(present, total, 1.0), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return recall.sum(axis=-1) / present.sum(axis=-1)

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray, index: np.ndarray) -> np.ndarray:
        codes, n_classes, correct = self._encode(y_true, y_pred)
        index = np.asarray(index)
        rows = index.shape[0]
        flat = (codes[index] + n_classes * np.arange(rows)[:, None]).ravel()
        total = np.bincount(flat, minlength=rows * n_classes).reshape(rows, n_classes)
        hits = np.bincount(flat, weights=correct[index].ravel(), minlength=rows * n_classes)
        return self._score(hits.reshape(rows, n_classes), total)

    def weighted(self, y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Per row of ``weights`` (B, n): the mean over classes of the weighted share of correct predictions
        (a class with zero weight in the row is left out, as an absent class is above)."""
        codes, n_classes, correct = self._encode(y_true, y_pred)
        onehot = np.zeros((codes.size, n_classes))
        onehot[np.arange(codes.size), codes] = 1.0
        weights = np.asarray(weights, dtype=float)
        return self._score(weights @ (onehot * correct.reshape(-1, 1)), weights @ onehot)

    def partition(self, y_true: np.ndarray, y_pred: np.ndarray, perm: np.ndarray, bounds: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Values of every block ``perm[:, bounds[g]:bounds[g+1]]`` and of its complement, shape ``(rows, G)``
        each, from one bincount over (row, block, class): the permutation test's fast path."""
        codes, n_classes, correct = self._encode(y_true, y_pred)
        rows, n_groups = perm.shape[0], len(bounds) - 1
        block = np.repeat(np.arange(n_groups), np.diff(bounds))
        flat = (((np.arange(rows)[:, None] * n_groups + block[None, :]) * n_classes) + codes[perm]).ravel()
        size = rows * n_groups * n_classes
        total = np.bincount(flat, minlength=size).reshape(rows, n_groups, n_classes)
        hits = np.bincount(flat, weights=correct[perm].ravel(), minlength=size).reshape(rows, n_groups, n_classes)
        rest_total = total.sum(axis=1, keepdims=True) - total
        rest_hits = hits.sum(axis=1, keepdims=True) - hits
        return self._score(hits, total), self._score(rest_hits, rest_total)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _BalancedAccuracy)

    def __hash__(self) -> int:
        return hash("balanced_accuracy")


# ------------------------------------------------------------------------------------------ metrics
#: Accuracy ``mean(y == ŷ)``: a rate, higher is better.
ACCURACY = Metric(
    name="accuracy",
    description="Accuracy: share of samples with predicted label == true label.",
    higher_is_better=True,
    outcome=_Correct(),
    is_rate=True,
)

#: Balanced accuracy: mean per-class recall over the classes present in ``y`` (not a mean of outcomes).
BALANCED_ACCURACY = Metric(
    name="balanced_accuracy",
    description="Balanced accuracy: mean over the true classes of the per-class recall.",
    higher_is_better=True,
    aggregate=_BalancedAccuracy(),
)


def accuracy() -> Metric:
    """The accuracy metric (same object as :data:`ACCURACY`)."""
    return ACCURACY


_DESCRIPTIONS = {
    "selection_rate": ("share of samples predicted {pos}", True),
    "tpr": ("true positive rate (recall of {pos}): share of the samples of class {pos} predicted {pos}", True),
    "fnr": ("false negative rate: share of the samples of class {pos} not predicted {pos}", False),
    "fpr": ("false positive rate: share of the samples not of class {pos} predicted {pos}", False),
    "tnr": ("true negative rate: share of the samples not of class {pos} not predicted {pos}", True),
}


def _rate_metric(kind: str, pos_label) -> Metric:
    if isinstance(pos_label, float) and pos_label.is_integer():
        pos_label = int(pos_label)
    text, higher = _DESCRIPTIONS[kind]
    text = text.format(pos=repr(pos_label))
    name = kind if (pos_label == 1 and not isinstance(pos_label, (str, bool))) else f"{kind}@{pos_label}"
    return Metric(
        name=name,
        description=text[0].upper() + text[1:] + ".",
        higher_is_better=higher,
        outcome=_Rate(kind, pos_label),
        is_rate=True,
        partial=kind != "selection_rate",
    )


def selection_rate(pos_label=1) -> Metric:
    """Selection rate ``mean(ŷ == pos_label)``; named ``selection_rate`` (``selection_rate@<label>``).

    >>> selection_rate()([0, 0, 1], [1, 0, 1])
    0.6666666666666666
    """
    return _rate_metric("selection_rate", pos_label)


def true_positive_rate(pos_label=1) -> Metric:
    """TPR (recall) of ``pos_label``, defined on the samples with ``y == pos_label``: ``tpr`` / ``tpr@<label>``.

    >>> m = true_positive_rate("cat")
    >>> m.name, m(["cat", "cat", "dog"], ["cat", "dog", "cat"])
    ('tpr@cat', 0.5)
    """
    return _rate_metric("tpr", pos_label)


def false_positive_rate(pos_label=1) -> Metric:
    """FPR of ``pos_label``, defined on the samples with ``y != pos_label``: ``fpr`` / ``fpr@<label>``."""
    return _rate_metric("fpr", pos_label)


def true_negative_rate(pos_label=1) -> Metric:
    """TNR of ``pos_label`` (``1 - FPR``), defined on ``y != pos_label``: ``tnr`` / ``tnr@<label>``."""
    return _rate_metric("tnr", pos_label)


def false_negative_rate(pos_label=1) -> Metric:
    """FNR of ``pos_label`` (``1 - TPR``), defined on ``y == pos_label``: ``fnr`` / ``fnr@<label>``."""
    return _rate_metric("fnr", pos_label)


#: The metrics the package registers (names with ``pos_label=1``; ``<name>@<label>`` for other classes).
CLASSIFICATION_METRICS: tuple[Metric, ...] = (
    ACCURACY,
    BALANCED_ACCURACY,
    selection_rate(),
    true_positive_rate(),
    false_positive_rate(),
    true_negative_rate(),
    false_negative_rate(),
)

_FAMILY_PATTERN = re.compile(r"^(selection_rate|tpr|fpr|tnr|fnr)@(.+)$")


def parse_classification_metric(name: str) -> Metric | None:
    """The per-class rate named ``<kind>@<label>`` (kinds: selection_rate, tpr, fpr, tnr, fnr), else None.

    The label stays text; it matches numeric labels by value (``"tpr@1"`` is the TPR of class 1).

    >>> parse_classification_metric("fpr@dog").name
    'fpr@dog'
    >>> parse_classification_metric("accuracy") is None
    True
    """
    match = _FAMILY_PATTERN.match(name)
    if not match:
        return None
    return _rate_metric(match.group(1), match.group(2))


# ------------------------------------------------------------------------------------------ fairness
_METHODS = ("between_groups", "to_overall")
_AGGS = ("worst_case", "mean")


def _sensitive_codes(sensitive_features, n: int) -> np.ndarray:
    """Group codes 0..G-1 of the samples; several columns (DataFrame, 2-D array) are intersected."""
    if isinstance(sensitive_features, pd.DataFrame):
        columns = [sensitive_features.iloc[:, j] for j in range(sensitive_features.shape[1])]
    elif isinstance(sensitive_features, dict):
        columns = [pd.Series(v) for v in sensitive_features.values()]
    else:
        arr = np.asarray(sensitive_features.to_numpy() if isinstance(sensitive_features, pd.Series)
                         else sensitive_features, dtype=object)
        if arr.ndim == 2:
            columns = [pd.Series(arr[:, j]) for j in range(arr.shape[1])]
        elif arr.ndim == 1:
            columns = [pd.Series(arr)]
        else:
            raise ValueError(f"sensitive_features must be 1-D or 2-D, got shape {arr.shape}.")
    if not columns:
        raise ValueError("sensitive_features has no column.")
    key = np.zeros(n, dtype=np.int64)
    for col in columns:
        if len(col) != n:
            raise ValueError(f"Length mismatch: y_true has {n} samples but sensitive_features has {len(col)}.")
        codes, uniques = pd.factorize(pd.Series(np.asarray(col, dtype=object)), use_na_sentinel=True)
        if (codes < 0).any():
            raise ValueError("sensitive_features contains missing values; fill or drop them first.")
        key = key * max(len(uniques), 1) + codes
    return np.unique(key, return_inverse=True)[1].reshape(-1)


def _rates_by_group(y_true, y_pred, sensitive_features, pos_label, kind: str) -> tuple[float, np.ndarray]:
    """Overall and per-group value of a one-vs-rest rate (NaN for a group where it is undefined)."""
    yt = as_1d(y_true, name="y_true")
    yp = as_1d(y_pred, name="y_pred")
    n = check_same_length(y_true=yt, y_pred=yp)
    if n == 0:
        raise ValueError("There are no samples (y_true is empty).")
    _check_comparable(yt, yp)
    codes = _sensitive_codes(sensitive_features, n)
    t = _is_label(yt, pos_label)
    p = _is_label(yp, pos_label)
    subset, counts_selected = _RATE_KINDS[kind]
    base = np.ones(n, dtype=bool) if subset is None else (t == subset)
    hit = base & (p if counts_selected else ~p)
    den = np.bincount(codes, weights=base.astype(float))
    num = np.bincount(codes, weights=hit.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        by_group = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    total = float(base.sum())
    overall = float(hit.sum()) / total if total > 0 else float("nan")
    return overall, by_group


def _check_method(method: str) -> None:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(_METHODS)}; got {method!r}.")


def _difference(overall: float, by_group: np.ndarray, method: str) -> float:
    _check_method(method)
    g = by_group[~np.isnan(by_group)]
    if g.size == 0:
        return float("nan")
    if method == "between_groups":
        return float(g.max() - g.min())
    return float(np.abs(g - overall).max()) if not np.isnan(overall) else float("nan")


def _ratio(overall: float, by_group: np.ndarray, method: str) -> float:
    _check_method(method)
    g = by_group[~np.isnan(by_group)]
    if g.size == 0:
        return float("nan")
    if method == "between_groups":
        hi = g.max()
        return float(g.min() / hi) if hi != 0 else float("nan")  # 0/0: NaN, as fairlearn
    with np.errstate(invalid="ignore", divide="ignore"):
        r = g / overall  # x/0 = inf -> 1/inf = 0 below; 0/0 = NaN (skipped), as fairlearn
    r = np.where(r > 1, 1.0 / r, r)
    r = r[~np.isnan(r)]
    return float(r.min()) if r.size else float("nan")


def _combine(a: float, b: float, agg: str, *, worst) -> float:
    if agg not in _AGGS:
        raise ValueError(f"agg must be one of {', '.join(_AGGS)}; got {agg!r}.")
    vals = np.array([a, b], dtype=float)
    vals = vals[~np.isnan(vals)]
    if vals.size == 0:
        return float("nan")
    return float(worst(vals)) if agg == "worst_case" else float(vals.mean())


def demographic_parity_difference(y_true, y_pred, *, sensitive_features, pos_label=1,
                                  method: str = "between_groups") -> float:
    """Largest gap in selection rate ``P(ŷ = pos | A = a)`` between groups (``between_groups``: max - min)
    or to the whole sample (``to_overall``: ``max_a |rate_a - rate|``). 0 means parity.

    >>> demographic_parity_difference([0, 0, 0, 0], [1, 1, 0, 1], sensitive_features=["a", "a", "b", "b"])
    0.5
    """
    overall, by_group = _rates_by_group(y_true, y_pred, sensitive_features, pos_label, "selection_rate")
    return _difference(overall, by_group, method)


def demographic_parity_ratio(y_true, y_pred, *, sensitive_features, pos_label=1,
                             method: str = "between_groups") -> float:
    """Smallest ratio of selection rates: ``min/max`` over groups (``between_groups``) or
    ``min_a min(r_a, 1/r_a)`` with ``r_a = rate_a / rate`` (``to_overall``). 1 means parity.

    >>> demographic_parity_ratio([0, 0, 0, 0], [1, 1, 0, 1], sensitive_features=["a", "a", "b", "b"])
    0.5
    """
    overall, by_group = _rates_by_group(y_true, y_pred, sensitive_features, pos_label, "selection_rate")
    return _ratio(overall, by_group, method)


def equal_opportunity_difference(y_true, y_pred, *, sensitive_features, pos_label=1,
                                 method: str = "between_groups") -> float:
    """:func:`demographic_parity_difference` of the true positive rate ``P(ŷ = pos | y = pos, A = a)``."""
    overall, by_group = _rates_by_group(y_true, y_pred, sensitive_features, pos_label, "tpr")
    return _difference(overall, by_group, method)


def equal_opportunity_ratio(y_true, y_pred, *, sensitive_features, pos_label=1,
                            method: str = "between_groups") -> float:
    """:func:`demographic_parity_ratio` of the true positive rate."""
    overall, by_group = _rates_by_group(y_true, y_pred, sensitive_features, pos_label, "tpr")
    return _ratio(overall, by_group, method)


def equalized_odds_difference(y_true, y_pred, *, sensitive_features, pos_label=1,
                              method: str = "between_groups", agg: str = "worst_case") -> float:
    """The larger (``agg="worst_case"``) or the mean (``"mean"``) of the TPR and FPR differences.

    >>> equalized_odds_difference([1, 0, 1, 0], [1, 1, 0, 0], sensitive_features=["a", "a", "b", "b"])
    1.0
    """
    tpr = _difference(*_rates_by_group(y_true, y_pred, sensitive_features, pos_label, "tpr"), method)
    fpr = _difference(*_rates_by_group(y_true, y_pred, sensitive_features, pos_label, "fpr"), method)
    return _combine(tpr, fpr, agg, worst=np.max)


def equalized_odds_ratio(y_true, y_pred, *, sensitive_features, pos_label=1,
                         method: str = "between_groups", agg: str = "worst_case") -> float:
    """The smaller (``agg="worst_case"``) or the mean (``"mean"``) of the TPR and FPR ratios."""
    tpr = _ratio(*_rates_by_group(y_true, y_pred, sensitive_features, pos_label, "tpr"), method)
    fpr = _ratio(*_rates_by_group(y_true, y_pred, sensitive_features, pos_label, "fpr"), method)
    return _combine(tpr, fpr, agg, worst=np.min)


#: Group-fairness summaries by name: ``fn(y_true, y_pred, *, sensitive_features, pos_label=1, method=...)``.
FAIRNESS_METRICS: dict[str, Callable[..., float]] = {
    f.__name__: f
    for f in (demographic_parity_difference, demographic_parity_ratio, equalized_odds_difference,
              equalized_odds_ratio, equal_opportunity_difference, equal_opportunity_ratio)
}


def get_fairness_metric(name: str) -> Callable[..., float]:
    """The group-fairness summary called ``name`` (did-you-mean error for unknown names).

    >>> get_fairness_metric("equal_opportunity_ratio").__name__
    'equal_opportunity_ratio'
    >>> try:
    ...     get_fairness_metric("demographic_parity_diference")
    ... except UserInputError as err:
    ...     print(err)   # doctest: +ELLIPSIS
    Unknown fairness metric 'demographic_parity_diference' (did you mean 'demographic_parity_difference'?); ...
    """
    key = str(name).strip()
    if key in FAIRNESS_METRICS:
        return FAIRNESS_METRICS[key]
    raise UserInputError(
        f"Unknown fairness metric {name!r}{did_you_mean(key, FAIRNESS_METRICS)}; known: "
        f"{', '.join(FAIRNESS_METRICS)}."
    )
