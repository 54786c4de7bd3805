"""What every face-recognition task shares: the embeddings ``.npz`` format (write, read, validate), the
training data with identity labels, and the NIST-style pair view of a set of comparisons.

The tasks themselves (:mod:`~facebench.tasks.identification`, :mod:`~facebench.tasks.retrieval`,
:mod:`~facebench.tasks.verification`, :mod:`~facebench.tasks.leave_one_out`) subclass
:class:`FaceRecognitionTask` and add their outcomes.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facebench.errors import UserInputError, shorten
from facebench.fit_data import FaceFitData
from facebench.metrics.base import l2_normalize
from facebench.tasks.base import Task

__all__ = ["Embeddings", "FaceRecognitionTask", "NpzMatrix", "finite_or_none", "pair_view", "read_npz_matrix",
           "unit_rows"]


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
    arrays = read_npz_arrays(path)
    name = next((key for key in accepted if set(arrays) == {"sample_id", key}), None)
    if name is None:
        names = ", ".join(repr(key)[1:-1] for key in sorted(arrays)) or "none"  # escapes control characters
        wanted = " (or ".join(accepted) + ")" * (len(accepted) - 1)
        raise UserInputError(f"{path}: arrays are {names}; expected exactly sample_id and {wanted}.")
    square = accepted[name]
    not_arrays = sorted(key for key, value in arrays.items() if not isinstance(value, np.ndarray))
    if not_arrays:
        raise UserInputError(f"{path}: member {shorten(not_arrays[0])} is not a .npy array.")
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
        raise UserInputError(f"{path}: row {int(np.flatnonzero(bad)[0])} ({shorten(str(ids[bad][0]))}) has a NaN or infinite value.")
    with np.errstate(over="ignore"):
        matrix = matrix.astype(np.float32)
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        raise UserInputError(f"{path}: row {int(np.flatnonzero(bad)[0])} ({shorten(str(ids[bad][0]))}) has a value beyond "
                             "float32's range.")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise UserInputError(f"{path}: sample_id {shorten(str(unique[counts > 1][0]))} appears {int(counts[counts > 1][0])} times.")
    expected = set(expected_ids)
    unknown = [i for i in ids if i not in expected]
    if unknown:
        raise UserInputError(f"{path}: sample_id {shorten(str(unknown[0]))} is not in this protocol's test set.")
    given = set(ids)
    missing = [i for i in expected_ids if i not in given]
    if missing:
        raise UserInputError(f"{path}: {len(missing)} test images have no {name}, the first being '{missing[0]}'.")
    order = {sample_id: i for i, sample_id in enumerate(ids)}
    rows = [order[i] for i in expected_ids]
    return NpzMatrix(name, tuple(expected_ids), matrix[np.ix_(rows, rows)] if square else matrix[rows])


@dataclass(frozen=True, kw_only=True)
class FaceRecognitionTask(Task):
    """Base of the face-recognition tasks: predictions are an ``.npz`` with ``sample_id`` (N strings) and
    ``embedding`` (N × D floats); baselines train on images with identity codes and ages."""

    baseline_kind: str = "face_recognition"  # any embedder
    predictions_file: str = "predictions.npz"

    def fit_data(self, table: pd.DataFrame, split, images):
        """Training images with identity codes (0..C-1) and ages; validation likewise (its own codes)."""
        labels = table.set_index("sample_id")

        def codes(part: str) -> np.ndarray:
            return pd.factorize(labels.loc[list(split[part]), "subject_id"], sort=True)[0].astype(np.int64)

        ages = labels["age"]
        return FaceFitData(
            train_images=images("train"), train_ages=ages.loc[list(split["train"])].to_numpy(dtype=np.float64),
            val_images=images("val"), val_ages=ages.loc[list(split["val"])].to_numpy(dtype=np.float64),
            train_subjects=codes("train"), val_subjects=codes("val"),
        )

    def write_predictions(self, path: Path, sample_ids, outputs: np.ndarray) -> None:
        from facebench.io import atomic_write

        with atomic_write(path, "wb") as handle:
            np.savez(handle, sample_id=np.asarray(list(sample_ids), dtype=str),
                     embedding=np.asarray(outputs, dtype=np.float32))

    def read_predictions(self, path: str | Path, expected_ids: tuple[str, ...]) -> Embeddings:
        """Read and validate an embeddings ``.npz`` against the test ids; rows come back in test order.

        Rows in messages are 0-based indices into the file's arrays.
        """
        read = read_npz_matrix(path, expected_ids, accepted={"embedding": False})
        return Embeddings(read.sample_ids, read.matrix)


def read_npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive, read without pickles after each member's header is checked
    (:func:`_check_npy_headers`); an archive that does not read is one sentence (its reason cut short)."""
    try:
        _check_npy_headers(path)
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        reason = reason if len(reason) <= 120 else reason[:119] + "…"  # numpy's words, cut short, unquoted
        raise UserInputError(f"{path}: not a readable .npz archive ({reason}).") from None


def _check_npy_headers(path: Path) -> None:
    """Refuse (ValueError, worded by the caller) an archive member whose .npy header claims more data than the
    member holds: numpy would try to allocate the claimed shape first (a 100-byte file can claim terabytes)."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                try:
                    version = np.lib.format.read_magic(member)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(member)
                except (ValueError, EOFError) as exc:
                    raise ValueError(f"member {info.filename[:60]!r} has no valid .npy header: "
                                     f"{(str(exc).splitlines() or ['unreadable'])[0][:120]}") from None
            claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if claimed > info.file_size:
                raise ValueError(f"member {info.filename[:60]!r} claims shape {shape} of {dtype}, "
                                 f"{claimed:,} bytes, but holds {info.file_size:,}")


def pair_view(scores: np.ndarray, issame: np.ndarray, groups: dict[str, tuple[np.ndarray, np.ndarray]], *,
              comparison_set: str, protocol, seed: int, people: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """The verification view of a set of comparisons (``scores``, higher = more similar; ``issame``): per
    attribute in ``groups`` (the two faces' labels), NIST-style FMR/FNMR per group at global thresholds
    (1e-2, 1e-3), FDR, GARBE (:func:`facebench.metrics.differentials.demographic_differentials`), a DET
    curve per group on a common grid of thresholds and the sentence of the pair-to-group rule that attribute's
    pairs were assigned by (``by_attribute[a]["pair_rule"]``: its counts of cross-group pairs are the
    attribute's own). Attributes whose labels are all missing are skipped.

    ``comparison_set`` says in one sentence which comparisons these are (each task has its own: probe–gallery,
    listed or seeded pairs, every image against all others); the report prints it above the view.

    ``people``: the two faces' person of every comparison. With them the per-group intervals and the FDR/GARBE
    intervals resample people (a person's comparisons are not independent: the same face is in many of them);
    ``intervals`` in the view says which method made them (``cluster_bootstrap`` or ``wilson``)."""
    from facebench.metrics.differentials import demographic_differentials

    grid = np.quantile(scores, np.linspace(0.0, 1.0, 81))
    out: dict = {"comparisons": int(scores.size), "genuine": int(issame.sum()), "comparison_set": comparison_set,
                 "intervals": "wilson" if people is None else "cluster_bootstrap", "by_attribute": {}}
    units = None if people is None else np.stack([np.asarray(people[0], dtype=object),
                                                  np.asarray(people[1], dtype=object)], axis=1)
    for attribute, (g1, g2) in groups.items():
        if pd.isna(g1).all():
            continue
        result = demographic_differentials(scores, issame, g1, g2, target_fmrs=(1e-2, 1e-3), n_boot=200, seed=seed,
                                           min_group_size=protocol.groups.min_group_size, units=units)
        det = {}
        for group in result.groups:
            mask = (g1 == group) & (g2 == group)
            genuine, impostor = scores[mask & issame], scores[mask & ~issame]
            if len(genuine) and len(impostor):
                det[str(group)] = {"fmr": [float(np.mean(impostor >= t)) for t in grid],
                                   "fnmr": [float(np.mean(genuine < t)) for t in grid]}
        out["by_attribute"][attribute] = {
            "pair_rule": result.pair_rule,
            "rates": [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                      for row in result.to_frame().to_dict(orient="records")],
            "summary": {f"{target:g}": {k: (None if not np.isfinite(v) else float(v)) for k, v in values.items()}
                        for target, values in result.summary().items()},
            "det": det,
        }
    return out


def finite_or_none(value: float) -> float | None:
    """``value`` as a float, or None (JSON null) when it is NaN or infinite."""
    return float(value) if np.isfinite(value) else None


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float64; all-zero rows stay zero), so that dot products are cosines."""
    return l2_normalize(matrix)
