"""One run on several processes: torchrun's environment, the process group, and who writes.

``torchrun --nproc-per-node N -m facebench run ...`` starts N copies of facebench. Each reads its place from the
environment torchrun sets (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``);
:func:`session` joins them into one process group for the run (gloo on the CPU; on CUDA nccl for tensors on the
GPU and gloo for the small messages between processes), gives each its own GPU, and tears the group down at the
end. Inside a session:

- every rank trains (the shared loop averages gradients over the ranks: :func:`facebench.baselines.training.fit`);
- only rank 0 writes anything: results, predictions, reports, checkpoints and caches. The other ranks are made
  unable to write (:func:`facebench.io.forbid_writes`: a write raises ``PermissionError``, which caches treat as a
  read-only cache), take no run-folder lock and print nothing but errors;
- work that fills a cache is done by rank 0 first, then by the others, who find it filled (:func:`main_first`).

Outside torchrun (no ``WORLD_SIZE``, or 1) every function here is a no-op: rank 0 of 1.

>>> with session():  # a plain process: nothing to join
...     rank_and_world(), is_main()
((0, 1), True)
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from typing import Any, TypeVar

__all__ = ["COLLECTIVE_TIMEOUT", "barrier", "broadcast_from_main", "is_main", "launched", "main_first", "main_only",
           "rank_and_world", "session"]

T = TypeVar("T")

#: How long a rank waits for the others in one collective call. Long: while rank 0 alone synthesises or reads the
#: data, builds the image stores, predicts and scores, the other ranks wait in a barrier or a broadcast.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=2)


def launched() -> tuple[int, int]:
    """(rank, world size) as torchrun set them in the environment; (0, 1) for a plain process. Torch-free."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _group_ready() -> bool:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return dist.is_available() and dist.is_initialized()


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the running process group; (0, 1) without one."""
    if not _group_ready():
        return 0, 1
    import torch.distributed as dist

    return dist.get_rank(), dist.get_world_size()


def is_main() -> bool:
    """Whether this process is the one that writes: rank 0, or a plain process."""
    return rank_and_world()[0] == 0


def barrier() -> None:
    """Wait until every rank gets here (nothing without a process group)."""
    if _group_ready():
        import torch.distributed as dist

        dist.barrier()


def broadcast_from_main(value: T) -> T:
    """Rank 0's ``value`` on every rank (a small Python object: a decision, a log record)."""
    if not _group_ready():
        return value
    import torch.distributed as dist

    box: list[Any] = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (it fills the caches: synthetic data, image hashes, image stores); the other
    ranks wait, then run the same block and find the caches filled."""
    rank, world = rank_and_world()
    if world > 1 and rank != 0:
        barrier()
    yield
    if world > 1 and rank == 0:
        barrier()


@contextlib.contextmanager
def main_only(context: contextlib.AbstractContextManager) -> Iterator[None]:
    """``context`` (a run-folder lock: the ranks of one run are one writer) held by rank 0 alone for the block;
    the other ranks enter the block only once rank 0 holds it (not while another process still writes there)."""
    if is_main():
        with context:
            barrier()
            yield
    else:
        barrier()
        yield


@contextlib.contextmanager
def session(device: str = "auto") -> Iterator[None]:
    """The process group of a torchrun launch, for the ``with`` block; nothing for a plain process.

    ``device`` is the protocol's ``training.device``: unless it is ``cpu``, a machine with CUDA gives each rank
    the GPU ``LOCAL_RANK`` and nccl for its tensors. The ranks other than 0 may not write (:mod:`facebench.io`)
    and print nothing but errors. The group is destroyed at the end, after a last barrier when the block ended
    normally (no rank leaves while another still needs it; after an error torchrun stops the others).
    """
    rank, world = launched()
    if world <= 1 or _group_ready():
        yield
        return
    import torch
    import torch.distributed as dist

    from facebench.io import forbid_writes
    from facebench.progress import console

    cuda = device not in ("cpu", "mps") and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend="cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=COLLECTIVE_TIMEOUT)
    quiet = console.quiet
    if rank != 0:
        forbid_writes(f"only rank 0 of the {world} torchrun processes writes")
        console.quiet = True
    finished = False
    try:
        yield
        finished = True
    finally:
        try:
            if finished:
                dist.barrier()
        finally:
            dist.destroy_process_group()
            forbid_writes(None)
            console.quiet = quiet
