"""scripts/gpu_check.py still runs (on the CPU, tiny sizes): the GPU check must not rot between GPU sessions."""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_loop_comparison_trains_both_loops_on_the_same_steps(gpu_check):
    import torch

    bare, shared = gpu_check.loop_comparison(backbone="resnet18", size=32, batch=2, steps=2, epochs=1, repeats=1,
                                             device=torch.device("cpu"))
    assert bare.steps == shared.steps == 2
    assert bare.images_per_s > 0 and shared.images_per_s > 0
    assert math.isnan(bare.peak_gib) and math.isnan(shared.peak_gib)  # no GPU memory to report on the CPU


def test_main_writes_one_table(gpu_check, tmp_path):
    out = tmp_path / "table.md"
    assert gpu_check.main(["--device", "cpu", "--backbone", "resnet18", "--size", "32", "--batch", "2", "--steps", "2",
                           "--epochs", "1", "--repeats", "1", "--skip-cli", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("Device: cpu")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split(" | ")[0] for r in rows] == ["| check", "| bare PyTorch loop", "| shared loop (`training.fit`)",
                                                  "| acgan smoke steps (AMP off)", "| stargan smoke steps (AMP off)"]
    assert all("failed" not in r for r in rows)   # both generators took their steps with finite losses
    assert re.search(r"\*\*\d+\.\d{3}×\*\* the bare loop", rows[2])


def test_out_replaces_only_the_marked_table_and_refuses_an_unmarked_file(gpu_check, tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text(f"# Performance\nintro\n{gpu_check.BEGIN}\nold table\n{gpu_check.END}\n## Other section\nkept\n")
    gpu_check.write_table(doc, "| new | table |\n")
    assert doc.read_text() == (f"# Performance\nintro\n{gpu_check.BEGIN}\n| new | table |\n{gpu_check.END}\n"
                               "## Other section\nkept\n")
    unmarked = tmp_path / "notes.md"
    unmarked.write_text("my notes\n")
    with pytest.raises(ValueError, match="does not hold one"):
        gpu_check.write_table(unmarked, "| new | table |\n")
    assert unmarked.read_text() == "my notes\n" and not list(tmp_path.glob(".*.tmp"))
    fresh = tmp_path / "table.md"
    gpu_check.write_table(fresh, "| t |\n")
    assert fresh.read_text() == "| t |\n"
    # The project's own document carries the markers, so the command its docstring gives cannot clobber it.
    own = SCRIPT.parents[1] / "docs" / "performance.md"
    assert [line for line in own.read_text().splitlines() if "gpu-check:" in line] == [gpu_check.BEGIN, gpu_check.END]
