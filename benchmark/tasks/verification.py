"""Pair verification with the insightface 10-fold procedure (AgeDB-30, CACD-VS)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from facebench.data.table import age_band
from facebench.errors import UserInputError
from facebench.tasks.face_recognition import (
    Embeddings,
    FaceRecognitionTask,
    finite_or_none,
    pair_view,
    unit_rows,
)

__all__ = ["FACE_VERIFICATION", "FaceVerificationTask", "PAIR_GAP_EDGES"]


#: Age-gap bins of verification pairs (years between the two faces): AgeDB-30 pairs are all 30+ apart.
PAIR_GAP_EDGES: tuple[int, ...] = (0, 10, 20, 30, 40)


def _pair_label(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """A pair's group: the faces' common label, ``"mixed"`` when they differ, missing when either is."""
    first, second = np.asarray(first, dtype=object), np.asarray(second, dtype=object)
    missing = pd.isna(first) | pd.isna(second)
    first_text, second_text = first.astype(str), second.astype(str)  # pd.NA cannot be compared elementwise
    label = np.where(first_text == second_text, first_text, "mixed").astype(object)
    label[missing] = None
    return label


@dataclass(frozen=True, kw_only=True)
class FaceVerificationTask(FaceRecognitionTask):
    """Pair verification with the insightface 10-fold procedure (AgeDB-30, CACD-VS; research notes A6).

    Same predictions format as identification (an embedding per image of the pairs). For the split's ordered
    pairs the distance is ``sum((e1 - e2)**2)`` of the L2-normalised embeddings; the pairs are cut into
    contiguous folds; each held-out fold is decided at the threshold that maximises accuracy on the other
    folds (:func:`facebench.metrics.verification.kfold_accuracy_from_distances`). The per-pair outcome is
    whether that decision is right, so mean accuracy over pairs equals insightface's mean over equal folds,
    disaggregated by the pair's gender and race (common label or ``mixed``), age gap, the younger face's
    age band and the pair type (genuine pairs: accuracy is TAR; impostor pairs: 1 - FAR).
    """

    name: str = "face_verification"
    description: str = ".npz with arrays sample_id (N strings) and embedding (N x D floats), every image of the pairs"
    group_attributes: tuple[str, ...] = ("gender", "race", "age_gap", "age_band", "pair_type")
    # a pair involves two people (one, for a genuine pair), each of whom appears in other pairs
    unit_columns: tuple[str, ...] = ("subject_id_1", "subject_id_2")
    unit_name: str = "person"
    pair_groups: bool = True

    def _pair_frame(self, labels: pd.DataFrame, predictions: Embeddings, split) -> tuple[pd.DataFrame, dict]:
        """Per-pair decisions and the 10-fold summary; ``labels`` is the FaceTable indexed by sample_id."""
        from facebench.metrics.verification import kfold_accuracy_from_distances, kfold_bounds

        pairs = split.pairs
        if pairs is None:
            raise UserInputError(f"Task {self.name} needs a pair split (age_gap_pairs or listed_pairs).")
        first, second = unit_rows(predictions.rows(pairs.first)), unit_rows(predictions.rows(pairs.second))
        distance = np.sum(np.square(first - second), axis=1)
        same = np.asarray(pairs.same, dtype=bool)
        result = kfold_accuracy_from_distances(distance, same, pairs.n_folds)
        threshold = np.empty(len(pairs))
        for (start, stop), best in zip(kfold_bounds(len(pairs), pairs.n_folds), result.best_thresholds, strict=True):
            threshold[start:stop] = best
        predicted_same = distance < threshold
        a, b = labels.loc[list(pairs.first)], labels.loc[list(pairs.second)]
        age_a, age_b = a["age"].to_numpy(dtype=float, na_value=np.nan), b["age"].to_numpy(dtype=float, na_value=np.nan)
        frame = pd.DataFrame({
            "sample_id": pairs.keys(), "fold": np.asarray(pairs.fold), "distance": distance, "threshold": threshold,
            "y_true": same.astype(int), "y_pred": predicted_same.astype(int),
            "correct": (predicted_same == same).astype(int),
            # missing identities (an official pair list that names no one) make each face a unit of its own
            "subject_id_1": a["subject_id"].to_numpy(dtype=object), "subject_id_2": b["subject_id"].to_numpy(dtype=object),
            "gender": _pair_label(a["gender"], b["gender"]), "race": _pair_label(a["race"], b["race"]),
            "age_gap": age_band(np.abs(age_a - age_b), PAIR_GAP_EDGES).to_numpy(),
            "pair_type": np.where(same, "genuine", "impostor"),
        })
        kfold = {"n_pairs": len(pairs), "n_folds": pairs.n_folds, "mean": float(result.mean), "std": float(result.std),
                 "fold_accuracies": [float(x) for x in result.fold_accuracies],
                 "best_thresholds": [float(x) for x in result.best_thresholds],
                 "folds": [list(bounds) for bounds in result.folds],
                 "val_at_far": finite_or_none(result.val_at_far), "far": finite_or_none(result.far),
                 "far_target": float(result.far_target)}
        return frame, kfold

    def outcomes(self, table: pd.DataFrame, predictions: Embeddings, *, protocol, split) -> pd.DataFrame:
        labels = table.set_index("sample_id")
        frame, _ = self._pair_frame(labels, predictions, split)
        younger = np.fmin(labels.loc[list(split.pairs.first), "age"].to_numpy(dtype=float, na_value=np.nan),
                          labels.loc[list(split.pairs.second), "age"].to_numpy(dtype=float, na_value=np.nan))
        frame["age_band"] = age_band(younger, protocol.groups.age_bands).to_numpy()
        return frame

    def differentials(self, table: pd.DataFrame, predictions: Embeddings, *, protocol, split, seed: int) -> dict:
        """The 10-fold summary (mean ± std over folds, as published) plus the NIST-style pair view."""
        labels = table.set_index("sample_id")
        frame, kfold = self._pair_frame(labels, predictions, split)
        groups = {attribute: (labels.loc[list(split.pairs.first), attribute].to_numpy(dtype=object),
                              labels.loc[list(split.pairs.second), attribute].to_numpy(dtype=object))
                  for attribute in ("race", "gender")}
        comparison_set = (f"The test split's verification pairs, each one comparison ({split.description}): a "
                          "same-person pair is genuine, any other an impostor.")
        view = pair_view(1.0 - frame["distance"].to_numpy() / 2.0, frame["y_true"].to_numpy(dtype=bool), groups,
                         comparison_set=comparison_set, protocol=protocol, seed=seed,
                         people=(frame["subject_id_1"].to_numpy(dtype=object),
                                 frame["subject_id_2"].to_numpy(dtype=object)))
        return {"kfold": kfold, **view}


FACE_VERIFICATION = FaceVerificationTask()
