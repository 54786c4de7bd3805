"""A synthetic CelebA in the release's exact on-disk format, read back by :mod:`facebench.data.celeba`, plus a
race annotation file (:mod:`facebench.data.annotations`) from synthetic annotators.

Layout written under ``out_dir`` (the dataset root)::

    Img/img_align_celeba/000001.jpg ...        JPEGs, 178 x 218 at the default size (height ``image_size``)
    Anno/list_attr_celeba.txt                  count line, 40 names + trailing space, values %2d (first unpadded)
    Anno/identity_CelebA.txt                   000001.jpg 2880
    Anno/list_bbox_celeba.txt                  count, header, right-aligned x_1 y_1 width height
    Anno/list_landmarks_align_celeba.txt       count, ten names, first value unpadded then %5d
    Eval/list_eval_partition.txt               000001.jpg 0
    race_annotations.csv                       image_id,label,annotator (synthetic annotators)
    SYNTHETIC.json                             the manifest: settings, each identity's true group, the annotators

Every text file has CRLF line endings with a final CRLF, as the release has.

Who is in it (:func:`celeba_people`): synthetic people photographed a few times each over a few years (the
longitudinal sampler, :mod:`facebench.data.synth.longitudinal`), mostly white and mostly adults, 42% men.
Seed 001 notes that CelebA's people "of different race" have "similar skin-tone (potentially due to industry
beauty standards)": the groups' skin lightness and warmth are pulled towards the white group's by
``skin_tone_compression`` (1 keeps the UTKFace-like differences, 0 removes them). How they were photographed is
:data:`~facebench.data.synth.camera.CELEBA_CAMERA`: another camera than the synthetic UTKFace's (more head turn,
flat flash light, brighter, saturated backdrops, lipstick), drawn by the same renderer.

Partitions split the identities 80 / 10 / 10 % (train / valid / test, identity-disjoint as in the release) and
images are numbered train first, as in the release. Attributes: those the renderer shows are derived from the
face (``Male``, ``Young``, ``Smiling``, ``Mouth_Slightly_Open``, ``Wearing_Lipstick``, ``Heavy_Makeup``,
``Gray_Hair``, ``Bald``, ``Receding_Hairline``, ``Bangs``, ``Black_Hair``, ``Blond_Hair``, ``Brown_Hair``,
``Pale_Skin``; listed in the manifest as ``attributes_rendered``); the others (glasses, hats, beards, ...) are not
drawn and are random at roughly CelebA's base rates [UNVERIFIED], so no model can learn them from the image.

Annotations: each of ``annotators`` synthetic annotators labels a ``annotated_share`` of the images with the
person's synthetic group, wrong with probability ``annotator_error`` (then another category at random). The
categories are the group names (``white``, ``black``, ``asian``, ``indian``, ``others``), recorded in the
manifest (``race_annotations.categories``); read them with the reader options
``race_annotations: race_annotations.csv`` and ``race_categories: [white, black, asian, indian, others]``.

What is synthetic rather than real, beyond the faces: the in-the-wild images (``img_celeba``) and their
landmark file are not written, and the bounding boxes (which refer to them) are made-up numbers; aligned
landmarks are where the renderer put the eyes, nose and mouth corners; photos per identity are fewer (1-12,
mean 5, against about 20); group proportions are a guess [UNVERIFIED].
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from facebench.data.annotations import write_annotations
from facebench.data.celeba import ATTRIBUTES, BBOX_HEADER, LANDMARKS_HEADER
from facebench.data.synth.camera import CELEBA_CAMERA, Camera, apply_camera
from facebench.data.synth.common import _cached, _manifest, _Settings, _settings, _subjects, write_atomically
from facebench.data.synth.longitudinal import (
    LongitudinalConfig,
    _groups_with,
    expand_photos,
    sample_people,
    sample_photo_ages,
    sub_seed,
)
from facebench.data.synth.population import REFERENCE_GROUP, GroupAppearance
from facebench.data.synth.render import HEAD_CENTRE_Y
from facebench.data.synth.utkface import encode_faces

IMAGE_FOLDER = "Img/img_align_celeba"
ANNOTATION_FILE = "race_annotations.csv"
#: Real aligned images are 178 wide and 218 high.
REAL_WIDTH, REAL_HEIGHT = 178, 218
#: CelebA numbers its identities 1..10,177.
N_IDENTITIES = 10177
#: Mostly white celebrities [UNVERIFIED guess; CelebA has no race label].
CELEBA_GROUPS: tuple[GroupAppearance, ...] = _groups_with(
    {"white": 0.80, "black": 0.08, "asian": 0.06, "indian": 0.02, "others": 0.04})
#: CelebA's ``Male`` attribute is 1 on about 42% of the images.
CELEBA_MALE_SHARE = 0.42

#: Base rates of the attributes the renderer does not draw [UNVERIFIED, roughly CelebA's]; ``(all, men, women)``
#: where they differ by gender (None: the same for everyone).
DRAWN_RATES: dict[str, tuple[float, float | None, float | None]] = {
    "5_o_Clock_Shadow": (0.11, 0.26, 0.0), "Arched_Eyebrows": (0.27, 0.05, 0.42), "Attractive": (0.51, None, None),
    "Bags_Under_Eyes": (0.20, None, None), "Big_Lips": (0.24, None, None), "Big_Nose": (0.23, None, None),
    "Blurry": (0.05, None, None), "Bushy_Eyebrows": (0.14, None, None), "Chubby": (0.06, None, None),
    "Double_Chin": (0.05, None, None), "Eyeglasses": (0.07, None, None), "Goatee": (0.06, 0.15, 0.0),
    "High_Cheekbones": (0.45, None, None), "Mustache": (0.04, 0.10, 0.0), "Narrow_Eyes": (0.12, None, None),
    "Oval_Face": (0.28, None, None), "Pointy_Nose": (0.28, None, None), "Rosy_Cheeks": (0.07, 0.01, 0.11),
    "Sideburns": (0.06, 0.14, 0.0), "Straight_Hair": (0.21, None, None), "Wavy_Hair": (0.32, 0.12, 0.46),
    "Wearing_Earrings": (0.19, 0.02, 0.31), "Wearing_Hat": (0.05, None, None), "Wearing_Necklace": (0.12, 0.01, 0.20),
    "Wearing_Necktie": (0.07, 0.17, 0.0),
}
#: Attributes read off the rendered face.
RENDERED: tuple[str, ...] = ("Male", "Young", "Smiling", "Mouth_Slightly_Open", "Wearing_Lipstick", "Heavy_Makeup",
                             "Gray_Hair", "Bald", "Receding_Hairline", "Bangs", "Black_Hair", "Blond_Hair",
                             "Brown_Hair", "Pale_Skin", "No_Beard")


def compress_skin_tones(groups: tuple[GroupAppearance, ...], compression: float) -> tuple[GroupAppearance, ...]:
    """Each group's mean skin lightness and warmth moved towards the reference (white) group's: ``compression`` 1
    keeps them, 0 gives every group the reference's.

    >>> [round(g.skin_lightness, 3) for g in compress_skin_tones(CELEBA_GROUPS, 0.5)][:2]
    [0.8, 0.625]
    """
    reference = next((g for g in groups if g.name == REFERENCE_GROUP), None)
    if reference is None:
        return groups
    return tuple(dataclasses.replace(
        g, skin_lightness=reference.skin_lightness + (g.skin_lightness - reference.skin_lightness) * compression,
        skin_warmth=reference.skin_warmth + (g.skin_warmth - reference.skin_warmth) * compression) for g in groups)


@dataclass(frozen=True, kw_only=True)
class CelebaSettings(_Settings):
    """Settings of the synthetic CelebA (module docstring); ``image_size`` is the height, the width keeps
    CelebA's 178:218."""

    FORMAT: ClassVar[str] = "celeba"
    n_people: int = 200
    image_size: int = REAL_HEIGHT
    groups: tuple[GroupAppearance, ...] = CELEBA_GROUPS
    male_share: float = CELEBA_MALE_SHARE
    skin_tone_compression: float = 0.5
    photos: tuple[int, int] = (1, 12)
    photos_mean: float = 5.0
    partition_shares: tuple[float, float, float] = (0.8, 0.1, 0.1)
    camera: Camera = CELEBA_CAMERA
    annotators: int = 2
    annotated_share: float = 1.0
    annotator_error: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            object.__setattr__(self, "camera", Camera.of(self.camera, base=CELEBA_CAMERA))
        except TypeError as error:
            raise ValueError(f"CelebaSettings.camera: {error}") from None
        if self.n_people > N_IDENTITIES * 10:
            raise ValueError(f"CelebaSettings.n_people must be at most {N_IDENTITIES * 10}")
        if not 0.0 <= self.skin_tone_compression <= 1.0:
            raise ValueError("CelebaSettings.skin_tone_compression must be in [0, 1]")
        shares = self.partition_shares
        if len(shares) != 3 or min(shares) < 0 or sum(shares) <= 0:
            raise ValueError("CelebaSettings.partition_shares must be three non-negative shares (train, valid, test)")
        if self.annotators < 0 or not 0.0 <= self.annotated_share <= 1.0 or not 0.0 <= self.annotator_error <= 1.0:
            raise ValueError("CelebaSettings needs annotators >= 0 and annotated_share, annotator_error in [0, 1]")

    @property
    def width(self) -> int:
        """Image width: the release's 178:218 at this height."""
        return max(1, round(self.image_size * REAL_WIDTH / REAL_HEIGHT))

    def config(self) -> LongitudinalConfig:
        return LongitudinalConfig(
            n_people=self.n_people, seed=self.seed, groups=compress_skin_tones(tuple(self.groups), self.skin_tone_compression),
            male_share=self.male_share, photos=tuple(self.photos), photos_mean=self.photos_mean, photos_dispersion=4.0,
            first_age=(16.0, 28.0, 70.0), age_span=(0.0, 2.0, 8.0), min_age=14, max_age=85,
            jpeg_quality=self.camera.jpeg_quality)


# --------------------------------------------------------------------------------------------- records

def celeba_records(settings: CelebaSettings) -> pd.DataFrame:
    """One row per image in file order: render columns (with the CelebA camera applied) plus ``image_id``,
    ``identity``, ``partition`` (0/1/2) and ``attributes`` (list of 40 values of -1/1)."""
    config = settings.config()
    people = sample_people(config)
    photos = expand_photos(people, sample_photo_ages(config), config)
    photos = apply_camera(photos, settings.camera, sub_seed(settings.seed, "celeba", "camera"))
    rng = np.random.default_rng(sub_seed(settings.seed, "celeba", "files"))
    n = settings.n_people
    identities = rng.permutation(max(n, N_IDENTITIES))[:n] + 1
    shares = np.asarray(settings.partition_shares, float) / sum(settings.partition_shares)
    order = rng.permutation(n)
    cuts = np.round(np.cumsum(shares)[:2] * n).astype(int)
    partition_of = np.empty(n, np.int64)
    partition_of[order[: cuts[0]]], partition_of[order[cuts[0]: cuts[1]]], partition_of[order[cuts[1]:]] = 0, 1, 2
    person = photos["person"].to_numpy(np.int64)
    photos["identity"] = identities[person]
    photos["partition"] = partition_of[person]
    photos = photos.iloc[np.lexsort((rng.random(len(photos)), photos["partition"].to_numpy()))].reset_index(drop=True)
    photos["image_id"] = [f"{k:06d}.jpg" for k in range(1, len(photos) + 1)]
    photos["attributes"] = list(celeba_attributes(photos, rng))
    return photos


def _ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def celeba_attributes(photos: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """``(n, 40)`` int8 of -1/1 in :data:`~facebench.data.celeba.ATTRIBUTES` order (module docstring)."""
    n = len(photos)
    male = (photos["gender"] == "male").to_numpy()
    cue = photos["cue_age"].to_numpy(float)
    hair = photos[["hair_r", "hair_g", "hair_b"]].to_numpy(float) @ np.array([0.299, 0.587, 0.114])
    skin = photos[["skin_r", "skin_g", "skin_b"]].to_numpy(float) @ np.array([0.299, 0.587, 0.114])
    grey = 1.0 / (1.0 + np.exp(-(cue - photos["grey_onset"].to_numpy(float)) / 5.0))
    recession = photos["balding"].to_numpy(float) * _ramp(cue, 22.0, 62.0)
    smile = photos["smile"].to_numpy(float)
    lipstick = photos["lipstick"].to_numpy(bool)
    values: dict[str, np.ndarray] = {
        "Male": male, "Young": photos["age"].to_numpy() < 36, "Smiling": smile > 0.5,
        "Mouth_Slightly_Open": (smile > 0.55) ^ (rng.random(n) < 0.15), "Wearing_Lipstick": lipstick,
        "Heavy_Makeup": lipstick & (rng.random(n) < 0.8), "Gray_Hair": grey > 0.5, "Bald": recession > 0.55,
        "Receding_Hairline": (recession > 0.3) & (recession <= 0.55), "Bangs": photos["fringe"].to_numpy(float) > 0.1,
        "Black_Hair": (hair < 0.1) & (grey <= 0.5), "Blond_Hair": (hair > 0.5) & (grey <= 0.5),
        "Brown_Hair": (hair >= 0.15) & (hair <= 0.45) & (grey <= 0.5), "Pale_Skin": skin > 0.86,
    }
    for name, (rate, men, women) in DRAWN_RATES.items():
        p = np.where(male, rate if men is None else men, rate if women is None else women)
        values[name] = rng.random(n) < p
    values["No_Beard"] = ~(values["5_o_Clock_Shadow"] | values["Goatee"] | values["Mustache"] | values["Sideburns"])
    return np.stack([np.where(values[name], 1, -1).astype(np.int8) for name in ATTRIBUTES], axis=1)


def aligned_landmarks(photos: pd.DataFrame, height: int, width: int) -> np.ndarray:
    """``(n, 10)`` pixel positions of the eyes, nose tip and mouth corners where the renderer draws them (the
    image-left eye first, as in the release), in the written (cropped) image."""
    age = photos["age"].to_numpy(float)
    child = _ramp(18.0 - age, 0.0, 16.0)
    child = child * child * (3.0 - 2.0 * child)
    a = photos["face_width"].to_numpy(float) * (1.0 + 0.05 * child)
    bh = photos["face_height"].to_numpy(float) * (1.0 - 0.12 * child)
    eye_y = bh * (-0.02 + 0.15 * child)
    ex = a * photos["eye_spacing"].to_numpy(float) * (1.0 + 0.04 * child)
    nose_y = eye_y + bh * photos["nose_length"].to_numpy(float) * (1.0 - 0.38 * child)
    mouth_y = nose_y + bh * 0.21 * (1.0 - 0.3 * child) - 0.035 * photos["smile"].to_numpy(float)
    mw = a * photos["mouth_width"].to_numpy(float) * (1.0 - 0.22 * child)
    yaw = photos["yaw"].to_numpy(float) * a
    roll, scale = photos["roll"].to_numpy(float), photos["scale"].to_numpy(float)
    cr, sr = np.cos(roll), np.sin(roll)
    points = [(-ex + yaw, eye_y), (ex + yaw, eye_y), (1.3 * yaw, nose_y), (-mw + 1.1 * yaw, mouth_y),
              (mw + 1.1 * yaw, mouth_y)]
    left = (height - width) // 2
    out = []
    for x, y in points:  # the renderer's face frame back to image coordinates (its inverse rotation and scale)
        yc = y + HEAD_CENTRE_Y
        u = scale * (cr * x - sr * yc) + photos["shift_x"].to_numpy(float)
        v = scale * (sr * x + cr * yc) + photos["shift_y"].to_numpy(float)
        out += [np.round((u + 1.0) / 2.0 * height - left), np.round((v + 1.0) / 2.0 * height)]
    return np.stack(out, axis=1).astype(np.int64)


# --------------------------------------------------------------------------------------------- bytes

def _crlf(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def attr_bytes(image_ids: list[str], values: np.ndarray) -> bytes:
    """``list_attr_celeba.txt``: count, names with a trailing space, ``%2d`` values with the first unpadded."""
    rows = [f"{name} {v[0]}" + "".join(f" {x:2d}" for x in v[1:]) for name, v in zip(image_ids, values.tolist(), strict=True)]
    return _crlf([str(len(image_ids)), " ".join(ATTRIBUTES) + " ", *rows])


def two_column_bytes(image_ids: list[str], values) -> bytes:
    """``identity_CelebA.txt`` / ``list_eval_partition.txt``: ``000001.jpg 2880``, no count or header line."""
    return _crlf([f"{name} {int(v)}" for name, v in zip(image_ids, values, strict=True)])


def bbox_bytes(image_ids: list[str], boxes: np.ndarray) -> bytes:
    """``list_bbox_celeba.txt``: count, header, right-aligned columns (``000001.jpg    95  71 226 313``)."""
    rows = [f"{name} {x:5d}{y:4d}{w:4d}{h:4d}" for name, (x, y, w, h) in zip(image_ids, boxes.tolist(), strict=True)]
    return _crlf([str(len(image_ids)), " ".join(BBOX_HEADER), *rows])


def landmarks_bytes(image_ids: list[str], points: np.ndarray) -> bytes:
    """``list_landmarks_align_celeba.txt``: count, ten names, the first value unpadded then ``%5d``."""
    rows = [f"{name} {p[0]}" + "".join(f"{x:5d}" for x in p[1:]) for name, p in zip(image_ids, points.tolist(), strict=True)]
    return _crlf([str(len(image_ids)), " ".join(LANDMARKS_HEADER), *rows])


def synthetic_annotations(records: pd.DataFrame, settings: CelebaSettings) -> list[tuple[str, str, str]]:
    """``(image_id, label, annotator)`` rows from ``settings.annotators`` synthetic annotators (module docstring)."""
    rng = np.random.default_rng(sub_seed(settings.seed, "celeba", "annotations"))
    categories = [g.name for g in settings.groups]
    truth = records["race"].to_numpy()
    chosen = np.flatnonzero(rng.random(len(records)) < settings.annotated_share)
    if len(chosen) == 0 and _will_annotate(settings):
        chosen = np.array([0])  # a tiny dataset still gets a readable annotation file
    rows = []
    for k in range(settings.annotators):
        wrong = rng.random(len(chosen)) < settings.annotator_error
        other = rng.integers(0, max(len(categories) - 1, 1), len(chosen))
        for i, is_wrong, j in zip(chosen, wrong, other, strict=True):
            label = truth[i]
            if is_wrong and len(categories) > 1:
                label = [c for c in categories if c != truth[i]][j]
            rows.append((records["image_id"].iat[i], str(label), f"annotator_{k + 1}"))
    rows.sort(key=lambda row: (row[0], row[2]))
    return rows


def write_celeba(out_dir: str | os.PathLike, *, n_people: int, seed: int, image_size: int = REAL_HEIGHT,
                 progress: bool = False, **options: Any) -> Path:
    """Write a synthetic CelebA (release layout) under ``out_dir``; return ``out_dir``. ``options``: the other
    :class:`CelebaSettings` fields."""
    settings = CelebaSettings(n_people=n_people, seed=seed, image_size=image_size, **options)

    def build(tmp: Path) -> dict:
        records = celeba_records(settings)
        ids = records["image_id"].tolist()
        (tmp / IMAGE_FOLDER).mkdir(parents=True)
        encode_faces(tmp / IMAGE_FOLDER, records, ids, settings.image_size, settings.render_size, progress, "CelebA",
                     width=settings.width)
        (tmp / "Anno").mkdir()
        (tmp / "Eval").mkdir()
        rng = np.random.default_rng(sub_seed(settings.seed, "celeba", "bbox"))
        w = rng.integers(100, 500, len(ids))
        boxes = np.stack([rng.integers(10, 400, len(ids)), rng.integers(10, 300, len(ids)), w,
                          np.round(w * rng.uniform(1.2, 1.45, len(ids))).astype(np.int64)], axis=1)
        (tmp / "Anno" / "list_attr_celeba.txt").write_bytes(attr_bytes(ids, np.stack(records["attributes"])))
        (tmp / "Anno" / "identity_CelebA.txt").write_bytes(two_column_bytes(ids, records["identity"]))
        (tmp / "Anno" / "list_bbox_celeba.txt").write_bytes(bbox_bytes(ids, boxes))
        (tmp / "Anno" / "list_landmarks_align_celeba.txt").write_bytes(
            landmarks_bytes(ids, aligned_landmarks(records, settings.image_size, settings.width)))
        (tmp / "Eval" / "list_eval_partition.txt").write_bytes(two_column_bytes(ids, records["partition"]))
        annotations = synthetic_annotations(records, settings) if _will_annotate(settings) else []
        if annotations:
            write_annotations(tmp / ANNOTATION_FILE, annotations)
        return _manifest(settings, records, _subjects(records.sort_values(["person", "photo"]), "identity"),
                         attributes_rendered=list(RENDERED), race_annotations={
                             "file": ANNOTATION_FILE if annotations else None,
                             "categories": [g.name for g in settings.groups],
                             "annotators": settings.annotators, "annotator_error": settings.annotator_error,
                             "what": "synthetic annotators' labels: the person's synthetic group, wrong with "
                                     "probability annotator_error"})

    entries = ("Img", "Anno", "Eval", ANNOTATION_FILE)
    return write_atomically(out_dir, entries if _will_annotate(settings) else entries[:3], "CelebA", build)


def _will_annotate(settings: CelebaSettings) -> bool:
    return settings.annotators > 0 and settings.annotated_share > 0


def synth_celeba_cached(settings: CelebaSettings | Mapping[str, Any], cache_dir: str | os.PathLike, *,
                        progress: bool = False) -> Path:
    """``cache_dir / f"celeba-{fingerprint[:16]}"``, written first unless a complete copy is there."""
    return _cached(_settings(CelebaSettings, settings), cache_dir, write_celeba, "Anno", progress)
