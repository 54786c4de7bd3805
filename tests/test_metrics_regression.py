"""Regression metrics, the Metric spec and the metric registry, against hand-computed values."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest

from facebench.errors import UserInputError
from facebench.metrics import (
    MAE,
    MEAN_SIGNED_ERROR,
    METRIC_NAMES,
    RMSE,
    Metric,
    cs_at,
    get_metric,
    register_metric,
)
from facebench.metrics.base import identity

# errors (pred - true): +2, 0, -3, +6, 0, +1, -5, 0
Y_TRUE = np.array([20, 30, 40, 50, 60, 70, 80, 90], dtype=float)
Y_PRED = np.array([22, 30, 37, 56, 60, 71, 75, 90], dtype=float)


def test_mae_by_hand():
    assert MAE(Y_TRUE, Y_PRED) == pytest.approx(17 / 8)
    assert MAE([10], [13]) == 3.0


def test_rmse_by_hand():
    # squares: 4, 0, 9, 36, 0, 1, 25, 0 -> 75 / 8
    assert RMSE(Y_TRUE, Y_PRED) == pytest.approx(math.sqrt(75 / 8))
    assert RMSE([0, 0], [3, 4]) == pytest.approx(math.sqrt(12.5))


def test_mean_signed_error_by_hand():
    assert MEAN_SIGNED_ERROR(Y_TRUE, Y_PRED) == pytest.approx(1 / 8)
    assert MEAN_SIGNED_ERROR([10, 10], [5, 7]) == pytest.approx(-4.0)


def test_cs_at_k_by_hand_and_boundary_is_inclusive():
    # |errors| 2, 0, 3, 6, 0, 1, 5, 0: within 5 -> all but the 6; within 2 -> 2, 0, 0, 1, 0
    assert cs_at(5)(Y_TRUE, Y_PRED) == pytest.approx(7 / 8)
    assert cs_at(2)(Y_TRUE, Y_PRED) == pytest.approx(5 / 8)
    assert cs_at(0)(Y_TRUE, Y_PRED) == pytest.approx(3 / 8)
    # float noise at the boundary: 20.1 - 15.1 is 5.000000000000002 in floating point
    assert cs_at(5)([15.1], [20.1]) == 1.0
    assert cs_at(5)([15.0], [20.01]) == 0.0


def test_cs_outcome_is_zero_one_and_rate():
    m = cs_at(10)
    assert m.is_rate and m.higher_is_better and m.name == "cs10"
    assert m.outcomes([0, 0, 0], [10, 11, -3]).tolist() == [1.0, 0.0, 1.0]


def test_cs_at_rejects_bad_k():
    with pytest.raises(ValueError, match="k >= 0"):
        cs_at(-1)
    with pytest.raises(ValueError):
        cs_at(float("nan"))


def test_directions():
    assert not MAE.higher_is_better and not RMSE.higher_is_better
    assert MAE.worst([1.0, 3.0, 2.0]) == 1 and MAE.best([1.0, 3.0, 2.0]) == 0
    cs5 = get_metric("cs5")
    assert cs5.worst([0.9, 0.7, 0.8]) == 1 and cs5.best([0.9, 0.7, 0.8]) == 0
    # mean signed error: furthest from 0 is worst, in either direction
    assert MEAN_SIGNED_ERROR.worst([1.0, -4.0, 2.0]) == 1
    assert MEAN_SIGNED_ERROR.best([1.0, -4.0, 0.5]) == 2
    assert MEAN_SIGNED_ERROR.worst(pd.Series({"a": 3.0, "b": -2.0})) == "a"


def test_worst_best_ignore_nan_and_return_labels():
    s = pd.Series({"x": np.nan, "y": 2.0, "z": 5.0})
    assert MAE.worst(s) == "z" and MAE.best(s) == "y"
    assert MAE.worst({"p": 1.0, "q": 0.5}) == "p"
    with pytest.raises(ValueError, match="no"):
        MAE.worst([np.nan, np.nan])


def test_input_validation():
    with pytest.raises(ValueError, match="Length mismatch"):
        MAE([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="NaN or infinite"):
        MAE([1, 2], [1, np.nan])
    with pytest.raises(ValueError, match="y_true"):
        MAE([np.inf, 2], [1, 2])
    with pytest.raises(ValueError, match="one-dimensional"):
        MAE([[1, 2]], [[1, 2]])
    with pytest.raises(ValueError, match="at least one sample"):
        MAE([], [])


def test_metric_spec_is_checked():
    with pytest.raises(ValueError, match="finalize=identity"):
        Metric(name="r", description="", higher_is_better=True, outcome=lambda t, p: t, is_rate=True,
               finalize=np.sqrt)
    with pytest.raises(ValueError, match="higher_is_better"):
        Metric(name="s", description="", higher_is_better=True, outcome=lambda t, p: t, worst_by_abs=True)
    bad = Metric(name="bad", description="", higher_is_better=True, outcome=lambda t, p: np.ones(1))
    with pytest.raises(ValueError, match="shape"):
        bad([1, 2], [1, 2])
    not_binary = Metric(name="nb", description="", higher_is_better=True, is_rate=True,
                        outcome=lambda t, p: np.full(len(t), 0.5))
    with pytest.raises(ValueError, match="not 0/1"):
        not_binary([1, 2], [1, 2])


def test_finalize_is_applied_to_means_vectorised():
    assert RMSE.from_mean(np.array([4.0, 9.0])).tolist() == [2.0, 3.0]
    assert MAE.finalize is identity
    assert RMSE.from_mean(16.0) == 4.0


def test_registry_lookup_and_did_you_mean():
    assert get_metric("mae") is MAE
    assert get_metric(" rmse ") is RMSE
    assert get_metric(MAE) is MAE
    assert get_metric("cs7").name == "cs7" and get_metric("cs2.5").name == "cs2.5"
    assert set(METRIC_NAMES) >= {"mae", "rmse", "mean_signed_error", "cs5", "cs10"}
    assert "mae" in METRIC_NAMES and "nope" not in METRIC_NAMES
    with pytest.raises(UserInputError, match=r"did you mean 'rmse'"):
        get_metric("rmsee")
    with pytest.raises(UserInputError, match="Unknown metric 'zzz'"):
        get_metric("zzz")
    with pytest.raises(UserInputError):
        get_metric(3)


def test_register_metric():
    m = Metric(name="_test_max_err_rate", description="", higher_is_better=False,
               outcome=lambda t, p: (np.abs(np.asarray(p) - np.asarray(t)) > 10).astype(float), is_rate=True)
    register_metric(m)
    try:
        assert get_metric("_test_max_err_rate") is m
        assert "_test_max_err_rate" in METRIC_NAMES
        with pytest.raises(ValueError, match="already registered"):
            register_metric(m)
    finally:
        from facebench.metrics import _REGISTRY

        _REGISTRY.pop("_test_max_err_rate")


def test_metrics_pickle():
    for m in (MAE, RMSE, MEAN_SIGNED_ERROR, cs_at(5)):
        back = pickle.loads(pickle.dumps(m))
        assert back == m
        assert back(Y_TRUE, Y_PRED) == m(Y_TRUE, Y_PRED)
