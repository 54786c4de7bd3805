"""Labels that annotators assign to images a dataset does not label itself: the annotation file format.

CelebA has no race label, and seed 001's hand annotations (2,500 images, two researchers) were never released.
A user who has such annotations supplies them as one CSV file in this format (UTF-8, comma-separated, a header
line, LF or CRLF line endings)::

    image_id,label,annotator
    000001.jpg,white,annotator_1
    000001.jpg,white,annotator_2
    000002.jpg,non_white,annotator_1

* ``image_id``: the dataset's own image name (CelebA: ``000001.jpg``, as in ``list_attr_celeba.txt``);
* ``label``: one of the categories the user *declares* (the reader option ``race_categories``); the names are
  the user's, e.g. ``white`` / ``non_white`` for seed 001's "Caucasian vs other";
* ``annotator`` (optional column): who gave the label. Several annotators may label the same image, each at
  most once; without the column each image has at most one label.

What the labels are: **labels assigned by annotators from the photo** (how the annotators perceived the person),
not how the person identifies. The FaceTable therefore keeps them in their own column, ``annotated_race``, and
never in ``race`` (which holds a dataset's own labels). Where several annotators labelled an image, the column
holds the label given by a strict majority of them, and is missing where there is none (a tie: two annotators who
disagree); ``annotation_count`` says how many labels the image had. How well the annotators agree is
:func:`facebench.metrics.agreement.annotation_agreement`.

Every problem is refused with one sentence naming the file and line (:class:`~facebench.errors.UserInputError`):
another header, a row with another number of fields, an empty field, an image the dataset does not list, a label
outside the declared categories (with a did-you-mean), the same image twice (for the same annotator).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from facebench.errors import UserInputError, did_you_mean, shorten
from facebench.limits import read_text
from facebench.metrics.agreement import Agreement, annotation_agreement

#: The two accepted headers, exactly.
HEADERS: tuple[tuple[str, ...], ...] = (("image_id", "label"), ("image_id", "label", "annotator"))

#: Largest annotation file read (a whole-CelebA annotation by ten annotators is ~50 MB).
MAX_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Annotations:
    """A parsed annotation file: one row per label (``image_id``, ``label``, ``annotator`` or <NA>, ``line``)."""

    path: str
    categories: tuple[str, ...]
    frame: pd.DataFrame

    def consensus(self) -> pd.DataFrame:
        """Per annotated image (index ``image_id``): ``annotated_race``, the label of a strict majority of its
        annotators (<NA> on a tie), and ``annotation_count``, how many labels it had."""
        counts = self.frame.groupby(["image_id", "label"]).size().rename("n").reset_index()
        total = counts.groupby("image_id")["n"].transform("sum")
        winners = counts[counts["n"] * 2 > total].set_index("image_id")["label"]
        n = self.frame.groupby("image_id").size()
        out = pd.DataFrame({"annotated_race": winners.reindex(n.index).astype("string"),
                            "annotation_count": n.astype("int64")})
        return out

    def agreement(self) -> Agreement:
        """Cohen's or Fleiss' kappa of the annotators (:func:`facebench.metrics.agreement.annotation_agreement`)."""
        return annotation_agreement(self.frame, categories=self.categories)


def check_categories(categories, *, what: str) -> tuple[str, ...]:
    """The declared categories as a tuple of distinct, non-empty strings; otherwise one sentence naming ``what``.

    >>> check_categories(["white", "non_white"], what="race_categories")
    ('white', 'non_white')
    >>> check_categories("white, non_white", what="race_categories")
    ('white', 'non_white')
    """
    if isinstance(categories, str):
        categories = [part.strip() for part in categories.split(",")]
    if not isinstance(categories, (list, tuple)) or not categories:
        raise UserInputError(f"{what} must be a non-empty list of category names, e.g. [white, non_white] "
                             f"(got {shorten(categories)}).")
    names = tuple(str(c) if isinstance(c, (str, int)) and not isinstance(c, bool) else None for c in categories)
    if any(name is None or not name.strip() or name != name.strip() or "," in name for name in names):
        raise UserInputError(f"{what} must list category names as plain words without commas or surrounding "
                             f"spaces (got {shorten(list(categories))}).")
    if len(set(names)) != len(names):
        raise UserInputError(f"{what} lists a category twice (got {shorten(list(categories))}).")
    return names  # type: ignore[return-value]


def read_annotations(path: str | os.PathLike, *, categories: Sequence[str], known_ids: Collection[str],
                     dataset: str = "the dataset", what: str = "Annotation file") -> Annotations:
    """Read an annotation file strictly (module docstring); ``known_ids`` are the image ids the dataset lists."""
    path = Path(path)
    categories = check_categories(categories, what="The declared categories")
    text = read_text(path, what=what, max_bytes=MAX_BYTES)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    known = known_ids if isinstance(known_ids, (set, frozenset, dict)) else set(known_ids)
    try:
        header = next(reader, None)
        if header is None:
            raise UserInputError(f"{what} {path} is empty; it needs the header image_id,label[,annotator].")
        if tuple(header) not in HEADERS:
            raise UserInputError(f"{what} {path}: line 1 is {shorten(','.join(header))}; expected the header "
                                 "image_id,label or image_id,label,annotator.")
        width = len(header)
        rows: list[tuple[str, str, str | None, int]] = []
        seen: dict[tuple[str, str | None], int] = {}
        for fields in reader:
            line = reader.line_num
            where = f"{what} {path}: line {line}"
            if len(fields) != width:
                raise UserInputError(f"{where} has {len(fields)} field{'s' if len(fields) != 1 else ''}; "
                                     f"expected {width} ({','.join(header)}).")
            image_id, label = fields[0], fields[1]
            annotator = fields[2] if width == 3 else None
            for name, value in zip(header, fields, strict=True):
                if value.strip() == "":
                    raise UserInputError(f"{where} has an empty {name}.")
            if image_id not in known:
                raise UserInputError(f"{where} annotates image {shorten(image_id)}, which {dataset} does not list.")
            if label not in categories:
                raise UserInputError(f"{where} has label {shorten(label)}{did_you_mean(label, categories)}, which is "
                                     f"not one of the declared categories {', '.join(categories)}.")
            key = (image_id, annotator)
            if key in seen:
                by = f" by annotator {shorten(annotator)}" if annotator is not None else ""
                raise UserInputError(f"{where} labels image {shorten(image_id)}{by} again (first on line {seen[key]}).")
            seen[key] = line
            rows.append((image_id, label, annotator, line))
    except csv.Error as error:
        raise UserInputError(f"{what} {path}: line {reader.line_num} is not valid CSV ({error}).") from None
    if not rows:
        raise UserInputError(f"{what} {path} has a header but no annotations.")
    frame = pd.DataFrame(rows, columns=["image_id", "label", "annotator", "line"])
    frame["annotator"] = frame["annotator"].astype("string")
    return Annotations(path=str(path), categories=categories, frame=frame)


def write_annotations(path: str | os.PathLike, rows: Sequence[tuple[str, str, str | None]]) -> None:
    """Write ``(image_id, label, annotator)`` rows in the annotation format (the annotator column when any row
    names one); LF line endings. Used by the synthetic writers and tests."""
    with_annotator = any(annotator is not None for _, _, annotator in rows)
    lines = ["image_id,label,annotator" if with_annotator else "image_id,label"]
    for image_id, label, annotator in rows:
        lines.append(f"{image_id},{label},{annotator}" if with_annotator else f"{image_id},{label}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")
