"""The pairwise age model of seed 000 (sections 3.2, 3.5, 4.4.5; the source terms of equation 5).

Two faces are concatenated into one 6-channel image and fed to the baseline's architecture (backbone with
its first conv widened to 6 channels, then the regression module) whose last layer has two outputs:

* ``f1(A, B)`` — the age difference age_A − age_B, in years;
* ``f2(A, B) = sigmoid(rank_logit)`` — the probability that A is older than B.

Training uses random pairs of labelled source images and the source part of equation 5::

    L = L_reg(f1(A, B), y_A − y_B) + α·L_rank(f2(A, B), r(y_A − y_B)) + β·L_id

with L_reg the protocol's L1 (or L2) loss, L_rank the binary cross-entropy against r = 1 if A is older,
0.5 if of equal age, 0 otherwise, and L_id the identity constraints of section 3.5: f1(A, A) = 0,
f2(A, A) = 0.5, f1(A, B) = −f1(B, A) and f2(A, B) = 1 − f2(B, A). The probability constraints are written
as Bernoulli KL divergences (BCE minus the target's entropy) so that L_id is exactly 0 for a model that
satisfies them. The domain-adaptation terms of equation 5 (γ·L_adv, σ·L_smooth) are not part of this module.

Absolute ages (section 4.4.5) need labelled references: the method is given two labelled images of the
target domain — the only target labels it ever sees, as in the paper — and places every other image by
Metric MDS on the predicted differences (:func:`facebench.baselines.mds.ages_from_differences`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from facebench.baselines.age_regression import (
    DomainDiscriminator,
    GradientReversal,
    grl_coefficient,
    laplacian_smoothness,
)
from facebench.baselines.base import Baseline, FitData
from facebench.baselines.mds import ages_from_differences
from facebench.baselines.nets import Normalize, RegressionHead, build_backbone
from facebench.baselines.params import PairwiseParams
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
from facebench.seeding import rng_stream, seed_for

__all__ = ["Pairwise", "PairwiseAgeNet", "pair_outputs", "pairwise_losses", "rank_target"]


class PairwiseAgeNet(nn.Module):
    """Normalize → backbone (6 input channels) → regression module with outputs (difference, rank logit).

    ``forward(a, b)`` takes two batches of [0, 1] images (N, 3, S, S) and returns ``(diff, rank_logit)``,
    each (N,); ``rank_logit`` is None when the net has no rank head (``rank_head=False``: Table 7's
    "Regression" setting). ``forward_features`` also returns the activations ``conv``, ``fc1``, … that
    domain-adaptation terms align.
    """

    def __init__(self, *, backbone: str = "small_cnn", pretrained: str | None = None,
                 head_hidden: tuple[int, ...] = (256, 64), rank_head: bool = True) -> None:
        super().__init__()
        self.rank_head = rank_head
        self.normalize = Normalize(channels=6)
        self.backbone, width = build_backbone(backbone, pretrained=pretrained, in_channels=6)
        self.feature_dims = {"conv": width, **{f"fc{i}": w for i, w in enumerate(head_hidden, start=1)}}
        self.head = RegressionHead(width, tuple(head_hidden), out_dim=2 if rank_head else 1)

    def forward_features(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        conv = self.backbone(self.normalize(torch.cat([a, b], dim=1)))
        features = {"conv": conv, **self.head.forward_features(conv)}
        out = features.pop("out")
        features["diff"] = out[:, 0]
        if self.rank_head:
            features["rank_logit"] = out[:, 1]
        return features

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = self.forward_features(a, b)
        return features["diff"], features.get("rank_logit")


# ------------------------------------------------------------------------------------------------ losses


def rank_target(difference: torch.Tensor) -> torch.Tensor:
    """r(y_A − y_B): 1 where A is older, 0.5 for equal ages, 0 where B is older."""
    return (torch.sign(difference) + 1.0) / 2.0


def _bernoulli_kl(target_logit: torch.Tensor, logit: torch.Tensor) -> torch.Tensor:
    """KL(Bernoulli(σ(target_logit)) ‖ Bernoulli(σ(logit))) = BCE(logit, σ(target)) − H(σ(target)); ≥ 0, 0 iff equal."""
    p, q = F.logsigmoid(target_logit), F.logsigmoid(logit)
    p_neg, q_neg = F.logsigmoid(-target_logit), F.logsigmoid(-logit)
    return torch.sigmoid(target_logit) * (p - q) + torch.sigmoid(-target_logit) * (p_neg - q_neg)


def pairwise_losses(net: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]],
                    a: torch.Tensor, b: torch.Tensor, age_a: torch.Tensor, age_b: torch.Tensor, *,
                    alpha: float = 1.0, beta: float = 0.1, rank: bool = True, reg_loss: str = "l1",
                    same: torch.Tensor | None = None,
                    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                    ) -> dict[str, torch.Tensor]:
    """The source terms of equation 5 for pairs (a[i], b[i]); returns ``total`` and each term.

    The net runs once on the stacked pairs (A, B), (B, A) and, when ``beta > 0``, (S, S) for the images
    ``same`` (default ``a``). Both orders of each pair count in L_reg and L_rank (each is a source pair with
    its label). L_id = identity + antisymmetry:

    * identity: mean |f1(S, S)| + KL(0.5 ‖ f2(S, S));
    * antisymmetry: mean |f1(A, B) + f1(B, A)| + symmetric KL between f2(A, B) and 1 − f2(B, A).

    With ``rank=False`` the rank head is ignored (α = 0, no probability constraints).
    """
    n = len(a)
    same = a if same is None else same
    use_id = beta > 0
    left = [a, b] + ([same] if use_id else [])
    right = [b, a] + ([same] if use_id else [])
    with autocast():
        diff, logit = net(torch.cat(left), torch.cat(right))
    diff = diff.float()
    use_rank = rank and logit is not None
    logit = logit.float() if use_rank else None

    target = (age_a - age_b).float()
    d_ab, d_ba = diff[:n], diff[n : 2 * n]
    regression = F.l1_loss if reg_loss == "l1" else F.mse_loss
    zero = diff.new_zeros(())
    losses = {"reg": (regression(d_ab, target) + regression(d_ba, -target)) / 2}
    if use_rank:
        l_ab, l_ba = logit[:n], logit[n : 2 * n]
        r = rank_target(target)
        losses["rank"] = (F.binary_cross_entropy_with_logits(l_ab, r)
                          + F.binary_cross_entropy_with_logits(l_ba, 1.0 - r)) / 2
    else:
        losses["rank"] = zero
    if use_id:
        d_ss = diff[2 * n :]
        identity = d_ss.abs().mean()
        antisymmetry = (d_ab + d_ba).abs().mean()
        if use_rank:
            l_ss = logit[2 * n :]
            identity = identity + _bernoulli_kl(torch.zeros_like(l_ss), l_ss).mean()
            antisymmetry = antisymmetry + (_bernoulli_kl(-l_ba, l_ab) + _bernoulli_kl(l_ab, -l_ba)).mean() / 2
        losses["identity"], losses["antisymmetry"] = identity, antisymmetry
    else:
        losses["identity"] = losses["antisymmetry"] = zero
    losses["total"] = (losses["reg"] + (alpha * losses["rank"] if use_rank else zero)
                       + beta * (losses["identity"] + losses["antisymmetry"]))
    return losses


# ---------------------------------------------------------------------------------------------- inference


class _DifferenceAndProbability(nn.Module):
    """(f1(A, B), f2(A, B) = sigmoid(rank logit)) of a pair net, the rank part None without a rank head."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        diff, logit = self.net(a, b)
        return diff, None if logit is None else torch.sigmoid(logit.float())


def pair_outputs(net: nn.Module, images: np.ndarray, pairs: np.ndarray, *, device: torch.device,
                 amp: bool = True, channels_last: bool = True, batch_size: int = 256,
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """Predicted differences f1 and probabilities f2 for ``pairs`` (m, 2) of indices into a uint8 store.

    Returns float64 arrays (m,); the probabilities are None for a net without a rank head. The batches go
    through the one inference loop, :func:`facebench.baselines.training.predict_batches`.
    """
    if len(pairs) == 0:
        return np.empty(0), None
    diff, prob = predict_batches(_DifferenceAndProbability(net), images, pairs=pairs, device=device,
                                 batch_size=batch_size, amp=amp, channels_last=channels_last)
    return diff, prob


# ------------------------------------------------------------------------------------------------ training


#: Stream number of the RNG that pairs target images with each other (``[seed, 7, epoch, step]``). Any fixed
#: number apart from the others would do; 7 is the one every pairwise run so far was trained with, so it stays.
TARGET_PAIRING_STREAM = 7


class PairwiseMethod(TrainableMethod):
    """Equation 5 on random source pairs (each batch paired with shifted copies of itself), and its target
    terms on pairs of unlabelled target images when γ or the smoothing weight is set."""

    def __init__(self, *, net: PairwiseAgeNet, params: PairwiseParams, loop: LoopConfig,
                 val_images: np.ndarray, val_ages: np.ndarray) -> None:
        self.net = net
        self.params = params
        self.loop = loop
        self.seed = loop.seed
        self.val_images = val_images
        self.val_ages = np.asarray(val_ages, dtype=np.float64)
        self._epoch = -1
        self._batch = 0
        # Equation 5's target terms: γ·L_adv on the pair features of one layer, β·L_id on target pairs
        # (label-free constraints), σ·L_smooth over source and target pairs. Off when γ = σ-weight = 0.
        self.adapting = params.gamma > 0 or params.smoothing_weight > 0
        self.streams = ("target",) if self.adapting else ()
        self.adversary = nn.ModuleDict(
            {params.adapt_layer: DomainDiscriminator(net.feature_dims[params.adapt_layer])} if params.gamma > 0 else {})
        n = len(val_images)
        if n >= 2:  # fixed validation pairs: i with a random other image, the same every epoch
            shift = np.random.default_rng(seed_for(self.seed, "pairwise-val")).integers(1, n, size=n)
            self.val_pairs = np.stack([np.arange(n), (np.arange(n) + shift) % n], axis=1)
        else:
            self.val_pairs = np.empty((0, 2), dtype=np.int64)

    def modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"pairwise": self.net, "adversary": self.adversary})

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        optimizers = {"pairwise": make_optimizer(self.net.parameters(), self.loop)}
        if len(self.adversary):  # section 4.2: Adam for the regression network, SGD for the adversary
            optimizers["adversary"] = torch.optim.SGD(self.adversary.parameters(), lr=self.params.adversary_lr, momentum=0.9)
        return optimizers

    def partners(self, n: int, epoch: int) -> np.ndarray:
        """Partner indices (pairs_per_image·n,) for a batch of n: i ↦ (i + s) mod n for distinct shifts s ≠ 0.

        Deterministic from (seed, epoch, batch number within the epoch), so a resumed run pairs alike.
        """
        if epoch != self._epoch:
            self._epoch, self._batch = epoch, 0
        rng = rng_stream(self.seed, epoch, self._batch)
        self._batch += 1
        shifts = rng.choice(np.arange(1, n), size=min(self.params.pairs_per_image, n - 1), replace=False)
        return np.concatenate([(np.arange(n) + s) % n for s in shifts])

    def train_step(self, batches, ctx: StepContext) -> dict[str, float | torch.Tensor]:
        source = batches["source"]
        x, y = source["image"], source["age"].float()
        n = len(x)
        if n < 2:
            return {}
        partner = torch.from_numpy(self.partners(n, ctx.epoch)).to(x.device)
        repeats = len(partner) // n
        p = self.params
        losses = pairwise_losses(self.net, x.repeat(repeats, 1, 1, 1), x[partner], y.repeat(repeats), y[partner],
                                 alpha=p.alpha, beta=p.beta, rank=p.rank, reg_loss=self.loop.loss,
                                 same=x, autocast=ctx.autocast)
        total = losses["total"]  # L_reg + α·L_rank + β·L_id: the source terms of equation 5
        names: tuple[str, ...] = ("pairwise",)
        logs: dict[str, float] = {}
        if self.adapting and "target" in batches:
            # + γ·L_adv + β·L_id(target pairs) + σ·L_smooth: the target terms of equation 5
            total = total + self._target_terms(x, x[partner[:n]], batches["target"]["image"], ctx, logs)
            names = ("pairwise", "adversary") if len(self.adversary) else names
        ctx.optimize(names, total)
        logs.update({"loss": total.detach(), "reg": losses["reg"].detach()})
        if p.rank:
            logs["rank"] = losses["rank"].detach()
        if p.beta > 0:
            logs["id"] = (losses["identity"] + losses["antisymmetry"]).detach()
        return logs

    def _target_terms(self, a: torch.Tensor, b: torch.Tensor, target: torch.Tensor, ctx: StepContext,
                      logs: dict[str, float]) -> torch.Tensor:
        """γ·L_adv(g(x_s pairs), g(x_t pairs)) + β·L_id(target pairs) + σ·L_smooth of equation 5."""
        p = self.params
        m = len(target)
        shift = int(rng_stream(self.seed, TARGET_PAIRING_STREAM, ctx.epoch, ctx.step).integers(1, max(m, 2)))
        partner = (torch.arange(m, device=target.device) + shift) % m
        with ctx.autocast():
            source_features = self.net.forward_features(a, b)
            target_features = self.net.forward_features(target, target[partner])
            reverse_diff = self.net(target[partner], target)[0] if p.beta > 0 else None
        extra = torch.zeros((), device=target.device)
        if len(self.adversary):
            layer = p.adapt_layer
            pooled = torch.cat([source_features[layer], target_features[layer]]).float()
            logits = self.adversary[layer](GradientReversal.apply(pooled, grl_coefficient(ctx.progress)))
            domain = torch.cat([torch.zeros(len(a)), torch.ones(m)]).to(logits.device)
            adversarial = F.binary_cross_entropy_with_logits(logits, domain)
            extra = extra + p.gamma * adversarial
            logs["adv"] = adversarial.detach()
        if reverse_diff is not None:  # antisymmetry needs no label: f1(A,B) = −f1(B,A) on target pairs too
            target_id = (target_features["diff"].float() + reverse_diff.float()).abs().mean()
            extra = extra + p.beta * target_id
            logs["target_id"] = target_id.detach()
        if p.smoothing_weight > 0:
            inputs = torch.cat([torch.cat([a, b], dim=1), torch.cat([target, target[partner]], dim=1)])
            predictions = torch.cat([source_features["diff"], target_features["diff"]]).float()
            smooth = laplacian_smoothness(inputs, predictions, sigma=p.smoothing_sigma)
            extra = extra + p.smoothing_weight * smooth
            logs["smooth"] = smooth.detach()
        return extra

    def end_of_epoch(self, ctx: StepContext) -> dict[str, float | torch.Tensor]:
        if not len(self.val_pairs):
            return {}
        diff, prob = pair_outputs(self.net, self.val_images, self.val_pairs, device=ctx.device, amp=ctx.amp)
        truth = self.val_ages[self.val_pairs[:, 0]] - self.val_ages[self.val_pairs[:, 1]]
        logs = {"val_diff_mae": float(np.mean(np.abs(diff - truth)))}
        if prob is not None:
            decided = truth != 0
            if decided.any():
                logs["val_rank_acc"] = float(np.mean((prob[decided] > 0.5) == (truth[decided] > 0)))
        return logs


class Pairwise(Baseline):
    """Pairwise age-difference + rank model, ages by Metric MDS from two labelled target anchors (seed 000).

    ``fit`` trains on random pairs of labelled source images. Predicting absolute ages needs labelled
    anchors: call :meth:`predict_with_anchors`, or set :attr:`anchors` (``(images, ages)``, ≥ 2 labelled
    target-domain images; the runner sets it) and call :meth:`predict`. Those anchor labels are the only
    target labels the method sees, as in the paper (section 4.4.5); they are never used for training.
    """

    task = "age_regression"

    target_anchors = 2
    Params = PairwiseParams

    def __init__(self, *, protocol: Protocol, params: PairwiseParams) -> None:
        self.protocol = protocol
        self.params = params
        self.net: nn.Module | None = None
        #: The training settings of :meth:`fit`; inference runs on its device. None: a net set by hand (tests).
        self.loop: LoopConfig | None = None
        self.seed = 0
        #: ``(anchor_images (m, 3, S, S) uint8, anchor_ages (m,))`` with m ≥ 2 labelled target images, set by the runner.
        self.anchors: tuple[np.ndarray, np.ndarray] | None = None

    def fit(self, data: FitData, loop: LoopConfig) -> TrainHistory:
        if loop.batch_size < 2 or len(data.train_images) < 2:
            raise ValueError("the pairwise model needs batches of at least 2 source images")
        m, p = self.protocol.model, self.params
        self.loop = loop
        self.seed = loop.seed
        torch.manual_seed(loop.seed)  # the initial weights are part of the run's seed
        self.net = PairwiseAgeNet(backbone=m.backbone, pretrained=m.pretrained, head_hidden=m.head_hidden,
                                  rank_head=p.rank)
        method = PairwiseMethod(net=self.net, params=p, loop=loop, val_images=data.val_images, val_ages=data.val_ages)
        streams = {"source": ImageBatches(data.train_images, {"age": data.train_ages.astype(np.float32)})}
        if method.streams:
            if data.target_images is None or len(data.target_images) < 2:
                raise UserInputError("baseline pairwise with gamma or smoothing needs unlabelled target images, "
                                     "but the split has no 'target' part.")
            streams["target"] = ImageBatches(data.target_images)
        return fit(method, streams, loop)

    def set_anchors(self, images: np.ndarray, ages: np.ndarray) -> None:
        """Give the labelled target-domain reference images that :meth:`predict` places ages against."""
        self.anchors = (images, np.asarray(ages, dtype=np.float64))

    def predict(self, images: np.ndarray) -> np.ndarray:
        if self.anchors is None:
            raise RuntimeError(
                "the pairwise baseline needs at least 2 labelled target-domain anchor images to turn predicted "
                "age differences into ages (seed 000, section 4.4.5): set baseline.anchors = (images, ages) "
                "or call predict_with_anchors(images, anchor_images, anchor_ages)")
        return self.predict_with_anchors(images, *self.anchors)

    def predict_with_anchors(self, images: np.ndarray, anchor_images: np.ndarray,
                             anchor_ages: np.ndarray) -> np.ndarray:
        """Ages of ``images`` (uint8 (N, 3, S, S)) from differences to k random others and to the anchors.

        Images are split into chunks of about ``chunk_size``; in each chunk every image is paired with
        ``references`` random others of the chunk and with every anchor (and the anchors with each other),
        each pair in both orders, and :func:`ages_from_differences` places the chunk. The anchors are in
        every chunk with their known ages, so all chunks are on one scale. Deterministic for the fit seed.
        """
        if self.net is None:
            raise RuntimeError("predict() before fit()")
        anchor_ages = np.asarray(anchor_ages, dtype=np.float64).reshape(-1)
        if len(anchor_images) != len(anchor_ages):
            raise ValueError(f"{len(anchor_images)} anchor images but {len(anchor_ages)} anchor ages")
        if len(anchor_ages) < 2:
            raise ValueError(f"need at least 2 labelled anchor images, got {len(anchor_ages)}")
        if len(images) and tuple(np.shape(images)[1:]) != tuple(np.shape(anchor_images)[1:]):
            raise ValueError(f"anchor images {np.shape(anchor_images)[1:]} differ in shape from images "
                             f"{np.shape(images)[1:]}")
        p = self.params
        n, m = len(images), len(anchor_ages)
        out = np.empty(n, dtype=np.float64)
        if n == 0:
            return out
        # A net set by hand, without fit, runs on the CPU in float32.
        device = resolve_device(self.loop.device) if self.loop is not None else torch.device("cpu")
        amp = self.loop.amp if self.loop is not None else False
        channels_last = self.loop.channels_last if self.loop is not None else False
        self.net.to(device)
        rng = np.random.default_rng(seed_for(self.seed, "pairwise-predict"))
        anchor_images = np.asarray(anchor_images)
        for chunk in np.array_split(np.arange(n), -(-n // p.chunk_size)):
            c = len(chunk)
            store = np.concatenate([np.asarray(images[chunk]), anchor_images])
            pairs = set()
            k = min(p.references, c - 1)
            for i in range(c):
                if k:
                    for j in rng.choice(np.delete(np.arange(c), i), size=k, replace=False):
                        pairs.add((min(i, int(j)), max(i, int(j))))
                pairs.update((i, c + s) for s in range(m))
            pairs.update((c + s, c + u) for s in range(m) for u in range(s + 1, m))
            unique = np.array(sorted(pairs), dtype=np.int64)
            both = np.concatenate([unique, unique[:, ::-1]])
            diff, prob = pair_outputs(self.net, store, both, device=device, amp=amp, channels_last=channels_last)
            size = c + m
            diff_matrix = np.full((size, size), np.nan)
            diff_matrix[both[:, 0], both[:, 1]] = diff
            rank_matrix = None
            if prob is not None and p.rank:
                rank_matrix = np.full((size, size), np.nan)
                rank_matrix[both[:, 0], both[:, 1]] = prob
            ages = ages_from_differences(diff_matrix, rank_matrix, {c + s: float(a) for s, a in enumerate(anchor_ages)},
                                         method=p.mds, scale=p.anchor_scale, seed=self.seed)
            out[chunk] = ages[:c]
        return out
