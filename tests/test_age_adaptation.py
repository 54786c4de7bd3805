"""Domain adaptation terms of seed 000 (equations 2-4) and the no-target-label guarantee."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import facebench.run as run_module
from facebench.baselines.age_regression import (
    GradientReversal,
    grl_coefficient,
    laplacian_smoothness,
    mk_mmd2,
)
from facebench.cli import main

PROTOCOLS = Path(__file__).resolve().parent.parent / "protocols"
SMALL = ["--set", "dataset.synthetic.n=600", "--set", "dataset.synthetic.image_size=64",
         "--set", "dataset.synthetic.render_size=64", "--set", "model.image_size=32",
         "--set", "training.epochs=2", "--set", "evaluation.n_boot=50", "--no-progress"]


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


def test_no_target_label_reaches_training(tmp_path: Path, monkeypatch) -> None:
    """DANN trained with the target group's ages scrambled learns exactly the same weights: the target
    images are used as images only. (The scores differ, since scoring uses the labels.)"""
    original = run_module.prepare_data
    histories = []
    for scramble in (False, True):
        def prepare(protocol, *, scramble=scramble, **kwargs):
            dataset, split = original(protocol, **kwargs)
            if scramble:
                table = dataset.table.copy()
                target = table["sample_id"].isin(split["target"])
                table.loc[target, "age"] = np.random.default_rng(0).permutation(table.loc[target, "age"].to_numpy())
                dataset = replace(dataset, table=table)
            return dataset, split

        monkeypatch.setattr(run_module, "prepare_data", prepare)
        out = tmp_path / f"out{scramble}"
        assert main(["run", str(PROTOCOLS / "age_utk_dann_gamma.yaml"), "--baseline", "dann gamma=1", "--out", str(out),
                     "--cache-dir", str(tmp_path / "cache"), *SMALL]) == 0
        (path,) = out.glob("*/*/results.json")
        histories.append(json.loads(path.read_text()))
    clean, scrambled = histories
    strip = lambda epochs: [{k: v for k, v in e.items() if k != "seconds"} for e in epochs]  # noqa: E731
    assert strip(clean["training"]["epochs"]) == strip(scrambled["training"]["epochs"])
    assert clean["metrics"]["by_group"]["race"]["black"] != scrambled["metrics"]["by_group"]["race"]["black"]
