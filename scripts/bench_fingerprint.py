"""Benchmark the data fingerprint with and without content hashing (not a test).

Writes ``--n`` synthetic UTKFace images (default 2,000 at 200 px, like UTKFace) and times, side by side:

* **labels only**: the read plus the fingerprint of the labels, what facebench did before images were hashed;
* **hash only, cold**: BLAKE2b of every file's bytes, in threads, nothing cached;
* **check + hash, cold**: :func:`facebench.data.files.check_images` with an empty cache: every image hashed and
  decoded in full (header, pixel limit, truncation), in threads; what the first run on a dataset pays;
* **check + hash, warm**: the same with the per-file cache filled: one ``stat`` per image; what every later run,
  ``data verify`` and image-store lookup pays.

Each line prints the ratio to "labels only". Usage::

    python scripts/bench_fingerprint.py [--n 2000] [--size 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import facebench.data.files as files
from facebench.data.datasets import UTKFACE
from facebench.data.synth import SynthConfig, write_utkface
from facebench.data.utkface import read_utkface


def labels_only(root: Path) -> str:
    table = read_utkface(root).table
    text = table[["sample_id", "subject_id", "age", "gender", "race"]].astype("string").fillna("<NA>").to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()


def hash_only(root: Path) -> int:
    ids = read_utkface(root).table["sample_id"].tolist()
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        return len(list(pool.map(lambda s: files._hash_file(root / s), ids)))


def check_and_hash(root: Path, cache: Path) -> str:
    result = UTKFACE.read(root, variant="aligned")
    return files.check_images(result, root, cache_dir=cache, progress=False).content_digest


def best_of(repeat: int, work, before=None) -> float:
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="images")
    parser.add_argument("--size", type=int, default=200, help="image side in pixels")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many timings each")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "utk", Path(tmp) / "cache"
        write_utkface(root, SynthConfig(n=args.n, seed=0, image_size=args.size))
        megabytes = sum(p.stat().st_size for p in (root / "UTKFace").iterdir()) / 1e6
        time.sleep(files.RACY_SECONDS + 0.1)  # past the window in which fresh entries are not trusted
        print(f"{args.n} images of {args.size} px ({megabytes:.1f} MB), {os.cpu_count()} CPUs, best of {args.repeat}")

        base = best_of(args.repeat, lambda: labels_only(root))
        rows = [("labels only (before)", base),
                ("hash only, cold", best_of(args.repeat, lambda: hash_only(root))),
                ("check + hash, cold (first run)",
                 best_of(args.repeat, lambda: check_and_hash(root, cache), lambda: shutil.rmtree(cache, True))),
                ("check + hash, warm (later runs)", best_of(args.repeat, lambda: check_and_hash(root, cache)))]
        for label, seconds in rows:
            print(f"{label:<34} {seconds * 1000:9.1f} ms   {seconds / base:7.2f}x labels only   "
                  f"{seconds / args.n * 1e6:8.1f} µs/image")


if __name__ == "__main__":
    main()
