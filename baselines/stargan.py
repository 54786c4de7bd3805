"""StarGAN (Choi et al., CVPR 2018) as seed 001 section 3 trains it on Caucasian CelebA ("CelebC").

One generator G(x, c) translates a face x to the attributes c (a 0/1 vector over ``params.attributes``); one critic
D gives a real/fake patch map D_src and attribute logits D_cls (:mod:`facebench.baselines.gan`). The losses, numbered
as in the StarGAN paper:

* (1)/(8) adversarial, WGAN-GP form: L_adv = E[D_src(x)] − E[D_src(G(x, c))] − λ_gp E[(‖∇_x̂ D_src(x̂)‖₂ − 1)²]
* (2) domain classification of real images: L_cls^r = E[−log D_cls(c'|x)], c' the image's own labels
* (3) domain classification of fake images: L_cls^f = E[−log D_cls(c|G(x, c))]
* (4) reconstruction: L_rec = E[‖x − G(G(x, c), c')‖₁]
* (5) L_D = −L_adv + λ_cls L_cls^r;  L_G = L_adv + λ_cls L_cls^f + λ_rec L_rec

For CelebA's independent binary attributes, −log D_cls is the binary cross-entropy summed over the attributes and
averaged over the batch (the reference code's ``binary_cross_entropy_with_logits(..., size_average=False) / N``).
Training as seed 001 section 3.3 and the reference code (yunjey/stargan ``solver.py``): the target labels c are the
batch's labels in a random order; every step is one critic step, every ``n_critic``-th (5) also one generator step on
the same batch; Adam(β 0.5, 0.999) at lr 1e-4 for both; both rates fall linearly to 0 over the last half of the
steps (``lr_decay_start``). At test time (the reference code's ``create_labels``) an edit sets one attribute, and
asking for one hair colour turns the other hair colours off (``exclusive``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from facebench.baselines.gan import (
    AdversarialMethod,
    Critic,
    GenerativeBaseline,
    GeneratorTrunk,
    gradient_penalty,
    image_grid,
    to_signed,
    write_png,
)
from facebench.baselines.params import StarGANParams
from facebench.baselines.training import (
    ImageBatches,
    LoopConfig,
    StepContext,
    TrainHistory,
    fit,
)
from facebench.errors import UserInputError, shorten
from facebench.fit_data import FitData, GenerationFitData

__all__ = ["StarGAN", "StarGANGenerator", "StarGANMethod", "attribute_loss", "linear_decay"]


class StarGANGenerator(nn.Module):
    """G(x, c): the shared trunk, then Conv7x7 → 3 channels → tanh (StarGAN appendix Table 4)."""

    def __init__(self, *, c_dim: int, conv_dim: int, repeat_num: int) -> None:
        super().__init__()
        self.trunk = GeneratorTrunk(c_dim=c_dim, conv_dim=conv_dim, repeat_num=repeat_num)
        self.out = nn.Conv2d(self.trunk.out_channels, 3, 7, 1, 3, bias=False)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.out(self.trunk(x, c)))


def attribute_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """−log D_cls(c|x) of eq. 2 and 3 for independent binary attributes: the binary cross-entropy summed over the
    attributes, averaged over the batch (computed in float32).

    >>> round(float(attribute_loss(torch.zeros(2, 3), torch.ones(2, 3))), 4)   # 3 attributes at p = 0.5: 3 ln 2
    2.0794
    """
    return F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="sum") / logits.size(0)


def linear_decay(progress: float, start: float | None) -> float:
    """The learning-rate factor at training progress p ∈ [0, 1]: 1 until ``start``, then linearly to 0 at p = 1
    (the reference code's decay over the last 100,000 of 200,000 iterations); 1 throughout when ``start`` is None.

    >>> [linear_decay(p, 0.5) for p in (0.0, 0.5, 0.75, 1.0)]
    [1.0, 1.0, 0.5, 0.0]
    """
    if start is None or progress <= start:
        return 1.0
    return max(0.0, (1.0 - progress) / (1.0 - start))


class StarGANMethod(AdversarialMethod):
    """One critic step per batch, a generator step every ``n_critic``-th (the module docstring's eq. 5 and 8)."""

    def train_step(self, batches, ctx: StepContext) -> dict[str, torch.Tensor]:
        p = self.params
        self.start_step(ctx)
        factor = linear_decay(ctx.progress, p.lr_decay_start)  # a pure function of the step: survives a resume
        for optimizer in ctx.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = self.loop.lr * factor
        source = batches["source"]
        x_real = to_signed(source["image"])
        c_org = source["condition"].float()
        c_trg = c_org[torch.randperm(c_org.size(0), device=c_org.device)]  # target labels: the batch's, shuffled

        # Critic: L_D = −L_adv + λ_cls L_cls^r (eq. 5), L_adv with the gradient penalty of eq. 8.
        with ctx.autocast():
            out_src, out_cls = self.critic(x_real)
            d_loss_real = -out_src.float().mean()
            d_loss_cls = attribute_loss(out_cls, c_org)  # eq. 2
            with torch.no_grad():
                x_fake = self.generator(x_real, c_trg)
            d_loss_fake = self.critic(x_fake)[0].float().mean()
        d_loss_gp = gradient_penalty(self.critic, x_real, x_fake, ctx)
        d_loss = d_loss_real + d_loss_fake + p.lambda_cls * d_loss_cls + p.lambda_gp * d_loss_gp
        ctx.optimize("critic", d_loss)
        logs = {"d_loss": d_loss.detach(), "d_wasserstein": (-d_loss_real - d_loss_fake).detach(),
                "d_cls": d_loss_cls.detach(), "d_gp": d_loss_gp.detach()}

        # Generator, every n_critic-th step: L_G = L_adv + λ_cls L_cls^f + λ_rec L_rec (eq. 5).
        if (ctx.step + 1) % p.n_critic == 0:
            with ctx.autocast():
                x_fake = self.generator(x_real, c_trg)
                out_src, out_cls = self.critic(x_fake)
                g_loss_fake = -out_src.float().mean()
                g_loss_cls = attribute_loss(out_cls, c_trg)  # eq. 3
                x_rec = self.generator(x_fake, c_org)
                g_loss_rec = (x_real - x_rec.float()).abs().mean()  # eq. 4
            g_loss = g_loss_fake + p.lambda_rec * g_loss_rec + p.lambda_cls * g_loss_cls
            ctx.optimize("generator", g_loss)
            self.log_generator(g_loss=g_loss, g_adv=g_loss_fake, g_cls=g_loss_cls, g_rec=g_loss_rec)
        return logs


class StarGAN(GenerativeBaseline):
    """StarGAN on the dataset's attribute columns (module docstring)."""

    name = "stargan"
    Params = StarGANParams

    def condition(self, source: pd.Series | dict, target: dict[str, float]) -> np.ndarray:
        """c_trg: the source's own labels on ``attributes`` with the target's values set; a hair colour set to 1
        turns the other colours of its ``exclusive`` group off.

        >>> from facebench.baselines.params import StarGANParams
        >>> g = StarGAN(protocol=None, params=StarGANParams(attributes=("Black_Hair", "Blond_Hair", "Young")))
        >>> g.condition({"Black_Hair": True, "Blond_Hair": False, "Young": True}, {"Blond_Hair": 1.0}).tolist()
        [0.0, 1.0, 1.0]
        """
        attributes = list(self.params.attributes)
        c = np.array([float(source[a]) for a in attributes], dtype=np.float32)
        for name, value in target.items():
            if name not in attributes:
                raise UserInputError(f"baseline stargan was trained on {', '.join(attributes)}, so it cannot edit "
                                     f"{shorten(name)}; add it to the baseline's params.attributes.")
            if value >= 0.5:
                for group in self.params.exclusive:
                    if name in group:
                        c[[i for i, a in enumerate(attributes) if a in group]] = 0.0
            c[attributes.index(name)] = float(value)
        return c

    def translate(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.generator(x, c)

    def conditions(self, labels: pd.DataFrame, where: str) -> np.ndarray:
        """The (N, c_dim) 0/1 condition matrix of a label table; one sentence for a missing or unlabelled column."""
        missing = [a for a in self.params.attributes if a not in labels.columns]
        if missing:
            raise UserInputError(f"baseline stargan: params.attributes names {shorten(missing[0])}, which the "
                                 f"{where} labels do not have.")
        values = labels[list(self.params.attributes)].astype("float64")
        if values.isna().any().any():
            column = values.columns[values.isna().any()][0]
            raise UserInputError(f"baseline stargan: {where} images lack a value of {shorten(column)}.")
        return values.to_numpy(dtype=np.float32)

    def fit(self, data: FitData, loop: LoopConfig) -> TrainHistory:
        if not isinstance(data, GenerationFitData):
            raise TypeError("stargan trains on GenerationFitData (task face_generation)")
        p, size = self.params, self.protocol.model.image_size
        self.loop = loop
        conditions = self.conditions(data.train_labels, "training")
        torch.manual_seed(loop.seed)  # the initial weights are part of the run's seed
        self.generator = StarGANGenerator(c_dim=len(p.attributes), conv_dim=p.conv_dim, repeat_num=p.repeat_num)
        critic = Critic(image_size=size, c_dim=len(p.attributes), conv_dim=p.d_conv_dim, repeat_num=p.d_repeat_num)
        grid = self.grid_writer(data.val_images if len(data.val_images) else data.train_images,
                                data.val_labels if len(data.val_images) else data.train_labels, loop)
        method = StarGANMethod(generator=self.generator, critic=critic, params=p, loop=loop, sample_grid=grid)
        return fit(method, {"source": ImageBatches(data.train_images, {"condition": conditions})}, loop)

    def grid_writer(self, images: np.ndarray, labels: pd.DataFrame, loop: LoopConfig):
        """A callable writing ``checkpoints/samples/epoch-NNN.png``: each row one of the first ``sample_images``
        images, then that image with each attribute set (a hair colour) or flipped (the reference code's grid)."""
        k = min(self.params.sample_images, len(images))
        if k == 0 or loop.checkpoint_dir is None:
            return None
        from facebench.distributed import is_main

        targets = [{a: 1.0} if any(a in g for g in self.params.exclusive) else {a: None}
                   for a in self.params.attributes]
        sources = labels.iloc[:k]
        rows = [[images[i]] for i in range(k)]
        requests = [(i, {a: (1.0 - float(sources.iloc[i][a])) if v is None else v for a, v in t.items()})
                    for i in range(k) for t in targets]

        def write(epoch: int) -> None:
            if not is_main():  # only rank 0 writes (torchrun)
                return
            out = self.generate(images[[i for i, _ in requests]], sources.iloc[[i for i, _ in requests]],
                                [t for _, t in requests])
            grid = [list(row) for row in rows]
            for (i, _), image in zip(requests, out, strict=True):
                grid[i].append(image)
            write_png(loop.checkpoint_dir / "samples" / f"epoch-{epoch:03d}.png", image_grid(np.array(grid)))

        return write

