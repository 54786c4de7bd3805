"""Progress bars and console output (rich), quiet when asked or when output is not a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

#: Diagnostics go to stderr so that ``--json`` output on stdout stays machine-readable. Written to a file or a
#: pipe (logs, CI, a sweep's jobs) rich would fold every line at 80 columns, which breaks paths and tables apart;
#: there the width is 160 unless ``COLUMNS`` says otherwise.
console = Console(stderr=True, highlight=False,
                  width=None if sys.stderr.isatty() or os.environ.get("COLUMNS") else 160)


def progress_enabled(requested: bool = True) -> bool:
    """Bars only where asked, on a terminal, and under torchrun on rank 0 alone (the ranks share one terminal)."""
    return (requested and os.environ.get("FACEBENCH_NO_PROGRESS", "") == "" and os.environ.get("RANK", "0") == "0"
            and sys.stderr.isatty())


def make_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    )


def track(items: Iterable[T], *, total: int | None = None, description: str = "", enabled: bool = True) -> Iterator[T]:
    """Yield from ``items`` with a progress bar when ``enabled`` and stderr is a terminal."""
    if not progress_enabled(enabled):
        yield from items
        return
    with make_progress() as bar:
        task = bar.add_task(description, total=total, status="")
        for item in items:
            yield item
            bar.advance(task)
