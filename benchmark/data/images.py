"""The one input path for images: decode → (alignment) → resize → a cached uint8 tensor store.

Decoding JPEGs every epoch dominates CPU training time, so every image of a run is decoded and resized
once into a uint8 array of shape (N, 3, S, S), saved as ``.npy`` in the cache and memory-mapped on later
runs. Augmentation (random flips) happens on batches, on the training device.

The store's cache address is made from the content hash of every image (:func:`facebench.data.files.scan_images`,
which rehashes only files whose size or timestamps changed), so replacing images under the same names never
reuses the old pixels. Every image was checked when the dataset was read (:func:`facebench.data.files.check_images`);
one that no longer decodes (it changed during the run) is one sentence, not a traceback.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from facebench.errors import UserInputError, shorten
from facebench.io import atomic_write


def _openface_aligner():
    from facebench.data.alignment import OpenFaceAligner

    return OpenFaceAligner()


#: How to build the aligner of each alignment name an image store accepts.
ALIGNERS = {"openface": _openface_aligner}


def decode_resized(path: Path | io.BytesIO, size: int) -> np.ndarray:
    """Decode one image to RGB and resize it to ``size``×``size`` (bilinear, antialiased): (3, S, S) uint8.

    Only the decoders of :data:`~facebench.data.files.IMAGE_FORMATS` are used, and an image of more than
    :data:`~facebench.data.files.MAX_PIXELS` pixels is refused (``ValueError``) before decoding.
    """
    from facebench.data.files import MAX_PIXELS, decoders, too_large

    with Image.open(path, formats=decoders()) as image:
        if image.size[0] * image.size[1] > MAX_PIXELS:
            raise ValueError(too_large(*image.size))
        image.draft("RGB", (size, size))  # JPEG DCT-domain downscale: much faster, same look
        image = image.convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.BILINEAR, reducing_gap=2.0)
        return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()


def decode_aligned(path: Path | io.BytesIO, size: int, aligner) -> np.ndarray:
    """Decode one image to RGB and align it on its landmarks to ``size``×``size`` with ``aligner``
    (:class:`facebench.data.alignment.OpenFaceAligner`): (3, S, S) uint8. Same decoders and size limit as
    :func:`decode_resized`; the full-resolution image is aligned (landmarks need the detail)."""
    from facebench.data.files import MAX_PIXELS, decoders, too_large

    with Image.open(path, formats=decoders()) as image:
        if image.size[0] * image.size[1] > MAX_PIXELS:
            raise ValueError(too_large(*image.size))
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return aligner.align(rgb, size).transpose(2, 0, 1).copy()


def open_source(root: Path, sample_id: str) -> Path | io.BytesIO:
    """Where an image's bytes are: a file under ``root``, or image k of an insightface pack for sample ids
    ``name.bin#k`` (AgeDB-30's ``agedb_30.bin`` holds JPEG bytes, not files)."""
    file, _, index = sample_id.rpartition("#")
    if file.endswith(".bin") and index.isdigit():
        return io.BytesIO(pack_images(Path(root) / file)[int(index)])
    return Path(root) / sample_id


def pack_images(path: Path) -> tuple[bytes, ...]:
    """The encoded images of an insightface pack, read once per version of the file (its size and timestamps)."""
    info = os.stat(path)
    return _pack(Path(path), (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino))


@functools.lru_cache(maxsize=2)
def _pack(path: Path, version: tuple[int, ...]) -> tuple[bytes, ...]:
    from facebench.data.agedb import read_agedb_bin

    return tuple(read_agedb_bin(path)[0])


def image_store(root: Path, sample_ids: list[str] | tuple[str, ...], size: int, cache_dir: Path,
                *, progress: bool = True, key: str = "", alignment: str | None = None) -> np.ndarray:
    """Return a (N, 3, size, size) uint8 array of the images, decoding once and caching as ``.npy``.

    ``alignment`` (a key of :data:`ALIGNERS`, e.g. ``"openface"``) aligns each face on its
    landmarks instead of resizing the whole image; it is part of the cache address (an unaligned store's address
    is what it was before alignments existed).

    The cache address covers the root, the size, ``key`` (e.g. the dataset fingerprint) and the content hash of
    every image, in order, so a changed image never reuses a stale store. A damaged cache file is rebuilt.
    """
    from facebench.data.files import scan_images

    facts = scan_images(root, sample_ids, cache_dir=cache_dir, progress=progress)
    for sample_id in sample_ids:
        if facts[sample_id].problem is not None:
            raise UserInputError(
                f"Image {shorten(sample_id, 80)} under {root} is now rejected ({facts[sample_id].problem}) though it "
                "was accepted when the dataset was read: it changed during the run; run the same command again.")
    digest = hashlib.sha256()
    digest.update(f"{Path(root).resolve()}\0{size}\0{key}\0".encode())
    if alignment is not None:
        digest.update(f"alignment={alignment}\0".encode())
    for sample_id in sample_ids:
        digest.update(f"{sample_id}\t{facts[sample_id].digest}\n".encode())
    path = Path(cache_dir) / "images" / f"{digest.hexdigest()[:24]}_{size}.npy"
    expected = (len(sample_ids), 3, size, size)
    if path.is_file():
        try:
            store = np.load(path, mmap_mode="c", allow_pickle=False)  # copy-on-write: torch wants writable arrays
        except (OSError, ValueError, EOFError):
            store = None  # a damaged cache file (it is only a cache): decoded again below
        if store is not None and store.shape == expected and store.dtype == np.uint8:
            return store
    if alignment is not None:
        ALIGNERS[alignment]()  # an aligner that cannot be built (dlib missing) is one sentence, before any work
    store = np.empty(expected, dtype=np.uint8)
    aligners = threading.local()  # dlib's detector is not shared between threads

    def decode(source: Path | io.BytesIO) -> np.ndarray:
        if alignment is None:
            return decode_resized(source, size)
        if not hasattr(aligners, "aligner"):
            aligners.aligner = ALIGNERS[alignment]()
        return decode_aligned(source, size, aligners.aligner)

    def work(i: int) -> None:
        try:
            store[i] = decode(open_source(root, sample_ids[i]))
        except Exception as error:  # noqa: BLE001 - the file changed after it was checked: one sentence
            raise UserInputError(
                f"Image {shorten(sample_ids[i], 80)} under {root} no longer decodes ({type(error).__name__}), though "
                "it was accepted when the dataset was read: it changed during the run; run the same command again."
            ) from None

    from facebench.progress import track

    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in track(pool.map(work, range(len(sample_ids))), total=len(sample_ids),
                       description=f"decoding {len(sample_ids)} images at {size}px"
                                   + (f" ({alignment}-aligned)" if alignment else ""), enabled=progress):
            pass
    with atomic_write(path, "wb") as handle:
        np.save(handle, store)
    return store
