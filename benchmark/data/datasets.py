"""Dataset specs: how to read a dataset's real on-disk format and how to synthesise a stand-in in it.

Each dataset is one frozen :class:`DatasetSpec` in the ``DATASETS`` registry (:mod:`facebench.registry`),
holding the callables themselves: the reader, the summary ``facebench data verify`` prints, the synthetic
writer's settings class, the writer and its cached variant. :func:`load_dataset` resolves a protocol's dataset
to a FaceTable, either from a user's real copy (``--data-root``) or from the synthetic generator, which writes
the *same* on-disk format and is then read by the same reader, so the synthetic path exercises exactly the code
real data goes through.

A plugin dataset is a ``DatasetSpec`` registered under its name, at run time
(``DATASETS.register("mine", MY_SPEC)``) or through the entry-point group ``facebench.datasets``
(``mine = "my_package.data:MY_SPEC"``); ``facebench data synth|verify mine`` and protocols with
``dataset: {name: mine}`` then use it like a built-in dataset.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from facebench.data import agedb, cacd, celeba, fairface, fgnet, morph, utkface
from facebench.data.files import CheckedRead, check_images
from facebench.data.synth import agedb as synth_agedb
from facebench.data.synth import cacd as synth_cacd
from facebench.data.synth import celeba as synth_celeba
from facebench.data.synth import fairface as synth_fairface
from facebench.data.synth import fgnet as synth_fgnet
from facebench.data.synth import morph as synth_morph
from facebench.data.synth.population import SynthConfig
from facebench.data.synth.utkface import read_manifest, synth_utkface_cached, write_utkface
from facebench.data.table import ReadResult, Reject
from facebench.errors import UserInputError, did_you_mean, shorten


def default_cache_dir() -> Path:
    """Where synthetic datasets and preprocessed image caches live (``$FACEBENCH_CACHE`` overrides)."""
    return Path(os.environ.get("FACEBENCH_CACHE", Path.home() / ".cache" / "facebench"))


@dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    """One dataset: its real format's reader and its synthetic writer, as callables.

    ``settings(**{size_field: n}, seed=, image_size=, render_size=, **options)`` builds the writer's settings
    (raising ``TypeError``/``ValueError`` on bad ones); ``write(out_dir, settings, *, progress)`` writes the
    synthetic dataset under ``out_dir`` (marked by ``SYNTHETIC.json``) and returns the dataset root;
    ``write_cached(settings, cache_dir, *, progress)`` does so once per settings fingerprint under
    ``cache_dir``; ``read(root, *, variant)`` parses a copy strictly into a :class:`ReadResult`, whose
    ``verify_summary(result)`` is the JSON-able summary ``facebench data verify`` prints.
    """

    name: str
    title: str
    read: Callable[..., ReadResult]
    verify_summary: Callable[[ReadResult], dict]
    settings: Callable[..., Any]
    write: Callable[..., Path]
    write_cached: Callable[..., Path]
    how_to_get: str                                 # one paragraph for users with access to the real data
    default_variant: str
    size_field: str = "n_people"                    # the settings field that ``--n`` / ``synthetic.n`` sets
    size_unit: str = "people"                       # what it counts, for messages
    #: The FaceTable column that names each person the way other datasets do (CACD's and AgeDB's celebrity
    #: names), so that a model trained on one and tested on the other can be checked for people in both
    #: (:mod:`facebench.data.identities`); None where people are numbered within the dataset or not identified.
    person_name_column: str | None = None
    display_name: str = ""                          # how sentences name it ("UTKFace"); default: ``name``
    #: Keyword options the reader takes besides ``variant`` (CelebA's ``race_annotations``), from
    #: ``facebench data verify --option KEY=VALUE`` or :func:`load_dataset`'s ``options``; others are refused.
    read_options: tuple[str, ...] = ()
    #: Label columns besides the FaceTable's own that enter the data fingerprint (CelebA's attributes and
    #: annotators' labels, FairFace's age bins): changing one of them is new data.
    label_columns: tuple[str, ...] = ()

    def check_read_options(self, options: Mapping[str, Any] | None, *, where: str) -> dict[str, Any]:
        """``options`` as a dict, or one sentence naming the first one this dataset's reader does not take."""
        options = dict(options or {})
        for key in options:
            if key not in self.read_options:
                takes = (f"it takes {', '.join(self.read_options)}" if self.read_options
                         else "its reader takes no options")
                raise UserInputError(f"{where}: {self.display_name or self.name} has no option {shorten(key)}"
                                     f"{did_you_mean(str(key), self.read_options)}; {takes}.")
        return options

    def synthetic_settings(self, *, n: int, seed: int, image_size: int, render_size: int | None = None,
                           options: Mapping[str, Any] | None = None, what: str) -> Any:
        """The writer's settings; bad ones are one sentence starting with ``what``."""
        try:
            return self.settings(**{self.size_field: n}, seed=seed, image_size=image_size, render_size=render_size,
                                 **dict(options or {}))
        except (TypeError, ValueError) as error:
            raise UserInputError(f"{what}: {error}.") from None

    def synthesize(self, synthetic, cache_dir: Path) -> Path:
        """The stand-in described by a protocol's ``dataset.synthetic`` section, written once under
        ``cache_dir/synth``; returns its root."""
        settings = self.synthetic_settings(n=synthetic.n, seed=synthetic.seed, image_size=synthetic.image_size,
                                           render_size=synthetic.render_size, options=synthetic.options,
                                           what=f"dataset.synthetic.options {dict(synthetic.options)}")
        return self.write_cached(settings, cache_dir / "synth")


@dataclass(frozen=True, kw_only=True)
class LoadedDataset:
    """A dataset resolved for one run: the table, where its images are, and whether it is synthetic.

    ``rejected`` holds the reader's rejects and the images that do not decode; ``content_digest`` is the digest of
    the accepted images' bytes (:func:`facebench.data.files.check_images`).
    """

    name: str
    root: Path
    table: pd.DataFrame
    rejected: tuple[Reject, ...]
    synthetic: bool
    content_digest: str
    #: The generator's ``SYNTHETIC.json`` at the root (its settings: group ageing rates, ...), None on real
    #: data. The known answer of a synthetic run (:mod:`facebench.synthetic_truth`) is derived from it.
    manifest: dict[str, Any] | None = None
    #: The dataset's extra label columns (:attr:`DatasetSpec.label_columns`) that the fingerprint covers.
    label_columns: tuple[str, ...] = ()
    #: Annotators' labels a reader option supplied (CelebA's ``race_annotations``): file, categories and the
    #: annotators' agreement (:mod:`facebench.metrics.agreement`); results.json copies it to ``data.annotations``.
    annotations: dict[str, Any] | None = None

    def fingerprint(self) -> str:
        """sha256 over the labels and the content hash of every accepted image: two runs scored the same data iff
        equal. Replacing an image's bytes changes it, whatever the file's name, size and timestamps."""
        columns = ["sample_id", "subject_id", "age", "gender", "race"]
        columns += [c for c in self.label_columns if c in self.table.columns]
        text = self.table[columns].astype("string").fillna("<NA>").to_csv(index=False)
        return hashlib.sha256(f"{text}\0images\0{self.content_digest}".encode()).hexdigest()


def _writer_of_settings(write_with_options: Callable[..., Path]) -> Callable[..., Path]:
    """``write(out_dir, settings, *, progress)`` from a writer that takes the settings' fields as keywords
    (the longitudinal datasets' ``write_morph(out_dir, n_people=..., seed=..., ..., progress=...)``)."""

    def write(out_dir: str | os.PathLike, settings, *, progress: bool = False) -> Path:
        return write_with_options(out_dir, progress=progress, **settings.options())

    write.__name__ = write.__qualname__ = f"{write_with_options.__name__}_settings"
    write.__doc__ = write_with_options.__doc__
    return write


UTKFACE = DatasetSpec(
    name="utkface",
    title="UTKFace (aligned & cropped faces)",
    read=utkface.read_utkface,
    verify_summary=utkface.verify_summary,
    settings=SynthConfig,
    write=write_utkface,
    write_cached=synth_utkface_cached,
    size_field="n",
    size_unit="images",
    display_name="UTKFace",
    how_to_get=(
        "UTKFace is distributed by its authors for non-commercial research (susanqq.github.io/UTKFace); "
        "download UTKFace.tar.gz, extract it so that DIR/UTKFace/*.jpg.chip.jpg exists, and pass --data-root DIR."
    ),
    default_variant="aligned",
)


MORPH = DatasetSpec(
    name="morph",
    title="MORPH Album 2 (non-commercial release)",
    read=morph.read_morph,
    verify_summary=morph.verify_summary,
    settings=synth_morph.MorphSettings,
    write=_writer_of_settings(synth_morph.write_morph),
    write_cached=synth_morph.synth_morph_cached,
    display_name="MORPH Album 2",
    how_to_get=(
        "MORPH Album 2 is licensed by UNCW (the non-commercial release, morph_2008_nonCommercial.csv + Album2/); "
        "pass --data-root DIR where DIR/MORPH_nonCommercial/ holds the CSV and Album2/."
    ),
    default_variant="album2",
)


CACD = DatasetSpec(
    name="cacd", title="Cross-Age Celebrity Dataset (CACD2000, CACD-VS)", default_variant="metadata", display_name="CACD",
    read=cacd.read_cacd, verify_summary=cacd.verify_summary, settings=synth_cacd.CacdSettings,
    write=_writer_of_settings(synth_cacd.write_cacd), write_cached=synth_cacd.synth_cacd_cached,
    # The metadata and names variants keep each file name's celebrity; CACD-VS names nobody.
    person_name_column="name",
    how_to_get="Download CACD2000.tar.gz and celebrity2000_meta.mat (or celebrity2000.mat) from the CACD page; "
               "pass --data-root DIR where DIR/CACD2000/ holds the images and DIR the .mat file.",
)
FGNET = DatasetSpec(
    name="fgnet", title="FG-NET aging database", default_variant="images", display_name="FG-NET",
    read=fgnet.read_fgnet, verify_summary=fgnet.verify_summary, settings=synth_fgnet.FgnetSettings,
    write=_writer_of_settings(synth_fgnet.write_fgnet), write_cached=synth_fgnet.synth_fgnet_cached,
    how_to_get="Obtain FG-NET (1,002 images of 82 subjects); pass --data-root DIR where DIR/FGNET/images/ holds 001A02.JPG etc.",
)
AGEDB = DatasetSpec(
    name="agedb", title="AgeDB", default_variant="images", display_name="AgeDB",
    read=agedb.read_agedb, verify_summary=agedb.verify_summary, settings=synth_agedb.AgedbSettings,
    write=_writer_of_settings(synth_agedb.write_agedb), write_cached=synth_agedb.synth_agedb_cached,
    person_name_column="name",  # the folder's file names; insightface's agedb_30.bin names nobody
    how_to_get="AgeDB is released by its authors on request; pass --data-root DIR where DIR/AgeDB/ holds "
               "0_MariaCallas_35_f.jpg-style files (insightface's agedb_30.bin may sit beside it).",
)


CELEBA = DatasetSpec(
    name="celeba", title="CelebA (aligned images)", default_variant="aligned", display_name="CelebA",
    read=celeba.read_celeba, verify_summary=celeba.verify_summary, settings=synth_celeba.CelebaSettings,
    write=_writer_of_settings(synth_celeba.write_celeba), write_cached=synth_celeba.synth_celeba_cached,
    read_options=celeba.READ_OPTIONS,
    label_columns=("image_id", "partition", *celeba.ATTRIBUTES, "annotated_race", "annotation_count"),
    how_to_get="CelebA is released by its authors for non-commercial research (mmlab.ie.cuhk.edu.hk/projects/CelebA.html); "
               "pass --data-root DIR where DIR holds Img/img_align_celeba/, Anno/ and Eval/ as released (or torchvision's "
               "flat celeba/ folder). CelebA has no race label: supply annotators' labels with the race_annotations and "
               "race_categories options (the file format: facebench.data.annotations).",
)
FAIRFACE = DatasetSpec(
    name="fairface", title="FairFace (train + val)", default_variant="trainval", display_name="FairFace",
    read=fairface.read_fairface, verify_summary=fairface.verify_summary, settings=synth_fairface.FairfaceSettings,
    write=_writer_of_settings(synth_fairface.write_fairface), write_cached=synth_fairface.synth_fairface_cached,
    size_unit="people (one image each)",
    label_columns=("race_detail", "age_bin", "partition", "service_test"),
    how_to_get="FairFace is released under CC BY 4.0 (github.com/joojs/fairface): extract the images zip (padding 0.25 "
               "or 1.25) so that DIR/train/ and DIR/val/ exist, put fairface_label_train.csv and fairface_label_val.csv "
               "in DIR, and pass --data-root DIR.",
)


def dataset_display_name(name: str) -> str:
    """How sentences name the dataset registered as ``name`` ("UTKFace" for ``utkface``); a name this
    facebench does not know (a plugin not installed where a report is rebuilt) is shown as it is."""
    from facebench.registry import DATASETS

    try:
        spec = DATASETS.get(name)
    except UserInputError:
        return name
    return spec.display_name or spec.name


def read_checked(spec: DatasetSpec, root: str | Path, *, variant: str, cache_dir: Path | None = None,
                 progress: bool = True, options: Mapping[str, Any] | None = None) -> CheckedRead:
    """``spec.read(root, **options)`` with every accepted image checked (:func:`facebench.data.files.check_images`):
    what ``facebench data verify`` reports and what every run uses, so the two never disagree. The verdicts and
    content hashes are cached under ``cache_dir`` per file version."""
    options = spec.check_read_options(options, where="dataset options")
    result = spec.read(root, variant=variant, **options)
    root = Path(getattr(result, "root", root))  # readers resolve a root given one level too deep
    return check_images(result, root, cache_dir=cache_dir or default_cache_dir(), progress=progress, title=spec.name)


def load_dataset(spec: DatasetSpec, *, variant: str, synthetic_settings, data_root: str | Path | None,
                 cache_dir: Path | None = None, progress: bool = True,
                 options: Mapping[str, Any] | None = None) -> LoadedDataset:
    """Read the real dataset under ``data_root``, or synthesise (once, cached) and read the stand-in; images that
    do not decode are left out and listed among the rejects. ``options`` go to the reader
    (:attr:`DatasetSpec.read_options`)."""
    cache_dir = cache_dir or default_cache_dir()
    if data_root is None:
        root = spec.synthesize(synthetic_settings, cache_dir)
    else:
        root = Path(data_root)
    checked = read_checked(spec, root, variant=variant, cache_dir=cache_dir, progress=progress, options=options)
    result = checked.result
    root = Path(getattr(result, "root", root))
    try:  # a folder written by facebench's generator carries a SYNTHETIC.json manifest at its root
        manifest = read_manifest(root)
    except (OSError, ValueError) as exc:
        raise UserInputError(f"{root / 'SYNTHETIC.json'} cannot be read as a synthetic-data manifest "
                             f"({exc.__class__.__name__}).") from None
    annotations = getattr(result, "annotations", None)
    described = None if annotations is None else {
        "file": Path(annotations.path).name, "categories": list(annotations.categories),
        "n_labels": int(len(annotations.frame)), "agreement": annotations.agreement().to_dict(),
        "agreement_line": annotations.agreement().line(),
        "what": "labels assigned by annotators from the photo, not how the people pictured identify themselves"}
    return LoadedDataset(name=spec.name, root=root, table=result.table, rejected=result.rejected,
                         synthetic=manifest is not None, manifest=manifest, content_digest=checked.content_digest,
                         label_columns=spec.label_columns, annotations=described)
