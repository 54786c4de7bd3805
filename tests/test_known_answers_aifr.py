"""Seed 002's methods (ArcFace, ArcFace + Age, MT-MIM) proven on a known answer (issue 13, AIFR part).

The longitudinal generators' ``age_entangled`` setting moves every person's identity parameters along one shared
age direction u as they age (:mod:`facebench.data.synth.longitudinal`). At the parameter level the answer is exact
(a nearest-neighbour loses rank-1 across the largest gap; removing u gives it back). The three baselines of
``aifr_morph`` then run through the real runner at toy size (seed 0, trained once for the module); the assertions
are directions measured on seeds 0-2 (numbers in the docstrings), and the one that does not hold at toy size (MT-MIM
beating ArcFace) is xfail(strict=True) with the numbers.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from facebench.data.synth.aifr import AgedbSettings, CacdSettings, FgnetSettings, MorphSettings, write_morph
from facebench.data.synth.longitudinal import (
    AGE_DIRECTION_RATE,
    DRIFT_WEIGHTS,
    LongitudinalConfig,
    _reference_scales,
    age_direction,
    morph_like,
    sample_longitudinal_population,
)
from facebench.errors import UserInputError
from facebench.known_answers.aifr import (
    AGE_METHOD,
    EXPECTED,
    MTMIM_METHOD,
    REFERENCE_METHOD,
    TOY_OVERRIDES,
    Rank1Change,
    dataset_table,
    embedding_age_r2,
    mi_history,
    oracle_rank1,
    rank1_changes,
    run_setting,
    table_rows,
)
from facebench.registry import DATASETS
from facebench.synthetic_truth import SHIFT_MEANINGS, injected_effect

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny nets: see conftest


# ------------------------------------------------------------------------------------- the generator


def test_default_setting_leaves_fingerprints_and_people_as_they_were() -> None:
    """The values from before ``shift`` existed (commit 8f2ca3e): settings, configs and drawn people."""
    before = {MorphSettings: "3a57439749eccda4", CacdSettings: "00fb6bae040e69ed", FgnetSettings: "38213de741487f0b",
              AgedbSettings: "afa051638ac9f95b"}
    for cls, prefix in before.items():
        assert cls(n_people=10).fingerprint()[:16] == prefix, cls
        assert "shift" not in cls(n_people=10).to_dict()
        assert cls(n_people=10, shift="age_entangled").fingerprint() != cls(n_people=10).fingerprint()
    assert LongitudinalConfig().fingerprint()[:16] == "c2cd1d2a2095f1c6"
    people = sample_longitudinal_population(LongitudinalConfig(n_people=50, seed=3))
    # the drawn values; the all-zero cue_age_offset column came later with the UTKFace offset shift
    assert (people["cue_age_offset"] == 0).all()
    people = people.drop(columns=["cue_age_offset"])
    assert hashlib.sha256(people.to_csv().encode()).hexdigest()[:16] == "a6458f575f60689d"


def test_age_entangled_is_validated_recorded_and_idempotent(tmp_path: Path) -> None:
    spec = DATASETS.get("morph")
    with pytest.raises(UserInputError, match=r"shift must be one of \['default', 'age_entangled'\]"):
        spec.synthetic_settings(n=10, seed=0, image_size=16, options={"shift": "sideways"}, what="dataset.synthetic")
    config = morph_like(10, 0, shift="age_entangled")
    assert config.identity_drift == 0.0 and config.age_span == (4.0, 8.0, 12.0)
    rebuilt = LongitudinalConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.to_dict().items()
                                    if k != "groups"}, groups=config.groups)
    assert rebuilt.fingerprint() == config.fingerprint()  # a config rebuilt from its record is the same
    root = write_morph(tmp_path / "morph", n_people=6, seed=0, image_size=16, shift="age_entangled")
    manifest = json.loads((root / "SYNTHETIC.json").read_text())
    assert manifest["shift"] == "age_entangled" and manifest["config"]["shift"] == "age_entangled"
    effect = injected_effect(manifest)
    assert effect["shift"] == "age_entangled" and effect["shift_meaning"] == SHIFT_MEANINGS["age_entangled"]


def test_identity_moves_along_the_age_direction_only() -> None:
    """Within a person, photo minus first photo is r·(age gap)·u plus jitter, up to clipping at the population's
    range (fringe, lip redness and hair volume often sit at a bound). Measured on 200 people (seed 0): the move along
    u is 0.85 of r·gap (median ratio), the rest of the move 0.32 of the move along u (medians)."""
    photos = sample_longitudinal_population(morph_like(200, 0, shift="age_entangled"))
    columns = list(DRIFT_WEIGHTS)
    x = (photos[columns] / _reference_scales()["sd"]).to_numpy(float)
    first = photos.reset_index(drop=True).groupby("person")["photo"].transform(lambda p: p.index[0]).to_numpy()
    gap = photos["age_exact"].to_numpy() - photos["age_exact"].to_numpy()[first]
    u = np.array([age_direction()[c] for c in columns])
    moved = (x - x[first])[gap > 0]
    along = moved @ u
    rest = np.linalg.norm(moved - np.outer(along, u), axis=1)
    assert 0.75 < np.median(along / (AGE_DIRECTION_RATE * gap[gap > 0])) <= 1.0
    assert np.median(rest) < 0.4 * np.median(np.abs(along))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_removing_the_age_direction_restores_rank1_on_the_parameters(seed: int) -> None:
    """The known answer on the parameters: a nearest-neighbour across the largest gap among 150 people identifies
    76 / 68 / 69 % (seeds 0-2) with u, 100 % without; on default data (gaps of 0-5 years) 100 % either way."""
    entangled = sample_longitudinal_population(morph_like(150, seed, shift="age_entangled"))
    assert oracle_rank1(entangled, remove_age_direction=False) < 0.85
    assert oracle_rank1(entangled, remove_age_direction=True) > 0.97
    default = sample_longitudinal_population(morph_like(150, seed))
    assert oracle_rank1(default, remove_age_direction=False) > 0.97


# ------------------------------------------------------------------------------------- the methods


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict[str, Rank1Change], dict[str, float]]:
    """The three baselines trained once at toy size on the age_entangled data (seed 0): the run folder, each
    method's rank-1 change against ArcFace, and how much age each method's test embeddings carry (R²)."""
    out = tmp_path_factory.mktemp("aifr-known")
    cache = tmp_path_factory.mktemp("aifr-cache")
    outcomes = run_setting(overrides=TOY_OVERRIDES, out_dir=out, cache_dir=cache)
    r2 = embedding_age_r2(out, dataset_table(overrides=TOY_OVERRIDES, cache_dir=cache))
    return out, {row.method: row for row in rank1_changes(outcomes, n_boot=500)}, r2


@pytest.mark.slow
def test_clubs_mutual_information_estimate_falls_over_training(trained) -> None:
    """results.json's per-epoch ``mi_club`` (eq. 3 on the training batches): mean of the first three epochs vs the
    last three, seeds 0-2: 120 -> 77, 123 -> 81, 109 -> 70 nats (epoch 1 is lower, q_σ not yet fitted)."""
    history = mi_history(trained[0])
    assert len(history) == 20 and history["mi_club"].notna().all() and history["val_mi_club"].notna().all()
    assert history["mi_club"].head(3).mean() > 1.2 * history["mi_club"].tail(3).mean()


@pytest.mark.slow
def test_every_method_is_scored_on_the_same_people(trained) -> None:
    changes = trained[1]
    assert set(changes) == {REFERENCE_METHOD, AGE_METHOD, MTMIM_METHOD}
    assert {row.n_people for row in changes.values()} == {100}
    assert changes[REFERENCE_METHOD].change == 0.0
    assert all(0.0 <= row.rank1 <= 1.0 for row in changes.values())


@pytest.mark.slow
def test_arcface_age_is_no_better_than_arcface(trained) -> None:
    """Rank-1 change of ArcFace + Age against ArcFace at the largest gap (100 people): seed 0 +0.04 [-0.04,
    +0.12], seed 1 -0.04 [-0.10, +0.03], seed 2 +0.00 [-0.06, +0.06]: never significantly better."""
    change = trained[1][AGE_METHOD]
    assert change.ci_low < 0, change


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "measured at toy size (400 people, 32 px, small CNN, 20 epochs, λ_MIM 1e-4 and λ_AGE 0.1 as in the quick "
    "profile), rank-1 change of MT-MIM against ArcFace at the largest gap, 100 people, person bootstrap: seed 0 +0.06 "
    "[-0.02, +0.14], seed 1 -0.01 [-0.10, +0.08], seed 2 -0.02 [-0.09, +0.05] (ArcFace 0.12 / 0.14 / 0.14; 0.26 on "
    "seed 0's data without u). Other weights, seed 0: λ_MIM 0.01 +0.04 [-0.04, +0.12]; λ_MIM 0.1 +0.01 [-0.06, "
    "+0.08] (seed 1: -0.06 [-0.15, +0.03]) although CLUB's estimate falls ~20x to 3-4 nats; λ_AGE 1 -0.01 [-0.07, "
    "+0.05], with λ_MIM 0.1 -0.04 [-0.11, +0.04]. Why: MT-MIM's x_id keeps age (next test): φ stays near its random "
    "initialisation (‖W‖_F 4.1-4.9, 4.6 at init), so x_id = (I − W)x is an invertible map of x and carries what x "
    "carries"))
def test_mtmim_beats_arcface_across_the_largest_age_gap(trained) -> None:
    """The known answer: stripping the shared age direction (x_id = x − φ(x), CLUB) raises rank-1 at the largest
    gap against ArcFace."""
    change = trained[1][MTMIM_METHOD]
    assert change.ci_low > 0, change


@pytest.mark.slow
def test_a_plain_embedding_carries_age_on_this_setting(trained) -> None:
    """Cross-validated R² of age from ArcFace's test embeddings (ridge, folds by person): 0.62 / 0.79 / 0.74 on
    seeds 0-2. The setting does what it is for: identity features that move with age end up in the embedding."""
    assert trained[2][REFERENCE_METHOD] > 0.5, trained[2]


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "measured at toy size, age R² of the test embeddings, MT-MIM's x_id against ArcFace's x: seed 0 0.73 vs 0.62, "
    "seed 1 0.75 vs 0.79, seed 2 0.78 vs 0.74; with λ_MIM 0.1 and λ_AGE 1 (seed 0) still 0.73 vs 0.68 (rough "
    "estimate, other folds). CLUB's estimate of I(x_id; x_age) falls during training, but x_id does not lose age"))
def test_mtmims_identity_feature_carries_less_age_than_arcface(trained) -> None:
    """The mechanism behind the known answer: x_id = x − φ(x) with CLUB on I(x_id; x_age) should carry clearly less
    age than ArcFace's embedding (R² lower by 0.05 or more)."""
    r2 = trained[2]
    assert r2[MTMIM_METHOD] < r2[REFERENCE_METHOD] - 0.05, r2


@pytest.mark.slow
def test_table_rows_name_the_expected_direction(trained) -> None:
    out, changes, _ = trained
    from facebench.known_answers.aifr import read_outcomes

    rows = {row["method"]: row for row in table_rows(read_outcomes(out), n_boot=200)}
    assert rows[MTMIM_METHOD]["expected"] == EXPECTED[MTMIM_METHOD] and rows[REFERENCE_METHOD]["expected"] == "-"
    assert rows[MTMIM_METHOD]["rank1"] == changes[MTMIM_METHOD].rank1
    assert all(row["setting"] == "age_entangled" and row["n_people"] == 100 for row in rows.values())
