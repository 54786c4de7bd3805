"""Example facebench model adapter: a torchvision ResNet-18 with an age or embedding head.

Score it (random weights: a smoke test of the pipeline, not a meaningful model)::

    facebench evaluate age_utk_cross_ethnicity --model docs/examples/torchvision_adapter.py:factory

and with weights you trained (a state dict of :class:`ResNet18Adapter`, ``torch.save(model.state_dict(), path)``)::

    FACEBENCH_ADAPTER_WEIGHTS=my_resnet18.pth facebench evaluate aifr_cacd \\
        --model docs/examples/torchvision_adapter.py:factory --name my-resnet18

or from your own module: ``def factory(*, task, image_size): return torchvision_adapter.factory(task=task,
image_size=image_size, weights="my_resnet18.pth")``.

The contract (docs/submissions.md): facebench calls ``factory(task=..., image_size=...)`` and then
``model(batch)`` with float32 ``(N, 3, S, S)`` RGB batches in ``[0, 1]``; the model returns ages ``(N,)`` for
``age_regression`` and embeddings ``(N, D)`` for the face-recognition tasks. A returned ``nn.Module`` is moved
to the device and put in eval mode by facebench. Normalisation is the model's job: this one applies
ImageNet's mean and standard deviation, as torchvision's ResNets expect.
"""

from __future__ import annotations

import os

import torch
import torchvision
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
AGE_TASKS = ("age_regression",)


class ResNet18Adapter(nn.Module):
    """ResNet-18 features (its ``fc`` replaced) followed by a linear age or embedding head."""

    def __init__(self, *, task: str, embedding_dim: int = 128) -> None:
        super().__init__()
        self.predicts_age = task in AGE_TASKS
        self.backbone = torchvision.models.resnet18(weights=None)
        features = self.backbone.fc.in_features
        self.backbone.fc = nn.Identity()
        self.head = nn.Linear(features, 1 if self.predicts_age else embedding_dim)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """``batch``: float32 (N, 3, S, S) RGB in [0, 1] → ages (N,) or unit-length embeddings (N, D)."""
        out = self.head(self.backbone((batch - self.mean) / self.std))
        return out.squeeze(1) if self.predicts_age else nn.functional.normalize(out, dim=1)


def factory(*, task: str, image_size: int, weights: str | None = None, embedding_dim: int = 128) -> ResNet18Adapter:
    """Build the adapter for ``task``; ``weights`` (default ``$FACEBENCH_ADAPTER_WEIGHTS``) is a state dict file.

    ``image_size`` needs no handling here: the ResNet's global average pooling accepts any image side.
    """
    model = ResNet18Adapter(task=task, embedding_dim=embedding_dim)
    weights = weights or os.environ.get("FACEBENCH_ADAPTER_WEIGHTS") or None
    if weights:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model
