"""Seed 001 section 2: a White-vs-Other classifier on a backbone's features, trained on UTKFace, tested elsewhere.

The network (section 2.1): a pre-trained backbone (ResNet-50, VGG16, VGG19 from torchvision, or VGG-Face,
:class:`facebench.baselines.nets.VGGFace`), its features into an MLP of "3 dense layers of 64 neurons, followed by a
single output neuron", ReLU, dropout 0.5, a sigmoid output and binary cross-entropy, Adam at 1e-3, 30 epochs, batch
128 (the protocol's ``training`` section). Each backbone brings its own preprocessing inside the model (ImageNet's
mean and std; VGG-Face's 0..255 mean subtraction).

* **Tuned** (Table 1): the backbone is frozen and only the MLP trains. Its features do not change during
  training, so they are computed once per image (and cached on disk under the run's ``--cache-dir``/features,
  keyed by a hash of the frozen part's tensors, the face crop and the images' bytes), and the MLP trains on them in
  the shared loop; predictions read the same cache, so only the trained units and the MLP run per model.
* **Fine-tuned** (section 2.2, Table 1): from the tuned weights, the backbone's last ``unfreeze`` units ("the last
  5 layers") are unfrozen and train with the MLP at a lower learning rate (``finetune_lr``, default lr / 10).
  The frozen part's outputs are again computed once.
* **Augmentation** (section 2.2, Table 2): each source batch is zoomed and sheared at random (Keras-style ranges
  ``zoom`` and ``shear``) before the frozen part, which then runs on every batch. The face crop aligned on
  landmarks as OpenFace does (``alignment: openface``, :mod:`facebench.data.alignment`) is made by the runner's
  image store, for every image the model sees (training, source and target); a centre ``face_crop`` is the
  landmark-free alternative.
* **Optimisers** (Table 3): ``tune_optimizer`` / ``finetune_optimizer`` name the pair ("Adam/SGD" …); every
  stage's epoch log goes to results.json, from which the report reads the epochs to convergence
  (:func:`facebench.tasks.race_classification.epochs_to_convergence`).
* **In-domain benchmark** (section 2.1, Table 4): ``train_on: target`` trains on the test dataset's labelled train
  images (:attr:`Baseline.trains_on_test_dataset`).

A backbone with random weights (``weights: null``, the quick profile) is initialised from a fixed seed of its own,
not the run's: it plays the part of one fixed pre-trained network, so repeats differ in the MLP (and fine-tuned
layers) only, as they do with real pre-trained weights.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from facebench.baselines.base import Baseline
from facebench.baselines.nets import (
    Normalize,
    SmallCNN,
    VGGFace,
    _pretrained_state_dict,
    load_vggface_weights,
    vggface_normalize,
)
from facebench.baselines.params import RaceTransferParams
from facebench.baselines.training import (
    ImageBatches,
    LoopConfig,
    StepContext,
    TrainableMethod,
    TrainHistory,
    fit,
    make_optimizer,
    predict_batches,
    resolve_device,
)
from facebench.errors import UserInputError
from facebench.fit_data import FitData, LabelFitData
from facebench.io import atomic_write, writes_allowed
from facebench.protocol import Protocol
from facebench.seeding import seed_for

__all__ = ["MLPHead", "RaceNet", "RaceTransfer", "augment", "backbone_units"]


# ------------------------------------------------------------------------------------------- networks


def backbone_units(name: str, weights: str | None) -> tuple[nn.Module, list[nn.Module], int]:
    """(normalisation, the backbone as an ordered list of units, feature width): units run one after the other
    end in the spatial features; global average pooling follows. A unit is a conv layer with its ReLU (and pool)
    for VGG and VGG-Face, a residual block for ResNet (its stem is one unit), a conv-BN-ReLU for small_cnn.

    Each call returns a fresh copy of one network built (or loaded) once per process: building torchvision's
    ResNet-50 or VGG with random weights takes seconds (VGG's 120 M classifier weights are initialised only to be
    dropped), and a protocol builds its backbones once per stage, repeat and baseline."""
    normalize, units, width, _ = _built_backbone(name, weights)
    return copy.deepcopy(normalize), copy.deepcopy(units), width


def module_digest(module: nn.Module) -> str:
    """A hash of what a module computes: its architecture (repr) and its tensors (names, shapes, dtypes, values)."""
    digest = hashlib.sha256(repr(module).encode())
    for name, tensor in module.state_dict().items():
        digest.update(f"|{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def frozen_key(name: str, weights: str | None, cut: int, face_crop: float) -> str:
    """What the frozen part of a :class:`RaceNet` computes, for the feature cache: the hashes of the normalisation
    and of the first ``cut`` units of the backbone as built (another initialisation, other weights or another cut
    is another key, so a cached store never outlives the network that made it), and the face crop."""
    digests = _built_backbone(name, weights)[3]
    return hashlib.sha256("|".join([repr(face_crop), *digests[:cut + 1]]).encode()).hexdigest()


@functools.lru_cache(maxsize=4)
def _built_backbone(name: str, weights: str | None) -> tuple[nn.Module, list[nn.Module], int, tuple[str, ...]]:
    """The backbone built once per process, with the hashes of its normalisation and of each unit."""
    normalize, units, width = _make_backbone(name, weights)
    return normalize, units, width, tuple(module_digest(m) for m in (normalize, *units))


def _make_backbone(name: str, weights: str | None) -> tuple[nn.Module, list[nn.Module], int]:
    torch.manual_seed(seed_for("race_transfer", "backbone", name))  # a fixed network when weights are random
    if name == "vggface":
        net = VGGFace()
        if weights:
            load_vggface_weights(net, weights)
        return vggface_normalize(), _conv_units(net.features), net.out_dim
    if name == "small_cnn":
        if weights:
            raise UserInputError("baseline race_transfer: the small_cnn backbone has no pretrained weights; set weights "
                                 "to null.")
        net = SmallCNN()
        layers = [m for m in net.features if not isinstance(m, (nn.AdaptiveAvgPool2d, nn.Flatten))]
        return Normalize(), _conv_units(nn.Sequential(*layers)), net.out_dim
    import torchvision

    if not (name.startswith("resnet") or name.startswith("vgg")) or name not in torchvision.models.list_models():
        raise UserInputError(f"baseline race_transfer: backbone '{name}' is not supported; use resnet50, vgg16, vgg19 "
                             "(or another torchvision resnet/vgg), vggface or small_cnn.")
    model = torchvision.models.get_model(name, weights=None)
    if weights:
        model.load_state_dict(_pretrained_state_dict(name, weights))
    if name.startswith("vgg"):
        return Normalize(), _conv_units(model.features), 512
    stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
    blocks = [block for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for block in layer]
    return Normalize(), [stem, *blocks], model.fc.in_features


def _conv_units(layers: nn.Sequential) -> list[nn.Module]:
    """Cut a VGG-style sequence into units, each starting at a Conv2d (its BN, ReLU and pooling follow it)."""
    units: list[list[nn.Module]] = []
    for module in layers:
        if isinstance(module, nn.Conv2d) or not units:
            units.append([])
        units[-1].append(module)
    return [nn.Sequential(*unit) for unit in units]


class MLPHead(nn.Module):
    """Section 2.1's MLP: dense layers of 64 with ReLU and dropout 0.5, one output logit (sigmoid in the loss)."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        # Features are standardised with the training images' mean and sd (set by RaceTransfer.fit): a random
        # backbone's features have arbitrary scales (the quick profile); a stated deviation.
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        layers: list[nn.Module] = []
        for a, b in zip((in_dim, *hidden[:-1]), hidden, strict=True):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        layers.append(nn.Linear(hidden[-1] if hidden else in_dim, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers((x - self.mean) / self.std).squeeze(1)


class RaceNet(nn.Module):
    """normalise → frozen units → trainable units → global average pooling → MLP; ``forward`` gives P(white).

    ``frozen`` and ``trainable`` split the backbone's units; ``logits_from_frozen`` starts after the frozen part
    (what the training steps use on cached or freshly computed frozen outputs)."""

    def __init__(self, *, normalize: nn.Module, frozen: list[nn.Module], trainable: list[nn.Module], width: int,
                 head: MLPHead, face_crop: float = 1.0, frozen_key: str = "") -> None:
        super().__init__()
        self.frozen_key = frozen_key  # the feature cache's key of what the frozen part computes (frozen_key())
        self.normalize = normalize
        self.frozen = nn.Sequential(*frozen)
        self.trainable = nn.Sequential(*trainable)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = head
        self.width = width
        self.face_crop = face_crop
        for p in self.frozen.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> RaceNet:
        super().train(mode)
        self.frozen.eval()  # frozen means frozen: its BatchNorm statistics do not move either
        return self

    def frozen_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.frozen(self.normalize(crop_face(x, self.face_crop)))

    def logits_from_frozen(self, h: torch.Tensor) -> torch.Tensor:
        h = self.trainable(h)
        return self.head(self.pool(h) if h.ndim == 4 else h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits_from_frozen(self.frozen_features(x)))


class FromFrozen(nn.Module):
    """P(white) from the frozen part's outputs (a float store), for validation during training."""

    def __init__(self, net: RaceNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net.logits_from_frozen(h))


class FrozenPart(nn.Module):
    def __init__(self, net: RaceNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.frozen_features(x)


# ------------------------------------------------------------------------------------------ augmentation


def crop_face(x: torch.Tensor, share: float) -> torch.Tensor:
    """The central ``share`` of the image, resized back to its size (section 2.2's face crop, without alignment)."""
    if share >= 1.0:
        return x
    side = x.shape[-1]
    keep = max(1, round(side * share))
    start = (side - keep) // 2
    return F.interpolate(x[..., start:start + keep, start:start + keep], size=x.shape[-2:], mode="bilinear",
                         align_corners=False)


def augment(x: torch.Tensor, *, zoom: float, shear: float, generator: torch.Generator) -> torch.Tensor:
    """Random zoom (a factor in [1 − zoom, 1 + zoom] per image) and shear (an angle in [−shear, shear] radians),
    as Keras' ``ImageDataGenerator(zoom_range, shear_range)`` does (section 2.2), by one affine resampling with
    border replication."""
    n = x.shape[0]
    scale = 1.0 + (torch.rand(n, generator=generator) * 2 - 1) * zoom
    angle = (torch.rand(n, generator=generator) * 2 - 1) * shear
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = scale
    theta[:, 0, 1] = -torch.sin(angle) * scale
    theta[:, 1, 1] = torch.cos(angle) * scale
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


# ------------------------------------------------------------------------------------------ the method


def class_weights(labels: np.ndarray, rule: str) -> tuple[float, float]:
    """The BCE weights (other, white) of ``class_weight`` ``rule``: "balanced" is n / (2 n_class) (scikit-learn's
    ``compute_class_weight("balanced")``), so each class's terms sum to n / 2; "none" is (1, 1). A class absent
    from the labels keeps weight 1.

    >>> class_weights(np.array([1, 0, 0, 0]), "balanced")   # 4 / (2 * 3), 4 / (2 * 1)
    (0.6666666666666666, 2.0)
    """
    if rule == "none":
        return (1.0, 1.0)
    labels = np.asarray(labels) >= 0.5
    counts = (int((~labels).sum()), int(labels.sum()))
    return tuple(len(labels) / (2 * c) if c else 1.0 for c in counts)


class ClassifierMethod(TrainableMethod):
    """One training stage: BCE of the MLP's logit (sigmoid output) on source labels, optimising the trainable
    units and the MLP. Batches are either the frozen part's cached outputs (float) or images (uint8 → [0, 1]),
    which are augmented and sent through the frozen part first."""

    def __init__(self, *, net: RaceNet, loop: LoopConfig, params: RaceTransferParams, val: np.ndarray | None,
                 val_labels: np.ndarray, class_weights: tuple[float, float] = (1.0, 1.0)) -> None:
        self.net = net
        self.class_weights = class_weights  # (other, white): each BCE term's weight by its label
        self.loop = loop
        self.params = params
        self.val = val
        self.val_labels = val_labels

    def modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"trainable": self.net.trainable, "head": self.net.head})

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        parameters = [p for p in self.modules().parameters() if p.requires_grad]
        return {"classifier": make_optimizer(parameters, self.loop)}

    def train_step(self, batches, ctx: StepContext) -> dict[str, torch.Tensor]:
        source = batches["source"]
        x = source["image"]
        with ctx.autocast():
            if not self._features_cached:  # images: augment, then the frozen part
                if self.params.augment:
                    # per rank under torchrun: the ranks' parts of a batch get different zooms and shears
                    generator = torch.Generator().manual_seed(ctx.seed_for("augment", ctx.step))
                    x = augment(x, zoom=self.params.zoom, shear=self.params.shear, generator=generator)
                with torch.no_grad():
                    x = self.net.frozen_features(x)
            logits = self.net.logits_from_frozen(x)
            labels = source["label"].float()
            weights = torch.where(labels >= 0.5, self.class_weights[1], self.class_weights[0])
            loss = F.binary_cross_entropy_with_logits(logits.float(), labels, weight=weights)
        ctx.optimize("classifier", loss)
        accuracy = ((logits.detach() > 0).float() == source["label"].float()).float().mean()
        return {"loss": loss.detach(), "accuracy": accuracy}

    _features_cached = False

    def end_of_epoch(self, ctx: StepContext) -> dict[str, float]:
        if self.val is None or len(self.val) == 0:
            return {}
        p = predict_batches(FromFrozen(self.net), self.val, device=ctx.device, amp=ctx.amp)
        return {"val_accuracy": float(np.mean((p >= 0.5) == (self.val_labels >= 0.5)))}


class RaceTransfer(Baseline):
    """Seed 001's classifier (module docstring): tuned, or tuned then fine-tuned; source or in-domain training."""

    task = "race_classification"
    Params = RaceTransferParams

    def __init__(self, *, protocol: Protocol, params: RaceTransferParams) -> None:
        self.protocol = protocol
        self.params = params
        self.net: RaceNet | None = None
        self.loop: LoopConfig | None = None

    @property
    def trains_on_test_dataset(self) -> bool:
        return self.params.train_on == "target"

    @property
    def input_alignment(self) -> str | None:
        return None if self.params.alignment == "none" else self.params.alignment

    @property
    def backbone(self) -> str:
        return self.params.backbone or self.protocol.model.backbone

    @property
    def weights(self) -> str | None:
        if self.params.weights != "protocol":
            return self.params.weights
        if self.backbone == "vggface" and self.protocol.model.pretrained:  # torchvision has no VGG-Face weights
            return self.params.vggface_weights
        return self.protocol.model.pretrained

    @classmethod
    def preflight(cls, *, protocol: Protocol, params: RaceTransferParams) -> None:
        """Load the backbone's weights once before any data (the same code path as training): missing ImageNet
        weights (not in the torch cache and no network) or a missing VGG-Face file are one sentence up front."""
        baseline = cls(protocol=protocol, params=params)
        if baseline.input_alignment == "openface":  # dlib's models, before any data
            from facebench.data.alignment import load_dlib

            load_dlib(needed_by="race_transfer's alignment 'openface' (seed 001's OpenFace crop)")
        if baseline.weights:
            _built_backbone(baseline.backbone, baseline.weights)  # kept for the runs

    def _build(self, n_trainable: int, seed: int) -> RaceNet:
        normalize, units, width = backbone_units(self.backbone, self.weights)
        torch.manual_seed(seed)  # the MLP's initial weights are part of the run's seed
        head = MLPHead(width, tuple(self.params.hidden), self.params.dropout)
        cut = len(units) - n_trainable
        if cut < 1:
            raise UserInputError(f"baseline race_transfer: unfreeze={n_trainable} leaves no frozen layer of "
                                 f"{self.backbone}'s {len(units)} units; unfreeze at most {len(units) - 1}.")
        return RaceNet(normalize=normalize, frozen=units[:cut], trainable=units[cut:], width=width, head=head,
                       face_crop=self.params.face_crop,
                       frozen_key=frozen_key(self.backbone, self.weights, cut, self.params.face_crop))

    def fit(self, data: FitData, loop: LoopConfig) -> TrainHistory:
        if not isinstance(data, LabelFitData):
            raise TypeError("race_transfer trains on LabelFitData (task race_classification)")
        self.loop = loop
        p = self.params
        device = resolve_device(loop.device)
        stages = [("tune", 0, dataclasses.replace(loop, optimizer=p.tune_optimizer, epochs=p.tune_epochs or loop.epochs,
                                                  hflip=False))]
        if p.finetune:
            stages.append(("finetune", p.unfreeze, dataclasses.replace(
                loop, optimizer=p.finetune_optimizer, lr=p.finetune_lr or loop.lr / 10,
                epochs=p.finetune_epochs or loop.epochs, hflip=False)))
        history = TrainHistory(device=str(device))
        previous: RaceNet | None = None
        for name, n_trainable, config in stages:
            net = self._build(n_trainable, loop.seed)
            if previous is not None:  # section 2.2: "initialised from the values obtained from initial training"
                net.head.load_state_dict(previous.head.state_dict())
            frozen = FrozenPart(net)
            if previous is None:  # the MLP's input standardisation, from the (un-augmented) training features
                full = _cached_features(frozen, data.train_images, device=device, cache_dir=loop.cache_dir)
                pooled = full.reshape(len(full), full.shape[1], -1).mean(-1)
                net.head.mean.copy_(torch.from_numpy(pooled.mean(0)))
                net.head.std.copy_(torch.from_numpy(pooled.std(0) + 1e-6))
            val = (_cached_features(frozen, data.val_images, device=device, cache_dir=loop.cache_dir)
                   if len(data.val_images) else None)
            method = ClassifierMethod(net=net, loop=config, params=p, val=val, val_labels=data.val_labels,
                                      class_weights=class_weights(data.train_labels, p.class_weight))
            if p.augment:  # new zooms and shears every batch: the frozen part runs on every batch
                store = data.train_images
            else:  # the frozen part's outputs never change: computed once
                store = _cached_features(frozen, data.train_images, device=device, cache_dir=loop.cache_dir)
                method._features_cached = True
            config = dataclasses.replace(config, checkpoint_dir=(loop.checkpoint_dir / name if loop.checkpoint_dir
                                                                 else None))
            stage = fit(method, {"source": ImageBatches(store, {"label": data.train_labels.astype(np.float32)})},
                        config)
            history.epochs += [{**record, "stage": name} for record in stage.epochs]
            if stage.resumed_from_epoch is not None and history.resumed_from_epoch is None:
                history.resumed_from_epoch = stage.resumed_from_epoch
            previous = net
        self.net = previous
        return history

    def predict(self, images: np.ndarray) -> np.ndarray:
        """P(white) per image. The frozen part's outputs are the feature cache's (the same for every repeat and
        every model with this backbone and cut), so only the trained units and the MLP run per model."""
        if self.net is None or self.loop is None:
            raise RuntimeError("predict() before fit()")
        device = resolve_device(self.loop.device)
        frozen = _cached_features(FrozenPart(self.net), images, device=device, cache_dir=self.loop.cache_dir)
        return predict_batches(FromFrozen(self.net), frozen, device=device, amp=self.loop.amp)


# ------------------------------------------------------------------------------------------ feature cache

#: Feature stores already computed in this process, by key (several baselines of a protocol share a backbone).
_MEMORY: dict[str, np.ndarray] = {}
#: Largest store kept on disk (bigger ones are recomputed: the paper profile's 224 px activations).
MAX_CACHED_BYTES = 2 * 1024**3


def _cached_features(frozen: FrozenPart, images: np.ndarray, *, device: torch.device,
                     cache_dir: Path | None) -> np.ndarray:
    """The frozen part's outputs (float32) for a uint8 image store, computed once per (frozen part, images) and
    kept in memory and under ``CACHE/features`` (the run's ``--cache-dir``; default ``$FACEBENCH_CACHE``)."""
    from facebench.data.datasets import default_cache_dir

    if not frozen.net.frozen_key:
        raise ValueError("a RaceNet without frozen_key cannot use the feature cache")
    digest = hashlib.sha256(frozen.net.frozen_key.encode() + b"\0" + str(images.shape).encode())
    digest.update(np.ascontiguousarray(images).data)
    name = digest.hexdigest()[:24]
    if name in _MEMORY:
        return _MEMORY[name]
    path = Path(cache_dir or default_cache_dir()) / "features" / f"{name}.npy"
    if path.is_file():
        try:
            features = np.load(path, allow_pickle=False)
            _MEMORY[name] = features
            return features
        except (OSError, ValueError):
            pass  # a damaged cache entry is recomputed and replaced
    features = predict_batches(frozen, images, device=device, batch_size=128).astype(np.float32)
    if features.nbytes <= MAX_CACHED_BYTES:
        _MEMORY[name] = features
        if writes_allowed():  # under torchrun rank 0 alone writes the cache
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path, "wb") as handle:
                np.save(handle, features, allow_pickle=False)
    return features
