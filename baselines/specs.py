"""Registry entries of the built-in baselines: what validating a protocol needs, without importing torch.

A :class:`BaselineSpec` says which task a baseline solves, which pydantic model validates its ``params``
(from the torch-free :mod:`facebench.baselines.params`) and whether it can be fine-tuned per left-out image;
its :meth:`~BaselineSpec.load` imports the method itself (torch) only when a run needs it. Plugins may
register a :class:`~facebench.baselines.base.Baseline` class directly: :func:`as_baseline_spec` describes it
from the class (importing it).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from facebench.baselines.params import (
    AcGANParams,
    AdaptationParams,
    ArcFaceAgeParams,
    ArcFaceParams,
    BaselineParams,
    DlibResNetParams,
    MMDParams,
    MTMIMParams,
    PairwiseParams,
    RaceTransferParams,
    SourceOnlyParams,
    StarGANParams,
)

if TYPE_CHECKING:
    from facebench.baselines.base import Baseline


@dataclass(frozen=True, kw_only=True)
class BaselineSpec:
    """A baseline as the registry lists it: task, params model, capabilities, and where its code lives."""

    #: ``"package.module:Class"`` of the :class:`~facebench.baselines.base.Baseline` subclass.
    implementation: str
    #: The kind of task it solves (``TASKS[...].baseline_kind``): ``age_regression`` or ``face_recognition``.
    task: str
    #: The pydantic model of its ``params`` (the class's ``Params``).
    params: type[BaselineParams]
    #: Whether it implements :meth:`Baseline.leave_one_out_scores` (a trainable encoder to fine-tune).
    leave_one_out_finetune: bool = False

    def load(self) -> type[Baseline]:
        """Import and return the Baseline class (this imports torch)."""
        module_name, _, attribute = self.implementation.partition(":")
        return getattr(importlib.import_module(module_name), attribute)


def as_baseline_spec(entry: BaselineSpec | type[Baseline]) -> BaselineSpec:
    """The spec of a ``BASELINES`` entry: a built-in's spec as registered, or one read off a plugin's class."""
    if isinstance(entry, BaselineSpec):
        return entry
    from facebench.baselines.base import Baseline

    return BaselineSpec(implementation=f"{entry.__module__}:{entry.__qualname__}", task=entry.task, params=entry.Params,
                        leave_one_out_finetune=entry.leave_one_out_scores is not Baseline.leave_one_out_scores)


SOURCE_ONLY = BaselineSpec(implementation="facebench.baselines.age_regression:SourceOnly", task="age_regression",
                           params=SourceOnlyParams)
DANN = BaselineSpec(implementation="facebench.baselines.age_regression:DANN", task="age_regression",
                    params=AdaptationParams)
MMD = BaselineSpec(implementation="facebench.baselines.age_regression:MMD", task="age_regression",
                   params=MMDParams)
PAIRWISE = BaselineSpec(implementation="facebench.baselines.pairwise:Pairwise", task="age_regression",
                        params=PairwiseParams)
ARCFACE = BaselineSpec(implementation="facebench.baselines.face_recognition:ArcFace", task="face_recognition",
                       params=ArcFaceParams, leave_one_out_finetune=True)
ARCFACE_AGE = BaselineSpec(implementation="facebench.baselines.face_recognition:ArcFaceAge", task="face_recognition",
                           params=ArcFaceAgeParams, leave_one_out_finetune=True)
MTMIM = BaselineSpec(implementation="facebench.baselines.face_recognition:MTMIM", task="face_recognition",
                     params=MTMIMParams, leave_one_out_finetune=True)
DLIB_RESNET = BaselineSpec(implementation="facebench.baselines.dlib_embedder:DlibResNet", task="face_recognition",
                           params=DlibResNetParams)
RACE_TRANSFER = BaselineSpec(implementation="facebench.baselines.race_transfer:RaceTransfer",
                             task="race_classification", params=RaceTransferParams)
STARGAN = BaselineSpec(implementation="facebench.baselines.stargan:StarGAN", task="face_generation",
                      params=StarGANParams)
ACGAN = BaselineSpec(implementation="facebench.baselines.acgan:AcGAN", task="face_generation", params=AcGANParams)
