"""A sweep's grid: ``--grid key=v1,v2`` axes, the points they span, and their check against the protocol.

A grid point is a set of ``--set`` overrides (``key=value``, the value read as YAML exactly as ``--set`` reads it);
with a seed it names one ``facebench run``. Every axis value and every point is validated by the protocol loader
before anything is planned or submitted, so a bad key is one sentence with a did-you-mean (exit 2).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from facebench.errors import UserInputError, shorten
from facebench.protocol import Protocol, load_protocol, parse_override

#: The most jobs one sweep may plan (grid points × seeds × baselines): a typo such as ``--seeds 3000`` is refused.
MAX_JOBS = 10_000


def _echo(text: str) -> str:
    """A flag's text as the user typed it, cut short (:func:`facebench.errors.shorten`, without its quotes).

    >>> _echo("training.lr"), len(_echo("k" * 200)) < 100
    ('training.lr', True)
    """
    return shorten(text, 80).strip("'\"")


@dataclass(frozen=True, kw_only=True)
class GridAxis:
    """One ``--grid`` option: a protocol key and the values it takes, each as ``--set`` would take it."""

    key: str
    values: tuple[str, ...]

    @property
    def settings(self) -> tuple[str, ...]:
        """``key=value`` for each value: the ``--set`` text of this axis's points."""
        return tuple(f"{self.key}={value}" for value in self.values)


def split_values(text: str, *, where: str) -> list[str]:
    """Split ``v1,v2,...`` at the commas outside brackets and quotes, so a YAML list is one value.

    >>> split_values("0.1,0.3, 1", where="--grid g")
    ['0.1', '0.3', '1']
    >>> split_values("[conv, fc1],[fc1],'a,b'", where="--grid g")
    ['[conv, fc1]', '[fc1]', "'a,b'"]
    """
    values, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            values.append(text[start:i].strip())
            start = i + 1
    if quote or depth:
        raise UserInputError(f"{where}: unbalanced brackets or quotes in {shorten(text)}.")
    values.append(text[start:].strip())
    return values


def parse_axis(text: str) -> GridAxis:
    """One ``--grid key=v1,v2,...`` option.

    >>> parse_axis("training.lr=0.001,0.002")
    GridAxis(key='training.lr', values=('0.001', '0.002'))
    >>> parse_axis("baselines.0.params.layers=[conv, fc1],[fc1]").settings
    ('baselines.0.params.layers=[conv, fc1]', 'baselines.0.params.layers=[fc1]')
    """
    key, sep, rest = text.partition("=")
    key = key.strip()
    if not sep or not key or not rest.strip():
        raise UserInputError(f"--grid {_echo(text)} is not of the form key.path=value1,value2,...")
    values = split_values(rest, where=f"--grid {_echo(key)}")
    seen: dict[str, str] = {}
    for value in values:
        if not value:
            raise UserInputError(f"--grid {_echo(text)}: an empty value (two commas in a row, or one at an end).")
        _, parsed = parse_override(f"{key}={value}", flag="--grid")
        canonical = json.dumps(parsed, sort_keys=True, default=str)
        if canonical in seen:
            raise UserInputError(f"--grid {_echo(key)}: the value {shorten(value)} is the same as "
                                 f"{shorten(seen[canonical])}; list each value once.")
        seen[canonical] = value
    return GridAxis(key=key, values=tuple(values))


def parse_grid(items: Sequence[str], *, sets: Sequence[str] = ()) -> list[GridAxis]:
    """The ``--grid`` options, each key once and none also given with ``--set`` (which would be ambiguous)."""
    axes = [parse_axis(item) for item in items]
    set_keys = {text.partition("=")[0].strip() for text in sets}
    keys: set[str] = set()
    for axis in axes:
        if axis.key in keys:
            raise UserInputError(f"--grid {_echo(axis.key)} is given twice; list all its values in one --grid.")
        if axis.key in set_keys:
            raise UserInputError(f"--grid {_echo(axis.key)} is also given with --set; give the key in one place.")
        keys.add(axis.key)
    return axes


def grid_points(axes: Sequence[GridAxis]) -> list[tuple[str, ...]]:
    """Every combination of the axes' values, first axis slowest; one empty point without axes.

    >>> grid_points([GridAxis(key="a", values=("1", "2")), GridAxis(key="b", values=("x",))])
    [('a=1', 'b=x'), ('a=2', 'b=x')]
    >>> grid_points([])
    [()]
    """
    return list(itertools.product(*(axis.settings for axis in axes)))


def check_grid(protocol: str | Path, *, profile: str | None, sets: Sequence[str], axes: Sequence[GridAxis]
               ) -> list[tuple[tuple[str, ...], Protocol]]:
    """Each grid point with its validated protocol. Every value is first checked alone (the sentence names the
    bad key or value), then every point (values that are fine alone but not together); points that resolve to
    the same protocol (a value equal to the default, spelt differently) are refused: they would be one job."""
    for axis in axes:
        for setting in axis.settings:
            load_protocol(protocol, profile=profile, overrides=tuple(sets), grid=(setting,))
    points = [(point, load_protocol(protocol, profile=profile, overrides=tuple(sets), grid=point))
              for point in grid_points(axes)]
    seen: dict[str, tuple[str, ...]] = {}
    for point, resolved in points:
        other = seen.setdefault(resolved.fingerprint(), point)
        if other != point:
            raise UserInputError(f"--grid: the points {shorten(', '.join(other), 120)} and "
                                 f"{shorten(', '.join(point), 120)} are the same protocol; drop one of the values.")
    return points
