"""What StarGAN (seed 001 section 3) and AcGAN (seed 004) share: the image-to-image generator trunk, the PatchGAN
critic with an auxiliary classification head, the WGAN-GP gradient penalty, sample grids, and the
:class:`GenerativeBaseline` every generator of the ``face_generation`` task is.

Both papers build on the same pieces (the StarGAN reference code, yunjey/stargan ``model.py`` and ``solver.py``;
AcGAN's generator "is identical to GANimation's G, which is StarGAN's G", research note methods.md section 4.1):

* **Generator trunk** (StarGAN section 4, appendix Table 4): the condition is tiled into ``c_dim`` constant maps and
  concatenated with the image; Conv7x7 → InstanceNorm → ReLU, two stride-2 down-sampling convolutions, ``repeat_num``
  residual blocks, two stride-2 transposed convolutions. InstanceNorm has affine parameters and **no running
  statistics** (``track_running_stats=False``): the reference code never calls ``eval()``, so keeping running
  statistics would change the outputs the moment facebench does (yunjey/stargan#140).
* **Critic** (PatchGAN): ``repeat_num`` Conv4x4-stride-2 + LeakyReLU(0.01); a 3x3 convolution gives the real/fake
  patch map D_src (D_I in AcGAN), a convolution over the whole remaining map gives the condition logits D_cls (D_y).
* **Gradient penalty** (Gulrajani et al. 2017; StarGAN eq. 8, AcGAN eq. 2): λ_gp · E[(‖∇_x̂ D_src(x̂)‖₂ − 1)²] at
  x̂ = εx + (1 − ε)x̃, ε ~ U[0, 1] per sample.

Images enter the networks in [−1, 1] (the reference codes' ``Normalize(0.5, 0.5)``); the shared loop hands over
[0, 1] and :func:`to_signed` / :func:`to_uint8` convert.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from facebench.baselines.base import Baseline
from facebench.baselines.training import LoopConfig, StepContext, TrainableMethod, resolve_device
from facebench.errors import UserInputError
from facebench.io import atomic_write

__all__ = ["AdversarialMethod", "Critic", "GenerativeBaseline", "GeneratorTrunk", "ResidualBlock", "gradient_penalty", "image_grid",
           "tile_condition", "to_signed", "to_uint8", "write_png"]


# ----------------------------------------------------------------------------------------------- conversions


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] → [−1, 1] (the reference codes' ``Normalize(mean=0.5, std=0.5)``)."""
    return x * 2.0 - 1.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[−1, 1] float images → uint8 (N, 3, S, S), rounded and clipped.

    >>> to_uint8(torch.tensor([[[[-1.0, 0.0, 1.0]]]])).tolist()
    [[[[0, 128, 255]]]]
    """
    return ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).cpu().numpy()


def tile_condition(c: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The condition vector (N, C) as C constant maps (N, C, H, W): StarGAN's "spatially replicated" label,
    AcGAN's "pad the one-hot label y_t into R^{h×w×5}"."""
    return c.view(c.size(0), c.size(1), 1, 1).expand(-1, -1, *size)


# ------------------------------------------------------------------------------------------------ networks


def _instance_norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)


class ResidualBlock(nn.Module):
    """Conv3x3 → IN → ReLU → Conv3x3 → IN, plus the input (StarGAN appendix Table 4, "Residual Block")."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), _instance_norm(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), _instance_norm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


class GeneratorTrunk(nn.Module):
    """StarGAN's generator up to (not including) its last convolution: condition maps concatenated with the image,
    Conv7x7, two down-sampling and ``repeat_num`` residual blocks, two up-sampling; ``out_channels`` features at the
    input's size. StarGAN adds Conv7x7 → 3 + tanh; AcGAN two such heads (colour C and attention A)."""

    def __init__(self, *, c_dim: int, conv_dim: int, repeat_num: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3 + c_dim, conv_dim, 7, 1, 3, bias=False), _instance_norm(conv_dim),
                                   nn.ReLU(inplace=True)]
        width = conv_dim
        for _ in range(2):  # down-sampling
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), _instance_norm(width * 2), nn.ReLU(inplace=True)]
            width *= 2
        layers += [ResidualBlock(width) for _ in range(repeat_num)]  # bottleneck
        for _ in range(2):  # up-sampling
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), _instance_norm(width // 2),
                       nn.ReLU(inplace=True)]
            width //= 2
        self.main = nn.Sequential(*layers)
        self.out_channels = width

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.main(torch.cat([x, tile_condition(c, x.shape[-2:]).to(x.dtype)], dim=1))


class Critic(nn.Module):
    """PatchGAN critic with an auxiliary classifier sharing its weights (StarGAN's D; AcGAN's D_I and D_y, "share
    parameters W_D"): ``forward`` gives (D_src patch map (N, 1, h, w), D_cls logits (N, c_dim))."""

    def __init__(self, *, image_size: int, c_dim: int, conv_dim: int, repeat_num: int) -> None:
        super().__init__()
        if image_size % 2**repeat_num:
            raise UserInputError(f"the critic halves the image {repeat_num} times, so the image side ({image_size}) must "
                                 f"be a multiple of {2**repeat_num}; change model.image_size or the critic's repeat_num.")
        layers: list[nn.Module] = [nn.Conv2d(3, conv_dim, 4, 2, 1), nn.LeakyReLU(0.01)]
        width = conv_dim
        for _ in range(1, repeat_num):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1), nn.LeakyReLU(0.01)]
            width *= 2
        self.main = nn.Sequential(*layers)
        self.src = nn.Conv2d(width, 1, 3, 1, 1, bias=False)  # D_src / D_I: real or fake, per patch
        self.cls = nn.Conv2d(width, c_dim, image_size // 2**repeat_num, bias=False)  # D_cls / D_y

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.main(x)
        return self.src(h), self.cls(h).flatten(1)


# ------------------------------------------------------------------------------------------------ losses


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, ctx: StepContext | None = None, *,
                     epsilon: torch.Tensor | None = None) -> torch.Tensor:
    """E[(‖∇_x̂ D_src(x̂)‖₂ − 1)²] at x̂ = ε·real + (1 − ε)·fake, ε ~ U[0, 1] per sample (WGAN-GP; StarGAN eq. 8,
    AcGAN eq. 2 without λ_gp). The norm is taken per sample over all pixels and channels.

    Under AMP the critic's output is scaled before differentiating and the gradient unscaled after (PyTorch's AMP
    recipe for gradient penalties): a float16 gradient of an unscaled output can underflow to zero. The penalty
    itself is computed in float32. ``epsilon`` (N,) fixes ε (tests).

    For D(x) = w·x the gradient is w everywhere, so the penalty is (‖w‖₂ − 1)²:

    >>> critic = lambda x: ((x * 3.0).sum(dim=(1, 2, 3)), None)     # w = 3 on one pixel: ‖w‖ = 3
    >>> float(gradient_penalty(critic, torch.zeros(2, 1, 1, 1), torch.ones(2, 1, 1, 1)))
    4.0
    """
    if epsilon is None:
        epsilon = torch.rand(real.size(0), device=real.device)
    epsilon = epsilon.view(-1, *([1] * (real.dim() - 1))).to(real.dtype)
    mixed = (epsilon * real.detach() + (1 - epsilon) * fake.detach()).requires_grad_(True)
    with ctx.autocast() if ctx is not None else torch.autocast(real.device.type, enabled=False):
        out = critic(mixed)[0]
    scaler = ctx.scaler if ctx is not None and ctx.amp else None
    scaled = scaler.scale(out.sum()) if scaler is not None else out.float().sum()
    (grad,) = torch.autograd.grad(scaled, mixed, create_graph=True)
    grad = grad.float()
    if scaler is not None:
        grad = grad / scaler.get_scale()
    norm = grad.reshape(grad.size(0), -1).norm(2, dim=1)
    return ((norm - 1.0) ** 2).mean()


# ------------------------------------------------------------------------------------------------ sample grids


def image_grid(rows: np.ndarray) -> np.ndarray:
    """A grid image (H·r, W·c, 3) uint8 from uint8 images (r, c, 3, H, W): row i column j is image [i, j], with a
    one-pixel white border between cells.

    >>> image_grid(np.zeros((2, 3, 3, 4, 4), dtype=np.uint8)).shape
    (11, 16, 3)
    """
    r, c, _, h, w = rows.shape
    grid = np.full((r * (h + 1) + 1, c * (w + 1) + 1, 3), 255, dtype=np.uint8)
    for i in range(r):
        for j in range(c):
            grid[1 + i * (h + 1):1 + i * (h + 1) + h, 1 + j * (w + 1):1 + j * (w + 1) + w] = rows[i, j].transpose(1, 2, 0)
    return grid


def write_png(path: Path, image: np.ndarray) -> None:
    """An (H, W, 3) or (3, H, W) uint8 image written as PNG, atomically."""
    from PIL import Image

    if image.ndim == 3 and image.shape[0] == 3 and image.shape[-1] != 3:
        image = image.transpose(1, 2, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as handle:
        Image.fromarray(np.ascontiguousarray(image)).save(handle, format="PNG")


# ------------------------------------------------------------------------------------------------ the baseline


class AdversarialMethod(TrainableMethod):
    """What StarGAN's and AcGAN's training methods share: a ``generator`` and a ``critic``, each with its own Adam
    (β1, β2 of the params) at the loop's rate; the generator's logs averaged over the epoch's generator steps (it does
    not step on every batch); and ``sample_grid`` (the PNG writer) called after each epoch with the epoch number.
    Subclasses write ``train_step``, calling :meth:`start_step` first and :meth:`log_generator` after each generator
    step."""

    def __init__(self, *, generator: nn.Module, critic: nn.Module, params, loop: LoopConfig, sample_grid=None) -> None:
        self.generator = generator
        self.critic = critic
        self.params = params
        self.loop = loop
        self.sample_grid = sample_grid
        self._generator_logs: dict[str, list[torch.Tensor]] = {}
        self._epoch = -1

    def modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"generator": self.generator, "critic": self.critic})

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        p = self.params
        return {"critic": torch.optim.Adam(self.critic.parameters(), lr=self.loop.lr, betas=(p.beta1, p.beta2)),
                "generator": torch.optim.Adam(self.generator.parameters(), lr=self.loop.lr, betas=(p.beta1, p.beta2))}

    def start_step(self, ctx: StepContext) -> None:
        if ctx.epoch != self._epoch:  # a new epoch: its generator logs start empty
            self._epoch, self._generator_logs = ctx.epoch, {}

    def log_generator(self, **values: torch.Tensor) -> None:
        for key, value in values.items():
            self._generator_logs.setdefault(key, []).append(value.detach())

    def end_of_epoch(self, ctx: StepContext) -> dict[str, float]:
        logs = {key: float(torch.stack(values).double().mean()) for key, values in self._generator_logs.items()}
        if self.sample_grid is not None:
            self.sample_grid(ctx.epoch + 1)
        return logs


class GenerativeBaseline(Baseline):
    """A conditional face generator for the ``face_generation`` task: trained on real images and their labels
    (:class:`facebench.fit_data.GenerationFitData`), then asked for edits (:meth:`generate`): each request is one
    source image, its labels as the dataset gives them, and the target labels (``{"Blond_Hair": 1.0}``,
    ``{"age": 31}``); the baseline turns them into its own condition vector (:meth:`condition`)."""

    task = "face_generation"

    def __init__(self, *, protocol, params) -> None:
        self.protocol = protocol
        self.params = params
        self.generator: nn.Module | None = None
        self.loop = None

    @abstractmethod
    def condition(self, source: pd.Series | dict, target: dict[str, float]) -> np.ndarray:
        """The condition vector (float32, c_dim) that asks this generator for ``target`` from a face labelled
        ``source``; one sentence (:class:`UserInputError`) for a target it was not trained to produce."""

    @abstractmethod
    def translate(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Generated images in [−1, 1] from images ``x`` in [−1, 1] and conditions ``c``."""

    @torch.no_grad()
    def generate(self, images: np.ndarray, sources: pd.DataFrame, targets: list[dict[str, float]], *,
                 batch_size: int = 64) -> np.ndarray:
        """uint8 (R, 3, S, S) edits of uint8 ``images`` (R, 3, S, S): row r is image r asked for ``targets[r]``,
        ``sources`` row r being its labels. Batched, on the training device, no autocast (float32 outputs)."""
        if self.generator is None or self.loop is None:
            raise RuntimeError("generate() before fit()")
        if not (len(images) == len(sources) == len(targets)):
            raise ValueError(f"{len(images)} images, {len(sources)} source rows and {len(targets)} targets")
        device = resolve_device(self.loop.device)
        conditions = np.stack([self.condition(row, target) for (_, row), target in zip(sources.iterrows(), targets,
                                                                                       strict=True)]) if len(targets) \
            else np.zeros((0, 1), dtype=np.float32)
        self.generator.eval()
        out = np.empty_like(images)
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device).float() / 255.0
            c = torch.from_numpy(conditions[start:start + batch_size]).to(device)
            out[start:start + batch_size] = to_uint8(self.translate(to_signed(x), c))
        return out

    def predict(self, images: np.ndarray) -> np.ndarray:
        raise UserInputError(f"baseline {type(self).__name__} generates faces for edit requests; the face_generation "
                             "task asks it through generate(images, sources, targets), not predict().")


# ------------------------------------------------------------------------------------------------ GPU smoke step

#: The protocol whose ``paper`` profile each generator's smoke step uses.
SMOKE_PROTOCOLS = {"acgan": "gan_aging_morph", "stargan": "gan_celeba_realism"}


def amp_smoke(kind: str, *, device: str = "cuda", steps: int = 10, image_size: int | None = None,
              batch_size: int | None = None, seed: int = 0) -> dict[str, object]:
    """A few training steps of a generator's ``paper`` profile (its networks, image size, batch and weights) with AMP
    on ``device``, on random uint8 images, through the shared loop: for ``scripts/gpu_check.py`` (issue 15: "on a GPU,
    the paper profile of AcGAN trains with AMP"). ``steps`` counts critic steps (StarGAN takes a generator step every
    ``n_critic``-th). ``image_size`` / ``batch_size`` shrink it (the critic's depth is cut to fit the size) for a CPU
    smoke test. Returns the last epoch's log with the wall time, images/s, peak GPU memory and whether AMP was on;
    raises ``RuntimeError`` if a logged loss is not finite.

    >>> log = amp_smoke("acgan", device="cpu", steps=2, image_size=16, batch_size=2)   # doctest: +SKIP
    """
    import time

    from facebench.baselines.specs import as_baseline_spec
    from facebench.baselines.training import LoopConfig
    from facebench.fit_data import GenerationFitData
    from facebench.protocol import load_protocol
    from facebench.registry import BASELINES

    protocol = load_protocol(SMOKE_PROTOCOLS[kind], profile="paper")
    entry = protocol.baselines[0]
    cls = as_baseline_spec(BASELINES.get(entry.name)).load()
    params = cls.Params.model_validate(entry.params)
    if image_size is not None:
        protocol = protocol.model_copy(update={"model": protocol.model.model_copy(update={"image_size": image_size})})
        depth = params.d_repeat_num
        while depth > 1 and image_size % 2**depth:
            depth -= 1
        params = params.model_copy(update={"d_repeat_num": depth})
    size, batch = protocol.model.image_size, batch_size or protocol.training.batch_size
    rng = np.random.default_rng(seed)
    n = steps * batch
    labels = pd.DataFrame({"age": rng.integers(10, 70, n)})
    for attribute in getattr(params, "attributes", ()):
        labels[attribute] = rng.random(n) < 0.5
    images = rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8)
    data = GenerationFitData(train_images=images, train_ages=labels["age"].to_numpy(float), val_images=images[:0],
                             val_ages=np.zeros(0), train_labels=labels, val_labels=labels.iloc[:0])
    loop = LoopConfig(epochs=1, batch_size=batch, seed=seed, lr=protocol.training.lr, device=device, amp=True,
                      progress=False, hflip=protocol.training.hflip)
    target = resolve_device(device)
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats(target)
    started = time.perf_counter()
    history = cls(protocol=protocol, params=params).fit(data, loop)
    if target.type == "cuda":
        torch.cuda.synchronize(target)
    seconds = time.perf_counter() - started
    log = dict(history.epochs[-1])
    bad = [k for k, v in log.items() if isinstance(v, float) and not np.isfinite(v)]
    if bad:
        raise RuntimeError(f"{kind} AMP smoke step: {', '.join(bad)} not finite")
    return {**log, "kind": kind, "device": str(target), "amp": target.type == "cuda", "image_size": size,
            "batch_size": batch, "steps": steps, "wall_seconds": round(seconds, 3), "images_per_s": round(n / seconds, 1),
            "peak_gib": round(torch.cuda.max_memory_allocated(target) / 2**30, 3) if target.type == "cuda" else None}
