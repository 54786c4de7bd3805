"""The shared training loop: one loop for every method.

The loop owns what every method needs and none should rewrite: device choice, AMP on CUDA, channels_last,
seeding, batching with augmentation, a checkpoint every epoch and resume from the last one, progress bars,
per-epoch logs, and data-parallel training under ``torchrun`` (below).

A method supplies its modules, its optimisers and one ``train_step``. The step receives a dict of batches
(``"source"`` always; ``"target"`` when the method asked for unlabelled target images) and a
:class:`StepContext` whose :meth:`StepContext.optimize` does zero-grad → scaled backward → step for one
named optimiser. That is enough for the hard cases: DANN steps a regressor optimiser (Adam) and an
adversary optimiser (SGD) in one step; MT-MIM runs five CLUB-estimator steps on its own optimiser before
each encoder step; GANs alternate critic and generator.

Determinism: the RNGs are re-seeded from (seed, epoch) at the start of every epoch, so an epoch's batches,
flips and dropout masks do not depend on what happened before it — a run resumed from the checkpoint of
epoch k ends with exactly the numbers of an uninterrupted run. That is also why no RNG state is saved.

Several processes (``torchrun``, inside :func:`facebench.distributed.session`): ``batch_size`` stays the global
batch. The epoch's global batches are the one-process ones (a pure function of (seed, epoch)); rank r takes the
r-th contiguous part of each (:func:`shard_of`), with the flips the one-process run draws for those images; parts
of unequal size (a batch size that does not divide among the ranks) weigh their loss by their share
(:attr:`StepContext.batch_weight`), so a mean over the batch's images comes out as one process's. The
parameters of each optimiser are one :class:`~torch.nn.parallel.DistributedDataParallel` replica
(:class:`GradientSync`), armed by :meth:`StepContext.optimize` for the optimisers it steps: DDP's reducer then
averages, bucket by bucket during that backward pass, the gradients that reach those parameters (unreached ones:
``find_unused_parameters``), so several optimisers, several backward passes per step and modules used in steps
that do not update them all work without a method knowing (a backward that steps nothing else is never synced,
which is what ``no_sync`` would buy). Because the averaging hangs on ``ctx.optimize`` and not on a module's
``forward``, methods may call any method of their modules (``forward_features``, a CLUB estimator's
``log_likelihood``). The contract: every backward pass whose gradients an optimiser steps goes through
``ctx.optimize``; every rank returns the same log keys. The loop also starts every rank from rank 0's weights,
re-seeds the global RNGs per rank (dropout masks differ between ranks; rank 0 draws what one process draws), gives
rank 0's buffers (BatchNorm running statistics) to all ranks at the end of every epoch, averages the epoch's logs
over the ranks, validates on every rank but logs rank 0's numbers, and lets rank 0 alone write checkpoints.
BatchNorm becomes :class:`~torch.nn.SyncBatchNorm` on CUDA (statistics of the global batch); on the CPU, where
torch has no SyncBatchNorm, each rank normalises with its own part's statistics.

Checkpoints hold tensors and plain data only (dicts, lists, tuples, numbers, strings: :func:`_check_plain` refuses
anything else before writing), so they load with ``torch.load(..., weights_only=True)``, which never unpickles a
Python object: a checkpoint planted in a run folder cannot run code. A checkpoint that does not load (truncated, not
a torch file, pickled objects) or that was written for another run is refused in one sentence naming the file and
``--restart`` (``LoopConfig.restart``), which deletes it and trains from scratch; it is never silently replaced.
"""

from __future__ import annotations

import contextlib
import pickle
import re
import shutil
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facebench.baselines.prefetch import prefetch
from facebench.distributed import barrier, broadcast_from_main, launched, rank_and_world
from facebench.errors import UserInputError, shorten
from facebench.io import atomic_write
from facebench.progress import console, make_progress, progress_enabled
from facebench.seeding import rng_stream, seed_for

#: Progress-bar status (running mean of the logs) every this many steps: each update reads tensor logs.
STATUS_EVERY = 25


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA if present, else Apple MPS, else CPU. Under torchrun CUDA is this rank's GPU (``LOCAL_RANK``),
    and ``auto`` never picks MPS (gloo cannot average its tensors)."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", _local_rank()) if launched()[1] > 1 else torch.device("cuda")
    if name != "auto":
        return torch.device(name)
    if launched()[1] == 1 and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _local_rank() -> int:
    import os

    return int(os.environ.get("LOCAL_RANK", 0))


def shard_of(size: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s contiguous part of a global batch of ``size`` images (numpy's ``array_split`` rule: the first
    ``size % world_size`` ranks take one more).

    >>> [shard_of(8, r, 2) for r in range(2)]
    [slice(0, 4, None), slice(4, 8, None)]
    >>> [(s.start, s.stop) for s in (shard_of(5, r, 3) for r in range(3))]
    [(0, 2), (2, 4), (4, 5)]
    """
    base, extra = divmod(size, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


@dataclass(frozen=True, kw_only=True)
class LoopConfig:
    """Every training setting a method gets: the one typed channel from ``protocol.training`` (and ``--seed``) to
    the methods, which never read the protocol's training section themselves. The defaults are the protocol's."""

    epochs: int
    batch_size: int
    seed: int
    optimizer: str = "adam"  # of the method's main network: "adam", "adamw", "rmsprop" or "sgd" (momentum 0.9)
    lr: float = 1e-3
    weight_decay: float = 0.0
    loss: str = "l1"  # the regression loss of the age methods: "l1" or "l2"
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    hflip: bool = True
    lr_schedule: str = "constant"  # or "cosine": cosine decay to 0 over the epochs, stepped per epoch; or "plateau"
    # "plateau" (seed 002 section 4.1: the lr "is divided by 10 when the loss does not decrease"): every optimiser's
    # lr times plateau_factor once plateau_metric, a key of the epoch's log (train_* or a method's val_*), has not
    # improved (mode "min": decreased; "max": increased) for more than plateau_patience epochs in a row.
    plateau_metric: str = "train_loss"
    plateau_mode: str = "min"
    plateau_patience: int = 0
    plateau_factor: float = 0.1
    checkpoint_dir: Path | None = None
    progress: bool = True
    fingerprint: str = ""  # what is being trained; a checkpoint of something else is never resumed
    restart: bool = False  # delete the checkpoint (`facebench run --restart`) and train from scratch
    cache_dir: Path | None = None  # where a method may keep data derived from images (`--cache-dir`); None: default


def make_optimizer(parameters, config: LoopConfig) -> torch.optim.Optimizer:
    """The optimiser of a method's main network, as ``config`` names it: "adam", "adamw", "rmsprop" (torch's
    defaults besides the rate) or "sgd" (momentum 0.9)."""
    optimizers = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop}
    if config.optimizer in optimizers:
        return optimizers[config.optimizer](parameters, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(parameters, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)


class ImageBatches:
    """Shuffled mini-batches over an in-memory uint8 image store and its labels.

    ``images`` is (N, 3, S, S) uint8 (a memory-mapped store is fine); ``labels`` maps names to (N,) arrays.
    The global batches are a pure function of (seed, epoch); with ``world_size`` processes rank r gets the r-th
    part of each (:func:`shard_of`).
    """

    def __init__(self, images: np.ndarray, labels: dict[str, np.ndarray] | None = None, *, drop_last: bool = True):
        self.images = images
        self.labels = labels or {}
        self.drop_last = drop_last
        for name, values in self.labels.items():
            if len(values) != len(images):
                raise ValueError(f"label {name!r} has {len(values)} values for {len(images)} images")

    def __len__(self) -> int:
        return len(self.images)

    def global_batches(self, *, batch_size: int, seed: int, epoch: int) -> Iterator[np.ndarray]:
        """The epoch's batches as index arrays, the same whatever the number of processes."""
        order = rng_stream(seed, epoch).permutation(len(self.images))
        stop = len(order) - len(order) % batch_size if self.drop_last and len(order) >= batch_size else len(order)
        for start in range(0, stop, batch_size):
            index = np.sort(order[start : start + batch_size])
            yield index[rng_stream(seed, epoch, start).permutation(len(index))]

    def shards(self, *, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1
               ) -> Iterator[tuple[dict[str, torch.Tensor], slice, int]]:
        """(this rank's part of each global batch, where that part lies in the global batch, the global batch's
        size). A global batch smaller than the number of processes would leave a rank without images: refused."""
        for index in self.global_batches(batch_size=batch_size, seed=seed, epoch=epoch):
            if len(index) < world_size:
                raise UserInputError(f"A training batch of {len(index)} images cannot be shared by the {world_size} "
                                     "torchrun processes: use more training images or fewer processes.")
            part = shard_of(len(index), rank, world_size)
            mine = index[part]
            batch = {"image": torch.from_numpy(np.ascontiguousarray(self.images[mine]))}
            for name, values in self.labels.items():
                batch[name] = torch.as_tensor(values[mine])
            yield batch, part, len(index)

    def epoch(self, *, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1
              ) -> Iterator[dict[str, torch.Tensor]]:
        """This rank's part of each of the epoch's batches (all of each batch for one process)."""
        for batch, _, _ in self.shards(batch_size=batch_size, seed=seed, epoch=epoch, rank=rank,
                                       world_size=world_size):
            yield batch

    def n_batches(self, batch_size: int) -> int:
        """Global batches per epoch (every rank takes a part of each, so every rank makes as many steps)."""
        n = len(self.images)
        return n // batch_size if self.drop_last and n >= batch_size else -(-n // batch_size)


class GradientSync(nn.Module):
    """The parameters one optimiser steps, as a module for :class:`~torch.nn.parallel.DistributedDataParallel`.

    Its ``forward`` passes the loss through unchanged: calling the DDP replica on the loss right before the
    backward pass (:meth:`StepContext.optimize`) is what arms DDP's reducer, with ``find_unused_parameters``
    tracing from that loss which of these parameters it reaches. The parameters are the method's own (shared,
    not copied), so the averaged gradients land where the optimiser reads them.
    """

    def __init__(self, parameters: list[nn.Parameter]) -> None:
        super().__init__()
        self.shared = nn.ParameterList(parameters)

    def forward(self, loss: torch.Tensor) -> torch.Tensor:
        return loss


def _gradient_replicas(optimizers: dict[str, torch.optim.Optimizer], device: torch.device
                       ) -> dict[str, list[nn.Module]]:
    """For each optimiser, the DDP replicas holding its trainable parameters. A parameter belongs to one replica
    (that of the first optimiser holding it): an optimiser sharing parameters with an earlier one arms both."""
    from torch.nn.parallel import DistributedDataParallel

    owner: dict[int, str] = {}
    replicas: dict[str, nn.Module] = {}
    for name, optimizer in optimizers.items():
        own = []
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.requires_grad and id(p) not in owner:
                    owner[id(p)] = name
                    own.append(p)
        if own:
            replicas[name] = DistributedDataParallel(
                GradientSync(own), device_ids=[device.index if device.index is not None else torch.cuda.current_device()]
                if device.type == "cuda" else None, find_unused_parameters=True)
    arms = {}
    for name, optimizer in optimizers.items():
        owners = dict.fromkeys(owner[id(p)] for g in optimizer.param_groups for p in g["params"] if id(p) in owner)
        arms[name] = [replicas[o] for o in owners]
    return arms


class StepContext:
    """What a method's ``train_step`` may use: the device, autocast, and per-optimiser stepping."""

    def __init__(self, *, device: torch.device, amp: bool, optimizers: dict[str, torch.optim.Optimizer],
                 scaler: torch.amp.GradScaler, seed: int = 0, rank: int = 0, world_size: int = 1,
                 replicas: dict[str, list[nn.Module]] | None = None) -> None:
        self.device = device
        self.amp = amp and device.type == "cuda"
        self.optimizers = optimizers
        self.scaler = scaler
        self.seed = seed
        #: This process's place under torchrun (0 of 1 otherwise): a step sees rank's part of the global batch.
        self.rank = rank
        self.world_size = world_size
        self.replicas = replicas or {}
        self.epoch = 0
        self.step = 0
        self.total_steps = 0
        #: This rank's share of the step's global source batch times the number of ranks: 1 when the parts are
        #: equal (always on one process). ``optimize`` scales the loss by it, so that DDP's plain average of the
        #: ranks' gradients weighs every image alike when the parts are not equal (a batch size that does not
        #: divide among the ranks): exact for a loss that is a mean over the batch's source images.
        self.batch_weight = 1.0

    def seed_for(self, *parts: object) -> int:
        """A seed for a method's own random generator: ``seed_for(loop seed, *parts)``, with the rank appended on
        ranks other than 0 so that the ranks draw differently (rank 0 draws what one process draws)."""
        return seed_for(self.seed, *parts) if self.rank == 0 else seed_for(self.seed, *parts, "rank", self.rank)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp:
            return torch.autocast(device_type=self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    def optimize(self, names: str | tuple[str, ...], loss: torch.Tensor, *, retain_graph: bool = False) -> None:
        """Zero the grads of the named optimiser(s), backpropagate ``loss`` once (scaled under AMP), step each.

        Several names share one backward pass: DANN steps the regressor (Adam) and the adversary (SGD)
        on one loss whose adversarial term reaches the features through a gradient reversal layer.
        Under torchrun the gradients of the named optimisers' parameters are averaged over the ranks during the
        backward pass (their DDP replicas are armed here), before the (scaled) step: every rank steps alike.
        """
        names = (names,) if isinstance(names, str) else tuple(names)
        optimizers = [self.optimizers[n] for n in names]
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        if self.batch_weight != 1.0:
            loss = loss * self.batch_weight
        scaled = self.scaler.scale(loss)
        for replica in dict.fromkeys(r for n in names for r in self.replicas.get(n, ())):
            scaled = replica(scaled)  # the identity, arming DDP's gradient averaging for this backward pass
        scaled.backward(retain_graph=retain_graph)
        for optimizer in optimizers:
            self.scaler.step(optimizer)
        self.scaler.update()

    @property
    def progress(self) -> float:
        """Training progress p in [0, 1] (for warm-start schedules such as DANN's λ_p)."""
        return min(1.0, self.step / max(self.total_steps, 1))


class TrainableMethod(ABC):
    """The part of a method the loop cannot know: its modules, optimisers and one training step.

    Under torchrun (module docstring) a method needs no code of its own, on two conditions: every backward pass
    whose gradients an optimiser steps goes through :meth:`StepContext.optimize`, and ``train_step`` returns the
    same log keys on every rank. A step sees its rank's part of the global batch, so a loss that couples the images
    of a batch (MMD, graph smoothing, CLUB's pairs, pairs formed within the batch) is computed per part.
    """

    #: Names of the extra batch streams the step needs besides ``"source"`` (e.g. ``("target",)``).
    streams: tuple[str, ...] = ()

    @abstractmethod
    def modules(self) -> nn.ModuleDict: ...

    @abstractmethod
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]: ...

    @abstractmethod
    def train_step(self, batches: dict[str, dict[str, torch.Tensor]], ctx: StepContext
                   ) -> dict[str, float | torch.Tensor]:
        """One optimisation step; returns scalar logs (e.g. ``{"loss": loss.detach()}``).

        Return detached 0-d tensors rather than ``.item()`` floats: the loop sums them on the device and reads
        them once per epoch, so logging never stalls the GPU (scripts/gpu_check.py measures this)."""

    def end_of_epoch(self, ctx: StepContext) -> dict[str, float]:
        """Validation after each epoch; returns scalar logs (e.g. ``{"val_mae": 6.2}``)."""
        return {}


@dataclass
class TrainHistory:
    epochs: list[dict[str, float]] = field(default_factory=list)
    resumed_from_epoch: int | None = None
    device: str = "cpu"


def _prepare(batch: dict[str, torch.Tensor], *, device: torch.device, config: LoopConfig,
             generator: torch.Generator, part: slice | None = None, size: int | None = None) -> dict[str, torch.Tensor]:
    """uint8 images → float [0, 1] on the device (channels_last on CUDA), random horizontal flips. A float
    "image" store (a frozen backbone's cached features, seed 001's tuned classifier) passes unchanged.

    ``part`` of a global batch of ``size`` (under torchrun): the flips are drawn for the whole global batch, as one
    process draws them, and this part's are used, so every image is flipped as in a one-process run."""
    out = {}
    for name, value in batch.items():
        if name == "image" and value.dtype == torch.uint8:
            x = value.to(device, non_blocking=True).float().div_(255.0)
            if config.hflip:
                draws = torch.rand(x.shape[0] if size is None else size, generator=generator)
                flip = (draws[part if part is not None else slice(None)] < 0.5).to(device)
                x[flip] = x[flip].flip(-1)
            if config.channels_last and device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            out[name] = x
        else:
            out[name] = value.to(device, non_blocking=True)
    return out


def _check_layout(device: torch.device, world: int) -> None:
    """Refuse (one sentence) a device DDP does not run on here."""
    if world > 1 and device.type not in ("cpu", "cuda"):
        raise UserInputError(f"torchrun runs train on CUDA or the CPU, not {device.type}: set training.device.")


def _broadcast(tensors: Iterator[torch.Tensor]) -> None:
    """Rank 0's values into these tensors on every rank, in place (a channels_last one through a dense copy)."""
    import torch.distributed as dist

    with torch.no_grad():
        for tensor in tensors:
            if tensor.is_contiguous():
                dist.broadcast(tensor, src=0)
            else:
                dense = tensor.contiguous()
                dist.broadcast(dense, src=0)
                tensor.copy_(dense)


def _sync_state(modules: nn.Module) -> None:
    """Every rank takes rank 0's parameters and buffers."""
    _broadcast(iter(modules.state_dict().values()))


def _sync_buffers(modules: nn.Module) -> None:
    """Every rank takes rank 0's buffers (BatchNorm running statistics, which each rank updates from its own part
    on the CPU), as DDP's ``broadcast_buffers`` leaves them: rank 0's."""
    _broadcast(modules.buffers())


def _mean_over_ranks(sums: dict[str, float | torch.Tensor], device: torch.device, world: int
                     ) -> dict[str, float | torch.Tensor]:
    """The epoch's summed step logs averaged over the ranks (each rank's are means over its part of each batch:
    with equal parts, their average is the one-process mean). Every rank must log the same keys."""
    import torch.distributed as dist

    keys = sorted(sums)
    everyone: list[list[str] | None] = [None] * world
    dist.all_gather_object(everyone, keys)
    if any(other != keys for other in everyone):
        raise RuntimeError(f"the ranks' train_step logs differ in their keys ({everyone}): every rank must return "
                           "the same logs")
    if not keys:
        return sums
    stacked = torch.stack([torch.as_tensor(sums[k], dtype=torch.float64, device=device) for k in keys])
    dist.all_reduce(stacked)
    means = dict(zip(keys, (stacked / world).unbind(), strict=True))
    return {key: means[key] for key in sums}  # in the order the method logs them


def fit(method: TrainableMethod, data: dict[str, ImageBatches], config: LoopConfig) -> TrainHistory:
    """Train ``method`` for ``config.epochs`` epochs over ``data["source"]`` (and its extra streams); under
    torchrun, on every rank of :func:`facebench.distributed.session` at once (module docstring)."""
    device = resolve_device(config.device)
    rank, world = rank_and_world()
    if launched()[1] > 1 and world == 1:
        raise RuntimeError("fit() under torchrun needs the process group: call it inside facebench.distributed.session()")
    _check_layout(device, world)
    modules = method.modules()
    if world > 1 and device.type == "cuda":  # statistics of the global batch (torch has no SyncBatchNorm on the CPU)
        modules = nn.SyncBatchNorm.convert_sync_batchnorm(modules)  # in place below the top level: the method's own
    modules = modules.to(device)
    if config.channels_last and device.type == "cuda":
        modules = modules.to(memory_format=torch.channels_last)
    optimizers = method.make_optimizers()
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp and device.type == "cuda")
    schedulers = {name: _scheduler(optimizer, config) for name, optimizer in optimizers.items()}
    history = TrainHistory(device=str(device))
    checkpoint = config.checkpoint_dir / "last.pt" if config.checkpoint_dir else None

    start_epoch = 0
    if checkpoint is not None and config.restart:
        if rank == 0:
            _delete_checkpoint(checkpoint)
    elif checkpoint is not None and (checkpoint.exists() or checkpoint.is_symlink()):
        state = _load_checkpoint(checkpoint, device=device, fingerprint=config.fingerprint)
        try:
            modules.load_state_dict(state["modules"])
            for name, optimizer in optimizers.items():
                optimizer.load_state_dict(state["optimizers"][name])
            scaler.load_state_dict(state["scaler"])
            for name, scheduler in schedulers.items():
                scheduler.load_state_dict(state["schedulers"][name])
            history.epochs = list(state["history"])
            start_epoch = int(state["epoch"]) + 1
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as error:
            raise _refusal(checkpoint, f"it does not fit this run's model and optimisers "
                                       f"({shorten(_first_line(error), 80)})") from None
        history.resumed_from_epoch = start_epoch
        console.print(f"resuming from the checkpoint of epoch {start_epoch} of {config.epochs} ({checkpoint})")
    replicas: dict[str, list[nn.Module]] = {}
    if world > 1:
        if broadcast_from_main(start_epoch) != start_epoch:
            raise RuntimeError(f"rank {rank} found another checkpoint than rank 0 ({checkpoint}): the ranks must see "
                               "one file system")
        _sync_state(modules)
        replicas = _gradient_replicas(optimizers, device)
    ctx = StepContext(device=device, amp=config.amp, optimizers=optimizers, scaler=scaler, seed=config.seed,
                      rank=rank, world_size=world, replicas=replicas)

    source = data["source"]
    n_batches = source.n_batches(config.batch_size)
    ctx.total_steps = n_batches * config.epochs
    show = progress_enabled(config.progress) and rank == 0
    with make_progress() if show else contextlib.nullcontext() as bar:
        for epoch in range(start_epoch, config.epochs):
            ctx.epoch = epoch
            ctx.step = epoch * n_batches  # a pure function of the epoch, so schedules survive a resume
            # Rank 0 draws what one process draws; the other ranks their own dropout masks.
            seed_everything(ctx.seed_for("epoch", epoch))
            generator = torch.Generator().manual_seed(seed_for(config.seed, "flip", epoch))  # the same on every rank
            modules.train()
            started = time.perf_counter()
            # Batches are made one step ahead in a thread, pinned on CUDA (facebench.baselines.prefetch).
            pin = device.type == "cuda"
            streams = {name: prefetch(_cycle(data[name], config, epoch, rank, world), pin=pin)
                       for name in method.streams}
            task = bar.add_task(f"epoch {epoch + 1}/{config.epochs}", total=n_batches, status="") if show else None
            sums: dict[str, float | torch.Tensor] = {}
            shards = prefetch(source.shards(batch_size=config.batch_size, seed=config.seed, epoch=epoch, rank=rank,
                                            world_size=world), pin=pin)
            for i, (batch, part, size) in enumerate(shards):
                batches = {"source": _prepare(batch, device=device, config=config, generator=generator, part=part,
                                              size=size)}
                for name, stream in streams.items():
                    extra, extra_part, extra_size = next(stream)
                    batches[name] = _prepare(extra, device=device, config=config, generator=generator,
                                             part=extra_part, size=extra_size)
                if world > 1:
                    ctx.batch_weight = (part.stop - part.start) * world / size
                logs = method.train_step(batches, ctx)
                ctx.step += 1
                for key, value in logs.items():
                    # A tensor log is summed where it lives (in float64, so the sum equals the sum of its
                    # floats): reading it every step would stall the GPU queue on a host sync.
                    value = value.detach().double() if isinstance(value, torch.Tensor) else float(value)
                    if ctx.batch_weight != 1.0:  # a mean over a larger or smaller part than the others'
                        value = value * ctx.batch_weight
                    sums[key] = sums.get(key, 0.0) + value
                if show and (i % STATUS_EVERY == 0 or i + 1 == n_batches):
                    status = " ".join(f"{k} {float(v) / (i + 1):.3f}" for k, v in sums.items())
                    bar.update(task, completed=i + 1, status=status)
                elif show:
                    bar.update(task, advance=1)
            if show:
                bar.remove_task(task)
            if world > 1:
                sums = _mean_over_ranks(sums, device, world)
                _sync_buffers(modules)  # every rank validates (and rank 0 saves) rank 0's running statistics
            record = {"epoch": epoch + 1, **{f"train_{k}": float(v) / max(n_batches, 1) for k, v in sums.items()},
                      "lr": optimizers[next(iter(optimizers))].param_groups[0]["lr"]}
            if config.lr_schedule != "plateau":
                for scheduler in schedulers.values():
                    scheduler.step()
            modules.eval()
            with torch.no_grad():
                # plain floats: a numpy or tensor scalar would not load back under weights_only=True
                record.update({key: _plain_number(value) for key, value in method.end_of_epoch(ctx).items()})
            record["seconds"] = round(time.perf_counter() - started, 3)
            # Every rank validated the same weights; rank 0's numbers are the record, so every rank's plateau
            # schedule steps on the same quantity.
            record = broadcast_from_main(record)
            if config.lr_schedule == "plateau":  # on this epoch's logged quantity, validation included
                quantity = _plateau_quantity(record, config)
                for scheduler in schedulers.values():
                    scheduler.step(quantity)
            history.epochs.append(record)
            console.print("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
            if checkpoint is not None and rank == 0:
                state = {
                    "epoch": epoch, "fingerprint": config.fingerprint, "modules": modules.state_dict(),
                    "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
                    "scaler": scaler.state_dict(), "history": history.epochs,
                    "schedulers": {n: s.state_dict() for n, s in schedulers.items()},
                }
                _check_plain(state)
                with atomic_write(checkpoint, "wb") as handle:
                    torch.save(state, handle)
            if checkpoint is not None:
                barrier()  # no rank starts the next epoch (or a resume) before this epoch's checkpoint exists
    modules.eval()
    ctx.replicas = {}  # drops the DDP replicas (and their gradient hooks) with the context
    return history


#: What a checkpoint may hold besides tensors: exactly the types ``torch.load(weights_only=True)`` rebuilds without
#: importing anything (``OrderedDict`` is what ``state_dict()`` returns).
_PLAIN_TYPES = (dict, OrderedDict, list, tuple, str, bytes, int, float, bool, type(None), torch.Size)


def _check_plain(value: object, where: str = "state") -> None:
    """Refuse (``TypeError``: a bug in a method, not the user's input) a checkpoint part that ``weights_only=True``
    could not load back: a numpy scalar or array, a custom class. Checked before writing, so the failure is here
    and not at the resume of a killed run."""
    if isinstance(value, torch.Tensor):
        return
    if type(value) not in _PLAIN_TYPES:
        raise TypeError(f"checkpoint {where} is a {type(value).__module__}.{type(value).__qualname__}; a checkpoint "
                        "holds tensors and plain Python data only (it is loaded with weights_only=True)")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, f"{where} key")
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")


def _plain_number(value: object) -> object:
    """A numpy or 0-d tensor scalar as the Python number it holds; anything else unchanged."""
    if isinstance(value, np.generic) or (isinstance(value, torch.Tensor) and value.ndim == 0):
        return value.item()
    return value


def _refusal(checkpoint: Path, why: str) -> UserInputError:
    return UserInputError(f"Checkpoint {checkpoint} cannot be resumed: {why}; run the same command with --restart "
                          "to delete it and train from scratch.")


def _load_checkpoint(checkpoint: Path, *, device: torch.device, fingerprint: str) -> dict:
    """The checkpoint's state, loaded with ``weights_only=True`` (no Python object is ever unpickled), or the
    one-sentence refusal: it does not load, it is not a checkpoint of this loop, or of another run."""
    if not checkpoint.is_file():
        raise _refusal(checkpoint, "it is not a file")
    try:
        state = torch.load(checkpoint, map_location=device, weights_only=True)
    except Exception as error:  # noqa: BLE001 - truncated, not a zip, unreadable, refused: one sentence each
        text = str(error)
        named = re.search(r"GLOBAL (\S+)", text) if isinstance(error, pickle.UnpicklingError) else None
        if named:  # weights_only refused to import a callable: a pickled object, maybe a planted one
            raise _refusal(checkpoint, f"it holds pickled Python objects ({shorten(named.group(1), 60)}), which are "
                                       "never loaded") from None
        refused = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
        detail = refused.group(1) if refused else _first_line(error)
        raise _refusal(checkpoint, f"it is truncated or not a torch checkpoint ({shorten(detail, 80)})") from None
    if not isinstance(state, dict) or not {"epoch", "fingerprint", "modules"} <= set(state):
        raise _refusal(checkpoint, "it is not a checkpoint of facebench's training loop")
    if state["fingerprint"] != fingerprint:
        raise _refusal(checkpoint, f"it was written for run {shorten(state['fingerprint'], 40)}, not this run "
                                   f"({shorten(fingerprint, 40)})")
    return state


def _first_line(error: BaseException) -> str:
    """An exception as one line: its type and the first line of its message (torch's run to paragraphs)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _delete_checkpoint(checkpoint: Path) -> None:
    """``--restart``: remove the checkpoint (a file, a link, or whatever else sits at its name)."""
    if checkpoint.is_dir() and not checkpoint.is_symlink():
        shutil.rmtree(checkpoint)
    elif checkpoint.exists() or checkpoint.is_symlink():
        checkpoint.unlink()
    else:
        return
    console.print(f"deleted {checkpoint}: training from scratch (--restart)")


def _scheduler(optimizer: torch.optim.Optimizer, config: LoopConfig) -> torch.optim.lr_scheduler.LRScheduler:
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.lr_schedule == "plateau":
        # threshold 0: any epoch that does not strictly improve counts as a bad epoch ("does not decrease")
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=config.plateau_mode, factor=config.plateau_factor, patience=config.plateau_patience,
            threshold=0.0, threshold_mode="abs")
    if config.lr_schedule != "constant":
        raise ValueError(f"unknown lr_schedule {config.lr_schedule!r}: 'constant', 'cosine' or 'plateau'")
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def _plateau_quantity(record: dict[str, float], config: LoopConfig) -> float:
    """The epoch's value of ``config.plateau_metric``. A missing key is the protocol's error (one sentence, exit
    2), not a silent fallback to the train loss: a method without that validation log (e.g. no validation
    images) must be given another metric. It is raised after the first epoch, before any checkpoint is written."""
    if config.plateau_metric not in record:
        logged = ", ".join(k for k in record if k not in ("epoch", "lr"))
        raise UserInputError(f"key 'training.plateau_metric': lr_schedule 'plateau' steps on "
                             f"'{config.plateau_metric[:60]}', which this method does not log (its epoch log has: "
                             f"{logged}); set training.plateau_metric to one of these.")
    return float(record[config.plateau_metric])


def _cycle(batches: ImageBatches, config: LoopConfig, epoch: int, rank: int = 0, world_size: int = 1
           ) -> Iterator[tuple[dict[str, torch.Tensor], slice, int]]:
    """Endless batches of an auxiliary stream (unlabelled target images), reshuffled on each pass: this rank's
    part of each global batch, as :meth:`ImageBatches.shards` gives it."""
    lap = 0
    while True:
        yield from batches.shards(batch_size=config.batch_size, seed=seed_for(config.seed, "stream", epoch), epoch=lap,
                                  rank=rank, world_size=world_size)
        lap += 1


@torch.no_grad()
def predict_batches(model: nn.Module, images: np.ndarray, *, device: torch.device, batch_size: int = 256,
                    amp: bool = True, channels_last: bool = True, pairs: np.ndarray | None = None,
                    ) -> np.ndarray | tuple[np.ndarray | None, ...]:
    """Run ``model`` over a uint8 image store in batches (eval mode, autocast on CUDA); float64 outputs.

    The one batched inference loop (baselines, the pairwise model, submitted models). With ``pairs`` (m, k) of
    indices into ``images``, each call gets k image batches, ``model(images[pairs[:, 0]], …)``, over a batch of
    rows of ``pairs``. A model that returns a tuple of tensors gets a tuple of arrays back (None where it
    returned None); an empty input gives ``np.empty((0,))``.
    """
    model.eval()
    outputs = []
    use_amp = amp and device.type == "cuda"

    def prepare(store: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(store)).to(device)
        if x.dtype != torch.uint8:  # a float store of features (cached by a frozen backbone) is used as it is
            return x.float()
        x = x.float().div_(255.0)
        if channels_last and device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    n = len(images) if pairs is None else len(pairs)
    for start in range(0, n, batch_size):
        if pairs is None:
            inputs = [prepare(images[start : start + batch_size])]
        else:
            rows = pairs[start : start + batch_size]
            inputs = [prepare(images[rows[:, k]]) for k in range(rows.shape[1])]
        with torch.autocast(device_type=device.type, dtype=torch.float16) if use_amp else contextlib.nullcontext():
            output = model(*inputs)
        if isinstance(output, tuple):
            outputs.append(tuple(None if part is None else part.float().cpu().numpy() for part in output))
        else:
            outputs.append(output.float().cpu().numpy())
    if not outputs:
        return np.empty((0,))
    if isinstance(outputs[0], tuple):  # one array per output, over the batches
        per_output = zip(*outputs, strict=True)
        return tuple(None if parts[0] is None else np.concatenate(parts).astype(np.float64) for parts in per_output)
    return np.concatenate(outputs).astype(np.float64)
