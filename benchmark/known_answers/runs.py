"""Running a protocol on a known-answer shift and reading its runs back: what every family's known answer shares."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from facebench.protocol import load_protocol
from facebench.run import RunOptions, run_protocol

__all__ = ["read_outcomes", "results_by_label", "run_on_shift", "shift_overrides"]


def shift_overrides(shift: str, overrides: Sequence[str], seed: int) -> list[str]:
    """``overrides`` plus the synthetic data's ``seed`` and known-answer ``shift`` (``--set`` syntax)."""
    return [*overrides, f"dataset.synthetic.seed={seed}", f"dataset.synthetic.options={json.dumps({'shift': shift})}"]


def run_on_shift(protocol: Path, *, shift: str, overrides: Sequence[str], out_dir: Path, cache_dir: Path,
                 seed: int = 0, added: Sequence[dict] = (), only: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """Run ``protocol``'s baselines (those labelled ``only``, when given) and the ``added`` ones on the ``shift``
    synthetic data into ``out_dir``; each baseline label's outcomes (:func:`read_outcomes`).

    ``overrides`` size the data, model and training (``--set`` syntax); ``seed`` is both the data's and the
    runner's seed, so a seed sweep draws new faces and new initialisations.
    """
    sized = shift_overrides(shift, overrides, seed)
    loaded = load_protocol(protocol, overrides=sized)
    if added or only is not None:
        own = [b.model_dump(mode="json", exclude_defaults=True) for b in loaded.baselines
               if only is None or (b.label or b.name) in only]
        loaded = load_protocol(protocol, overrides=[*sized, f"baselines={json.dumps([*own, *added])}"])
    run_protocol(loaded, RunOptions(out_dir=out_dir, cache_dir=cache_dir, progress=False, seed=seed))
    return read_outcomes(out_dir)


def results_by_label(out_dir: Path) -> dict[str, Path]:
    """Each baseline label's results.json among the runs under ``out_dir`` (one protocol's runs)."""
    return {json.loads(results.read_text())["baseline"]["label"]: results
            for results in sorted(out_dir.glob("*/*/results.json"))}


def read_outcomes(out_dir: Path) -> dict[str, pd.DataFrame]:
    """Each baseline label's outcomes.csv among the runs under ``out_dir``, ids read as text."""
    return {label: pd.read_csv(results.parent / "outcomes.csv", dtype={"sample_id": str, "subject_id": str})
            for label, results in results_by_label(out_dir).items()}
