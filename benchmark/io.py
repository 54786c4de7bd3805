"""Atomic output: write to a temporary sibling, then rename over the target.

A reader never sees a half-written results file, and a crash or a bad input leaves the previous file (or
nothing) in place. Files: :func:`atomic_write`. Folders (a submission's run folder, a leaderboard site):
build the folder as a hidden sibling, then :func:`replace_folder`.

A process killed while it builds such a folder leaves the hidden sibling behind. :func:`partial_folder` names it
after its owner (host and process id) and :func:`remove_stale_partials`, called before the next build of the same
target, deletes the ones whose owner is gone, so a kill never leaves one for good.

Under ``torchrun`` only rank 0 writes: :func:`facebench.distributed.session` calls :func:`forbid_writes` on the
other ranks, after which every writer here raises :class:`PermissionError` (an ``OSError``, so a cache that may not
be written, like a read-only one, is simply not updated) instead of writing a second copy of anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

#: Why this process may not write (set on torchrun's ranks other than 0), or None.
_WRITES_FORBIDDEN: str | None = None


def forbid_writes(reason: str | None) -> None:
    """From now on every writer of this module raises :class:`PermissionError` naming ``reason`` (None: allow
    writes again)."""
    global _WRITES_FORBIDDEN
    _WRITES_FORBIDDEN = reason


def writes_allowed() -> bool:
    """False on a process that must not write (torchrun's ranks other than 0): a cache is then kept in memory only."""
    return _WRITES_FORBIDDEN is None


def _check_writes_allowed(path: str | os.PathLike) -> None:
    if _WRITES_FORBIDDEN is not None:
        raise PermissionError(f"{path} was not written: {_WRITES_FORBIDDEN}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` only on success."""
    _check_writes_allowed(path)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically; NaN is refused (results must be valid JSON)."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=2, sort_keys=False, allow_nan=False)
        handle.write("\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def replace_folder(staging: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the finished folder ``staging`` at ``target`` (a sibling of it), replacing any previous ``target``.

    Two renames: the previous folder is moved aside under a hidden name, ``staging`` takes its place, then the
    previous one is deleted; if the second rename fails, the previous folder is put back. A reader sees the old
    folder or the new one, never a mixture.
    """
    _check_writes_allowed(target)
    staging, target = Path(staging), Path(target)
    if not target.exists():
        os.rename(staging, target)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.previous.", dir=target.parent))
    os.rename(target, aside / target.name)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(aside / target.name, target)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def is_file(path: str | os.PathLike) -> bool:
    """``Path(path).is_file()`` that answers False, not OSError, for a name the system refuses to look up (too
    long, an unreadable folder on the way): such a path names no file facebench can use.

    >>> is_file("x" * 100_000), is_file(__file__)
    (False, True)
    """
    try:
        return Path(path).is_file()
    except OSError:
        return False
#: A hidden build folder of another host (a shared cache), or of an older facebench that did not name its owner,
#: is deleted once it is this old: its owner cannot be asked whether it still runs.
STALE_PARTIAL_SECONDS = 24 * 3600


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def partial_folder(target: str | os.PathLike) -> Path:
    """Create the hidden sibling ``.<target name>.<host>-<pid>.<random>.partial`` to build ``target`` in."""
    _check_writes_allowed(target)
    target = Path(target)
    return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.{_host_tag()}-{os.getpid()}.",
                                 suffix=".partial"))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return False
    return True


def remove_stale_partials(target: str | os.PathLike) -> list[Path]:
    """Delete the hidden build folders of ``target`` left by killed processes; return them.

    One made by :func:`partial_folder` on this host is stale when its process is gone; any other (another host's,
    or an older facebench's ``.<name>.<random>.partial``) when it is older than :data:`STALE_PARTIAL_SECONDS`. A
    build in progress is never touched.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    # tempfile's random part is 8 characters of [a-z0-9_]: the pattern cannot match another target's folders
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(?:([0-9a-f]{{8}})-([0-9]+)\.)?[a-z0-9_]{{8}}\.partial")
    removed = []
    for candidate in target.parent.iterdir():
        match = pattern.fullmatch(candidate.name)
        if match is None or candidate.is_symlink() or not candidate.is_dir():
            continue
        host, pid = match.groups()
        stale = False
        if host == _host_tag():
            stale = not _process_alive(int(pid))
        else:
            with contextlib.suppress(OSError):
                stale = time.time() - candidate.stat().st_mtime > STALE_PARTIAL_SECONDS
        if stale:
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


def inside(root: str | os.PathLike, relative: str, *, where: str, root_name: str | None = None) -> Path:
    """``root / relative`` resolved, refused (one sentence: "``where`` ``relative``, which ...") when it
    leaves ``root`` (a ``..`` or a symbolic link pointing elsewhere): a path read from a file (a site's manifest,
    a results.json) may only name files under that file's own folder. ``root_name`` words the folder in the
    message (default: its path).

    >>> inside("/site", "runs/a/results.json", where="manifest.json names").as_posix()
    '/site/runs/a/results.json'
    >>> inside("/site", "../../etc/passwd", where="manifest.json: entries[0].results names")
    Traceback (most recent call last):
    ...
    facebench.errors.UserInputError: manifest.json: entries[0].results names '../../etc/passwd', which is outside /site.
    """
    from facebench.errors import UserInputError, shorten

    base = Path(root).resolve()
    try:
        target = (base / relative).resolve()
    except (OSError, RuntimeError):  # a symbolic-link loop, a name the system refuses
        raise UserInputError(f"{where} {shorten(relative)}, which cannot be found.") from None
    if not target.is_relative_to(base):
        raise UserInputError(f"{where} {shorten(relative)}, which is outside {root_name or base}.")
    return target
