"""What a task hands a baseline to train on: plain arrays, no torch.

These types sit between :mod:`facebench.tasks` (which builds them from a split) and the baselines (which
train on them), so a task never imports a method module and scoring a predictions file never imports
torch.

>>> import numpy as np
>>> images = np.zeros((2, 3, 8, 8), dtype=np.uint8)
>>> data = FaceFitData(train_images=images, train_ages=np.array([20.0, 30.0]), val_images=images[:0],
...                    val_ages=np.array([]), train_subjects=np.array([0, 1]))
>>> isinstance(data, FitData), data.target_images is None
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["FitData", "FaceFitData", "GenerationFitData", "LabelFitData"]


@dataclass(frozen=True, kw_only=True)
class FitData:
    """Images (uint8 stores, (N, 3, S, S)) and labels a baseline may train on.

    ``target_images`` are unlabelled target-domain images: they carry no labels by construction, so no
    target label can reach training.
    """

    train_images: np.ndarray
    train_ages: np.ndarray
    val_images: np.ndarray
    val_ages: np.ndarray
    target_images: np.ndarray | None = None


@dataclass(frozen=True, kw_only=True)
class FaceFitData(FitData):
    """:class:`FitData` with identity labels, for the face-recognition baselines.

    ``train_subjects`` has one identity code per training image (ints 0..C−1, or any hashable labels,
    which are re-coded); ``val_subjects`` likewise for the validation images, used only for the per-epoch
    validation rank-1 (identities may differ from the training ones).
    """

    train_subjects: np.ndarray
    val_subjects: np.ndarray | None = None


@dataclass(frozen=True, kw_only=True)
class LabelFitData(FitData):
    """:class:`FitData` for a binary classifier (seed 001's White-vs-Other race classifier): ``train_labels`` and
    ``val_labels`` are 0/1 (1 = the positive class, ``white``). There are no ages: ``train_ages`` and
    ``val_ages`` hold NaN."""

    train_labels: np.ndarray
    val_labels: np.ndarray


@dataclass(frozen=True, kw_only=True)
class GenerationFitData(FitData):
    """:class:`FitData` for a conditional face generator (task ``face_generation``): ``train_labels`` and
    ``val_labels`` are the FaceTable rows of the training and validation images (one row per image, in the images'
    order: ``age``, ``gender``, CelebA's attributes...), from which each generator takes the columns it is
    conditioned on (StarGAN's ``attributes``, AcGAN's ``age``)."""

    train_labels: pd.DataFrame
    val_labels: pd.DataFrame
