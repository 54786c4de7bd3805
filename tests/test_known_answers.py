"""Seed 000's age methods on known answers (issue 13, age part), at toy size.

The generator's ``covariate`` setting makes the Black faces differ from the White ones only in age-free
appearance (skin), with the same ageing rate; ``concept`` makes them look alike and age at another rate;
``offset`` makes their age cues show ten extra years with differences intact. Source-only, DANN (fc1), MMD (fc1)
and the adapted loop with alignment off (DANN at gamma 0, the control) run through the real runner on covariate
data, and the pairwise model (rank + regression) beside direct regression on offset data. The alignment checks do
not hold at toy size and are marked xfail (strict) with the numbers and the evidence; the offset check asserts its
mechanism. Whether each claim holds at quick size, over seeds, is scripts/method_checks.py's table
(docs/architecture.md, "Known answers of the methods"), which also measures the concept control."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facebench.data.synth.population import (
    AGING_RATES,
    DEFAULT_GROUPS,
    OFFSET_YEARS,
    REFERENCE_GROUP,
    SynthConfig,
    known_answer_groups,
    sample_population,
)
from facebench.data.synth.render import cue_age, render_faces
from facebench.data.synth.utkface import manifest
from facebench.errors import UserInputError
from facebench.known_answers.age import (
    CONTROL_METHOD,
    DIRECT_METHOD,
    SOURCE_ONLY,
    TOY_OVERRIDES,
    GroupChange,
    check,
    group_changes,
    read_outcomes,
    run_check,
)
from facebench.metrics.paired import paired_difference
from facebench.registry import DATASETS
from facebench.reports.bias_report import write_protocol_report
from facebench.synthetic_truth import SHIFT_MEANINGS, injected_effect

ADAPTED = ("dann fc1", "mmd fc1")

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny nets: see conftest


# ------------------------------------------------------------------------------------- the generator


def test_default_shift_leaves_configs_and_fingerprints_as_they_were() -> None:
    config = SynthConfig()
    assert config.groups == DEFAULT_GROUPS and "shift" not in config.to_dict()
    assert config.fingerprint() == "f99db91ef3dabae0" + config.fingerprint()[16:]  # the value before the setting
    assert SynthConfig(shift="covariate").fingerprint() != config.fingerprint()


def test_covariate_shift_changes_looks_only_and_concept_shift_ageing_only() -> None:
    covariate = {g.name: g for g in known_answer_groups(DEFAULT_GROUPS, "covariate")}
    concept = {g.name: g for g in known_answer_groups(DEFAULT_GROUPS, "concept")}
    white = covariate[REFERENCE_GROUP]
    assert {g.aging_rate for g in covariate.values()} == {white.aging_rate}
    assert covariate["black"].skin_lightness < white.skin_lightness - 0.5
    assert {g.aging_rate for g in concept.values()} == set(AGING_RATES.values())
    looks = ("skin_lightness", "skin_lightness_sd", "skin_warmth", "hair_palette", "light_eye_prob")
    assert all(getattr(g, k) == getattr(white, k) for g in concept.values() for k in looks)
    offset = {g.name: g for g in known_answer_groups(DEFAULT_GROUPS, "offset")}
    assert {g.aging_rate for g in offset.values()} == {white.aging_rate}
    assert all(getattr(g, k) == getattr(white, k) for g in offset.values() for k in looks)
    assert {name: g.cue_age_offset for name, g in offset.items() if g.cue_age_offset} == {
        name: OFFSET_YEARS for name in offset if name != REFERENCE_GROUP}
    for shift in ("covariate", "concept", "offset"):  # idempotent: a config rebuilt from its recorded groups is the same
        groups = known_answer_groups(DEFAULT_GROUPS, shift)
        assert known_answer_groups(groups, shift) == groups
    # Rendered faces: on covariate data the cue age is the true age's for every group, so looks carry no age.
    population = sample_population(SynthConfig(n=2000, shift="covariate"))
    adults = population[population["age"] > 18]
    assert np.allclose(adults["cue_age"], adults["age"])
    black = population[population["race"] == "black"]
    assert abs(np.corrcoef(black["skin_lightness"], black["age"])[0, 1]) < 0.1
    # On offset data every non-reference face's cues show OFFSET_YEARS more than its age, the reference's none.
    population = sample_population(SynthConfig(n=500, shift="offset"))
    extra = population["cue_age"] - cue_age(population["age"], population["aging_rate"])
    assert np.allclose(extra, np.where(population["race"] == REFERENCE_GROUP, 0.0, OFFSET_YEARS))


def test_offset_shift_renders_older_looking_faces_and_default_faces_unchanged() -> None:
    """The renderer reads the offset (a face of age 30 with +10 renders as one of 40) and a table without the
    column renders exactly as before the setting existed."""
    table = sample_population(SynthConfig(n=2, seed=3)).assign(age=30, aging_rate=1.0)
    older = render_faces(table.assign(cue_age_offset=10.0), size=24)
    same_as_40 = render_faces(table.assign(cue_age_offset=0.0, age=40), size=24)
    plain = render_faces(table.drop(columns=["cue_age_offset"]), size=24)
    assert not np.array_equal(older, plain)
    assert np.array_equal(plain, render_faces(table, size=24))
    # age 40 also changes the child and hair-length terms, which are flat above 18: the same pixels
    assert np.array_equal(older, same_as_40)


def test_shift_is_validated_and_recorded() -> None:
    spec = DATASETS.get("utkface")
    with pytest.raises(UserInputError, match=r"shift must be one of \['default', 'covariate', 'concept', 'offset'\]"):
        spec.synthetic_settings(n=10, seed=0, image_size=16, options={"shift": "sideways"}, what="dataset.synthetic")
    config = spec.synthetic_settings(n=10, seed=0, image_size=16, options={"shift": "concept"}, what="x")
    recorded = json.loads(json.dumps(manifest(config)))
    assert recorded["shift"] == "concept" and recorded["config"]["shift"] == "concept"
    assert SynthConfig(**{**recorded["config"], "groups": config.groups}).fingerprint() == recorded["fingerprint"]
    effect = injected_effect(recorded)
    assert effect["shift"] == "concept" and effect["aging_rate"] == AGING_RATES
    assert injected_effect({"config": {"groups": []}})["shift"] == "default"  # manifests from before the setting


# ------------------------------------------------------------------------------------- the methods


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Each setting's run folder (holding the protocol's folder of runs), seed 0. The pairwise check runs its
    rank + regression model only (the regression-only variant adds a minute and nothing to the known answer). The
    concept setting, the negative control, is measured where it can be, over five seeds at quick size
    (scripts/method_checks.py; docs/architecture.md): at toy size it only costs a minute of suite time."""
    cache = tmp_path_factory.mktemp("known-answer-cache")
    folders = {}
    for name, shift in (("alignment", "covariate"), ("pairwise", "offset")):
        folders[shift] = tmp_path_factory.mktemp(shift)
        run_check(check(name, shift), overrides=TOY_OVERRIDES, out_dir=folders[shift], cache_dir=cache,
                  only=None if name == "alignment" else ("rank + regression",))
    return folders


@pytest.fixture(scope="module")
def measured(runs) -> dict[tuple[str, str], dict[str, GroupChange]]:
    """(setting, reference) -> method -> its Black-face MAE change against the reference on the same images."""
    references = {"covariate": (SOURCE_ONLY, CONTROL_METHOD), "offset": (DIRECT_METHOD,)}
    return {(shift, reference): {row.method: row for row in group_changes(read_outcomes(out), shift=shift,
                                                                          reference=reference)}
            for shift, out in runs.items() for reference in references[shift]}


@pytest.mark.slow
def test_report_names_the_shift_kind(runs) -> None:
    for shift, out in runs.items():
        (protocol_dir,) = [p for p in out.iterdir() if p.is_dir()]
        report = write_protocol_report(protocol_dir).read_text(encoding="utf-8")
        assert f"Shift kind: {shift} — {SHIFT_MEANINGS[shift]}." in report


@pytest.mark.slow
def test_covariate_shift_hurts_source_only(runs) -> None:
    """The setting does what it says: the age-free looks shift doubles source-only's MAE on the target group
    against the training group's (seed 0: Black 9.91, White 4.99; on concept data, where the Black faces look
    White and age at 0.95, source-only's Black MAE was 4.94)."""
    errors = read_outcomes(runs["covariate"])[SOURCE_ONLY].groupby("race")["abs_error"].mean()
    assert errors["black"] > 1.5 * errors["white"], errors


@pytest.mark.slow
@pytest.mark.parametrize("method", ADAPTED)
@pytest.mark.xfail(strict=True, reason=(
    "measured at toy size, change in Black-face MAE with alignment on vs off (same loop, gamma 0), years: seed 0 "
    "DANN -0.06 [-0.14, +0.01], MMD -0.12 [-0.29, +0.06]; seed 1 DANN +0.09 [-0.03, +0.21], MMD +0.17 "
    "[+0.02, +0.31]; seed 2 DANN +0.14 [+0.00, +0.27], MMD -0.28 [-0.43, -0.14]. Cause (docs/architecture.md, "
    "'Known answers'): the covariate target error is a conditional shift, Black children read as adults (signed "
    "error +17 to +27 years at 0-14 against +1.8 for White children), which matching the marginal feature "
    "distributions does not undo; gamma 1-10, conv or fc1, one or five kernels, adversary lr 0.001-0.1 all leave "
    "Black MAE within 0.3 years of alignment off, and DANN's discriminator loss stays near ln 2"))
def test_alignment_lowers_target_mae_under_covariate_shift(measured, method: str) -> None:
    """The known answer: on age-free appearance shift, aligning features lowers target MAE against the same
    training loop without the alignment term."""
    change = measured["covariate", CONTROL_METHOD][method]
    assert change.ci_high < 0, change


def _adult_bias(out: Path, method: str) -> pd.DataFrame:
    """Signed error (prediction − age) of ``method``'s adult (18-60) test faces, with their group."""
    frame = read_outcomes(out)[method]
    return frame[frame["y_true"].between(18, 60)].set_index("sample_id")[["race", "error"]]


@pytest.mark.slow
def test_offset_biases_direct_regression_and_anchors_remove_the_bias(runs) -> None:
    """The mechanism of the pairwise known answer, at toy size: the offset makes direct regression read Black
    adults about OFFSET_YEARS older than White ones (seed 0: +7.7 against +0.1 years, mean signed error at 18-60),
    and the pairwise model's two labelled Black anchors bring the Black level most of the way back (seed 0: +3.3,
    White -1.3; what remains is the toy pairwise model's compression of differences towards the anchors). Whether that also
    lowers MAE (pairwise's own error is larger at toy size: 7.6 against 4.9 on White) is measured at quick size
    by scripts/method_checks.py."""
    direct = _adult_bias(runs["offset"], DIRECT_METHOD)
    pairwise = _adult_bias(runs["offset"], "rank + regression")
    gap = direct[direct.race == "black"]["error"].mean() - direct[direct.race == "white"]["error"].mean()
    assert gap > 0.5 * OFFSET_YEARS, gap
    black = direct.index[direct.race == "black"].intersection(pairwise.index)
    change = paired_difference(direct.loc[black, "error"].to_numpy(), pairwise.loc[black, "error"].to_numpy(), n_boot=1000)
    assert change.ci_high < -0.25 * OFFSET_YEARS, change
