"""Synthetic *people* photographed at many ages, for the age-invariant face recognition (AIFR) formats.

:func:`sample_longitudinal_population` returns one row per photo (the columns of
:func:`facebench.data.synth.population.sample_population`, so :func:`facebench.data.synth.render.render_faces`
renders it unchanged) plus ``person``, ``photo`` and ``age_exact``. It is built in three steps, each reusing the
single-face sampler rather than re-implementing it:

1. :func:`sample_people` draws ``n_people`` base faces with :func:`sample_population` (a pool large enough to
   pick the configured share of men from, in pool order) and keeps their identity columns: group, gender,
   ``aging_rate``, skin/hair/iris colour, head and feature geometry, hair style, balding and greying onset;
2. :func:`sample_photo_ages` draws how many photos each person has and at which ages (a first age, a span of
   years, photo ages inside it);
3. :func:`expand_photos` repeats each person's row once per photo, sets ``age`` (so the renderer draws child
   proportions and adult age cues for that age, with the person's own ``aging_rate``), takes the capture
   columns (pose, light, exposure, background, clothes, expression, sensor noise, JPEG quality, noise seed)
   from a second, fresh :func:`sample_population` draw, and adds an *identity drift*: a Brownian motion in
   age on the geometry and colour columns, so two photos of a person ``g`` years apart differ by a random
   amount with variance proportional to ``g`` (plus a small age-independent per-photo jitter). Large age
   gaps therefore hurt recognition twice: through the renderer's age cues and through this drift.

Writers with their own age schedule (CACD's years 2004-2013 and birth years) call steps 1 and 3 directly.
Everything is deterministic for ``config.seed``.

Known-answer setting ``shift: age_entangled`` (:attr:`LongitudinalConfig.shift`; in a protocol
``dataset.synthetic.options: {shift: age_entangled}``, issue 13). The per-person Brownian drift is switched off and
replaced by **one shared age direction** u (:data:`AGE_DIRECTION`, a fixed unit vector over the 21 drifting
geometry and colour columns, in population standard deviations): every photo's identity parameters are

    θ_photo = θ_person + r · (age − c) · u + jitter,     r = :data:`AGE_DIRECTION_RATE` = 0.4 sd/year, c = 40 years

(clipped to the population's range), and each person's photos span at least :data:`AGE_ENTANGLED_SPAN` (4-12
years; MORPH's own 0-5 are too short for the drift to matter). Across a person's largest gap (median ~8 years) θ
moves ~3 sd along u, while another person is typically ~6.5 sd away in all 21 dimensions. Why it is a known answer:

* an embedding that keeps u confuses a person's young and old photos with other people: a nearest-neighbour on
  the parameters themselves identifies 76 % of 150 synthetic MORPH people (seed 0) at rank 1 across their largest
  gap, against 100 % on the same data with u projected out (``tests/test_known_answers_aifr.py``);
* u is the same for everyone and linear in age, so the age information sits in a subspace separable from identity:
  removing the component along u is what x_id = x − φ(x) with a linear φ can do (seed 002 sec. 3.3), once L_AGE
  puts age into x_age = φ(x) and CLUB's bound of I(x_id; x_age) (eq. 2-3, weighted by λ_MIM in eq. 7) pushes it out
  of x_id;
* across *training* people u varies with their ages far more than within one person's few photos, so an identity
  loss alone can learn u as a discriminative identity feature: ArcFace is expected to lose rank-1 at the largest
  gap, MT-MIM to keep more of it, and ArcFace+Age (the age loss on the *same* embedding, which pulls u in) to be no
  better than ArcFace.

The default (``shift: default``) is untouched: the field is left out of :meth:`LongitudinalConfig.to_dict`
(and of every writer's settings), so fingerprints, cache folders and files are the same as before it existed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from facebench.data.synth.population import (
    DEFAULT_GROUPS,
    GENERATOR_VERSION,
    GroupAppearance,
    SynthConfig,
    sample_population,
    without_default_offsets,
)
from facebench.data.synth.render import RENDER_COLUMNS, cue_age

#: Bump whenever the longitudinal sampler or the AIFR writers change what a config produces (part of every
#: fingerprint, next to the population's :data:`GENERATOR_VERSION`).
LONGITUDINAL_VERSION = "1"

#: Per-photo columns: drawn fresh for every photo (from a second :func:`sample_population` draw).
CAPTURE_COLUMNS: tuple[str, ...] = (
    "smile", "yaw", "roll", "scale", "shift_x", "shift_y", "light_azimuth", "light_elevation",
    "light_strength", "shading", "bg_r", "bg_g", "bg_b", "bg2_r", "bg2_g", "bg2_b", "bg_angle",
    "shirt_r", "shirt_g", "shirt_b", "sensor_noise", "exposure", "jpeg_quality", "noise_seed",
)

#: Identity columns that drift with age, and the weight of each (the drift is ``weight * identity_drift``
#: population standard deviations per square-root year). Colours drift half as much as shapes.
DRIFT_WEIGHTS: dict[str, float] = {
    "face_width": 1.0, "face_height": 1.0, "jaw": 1.0, "eye_spacing": 1.0, "eye_size": 1.0,
    "nose_length": 1.0, "nose_width": 1.0, "mouth_width": 1.0, "lip_thickness": 1.0,
    "brow_thickness": 1.0, "brow_arch": 1.0, "lip_redness": 0.5, "hair_length": 1.0, "hair_volume": 1.0,
    "fringe": 1.0, "skin_r": 0.5, "skin_g": 0.5, "skin_b": 0.5, "hair_r": 0.5, "hair_g": 0.5, "hair_b": 0.5,
}

#: Render columns that stay fixed for a person (apart from the drift above); ``age`` is set per photo.
IDENTITY_COLUMNS: tuple[str, ...] = tuple(c for c in RENDER_COLUMNS if c not in CAPTURE_COLUMNS and c != "age")

#: The longitudinal known-answer settings (module docstring): ``default`` and ``age_entangled``.
AIFR_SHIFTS: tuple[str, ...] = ("default", "age_entangled")
#: ``age_entangled``: the shared age direction u over drifting columns (signs; normalised to unit length by
#: :func:`age_direction`). Geometry and hair colour only: visible at 32 px, and skin is left alone so that the
#: groups' looks stay as they are.
AGE_DIRECTION: dict[str, float] = {
    "face_width": 1.0, "face_height": -1.0, "jaw": 1.0, "eye_spacing": 1.0, "eye_size": -1.0, "nose_length": 1.0,
    "nose_width": 1.0, "mouth_width": -1.0, "lip_thickness": -1.0, "brow_thickness": 1.0, "brow_arch": -1.0,
    "lip_redness": -1.0, "hair_length": -1.0, "hair_volume": 1.0, "fringe": -1.0, "skin_r": 1.0, "skin_g": -1.0,
    "skin_b": 1.0, "hair_r": 1.0, "hair_g": 1.0, "hair_b": 1.0,
}
#: ``age_entangled``: population standard deviations moved along u per year of age (r of the module docstring).
AGE_DIRECTION_RATE = 0.4
#: ``age_entangled``: the age (years) at which the age-direction offset is zero (c of the module docstring).
AGE_DIRECTION_CENTRE = 40.0
#: ``age_entangled``: each person's photo span (triangular low, mode, high, years) is at least this, element-wise.
AGE_ENTANGLED_SPAN: tuple[float, float, float] = (4.0, 8.0, 12.0)


def age_direction() -> dict[str, float]:
    """u of the ``age_entangled`` setting: :data:`AGE_DIRECTION` scaled to unit length (population-sd units).

    >>> round(sum(v * v for v in age_direction().values()), 12)
    1.0
    """
    norm = float(np.sqrt(sum(v * v for v in AGE_DIRECTION.values())))
    return {col: v / norm for col, v in AGE_DIRECTION.items()}


def _groups_with(proportions: dict[str, float], extra: tuple[GroupAppearance, ...] = ()) -> tuple[GroupAppearance, ...]:
    """DEFAULT_GROUPS (plus ``extra``) with new proportions; groups not named get proportion 0 and are dropped."""
    known = {g.name: g for g in (*DEFAULT_GROUPS, *extra)}
    return tuple(dataclasses.replace(known[name], proportion=float(share)) for name, share in proportions.items())


#: A "hispanic" look for MORPH's ``H`` code (between the white and indian defaults). A guess, like all
#: group appearances: tune in one place.
HISPANIC = GroupAppearance(name="hispanic", proportion=1.0, skin_lightness=0.64, skin_lightness_sd=0.08,
                           aging_rate=0.95, skin_warmth=0.55, hair_palette=(0.55, 0.33, 0.09, 0.03, 0.0, 0.0),
                           light_eye_prob=0.06)

#: MORPH Album 2 race counts per image (research notes A3): B 42,589, W 10,559, H 1,769, A 154, O 63.
MORPH_GROUPS: tuple[GroupAppearance, ...] = _groups_with(
    {"black": 42589, "white": 10559, "hispanic": 1769, "asian": 154, "others": 63}, extra=(HISPANIC,))
#: MORPH: 46,645 of 55,134 images are of men.
MORPH_MALE_SHARE = 46645 / 55134
#: CACD, FG-NET and AgeDB carry no race labels; these mostly-white mixes are guesses [UNVERIFIED].
CACD_GROUPS: tuple[GroupAppearance, ...] = _groups_with(
    {"white": 0.76, "black": 0.12, "asian": 0.05, "indian": 0.02, "others": 0.05})
FGNET_GROUPS: tuple[GroupAppearance, ...] = _groups_with({"white": 0.92, "others": 0.08})
AGEDB_GROUPS: tuple[GroupAppearance, ...] = _groups_with(
    {"white": 0.78, "black": 0.10, "asian": 0.05, "indian": 0.03, "others": 0.04})


@dataclass(frozen=True, kw_only=True)
class LongitudinalConfig:
    """Everything that determines a longitudinal population; equal configs give identical tables.

    Age model per person: ``first_age`` and ``age_span`` are triangular distributions ``(low, mode, high)``
    in years; the first photo is at the first age, the last at ``first + span`` (ages clipped to
    ``[min_age, max_age]``), the others at ``first + span * u ** age_skew`` with ``u`` uniform (``age_skew``
    > 1 crowds photos towards the first age, as in FG-NET's childhood-heavy albums). The number of photos is
    ``photos[0]`` plus a negative-binomial count with mean ``photos_mean - photos[0]`` and shape
    ``photos_dispersion`` (smaller = longer tail), capped at ``photos[1]``.
    """

    n_people: int = 100
    seed: int = 0
    groups: tuple[GroupAppearance, ...] = DEFAULT_GROUPS
    male_share: float = 0.5
    photos: tuple[int, int] = (2, 12)
    photos_mean: float = 5.0
    photos_dispersion: float = 4.0
    first_age: tuple[float, float, float] = (16.0, 25.0, 60.0)
    age_span: tuple[float, float, float] = (0.0, 2.0, 5.0)
    age_skew: float = 1.0
    min_age: int = 0
    max_age: int = 90
    #: identity drift, in population standard deviations per square-root year of age gap. At 0.12 a
    #: nearest-neighbour oracle on the drifting parameters themselves identifies 1,000 people at rank 1
    #: 100% of the time across a 5-year gap, about 98% across 20 years and 86% across 40 years
    identity_drift: float = 0.12
    #: age-independent per-photo jitter of the same columns, in population standard deviations
    photo_jitter: float = 0.04
    #: per-photo JPEG quality, inclusive range
    jpeg_quality: tuple[int, int] = (70, 95)
    #: known-answer setting (:data:`AIFR_SHIFTS`, module docstring). ``age_entangled`` widens ``age_span`` to at
    #: least :data:`AGE_ENTANGLED_SPAN` on construction (recorded, so a config rebuilt from its dict is the same)
    shift: str = "default"

    def __post_init__(self) -> None:
        if self.shift not in AIFR_SHIFTS:
            raise ValueError(f"shift must be one of {list(AIFR_SHIFTS)}, got {self.shift!r}")
        if self.shift == "age_entangled":  # idempotent: applying it to its own output changes nothing
            object.__setattr__(self, "age_span", tuple(max(float(a), b) for a, b in
                                                      zip(self.age_span, AGE_ENTANGLED_SPAN, strict=True)))
            # the shared direction replaces the per-person random drift: age moves identity along u only
            object.__setattr__(self, "identity_drift", 0.0)
        if self.n_people < 1:
            raise ValueError(f"LongitudinalConfig.n_people must be at least 1, got {self.n_people}")
        if not 0.0 <= self.male_share <= 1.0:
            raise ValueError(f"LongitudinalConfig.male_share must be in [0, 1], got {self.male_share}")
        lo, hi = self.photos
        if not 1 <= lo <= hi:
            raise ValueError(f"LongitudinalConfig.photos must satisfy 1 <= lo <= hi, got {self.photos}")
        if not lo <= self.photos_mean <= hi or self.photos_dispersion <= 0:
            raise ValueError("LongitudinalConfig.photos_mean must lie in photos and photos_dispersion be positive")
        for name in ("first_age", "age_span"):
            a, m, b = getattr(self, name)
            if not a <= m <= b or a < 0:
                raise ValueError(f"LongitudinalConfig.{name} must be (low, mode, high) with 0 <= low <= mode <= high")
        if not 0 <= self.min_age < self.max_age or self.age_skew <= 0:
            raise ValueError("LongitudinalConfig needs 0 <= min_age < max_age and a positive age_skew")
        if self.identity_drift < 0 or self.photo_jitter < 0:
            raise ValueError("LongitudinalConfig.identity_drift and photo_jitter must be non-negative")
        # groups and jpeg_quality are validated by SynthConfig
        SynthConfig(n=1, groups=self.groups, jpeg_quality=self.jpeg_quality)

    def to_dict(self) -> dict:
        """The config as plain JSON-able data (tuples become lists). ``shift`` is left out when ``default``, so
        fingerprints from before the setting existed are unchanged."""
        data = json.loads(json.dumps(dataclasses.asdict(self)))
        if data["shift"] == "default":
            del data["shift"]
        return without_default_offsets(data)

    def fingerprint(self) -> str:
        """SHA-256 hex digest of a canonical JSON of every field plus both generator versions."""
        return fingerprint_of("longitudinal", self.to_dict())


def fingerprint_of(kind: str, settings: dict) -> str:
    """SHA-256 of ``kind``, ``settings`` (JSON-able) and both generator versions, as canonical JSON."""
    canonical = json.dumps({"generator_version": GENERATOR_VERSION, "longitudinal_version": LONGITUDINAL_VERSION,
                            "kind": kind, "settings": settings},
                           sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def sub_seed(seed: int, *tags: int | str) -> int:
    """A 63-bit seed derived from ``seed`` and ``tags`` (independent streams for independent draws)."""
    words = [int(seed)] + [int(hashlib.sha256(str(t).encode()).hexdigest()[:8], 16) for t in tags]
    return int(np.random.SeedSequence(words).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def morph_like(n_people: int, seed: int, **changes) -> LongitudinalConfig:
    """MORPH Album 2: mostly black and white men, about 4 photos each over 0-5 years, ages 16-77."""
    base = dict(n_people=n_people, seed=seed, groups=MORPH_GROUPS, male_share=MORPH_MALE_SHARE,
                photos=(1, 53), photos_mean=4.05, photos_dispersion=8.0, first_age=(16.0, 20.0, 64.0),
                age_span=(0.0, 1.0, 5.0), min_age=16, max_age=77)
    return LongitudinalConfig(**{**base, **changes})


def fgnet_like(n_people: int, seed: int, **changes) -> LongitudinalConfig:
    """FG-NET: about 12 photos per person from early childhood to (sometimes) late adulthood, ages 0-69."""
    base = dict(n_people=n_people, seed=seed, groups=FGNET_GROUPS, male_share=0.57, photos=(6, 18),
                photos_mean=12.2, photos_dispersion=6.0, first_age=(0.0, 1.0, 12.0),
                age_span=(10.0, 18.0, 60.0), age_skew=1.5, min_age=0, max_age=69)
    return LongitudinalConfig(**{**base, **changes})


def agedb_like(n_people: int, seed: int, **changes) -> LongitudinalConfig:
    """AgeDB: about 29 photos per person over several decades, ages 1-101."""
    base = dict(n_people=n_people, seed=seed, groups=AGEDB_GROUPS, male_share=0.62, photos=(4, 80),
                photos_mean=29.0, photos_dispersion=3.0, first_age=(3.0, 25.0, 55.0),
                age_span=(15.0, 40.0, 65.0), min_age=1, max_age=101)
    return LongitudinalConfig(**{**base, **changes})


@functools.lru_cache(maxsize=1)
def _reference_scales() -> pd.DataFrame:
    """Population standard deviation and [min, max] range of each drifting column (a fixed reference draw)."""
    ref = sample_population(SynthConfig(n=4096, seed=20240601))
    cols = list(DRIFT_WEIGHTS)
    return pd.DataFrame({"sd": ref[cols].std(), "lo": ref[cols].min(), "hi": ref[cols].max()})


def _triangular(rng: np.random.Generator, spec: tuple[float, float, float], n: int) -> np.ndarray:
    a, m, b = (float(x) for x in spec)
    if a == b:
        return np.full(n, a)
    return rng.triangular(a, m, b, n)


def sample_people(config: LongitudinalConfig) -> pd.DataFrame:
    """One row per person (``person`` = 0..n_people-1): a base face of :func:`sample_population`.

    Genders follow ``config.male_share``: each person's gender is drawn, then the next unused base face of
    that gender (in pool order) is taken from a pool that is doubled until it has enough of both.
    """
    rng = np.random.default_rng(sub_seed(config.seed, "people"))
    male = rng.random(config.n_people) < config.male_share
    need_m, need_f = int(male.sum()), int((~male).sum())
    pool_n = 2 * config.n_people + 16
    while True:
        pool = sample_population(SynthConfig(n=pool_n, seed=sub_seed(config.seed, "pool", pool_n),
                                             groups=config.groups, jpeg_quality=config.jpeg_quality))
        is_m = (pool["gender"] == "male").to_numpy()
        if is_m.sum() >= need_m and (~is_m).sum() >= need_f:
            break
        pool_n *= 2
    take = np.empty(config.n_people, dtype=np.int64)
    take[male] = np.flatnonzero(is_m)[:need_m]
    take[~male] = np.flatnonzero(~is_m)[:need_f]
    people = pool.iloc[take].reset_index(drop=True)
    people.insert(0, "person", np.arange(config.n_people, dtype=np.int64))
    people["identity"] = people["person"]
    return people


def sample_photo_ages(config: LongitudinalConfig, n_people: int | None = None) -> pd.DataFrame:
    """``person`` and ``age_exact`` (years, float) of every photo, sorted by person then age."""
    n = config.n_people if n_people is None else n_people
    rng = np.random.default_rng(sub_seed(config.seed, "ages"))
    lo, hi = config.photos
    extra_mean = config.photos_mean - lo
    if extra_mean > 0:
        lam = rng.gamma(config.photos_dispersion, extra_mean / config.photos_dispersion, n)
        counts = np.minimum(lo + rng.poisson(lam), hi)
    else:
        counts = np.full(n, lo)
    first = _triangular(rng, config.first_age, n)
    span = np.where(counts > 1, _triangular(rng, config.age_span, n), 0.0)
    person = np.repeat(np.arange(n, dtype=np.int64), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(person)) - np.repeat(starts, counts)
    u = rng.random(len(person)) ** config.age_skew
    u[rank == 0] = 0.0
    last = rank == np.repeat(counts - 1, counts)
    u[last & (rank > 0)] = 1.0
    age_exact = np.repeat(first, counts) + np.repeat(span, counts) * u
    age_exact = np.clip(age_exact, config.min_age, config.max_age + 0.999)
    table = pd.DataFrame({"person": person, "age_exact": age_exact})
    return table.sort_values(["person", "age_exact"], kind="stable").reset_index(drop=True)


def expand_photos(people: pd.DataFrame, photos: pd.DataFrame, config: LongitudinalConfig) -> pd.DataFrame:
    """One row per photo: the person's row, the photo's age and capture columns, and the identity drift.

    ``photos`` has ``person`` and ``age_exact`` and optionally an integer ``age`` (the label; default
    ``floor(age_exact)``); any other column of ``photos`` (a writer's per-photo fields, e.g. a capture date)
    is carried over, after the others. Rows are returned sorted by person then ``age_exact`` with
    ``photo`` = 0, 1, ... within each person.
    """
    photos = photos.sort_values(["person", "age_exact"], kind="stable").reset_index(drop=True)
    n = len(photos)
    person = photos["person"].to_numpy(np.int64)
    age_exact = photos["age_exact"].to_numpy(float)
    age = (photos["age"].to_numpy(np.int64) if "age" in photos.columns
           else np.floor(age_exact).astype(np.int64))
    base = people.set_index("person").loc[person].reset_index()

    capture = sample_population(SynthConfig(n=max(n, 1), seed=sub_seed(config.seed, "capture", n),
                                            groups=config.groups, jpeg_quality=config.jpeg_quality)).iloc[:n]
    for col in CAPTURE_COLUMNS:
        base[col] = capture[col].to_numpy()

    # Identity drift: Brownian in age, anchored at each person's first photo, plus per-photo jitter.
    rng = np.random.default_rng(sub_seed(config.seed, "drift", n))
    first_of_person = np.r_[True, person[1:] != person[:-1]] if n else np.zeros(0, bool)
    gap = np.where(first_of_person, 0.0, np.diff(age_exact, prepend=0.0))
    ref = _reference_scales()
    group_start = np.maximum.accumulate(np.where(first_of_person, np.arange(n), 0)) if n else np.zeros(0, int)
    for col, weight in DRIFT_WEIGHTS.items():
        steps = rng.standard_normal(n) * np.sqrt(np.maximum(gap, 0.0))
        walk = np.cumsum(steps)
        walk = walk - (walk[group_start] - steps[group_start])  # restart the walk at each person's first photo
        jitter = rng.standard_normal(n) * config.photo_jitter
        delta = (config.identity_drift * walk + jitter) * weight * ref.at[col, "sd"]
        base[col] = np.clip(base[col].to_numpy(float) + delta, ref.at[col, "lo"], ref.at[col, "hi"])
    if config.shift == "age_entangled":
        # θ += r·(age − c)·u (module docstring): deterministic, no draw, so the streams above are untouched.
        offset = AGE_DIRECTION_RATE * (age_exact - AGE_DIRECTION_CENTRE)
        for col, component in age_direction().items():
            base[col] = np.clip(base[col].to_numpy(float) + offset * component * ref.at[col, "sd"],
                                ref.at[col, "lo"], ref.at[col, "hi"])

    base["age"] = age
    base["cue_age"] = cue_age(age, base["aging_rate"].to_numpy(float))
    base["age_exact"] = age_exact
    starts = np.flatnonzero(first_of_person)
    counts = np.diff(np.r_[starts, n])
    base["photo"] = (np.arange(n) - np.repeat(starts, counts)).astype(np.int64)
    columns = ["person", "photo", *[c for c in people.columns if c != "person"], "age_exact"]
    out = base[columns].copy()
    for col in photos.columns:
        if col not in ("person", "age_exact", "age"):
            out[col] = photos[col].to_numpy()
    return out


def sample_longitudinal_population(config: LongitudinalConfig) -> pd.DataFrame:
    """One row per photo of ``config.n_people`` synthetic people (see the module docstring).

    Columns: every column of :func:`sample_population` (``identity`` = ``person``; ``age`` = whole years of
    ``age_exact``), plus ``person``, ``photo`` (0-based index in age order) and ``age_exact``.
    Deterministic for ``config.seed``.
    """
    return expand_photos(sample_people(config), sample_photo_ages(config), config)
