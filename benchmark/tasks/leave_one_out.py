"""Leave-one-out identification (FG-NET): every test image a probe against all the others."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facebench.data.table import age_band
from facebench.tasks.face_recognition import FaceRecognitionTask, pair_view, read_npz_matrix, unit_rows
from facebench.tasks.identification import AGE_GAP_EDGES

__all__ = ["FACE_IDENTIFICATION_LOO", "FaceLeaveOneOutTask", "LeaveOneOutScores"]


@dataclass(frozen=True)
class LeaveOneOutScores:
    """Leave-one-out predictions: ids in test order and an (N, N) float32 score matrix, row i = probe i's
    similarity to every image (the diagonal is never used)."""

    sample_ids: tuple[str, ...]
    scores: np.ndarray


@dataclass(frozen=True, kw_only=True)
class FaceLeaveOneOutTask(FaceRecognitionTask):
    """Leave-one-out identification (FG-NET; research notes A5): every test image is a probe against all the
    others. The outcome is the rank of the probe's best mate
    (:func:`facebench.metrics.identification.ranks_from_scores`, self excluded); groups are the probe's age
    band, gender and race, and ``age_gap``: years to the probe's nearest-in-age other image of the same
    person (the easiest mate).

    Predictions are embeddings as for identification (scores = cosine similarities), or, for the paper's
    per-image fine-tuning, an ``.npz`` with ``sample_id`` and ``similarity`` (N x N): row i scored by the model
    fine-tuned without image i.
    """

    name: str = "face_identification_loo"
    description: str = (".npz with arrays sample_id (N strings) and embedding (N x D floats), every test image; or "
                        "sample_id and similarity (N x N, row i = image i's scores against all, diagonal ignored)")
    group_attributes: tuple[str, ...] = ("age_band", "age_gap", "gender", "race")
    # FG-NET: 1,002 probes of 82 people, each person's other images are the probe's mates
    unit_columns: tuple[str, ...] = ("subject_id",)
    unit_name: str = "person"

    def read_predictions(self, path: str | Path, expected_ids: tuple[str, ...]) -> LeaveOneOutScores:
        read = read_npz_matrix(path, expected_ids, accepted={"embedding": False, "similarity": True})
        if read.name == "similarity":
            return LeaveOneOutScores(read.sample_ids, read.matrix)
        unit = unit_rows(read.matrix)
        return LeaveOneOutScores(read.sample_ids, (unit @ unit.T).astype(np.float32))

    def write_similarity(self, path: Path, sample_ids, scores: np.ndarray) -> None:
        from facebench.io import atomic_write

        with atomic_write(path, "wb") as handle:
            np.savez(handle, sample_id=np.asarray(list(sample_ids), dtype=str),
                     similarity=np.asarray(scores, dtype=np.float32))

    def outcomes(self, table: pd.DataFrame, predictions: LeaveOneOutScores, *, protocol, split) -> pd.DataFrame:
        from facebench.metrics.identification import ranks_from_scores

        ids = list(predictions.sample_ids)
        labels = table.set_index("sample_id").loc[ids]
        subjects = labels["subject_id"].to_numpy(dtype=str)
        ranks = ranks_from_scores(predictions.scores, subjects, subjects, exclude_self=True)
        ages = labels["age"].to_numpy(dtype=float)
        same = subjects[:, None] == subjects[None, :]
        np.fill_diagonal(same, False)
        nearest_gap = np.where(same, np.abs(ages[:, None] - ages[None, :]), np.inf).min(axis=1)
        return pd.DataFrame({
            "sample_id": ids, "y_true": subjects, "subject_id": subjects, "y_pred": ranks.astype(float),
            "rank": ranks,
            "age_band": age_band(ages, protocol.groups.age_bands).to_numpy(),
            "age_gap": age_band(nearest_gap, AGE_GAP_EDGES).to_numpy(),
            "gender": labels["gender"].to_numpy(dtype=object), "race": labels["race"].to_numpy(dtype=object),
        })

    def differentials(self, table: pd.DataFrame, predictions: LeaveOneOutScores, *, protocol, split, seed: int) -> dict:
        """Every unordered pair of test images as a comparison, by race and gender where labelled (a pair's
        score is the mean of its two rows' scores, which differ only under per-image fine-tuning)."""
        ids = list(predictions.sample_ids)
        labels = table.set_index("sample_id").loc[ids]
        i, j = np.triu_indices(len(ids), 1)
        scores = (predictions.scores[i, j].astype(np.float64) + predictions.scores[j, i]) / 2.0
        subjects = labels["subject_id"].to_numpy(dtype=str)
        groups = {attribute: (labels[attribute].to_numpy(dtype=object)[i], labels[attribute].to_numpy(dtype=object)[j])
                  for attribute in ("race", "gender")}
        comparison_set = (f"Leave-one-out: each of the {len(ids)} test images against all the others, i.e. every "
                          f"pair of test images once ({len(scores)} pairs; a pair's score is the mean of its two "
                          "directions): two images of the same person are a genuine pair, any other pair an "
                          "impostor.")
        return pair_view(scores, subjects[i] == subjects[j], groups, comparison_set=comparison_set,
                         protocol=protocol, seed=seed, people=(subjects[i], subjects[j]))


FACE_IDENTIFICATION_LOO = FaceLeaveOneOutTask()
