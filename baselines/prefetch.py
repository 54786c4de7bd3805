"""Batches made ahead of the training step: the shared loop's input pipeline (:func:`prefetch`).

A batch is gathered from the memory-mapped image store (:mod:`facebench.data.images`: a fancy-indexed copy of
``batch_size`` rows, page faults included) and, on CUDA, copied into page-locked ("pinned") memory, from which
``tensor.to(device, non_blocking=True)`` is an asynchronous DMA that does not stall the host. :func:`prefetch` does
both in a background thread, ``depth`` batches ahead, so that while the GPU runs step ``t`` the host is already
holding batch ``t + 1`` in pinned memory. The batches and their order are exactly those of the iterator it
wraps (only *when* they are made changes), so seeded batch orders and exact resume are untouched.

>>> import torch
>>> list(prefetch(iter([{"x": torch.zeros(1)}, {"x": torch.ones(1)}]), pin=False))
[{'x': tensor([0.])}, {'x': tensor([1.])}]
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

__all__ = ["prefetch"]

_END = object()


def _pinned(item):
    """A batch dict with its tensors in pinned memory; for the loop's ``(batch, part, size)`` shards, the batch."""
    if isinstance(item, tuple):
        return (_pinned(item[0]), *item[1:])
    return {name: value.pin_memory() for name, value in item.items()}


def prefetch(batches: Iterator, *, pin: bool, depth: int = 2
             ) -> Iterator:
    """Yield the batches of ``batches`` in order, each made up to ``depth`` batches ahead in a background thread
    and, with ``pin`` (CUDA only), copied into pinned memory.

    An exception raised while making a batch is raised here, at that batch. Closing the generator early (an
    epoch cut short, an endless auxiliary stream at the end of its epoch) stops the thread before it returns.
    """
    ready: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def hand_over(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if pin:
                    batch = _pinned(batch)
                if not hand_over(batch):
                    return
            hand_over(_END)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
            hand_over(error)

    thread = threading.Thread(target=produce, name="facebench-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
