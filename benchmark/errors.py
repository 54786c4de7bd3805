"""User-facing errors.

Every problem caused by the user's input (a protocol key, a dataset row, a predictions file, a CLI flag)
is raised as a :class:`UserInputError` whose message is one sentence naming the file, key or row. The CLI
prints that sentence and exits with :data:`EXIT_BAD_INPUT`; nothing half-written is left behind because
every writer goes through :func:`facebench.io.atomic_write`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_BAD_INPUT = 2


class UserInputError(Exception):
    """Bad input from the user: the message is one complete sentence."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` when nothing is close.

    >>> did_you_mean("source_onyl", ["source_only", "dann"])
    " (did you mean 'source_only'?)"
    >>> did_you_mean("zzz", ["source_only"])
    ''
    """
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
