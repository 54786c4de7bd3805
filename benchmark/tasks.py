"""Task evaluators: read and validate a predictions file, and turn predictions into per-sample outcomes.

The predictions file is the contract between models and metrics: baselines write it, users submit it,
and both are scored by the same code (``facebench.evaluate``). Every problem with a file is one sentence
naming the file and the row or column, raised as :class:`~facebench.errors.UserInputError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facebench.data.table import age_band
from facebench.errors import UserInputError


@dataclass(frozen=True, kw_only=True)
class AgeRegressionTask:
    """Age estimation: predictions are a CSV ``sample_id,age`` with one row per test image."""

    name: str = "age_regression"
    baseline_kind: str = "age_regression"  # baselines whose ``task`` is this can run the task
    predictions_file: str = "predictions.csv"
    group_attributes: tuple[str, ...] = ("race", "gender", "age_band")
    prediction_columns: tuple[str, ...] = ("sample_id", "age")
    description: str = "CSV with header sample_id,age: one row per test image, age in years (any real number)"
    #: Splits scored overall besides the test split: (label in results.json, split part).
    extra_splits: tuple[tuple[str, str], ...] = (("source_val", "val"),)

    def fit_data(self, table: pd.DataFrame, split, images):
        """What a baseline may train on: source images with ages, validation, unlabelled target images."""
        from facebench.baselines.base import FitData

        ages = table["age"]
        return FitData(
            train_images=images("train"), train_ages=ages.loc[list(split["train"])].to_numpy(dtype=np.float64),
            val_images=images("val"), val_ages=ages.loc[list(split["val"])].to_numpy(dtype=np.float64),
            target_images=images("target") if "target" in split.parts else None,
        )

    def write_predictions(self, path: Path, sample_ids, ages: np.ndarray) -> None:
        from facebench.io import atomic_write

        frame = pd.DataFrame({"sample_id": list(sample_ids), "age": np.asarray(ages, dtype=float)})
        with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
            frame.to_csv(handle, index=False, float_format="%.6f")

    def read_predictions(self, path: str | Path, expected_ids: tuple[str, ...]) -> pd.DataFrame:
        """Read and validate a predictions CSV against the protocol's test ids; return it in test order."""
        path = Path(path)
        if not path.is_file():
            raise UserInputError(f"Predictions file {path} does not exist.")
        try:
            frame = pd.read_csv(path, dtype={"sample_id": str}, keep_default_na=False, na_values=[""])
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise UserInputError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]}).") from None
        columns = list(frame.columns)
        if columns != list(self.prediction_columns):
            raise UserInputError(
                f"{path}: columns are {','.join(map(str, columns)) or 'missing'}; expected exactly {','.join(self.prediction_columns)}."
            )
        # Row numbers in messages are file lines (the header is line 1).
        missing_id = frame["sample_id"].isna()
        if missing_id.any():
            raise UserInputError(f"{path}: line {int(np.flatnonzero(missing_id)[0]) + 2} has an empty sample_id.")
        duplicated = frame["sample_id"].duplicated()
        if duplicated.any():
            line = int(np.flatnonzero(duplicated)[0]) + 2
            raise UserInputError(f"{path}: line {line} repeats sample_id '{frame['sample_id'][duplicated].iloc[0]}'.")
        ages = pd.to_numeric(frame["age"], errors="coerce")
        bad = ages.isna() | ~np.isfinite(ages.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            line = int(np.flatnonzero(bad)[0]) + 2
            raise UserInputError(f"{path}: line {line} has age {frame['age'].iloc[line - 2]!r}, which is not a finite number.")
        expected = pd.Index(expected_ids)
        unknown = ~frame["sample_id"].isin(expected)
        if unknown.any():
            line = int(np.flatnonzero(unknown)[0]) + 2
            raise UserInputError(
                f"{path}: line {line} has sample_id '{frame['sample_id'][unknown].iloc[0]}', which is not in this protocol's test set."
            )
        absent = ~expected.isin(frame["sample_id"])
        if absent.any():
            raise UserInputError(
                f"{path}: {int(absent.sum())} test images have no prediction, the first being '{expected[absent][0]}'."
            )
        frame["age"] = ages.astype(float)
        return frame.set_index("sample_id").loc[list(expected_ids)].reset_index()

    def outcomes(self, table: pd.DataFrame, predictions: pd.DataFrame, *, protocol, split=None) -> pd.DataFrame:
        """Per-sample outcomes with the group columns: sample_id, y_true, y_pred, error, abs_error, race, gender, age_band."""
        labels = table.set_index("sample_id").loc[predictions["sample_id"]]
        y_true = labels["age"].to_numpy(dtype=float)
        y_pred = predictions["age"].to_numpy(dtype=float)
        return pd.DataFrame({
            "sample_id": predictions["sample_id"].to_numpy(),
            "y_true": y_true,
            "y_pred": y_pred,
            "error": y_pred - y_true,
            "abs_error": np.abs(y_pred - y_true),
            "race": labels["race"].to_numpy(dtype=object),
            "gender": labels["gender"].to_numpy(dtype=object),
            "age_band": age_band(y_true, protocol.groups.age_bands).to_numpy(),
        })


AGE_REGRESSION = AgeRegressionTask()


@dataclass(frozen=True)
class Embeddings:
    """Validated embedding predictions: ids in the protocol's test order and a float32 (N, D) matrix."""

    sample_ids: tuple[str, ...]
    matrix: np.ndarray

    def rows(self, ids) -> np.ndarray:
        index = {sample_id: i for i, sample_id in enumerate(self.sample_ids)}
        return self.matrix[[index[sample_id] for sample_id in ids]]


#: Age-gap bins (years between a probe and its gallery mate): lower edges, the last open.
AGE_GAP_EDGES: tuple[int, ...] = (0, 5, 10, 20)


@dataclass(frozen=True, kw_only=True)
class FaceIdentificationTask:
    """Closed-set identification across age: one gallery and one probe image per test subject.

    (Its embedding file format, validation and training data are shared by every face-recognition task.)

    Predictions are an ``.npz`` with ``sample_id`` (N strings) and ``embedding`` (N × D floats) for every
    gallery and probe image of the test split. Each probe is ranked against the gallery by cosine similarity
    (:func:`facebench.metrics.identification.identification_hits`); its outcome is the rank of its mate, and
    rank-k is the fraction of probes with rank ≤ k, disaggregated by the probe's race, gender, age band
    and the probe-gallery age gap.
    """

    name: str = "face_identification"
    baseline_kind: str = "face_recognition"  # any embedder
    predictions_file: str = "predictions.npz"
    group_attributes: tuple[str, ...] = ("race", "gender", "age_band", "age_gap")
    description: str = ".npz with arrays sample_id (N strings) and embedding (N x D floats), gallery and probe images"
    extra_splits: tuple[tuple[str, str], ...] = ()

    def fit_data(self, table: pd.DataFrame, split, images):
        """Training images with identity codes (0..C-1) and ages; validation likewise (its own codes)."""
        from facebench.baselines.face_recognition import FaceFitData

        def codes(part: str) -> np.ndarray:
            return pd.factorize(table.loc[list(split[part]), "subject_id"], sort=True)[0].astype(np.int64)

        ages = table["age"]
        return FaceFitData(
            train_images=images("train"), train_ages=ages.loc[list(split["train"])].to_numpy(dtype=np.float64),
            val_images=images("val"), val_ages=ages.loc[list(split["val"])].to_numpy(dtype=np.float64),
            train_subjects=codes("train"), val_subjects=codes("val"),
        )

    def write_predictions(self, path: Path, sample_ids, embeddings: np.ndarray) -> None:
        from facebench.io import atomic_write

        with atomic_write(path, "wb") as handle:
            np.savez(handle, sample_id=np.asarray(list(sample_ids), dtype=str),
                     embedding=np.asarray(embeddings, dtype=np.float32))

    def read_predictions(self, path: str | Path, expected_ids: tuple[str, ...]) -> Embeddings:
        path = Path(path)
        if not path.is_file():
            raise UserInputError(f"Predictions file {path} does not exist.")
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        except (OSError, ValueError) as exc:
            raise UserInputError(f"{path}: not a readable .npz archive ({str(exc).splitlines()[0]}).") from None
        if set(arrays) != {"sample_id", "embedding"}:
            raise UserInputError(f"{path}: arrays are {', '.join(sorted(arrays)) or 'none'}; expected exactly sample_id and embedding.")
        ids, matrix = arrays["sample_id"], arrays["embedding"]
        if ids.ndim != 1 or matrix.ndim != 2 or len(ids) != len(matrix):
            raise UserInputError(f"{path}: sample_id must be 1-D and embedding 2-D with one row per sample_id "
                                 f"(got {ids.shape} and {matrix.shape}).")
        if not np.issubdtype(matrix.dtype, np.number):
            raise UserInputError(f"{path}: embedding has dtype {matrix.dtype}, not numbers.")
        ids = ids.astype(str)
        bad = ~np.isfinite(matrix).all(axis=1)
        if bad.any():
            raise UserInputError(f"{path}: row {int(np.flatnonzero(bad)[0])} ('{ids[bad][0]}') has a NaN or infinite value.")
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise UserInputError(f"{path}: sample_id '{unique[counts > 1][0]}' appears {int(counts.max())} times.")
        expected = set(expected_ids)
        unknown = [i for i in ids if i not in expected]
        if unknown:
            raise UserInputError(f"{path}: sample_id '{unknown[0]}' is not in this protocol's test set.")
        missing = [i for i in expected_ids if i not in set(ids)]
        if missing:
            raise UserInputError(f"{path}: {len(missing)} test images have no embedding, the first being '{missing[0]}'.")
        order = {sample_id: i for i, sample_id in enumerate(ids)}
        return Embeddings(tuple(expected_ids), matrix[[order[i] for i in expected_ids]].astype(np.float32))

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
        GARBE, and a DET curve per group (:func:`facebench.metrics.verification.demographic_differentials`)."""
        from facebench.metrics.verification import demographic_differentials

        labels = table.set_index("sample_id")
        probes, gallery = list(split["probe"]), list(split["gallery"])
        scores = _unit(predictions.rows(probes)) @ _unit(predictions.rows(gallery)).T
        issame = (labels.loc[probes, "subject_id"].to_numpy(dtype=str)[:, None]
                  == labels.loc[gallery, "subject_id"].to_numpy(dtype=str)[None, :])
        grid = np.quantile(scores, np.linspace(0.0, 1.0, 81))
        out: dict = {"comparisons": int(scores.size), "genuine": int(issame.sum()), "by_attribute": {}}
        for attribute in ("race", "gender"):
            probe_groups = labels.loc[probes, attribute].to_numpy(dtype=object)
            gallery_groups = labels.loc[gallery, attribute].to_numpy(dtype=object)
            if pd.isna(probe_groups).all():
                continue
            g1 = np.repeat(probe_groups, len(gallery))
            g2 = np.tile(gallery_groups, len(probes))
            result = demographic_differentials(scores.ravel(), issame.ravel(), g1, g2, target_fmrs=(1e-2, 1e-3),
                                               n_boot=200, seed=seed, min_group_size=protocol.groups.min_group_size)
            det = {}
            for group in result.groups:
                mask = (g1 == group) & (g2 == group)
                genuine, impostor = scores.ravel()[mask & issame.ravel()], scores.ravel()[mask & ~issame.ravel()]
                if len(genuine) and len(impostor):
                    det[str(group)] = {"fmr": [float(np.mean(impostor >= t)) for t in grid],
                                       "fnmr": [float(np.mean(genuine < t)) for t in grid]}
            out["pair_rule"] = result.pair_rule
            out["by_attribute"][attribute] = {
                "rates": [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                          for row in result.to_frame().to_dict(orient="records")],
                "summary": {f"{target:g}": {k: (None if not np.isfinite(v) else float(v)) for k, v in values.items()}
                            for target, values in result.summary().items()},
                "det": det,
            }
        return out


FACE_IDENTIFICATION = FaceIdentificationTask()


@dataclass(frozen=True, kw_only=True)
class FaceRetrievalTask(FaceIdentificationTask):
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
    #: No pair view: queries and databases overlap in identity many-to-many (a later issue may add one).
    differentials = None
    #: Each metric's per-sample outcome column (the engine's ``from_outcomes`` path).
    outcome_columns: tuple[tuple[str, str], ...] = (("map", "ap"), ("p_at_1", "hit1"))

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
            similarity = _unit(q) @ _unit(d).T
            hit1 = database_ids[np.argmax(similarity, axis=1)] == query_ids[kept]  # first maximum: stable order
            ages = labels.loc[kept_queries, "age"].to_numpy(dtype=float)
            frames.append(pd.DataFrame({
                "sample_id": kept_queries, "database": part.removeprefix("db_"),
                "y_true": query_ids[kept], "y_pred": np.asarray(result.ap, dtype=float),
                "ap": np.asarray(result.ap, dtype=float), "hit1": hit1.astype(float),
                "age_band": age_band(ages, protocol.groups.age_bands).to_numpy(),
                "gender": labels.loc[kept_queries, "gender"].to_numpy(dtype=object),
                "race": labels.loc[kept_queries, "race"].to_numpy(dtype=object),
            }))
        if not frames:
            raise UserInputError("No query identity has an image in any database: nothing to score.")
        return pd.concat(frames, ignore_index=True)


def _unit(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


FACE_RETRIEVAL = FaceRetrievalTask()
