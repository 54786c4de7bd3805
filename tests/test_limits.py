"""Bounded inputs: YAML and JSON size, depth and alias-expansion limits end in one sentence, exit 2, within a
second; error messages are never longer than MAX_MESSAGE characters whatever the input quotes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from facebench.cli import main
from facebench.errors import MAX_MESSAGE, UserInputError, shorten
from facebench.limits import MAX_DEPTH, load_json, load_yaml
from facebench.results import load_run

PROTOCOLS = Path(__file__).resolve().parent.parent / "protocols"


def _laughs(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        ref = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([ref] * 10)}]")
    return "\n".join(lines) + "\n"


HOSTILE_YAML = {
    "billion_laughs": _laughs(),
    "deep_flow": "a: " + "[" * 200_000 + "]" * 200_000 + "\n",
    "deep_block": "".join("  " * i + f"k{i}:\n" for i in range(300)) + "  " * 300 + "v: 1\n",
    "self_alias_in_key": "a: &a [1, 2]\nb: [*a, *a, *a]\n" + "c: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5),
}


@pytest.mark.parametrize("name", list(HOSTILE_YAML))
def test_hostile_protocol_files_are_one_sentence_exit_2_within_a_second(name, tmp_path, capsys) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(HOSTILE_YAML[name])
    started = time.perf_counter()
    code = main(["protocols", "validate", str(path)])
    elapsed = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == 2 and elapsed < 1.0
    assert err.count("\n") == 1 and len(err) < MAX_MESSAGE and str(path) in err


def test_the_same_limits_guard_gate_files(tmp_path, capsys) -> None:
    gates = tmp_path / "gates.yaml"
    gates.write_text(_laughs())
    run = next((PROTOCOLS.parent / "tests").glob("*.py"))  # any existing path: the gate file is read first
    assert run.exists()
    with pytest.raises(UserInputError, match="aliases expand"):
        from facebench.compare import load_gates

        load_gates(gates)


def test_a_large_ordinary_yaml_still_loads() -> None:
    text = "values: [" + ", ".join(str(i) for i in range(50_000)) + "]\n"
    assert len(load_yaml(text, where="big.yaml")["values"]) == 50_000


@pytest.mark.parametrize("text,message", [
    ("[" * 200_000 + "]" * 200_000, "nested more than"),
    ('{"a": NaN}', "NaN is not a JSON number"),
    ('{"a": Infinity}', "Infinity is not a JSON number"),
    ('{"a": 1', "not valid JSON"),
])
def test_hostile_json_is_one_sentence(text, message) -> None:
    with pytest.raises(UserInputError, match=message):
        load_json(text, where="r.json")


def test_hostile_results_json_is_refused_by_the_one_reader(tmp_path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "results.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UserInputError, match="nested more than"):
        load_run(folder / "results.json")


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"note": "[" * 500})
    assert load_json(text, where="r.json") == {"note": "[" * 500}


def test_shorten_never_renders_a_huge_value_whole() -> None:
    started = time.perf_counter()
    text = shorten(["x" * 50_000_000], limit=100)
    assert len(text) <= 100 and time.perf_counter() - started < 0.5


def test_cli_messages_are_bounded(capsys) -> None:
    huge = "x" * 1_000_000
    assert main(["protocols", "validate", huge]) == 2
    err = capsys.readouterr().err
    assert len(err) <= MAX_MESSAGE + 50
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(PROTOCOLS / "aifr_cacd.yaml"), "--no-such-flag-" + huge])
    assert exit_info.value.code == 2
    assert len(capsys.readouterr().err) < MAX_MESSAGE + 500
