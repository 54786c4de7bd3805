"""What the writers of the age-invariant face recognition datasets share (research notes A3-A6): their
settings base class, made-up names, the atomic write into a dataset root, the ``SYNTHETIC.json`` manifest and
the fingerprint-addressed cache. The writers themselves are one module per dataset, mirroring the readers
(:mod:`facebench.data.morph` etc.): :mod:`~facebench.data.synth.morph`, :mod:`~facebench.data.synth.cacd`,
:mod:`~facebench.data.synth.fgnet` and :mod:`~facebench.data.synth.agedb`.

Every writer renders a :mod:`longitudinal <facebench.data.synth.longitudinal>` population (the same people
at several ages), is deterministic for its settings, writes into a temporary sibling folder and renames it
into place (nothing half-written survives an interruption), refuses (:class:`UserInputError`) when one of
its top-level entries already exists (a non-empty folder or a file) or when ``SYNTHETIC.json`` is already
there, and marks the dataset root with ``SYNTHETIC.json``. Layouts under ``out_dir`` (the dataset root)::

    MORPH   MORPH_nonCommercial/morph_2008_nonCommercial.csv, MORPH_nonCommercial/Album2/*.JPG
    CACD    CACD2000/{age}_{First_Last}_{k:04d}.jpg, celebrity2000_meta.mat, CACD_VS/{pairId:04d}_{0,1}.jpg
    FG-NET  FGNET/images/{subject:03d}A{age:02d}[a|b].JPG
    AgeDB   AgeDB/{imgnum}_{Name}_{age}_{m|f}.jpg, agedb_30.bin

Besides the format's own labels, ``SYNTHETIC.json`` lists every subject with its synthetic ``group``,
``gender`` and ``aging_rate`` (under ``subjects``, keyed by the format's own subject key), so analyses can
use the true groups of datasets that carry no race label (CACD, FG-NET, AgeDB). Names are made-up syllable
names (never real people's). The same settings give byte-identical files on the same machine and library
versions.

What is synthetic rather than real, beyond the faces: MORPH's three file-name/CSV gender conflicts are not
reproduced; FG-NET's ``points/`` landmark files are not written; image sizes are square; group proportions
of CACD, FG-NET and AgeDB are guesses (:mod:`longitudinal <facebench.data.synth.longitudinal>`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from PIL import Image

from facebench.data.synth.longitudinal import (
    AIFR_SHIFTS,
    LONGITUDINAL_VERSION,
    fingerprint_of,
    sub_seed,
)
from facebench.data.synth.population import GENERATOR_VERSION, without_default_offsets
from facebench.errors import UserInputError
from facebench.io import partial_folder, remove_stale_partials

MANIFEST_NAME = "SYNTHETIC.json"
GENERATOR_NAME = "facebench.synth"
#: Faces rendered and encoded per block (bounds memory).
WRITE_BLOCK = 256


# --- settings -----------------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class _Settings:
    FORMAT: ClassVar[str] = ""

    n_people: int
    seed: int = 0
    image_size: int = 200
    #: internal render resolution; ``None`` renders at ``image_size`` (else rendered, then bilinear-resized)
    render_size: int | None = None
    #: known-answer setting of the longitudinal people (:data:`facebench.data.synth.longitudinal.AIFR_SHIFTS`),
    #: passed to :meth:`config`; left out of :meth:`to_dict` when ``default`` (fingerprints unchanged)
    shift: str = "default"

    def __post_init__(self) -> None:
        if self.shift not in AIFR_SHIFTS:
            raise ValueError(f"shift must be one of {list(AIFR_SHIFTS)}, got {self.shift!r}")
        if self.n_people < 1:
            raise ValueError(f"{type(self).__name__}.n_people must be at least 1, got {self.n_people}")
        if self.image_size < 8 or (self.render_size is not None and self.render_size < 8):
            raise ValueError(f"{type(self).__name__} image_size and render_size must be at least 8 pixels")

    def to_dict(self) -> dict:
        """The settings as plain JSON-able data (tuples become lists); ``shift`` only when not ``default``, so
        settings, fingerprints and cache folders from before the setting existed are unchanged."""
        data = json.loads(json.dumps(dataclasses.asdict(self)))
        if data["shift"] == "default":
            del data["shift"]
        return without_default_offsets(data)

    def fingerprint(self) -> str:
        """SHA-256 over the format, every setting, :data:`GENERATOR_VERSION` and the longitudinal version."""
        return fingerprint_of(self.FORMAT, self.to_dict())

    def options(self) -> dict[str, Any]:
        """The fields as keyword arguments of the format's writer."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# --- shared helpers -----------------------------------------------------------------------------------------

_ONSETS = ("b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
           "br", "cl", "dr", "fl", "gr", "kr", "pr", "st", "tr", "th", "sh", "qu", "vr", "zh")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ea", "ie", "ou", "y")
_ENDINGS = ("", "", "", "n", "r", "l", "s", "x", "th", "nd", "rk", "ck", "ll", "ne", "ra", "lo", "vin", "mer")


def synthetic_names(n: int, seed: int, *, dataset: str, third_part_share: float = 0.0) -> list[tuple[str, ...]]:
    """``n`` distinct made-up names as tuples of capitalised ASCII parts (first, [middle,] last).

    Each synthetic dataset draws its names from its own stream (``dataset``): the people of the synthetic CACD
    and AgeDB are different made-up people, so they must not share names either, or the identity-overlap check
    (:mod:`facebench.data.identities`) would count them as the same celebrities."""
    rng = np.random.default_rng(sub_seed(seed, "names", dataset))

    def word(syllables: int) -> str:
        text = "".join(_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
                       for _ in range(syllables))
        return (text + _ENDINGS[rng.integers(len(_ENDINGS))]).capitalize()

    names: list[tuple[str, ...]] = []
    seen: set[str] = set()
    while len(names) < n:
        parts = [word(int(rng.integers(1, 3))), word(int(rng.integers(2, 4)))]
        if rng.random() < third_part_share:
            parts.insert(1, word(int(rng.integers(1, 3))))
        key = "".join(parts).lower()
        if key not in seen:
            seen.add(key)
            names.append(tuple(parts))
    return names


def _refuse_existing(out_dir: Path, entries: Sequence[str], what: str) -> None:
    for entry in (*entries, MANIFEST_NAME):
        path = out_dir / entry
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise UserInputError(
                f"{path} already exists{' and is not empty' if path.is_dir() else ''}, so no synthetic {what} "
                "data was written there; remove it or choose another output folder."
            )


def write_atomically(out_dir: str | os.PathLike, entries: Sequence[str], what: str,
                      build: Callable[[Path], dict]) -> Path:
    """Run ``build(tmp)`` in a temporary sibling of ``out_dir`` (it writes ``entries`` there and returns the
    manifest), then move everything into ``out_dir`` (the manifest last); clean up on any failure. The sibling is
    named after this process (:func:`facebench.io.partial_folder`), and the siblings of killed writes of the same
    folder are deleted first (:func:`facebench.io.remove_stale_partials`), so a kill leaves nothing for good."""
    out_dir = Path(out_dir)
    _refuse_existing(out_dir, entries, what)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(out_dir)  # what a killed write of the same folder left behind
    tmp = partial_folder(out_dir)
    moved: list[str] = []
    try:
        os.chmod(tmp, 0o755)
        manifest = build(tmp)
        with open(tmp / MANIFEST_NAME, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2, allow_nan=False)
            handle.write("\n")
        if not out_dir.exists():
            try:
                os.rename(tmp, out_dir)
            except OSError as error:
                raise UserInputError(
                    f"The folder {out_dir} appeared while synthetic {what} data was being written ({error}); "
                    "nothing was written there."
                ) from error
            return out_dir
        _refuse_existing(out_dir, entries, what)  # again, just before moving
        for entry in entries:
            target = out_dir / entry
            if target.is_dir():
                target.rmdir()  # empty: checked above
            os.rename(tmp / entry, target)
            moved.append(entry)
        os.rename(tmp / MANIFEST_NAME, out_dir / MANIFEST_NAME)  # last: the manifest marks completion
        tmp.rmdir()
    except BaseException:
        for entry in moved:  # put back what was already moved, so that nothing half-written stays
            try:
                os.rename(out_dir / entry, tmp / entry)
            except OSError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _manifest(settings: _Settings, photos: pd.DataFrame, subjects: list[dict], **extra: Any) -> dict:
    return {
        "synthetic": True,
        "generator": GENERATOR_NAME,
        "generator_version": GENERATOR_VERSION,
        "longitudinal_version": LONGITUDINAL_VERSION,
        "fingerprint": settings.fingerprint(),
        "format": settings.FORMAT,
        "config": settings.to_dict(),
        "n_people": int(photos["person"].nunique()),
        "n_images": int(len(photos)),
        "subjects": subjects,
        # the known-answer setting (longitudinal.AIFR_SHIFTS), only when not default: default manifests keep their bytes
        **({"shift": settings.shift} if settings.shift != "default" else {}),
        **extra,
    }


def _subjects(photos: pd.DataFrame, key: str, *more: str) -> list[dict]:
    """One entry per person: the format's subject key, extra columns, and the synthetic identity labels."""
    first = photos.groupby("person", sort=True).first()
    counts = photos.groupby("person", sort=True).size()
    out = []
    for person, row in first.iterrows():
        entry = {key: _plain(row[key])}
        entry.update({m: _plain(row[m]) for m in more})
        entry.update({"group": str(row["race"]), "gender": str(row["gender"]),
                      "aging_rate": float(row["aging_rate"]), "n_images": int(counts[person])})
        out.append(entry)
    return out


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _jpeg_bytes(pixels: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


def _settings(cls: type[_Settings], settings: _Settings | Mapping[str, Any]) -> _Settings:
    if isinstance(settings, cls):
        return settings
    if isinstance(settings, Mapping):
        return cls(**settings)
    raise TypeError(f"expected {cls.__name__} or a mapping of its fields, got {type(settings).__name__}")


def _cached(settings: _Settings, cache_dir: str | os.PathLike, write: Callable[..., Path], entry: str,
            progress: bool) -> Path:
    folder = Path(cache_dir) / f"{settings.FORMAT}-{settings.fingerprint()[:16]}"

    def complete() -> bool:
        path = folder / MANIFEST_NAME
        if not path.is_file() or not (folder / entry).exists():
            return False
        with open(path, encoding="utf-8") as handle:
            return json.load(handle).get("fingerprint") == settings.fingerprint()

    if complete():
        return folder
    try:
        write(folder, progress=progress, **settings.options())
    except UserInputError:
        if complete():  # another process finished the same dataset first
            return folder
        raise
    return folder
