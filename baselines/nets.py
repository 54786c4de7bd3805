"""Networks shared by the baselines: backbones (torchvision by name, or a small CPU CNN) and heads.

Input normalisation lives inside the model (:class:`Normalize`), so a model maps uint8-derived [0, 1]
images to outputs and every caller — training, prediction, a user's adapter — preprocesses the same way.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import torch
from torch import nn

from facebench.errors import UserInputError, did_you_mean

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """(x - mean) / std per channel, for [0, 1] images; repeated cyclically for 6-channel pair inputs."""

    def __init__(self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                 channels: int = 3) -> None:
        super().__init__()
        mean_t = torch.tensor([mean[i % len(mean)] for i in range(channels)]).view(1, channels, 1, 1)
        std_t = torch.tensor([std[i % len(std)] for i in range(channels)]).view(1, channels, 1, 1)
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class SmallCNN(nn.Module):
    """A stride-2 stem and three conv-BN-ReLU stages, global average pooling (the quick profile's backbone).

    About 15 M multiply-adds per 64×64 image: a few seconds per epoch of a few thousand faces on 2 CPU cores.
    """

    def __init__(self, *, in_channels: int = 3, widths: tuple[int, ...] = (24, 32, 64, 128)) -> None:
        super().__init__()

        def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                    nn.ReLU(inplace=True)]

        layers = block(in_channels, widths[0], 2)
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += block(c_in, c_out, 2) + block(c_out, c_out, 1)
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


#: VGG-Face's input: RGB in 0..255 minus this mean, no scaling (Parkhi et al. 2015; the vgg_face_dag port's
#: ``meta``), at 224 x 224. Not ImageNet's normalisation.
VGGFACE_MEAN_255 = (129.186, 104.762, 93.594)
#: The conv layers of VGG-Face (the VGG-16 layout), named as in the vgg_face_dag port: (name, in, out).
VGGFACE_CONVS: tuple[tuple[str, int, int], ...] = (
    ("conv1_1", 3, 64), ("conv1_2", 64, 64), ("conv2_1", 64, 128), ("conv2_2", 128, 128),
    ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv4_1", 256, 512),
    ("conv4_2", 512, 512), ("conv4_3", 512, 512), ("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512),
)


class VGGFace(nn.Module):
    """VGG-Face's convolutional trunk (Parkhi, Vedaldi, Zisserman, BMVC 2015; seed 001 section 2.1's "VGGFace"):
    the VGG-16 conv layers named ``conv1_1`` … ``conv5_3`` with ReLU and 2 x 2 max-pooling after each block,
    then global average pooling to 512 features (the fc6–fc8 classifier of the 2,622 training identities is not
    used). Its own preprocessing (:data:`VGGFACE_MEAN_255`, applied by :func:`vggface_normalize`).

    Weights: facebench ships none and downloads none. ``load_vggface_weights(path)`` reads a torch state dict
    (``torch.save(state_dict, path)``, loaded with ``weights_only=True``) with the vgg_face_dag port's keys
    ``conv1_1.weight``, ``conv1_1.bias``, … ``conv5_3.bias`` (fc6–fc8 keys may be present and are ignored); the
    port's weights (vgg_face_dag.pth from the Oxford VGG group's PyTorch conversion) are in this format.
    """

    def __init__(self) -> None:
        super().__init__()
        from collections import OrderedDict

        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for name, c_in, c_out in VGGFACE_CONVS:
            layers[name] = nn.Conv2d(c_in, c_out, 3, padding=1)
            layers[name.replace("conv", "relu")] = nn.ReLU(inplace=True)
            if name in ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3"):
                layers[f"pool{name[4]}"] = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.features = nn.Sequential(layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = 512
        # Random weights (loaded ones replace them) initialised as torchvision's VGG: He (fan-out) weights, zero
        # biases. torch's default Conv2d init shrinks the signal about 2.5-fold per layer, so after 13 layers the
        # features were the biases' constant plus 1 % of image-dependent signal, and fine-tuning the last layer
        # (whose input the MLP sees standardised by that 1 %) moved them by many standard deviations: the quick
        # profile's fine-tuned VGG-Face fell to chance.
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x))


def vggface_normalize() -> Normalize:
    """VGG-Face's preprocessing for [0, 1] images: 255·x − mean, i.e. (x − mean/255) / (1/255)."""
    return Normalize(mean=tuple(m / 255.0 for m in VGGFACE_MEAN_255), std=(1 / 255.0,) * 3)


def load_state_dict_file(path: Path, *, where: str) -> dict[str, torch.Tensor]:
    """The state dict in the weights file ``path`` (at its top level or under ``"state_dict"``), read with
    ``weights_only=True``: a weights file is data, never code (a pickled object in it is refused, not run). One
    sentence starting with ``where`` for a file torch cannot read that way or one that holds no dict."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, not torch, or refused: the same to the user
        raise UserInputError(f"{where} {path} is not a readable torch state dict of tensors "
                             f"({type(exc).__name__}).") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserInputError(f"{where} {path} holds a {type(state).__name__}, not a state dict.")
    return state


def load_vggface_weights(model: VGGFace, path: str | Path) -> None:
    """Load the vgg_face_dag port's conv weights (format in :class:`VGGFace`); one sentence for a missing file,
    an unreadable one or missing keys."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserInputError(f"VGGFace weights file {path} does not exist; put the vgg_face_dag port's state dict "
                             "there (see facebench.baselines.nets.VGGFace) or set the baseline's weights to null.")
    state = load_state_dict_file(path, where="VGGFace weights file")
    wanted = {f"{name}.{kind}" for name, _, _ in VGGFACE_CONVS for kind in ("weight", "bias")}
    missing = sorted(wanted - set(state))
    if missing:
        raise UserInputError(f"VGGFace weights file {path} lacks {len(missing)} of the conv keys of the vgg_face_dag "
                             f"format, e.g. {missing[0]}.")
    try:
        model.features.load_state_dict({k: state[k] for k in wanted}, strict=False)
    except RuntimeError as exc:
        raise UserInputError(f"VGGFace weights file {path} does not fit VGG-Face's layers "
                             f"({str(exc).splitlines()[-1].strip()[:80]}).") from None


_HEAD_ATTRIBUTES = ("fc", "classifier", "heads", "head")


def _strip_classifier(model: nn.Module) -> tuple[nn.Module, int]:
    """Replace a torchvision classifier's final layer by Identity; return the model and its feature width."""
    for attribute in _HEAD_ATTRIBUTES:
        head = getattr(model, attribute, None)
        if head is None:
            continue
        linears = [m for m in head.modules() if isinstance(m, nn.Linear)] if not isinstance(head, nn.Linear) else [head]
        if not linears:
            continue
        width = linears[0].in_features if isinstance(head, nn.Linear) or len(linears) == 1 else linears[-1].in_features
        if isinstance(head, nn.Linear) or len(linears) == 1:
            setattr(model, attribute, nn.Identity())
            return model, linears[0].in_features
        # A Sequential classifier (VGG, EfficientNet): keep everything but its last Linear.
        last_name = [name for name, m in head.named_modules() if m is linears[-1]][0]
        parent = head
        *path, leaf = last_name.split(".")
        for part in path:
            parent = getattr(parent, part)
        setattr(parent, leaf, nn.Identity())
        return model, width
    raise UserInputError(f"model.backbone: cannot find the classification head of {type(model).__name__}.")


def _widen_first_conv(model: nn.Module, in_channels: int) -> None:
    """Give the first conv ``in_channels`` inputs, copying pretrained filters cyclically (DomainBed's recipe)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if module.in_channels == in_channels:
                return
            new = nn.Conv2d(in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                            bias=module.bias is not None)
            with torch.no_grad():
                for c in range(in_channels):
                    new.weight[:, c] = module.weight[:, c % module.in_channels] * (module.in_channels / in_channels)
                if module.bias is not None:
                    new.bias.copy_(module.bias)
            parent = model
            *path, leaf = name.split(".")
            for part in path:
                parent = getattr(parent, part)
            setattr(parent, leaf, new)
            return


def backbone_names() -> list[str]:
    """``small_cnn`` and every torchvision classification model name."""
    import torchvision

    return ["small_cnn", "vggface", *torchvision.models.list_models(module=torchvision.models)]


def build_backbone(name: str, *, pretrained: str | None = None, in_channels: int = 3) -> tuple[nn.Module, int]:
    """A feature extractor and its output width: ``small_cnn`` or any torchvision classification model.

    ``pretrained`` is a torchvision weights name (``DEFAULT``, ``IMAGENET1K_V2``) or a path to a local
    state dict saved from the same torchvision architecture. Weights that cannot be had raise one sentence.
    """
    if name == "small_cnn":
        if pretrained:
            raise UserInputError("model.pretrained: the small_cnn backbone has no pretrained weights; set it to null.")
        net = SmallCNN(in_channels=in_channels)
        return net, net.out_dim
    if name == "vggface":  # its own preprocessing: a model built here should use vggface_normalize()
        if in_channels != 3:
            raise UserInputError("model.backbone: vggface takes 3-channel images only.")
        vgg = VGGFace()
        if pretrained:
            load_vggface_weights(vgg, pretrained)
        return vgg, vgg.out_dim
    import torchvision

    if name not in backbone_names():
        raise UserInputError(f"model.backbone: unknown backbone '{name}'{did_you_mean(name, backbone_names())}.")
    model = torchvision.models.get_model(name, weights=None)
    if pretrained:
        model.load_state_dict(_pretrained_state_dict(name, pretrained))
    model, width = _strip_classifier(model)
    if in_channels != 3:
        _widen_first_conv(model, in_channels)
    return model, width


def _pretrained_state_dict(name: str, pretrained: str) -> dict[str, torch.Tensor]:
    path = Path(pretrained).expanduser()
    if path.suffix in {".pth", ".pt", ".bin"} or path.exists():
        if not path.is_file():
            raise UserInputError(f"model.pretrained: weights file {path} does not exist.")
        return load_state_dict_file(path, where="model.pretrained:")
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name)[pretrained]
    except KeyError:
        names = [w.name for w in torchvision.models.get_model_weights(name)] + ["DEFAULT"]
        raise UserInputError(f"model.pretrained: {name} has no weights '{pretrained}'{did_you_mean(pretrained, names)}.") from None
    # torch.hub writes 'Downloading: "<url>" to <file>' to stderr before it tries the network; without a network
    # that line would precede the one sentence below, so it is captured and only shown when the download works.
    hub_lines = io.StringIO()
    try:
        with contextlib.redirect_stderr(hub_lines):
            state = weights.get_state_dict(progress=False)
        if hub_lines.getvalue():
            print(hub_lines.getvalue(), end="", file=sys.stderr)
        return state
    except Exception as exc:  # noqa: BLE001 - any download failure means the same thing to the user
        raise UserInputError(
            f"model.pretrained: could not load {name} weights {weights} ({type(exc).__name__}: no network or no cached copy "
            f"in $TORCH_HOME); put the file there, pass a local .pth path, or set model.pretrained=null."
        ) from None


class RegressionHead(nn.Module):
    """The paper's regression module: fully connected layers fc1, fc2, … ending in one output.

    Named layers let domain-adaptation methods pick which activations to align (seed 000, Table 3).
    """

    def __init__(self, in_dim: int, hidden: tuple[int, ...] = (256, 64), *, out_dim: int = 1, init_bias: float = 0.0):
        super().__init__()
        widths = [in_dim, *hidden]
        self.hidden = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.ReLU(inplace=True)) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.out = nn.Linear(widths[-1], out_dim)
        nn.init.constant_(self.out.bias, init_bias)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.hidden, start=1):
            x = layer(x)
            features[f"fc{i}"] = x
        features["out"] = self.out(x)
        return features


class AgeRegressor(nn.Module):
    """Normalize → backbone → regression head; ``forward`` returns ages (N,), ``forward_features`` all layers."""

    def __init__(self, *, backbone: str, pretrained: str | None, head_hidden: tuple[int, ...], init_age: float) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.backbone, width = build_backbone(backbone, pretrained=pretrained)
        self.backbone_width = width
        self.head = RegressionHead(width, tuple(head_hidden), init_bias=init_age)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        conv = self.backbone(self.normalize(x))
        features = {"conv": conv, **self.head.forward_features(conv)}
        features["age"] = features.pop("out").squeeze(1)
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)["age"]
