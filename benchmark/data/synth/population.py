"""Who is in the synthetic population: ages, genders, groups and every per-face rendering parameter.

:func:`sample_population` draws one row per face from a :class:`SynthConfig`, deterministically for its seed.
Every visual difference between groups is a parameter of :class:`GroupAppearance` (skin tone, hair and eye
colour, and :attr:`GroupAppearance.aging_rate`, the one *deliberate* source of a group shift for age
estimation); every visual difference between genders is a drawn geometry/colour parameter. The renderer
(:mod:`facebench.data.synth.render`) reads only the columns of the returned table, never the config.

The initial group values live in :data:`DEFAULT_GROUPS` (one place, to be tuned by the benchmark's lead).

Known-answer shifts (:attr:`SynthConfig.shift`, chosen in a protocol as ``dataset.synthetic.options: {shift: ...}``)
rewrite the groups so that what separates them is of one kind only, relative to the reference group
:data:`REFERENCE_GROUP` (the ``source`` of every built-in cross-ethnicity split):

``default``
    the groups as given (today's :data:`DEFAULT_GROUPS`): appearance *and* ageing rate differ. Mixed; the
    fingerprint of a default config is unchanged by the existence of this setting.
``covariate``
    every group ages at the reference group's rate, and the non-reference groups' appearance is pushed further
    from it by cues that carry no age information (darker, warmer skin; :func:`known_answer_groups`). The age
    given the face's age cues is the same for every group, so a model's extra target error comes from unfamiliar
    appearance only: aligning source and target features (DANN, MMD) is expected to *reduce* target MAE against
    source-only.
``concept``
    every group looks like the reference group (its skin, hair and eye colours) and keeps its own ageing rate:
    the same face means a different age in another group. No feature-alignment method can help (the target's
    features already match the source's); adaptation is expected to change target MAE by no more than noise.
``offset``
    every group looks like the reference group and ages at its rate, but the non-reference groups' skin and hair
    age cues show :data:`OFFSET_YEARS` more than their age (:attr:`GroupAppearance.cue_age_offset`). Differences
    of age within a group are intact and absolute ages are not: a direct regressor trained on the reference group
    is biased by about the offset on the others, while differences plus two labelled anchors of the target group
    (seed 000's pairwise model + MDS, section 4.4.5) are expected to remove the bias.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Bump whenever the population sampler or the renderer changes what a config produces: it is part of the
#: config fingerprint, so cached synthetic datasets written by an older generator are not reused.
GENERATOR_VERSION = "2"

#: Hair colours (linear-ish RGB in [0, 1]); a group's ``hair_palette`` gives one probability per entry.
HAIR_PALETTE: tuple[tuple[str, tuple[float, float, float]], ...] = (
    ("black", (0.07, 0.06, 0.06)),
    ("dark_brown", (0.20, 0.13, 0.09)),
    ("brown", (0.36, 0.24, 0.15)),
    ("light_brown", (0.55, 0.40, 0.26)),
    ("blonde", (0.82, 0.68, 0.44)),
    ("red", (0.58, 0.27, 0.13)),
)

#: Iris colours: dark eyes and light eyes (a group's ``light_eye_prob`` picks between the two sets).
DARK_IRISES: tuple[tuple[float, float, float], ...] = ((0.20, 0.12, 0.07), (0.33, 0.21, 0.11))
LIGHT_IRISES: tuple[tuple[float, float, float], ...] = ((0.33, 0.48, 0.68), (0.36, 0.50, 0.36), (0.45, 0.38, 0.22))

#: Skin colour at lightness 0, :data:`SKIN_MID_LIGHTNESS` and 1 (piecewise-linear in between;
#: ``skin_warmth`` then shifts towards yellow by taking out blue).
SKIN_DARK: tuple[float, float, float] = (0.24, 0.14, 0.09)
SKIN_MID: tuple[float, float, float] = (0.74, 0.52, 0.38)
SKIN_MID_LIGHTNESS = 0.55
SKIN_LIGHT: tuple[float, float, float] = (0.98, 0.85, 0.77)

#: Spread (log-normal sigma) of the per-image camera exposure factor.
EXPOSURE_LOG_SD = 0.25

#: UTKFace image counts per race (seed paper, Table 2): the default group proportions, normalised.
UTKFACE_RACE_COUNTS: dict[str, int] = {"white": 10078, "black": 4526, "asian": 3434, "indian": 3975, "others": 1692}

#: Initial aging rates (multiplier on the visible age cues of adults). The one knob for the group shift.
AGING_RATES: dict[str, float] = {"white": 1.0, "black": 0.95, "asian": 0.92, "indian": 0.88, "others": 0.9}

#: The known-answer shift kinds (:attr:`SynthConfig.shift`; what each does: the module docstring).
SHIFTS: tuple[str, ...] = ("default", "covariate", "concept", "offset")
#: The group the known-answer shifts are relative to: the training (``source``) group of the built-in splits.
REFERENCE_GROUP = "white"
#: ``covariate``: every non-reference group's mean skin lightness and warmth. Far from the reference group's
#: (0.80, 0.1), so that a model trained on the reference group meets colours it never saw and there is target
#: error for feature alignment to remove; it carries no age information because skin is drawn independently of age.
COVARIATE_SKIN_LIGHTNESS = 0.25
COVARIATE_SKIN_WARMTH = 0.8
#: ``offset``: years added to the non-reference groups' cue age. Large against a toy model's error (about 5 years)
#: so that the bias it causes in a direct regressor is unmistakable; small enough that most adults' cues stay
#: inside the renderer's ramps (18-85), where a difference of ages is a difference of cues.
OFFSET_YEARS = 10.0


@dataclass(frozen=True, kw_only=True)
class GroupAppearance:
    """How faces of one group look. Names are FaceTable race labels (:data:`facebench.data.table.RACES`)."""

    name: str
    #: share of the population (the config's proportions are normalised, so counts work too)
    proportion: float
    #: mean skin lightness in [0, 1] (0 = :data:`SKIN_DARK`, 1 = :data:`SKIN_LIGHT`) and its spread
    skin_lightness: float
    skin_lightness_sd: float
    #: multiplier on the visible age cues of adult skin and hair (wrinkles, texture, greying, hairline):
    #: the cue age is ``18 + (age - 18) * aging_rate`` for ages above 18, the true age below
    aging_rate: float = 1.0
    #: years added to the cue age of skin and hair (``offset`` known-answer shift; 0 everywhere else): the face
    #: looks that much older than a face of the same age and ageing rate
    cue_age_offset: float = 0.0
    #: 0 = pinkish skin, 1 = yellow-olive skin
    skin_warmth: float = 0.3
    #: one probability per :data:`HAIR_PALETTE` entry (normalised)
    hair_palette: tuple[float, ...] = (0.4, 0.3, 0.2, 0.1, 0.0, 0.0)
    #: probability of a light (blue/green/hazel) iris
    light_eye_prob: float = 0.0


DEFAULT_GROUPS: tuple[GroupAppearance, ...] = (
    GroupAppearance(name="white", proportion=UTKFACE_RACE_COUNTS["white"], skin_lightness=0.80,
                    skin_lightness_sd=0.08, aging_rate=AGING_RATES["white"], skin_warmth=0.1,
                    hair_palette=(0.12, 0.30, 0.26, 0.14, 0.13, 0.05), light_eye_prob=0.45),
    GroupAppearance(name="black", proportion=UTKFACE_RACE_COUNTS["black"], skin_lightness=0.45,
                    skin_lightness_sd=0.08, aging_rate=AGING_RATES["black"], skin_warmth=0.3,
                    hair_palette=(0.82, 0.17, 0.01, 0.0, 0.0, 0.0), light_eye_prob=0.01),
    GroupAppearance(name="asian", proportion=UTKFACE_RACE_COUNTS["asian"], skin_lightness=0.74,
                    skin_lightness_sd=0.05, aging_rate=AGING_RATES["asian"], skin_warmth=1.0,
                    hair_palette=(0.75, 0.22, 0.03, 0.0, 0.0, 0.0), light_eye_prob=0.0),
    GroupAppearance(name="indian", proportion=UTKFACE_RACE_COUNTS["indian"], skin_lightness=0.50,
                    skin_lightness_sd=0.08, aging_rate=AGING_RATES["indian"], skin_warmth=0.6,
                    hair_palette=(0.78, 0.20, 0.02, 0.0, 0.0, 0.0), light_eye_prob=0.02),
    GroupAppearance(name="others", proportion=UTKFACE_RACE_COUNTS["others"], skin_lightness=0.60,
                    skin_lightness_sd=0.10, aging_rate=AGING_RATES["others"], skin_warmth=0.5,
                    hair_palette=(0.45, 0.35, 0.12, 0.04, 0.03, 0.01), light_eye_prob=0.10),
)


def known_answer_groups(groups: tuple[GroupAppearance, ...], shift: str) -> tuple[GroupAppearance, ...]:
    """``groups`` rewritten for the known-answer ``shift`` (module docstring), relative to :data:`REFERENCE_GROUP`.

    Idempotent (applying it to its own output changes nothing), so a config rebuilt from its recorded groups
    gives the same dataset.

    >>> groups = known_answer_groups(DEFAULT_GROUPS, "covariate")
    >>> sorted({g.aging_rate for g in groups}), groups[1].skin_lightness
    ([1.0], 0.25)
    >>> [(g.aging_rate, g.skin_lightness) for g in known_answer_groups(DEFAULT_GROUPS, "concept")][:2]
    [(1.0, 0.8), (0.95, 0.8)]
    >>> [(g.aging_rate, g.cue_age_offset) for g in known_answer_groups(DEFAULT_GROUPS, "offset")][:2]
    [(1.0, 0.0), (1.0, 10.0)]
    """
    if shift not in SHIFTS:
        raise ValueError(f"shift must be one of {list(SHIFTS)}, got {shift!r}")
    if shift == "default":
        return groups
    by_name = {g.name: g for g in groups}
    if REFERENCE_GROUP not in by_name:
        raise ValueError(f"shift {shift!r} needs a group named {REFERENCE_GROUP!r} to be relative to")
    reference = by_name[REFERENCE_GROUP]
    if shift == "covariate":
        # Same ageing as the reference; one dark, warm skin for every other group (absolute values, so the
        # rewrite is idempotent). Lightness is drawn independently of age: it says nothing about age.
        return tuple(g if g.name == REFERENCE_GROUP else
                     dataclasses.replace(g, aging_rate=reference.aging_rate, skin_lightness=COVARIATE_SKIN_LIGHTNESS,
                                         skin_warmth=COVARIATE_SKIN_WARMTH)
                     for g in groups)
    # concept and offset: the reference group's looks; concept keeps each group's own ageing rate, offset gives
    # every group the reference rate and the non-reference groups a constant cue-age offset.
    looks = {"skin_lightness": reference.skin_lightness, "skin_lightness_sd": reference.skin_lightness_sd,
             "skin_warmth": reference.skin_warmth, "hair_palette": reference.hair_palette,
             "light_eye_prob": reference.light_eye_prob}
    if shift == "concept":
        return tuple(dataclasses.replace(g, **looks) for g in groups)
    return tuple(dataclasses.replace(g, **looks, aging_rate=reference.aging_rate,
                                     cue_age_offset=0.0 if g.name == REFERENCE_GROUP else OFFSET_YEARS)
                 for g in groups)


@dataclass(frozen=True, kw_only=True)
class SynthConfig:
    """Everything that determines a synthetic dataset; equal configs give byte-identical datasets."""

    n: int = 6000
    seed: int = 0
    #: written JPEG size in pixels (UTKFace aligned crops are 200x200)
    image_size: int = 200
    #: internal render resolution; ``None`` renders at ``image_size`` (else rendered, then bilinear-resized)
    render_size: int | None = None
    groups: tuple[GroupAppearance, ...] = DEFAULT_GROUPS
    #: per-image JPEG quality, drawn uniformly in this inclusive range (capture noise)
    jpeg_quality: tuple[int, int] = (70, 95)
    #: known-answer shift kind (:data:`SHIFTS`, module docstring); ``groups`` is rewritten by
    #: :func:`known_answer_groups` on construction, so the recorded groups are the ones rendered
    shift: str = "default"

    def __post_init__(self) -> None:
        # Rewritten here rather than at render time so that to_dict() (SYNTHETIC.json, the known answer) records
        # the ageing rates and looks actually rendered.
        object.__setattr__(self, "groups", known_answer_groups(tuple(self.groups), self.shift))
        if self.n < 1:
            raise ValueError(f"SynthConfig.n must be at least 1, got {self.n}")
        if self.image_size < 8 or (self.render_size is not None and self.render_size < 8):
            raise ValueError("SynthConfig image_size and render_size must be at least 8 pixels")
        if not self.groups:
            raise ValueError("SynthConfig.groups must not be empty")
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise ValueError(f"SynthConfig.groups has duplicate names: {names}")
        if any(g.proportion < 0 for g in self.groups) or sum(g.proportion for g in self.groups) <= 0:
            raise ValueError("SynthConfig group proportions must be non-negative with a positive sum")
        lo, hi = self.jpeg_quality
        if not 1 <= lo <= hi <= 100:
            raise ValueError(f"SynthConfig.jpeg_quality must satisfy 1 <= lo <= hi <= 100, got {self.jpeg_quality}")

    def to_dict(self) -> dict:
        """The config as plain JSON-able data (tuples become lists). ``shift`` is left out when ``default``, so
        configs (and fingerprints, cache folders) from before the setting existed are unchanged."""
        data = json.loads(json.dumps(dataclasses.asdict(self)))
        if data["shift"] == "default":
            del data["shift"]
        return without_default_offsets(data)

    def fingerprint(self) -> str:
        """SHA-256 hex digest of a canonical JSON of every field plus :data:`GENERATOR_VERSION`."""
        canonical = json.dumps({"generator_version": GENERATOR_VERSION, "config": self.to_dict()},
                               sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def without_default_offsets(data: dict) -> dict:
    """``data`` (a config's ``asdict``) with every zero :attr:`GroupAppearance.cue_age_offset` left out of its
    ``groups``, wherever it nests: the field came with the ``offset`` shift, and configs without it (every other
    shift, every generator that embeds groups) keep the fingerprints and cache folders they had before it.

    >>> without_default_offsets({"groups": [{"name": "a", "cue_age_offset": 0.0}, {"cue_age_offset": 10.0}]})
    {'groups': [{'name': 'a'}, {'cue_age_offset': 10.0}]}
    """
    for key, value in data.items():
        if key == "groups" and isinstance(value, list):
            for group in value:
                if isinstance(group, dict) and group.get("cue_age_offset") == 0.0:
                    del group["cue_age_offset"]
        elif isinstance(value, dict):
            without_default_offsets(value)
    return data


def age_distribution() -> np.ndarray:
    """Probabilities of ages 1..90 (index 0 = age 1), shaped like UTKFace.

    A bump of babies and toddlers (10% at 1-5, most of it at age 1), 8% children and teens, about 57% at
    18-45 peaking in the late twenties, and a tail of 25% from 46 to 90.
    """
    ages = np.arange(1, 91)
    p = np.zeros(90)
    infants = np.array([1123.0, 482.0, 289.0, 273.0, 196.0])  # UTKFace counts at ages 1..5
    p[0:5] = 0.10 * infants / infants.sum()
    p[5:17] = 0.08 / 12
    core = np.exp(-0.5 * ((ages[17:45] - 27.0) / 7.0) ** 2) + 0.3
    p[17:45] = 0.57 * core / core.sum()
    tail = np.exp(-(ages[45:] - 46.0) / 15.0)
    p[45:] = 0.25 * tail / tail.sum()
    return p / p.sum()


def _skin_rgb(lightness: np.ndarray, warmth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lightness = np.clip(lightness, 0.0, 1.0)
    stops = np.array([0.0, SKIN_MID_LIGHTNESS, 1.0])
    rgb = np.stack([np.interp(lightness, stops, [SKIN_DARK[k], SKIN_MID[k], SKIN_LIGHT[k]]) for k in range(3)], 1)
    rgb = rgb + warmth[:, None] * lightness[:, None] * np.array([0.0, -0.005, -0.05])
    rgb = rgb + rng.normal(0.0, 0.012, size=rgb.shape)
    return np.clip(rgb, 0.02, 1.0)


def sample_population(config: SynthConfig) -> pd.DataFrame:
    """One row per synthetic face: labels (``age``, ``gender``, ``race``, ``identity``) and render parameters.

    Geometry is in the renderer's units (the image spans [-1, 1]; widths relative to the head half-width
    ``face_width``, heights relative to the head half-height ``face_height``) and describes the person as an
    adult: the renderer derives child proportions from ``age`` and adult age cues from ``age`` and
    ``aging_rate`` (``cue_age`` is that value, for analysis). Deterministic for ``config.seed``.
    """
    rng = np.random.default_rng(config.seed)
    n = config.n
    groups = config.groups
    proportions = np.array([g.proportion for g in groups], dtype=float)
    proportions = proportions / proportions.sum()

    group_idx = rng.choice(len(groups), size=n, p=proportions)
    age = rng.choice(np.arange(1, 91), size=n, p=age_distribution())
    male = rng.random(n) < 0.5

    def per_group(attr: str) -> np.ndarray:
        return np.array([getattr(g, attr) for g in groups], dtype=float)[group_idx]

    aging_rate = per_group("aging_rate")
    cue_age_offset = per_group("cue_age_offset")
    cue_age = np.where(age > 18, 18.0 + (age - 18.0) * aging_rate, age.astype(float)) + cue_age_offset

    # Skin, hair and eye colour: per group.
    lightness = rng.normal(per_group("skin_lightness"), per_group("skin_lightness_sd"))
    skin = _skin_rgb(lightness, per_group("skin_warmth"), rng)
    palette = np.array([rgb for _, rgb in HAIR_PALETTE])
    hair_probs = np.array([np.asarray(g.hair_palette, dtype=float) / np.sum(g.hair_palette) for g in groups])
    cum = np.cumsum(hair_probs[group_idx], axis=1)
    hair_choice = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), len(HAIR_PALETTE) - 1)
    hair = np.clip(palette[hair_choice] * rng.normal(1.0, 0.08, size=(n, 1)) + rng.normal(0, 0.015, (n, 3)), 0.02, 1)
    light_eyes = rng.random(n) < per_group("light_eye_prob")
    dark_iris = np.array(DARK_IRISES)[rng.integers(0, len(DARK_IRISES), n)]
    light_iris = np.array(LIGHT_IRISES)[rng.integers(0, len(LIGHT_IRISES), n)]
    iris = np.where(light_eyes[:, None], light_iris, dark_iris) * rng.normal(1.0, 0.08, size=(n, 1))

    # Geometry (adult, gender-specific where people differ on average).
    face_width = np.where(male, rng.normal(0.585, 0.025, n), rng.normal(0.56, 0.025, n))
    face_height = np.where(male, rng.normal(0.74, 0.03, n), rng.normal(0.72, 0.03, n))
    jaw = np.clip(np.where(male, rng.normal(0.10, 0.04, n), rng.normal(0.24, 0.04, n)), 0.0, 0.4)
    eye_spacing = rng.normal(0.40, 0.025, n)
    eye_size = rng.normal(0.165, 0.014, n)
    nose_length = rng.normal(0.30, 0.03, n)
    nose_width = rng.normal(0.12, 0.015, n)
    mouth_width = rng.normal(0.31, 0.03, n)
    lip_thickness = np.where(male, rng.normal(0.050, 0.008, n), rng.normal(0.064, 0.009, n))
    smile = rng.uniform(-0.3, 1.0, n)
    brow_thickness = np.where(male, rng.normal(0.060, 0.008, n), rng.normal(0.036, 0.006, n))
    brow_arch = np.where(male, rng.normal(0.02, 0.01, n), rng.normal(0.045, 0.012, n))
    lip_redness = np.clip(np.where(male, rng.normal(0.22, 0.07, n), rng.normal(0.55, 0.13, n)), 0.0, 1.0)

    # Hair style; balding susceptibility and greying onset are per person, the amount comes from cue age.
    short = np.clip(rng.normal(0.12, 0.10, n), 0.0, 1.0)
    long = np.clip(rng.normal(0.75, 0.18, n), 0.0, 1.0)
    long_hair = np.where(male, rng.random(n) < 0.08, rng.random(n) < 0.88)
    hair_length = np.where(long_hair, long, short)
    hair_volume = np.clip(rng.normal(0.06, 0.03, n), 0.0, 0.15)
    fringe = np.where(rng.random(n) < np.where(male, 0.15, 0.3), rng.uniform(0.05, 0.3, n), 0.0)
    balding = np.where(male, rng.beta(1.6, 1.2, n), rng.uniform(0.0, 0.12, n))
    grey_onset = rng.normal(47.0, 6.0, n)

    # Capture: pose, lighting, background, clothes, sensor noise, JPEG quality, per-face noise seed.
    yaw = rng.uniform(-1.0, 1.0, n) * 0.10
    roll = np.clip(rng.normal(0.0, 0.07, n), -0.2, 0.2)
    scale = np.clip(rng.normal(1.0, 0.05, n), 0.85, 1.15)
    shift_x = rng.normal(0.0, 0.025, n)
    shift_y = rng.normal(0.0, 0.025, n)
    light_azimuth = rng.uniform(0.0, 2 * np.pi, n)
    light_elevation = rng.uniform(0.35, 1.1, n)
    light_strength = rng.uniform(0.05, 0.30, n)
    shading = rng.uniform(0.25, 0.55, n)
    def backdrop_colours() -> np.ndarray:  # random colours, desaturated towards a random grey
        grey = rng.uniform(0.1, 0.9, (n, 1))
        return np.clip(grey + (rng.uniform(0.05, 0.95, (n, 3)) - grey) * rng.uniform(0.2, 0.8, (n, 1)), 0, 1)

    bg = backdrop_colours()
    bg2 = np.where(rng.random((n, 1)) < 0.6, backdrop_colours(), bg)
    bg_angle = rng.uniform(0.0, 2 * np.pi, n)
    shirt = rng.uniform(0.05, 0.9, (n, 3))
    sensor_noise = rng.uniform(0.004, 0.03, n)
    lo, hi = config.jpeg_quality
    jpeg_quality = rng.integers(lo, hi + 1, n)
    noise_seed = rng.integers(0, 2**62, n)
    # Camera exposure: a global brightness factor, as in real photo collections. It makes overall brightness
    # a poor cue for anything, so that skin tone alone does not push a model far out of its training range.
    exposure = np.clip(rng.lognormal(0.0, EXPOSURE_LOG_SD, n), 0.5, 1.8)

    names = np.array([g.name for g in groups], dtype=object)
    table = {
        "identity": np.arange(n, dtype=np.int64),
        "age": age.astype(np.int64),
        "gender": np.where(male, "male", "female").astype(object),
        "race": names[group_idx],
        "aging_rate": aging_rate,
        "cue_age_offset": cue_age_offset,
        "cue_age": cue_age,
        "skin_lightness": lightness,
    }
    for name, rgb in (("skin", skin), ("hair", hair), ("iris", iris), ("bg", bg), ("bg2", bg2), ("shirt", shirt)):
        for k, channel in enumerate("rgb"):
            table[f"{name}_{channel}"] = rgb[:, k]
    table.update({
        "face_width": face_width, "face_height": face_height, "jaw": jaw,
        "eye_spacing": eye_spacing, "eye_size": eye_size, "nose_length": nose_length, "nose_width": nose_width,
        "mouth_width": mouth_width, "lip_thickness": lip_thickness, "smile": smile,
        "brow_thickness": brow_thickness, "brow_arch": brow_arch, "lip_redness": lip_redness,
        "hair_length": hair_length, "hair_volume": hair_volume, "fringe": fringe, "balding": balding,
        "grey_onset": grey_onset,
        "yaw": yaw, "roll": roll, "scale": scale, "shift_x": shift_x, "shift_y": shift_y,
        "light_azimuth": light_azimuth, "light_elevation": light_elevation, "light_strength": light_strength,
        "shading": shading, "bg_angle": bg_angle, "sensor_noise": sensor_noise, "exposure": exposure,
        "jpeg_quality": jpeg_quality.astype(np.int64), "noise_seed": noise_seed.astype(np.int64),
    })
    return pd.DataFrame(table)
