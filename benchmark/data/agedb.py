"""Strict readers for AgeDB: the image folder, and insightface's ``agedb_30.bin`` pair pack (notes A6).

Layout of the dataset root (the folder that *contains* ``AgeDB/``)::

    AgeDB/0_MariaCallas_35_f.jpg       flat folder, {imgnum}_{Name}_{age}_{gender}.jpg, gender m / f

Names are matched with ``^(\\d+)_(.+)_(\\d+)_([mf])\\.jpg$``, case-insensitively (as other loaders do).
``subject_id`` is the name as written (``MariaCallas``); ``image_num`` and ``name`` are kept; the gender code
is kept as written in ``gender_code`` (``m``/``f``) and mapped to ``male``/``female``. AgeDB has no race
label: ``race`` and ``race_code`` are all missing.

``agedb_30.bin`` (also ``lfw.bin``, ``cfp_fp.bin``, ``calfw.bin``... of insightface's ``faces_*_112x112``
packs) is a pickled pair ``(bins, issame_list)`` written by Python 2: ``bins[2k]`` and ``bins[2k+1]`` are the
encoded JPEGs of pair ``k``. Python 2 ``str`` items are pickled with the ``SHORT_BINSTRING``/``BINSTRING``
opcodes, which Python 3 decodes as ASCII text by default, so a plain ``pickle.load`` raises
``UnicodeDecodeError`` on JPEG bytes; insightface then retries with ``encoding='bytes'``, and so does
:func:`read_agedb_bin`. :func:`write_agedb_bin` writes such a Python-2 protocol-2 pickle opcode by opcode,
so tests and the synthetic writer produce a file that behaves exactly like the real one.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facebench.data.table import (
    GENDERS,
    Parsed,
    ReadResult,
    age_band,
    age_band_names,
    check_variant,
    face_table,
    nothing_read_error,
    pair_face_table,
    parse_folder,
    read_summary,
    resolve_dataset_root,
    vocabulary_counts,
)
from facebench.data.utkface import AGE_BAND_EDGES
from facebench.errors import UserInputError, shorten
from facebench.io import atomic_write

FOLDER = "AgeDB"
VARIANTS: tuple[str, ...] = ("images", "bin")
#: insightface's AgeDB-30 pack, beside ``AgeDB/`` in the dataset root.
BIN_FILE = "agedb_30.bin"
MAX_AGE = 130

#: The name pattern others use, case-insensitive, ASCII digits; match with ``fullmatch``.
AGEDB_NAME = re.compile(r"([0-9]+)_(.+)_([0-9]+)_([mf])\.jpg", re.ASCII | re.IGNORECASE)

#: AgeDB gender codes (lower-cased) onto the FaceTable vocabulary.
GENDER_CODES: dict[str, str] = {"m": "male", "f": "female"}

#: FaceTable columns of an AgeDB read, in order.
COLUMNS: tuple[str, ...] = (
    "sample_id", "subject_id", "age", "gender", "race", "race_code", "gender_code", "image_num", "name",
)

_EXAMPLE = "0_MariaCallas_35_f.jpg"
_DIGITS = re.compile(r"[0-9]+", re.ASCII)


# ---------------------------------------------------------------------------------------------------------
# The image folder


@dataclass(frozen=True)
class AgeDBName:
    """The labels in one valid AgeDB file name (codes as written)."""

    image_num: int
    name: str
    age: int
    gender_code: str


def parse_agedb_name(file_name: str) -> Parsed[AgeDBName]:
    """Parse ``{imgnum}_{Name}_{age}_{m|f}.jpg``: its :class:`AgeDBName`, or the reason it is rejected.

    >>> parse_agedb_name("0_MariaCallas_35_f.jpg").value
    AgeDBName(image_num=0, name='MariaCallas', age=35, gender_code='f')
    >>> parse_agedb_name("3_MariaCallas_35_x.jpg").reason
    "gender code 'x' not m/f"
    """
    match = AGEDB_NAME.fullmatch(file_name)
    if match is not None:
        image_num, name, age, gender_code = match.groups()
        if "__" in f"_{name}_" or any(ch.isspace() for ch in name):
            return Parsed.reject("empty field or space in the name")
        if int(age) > MAX_AGE:
            return Parsed.reject(f"age {int(age)} above {MAX_AGE}")
        return Parsed.accept(AgeDBName(int(image_num), name, int(age), gender_code))
    if not file_name.lower().endswith(".jpg"):
        return Parsed.reject("not an AgeDB image name: does not end in '.jpg'")
    tokens = file_name[: -len(".jpg")].split("_")
    if len(tokens) < 4:
        return Parsed.reject(
            f"{len(tokens)} field{'s' if len(tokens) != 1 else ''} instead of 4: "
            "expected {imgnum}_{Name}_{age}_{m|f}.jpg"
        )
    problems = []
    if _DIGITS.fullmatch(tokens[0]) is None:
        problems.append(f"image number '{tokens[0]}' not a whole number")
    if _DIGITS.fullmatch(tokens[-2]) is None:
        problems.append(f"age '{tokens[-2]}' not a whole number")
    if tokens[-1].lower() not in GENDER_CODES:
        problems.append(f"gender code '{tokens[-1]}' not m/f")
    if any(token == "" for token in tokens[1:-2]):
        problems.append("empty name field")
    return Parsed.reject("; ".join(problems) if problems else "does not match the AgeDB name pattern")


@dataclass(frozen=True)
class AgeDBReadResult(ReadResult):
    """A :class:`ReadResult` plus where it was read."""

    root: str
    variant: str


def read_agedb(root: str | os.PathLike, *, variant: str = "images") -> AgeDBReadResult:
    """Read AgeDB labels from the names in ``AgeDB/``; reject malformed names with a reason.

    ``sample_id`` is ``AgeDB/<name>``. Rows are sorted by ``sample_id``. Hidden files and subfolders are
    skipped; images are not opened; an entry that is not a readable file (a dangling or looping link, a folder
    with an image name) is rejected with its reason.
    """
    check_variant(variant, VARIANTS, title="AgeDB")
    if variant == "bin":
        return _read_bin_table(Path(root))
    base = resolve_dataset_root(root, FOLDER, title="AgeDB")
    directory = base / FOLDER
    rows, rejected, n_seen = parse_folder(directory, f"{FOLDER}/", parse_agedb_name, title="AgeDB")
    if not rows:
        raise nothing_read_error("AgeDB", directory, n_seen=n_seen, rejected=rejected, example=_EXAMPLE)
    table = face_table(
        sample_id=[s for s, _ in rows],
        subject_id=[p.name for _, p in rows],
        age=np.asarray([p.age for _, p in rows], dtype=np.int64),
        gender=[GENDER_CODES[p.gender_code.lower()] for _, p in rows],
        gender_code=[p.gender_code for _, p in rows],
        image_num=np.asarray([p.image_num for _, p in rows], dtype=np.int64),
        name=[p.name for _, p in rows],
        order=COLUMNS,
    )
    return AgeDBReadResult(table=table, rejected=tuple(rejected), root=str(base), variant=variant)


def _read_bin_table(root: Path) -> AgeDBReadResult:
    """``agedb_30.bin`` as a FaceTable (variant ``bin``): one row per image of the pack, ``sample_id``
    ``agedb_30.bin#00012`` (image 12, decoded from the pack by :mod:`facebench.data.images`), with ``pair_id``
    (image // 2), ``side``, ``fold`` (insightface's 10 contiguous folds) and ``issame``. The pack names no
    people: ``subject_id`` is derived from the pair layout only (both images of a genuine pair ``bin0007``; an
    impostor pair's ``bin0301_0`` / ``bin0301_1``), and age and gender stay missing."""
    path = root / BIN_FILE
    if not path.is_file():
        raise UserInputError(f"AgeDB root {root} has no {BIN_FILE}; put insightface's pack there, or read the "
                             "labelled folder with variant 'images'.")
    images, issame = read_agedb_bin(path)
    n_pairs = len(issame)
    n_folds = 10 if n_pairs >= 10 else 1
    image = np.arange(len(images))
    table = pair_face_table(sample_ids=[f"{BIN_FILE}#{k:05d}" for k in image], pair_ids=image // 2, sides=image % 2,
                            folds=(image // 2) * n_folds // n_pairs, issame=np.asarray(issame, dtype=bool)[image // 2],
                            subject_prefix="bin")
    return AgeDBReadResult(table=table, rejected=(), root=str(root), variant="bin")


def verify_summary(result: AgeDBReadResult) -> dict[str, Any]:
    """JSON-ready summary of a read: sizes, every rejected file with its reason, and group counts."""
    table = result.table
    return read_summary("agedb", result, root=result.root, variant=result.variant, groups={
        "gender": vocabulary_counts(table["gender"], GENDERS),
        "age_band": vocabulary_counts(age_band(table["age"], AGE_BAND_EDGES), age_band_names(AGE_BAND_EDGES)),
    })


# ---------------------------------------------------------------------------------------------------------
# insightface .bin pair packs


#: The numpy dtypes a pack's arrays may have: uint8 (encoded image bytes) and bool (issame labels). No object
#: dtype: an object array would unpickle its items, which is how code gets into a pickle.
_PACK_DTYPES = (np.dtype(np.uint8), np.dtype(np.bool_))


def _refuse(what: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(f"{what} is not allowed in a verification pack")


def _pack_dtype(spec: Any, align: bool = False, copy: bool = False) -> np.dtype:
    """``numpy.dtype``, for the two dtype codes a pack's arrays use (``u1``, ``b1``) only."""
    if spec not in ("u1", "b1") or not isinstance(align, bool) or not isinstance(copy, bool):
        raise _refuse(f"numpy dtype {shorten(spec, 20)}")
    return np.dtype(spec, align, copy)


def _pack_reconstruct(subtype: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    """numpy's ``_reconstruct``, for plain ndarrays only (the pickle's subtype could name any class otherwise)."""
    if subtype is not np.ndarray:
        raise _refuse("an array subtype")
    return np.ndarray.__new__(np.ndarray, shape, dtype_code)


def _pack_scalar(dtype: Any, data: Any = None) -> np.generic:
    """numpy's ``scalar`` (an ``np.bool_`` issame label), for the pack's dtypes only."""
    if not isinstance(dtype, np.dtype) or dtype not in _PACK_DTYPES or not isinstance(data, bytes):
        raise _refuse(f"a numpy scalar of {shorten(dtype, 20)}")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _pack_frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """numpy's ``_frombuffer`` (arrays pickled at protocol 5), for the pack's dtypes only."""
    if not isinstance(dtype, np.dtype) or dtype not in _PACK_DTYPES or order not in ("C", "F"):
        raise _refuse(f"a numpy buffer of {shorten(dtype, 20)}")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order).copy()


def _pack_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3 uses it to pickle ``bytes`` at protocol 2, ``encode(str, 'latin1')``: no other
    codec (a codec name makes the codec registry import a module)."""
    if type(text) is not str or encoding not in ("latin1", "latin-1"):
        raise _refuse(f"_codecs.encode with codec {shorten(encoding, 20)}")
    return text.encode("latin-1")


class _PackUnpickler(pickle.Unpickler):
    """Loads only what a verification pack holds: lists, tuples, bytes, bools and uint8/bool numpy arrays.

    A pickle can name any global and call it, so every global is refused but the five a pack needs, and each of
    those is replaced by a checked stand-in that builds only the exact objects of the format (a plain ndarray of
    uint8 or bool, latin-1 bytes): a hostile file cannot run code (``os.system``, ``builtins.eval``...) or have
    numpy unpickle an object array. Python 2 / numpy 1 module names (``numpy.core``) map to the same stand-ins.
    """

    _ALLOWED: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,  # only ever the subtype argument of _reconstruct, checked there
        ("numpy", "dtype"): _pack_dtype,
        ("numpy.core.multiarray", "_reconstruct"): _pack_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _pack_reconstruct,
        ("numpy.core.multiarray", "scalar"): _pack_scalar,
        ("numpy._core.multiarray", "scalar"): _pack_scalar,
        ("numpy.core.numeric", "_frombuffer"): _pack_frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _pack_frombuffer,
        ("_codecs", "encode"): _pack_encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        allowed = self._ALLOWED.get((module, name))
        if allowed is None:
            raise _refuse(f"global {shorten(f'{module}.{name}', 60)}")
        return allowed


def _load_pack(data: bytes) -> Any:
    try:
        return _PackUnpickler(io.BytesIO(data)).load()
    except UnicodeDecodeError:  # a Python 2 pickle of str: insightface's exact fallback
        return _PackUnpickler(io.BytesIO(data), encoding="bytes").load()


def read_agedb_bin(path: str | os.PathLike) -> tuple[list[bytes], np.ndarray]:
    """Read an insightface verification pack (``agedb_30.bin``): ``(images, issame)``.

    ``images`` are the encoded images (JPEG bytes, not decoded); pair ``k`` is ``(images[2k], images[2k+1])``
    and ``issame[k]`` (bool) says whether it is a genuine pair. Loads like insightface (plain load, then
    ``encoding='bytes'`` on ``UnicodeDecodeError``) but through a restricted unpickler that refuses any
    global other than numpy's array reconstruction. Raises :class:`UserInputError` (one sentence naming the
    file) when it is missing, not such a pickle, or does not hold two images per pair.
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"Verification pack {path} does not exist.")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserInputError(f"Cannot read verification pack {path}: {error.strerror or error}.") from None
    try:
        loaded = _load_pack(data)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError,
            IndexError, KeyError, UnicodeDecodeError, OverflowError, MemoryError, struct.error) as error:
        reason = " ".join((str(error) or type(error).__name__).split())  # pickle's messages can span lines
        reason = reason if len(reason) <= 120 else reason[:119] + "…"
        raise UserInputError(f"Verification pack {path} is not an insightface .bin pickle ({reason}).") from None
    if not (isinstance(loaded, (tuple, list)) and len(loaded) == 2):
        raise UserInputError(f"Verification pack {path} does not hold a (bins, issame_list) pair.")
    bins, issame_list = loaded
    if not isinstance(bins, (list, tuple)):
        raise UserInputError(f"Verification pack {path} holds {type(bins).__name__} bins instead of a list of images.")
    images: list[bytes] = []
    for i, item in enumerate(bins):
        if isinstance(item, (bytes, bytearray)):
            images.append(bytes(item))
        elif isinstance(item, np.ndarray) and item.dtype == np.uint8 and item.ndim == 1:
            images.append(item.tobytes())
        else:
            raise UserInputError(
                f"Verification pack {path} holds a {type(item).__name__} as image {i} instead of encoded image bytes."
            )
    issame = _issame_array(issame_list, path)
    if len(images) != 2 * len(issame):
        raise UserInputError(
            f"Verification pack {path} has {len(images)} images for {len(issame)} pairs; it needs exactly two per pair."
        )
    return images, issame


def _issame_array(values: Any, path: Path) -> np.ndarray:
    if isinstance(values, np.ndarray):
        if values.dtype != np.bool_ or values.ndim != 1:
            raise UserInputError(f"Verification pack {path} holds an issame array of {values.dtype} instead of bool.")
        return values.astype(bool)
    if not isinstance(values, (list, tuple)):
        raise UserInputError(f"Verification pack {path} holds {type(values).__name__} issame labels instead of a list.")
    for i, value in enumerate(values):
        if not isinstance(value, (bool, np.bool_)):
            raise UserInputError(f"Verification pack {path} holds a {type(value).__name__} as issame label {i} instead of a bool.")
    return np.asarray(values, dtype=bool).reshape(len(values))


# Pickle opcodes of a Python 2 ``pickle.dump(obj, f, protocol=2)``.
_PROTO, _STOP = b"\x80", b"."
_EMPTY_LIST, _MARK, _APPEND, _APPENDS, _TUPLE2 = b"]", b"(", b"a", b"e", b"\x86"
_SHORT_BINSTRING, _BINSTRING = b"U", b"T"
_NEWTRUE, _NEWFALSE = b"\x88", b"\x89"
_BINPUT, _LONG_BINPUT = b"q", b"r"
_BATCHSIZE = 1000  # Python 2's pickle appends list items in batches of 1000


class _Py2Pickler:
    """Emits the bytes Python 2's ``pickle.dumps(obj, 2)`` writes for lists of ``str`` and ``bool``."""

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.memo = 0

    def memoize(self) -> None:
        index = self.memo
        self.out.write(_BINPUT + bytes([index]) if index < 256 else _LONG_BINPUT + struct.pack("<I", index))
        self.memo += 1

    def string(self, data: bytes) -> None:  # a Python 2 str
        n = len(data)
        self.out.write(_SHORT_BINSTRING + bytes([n]) if n < 256 else _BINSTRING + struct.pack("<i", n))
        self.out.write(data)
        self.memoize()

    def boolean(self, value: bool) -> None:
        self.out.write(_NEWTRUE if value else _NEWFALSE)

    def list(self, items: Sequence[Any], save_item: Any) -> None:
        self.out.write(_EMPTY_LIST)
        self.memoize()
        for start in range(0, len(items), _BATCHSIZE):
            batch = items[start:start + _BATCHSIZE]
            if len(batch) > 1:
                self.out.write(_MARK)
                for item in batch:
                    save_item(item)
                self.out.write(_APPENDS)
            else:
                save_item(batch[0])
                self.out.write(_APPEND)


def agedb_bin_bytes(images: Sequence[bytes], issame: Iterable[bool] | np.ndarray) -> bytes:
    """The bytes of a Python-2 protocol-2 pickle of ``(list of str images, list of bool)``.

    >>> data = agedb_bin_bytes([b"\\xff\\xd8a", b"\\xff\\xd8b"], [True])
    >>> data[:2], data[-3:]
    (b'\\x80\\x02', b'q\\x04.')
    >>> pickle.loads(data, encoding="bytes")
    ([b'\\xff\\xd8a', b'\\xff\\xd8b'], [True])
    """
    labels = [bool(v) for v in np.asarray(list(issame) if not isinstance(issame, np.ndarray) else issame).ravel()]
    blobs = []
    for i, image in enumerate(images):
        if not isinstance(image, (bytes, bytearray, memoryview)):
            raise TypeError(f"image {i} is a {type(image).__name__}, not bytes")
        blobs.append(bytes(image))
    if len(blobs) != 2 * len(labels):
        raise ValueError(f"{len(blobs)} images for {len(labels)} pairs: a pack needs exactly two images per pair")
    pickler = _Py2Pickler()
    pickler.out.write(_PROTO + b"\x02")
    pickler.list(blobs, pickler.string)
    pickler.list(labels, pickler.boolean)
    pickler.out.write(_TUPLE2)
    pickler.memoize()
    pickler.out.write(_STOP)
    return pickler.out.getvalue()


def write_agedb_bin(path: str | os.PathLike, images: Sequence[bytes], issame: Iterable[bool] | np.ndarray) -> Path:
    """Write an insightface verification pack exactly as Python 2 pickled the real ``agedb_30.bin``.

    ``images[2k]``, ``images[2k+1]`` are pair ``k`` (encoded JPEG bytes); ``issame[k]`` its label. The file
    is a protocol-2 pickle with ``SHORT_BINSTRING``/``BINSTRING`` items, so a plain Python 3
    ``pickle.load`` raises ``UnicodeDecodeError`` on it and ``pickle.load(f, encoding='bytes')`` returns
    ``bytes`` (see the module docstring). Written atomically; returns ``path``.
    """
    data = agedb_bin_bytes(images, issame)
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return path
