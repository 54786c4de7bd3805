"""The judges of generated faces (task ``face_generation``): networks facebench trains on *real* images and then
asks about the generated ones, standing in for seed 001's human raters and seed 004's Face++ API.

* **Attribute classifier** (edit success): the protocol's backbone and one logit per edited attribute, binary
  cross-entropy on the real training images' labels. An edit succeeded when the classifier reads the requested
  value back from the generated face.
* **Verifier** (identity permanence, realism features): facebench's ArcFace (:class:`facebench.baselines.
  face_recognition.ArcFace`) trained on the real training images' identities. Its threshold is fixed on real
  impostor pairs of the held-out faces at a stated false accept rate (seed 004 Table 2: 1e-5).
* **Age estimator** (ageing accuracy, ageing protocols only): seed 000's source-only regressor
  (:class:`facebench.baselines.age_regression.SourceOnly`) trained on the real training images' ages.

Each trains through the shared loop with its checkpoint under ``CACHE/judges/<key>/`` (the key hashes the training
images' ids, the dataset fingerprint and the settings), so every baseline of a protocol, and a submission scored
later, is judged by the same networks, trained once (and resumed exactly if interrupted).

Realism features (:data:`FEATURE_EXTRACTORS`, the part after ``@`` in ``fid@...``/``kid@...``): ``verifier`` (the
verifier's embedding), ``classifier`` (the attribute classifier's pooled features), ``dlib`` (dlib's pre-trained
ResNet, the optional extra) and ``inception`` (torchvision's Inception-v3 pool features, from a local weights file
only: none can be downloaded). Numbers from different extractors are different metrics and never compared.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from facebench.baselines.nets import Normalize, build_backbone, load_state_dict_file
from facebench.baselines.training import (
    ImageBatches,
    LoopConfig,
    StepContext,
    TrainableMethod,
    fit,
    make_optimizer,
    predict_batches,
    resolve_device,
)
from facebench.errors import UserInputError
from facebench.fit_data import FaceFitData
from facebench.seeding import rng_stream

__all__ = ["FEATURE_EXTRACTORS", "AttributeClassifier", "Judges", "JudgeConfig", "train_judges"]

#: The realism feature extractors, by the name metrics carry after ``@``, and what each is (for reports).
FEATURE_EXTRACTORS: dict[str, str] = {
    "verifier": "facebench's ArcFace verifier trained on the protocol's real training images (its embedding)",
    "classifier": "facebench's attribute classifier trained on the protocol's real training images (pooled features)",
    "dlib": "dlib's pre-trained ResNet face descriptor (128-d; optional extra)",
    "inception": "torchvision's Inception-v3 pool features (2048-d) from a local weights file",
}


class AttributeClassifier(nn.Module):
    """Normalise → backbone → one logit per attribute; ``features`` gives the pooled backbone output."""

    def __init__(self, *, backbone: str, pretrained: str | None, n_attributes: int) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.backbone, width = build_backbone(backbone, pretrained=pretrained)
        self.head = nn.Linear(width, n_attributes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.features(x)))


class _Features(nn.Module):
    def __init__(self, net: AttributeClassifier) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)


class AttributeMethod(TrainableMethod):
    """Binary cross-entropy of every attribute's logit against the image's 0/1 label."""

    def __init__(self, *, net: AttributeClassifier, loop: LoopConfig) -> None:
        self.net = net
        self.loop = loop

    def modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"classifier": self.net})

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"classifier": make_optimizer(self.net.parameters(), self.loop)}

    def train_step(self, batches, ctx: StepContext) -> dict[str, torch.Tensor]:
        source = batches["source"]
        with ctx.autocast():
            logits = self.net.head(self.net.features(source["image"]))
        loss = F.binary_cross_entropy_with_logits(logits.float(), source["attributes"].float())
        ctx.optimize("classifier", loss)
        accuracy = ((logits.detach() > 0).float() == source["attributes"]).float().mean()
        return {"loss": loss.detach(), "accuracy": accuracy}


@dataclass(frozen=True, kw_only=True)
class JudgeConfig:
    """What the judges are: the protocol's model section (backbone, weights, size), the task's judge settings, the
    attributes to classify, whether to estimate ages, and where and how to train."""

    protocol: object  # the Protocol (its model section and generation.judges)
    attributes: tuple[str, ...]
    ages: bool
    seed: int = 0

    def key(self, dataset_fingerprint: str, train_ids: tuple[str, ...]) -> str:
        payload = json.dumps([dataset_fingerprint, sorted(train_ids), self.protocol.model.model_dump(mode="json"),
                              self.protocol.generation.judges.model_dump(mode="json"), list(self.attributes), self.ages,
                              self.seed], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def loop(self, folder: Path | None, name: str, *, progress: bool) -> LoopConfig:
        s, t = self.protocol.generation.judges, self.protocol.training
        return LoopConfig(epochs=s.epochs, batch_size=s.batch_size, seed=self.seed, lr=s.lr, optimizer="adam",
                          lr_schedule="cosine", device=t.device, amp=t.amp, channels_last=t.channels_last, hflip=True,
                          checkpoint_dir=None if folder is None else folder / name, progress=progress,
                          fingerprint=f"judge {name} {folder.name if folder else ''}")


class Judges:
    """The trained judges of one protocol and its real training images (module docstring)."""

    def __init__(self, *, config: JudgeConfig, classifier: AttributeClassifier | None, verifier,
                 age_estimator, folder: Path | None) -> None:
        self.config = config
        self.classifier = classifier
        self.verifier = verifier
        self.age_estimator = age_estimator
        self.folder = folder
        self.device = resolve_device(config.protocol.training.device)
        self.amp = config.protocol.training.amp
        self._extra: dict[str, object] = {}

    def description(self) -> dict[str, object]:
        """What judged the faces, for results.json: the networks, what they trained on, their settings."""
        p = self.config.protocol
        return {"network": f"{p.model.backbone} at {p.model.image_size} px"
                           f"{' from ' + p.model.pretrained if p.model.pretrained else ' from scratch'}",
                "attribute_classifier": list(self.config.attributes) if self.classifier is not None else None,
                "verifier": f"ArcFace, {p.generation.judges.embedding_dim}-d embedding, scale "
                            f"{p.generation.judges.arcface_scale:g}, margin 0.35",
                "age_estimator": "seed 000's source-only regressor (L1)" if self.age_estimator is not None else None,
                "trained_on": "the real images of the split's train, val and judge parts (never the held-out faces)",
                "settings": p.generation.judges.model_dump(mode="json"), "seed": self.config.seed,
                "folder": self.folder.name if self.folder is not None else None,
                "feature_extractors": FEATURE_EXTRACTORS}

    def attribute_probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, A) probabilities of ``config.attributes``."""
        if self.classifier is None:
            return np.zeros((len(images), 0))
        return predict_batches(self.classifier, images, device=self.device, amp=self.amp).reshape(len(images), -1)

    def embeddings(self, images: np.ndarray) -> np.ndarray:
        """(N, D) L2-normalised verifier embeddings (cosine similarity = dot product)."""
        return self.verifier.predict(images).astype(np.float64)

    def ages(self, images: np.ndarray) -> np.ndarray:
        if self.age_estimator is None:
            raise ValueError("these judges have no age estimator")
        return np.asarray(self.age_estimator.predict(images), dtype=np.float64).reshape(-1)

    def features(self, extractor: str, images: np.ndarray) -> np.ndarray:
        """(N, D) realism features of ``extractor`` (:data:`FEATURE_EXTRACTORS`)."""
        if extractor == "verifier":
            return self.embeddings(images)
        if extractor == "classifier":
            if self.classifier is None:
                raise UserInputError("the classifier features need an attribute classifier: this protocol edits no "
                                     "attribute (use fid@verifier or kid@verifier).")
            return predict_batches(_Features(self.classifier), images, device=self.device, amp=self.amp)
        if extractor == "dlib":
            if "dlib" not in self._extra:
                from facebench.baselines.dlib_embedder import DlibResNet
                from facebench.baselines.params import DlibResNetParams

                self._extra["dlib"] = DlibResNet(protocol=self.config.protocol, params=DlibResNetParams())
            return np.asarray(self._extra["dlib"].predict(images), dtype=np.float64)
        if extractor == "inception":
            if "inception" not in self._extra:
                self._extra["inception"] = inception_features(self.config.protocol.generation.inception_weights)
            return predict_batches(self._extra["inception"], images, device=self.device, amp=self.amp, batch_size=64)
        raise UserInputError(f"unknown realism feature extractor {extractor!r}; known: {', '.join(FEATURE_EXTRACTORS)}.")


class _InceptionPool(nn.Module):
    """[0, 1] images → resized to 299 → ImageNet normalisation → Inception-v3 → its 2048-d average pool."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.normalize = Normalize()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.net(self.normalize(x))


def inception_features(weights: str | None) -> nn.Module:
    """torchvision's inception_v3 with the local state dict ``weights`` (its classifier dropped)."""
    import torchvision

    if not weights:
        raise UserInputError("the inception realism features need generation.inception_weights (a local "
                             "inception_v3 state dict); none can be downloaded.")
    net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    net.load_state_dict(load_state_dict_file(Path(weights).expanduser(), where="generation.inception_weights"))
    net.fc = nn.Identity()
    net.aux_logits, net.AuxLogits = False, None
    return _InceptionPool(net)


def train_judges(config: JudgeConfig, images: np.ndarray, labels: pd.DataFrame, *, folder: Path | None,
                 progress: bool = False) -> Judges:
    """Train (or load from ``folder``, where each judge keeps its checkpoint) the judges on real ``images`` and their
    FaceTable rows ``labels``: the attribute classifier on ``config.attributes``, the verifier on ``subject_id`` and,
    with ``config.ages``, the age estimator on ``age``."""
    from facebench.baselines.age_regression import SourceOnly
    from facebench.baselines.face_recognition import ArcFace
    from facebench.baselines.params import ArcFaceParams, SourceOnlyParams

    protocol, settings = config.protocol, config.protocol.generation.judges
    classifier = None
    if config.attributes:
        missing = [a for a in config.attributes if a not in labels.columns]
        if missing:
            raise UserInputError(f"generation.edits: the dataset has no label column {missing[0]!r} to judge the edit by.")
        targets = labels[list(config.attributes)].astype("float64")
        known = targets.notna().all(axis=1).to_numpy()
        torch.manual_seed(config.seed)
        classifier = AttributeClassifier(backbone=protocol.model.backbone, pretrained=protocol.model.pretrained,
                                         n_attributes=len(config.attributes))
        fit(AttributeMethod(net=classifier, loop=config.loop(folder, "classifier", progress=progress)),
            {"source": ImageBatches(images[known], {"attributes": targets[known].to_numpy(dtype=np.float32)})},
            config.loop(folder, "classifier", progress=progress))
        classifier.eval()

    # The verifier and the age estimator validate on the faces of 5 % of the people (their epoch logs' val_rank1 and
    # val_mae), who are left out of their training.
    subjects = labels["subject_id"].astype("string").fillna(labels["sample_id"].astype("string")).astype(str).to_numpy()
    people = np.unique(subjects)
    held = rng_stream(config.seed, "judges", "validation").choice(people, size=max(1, len(people) // 20), replace=False)
    val = np.isin(subjects, held)
    train = ~val
    verifier = ArcFace(protocol=protocol, params=ArcFaceParams(embedding_dim=settings.embedding_dim,
                                                               scale=settings.arcface_scale, flip_test=False))
    verifier.fit(FaceFitData(train_images=images[train], train_ages=np.full(int(train.sum()), np.nan),
                             val_images=images[val], val_ages=np.full(int(val.sum()), np.nan),
                             train_subjects=subjects[train], val_subjects=subjects[val]),
                 config.loop(folder, "verifier", progress=progress))

    age_estimator = None
    if config.ages:
        ages = pd.to_numeric(labels["age"]).to_numpy(dtype=float, na_value=np.nan)
        known = np.isfinite(ages)
        age_estimator = SourceOnly(protocol=protocol, params=SourceOnlyParams())
        age_estimator.fit(FaceFitData(train_images=images[known & train], train_ages=ages[known & train],
                                      val_images=images[known & val], val_ages=ages[known & val],
                                      train_subjects=subjects[known & train]),
                          config.loop(folder, "age_estimator", progress=progress))
    return Judges(config=config, classifier=classifier, verifier=verifier, age_estimator=age_estimator, folder=folder)
