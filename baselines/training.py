"""The shared training loop: one loop for every method.

The loop owns what every method needs and none should rewrite: device choice, AMP on CUDA, channels_last,
seeding, batching with augmentation, a checkpoint every epoch and resume from the last one, progress bars,
per-epoch logs, and rank-0-only writing under ``torchrun`` (batches are sharded by rank).

A method supplies its modules, its optimisers and one ``train_step``. The step receives a dict of batches
(``"source"`` always; ``"target"`` when the method asked for unlabelled target images) and a
:class:`StepContext` whose :meth:`StepContext.optimize` does zero-grad → scaled backward → step for one
named optimiser. That is enough for the hard cases: DANN steps a regressor optimiser (Adam) and an
adversary optimiser (SGD) in one step; MT-MIM runs five CLUB-estimator steps on its own optimiser before
each encoder step; GANs alternate critic and generator.

Determinism: the RNGs are re-seeded from (seed, epoch) at the start of every epoch, so an epoch's batches,
flips and dropout masks do not depend on what happened before it — a run resumed from the checkpoint of
epoch k ends with exactly the numbers of an uninterrupted run. That is also why no RNG state is saved.

Checkpoints hold tensors and plain data only (dicts, lists, tuples, numbers, strings: :func:`_check_plain` refuses
anything else before writing), so they load with ``torch.load(..., weights_only=True)``, which never unpickles a
Python object: a checkpoint planted in a run folder cannot run code. A checkpoint that does not load (truncated, not
a torch file, pickled objects) or that was written for another run is refused in one sentence naming the file and
``--restart`` (``LoopConfig.restart``), which deletes it and trains from scratch; it is never silently replaced.
"""

from __future__ import annotations

import contextlib
import os
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
from facebench.errors import UserInputError, shorten
from facebench.io import atomic_write
from facebench.progress import console, make_progress, progress_enabled
from facebench.seeding import rng_stream, seed_for

#: Progress-bar status (running mean of the logs) every this many steps: each update reads tensor logs.
STATUS_EVERY = 25


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA if present, else Apple MPS, else CPU."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) from the torchrun environment; (0, 1) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


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
    Under torchrun each rank takes every ``world``-th sample of the epoch's permutation.
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

    def epoch(self, *, batch_size: int, seed: int, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        rank, world = distributed_rank()
        order = rng_stream(seed, epoch).permutation(len(self.images))[rank::world]
        stop = len(order) - len(order) % batch_size if self.drop_last and len(order) >= batch_size else len(order)
        for start in range(0, stop, batch_size):
            index = np.sort(order[start : start + batch_size])  # sorted reads are faster on a memmap
            index = index[rng_stream(seed, epoch, start).permutation(len(index))]
            batch = {"image": torch.from_numpy(np.ascontiguousarray(self.images[index]))}
            for name, values in self.labels.items():
                batch[name] = torch.as_tensor(values[index])
            yield batch

    def n_batches(self, batch_size: int) -> int:
        _, world = distributed_rank()
        n = -(-len(self.images) // world)
        return n // batch_size if self.drop_last and n >= batch_size else -(-n // batch_size)


class StepContext:
    """What a method's ``train_step`` may use: the device, autocast, and per-optimiser stepping."""

    def __init__(self, *, device: torch.device, amp: bool, optimizers: dict[str, torch.optim.Optimizer],
                 scaler: torch.amp.GradScaler) -> None:
        self.device = device
        self.amp = amp and device.type == "cuda"
        self.optimizers = optimizers
        self.scaler = scaler
        self.epoch = 0
        self.step = 0
        self.total_steps = 0

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp:
            return torch.autocast(device_type=self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    def optimize(self, names: str | tuple[str, ...], loss: torch.Tensor, *, retain_graph: bool = False) -> None:
        """Zero the grads of the named optimiser(s), backpropagate ``loss`` once (scaled under AMP), step each.

        Several names share one backward pass: DANN steps the regressor (Adam) and the adversary (SGD)
        on one loss whose adversarial term reaches the features through a gradient reversal layer.
        """
        optimizers = [self.optimizers[n] for n in ((names,) if isinstance(names, str) else names)]
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward(retain_graph=retain_graph)
        for optimizer in optimizers:
            self.scaler.step(optimizer)
        self.scaler.update()

    @property
    def progress(self) -> float:
        """Training progress p in [0, 1] (for warm-start schedules such as DANN's λ_p)."""
        return min(1.0, self.step / max(self.total_steps, 1))


class TrainableMethod(ABC):
    """The part of a method the loop cannot know: its modules, optimisers and one training step."""

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
             generator: torch.Generator) -> dict[str, torch.Tensor]:
    """uint8 images → float [0, 1] on the device (channels_last on CUDA), random horizontal flips. A float
    "image" store (a frozen backbone's cached features, seed 001's tuned classifier) passes unchanged."""
    out = {}
    for name, value in batch.items():
        if name == "image" and value.dtype == torch.uint8:
            x = value.to(device, non_blocking=True).float().div_(255.0)
            if config.hflip:
                flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(device)
                x[flip] = x[flip].flip(-1)
            if config.channels_last and device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            out[name] = x
        else:
            out[name] = value.to(device, non_blocking=True)
    return out


def fit(method: TrainableMethod, data: dict[str, ImageBatches], config: LoopConfig) -> TrainHistory:
    """Train ``method`` for ``config.epochs`` epochs over ``data["source"]`` (and its extra streams)."""
    device = resolve_device(config.device)
    rank, _ = distributed_rank()
    modules = method.modules().to(device)
    if config.channels_last and device.type == "cuda":
        modules = modules.to(memory_format=torch.channels_last)
    optimizers = method.make_optimizers()
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp and device.type == "cuda")
    schedulers = {name: _scheduler(optimizer, config) for name, optimizer in optimizers.items()}
    ctx = StepContext(device=device, amp=config.amp, optimizers=optimizers, scaler=scaler)
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

    source = data["source"]
    n_batches = source.n_batches(config.batch_size)
    ctx.total_steps = n_batches * config.epochs
    show = progress_enabled(config.progress)
    with make_progress() if show else contextlib.nullcontext() as bar:
        for epoch in range(start_epoch, config.epochs):
            ctx.epoch = epoch
            ctx.step = epoch * n_batches  # a pure function of the epoch, so schedules survive a resume
            seed_everything(seed_for(config.seed, "epoch", epoch))
            generator = torch.Generator().manual_seed(seed_for(config.seed, "flip", epoch))
            modules.train()
            started = time.perf_counter()
            # Batches are made one step ahead in a thread, pinned on CUDA (facebench.baselines.prefetch).
            pin = device.type == "cuda"
            streams = {name: prefetch(_cycle(data[name], config, epoch), pin=pin) for name in method.streams}
            task = bar.add_task(f"epoch {epoch + 1}/{config.epochs}", total=n_batches, status="") if show else None
            sums: dict[str, float | torch.Tensor] = {}
            source_batches = prefetch(source.epoch(batch_size=config.batch_size, seed=config.seed, epoch=epoch),
                                      pin=pin)
            for i, batch in enumerate(source_batches):
                batches = {"source": _prepare(batch, device=device, config=config, generator=generator)}
                for name, stream in streams.items():
                    batches[name] = _prepare(next(stream), device=device, config=config, generator=generator)
                logs = method.train_step(batches, ctx)
                ctx.step += 1
                for key, value in logs.items():
                    # A tensor log is summed where it lives (in float64, so the sum equals the sum of its
                    # floats): reading it every step would stall the GPU queue on a host sync.
                    value = value.detach().double() if isinstance(value, torch.Tensor) else float(value)
                    sums[key] = sums.get(key, 0.0) + value
                if show and (i % STATUS_EVERY == 0 or i + 1 == n_batches):
                    status = " ".join(f"{k} {float(v) / (i + 1):.3f}" for k, v in sums.items())
                    bar.update(task, completed=i + 1, status=status)
                elif show:
                    bar.update(task, advance=1)
            if show:
                bar.remove_task(task)
            record = {"epoch": epoch + 1, **{f"train_{k}": float(v) / max(n_batches, 1) for k, v in sums.items()},
                      "lr": optimizers[next(iter(optimizers))].param_groups[0]["lr"]}
            if config.lr_schedule != "plateau":
                for scheduler in schedulers.values():
                    scheduler.step()
            modules.eval()
            with torch.no_grad():
                # plain floats: a numpy or tensor scalar would not load back under weights_only=True
                record.update({key: _plain_number(value) for key, value in method.end_of_epoch(ctx).items()})
            if config.lr_schedule == "plateau":  # on this epoch's logged quantity, validation included
                quantity = _plateau_quantity(record, config)
                for scheduler in schedulers.values():
                    scheduler.step(quantity)
            record["seconds"] = round(time.perf_counter() - started, 3)
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
    modules.eval()
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


def _cycle(batches: ImageBatches, config: LoopConfig, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
    """Endless batches of an auxiliary stream (unlabelled target images), reshuffled on each pass."""
    lap = 0
    while True:
        yield from batches.epoch(batch_size=config.batch_size, seed=seed_for(config.seed, "stream", epoch), epoch=lap)
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
