"""The shared training loop: determinism, checkpoint-every-epoch, and exact resume."""

from __future__ import annotations

import contextlib
import os
import pickle
import shlex
from dataclasses import replace
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
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 0  # tensors and plain data only

    resumed = _TinyRegressor()  # fresh process: new, differently trained-from-nothing weights
    history = fit(resumed, _data(), _config(tmp_path))
    assert history.resumed_from_epoch == 1
    np.testing.assert_array_equal(_weights(resumed), _weights(reference))
    assert [e["train_loss"] for e in history.epochs] == [e["train_loss"] for e in full.epochs]


def test_checkpoint_of_another_run_is_refused_and_restart_trains_from_scratch(tmp_path: Path) -> None:
    fit(_TinyRegressor(), _data(), _config(tmp_path, epochs=1))
    other = LoopConfig(epochs=1, batch_size=16, seed=7, device="cpu", checkpoint_dir=tmp_path, progress=False,
                       fingerprint="something else")
    with pytest.raises(UserInputError) as error:
        fit(_TinyRegressor(), _data(), other)
    assert str(error.value) == (f"Checkpoint {tmp_path / 'last.pt'} cannot be resumed: it was written for run 'tiny', "
                                "not this run ('something else'); run the same command with --restart to delete it "
                                "and train from scratch.")
    reference = _TinyRegressor()
    fit(reference, _data(), _config(None, epochs=1))
    restarted = _TinyRegressor()
    history = fit(restarted, _data(), replace(other, restart=True))
    assert history.resumed_from_epoch is None
    np.testing.assert_array_equal(_weights(restarted), _weights(reference))
    assert torch.load(tmp_path / "last.pt", weights_only=True)["fingerprint"] == "something else"


class _Marker:
    """Unpickling this runs a shell command that creates ``path``: what a planted checkpoint would do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.path))}",))


def _planted_checkpoint(path: Path, marker: Path, *, as_zip: bool) -> None:
    state = {"epoch": 0, "fingerprint": "tiny", "modules": {}, "hook": _Marker(marker)}
    if as_zip:
        torch.save(state, path)  # a torch zip archive whose data.pkl names os.system
    else:
        path.write_bytes(pickle.dumps(state, protocol=2))  # a bare pickle, as torch's legacy format has them


@pytest.mark.parametrize("as_zip", [True, False])
def test_a_planted_pickle_never_runs_and_is_refused_in_one_sentence(tmp_path: Path, as_zip: bool) -> None:
    control, marker = tmp_path / "control-ran", tmp_path / "ran"
    _planted_checkpoint(tmp_path / "control.pt", control, as_zip=as_zip)
    with contextlib.suppress(RuntimeError):  # a bare pickle is "corrupt" to torch, after it has been unpickled
        torch.load(tmp_path / "control.pt", weights_only=False)  # the old loader: the command runs
    assert control.exists()

    _planted_checkpoint(tmp_path / "last.pt", marker, as_zip=as_zip)
    with pytest.raises(UserInputError) as error:
        fit(_TinyRegressor(), _data(), _config(tmp_path))
    assert not marker.exists()
    message = str(error.value)
    assert message.startswith(f"Checkpoint {tmp_path / 'last.pt'} cannot be resumed: it holds pickled Python objects")
    assert "system" in message and message.endswith("with --restart to delete it and train from scratch.")
    assert message.count(". ") == 0 and "\n" not in message

    history = fit(_TinyRegressor(), _data(), replace(_config(tmp_path), restart=True))
    assert history.resumed_from_epoch is None and not marker.exists()
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 2


@pytest.mark.parametrize("damage", ["truncated", "empty", "text", "folder", "foreign"])
def test_a_checkpoint_that_does_not_load_is_one_sentence(tmp_path: Path, damage: str) -> None:
    fit(_TinyRegressor(), _data(), _config(tmp_path, epochs=1))
    checkpoint = tmp_path / "last.pt"
    data = checkpoint.read_bytes()
    if damage == "truncated":
        checkpoint.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        checkpoint.write_bytes(b"")
    elif damage == "text":
        checkpoint.write_text("not a checkpoint\n" * 1000)
    elif damage == "folder":
        checkpoint.unlink()
        checkpoint.mkdir()
    else:  # loads, but is a plain state dict, not the loop's checkpoint
        torch.save({"weight": torch.zeros(2)}, checkpoint)
    with pytest.raises(UserInputError) as error:
        fit(_TinyRegressor(), _data(), _config(tmp_path))
    message = str(error.value)
    assert message.startswith(f"Checkpoint {checkpoint} cannot be resumed: ")
    assert message.endswith("run the same command with --restart to delete it and train from scratch.")
    assert len(message) < 300 and "\n" not in message
    assert fit(_TinyRegressor(), _data(), replace(_config(tmp_path), restart=True)).resumed_from_epoch is None
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 2


def test_a_checkpoint_of_this_run_that_does_not_fit_the_model_is_one_sentence(tmp_path: Path) -> None:
    fit(_TinyRegressor(), _data(), _config(tmp_path, epochs=1))
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    state["modules"] = {"net.1.weight": torch.zeros(3, 3)}
    torch.save(state, tmp_path / "last.pt")
    with pytest.raises(UserInputError, match=r"cannot be resumed: it does not fit this run's model and optimisers "
                                             r"\('RuntimeError: .*'\); run the same command with --restart"):
        fit(_TinyRegressor(), _data(), _config(tmp_path))


def test_a_checkpoint_holding_numpy_values_is_refused_before_it_is_written(tmp_path: Path) -> None:
    class NumpyLogs(_TinyRegressor):
        def end_of_epoch(self, ctx):  # numpy and tensor scalars become plain floats in the log
            return {"val_a": np.float32(1.5), "val_b": torch.tensor(2.0)}

    history = fit(NumpyLogs(), _data(), _config(tmp_path, epochs=1))
    assert [type(history.epochs[0][k]) for k in ("val_a", "val_b")] == [float, float]
    assert torch.load(tmp_path / "last.pt", weights_only=True)["history"][0]["val_a"] == 1.5
    from facebench.baselines.training import _check_plain

    with pytest.raises(TypeError, match=r"state\['rng'\] is a numpy.ndarray"):
        _check_plain({"rng": np.zeros(3)})


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
