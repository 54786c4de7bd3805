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
from facebench.errors import UserInputError


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
    module: str                                     # facebench.data.<module> has read_<name> and verify_summary
    default_variant: str

    def verify_summary(self, result: ReadResult) -> dict:
        import importlib

        return importlib.import_module(f"facebench.data.{self.module}").verify_summary(result)


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


def _reader(module: str):
    def read(root: Path, *, variant: str) -> ReadResult:
        import importlib

        return getattr(importlib.import_module(f"facebench.data.{module}"), f"read_{module}")(root, variant=variant)

    return read


def _synthesizer(settings_class: str, cached: str):
    def synthesize(settings, cache_dir: Path) -> Path:
        from facebench.data.synth import aifr

        try:
            config = getattr(aifr, settings_class)(n_people=settings.n, seed=settings.seed, image_size=settings.image_size,
                                                   render_size=settings.render_size, **settings.options)
        except (TypeError, ValueError) as error:
            raise UserInputError(f"dataset.synthetic.options {dict(settings.options)}: {error}.") from None
        return getattr(aifr, cached)(config, cache_dir / "synth")

    return synthesize


def _synth_utkface(settings, cache_dir: Path) -> Path:
    from facebench.data.synth import SynthConfig, synth_utkface_cached

    try:
        config = SynthConfig(n=settings.n, seed=settings.seed, image_size=settings.image_size,
                             render_size=settings.render_size, **settings.options)
    except (TypeError, ValueError) as error:
        raise UserInputError(f"dataset.synthetic.options {dict(settings.options)}: {error}.") from None
    return synth_utkface_cached(config, cache_dir / "synth")


UTKFACE = DatasetSpec(
    name="utkface",
    title="UTKFace (aligned & cropped faces)",
    read=_reader("utkface"),
    synthesize=_synth_utkface,
    how_to_get=(
        "UTKFace is distributed by its authors for non-commercial research (susanqq.github.io/UTKFace); "
        "download UTKFace.tar.gz, extract it so that DIR/UTKFace/*.jpg.chip.jpg exists, and pass --data-root DIR."
    ),
    module="utkface",
    default_variant="aligned",
)


MORPH = DatasetSpec(
    name="morph",
    title="MORPH Album 2 (non-commercial release)",
    read=_reader("morph"),
    synthesize=_synthesizer("MorphSettings", "synth_morph_cached"),
    how_to_get=(
        "MORPH Album 2 is licensed by UNCW (the non-commercial release, morph_2008_nonCommercial.csv + Album2/); "
        "pass --data-root DIR where DIR/MORPH_nonCommercial/ holds the CSV and Album2/."
    ),
    module="morph",
    default_variant="album2",
)


CACD = DatasetSpec(
    name="cacd", title="Cross-Age Celebrity Dataset (CACD2000, CACD-VS)", module="cacd", default_variant="metadata",
    read=_reader("cacd"), synthesize=_synthesizer("CacdSettings", "synth_cacd_cached"),
    how_to_get="Download CACD2000.tar.gz and celebrity2000_meta.mat (or celebrity2000.mat) from the CACD page; "
               "pass --data-root DIR where DIR/CACD2000/ holds the images and DIR the .mat file.",
)
FGNET = DatasetSpec(
    name="fgnet", title="FG-NET aging database", module="fgnet", default_variant="images",
    read=_reader("fgnet"), synthesize=_synthesizer("FgnetSettings", "synth_fgnet_cached"),
    how_to_get="Obtain FG-NET (1,002 images of 82 subjects); pass --data-root DIR where DIR/FGNET/images/ holds 001A02.JPG etc.",
)
AGEDB = DatasetSpec(
    name="agedb", title="AgeDB", module="agedb", default_variant="images",
    read=_reader("agedb"), synthesize=_synthesizer("AgedbSettings", "synth_agedb_cached"),
    how_to_get="AgeDB is released by its authors on request; pass --data-root DIR where DIR/AgeDB/ holds "
               "0_MariaCallas_35_f.jpg-style files (insightface's agedb_30.bin may sit beside it).",
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
    root = Path(getattr(result, "root", root))  # readers resolve a root given one level too deep
    return LoadedDataset(
        name=spec.name, root=root, table=result.table, rejected=result.rejected, synthetic=is_synthetic_root(root)
    )
