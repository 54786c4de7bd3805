"""CACD retrieval across age (CARC protocol): average precision and P@1 per (query, database)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from facebench.data.table import age_band
from facebench.errors import UserInputError
from facebench.tasks.face_recognition import Embeddings, FaceRecognitionTask, unit_rows

__all__ = ["FACE_RETRIEVAL", "FaceRetrievalTask"]


@dataclass(frozen=True, kw_only=True)
class FaceRetrievalTask(FaceRecognitionTask):
    """CACD retrieval across age (CARC protocol): each query image ranks a database of earlier photos.

    Same predictions format as identification. Per (query, database) the outcomes are the query's average
    precision (:func:`facebench.metrics.identification.mean_average_precision`, CARC ``evaluation.m``) and
    whether its top-ranked database image is relevant (P@1; ties keep database order, like MATLAB's stable
    sort). MAP per database is the mean AP, disaggregated by ``database`` (the age gap to the 2013 queries)
    and the query's age band. A query whose identity has no image in a database is skipped for that database.
    """

    name: str = "face_retrieval"
    description: str = ".npz with arrays sample_id (N strings) and embedding (N x D floats), query and database images"
    group_attributes: tuple[str, ...] = ("database", "age_band", "gender", "race")
    # No pair view (``differentials`` stays the default None): queries and databases overlap in identity
    # many-to-many (a later issue may add one).
    #: Each metric's per-sample outcome column (the engine's ``from_outcomes`` path).
    outcome_columns: tuple[tuple[str, str], ...] = (("map", "ap"), ("p_at_1", "hit1"))
    # CACD: each celebrity has many queries, each scored once per database
    unit_columns: tuple[str, ...] = ("subject_id",)
    unit_name: str = "person"

    def outcomes(self, table: pd.DataFrame, predictions: Embeddings, *, protocol, split) -> pd.DataFrame:
        from facebench.metrics.identification import mean_average_precision

        labels = table.set_index("sample_id")
        queries = list(split["query"])
        frames = []
        for part in (p for p in split.parts if p.startswith("db_")):
            database = list(split[part])
            database_ids = labels.loc[database, "subject_id"].to_numpy(dtype=str)
            query_ids = labels.loc[queries, "subject_id"].to_numpy(dtype=str)
            kept = np.isin(query_ids, database_ids)
            if not kept.any():
                continue
            kept_queries = [q for q, k in zip(queries, kept, strict=True) if k]
            q, d = predictions.rows(kept_queries), predictions.rows(database)
            result = mean_average_precision(q, d, query_ids[kept], database_ids, max_k=1)
            similarity = unit_rows(q) @ unit_rows(d).T
            hit1 = database_ids[np.argmax(similarity, axis=1)] == query_ids[kept]  # first maximum: stable order
            ages = labels.loc[kept_queries, "age"].to_numpy(dtype=float)
            frames.append(pd.DataFrame({
                "sample_id": kept_queries, "database": part.removeprefix("db_"),
                "y_true": query_ids[kept], "subject_id": query_ids[kept],
                "y_pred": np.asarray(result.ap, dtype=float),
                "ap": np.asarray(result.ap, dtype=float), "hit1": hit1.astype(float),
                "age_band": age_band(ages, protocol.groups.age_bands).to_numpy(),
                "gender": labels.loc[kept_queries, "gender"].to_numpy(dtype=object),
                "race": labels.loc[kept_queries, "race"].to_numpy(dtype=object),
            }))
        if not frames:
            raise UserInputError("No query identity has an image in any database: nothing to score.")
        return pd.concat(frames, ignore_index=True)


FACE_RETRIEVAL = FaceRetrievalTask()
