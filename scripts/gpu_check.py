"""GPU check: is the shared training loop as fast as a bare PyTorch loop, and do the GPU paths run?

One script, a few minutes, for a machine with a CUDA device (issue 16). It prints one markdown table and,
with ``--out FILE``, writes it there too: a new file holds the table alone; in an existing file (docs/performance.md,
which keeps the latest table with the device named) it replaces what lies between the lines ``<!-- gpu-check:begin
-->`` and ``<!-- gpu-check:end -->``, and a file without them is refused, never overwritten.

Rows:

1. **Shared loop vs bare loop.** ResNet-50 (torchvision, random init, a 1-unit regression head) on
   ``--size``×``--size`` uint8 images held in host memory, L1 loss, Adam, AMP (float16 autocast + GradScaler)
   and channels_last. (a) a bare PyTorch loop written here — slice the uint8 array, copy to the GPU,
   scale to [0, 1], flip, channels_last, forward/backward/step; (b) ``facebench.baselines.training.fit``
   with a method whose ``train_step`` does the same forward/backward through ``StepContext.optimize``.
   Both see the same images in the same batch size; each runs ``--epochs`` passes and the *last* pass is
   timed (the first includes cuDNN autotuning and allocator warm-up). They alternate ``--repeats`` times and
   the best images/s of each is kept, with peak GPU memory (``torch.cuda.max_memory_allocated``). The
   target is the shared loop within 5 % of the bare loop.
2. **The paper profile of age_utk_cross_ethnicity** for a few hundred steps: ``facebench run --profile
   paper`` (ResNet-50 at 200 px, batch 16) on the synthetic default, random init (no network here:
   ``model.pretrained=null``), ``--paper-epochs`` epochs: wall time, steps, training images/s and MAE.
3. **``facebench evaluate --model``** with docs/examples/torchvision_adapter.py on CUDA: wall time.
4. **AcGAN / StarGAN smoke steps**: a few training steps of each generator's ``paper`` profile with AMP
   (``facebench.baselines.gan.amp_smoke``; on the CPU, shrunk to ``--size``/``--batch``).

On a machine without CUDA the script still runs (``--device cpu`` and small sizes are for the smoke test in
tests/test_gpu_check.py); its numbers then say nothing about GPUs, and the table says which device it used.

Usage::

    python scripts/gpu_check.py --out docs/performance.md      # on a CUDA machine, a few minutes
    python scripts/gpu_check.py --device cpu --size 32 --batch 4 --steps 3 --backbone resnet18 --skip-cli
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn

from facebench.baselines.training import (
    ImageBatches,
    LoopConfig,
    StepContext,
    TrainableMethod,
    fit,
    resolve_device,
)

REPO = Path(__file__).resolve().parents[1]


def make_model(backbone: str) -> nn.Module:
    """A torchvision classifier with its last layer replaced by one regression output (random init)."""
    model = getattr(torchvision.models, backbone)(weights=None)
    model.fc = nn.Linear(model.fc.in_features, 1)
    return model


@dataclass(frozen=True, kw_only=True)
class Throughput:
    images_per_s: float
    peak_gib: float
    steps: int


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def bare_loop(images: np.ndarray, ages: np.ndarray, *, backbone: str, batch: int, epochs: int,
              device: torch.device) -> Throughput:
    """The reference: the plainest fast PyTorch loop over the same uint8 host array."""
    torch.manual_seed(0)
    cuda = device.type == "cuda"
    model = make_model(backbone).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=cuda)
    model.train()
    generator = torch.Generator().manual_seed(0)
    n_steps = len(images) // batch
    _reset_peak(device)
    seconds = 0.0
    for epoch in range(epochs):
        order = np.random.default_rng([0, epoch]).permutation(len(images))
        _sync(device)
        started = time.perf_counter()
        for step in range(n_steps):
            index = order[step * batch:(step + 1) * batch]
            x = torch.from_numpy(images[index]).to(device, non_blocking=True).float().div_(255.0)
            flip = (torch.rand(len(index), generator=generator) < 0.5).to(device)
            x[flip] = x[flip].flip(-1)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(ages[index]).to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=cuda):
                loss = nn.functional.l1_loss(model(x).squeeze(1).float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        _sync(device)
        seconds = time.perf_counter() - started  # the last epoch's time is kept
    return Throughput(images_per_s=n_steps * batch / seconds, peak_gib=_peak_gib(device), steps=n_steps)


class L1Regression(TrainableMethod):
    """The same model and loss as :func:`bare_loop`, as a method of the shared loop."""

    def __init__(self, *, backbone: str) -> None:
        torch.manual_seed(0)
        self.model = make_model(backbone)

    def modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"model": self.model})

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.Adam(self.model.parameters(), lr=1e-3)}

    def train_step(self, batches: dict[str, dict[str, torch.Tensor]], ctx: StepContext) -> dict[str, float]:
        source = batches["source"]
        with ctx.autocast():
            loss = nn.functional.l1_loss(self.model(source["image"]).squeeze(1).float(), source["age"])
        ctx.optimize("model", loss)
        return {"loss": loss.detach()}  # a tensor: .item() here would add a host sync the bare loop lacks


def shared_loop(images: np.ndarray, ages: np.ndarray, *, backbone: str, batch: int, epochs: int,
                device: torch.device) -> Throughput:
    method = L1Regression(backbone=backbone)
    config = LoopConfig(epochs=epochs, batch_size=batch, seed=0, device=str(device), amp=True, channels_last=True,
                        hflip=True, progress=False)
    _reset_peak(device)
    history = fit(method, {"source": ImageBatches(images, {"age": ages})}, config)
    n_steps = len(images) // batch
    return Throughput(images_per_s=n_steps * batch / history.epochs[-1]["seconds"], peak_gib=_peak_gib(device),
                      steps=n_steps)


def loop_comparison(*, backbone: str, size: int, batch: int, steps: int, epochs: int, repeats: int,
                    device: torch.device) -> tuple[Throughput, Throughput]:
    """Best of ``repeats`` alternating runs of each loop on the same data."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(batch * steps, 3, size, size), dtype=np.uint8)
    ages = rng.uniform(1, 90, size=len(images)).astype(np.float32)
    bare: list[Throughput] = []
    shared: list[Throughput] = []
    for _ in range(repeats):
        bare.append(bare_loop(images, ages, backbone=backbone, batch=batch, epochs=epochs, device=device))
        shared.append(shared_loop(images, ages, backbone=backbone, batch=batch, epochs=epochs, device=device))
    best = lambda runs: max(runs, key=lambda r: r.images_per_s)  # noqa: E731
    return best(bare), best(shared)


def _facebench(args: list[str], *, cache: Path, timeout: int) -> tuple[float, int, str]:
    env = {**os.environ, "FACEBENCH_NO_PROGRESS": "1", "FACEBENCH_CACHE": str(cache)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "facebench", *args, "--cache-dir", str(cache)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    return time.perf_counter() - started, done.returncode, (done.stdout + done.stderr)[-2000:]


def _scored_run(args: list[str], *, results: str, out: Path, cache: Path, timeout: int) -> tuple[dict, dict | None]:
    """Run a facebench command; return its row (seconds, exit code, or the error's tail) and its results.json."""
    seconds, code, tail = _facebench([*args, "--synthetic", "--out", str(out), "--no-progress"], cache=cache,
                                     timeout=timeout)
    row: dict = {"seconds": seconds, "exit": code}
    found = sorted(out.glob(results))
    if code != 0 or not found:
        row["error"] = tail
        return row, None
    return row, json.loads(found[0].read_text())


def paper_profile_run(*, out: Path, cache: Path, epochs: int, timeout: int) -> dict:
    """``facebench run`` of age_utk_cross_ethnicity's paper profile (random init), a few hundred steps."""
    row, doc = _scored_run(["run", "age_utk_cross_ethnicity", "--profile", "paper", "--set", "model.pretrained=null",
                            "--set", f"training.epochs={epochs}"],
                           results="age_utk_cross_ethnicity/*/results.json", out=out, cache=cache, timeout=timeout)
    if doc is not None:
        epochs_log = doc["training"].get("epochs", [])
        row.update(device=doc["provenance"].get("device"), mae=doc["metrics"]["overall"]["mae"]["value"],
                   train_seconds=sum(e.get("seconds", 0.0) for e in epochs_log), epochs=len(epochs_log),
                   batch=doc["baseline"].get("training", {}).get("batch_size"))
    return row


def evaluate_model_run(*, out: Path, cache: Path, timeout: int) -> dict:
    """``facebench evaluate --model`` with the example torchvision adapter (random weights: a smoke test)."""
    row, doc = _scored_run(["evaluate", "age_utk_cross_ethnicity", "--profile", "paper", "--model",
                            "docs/examples/torchvision_adapter.py:factory", "--name", "gpu-check"],
                           results="age_utk_cross_ethnicity/submission-gpu-check/results.json", out=out, cache=cache,
                           timeout=timeout)
    if doc is not None:
        row.update(device=doc["provenance"].get("device"), n=doc["metrics"]["overall"]["mae"]["n"])
    return row


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"
    return f"{device.type} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cuda or cpu")
    parser.add_argument("--backbone", default="resnet50", help="torchvision model name (default resnet50)")
    parser.add_argument("--size", type=int, default=200, help="image side in pixels (default 200, as UTKFace)")
    parser.add_argument("--batch", type=int, default=64, help="batch size of the loop comparison (default 64)")
    parser.add_argument("--steps", type=int, default=60, help="steps per timed pass (default 60)")
    parser.add_argument("--epochs", type=int, default=2, help="passes per run; the last is timed (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each loop (default 2)")
    parser.add_argument("--paper-epochs", type=int, default=3, help="epochs of the paper-profile run (default 3)")
    parser.add_argument("--skip-cli", action="store_true", help="only the loop comparison")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    print(f"device: {device_name(device)}; torch {torch.__version__}", flush=True)
    bare, shared = loop_comparison(backbone=args.backbone, size=args.size, batch=args.batch, steps=args.steps,
                                   epochs=args.epochs, repeats=args.repeats, device=device)
    ratio = shared.images_per_s / bare.images_per_s
    raw: dict = {"device": device_name(device), "torch": torch.__version__, "bare": bare.__dict__,
                 "shared": shared.__dict__, "ratio": ratio}
    setting = f"{args.backbone}, {args.size}×{args.size}, batch {args.batch}, AMP + channels_last"
    rows = [
        ("bare PyTorch loop", setting, f"{bare.images_per_s:,.0f} img/s", f"peak {bare.peak_gib:.2f} GiB"),
        ("shared loop (`training.fit`)", setting, f"{shared.images_per_s:,.0f} img/s",
         f"peak {shared.peak_gib:.2f} GiB; **{ratio:.3f}×** the bare loop (target ≥ 0.95)"),
    ]
    if not args.skip_cli:
        with tempfile.TemporaryDirectory() as tmp:
            cache, out = Path(tmp) / "cache", Path(tmp) / "runs"
            paper = paper_profile_run(out=out, cache=cache, epochs=args.paper_epochs, timeout=420)
            raw["paper_profile"] = paper
            if "error" in paper:
                rows.append(("age_utk_cross_ethnicity, paper profile", "", "failed", paper["error"][-300:]))
            else:
                rate = f"{paper['epochs']} epochs of training in {paper['train_seconds']:.0f} s"
                rows.append(("age_utk_cross_ethnicity, paper profile (random init, synthetic)",
                             f"resnet50, 200×200, batch {paper['batch']}, on {paper['device']}",
                             f"{paper['seconds']:.0f} s end to end", f"{rate}; test MAE {paper['mae']:.2f}"))
            evaluation = evaluate_model_run(out=out, cache=cache, timeout=300)
            raw["evaluate_model"] = evaluation
            if "error" in evaluation:
                rows.append(("`evaluate --model` (torchvision adapter)", "", "failed", evaluation["error"][-300:]))
            else:
                rows.append(("`evaluate --model` (torchvision adapter, random weights)",
                             f"resnet18, on {evaluation['device']}", f"{evaluation['seconds']:.0f} s end to end",
                             f"{evaluation['n']} test images scored"))
    from facebench.baselines.gan import amp_smoke

    # The paper profiles' networks, sizes and batches on a GPU; shrunk to --size / --batch on the CPU smoke test.
    small = {} if device.type == "cuda" else {"image_size": args.size, "batch_size": args.batch}
    for kind in ("acgan", "stargan"):
        try:
            smoke = amp_smoke(kind, device=str(device), steps=max(args.steps, 5 if device.type == "cuda" else 1),
                              **small)
        except Exception as error:  # noqa: BLE001 - the table says what failed, the other rows stand
            rows.append((f"{kind} smoke steps (paper profile, AMP)", "", "failed", f"{type(error).__name__}: {error}"[:300]))
            continue
        raw[f"{kind}_smoke"] = smoke
        memory = f"; peak {smoke['peak_gib']} GiB" if smoke.get("peak_gib") is not None else ""
        rows.append((f"{kind} smoke steps ({'paper profile, ' if not small else ''}AMP {'on' if smoke['amp'] else 'off'})",
                     f"{smoke['image_size']}×{smoke['image_size']}, batch {smoke['batch_size']}, {smoke['steps']} "
                     f"steps, on {smoke['device']}", f"{smoke['images_per_s']} img/s",
                     f"{smoke['wall_seconds']} s{memory}; losses finite"))

    table = [f"Device: {device_name(device)}; torch {torch.__version__}; {time.strftime('%Y-%m-%d')}", "",
             "| check | setting | result | notes |", "|---|---|---|---|"]
    table += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    text = "\n".join(table) + "\n"
    print(text)
    if args.out:
        try:
            write_table(args.out, text)
        except ValueError as error:
            print(f"gpu_check: {error}", file=sys.stderr)
            return 2
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2, default=str))
    return 0


BEGIN, END = "<!-- gpu-check:begin -->", "<!-- gpu-check:end -->"


def write_table(path: Path, table: str) -> None:
    """Write ``table`` to ``path``: the whole file when it does not exist, else the part between the
    :data:`BEGIN` and :data:`END` lines (a file without them raises ValueError: the rest of a document is never
    overwritten). Written atomically (:func:`facebench.io.write_text`), so a failure leaves the old file."""
    from facebench.io import write_text

    if path.exists():
        old = path.read_text(encoding="utf-8")
        lines = old.splitlines(keepends=True)
        marks = [i for i, line in enumerate(lines) if line.strip() in (BEGIN, END)]
        if [lines[i].strip() for i in marks] != [BEGIN, END]:
            raise ValueError(f"{path} exists and does not hold one '{BEGIN}' line followed by one '{END}' line, "
                             "so the table was not written there (name a new file, or add the two lines).")
        text = "".join(lines[: marks[0] + 1]) + table + "".join(lines[marks[1]:])
    else:
        text = table
    write_text(path, text)


if __name__ == "__main__":
    raise SystemExit(main())
