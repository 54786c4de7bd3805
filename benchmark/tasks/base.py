"""The :class:`Task` interface: everything the runner, ``evaluate``, ``compare`` and the model adapter ask
of a task, with the optional hooks' defaults spelled out.

A task owns its predictions format (write, read and validate), the training data it hands a baseline, the
per-sample outcomes the metrics aggregate, and optionally a ``differentials`` view and extra splits. Every
hook that reads labels takes the **FaceTable as read** (:mod:`facebench.data.table`: one row per image, a
``sample_id`` column, not an index) and indexes it by ``sample_id`` once.

>>> from facebench.tasks import AGE_REGRESSION, FACE_RETRIEVAL, FACE_VERIFICATION
>>> isinstance(AGE_REGRESSION, Task), AGE_REGRESSION.baseline_kind, AGE_REGRESSION.predictions_file
(True, 'age_regression', 'predictions.csv')
>>> AGE_REGRESSION.extra_splits              # scored overall besides the test split
(ExtraSplit(label='source_val', part='val', dataset='test'),)
>>> FACE_RETRIEVAL.outcome_columns           # metric -> outcome column the task computed itself
(('map', 'ap'), ('p_at_1', 'hit1'))
>>> AGE_REGRESSION.outcome_columns, FACE_VERIFICATION.extra_splits   # the defaults
((), ())
>>> AGE_REGRESSION.differentials(None, None, protocol=None, split=None, seed=0) is None   # no pair view
True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from facebench.errors import UserInputError, shorten

if TYPE_CHECKING:
    from facebench.data.splits import Split
    from facebench.fit_data import FitData
    from facebench.protocol import Protocol

__all__ = ["ExtraSplit", "Task", "check_sample_ids"]


class ExtraSplit(NamedTuple):
    """A split scored overall besides the test split: its key under ``splits`` in results.json and the
    split part whose images are predicted (``ExtraSplit("source_val", "val")``); ``dataset`` says whose split:
    ``"test"`` (the protocol's dataset, the default) or ``"train"`` (the protocol's ``train_dataset`` and its
    subject hold-out, e.g. seed 001's source accuracy on held-out UTKFace images when the test set is CelebA)."""

    label: str
    part: str
    dataset: str = "test"


@dataclass(frozen=True, kw_only=True)
class Task(ABC):
    """One evaluation task. Subclasses are frozen dataclasses whose fields have their task's values.

    Attributes:
        name: the task's registry name (``protocol.task``).
        baseline_kind: the ``task`` of the baselines that can run it, and what a ``--model`` returns
            (:data:`facebench.adapters.OUTPUTS`).
        predictions_file: the file name predictions are stored under in a run directory.
        description: the predictions format in one line, for messages.
        group_attributes: the columns of :meth:`outcomes` that metrics are disaggregated by.
        extra_splits: splits scored overall only besides the test split (default: none).
        outcome_columns: ``(metric name, outcome column)`` pairs when the task computes each metric's
            per-sample outcome itself (the engine's ``from_outcomes`` path); default ``()``: metrics are
            computed from the ``y_true``/``y_pred`` columns.
        unit_columns: the :meth:`outcomes` columns that name each row's unit of independence, the person
            whose rows are not independent of one another: one column (the row's person) or two (a pair's
            two people). Intervals and tests then resample units, not rows
            (:mod:`facebench.metrics.clusters`). Default ``()``: rows are independent.
        unit_name: what one unit is, for reports and results.json (``"person"``; ``"image"`` by default).
        pair_groups: each scored sample is a pair of faces whose group is their common label (``mixed`` when
            they differ), so reports say "pairs whose faces are both labelled ..."; default False: one face.
        row_keys: the :meth:`outcomes` columns that name one row, by which ``facebench compare`` pairs two runs'
            rows (with ``database`` too where both files have it); default ``("sample_id",)``: one row per
            sample. A generative task has one row per source face and requested edit.
    """

    name: str
    baseline_kind: str
    predictions_file: str
    description: str
    group_attributes: tuple[str, ...]
    extra_splits: tuple[ExtraSplit, ...] = ()
    outcome_columns: tuple[tuple[str, str], ...] = ()
    unit_columns: tuple[str, ...] = ()
    unit_name: str = "image"
    pair_groups: bool = False
    row_keys: tuple[str, ...] = ("sample_id",)

    @abstractmethod
    def fit_data(self, table: pd.DataFrame, split: Split, images: Callable[[str], np.ndarray]) -> FitData:
        """What a baseline may train on, from the training FaceTable, its split and ``images(part)`` (the
        uint8 image store of a split part)."""

    @abstractmethod
    def write_predictions(self, path: Path, sample_ids: Sequence[str], outputs: np.ndarray) -> None:
        """Write a model's outputs for ``sample_ids`` (in that order) in the task's predictions format."""

    @abstractmethod
    def read_predictions(self, path: str | Path, expected_ids: tuple[str, ...]) -> Any:
        """Read and validate a predictions file against ``expected_ids``; one-sentence
        :class:`~facebench.errors.UserInputError` for any problem. The result is what :meth:`outcomes` takes."""

    @abstractmethod
    def outcomes(self, table: pd.DataFrame, predictions: Any, *, protocol: Protocol, split: Split) -> pd.DataFrame:
        """Per-sample outcomes: ``sample_id``, ``y_true``, ``y_pred`` (or the :attr:`outcome_columns`) and
        the :attr:`group_attributes` columns."""

    def differentials(self, table: pd.DataFrame, predictions: Any, *, protocol: Protocol, split: Split,
                      seed: int) -> dict | None:
        """An extra view stored under ``metrics.differentials`` in results.json; ``None`` (the default): none."""
        return None

    def model_outputs(self, baseline, *, protocol: Protocol, table: pd.DataFrame, sample_ids: Sequence[str],
                      images: Callable[[Sequence[str]], np.ndarray]) -> Any:
        """What the runner asks a fitted baseline for on the test images ``sample_ids`` (``images(ids)`` gives their
        uint8 store), handed to :meth:`write_predictions`. Default: ``baseline.predict(images(sample_ids))``; the
        generation task asks for edits of each face instead."""
        return baseline.predict(images(sample_ids))

    def prepare_scoring(self, predictions: Any, *, dataset, split: Split, protocol: Protocol, seed: int,
                        cache_dir: Path | None = None, progress: bool = False) -> Any:
        """What :meth:`read_predictions` returned, made ready for :meth:`outcomes` with the dataset's images at hand
        (the generation task reads its faces with judges trained on the real images). Default: unchanged."""
        return predictions

    def set_metrics(self, predictions: Any, outcomes: pd.DataFrame, metrics: Sequence, attributes: Sequence[str], *,
                    clusters, **options):
        """The :class:`~facebench.metrics.Disaggregation` of metrics computed on *sets* of samples (FID, KID:
        :func:`facebench.metrics.generation.is_set_metric`), bound to this run's predictions; only the generation task
        has them (protocol validation refuses them elsewhere)."""
        raise UserInputError(f"Task {self.name} computes no set metric such as {metrics[0].name}.")

    def write_extras(self, out_dir: Path, predictions: Any, table: pd.DataFrame, *, protocol: Protocol, split: Split,
                     seed: int) -> None:
        """Files a scored run folder holds besides results.json and outcomes.csv (the generation task's sample grids
        and study manifest). Default: none."""
        return None

    def write_similarity(self, path: Path, sample_ids: Sequence[str], scores: np.ndarray) -> None:
        """Write an N x N similarity matrix as predictions (per-image fine-tuning); only tasks that read
        one accept it (the protocol allows ``training.leave_one_out_finetune`` for those only)."""
        raise UserInputError(f"Task {self.name} does not take a similarity matrix as predictions.")


def check_sample_ids(path: str | Path, sample_ids: Sequence[str | None], expected_ids: Sequence[str]) -> None:
    """The sample_id checks every predictions CSV shares: ``sample_ids`` in file order (the first on line 2, under
    the header) must be non-empty, unrepeated, all in the test set ``expected_ids``, and cover it. One sentence
    naming the file and the first offending line, the echoed id cut short.

    >>> check_sample_ids("p.csv", ["a", "b", "a"], ("a", "b"))
    Traceback (most recent call last):
    ...
    facebench.errors.UserInputError: p.csv: line 4 repeats sample_id 'a'.
    """
    ids = pd.Series(list(sample_ids), dtype=object)
    empty = (ids.isna() | (ids == "")).to_numpy()
    if empty.any():
        raise UserInputError(f"{path}: line {int(np.flatnonzero(empty)[0]) + 2} has an empty sample_id.")
    for problem, which in (("repeats sample_id {}.", ids.duplicated().to_numpy()),
                           ("has sample_id {}, which is not in this protocol's test set.",
                            (~ids.isin(set(expected_ids))).to_numpy())):
        if which.any():
            first = int(np.flatnonzero(which)[0])
            raise UserInputError(f"{path}: line {first + 2} " + problem.format(shorten(str(ids.iloc[first]))))
    seen = set(ids)
    missing = [i for i in expected_ids if i not in seen]
    if missing:
        raise UserInputError(f"{path}: {len(missing)} test images have no prediction, the first being "
                             f"{shorten(str(missing[0]))}.")
