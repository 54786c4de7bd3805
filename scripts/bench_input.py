"""Input pipeline benchmark (issue 16; not a test — the lead times it on a quiet machine, or on a GPU).

In one run, at each of age_utk_cross_ethnicity's profile sizes (quick: small CNN at 64 px, batch 64; paper:
ResNet-50 at 200 px, batch 16; read from the protocol), it measures images per second of:

1. **store**: the shared loop's own input path — uint8 batches of the memory-mapped store
   (``facebench.data.images``) made by ``ImageBatches.epoch`` a step ahead in ``baselines.prefetch`` (pinned on
   CUDA) and copied to the device (``non_blocking``), over a whole epoch, page cache warm;
2. **PIL per batch**: the same batches decoded from the JPEGs with PIL at each step (``decode_resized``, the
   store's own decoder) in one thread, stacked and copied to the device; and the same with a pool of threads;
3. **loop input**: the store path followed by the loop's ``_prepare`` (float, [0, 1], flips, channels_last) —
   what the step waits for; the same work follows either path, so it is not part of the store / PIL ratio;
4. **train step**: what the training step consumes — ``SourceOnlyMethod.train_step`` of the protocol's model
   (random init) on batches already on the device, AMP and channels_last on CUDA, after one warm-up step;

and prints the ratios: store / PIL (target ≥ 10×) and loop input / step (above 1: the input keeps the step fed).
The one-off cost of building the store is reported too. The faces are facebench's synthetic UTKFace JPEGs
(200 px), written once under ``--folder``.

    python scripts/bench_input.py                       # 2,000 faces, both profiles, the best device
    python scripts/bench_input.py --n 300 --steps 2     # a smoke run
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from facebench.baselines.age_regression import SourceOnlyMethod
from facebench.baselines.nets import AgeRegressor
from facebench.baselines.params import SourceOnlyParams
from facebench.baselines.prefetch import prefetch
from facebench.baselines.training import ImageBatches, LoopConfig, StepContext, _prepare, resolve_device
from facebench.data.images import decode_resized, default_workers, image_store
from facebench.protocol import load_protocol
from facebench.registry import DATASETS

PROTOCOL = "age_utk_cross_ethnicity"


def faces(folder: Path, n: int) -> tuple[Path, list[str], np.ndarray]:
    """N synthetic UTKFace JPEGs (200 px) under ``folder``: root, sample ids, ages (from the names)."""
    spec = DATASETS.get("utkface")
    root = folder / f"utkface-{n}"
    if not root.is_dir():
        spec.write(root, spec.synthetic_settings(n=n, seed=0, image_size=200, what="bench_input"))
    ids = sorted(str(p.relative_to(root)) for p in root.rglob("*.jpg"))[:n]
    ages = np.array([float(Path(i).name.split("_")[0]) for i in ids], dtype=np.float32)
    return root, ids, ages


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batch_indices(n: int, batch: int) -> list[np.ndarray]:
    """The batches of one epoch, in the loop's order (ImageBatches.epoch with seed 0, epoch 0)."""
    positions = ImageBatches(np.zeros((n, 1), np.uint8), {"i": np.arange(n)})
    return [b["i"].numpy() for b in positions.epoch(batch_size=batch, seed=0, epoch=0)]


def to_device(batch: dict[str, torch.Tensor], *, device: torch.device, config: LoopConfig,
              generator: torch.Generator, prepare: bool) -> torch.Tensor:
    """The batch's images on the device: uint8 as copied, or as the loop's ``_prepare`` makes them."""
    if prepare:
        return _prepare(batch, device=device, config=config, generator=generator)["image"]
    return batch["image"].to(device, non_blocking=True)


def time_store(store: np.ndarray, ages: np.ndarray, *, batch: int, device: torch.device, config: LoopConfig,
               prepare: bool) -> float:
    batches = ImageBatches(store, {"age": ages})
    generator = torch.Generator().manual_seed(0)
    images = 0
    for _ in range(2):  # the first pass warms the page cache; the second is timed
        sync(device)
        started = time.perf_counter()
        images = 0
        for b in prefetch(batches.epoch(batch_size=batch, seed=0, epoch=0), pin=device.type == "cuda"):
            images += len(to_device(b, device=device, config=config, generator=generator, prepare=prepare))
        sync(device)
        seconds = time.perf_counter() - started
    return images / seconds


def time_pil(root: Path, ids: list[str], ages: np.ndarray, *, size: int, batch: int, device: torch.device,
             config: LoopConfig, workers: int, limit: int) -> float:
    generator = torch.Generator().manual_seed(0)
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None

    def decode(i: int) -> np.ndarray:
        return decode_resized(root / ids[i], size)

    images = 0
    sync(device)
    started = time.perf_counter()
    for index in batch_indices(len(ids), batch):
        pixels = list(pool.map(decode, index)) if pool else [decode(i) for i in index]
        b = {"image": torch.from_numpy(np.stack(pixels)), "age": torch.as_tensor(ages[index])}
        images += len(to_device(b, device=device, config=config, generator=generator, prepare=False))
        if images >= limit:
            break
    sync(device)
    seconds = time.perf_counter() - started
    if pool:
        pool.shutdown()
    return images / seconds


def time_step(store: np.ndarray, ages: np.ndarray, *, protocol, device: torch.device, config: LoopConfig,
              steps: int) -> float:
    model = protocol.model
    net = AgeRegressor(backbone=model.backbone, pretrained=None, head_hidden=tuple(model.head_hidden),
                       init_age=float(ages.mean()))
    method = SourceOnlyMethod(model=net, params=SourceOnlyParams(), loop=config, val_images=store[:1],
                              val_ages=ages[:1])
    modules = method.modules().to(device)
    if config.channels_last and device.type == "cuda":
        modules = modules.to(memory_format=torch.channels_last)
    modules.train()
    optimizers = method.make_optimizers()
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp and device.type == "cuda")
    ctx = StepContext(device=device, amp=config.amp, optimizers=optimizers, scaler=scaler)
    generator = torch.Generator().manual_seed(0)
    made = ImageBatches(store, {"age": ages}).epoch(batch_size=config.batch_size, seed=0, epoch=0)
    ready = [_prepare(next(made), device=device, config=config, generator=generator) for _ in range(min(steps + 1, 8))]
    method.train_step({"source": ready[0]}, ctx)  # warm-up (cuDNN autotuning, allocator)
    sync(device)
    started = time.perf_counter()
    for k in range(steps):
        method.train_step({"source": ready[1 + k % (len(ready) - 1)]}, ctx)
    sync(device)
    return steps * config.batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="synthetic faces (default 2,000)")
    parser.add_argument("--profiles", nargs="+", default=["quick", "paper"], help="protocol profiles (sizes)")
    parser.add_argument("--steps", type=int, default=5, help="training steps timed per profile (default 5)")
    parser.add_argument("--pil-images", type=int, default=512, help="images decoded per PIL measurement (default 512)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="decode threads (store build, PIL pool)")
    parser.add_argument("--device", default="auto", help="auto (CUDA > MPS > CPU), cuda, cpu")
    parser.add_argument("--folder", type=Path, help="where the faces and stores go (default: a temporary folder)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="facebench-bench-input-"))
    try:
        root, ids, ages = faces(folder, args.n)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
        print(f"device {name}; {len(ids)} synthetic UTKFace JPEGs (200 px); {args.workers} decode threads")
        header = ("| profile | size | batch | backbone | store build | store | PIL 1 thread | PIL "
                  f"{args.workers} threads | loop input | train step | store / PIL | loop input / step |")
        print(header)
        print("|" + "---|" * (header.count("|") - 1))
        for profile in args.profiles:
            protocol = load_protocol(PROTOCOL, profile=profile)
            size, batch = protocol.model.image_size, protocol.training.batch_size
            config = LoopConfig(epochs=1, batch_size=batch, seed=0, lr=protocol.training.lr, device=str(device),
                                progress=False)
            cache = folder / "cache"
            shutil.rmtree(cache / "images", ignore_errors=True)
            started = time.perf_counter()
            store = image_store(root, ids, size, cache, progress=False, workers=args.workers)
            build = len(ids) / (time.perf_counter() - started)
            stored = time_store(store, ages, batch=batch, device=device, config=config, prepare=False)
            loop_input = time_store(store, ages, batch=batch, device=device, config=config, prepare=True)
            pil = time_pil(root, ids, ages, size=size, batch=batch, device=device, config=config, workers=1,
                           limit=args.pil_images)
            pooled = time_pil(root, ids, ages, size=size, batch=batch, device=device, config=config,
                              workers=args.workers, limit=args.pil_images)
            step = time_step(store, ages, protocol=protocol, device=device, config=config, steps=args.steps)
            print(f"| {profile} | {size} | {batch} | {protocol.model.backbone} | {build:,.0f} | {stored:,.0f} | "
                  f"{pil:,.0f} | {pooled:,.0f} | {loop_input:,.0f} | {step:,.1f} | {stored / pil:.1f}× | "
                  f"{loop_input / step:.1f}× |")
        print("images/s; store build is the one-off decode into the cache (content hashing of the files included).")
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
