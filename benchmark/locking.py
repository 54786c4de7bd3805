"""One writer per run folder: an advisory file lock beside the folder.

Two identical ``facebench run`` commands into one output folder used to both train in full and race on the same
checkpoint and result files. :func:`run_folder_lock` makes the second one wait until the first has finished (it
then finds the finished results and reuses them) or, with ``wait=False``, refuse in one sentence. The lock is
``fcntl.flock`` on ``.<run>.lock`` beside the run folder: the kernel releases it when the holder exits, even on
``kill -9``, so a crashed run never leaves a stale lock behind. The file records the holder's pid for messages.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from facebench.errors import UserInputError

try:
    import fcntl
except ImportError:  # not POSIX: no advisory locks; runs are then not protected from a concurrent twin
    fcntl = None

__all__ = ["lock_path", "run_folder_lock"]


def lock_path(run_dir: Path) -> Path:
    """``OUT/protocol/.RUN.lock`` for the run folder ``OUT/protocol/RUN`` (beside it: the folder itself may be
    replaced atomically while the lock is held)."""
    return run_dir.parent / f".{run_dir.name}.lock"


def _holder(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()[:20] or "unknown"
    except (OSError, UnicodeDecodeError):
        return "unknown"


@contextlib.contextmanager
def run_folder_lock(run_dir: Path, *, wait: bool = True, on_wait: Callable[[str], None] | None = None
                    ) -> Iterator[None]:
    """Hold the run folder's lock for the ``with`` block.

    If another process holds it: with ``wait`` (default) call ``on_wait(message)`` once and block until it is
    released; without, raise :class:`UserInputError` naming the folder and the holder's pid.
    """
    if fcntl is None:
        yield
        return
    path = lock_path(Path(run_dir))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            if not wait:
                raise UserInputError(f"{run_dir} is being written by another facebench process (pid {holder}); "
                                     "wait for it to finish or choose another --out.") from None
            if on_wait is not None:
                on_wait(f"{run_dir} is being written by another facebench process (pid {holder}); waiting for it "
                        "to finish, then its results are reused.")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode("ascii"))
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
