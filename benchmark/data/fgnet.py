"""Strict reader for FG-NET (research notes A5).

Layout of the dataset root (the folder that *contains* ``FGNET/``)::

    FGNET/images/001A02.JPG        1,002 images of 82 subjects, {subject:03d}A{age:02d}[a|b].JPG
    FGNET/images/001A43a.JPG       a letter after the age tells apart several images at the same age
    FGNET/points/001a02.pts        68 landmarks per image (not read)

Names are matched case-insensitively (some copies have a lower-case ``a`` or ``.jpg``; ``.jpeg`` is taken
too): ``^(\\d{3})A(\\d{2})([a-z]?)\\.(jpe?g)$``. ``subject_id`` is the three digits as written (``"001"``),
``age`` the two digits; the letter is kept in ``image_suffix`` (``<NA>`` when there is none). FG-NET has no
gender or race labels: those columns are all missing. ``root`` may also be ``FGNET/`` or ``FGNET/images/``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facebench.data.table import (
    Parsed,
    ReadResult,
    age_band,
    age_band_names,
    check_variant,
    face_table,
    nothing_read_error,
    parse_folder,
    read_summary,
    vocabulary_counts,
)
from facebench.errors import UserInputError, did_you_mean

FOLDER = "FGNET"
IMAGE_FOLDER = "images"
VARIANTS: tuple[str, ...] = ("images",)

#: The name pattern of A5, case-insensitive, ASCII digits; match with ``fullmatch``.
FGNET_NAME = re.compile(r"([0-9]{3})A([0-9]{2})([a-z]?)\.(jpe?g)", re.ASCII | re.IGNORECASE)

#: FaceTable columns of an FG-NET read, in order.
COLUMNS: tuple[str, ...] = (
    "sample_id", "subject_id", "age", "gender", "race", "race_code", "gender_code", "image_suffix",
)

#: Age bands for FG-NET summaries: it is mostly children (0-2, 3-9, 10-19, ..., 60+).
AGE_BAND_EDGES: tuple[int, ...] = (0, 3, 10, 20, 30, 40, 50, 60)

_EXAMPLE = "001A02.JPG"


@dataclass(frozen=True)
class FGNETName:
    """The labels in one valid FG-NET file name (subject as written, suffix letter or "")."""

    subject: str
    age: int
    suffix: str


def parse_fgnet_name(name: str) -> Parsed[FGNETName]:
    """Parse ``{subject:03d}A{age:02d}[a|b].JPG`` case-insensitively: its :class:`FGNETName`, or a reason.

    >>> parse_fgnet_name("001A43a.JPG").value, parse_fgnet_name("078a11.jpg").value.age
    (FGNETName(subject='001', age=43, suffix='a'), 11)
    >>> parse_fgnet_name("1A02.JPG").reason
    "subject '1' not 3 digits"
    """
    match = FGNET_NAME.fullmatch(name)
    if match is not None:
        subject, age, suffix, _ = match.groups()
        return Parsed.accept(FGNETName(subject, int(age), suffix))
    stem, dot, extension = name.rpartition(".")
    if not dot or extension.lower() not in ("jpg", "jpeg"):
        return Parsed.reject("not an FG-NET image name: does not end in '.JPG'")
    head, a, tail = stem.upper().partition("A")
    if not a:
        return Parsed.reject(
            f"no 'A' between subject and age: expected {{subject:03d}}A{{age:02d}}.JPG like {_EXAMPLE}"
        )
    problems = []
    if not re.fullmatch(r"[0-9]{3}", head, re.ASCII):
        problems.append(f"subject '{stem[: len(head)]}' not 3 digits")
    age_digits = re.match(r"[0-9]*", tail, re.ASCII).group(0)  # type: ignore[union-attr]
    rest = stem[len(head) + 1 + len(age_digits):]
    if len(age_digits) != 2:
        problems.append(f"age '{age_digits}' not 2 digits")
    if len(rest) > 1 or (rest and not rest.isascii()) or (rest and not rest.isalpha()):
        problems.append(f"suffix '{rest}' not one letter")
    return Parsed.reject("; ".join(problems) if problems else "does not match the FG-NET name pattern")


@dataclass(frozen=True)
class FGNETReadResult(ReadResult):
    """A :class:`ReadResult` plus where it was read."""

    root: str
    variant: str


def _resolve_base(root: Path) -> Path:
    """The dataset root: the folder holding ``FGNET/``, found from it, ``FGNET/`` or ``FGNET/images/``."""
    if not root.exists():
        raise UserInputError(f"FG-NET root {root} does not exist.")
    if not root.is_dir():
        raise UserInputError(f"FG-NET root {root} is not a folder.")
    if (root / FOLDER / IMAGE_FOLDER).is_dir():
        return root
    absolute = Path(os.path.abspath(root))
    if absolute.name == FOLDER and (root / IMAGE_FOLDER).is_dir():
        return absolute.parent
    if absolute.name == IMAGE_FOLDER and absolute.parent.name == FOLDER:
        return absolute.parent.parent
    if (root / FOLDER).is_dir() or absolute.name == FOLDER:
        folder = root / FOLDER if (root / FOLDER).is_dir() else root
        raise UserInputError(f"FG-NET folder {folder} has no {IMAGE_FOLDER}/ folder; expected {FOLDER}/{IMAGE_FOLDER}/{_EXAMPLE}.")
    try:
        subfolders = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    except OSError as error:
        raise UserInputError(f"Cannot list FG-NET root {root}: {error.strerror or error}.") from None
    same = [name for name in subfolders if re.sub(r"[^a-z0-9]", "", name.lower()) == FOLDER.lower()]  # fg-net, FG_NET
    hint = f" (did you mean '{same[0]}'?)" if same else did_you_mean(FOLDER, subfolders)
    raise UserInputError(
        f"FG-NET root {root} has no {FOLDER}/{IMAGE_FOLDER}/ folder{hint}; point it at the folder that contains "
        f"{FOLDER}/ (or at {FOLDER}/ itself)."
    )


def read_fgnet(root: str | os.PathLike, *, variant: str = "images") -> FGNETReadResult:
    """Read FG-NET labels from the names in ``FGNET/images/``; reject malformed names with a reason.

    ``sample_id`` is ``FGNET/images/<name>`` (the name's case kept). Rows are sorted by ``sample_id``.
    Hidden files and subfolders are skipped; images are not opened; an entry that is not a readable
    file (a dangling or looping link, a folder with an image name) is rejected with its reason.
    """
    check_variant(variant, VARIANTS, title="FG-NET")
    base = _resolve_base(Path(root))
    directory = base / FOLDER / IMAGE_FOLDER
    rows, rejected, n_seen = parse_folder(directory, f"{FOLDER}/{IMAGE_FOLDER}/", parse_fgnet_name, title="FG-NET")
    if not rows:
        raise nothing_read_error("FG-NET", directory, n_seen=n_seen, rejected=rejected, example=_EXAMPLE)
    table = face_table(
        sample_id=[s for s, _ in rows],
        subject_id=[p.subject for _, p in rows],
        age=np.asarray([p.age for _, p in rows], dtype=np.int64),
        image_suffix=[p.suffix or None for _, p in rows],
        order=COLUMNS,
    )
    return FGNETReadResult(table=table, rejected=tuple(rejected), root=str(base), variant=variant)


def verify_summary(result: FGNETReadResult) -> dict[str, Any]:
    """JSON-ready summary of a read: sizes, every rejected file with its reason, and age-band counts."""
    bands = age_band(result.table["age"], AGE_BAND_EDGES)
    return read_summary("fgnet", result, root=result.root, variant=result.variant,
                        groups={"age_band": vocabulary_counts(bands, age_band_names(AGE_BAND_EDGES))})
