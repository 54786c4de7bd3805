"""Dataset specs: how to read a dataset's real on-disk format and how to synthesise a stand-in in it.

Each dataset is one frozen :class:`DatasetSpec` in the ``DATASETS`` registry. :func:`load_dataset`
resolves a protocol's dataset to a FaceTable, either from a user's real copy (``--data-root``) or from the
synthetic generator, which writes the *same* on-disk format and is then read by the same reader, so the
synthetic path exercises exactly the code real data goes through.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from facebench.data.table import ReadResult, Reject


def default_cache_dir() -> Path:
    """Where synthetic datasets and preprocessed image caches live (``$FACEBENCH_CACHE`` overrides)."""
    return Path(os.environ.get("FACEBENCH_CACHE", Path.home() / ".cache" / "facebench"))


@dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    name: str
    title: str
    read: Callable[..., ReadResult]                 # read(root, *, variant) -> ReadResult
    synthesize: Callable[..., Path]                 # synthesize(settings, cache_dir) -> dataset root
    how_to_get: str                                 # one paragraph for users with access to the real data


@dataclass(frozen=True, kw_only=True)
class LoadedDataset:
    """A dataset resolved for one run: the table, where its images are, and whether it is synthetic."""

    name: str
    root: Path
    table: pd.DataFrame
    rejected: tuple[Reject, ...]
    synthetic: bool

    def fingerprint(self) -> str:
        """sha256 over the labels of every accepted image: two runs scored the same data iff equal."""
        columns = ["sample_id", "subject_id", "age", "gender", "race"]
        text = self.table[columns].astype("string").fillna("<NA>").to_csv(index=False)
        return hashlib.sha256(text.encode()).hexdigest()


def _read_utkface(root: Path, *, variant: str = "aligned") -> ReadResult:
    from facebench.data.utkface import read_utkface

    return read_utkface(root, variant=variant)


def _synth_utkface(settings, cache_dir: Path) -> Path:
    from facebench.data.synth import SynthConfig, synth_utkface_cached

    config = SynthConfig(
        n=settings.n, seed=settings.seed, image_size=settings.image_size, render_size=settings.render_size
    )
    return synth_utkface_cached(config, cache_dir / "synth")


UTKFACE = DatasetSpec(
    name="utkface",
    title="UTKFace (aligned & cropped faces)",
    read=_read_utkface,
    synthesize=_synth_utkface,
    how_to_get=(
        "UTKFace is distributed by its authors for non-commercial research (susanqq.github.io/UTKFace); "
        "download UTKFace.tar.gz, extract it so that DIR/UTKFace/*.jpg.chip.jpg exists, and pass --data-root DIR."
    ),
)


def is_synthetic_root(root: Path) -> bool:
    """A folder written by facebench's generator carries a SYNTHETIC.json manifest at its root."""
    return (Path(root) / "SYNTHETIC.json").is_file()


def load_dataset(spec: DatasetSpec, *, variant: str, synthetic_settings, data_root: str | Path | None,
                 cache_dir: Path | None = None, progress: bool = True) -> LoadedDataset:
    """Read the real dataset under ``data_root``, or synthesise (once, cached) and read the stand-in."""
    if data_root is None:
        root = spec.synthesize(synthetic_settings, cache_dir or default_cache_dir())
    else:
        root = Path(data_root)
    result = spec.read(root, variant=variant)
    return LoadedDataset(
        name=spec.name, root=root, table=result.table, rejected=result.rejected, synthetic=is_synthetic_root(root)
    )
