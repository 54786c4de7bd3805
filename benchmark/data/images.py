"""The one input path for images: decode → (alignment) → resize → a cached uint8 store on disk.

Decoding JPEGs every epoch dominates CPU training time, so every image of a run is decoded and resized
once into a uint8 array of shape (N, 3, S, S), kept as a ``.npy`` file in the cache and memory-mapped by every
reader (no copy in RAM: the page cache holds what is used). Augmentation (random flips) happens on batches, on
the training device.

The store's cache address is made from the content hash of every image (:func:`facebench.data.files.scan_images`,
which rehashes only files whose size or timestamps changed), the image size and the caller's ``key`` (the dataset
fingerprint), so replacing images under the same names never reuses the old pixels. Every image was checked when
the dataset was read (:func:`facebench.data.files.check_images`); one that no longer decodes (it changed during the
run) is one sentence, not a traceback.

**Building a store that does not fit in memory** (CelebA's 202,599 images at 200 px are 24 GB). The file is
created at its full size with :func:`numpy.lib.format.open_memmap` under a ``.partial`` name and filled chunk by
chunk (:data:`CHUNK_BYTES` of pixels, about 550 images at 200 px): only the chunk being written is mapped, its
images are decoded by a pool of threads (PIL releases the GIL while it decodes and resizes), the chunk is flushed
to disk and its CRC-32 recorded in a progress marker (``<store>.progress.json``, written atomically). So the
process holds one chunk, never the store, and a killed build resumes: on restart the marker is checked against
the store's address, shape and chunking and every recorded chunk's bytes against its CRC, and only the chunks not
(correctly) done are decoded. Only a complete store is renamed to its final name, so a reader never sees a partial
one; one writer at a time builds a given store (an ``fcntl`` lock beside it, :mod:`facebench.locking`), and a
second process waits and then reads it. The bytes of the file are exactly those of ``np.save`` of the in-memory
array the earlier, all-in-RAM build made, under the same address (tested).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from facebench.errors import UserInputError, shorten
from facebench.io import write_json


def _openface_aligner():
    from facebench.data.alignment import OpenFaceAligner

    return OpenFaceAligner()


#: How to build the aligner of each alignment name an image store accepts (``alignment=``).
ALIGNERS = {"openface": _openface_aligner}

#: Most decode threads of an aligned build: each thread holds its own dlib models (about 100 MB).
MAX_ALIGNING_WORKERS = 2

#: Pixel bytes per chunk of a store build: what the building process holds mapped at a time.
CHUNK_BYTES = 64 << 20

#: Most decode threads a build uses by default.
MAX_WORKERS = 8

#: An unfinished build (``.partial`` store) that nobody has touched for this long is deleted when another store is
#: built in the same cache: its dataset has probably changed, and it may be gigabytes.
STALE_BUILD_SECONDS = 7 * 24 * 3600

PROGRESS_FORMAT = "facebench-image-store-progress"


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


def default_workers() -> int:
    """Decode threads for a build: the cores this process may use, at most :data:`MAX_WORKERS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cores))


def store_address(root: Path, sample_ids: Sequence[str], digests: Sequence[str | None], size: int, key: str,
                  alignment: str | None = None) -> str:
    """The SHA-256 that names a store: root, size, ``key``, the alignment when there is one, and every (sample id,
    content digest), in order (an unaligned store keeps the address it had before alignments existed)."""
    digest = hashlib.sha256()
    digest.update(f"{Path(root).resolve()}\0{size}\0{key}\0".encode())
    if alignment is not None:
        digest.update(f"alignment={alignment}\0".encode())
    for sample_id, content in zip(sample_ids, digests, strict=True):
        digest.update(f"{sample_id}\t{content}\n".encode())
    return digest.hexdigest()


def image_store(root: Path, sample_ids: list[str] | tuple[str, ...], size: int, cache_dir: Path,
                *, progress: bool = True, key: str = "", workers: int | None = None,
                chunk_images: int | None = None, alignment: str | None = None) -> np.ndarray:
    """Return the (N, 3, size, size) uint8 store of the images, memory-mapped (copy-on-write) from the cache,
    building it first when it is not there (module docstring: in chunks, resumable, ``workers`` decode threads,
    ``chunk_images`` images per chunk, default :data:`CHUNK_BYTES` worth).

    The cache address covers the root, the size, ``key`` (e.g. the dataset fingerprint) and the content hash of
    every image, in order, so a changed image never reuses a stale store. A damaged cache file is rebuilt.
    ``alignment`` (a key of :data:`ALIGNERS`, e.g. ``"openface"``) aligns each face on its landmarks instead of
    resizing the whole image, and is part of the address.
    """
    from facebench.data.files import scan_images

    facts = scan_images(root, sample_ids, cache_dir=cache_dir, progress=progress)
    for sample_id in sample_ids:
        if facts[sample_id].problem is not None:
            raise UserInputError(
                f"Image {shorten(sample_id, 80)} under {root} is now rejected ({facts[sample_id].problem}) though it "
                "was accepted when the dataset was read: it changed during the run; run the same command again.")
    address = store_address(root, sample_ids, [facts[i].digest for i in sample_ids], size, key, alignment)
    path = Path(cache_dir) / "images" / f"{address[:24]}_{size}.npy"
    expected = (len(sample_ids), 3, size, size)
    if not sample_ids:
        return np.zeros(expected, dtype=np.uint8)  # nothing to decode or map (a zero-length file cannot be mapped)
    store = _open_store(path, expected)
    if store is not None:
        return store
    from facebench.locking import run_folder_lock
    from facebench.progress import console

    path.parent.mkdir(parents=True, exist_ok=True)
    with run_folder_lock(path, on_wait=lambda message: console.print(f"image store {message}")):
        store = _open_store(path, expected)  # another process may have built it while this one waited
        if store is None:
            _remove_stale_builds(path)
            if alignment is not None:
                ALIGNERS[alignment]()  # an aligner that cannot be built (dlib missing) is one sentence, up front
                workers = min(workers or default_workers(), MAX_ALIGNING_WORKERS)
            aligners = threading.local()  # dlib's detector and predictor are not shared between threads

            def decode(i: int) -> np.ndarray:
                if alignment is not None and not hasattr(aligners, "aligner"):
                    aligners.aligner = ALIGNERS[alignment]()
                return _decode(root, sample_ids[i], size, getattr(aligners, "aligner", None))

            build_store(path, expected, decode=decode, address=address, workers=workers, chunk_images=chunk_images,
                        progress=progress, description=f"decoding {len(sample_ids)} images at {size}px"
                        + (f", {alignment}-aligned" if alignment else ""))
            store = _open_store(path, expected)
    if store is None:  # the file written a moment ago does not read back: a bug or a broken disk, not input
        raise RuntimeError(f"the image store {path} was written but does not read back")
    return store


def _decode(root: Path, sample_id: str, size: int, aligner=None) -> np.ndarray:
    try:
        if aligner is not None:
            return decode_aligned(open_source(root, sample_id), size, aligner)
        return decode_resized(open_source(root, sample_id), size)
    except Exception as error:  # noqa: BLE001 - the file changed after it was checked: one sentence
        raise UserInputError(
            f"Image {shorten(sample_id, 80)} under {root} no longer decodes ({type(error).__name__}), though "
            "it was accepted when the dataset was read: it changed during the run; run the same command again."
        ) from None


def _open_store(path: Path, expected: tuple[int, ...]) -> np.ndarray | None:
    """The finished store at ``path``, memory-mapped copy-on-write (torch wants writable arrays; nothing is ever
    written back), or None when it is missing or damaged (wrong header, shape or length)."""
    if not path.is_file():
        return None
    try:
        store = np.load(path, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return store if store.shape == expected and store.dtype == np.uint8 else None


def partial_path(path: Path) -> Path:
    """Where the store ``path`` is built: ``<name>.partial`` beside it (never matched by ``*.npy``)."""
    return path.with_name(path.name + ".partial")


def progress_path(path: Path) -> Path:
    """The progress marker of a build: ``<name>.progress.json`` beside the store."""
    return path.with_name(path.name + ".progress.json")


def _chunks(n: int, chunk: int) -> list[tuple[int, int]]:
    return [(start, min(n, start + chunk)) for start in range(0, n, chunk)]


def _header_offset(file: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset from a ``.npy`` header (``ValueError`` when it is not one)."""
    with open(file, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        if fortran:
            raise ValueError("a Fortran-ordered array")
        return tuple(shape), np.dtype(dtype), handle.tell()


def build_store(path: Path, expected: tuple[int, ...], *, decode, address: str, workers: int | None = None,
                chunk_images: int | None = None, progress: bool = False, description: str = "decoding") -> None:
    """Write the uint8 array of shape ``expected`` whose row ``i`` is ``decode(i)`` to ``path``: in chunks into a
    memory-mapped ``.partial`` file, resuming a killed build of the same ``address`` and chunking, renamed to
    ``path`` when complete (module docstring). The caller holds the store's lock."""
    from facebench.progress import track

    n, row = expected[0], int(np.prod(expected[1:]))
    chunk = chunk_images or max(1, CHUNK_BYTES // row)
    chunks = _chunks(n, chunk)
    partial, marker = partial_path(path), progress_path(path)
    identity = {"format": PROGRESS_FORMAT, "version": 1, "address": address, "shape": list(expected),
                "dtype": "uint8", "chunk_images": chunk}
    done = _resumable_chunks(partial, marker, identity, chunks, row)
    if done is None:
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()
        # open_memmap writes the .npy header (the one np.save writes) and sizes the file; the data stays sparse
        created = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=expected)
        del created
        done = {}
    _, _, offset = _header_offset(partial)
    pending = [k for k in range(len(chunks)) if k not in done]

    def decoded() -> Iterator[None]:
        with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
            for k in pending:
                start, stop = chunks[k]
                # Only this chunk is mapped: the process never holds more than one chunk of the store.
                region = np.memmap(partial, dtype=np.uint8, mode="r+", offset=offset + start * row,
                                   shape=(stop - start, *expected[1:]))

                def fill(i: int, region=region, start=start) -> None:
                    region[i - start] = decode(i)

                for _ in pool.map(fill, range(start, stop)):
                    yield
                region.flush()  # on disk before the marker says so
                done[k] = zlib.crc32(region)
                del region
                write_json(marker, {**identity, "done": {str(j): crc for j, crc in sorted(done.items())}})

    for _ in track(decoded(), total=sum(stop - start for start, stop in (chunks[k] for k in pending)),
                   description=description, enabled=progress):
        pass
    os.replace(partial, path)
    _fsync_folder(path.parent)
    with contextlib.suppress(FileNotFoundError):
        marker.unlink()


def _resumable_chunks(partial: Path, marker: Path, identity: dict, chunks: list[tuple[int, int]],
                      row: int) -> dict[int, int] | None:
    """The chunks of an earlier, killed build that can be kept (index → CRC-32), or None to start afresh: the
    marker must describe this very build (address, shape, chunking), the partial file must have the right
    header and length, and each kept chunk's bytes must still have the CRC recorded for it."""
    from facebench.limits import load_json

    if not partial.is_file() or not marker.is_file():
        return None
    try:
        recorded = load_json(marker.read_text(encoding="utf-8"), where=str(marker))
        shape, dtype, offset = _header_offset(partial)
    except (OSError, ValueError, UnicodeDecodeError, UserInputError):
        return None
    if (not isinstance(recorded, dict) or {k: recorded.get(k) for k in identity} != identity
            or list(shape) != identity["shape"] or dtype != np.uint8
            or partial.stat().st_size != offset + identity["shape"][0] * row):
        return None
    done: dict[int, int] = {}
    claimed = recorded.get("done")
    if not isinstance(claimed, dict):
        return None
    with open(partial, "rb") as handle:
        for name, crc in claimed.items():
            if not (isinstance(name, str) and name.isdigit() and int(name) < len(chunks) and isinstance(crc, int)):
                return None
            start, stop = chunks[int(name)]
            handle.seek(offset + start * row)
            # read in slices: the check holds one slice in memory, not the chunk
            running = 0
            for begin in range(start * row, stop * row, 1 << 20):
                running = zlib.crc32(handle.read(min(1 << 20, stop * row - begin)), running)
            if running == crc:
                done[int(name)] = crc
    return done


def _remove_stale_builds(path: Path) -> None:
    """Delete other stores' unfinished builds in the same folder untouched for :data:`STALE_BUILD_SECONDS` whose
    lock nobody holds (their datasets have changed or they were abandoned)."""
    from facebench.locking import run_folder_lock

    now = time.time()
    for partial in path.parent.glob("*.npy.partial"):
        store = partial.with_name(partial.name.removesuffix(".partial"))
        if store == path:
            continue
        with contextlib.suppress(OSError, UserInputError):
            if now - partial.stat().st_mtime < STALE_BUILD_SECONDS:
                continue
            with run_folder_lock(store, wait=False):
                partial.unlink()
                with contextlib.suppress(FileNotFoundError):
                    progress_path(store).unlink()


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
