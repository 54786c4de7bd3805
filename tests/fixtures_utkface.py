"""Tiny UTKFace trees in the real on-disk format, for reader tests.

Real folder names (``UTKFace/``, ``part1..3/``, ``crop_part1/``), real name patterns, the malformed names
that the real release ships (research notes A1), and tiny solid-colour JPEGs written with PIL (no faces).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from PIL import Image

# Valid aligned names: every race and gender code, ages 0 and 116 (the bounds), 1-, 2- and 3-digit ages, and
# ages on both sides of each age band edge. The first is the example from the UTKFace project page.
VALID_ALIGNED: tuple[str, ...] = (
    "25_0_3_20170116174525125.jpg.chip.jpg",
    "0_1_0_20170110215927291.jpg.chip.jpg",
    "2_0_1_20161219195326347.jpg.chip.jpg",
    "3_1_2_20161219203650636.jpg.chip.jpg",
    "9_0_4_20170103200348347.jpg.chip.jpg",
    "10_1_0_20170103200522151.jpg.chip.jpg",
    "19_0_1_20170116001346217.jpg.chip.jpg",
    "20_1_2_20170116174525125.jpg.chip.jpg",  # same datetime as the first, other labels: fine
    "29_0_0_20170117140112329.jpg.chip.jpg",
    "30_1_3_20170119180041447.jpg.chip.jpg",
    "45_0_0_20170117134231582.jpg.chip.jpg",
    "59_1_1_20170110122040986.jpg.chip.jpg",
    "60_0_4_20170117191547306.jpg.chip.jpg",
    "69_1_0_20170110131649012.jpg.chip.jpg",
    "70_0_0_20170110153238490.jpg.chip.jpg",
    "116_1_2_20170112213001988.jpg.chip.jpg",
    "25_0_3_20170116174525126.jpg.chip.jpg",  # same labels as the first, another file: fine
)

#: Known malformed names shipped in ``UTKFace/`` (A1) and the exact reason the reader gives.
KNOWN_MALFORMED_ALIGNED: dict[str, str] = {
    "39_1_20170116174525125.jpg.chip.jpg": "race field missing: 3 fields instead of 4",
    "61_1_20170109150557335.jpg.chip.jpg": "race field missing: 3 fields instead of 4",
    "61_1_20170109142408075.jpg.chip.jpg": "race field missing: 3 fields instead of 4",
    "24_0_1_20170116220224657 .jpg.chip.jpg": "space in the name",
    "55_0_0_20170116232725357jpg.chip.jpg": "missing '.' before 'jpg' in '.jpg.chip.jpg'",
}

#: Valid in-the-wild files, by relative path (same name in two parts: two distinct samples).
VALID_IN_THE_WILD: tuple[str, ...] = (
    "part1/1_0_2_20161219140530307.jpg",
    "part1/26_1_0_20170116171048641.jpg",
    "part2/26_1_0_20170116171048641.jpg",
    "part2/40_0_1_20170113150547183.jpg",
    "part3/80_1_4_20170110182418413.jpg",
)

#: Known malformed in-the-wild files (A1), by relative path, and the exact reason.
KNOWN_MALFORMED_IN_THE_WILD: dict[str, str] = {
    "part1/61_3_20170109150557335.jpg": "race field missing: 3 fields instead of 4, and gender code '3' not 0/1",
    "part2/53__0_20170116184028385.jpg": "empty field: double underscore",
    "part1/61_1_20170109142408075.jpg": "race field missing: 3 fields instead of 4",
    "part2/39_1_20170116174525125.jpg": "race field missing: 3 fields instead of 4",
}

#: Other ways a name can be wrong (not in the real release), with the exact reason for the aligned variant.
OTHER_MALFORMED_ALIGNED: dict[str, str] = {
    "30_2_0_20170116174525125.jpg.chip.jpg": "gender code '2' not 0/1",
    "30_0_5_20170116174525125.jpg.chip.jpg": "race code '5' not 0-4",
    "30_0_0_2017011617452512.jpg.chip.jpg": "datetime '2017011617452512' not 17 digits",
    "30_0_0_201701161745251250.jpg.chip.jpg": "datetime '201701161745251250' not 17 digits",
    "117_0_0_20170116174525125.jpg.chip.jpg": "age 117 above 116",
    "x1_0_0_20170116174525125.jpg.chip.jpg": "age 'x1' not a whole number",
    "30_0_0_0_20170116174525125.jpg.chip.jpg": "5 fields instead of 4",
    "_30_0_0_20170116174525125.jpg.chip.jpg": "empty field: leading or trailing underscore",
    "30_0_0_20170116174525125.jpg": "wrong suffix for variant 'aligned': expected '.jpg.chip.jpg', got '.jpg'",
    "30_0_0_20170116174525125.png.chip.jpg": "unexpected suffix: expected '.jpg.chip.jpg' or '.jpg'",
    "30_0_0_20170116174525125.JPG": "not a UTKFace image name: extension is not lower-case '.jpg'",
    "README.txt": "not a UTKFace image name: does not end in '.jpg'",
    "Thumbs.db": "not a UTKFace image name: does not end in '.jpg'",
    "30_0_0_20170116174525125.jpg.jpg": "unexpected '.' in the name",
    "30_9_7_20170116174525125.jpg.chip.jpg": "gender code '9' not 0/1; race code '7' not 0-4",
}

#: Hidden files that must be ignored silently (macOS metadata, editors).
HIDDEN: tuple[str, ...] = (".DS_Store", "._25_0_3_20170116174525125.jpg.chip.jpg", ".hidden.jpg")

_COLOURS = ((200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (128, 128, 128))


@cache
def jpeg_bytes(colour: tuple[int, int, int] = (128, 128, 128), size: int = 8) -> bytes:
    """A tiny valid JPEG of one solid colour."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_files(root: str | Path, relative_paths: Iterable[str], *, content: bytes | None = None) -> Path:
    """Write each ``folder/name`` under ``root`` as a tiny JPEG (or as ``content``); return ``root``."""
    root = Path(root)
    for i, relative in enumerate(relative_paths):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_bytes(_COLOURS[i % len(_COLOURS)]) if content is None else content)
    return root


def write_utkface_tree(root: str | Path, *, malformed: bool = True, hidden: bool = True) -> Path:
    """A dataset root like the real release, in miniature; returns ``root`` (the folder containing UTKFace/).

    ``UTKFace/``: :data:`VALID_ALIGNED` (+ the known malformed names and :data:`HIDDEN` when asked) and a
    subfolder that must not be read; ``part1..3/``: :data:`VALID_IN_THE_WILD` (+ known malformed);
    ``crop_part1/``: the aligned crops of part1; landmark lists at the root, as in the release.
    """
    root = Path(root)
    aligned = list(VALID_ALIGNED) + (list(KNOWN_MALFORMED_ALIGNED) if malformed else [])
    write_files(root, [f"UTKFace/{name}" for name in aligned])
    write_files(root, ["UTKFace/nested/1_0_0_20170116174525125.jpg.chip.jpg"])  # not descended into
    wild = list(VALID_IN_THE_WILD) + (list(KNOWN_MALFORMED_IN_THE_WILD) if malformed else [])
    write_files(root, wild)
    write_files(root, [f"crop_part1/{p.split('/')[1]}.chip.jpg" for p in wild if p.startswith("part1/")])
    if hidden:
        for folder in ("UTKFace", "part1", "crop_part1"):
            write_files(root, [f"{folder}/{name}" for name in HIDDEN])
    for part in ("part1", "part2", "part3"):
        (root / f"landmark_list_{part}.txt").write_text("", encoding="utf-8")
    return root
