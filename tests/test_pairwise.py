"""The pairwise age-difference model (seed 000 §3.2, §3.5, equation 5) and ages from two anchors (§4.4.5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from facebench.baselines.base import FitData
from facebench.baselines.pairwise import Pairwise, PairwiseAgeNet, pairwise_losses, rank_target
from facebench.baselines.training import LoopConfig
from facebench.errors import UserInputError
from facebench.protocol import load_protocol

AGE = Path(__file__).resolve().parent.parent / "protocols" / "age_utk_cross_ethnicity.yaml"
SCALE = 80.0  # synthetic age = SCALE · mean brightness


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny nets: see conftest


def _protocol(*extra: str):
    return load_protocol(AGE, overrides=["model.backbone=small_cnn", "model.pretrained=null", "model.image_size=16",
                                         "model.head_hidden=[32]", "training.device=cpu", "training.lr=0.001",
                                         "training.lr_schedule=constant", *extra])


def _images(n: int, seed: int, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images of random mean brightness plus texture; age = SCALE · mean brightness in [0, 1]."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(20, 235, size=(n, 1, 1, 1))
    images = np.clip(level + rng.normal(0, 15, size=(n, 3, size, size)), 0, 255).astype(np.uint8)
    ages = images.reshape(n, -1).mean(axis=1) / 255.0 * SCALE
    return images, ages


class _Differencer(nn.Module):
    """An exactly antisymmetric pair model: f1 = s·(g(A) − g(B)), logit = t·(g(A) − g(B)), g = mean brightness."""

    def __init__(self, scale: float = SCALE, rank_scale: float = 0.5, rank: bool = True) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        self.rank_scale = rank_scale
        self.rank = rank

    def forward(self, a: torch.Tensor, b: torch.Tensor):
        gap = a.mean(dim=(1, 2, 3)) - b.mean(dim=(1, 2, 3))
        return self.scale * gap, (self.rank_scale * self.scale * gap if self.rank else None)


def test_net_shapes_and_features() -> None:
    torch.manual_seed(0)
    net = PairwiseAgeNet(backbone="small_cnn", head_hidden=(32, 8))
    a, b = torch.rand(5, 3, 16, 16), torch.rand(5, 3, 16, 16)
    diff, logit = net(a, b)
    assert diff.shape == (5,) and logit.shape == (5,)
    features = net.forward_features(a, b)
    assert {"conv", "fc1", "fc2", "diff", "rank_logit"} <= set(features)
    assert features["fc1"].shape == (5, 32)
    assert net.backbone.features[0].in_channels == 6 and net.normalize.mean.shape == (1, 6, 1, 1)
    no_rank = PairwiseAgeNet(backbone="small_cnn", head_hidden=(8,), rank_head=False)
    diff, logit = no_rank(a, b)
    assert diff.shape == (5,) and logit is None


def test_rank_target() -> None:
    assert rank_target(torch.tensor([3.0, 0.0, -2.0])).tolist() == [1.0, 0.5, 0.0]


def test_constraint_losses_vanish_for_an_antisymmetric_net_and_not_otherwise() -> None:
    torch.manual_seed(0)
    a, b = torch.rand(6, 3, 8, 8), torch.rand(6, 3, 8, 8)
    age_a, age_b = a.mean(dim=(1, 2, 3)) * SCALE, b.mean(dim=(1, 2, 3)) * SCALE
    exact = pairwise_losses(_Differencer(), a, b, age_a, age_b)
    assert exact["identity"].item() == 0.0
    assert exact["antisymmetry"].item() == 0.0
    assert exact["reg"].item() < 1e-4
    assert exact["rank"].item() > 0  # BCE against 0/1 targets is never 0 for a finite logit
    assert exact["total"].item() == pytest.approx(exact["reg"].item() + exact["rank"].item(), rel=1e-6)

    torch.manual_seed(0)
    net = PairwiseAgeNet(backbone="small_cnn", head_hidden=(8,))
    nn.init.constant_(net.head.out.bias, 1.0)  # f1(A, A) = 1-ish and f2(A, A) ≠ 0.5: both constraints violated
    generic = pairwise_losses(net, a, b, age_a, age_b, beta=0.5)
    assert generic["identity"].item() > 0.1 and generic["antisymmetry"].item() > 0.1
    expected = generic["reg"] + generic["rank"] + 0.5 * (generic["identity"] + generic["antisymmetry"])
    assert generic["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    generic["total"].backward()
    assert net.head.out.weight.grad is not None

    no_rank = pairwise_losses(net, a, b, age_a, age_b, rank=False, beta=0.0)
    assert no_rank["rank"].item() == 0.0 and no_rank["identity"].item() == 0.0
    assert no_rank["total"].item() == pytest.approx(no_rank["reg"].item(), rel=1e-6)


def test_training_on_brightness_learns_differences() -> None:
    protocol = _protocol()
    images, ages = _images(128, seed=0)
    val_images, val_ages = _images(48, seed=1)
    baseline = Pairwise(protocol=protocol, params=Pairwise.Params(pairs_per_image=2))
    loop = LoopConfig(epochs=8, batch_size=16, seed=3, device="cpu", progress=False, hflip=False)
    history = baseline.fit(FitData(train_images=images, train_ages=ages, val_images=val_images, val_ages=val_ages), loop)
    first, last = history.epochs[0], history.epochs[-1]
    assert last["train_loss"] < 0.65 * first["train_loss"], history.epochs
    assert last["train_reg"] < 0.65 * first["train_reg"], history.epochs
    assert last["val_diff_mae"] < 0.5 * first["val_diff_mae"], history.epochs
    assert last["val_rank_acc"] > 0.8, history.epochs
    assert {"train_rank", "train_id", "val_rank_acc"} <= set(last)

    # Same seed, same weights, same predictions; anchors are required.
    with pytest.raises(RuntimeError, match="anchor"):
        baseline.predict(val_images)
    baseline.anchors = (val_images[:2], val_ages[:2])
    predicted = baseline.predict(val_images[2:])
    assert predicted.shape == (46,) and np.all(np.isfinite(predicted))
    assert np.corrcoef(predicted, val_ages[2:])[0, 1] > 0.9  # the anchors are 40 and 70 "years"
    assert np.mean(np.abs(predicted - val_ages[2:])) < 5.0
    np.testing.assert_array_equal(predicted, baseline.predict(val_images[2:]))


@pytest.mark.parametrize(("method", "rank"), [("mds", True), ("mds", False), ("least_squares", True)])
def test_predict_with_anchors_recovers_exact_ages_from_an_exact_differencer(method: str, rank: bool) -> None:
    baseline = Pairwise(protocol=_protocol(), params=Pairwise.Params(mds=method, rank=rank, references=3,
                                                                    chunk_size=20))
    baseline.net = _Differencer(rank=rank)
    images, ages = _images(75, seed=5)  # 4 chunks of about 19
    anchors = [int(np.argmin(ages)), int(np.argmax(ages))]
    predicted = baseline.predict_with_anchors(images, images[anchors], ages[anchors])
    np.testing.assert_allclose(predicted, ages, atol=1e-3)
    # The anchors are the only labels it needs; they may be any images of the target domain.
    other_anchors, other_ages = _images(2, seed=6)
    np.testing.assert_allclose(baseline.predict_with_anchors(images, other_anchors, other_ages), ages, atol=1e-3)


def test_predict_input_errors() -> None:
    baseline = Pairwise(protocol=_protocol(), params=Pairwise.Params())
    images, ages = _images(4, seed=0)
    with pytest.raises(RuntimeError, match="before fit"):
        baseline.predict_with_anchors(images, images[:2], ages[:2])
    baseline.net = _Differencer()
    with pytest.raises(ValueError, match="at least 2"):
        baseline.predict_with_anchors(images, images[:1], ages[:1])
    with pytest.raises(ValueError, match="shape"):
        baseline.predict_with_anchors(images, _images(2, seed=1, size=8)[0], ages[:2])
    assert baseline.predict_with_anchors(images[:0], images[:2], ages[:2]).shape == (0,)


def test_params_are_validated() -> None:
    assert Pairwise.Params().model_dump() == {
        "alpha": 1.0, "beta": 0.1, "rank": True, "pairs_per_image": 1, "references": 8, "chunk_size": 64,
        "mds": "mds", "anchor_scale": "anchors", "gamma": 0.0, "adapt_layer": "fc1", "adversary_lr": 0.001,
        "smoothing_weight": 0.0, "smoothing_sigma": None}
    with pytest.raises(ValueError):
        Pairwise.Params(mds="spectral")
    with pytest.raises(ValueError):
        Pairwise.Params(alpha=-1)
    with pytest.raises(ValueError):
        Pairwise.Params(unknown=1)


def test_equation_5_target_terms_train_with_unlabelled_target_pairs() -> None:
    """γ·L_adv, β·L_id on target pairs and σ·L_smooth all enter the loss, from target images alone."""
    protocol = load_protocol(Path(__file__).resolve().parent.parent / "protocols" / "age_utk_pairwise_mds.yaml",
                             overrides=["model.image_size=16", "training.batch_size=8"])
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(48, 3, 16, 16), dtype=np.uint8)
    ages = rng.uniform(1, 80, size=48)
    params = Pairwise.Params(gamma=0.5, smoothing_weight=0.01, references=2)
    model = Pairwise(protocol=protocol, params=params)
    data = FitData(train_images=images[:24], train_ages=ages[:24], val_images=images[24:32], val_ages=ages[24:32],
                   target_images=images[32:])
    history = model.fit(data, LoopConfig(epochs=1, batch_size=8, seed=0, lr=protocol.training.lr, device="cpu",
                                         progress=False))
    logged = history.epochs[0]
    assert {"train_adv", "train_target_id", "train_smooth"} <= set(logged)
    assert np.isfinite([logged["train_adv"], logged["train_target_id"], logged["train_smooth"]]).all()
    with pytest.raises(UserInputError, match="needs unlabelled target images"):
        Pairwise(protocol=protocol, params=params).fit(
            FitData(train_images=images[:24], train_ages=ages[:24], val_images=images[24:32], val_ages=ages[24:32]),
            LoopConfig(epochs=1, batch_size=8, seed=0, device="cpu", progress=False))
