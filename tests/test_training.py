"""The shared training loop: determinism, checkpoint-every-epoch, and exact resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from facebench.baselines.training import ImageBatches, LoopConfig, StepContext, TrainableMethod, fit
from facebench.errors import UserInputError


class _Interrupt(Exception):
    pass


class _TinyRegressor(TrainableMethod):
    """A two-layer net on 8x8 images, with dropout so that RNG state matters."""

    def __init__(self, *, stop_at_step: int | None = None) -> None:
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
        self.stop_at_step = stop_at_step

    def modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"net": self.net})

    def make_optimizers(self):
        return {"net": torch.optim.Adam(self.net.parameters(), lr=1e-2)}

    def train_step(self, batches, ctx: StepContext):
        if self.stop_at_step is not None and ctx.step == self.stop_at_step:
            raise _Interrupt  # stands in for a kill in the middle of an epoch
        source = batches["source"]
        loss = nn.functional.l1_loss(self.net(source["image"]).squeeze(1), source["age"].float())
        ctx.optimize("net", loss)
        return {"loss": loss.item()}

    def end_of_epoch(self, ctx):
        return {"weight_norm": float(sum(p.norm() for p in self.net.parameters()))}


def _data() -> dict[str, ImageBatches]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(96, 3, 8, 8), dtype=np.uint8)
    ages = images.mean(axis=(1, 2, 3)).astype(np.float32) / 4
    return {"source": ImageBatches(images, {"age": ages})}


def _config(tmp_path: Path | None, epochs: int = 3) -> LoopConfig:
    return LoopConfig(epochs=epochs, batch_size=16, seed=7, device="cpu", checkpoint_dir=tmp_path, progress=False,
                      fingerprint="tiny")


def _weights(method: _TinyRegressor) -> np.ndarray:
    return torch.cat([p.detach().flatten() for p in method.net.parameters()]).numpy()


def test_same_seed_same_weights() -> None:
    a, b = _TinyRegressor(), _TinyRegressor()
    fit(a, _data(), _config(None))
    fit(b, _data(), _config(None))
    np.testing.assert_array_equal(_weights(a), _weights(b))


def test_resume_after_a_kill_mid_epoch_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    reference = _TinyRegressor()
    full = fit(reference, _data(), _config(None))

    steps_per_epoch = 96 // 16
    killed = _TinyRegressor(stop_at_step=steps_per_epoch + 2)  # dies in the middle of epoch 2
    with pytest.raises(_Interrupt):
        fit(killed, _data(), _config(tmp_path))
    assert (tmp_path / "last.pt").is_file()
    assert torch.load(tmp_path / "last.pt", weights_only=False)["epoch"] == 0

    resumed = _TinyRegressor()  # fresh process: new, differently trained-from-nothing weights
    history = fit(resumed, _data(), _config(tmp_path))
    assert history.resumed_from_epoch == 1
    np.testing.assert_array_equal(_weights(resumed), _weights(reference))
    assert [e["train_loss"] for e in history.epochs] == [e["train_loss"] for e in full.epochs]


def test_checkpoint_of_another_configuration_is_not_resumed(tmp_path: Path) -> None:
    fit(_TinyRegressor(), _data(), _config(tmp_path, epochs=1))
    other = LoopConfig(epochs=1, batch_size=16, seed=7, device="cpu", checkpoint_dir=tmp_path, progress=False,
                       fingerprint="something else")
    assert fit(_TinyRegressor(), _data(), other).resumed_from_epoch is None


def test_batches_cover_each_sample_once_per_epoch() -> None:
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(3, axis=1)
    batches = ImageBatches(images, {"age": np.arange(10)}, drop_last=False)
    seen = np.concatenate([b["age"].numpy() for b in batches.epoch(batch_size=4, seed=1, epoch=0)])
    assert sorted(seen) == list(range(10))
    again = np.concatenate([b["age"].numpy() for b in batches.epoch(batch_size=4, seed=1, epoch=0)])
    other = np.concatenate([b["age"].numpy() for b in batches.epoch(batch_size=4, seed=1, epoch=1)])
    assert list(seen) == list(again) and list(seen) != list(other)


class _Scripted(_TinyRegressor):
    """Trains as _TinyRegressor but logs scripted per-epoch quantities (a train loss and a validation score)."""

    def __init__(self, *, losses=None, scores=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.losses, self.scores = losses, scores

    def train_step(self, batches, ctx: StepContext):
        logs = super().train_step(batches, ctx)
        return {"loss": self.losses[ctx.epoch]} if self.losses is not None else logs

    def end_of_epoch(self, ctx):
        return {"val_score": self.scores[ctx.epoch]} if self.scores is not None else {}


def _plateau(tmp_path: Path | None, epochs: int, **settings) -> LoopConfig:
    return LoopConfig(epochs=epochs, batch_size=16, seed=7, device="cpu", checkpoint_dir=tmp_path, progress=False,
                      fingerprint="tiny", lr_schedule="plateau", **settings)


def test_plateau_divides_the_lr_by_10_on_the_train_loss_by_default() -> None:
    # seed 002 section 4.1: "divided by 10 when the loss does not decrease"; patience 0 (the default): the first
    # epoch whose train loss is not below the best so far triggers the drop for the next epoch
    history = fit(_Scripted(losses=[5.0, 4.0, 4.0, 3.0, 3.5, 2.0]), _data(), _plateau(None, 6))
    assert [e["lr"] for e in history.epochs] == pytest.approx([1e-2, 1e-2, 1e-2, 1e-3, 1e-3, 1e-4])


def test_plateau_waits_patience_epochs_on_a_validation_metric() -> None:
    scores = [0.5, 0.6, 0.6, 0.55, 0.6, 0.7]  # mode max: no improvement in epochs 3, 4, 5
    history = fit(_Scripted(scores=scores), _data(), _plateau(None, 6, plateau_metric="val_score",
                                                                   plateau_mode="max", plateau_patience=2))
    # bad epochs 3, 4, 5: more than 2 after epoch 5, so epoch 6 trains at lr / 10
    assert [e["lr"] for e in history.epochs] == pytest.approx([1e-2] * 5 + [1e-3])
    with pytest.raises(UserInputError, match=r"^key 'training.plateau_metric': .*'val_mae'.*\.$"):
        fit(_Scripted(), _data(), _plateau(None, 1, plateau_metric="val_mae"))


def test_plateau_schedule_resumes_bit_identically(tmp_path: Path) -> None:
    scores = [5.0, 4.0, 4.0, 4.0, 4.0, 4.0]  # patience 1: bad epochs 3 and 4 -> drop; 5 and 6 -> drop
    config = dict(plateau_metric="val_score", plateau_patience=1)
    reference = _Scripted(scores=scores)
    full = fit(reference, _data(), _plateau(None, 6, **config))
    assert [e["lr"] for e in full.epochs] == pytest.approx([1e-2] * 4 + [1e-3] * 2)

    steps_per_epoch = 96 // 16
    killed = _Scripted(scores=scores, stop_at_step=3 * steps_per_epoch + 2)  # dies in epoch 4, one bad epoch counted
    with pytest.raises(_Interrupt):
        fit(killed, _data(), _plateau(tmp_path, 6, **config))
    resumed = _Scripted(scores=scores)
    history = fit(resumed, _data(), _plateau(tmp_path, 6, **config))
    assert history.resumed_from_epoch == 3
    np.testing.assert_array_equal(_weights(resumed), _weights(reference))
    assert [(e["lr"], e["train_loss"]) for e in history.epochs] == [(e["lr"], e["train_loss"]) for e in full.epochs]
