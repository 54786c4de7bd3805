"""User-facing errors.

Every problem caused by the user's input (a protocol key, a dataset row, a predictions file, a CLI flag)
is raised as a :class:`UserInputError` whose message is one sentence naming the file, key or row. The CLI
prints that sentence and exits with :data:`EXIT_BAD_INPUT`; nothing half-written is left behind because
every writer goes through :func:`facebench.io.atomic_write`.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable

EXIT_BAD_INPUT = 2


class UserInputError(Exception):
    """Bad input from the user: the message is one complete sentence, on one line: control characters that
    came from the input (a key with a newline in it) are shown escaped.

    >>> str(UserInputError("p.yaml: unknown key 'a\\nb'."))
    "p.yaml: unknown key 'a\\\\nb'."
    """

    def __init__(self, message: str) -> None:
        message = str(message)
        if not message.isprintable():
            message = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
        super().__init__(message)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` when nothing is close.

    >>> did_you_mean("source_onyl", ["source_only", "dann"])
    " (did you mean 'source_only'?)"
    >>> did_you_mean("zzz", ["source_only"])
    ''
    """
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


#: Longest message the CLI prints: a last line of defence behind :func:`shorten` (errors stay one sentence).
MAX_MESSAGE = 2000

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 200
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8
_REPR.maxlevel = 3


def shorten(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, so an error sentence stays one readable line. A huge value
    (a 50 MB string, a list of a billion aliases) is never rendered whole: :mod:`reprlib` bounds the work.

    >>> shorten("abc")
    "'abc'"
    >>> shorten("x" * 100, limit=12)
    "'xxxxxxxxxx…"
    >>> len(shorten(["x" * 10**6] * 10**6, limit=100))
    100
    """
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded_message(message: str) -> str:
    """``message`` cut to :data:`MAX_MESSAGE` characters (what the CLI prints).

    >>> len(bounded_message("x" * 5000)) == MAX_MESSAGE
    True
    """
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def key_path(loc: tuple) -> str:
    """A pydantic error location as the key path users write: ``('gates', 0, 'max_gap')`` → ``gates[0].max_gap``.

    >>> key_path(("gates", 0, "max_gap")), key_path(("baselines", 1))
    ('gates[0].max_gap', 'baselines[1]')
    """
    return "".join(f"[{item}]" if isinstance(item, int) else (("." if i else "") + str(item))
                   for i, item in enumerate(loc))


def _model_owning(root, loc: tuple):
    """The pydantic model class that owns the key at ``loc`` under ``root`` (None when no model does)."""
    from pydantic import BaseModel

    model = root
    for item in loc[:-1]:
        if isinstance(item, int):
            continue
        info = model.model_fields.get(item)
        if info is None:
            return None
        candidates = [info.annotation, *getattr(info.annotation, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model


def validation_error(error, *, where: str, model, key_prefix: str = "") -> UserInputError:
    """One sentence for a pydantic ``ValidationError`` raised by ``model.model_validate``: the file
    (``where``), the key path (after ``key_prefix``, e.g. ``baselines[0].params.``) and, for an unknown key,
    a did-you-mean among the keys its model accepts.

    An unknown key is reported before any other error: it is the likely cause of the others (a typo that
    also leaves a required key missing). The tests of protocol and gate files pin the sentences.
    """
    errors = error.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(first["loc"])
    path = key_prefix + key_path(loc)
    if first["type"] == "extra_forbidden":
        owner = _model_owning(model, loc)
        hint = did_you_mean(str(loc[-1]), owner.model_fields) if owner is not None else ""
        return UserInputError(f"{where}: unknown key '{path}'{hint}.")
    if first["type"] == "missing":
        return UserInputError(f"{where}: required key '{path}' is missing.")
    message = first["msg"].removeprefix("Value error, ").rstrip(".")
    return UserInputError(f"{where}: key '{path}': {message} (got {shorten(first.get('input'))}).")
