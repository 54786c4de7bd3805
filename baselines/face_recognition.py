"""Age-invariant face recognition (seed 002, MT-MIM) and its two ablation baselines (Table 5).

Every method embeds a face with the encoder E of section 4.1 — input normalisation, a backbone (ResNet-50
in the paper) and one FC layer to a d-dimensional feature (d = 512), followed here by BatchNorm1d (the
usual ArcFace "neck") — and differs only in what it is trained with:

- ``arcface`` — the "Baseline" row: identity loss only, the additive angular margin softmax (eq. 6)

      L_ID = −1/N Σ_i log  e^{s·cos(θ_{y_i} + m)} / (e^{s·cos(θ_{y_i} + m)} + Σ_{j≠y_i} e^{s·cos θ_j}),
      cos θ_j = ⟨x_i, W_j⟩ / (‖x_i‖ ‖W_j‖),

  or CosFace's additive cosine margin (s·(cos θ_y − m) in place of s·cos(θ_y + m)) with
  ``margin_type: cosface``. Section 4.1 sets s = 64 and m = 0.35. (Below eq. 6 the paper calls m "an
  integer ≥ 1", a slip: an angular margin of 1 rad or more is unusable; 0.35 rad is what it trains with.)
- ``arcface_age`` — the "+Age" row: L_ID + λ_AGE·L_AGE, with L_AGE the cross-entropy of an age-group
  classifier (one FC layer) on the same embedding. Ages are cut into 8–10 groups "containing
  approximately the same amount of data" (section 3.4): the boundaries are quantiles of the training ages.
- ``mtmim`` — MT-MIM (sections 3.2–3.4): the encoder's feature x is factorised by the feature
  factorisation unit into an age part and an identity part,

      x_age = φ(x),    x_id = x − x_age,                                          (sec. 3.3, 4.1)

  and trained with the multi-task loss of eq. 7,

      L = L_ID(x_id) + λ_AGE·L_AGE(x_age) + λ_MIM·L_MIM(x_id, x_age),             (eq. 7)

  L_MIM being the CLUB upper bound of the mutual information I(x_id; x_age) (eq. 2, 3; Cheng et al. 2020)
  under a variational Gaussian q_σ(x_age | x_id):

      L_MIM = 1/N² Σ_i Σ_j [log q_σ(x_age^i | x_id^i) − log q_σ(x_age^j | x_id^i)].  (eq. 3)

  q_σ is fitted by maximum likelihood, E_p[log q_σ(x_age | x_id)] (eq. 4 ⇔ min KL(p ‖ q_σ)), with its own
  optimiser on detached features, five times per encoder step (section 4.1: "we perform forward of
  encoder once then MI estimator optimization 5 times"); after those steps eq. 3 is evaluated with the
  updated q_σ and back-propagated into the encoder only.

  On the factorisation: the typeset eq. 5 reads x_id = x + φ(x_age), which is circular (x_age would have to
  exist before φ makes it). The text around it — "We obtain the age-related features through a FC layer
  from the initial features, and the identity-related features are obtained from the subtract between
  initial features and age-related features" — and section 4.1 ("the age-dependent features are mapped
  from the initial face features through a FC layer, and the identity-dependent features are derived from
  the residual part") give the residual form above, the one MTLFace and DAL use. φ is one FC layer by
  default (``factor_layers: 2`` makes it FC–ReLU–FC).

Testing (section 4.1): "we concatenate identity-dependent features extracted from original image and its
flipped image": with ``flip_test`` the embedding is concat(f(x), f(flip(x))), of dimension 2·d (1024 for
d = 512), then L2-normalised, and compared by cosine similarity. (insightface's verification *sums* the two
instead; ``facebench.metrics.verification.kfold_accuracy`` does that when given flip embeddings.)

Initialisation: the paper first trains on general face datasets (MS-Celeb-1M + CASIA-WebFace, "GFD") and
fine-tunes (Algorithm 1, line 1). ``init`` loads such a pre-trained encoder: a state dict of
:class:`FaceEmbedder`, e.g. written by :meth:`ArcFace.save_embedder` after an ``arcface`` run on a GFD.

Identity labels: the baselines need :class:`FaceFitData`, i.e. :class:`FitData` plus ``train_subjects``
(and optionally ``val_subjects``); any hashable codes are accepted and re-coded to 0..C−1.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from facebench.baselines.base import Baseline, FitData
from facebench.baselines.nets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Normalize,
    build_backbone,
    load_state_dict_file,
)
from facebench.baselines.params import ArcFaceAgeParams, ArcFaceParams, MTMIMParams
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
from facebench.distributed import is_main, main_first
from facebench.errors import UserInputError
from facebench.fit_data import FaceFitData
from facebench.metrics.base import l2_normalize
from facebench.protocol import Protocol
from facebench.seeding import seed_for

__all__ = [
    "ArcFace",
    "ArcFaceAge",
    "FaceEmbedder",
    "FaceFitData",
    "FactorisedFaceNet",
    "GaussianCLUB",
    "MTMIM",
    "MarginSoftmax",
    "age_groups",
    "balanced_age_edges",
]

#: Section 4.1: "each pixel ... normalized by subtracting 127.5 and divided by 128", in [0, 1] units.
PAPER_MEAN = (127.5 / 255.0,) * 3
PAPER_STD = (128.0 / 255.0,) * 3

#: cos θ is clamped to [−1 + ε, 1 − ε] so that sin θ = √(1 − cos² θ) has a finite gradient.
_COS_EPS = 1e-7


# ------------------------------------------------------------------------------------- margin softmax


class MarginSoftmax(nn.Module):
    """Normalised-weight classifier with an additive margin on the target class, then scaled cross-entropy.

    cos θ_j = ⟨x/‖x‖, W_j/‖W_j‖⟩ for every class j; the target class y gets

    - ``arcface`` (Deng et al. 2019, eq. 6 of seed 002): cos(θ_y + m) = cos θ_y cos m − sin θ_y sin m;
    - ``cosface`` (Wang et al. 2018): cos θ_y − m;

    and all logits are multiplied by s. ``m`` defaults to 0.5 (ArcFace) or 0.35 (CosFace).

    ArcFace's margin stops being a penalty once θ_y + m > π: cos(θ + m) then *increases* with θ, so a
    sample pushed further from its centre would get a larger target logit. Two fixes are in use and both
    are offered: the default (insightface's original ``ArcMarginProduct``) keeps cos(θ + m) while
    θ < π − m and uses cos θ − m·sin m beyond (a CosFace-like penalty of similar size); ``easy_margin``
    applies the margin only where cos θ > 0 (θ < π/2) and leaves cos θ elsewhere. In practice θ_y starts
    near π/2 and only decreases, so neither branch is hit often (insightface issue #348).

    >>> head = MarginSoftmax(2, 2, s=10.0)
    >>> with torch.no_grad():
    ...     _ = head.weight.copy_(torch.eye(2))
    >>> x = torch.tensor([[0.5, 3 ** 0.5 / 2]])      # cos θ_0 = 0.5 (θ_0 = π/3), cos θ_1 = 0.866
    >>> logits = head.logits(x, torch.tensor([0])).detach()
    >>> round(float(logits[0, 0]), 4), round(10 * math.cos(math.pi / 3 + 0.5), 4)   # s·cos(θ_0 + m)
    (0.236, 0.236)
    >>> round(float(logits[0, 1]), 4)                                                 # s·cos θ_1, no margin
    8.6603
    """

    def __init__(self, in_features: int, n_classes: int, *, margin_type: Literal["arcface", "cosface"] = "arcface",
                 s: float = 64.0, m: float | None = None, easy_margin: bool = False) -> None:
        super().__init__()
        if margin_type not in ("arcface", "cosface"):
            raise ValueError(f"margin_type must be 'arcface' or 'cosface', got {margin_type!r}")
        self.margin_type = margin_type
        self.s = float(s)
        self.m = float(m if m is not None else (0.5 if margin_type == "arcface" else 0.35))
        self.easy_margin = easy_margin
        self.weight = nn.Parameter(torch.empty(n_classes, in_features))
        nn.init.xavier_uniform_(self.weight)

    def cosine(self, features: torch.Tensor) -> torch.Tensor:
        """cos θ_j between each feature and each class centre, (N, C)."""
        return F.linear(F.normalize(features.float(), dim=1), F.normalize(self.weight.float(), dim=1))

    def target_logit(self, cos_target: torch.Tensor) -> torch.Tensor:
        """The margin-adjusted cosine of the target class (before scaling by s)."""
        if self.margin_type == "cosface":
            return cos_target - self.m
        cos_t = cos_target.clamp(-1.0 + _COS_EPS, 1.0 - _COS_EPS)
        sin_t = torch.sqrt(1.0 - cos_t * cos_t)
        shifted = cos_t * math.cos(self.m) - sin_t * math.sin(self.m)  # cos(θ + m)
        if self.easy_margin:
            return torch.where(cos_t > 0, shifted, cos_t)
        # θ > π − m ⇔ cos θ < cos(π − m): fall back to cos θ − m·sin m there.
        return torch.where(cos_t > math.cos(math.pi - self.m), shifted, cos_t - self.m * math.sin(self.m))

    def logits(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """s · [cos θ_j for j ≠ y; margin-adjusted cos θ_y], (N, C)."""
        cos = self.cosine(features)
        index = labels.long().view(-1, 1)
        adjusted = cos.scatter(1, index, self.target_logit(cos.gather(1, index)))
        return self.s * adjusted

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """L_ID of eq. 6: the mean cross-entropy of the margin logits."""
        return F.cross_entropy(self.logits(features, labels), labels.long())


# ------------------------------------------------------------------------------------------ networks


class FaceEmbedder(nn.Module):
    """The encoder E: Normalize → backbone → FC to ``embedding_dim`` → BatchNorm1d (the ArcFace neck).

    Normalisation defaults to the paper's (x·255 − 127.5)/128; pass ImageNet statistics when the backbone
    starts from ImageNet weights. The mean and std are buffers, so a saved state dict carries them.
    """

    def __init__(self, *, backbone: str = "resnet50", pretrained: str | None = None, embedding_dim: int = 512,
                 mean: tuple[float, ...] = PAPER_MEAN, std: tuple[float, ...] = PAPER_STD) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.backbone, width = build_backbone(backbone, pretrained=pretrained)
        self.backbone_width = width
        self.embedding_dim = embedding_dim
        self.neck = nn.Sequential(nn.Linear(width, embedding_dim), nn.BatchNorm1d(embedding_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neck(self.backbone(self.normalize(x)))


class FactorisedFaceNet(nn.Module):
    """MT-MIM's encoder plus feature factorisation unit: x = E(image), x_age = φ(x), x_id = x − x_age.

    ``forward`` returns x_id, the only feature used at test time (section 3.1).
    """

    def __init__(self, embedder: FaceEmbedder, *, layers: int = 1) -> None:
        super().__init__()
        d = embedder.embedding_dim
        self.embedder = embedder
        self.embedding_dim = d
        self.factor = nn.Linear(d, d) if layers == 1 else nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True),
                                                                           nn.Linear(d, d))

    def factorise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_id, x_age) from the encoder feature x (computed in float32)."""
        x_age = self.factor(x.float())
        return x.float() - x_age, x_age

    def forward_parts(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.factorise(self.embedder(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_parts(images)[0]


class _FlipTestEmbedding(nn.Module):
    """Test-time embedding: normalise(concat(f(x), f(flip(x)))) with ``flip``, else normalise(f(x))."""

    def __init__(self, net: nn.Module, *, flip: bool) -> None:
        super().__init__()
        self.net = net
        self.flip = flip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x).float()
        if self.flip:
            z = torch.cat([z, self.net(x.flip(-1)).float()], dim=1)
        with torch.autocast(device_type=z.device.type, enabled=False):
            return F.normalize(z.float(), dim=1)


class _Parts(nn.Module):
    """concat(x_id, x_age) of a factorised net, for computing the validation MI in batches."""

    def __init__(self, net: FactorisedFaceNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.net.forward_parts(x), dim=1)


# --------------------------------------------------------------------------------------------- CLUB


class GaussianCLUB(nn.Module):
    """Contrastive log-ratio upper bound of I(x; y) (Cheng et al. 2020) with q_σ(y | x) = N(μ(x), diag σ²(x)).

    μ and log σ² are two-layer MLPs of x; log σ² ends in tanh (as in the reference implementation) so the
    variance stays in (e⁻¹, e) and the likelihood cannot blow up early in training. For MT-MIM, x = x_id and
    y = x_age (eq. 2: q_σ(x_age | x_id)).

    The bound is E_p(x,y)[log q_σ(y|x)] − E_p(x)E_p(y)[log q_σ(y|x)]. With a batch, the Gaussian's
    normalising terms cancel between the two expectations (both use σ(x_i)), leaving

        ½ Σ_d [ mean_j (y_j − μ_i)² − (y_i − μ_i)² ] / σ_i²,   averaged over i.

    ``estimator="pairs"`` is eq. 3 exactly (all N² pairs, j = i included), computed in O(N·d) from
    mean_j (y_j − μ_i)² = Var_j(y) + (ȳ − μ_i)²; ``"sample"`` is CLUB's sampled estimator, pairing each x_i
    with one y_{π(i)} of a random permutation π (unbiased for the same quantity, noisier).
    """

    def __init__(self, x_dim: int, y_dim: int, hidden: int) -> None:
        super().__init__()
        self.mu = nn.Sequential(nn.Linear(x_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, y_dim))
        self.logvar = nn.Sequential(nn.Linear(x_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, y_dim),
                                    nn.Tanh())

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """mean_i log q_σ(y_i | x_i) in nats (the full Gaussian density, summed over dimensions); eq. 4's objective."""
        x, y = x.float(), y.float()
        mu, logvar = self.mu(x), self.logvar(x)
        log_density = -0.5 * ((y - mu) ** 2 * torch.exp(-logvar) + logvar + math.log(2 * math.pi))
        return log_density.sum(dim=1).mean()

    def mi_upper_bound(self, x: torch.Tensor, y: torch.Tensor, *, estimator: Literal["pairs", "sample"] = "pairs",
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """The CLUB estimate of I(x; y) in nats (eq. 2 / eq. 3)."""
        x, y = x.float(), y.float()
        mu, logvar = self.mu(x), self.logvar(x)
        precision = torch.exp(-logvar)
        positive = (y - mu) ** 2  # −2·log q(y_i | x_i) up to terms that cancel
        if estimator == "pairs":
            negative = y.var(dim=0, unbiased=False) + (y.mean(dim=0) - mu) ** 2  # mean_j (y_j − μ_i)²
        elif estimator == "sample":
            permutation = torch.randperm(y.shape[0], generator=generator).to(y.device)
            negative = (y[permutation] - mu) ** 2
        else:
            raise ValueError(f"estimator must be 'pairs' or 'sample', got {estimator!r}")
        return (0.5 * (negative - positive) * precision).sum(dim=1).mean()


# ------------------------------------------------------------------------------------------ age groups


def balanced_age_edges(ages: np.ndarray, n_groups: int) -> np.ndarray:
    """Interior boundaries that cut ``ages`` into ``n_groups`` groups of about equal size (the quantiles).

    Group g holds ages in [edge_{g−1}, edge_g) (see :func:`age_groups`). Tied ages cannot be split, so
    repeated quantiles are merged: a heavily tied age distribution can yield fewer groups than asked.

    >>> balanced_age_edges(np.arange(100), 4).tolist()
    [24.75, 49.5, 74.25]
    """
    ages = np.asarray(ages, dtype=float)
    if ages.size == 0:
        raise ValueError("no ages to cut into groups")
    if n_groups < 2:
        raise ValueError(f"n_groups must be at least 2, got {n_groups}")
    return np.unique(np.quantile(ages, np.arange(1, n_groups) / n_groups))


def age_groups(ages: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Group index 0..len(edges) of each age: the number of edges ≤ age.

    >>> age_groups(np.array([3, 30, 49.5, 99]), np.array([24.75, 49.5, 74.25])).tolist()
    [0, 1, 2, 3]
    """
    return np.searchsorted(np.asarray(edges, dtype=float), np.asarray(ages, dtype=float), side="right").astype(np.int64)


# ------------------------------------------------------------------------------------------- methods


class ArcFaceMethod(TrainableMethod):
    """Table 5's "Baseline": L = L_ID(x), the margin softmax of eq. 6 on the encoder's feature x = E(image)."""

    def __init__(self, *, net: nn.Module, margin: MarginSoftmax, params: ArcFaceParams, loop: LoopConfig,
                 val_images: np.ndarray, val_subjects: np.ndarray | None) -> None:
        self.net = net
        self.margin = margin
        self.params = params
        self.loop = loop
        self.val_images = val_images
        self.val_subjects = val_subjects

    def modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"net": self.net, "margin": self.margin})

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Θ of Algorithm 1: what the encoder's optimiser steps (the encoder and its classifier heads)."""
        return [p for module in (self.net, self.margin) for p in module.parameters()]

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"encoder": make_optimizer(self.encoder_parameters(), self.loop)}

    def train_step(self, batches, ctx: StepContext) -> dict[str, float | torch.Tensor]:
        source = batches["source"]
        with ctx.autocast():
            x = self.net(source["image"])
        loss_id = self.margin(x.float(), source["subject"].long())  # L_ID, eq. 6 (the heads run in float32)
        ctx.optimize("encoder", loss_id)
        return {"loss": loss_id.detach(), "loss_id": loss_id.detach()}

    @torch.no_grad()
    def end_of_epoch(self, ctx: StepContext) -> dict[str, float | torch.Tensor]:
        logs: dict[str, float] = {}
        if len(self.val_images) and self.val_subjects is not None:
            rank1 = self.val_rank1(ctx.device, amp=ctx.amp)
            if rank1 is not None:
                logs["val_rank1"] = rank1
        return logs

    def val_rank1(self, device: torch.device, *, amp: bool) -> float | None:
        """Leave-one-out rank-1 identification among validation images whose identity has ≥ 2 images."""
        from facebench.metrics.identification import rank_k

        subjects = np.asarray(self.val_subjects)
        _, inverse, counts = np.unique(subjects, return_inverse=True, return_counts=True)
        keep = np.flatnonzero(counts[inverse] >= 2)
        if len(keep) < 2:
            return None
        embedder = _FlipTestEmbedding(self.net, flip=self.params.flip_test)
        embeddings = predict_batches(embedder, self.val_images[keep] if len(keep) < len(subjects) else self.val_images,
                                     device=device, amp=amp)
        return rank_k(embeddings, embeddings, inverse[keep], inverse[keep], k=1, exclude_self=True)


class ArcFaceAgeMethod(ArcFaceMethod):
    """Table 5's "+Age": L = L_ID(x) + λ_AGE·L_AGE(x), L_AGE the cross-entropy of an age-group classifier (one
    FC layer, section 3.4) on the same feature."""

    def __init__(self, *, age_head: nn.Module, **common) -> None:
        super().__init__(**common)
        self.age_head = age_head

    def modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"net": self.net, "margin": self.margin, "age_head": self.age_head})

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [p for module in (self.net, self.margin, self.age_head) for p in module.parameters()]

    def age_loss(self, x_age: torch.Tensor, source: dict[str, torch.Tensor]) -> torch.Tensor:
        """L_AGE: cross-entropy of the age-group classifier (groups of about equal size, section 3.4)."""
        return F.cross_entropy(self.age_head(x_age), source["age_group"].long())

    def train_step(self, batches, ctx: StepContext) -> dict[str, float | torch.Tensor]:
        source = batches["source"]
        with ctx.autocast():
            x = self.net(source["image"])
        x = x.float()  # the heads run in float32
        loss_id = self.margin(x, source["subject"].long())  # L_ID, eq. 6
        loss_age = self.age_loss(x, source)  # L_AGE on the same feature
        loss = loss_id + self.params.lambda_age * loss_age
        ctx.optimize("encoder", loss)
        return {"loss": loss.detach(), "loss_id": loss_id.detach(), "loss_age": loss_age.detach()}


class MTMIMMethod(ArcFaceAgeMethod):
    """MT-MIM (sections 3.2-3.4, Algorithm 1): x = E(image), x_age = φ(x), x_id = x − x_age, and eq. 7,

        L = L_ID(x_id) + λ_AGE·L_AGE(x_age) + λ_MIM·L_MIM(x_id, x_age),

    L_MIM the CLUB bound of eq. 3 under q_σ(x_age | x_id), which is first fitted on the batch's detached
    features by maximum likelihood (eq. 4), ``club_steps`` times on its own optimiser (section 4.1: 5).
    """

    def __init__(self, *, club: GaussianCLUB, **common) -> None:
        super().__init__(**common)
        self.club = club
        self._mi_sum = 0.0
        self._mi_count = 0

    def modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"net": self.net, "margin": self.margin, "age_head": self.age_head, "club": self.club})

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        # Section 4.1: the MI estimator has its own (Adam) learning rate; Θ (encoder_parameters) never holds q_σ.
        return {**super().make_optimizers(), "club": torch.optim.Adam(self.club.parameters(), lr=self.params.club_lr)}

    def train_step(self, batches, ctx: StepContext) -> dict[str, float | torch.Tensor]:
        source = batches["source"]
        p = self.params
        with ctx.autocast():
            x = self.net.embedder(source["image"])
        x_id, x_age = self.net.factorise(x.float())  # sec. 3.3: x_age = φ(x), x_id = x − x_age (float32)
        loss_id = self.margin(x_id, source["subject"].long())  # L_ID(x_id), eq. 6
        loss_age = self.age_loss(x_age, source)  # L_AGE(x_age)
        loss = loss_id + p.lambda_age * loss_age
        # Fit q_σ(x_age | x_id) by maximum likelihood on this batch (eq. 4), encoder fixed.
        fixed_id, fixed_age = x_id.detach(), x_age.detach()
        for _ in range(p.club_steps):
            ctx.optimize("club", -self.club.log_likelihood(fixed_id, fixed_age))
        # Then eq. 3 with the updated q_σ, differentiated with respect to the encoder only.
        self.club.requires_grad_(False)
        try:
            mi = self.club.mi_upper_bound(x_id, x_age, estimator=p.club_estimator)
        finally:
            self.club.requires_grad_(True)
        loss = loss + p.lambda_mim * mi  # + λ_MIM·L_MIM of eq. 7
        self._mi_sum = self._mi_sum + mi.detach().double()  # read once per epoch: no host sync per step
        self._mi_count += 1
        ctx.optimize("encoder", loss)
        return {"loss": loss.detach(), "loss_id": loss_id.detach(), "loss_age": loss_age.detach(), "mi_club": mi.detach()}

    @torch.no_grad()
    def end_of_epoch(self, ctx: StepContext) -> dict[str, float | torch.Tensor]:
        logs = {"mi_club": float(self._mi_sum) / max(self._mi_count, 1)}  # the epoch's mean CLUB estimate (Fig. 6)
        self._mi_sum, self._mi_count = 0.0, 0
        if len(self.val_images) >= 2:
            parts = predict_batches(_Parts(self.net), self.val_images, device=ctx.device, amp=ctx.amp)
            d = self.net.embedding_dim
            x_id = torch.as_tensor(parts[:, :d], dtype=torch.float32, device=ctx.device)
            x_age = torch.as_tensor(parts[:, d:], dtype=torch.float32, device=ctx.device)
            logs["val_mi_club"] = float(self.club.mi_upper_bound(x_id, x_age, estimator="pairs"))
        return {**logs, **super().end_of_epoch(ctx)}


# ------------------------------------------------------------------------------------------ baselines


class ArcFace(Baseline):
    """ArcFace (or CosFace) embedding, trained with the identity loss only: Table 5's "Baseline" row."""

    task = "face_recognition"
    #: The registry name, for messages.
    name = "arcface"
    Params = ArcFaceParams

    def __init__(self, *, protocol: Protocol, params: ArcFaceParams) -> None:
        self.protocol = protocol
        self.params = params
        self.net: nn.Module | None = None
        self.loop: LoopConfig | None = None
        self.n_classes: int | None = None
        self.age_edges: np.ndarray | None = None

    @property
    def embedding_size(self) -> int:
        """Width of :meth:`predict`'s rows: 2·embedding_dim with ``flip_test``, else embedding_dim."""
        return self.params.embedding_dim * (2 if self.params.flip_test else 1)

    @property
    def embedder(self) -> FaceEmbedder:
        if self.net is None:
            raise RuntimeError("no model before fit()")
        return self.net.embedder if isinstance(self.net, FactorisedFaceNet) else self.net

    def build_embedder(self) -> FaceEmbedder:
        m = self.protocol.model
        imagenet = m.pretrained is not None and self.params.init is None
        embedder = FaceEmbedder(backbone=m.backbone, pretrained=m.pretrained, embedding_dim=self.params.embedding_dim,
                                mean=IMAGENET_MEAN if imagenet else PAPER_MEAN, std=IMAGENET_STD if imagenet else PAPER_STD)
        if self.params.init is not None:
            _load_embedder(embedder, self.params.init, where=f"baseline {self.name}: params.init")
        return embedder

    def build_net(self, embedder: FaceEmbedder) -> nn.Module:
        """The network :meth:`predict` embeds with: here the encoder E itself."""
        return embedder

    def training_labels(self, data: FaceFitData, subjects: np.ndarray) -> dict[str, np.ndarray]:
        """Per-image labels of the training stream: identity codes 0..C−1."""
        return {"subject": subjects.astype(np.int64)}

    def make_method(self, **common) -> ArcFaceMethod:
        """The training method, from the arguments every :class:`ArcFaceMethod` takes."""
        return ArcFaceMethod(**common)

    def prepare(self, data: FitData, loop: LoopConfig) -> tuple[ArcFaceMethod, dict[str, ImageBatches]]:
        """Build the networks (seeded) and the training method and batch streams; :meth:`fit` runs them."""
        data = _require_subjects(data, self.name)
        _, subjects = np.unique(np.asarray(data.train_subjects), return_inverse=True)
        self.n_classes = int(subjects.max()) + 1 if len(subjects) else 0
        if self.n_classes < 2:
            raise UserInputError(f"baseline {self.name} needs training images of at least 2 identities, got {self.n_classes}.")
        self.loop = loop
        torch.manual_seed(loop.seed)  # the initial weights are part of the run's seed
        p = self.params
        self.net = self.build_net(self.build_embedder())
        margin = MarginSoftmax(p.embedding_dim, self.n_classes, margin_type=p.margin_type, s=p.scale, m=p.margin,
                               easy_margin=p.easy_margin)
        labels = self.training_labels(data, subjects)
        method = self.make_method(net=self.net, margin=margin, params=p, loop=loop, val_images=data.val_images,
                                  val_subjects=data.val_subjects)
        return method, {"source": ImageBatches(data.train_images, labels)}

    def fit(self, data: FitData, loop: LoopConfig) -> TrainHistory:
        method, streams = self.prepare(data, loop)
        return fit(method, streams, loop)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(N, D) float32 L2-normalised embeddings, D = :attr:`embedding_size`."""
        if self.net is None or self.loop is None:
            raise RuntimeError("predict() before fit()")
        if len(images) == 0:
            return np.zeros((0, self.embedding_size), dtype=np.float32)
        embedder = _FlipTestEmbedding(self.net, flip=self.params.flip_test)
        return predict_batches(embedder, images, device=resolve_device(self.loop.device), amp=self.loop.amp,
                               channels_last=self.loop.channels_last).astype(np.float32)

    def save_embedder(self, path: str | Path) -> None:
        """Write the encoder E's state dict, loadable by any of these baselines through ``init``."""
        from facebench.io import atomic_write

        state = {k: v.detach().cpu() for k, v in self.embedder.state_dict().items()}
        with atomic_write(Path(path), "wb") as handle:
            torch.save(state, handle)

    def leave_one_out_scores(self, images: np.ndarray, subjects: np.ndarray, ages: np.ndarray, *, loop: LoopConfig,
                             epochs: int, batch_size: int, lr: float | None, work_dir: Path) -> np.ndarray:
        """FG-NET's per-image protocol (seed 002 section 4.2: "we leave one image as testing sample and train
        (finetune) the model with remaining 1,001 images ... repeat this procedure 1,002 times").

        For each image i: a fresh copy of this baseline starts from its fitted encoder (``init``), trains a new
        identity head on every other image for ``epochs`` epochs (constant learning rate ``lr``, default the
        training's), and embeds all images; row i of the result is image i's cosine similarity to every image
        under that model (the diagonal is unused). N fine-tunes: meant for the ``paper`` profile on a GPU.
        """
        from facebench.progress import track

        init = work_dir / "trained_encoder.pt"
        with main_first():  # under torchrun rank 0 writes the encoder every rank's fine-tunings start from
            if is_main():
                work_dir.mkdir(parents=True, exist_ok=True)
                self.save_embedder(init)
        params = self.params.model_copy(update={"init": str(init)})
        codes = np.unique(np.asarray(subjects), return_inverse=True)[1].astype(np.int64)
        ages = np.asarray(ages, dtype=np.float64)
        n = len(images)
        scores = np.zeros((n, n), dtype=np.float32)
        for i in track(range(n), description="fine-tuning per left-out image", total=n, enabled=loop.progress):
            keep = np.arange(n) != i
            model = type(self)(protocol=self.protocol, params=params)
            model.fit(FaceFitData(train_images=images[keep], train_ages=ages[keep], train_subjects=codes[keep],
                                  val_images=images[:0], val_ages=ages[:0]),
                      replace(loop, epochs=epochs, batch_size=batch_size, lr=lr or loop.lr, lr_schedule="constant",
                              seed=seed_for(loop.seed, "loo", i), checkpoint_dir=None, progress=False, fingerprint=""))
            embeddings = l2_normalize(model.predict(images))
            scores[i] = embeddings @ embeddings[i]
        return scores


class ArcFaceAge(ArcFace):
    """ArcFace plus an age-group classifier on the same embedding (L_ID + λ_AGE·L_AGE): Table 5's "+Age"."""

    name = "arcface_age"
    Params = ArcFaceAgeParams

    def training_labels(self, data: FaceFitData, subjects: np.ndarray) -> dict[str, np.ndarray]:
        """Identity codes and age groups of about equal size, cut at quantiles of the training ages (section 3.4)."""
        self.age_edges = balanced_age_edges(data.train_ages, self.params.age_groups)
        return {**super().training_labels(data, subjects), "age_group": age_groups(data.train_ages, self.age_edges)}

    def build_age_head(self) -> nn.Linear:
        """The age-group classifier: x_age "mapped through a FC layer" to one logit per group (section 3.4)."""
        return nn.Linear(self.params.embedding_dim, len(self.age_edges) + 1)

    def make_method(self, **common) -> ArcFaceAgeMethod:
        return ArcFaceAgeMethod(age_head=self.build_age_head(), **common)


class MTMIM(ArcFaceAge):
    """MT-MIM (seed 002): factorised x_id / x_age, L_ID(x_id) + λ_AGE·L_AGE(x_age) + λ_MIM·CLUB(x_id; x_age)."""

    name = "mtmim"
    Params = MTMIMParams

    def build_net(self, embedder: FaceEmbedder) -> FactorisedFaceNet:
        """E followed by the feature factorisation unit φ; it embeds x_id (section 3.1)."""
        return FactorisedFaceNet(embedder, layers=self.params.factor_layers)

    def make_method(self, **common) -> MTMIMMethod:
        p = self.params
        age_head = self.build_age_head()
        club = GaussianCLUB(p.embedding_dim, p.embedding_dim, p.club_hidden or p.embedding_dim)  # q_σ(x_age | x_id)
        return MTMIMMethod(age_head=age_head, club=club, **common)


# ------------------------------------------------------------------------------------------- helpers


def _require_subjects(data: FitData, name: str) -> FaceFitData:
    if not isinstance(data, FaceFitData):
        raise UserInputError(f"baseline {name} trains on identity labels, so it needs FaceFitData with train_subjects "
                             f"(a face_recognition protocol), not {type(data).__name__}.")
    if len(data.train_subjects) != len(data.train_images):
        raise UserInputError(f"baseline {name}: train_subjects has {len(data.train_subjects)} labels for "
                             f"{len(data.train_images)} training images.")
    if data.val_subjects is not None and len(data.val_subjects) != len(data.val_images):
        raise UserInputError(f"baseline {name}: val_subjects has {len(data.val_subjects)} labels for "
                             f"{len(data.val_images)} validation images.")
    if len(data.train_ages) != len(data.train_images):
        raise UserInputError(f"baseline {name}: train_ages has {len(data.train_ages)} values for "
                             f"{len(data.train_images)} training images.")
    return data


def _load_embedder(embedder: FaceEmbedder, path: str, *, where: str) -> None:
    """Load a FaceEmbedder state dict (optionally under "state_dict", or with an "embedder." prefix)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserInputError(f"{where}: weights file {file} does not exist.")
    state = load_state_dict_file(file, where=f"{where}:")
    if state and all(k.startswith("embedder.") for k in state):
        state = {k[len("embedder."):]: v for k, v in state.items()}
    try:
        embedder.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0] if first else ""
        raise UserInputError(f"{where}: {file} does not fit a FaceEmbedder with this backbone and embedding_dim "
                             f"({detail.rstrip('.')}).") from None
