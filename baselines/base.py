"""The Baseline contract: what ``facebench run`` needs from every method.

A baseline is constructed from a validated protocol and its own validated ``Params`` (a pydantic model
with unknown keys forbidden), is fitted on the split's images, and predicts the protocol's task output
(ages, class probabilities or embeddings) for any uint8 image store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from pydantic import BaseModel, ConfigDict

from facebench.baselines.training import LoopConfig, TrainHistory
from facebench.fit_data import FitData


class BaselineParams(BaseModel):
    """Base for per-baseline parameters: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Baseline(ABC):
    """A method that can be fitted and then predict; subclasses set ``task`` and ``Params``."""

    task: str
    Params: type[BaselineParams] = BaselineParams
    #: How many labelled target-domain images the method needs at prediction time (the pairwise model's
    #: MDS anchors, seed 000 §4.4.5). The runner draws them at random with the run's seed, records their
    #: ids in results.json and hands them over with :meth:`set_anchors`; no other target label is given.
    target_anchors: int = 0
    #: For a pre-trained model used as published: what it learnt from (e.g. "about 3 million real faces").
    #: Results record it, and reports on synthetic data say that such a model's numbers there say nothing
    #: about real faces.
    pretrained_on: str = ""

    def set_anchors(self, images: np.ndarray, ages: np.ndarray) -> None:
        raise NotImplementedError(f"{type(self).__name__} takes no labelled anchors")

    @abstractmethod
    def fit(self, data: FitData, loop: LoopConfig) -> TrainHistory: ...

    @abstractmethod
    def predict(self, images: np.ndarray) -> np.ndarray: ...
