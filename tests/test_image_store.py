"""The image store built in chunks into a memory-mapped .npy (facebench.data.images): the same bytes at the same
address as the earlier all-in-memory build, a build killed with SIGKILL resumes to identical bytes without decoding
its finished chunks again, damaged or foreign progress is never trusted, concurrent builders build once, readers get
a memory map, resident memory stays bounded (scripts/bench_store_memory.py at a small size), and the shared loop's
prefetching keeps batches and their order."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import facebench.data.images as images
from facebench.baselines.prefetch import prefetch
from facebench.data.files import scan_images
from facebench.data.images import decode_resized, image_store, partial_path, progress_path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
N, SIZE = 30, 12


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, list[str]]:
    """N noise JPEGs of assorted sizes (some larger than SIZE, some smaller, one not square)."""
    rng = np.random.default_rng(0)
    ids = []
    for i in range(N):
        side = (8, 20, 33)[i % 3]
        pixels = rng.integers(0, 256, (side, side + (i == 5) * 7, 3), dtype=np.uint8)
        name = f"faces/{i:03d}.jpg"
        (tmp_path / "faces").mkdir(exist_ok=True)
        Image.fromarray(pixels).save(tmp_path / name, quality=90)
        ids.append(name)
    return tmp_path, ids


def old_store(root: Path, ids: list[str], size: int, cache: Path, key: str = "") -> tuple[Path, bytes]:
    """The earlier build, transcribed: its address and the bytes np.save wrote of the in-memory array."""
    facts = scan_images(root, ids, cache_dir=cache, progress=False)
    digest = hashlib.sha256()
    digest.update(f"{root.resolve()}\0{size}\0{key}\0".encode())
    for sample_id in ids:
        digest.update(f"{sample_id}\t{facts[sample_id].digest}\n".encode())
    store = np.empty((len(ids), 3, size, size), dtype=np.uint8)
    for i, sample_id in enumerate(ids):
        store[i] = decode_resized(root / sample_id, size)
    buffer = io.BytesIO()
    np.save(buffer, store)
    return cache / "images" / f"{digest.hexdigest()[:24]}_{size}.npy", buffer.getvalue()


def counting_decoder(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = images.decode_resized

    def decode(source, size):
        calls.append(1)
        return original(source, size)

    monkeypatch.setattr(images, "decode_resized", decode)
    return calls


def test_the_store_has_the_old_address_and_bytes_and_is_memory_mapped(folder, monkeypatch) -> None:
    root, ids = folder
    cache = root / "cache"
    expected_path, expected_bytes = old_store(root, ids, SIZE, cache, key="fp")
    calls = counting_decoder(monkeypatch)
    store = image_store(root, ids, SIZE, cache, progress=False, key="fp", chunk_images=7, workers=3)
    assert expected_path.is_file() and expected_path.read_bytes() == expected_bytes
    assert isinstance(store, np.memmap) and store.flags.writeable and store.shape == (N, 3, SIZE, SIZE)
    assert len(calls) == N
    assert sorted(p.name for p in (cache / "images").iterdir()) == sorted(
        [expected_path.name, f".{expected_path.name}.lock"])  # no partial or marker left behind
    again = image_store(root, ids, SIZE, cache, progress=False, key="fp")
    assert len(calls) == N and isinstance(again, np.memmap)  # read from the cache, not decoded again
    store[0] = 0  # copy-on-write: the file keeps its bytes
    assert expected_path.read_bytes() == expected_bytes
    # chunking and threads do not change the bytes
    other = root / "cache2"
    image_store(root, ids, SIZE, other, progress=False, key="fp", chunk_images=1, workers=1)
    assert (other / "images" / expected_path.name).read_bytes() == expected_bytes


KILLED_BUILD = """
import sys, time
from pathlib import Path
import facebench.data.images as images
original = images.decode_resized
def slow(source, size):
    time.sleep(0.03)
    return original(source, size)
images.decode_resized = slow
root = Path(sys.argv[1])
ids = sys.argv[3:]
images.image_store(root, ids, int(sys.argv[2]), root / "cache", progress=False, chunk_images=3, workers=1)
"""


def test_a_build_killed_mid_way_resumes_to_identical_bytes(folder, monkeypatch) -> None:
    root, ids = folder
    cache = root / "cache"
    expected_path, expected_bytes = old_store(root, ids, SIZE, root / "reference-cache")
    path = cache / "images" / expected_path.name
    process = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, str(root), str(SIZE), *ids],
                               env={**os.environ, "FACEBENCH_NO_PROGRESS": "1"})
    marker = progress_path(path)
    deadline = time.monotonic() + 60
    done: dict = {}
    while time.monotonic() < deadline and len(done) < 3:
        try:
            done = json.loads(marker.read_text())["done"]
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not path.exists(), "the build finished before it could be killed"
    assert partial_path(path).is_file() and 3 <= len(done) < N // 3
    finished = len(json.loads(marker.read_text())["done"])

    calls = counting_decoder(monkeypatch)
    store = image_store(root, ids, SIZE, cache, progress=False, chunk_images=3, workers=2)
    assert len(calls) == N - 3 * finished  # only the chunks not recorded as done are decoded
    assert path.read_bytes() == expected_bytes
    np.testing.assert_array_equal(store, np.load(io.BytesIO(expected_bytes)))
    assert not partial_path(path).exists() and not marker.exists()


def test_damaged_or_foreign_progress_is_not_trusted(folder, monkeypatch) -> None:
    root, ids = folder
    cache = root / "cache"
    expected_path, expected_bytes = old_store(root, ids, SIZE, root / "reference-cache")
    path = cache / "images" / expected_path.name

    def interrupted_build() -> dict:
        """A build stopped by an error after 4 of its 10 chunks: its partial file and marker stay."""
        calls = counting_decoder(monkeypatch)
        original = images.decode_resized

        def failing(source, size):
            if len(calls) > 12:
                raise KeyboardInterrupt
            return original(source, size)

        monkeypatch.setattr(images, "decode_resized", failing)
        with pytest.raises(KeyboardInterrupt):
            image_store(root, ids, SIZE, cache, progress=False, chunk_images=3, workers=1)
        monkeypatch.undo()
        return json.loads(progress_path(path).read_text())

    recorded = interrupted_build()
    assert sorted(recorded["done"]) == ["0", "1", "2", "3"]
    # One recorded chunk's bytes are damaged on disk: that chunk (and the 6 never done) are decoded again.
    with open(partial_path(path), "r+b") as handle:
        handle.seek(-N * 3 * SIZE * SIZE + 3 * (3 * SIZE * SIZE) + 10, os.SEEK_END)
        handle.write(b"\xff\x00\xff")
    calls = counting_decoder(monkeypatch)
    image_store(root, ids, SIZE, cache, progress=False, chunk_images=3, workers=2)
    assert len(calls) == 3 * 7 and path.read_bytes() == expected_bytes
    monkeypatch.undo()

    # Progress recorded for another chunking (or another store) is ignored: everything is decoded again.
    path.unlink()
    recorded = interrupted_build()
    calls = counting_decoder(monkeypatch)
    image_store(root, ids, SIZE, cache, progress=False, chunk_images=5, workers=2)
    assert len(calls) == N and path.read_bytes() == expected_bytes
    monkeypatch.undo()
    path.unlink()
    interrupted_build()
    progress_path(path).write_text(json.dumps({**recorded, "address": "0" * 64}))
    calls = counting_decoder(monkeypatch)
    image_store(root, ids, SIZE, cache, progress=False, chunk_images=3, workers=2)
    assert len(calls) == N and path.read_bytes() == expected_bytes


def test_concurrent_builders_build_once(folder, monkeypatch) -> None:
    root, ids = folder
    calls = counting_decoder(monkeypatch)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(
        np.array(image_store(root, ids, SIZE, root / "cache", progress=False, chunk_images=4)))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and len(calls) == N
    np.testing.assert_array_equal(results[0], results[1])


def test_stale_builds_of_other_stores_are_removed(folder, monkeypatch) -> None:
    root, ids = folder
    images_dir = root / "cache" / "images"
    images_dir.mkdir(parents=True)
    stale, fresh = images_dir / "aaa_12.npy.partial", images_dir / "bbb_12.npy.partial"
    for partial in (stale, fresh):
        partial.write_bytes(b"x")
    progress_path(images_dir / "aaa_12.npy").write_text("{}")
    old = time.time() - images.STALE_BUILD_SECONDS - 10
    os.utime(stale, (old, old))
    image_store(root, ids, SIZE, root / "cache", progress=False)
    assert not stale.exists() and not progress_path(images_dir / "aaa_12.npy").exists() and fresh.exists()


def test_building_a_large_store_keeps_resident_memory_bounded() -> None:
    """A 188 MB store (4,000 images at 128 px, in 9 MB chunks) is built with resident memory growing by a small
    fraction of it (the old all-in-memory build needed all of it at once)."""
    out = subprocess.run([sys.executable, str(SCRIPTS / "bench_store_memory.py"), "--n", "4000", "--size", "128",
                          "--source-size", "24", "--chunk-images", "200", "--workers", "2"],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["store_mb"] == pytest.approx(4000 * 3 * 128 * 128 / 2**20)
    assert result["memmap"] == "memmap"
    assert result["peak_rss_mb"] - result["baseline_rss_mb"] < 0.3 * result["store_mb"], result


# ------------------------------------------------------------------------------------------------ prefetch
def test_prefetch_keeps_the_batches_and_their_order() -> None:
    batches = [{"image": torch.full((2, 1), float(i)), "age": torch.tensor([i, i])} for i in range(7)]
    out = list(prefetch(iter(batches), pin=False, depth=2))
    assert len(out) == 7 and all(a["image"] is b["image"] and a["age"] is b["age"] for a, b in zip(out, batches, strict=True))


def test_prefetch_raises_where_the_batch_failed_and_stops_its_thread_when_closed() -> None:
    def failing():
        yield {"x": torch.zeros(1)}
        raise ValueError("bad batch 2")

    stream = prefetch(failing(), pin=False)
    assert next(stream)["x"].item() == 0
    with pytest.raises(ValueError, match="bad batch 2"):
        next(stream)

    made = []

    def endless():
        while True:
            made.append(1)
            yield {"x": torch.zeros(1)}

    before = threading.active_count()
    stream = prefetch(endless(), pin=False, depth=2)
    for _ in range(3):
        next(stream)
    stream.close()
    assert threading.active_count() == before
    assert len(made) <= 3 + 2 + 1  # what was consumed, what the queue holds, the one being handed over
