"""AcGAN: "Look globally, age locally: face aging with an attention mechanism" (Zhu et al., seed 004).

The generator G gets a face x_s and a target age group y_t (a one-hot vector over 5 groups, tiled into 5 constant
maps) and produces an attention mask A ∈ [0, 1]^{h×w} (sigmoid head G_A) and a colour mask C (tanh head G_C), which
share every layer but the last (StarGAN's generator trunk, :mod:`facebench.baselines.gan`). The critic D has an image
critic D_I and an age classifier D_y sharing their weights. Numbered as in seed 004:

* (1) x_t = G(x_s, y_t) = (1 − A) ⊗ C + A ⊗ x_s  — A weights the *input*: A = 1 keeps the pixel. The reference code
  (JensonZhu14/AcGAN ``fake = A * real + (1 − A) * C``) composes the same way (GANimation's paper writes the
  reverse, its code this form; research note methods.md section 4.1), so there is no variant to choose.
* (2) L_adv = E[D_I(x_s)] − E[D_I(G(x_s, y_t))] − λ_gp E[(‖∇_x̃ D_I(x̃)‖₂ − 1)²]  (WGAN-GP)
* (3) L_att = λ_TV E[Σ_{i,j} (A_{i+1,j} − A_{i,j})² + (A_{i,j+1} − A_{i,j})²] + E[‖A‖₂]
* (4) L_cls = E[ℓ(D_y(G(x_s, y_t)), y_t) + ℓ(D_y(x_s), y_s)], ℓ the softmax (cross-entropy) loss
* (5) L = λ_adv L_adv + λ_att L_att + λ_cls L_cls,  (6) G* = argmin_G max_D L

so the critic minimises −λ_adv L_adv + λ_cls ℓ(D_y(x_s), y_s) and the generator
λ_adv (−E[D_I(x_t)]) + λ_att L_att + λ_cls ℓ(D_y(x_t), y_t). Section 3.1: λ_adv 10, λ_att 2, λ_cls 100, λ_gp 10,
λ_TV 5e-5, Adam at lr 1e-4, batch 64, 100 epochs, "we train the G and D in turn every iteration".

``loss_form: reference_code`` uses the reference code's terms instead (research note methods.md section 4.1): the
mask penalty mean(A) (L1, "the paper says L2, the code uses L1"), the total variation as absolute differences summed
per image, λ_att·mean(A) + λ_TV·TV(A), and the gradient penalty weighted by λ_gp alone (eq. 2 inside λ_adv would
weight it λ_adv·λ_gp = 100). ``generator_every: 2`` is the reference code's generator schedule.

The target group of a training image is drawn uniformly among the other groups (the reference code's
``desired_group``; the paper does not say).
"""

from __future__ import annotations

from typing import Literal

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
from facebench.baselines.params import AcGANParams
from facebench.baselines.training import (
    ImageBatches,
    LoopConfig,
    StepContext,
    TrainHistory,
    fit,
)
from facebench.errors import UserInputError, shorten
from facebench.fit_data import FitData, GenerationFitData

__all__ = ["AcGAN", "AcGANGenerator", "AcGANMethod", "age_group_of", "attention_loss", "compose", "total_variation"]


def compose(attention: torch.Tensor, colour: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Eq. 1: x_t = (1 − A) ⊗ C + A ⊗ x_s, A (N, 1, H, W) broadcast over the colour channels.

    >>> compose(torch.tensor([[[[1.0, 0.0, 0.25]]]]), torch.full((1, 3, 1, 3), -1.0), torch.ones(1, 3, 1, 3))[0, 0]
    tensor([[ 1.0000, -1.0000, -0.5000]])
    """
    return (1.0 - attention) * colour + attention * source


def total_variation(attention: torch.Tensor, *, squared: bool) -> torch.Tensor:
    """Σ_{i,j} of the vertical and horizontal neighbour differences of A per image, averaged over the batch: squared
    (eq. 3) or absolute (the reference code's ``mask_smooth`` term).

    >>> a = torch.tensor([[[[0.0, 1.0], [0.0, 0.0]]]])      # differences: right +1, down 0 and -1 (second column)
    >>> float(total_variation(a, squared=True)), float(total_variation(a, squared=False))
    (2.0, 2.0)
    >>> float(total_variation(2 * a, squared=True)), float(total_variation(2 * a, squared=False))
    (8.0, 4.0)
    """
    down = attention[..., 1:, :] - attention[..., :-1, :]
    right = attention[..., :, 1:] - attention[..., :, :-1]
    power = (lambda d: d.pow(2)) if squared else torch.abs
    per_image = power(down).flatten(1).sum(1) + power(right).flatten(1).sum(1)
    return per_image.mean()


def attention_loss(attention: torch.Tensor, *, lambda_att: float, lambda_tv: float,
                   form: Literal["paper", "reference_code"]) -> torch.Tensor:
    """The attention term of the generator's loss, already weighted: λ_att · L_att with eq. 3's L_att =
    λ_TV·TV²(A) + E‖A‖₂ (``paper``), or λ_att·mean(A) + λ_TV·TV₁(A) (``reference_code``).

    >>> a = torch.full((2, 1, 2, 2), 0.5)                  # a flat mask: no variation; ‖A‖₂ = 1, mean(A) = 0.5
    >>> float(attention_loss(a, lambda_att=2.0, lambda_tv=5e-5, form="paper"))
    2.0
    >>> float(attention_loss(a, lambda_att=2.0, lambda_tv=5e-5, form="reference_code"))
    1.0
    """
    a = attention.float()
    if form == "paper":
        norm = a.flatten(1).norm(2, dim=1).mean()
        return lambda_att * (lambda_tv * total_variation(a, squared=True) + norm)
    return lambda_att * a.mean() + lambda_tv * total_variation(a, squared=False)


def age_group_of(ages: np.ndarray, edges: tuple[int, ...]) -> np.ndarray:
    """The age group (0-based) of each age, groups starting at ``edges``; below the first edge: group 0.

    >>> age_group_of(np.array([8, 10, 20, 21, 50, 51, 77]), (10, 21, 31, 41, 51)).tolist()
    [0, 0, 0, 1, 3, 4, 4]
    """
    return np.clip(np.searchsorted(np.asarray(edges), np.asarray(ages, dtype=float), side="right") - 1, 0,
                   len(edges) - 1)


class AcGANGenerator(nn.Module):
    """G(x_s, y_t) → (x_t, A, C): the shared trunk with the colour head G_C (Conv7x7 → 3, tanh) and the attention
    head G_A (Conv7x7 → 1, sigmoid), composed by eq. 1."""

    def __init__(self, *, c_dim: int, conv_dim: int, repeat_num: int) -> None:
        super().__init__()
        self.trunk = GeneratorTrunk(c_dim=c_dim, conv_dim=conv_dim, repeat_num=repeat_num)
        self.colour = nn.Conv2d(self.trunk.out_channels, 3, 7, 1, 3, bias=False)
        self.attention = nn.Conv2d(self.trunk.out_channels, 1, 7, 1, 3, bias=False)

    def masks(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x, y)
        return torch.sigmoid(self.attention(h)), torch.tanh(self.colour(h))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        attention, colour = self.masks(x, y)
        return compose(attention, colour, x)


class AcGANMethod(AdversarialMethod):
    """A critic step, then (every ``generator_every``-th step) a generator step, on each batch (eq. 2-6)."""

    def __init__(self, *, generator: AcGANGenerator, critic: Critic, params: AcGANParams, loop: LoopConfig,
                 sample_grid=None) -> None:
        super().__init__(generator=generator, critic=critic, params=params, loop=loop, sample_grid=sample_grid)
        self.n_groups = len(params.age_groups)

    def train_step(self, batches, ctx: StepContext) -> dict[str, torch.Tensor]:
        p = self.params
        self.start_step(ctx)
        source = batches["source"]
        x_s = to_signed(source["image"])
        y_s = source["group"].long()
        # y_t: uniformly among the other groups (the reference code's desired_group; unspecified by the paper)
        y_t = (y_s + torch.randint(1, self.n_groups, y_s.shape, device=y_s.device)) % self.n_groups
        c_t = F.one_hot(y_t, self.n_groups).float()
        gp_weight = p.lambda_adv * p.lambda_gp if p.loss_form == "paper" else p.lambda_gp

        # Critic: minimise −λ_adv L_adv (eq. 2, penalty included) + λ_cls ℓ(D_y(x_s), y_s) (eq. 4's real term).
        with ctx.autocast():
            real_src, real_cls = self.critic(x_s)
            with torch.no_grad():
                x_t = self.generator(x_s, c_t)
            fake_src = self.critic(x_t)[0]
            wasserstein = real_src.float().mean() - fake_src.float().mean()
            d_cls = F.cross_entropy(real_cls.float(), y_s)
        d_gp = gradient_penalty(self.critic, x_s, x_t, ctx)
        d_loss = -p.lambda_adv * wasserstein + gp_weight * d_gp + p.lambda_cls * d_cls
        ctx.optimize("critic", d_loss)
        logs = {"d_loss": d_loss.detach(), "d_wasserstein": wasserstein.detach(), "d_cls": d_cls.detach(),
                "d_gp": d_gp.detach()}

        # Generator: minimise λ_adv(−E D_I(x_t)) + λ_att L_att (eq. 3) + λ_cls ℓ(D_y(x_t), y_t) (eq. 4's fake term).
        if (ctx.step + 1) % p.generator_every == 0:
            with ctx.autocast():
                attention, colour = self.generator.masks(x_s, c_t)
                x_t = compose(attention, colour, x_s)  # eq. 1
                fake_src, fake_cls = self.critic(x_t)
                g_adv = -fake_src.float().mean()
                g_cls = F.cross_entropy(fake_cls.float(), y_t)
            g_att = attention_loss(attention, lambda_att=p.lambda_att, lambda_tv=p.lambda_tv, form=p.loss_form)
            g_loss = p.lambda_adv * g_adv + g_att + p.lambda_cls * g_cls
            ctx.optimize("generator", g_loss)
            self.log_generator(g_loss=g_loss, g_adv=g_adv, g_att=g_att, g_cls=g_cls,
                               attention_mean=attention.float().mean())
        return logs


class AcGAN(GenerativeBaseline):
    """AcGAN on the dataset's ``age`` column, in ``params.age_groups`` (module docstring)."""

    name = "acgan"
    Params = AcGANParams

    def condition(self, source: pd.Series | dict, target: dict[str, float]) -> np.ndarray:
        """The one-hot y_t of the target's ``age`` (any age in the group; its group by ``age_groups``).

        >>> from facebench.baselines.params import AcGANParams
        >>> AcGAN(protocol=None, params=AcGANParams()).condition({}, {"age": 35}).tolist()
        [0.0, 0.0, 1.0, 0.0, 0.0]
        """
        if set(target) != {"age"}:
            other = next(iter(set(target) - {"age"}), "nothing")
            raise UserInputError(f"baseline acgan changes a face's age group only; it cannot edit {shorten(str(other))}.")
        y = np.zeros(len(self.params.age_groups), dtype=np.float32)
        y[int(age_group_of(np.array([target["age"]]), self.params.age_groups)[0])] = 1.0
        return y

    def translate(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.generator(x, c)

    def groups(self, labels: pd.DataFrame, where: str) -> np.ndarray:
        if "age" not in labels.columns or labels["age"].isna().any():
            raise UserInputError(f"baseline acgan needs every {where} image's age; some have none.")
        return age_group_of(labels["age"].to_numpy(dtype=float), self.params.age_groups).astype(np.int64)

    def fit(self, data: FitData, loop: LoopConfig) -> TrainHistory:
        if not isinstance(data, GenerationFitData):
            raise TypeError("acgan trains on GenerationFitData (task face_generation)")
        p, size = self.params, self.protocol.model.image_size
        self.loop = loop
        groups = self.groups(data.train_labels, "training")
        torch.manual_seed(loop.seed)  # the initial weights are part of the run's seed
        c_dim = len(p.age_groups)
        self.generator = AcGANGenerator(c_dim=c_dim, conv_dim=p.conv_dim, repeat_num=p.repeat_num)
        critic = Critic(image_size=size, c_dim=c_dim, conv_dim=p.d_conv_dim, repeat_num=p.d_repeat_num)
        has_val = len(data.val_images) > 0
        grid = self.grid_writer(data.val_images if has_val else data.train_images, loop)
        method = AcGANMethod(generator=self.generator, critic=critic, params=p, loop=loop, sample_grid=grid)
        return fit(method, {"source": ImageBatches(data.train_images, {"group": groups})}, loop)

    def grid_writer(self, images: np.ndarray, loop: LoopConfig):
        """A callable writing ``checkpoints/samples/epoch-NNN.png``: per row one of the first ``sample_images``
        images, then it aged to every group (seed 004 Fig. 2's first row), then the attention mask A of the last
        target group as a grey image (Fig. 2's second row)."""
        k = min(self.params.sample_images, len(images))
        if k == 0 or loop.checkpoint_dir is None:
            return None
        from facebench.baselines.training import resolve_device
        from facebench.distributed import is_main

        groups = self.params.age_groups

        @torch.no_grad()
        def write(epoch: int) -> None:
            if not is_main():  # only rank 0 writes (torchrun)
                return
            ages = [{"age": float(edge)} for edge in groups]
            index = [i for i in range(k) for _ in ages]
            out = self.generate(images[index], pd.DataFrame(index=range(len(index))), ages * k)
            device = resolve_device(loop.device)
            x = to_signed(torch.from_numpy(np.ascontiguousarray(images[:k])).to(device).float() / 255.0)
            last = torch.zeros(k, len(groups), device=device)
            last[:, -1] = 1.0
            attention = self.generator.masks(x, last)[0].float().cpu().numpy()
            mask = (attention.clip(0, 1) * 255).round().astype(np.uint8).repeat(3, axis=1)
            rows = [[images[i], *out[i * len(groups):(i + 1) * len(groups)], mask[i]] for i in range(k)]
            write_png(loop.checkpoint_dir / "samples" / f"epoch-{epoch:03d}.png", image_grid(np.array(rows)))

        return write
