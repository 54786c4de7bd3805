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
            raise UserInputError(f"Predictions file {path} {'is not a file' if path.exists() else 'does not exist'}.")
        with open(path, "rb") as handle:
            if b"\x00" in handle.read(1 << 16):
                raise UserInputError(f"{path}: not a readable CSV (it contains NUL bytes, so it is a binary file).")
        try:
            frame = pd.read_csv(path, dtype={"sample_id": str}, keep_default_na=False, na_values=[""])
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            reason = str(exc).splitlines()[0].removeprefix("Error tokenizing data. C error: ")  # one sentence
            raise UserInputError(f"{path}: not a readable CSV ({reason}).") from None
        if not isinstance(frame.index, pd.RangeIndex):  # pandas takes extra leading fields for an index
            raise UserInputError(f"{path}: line 2 has more fields than the header has columns.")
        columns = list(frame.columns)
        if columns != list(self.prediction_columns):
            raise UserInputError(
                f"{path}: columns are {','.join(repr(str(c))[1:-1] for c in columns) or 'missing'}; "  # escapes control characters
                f"expected exactly {','.join(self.prediction_columns)}."
            )
        # Row numbers in messages are file lines (the header is line 1).
        missing_id = frame["sample_id"].isna()
        if missing_id.any():
            raise UserInputError(f"{path}: line {int(np.flatnonzero(missing_id)[0]) + 2} has an empty sample_id.")
        duplicated = frame["sample_id"].duplicated()
        if duplicated.any():
            line = int(np.flatnonzero(duplicated)[0]) + 2
            raise UserInputError(f"{path}: line {line} repeats sample_id {str(frame['sample_id'][duplicated].iloc[0])!r}.")
        ages = pd.to_numeric(frame["age"], errors="coerce")
        bad = ages.isna() | ~np.isfinite(ages.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            line = int(np.flatnonzero(bad)[0]) + 2
            raw = frame["age"].iloc[line - 2]
            shown = "'' (empty)" if not isinstance(raw, str) and pd.isna(raw) else repr(str(raw))
            raise UserInputError(f"{path}: line {line} has age {shown}, which is not a finite number.")
        expected = pd.Index(expected_ids)
        unknown = ~frame["sample_id"].isin(expected)
        if unknown.any():
            line = int(np.flatnonzero(unknown)[0]) + 2
            raise UserInputError(
                f"{path}: line {line} has sample_id {str(frame['sample_id'][unknown].iloc[0])!r}, which is not in this protocol's test set."
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


@dataclass(frozen=True)
class NpzMatrix:
    """A validated ``.npz`` prediction: which array it held, ids in test order, the float32 matrix in that order."""

    name: str
    sample_ids: tuple[str, ...]
    matrix: np.ndarray


def read_npz_matrix(path: str | Path, expected_ids: tuple[str, ...], *, accepted: dict[str, bool]) -> NpzMatrix:
    """Read and validate an ``.npz`` of ``sample_id`` (N strings) and one float array, named as one key of
    ``accepted``, whose value says whether it is square: (N, D) rows, or (N, N) scores whose diagonal is
    ignored. The matrix comes back reordered to the test ids (rows, and columns too when square). Rows in
    messages are 0-based indices into the file's arrays."""
    import zipfile

    matrix = next(iter(accepted))  # the usual array, named in messages about unreadable files

    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"Predictions file {path} {'is not a file' if path.exists() else 'does not exist'}.")
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic == b"\x93NUMPY":
        raise UserInputError(f"{path}: not a readable .npz archive (it is a single .npy array; write both arrays "
                             f"with numpy.savez(path, sample_id=..., {matrix}=...)).")
    if not magic.startswith(b"PK"):
        raise UserInputError(f"{path}: not a readable .npz archive (it is not a zip file; write one with "
                             f"numpy.savez(path, sample_id=..., {matrix}=...)).")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UserInputError(f"{path}: not a readable .npz archive ({reason}).") from None
    name = next((key for key in accepted if set(arrays) == {"sample_id", key}), None)
    if name is None:
        names = ", ".join(repr(key)[1:-1] for key in sorted(arrays)) or "none"  # escapes control characters
        wanted = " (or ".join(accepted) + ")" * (len(accepted) - 1)
        raise UserInputError(f"{path}: arrays are {names}; expected exactly sample_id and {wanted}.")
    square = accepted[name]
    not_arrays = sorted(key for key, value in arrays.items() if not isinstance(value, np.ndarray))
    if not_arrays:
        raise UserInputError(f"{path}: member {not_arrays[0]!r} is not a .npy array.")
    ids, matrix = arrays["sample_id"], arrays[name]
    if ids.ndim != 1 or matrix.ndim != 2 or len(ids) != len(matrix):
        raise UserInputError(f"{path}: sample_id must be 1-D and {name} 2-D with one row per sample_id "
                             f"(got {ids.shape} and {matrix.shape}).")
    if square and matrix.shape[1] != len(ids):
        raise UserInputError(f"{path}: {name} must be square, one row and one column per sample_id (got {matrix.shape}).")
    if matrix.shape[1] == 0:
        raise UserInputError(f"{path}: {name} has shape {matrix.shape}, so each row is empty (width 0).")
    if matrix.dtype.kind not in "iuf":
        raise UserInputError(f"{path}: {name} has dtype {matrix.dtype}, not real numbers.")
    if ids.dtype.kind not in "US":
        raise UserInputError(f"{path}: sample_id has dtype {ids.dtype}, not strings.")
    try:
        ids = np.char.decode(ids, "utf-8") if ids.dtype.kind == "S" else ids.astype(str)
    except UnicodeDecodeError as exc:
        raise UserInputError(f"{path}: sample_id holds bytes that are not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    if square:  # the diagonal (an image against itself) is ignored: any value, NaN included
        matrix = matrix.astype(np.float64)
        np.fill_diagonal(matrix, 0.0)
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        raise UserInputError(f"{path}: row {int(np.flatnonzero(bad)[0])} ({str(ids[bad][0])!r}) has a NaN or infinite value.")
    with np.errstate(over="ignore"):
        matrix = matrix.astype(np.float32)
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        raise UserInputError(f"{path}: row {int(np.flatnonzero(bad)[0])} ({str(ids[bad][0])!r}) has a value beyond "
                             "float32's range.")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise UserInputError(f"{path}: sample_id {str(unique[counts > 1][0])!r} appears {int(counts[counts > 1][0])} times.")
    expected = set(expected_ids)
    unknown = [i for i in ids if i not in expected]
    if unknown:
        raise UserInputError(f"{path}: sample_id {str(unknown[0])!r} is not in this protocol's test set.")
    given = set(ids)
    missing = [i for i in expected_ids if i not in given]
    if missing:
        raise UserInputError(f"{path}: {len(missing)} test images have no {name}, the first being '{missing[0]}'.")
    order = {sample_id: i for i, sample_id in enumerate(ids)}
    rows = [order[i] for i in expected_ids]
    return NpzMatrix(name, tuple(expected_ids), matrix[np.ix_(rows, rows)] if square else matrix[rows])


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
        """Read and validate an embeddings ``.npz`` against the test ids; rows come back in test order.

        Rows in messages are 0-based indices into the file's arrays.
        """
        read = read_npz_matrix(path, expected_ids, accepted={"embedding": False})
        return Embeddings(read.sample_ids, read.matrix)

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

        labels = table.set_index("sample_id")
        probes, gallery = list(split["probe"]), list(split["gallery"])
        scores = _unit(predictions.rows(probes)) @ _unit(predictions.rows(gallery)).T
        issame = (labels.loc[probes, "subject_id"].to_numpy(dtype=str)[:, None]
                  == labels.loc[gallery, "subject_id"].to_numpy(dtype=str)[None, :])
        groups = {attribute: (np.repeat(labels.loc[probes, attribute].to_numpy(dtype=object), len(gallery)),
                              np.tile(labels.loc[gallery, attribute].to_numpy(dtype=object), len(probes)))
                  for attribute in ("race", "gender")}
        return pair_view(scores.ravel(), issame.ravel(), groups, protocol=protocol, seed=seed)


def pair_view(scores: np.ndarray, issame: np.ndarray, groups: dict[str, tuple[np.ndarray, np.ndarray]], *,
              protocol, seed: int) -> dict:
    """The verification view of a set of comparisons (``scores``, higher = more similar; ``issame``): per
    attribute in ``groups`` (the two faces' labels), NIST-style FMR/FNMR per group at global thresholds
    (1e-2, 1e-3), FDR, GARBE (:func:`facebench.metrics.verification.demographic_differentials`) and a DET
    curve per group on a common grid of thresholds. Attributes whose labels are all missing are skipped."""
    from facebench.metrics.verification import demographic_differentials

    grid = np.quantile(scores, np.linspace(0.0, 1.0, 81))
    out: dict = {"comparisons": int(scores.size), "genuine": int(issame.sum()), "by_attribute": {}}
    for attribute, (g1, g2) in groups.items():
        if pd.isna(g1).all():
            continue
        result = demographic_differentials(scores, issame, g1, g2, target_fmrs=(1e-2, 1e-3), n_boot=200, seed=seed,
                                           min_group_size=protocol.groups.min_group_size)
        det = {}
        for group in result.groups:
            mask = (g1 == group) & (g2 == group)
            genuine, impostor = scores[mask & issame], scores[mask & ~issame]
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


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _unit(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


FACE_RETRIEVAL = FaceRetrievalTask()


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
class FaceVerificationTask(FaceIdentificationTask):
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

    def _pair_frame(self, table: pd.DataFrame, predictions: Embeddings, split) -> tuple[pd.DataFrame, dict]:
        from facebench.metrics.verification import kfold_accuracy_from_distances, kfold_bounds

        pairs = split.pairs
        if pairs is None:
            raise UserInputError(f"Task {self.name} needs a pair split (age_gap_pairs or listed_pairs).")
        first, second = _unit(predictions.rows(pairs.first)), _unit(predictions.rows(pairs.second))
        distance = np.sum(np.square(first - second), axis=1)
        same = np.asarray(pairs.same, dtype=bool)
        result = kfold_accuracy_from_distances(distance, same, pairs.n_folds)
        threshold = np.empty(len(pairs))
        for (start, stop), best in zip(kfold_bounds(len(pairs), pairs.n_folds), result.best_thresholds, strict=True):
            threshold[start:stop] = best
        predicted_same = distance < threshold
        labels = table.set_index("sample_id")
        a, b = labels.loc[list(pairs.first)], labels.loc[list(pairs.second)]
        age_a, age_b = a["age"].to_numpy(dtype=float, na_value=np.nan), b["age"].to_numpy(dtype=float, na_value=np.nan)
        frame = pd.DataFrame({
            "sample_id": pairs.keys(), "fold": np.asarray(pairs.fold), "distance": distance, "threshold": threshold,
            "y_true": same.astype(int), "y_pred": predicted_same.astype(int),
            "correct": (predicted_same == same).astype(int),
            "gender": _pair_label(a["gender"], b["gender"]), "race": _pair_label(a["race"], b["race"]),
            "age_gap": age_band(np.abs(age_a - age_b), PAIR_GAP_EDGES).to_numpy(),
            "pair_type": np.where(same, "genuine", "impostor"),
        })
        kfold = {"n_pairs": len(pairs), "n_folds": pairs.n_folds, "mean": float(result.mean), "std": float(result.std),
                 "fold_accuracies": [float(x) for x in result.fold_accuracies],
                 "best_thresholds": [float(x) for x in result.best_thresholds],
                 "folds": [list(bounds) for bounds in result.folds],
                 "val_at_far": _finite_or_none(result.val_at_far), "far": _finite_or_none(result.far),
                 "far_target": float(result.far_target)}
        return frame, kfold

    def outcomes(self, table: pd.DataFrame, predictions: Embeddings, *, protocol, split) -> pd.DataFrame:
        frame, _ = self._pair_frame(table, predictions, split)
        labels = table.set_index("sample_id")
        younger = np.fmin(labels.loc[list(split.pairs.first), "age"].to_numpy(dtype=float, na_value=np.nan),
                          labels.loc[list(split.pairs.second), "age"].to_numpy(dtype=float, na_value=np.nan))
        frame["age_band"] = age_band(younger, protocol.groups.age_bands).to_numpy()
        return frame

    def differentials(self, table: pd.DataFrame, predictions: Embeddings, *, protocol, split, seed: int) -> dict:
        """The 10-fold summary (mean ± std over folds, as published) plus the NIST-style pair view."""
        frame, kfold = self._pair_frame(table, predictions, split)
        labels = table.set_index("sample_id")
        groups = {attribute: (labels.loc[list(split.pairs.first), attribute].to_numpy(dtype=object),
                              labels.loc[list(split.pairs.second), attribute].to_numpy(dtype=object))
                  for attribute in ("race", "gender")}
        view = pair_view(1.0 - frame["distance"].to_numpy() / 2.0, frame["y_true"].to_numpy(dtype=bool), groups,
                         protocol=protocol, seed=seed)
        return {"kfold": kfold, **view}


FACE_VERIFICATION = FaceVerificationTask()


@dataclass(frozen=True)
class LeaveOneOutScores:
    """Leave-one-out predictions: ids in test order and an (N, N) float32 score matrix, row i = probe i's
    similarity to every image (the diagonal is never used)."""

    sample_ids: tuple[str, ...]
    scores: np.ndarray


@dataclass(frozen=True, kw_only=True)
class FaceLeaveOneOutTask(FaceIdentificationTask):
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

    def read_predictions(self, path: str | Path, expected_ids: tuple[str, ...]) -> LeaveOneOutScores:
        read = read_npz_matrix(path, expected_ids, accepted={"embedding": False, "similarity": True})
        if read.name == "similarity":
            return LeaveOneOutScores(read.sample_ids, read.matrix)
        unit = _unit(read.matrix)
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
            "sample_id": ids, "y_true": subjects, "y_pred": ranks.astype(float), "rank": ranks,
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
        return pair_view(scores, subjects[i] == subjects[j], groups, protocol=protocol, seed=seed)


FACE_IDENTIFICATION_LOO = FaceLeaveOneOutTask()
