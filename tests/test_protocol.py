"""Protocol schema: profiles, overrides, and one-sentence errors that name the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from facebench.cli import main
from facebench.errors import UserInputError
from facebench.protocol import builtin_protocols, load_protocol, parse_override, validate_all_profiles
from facebench.results import Run

AGE = Path(__file__).resolve().parent.parent / "protocols" / "age_utk_cross_ethnicity.yaml"


def _variant(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load(AGE.read_text())
    edit(raw)
    path = tmp_path / "protocol.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_builtin_protocols_validate_with_every_profile() -> None:
    assert AGE.name in [p.name for p in builtin_protocols()]  # the installed copy, or the checkout (editable)
    profiles = {p.profile: p for p in validate_all_profiles(AGE)}
    assert set(profiles) == {"paper", "quick"}
    paper, quick = profiles["paper"], profiles["quick"]
    # The paper profile is the published setting of seed 000 (section 4.2).
    assert (paper.model.backbone, paper.model.image_size) == ("resnet50", 200)
    assert (paper.training.lr, paper.training.batch_size, paper.training.optimizer, paper.training.loss) == (0.001, 16, "adam", "l1")
    assert (quick.model.backbone, quick.model.image_size) == ("small_cnn", 64)


@pytest.mark.parametrize("name", ["aifr_morph", "aifr_cacd", "aifr_cacd_vs", "aifr_fgnet", "aifr_agedb30_bin",
                                  "aifr_agedb30"])
def test_seed_002_paper_profiles_divide_the_lr_by_10_on_plateaus(name: str) -> None:
    # seed 002 section 4.1: lr 0.02, "divided by 10 when the loss does not decrease"
    training = load_protocol(AGE.parent / f"{name}.yaml", profile="paper").training
    assert (training.lr, training.lr_schedule, training.plateau_factor) == (0.02, "plateau", 0.1)
    assert (training.plateau_metric, training.plateau_mode, training.plateau_patience) == ("train_loss", "min", 0)
    quick = load_protocol(AGE.parent / f"{name}.yaml", profile="quick").training
    assert quick.lr_schedule == "cosine"


def test_fgnet_carries_table_5s_megaface_challenge_2_column() -> None:
    from facebench.reports.bias_report import paper_table

    reference = load_protocol(AGE.parent / "aifr_fgnet.yaml").reference
    mf2 = {(r.method, r.baseline): r.value for r in reference if r.metric == "rank1_mf2"}
    assert mf2 == {("Baseline (ArcFace)", "arcface"): 0.6026, ("+Age", "arcface_age"): 0.6004, ("MT-MIM", "mtmim"): 0.6112}
    assert all(r.source == "seed 002 Table 5" and "MegaFace Challenge 2" in r.setting
               for r in reference if r.metric == "rank1_mf2")
    # its own column beside leave-one-out rank-1, which keeps Tables 3 and 5's numbers; our runs leave MF2 empty
    run = Run(results_path=Path("results.json"), outcomes_path=Path("outcomes.csv"), results={
        "baseline": {"name": "arcface", "label": "arcface"}, "data": {"synthetic": True},
        "protocol": {"profile": "quick"}, "metrics": {"overall": {"rank1": {"value": 0.5}}, "by_group": {}}})
    table = paper_table([run], [r.model_dump() for r in reference])
    assert table["headers"] == ["rank1 overall", "rank1_mf2 overall"]
    assert {r["method"]: r["cells"] for r in table["published"]} == {
        "MT-MIM": [0.9421, 0.6112], "Baseline (ArcFace)": [0.9320, 0.6026], "+Age": [0.9340, 0.6004]}
    assert table["measured"][0]["cells"] == [{"value": 0.5}, None]


def test_plateau_settings_validate() -> None:
    training = load_protocol(AGE, overrides=["training.lr_schedule=plateau", "training.plateau_metric=val_mae",
                                             "training.plateau_patience=3"]).training
    assert (training.lr_schedule, training.plateau_metric, training.plateau_patience) == ("plateau", "val_mae", 3)
    for bad in ("training.lr_schedule=step", "training.plateau_mode=up", "training.plateau_factor=1.5",
                "training.plateau_patience=-1"):
        with pytest.raises(UserInputError):
            load_protocol(AGE, overrides=[bad])


def test_default_profile_is_quick_and_overrides_apply() -> None:
    protocol = load_protocol(AGE, overrides=["training.epochs=3", "model.head_hidden=[32]", "baselines.0.name=source_only"])
    assert protocol.profile == "quick"
    assert protocol.training.epochs == 3
    assert protocol.model.head_hidden == (32,)


def test_fingerprint_changes_with_settings() -> None:
    assert load_protocol(AGE).fingerprint() == load_protocol(AGE).fingerprint()
    assert load_protocol(AGE).fingerprint() != load_protocol(AGE, overrides=["training.epochs=2"]).fingerprint()


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("training.epoch=3", "unknown key 'training.epoch' (did you mean 'epochs'?)"),
        ("trainng.epochs=3", "unknown key 'trainng' (did you mean 'training'?)"),
        ("training.epochs=many", "key 'training.epochs'"),
        ("training.optimizer=lbfgs", "key 'training.optimizer'"),
        ("baselines.0.name=source_onyl", "(did you mean 'source_only'?)"),
        ("baselines.0.params.gamma=1", "unknown key 'baselines[0].params.gamma'"),
        ("baselines.0.name=arcface", "baseline 'arcface' is a face_recognition method and cannot run task 'age_regression'"),
        ("evaluation.metrics=[mae,maee]", "key 'evaluation.metrics[1]': unknown metric 'maee' (did you mean 'mae'?)"),
        ("evaluation.primary_metric=rmse", "key 'evaluation.primary_metric'"),
        ("dataset.name=utkfce", "key 'dataset.name'"),
        ("split.name=cross_ethnicty", "(did you mean 'cross_ethnicity'?)"),
        ("model.backbone=resnt50", "unknown backbone 'resnt50' (did you mean 'resnet50'?)"),
        ("groups.attributes=[race,gendr]", "unknown attribute 'gendr' (did you mean 'gender'?)"),
        ("groups.age_bands=[10,5]", "key 'groups.age_bands'"),
    ],
)
def test_bad_settings_are_one_sentence_naming_file_and_key(override: str, expected: str) -> None:
    with pytest.raises(UserInputError) as info:
        load_protocol(AGE, overrides=[override])
    message = str(info.value)
    assert expected in message
    assert str(AGE) in message
    assert message.endswith(".") and "\n" not in message


def test_misspelt_key_in_file_fails_with_exit_2(tmp_path: Path, capsys) -> None:
    path = _variant(tmp_path, lambda raw: raw["training"].__setitem__("batchsize", 8))
    assert main(["protocols", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'training.batchsize' (did you mean 'batch_size'?)" in err
    assert str(path) in err


def test_misspelt_baseline_in_file_fails_with_exit_2(tmp_path: Path, capsys) -> None:
    path = _variant(tmp_path, lambda raw: raw["baselines"][0].__setitem__("name", "sourceonly"))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "did you mean 'source_only'?" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unknown_profile_and_missing_profiles(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="unknown profile 'papr' \\(did you mean 'paper'\\?\\)"):
        load_protocol(AGE, profile="papr")
    path = _variant(tmp_path, lambda raw: raw["profiles"].pop("paper"))
    with pytest.raises(UserInputError, match="at least 'paper' and 'quick'"):
        validate_all_profiles(path)


def test_missing_required_key_and_bad_yaml(tmp_path: Path) -> None:
    path = _variant(tmp_path, lambda raw: raw.pop("task"))
    with pytest.raises(UserInputError, match="required key 'task' is missing"):
        load_protocol(path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n  version: [1\n")
    with pytest.raises(UserInputError, match="not valid YAML at line"):
        load_protocol(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(UserInputError, match="must be a YAML mapping"):
        load_protocol(listy)
    with pytest.raises(UserInputError, match="does not exist"):
        load_protocol(tmp_path / "nope.yaml")


def test_override_syntax() -> None:
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    with pytest.raises(UserInputError, match="key.path=value"):
        parse_override("training.epochs")
    with pytest.raises(UserInputError, match="not an index"):
        load_protocol(AGE, overrides=["baselines.5.name=source_only"])


def test_bad_cli_flag_exits_2(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", str(AGE), "--epochs", "3"])
    assert info.value.code == 2


# ------------------------------------------------------------------------------------- deviations, stated
SEED_000_ADAPTATION = ("age_utk_da_layers", "age_utk_dann_gamma", "age_utk_dann_pretrained", "age_utk_dann_vs_mmd",
                       "age_utk_pairwise_mds")


def test_every_builtin_protocol_states_its_deviations_for_every_profile() -> None:
    for path in builtin_protocols():
        for protocol in validate_all_profiles(path):
            assert protocol.deviations, (path.name, protocol.profile)
            for deviation in protocol.deviations:
                assert deviation.setting.strip() and deviation.choice.strip()
                assert deviation.kind != "different" or deviation.reason
    # The seed 000 adaptation protocols say that they use the target test images during training or inference.
    for name in SEED_000_ADAPTATION:
        assert any(d.kind == "transductive" for d in load_protocol(name).deviations), name
    # The source-only protocol uses no target image at all.
    assert not any(d.kind == "transductive" for d in load_protocol(AGE).deviations)


def test_deviations_accumulate_across_include_and_profiles(tmp_path: Path) -> None:
    base = [d.setting for d in load_protocol(AGE).deviations]
    (tmp_path / "child.yaml").write_text(
        f"include: {AGE}\nname: child\n"
        "deviations: [{setting: training.epochs, kind: different, choice: '3', reason: 'short'}]\n"
        "profiles:\n  quick:\n    deviations: [{setting: model.backbone, kind: unspecified, choice: 'small'}]\n")
    child = load_protocol(tmp_path / "child.yaml")
    assert [d.setting for d in child.deviations] == [*base, "training.epochs", "model.backbone"]
    assert [d.setting for d in load_protocol(tmp_path / "child.yaml", profile="paper").deviations] == [*base, "training.epochs"]


def test_missing_or_empty_deviations_are_one_sentence_naming_file_and_key(tmp_path: Path, capsys) -> None:
    path = _variant(tmp_path, lambda raw: raw.pop("deviations"))
    assert main(["protocols", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: required key 'deviations' is missing." in err
    path = _variant(tmp_path, lambda raw: raw.__setitem__("deviations", []))
    with pytest.raises(UserInputError, match="key 'deviations': must list at least one deviation from the paper") as info:
        load_protocol(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"setting": "x", "kind": "unspecified", "choise": "y"}, "unknown key 'deviations[0].choise' (did you mean 'choice'?)"),
        ({"setting": "x", "kind": "diferent", "choice": "y"}, "key 'deviations[0].kind'"),
        ({"setting": "x", "kind": "different", "choice": "y"}, "key 'deviations[0]': a deviation of kind 'different' needs a 'reason'"),
        ({"kind": "unspecified", "choice": "y"}, "required key 'deviations[0].setting' is missing"),
    ],
)
def test_bad_deviation_entries_fail_with_exit_2(tmp_path: Path, capsys, entry: dict, expected: str) -> None:
    path = _variant(tmp_path, lambda raw: raw.__setitem__("deviations", [entry]))
    assert main(["protocols", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err and str(path) in err


def test_reference_notes_mark_the_papers_inconsistent_rows() -> None:
    notes = {(r.setting, r.split): r.note for r in load_protocol("age_utk_da_layers").reference}
    assert "Table 1" in notes[("No Adaptation", "target")]
    assert "swapped" in notes[("conv+fc123", "target")] and "swapped" in notes[("conv+fc1", "target")]
    assert notes[("fc123", "target")] is None
    assert all(r.note and "Table 1" in r.note for r in load_protocol("age_utk_dann_gamma").reference
               if r.setting == "gamma 1")


def test_the_loader_records_its_overrides_outside_the_fingerprint() -> None:
    plain = load_protocol(AGE)
    same = load_protocol(AGE, overrides=[f"training.epochs={plain.training.epochs}"])
    assert plain.overrides == () and same.overrides == (f"training.epochs={plain.training.epochs}",)
    assert same.fingerprint() == plain.fingerprint()  # the same resolved protocol, however it was written
    assert load_protocol(AGE, overrides=["training.epochs=1"]).fingerprint() != plain.fingerprint()


def test_comparability_conditions_are_validated() -> None:
    with pytest.raises(UserInputError, match="comparability.pretrained.kind"):
        load_protocol(AGE, overrides=["comparability.pretrained.kind=imagenet"])
    with pytest.raises(UserInputError, match="comparability.training_data.dataset"):
        load_protocol(AGE, overrides=["comparability.training_data.dataset=utkfaces"])
    with pytest.raises(UserInputError, match="comparability.pairs"):
        load_protocol(AGE, overrides=["comparability.pairs={source: seeded, paper: x}"])
