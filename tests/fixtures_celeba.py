"""Tiny CelebA and FairFace trees in the exact real byte formats (research notes A2, A7), and annotation files.

CelebA: the release layout (``Img/``, ``Anno/``, ``Eval/``), CRLF line endings with a final CRLF, the count line,
the 40 names followed by a space, values printed ``%2d`` with the first unpadded, right-aligned bbox columns, the
landmark files' first value unpadded then ``%5d``. The values of the first two rows are the release's
``000001.jpg`` rows as quoted in the notes. Images are tiny solid-colour JPEGs (no faces): one listed image is
missing and one unlisted image is present. FairFace: the two label files (LF, as pandas writes them).
"""

from __future__ import annotations

from pathlib import Path

from fixtures_utkface import write_files

from facebench.data.celeba import ATTRIBUTES, BBOX_HEADER, LANDMARKS_HEADER

CELEBA_IDS: tuple[str, ...] = ("000001.jpg", "000002.jpg", "000003.jpg", "000004.jpg", "000005.jpg", "000006.jpg")
CELEBA_IDENTITY: tuple[int, ...] = (2880, 2937, 8692, 5805, 9295, 2880)
CELEBA_PARTITION: tuple[int, ...] = (0, 0, 0, 1, 1, 2)
#: ``Male`` is attribute 21 (index 20): rows 1, 3 and 6 are women, 2, 4 and 5 men.
CELEBA_ATTRS: tuple[tuple[int, ...], ...] = tuple(
    tuple(1 if (i * 7 + k * 3 + i * k) % 5 < 2 else -1 for k in range(40)) for i in range(6))
CELEBA_ATTRS = tuple(row[:20] + ((1 if i in (1, 3, 4) else -1),) + row[21:] for i, row in enumerate(CELEBA_ATTRS))
CELEBA_BBOX: tuple[tuple[int, ...], ...] = ((95, 71, 226, 313), (72, 94, 221, 306), (216, 59, 91, 126),
                                            (622, 257, 564, 781), (236, 109, 120, 166), (146, 67, 182, 252))
CELEBA_LANDMARKS: tuple[tuple[int, ...], ...] = ((69, 109, 106, 113, 77, 142, 73, 152, 108, 154),
                                                 (69, 110, 107, 112, 81, 135, 70, 151, 108, 153),
                                                 (76, 112, 104, 106, 108, 128, 74, 156, 98, 158),
                                                 (72, 113, 108, 108, 101, 138, 71, 155, 101, 151),
                                                 (66, 114, 112, 112, 86, 119, 71, 147, 104, 150),
                                                 (71, 111, 106, 110, 94, 131, 74, 154, 102, 153))
CELEBA_MISSING_IMAGE = "000006.jpg"
CELEBA_UNLISTED_IMAGE = "000099.jpg"


def _crlf(lines: list[str], newline: str) -> bytes:
    return (newline.join(lines) + newline).encode("ascii")


def attr_lines(ids=CELEBA_IDS, rows=CELEBA_ATTRS, *, count: int | None = None) -> list[str]:
    body = [f"{name} {v[0]}" + "".join(f" {x:2d}" for x in v[1:]) for name, v in zip(ids, rows, strict=True)]
    return [str(len(ids) if count is None else count), " ".join(ATTRIBUTES) + " ", *body]


def celeba_files(newline: str = "\r\n") -> dict[str, bytes]:
    """Every label file of the fixture, by its path in the release layout."""
    bbox = [f"{n} {x:5d}{y:4d}{w:4d}{h:4d}" for n, (x, y, w, h) in zip(CELEBA_IDS, CELEBA_BBOX, strict=True)]
    marks = [f"{n} {p[0]}" + "".join(f"{x:5d}" for x in p[1:]) for n, p in zip(CELEBA_IDS, CELEBA_LANDMARKS, strict=True)]
    wild = [f"{n} {p[0] + 100}" + "".join(f"{x + 100:5d}" for x in p[1:])
            for n, p in zip(CELEBA_IDS, CELEBA_LANDMARKS, strict=True)]
    count = str(len(CELEBA_IDS))
    return {
        "Anno/list_attr_celeba.txt": _crlf(attr_lines(), newline),
        "Anno/identity_CelebA.txt": _crlf([f"{n} {i}" for n, i in zip(CELEBA_IDS, CELEBA_IDENTITY, strict=True)], newline),
        "Eval/list_eval_partition.txt": _crlf([f"{n} {p}" for n, p in zip(CELEBA_IDS, CELEBA_PARTITION, strict=True)],
                                              newline),
        "Anno/list_bbox_celeba.txt": _crlf([count, " ".join(BBOX_HEADER), *bbox], newline),
        "Anno/list_landmarks_align_celeba.txt": _crlf([count, " ".join(LANDMARKS_HEADER), *marks], newline),
        "Anno/list_landmarks_celeba.txt": _crlf([count, " ".join(LANDMARKS_HEADER), *wild], newline),
    }


def write_celeba_tree(root: str | Path, *, newline: str = "\r\n", layout: str = "release",
                      files: dict[str, bytes] | None = None) -> Path:
    """The fixture under ``root`` (``layout`` ``release`` or ``flat``); ``files`` replace label files by their
    release path. Returns the dataset root."""
    root = Path(root)
    contents = {**celeba_files(newline), **(files or {})}
    for path, data in contents.items():
        target = root / (path if layout == "release" else Path(path).name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    folder = "Img/img_align_celeba" if layout == "release" else "img_align_celeba"
    present = [n for n in CELEBA_IDS if n != CELEBA_MISSING_IMAGE] + [CELEBA_UNLISTED_IMAGE, ".DS_Store"]
    write_files(root, [f"{folder}/{name}" for name in present])
    return root


# ------------------------------------------------------------------------------------------------ FairFace

FAIRFACE_HEADER = "file,age,gender,race,service_test"
FAIRFACE_TRAIN: tuple[str, ...] = (
    "train/1.jpg,50-59,Male,East Asian,True",
    "train/2.jpg,30-39,Female,Indian,False",
    "train/3.jpg,3-9,Female,Black,False",
    "train/4.jpg,20-29,Female,Indian,True",
    "train/5.jpg,20-29,Female,Indian,True",
    "train/6.jpg,more than 70,Male,White,True",
    "train/7.jpg,0-2,Male,Latino_Hispanic,False",
    "train/8.jpg,60-69,Male,Southeast Asian,False",
    "train/9.jpg,10-19,Male,White,True",
    "train/10.jpg,40-49,Female,Middle Eastern,False",
)
FAIRFACE_VAL: tuple[str, ...] = (
    "val/1.jpg,3-9,Male,East Asian,False",
    "val/2.jpg,50-59,Female,East Asian,True",
    "val/3.jpg,30-39,Male,White,True",
)
FAIRFACE_MISSING_IMAGE = "train/10.jpg"


def write_fairface_tree(root: str | Path, *, train: tuple[str, ...] = FAIRFACE_TRAIN,
                        val: tuple[str, ...] = FAIRFACE_VAL) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for part, rows in (("train", train), ("val", val)):
        (root / f"fairface_label_{part}.csv").write_text("\n".join([FAIRFACE_HEADER, *rows]) + "\n", encoding="utf-8",
                                                         newline="")
    images = [row.split(",")[0] for row in (*FAIRFACE_TRAIN, *FAIRFACE_VAL) if row.split(",")[0] != FAIRFACE_MISSING_IMAGE]
    write_files(root, [*images, "train/999.jpg"])
    return root
