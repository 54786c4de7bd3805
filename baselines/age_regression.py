"""Age regression with unsupervised domain adaptation (seed 000, sections 3.1 and 3.6).

The regressor is g (a backbone) followed by the regression module f1 (fc1, fc2, …, one output). Every
method here minimises equation 4,

    L = L_reg(f1(g(x_s)), y_s)  +  γ · L_adapt(g(x_s), g(x_t))  [+ σ · L_smooth]      (eq. 4, 5)

with L_reg the L1 loss on labelled source images and L_adapt a term that makes the source and the
unlabelled target activations of the chosen layers ("conv", "fc1", …; Table 3) indistinguishable:

- ``source_only`` (:class:`SourceOnlyMethod`) — no adaptation term (section 3.1);
- ``dann`` (:class:`DANNMethod`) — adversarial: a 3-layer domain discriminator per adapted layer behind a gradient reversal
  layer (section 3.6.1; Ganin & Lempitsky), trained with SGD while the regressor uses Adam (section 4.2),
  the reversal coefficient warming up as λ_p = 2 / (1 + exp(−10 p)) − 1 over training progress p;
- ``mmd`` (:class:`MMDMethod`) — Gaussian-kernel maximum mean discrepancy between source and target activations
  (section 3.6.2: "For mmd, we use gausian kernel"): one Gaussian kernel by default (``kernel: gaussian``),
  DAN's multi-kernel sum (Long et al.) as the named variant ``kernel: multi_gaussian``;
- ``smoothing_sigma`` on any of them — graph-Laplacian smoothness of predictions over source and target
  inputs, f^T L f = ½ Σ_ij w_ij (f(x_i) − f(x_j))², w_ij = exp(−‖x_i − x_j‖² / 2σ²)  (eq. 2, 3).

Target images reach a method only as images (``FitData.target_images`` has no labels). Each method is one
class with its own ``train_step``; its parameters (torch-free, for protocol validation) are in
:mod:`facebench.baselines.params`, its training settings come in the :class:`LoopConfig`.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from facebench.baselines.base import Baseline, FitData
from facebench.baselines.nets import AgeRegressor
from facebench.baselines.params import AdaptationParams, MMDParams, SourceOnlyParams
from facebench.baselines.training import (
    ImageBatches,
    LoopConfig,
    StepContext,
    TrainableMethod,
    TrainHistory,
    fit,
    make_optimizer,
    predict_batches,
    resolve_device,
)
from facebench.errors import UserInputError
from facebench.protocol import Protocol

__all__ = ["DANN", "MMD", "DomainDiscriminator", "GradientReversal", "SourceOnly", "gaussian_mmd2", "grl_coefficient",
           "laplacian_smoothness", "median_bandwidth", "mk_mmd2"]


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


def median_bandwidth(distances: torch.Tensor) -> torch.Tensor:
    """σ of the median heuristic (Gretton et al., "A kernel two-sample test", JMLR 2012, section 8): the median
    of the pairwise Euclidean distances ‖z_i − z_j‖, i < j, of the pooled sample (``torch.median``: the lower
    median for an even count), from the squared-distance matrix; detached (not optimised); 1 where it is 0.

    >>> float(median_bandwidth(torch.tensor([[0.0, 1.0, 4.0], [1.0, 0.0, 9.0], [4.0, 9.0, 0.0]])))
    2.0
    """
    n = distances.shape[0]
    i, j = torch.triu_indices(n, n, offset=1, device=distances.device)
    if len(i) == 0:
        return torch.ones((), device=distances.device)
    sigma = distances.detach()[i, j].clamp_min(0).sqrt().median()
    return torch.where(sigma > 0, sigma, torch.ones_like(sigma))


def gaussian_mmd2(source: torch.Tensor, target: torch.Tensor, *, sigma: float | None = None) -> torch.Tensor:
    """Single-Gaussian-kernel MMD² between two batches of activations: seed 000's setting (section 3.6.2,
    "For mmd, we use gausian kernel").

    With k(a, b) = exp(−‖a − b‖² / 2σ²), source s_1..s_m and target t_1..t_n, the biased (V-statistic) estimate of
    Gretton et al. (JMLR 2012: Lemma 6 with expectations replaced by sample means, their MMD_b²):

        MMD² = 1/m² Σ_ij k(s_i, s_j) + 1/n² Σ_ij k(t_i, t_j) − 2/(mn) Σ_ij k(s_i, t_j)

    The paper gives no bandwidth: σ = None takes the median heuristic (:func:`median_bandwidth`, over the
    pooled batch), the usual rule for a single Gaussian kernel.

    >>> x = torch.zeros(4, 3)
    >>> float(gaussian_mmd2(x, x))
    0.0
    """
    pooled = torch.cat([source, target]).float()
    distances = torch.cdist(pooled, pooled).pow(2)
    bandwidth = median_bandwidth(distances) if sigma is None else torch.tensor(float(sigma), device=pooled.device)
    kernel = torch.exp(-distances / (2 * bandwidth**2))
    m = source.shape[0]
    k_ss, k_tt, k_st = kernel[:m, :m], kernel[m:, m:], kernel[:m, m:]
    return k_ss.mean() + k_tt.mean() - 2 * k_st.mean()


def mk_mmd2(source: torch.Tensor, target: torch.Tensor, *, n_kernels: int = 5, multiplier: float = 2.0) -> torch.Tensor:
    """Multi-kernel Gaussian MMD² (biased V-statistic) between two batches of activations: the
    ``kernel: multi_gaussian`` variant (DAN, Long et al. 2015), not seed 000's single kernel.

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


# ------------------------------------------------------------------------------------------ the methods


class AgeRegressionMethod(TrainableMethod):
    """What every regressor of equation 4 shares: L_reg on labelled source images, the optional smoothing
    term σ·L_smooth (eq. 2, 3, 5), the regressor's optimiser and the source-validation MAE. The subclasses
    are the methods, each with its own step."""

    def __init__(self, *, model: AgeRegressor, params: SourceOnlyParams | AdaptationParams, loop: LoopConfig,
                 val_images: np.ndarray, val_ages: np.ndarray) -> None:
        self.model = model
        self.params = params
        self.loop = loop
        self.val_images = val_images
        self.val_ages = val_ages
        self.regression_loss = F.l1_loss if loop.loss == "l1" else F.mse_loss  # L_reg: L1 in the paper
        self.smoothing = params.smoothing_weight > 0

    def modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"regressor": self.model})

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"regressor": make_optimizer(self.model.parameters(), self.loop)}

    def regression_step(self, source: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float | torch.Tensor]:
        """L = L_reg(f1(g(x_s)), y_s): source-only training, and the warm-up epochs of the adapted methods."""
        with ctx.autocast():
            loss = self.regression_loss(self.model(source["image"]).float(), source["age"].float())  # L_reg, eq. 4
        ctx.optimize("regressor", loss)
        return {"loss": loss.detach()}

    def source_and_target_features(self, source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
                                   ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Every layer's activations of g(x_s) and g(x_t) in one pass (source rows first), and L_reg of eq. 4."""
        n = source["image"].shape[0]
        features = self.model.forward_features(torch.cat([source["image"], target["image"]]))
        return features, self.regression_loss(features["age"][:n].float(), source["age"].float())

    def add_smoothing(self, loss: torch.Tensor, source: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                      features: dict[str, torch.Tensor], logs: dict[str, float]) -> torch.Tensor:
        """loss + σ·L_smooth (eq. 5), L_smooth = f^T L f over the batch's source and target images (eq. 2, 3)."""
        if not self.smoothing:
            return loss
        images = torch.cat([source["image"], target["image"]])
        smooth = laplacian_smoothness(images, features["age"].float(), sigma=self.params.smoothing_sigma)
        logs["smooth"] = smooth.detach()
        return loss + self.params.smoothing_weight * smooth

    def end_of_epoch(self, ctx: StepContext) -> dict[str, float | torch.Tensor]:
        predicted = predict_batches(self.model, self.val_images, device=ctx.device, amp=ctx.amp)
        return {"val_mae": float(np.mean(np.abs(predicted - self.val_ages)))}


class SourceOnlyMethod(AgeRegressionMethod):
    """Section 3.1: L = L_reg(f1(g(x_s)), y_s), plus σ·L_smooth over source and target images when switched on."""

    def __init__(self, **common) -> None:
        super().__init__(**common)
        self.streams = ("target",) if self.smoothing else ()  # only the smoothing term looks at target images

    def train_step(self, batches, ctx: StepContext) -> dict[str, float | torch.Tensor]:
        source = batches["source"]
        if not self.smoothing:
            return self.regression_step(source, ctx)
        target, logs = batches["target"], {}
        with ctx.autocast():
            features, loss = self.source_and_target_features(source, target)  # L_reg of eq. 4
            loss = self.add_smoothing(loss, source, target, features, logs)  # + σ·L_smooth of eq. 5
        ctx.optimize("regressor", loss)
        return {"loss": loss.detach(), **logs}


class AdaptedMethod(AgeRegressionMethod):
    """What DANN and MMD share: unlabelled target images in every step, and the warm-up of the 'pre-trained
    regressor' rows of Tables 4-5 (the first ``warmup_fraction`` of the epochs train L_reg alone)."""

    streams = ("target",)

    def __init__(self, **common) -> None:
        super().__init__(**common)
        self.warmup_epochs = int(self.params.warmup_fraction * self.loop.epochs)

    def train_step(self, batches, ctx: StepContext) -> dict[str, float | torch.Tensor]:
        if ctx.epoch < self.warmup_epochs:
            return self.regression_step(batches["source"], ctx)
        return self.adapted_step(batches["source"], batches["target"], ctx)

    @abstractmethod
    def adapted_step(self, source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], ctx: StepContext
                     ) -> dict[str, float | torch.Tensor]:
        """One step of the method's own loss, after the warm-up."""


class DANNMethod(AdaptedMethod):
    """Section 3.6.1: L = L_reg + γ·L_adv (eq. 4) [+ σ·L_smooth], L_adv the mean over the adapted layers of a
    domain discriminator's cross-entropy, reached through a gradient reversal layer with coefficient λ_p.

    Section 4.2: "Adam for our regression network and SGD for the adversarial network": both optimisers step
    on the one loss; the reversal makes the regressor ascend what the discriminators descend.
    """

    def __init__(self, *, feature_dims: dict[str, int], **common) -> None:
        super().__init__(**common)
        self.discriminators = nn.ModuleDict(
            {layer: DomainDiscriminator(feature_dims[layer]) for layer in self.params.layers})

    def modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"regressor": self.model, "adversary": self.discriminators})

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        adversary = torch.optim.SGD(self.discriminators.parameters(), lr=self.params.adversary_lr, momentum=0.9)
        return {**super().make_optimizers(), "adversary": adversary}

    def adapted_step(self, source, target, ctx: StepContext) -> dict[str, float | torch.Tensor]:
        n, logs = source["image"].shape[0], {}
        with ctx.autocast():
            features, loss = self.source_and_target_features(source, target)  # L_reg of eq. 4
            coefficient = grl_coefficient(ctx.progress)  # λ_p: 0 at the start of training, → 1 at the end
            adversarial = 0.0
            for layer, discriminator in self.discriminators.items():
                logits = discriminator(GradientReversal.apply(features[layer].float(), coefficient))
                domain = torch.cat([torch.zeros(n), torch.ones(logits.shape[0] - n)]).to(logits.device)  # 0 source, 1 target
                adversarial = adversarial + F.binary_cross_entropy_with_logits(logits, domain)
            adversarial = adversarial / len(self.discriminators)
            loss = loss + self.params.gamma * adversarial  # + γ·L_adv of eq. 4
            logs["adv"] = adversarial.detach()
            loss = self.add_smoothing(loss, source, target, features, logs)  # + σ·L_smooth of eq. 5
        ctx.optimize(("regressor", "adversary"), loss)
        return {"loss": loss.detach(), **logs}


class MMDMethod(AdaptedMethod):
    """Section 3.6.2: L = L_reg + γ·MMD² [+ σ·L_smooth], the MMD² between the source and the target activations
    of each adapted layer (averaged over the layers) in place of L_adv of eq. 4: one Gaussian kernel
    (:func:`gaussian_mmd2`, the paper's) or, with ``kernel: multi_gaussian``, DAN's five (:func:`mk_mmd2`)."""

    def adapted_step(self, source, target, ctx: StepContext) -> dict[str, float | torch.Tensor]:
        n, logs = source["image"].shape[0], {}
        layers = self.params.layers
        with ctx.autocast():
            features, loss = self.source_and_target_features(source, target)  # L_reg of eq. 4
            mmd2 = gaussian_mmd2 if self.params.kernel == "gaussian" else mk_mmd2
            discrepancy = sum(mmd2(features[layer][:n].float(), features[layer][n:].float())
                              for layer in layers) / len(layers)
            loss = loss + self.params.gamma * discrepancy  # + γ·MMD² in place of γ·L_adv
            logs["mmd"] = discrepancy.detach()
            loss = self.add_smoothing(loss, source, target, features, logs)  # + σ·L_smooth of eq. 5
        ctx.optimize("regressor", loss)
        return {"loss": loss.detach(), **logs}


# ---------------------------------------------------------------------------------------- the baselines


class AgeRegressionBaseline(Baseline):
    """fit and predict shared by the regressors: the network g + f1 and the loop; a subclass names its method."""

    task = "age_regression"
    #: The registry name, for messages.
    name: str

    def __init__(self, *, protocol: Protocol, params: SourceOnlyParams | AdaptationParams) -> None:
        self.protocol = protocol
        self.params = params
        self.model: AgeRegressor | None = None
        self.loop: LoopConfig | None = None

    @abstractmethod
    def make_method(self, **common) -> AgeRegressionMethod:
        """The training method, from the arguments every :class:`AgeRegressionMethod` takes."""

    def feature_dims(self, layers: tuple[str, ...]) -> dict[str, int]:
        """Widths of the activations equation 4 may align (conv, fc1, …; Table 3); ``layers`` must be among them."""
        m = self.protocol.model
        available = ["conv", *(f"fc{i}" for i in range(1, len(m.head_hidden) + 1))]
        missing = [layer for layer in layers if layer not in available]
        if missing:
            raise UserInputError(f"baseline {self.name}: layer '{missing[0]}' does not exist with model.head_hidden="
                                 f"{list(m.head_hidden)}; available: {', '.join(available)}.")
        return {"conv": self.model.backbone_width, **{f"fc{i}": w for i, w in enumerate(m.head_hidden, start=1)}}

    def fit(self, data: FitData, loop: LoopConfig) -> TrainHistory:
        m = self.protocol.model
        self.loop = loop
        torch.manual_seed(loop.seed)  # the initial weights are part of the run's seed
        self.model = AgeRegressor(backbone=m.backbone, pretrained=m.pretrained, head_hidden=m.head_hidden,
                                  init_age=float(np.mean(data.train_ages)))
        method = self.make_method(model=self.model, params=self.params, loop=loop, val_images=data.val_images,
                                  val_ages=data.val_ages)
        streams = {"source": ImageBatches(data.train_images, {"age": data.train_ages.astype(np.float32)})}
        if method.streams:
            if data.target_images is None or len(data.target_images) == 0:
                raise UserInputError(f"baseline {self.name} needs unlabelled target images, but the split has no 'target' part.")
            streams["target"] = ImageBatches(data.target_images)
        return fit(method, streams, loop)

    def predict(self, images: np.ndarray) -> np.ndarray:
        if self.model is None or self.loop is None:
            raise RuntimeError("predict() before fit()")
        return predict_batches(self.model, images, device=resolve_device(self.loop.device), amp=self.loop.amp)


class SourceOnly(AgeRegressionBaseline):
    """Source-only regressor (section 3.1): L_reg on labelled source images; optional smoothing term."""

    name = "source_only"
    Params = SourceOnlyParams

    def make_method(self, **common) -> SourceOnlyMethod:
        return SourceOnlyMethod(**common)


class DANN(AgeRegressionBaseline):
    """Domain-adversarial regressor (section 3.6.1): L_reg + γ·L_adv through a gradient reversal layer."""

    name = "dann"
    Params = AdaptationParams

    def make_method(self, **common) -> DANNMethod:
        return DANNMethod(feature_dims=self.feature_dims(self.params.layers), **common)


class MMD(AgeRegressionBaseline):
    """MMD-aligned regressor (section 3.6.2): L_reg + γ·MMD² of the chosen layers' activations (one Gaussian
    kernel, or the multi-kernel variant by ``kernel: multi_gaussian``)."""

    name = "mmd"
    Params = MMDParams

    def make_method(self, **common) -> MMDMethod:
        self.feature_dims(self.params.layers)  # refuses a layer the head does not have
        return MMDMethod(**common)
