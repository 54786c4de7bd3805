"""Data-parallel training under torchrun (facebench.distributed, the shared loop's DDP replicas).

Two CPU processes with the gloo backend train a two-optimiser method through ``fit`` and must end with the weights
and epoch logs of one process on the same global batches; then ``torchrun --nproc-per-node 2 -m facebench run``
runs a quick protocol end to end, writes one results.json, and its rank 1 writes nothing at all.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.nn import functional as F

from facebench.baselines.age_regression import GradientReversal
from facebench.baselines.training import (
    ImageBatches,
    LoopConfig,
    StepContext,
    TrainableMethod,
    fit,
    predict_batches,
)

#: How far the 2-process weights and logs may be from the 1-process ones. The model runs in float64; the two runs
#: differ only in the order of float additions: the batch mean of a loss is (sum of 8) / 8 in one process and
#: ((sum of 4) / 4 + (sum of 4) / 4) / 2 after DDP's average, so each gradient differs by a few units of float64's
#: 2.2e-16, and 3 epochs x 6 steps of Adam and momentum SGD keep it there (measured: at most 1.7e-16 on the weights,
#: 3.6e-15 on logs of about 30, i.e. relative 1e-16). The tolerance (relative, absolute below 1) is 1e-10: far
#: above rounding, far below any real difference (the weights move by more than 1e-3 in training; a rank that
#: missed one gradient average, a shifted batch or flip puts them apart by far more than 1e-10).
TOLERANCE = 1e-10


class _Interrupt(Exception):
    pass


class _Net(nn.Module):
    """Conv → pooled features → age; ``unused`` is in no loss (its gradient stays None on every rank)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 8)
        self.out = nn.Linear(8, 1)
        self.unused = nn.Linear(2, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(F.avg_pool2d(torch.tanh(self.conv(x.double())), 2).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x)).squeeze(1)


def _domain_loss(critic: nn.Module, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    logits = critic(torch.cat([source, target])).squeeze(1)
    labels = torch.cat([torch.zeros(len(source)), torch.ones(len(target))]).double()
    return F.binary_cross_entropy_with_logits(logits, labels)


class _Adversarial(TrainableMethod):
    """Every pattern of the real methods in one step, none of it through ``forward`` of a wrapped module:
    two critic-only steps on detached features (MT-MIM's CLUB steps), one backward stepping both optimisers
    through a gradient reversal (DANN), and a backward reaching the critic that only the net's optimiser steps."""

    streams = ("target",)

    def __init__(self, *, val_images: np.ndarray, stop_at_epoch: int | None = None) -> None:
        torch.manual_seed(0)
        self.net = _Net().double()
        self.critic = nn.Linear(8, 1).double()
        self.val_images = val_images
        self.stop_at_epoch = stop_at_epoch

    def modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"net": self.net, "critic": self.critic})

    def make_optimizers(self):
        return {"net": torch.optim.Adam(self.net.parameters(), lr=1e-2),
                "critic": torch.optim.SGD(self.critic.parameters(), lr=0.05, momentum=0.9)}

    def train_step(self, batches, ctx: StepContext):
        if ctx.epoch == self.stop_at_epoch:
            raise _Interrupt  # stands in for a kill after the previous epoch's checkpoint
        source, target = batches["source"], batches["target"]
        fs, ft = self.net.features(source["image"]), self.net.features(target["image"])
        for _ in range(2):
            ctx.optimize("critic", _domain_loss(self.critic, fs.detach(), ft.detach()))
        age = F.l1_loss(self.net.out(fs).squeeze(1), source["age"].double())
        adversarial = _domain_loss(self.critic, GradientReversal.apply(fs, 0.5), GradientReversal.apply(ft, 0.5))
        ctx.optimize(("net", "critic"), age + 0.3 * adversarial)
        penalty = 0.01 * self.critic(self.net.features(source["image"])).pow(2).mean()
        ctx.optimize("net", penalty)
        return {"loss": age.detach(), "adv": adversarial.detach(), "penalty": penalty.detach()}

    def end_of_epoch(self, ctx):
        predicted = predict_batches(self.net, self.val_images, device=ctx.device)
        return {"val_mean": float(predicted.mean()), "critic_norm": float(self.critic.weight.norm())}


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(100, 3, 8, 8), dtype=np.uint8)
    return {"source": images[:48], "age": images[:48].mean(axis=(1, 2, 3)).astype(np.float32) / 4,
            "target": images[48:88], "val": images[88:]}


def _run(arrays: dict[str, np.ndarray], checkpoint_dir: Path | None, *, batch_size: int = 8,
         stop_at_epoch: int | None = None):
    method = _Adversarial(val_images=arrays["val"], stop_at_epoch=stop_at_epoch)
    data = {"source": ImageBatches(arrays["source"], {"age": arrays["age"]}), "target": ImageBatches(arrays["target"])}
    config = LoopConfig(epochs=3, batch_size=batch_size, seed=3, device="cpu", checkpoint_dir=checkpoint_dir,
                        progress=False, fingerprint="ddp-test")
    history = fit(method, data, config)
    return {k: v.detach().clone() for k, v in method.modules().state_dict().items()}, history


def _worker(rank: int, world: int, port: int, folder: str) -> None:
    """One torchrun rank: the environment torchrun would set, then facebench's session."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from facebench.distributed import rank_and_world, session

    with session(device="cpu"):
        assert rank_and_world() == (rank, world)
        arrays, folder = _arrays(), Path(folder)
        weights, history = _run(arrays, folder / "straight")
        try:
            _run(arrays, folder / "killed", stop_at_epoch=2)
        except _Interrupt:
            pass
        resumed, resumed_history = _run(arrays, folder / "killed")
        uneven, uneven_history = _run(arrays, None, batch_size=7)  # parts of 4 and 3 images
    torch.save({"weights": weights, "epochs": history.epochs, "resumed": resumed,
                "resumed_epochs": resumed_history.epochs, "resumed_from": resumed_history.resumed_from_epoch,
                "uneven": uneven, "uneven_epochs": uneven_history.epochs}, folder / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _close(a: dict[str, float], b: dict[str, float]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key != "seconds":
            assert abs(a[key] - b[key]) <= TOLERANCE * max(1.0, abs(b[key])), (key, a[key], b[key])


def test_two_gloo_processes_train_what_one_process_trains(tmp_path: Path) -> None:
    started = time.perf_counter()
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    reference, history = _run(_arrays(), None)
    uneven, uneven_history = _run(_arrays(), None, batch_size=7)

    for name, value in reference.items():  # the ranks hold one model, the one-process model
        assert torch.equal(ranks[0]["weights"][name], ranks[1]["weights"][name]), name
        torch.testing.assert_close(ranks[0]["weights"][name], value, rtol=TOLERANCE, atol=TOLERANCE)
        # batches of 7: parts of 4 and 3, each loss weighed by its share, still the one-process model
        assert torch.equal(ranks[0]["uneven"][name], ranks[1]["uneven"][name]), name
        torch.testing.assert_close(ranks[0]["uneven"][name], uneven[name], rtol=TOLERANCE, atol=TOLERANCE)
    initial = _Adversarial(val_images=_arrays()["val"]).modules().state_dict()
    assert ranks[0]["weights"]["net.unused.weight"].equal(initial["net.unused.weight"])  # in no loss: never stepped
    for name in ("net.conv.weight", "net.out.weight", "critic.weight"):  # trained far beyond the tolerance
        assert float((reference[name] - initial[name]).abs().max()) > 1e-3, name
    assert len(ranks[0]["epochs"]) == len(history.epochs) == 3
    for mine, theirs in zip(ranks[0]["epochs"] + ranks[0]["uneven_epochs"], history.epochs + uneven_history.epochs,
                            strict=True):
        _close(mine, theirs)
    assert ranks[0]["epochs"] == ranks[1]["epochs"]  # rank 0's record on every rank

    for rank in ranks:  # killed after epoch 2's checkpoint, resumed under the same two processes: bit-identical
        assert rank["resumed_from"] == 2
        for name, value in rank["weights"].items():
            assert torch.equal(rank["resumed"][name], value), name
        assert [{k: v for k, v in e.items() if k != "seconds"} for e in rank["resumed_epochs"]] == \
               [{k: v for k, v in e.items() if k != "seconds"} for e in rank["epochs"]]
    for key, ours, theirs, their_epochs in (("weights", reference, "epochs", history.epochs),
                                            ("uneven", uneven, "uneven_epochs", uneven_history.epochs)):
        logs = max(abs(mine[k] - other[k]) for mine, other in zip(ranks[0][theirs], their_epochs, strict=True)
                   for k in other if k != "seconds")
        weights = max(float((ranks[0][key][n] - v).abs().max()) for n, v in ours.items())
        print(f"2 gloo processes vs 1 ({key}): largest weight difference {weights:.2e}, log difference {logs:.2e}")
    print(f"{time.perf_counter() - started:.1f} s")


#: Installed on torchrun's ranks other than 0 (``sitecustomize`` on PYTHONPATH): reports every write, rename,
#: deletion or new folder under the watched folder on stderr. Rank 0 writes; another rank must write nothing.
WATCH_WRITES = '''
import os, sys
if os.environ.get("RANK", "0") != "0" and os.environ.get("WATCH_WRITES"):
    _root = os.path.realpath(os.environ["WATCH_WRITES"])
    _flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    _events = {"os.rename": 1, "os.replace": 1, "os.link": 1, "os.symlink": 1, "os.remove": 0, "os.rmdir": 0,
               "os.mkdir": 0, "os.truncate": 0, "os.chmod": 0, "os.utime": 0, "shutil.rmtree": 0,
               "shutil.copyfile": 1, "shutil.move": 1}

    def _watch(event, args):
        if event == "open":
            path = args[0] if isinstance(args[2], int) and args[2] & _flags else None
        else:
            path = args[_events[event]] if event in _events else None
        if path is None or isinstance(path, int):
            return
        path = os.path.realpath(os.fsdecode(path))
        if path.startswith(_root):
            sys.stderr.write(f"RANK-WRITE {event} {path}\\n")

    sys.addaudithook(_watch)
    sys.stderr.write("WATCHING-WRITES\\n")
'''


def test_torchrun_runs_a_quick_protocol_and_only_rank_0_writes(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(textwrap.dedent(WATCH_WRITES))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")]),
           "WATCH_WRITES": str(tmp_path), "OMP_NUM_THREADS": "1", "FACEBENCH_NO_PROGRESS": "1"}
    # The watcher itself sees a write by "rank 1" (else the check below could not fail).
    probe = subprocess.run([sys.executable, "-c", f"open({str(tmp_path / 'probe')!r}, 'w').close()"],
                           env={**env, "RANK": "1"}, capture_output=True, text=True, check=True)
    assert f"RANK-WRITE open {tmp_path.resolve() / 'probe'}" in probe.stderr

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "facebench", "run", "age_utk_dann_vs_mmd", "--baseline", "dann fc1",
               "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--no-progress",
               "--set", "dataset.synthetic.n=300", "--set", "dataset.synthetic.image_size=48",
               "--set", "dataset.synthetic.render_size=48", "--set", "model.image_size=32",
               "--set", "training.epochs=2", "--set", "evaluation.n_boot=50"]
    started = time.perf_counter()
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    seconds = time.perf_counter() - started
    output = first.stdout + first.stderr
    assert first.returncode == 0, output[-3000:]
    assert "WATCHING-WRITES" in output  # rank 1 ran under the watcher
    assert "RANK-WRITE" not in output, [line for line in output.splitlines() if "RANK-WRITE" in line][:10]
    results = list((tmp_path / "out").glob("*/*/results.json"))
    assert len(results) == 1 and output.count("results: ") == 1
    run_dir = results[0].parent
    assert (run_dir / "checkpoints" / "last.pt").is_file() and (run_dir.parent / "report.html").is_file()
    document = json.loads(results[0].read_text())
    assert document["provenance"]["processes"] == 2  # not bit-identical to one process on the CPU: recorded
    epochs = document["training"]["epochs"]
    # DANN's warm-up epoch trains the regressor alone; the second steps both optimisers on one backward pass
    assert [("train_adv" in e) for e in epochs] == [False, True]
    assert not list(tmp_path.glob("out/**/*.tmp"))

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    output = again.stdout + again.stderr
    assert again.returncode == 0 and "already done" in output, output[-3000:]
    assert "RANK-WRITE" not in output
    assert list((tmp_path / "out").glob("*/*/results.json")) == results
    print(f"torchrun --nproc-per-node 2: {seconds:.1f} s, then {time.perf_counter() - started - seconds:.1f} s to skip")
