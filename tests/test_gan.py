"""Issue 15: the generative family. The loss terms of StarGAN (seed 001 section 3) and AcGAN (seed 004) against
hand-worked values, exact resume, the set metrics (FID, KID) against an explicit resample, the verifier threshold,
the predictions format, and a toy-size end-to-end run of each protocol (with the report and the study manifest)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from facebench.baselines.acgan import AcGAN, age_group_of, attention_loss, compose, total_variation
from facebench.baselines.gan import gradient_penalty
from facebench.baselines.params import AcGANParams, StarGANParams
from facebench.baselines.stargan import StarGAN, attribute_loss, linear_decay
from facebench.baselines.training import LoopConfig
from facebench.cli import main
from facebench.errors import UserInputError
from facebench.fit_data import GenerationFitData
from facebench.metrics.generation import SetDistance, fid, polynomial_kernel
from facebench.protocol import load_protocol
from facebench.tasks.generation import FACE_GENERATION, GeneratedFaces, edit_requests, far_threshold

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------------ loss terms


def test_gradient_penalty_of_a_linear_critic_is_the_squared_norm_gap() -> None:
    # D(x) = 0.5 · Σ x over 3 x 2 x 2 pixels: ∇D = 0.5 everywhere, ‖∇D‖ = 0.5 √12 at every x̂, penalty (√3 − 1)²
    critic = lambda x: ((0.5 * x).sum(dim=(1, 2, 3)), None)  # noqa: E731
    real, fake = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    assert float(gradient_penalty(critic, real, fake)) == pytest.approx((3**0.5 - 1) ** 2, rel=1e-6)


def test_gradient_penalty_takes_the_gradient_at_the_interpolate() -> None:
    # D(x) = Σ x²: ∇D(x̂) = 2 x̂. real = 1, fake = 0, ε = (0.25, 1): x̂ = 0.25 and 1 on 4 pixels, ‖∇‖ = 2·x̂·2
    critic = lambda x: ((x**2).sum(dim=(1, 2, 3)), None)  # noqa: E731
    penalty = gradient_penalty(critic, torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2), epsilon=torch.tensor([0.25, 1.0]))
    assert float(penalty.detach()) == pytest.approx(((1.0 - 1) ** 2 + (4.0 - 1) ** 2) / 2)


def test_composition_is_equation_1_attention_keeps_the_input() -> None:
    source, colour = torch.full((1, 3, 2, 2), 0.5), torch.full((1, 3, 2, 2), -1.0)
    attention = torch.tensor([[[[1.0, 0.0], [0.5, 0.25]]]])
    out = compose(attention, colour, source)
    expected = torch.tensor([[0.5, -1.0], [0.5 * -1 + 0.5 * 0.5, 0.75 * -1 + 0.25 * 0.5]])
    assert torch.allclose(out[0, 0], expected) and torch.allclose(out[0, 2], expected)


def test_total_variation_and_attention_loss_against_loops() -> None:
    a = torch.tensor([[[[0.1, 0.4, 0.2], [0.9, 0.3, 0.3]]], [[[0.0, 0.0, 1.0], [1.0, 0.5, 0.0]]]])
    squared = absolute = norm = mean = 0.0
    for image in a[:, 0].tolist():
        for i in range(2):
            for j in range(3):
                if i + 1 < 2:
                    squared += (image[i + 1][j] - image[i][j]) ** 2
                    absolute += abs(image[i + 1][j] - image[i][j])
                if j + 1 < 3:
                    squared += (image[i][j + 1] - image[i][j]) ** 2
                    absolute += abs(image[i][j + 1] - image[i][j])
        norm += sum(v * v for row in image for v in row) ** 0.5
        mean += sum(v for row in image for v in row) / 6
    squared, absolute, norm, mean = squared / 2, absolute / 2, norm / 2, mean / 2
    assert float(total_variation(a, squared=True)) == pytest.approx(squared)
    assert float(total_variation(a, squared=False)) == pytest.approx(absolute)
    # eq. 3 inside λ_att (paper) and the reference code's λ_att·mean(A) + λ_TV·TV₁
    assert float(attention_loss(a, lambda_att=2, lambda_tv=0.1, form="paper")) == pytest.approx(2 * (0.1 * squared + norm))
    assert float(attention_loss(a, lambda_att=2, lambda_tv=0.1, form="reference_code")) == pytest.approx(
        2 * mean + 0.1 * absolute, rel=1e-6)


def test_classification_losses() -> None:
    # eq. 2/3 for binary attributes: −log σ(0) − log(1 − σ(2)) per image, averaged over the batch of 2
    logits, target = torch.tensor([[0.0, 2.0], [0.0, 2.0]]), torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert float(attribute_loss(logits, target)) == pytest.approx(np.log(2) + np.log(1 + np.exp(2.0)), rel=1e-6)
    # AcGAN's groups and its one-hot condition
    assert age_group_of(np.array([9, 20, 21, 30.5, 51, 90]), (10, 21, 31, 41, 51)).tolist() == [0, 0, 1, 1, 4, 4]
    assert AcGAN(protocol=None, params=AcGANParams()).condition({}, {"age": 45}).tolist() == [0, 0, 0, 1, 0]
    with pytest.raises(UserInputError, match="changes a face's age group only"):
        AcGAN(protocol=None, params=AcGANParams()).condition({}, {"Young": 1.0})


def test_stargan_conditions_and_schedule() -> None:
    g = StarGAN(protocol=None, params=StarGANParams(attributes=("Black_Hair", "Blond_Hair", "Young")))
    source = {"Black_Hair": True, "Blond_Hair": False, "Young": False}
    assert g.condition(source, {"Blond_Hair": 1.0}).tolist() == [0.0, 1.0, 0.0]  # the other colour turned off
    assert g.condition(source, {"Young": 1.0}).tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(UserInputError, match="cannot edit 'Bangs'"):
        g.condition(source, {"Bangs": 1.0})
    assert [linear_decay(p, 0.5) for p in (0.25, 0.6, 1.0)] == [1.0, pytest.approx(0.8), 0.0]
    assert linear_decay(0.9, None) == 1.0


# ------------------------------------------------------------------------------------------------ resume


def _tiny_data(n: int = 24, size: int = 16) -> GenerationFitData:
    rng = np.random.default_rng(0)
    labels = pd.DataFrame({"Black_Hair": rng.random(n) < 0.5, "Young": rng.random(n) < 0.5,
                           "age": rng.integers(10, 70, n)})
    images = rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8)
    return GenerationFitData(train_images=images, train_ages=labels["age"].to_numpy(float), val_images=images[:2],
                             val_ages=labels["age"].to_numpy(float)[:2], train_labels=labels, val_labels=labels[:2])


class _Killed(Exception):
    pass


@pytest.mark.parametrize("kind", ["stargan", "acgan"])
def test_resume_after_a_kill_gives_the_weights_of_an_uninterrupted_run(tmp_path: Path, kind: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from facebench.baselines.acgan import AcGANMethod
    from facebench.baselines.stargan import StarGANMethod

    protocol = SimpleNamespace(model=SimpleNamespace(image_size=16))
    small = dict(conv_dim=4, repeat_num=1, d_conv_dim=4, d_repeat_num=2, sample_images=2)
    make = (lambda: StarGAN(protocol=protocol, params=StarGANParams(attributes=("Black_Hair", "Young"), n_critic=2,
                                                                    **small))) if kind == "stargan" else \
        (lambda: AcGAN(protocol=protocol, params=AcGANParams(generator_every=2, **small)))
    method = StarGANMethod if kind == "stargan" else AcGANMethod
    data = _tiny_data()

    def loop(folder: Path) -> LoopConfig:
        return LoopConfig(epochs=3, batch_size=8, seed=3, lr=1e-3, checkpoint_dir=folder, progress=False,
                          fingerprint=kind)

    straight = make()
    expected = straight.fit(data, loop(tmp_path / "straight"))
    step = method.train_step

    def dies_in_epoch_2(self, batches, ctx):
        if ctx.epoch == 1 and ctx.step % 3 == 1:  # the second step of epoch 2: epoch 1's checkpoint exists
            raise _Killed
        return step(self, batches, ctx)

    monkeypatch.setattr(method, "train_step", dies_in_epoch_2)
    with pytest.raises(_Killed):
        make().fit(data, loop(tmp_path / "killed"))
    monkeypatch.setattr(method, "train_step", step)
    resumed = make()
    history = resumed.fit(data, loop(tmp_path / "killed"))
    assert history.resumed_from_epoch == 1
    for a, b in zip(straight.generator.state_dict().values(), resumed.generator.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert [e["train_d_loss"] for e in history.epochs] == [e["train_d_loss"] for e in expected.epochs]
    assert (tmp_path / "straight" / "samples" / "epoch-003.png").is_file()
    faces = resumed.generate(data.train_images[:3], data.train_labels[:3],
                             [{"Young": 1.0}] * 3 if kind == "stargan" else [{"age": 55}] * 3)
    assert faces.shape == (3, 3, 16, 16) and faces.dtype == np.uint8


# ------------------------------------------------------------------------------------------------ set metrics


def _mmd2(fake: np.ndarray, real: np.ndarray) -> float:
    """The unbiased MMD² with KID's kernel, written out: within-set means without the diagonal, cross mean."""
    kf, kr = polynomial_kernel(fake, fake), polynomial_kernel(real, real)
    m, r = len(fake), len(real)
    return ((kf.sum() - np.trace(kf)) / (m * (m - 1)) + (kr.sum() - np.trace(kr)) / (r * (r - 1))
            - 2 * polynomial_kernel(fake, real).mean())


def test_set_distances_equal_an_explicit_resample_and_use_the_groups_reference() -> None:
    rng = np.random.default_rng(1)
    fake, real = rng.normal(size=(60, 5)), rng.normal(0.5, 1.3, size=(40, 5))
    real_cells = np.repeat([0, 1], 20)
    fake_cells = rng.integers(0, 2, 60)
    units = rng.integers(0, 12, 60)
    counts = rng.multinomial(12, [1 / 12] * 12, size=4).astype(float)
    weights = counts[:, units]
    for kind, reference in (("fid", lambda f, r: fid(r, f)), ("kid", _mmd2)):
        metric = SetDistance(kind, "test").bind(fake=fake, real=real, real_cells=real_cells)
        assert metric(fake_cells, np.arange(60.0), np.arange(60)[None])[0] == pytest.approx(reference(fake, real))
        only = fake_cells == 1  # a group whose rows are all of cell 1: compared with cell 1's real faces only
        rows = np.flatnonzero(only)
        value = metric(fake_cells[only], rows.astype(float), np.arange(len(rows))[None])[0]
        assert value == pytest.approx(reference(fake[rows], real[20:]))
        # a cluster-bootstrap draw: every row repeated as often as its person was drawn
        drawn = metric.weighted(fake_cells, np.arange(60.0), weights)
        for b in range(len(weights)):
            expanded = np.repeat(np.arange(60), weights[b].astype(int))
            assert drawn[b] == pytest.approx(reference(fake[expanded], real), rel=1e-9)


def test_far_threshold_on_impostor_pairs() -> None:
    rng = np.random.default_rng(0)
    e = rng.normal(size=(40, 8))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    subjects = np.repeat(np.arange(20).astype(str), 2)
    out = far_threshold(e, subjects, 0.05)
    scores = e @ e.T
    impostor = [scores[i, j] for i in range(40) for j in range(i + 1, 40) if subjects[i] != subjects[j]]
    assert out["n_impostor_pairs"] == len(impostor) == 780 - 20
    assert out["measured_far"] == np.mean(np.array(impostor) >= out["threshold"]) <= 0.05
    assert np.mean(np.array(impostor) >= np.nextafter(out["threshold"], -np.inf)) > 0.05 - 1 / 760
    coarse = far_threshold(e, subjects, 1e-5)
    assert coarse["threshold"] > max(impostor) and coarse["measured_far"] == 0.0 and "cannot resolve" in coarse["note"]


# ------------------------------------------------------------------------------------------------ requests and files


def test_requests_skip_edits_that_change_nothing_and_age_to_older_groups() -> None:
    table = pd.DataFrame({"sample_id": ["a", "b"], "Blond_Hair": [True, False], "Young": [True, False],
                          "Black_Hair": False, "Brown_Hair": False, "Bangs": False, "age": [15, 45]})
    celeba = SimpleNamespace(generation=load_protocol("gan_celeba_realism").generation)
    r = edit_requests(celeba, table, ["a", "b"])
    assert list(zip(r["sample_id"], r["edit"], strict=True)) == [
        ("a", "black hair"), ("a", "brown hair"), ("a", "age"), ("a", "bangs"),
        ("b", "black hair"), ("b", "blond hair"), ("b", "brown hair"), ("b", "age"), ("b", "bangs")]
    assert r["target"][2] == {"Young": 0.0}
    morph = SimpleNamespace(generation=load_protocol("gan_aging_morph").generation)
    r = edit_requests(morph, table, ["a", "b"])
    assert list(r["target_group"]) == ["21-30", "31-40", "41-50", "51+", "51+"]


def test_predictions_file_round_trip_and_one_sentence_refusals(tmp_path: Path) -> None:
    faces = GeneratedFaces(sample_id=np.array(["a", "b"]), edit=np.array(["age", "age"]),
                           images=np.zeros((2, 3, 8, 8), dtype=np.uint8))
    path = tmp_path / "generated.npz"
    FACE_GENERATION.write_predictions(path, ["a", "b"], faces)
    back = FACE_GENERATION.read_predictions(path, ("a", "b"))
    assert back.images.shape == (2, 3, 8, 8) and list(back.edit) == ["age", "age"]
    for arrays, fragment in (
            ({"sample_id": np.array(["a"]), "edit": np.array(["x"]), "images": np.zeros((1, 3, 8, 8))}, "must be uint8"),
            ({"sample_id": np.array(["zz"]), "edit": np.array(["x"]), "images": np.zeros((1, 3, 8, 8), np.uint8)},
             "not in this protocol's test set"),
            ({"sample_id": np.array(["a", "a"]), "edit": np.array(["x", "x"]),
              "images": np.zeros((2, 3, 8, 8), np.uint8)}, "row 1 repeats the edit 'x' of 'a'"),
            ({"sample_id": np.array(["a"]), "images": np.zeros((1, 3, 8, 8), np.uint8)}, "expected exactly")):
        bad = tmp_path / "bad.npz"
        np.savez(bad, **arrays)
        with pytest.raises(UserInputError, match=fragment) as info:
            FACE_GENERATION.read_predictions(bad, ("a", "b"))
        assert "\n" not in str(info.value)


def test_generation_section_belongs_to_the_generation_task() -> None:
    with pytest.raises(UserInputError, match="key 'generation' is only for task face_generation"):
        load_protocol("race_utk_celeba", overrides=["generation.far=0.1"])
    with pytest.raises(UserInputError, match="needs Inception weights"):
        load_protocol("gan_aging_morph", overrides=["evaluation.metrics=[kid@inception, identity_preservation]",
                                                    "evaluation.primary_metric=identity_preservation"])
    with pytest.raises(UserInputError, match="exactly one of 'set'"):
        load_protocol("gan_celeba_realism", overrides=["generation.edits=[{name: x}]"])


# ------------------------------------------------------------------------------------------------ end to end

TOY = {
    "gan_celeba_realism": ["dataset.synthetic.n=80", "dataset.synthetic.image_size=32", "split.params.test_per_domain=40",
                           "model.image_size=16", "baselines.0.params.d_repeat_num=2", "baselines.0.params.conv_dim=8",
                           "baselines.0.params.repeat_num=1", "training.epochs=1", "generation.judges.epochs=1",
                           "generation.judges.embedding_dim=16", "evaluation.n_boot=20", "generation.samples_per_domain=4"],
    "gan_aging_morph": ["dataset.synthetic.n=90", "dataset.synthetic.image_size=32", "split.params.test_fraction=0.3",
                        "model.image_size=16", "baselines.0.params.d_repeat_num=2", "baselines.0.params.conv_dim=8",
                        "baselines.0.params.repeat_num=1", "training.epochs=1", "generation.judges.epochs=1",
                        "generation.judges.embedding_dim=16", "evaluation.n_boot=20", "generation.samples_per_domain=2"],
}


@pytest.mark.parametrize("name", list(TOY))
def test_toy_run_scores_every_metric_per_group_and_writes_the_study_manifest(tmp_path: Path, name: str) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    flags = [flag for setting in TOY[name] for flag in ("--set", setting)]
    assert main(["run", name, "--out", str(out), "--cache-dir", str(cache), *flags, "--no-progress"]) == 0
    (run,) = (out / name).glob("*/results.json")
    results = json.loads(run.read_text())
    metrics = results["metrics"]
    protocol = load_protocol(name, overrides=TOY[name])
    for metric in protocol.evaluation.metrics:  # every metric, overall and per group, with an interval
        value = metrics["overall"][metric]
        assert value["ci_low"] is not None and value["n_units"] > 1
    attribute = "domain" if name == "gan_celeba_realism" else "race"
    assert metrics["disparities"]["kid@verifier"][attribute]["gap_ci_low"] is not None
    assert set(metrics["by_group"][attribute]) >= ({"CelebC", "CelebO"} if attribute == "domain" else {"black", "white"})
    view = metrics["differentials"]
    assert view["verifier_threshold"]["n_impostor_pairs"] > 0 and "verifier_on_real" in view
    if name == "gan_aging_morph":
        assert set(view["generic_ages"]) <= {"10-20", "21-30", "31-40", "41-50", "51+"}
        assert "source_group*target_group" in metrics["by_group"]
    folder = run.parent / "samples"
    with open(folder / "study_manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and set(rows[0]) == {"image", "domain", "group", "source_id"}
    assert len({r["domain"] for r in rows}) >= 2 and all((folder / r["image"]).is_file() for r in rows)
    assert (run.parent / "checkpoints" / "samples" / "epoch-001.png").is_file()
    report = (out / name / "report.html").read_text()
    assert "Generated faces" in report and "data:image/png;base64" in report
    # a submission of the same faces scores the same numbers (the one scoring path)
    predictions = run.parent / "generated.npz"
    assert main(["evaluate", name, "--predictions", str(predictions), "--name", "again", "--out", str(out),
                 "--cache-dir", str(cache), *flags, "--no-progress"]) == 0
    again = json.loads((out / name / "submission-again" / "results.json").read_text())["metrics"]["overall"]
    assert again["kid@verifier"]["value"] == pytest.approx(metrics["overall"]["kid@verifier"]["value"])
    # `compare` pairs the two runs row by row: one row per source face and requested edit
    _compare_the_same_faces(out / name, run.parent, tmp_path, primary=protocol.evaluation.primary_metric)


def _refusal(argv: list[str]) -> tuple[int, str]:
    """Exit code and the start of the one error line (up to its first parenthesis) of a refused command."""
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        code = main(argv)
    (line,) = printed.getvalue().splitlines()  # one sentence, one line
    return code, line.removeprefix("facebench: error: ").split(" (")[0]


def _compare_the_same_faces(protocol_dir: Path, baseline: Path, tmp_path: Path, *, primary: str) -> None:
    """The submission of the baseline's own faces against the baseline: every (sample, edit) row paired, no
    change; a set metric (KID) as the primary metric needs a gate naming a per-sample metric, and is reported
    untested with both point estimates."""
    rows = len(pd.read_csv(baseline / "outcomes.csv"))
    command = ["compare", str(protocol_dir / "submission-again"), "--leaderboard", str(baseline), "--n-boot", "200"]
    markdown = tmp_path / "compare.md"
    if primary == "kid@verifier":
        assert _refusal(command) == (2, "The primary metric 'kid@verifier' is a set metric")
        gates = tmp_path / "gates.yaml"
        gates.write_text("gates:\n  - no_significant_regression: {metric: kid@verifier}\n")
        assert _refusal([*command, "--gate", str(gates)]) == (  # nor can a gate ask for that
            2, f"{gates}: metric 'kid@verifier' of a no_significant_regression gate is a set metric")
        gates.write_text("gates:\n  - no_significant_regression: {metric: identity_similarity}\n"
                         "  - max_metric: {metric: kid@verifier, value: 1.0}\n")
        command += ["--gate", str(gates)]
    assert main([*command, "--markdown", str(markdown)]) == 0
    summary = markdown.read_text()
    assert f"{rows} paired rows (by sample_id + edit)" in summary
    assert "no significant change" in summary and "significantly worse" not in summary.split("### Groups")[0]
    tested = "`identity_similarity`" if primary == "kid@verifier" else f"`{primary}`"
    assert tested in summary.split("### Overall")[1].split("###")[0]
    assert ("set metric" in summary) == (primary == "kid@verifier")
