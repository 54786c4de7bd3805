"""How far annotators agree: Cohen's kappa for two annotators, Fleiss' kappa for more.

A label that annotators assign from a photo (CelebA's race annotations, :mod:`facebench.data.annotations`) is a
judgement, not a fact about the person; how often two judges give the same label, beyond what chance gives, says
how much a group comparison built on it can be trusted. The report states it beside every result grouped by
such a label.

Both statistics are computed on the images that *every* annotator labelled (the complete cases), so that each
item has the same raters: Cohen's kappa needs the same two raters on every item, Fleiss' kappa the same number.
Images labelled by only some annotators are counted and left out (:attr:`Agreement.n_items_left_out`).

Cohen's kappa is :func:`sklearn.metrics.cohen_kappa_score` (a well-kept implementation; scikit-learn is installed
with fairlearn). Fleiss' kappa is Fleiss (1971), eq. for equal raters per item, written out below in numpy rather
than taken from statsmodels, which is only a test dependency; ``tests/test_agreement.py`` checks both against
``statsmodels.stats.inter_rater.fleiss_kappa``, ``sklearn.metrics.cohen_kappa_score`` and hand-worked cases.

>>> round(fleiss_kappa([[2, 0], [0, 2], [1, 1]]), 4)
0.3333
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Agreement:
    """Agreement of the annotators of one annotation file.

    ``statistic`` is ``"cohen_kappa"`` (two annotators), ``"fleiss_kappa"`` (three or more) or ``None`` when
    no agreement can be measured (one annotator, no annotator column, or no image labelled by all); ``note``
    then says why. ``kappa`` is NaN when every complete-case label is the same category (chance agreement 1).
    """

    statistic: str | None
    kappa: float | None
    n_annotators: int
    n_items: int              # images labelled by every annotator: the ones the statistic is computed on
    n_items_left_out: int     # images labelled by some annotators only
    note: str = ""

    def to_dict(self) -> dict:
        """JSON-able (NaN kappa becomes None)."""
        kappa = None if self.kappa is None or not np.isfinite(self.kappa) else float(self.kappa)
        return {"statistic": self.statistic, "kappa": kappa, "n_annotators": self.n_annotators,
                "n_items": self.n_items, "n_items_left_out": self.n_items_left_out, "note": self.note}

    def line(self) -> str:
        """One sentence for a report or ``facebench data verify``."""
        if self.statistic is None:
            return f"annotator agreement not measured: {self.note}"
        name = {"cohen_kappa": "Cohen's kappa", "fleiss_kappa": "Fleiss' kappa"}[self.statistic]
        value = "undefined (every label the same)" if not np.isfinite(self.kappa) else f"{self.kappa:.3f}"
        left = f"; {self.n_items_left_out} images labelled by only some annotators left out" if self.n_items_left_out else ""
        return f"{name} {value} over {self.n_items} images labelled by all {self.n_annotators} annotators{left}"


def cohen_kappa(first: Sequence, second: Sequence, *, categories: Sequence[str] | None = None) -> float:
    """Cohen's kappa of two annotators' labels of the same items, in the same order.

    >>> cohen_kappa(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    0.5
    """
    from sklearn.metrics import cohen_kappa_score

    if len(first) != len(second) or len(first) == 0:
        raise ValueError("cohen_kappa needs two equally long, non-empty label sequences")
    return float(cohen_kappa_score(list(first), list(second), labels=None if categories is None else list(categories)))


def fleiss_kappa(counts) -> float:
    """Fleiss' kappa from an items × categories table of how many annotators gave each item each category.

    Every row must sum to the same number of annotators ``n`` ≥ 2 (Fleiss 1971): with ``p_j`` the share of all
    labels in category ``j``, ``P_i = (sum_j n_ij^2 - n) / (n (n - 1))`` the agreement on item ``i``,
    ``kappa = (mean P_i - sum_j p_j^2) / (1 - sum_j p_j^2)``.
    """
    table = np.asarray(counts, dtype=float)
    if table.ndim != 2 or table.shape[0] == 0:
        raise ValueError("fleiss_kappa needs a non-empty items x categories table")
    raters = table.sum(axis=1)
    n = raters[0]
    if n < 2 or not np.all(raters == n):
        raise ValueError("fleiss_kappa needs the same number (at least 2) of annotators for every item")
    p_j = table.sum(axis=0) / (table.shape[0] * n)
    p_i = ((table * table).sum(axis=1) - n) / (n * (n - 1))
    p_e = float((p_j * p_j).sum())
    if p_e == 1.0:
        return float("nan")
    return float((p_i.mean() - p_e) / (1.0 - p_e))


def annotation_agreement(frame: pd.DataFrame, *, categories: Sequence[str]) -> Agreement:
    """The agreement of an annotation table with columns ``image_id``, ``label`` and ``annotator`` (missing
    annotators: nothing to compare). Computed on the images labelled by every annotator (module docstring).

    >>> frame = pd.DataFrame({"image_id": ["1", "1", "2", "2", "3"], "label": ["a", "a", "b", "a", "b"],
    ...                       "annotator": ["x", "y", "x", "y", "x"]})
    >>> annotation_agreement(frame, categories=["a", "b"]).line()
    "Cohen's kappa 0.000 over 2 images labelled by all 2 annotators; 1 images labelled by only some annotators left out"
    """
    if "annotator" not in frame.columns or frame["annotator"].isna().all():
        return Agreement(None, None, 1 if len(frame) else 0, 0, int(frame["image_id"].nunique()),
                         "the file names no annotators (no annotator column), so there is one label per image")
    annotators = sorted(frame["annotator"].astype(str).unique())
    per_image = frame.groupby("image_id")["annotator"].nunique()
    complete = per_image.index[per_image == len(annotators)]
    left_out = int(len(per_image) - len(complete))
    if len(annotators) < 2:
        return Agreement(None, None, len(annotators), 0, left_out + len(complete),
                         f"only one annotator ({annotators[0]}) labelled the images")
    if len(complete) == 0:
        return Agreement(None, None, len(annotators), 0, left_out,
                         f"no image was labelled by all {len(annotators)} annotators")
    rows = frame[frame["image_id"].isin(set(complete))]
    if len(annotators) == 2:
        wide = rows.pivot(index="image_id", columns="annotator", values="label")
        kappa = cohen_kappa(wide[annotators[0]].tolist(), wide[annotators[1]].tolist(), categories=categories)
        return Agreement("cohen_kappa", kappa, 2, len(complete), left_out)
    counts = pd.crosstab(rows["image_id"], pd.Categorical(rows["label"], categories=list(categories)),
                         dropna=False).to_numpy()
    return Agreement("fleiss_kappa", fleiss_kappa(counts), len(annotators), len(complete), left_out)
