"""Synthetic longitudinal people and the AIFR dataset writers (MORPH, CACD, FG-NET, AgeDB): exact formats
(research notes A3-A6), determinism, identity across ages, atomic writing, caching, and reader round trips."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import pickle
import re
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
from PIL import Image

from facebench.data.synth import agedb as synth_agedb
from facebench.data.synth import aifr, longitudinal
from facebench.data.synth import cacd as synth_cacd
from facebench.data.synth import fgnet as synth_fgnet
from facebench.data.synth import morph as synth_morph
from facebench.data.synth.aifr import (
    AgedbSettings,
    CacdSettings,
    FgnetSettings,
    MorphSettings,
    agedb_records,
    cacd_records,
    fgnet_records,
    morph_records,
    synth_agedb_cached,
    synth_cacd_cached,
    synth_fgnet_cached,
    synth_morph_cached,
    write_agedb,
    write_cacd,
    write_fgnet,
    write_morph,
)
from facebench.data.synth.longitudinal import (
    CAPTURE_COLUMNS,
    DRIFT_WEIGHTS,
    MORPH_GROUPS,
    LongitudinalConfig,
    morph_like,
    sample_longitudinal_population,
)
from facebench.data.synth.render import RENDER_COLUMNS, render_faces
from facebench.errors import UserInputError

MORPH_PHOTO = re.compile(r"^Album2/(\d{6})_(\d{1,2})([MF])(\d+)\.JPG$")
MORPH_DATE = re.compile(r"^(\d{2})/(\d{2})/(\d{4})$")
CACD_FILE = re.compile(r"^(\d+)_([A-Z][a-z]+(?:_[A-Z][a-z]+)+)_(\d{4})\.jpg$")
CACD_VS_FILE = re.compile(r"^(\d{4})_([01])\.jpg$")
FGNET_FILE = re.compile(r"^(\d{3})A(\d{2})([ab]?)\.JPG$")
AGEDB_FILE = re.compile(r"^(\d+)_([A-Z][a-z]+[A-Z][a-z]+)_(\d+)_([mf])\.jpg$")

SMALL = 64
MORPH_SMALL = dict(n_people=20, seed=3, image_size=SMALL)
CACD_SMALL = dict(n_people=16, seed=3, image_size=SMALL, photos_per_year=(1, 2), n_vs_folds=2, pairs_per_fold=20)
FGNET_SMALL = dict(n_people=10, seed=3, image_size=SMALL)
AGEDB_SMALL = dict(n_people=16, seed=3, image_size=SMALL, photos_mean=10.0, n_folds=2, pairs_per_fold=20)

WRITERS = {
    "morph": (write_morph, MORPH_SMALL, ("MORPH_nonCommercial",)),
    "cacd": (write_cacd, CACD_SMALL, ("CACD2000", "celebrity2000_meta.mat", "CACD_VS")),
    "fgnet": (write_fgnet, FGNET_SMALL, ("FGNET",)),
    "agedb": (write_agedb, AGEDB_SMALL, ("AgeDB", "agedb_30.bin")),
}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    """Each format written once at test size (the tests below only read these folders)."""
    base = tmp_path_factory.mktemp("aifr")
    return {name: write(base / name, **kwargs) for name, (write, kwargs, _) in WRITERS.items()}


def file_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def floor_years(dob: dt.date, doa: dt.date) -> int:
    return doa.year - dob.year - ((doa.month, doa.day) < (dob.month, dob.day))


def embed(images: np.ndarray) -> np.ndarray:
    """A crude face embedding: a centred, unit-norm 12x10 colour thumbnail of the face region (64 px images)."""
    x = images.astype(float)[:, 8:56, 12:52].reshape(len(images), 12, 4, 10, 4, 3).mean(axis=(2, 4))
    x = x.reshape(len(images), -1)
    x -= x.mean(axis=1, keepdims=True)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def decode(data: bytes, size: int | None = None) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
        if size is not None and image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(image)


# --- the longitudinal population -----------------------------------------------------------------------------

def test_people_keep_their_identity_and_get_fresh_captures():
    config = LongitudinalConfig(n_people=30, seed=4)
    pop = sample_longitudinal_population(config)
    pd.testing.assert_frame_equal(pop, sample_longitudinal_population(config))
    other = sample_longitudinal_population(LongitudinalConfig(n_people=30, seed=5))
    assert not pop["iris_r"].head(10).equals(other["iris_r"].head(10))

    assert set(RENDER_COLUMNS) <= set(pop.columns)
    assert pop["person"].nunique() == 30 and (pop["identity"] == pop["person"]).all()
    assert (pop["age"] == np.floor(pop["age_exact"])).all()
    per_person = pop.groupby("person")
    # photos in age order, numbered 0..k-1
    assert per_person["age_exact"].apply(lambda a: a.is_monotonic_increasing).all()
    assert (per_person["photo"].apply(lambda p: list(p) == list(range(len(p))))).all()
    # identity: constant per person (apart from the drifting columns)
    fixed = ["race", "gender", "aging_rate", "iris_r", "iris_g", "iris_b", "balding", "grey_onset"]
    assert (per_person[fixed].nunique() == 1).all().all()
    # capture: drawn per photo
    multi = pop[pop["person"].map(pop["person"].value_counts()) > 1]
    for col in ("yaw", "exposure", "noise_seed", "bg_r", "light_azimuth"):
        assert (multi.groupby("person")[col].nunique() > 1).all(), col
    # the drifting columns do move, but little between photos of one person compared with between people
    drift = list(DRIFT_WEIGHTS)
    within = multi.groupby("person")[drift].std().mean()
    between = pop.groupby("person")[drift].first().std()
    assert (within > 0).all() and (within < 0.5 * between).all()


def test_age_spans_follow_the_config():
    pop = sample_longitudinal_population(LongitudinalConfig(n_people=200, seed=1, photos=(3, 6), photos_mean=4.0,
                                                            first_age=(20, 25, 40), age_span=(10, 10, 10)))
    span = pop.groupby("person")["age_exact"].agg(lambda a: a.max() - a.min())
    counts = pop.groupby("person").size()
    assert counts.between(3, 6).all() and abs(counts.mean() - 4.0) < 0.3
    assert np.allclose(span, 10.0)
    assert pop.groupby("person")["age_exact"].min().between(20, 40).all()


def test_identity_drift_grows_with_the_age_gap():
    def drift_by_gap(identity_drift: float) -> tuple[float, float]:
        config = LongitudinalConfig(n_people=300, seed=2, photos=(2, 2), photos_mean=2.0, first_age=(20, 20, 20),
                                    age_span=(1, 25, 50), identity_drift=identity_drift, min_age=16)
        pop = sample_longitudinal_population(config)
        cols = list(DRIFT_WEIGHTS)
        scale = pop.groupby("person")[cols].first().std()
        first, last = (pop[pop["photo"] == k].set_index("person") for k in (0, 1))
        moved = (((last[cols] - first[cols]) / scale) ** 2).mean(axis=1)
        gap = last["age_exact"] - first["age_exact"]
        return float(moved[gap < 10].mean()), float(moved[gap > 35].mean())

    near, far = drift_by_gap(0.12)
    assert far > 3 * near  # variance grows with the gap (Brownian in age)
    near0, far0 = drift_by_gap(0.0)
    assert far0 < 1.5 * near0 and far0 < far / 3  # only the age-independent jitter remains


def test_genuine_photos_look_more_alike_and_less_so_across_larger_gaps():
    config = LongitudinalConfig(n_people=24, seed=3, photos=(6, 6), photos_mean=6.0, first_age=(20, 22, 30),
                                age_span=(40, 40, 40), min_age=16)
    pop = sample_longitudinal_population(config)
    e = embed(render_faces(pop, size=SMALL))
    sim = e @ e.T
    i, j = np.triu_indices(len(pop), 1)
    person, age = pop["person"].to_numpy(), pop["age_exact"].to_numpy()
    same, gap, s = person[i] == person[j], np.abs(age[i] - age[j]), sim[i, j]
    genuine_near = s[same & (gap < 10)].mean()
    genuine_far = s[same & (gap >= 25)].mean()
    impostor = s[~same & (gap < 10)].mean()
    assert genuine_near > impostor + 0.1
    assert genuine_near > genuine_far + 0.1


def test_morph_like_groups_and_gender():
    pop = sample_longitudinal_population(morph_like(1500, seed=0))
    people = pop.groupby("person").first()
    total = sum(g.proportion for g in MORPH_GROUPS)
    shares = people["race"].value_counts(normalize=True)
    for group in ("black", "white"):
        proportion = next(g.proportion for g in MORPH_GROUPS if g.name == group)
        assert abs(shares[group] - proportion / total) < 0.04, group
    assert abs((people["gender"] == "male").mean() - 0.846) < 0.03
    assert pop["age"].between(16, 77).all()
    assert abs(pop.groupby("person").size().mean() - 4.05) < 0.3
    span = pop.groupby("person")["age_exact"].agg(lambda a: a.max() - a.min())
    assert span.max() <= 5.0 + 1e-9


# --- MORPH ---------------------------------------------------------------------------------------------------

def test_morph_format(written):
    root = written["morph"] / "MORPH_nonCommercial"
    text = (root / "morph_2008_nonCommercial.csv").read_text(encoding="utf-8")
    lines = text.split("\n")
    assert lines[0] == "id_num,picture_num,dob,doa,race,gender,facial_hair,age,age_diff,glasses,photo"
    assert lines[-1] == "" and all(lines[1:-1])
    rows = list(csv.reader(io.StringIO(text)))[1:]
    assert all(len(r) == 11 for r in rows)
    by_subject: dict[str, list] = defaultdict(list)
    widths = Counter()
    for id_num, picture_num, dob, doa, race, gender, facial_hair, age, age_diff, glasses, photo in rows:
        m = MORPH_PHOTO.match(photo)
        assert m, photo
        assert int(m[1]) == int(id_num) and m[1] == f"{int(id_num):06d}" and not id_num.startswith("0")
        assert int(m[2]) == int(picture_num) and m[3] == gender and m[4] == age
        widths[len(m[2])] += 1
        assert race in "BWHAO" and len(race) == 1 and gender in ("M", "F")
        assert facial_hair == "" and glasses == ""
        assert MORPH_DATE.match(dob) and MORPH_DATE.match(doa)
        dob_d, doa_d = (dt.datetime.strptime(x, "%m/%d/%Y").date() for x in (dob, doa))
        assert floor_years(dob_d, doa_d) == int(age)
        assert age_diff == "" or re.fullmatch(r"\d+\.0", age_diff)
        assert (root / photo).is_file()
        by_subject[id_num].append((doa_d, int(picture_num), age_diff, int(age), dob, race, gender))
    assert widths[1] > 0 and widths[2] > 0  # picture_num printed with one or two digits
    assert len(by_subject) == 20
    several_ages = 0
    for captures in by_subject.values():
        captures.sort()
        assert len({c[4:] for c in captures}) == 1  # dob, race, gender fixed per subject
        assert [c[1] for c in captures] == sorted(c[1] for c in captures)  # picture_num follows doa
        assert len({c[1] for c in captures}) == len(captures)
        assert captures[0][2] == ""
        for prev, cur in pairwise(captures):
            assert float(cur[2]) == (cur[0] - prev[0]).days > 0
        several_ages += len({c[3] for c in captures}) > 1
    assert several_ages >= 3
    with Image.open(next((root / "Album2").iterdir())) as image:
        assert image.format == "JPEG" and image.size == (SMALL, SMALL) and image.mode == "RGB"
    files = {p.name for p in (root / "Album2").iterdir()}
    assert files == {r[10].split("/")[1] for r in rows}
    manifest = json.loads((written["morph"] / "SYNTHETIC.json").read_text())
    assert manifest["synthetic"] is True and manifest["format"] == "morph" and manifest["n_images"] == len(rows)
    assert {str(s["id_num"]) for s in manifest["subjects"]} == set(by_subject)
    assert manifest["fingerprint"] == MorphSettings(**MORPH_SMALL).fingerprint()


# --- CACD ----------------------------------------------------------------------------------------------------

def _mat(root: Path):
    m = scipy.io.loadmat(root / "celebrity2000_meta.mat")
    return m["celebrityImageData"], m["celebrityData"]


def test_cacd_format(written):
    root = written["cacd"]
    assert (root / "celebrity2000_meta.mat").read_bytes().startswith(b"MATLAB 5.0 MAT-file")
    images, celebs = _mat(root)
    assert images.shape == (1, 1) and celebs.shape == (1, 1)
    assert images.dtype.names == ("age", "identity", "year", "feature", "rank", "lfw", "birth", "name")
    assert celebs.dtype.names == ("name", "identity", "birth", "rank", "lfw")
    rec = images[0, 0]
    n = rec[0].shape[0]
    for k, dtype in zip((0, 1, 2, 4, 5, 6), (np.uint8, np.uint16, np.uint16, np.uint8, np.uint8, np.uint16), strict=True):
        assert rec[k].dtype == dtype and rec[k].shape == (n, 1)
    assert rec[3].shape == (0, 0) and rec[7].shape == (n, 1) and rec[7].dtype == object
    names = [str(x[0][0]) for x in rec[7]]
    age, identity, year, rank, lfw, birth = (rec[k].ravel().astype(int) for k in (0, 1, 2, 4, 5, 6))
    assert set(names) == {p.name for p in (root / "CACD2000").iterdir()} and len(set(names)) == n
    assert (age == year - birth).all() and year.min() >= 2004 and year.max() <= 2013 and age.min() >= 16
    assert set(lfw) <= {0, 1} and rank.min() >= 1 and rank.max() <= 50
    ks: dict[int, list[int]] = defaultdict(list)
    for name, a, ident in zip(names, age, identity, strict=True):
        m = CACD_FILE.match(name)
        assert m, name
        assert int(m[1]) == a
        ks[ident].append(int(m[3]))
    assert all(sorted(v) == list(range(1, len(v) + 1)) for v in ks.values())
    crec = celebs[0, 0]
    cnames = [str(x[0][0]) for x in crec[0]]
    cid, cbirth, crank, clfw = (crec[k].ravel().astype(int) for k in (1, 2, 3, 4))
    assert sorted(cid) == list(range(1, 17)) and all(re.fullmatch(r"[A-Z][a-z]+( [A-Z][a-z]+)+", c) for c in cnames)
    assert (crec[1].dtype, crec[2].dtype, crec[3].dtype, crec[4].dtype) == (np.uint16, np.uint16, np.uint8, np.uint8)
    by_id = {i: (nm, b, r, f) for i, nm, b, r, f in zip(cid, cnames, cbirth, crank, clfw, strict=True)}
    for name, ident, b, r, f in zip(names, identity, birth, rank, lfw, strict=True):
        assert CACD_FILE.match(name)[2] == by_id[ident][0].replace(" ", "_")
        assert (b, r, f) == by_id[ident][1:]
    # ranks are unique within a birth year and include CARC's test ranks 3-5
    for b in set(cbirth):
        ranks = crank[cbirth == b]
        assert len(set(ranks)) == len(ranks) and {1, 2, 3, 4, 5} <= set(ranks)
    # every celebrity is photographed over several years, and in 2013 (the query year)
    years_per_id = pd.Series(year).groupby(identity).nunique()
    assert (years_per_id >= 8).all()
    assert set(identity[year == 2013]) == set(cid)


def test_cacd_vs_pairs(written):
    root = written["cacd"]
    by_hash = {hashlib.sha256(p.read_bytes()).hexdigest(): p.name for p in (root / "CACD2000").iterdir()}
    images, _ = _mat(root)
    rec = images[0, 0]
    identity_of = dict(zip((str(x[0][0]) for x in rec[7]), rec[1].ravel().astype(int), strict=True))
    year_of = dict(zip((str(x[0][0]) for x in rec[7]), rec[2].ravel().astype(int), strict=True))
    files = sorted(p.name for p in (root / "CACD_VS").iterdir())
    assert all(CACD_VS_FILE.match(f) for f in files) and len(files) == 2 * 2 * 20
    fold_ids: list[set[int]] = [set(), set()]
    sims = {True: [], False: []}
    for pair_id in range(40):
        fold, positive = pair_id // 20, pair_id % 20 < 10
        a, b = (by_hash[hashlib.sha256((root / "CACD_VS" / f"{pair_id:04d}_{side}.jpg").read_bytes()).hexdigest()]
                for side in (0, 1))
        assert a != b
        assert (identity_of[a] == identity_of[b]) == positive
        if positive:
            assert year_of[a] != year_of[b]
        fold_ids[fold] |= {identity_of[a], identity_of[b]}
        pair = np.stack([decode((root / "CACD2000" / f).read_bytes()) for f in (a, b)])
        e = embed(pair)
        sims[positive].append(float(e[0] @ e[1]))
    assert not fold_ids[0] & fold_ids[1]  # identities are disjoint across folds
    assert np.mean(sims[True]) > np.mean(sims[False]) + 0.05  # genuine pairs look more alike


def test_cacd_records_birth_years_and_ranks_at_full_scale():
    settings = CacdSettings(n_people=2000, seed=0, photos_per_year=(1, 1), n_vs_folds=0)
    _, celebs = cacd_records(settings)
    assert sorted(set(celebs["birth"])) == list(range(1951, 1991))
    assert (celebs.groupby("birth")["rank"].apply(lambda r: sorted(r) == list(range(1, 51)))).all()
    assert celebs["name"].is_unique and len(celebs[(celebs["rank"] > 2) & (celebs["rank"] <= 5)]) == 120


# --- FG-NET --------------------------------------------------------------------------------------------------

def test_fgnet_format(written):
    folder = written["fgnet"] / "FGNET" / "images"
    names = sorted(p.name for p in folder.iterdir())
    parsed = [FGNET_FILE.match(n) for n in names]
    assert all(parsed), [n for n, m in zip(names, parsed, strict=True) if not m]
    subjects = Counter(m[1] for m in parsed)
    assert set(subjects) == {f"{s:03d}" for s in range(1, 11)}
    ages = [int(m[2]) for m in parsed]
    assert min(ages) >= 0 and max(ages) <= 69
    per_age = defaultdict(list)
    for m in parsed:
        per_age[(m[1], m[2])].append(m[3])
    for suffixes in per_age.values():
        assert sorted(suffixes) in ([""], ["a", "b"])  # a/b exactly when a person has two images at one age
    ages_per_subject = defaultdict(set)
    for m in parsed:
        ages_per_subject[m[1]].add(int(m[2]))
    assert all(len(a) >= 5 for a in ages_per_subject.values())
    assert all(max(a) - min(a) >= 8 for a in ages_per_subject.values())


def test_fgnet_full_size_looks_like_fgnet():
    records = fgnet_records(FgnetSettings(seed=0))
    assert records["subject"].nunique() == 82 and 900 <= len(records) <= 1100
    assert records["age"].between(0, 69).all() and 12 <= records["age"].mean() <= 22
    assert records["file"].is_unique and records["file"].str.contains(r"[ab]\.JPG$").mean() < 0.15


# --- AgeDB ---------------------------------------------------------------------------------------------------

def test_agedb_format_and_bin(written):
    root = written["agedb"]
    names = sorted(p.name for p in (root / "AgeDB").iterdir())
    parsed = [AGEDB_FILE.match(n) for n in names]
    assert all(parsed)
    assert sorted(int(m[1]) for m in parsed) == list(range(len(names)))
    gender_of = defaultdict(set)
    ages_of = defaultdict(set)
    for m in parsed:
        gender_of[m[2]].add(m[4])
        ages_of[m[2]].add(int(m[3]))
    assert len(gender_of) == 16 and all(len(g) == 1 for g in gender_of.values())
    assert all(len(a) >= 3 for a in ages_of.values())

    data = (root / "agedb_30.bin").read_bytes()
    assert data[:2] == b"\x80\x02"
    with pytest.raises(UnicodeDecodeError):  # a Python-2 pickle of str, like the real pack
        pickle.loads(data)
    bins, issame = pickle.loads(data, encoding="bytes")
    assert isinstance(bins, list) and isinstance(issame, list)
    assert len(issame) == 40 and len(bins) == 80 and all(isinstance(b, bytes) for b in bins)
    assert issame == ([True] * 10 + [False] * 10) * 2
    for blob in bins[:6]:
        with Image.open(io.BytesIO(blob)) as image:
            assert image.format == "JPEG" and image.size == (112, 112)
    manifest = json.loads((root / "SYNTHETIC.json").read_text())
    pairs = manifest["bin_pairs"]
    assert [p[2] for p in pairs] == issame
    fold_names = [set(), set()]
    for k, (a, b, same) in enumerate(pairs):
        ma, mb = AGEDB_FILE.match(a), AGEDB_FILE.match(b)
        assert abs(int(ma[3]) - int(mb[3])) >= 30
        assert (ma[2] == mb[2]) == same
        fold_names[k // 20] |= {ma[2], mb[2]}
        # the pack's crop is the named photo, rendered at 112 px
        crop = decode(bins[2 * k], SMALL).astype(float)
        own = decode((root / "AgeDB" / a).read_bytes()).astype(float)
        other = decode((root / "AgeDB" / b).read_bytes()).astype(float)
        assert np.abs(crop - own).mean() < np.abs(crop - other).mean()
    assert not fold_names[0] & fold_names[1]


def test_agedb_full_size_pairs_exist():
    settings = AgedbSettings(seed=0)
    photos = agedb_records(settings)
    assert photos["person"].nunique() == 568 and 14_000 <= len(photos) <= 19_000
    assert photos["age"].between(1, 101).all()
    pairs, issame = aifr.agedb_pairs(settings, photos)
    assert len(pairs) == 6000 and issame == ([True] * 300 + [False] * 300) * 10
    age = photos["age"].to_numpy()
    assert all(abs(age[a] - age[b]) >= 30 for a, b in pairs)
    assert len({frozenset(p) for p in pairs}) == 6000


# --- all writers: determinism, refusal, atomicity, cache -------------------------------------------------------

@pytest.mark.parametrize("name", list(WRITERS))
def test_same_settings_give_byte_identical_files(name, written, tmp_path):
    write, kwargs, entries = WRITERS[name]
    again = write(tmp_path / "again", **kwargs)
    assert file_hashes(again) == file_hashes(written[name])
    assert sorted(p.name for p in again.iterdir()) == sorted((*entries, "SYNTHETIC.json"))
    other = write(tmp_path / "other", **{**kwargs, "seed": kwargs["seed"] + 1})
    assert file_hashes(other) != file_hashes(again)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "other"]  # no temporary folder left


def test_records_are_deterministic():
    pd.testing.assert_frame_equal(morph_records(MorphSettings(**MORPH_SMALL)), morph_records(MorphSettings(**MORPH_SMALL)))
    a, b = cacd_records(CacdSettings(**CACD_SMALL)), cacd_records(CacdSettings(**CACD_SMALL))
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])


@pytest.mark.parametrize("name", list(WRITERS))
def test_refuses_a_non_empty_target(name, tmp_path):
    write, kwargs, entries = WRITERS[name]
    small = {**kwargs, "n_people": kwargs["n_people"]}
    out = tmp_path / "d"
    first = out / entries[0]
    first.mkdir(parents=True)
    (first / "keep.txt").write_text("mine")
    with pytest.raises(UserInputError, match=re.escape(entries[0])):
        write(out, **small)
    assert sorted(p.name for p in out.iterdir()) == [entries[0]]
    assert [p.name for p in first.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    # an existing empty folder is fine, and other files next to it are kept
    (first / "keep.txt").unlink()
    (out / "notes.txt").write_text("mine")
    write(out, **small)
    assert (out / "notes.txt").read_text() == "mine" and (out / "SYNTHETIC.json").is_file()
    assert any(first.iterdir())
    # a second write into the same folder is refused (its entries and manifest exist now)
    with pytest.raises(UserInputError):
        write(out, **small)


def test_refuses_another_synthetic_dataset_root(tmp_path):
    write_fgnet(tmp_path / "x", **FGNET_SMALL)
    with pytest.raises(UserInputError, match="SYNTHETIC.json"):
        write_morph(tmp_path / "x", **MORPH_SMALL)
    assert not (tmp_path / "x" / "MORPH_nonCommercial").exists()


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    calls = []
    original = Image.Image.save

    def failing_save(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 5:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        write_cacd(tmp_path / "out", **CACD_SMALL)
    assert list(tmp_path.iterdir()) == []


def test_impossible_pair_counts_are_refused(tmp_path):
    with pytest.raises(UserInputError, match="pairs"):
        write_agedb(tmp_path / "a", **{**AGEDB_SMALL, "pairs_per_fold": 2000})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cached, settings, entry", [
    (synth_morph_cached, MorphSettings(n_people=6, seed=1, image_size=32), "MORPH_nonCommercial"),
    (synth_cacd_cached, CacdSettings(n_people=6, seed=1, image_size=32, photos_per_year=(1, 1), n_vs_folds=1,
                                     pairs_per_fold=4), "CACD2000"),
    (synth_fgnet_cached, FgnetSettings(n_people=4, seed=1, image_size=32), "FGNET"),
    (synth_agedb_cached, AgedbSettings(n_people=6, seed=1, image_size=32, photos_mean=6.0, n_folds=1,
                                       pairs_per_fold=4), "AgeDB"),
])
def test_cached_dataset_is_written_once(cached, settings, entry, tmp_path, monkeypatch):
    folder = cached(settings, tmp_path / "cache")
    assert folder == tmp_path / "cache" / f"{settings.FORMAT}-{settings.fingerprint()[:16]}"
    assert (folder / entry).is_dir() and json.loads((folder / "SYNTHETIC.json").read_text())["synthetic"] is True
    before = file_hashes(folder)

    def no_write(*args, **kwargs):
        raise AssertionError("the cached dataset was written again")

    for module in (synth_morph, synth_cacd, synth_fgnet, synth_agedb):  # each cached variant calls its own writer
        monkeypatch.setattr(module, f"write_{module.__name__.rsplit('.', 1)[1]}", no_write)
    assert cached(settings, tmp_path / "cache") == folder
    assert cached(settings.options(), tmp_path / "cache") == folder  # a mapping of the fields works too
    assert file_hashes(folder) == before


def test_settings_fingerprint_covers_every_field_and_the_versions(monkeypatch):
    base = CacdSettings(n_people=10)
    assert base.fingerprint() == CacdSettings(n_people=10).fingerprint()
    for change in ({"seed": 1}, {"image_size": 64}, {"pairs_per_fold": 40}, {"photos_per_year": (1, 2)},
                   {"male_share": 0.6}):
        assert CacdSettings(n_people=10, **change).fingerprint() != base.fingerprint(), change
    assert MorphSettings(n_people=10).fingerprint() != FgnetSettings(n_people=10).fingerprint()
    before = base.fingerprint()
    monkeypatch.setattr(longitudinal, "LONGITUDINAL_VERSION", "999")
    assert base.fingerprint() != before


def test_capture_and_identity_columns_partition_the_render_columns():
    assert set(CAPTURE_COLUMNS) | set(longitudinal.IDENTITY_COLUMNS) | {"age"} == set(RENDER_COLUMNS) | {"jpeg_quality"}
    assert not set(CAPTURE_COLUMNS) & set(longitudinal.IDENTITY_COLUMNS)
    assert set(DRIFT_WEIGHTS) <= set(longitudinal.IDENTITY_COLUMNS)


def test_names_are_made_up_and_distinct():
    names = aifr.synthetic_names(3000, seed=0, dataset="cacd", third_part_share=0.1)
    joined = ["_".join(n) for n in names]
    assert len(set(joined)) == 3000 and all(re.fullmatch(r"[A-Z][a-z]+(_[A-Z][a-z]+){1,2}", j) for j in joined)
    assert 200 < sum(len(n) == 3 for n in names) < 400


# --- round trips through the readers (skipped only where a reader module is missing) -----------------------------

def test_morph_round_trip(written):
    morph = pytest.importorskip("facebench.data.morph")
    result = morph.read_morph(written["morph"])
    assert result.rejected == () and result.conflicts == ()
    records = morph_records(MorphSettings(**MORPH_SMALL))
    table = result.table.set_index("sample_id")
    assert len(table) == len(records)
    for r in records.itertuples():
        row = table.loc[f"MORPH_nonCommercial/{r.photo_path}"]
        assert row["subject_id"] == str(r.id_num) and row["age"] == r.age
        assert row["gender"] == r.gender and row["race_code"] == r.race_code
        assert row["dob"] == r.dob.isoformat() and row["doa"] == r.doa.isoformat()
        assert row["picture_num"] == r.picture_num
        assert (pd.isna(row["age_diff"]) and pd.isna(r.age_diff)) or row["age_diff"] == r.age_diff


def test_cacd_round_trip(tmp_path):
    cacd = pytest.importorskip("facebench.data.cacd")
    # the reader's CACD-VS labels assume 400 pairs per fold (200 positive first): write one full fold
    settings = dict(CACD_SMALL, n_vs_folds=1, pairs_per_fold=400, photos_per_year=(2, 3))
    root = write_cacd(tmp_path / "c", **settings)
    result = cacd.read_cacd(root)
    assert result.rejected == ()
    images, _ = cacd_records(CacdSettings(**settings))
    table = result.table.set_index("sample_id")
    assert len(table) == len(images)
    for r in images.itertuples():
        row = table.loc[f"CACD2000/{r.file}"]
        assert (row["subject_id"], row["age"], row["year"], row["rank"], row["lfw"], row["birth"]) == \
            (str(r.identity), r.age, r.year, r.rank, r.lfw, r.birth)
        assert row["name"] == r.name and row["image_index"] == r.k
    vs = cacd.read_cacd_vs(root, require_complete=False)
    assert vs.rejected == () and len(vs.pairs) == 400
    manifest = json.loads((root / "SYNTHETIC.json").read_text())
    assert vs.pairs["issame"].tolist() == [p[2] for p in manifest["vs_pairs"]]


def test_fgnet_round_trip(written):
    fgnet = pytest.importorskip("facebench.data.fgnet")
    result = fgnet.read_fgnet(written["fgnet"])
    assert result.rejected == ()
    records = fgnet_records(FgnetSettings(**FGNET_SMALL))
    table = result.table.set_index("sample_id")
    assert len(table) == len(records)
    for r in records.itertuples():
        row = table.loc[f"FGNET/images/{r.file}"]
        assert row["subject_id"] == f"{r.subject:03d}" and row["age"] == r.age


def test_agedb_round_trip(written):
    agedb = pytest.importorskip("facebench.data.agedb")
    result = agedb.read_agedb(written["agedb"])
    assert result.rejected == ()
    records = agedb_records(AgedbSettings(**AGEDB_SMALL))
    table = result.table.set_index("sample_id")
    assert len(table) == len(records)
    for r in records.itertuples():
        row = table.loc[f"AgeDB/{r.file}"]
        assert (row["subject_id"], row["age"], row["gender"], row["image_num"]) == (r.name, r.age, r.gender, r.imgnum)
    images, issame = agedb.read_agedb_bin(written["agedb"] / "agedb_30.bin")
    bins, labels = pickle.loads((written["agedb"] / "agedb_30.bin").read_bytes(), encoding="bytes")
    assert images == bins and issame.tolist() == labels
