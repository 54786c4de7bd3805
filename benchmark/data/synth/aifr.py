"""The synthetic age-invariant face recognition datasets in one namespace (kept for existing imports).

The writers live in one module per dataset, mirroring the readers: :mod:`facebench.data.synth.morph`,
:mod:`~facebench.data.synth.cacd`, :mod:`~facebench.data.synth.fgnet` and :mod:`~facebench.data.synth.agedb`;
what they share (settings base, atomic writes, manifest, cache) is :mod:`facebench.data.synth.common`.
"""

from facebench.data.synth.agedb import (
    AGEDB_BIN,
    AGEDB_FOLDER,
    BIN_IMAGE_SIZE,
    AgedbSettings,
    agedb_pairs,
    agedb_records,
    synth_agedb_cached,
    write_agedb,
)
from facebench.data.synth.cacd import (
    CACD_BIRTH_YEARS,
    CACD_FOLDER,
    CACD_META,
    CACD_MIN_AGE,
    CACD_RANKS,
    CACD_VS_FOLDER,
    CACD_YEARS,
    MAT_HEADER,
    CacdSettings,
    cacd_meta_bytes,
    cacd_records,
    cacd_vs_pairs,
    synth_cacd_cached,
    write_cacd,
)
from facebench.data.synth.common import GENERATOR_NAME, MANIFEST_NAME, synthetic_names
from facebench.data.synth.fgnet import (
    FGNET_FOLDER,
    FGNET_IMAGES,
    FgnetSettings,
    fgnet_records,
    synth_fgnet_cached,
    write_fgnet,
)
from facebench.data.synth.morph import (
    MORPH_CSV,
    MORPH_FIRST_DOA,
    MORPH_FOLDER,
    MORPH_HEADER,
    MORPH_LAST_DOA,
    MORPH_RACE_CODES,
    MorphSettings,
    morph_records,
    synth_morph_cached,
    write_morph,
)

__all__ = [
    "AGEDB_BIN", "AGEDB_FOLDER", "BIN_IMAGE_SIZE", "CACD_BIRTH_YEARS", "CACD_FOLDER", "CACD_META", "CACD_MIN_AGE",
    "CACD_RANKS", "CACD_VS_FOLDER", "CACD_YEARS", "FGNET_FOLDER", "FGNET_IMAGES", "GENERATOR_NAME", "MANIFEST_NAME",
    "MAT_HEADER", "MORPH_CSV", "MORPH_FIRST_DOA", "MORPH_FOLDER", "MORPH_HEADER", "MORPH_LAST_DOA",
    "MORPH_RACE_CODES", "AgedbSettings", "CacdSettings", "FgnetSettings", "MorphSettings", "agedb_pairs",
    "agedb_records", "cacd_meta_bytes", "cacd_records", "cacd_vs_pairs", "fgnet_records", "morph_records",
    "synth_agedb_cached", "synth_cacd_cached", "synth_fgnet_cached", "synth_morph_cached", "synthetic_names",
    "write_agedb", "write_cacd", "write_fgnet", "write_morph",
]
