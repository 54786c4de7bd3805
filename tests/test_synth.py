"""The synthetic face generator: determinism, population, the UTKFace-format writer, and visible age cues."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facebench.data.synth import (
    DEFAULT_GROUPS,
    GENERATOR_VERSION,
    GroupAppearance,
    SynthConfig,
    age_distribution,
    cue_age,
    render_faces,
    sample_population,
    synth_utkface_cached,
    write_utkface,
)
from facebench.data.synth import utkface as utkface_module
from facebench.data.table import GENDERS, RACES
from facebench.errors import UserInputError

UTKFACE_NAME = re.compile(r"^(\d+)_([01])_([0-4])_(\d{17})\.jpg\.chip\.jpg$")


def small(**changes) -> SynthConfig:
    return dataclasses.replace(SynthConfig(n=40, seed=7, image_size=64), **changes)


def hf_energy(images: np.ndarray) -> np.ndarray:
    """Mean absolute Laplacian of the grey image over the central face region, per image (64 px images)."""
    grey = images.astype(float) @ np.array([0.299, 0.587, 0.114])
    lap = 4 * grey[:, 1:-1, 1:-1] - grey[:, :-2, 1:-1] - grey[:, 2:, 1:-1] - grey[:, 1:-1, :-2] - grey[:, 1:-1, 2:]
    return np.abs(lap[:, 14:46, 16:46]).mean(axis=(1, 2))


def file_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- population ---------------------------------------------------------------------------------------------

def test_population_is_deterministic_and_seed_dependent():
    a = sample_population(small())
    b = sample_population(small())
    pd.testing.assert_frame_equal(a, b)
    c = sample_population(small(seed=8))
    assert not a[["age", "race", "skin_r", "noise_seed"]].equals(c[["age", "race", "skin_r", "noise_seed"]])


def test_population_labels_and_proportions():
    config = SynthConfig(n=5000, seed=1, image_size=64)
    pop = sample_population(config)
    assert len(pop) == 5000
    assert pop["identity"].is_unique
    assert pop["age"].between(1, 90).all() and pop["age"].dtype.kind == "i"
    assert set(pop["gender"]) == set(GENDERS)
    assert abs((pop["gender"] == "male").mean() - 0.5) < 0.03
    assert set(pop["race"]) == set(RACES)
    total = sum(g.proportion for g in config.groups)
    shares = pop["race"].value_counts(normalize=True)
    for group in config.groups:
        assert abs(shares[group.name] - group.proportion / total) < 0.02, group.name
    # UTKFace-like ages: a bump of small children, most adults 18-45, a tail to 90
    assert 0.07 < (pop["age"] <= 5).mean() < 0.13
    assert 0.5 < pop["age"].between(18, 45).mean() < 0.65
    assert (pop["age"] >= 70).mean() > 0.02 and pop["age"].max() >= 85
    assert np.isclose(age_distribution().sum(), 1.0)
    # the group's aging rate and the cue age follow the documented formula
    rates = {g.name: g.aging_rate for g in config.groups}
    assert (pop["aging_rate"] == pop["race"].map(rates)).all()
    expected = np.where(pop["age"] > 18, 18 + (pop["age"] - 18) * pop["aging_rate"], pop["age"])
    assert np.allclose(pop["cue_age"], expected)
    assert np.allclose(cue_age(np.array([10, 18, 58]), np.array([0.5, 0.5, 0.5])), [10, 18, 38])
    lo, hi = config.jpeg_quality
    assert pop["jpeg_quality"].between(lo, hi).all()


def test_custom_groups_and_gender_cues():
    groups = (GroupAppearance(name="white", proportion=3, skin_lightness=0.8, skin_lightness_sd=0.02),
              GroupAppearance(name="black", proportion=1, skin_lightness=0.3, skin_lightness_sd=0.02))
    pop = sample_population(SynthConfig(n=2000, seed=3, groups=groups))
    assert abs((pop["race"] == "white").mean() - 0.75) < 0.04
    means = pop.groupby("race")["skin_lightness"].mean()
    assert means["white"] > means["black"] + 0.4
    by_gender = pop.groupby("gender")[["jaw", "brow_thickness", "lip_redness", "hair_length", "balding"]].mean()
    assert by_gender.loc["male", "jaw"] < by_gender.loc["female", "jaw"]  # less taper: a wider jaw
    assert by_gender.loc["male", "brow_thickness"] > by_gender.loc["female", "brow_thickness"]
    assert by_gender.loc["male", "lip_redness"] < by_gender.loc["female", "lip_redness"]
    assert by_gender.loc["male", "hair_length"] < by_gender.loc["female", "hair_length"]
    assert by_gender.loc["male", "balding"] > by_gender.loc["female", "balding"]


def test_fingerprint_covers_every_field_and_the_version():
    base = small()
    assert base.fingerprint() == small().fingerprint()
    assert re.fullmatch(r"[0-9a-f]{64}", base.fingerprint())
    changed = [small(seed=8), small(n=41), small(image_size=65), small(render_size=32), small(jpeg_quality=(80, 90)),
               small(groups=DEFAULT_GROUPS[:4]),
               small(groups=(dataclasses.replace(DEFAULT_GROUPS[0], aging_rate=0.99), *DEFAULT_GROUPS[1:]))]
    prints = {c.fingerprint() for c in changed}
    assert len(prints) == len(changed) and base.fingerprint() not in prints
    with pytest.raises(ValueError):
        SynthConfig(n=0)
    with pytest.raises(ValueError):
        SynthConfig(jpeg_quality=(90, 80))


# --- renderer -----------------------------------------------------------------------------------------------

def test_render_shape_dtype_and_determinism():
    pop = sample_population(small())
    a = render_faces(pop, size=64)
    assert a.shape == (40, 64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, render_faces(pop, size=64))
    other = render_faces(sample_population(small(seed=8)), size=64)
    assert not np.array_equal(a, other)
    # faces are distinct images, not noise: neighbouring pixels are strongly correlated
    assert len({hashlib.sha1(x.tobytes()).hexdigest() for x in a}) == 40
    grey = a.astype(float).mean(axis=3)
    assert np.corrcoef(grey[:, :, :-1].ravel(), grey[:, :, 1:].ravel())[0, 1] > 0.9


def test_render_does_not_depend_on_chunk_size_or_other_rows():
    pop = sample_population(small(n=37))
    reference = render_faces(pop, size=48, chunk_size=37)
    for chunk in (1, 5, 16):
        assert np.array_equal(render_faces(pop, size=48, chunk_size=chunk), reference), chunk
    assert np.array_equal(render_faces(pop.iloc[9:14], size=48), reference[9:14])


def test_render_rejects_missing_columns():
    pop = sample_population(small(n=3)).drop(columns=["noise_seed"])
    with pytest.raises(ValueError, match="noise_seed"):
        render_faces(pop, size=32)


def test_age_cues_grow_with_age_for_adults():
    pop = sample_population(small(n=60, seed=11)).assign(aging_rate=1.0, sensor_noise=0.0)
    energies = []
    for age in (22, 40, 58, 76):
        energies.append(hf_energy(render_faces(pop.assign(age=age), size=64)))
    means = [e.mean() for e in energies]
    assert all(b > a for a, b in zip(means, means[1:], strict=False)), means
    assert means[-1] > 1.4 * means[0], means
    assert (energies[-1] > energies[0]).mean() > 0.95  # face by face, same person and capture


def test_slower_aging_group_shows_fewer_cues_at_the_same_age():
    pop = sample_population(small(n=60, seed=12)).assign(age=60, sensor_noise=0.0)
    fast = hf_energy(render_faces(pop.assign(aging_rate=1.0), size=64))
    slow = hf_energy(render_faces(pop.assign(aging_rate=0.7), size=64))
    assert slow.mean() < 0.9 * fast.mean()
    assert (slow < fast).mean() > 0.9
    # the same through the config: two groups that differ only in their aging rate
    groups = (GroupAppearance(name="white", proportion=1, skin_lightness=0.7, skin_lightness_sd=0.05, aging_rate=1.0),
              GroupAppearance(name="asian", proportion=1, skin_lightness=0.7, skin_lightness_sd=0.05, aging_rate=0.7))
    pop = sample_population(SynthConfig(n=160, seed=5, groups=groups)).assign(age=65, sensor_noise=0.0)
    energy = pd.Series(hf_energy(render_faces(pop, size=64)), index=pop.index)
    by_group = energy.groupby(pop["race"]).mean()
    assert by_group["asian"] < 0.92 * by_group["white"]


def test_children_look_different_from_adults():
    pop = sample_population(small(n=20, seed=13)).assign(aging_rate=1.0)
    child = render_faces(pop.assign(age=3), size=64).astype(float)
    adult = render_faces(pop.assign(age=25), size=64).astype(float)
    teen = render_faces(pop.assign(age=17), size=64).astype(float)
    # child proportions fade out smoothly: 17 is much closer to 25 than 3 is
    d_child = np.abs(child - adult).mean()
    d_teen = np.abs(teen - adult).mean()
    assert d_child > 3 * d_teen and d_child > 5


# --- UTKFace writer -----------------------------------------------------------------------------------------

def test_write_utkface_exact_format(tmp_path):
    config = SynthConfig(n=30, seed=5, render_size=48)  # written at 200 px, rendered small for speed
    out = write_utkface(tmp_path / "synth", config)
    assert out == tmp_path / "synth"
    names = sorted(p.name for p in (out / "UTKFace").iterdir())
    assert len(names) == 30
    pop = sample_population(config)
    expected = {(int(a), GENDERS.index(g), RACES.index(r)) for a, g, r in zip(pop["age"], pop["gender"], pop["race"], strict=True)}
    seen, stamps = set(), set()
    for name in names:
        m = UTKFACE_NAME.match(name)
        assert m, name
        seen.add((int(m[1]), int(m[2]), int(m[3])))
        stamps.add(m[4])
        datetime.strptime(m[4][:14], "%Y%m%d%H%M%S")  # a valid calendar date-time
        assert m[4].startswith("2017")
    assert seen == expected and len(stamps) == 30
    # labels in each name equal the population's row, in order
    ordered = utkface_module.utkface_file_names(pop, config.seed)
    for name, (_, row) in zip(ordered, pop.iterrows(), strict=True):
        age, gender, race = name.split("_")[:3]
        assert (int(age), GENDERS[int(gender)], RACES[int(race)]) == (row["age"], row["gender"], row["race"])
    assert sorted(ordered) == names
    for name in names[:5]:
        with Image.open(out / "UTKFace" / name) as image:
            assert image.format == "JPEG" and image.mode == "RGB" and image.size == (200, 200)
    manifest = json.loads((out / "SYNTHETIC.json").read_text())
    assert manifest["synthetic"] is True and manifest["generator"] == "facebench.synth"
    assert manifest["generator_version"] == GENERATOR_VERSION
    assert manifest["fingerprint"] == config.fingerprint() and manifest["n"] == 30
    assert manifest["config"]["seed"] == 5 and manifest["config"]["render_size"] == 48
    assert [p.name for p in tmp_path.iterdir()] == ["synth"]  # no temporary folder left behind


def test_jpeg_quality_comes_from_the_population(tmp_path):
    config = small(n=12, jpeg_quality=(20, 95))
    out = write_utkface(tmp_path / "q", config)
    pop = sample_population(config)
    names = utkface_module.utkface_file_names(pop, config.seed)
    pixels = render_faces(pop, size=64)
    for i in range(len(pop)):
        buffer = io.BytesIO()
        Image.fromarray(pixels[i]).save(buffer, format="JPEG", quality=int(pop["jpeg_quality"][i]))
        assert (out / "UTKFace" / names[i]).read_bytes() == buffer.getvalue()


def test_same_config_gives_byte_identical_files(tmp_path):
    config = small(n=25)
    a = file_hashes(write_utkface(tmp_path / "a", config))
    b = file_hashes(write_utkface(tmp_path / "b", config))
    assert a == b and len(a) == 26
    c = file_hashes(write_utkface(tmp_path / "c", small(n=25, seed=8)))
    assert c != a


def test_refuses_a_non_empty_utkface_folder(tmp_path):
    (tmp_path / "d" / "UTKFace").mkdir(parents=True)
    (tmp_path / "d" / "UTKFace" / "keep.jpg").write_bytes(b"x")
    with pytest.raises(UserInputError, match="UTKFace"):
        write_utkface(tmp_path / "d", small(n=3))
    assert sorted(p.name for p in (tmp_path / "d" / "UTKFace").iterdir()) == ["keep.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    # an existing but empty folder is fine, and other files next to it are kept
    (tmp_path / "e" / "UTKFace").mkdir(parents=True)
    (tmp_path / "e" / "notes.txt").write_text("mine")
    write_utkface(tmp_path / "e", small(n=3))
    assert len(list((tmp_path / "e" / "UTKFace").iterdir())) == 3
    assert (tmp_path / "e" / "notes.txt").read_text() == "mine" and (tmp_path / "e" / "SYNTHETIC.json").is_file()


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    calls = []
    original = Image.Image.save

    def failing_save(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 4:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        write_utkface(tmp_path / "out", small(n=10))
    assert list(tmp_path.iterdir()) == []


def test_cached_dataset_is_written_once(tmp_path, monkeypatch):
    config = small(n=8)
    folder = synth_utkface_cached(config, tmp_path / "cache")
    assert folder == tmp_path / "cache" / f"utkface-{config.fingerprint()[:16]}"
    assert len(list((folder / "UTKFace").iterdir())) == 8
    before = file_hashes(folder)

    def no_write(*args, **kwargs):
        raise AssertionError("the cached dataset was written again")

    monkeypatch.setattr(utkface_module, "write_utkface", no_write)
    assert synth_utkface_cached(config, tmp_path / "cache") == folder
    assert file_hashes(folder) == before
