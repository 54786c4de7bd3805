"""Write a synthetic population in the exact UTKFace on-disk format (aligned-and-cropped variant).

Layout written by :func:`write_utkface`::

    out_dir/
        UTKFace/{age}_{gender}_{race}_{datetime}.jpg.chip.jpg    200x200 RGB JPEGs
        SYNTHETIC.json                                         manifest: marks the folder as synthetic

with UTKFace's codes: gender 0 = male, 1 = female; race 0 white, 1 black, 2 asian, 3 indian, 4 others;
``datetime`` 17 digits ``yyyymmddHHMMSSFFF`` (milliseconds), unique per file. The same config always gives
byte-identical files (on the same machine and library versions: the renderer's float maths and libjpeg may
differ in the last bit elsewhere).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from facebench.data.synth.common import write_atomically
from facebench.data.synth.population import GENERATOR_VERSION, SynthConfig, sample_population
from facebench.data.synth.render import render_faces
from facebench.data.table import GENDERS, RACES
from facebench.errors import UserInputError

MANIFEST_NAME = "SYNTHETIC.json"
IMAGE_FOLDER = "UTKFace"
GENERATOR_NAME = "facebench.synth"
#: First file's datetime; each seed starts on its own day of January 2017 and every next face is
#: :data:`DATETIME_STEP` later, so names are unique, valid calendar date-times and deterministic.
DATETIME_START = datetime(2017, 1, 1, 8, 0, 0)
DATETIME_STEP = timedelta(seconds=13, milliseconds=417)
#: Faces rendered and encoded per block (bounds memory: 256 x 200 x 200 x 3 bytes = 30 MB).
WRITE_BLOCK = 256


def utkface_file_names(population: pd.DataFrame, seed: int) -> list[str]:
    """The UTKFace file name of each row of ``population`` (in order), for a population drawn with ``seed``."""
    race_codes = {race: i for i, race in enumerate(RACES)}
    gender_codes = {gender: i for i, gender in enumerate(GENDERS)}
    unknown = sorted(set(population["race"]) - set(race_codes))
    if unknown:
        raise ValueError(f"UTKFace has no race code for synthetic group(s) {unknown}; use names from {RACES}")
    start = DATETIME_START + timedelta(days=seed % 28)
    names = []
    for i, (age, gender, race) in enumerate(zip(population["age"], population["gender"], population["race"], strict=True)):
        stamp = start + i * DATETIME_STEP
        digits = stamp.strftime("%Y%m%d%H%M%S") + f"{stamp.microsecond // 1000:03d}"
        names.append(f"{int(age)}_{gender_codes[gender]}_{race_codes[race]}_{digits}.jpg.chip.jpg")
    return names


def manifest(config: SynthConfig) -> dict:
    """The content of ``SYNTHETIC.json`` for ``config``."""
    return {
        "synthetic": True,
        "generator": GENERATOR_NAME,
        "generator_version": GENERATOR_VERSION,
        "fingerprint": config.fingerprint(),
        "format": "utkface",
        "config": config.to_dict(),
        "n": config.n,
        # the known-answer shift kind (facebench.data.synth.population.SHIFTS): what a reader needs to know
        # whether an adaptation method could have helped
        "shift": config.shift,
    }


def encode_faces(root: Path, population: pd.DataFrame, paths: Sequence[str], image_size: int,
            render_size: int | None, progress: bool, what: str, *, width: int | None = None) -> None:
    """Render every row of ``population`` and save it as a JPEG at ``root / paths[i]`` (its own quality).

    Faces are rendered square; ``width`` (< ``image_size``) keeps the middle ``width`` columns, for formats whose
    images are taller than wide (CelebA's aligned images are 178 x 218)."""
    crop = None
    if width is not None and width != image_size:
        if not 0 < width < image_size:
            raise ValueError(f"width must be between 1 and image_size ({image_size}), got {width}")
        left = (image_size - width) // 2
        crop = (left, 0, left + width, image_size)
    for folder in sorted({Path(p).parent for p in paths}):
        (root / folder).mkdir(parents=True, exist_ok=True)
    size = render_size or image_size
    qualities = population["jpeg_quality"].to_numpy()

    def write_blocks(advance: Callable[[int], Any]) -> None:
        for start in range(0, len(population), WRITE_BLOCK):
            stop = min(start + WRITE_BLOCK, len(population))
            images = render_faces(population.iloc[start:stop], size=size)
            for offset, pixels in enumerate(images):
                i = start + offset
                image = Image.fromarray(np.ascontiguousarray(pixels))
                if size != image_size:
                    image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
                if crop is not None:
                    image = image.crop(crop)
                image.save(root / paths[i], format="JPEG", quality=int(qualities[i]))
            advance(stop - start)

    if not progress:
        write_blocks(lambda k: None)
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(f"Writing {len(population)} synthetic {what} faces", total=len(population))
        write_blocks(lambda k: bar.advance(task, k))


def write_utkface(out_dir: str | os.PathLike, config: SynthConfig, *, progress: bool = False) -> Path:
    """Render ``config``'s population and write it as ``out_dir/UTKFace/*.jpg.chip.jpg`` plus
    ``out_dir/SYNTHETIC.json``; return ``out_dir``.

    Atomic: everything is written into a temporary sibling folder, then renamed into place, so an
    interrupted write leaves nothing half-written (:func:`facebench.data.synth.common.write_atomically`, shared
    with the AIFR writers). Refuses (:class:`UserInputError`) when ``out_dir/UTKFace`` already exists and is not
    empty, or ``out_dir/SYNTHETIC.json`` exists.
    """
    population = sample_population(config)
    names = utkface_file_names(population, config.seed)

    def build(tmp: Path) -> dict:
        (tmp / IMAGE_FOLDER).mkdir()
        encode_faces(tmp / IMAGE_FOLDER, population, names, config.image_size, config.render_size, progress, "UTKFace")
        return manifest(config)

    return write_atomically(out_dir, [IMAGE_FOLDER], "UTKFace", build)


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The ``SYNTHETIC.json`` manifest of a dataset folder, or ``None`` if it has none (not synthetic)."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def synth_utkface_cached(config: SynthConfig, cache_dir: str | os.PathLike, *, progress: bool = False) -> Path:
    """``cache_dir / f"utkface-{config.fingerprint()[:16]}"``, written first unless a complete copy is there."""
    folder = Path(cache_dir) / f"utkface-{config.fingerprint()[:16]}"

    def complete() -> bool:
        found = read_manifest(folder)
        return (found is not None and found.get("fingerprint") == config.fingerprint()
                and (folder / IMAGE_FOLDER).is_dir())

    if complete():
        return folder
    try:
        write_utkface(folder, config, progress=progress)
    except UserInputError:
        if complete():  # another process finished the same dataset first
            return folder
        raise
    return folder
