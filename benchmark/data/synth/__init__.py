"""Synthetic faces for facebench: a deterministic procedural face renderer and a writer in the exact UTKFace
on-disk format, so the whole pipeline (readers, splits, baselines, reports) runs without the real data.

* :func:`sample_population` draws who is in the dataset (:class:`SynthConfig`, :class:`GroupAppearance`);
* :func:`render_faces` renders them as uint8 RGB arrays;
* :func:`write_utkface` / :func:`synth_utkface_cached` write them as ``UTKFace/*.jpg.chip.jpg`` plus a
  ``SYNTHETIC.json`` manifest that marks the folder as synthetic.
"""

from facebench.data.synth.population import (
    AGING_RATES,
    DEFAULT_GROUPS,
    GENERATOR_VERSION,
    GroupAppearance,
    SynthConfig,
    age_distribution,
    sample_population,
)
from facebench.data.synth.render import cue_age, render_faces
from facebench.data.synth.utkface import (
    MANIFEST_NAME,
    manifest,
    read_manifest,
    synth_utkface_cached,
    utkface_file_names,
    write_utkface,
)

__all__ = [
    "AGING_RATES",
    "DEFAULT_GROUPS",
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
    "GroupAppearance",
    "SynthConfig",
    "age_distribution",
    "cue_age",
    "manifest",
    "read_manifest",
    "render_faces",
    "sample_population",
    "synth_utkface_cached",
    "utkface_file_names",
    "write_utkface",
]

# Longitudinal people (the same person at several ages) and the AIFR dataset writers, one module per dataset.
from facebench.data.synth.agedb import AgedbSettings, synth_agedb_cached, write_agedb  # noqa: E402
from facebench.data.synth.cacd import CacdSettings, synth_cacd_cached, write_cacd  # noqa: E402
from facebench.data.synth.fgnet import FgnetSettings, synth_fgnet_cached, write_fgnet  # noqa: E402
from facebench.data.synth.longitudinal import (  # noqa: E402
    LONGITUDINAL_VERSION,
    LongitudinalConfig,
    sample_longitudinal_population,
)
from facebench.data.synth.morph import MorphSettings, synth_morph_cached, write_morph  # noqa: E402

__all__ += [
    "LONGITUDINAL_VERSION",
    "AgedbSettings",
    "CacdSettings",
    "FgnetSettings",
    "LongitudinalConfig",
    "MorphSettings",
    "sample_longitudinal_population",
    "synth_agedb_cached",
    "synth_cacd_cached",
    "synth_fgnet_cached",
    "synth_morph_cached",
    "write_agedb",
    "write_cacd",
    "write_fgnet",
    "write_morph",
]
