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
    prediction_columns: tuple[str, ...] = ("sample_id", "age")
    description: str = "CSV with header sample_id,age: one row per test image, age in years (any real number)"

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

    def outcomes(self, table: pd.DataFrame, predictions: pd.DataFrame, *, age_bands: tuple[int, ...]) -> pd.DataFrame:
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
            "age_band": age_band(y_true, age_bands).to_numpy(),
        })


AGE_REGRESSION = AgeRegressionTask()
