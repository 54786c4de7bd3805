"""One registry for datasets: a DatasetSpec holds its callables, so a plugin dataset registered in
``facebench.registry.DATASETS`` (at run time, or through the entry-point group ``facebench.datasets``) is
synthesised and verified through the CLI like a built-in one, and loads for a protocol."""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from pathlib import Path

import pytest

import facebench.registry
from facebench.cli import main
from facebench.data.datasets import MORPH, load_dataset
from facebench.data.synth.morph import write_morph
from facebench.errors import UserInputError
from facebench.protocol import SyntheticData
from facebench.registry import DATASETS, Registry

PLUGIN = "facebench_toy_plugin"

PLUGIN_SOURCE = '''
"""A plugin dataset for facebench's tests: TOY/{subject:03d}_{k}_{age}_{m|f}.png, no race labels."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from facebench.data.datasets import DatasetSpec
from facebench.data.table import GENDERS, ReadResult, Reject, check_face_table, read_summary, vocabulary_counts
from facebench.errors import UserInputError

COLUMNS = ["sample_id", "subject_id", "age", "gender", "race", "race_code", "gender_code"]


@dataclass(frozen=True)
class ToySettings:
    n_people: int
    seed: int = 0
    image_size: int = 16
    render_size: int | None = None
    photos: int = 2

    def __post_init__(self):
        if self.n_people < 1:
            raise ValueError(f"ToySettings.n_people must be at least 1, got {self.n_people}")


@dataclass(frozen=True)
class ToyReadResult(ReadResult):
    root: Path = Path(".")


def write_toy(out_dir, settings, *, progress=False):
    out_dir = Path(out_dir)
    folder = out_dir / "TOY"
    if folder.exists():
        raise UserInputError(f"{folder} already exists, so no synthetic toy data was written there.")
    folder.mkdir(parents=True)
    rng = np.random.default_rng(settings.seed)
    for subject in range(settings.n_people):
        for k in range(settings.photos):
            pixels = np.full((settings.image_size, settings.image_size, 3), 40 * subject % 256, np.uint8)
            name = f"{subject:03d}_{k}_{int(rng.integers(1, 90))}_{'mf'[subject % 2]}.png"
            Image.fromarray(pixels).save(folder / name)
    (out_dir / "SYNTHETIC.json").write_text(json.dumps({"synthetic": True, "config": asdict(settings)}))
    return out_dir


def write_toy_cached(settings, cache_dir, *, progress=False):
    folder = Path(cache_dir) / f"toy-{settings.n_people}-{settings.seed}-{settings.image_size}"
    return folder if (folder / "SYNTHETIC.json").is_file() else write_toy(folder, settings, progress=progress)


def read_toy(root, *, variant="images"):
    root = Path(root)
    if variant != "images":
        raise UserInputError(f"The toy dataset has no variant '{variant}'; it has: images.")
    if not (root / "TOY").is_dir():
        raise UserInputError(f"Toy root {root} has no TOY/ folder.")
    rows, rejected = [], []
    for path in sorted((root / "TOY").iterdir()):
        sample_id = f"TOY/{path.name}"
        parts = path.stem.split("_")
        if path.suffix != ".png" or len(parts) != 4 or parts[3] not in ("m", "f"):
            rejected.append(Reject(sample_id, "not a toy image name"))
            continue
        rows.append([sample_id, parts[0], int(parts[2]), {"m": "male", "f": "female"}[parts[3]], pd.NA, pd.NA,
                     parts[3]])
    return ToyReadResult(check_face_table(pd.DataFrame(rows, columns=COLUMNS)), tuple(rejected), root)


def verify_summary(result):
    return read_summary("toy", result, root=result.root, variant="images",
                        groups={"gender": vocabulary_counts(result.table["gender"], GENDERS)})


TOY = DatasetSpec(name="toy", title="Toy faces (a test plugin)", read=read_toy, verify_summary=verify_summary,
                  settings=ToySettings, write=write_toy, write_cached=write_toy_cached,
                  how_to_get="synthetic only", default_variant="images")
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch):
    """The plugin's module, importable from a folder on sys.path (removed again afterwards)."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / f"{PLUGIN}.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, PLUGIN, raising=False)
    yield folder
    sys.modules.pop(PLUGIN, None)


def _synth_and_verify(tmp_path: Path, capsys) -> None:
    out = tmp_path / "toy-data"
    assert main(["data", "synth", "toy", "--out", str(out), "--n", "3", "--size", "16", "--seed", "1"]) == 0
    assert "wrote synthetic toy (3 people) to" in capsys.readouterr().out
    assert len(list((out / "TOY").iterdir())) == 6 and (out / "SYNTHETIC.json").is_file()
    (out / "TOY" / "readme.txt").write_text("not a face")
    assert main(["data", "verify", "toy", "--root", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"toy at {out}: 6 images accepted, 1 rejected" in printed
    assert "gender: male 4, female 2" in printed and "rejected TOY/readme.txt: not a toy image name" in printed
    assert main(["data", "verify", "toy", "--root", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["dataset"], summary["n_samples"], summary["n_subjects"]) == ("toy", 6, 3)
    # The plugin's own refusals and settings errors are one sentence and exit 2.
    assert main(["data", "synth", "toy", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["data", "synth", "toy", "--out", str(tmp_path / "none"), "--n", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "facebench: error: facebench data synth toy: ToySettings.n_people must be at least 1, got 0.\n"
    assert not (tmp_path / "none").exists()


def test_a_plugin_registered_at_run_time_is_synthesised_and_verified_by_the_cli(plugin, tmp_path, capsys,
                                                                                  monkeypatch) -> None:
    assert "toy" not in DATASETS
    monkeypatch.setitem(DATASETS._entries, "toy", importlib.import_module(PLUGIN).TOY)
    with pytest.raises(SystemExit):
        main(["data", "synth", "--help"])
    assert "agedb, cacd, celeba, fairface, fgnet, morph, toy, utkface" in " ".join(capsys.readouterr().out.split())  # --help names them
    _synth_and_verify(tmp_path, capsys)


def test_a_plugin_from_the_entry_point_group_is_synthesised_and_verified_by_the_cli(plugin, tmp_path, capsys,
                                                                                      monkeypatch) -> None:
    dist = plugin / "facebench_toy_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: facebench-toy-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[facebench.datasets]\ntoy = {PLUGIN}:TOY\n")
    fresh = Registry("datasets")
    monkeypatch.setattr(facebench.registry, "DATASETS", fresh)
    assert fresh.names() == ["toy"]
    _synth_and_verify(tmp_path, capsys)


def test_unknown_dataset_is_one_sentence_with_did_you_mean(tmp_path: Path, capsys) -> None:
    assert main(["data", "synth", "mroph", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err == ("facebench: error: facebench data synth: Unknown datasets name 'mroph' "
                                       "(did you mean 'morph'?); known: agedb, cacd, celeba, fairface, fgnet, morph, utkface.\n")
    assert main(["data", "verify", "fgnte", "--root", str(tmp_path)]) == 2
    assert "did you mean 'fgnet'?" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_plugin_dataset_loads_for_a_protocol_from_its_cache(plugin, tmp_path: Path) -> None:
    toy = importlib.import_module(PLUGIN).TOY
    settings = SyntheticData(n=2, seed=3, image_size=16)
    first = load_dataset(toy, variant="images", synthetic_settings=settings, data_root=None, cache_dir=tmp_path)
    assert first.synthetic and first.root == tmp_path / "synth" / "toy-2-3-16" and len(first.table) == 4
    again = load_dataset(toy, variant="images", synthetic_settings=settings, data_root=None, cache_dir=tmp_path)
    assert again.fingerprint() == first.fingerprint()
    with pytest.raises(UserInputError, match=r"^dataset.synthetic.options \{'colour': 1\}: "):
        toy.synthesize(SyntheticData(n=2, options={"colour": 1}), tmp_path)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_cli_synth_of_a_built_in_dataset_writes_what_its_writer_writes(tmp_path: Path, capsys) -> None:
    assert main(["data", "synth", "morph", "--out", str(tmp_path / "cli"), "--n", "3", "--size", "32",
                 "--seed", "2"]) == 0
    assert "wrote synthetic morph (3 people)" in capsys.readouterr().out
    write_morph(tmp_path / "direct", n_people=3, seed=2, image_size=32)
    assert _hashes(tmp_path / "cli") == _hashes(tmp_path / "direct")
    assert MORPH.write.__name__ == "write_morph_settings"
    assert main(["data", "verify", "morph", "--root", str(tmp_path / "cli")]) == 0
    assert f"morph at {tmp_path / 'cli'}: " in capsys.readouterr().out
