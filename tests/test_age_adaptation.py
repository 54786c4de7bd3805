"""Domain adaptation terms of seed 000 (equations 2-4); the no-target-label guarantee is in test_leakage.py."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from facebench.baselines.age_regression import (
    DANN,
    MMD,
    GradientReversal,
    gaussian_mmd2,
    grl_coefficient,
    laplacian_smoothness,
    median_bandwidth,
    mk_mmd2,
)
from facebench.baselines.params import PairwiseParams
from facebench.protocol import load_protocol

PROTOCOLS = Path(__file__).resolve().parent.parent / "protocols"


def test_grl_schedule_and_gradient() -> None:
    assert grl_coefficient(0.0) == 0.0
    assert grl_coefficient(0.5) == pytest.approx(2 / (1 + np.exp(-5)) - 1)
    assert grl_coefficient(1.0) == pytest.approx(0.99990920, abs=1e-8)
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    (GradientReversal.apply(x, 0.25) * torch.tensor([3.0, 5.0])).sum().backward()
    assert x.grad.tolist() == [-0.75, -1.25]


def _mmd_transcription(s: np.ndarray, t: np.ndarray, n_kernels: int = 5, multiplier: float = 2.0) -> float:
    pooled = np.concatenate([s, t])
    d = ((pooled[:, None, :] - pooled[None, :, :]) ** 2).sum(-1)
    n = len(pooled)
    base = d.sum() / (n * n - n)
    k = sum(np.exp(-d / (base * multiplier ** (i - n_kernels // 2))) for i in range(n_kernels))
    m = len(s)
    return float(k[:m, :m].mean() + k[m:, m:].mean() - 2 * k[:m, m:].mean())


def test_mk_mmd_matches_a_direct_transcription_and_detects_shift() -> None:
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(12, 4)), rng.normal(loc=1.5, size=(10, 4))
    ours = float(mk_mmd2(torch.tensor(s), torch.tensor(t)))
    assert ours == pytest.approx(_mmd_transcription(s, t), rel=1e-5)
    same = rng.normal(size=(200, 4))
    assert float(mk_mmd2(torch.tensor(same[:100]), torch.tensor(same[100:]))) < 0.1 * ours


def test_single_gaussian_mmd_matches_a_hand_worked_example() -> None:
    # source {0, 1}, target {3} on a line: pairwise distances 1, 3, 2 -> median heuristic σ = 2, 2σ² = 8;
    # MMD² = mean k(s, s') + mean k(t, t') − 2 mean k(s, t)
    #      = (1 + 1 + 2 e^{-1/8}) / 4 + 1 − 2 (e^{-9/8} + e^{-4/8}) / 2
    expected = (2 + 2 * math.exp(-1 / 8)) / 4 + 1 - (math.exp(-9 / 8) + math.exp(-4 / 8))
    s, t = torch.tensor([[0.0], [1.0]]), torch.tensor([[3.0]])
    assert float(median_bandwidth(torch.cdist(torch.cat([s, t]), torch.cat([s, t])).pow(2))) == pytest.approx(2.0)
    assert float(gaussian_mmd2(s, t)) == pytest.approx(expected, rel=1e-6)
    assert float(gaussian_mmd2(s, t, sigma=2.0)) == pytest.approx(expected, rel=1e-6)


def _gaussian_mmd_numpy(s: np.ndarray, t: np.ndarray) -> float:
    pooled = np.concatenate([s, t])
    d = np.sqrt(((pooled[:, None, :] - pooled[None, :, :]) ** 2).sum(-1))
    sigma = np.median(d[np.triu_indices(len(pooled), 1)])  # an odd number of pairs: one median
    k = np.exp(-(d**2) / (2 * sigma**2))
    m = len(s)
    return float(k[:m, :m].mean() + k[m:, m:].mean() - 2 * k[:m, m:].mean())


def test_single_gaussian_mmd_matches_numpy_and_detects_shift() -> None:
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(7, 4)), rng.normal(loc=1.5, size=(7, 4))  # 14 points: 91 pairs
    ours = float(gaussian_mmd2(torch.tensor(s), torch.tensor(t)))
    assert ours == pytest.approx(_gaussian_mmd_numpy(s, t), rel=1e-5)
    same = rng.normal(size=(200, 4))
    assert float(gaussian_mmd2(torch.tensor(same[:100]), torch.tensor(same[100:]))) < 0.1 * ours


def test_paper_settings_are_the_defaults() -> None:
    # seed 000 section 4.2: "learning rate 1e-3 ... we use that for all our models" (the adversary too);
    # section 3.6.2: "For mmd, we use gausian kernel" (one kernel; the multi-kernel sum is a named variant)
    assert DANN.Params().adversary_lr == 1e-3
    assert PairwiseParams().adversary_lr == 1e-3
    assert MMD.Params().kernel == "gaussian"
    assert MMD.Params(kernel="multi_gaussian").kernel == "multi_gaussian"
    assert DANN.Params(adversary_lr=0.01).adversary_lr == 0.01  # still settable
    with pytest.raises(ValueError):
        MMD.Params(kernel="laplacian")
    for profile in ("paper", "quick"):
        protocol = load_protocol(PROTOCOLS / "age_utk_dann_vs_mmd.yaml", profile=profile)
        params = {"source_only": DANN.Params, "dann": DANN.Params, "mmd": MMD.Params}
        resolved = {b.display_name: params[b.name].model_validate(b.params) for b in protocol.baselines}
        assert resolved["dann fc1"].adversary_lr == 1e-3
        assert resolved["mmd fc1"].kernel == "gaussian"


def test_laplacian_smoothness_is_equation_2_with_weights_of_equation_3() -> None:
    rng = np.random.default_rng(1)
    images = torch.tensor(rng.random((4, 3, 16, 16)), dtype=torch.float32)
    f = torch.tensor([10.0, 12.0, 30.0, 31.0])
    sigma = 3.0
    x = images.flatten(1).numpy().astype(float)
    expected = 0.0
    for i in range(4):
        for j in range(4):
            w = np.exp(-((x[i] - x[j]) ** 2).sum() / (2 * sigma**2))
            expected += 0.5 * w * float(f[i] - f[j]) ** 2
    assert float(laplacian_smoothness(images, f, sigma=sigma)) == pytest.approx(expected / 16, rel=1e-4)
