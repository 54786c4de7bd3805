"""Where protocols come from: a built-in protocol by name from any folder, a path, ``include:`` beside the
including file first, and the protocols installed as package data (``facebench.protocols``)."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest
import yaml

from facebench.cli import main
from facebench.errors import UserInputError
from facebench.protocol import (
    PROTOCOL_DIR,
    builtin_protocol_names,
    builtin_protocols,
    load_protocol,
    locate_protocol,
    read_protocol_file,
)

ROOT = Path(__file__).resolve().parent.parent
AGE = "age_utk_cross_ethnicity"


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch) -> Path:
    """An empty working folder, away from the checkout."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def test_every_checkout_protocol_is_built_in_under_its_name() -> None:
    assert builtin_protocol_names() == sorted(p.stem for p in (ROOT / "protocols").glob("*.yaml"))
    assert len(builtin_protocols()) == 23 and all(p.parent == PROTOCOL_DIR for p in builtin_protocols())


def test_a_name_loads_the_built_in_protocol_from_any_folder(elsewhere: Path) -> None:
    by_path = load_protocol(ROOT / "protocols" / f"{AGE}.yaml")
    for ref in (AGE, f"{AGE}.yaml"):
        assert locate_protocol(ref) == PROTOCOL_DIR / f"{AGE}.yaml"
        assert load_protocol(ref).fingerprint() == by_path.fingerprint()


def test_a_file_in_the_working_folder_wins_over_the_built_in_name(elsewhere: Path) -> None:
    raw = yaml.safe_load((PROTOCOL_DIR / f"{AGE}.yaml").read_text())
    raw["title"] = "my local variant"
    (elsewhere / f"{AGE}.yaml").write_text(yaml.safe_dump(raw))
    assert load_protocol(f"{AGE}.yaml").title == "my local variant"
    assert load_protocol(AGE).title != "my local variant"  # no extension: the built-in protocol


def test_unknown_names_and_missing_files_are_one_sentence(elsewhere: Path) -> None:
    with pytest.raises(UserInputError, match=r"^Unknown protocol 'age_utk_cross_ethnicty' \(did you mean "
                                             r"'age_utk_cross_ethnicity'\?\); `facebench protocols list`"):
        locate_protocol("age_utk_cross_ethnicty")
    with pytest.raises(UserInputError, match=r"^Protocol file mine/aifr_morp.yaml does not exist \(did you mean "
                                             r"'aifr_morph'\?\)"):
        locate_protocol("mine/aifr_morp.yaml")


def test_run_by_unknown_name_exits_2_and_writes_nothing(elsewhere: Path, capsys) -> None:
    assert main(["run", "aifr_morp", "--out", str(elsewhere / "out")]) == 2
    err = capsys.readouterr().err
    assert "Unknown protocol 'aifr_morp' (did you mean 'aifr_morph'?)" in err and err.count("\n") == 1
    assert not (elsewhere / "out").exists()


def _write(path: Path, raw: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    return path


def test_include_resolves_beside_the_including_file_first(tmp_path: Path, elsewhere: Path) -> None:
    base = yaml.safe_load((PROTOCOL_DIR / f"{AGE}.yaml").read_text())
    _write(tmp_path / "mine" / f"{AGE}.yaml", {**base, "title": "the copy beside"})
    child = _write(tmp_path / "mine" / "child.yaml", {"include": f"{AGE}.yaml", "name": "child"})
    assert read_protocol_file(child)["title"] == "the copy beside"
    # Nothing beside it: the built-in protocol of that name.
    lone = _write(tmp_path / "other" / "child.yaml", {"include": f"{AGE}.yaml", "name": "child"})
    assert read_protocol_file(lone)["title"] == base["title"]
    assert load_protocol(lone).name == "child"
    # Neither beside it nor built in: one sentence naming the including file and the key.
    bad = _write(tmp_path / "other" / "bad.yaml", {"include": "age_utk_cross_etnicity.yaml"})
    with pytest.raises(UserInputError, match=r"bad.yaml: key 'include': age_utk_cross_etnicity.yaml is neither a "
                                             r"file beside it nor a built-in protocol \(did you mean"):
        read_protocol_file(bad)


def test_include_cycles_are_still_refused(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.yaml", {"include": "b.yaml"})
    _write(tmp_path / "b.yaml", {"include": "a.yaml"})
    with pytest.raises(UserInputError, match="makes a cycle"):
        read_protocol_file(a)


def test_protocols_list_prints_every_name(elsewhere: Path, capsys) -> None:
    assert main(["protocols", "list"]) == 0
    assert capsys.readouterr().out.split() == builtin_protocol_names()


def test_protocols_validate_takes_names_and_defaults_to_every_built_in(elsewhere: Path, capsys, monkeypatch) -> None:
    assert main(["protocols", "validate", "aifr_morph"]) == 0
    assert capsys.readouterr().out == "aifr_morph: ok (paper, quick)\n"
    assert main(["protocols", "validate", "aifr_morp"]) == 2
    assert "did you mean 'aifr_morph'?" in capsys.readouterr().err
    import facebench.protocol

    two = builtin_protocols()[:2]
    monkeypatch.setattr(facebench.protocol, "builtin_protocols", lambda: two)
    assert main(["protocols", "validate"]) == 0
    assert [line.split(":")[0] for line in capsys.readouterr().out.splitlines()] == [p.stem for p in two]


def test_the_protocols_are_package_data() -> None:
    """A non-editable install copies protocols/*.yaml to facebench/protocols/ (see _protocol_dir)."""
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"]["facebench.protocols"] == "protocols"
    assert "facebench.protocols" in config["packages"]
    patterns = config["package-data"]["facebench.protocols"]
    files = [p.name for p in (ROOT / "protocols").iterdir() if p.is_file()]
    assert files and all(any(fnmatch.fnmatch(name, pattern) for pattern in patterns) for name in files)
