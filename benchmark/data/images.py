"""The one input path for images: decode → (alignment: none yet) → resize → a cached uint8 tensor store.

Decoding JPEGs every epoch dominates CPU training time, so every image of a run is decoded and resized
once into a uint8 array of shape (N, 3, S, S), saved as ``.npy`` in the cache and memory-mapped on later
runs. Augmentation (random flips) happens on batches, on the training device.
"""

from __future__ import annotations

import functools
import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from facebench.io import atomic_write


def decode_resized(path: Path | io.BytesIO, size: int) -> np.ndarray:
    """Decode one image to RGB and resize it to ``size``×``size`` (bilinear, antialiased): (3, S, S) uint8."""
    with Image.open(path) as image:
        image.draft("RGB", (size, size))  # JPEG DCT-domain downscale: much faster, same look
        image = image.convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.BILINEAR, reducing_gap=2.0)
        return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()


def open_source(root: Path, sample_id: str) -> Path | io.BytesIO:
    """Where an image's bytes are: a file under ``root``, or image k of an insightface pack for sample ids
    ``name.bin#k`` (AgeDB-30's ``agedb_30.bin`` holds JPEG bytes, not files)."""
    file, _, index = sample_id.rpartition("#")
    if file.endswith(".bin") and index.isdigit():
        return io.BytesIO(_pack(Path(root) / file)[int(index)])
    return Path(root) / sample_id


@functools.lru_cache(maxsize=2)
def _pack(path: Path) -> tuple[bytes, ...]:
    from facebench.data.agedb import read_agedb_bin

    return tuple(read_agedb_bin(path)[0])


def image_store(root: Path, sample_ids: list[str] | tuple[str, ...], size: int, cache_dir: Path,
                *, progress: bool = True, key: str = "") -> np.ndarray:
    """Return a (N, 3, size, size) uint8 array of the images, decoding once and caching as ``.npy``.

    ``key`` (e.g. the dataset fingerprint) is part of the cache address, so a changed dataset never
    reuses a stale store.
    """
    digest = hashlib.sha256()
    digest.update(f"{Path(root).resolve()}\0{size}\0{key}\0".encode())
    for sample_id in sample_ids:
        digest.update(sample_id.encode() + b"\n")
    path = Path(cache_dir) / "images" / f"{digest.hexdigest()[:24]}_{size}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="c")  # copy-on-write: torch wants writable arrays
    store = np.empty((len(sample_ids), 3, size, size), dtype=np.uint8)

    def work(i: int) -> None:
        store[i] = decode_resized(open_source(root, sample_ids[i]), size)

    from facebench.progress import track

    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in track(pool.map(work, range(len(sample_ids))), total=len(sample_ids),
                       description=f"decoding {len(sample_ids)} images at {size}px", enabled=progress):
            pass
    with atomic_write(path, "wb") as handle:
        np.save(handle, store)
    return store
