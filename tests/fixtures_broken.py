"""Broken image files under valid names, and same-size replacements of good ones, for the tests of image checks
(test_image_checks.py) and of whole runs on hostile data (test_hostile_data.py)."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def noise_jpeg(seed: int, size: int = 48, quality: int = 90) -> bytes:
    """A JPEG of random pixels: large enough that cutting it in half leaves a valid header."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` RGB pixels (a decompression bomb's header: no pixel data)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


#: Broken files under valid UTKFace names, and the reason each is rejected with.
BROKEN: dict[str, tuple[bytes, str]] = {
    "30_0_0_20990101000000001.jpg.chip.jpg": (b"", "zero-byte file"),
    "30_0_0_20990101000000002.jpg.chip.jpg": (noise_jpeg(0)[:900],
                                               "truncated: image file is truncated"),
    "30_0_0_20990101000000003.jpg.chip.jpg": (b"<html>not a face</html>\n",
                                               "not an image: no JPEG, PNG, BMP, GIF, TIFF, WEBP or PPM header"),
    "30_0_0_20990101000000004.jpg.chip.jpg": (png_header(20000, 20000),
                                               "too large: 400,000,000 pixels, above the 50,000,000-pixel limit "
                                               "(a decompression bomb?)"),
    "30_0_0_20990101000000005.jpg.chip.jpg": (png_header(8000, 8000),
                                               "too large: 8000×8000 pixels, above the 50,000,000-pixel limit"),
    "30_0_0_20990101000000006.jpg.chip.jpg": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
                                               "not an image: no JPEG, PNG, BMP, GIF, TIFF, WEBP or PPM header"),
}


def add_broken_entries(folder: Path) -> dict[str, str]:
    """Write :data:`BROKEN` plus a dangling link, a self-looping link, a folder and a pipe under valid names in
    ``folder``; return ``{name: reason}`` (reasons of truncated files are prefixes)."""
    expected = {}
    for name, (data, reason) in BROKEN.items():
        (folder / name).write_bytes(data)
        expected[name] = reason
    dangling, loop, directory, pipe = (f"31_1_1_2099010100000000{k}.jpg.chip.jpg" for k in range(4))
    (folder / dangling).symlink_to(folder / "no-such-target.jpg")
    (folder / loop).symlink_to(folder / loop)
    (folder / directory).mkdir()
    os.mkfifo(folder / pipe)  # opening it would block: it must be refused from its stat alone
    expected.update({dangling: "dangling symbolic link (its target does not exist)", loop: "symbolic link loop",
                     directory: "a folder, not an image file", pipe: "not a regular file (a pipe, socket or device)"})
    return expected



def same_size_jpeg(jpeg: bytes, size: int) -> bytes:
    """``jpeg`` re-encoded at a quality that fits in ``size`` bytes, padded to exactly ``size`` with comment
    segments (which decoders skip): other pixels, same file size."""
    pixels = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    for quality in range(95, 4, -5):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
        data = buffer.getvalue()
        pad = size - len(data)
        if pad == 0:
            return data
        if pad >= 4:
            segments = b""
            while pad:
                take = min(pad, 65535 + 2)
                if pad - take in (1, 2, 3):
                    take -= 4
                segments += b"\xff\xfe" + struct.pack(">H", take - 2) + b"\0" * (take - 4)
                pad -= take
            return data[:2] + segments + data[2:]
    raise ValueError(f"cannot fit an image in {size} bytes")



def replace_in_place(path: Path, jpeg: bytes) -> None:
    """Overwrite ``path`` with other pixels of the same size, in place, and put its modification time back."""
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.write(same_size_jpeg(jpeg, before.st_size))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
