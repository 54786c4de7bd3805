"""Face-recognition baselines of seed 002: margin heads, CLUB, MT-MIM's step schedule, training, dlib."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facebench.baselines.base import FitData
from facebench.baselines.face_recognition import (
    MTMIM,
    ArcFace,
    ArcFaceAge,
    FaceEmbedder,
    FaceFitData,
    GaussianCLUB,
    MarginSoftmax,
    age_groups,
    balanced_age_edges,
)
from facebench.baselines.training import LoopConfig, StepContext
from facebench.errors import UserInputError
from facebench.protocol import load_protocol

PROTOCOL = Path(__file__).resolve().parent.parent / "protocols" / "age_utk_cross_ethnicity.yaml"
SIZE = 16


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny nets: see conftest


def _protocol(*extra: str):
    """The baselines only read the protocol's model section (training settings come in the LoopConfig), so any
    protocol file serves."""
    return load_protocol(PROTOCOL, overrides=["model.backbone=small_cnn", "model.pretrained=null",
                                              f"model.image_size={SIZE}", "training.device=cpu",
                                              "training.optimizer=adam", "training.lr=0.003",
                                              "training.weight_decay=0", "training.lr_schedule=constant", *extra])


def _loop(epochs: int, batch_size: int = 24, seed: int = 3) -> LoopConfig:
    return LoopConfig(epochs=epochs, batch_size=batch_size, seed=seed, optimizer="adam", lr=0.003, weight_decay=0.0,
                      device="cpu", hflip=False, progress=False)


def _faces(n_ids: int, per_id: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic 'faces': a fixed smooth pattern per identity plus a strong shared age pattern and noise.

    The age pattern is larger than the identity pattern, so an untrained network groups images by age
    more than by identity; only identity supervision separates the identities.
    """
    rng = np.random.default_rng(1234)  # the identities and the age pattern are the same in every call
    coarse = rng.normal(size=(n_ids, 3, 4, 4))
    id_patterns = np.kron(coarse, np.ones((1, 1, SIZE // 4, SIZE // 4)))
    age_pattern = np.kron(rng.normal(size=(1, 3, 2, 2)), np.ones((1, 1, SIZE // 2, SIZE // 2)))[0]
    sample = np.random.default_rng(seed)
    subjects = np.repeat(np.arange(n_ids), per_id)
    ages = sample.uniform(5, 75, size=len(subjects))
    images = (128 + 15 * id_patterns[subjects] + 60 * ((ages - 40) / 35)[:, None, None, None] * age_pattern
              + sample.normal(0, 12, size=(len(subjects), 3, SIZE, SIZE)))
    return np.clip(images, 0, 255).astype(np.uint8), subjects, ages


def _fit_data(n_ids: int = 6, per_id: int = 16) -> FaceFitData:
    train, train_subjects, train_ages = _faces(n_ids, per_id, seed=0)
    val, val_subjects, val_ages = _faces(n_ids, 4, seed=1)
    return FaceFitData(train_images=train, train_ages=train_ages, train_subjects=train_subjects, val_images=val,
                       val_ages=val_ages, val_subjects=val_subjects)


def _identity_gap(embeddings: np.ndarray, subjects: np.ndarray) -> float:
    """Mean cosine of same-identity pairs minus mean cosine of different-identity pairs."""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    cos = unit @ unit.T
    same = subjects[:, None] == subjects[None, :]
    off_diagonal = ~np.eye(len(subjects), dtype=bool)
    return float(cos[same & off_diagonal].mean() - cos[~same].mean())


# ----------------------------------------------------------------------------------------- margin heads


def _unit_head(margin_type: str, **kwargs) -> MarginSoftmax:
    head = MarginSoftmax(2, 2, margin_type=margin_type, s=64.0, **kwargs)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 3.0]]))  # the norms must not matter
    return head


# cos θ_0 = 0.5 (θ_0 = π/3) and cos θ_1 = √3/2 for the first feature; cos θ_0 = −0.99 for the second.
FEATURES = torch.tensor([[1.0, math.sqrt(3.0)], [-0.99, math.sqrt(1 - 0.99**2)]]) * torch.tensor([[5.0], [0.3]])
LABELS = torch.tensor([0, 0])


def test_arcface_logits_match_a_hand_computed_example() -> None:
    logits = _unit_head("arcface", m=0.5).logits(FEATURES, LABELS).detach()
    s, m = 64.0, 0.5
    assert logits[0, 0].item() == pytest.approx(s * math.cos(math.pi / 3 + m), abs=1e-4)  # s·cos(θ + m)
    assert logits[0, 1].item() == pytest.approx(s * math.sqrt(3) / 2, abs=1e-4)  # non-target: s·cos θ
    # θ_0 = arccos(−0.99) ≈ 3.00 > π − m: the fallback s·(cos θ − m·sin m), not s·cos(θ + m).
    assert logits[1, 0].item() == pytest.approx(s * (-0.99 - m * math.sin(m)), abs=1e-4)
    assert logits[1, 0].item() != pytest.approx(s * math.cos(math.acos(-0.99) + m), abs=1e-2)
    easy = _unit_head("arcface", m=0.5, easy_margin=True).logits(FEATURES, LABELS).detach()
    assert easy[0, 0].item() == pytest.approx(s * math.cos(math.pi / 3 + m), abs=1e-4)
    assert easy[1, 0].item() == pytest.approx(s * -0.99, abs=1e-4)  # cos θ ≤ 0: no margin at all
    # The loss is the cross-entropy of those logits.
    head = _unit_head("arcface", m=0.5)
    a, b = s * math.cos(math.pi / 3 + m), s * math.sqrt(3) / 2
    assert head(FEATURES[:1], LABELS[:1]).item() == pytest.approx(-a + math.log(math.exp(a) + math.exp(b)), rel=1e-5)


def test_cosface_logits_match_a_hand_computed_example() -> None:
    logits = _unit_head("cosface", m=0.35).logits(FEATURES, LABELS).detach()
    assert logits[0, 0].item() == pytest.approx(64 * (0.5 - 0.35), abs=1e-4)
    assert logits[0, 1].item() == pytest.approx(64 * math.sqrt(3) / 2, abs=1e-4)
    assert logits[1, 0].item() == pytest.approx(64 * (-0.99 - 0.35), abs=1e-4)


def test_margin_defaults_and_gradients_are_finite() -> None:
    assert MarginSoftmax(4, 3).m == 0.5 and MarginSoftmax(4, 3, margin_type="cosface").m == 0.35
    head = MarginSoftmax(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], requires_grad=True)  # cos θ = ±1 exactly
    head(x, torch.tensor([0, 0])).backward()
    assert torch.isfinite(x.grad).all()


# ------------------------------------------------------------------------------------------------ CLUB


def _gaussians(n: int, rho: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, 4, generator=generator)
    y = rho * x + math.sqrt(1 - rho**2) * torch.randn(n, 4, generator=generator)
    return x, y


@pytest.mark.parametrize("estimator", ["pairs", "sample"])
def test_club_is_near_zero_for_independent_and_positive_for_correlated_gaussians(estimator: str) -> None:
    estimates = {}
    for rho in (0.0, 0.9):
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(1)
        club = GaussianCLUB(4, 4, hidden=16)
        optimizer = torch.optim.Adam(club.parameters(), lr=1e-2)
        x, y = _gaussians(1024, rho, generator)
        for _ in range(250):  # fit q(y | x) by maximum likelihood
            optimizer.zero_grad()
            (-club.log_likelihood(x, y)).backward()
            optimizer.step()
        x_new, y_new = _gaussians(4096, rho, generator)  # estimate on fresh samples
        with torch.no_grad():
            estimates[rho] = club.mi_upper_bound(x_new, y_new, estimator=estimator, generator=generator).item()
    # True MI: 0 and 4 · (−½ log(1 − 0.81)) = 3.32 nats; CLUB is an upper bound when q is good.
    assert abs(estimates[0.0]) < 0.15
    assert estimates[0.9] > 2.0


def test_club_pairs_estimator_is_equation_3_over_all_pairs() -> None:
    torch.manual_seed(0)
    club = GaussianCLUB(3, 2, hidden=8)
    x, y = torch.randn(7, 3), torch.randn(7, 2)
    with torch.no_grad():
        mu, logvar = club.mu(x), club.logvar(x)

        def log_q(i: int, j: int) -> float:  # log q(y_j | x_i), the full Gaussian density
            return float((-0.5 * ((y[j] - mu[i]) ** 2 / logvar[i].exp() + logvar[i] + math.log(2 * math.pi))).sum())

        brute = sum(log_q(i, i) - log_q(i, j) for i in range(7) for j in range(7)) / 49
        assert club.mi_upper_bound(x, y, estimator="pairs").item() == pytest.approx(brute, rel=1e-4, abs=1e-5)
        assert club.log_likelihood(x, y).item() == pytest.approx(sum(log_q(i, i) for i in range(7)) / 7, rel=1e-5)


# --------------------------------------------------------------------------------------- MT-MIM step


def test_mtmim_step_runs_five_club_updates_then_one_encoder_update() -> None:
    baseline = MTMIM(protocol=_protocol(), params=MTMIM.Params(embedding_dim=8, age_groups=4, club_hidden=8))
    method, streams = baseline.prepare(_fit_data(), _loop(1, seed=0))
    modules = method.modules()
    optimizers = method.make_optimizers()
    assert set(optimizers) == {"encoder", "club"}
    club_ids = {id(p) for p in method.club.parameters()}
    encoder_ids = {id(p) for group in optimizers["encoder"].param_groups for p in group["params"]}
    assert not club_ids & encoder_ids  # q_σ is never stepped by the encoder's optimiser
    ctx = StepContext(device=torch.device("cpu"), amp=False, optimizers=optimizers,
                      scaler=torch.amp.GradScaler("cpu", enabled=False))
    calls: list[str] = []
    original = ctx.optimize

    def counting(names, loss, **kwargs):
        calls.append(names if isinstance(names, str) else "+".join(names))
        return original(names, loss, **kwargs)

    ctx.optimize = counting
    batch = next(streams["source"].epoch(batch_size=16, seed=0, epoch=0))
    batch["image"] = batch["image"].float() / 255
    club_before = [p.detach().clone() for p in method.club.parameters()]
    modules.train()
    logs = method.train_step({"source": batch}, ctx)
    assert calls == ["club"] * 5 + ["encoder"]
    assert {"loss", "loss_id", "loss_age", "mi_club"} <= set(logs)
    assert any(not torch.equal(a, b) for a, b in zip(club_before, method.club.parameters(), strict=True))
    assert all(p.requires_grad for p in method.club.parameters())  # switched back on after the encoder term
    method.train_step({"source": batch}, ctx)
    assert calls == (["club"] * 5 + ["encoder"]) * 2
    assert method.end_of_epoch(ctx)["mi_club"] == pytest.approx(logs["mi_club"], abs=10)  # epoch mean exists


# --------------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("cls, extra", [
    (ArcFace, {}),
    (ArcFaceAge, {"age_groups": 4}),
    (MTMIM, {"age_groups": 4, "club_lr": 1e-3, "club_hidden": 16}),
], ids=["arcface", "arcface_age", "mtmim"])
def test_tiny_training_separates_six_identities(cls, extra) -> None:
    data = _fit_data()
    test_images, test_subjects, _ = _faces(6, 5, seed=2)
    pixels = test_images.reshape(len(test_images), -1).astype(float)
    in_pixels = _identity_gap(pixels - pixels.mean(axis=0), test_subjects)  # ≈ 0.13: age dominates the pixels
    baseline = cls(protocol=_protocol(), params=cls.Params(embedding_dim=16, scale=16.0, **extra))
    history = baseline.fit(data, _loop(epochs=12))
    learned = _identity_gap(baseline.predict(test_images), test_subjects)  # ≈ 0.8
    assert learned > 0.4 and learned > in_pixels + 0.3, (in_pixels, learned)
    first, last = history.epochs[0], history.epochs[-1]
    assert last["val_rank1"] > 0.85 and last["val_rank1"] > first["val_rank1"]
    assert last["train_loss_id"] < 0.2 * first["train_loss_id"]
    if cls is MTMIM:
        assert "mi_club" in last and "val_mi_club" in last and math.isfinite(last["mi_club"])
    if cls is not ArcFace:
        assert "train_loss_age" in last


def test_flip_test_doubles_the_embedding_dimension() -> None:
    data = _fit_data(n_ids=3, per_id=4)
    images = data.val_images[:5]
    for flip, width in ((True, 16), (False, 8)):
        baseline = ArcFace(protocol=_protocol(), params=ArcFace.Params(embedding_dim=8, flip_test=flip))
        baseline.prepare(data, _loop(1, seed=0))
        embeddings = baseline.predict(images)
        assert embeddings.shape == (5, width) == (5, baseline.embedding_size) and embeddings.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert baseline.predict(images[:0]).shape == (0, 8)
    # With flips, the halves are f(x) and f(flip(x)) (each scaled by the one norm of the concatenation).
    flipped = ArcFace(protocol=_protocol(), params=ArcFace.Params(embedding_dim=8, flip_test=True))
    flipped.prepare(data, _loop(1, seed=0))
    both = flipped.predict(images)
    mirror = flipped.predict(images[..., ::-1].copy())
    np.testing.assert_allclose(both[:, :8], mirror[:, 8:], atol=1e-5)


def test_mtmim_embeds_the_identity_part() -> None:
    data = _fit_data(n_ids=3, per_id=4)
    baseline = MTMIM(protocol=_protocol(), params=MTMIM.Params(embedding_dim=8, age_groups=3, flip_test=False))
    baseline.prepare(data, _loop(1, seed=0))
    baseline.net.eval()
    x = torch.from_numpy(data.val_images[:4]).float() / 255
    with torch.no_grad():
        base = baseline.net.embedder(x)
        expected = torch.nn.functional.normalize(base - baseline.net.factor(base), dim=1)
    np.testing.assert_allclose(baseline.predict(data.val_images[:4]), expected.numpy(), atol=1e-5)


# ------------------------------------------------------------------------------------------- age groups


def test_balanced_age_groups_from_training_ages() -> None:
    ages = np.random.default_rng(0).gamma(4.0, 8.0, size=8000)  # skewed, as real age distributions are
    edges = balanced_age_edges(ages, 8)
    assert len(edges) == 7 and np.all(np.diff(edges) > 0)
    counts = np.bincount(age_groups(ages, edges), minlength=8)
    assert counts.min() >= 990 and counts.max() <= 1010  # 1000 each
    # Tied integer ages cannot be split: duplicate quantiles are merged into fewer groups.
    tied = np.array([20] * 90 + [30, 40, 50, 60, 70] * 2)
    assert balanced_age_edges(tied, 8).tolist() == sorted(set(balanced_age_edges(tied, 8).tolist()))
    assert len(balanced_age_edges(tied, 8)) < 7


def test_age_head_uses_the_balanced_groups() -> None:
    data = _fit_data()
    baseline = ArcFaceAge(protocol=_protocol(), params=ArcFaceAge.Params(embedding_dim=8, age_groups=5))
    method, streams = baseline.prepare(data, _loop(1, seed=0))
    assert method.age_head.out_features == 5 == len(baseline.age_edges) + 1
    counts = np.bincount(streams["source"].labels["age_group"], minlength=5)
    assert counts.max() - counts.min() <= 1


# ------------------------------------------------------------------------------------- inputs and init


def test_identity_labels_are_required() -> None:
    data = _fit_data()
    plain = FitData(train_images=data.train_images, train_ages=data.train_ages, val_images=data.val_images,
                    val_ages=data.val_ages)
    with pytest.raises(UserInputError, match="FaceFitData"):
        ArcFace(protocol=_protocol(), params=ArcFace.Params()).fit(plain, _loop(1))


def test_init_loads_a_pretrained_embedder(tmp_path: Path) -> None:
    data = _fit_data(n_ids=3, per_id=4)
    source = ArcFace(protocol=_protocol(), params=ArcFace.Params(embedding_dim=8))
    source.prepare(data, _loop(1, seed=5))
    path = tmp_path / "gfd.pt"
    source.save_embedder(path)
    target = MTMIM(protocol=_protocol(), params=MTMIM.Params(embedding_dim=8, age_groups=3, init=str(path)))
    target.prepare(data, _loop(1, seed=6))
    for (name, a), b in zip(source.embedder.state_dict().items(), target.embedder.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    wrong = ArcFace(protocol=_protocol(), params=ArcFace.Params(embedding_dim=4, init=str(path)))
    with pytest.raises(UserInputError, match="does not fit a FaceEmbedder"):
        wrong.prepare(data, _loop(1, seed=0))
    missing = ArcFace(protocol=_protocol(), params=ArcFace.Params(init=str(tmp_path / "nope.pt")))
    with pytest.raises(UserInputError, match="does not exist"):
        missing.prepare(data, _loop(1, seed=0))
    assert isinstance(source.embedder, FaceEmbedder)


# ------------------------------------------------------------------------------------------------- dlib


def test_dlib_missing_gives_one_install_sentence(monkeypatch) -> None:
    from facebench.baselines.dlib_embedder import DlibResNet

    monkeypatch.setitem(sys.modules, "dlib", None)  # makes `import dlib` raise ImportError
    with pytest.raises(UserInputError) as info:
        DlibResNet(protocol=_protocol(), params=DlibResNet.Params())
    message = str(info.value)
    assert 'pip install "facebench[dlib]"' in message and message.count(". ") == 0 and message.endswith(".")


def test_dlib_descriptor_with_whole_image_fallback() -> None:
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    from facebench.baselines.dlib_embedder import DlibResNet

    baseline = DlibResNet(protocol=_protocol(), params=DlibResNet.Params(upsample=0))
    assert baseline.fit(_fit_data(n_ids=2, per_id=2), _loop(1)).epochs == []
    images = np.random.default_rng(0).integers(0, 256, size=(3, 3, 64, 64), dtype=np.uint8)  # no face to find
    embeddings = baseline.predict(images)
    assert embeddings.shape == (3, 128) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert baseline.fallbacks == 3 and baseline.n_embedded == 3
    np.testing.assert_allclose(baseline.predict(images[:1]), embeddings[:1], atol=1e-6)  # deterministic
    assert baseline.fallbacks == 4
