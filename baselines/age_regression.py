"""Age regression baselines (seed 000, section 3.1): a backbone with a regression module, L1 loss.

``source_only`` fits ages on the labelled source group alone; the domain-adaptation methods of the
same paper (DANN, MMD, smoothing) extend this module's regressor with extra terms of equation 4.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from facebench.baselines.base import Baseline, BaselineParams, FitData
from facebench.baselines.nets import AgeRegressor
from facebench.baselines.training import (
    ImageBatches,
    LoopConfig,
    StepContext,
    TrainableMethod,
    TrainHistory,
    fit,
    predict_batches,
    resolve_device,
)
from facebench.protocol import Protocol


def make_optimizer(name: str, parameters, *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    optimizers = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    if name in optimizers:
        return optimizers[name](parameters, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(parameters, lr=lr, momentum=0.9, weight_decay=weight_decay)


class _SourceOnlyMethod(TrainableMethod):
    """L_reg(f(g(x_s)), y_s): the first term of equation 4, on source images only."""

    def __init__(self, model: AgeRegressor, protocol: Protocol, val: ImageBatches, val_ages: np.ndarray) -> None:
        self.model = model
        self.protocol = protocol
        self.val = val
        self.val_ages = val_ages
        self.loss = F.l1_loss if protocol.training.loss == "l1" else F.mse_loss

    def modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"regressor": self.model})

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        t = self.protocol.training
        return {"regressor": make_optimizer(t.optimizer, self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay)}

    def train_step(self, batches, ctx: StepContext) -> dict[str, float]:
        source = batches["source"]
        with ctx.autocast():
            predicted = self.model(source["image"]).float()
        loss = self.loss(predicted, source["age"].float())
        ctx.optimize("regressor", loss)
        return {"loss": loss.item()}

    def end_of_epoch(self, ctx: StepContext) -> dict[str, float]:
        predicted = predict_batches(self.model, self.val.images, device=ctx.device, amp=ctx.amp)
        return {"val_mae": float(np.mean(np.abs(predicted - self.val_ages)))}


class SourceOnly(Baseline):
    """Source-only age regressor: the seed-000 baseline (ResNet-50 + FC regression module, L1 loss)."""

    task = "age_regression"

    class Params(BaselineParams):
        pass

    def __init__(self, *, protocol: Protocol, params: BaselineParams) -> None:
        self.protocol = protocol
        self.params = params
        self.model: AgeRegressor | None = None
        self.device = resolve_device(protocol.training.device)

    def fit(self, data: FitData, loop: LoopConfig) -> TrainHistory:
        m = self.protocol.model
        torch.manual_seed(loop.seed)  # the initial weights are part of the run's seed
        self.model = AgeRegressor(backbone=m.backbone, pretrained=m.pretrained, head_hidden=m.head_hidden,
                                  init_age=float(np.mean(data.train_ages)))
        method = _SourceOnlyMethod(self.model, self.protocol, ImageBatches(data.val_images), data.val_ages)
        source = ImageBatches(data.train_images, {"age": data.train_ages.astype(np.float32)})
        return fit(method, {"source": source}, loop)

    def predict(self, images: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("predict() before fit()")
        return predict_batches(self.model, images, device=resolve_device(self.protocol.training.device),
                               amp=self.protocol.training.amp)
