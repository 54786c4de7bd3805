"""Age estimation: predictions are a CSV ``sample_id,age``, the outcome of each image is its error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facebench.data.table import age_band
from facebench.errors import UserInputError, shorten
from facebench.fit_data import FitData
from facebench.tasks.base import ExtraSplit, Task, check_sample_ids

__all__ = ["AGE_REGRESSION", "AgeRegressionTask"]


@dataclass(frozen=True, kw_only=True)
class AgeRegressionTask(Task):
    """Age estimation: predictions are a CSV ``sample_id,age`` with one row per test image."""

    name: str = "age_regression"
    baseline_kind: str = "age_regression"  # baselines whose ``task`` is this can run the task
    predictions_file: str = "predictions.csv"
    group_attributes: tuple[str, ...] = ("race", "gender", "age_band")
    prediction_columns: tuple[str, ...] = ("sample_id", "age")
    description: str = "CSV with header sample_id,age: one row per test image, age in years (any real number)"
    #: Splits scored overall besides the test split: (label in results.json, split part).
    extra_splits: tuple[ExtraSplit, ...] = (ExtraSplit(label="source_val", part="val"),)

    def fit_data(self, table: pd.DataFrame, split, images):
        """What a baseline may train on: source images with ages, validation, unlabelled target images."""
        ages = table.set_index("sample_id")["age"]
        return FitData(
            train_images=images("train"), train_ages=ages.loc[list(split["train"])].to_numpy(dtype=np.float64),
            val_images=images("val"), val_ages=ages.loc[list(split["val"])].to_numpy(dtype=np.float64),
            target_images=images("target") if "target" in split.parts else None,
        )

    def write_predictions(self, path: Path, sample_ids, outputs: np.ndarray) -> None:
        from facebench.io import atomic_write

        frame = pd.DataFrame({"sample_id": list(sample_ids), "age": np.asarray(outputs, dtype=float)})
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
        check_sample_ids(path, frame["sample_id"].tolist(), expected_ids)
        ages = pd.to_numeric(frame["age"], errors="coerce")
        bad = ages.isna() | ~np.isfinite(ages.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            line = int(np.flatnonzero(bad)[0]) + 2
            raw = frame["age"].iloc[line - 2]
            shown = "'' (empty)" if not isinstance(raw, str) and pd.isna(raw) else shorten(str(raw))
            raise UserInputError(f"{path}: line {line} has age {shown}, which is not a finite number.")
        frame["age"] = ages.astype(float)
        return frame.set_index("sample_id").loc[list(expected_ids)].reset_index()

    def outcomes(self, table: pd.DataFrame, predictions: pd.DataFrame, *, protocol, split) -> pd.DataFrame:
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
