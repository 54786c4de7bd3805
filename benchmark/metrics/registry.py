"""The metric registry: :func:`get_metric` by name, :func:`register_metric`, the live :data:`METRIC_NAMES`.

Its own module, imported by the metric modules that register or look up metrics, so that no module of
:mod:`facebench.metrics` imports the package ``__init__`` (which imports them all): the import graph has no
cycle. The package ``__init__`` registers the built-in metrics and re-exports these names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from ..errors import UserInputError, did_you_mean
from .base import Metric
from .classification import parse_classification_metric
from .regression import cs_at

__all__ = ["METRIC_NAMES", "get_metric", "register_metric"]

_REGISTRY: dict[str, Metric] = {}
_CS_PATTERN = re.compile(r"^cs(\d+(?:\.\d+)?)$")


class _MetricNames(Sequence):
    """Live, read-only view of the registered metric names (in registration order)."""

    def __getitem__(self, i):
        return tuple(_REGISTRY)[i]

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __contains__(self, name: object) -> bool:
        return name in _REGISTRY

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_REGISTRY))

    def __repr__(self) -> str:
        return repr(tuple(_REGISTRY))


#: Names accepted by :func:`get_metric` (besides any ``cs<k>``); a live view of the registry.
METRIC_NAMES: Sequence[str] = _MetricNames()


def register_metric(metric: Metric, *, replace: bool = False) -> Metric:
    """Add ``metric`` to the registry under ``metric.name`` and return it.

    >>> m = register_metric(get_metric("mae"), replace=True)
    >>> register_metric(m)
    Traceback (most recent call last):
    ...
    ValueError: A metric named 'mae' is already registered; pass replace=True to override it.
    """
    if not isinstance(metric, Metric):
        raise TypeError(f"register_metric expects a Metric, got {type(metric).__name__}.")
    if metric.name in _REGISTRY and not replace:
        raise ValueError(
            f"A metric named {metric.name!r} is already registered; pass replace=True to override it."
        )
    _REGISTRY[metric.name] = metric
    return metric


def get_metric(name: str | Metric) -> Metric:
    """Return the registered metric called ``name`` (a :class:`Metric` is returned as it is).

    Raises :class:`~facebench.errors.UserInputError` with a did-you-mean suggestion for unknown names.
    """
    if isinstance(name, Metric):
        return name
    if not isinstance(name, str):
        raise UserInputError(f"A metric must be given by name or as a Metric, got {name!r}.")
    key = name.strip()
    if key in _REGISTRY:
        return _REGISTRY[key]
    match = _CS_PATTERN.match(key)
    if match:
        return cs_at(float(match.group(1)))
    per_class = parse_classification_metric(key)
    if per_class is not None:
        return per_class
    raise UserInputError(
        f"Unknown metric {name!r}{did_you_mean(key, _REGISTRY)}; known metrics: "
        f"{', '.join(_REGISTRY)} (and cs<k> for any k; tpr@<label>, fpr@<label>, tnr@<label>, fnr@<label>, "
        "selection_rate@<label> for any class label)."
    )
