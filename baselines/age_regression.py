"""Age regression with unsupervised domain adaptation (seed 000, sections 3.1 and 3.6).

The regressor is g (a backbone) followed by the regression module f1 (fc1, fc2, …, one output). Every
method here minimises equation 4,

    L = L_reg(f1(g(x_s)), y_s)  +  γ · L_adapt(g(x_s), g(x_t))  [+ σ · L_smooth]      (eq. 4, 5)

with L_reg the L1 loss on labelled source images and L_adapt a term that makes the source and the
unlabelled target activations of the chosen layers ("conv", "fc1", …; Table 3) indistinguishable:

- ``source_only`` — no adaptation term (section 3.1);
- ``dann`` — adversarial: a 3-layer domain discriminator per adapted layer behind a gradient reversal
  layer (section 3.6.1; Ganin & Lempitsky), trained with SGD while the regressor uses Adam (section 4.2),
  the reversal coefficient warming up as λ_p = 2 / (1 + exp(−10 p)) − 1 over training progress p;
- ``mmd`` — multi-kernel Gaussian maximum mean discrepancy between source and target activations
  (section 3.6.2; Long et al. DAN);
- ``smoothing_sigma`` on any of them — graph-Laplacian smoothness of predictions over source and target
  inputs, f^T L f = ½ Σ_ij w_ij (f(x_i) − f(x_j))², w_ij = exp(−‖x_i − x_j‖² / 2σ²)  (eq. 2, 3).

Target images reach a method only as images (``FitData.target_images`` has no labels).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field
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




# ------------------------------------------------------------------------------------ adaptation terms


class GradientReversal(torch.autograd.Function):
    """Identity forward; multiplies the gradient by −λ backward (section 3.6.1)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coefficient: float) -> torch.Tensor:
        ctx.coefficient = coefficient
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coefficient * grad, None


def grl_coefficient(progress: float, *, gamma_schedule: float = 10.0) -> float:
    """DANN's warm start λ_p = 2 / (1 + exp(−10 p)) − 1: 0 at the start of training, → 1 at the end."""
    return float(2.0 / (1.0 + np.exp(-gamma_schedule * progress)) - 1.0)


class DomainDiscriminator(nn.Module):
    """The adversary: three linear layers (section 3.6.1) ending in one source-vs-target logit."""

    def __init__(self, in_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(1)


def mk_mmd2(source: torch.Tensor, target: torch.Tensor, *, n_kernels: int = 5, multiplier: float = 2.0) -> torch.Tensor:
    """Multi-kernel Gaussian MMD² (biased V-statistic) between two batches of activations.

    Bandwidths are base · multiplier^k for k = −⌊n/2⌋ … ⌊n/2⌋, with base the mean pairwise squared
    distance of the pooled batch (DAN's heuristic, detached so the bandwidth is not optimised away).

    >>> x = torch.zeros(4, 3)
    >>> float(mk_mmd2(x, x))
    0.0
    """
    pooled = torch.cat([source, target]).float()
    distances = torch.cdist(pooled, pooled).pow(2)
    n = pooled.shape[0]
    base = distances.detach().sum() / max(n * n - n, 1)
    base = torch.where(base > 0, base, torch.ones_like(base))
    kernel = sum(torch.exp(-distances / (base * multiplier ** (k - n_kernels // 2))) for k in range(n_kernels))
    m = source.shape[0]
    k_ss, k_tt, k_st = kernel[:m, :m], kernel[m:, m:], kernel[:m, m:]
    return k_ss.mean() + k_tt.mean() - 2 * k_st.mean()


def laplacian_smoothness(inputs: torch.Tensor, predictions: torch.Tensor, *, sigma: float | None = None) -> torch.Tensor:
    """Graph-Laplacian smoothness f^T L f = ½ Σ_ij w_ij (f_i − f_j)² (eq. 2), w_ij = exp(−‖x_i − x_j‖²/2σ²) (eq. 3).

    Inputs are compared in input space (images downsampled to 16×16, as the paper states "input space");
    σ defaults to the median pairwise distance. Averaged over the n² pairs so its scale does not grow with
    the batch.

    >>> x = torch.rand(5, 3, 16, 16)
    >>> float(laplacian_smoothness(x, torch.full((5,), 30.0)))
    0.0
    """
    flat = nn.functional.adaptive_avg_pool2d(inputs.float(), 16).flatten(1)
    distances = torch.cdist(flat, flat).pow(2)
    if sigma is None:
        sigma = float(distances.detach().sqrt().median().clamp_min(1e-6))
    weights = torch.exp(-distances / (2 * sigma**2))
    differences = (predictions[:, None] - predictions[None, :]).pow(2)
    return 0.5 * (weights * differences).mean()


# ----------------------------------------------------------------------------------------- the methods


class AdaptationParams(BaselineParams):
    """Parameters of equation 4/5's extra terms (all off for source_only)."""

    layers: tuple[Literal["conv", "fc1", "fc2", "fc3", "fc4"], ...] = Field(
        ("fc1",), description="activations to align (Table 3: conv+fc123, conv+fc1, fc1, fc123)")
    gamma: float = Field(1.0, ge=0, description="weight γ of the adaptation term (Tables 4, 6)")
    warmup_fraction: float = Field(0.0, ge=0, lt=1, description="share of the epochs trained source-only before "
                                   "adaptation starts (the 'pre-trained regressor' rows of Tables 4-5)")
    adversary_lr: float = Field(0.01, gt=0, description="SGD learning rate of the domain discriminators (dann)")
    smoothing_sigma: float | None = Field(None, gt=0, description="σ of eq. 3; None: no smoothing term")
    smoothing_weight: float = Field(0.0, ge=0, description="weight of the smoothing term (eq. 5's σ-weighted term)")


class _AgeRegressionMethod(TrainableMethod):
    """The step of equation 4 for every age-regression method; the adaptation term is chosen by ``kind``."""

    def __init__(self, *, model: AgeRegressor, protocol: Protocol, params: BaselineParams, kind: str,
                 val: ImageBatches, val_ages: np.ndarray, feature_dims: dict[str, int]) -> None:
        self.model = model
        self.protocol = protocol
        self.params = params
        self.kind = kind
        self.val = val
        self.val_ages = val_ages
        self.loss = F.l1_loss if protocol.training.loss == "l1" else F.mse_loss
        self.adapts = kind != "source_only" or (getattr(params, "smoothing_weight", 0.0) > 0)
        self.streams = ("target",) if self.adapts else ()
        self.discriminators = nn.ModuleDict(
            {layer: DomainDiscriminator(feature_dims[layer]) for layer in params.layers} if kind == "dann" else {}
        )

    def modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"regressor": self.model, "adversary": self.discriminators})

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        t = self.protocol.training
        optimizers = {"regressor": make_optimizer(t.optimizer, self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay)}
        if self.kind == "dann":  # section 4.2: "Adam for our regression network and SGD for the adversarial network"
            optimizers["adversary"] = torch.optim.SGD(self.discriminators.parameters(), lr=self.params.adversary_lr,
                                                      momentum=0.9)
        return optimizers

    def train_step(self, batches, ctx: StepContext) -> dict[str, float]:
        source = batches["source"]
        warmup_epochs = int(getattr(self.params, "warmup_fraction", 0.0) * self.protocol.training.epochs)
        adapting = self.adapts and ctx.epoch >= warmup_epochs
        logs: dict[str, float] = {}
        with ctx.autocast():
            if not adapting:
                predicted = self.model(source["image"]).float()
                loss = self.loss(predicted, source["age"].float())  # L_reg of eq. 4
                names: tuple[str, ...] = ("regressor",)
            else:
                target = batches["target"]
                n = source["image"].shape[0]
                features = self.model.forward_features(torch.cat([source["image"], target["image"]]))
                predicted = features["age"][:n].float()
                loss = self.loss(predicted, source["age"].float())  # L_reg of eq. 4
                names = ("regressor", "adversary") if self.kind == "dann" else ("regressor",)
                if self.kind == "dann":
                    coefficient = grl_coefficient(ctx.progress)
                    adversarial = 0.0
                    for layer, discriminator in self.discriminators.items():
                        reversed_features = GradientReversal.apply(features[layer].float(), coefficient)
                        logits = discriminator(reversed_features)
                        domain = torch.cat([torch.zeros(n), torch.ones(logits.shape[0] - n)]).to(logits.device)
                        adversarial = adversarial + F.binary_cross_entropy_with_logits(logits, domain)
                    adversarial = adversarial / len(self.discriminators)
                    loss = loss + self.params.gamma * adversarial  # γ·L_adv of eq. 4
                    logs["adv"] = adversarial.item()
                elif self.kind == "mmd":
                    discrepancy = sum(mk_mmd2(features[layer][:n].float(), features[layer][n:].float())
                                      for layer in self.params.layers) / len(self.params.layers)
                    loss = loss + self.params.gamma * discrepancy  # γ·MMD² in place of L_adv
                    logs["mmd"] = discrepancy.item()
                if self.params.smoothing_weight > 0:
                    images = torch.cat([source["image"], target["image"]])
                    smooth = laplacian_smoothness(images, features["age"].float(), sigma=self.params.smoothing_sigma)
                    loss = loss + self.params.smoothing_weight * smooth  # σ·L_smooth of eq. 5
                    logs["smooth"] = smooth.item()
        ctx.optimize(names, loss)
        return {"loss": loss.item(), **logs}

    def end_of_epoch(self, ctx: StepContext) -> dict[str, float]:
        predicted = predict_batches(self.model, self.val.images, device=ctx.device, amp=ctx.amp)
        return {"val_mae": float(np.mean(np.abs(predicted - self.val_ages)))}


class _AgeRegressionBaseline(Baseline):
    """Shared fit/predict of the age regressors; subclasses only name their adaptation term."""

    task = "age_regression"
    kind = "source_only"

    def __init__(self, *, protocol: Protocol, params: BaselineParams) -> None:
        self.protocol = protocol
        self.params = params
        self.model: AgeRegressor | None = None

    def fit(self, data: FitData, loop: LoopConfig) -> TrainHistory:
        m = self.protocol.model
        torch.manual_seed(loop.seed)  # the initial weights are part of the run's seed
        self.model = AgeRegressor(backbone=m.backbone, pretrained=m.pretrained, head_hidden=m.head_hidden,
                                  init_age=float(np.mean(data.train_ages)))
        layers = getattr(self.params, "layers", ())
        available = ["conv", *(f"fc{i}" for i in range(1, len(m.head_hidden) + 1))]
        missing = [layer for layer in layers if layer not in available]
        if missing:
            from facebench.errors import UserInputError

            raise UserInputError(f"baseline {self.kind}: layer '{missing[0]}' does not exist with model.head_hidden="
                                 f"{list(m.head_hidden)}; available: {', '.join(available)}.")
        dims = {"conv": self.model.backbone_width, **{f"fc{i}": w for i, w in enumerate(m.head_hidden, start=1)}}
        method = _AgeRegressionMethod(model=self.model, protocol=self.protocol, params=self.params, kind=self.kind,
                                      val=ImageBatches(data.val_images), val_ages=data.val_ages, feature_dims=dims)
        streams = {"source": ImageBatches(data.train_images, {"age": data.train_ages.astype(np.float32)})}
        if method.streams:
            if data.target_images is None or len(data.target_images) == 0:
                from facebench.errors import UserInputError

                raise UserInputError(f"baseline {self.kind} needs unlabelled target images, but the split has no 'target' part.")
            streams["target"] = ImageBatches(data.target_images)
        return fit(method, streams, loop)

    def predict(self, images: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("predict() before fit()")
        return predict_batches(self.model, images, device=resolve_device(self.protocol.training.device),
                               amp=self.protocol.training.amp)


class SourceOnly(_AgeRegressionBaseline):
    """Source-only regressor (section 3.1): L_reg on labelled source images; optional smoothing term."""

    kind = "source_only"

    class Params(BaselineParams):
        smoothing_sigma: float | None = Field(None, gt=0, description="σ of eq. 3; None: median heuristic")
        smoothing_weight: float = Field(0.0, ge=0, description="weight of the smoothing term; 0: off")


class DANN(_AgeRegressionBaseline):
    """Domain-adversarial regressor (section 3.6.1): L_reg + γ·L_adv through a gradient reversal layer."""

    kind = "dann"
    Params = AdaptationParams


class MMD(_AgeRegressionBaseline):
    """MMD-aligned regressor (section 3.6.2): L_reg + γ·MK-MMD² of the chosen layers' activations."""

    kind = "mmd"
    Params = AdaptationParams
