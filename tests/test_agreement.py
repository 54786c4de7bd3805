"""Annotator agreement (facebench.metrics.agreement): Cohen's kappa for two annotators, Fleiss' kappa for more,
checked against hand-worked cases, sklearn.metrics.cohen_kappa_score and statsmodels' fleiss_kappa."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss

from facebench.metrics.agreement import annotation_agreement, cohen_kappa, fleiss_kappa

#: Fleiss (1971)'s worked example as reproduced on Wikipedia ("Fleiss' kappa"): 10 items, 14 raters,
#: 5 categories; P-bar = 0.378, P-bar_e = 0.213, kappa = 0.210.
FLEISS_EXAMPLE = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                  [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]


def test_cohen_kappa_hand_worked() -> None:
    """50 items: both yes 20, A yes B no 5, A no B yes 10, both no 15. p_o = 0.7; p_yes = 0.5*0.6, p_no = 0.5*0.4,
    p_e = 0.5; kappa = (0.7 - 0.5) / 0.5 = 0.4."""
    first = ["yes"] * 25 + ["no"] * 25
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.4)


def test_fleiss_kappa_hand_worked() -> None:
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(0.2099, abs=5e-4)
    # three items, two raters, two categories: P_i = 1, 1, 0; p = (1/2, 1/2); kappa = (2/3 - 1/2) / (1/2) = 1/3
    assert fleiss_kappa([[2, 0], [0, 2], [1, 1]]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[2, 0], [1, 0]])
    assert np.isnan(fleiss_kappa([[3, 0], [3, 0]]))  # every label the same: chance agreement is 1


@pytest.mark.parametrize("seed", range(5))
def test_agreement_matches_sklearn_and_statsmodels_on_random_annotations(seed: int) -> None:
    rng = np.random.default_rng(seed)
    categories = ["a", "b", "c", "d"]
    n_items, n_annotators = int(rng.integers(5, 60)), int(rng.integers(2, 6))
    truth = rng.integers(0, 4, n_items)
    labels = np.where(rng.random((n_items, n_annotators)) < 0.3, rng.integers(0, 4, (n_items, n_annotators)),
                      truth[:, None])
    frame = pd.DataFrame([(f"{i:06d}.jpg", categories[labels[i, k]], f"ann{k}") for i in range(n_items)
                          for k in range(n_annotators)], columns=["image_id", "label", "annotator"])
    frame = frame.sample(frac=1.0, random_state=seed)  # row order must not matter
    result = annotation_agreement(frame, categories=categories)
    assert (result.n_annotators, result.n_items, result.n_items_left_out) == (n_annotators, n_items, 0)
    if n_annotators == 2:
        expected = cohen_kappa_score(labels[:, 0], labels[:, 1])
        assert result.statistic == "cohen_kappa" and result.kappa == pytest.approx(expected)
    else:
        table, _ = aggregate_raters(labels, n_cat=4)
        assert result.statistic == "fleiss_kappa" and result.kappa == pytest.approx(statsmodels_fleiss(table))
    assert fleiss_kappa(aggregate_raters(labels, n_cat=4)[0]) == pytest.approx(
        statsmodels_fleiss(aggregate_raters(labels, n_cat=4)[0]))


def test_agreement_uses_the_images_every_annotator_labelled() -> None:
    frame = pd.DataFrame({"image_id": ["1", "1", "1", "2", "2", "2", "3", "3"],
                          "label": ["a", "a", "b", "b", "b", "b", "a", "b"],
                          "annotator": ["x", "y", "z", "x", "y", "z", "x", "y"]})
    result = annotation_agreement(frame, categories=["a", "b"])
    assert (result.statistic, result.n_items, result.n_items_left_out) == ("fleiss_kappa", 2, 1)
    assert result.kappa == pytest.approx(fleiss_kappa([[2, 1], [0, 3]]))
    assert "1 images labelled by only some annotators left out" in result.line()
    single = annotation_agreement(frame.assign(annotator=pd.NA), categories=["a", "b"])
    assert single.statistic is None and "no annotator column" in single.note
    disjoint = annotation_agreement(pd.DataFrame({"image_id": ["1", "2"], "label": ["a", "b"],
                                                  "annotator": ["x", "y"]}), categories=["a", "b"])
    assert disjoint.statistic is None and "no image was labelled by all 2 annotators" in disjoint.line()
    assert disjoint.to_dict()["kappa"] is None
