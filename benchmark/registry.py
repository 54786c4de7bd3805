"""Lazy, typed registries with did-you-mean errors (after lm-evaluation-harness ``lm_eval/api/registry.py``).

A registry maps a name to an object. Entries may be registered eagerly (a decorator) or lazily as a
``"package.module:attribute"`` string that is imported on first use, so listing protocols or validating a
YAML file never imports torch. Third-party packages add entries through the entry-point group
``facebench.<registry name>`` (for example ``facebench.baselines``), which are lazy too.

>>> colours = Registry("colours")
>>> colours.register("red", "builtins:str")
>>> colours.get("red") is str
True
>>> colours.get("rde")
Traceback (most recent call last):
...
facebench.errors.UserInputError: Unknown colours name 'rde' (did you mean 'red'?); known: red.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from facebench.errors import UserInputError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → object, with lazy ``"module:attr"`` placeholders and entry-point plugins."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}
        self._lock = threading.Lock()
        self._plugins_loaded = False

    def register(self, name: str, target: T | str | None = None) -> Callable[[T], T] | None:
        """Register ``target`` under ``name``; without a target, return a decorator."""
        if target is None:

            def decorator(obj: T) -> T:
                self._add(name, obj)
                return obj

            return decorator
        self._add(name, target)
        return None

    def _add(self, name: str, target: T | str) -> None:
        with self._lock:
            existing = self._entries.get(name)
            if existing is not None and existing is not target and not isinstance(existing, str):
                raise ValueError(f"{self.kind} name {name!r} is already registered")
            self._entries[name] = target

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for entry in entry_points(group=f"facebench.{self.kind}"):
            self._entries.setdefault(entry.name, entry.value)

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def check(self, name: str, *, where: str = "") -> str:
        """Return ``name`` if registered, else raise the did-you-mean error (without importing anything)."""
        if name in self:
            return name
        prefix = f"{where}: " if where else ""
        known = ", ".join(self.names())
        raise UserInputError(
            f"{prefix}Unknown {self.kind} name {name!r}{did_you_mean(name, self.names())}; known: {known}."
        )

    def get(self, name: str, *, where: str = "") -> T:
        """Return the object registered as ``name``, importing a lazy placeholder on first use."""
        self.check(name, where=where)
        target = self._entries[name]
        if isinstance(target, str):
            module_name, _, attribute = target.partition(":")
            obj = importlib.import_module(module_name)
            for part in attribute.split("."):
                obj = getattr(obj, part)
            with self._lock:
                self._entries[name] = obj
            target = obj
        return target  # type: ignore[return-value]


#: Dataset readers: name → ``facebench.data.datasets.DatasetSpec``.
DATASETS: Registry = Registry("datasets")
#: Split builders: name → callable(table, *, seed, **params) -> Split.
SPLITS: Registry = Registry("splits")
#: Baselines: name → ``facebench.baselines.specs.BaselineSpec`` (task, params model; the torch class loads lazily),
#: or a plugin's Baseline class.
BASELINES: Registry = Registry("baselines")
#: Tasks: task name → :class:`facebench.tasks.base.Task`.
TASKS: Registry = Registry("tasks")

# Built-in entries, registered lazily so that importing the registry imports nothing heavy.
DATASETS.register("utkface", "facebench.data.datasets:UTKFACE")
DATASETS.register("morph", "facebench.data.datasets:MORPH")
DATASETS.register("cacd", "facebench.data.datasets:CACD")
DATASETS.register("fgnet", "facebench.data.datasets:FGNET")
DATASETS.register("agedb", "facebench.data.datasets:AGEDB")
DATASETS.register("celeba", "facebench.data.datasets:CELEBA")
DATASETS.register("fairface", "facebench.data.datasets:FAIRFACE")
SPLITS.register("cross_ethnicity", "facebench.data.splits:cross_ethnicity_split")
SPLITS.register("largest_age_gap", "facebench.data.splits:largest_age_gap_split")
SPLITS.register("cacd_retrieval", "facebench.data.splits:cacd_retrieval_split")
SPLITS.register("leave_one_out", "facebench.data.splits:leave_one_out_split")
SPLITS.register("age_gap_pairs", "facebench.data.splits:age_gap_pairs_split")
SPLITS.register("listed_pairs", "facebench.data.splits:listed_pairs_split")
SPLITS.register("subject_holdout", "facebench.data.splits:subject_holdout_split")
SPLITS.register("labelled_subset", "facebench.data.splits:labelled_subset_split")
SPLITS.register("generation_holdout", "facebench.data.splits:generation_holdout_split")
BASELINES.register("source_only", "facebench.baselines.specs:SOURCE_ONLY")
BASELINES.register("dann", "facebench.baselines.specs:DANN")
BASELINES.register("mmd", "facebench.baselines.specs:MMD")
BASELINES.register("pairwise", "facebench.baselines.specs:PAIRWISE")
BASELINES.register("arcface", "facebench.baselines.specs:ARCFACE")
BASELINES.register("arcface_age", "facebench.baselines.specs:ARCFACE_AGE")
BASELINES.register("mtmim", "facebench.baselines.specs:MTMIM")
BASELINES.register("dlib_resnet", "facebench.baselines.specs:DLIB_RESNET")
BASELINES.register("race_transfer", "facebench.baselines.specs:RACE_TRANSFER")
BASELINES.register("stargan", "facebench.baselines.specs:STARGAN")
BASELINES.register("acgan", "facebench.baselines.specs:ACGAN")
TASKS.register("age_regression", "facebench.tasks.age_regression:AGE_REGRESSION")
TASKS.register("race_classification", "facebench.tasks.race_classification:RACE_CLASSIFICATION")
TASKS.register("face_generation", "facebench.tasks.generation:FACE_GENERATION")
TASKS.register("face_identification", "facebench.tasks.identification:FACE_IDENTIFICATION")
TASKS.register("face_retrieval", "facebench.tasks.retrieval:FACE_RETRIEVAL")
TASKS.register("face_verification", "facebench.tasks.verification:FACE_VERIFICATION")
TASKS.register("face_identification_loo", "facebench.tasks.leave_one_out:FACE_IDENTIFICATION_LOO")
