"""Peak resident memory while building an image store of N synthetic images of S px (not a test; the lead runs it).

Issue 16's target: 200,000 images at 200 px (a 24 GB store) built in under 2 GB of resident memory::

    python scripts/bench_store_memory.py --n 200000 --size 200 --folder /big/disk/tmp   # ~3 GB of JPEGs + 24 GB store

The script writes N small JPEGs (``--source-size`` px noise, default 64, so that writing them is quick; the store
resizes them to ``--size``), then builds the store in a fresh child process (``facebench.data.images.image_store``,
exactly what ``run`` calls) and reports that process's resident memory after its imports (``baseline``) and at its
peak (``VmHWM`` from ``/proc/self/status``, which counts the mapped pages of the store too), with the store's size.
``--check-mb M`` exits 1 when the peak exceeds M MB. Files go under ``--folder`` (default: a temporary folder,
deleted afterwards; ``--keep`` keeps it). Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, sys, time
from pathlib import Path

def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB -> MB
    raise RuntimeError(field)

import facebench.data.files, facebench.locking, facebench.progress   # everything image_store imports
from facebench.data.images import image_store   # imports first: the baseline is the interpreter and its modules

root, n, size, cache, chunk, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
ids = [f"img/{i // 1000:04d}/{i:07d}.jpg" for i in range(n)]
baseline = status("VmRSS")
started = time.perf_counter()
store = image_store(Path(root), ids, size, Path(cache), progress=False, chunk_images=int(chunk) or None,
                    workers=int(workers) or None)
seconds = time.perf_counter() - started
print(json.dumps({"baseline_rss_mb": baseline, "peak_rss_mb": status("VmHWM"), "seconds": seconds,
                  "store_mb": store.nbytes / 2**20, "shape": list(store.shape), "memmap": type(store).__name__}))
"""


def write_images(root: Path, n: int, source_size: int) -> None:
    """N noise JPEGs in folders of 1,000 (written once; an existing set of the same N is reused)."""
    import numpy as np
    from PIL import Image

    done = root / f".written-{n}-{source_size}"
    if done.is_file():
        return
    rng = np.random.default_rng(0)
    tiles = [Image.fromarray(rng.integers(0, 256, (source_size, source_size, 3), dtype=np.uint8)) for _ in range(64)]
    for i in range(n):
        path = root / "img" / f"{i // 1000:04d}" / f"{i:07d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        tiles[i % 64].save(path, format="JPEG", quality=50 + (i // 64) % 45)  # many different files
    done.write_text("ok")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="images (default 2,000; the issue's target is 200,000)")
    parser.add_argument("--size", type=int, default=200, help="store image size in px (default 200)")
    parser.add_argument("--source-size", type=int, default=64, help="size of the JPEGs written (default 64)")
    parser.add_argument("--chunk-images", type=int, default=0, help="images per chunk (default: 64 MB worth)")
    parser.add_argument("--workers", type=int, default=0, help="decode threads (default: the cores, at most 8)")
    parser.add_argument("--folder", type=Path, help="where the JPEGs and the store go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the folder")
    parser.add_argument("--check-mb", type=float, help="exit 1 when the peak resident memory exceeds this many MB")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="facebench-store-memory-"))
    try:
        started = time.perf_counter()
        write_images(folder / "data", args.n, args.source_size)
        print(f"wrote {args.n} JPEGs of {args.source_size} px in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        cache = folder / "cache"
        shutil.rmtree(cache / "images", ignore_errors=True)  # measure a build, not a cache hit
        env = {**os.environ, "FACEBENCH_NO_PROGRESS": "1"}
        out = subprocess.run([sys.executable, "-c", CHILD, str(folder / "data"), str(args.n), str(args.size),
                              str(cache), str(args.chunk_images), str(args.workers)],
                             check=True, capture_output=True, text=True, env=env)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result.update(n=args.n, size=args.size, images_per_s=args.n / result["seconds"])
        print(json.dumps(result))
        print(f"{args.n} images at {args.size} px: store {result['store_mb']:.0f} MB, peak resident "
              f"{result['peak_rss_mb']:.0f} MB (baseline after imports {result['baseline_rss_mb']:.0f} MB), "
              f"{result['images_per_s']:.0f} images/s", file=sys.stderr)
        if args.check_mb is not None and result["peak_rss_mb"] > args.check_mb:
            print(f"peak resident memory {result['peak_rss_mb']:.0f} MB is above {args.check_mb:.0f} MB",
                  file=sys.stderr)
            return 1
        return 0
    finally:
        if args.folder is None and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
