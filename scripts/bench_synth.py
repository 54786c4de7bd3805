"""Benchmark the synthetic face generator on one CPU core (not a test).

Prints faces/second for render-only at 64 px and at 200 px, and render + JPEG encode at 200 px, each over
``--n`` faces (default 2,000), and the ratio to the 500 faces/s target. Usage::

    python scripts/bench_synth.py [--n 2000]
"""

from __future__ import annotations

import os

# Pin every thread pool to one core before numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
             "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import io  # noqa: E402
import time  # noqa: E402

from PIL import Image  # noqa: E402

from facebench.data.synth import SynthConfig, render_faces, sample_population  # noqa: E402

TARGET = 500.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="faces per measurement")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # really one core
    population = sample_population(SynthConfig(n=args.n, seed=0))

    def report(label: str, seconds: float) -> None:
        rate = args.n / seconds
        print(f"{label:<44} {rate:8.1f} faces/s   {rate / TARGET:5.2f}x the {TARGET:.0f} faces/s target")

    # The very first call in a process is slower: until glibc's malloc has seen a large block freed, it
    # returns the chunk temporaries to the OS after every chunk and page-faults them back in. Any earlier
    # large array (such as a previous call's output, or write_utkface's first block) ends that.
    start = time.perf_counter()
    render_faces(population, size=64)
    report("render only, 64 px (cold: first call)", time.perf_counter() - start)
    for size in (64, 200):
        start = time.perf_counter()
        render_faces(population, size=size)
        report(f"render only, {size} px", time.perf_counter() - start)

    start = time.perf_counter()
    for begin in range(0, args.n, 256):
        block = population.iloc[begin:begin + 256]
        for pixels, quality in zip(render_faces(block, size=200), block["jpeg_quality"], strict=True):
            Image.fromarray(pixels).save(io.BytesIO(), format="JPEG", quality=int(quality))
    report("render + JPEG encode, 200 px", time.perf_counter() - start)


if __name__ == "__main__":
    main()
