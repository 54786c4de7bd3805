"""Closed-set identification across age: each probe ranked against a gallery (MORPH)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from facebench.data.table import age_band
from facebench.tasks.face_recognition import Embeddings, FaceRecognitionTask, pair_view, unit_rows

__all__ = ["AGE_GAP_EDGES", "FACE_IDENTIFICATION", "FaceIdentificationTask"]


#: Age-gap bins (years between a probe and its gallery mate): lower edges, the last open.
AGE_GAP_EDGES: tuple[int, ...] = (0, 5, 10, 20)


@dataclass(frozen=True, kw_only=True)
class FaceIdentificationTask(FaceRecognitionTask):
    """Closed-set identification across age: one gallery and one probe image per test subject.

    Predictions are an ``.npz`` with ``sample_id`` (N strings) and ``embedding`` (N × D floats) for every
    gallery and probe image of the test split. Each probe is ranked against the gallery by cosine similarity
    (:func:`facebench.metrics.identification.identification_hits`); its outcome is the rank of its mate, and
    rank-k is the fraction of probes with rank ≤ k, disaggregated by the probe's race, gender, age band
    and the probe-gallery age gap.
    """

    name: str = "face_identification"
    group_attributes: tuple[str, ...] = ("race", "gender", "age_band", "age_gap")
    # a subject's probes share the subject's face and gallery image: they stand or fall together
    unit_columns: tuple[str, ...] = ("subject_id",)
    unit_name: str = "person"
    description: str = ".npz with arrays sample_id (N strings) and embedding (N x D floats), gallery and probe images"

    def outcomes(self, table: pd.DataFrame, predictions: Embeddings, *, protocol, split) -> pd.DataFrame:
        from facebench.metrics.identification import identification_hits

        labels = table.set_index("sample_id")
        probes, gallery = list(split["probe"]), list(split["gallery"])
        ranks = identification_hits(predictions.rows(probes), predictions.rows(gallery),
                                    labels.loc[probes, "subject_id"].to_numpy(dtype=str),
                                    labels.loc[gallery, "subject_id"].to_numpy(dtype=str))
        probe_age = labels.loc[probes, "age"].to_numpy(dtype=float)
        mate_age = labels.loc[gallery].set_index("subject_id").loc[labels.loc[probes, "subject_id"], "age"].to_numpy(dtype=float)
        return pd.DataFrame({
            "sample_id": probes,
            "y_true": labels.loc[probes, "subject_id"].to_numpy(dtype=str),
            "subject_id": labels.loc[probes, "subject_id"].to_numpy(dtype=str),
            "y_pred": ranks.astype(float),
            "rank": ranks,
            "race": labels.loc[probes, "race"].to_numpy(dtype=object),
            "gender": labels.loc[probes, "gender"].to_numpy(dtype=object),
            "age_band": age_band(probe_age, protocol.groups.age_bands).to_numpy(),
            "age_gap": age_band(np.abs(probe_age - mate_age), AGE_GAP_EDGES).to_numpy(),
        })

    def differentials(self, table: pd.DataFrame, predictions: Embeddings, *, protocol, split, seed: int) -> dict:
        """Verification view of the same test set: every probe-gallery pair is a comparison (its mate genuine,
        every other gallery image an impostor). NIST-style FMR/FNMR per group at global thresholds, FDR,
        GARBE, and a DET curve per group (:func:`facebench.metrics.differentials.demographic_differentials`)."""

        labels = table.set_index("sample_id")
        probes, gallery = list(split["probe"]), list(split["gallery"])
        scores = unit_rows(predictions.rows(probes)) @ unit_rows(predictions.rows(gallery)).T
        issame = (labels.loc[probes, "subject_id"].to_numpy(dtype=str)[:, None]
                  == labels.loc[gallery, "subject_id"].to_numpy(dtype=str)[None, :])
        groups = {attribute: (np.repeat(labels.loc[probes, attribute].to_numpy(dtype=object), len(gallery)),
                              np.tile(labels.loc[gallery, attribute].to_numpy(dtype=object), len(probes)))
                  for attribute in ("race", "gender")}
        comparison_set = (f"Every probe–gallery comparison of the test set ({len(probes)} probes × {len(gallery)} "
                          "gallery images): a probe against its mate is genuine, against any other gallery image "
                          "an impostor.")
        people = (np.repeat(labels.loc[probes, "subject_id"].to_numpy(dtype=object), len(gallery)),
                  np.tile(labels.loc[gallery, "subject_id"].to_numpy(dtype=object), len(probes)))
        return pair_view(scores.ravel(), issame.ravel(), groups, comparison_set=comparison_set, protocol=protocol,
                         seed=seed, people=people)


FACE_IDENTIFICATION = FaceIdentificationTask()
