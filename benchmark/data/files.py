"""A dataset's image files, checked and hashed once per file version.

Readers parse names and label files and never open an image (reading 23,708 UTKFace names takes milliseconds).
Right after every reader, :func:`check_images` opens each accepted image once: ``facebench data verify`` and
every ``run``/``evaluate`` (through :func:`facebench.data.datasets.load_dataset`) call it, so a plugin's reader
gets the same check. For each file it records

* a **content hash** (BLAKE2b-256 of the bytes): the data fingerprint and the image store's cache address are
  made from these, so replacing an image's bytes changes both, whatever its name, size or timestamps;
* a **verdict**: ``None`` when the image decodes, else the reason it is rejected: ``zero-byte file``, ``not an
  image`` (no header of :data:`IMAGE_FORMATS`: the format is read from the bytes, never from the name, and only
  these decoders are used), ``too large`` (more than :data:`MAX_PIXELS` pixels: a decompression bomb is refused
  from its header, before any pixel is decoded), ``truncated`` (a full decode of every pixel ends early),
  ``cannot be decoded``, and, for what stands where a file should, a dangling symbolic link, a link loop, a
  folder, or something that is not a regular file.

A rejected image is left out of the table and listed with its reason among the read's rejects; it never reaches
training or scoring. In a table of fixed pairs (a ``pair_id`` column: CACD-VS, ``agedb_30.bin``) its partner is
left out too, since half a pair cannot be scored.

**Once per file version.** The hashes and verdicts are cached in ``CACHE/files/<root hash>.json``, one entry per
sample id, keyed by the file's ``(size, mtime_ns, ctime_ns, inode, device)``. The fast path trusts an entry while
that key is unchanged, so a repeated run costs one ``stat`` per image. The key includes the change time
(``ctime``), which every write and every ``os.utime`` sets to the present, so a file whose bytes were replaced
under the same name, with the same size and its modification time put back, is rehashed all the same. Where
that is unreliable the bytes are hashed again instead of trusted:

* an entry recorded less than :data:`RACY_SECONDS` after the file's last change is never trusted (the file may
  change again within one tick of a coarse filesystem clock, e.g. FAT's 2 s, leaving every timestamp equal);
* a filesystem that does not keep change times (some network and FUSE filesystems report 0 or a fixed value)
  is only as safe as its ``mtime`` and size: there, delete ``CACHE/files`` after editing images in place.

A rehashed file whose hash is the one recorded keeps its verdict (a verdict depends on the bytes alone), so only
new or changed images are decoded again. Images inside an insightface pack (``agedb_30.bin#k``) are keyed by
the pack file. Files are checked in parallel threads (PIL decodes and hashlib hashes without the GIL) with a
progress bar; the index is written atomically, and a damaged index is ignored and rebuilt.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import hashlib
import io
import json
import os
import re
import stat
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from facebench.data.table import ReadResult, Reject
from facebench.errors import UserInputError, shorten
from facebench.io import write_json

#: Images with more pixels are refused from their header, before decoding: 50 MP is far above any face dataset
#: (UTKFace 200×200, CACD 250×250, MORPH and FG-NET under 1 MP) and far below what a bomb asks for.
MAX_PIXELS = 50_000_000

#: The only PIL decoders facebench uses, whatever a file's name says. Others are never tried: PIL's EPS
#: decoder, for one, runs Ghostscript on the file.
IMAGE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP", "PPM")

#: Entries recorded less than this after the file's last change are rehashed next time (see the module docstring).
RACY_SECONDS = 2.0

#: Everything a verdict depends on besides the bytes: an index recorded under another is checked again.
CHECK_VERSION = f"1:{MAX_PIXELS}:{','.join(IMAGE_FORMATS)}"

#: Index format version.
INDEX_VERSION = 1

_CHUNK = 1 << 20

#: The verdict slot of an index entry whose hash is still good but whose verdict must be made again (it was
#: recorded under another :data:`CHECK_VERSION`); a real verdict is None or a reason.
_UNCHECKED = ""


@dataclass(frozen=True)
class FileFacts:
    """What is known of one image: its content hash (None when it cannot be read) and why it is rejected (None
    when it decodes)."""

    digest: str | None
    problem: str | None


@dataclass(frozen=True)
class CheckedRead:
    """A read with every image checked: the result without the rejected images (they are among its rejects),
    and the digest of the accepted images' content, in table order."""

    result: ReadResult
    content_digest: str


# ------------------------------------------------------------------------------------------- one image


def image_problem(source: str | os.PathLike | io.BytesIO) -> str | None:
    """Why the image at ``source`` (a file, or bytes) is rejected, or None when every pixel of it decodes.

    The header is read first (format among :data:`IMAGE_FORMATS`, at most :data:`MAX_PIXELS` pixels), then the
    whole image is decoded (``load()``), which finds a truncated file.
    """
    try:
        with Image.open(source, formats=decoders()) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                return too_large(width, height)
            image.load()
    except Image.DecompressionBombError as error:  # PIL's own limit, above ours, raised from the header alone
        found = re.search(r"\((\d+) pixels\)", str(error))
        pixels = f"{int(found.group(1)):,} pixels" if found else "more pixels"
        return f"too large: {pixels}, above the {MAX_PIXELS:,}-pixel limit (a decompression bomb?)"
    except UnidentifiedImageError:
        return f"not an image: no {', '.join(IMAGE_FORMATS[:-1])} or {IMAGE_FORMATS[-1]} header"
    except OSError as error:  # PIL: "image file is truncated (N bytes not processed)", "Truncated File Read"
        text = str(error)
        if "truncated" in text.lower():
            return f"truncated: {_cut(text)}"
        return f"cannot be decoded: {_cut(text or type(error).__name__)}"
    except Exception as error:  # noqa: BLE001 - a decoder's own error on a malformed file: the file's problem
        return f"cannot be decoded: {_cut(f'{type(error).__name__}: {error}')}"
    return None


@functools.cache
def decoders() -> tuple[str, ...]:
    """:data:`IMAGE_FORMATS` that this PIL build has (``Image.open`` fails on a format name it does not know)."""
    Image.init()
    return tuple(name for name in IMAGE_FORMATS if name in Image.OPEN)


def too_large(width: int, height: int) -> str:
    return f"too large: {width}×{height} pixels, above the {MAX_PIXELS:,}-pixel limit"


def _cut(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _stat_problem(path: Path) -> tuple[os.stat_result | None, str | None]:
    """The file's stat (following links) or why it is not a readable file."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None, "dangling symbolic link (its target does not exist)" if path.is_symlink() else "file missing"
    except OSError as error:
        return None, "symbolic link loop" if error.errno == errno.ELOOP else f"cannot be read: {error.strerror or error}"
    if stat.S_ISDIR(info.st_mode):
        return info, "a folder, not an image file"
    if not stat.S_ISREG(info.st_mode):
        return info, "not a regular file (a pipe, socket or device)"
    return info, None


def _key(info: os.stat_result) -> list[int]:
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev]


def _hash_file(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _hash_bytes(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=32).hexdigest()


# ------------------------------------------------------------------------------------------- the index


def _index_path(root: Path, cache_dir: Path) -> Path:
    where = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:24]
    return Path(cache_dir) / "files" / f"{where}.json"


def _read_index(path: Path) -> dict[str, list]:
    """The recorded entries, or none when the index is missing, damaged or of another version (it is a cache)."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError):
        return {}
    if not isinstance(document, dict) or document.get("version") != INDEX_VERSION:
        return {}
    entries = document.get("files")
    if not isinstance(entries, dict):
        return {}
    same_check = document.get("check") == CHECK_VERSION
    out = {}
    for sample_id, entry in entries.items():
        if (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[0], list) and len(entry[0]) == 5
                and all(type(v) is int for v in entry[0]) and isinstance(entry[1], str)
                and (entry[2] is None or isinstance(entry[2], str)) and isinstance(entry[3], bool)):
            # under another CHECK_VERSION the hash stays good but the verdict must be made again
            out[sample_id] = entry if same_check else [entry[0], entry[1], _UNCHECKED, False]
    return out


def _write_index(path: Path, root: Path, entries: dict[str, list]) -> None:
    try:
        write_json(path, {"version": INDEX_VERSION, "check": CHECK_VERSION, "root": str(Path(root).resolve()),
                          "files": entries})
    except OSError:  # a read-only cache costs a rehash next time, nothing else
        pass


# ------------------------------------------------------------------------------------------- many images


def scan_images(root: str | os.PathLike, sample_ids: Sequence[str], *, cache_dir: str | os.PathLike,
                progress: bool = True) -> dict[str, FileFacts]:
    """Content hash and verdict of every image (sample ids relative to ``root``), from the index where the file
    is unchanged, else computed (in parallel, with a progress bar) and recorded."""
    root, cache_dir = Path(root), Path(cache_dir)
    index_path = _index_path(root, cache_dir)
    index = _read_index(index_path)
    started_ns = time.time_ns()
    facts: dict[str, FileFacts] = {}
    work: list[tuple[str, Path, os.stat_result, list | None]] = []  # (sample_id, file, stat, recorded entry)
    packs: dict[str, list[tuple[str, int]]] = {}
    changed = False
    for sample_id in dict.fromkeys(sample_ids):
        file, _, number = sample_id.rpartition("#")
        if file.endswith(".bin") and number.isdigit():  # an image inside an insightface pack
            packs.setdefault(file, []).append((sample_id, int(number)))
            continue
        path = root / sample_id
        info, problem = _stat_problem(path)
        if problem is not None:
            facts[sample_id] = FileFacts(None, problem)
            changed |= index.pop(sample_id, None) is not None
            continue
        entry = index.get(sample_id)
        if entry is not None and entry[3] and entry[0] == _key(info) and entry[2] != _UNCHECKED:
            facts[sample_id] = FileFacts(entry[1], entry[2])
        else:
            work.append((sample_id, path, info, entry))

    def examine(item: tuple[str, Path, os.stat_result, list | None]) -> tuple[str, FileFacts, os.stat_result]:
        sample_id, path, info, entry = item
        if info.st_size == 0:
            return sample_id, FileFacts(_hash_bytes(b""), "zero-byte file"), info
        try:
            digest = _hash_file(path)
        except OSError as error:
            return sample_id, FileFacts(None, f"cannot be read: {error.strerror or error}"), info
        if entry is not None and entry[1] == digest and entry[2] != _UNCHECKED:
            return sample_id, FileFacts(digest, entry[2]), info  # same bytes, same verdict
        return sample_id, FileFacts(digest, image_problem(path)), info

    if work:
        from facebench.progress import track

        with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
            for sample_id, found, info in track(pool.map(examine, work), total=len(work), enabled=progress,
                                                description=f"checking {len(work)} images"):
                facts[sample_id] = found
                if found.digest is not None:
                    index[sample_id] = [_key(info), found.digest, found.problem, _settled(info, started_ns)]
                else:
                    index.pop(sample_id, None)
        changed = True
    for file, members in packs.items():
        changed |= _scan_pack(root, file, members, index, facts, started_ns)
    if changed:
        _write_index(index_path, root, index)
    return {sample_id: facts[sample_id] for sample_id in sample_ids}


def _settled(info: os.stat_result, now_ns: int) -> bool:
    """Whether the file's last change is far enough in the past for its stat key to be trusted next time."""
    return now_ns - max(info.st_mtime_ns, info.st_ctime_ns) > RACY_SECONDS * 1e9


def _scan_pack(root: Path, file: str, members: list[tuple[str, int]], index: dict[str, list],
               facts: dict[str, FileFacts], started_ns: int) -> bool:
    """The images of one pack, keyed by the pack file's stat; returns whether the index changed."""
    path = root / file
    info, problem = _stat_problem(path)
    if problem is not None:
        for sample_id, _ in members:
            facts[sample_id] = FileFacts(None, f"its pack {file}: {problem}")
        return False
    key = _key(info)
    recorded = [index.get(sample_id) for sample_id, _ in members]
    if all(e is not None and e[3] and e[0] == key and e[2] != _UNCHECKED for e in recorded):
        for (sample_id, _), entry in zip(members, recorded, strict=True):
            facts[sample_id] = FileFacts(entry[1], entry[2])
        return False
    from facebench.data.images import pack_images

    images = pack_images(path)
    settled = _settled(info, started_ns)
    for (sample_id, number), entry in zip(members, recorded, strict=True):
        if number >= len(images):
            facts[sample_id] = FileFacts(None, f"not in {file}: it holds {len(images)} images")
            continue
        data = images[number]
        digest = _hash_bytes(data)
        if entry is not None and entry[1] == digest and entry[2] != _UNCHECKED:
            found = FileFacts(digest, entry[2])
        else:
            found = FileFacts(digest, image_problem(io.BytesIO(data)) if data else "zero-byte image")
        facts[sample_id] = found
        index[sample_id] = [key, digest, found.problem, settled]
    return True


# ------------------------------------------------------------------------------------------- a read


def check_images(result: ReadResult, root: str | os.PathLike, *, cache_dir: str | os.PathLike,
                 progress: bool = True, title: str = "dataset") -> CheckedRead:
    """``result`` without the images that do not decode (each added to its rejects, with the reason; a rejected
    image's pair partner too, in a table of fixed pairs), and the digest of the accepted images' content.

    Raises :class:`UserInputError` when no image is left.
    """
    table = result.table
    sample_ids = table["sample_id"].astype(str).tolist()
    facts = scan_images(root, sample_ids, cache_dir=cache_dir, progress=progress)
    problems = {sample_id: found.problem for sample_id, found in facts.items() if found.problem is not None}
    if problems and "pair_id" in table.columns:
        pair_of = dict(zip(sample_ids, table["pair_id"].tolist(), strict=True))
        broken = {pair_of[sample_id]: sample_id for sample_id in problems}
        for sample_id in sample_ids:
            partner = broken.get(pair_of[sample_id])
            if sample_id not in problems and partner is not None:
                problems[sample_id] = f"the other image of its pair, {shorten(partner, 80)}, was rejected"
    rejected = tuple(sorted((*result.rejected, *(Reject(s, r) for s, r in problems.items())),
                            key=lambda reject: reject.sample_id))
    keep = ~table["sample_id"].astype(str).isin(set(problems)).to_numpy()
    if not keep.any():
        first = next(iter(problems.items()))
        raise UserInputError(f"No {title} image under {root} decodes: all {len(table)} images with valid names were "
                             f"rejected, e.g. {shorten(first[0], 80)} ({first[1]}).")
    content = hashlib.sha256()
    for sample_id, accepted in zip(sample_ids, keep, strict=True):
        if accepted:
            content.update(f"{sample_id}\t{facts[sample_id].digest}\n".encode())
    if problems:
        table = table[keep].reset_index(drop=True)
    return CheckedRead(dataclasses.replace(result, table=table, rejected=rejected), content.hexdigest())
