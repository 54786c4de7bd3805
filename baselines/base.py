"""The Baseline contract: what ``facebench run`` needs from every method.

A baseline is constructed from a validated protocol and its own validated ``Params`` (a pydantic model
with unknown keys forbidden), is fitted on the split's images, and predicts the protocol's task output
(ages, class probabilities or embeddings) for any uint8 image store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

# Torch-free, so that validating a protocol needs no torch.
from facebench.baselines.params import BaselineParams
from facebench.baselines.training import LoopConfig, TrainHistory
from facebench.errors import UserInputError
from facebench.fit_data import FitData


class Baseline(ABC):
    """A method that can be fitted and then predict; subclasses set ``task`` and ``Params``."""

    task: str
    Params: type[BaselineParams] = BaselineParams
    #: How many labelled target-domain images the method needs at prediction time (the pairwise model's
    #: MDS anchors, seed 000 §4.4.5). The runner draws them at random with the run's seed, records their
    #: ids in results.json and hands them over with :meth:`set_anchors`; no other target label is given.
    #: They are left out of the scored test set (results.json counts them in ``data.n_excluded_anchors``).
    target_anchors: int = 0
    #: For a pre-trained model used as published: what it learnt from (e.g. "about 3 million real faces").
    #: Results record it, and reports on synthetic data say that such a model's numbers there say nothing
    #: about real faces.
    pretrained_on: str = ""

    @property
    def trains_on_test_dataset(self) -> bool:
        """Whether this baseline trains on the test dataset's own split (its labelled ``train`` and ``val`` parts)
        instead of the protocol's ``train_dataset``: seed 001's in-domain benchmark (section 2.1, "trained and
        tested purely on the annotated CelebA dataset"). Default False; a baseline decides from its params."""
        return False

    @property
    def input_alignment(self) -> str | None:
        """How the runner prepares every image this baseline sees, in training and prediction: None (resized whole)
        or an alignment name of :data:`facebench.data.images.ALIGNERS` (``"openface"``: seed 001's crop aligned on
        landmarks). Default None; a baseline decides from its params."""
        return None

    @classmethod
    def preflight(cls, *, protocol, params: BaselineParams) -> None:
        """Refuse, in one sentence (:class:`UserInputError`), what would otherwise fail only after the data are
        synthesised or read and the run folder is made: pre-trained weights that cannot be had. The runner calls
        it for every baseline it will run, before touching any data. Default: nothing to check."""
        return None  # a hook with a default, not an abstract method

    def set_anchors(self, images: np.ndarray, ages: np.ndarray) -> None:
        raise NotImplementedError(f"{type(self).__name__} takes no labelled anchors")

    def leave_one_out_scores(self, images: np.ndarray, subjects: np.ndarray, ages: np.ndarray, *, loop: LoopConfig,
                             epochs: int, batch_size: int, lr: float | None, work_dir: Path) -> np.ndarray:
        """FG-NET's per-image fine-tuning (``training.leave_one_out_finetune``): an (N, N) similarity matrix whose
        row i comes from this fitted model fine-tuned on every image but i. Only methods with a trainable
        encoder implement it (their registry spec says ``leave_one_out_finetune=True``)."""
        raise UserInputError(f"baseline {type(self).__name__} has no trainable encoder, so "
                             "training.leave_one_out_finetune cannot fine-tune it.")

    @abstractmethod
    def fit(self, data: FitData, loop: LoopConfig) -> TrainHistory: ...

    @abstractmethod
    def predict(self, images: np.ndarray) -> np.ndarray: ...
