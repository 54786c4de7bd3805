"""Baselines as the registry lists them: torch-free specs and params, hooks instead of names, one inference loop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from facebench.baselines.base import Baseline, FitData
from facebench.baselines.params import BACKBONE_NAMES, TORCHVISION_BACKBONES
from facebench.baselines.specs import BaselineSpec, as_baseline_spec
from facebench.baselines.training import LoopConfig, TrainHistory, predict_batches
from facebench.errors import UserInputError
from facebench.protocol import load_protocol
from facebench.registry import BASELINES

ROOT = Path(__file__).resolve().parent.parent
PROTOCOLS = sorted((ROOT / "protocols").glob("*.yaml"))


def test_loading_listing_and_validating_protocols_imports_neither_torch_nor_torchvision() -> None:
    code = (
        "import sys\n"
        "from facebench.protocol import load_protocol, validate_all_profiles\n"
        "from facebench.registry import BASELINES\n"
        "from facebench.baselines.specs import as_baseline_spec\n"
        f"for path in {[str(p) for p in PROTOCOLS]!r}:\n"
        "    validate_all_profiles(path)\n"
        "    load_protocol(path)\n"
        "    assert 'torch' not in sys.modules and 'torchvision' not in sys.modules, path\n"
        "for name in BASELINES.names():\n"
        "    as_baseline_spec(BASELINES.get(name)).params()\n"
        "assert 'torch' not in sys.modules and 'torchvision' not in sys.modules, 'listing baselines'\n"
    )
    assert PROTOCOLS
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["source_only", "dann", "mmd", "pairwise", "arcface", "arcface_age", "mtmim",
                                  "dlib_resnet"])
def test_each_spec_describes_its_class(name: str) -> None:
    spec = BASELINES.get(name)
    assert isinstance(spec, BaselineSpec)
    cls = spec.load()
    assert issubclass(cls, Baseline)
    assert cls.Params is spec.params and cls.task == spec.task
    assert (cls.leave_one_out_scores is not Baseline.leave_one_out_scores) == spec.leave_one_out_finetune
    assert as_baseline_spec(cls) == spec  # a class (a plugin's entry) is described the same way


def test_backbone_names_are_torchvisions() -> None:
    import torchvision

    if not torchvision.__version__.startswith("0.29."):  # the list is written out from torchvision 0.29
        pytest.skip(f"the written-out backbone list is checked against torchvision 0.29, not {torchvision.__version__}")
    assert set(TORCHVISION_BACKBONES) == set(torchvision.models.list_models(module=torchvision.models))
    assert BACKBONE_NAMES[0] == "small_cnn"


class _Fixed(Baseline):
    """A plugin baseline registered as a class: nothing to train, no encoder to fine-tune."""

    task = "age_regression"

    def fit(self, data: FitData, loop: LoopConfig) -> TrainHistory:
        return TrainHistory()

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.full(len(images), 30.0)


def test_a_baseline_without_an_encoder_refuses_leave_one_out_in_one_sentence(tmp_path: Path) -> None:
    spec = as_baseline_spec(_Fixed)
    assert spec.task == "age_regression" and not spec.leave_one_out_finetune and spec.load() is _Fixed
    baseline = _Fixed()
    with pytest.raises(UserInputError, match=r"^baseline _Fixed has no trainable encoder, so training\."
                                              r"leave_one_out_finetune cannot fine-tune it\.$"):
        baseline.leave_one_out_scores(np.zeros((3, 3, 8, 8), np.uint8), np.arange(3), np.ones(3),
                                      loop=LoopConfig(epochs=1, batch_size=2, seed=0), epochs=1, batch_size=2, lr=None,
                                      work_dir=tmp_path)


def test_validation_names_a_baseline_that_cannot_be_fine_tuned() -> None:
    with pytest.raises(UserInputError, match="baseline 'dlib_resnet' has no trainable encoder"):
        load_protocol(ROOT / "protocols" / "aifr_fgnet.yaml",
                      overrides=["baselines=[{name: dlib_resnet}]",
                                 "training.leave_one_out_finetune={epochs: 1, batch_size: 4}"])


class _PairNet(nn.Module):
    def __init__(self, rank: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(6, 2, 3)
        self.rank = rank

    def forward(self, a: torch.Tensor, b: torch.Tensor):
        out = self.conv(torch.cat([a, b], dim=1)).mean(dim=(2, 3))
        return out[:, 0], (out[:, 1] if self.rank else None)


@pytest.mark.parametrize("rank", [True, False])
def test_pair_outputs_is_predict_batches_over_pairs(rank: bool) -> None:
    from facebench.baselines.pairwise import pair_outputs

    torch.manual_seed(0)
    net = _PairNet(rank)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(9, 3, 8, 8), dtype=np.uint8)
    pairs = rng.integers(0, 9, size=(23, 2))
    diff, prob = pair_outputs(net, images, pairs, device=torch.device("cpu"), batch_size=5)
    with torch.no_grad():
        x = torch.from_numpy(images).float() / 255
        want_diff, want_logit = net(x[pairs[:, 0]], x[pairs[:, 1]])
    np.testing.assert_allclose(diff, want_diff.numpy(), rtol=1e-5, atol=1e-6)
    if rank:
        np.testing.assert_allclose(prob, torch.sigmoid(want_logit).numpy(), rtol=1e-5, atol=1e-6)
    else:
        assert prob is None
    no_diff, no_prob = pair_outputs(net, images, pairs[:0], device=torch.device("cpu"))
    assert no_diff.shape == (0,) and no_prob is None
    single = predict_batches(nn.Flatten(), images, device=torch.device("cpu"), batch_size=4)
    np.testing.assert_array_equal(single, images.reshape(9, -1) / np.float32(255))
