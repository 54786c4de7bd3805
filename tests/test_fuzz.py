"""Property-based fuzzing (hypothesis) of everything that parses user files: the protocol loader, the dataset
readers' name and row parsers, the AgeDB .bin reader, the predictions parsers and the results.json reader.

The property is the same everywhere: any input either parses or is refused with one
:class:`~facebench.errors.UserInputError` sentence (one line, at most ``MAX_MESSAGE`` characters). Any other
exception (a traceback for the user) fails the test, and hypothesis shrinks the input that caused it.
"""

from __future__ import annotations

import io
import json
import string
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facebench.data.agedb import parse_agedb_name, read_agedb_bin
from facebench.data.fgnet import parse_fgnet_name
from facebench.data.morph import parse_morph_row
from facebench.data.table import Parsed
from facebench.data.utkface import parse_utkface_name
from facebench.errors import MAX_MESSAGE, UserInputError
from facebench.protocol import load_protocol
from facebench.results import load_run
from facebench.tasks import AGE_REGRESSION, FACE_IDENTIFICATION

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])
PROTOCOLS = Path(__file__).resolve().parent.parent / "protocols"
IDS = ("a.jpg", "b.jpg", "c.jpg")


def _refused_in_one_sentence(call) -> None:
    """Run ``call``; it may return or raise UserInputError with a bounded, one-line message."""
    try:
        call()
    except UserInputError as exc:
        message = str(exc)
        assert "\n" not in message.strip(), message[:300]
        assert 0 < len(message) <= MAX_MESSAGE, len(message)


name_text = st.text(alphabet=string.printable + "éü\x00\u202e", max_size=80)


@FUZZ
@given(name=name_text)
def test_file_name_parsers_never_raise(name) -> None:
    for parse in (parse_utkface_name, parse_agedb_name, parse_fgnet_name):
        result = parse(name)
        assert isinstance(result, Parsed) and (result.value is None) != (result.reason is None)


@FUZZ
@given(fields=st.lists(st.text(max_size=20), max_size=12))
def test_morph_row_parser_never_raises(fields) -> None:
    result = parse_morph_row(fields)
    assert isinstance(result, Parsed)


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                         st.text(max_size=30))
yaml_values = st.recursive(yaml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=20)
protocol_keys = st.sampled_from(["name", "version", "title", "task", "dataset", "split", "groups", "evaluation",
                                 "baselines", "training", "model", "profiles", "deviations", "reference", "include"])


@FUZZ
@given(text=st.text(max_size=400))
def test_protocol_loader_on_arbitrary_text(text, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "p.yaml"
    path.write_text(text, encoding="utf-8")
    _refused_in_one_sentence(lambda: load_protocol(path))


@FUZZ
@given(edits=st.dictionaries(protocol_keys, yaml_values, max_size=4))
def test_protocol_loader_on_edited_protocols(edits, tmp_path_factory) -> None:
    """A real protocol with some top-level keys replaced by arbitrary YAML values."""
    import yaml

    raw = yaml.safe_load((PROTOCOLS / "age_utk_cross_ethnicity.yaml").read_text())
    raw.update(edits)
    path = tmp_path_factory.mktemp("fuzz") / "p.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    _refused_in_one_sentence(lambda: load_protocol(path))


@FUZZ
@given(data=st.binary(max_size=300))
def test_agedb_bin_reader_on_arbitrary_bytes(data) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "agedb_30.bin"
        path.write_bytes(data)
        _refused_in_one_sentence(lambda: read_agedb_bin(path))


csv_cell = st.text(alphabet=string.printable, max_size=12)


@FUZZ
@given(header=st.lists(csv_cell, min_size=1, max_size=4), rows=st.lists(st.lists(csv_cell, max_size=4), max_size=5),
       raw=st.binary(max_size=200), use_raw=st.booleans())
def test_age_predictions_parser(header, rows, raw, use_raw, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "predictions.csv"
    if use_raw:
        path.write_bytes(raw)
    else:
        path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    _refused_in_one_sentence(lambda: AGE_REGRESSION.read_predictions(path, IDS))


arrays = st.one_of(
    st.builds(lambda shape, kind: np.zeros(shape, dtype=kind),
              st.lists(st.integers(0, 4), max_size=3).map(tuple),
              st.sampled_from(["f4", "f8", "i4", "U3", "S3", "c8", "bool", "f2"])),
    st.lists(st.sampled_from(list(IDS) + ["", "x"]), max_size=4).map(lambda v: np.array(v, dtype=str)),
)


@FUZZ
@given(members=st.dictionaries(st.sampled_from(["sample_id", "embedding", "similarity", "extra", "arr_0"]), arrays,
                               max_size=3),
       truncate=st.integers(0, 400), corrupt=st.booleans())
def test_embedding_predictions_parser(members, truncate, corrupt, tmp_path_factory) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    data = buffer.getvalue()
    if corrupt:
        data = data[: min(truncate, len(data))]
    path = tmp_path_factory.mktemp("fuzz") / "predictions.npz"
    path.write_bytes(data)
    _refused_in_one_sentence(lambda: FACE_IDENTIFICATION.read_predictions(path, IDS))


def test_embedding_parser_refuses_a_header_claiming_a_huge_shape(tmp_path) -> None:
    """An .npy header may claim any shape; reading must not try to allocate it."""
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000, 128), }"
    header = header + " " * (118 - len(header)) + "\n"
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\x00" * 64
    path = tmp_path / "predictions.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("embedding.npy", npy)
        buffer = io.BytesIO()
        np.save(buffer, np.array(IDS))
        archive.writestr("sample_id.npy", buffer.getvalue())
    with pytest.raises(UserInputError):
        FACE_IDENTIFICATION.read_predictions(path, IDS)


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                     st.text(max_size=10)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                           max_leaves=15)


@FUZZ
@given(replacement=json_values, where=st.sampled_from([
    ("protocol",), ("metrics",), ("metrics", "overall"), ("metrics", "by_group"), ("metrics", "disparities"),
    ("data",), ("baseline",), ("statistics",), ("files",), ("files", "outcomes"), ("protocol", "deviations")]))
def test_results_reader_on_mutated_documents(replacement, where, tmp_path_factory) -> None:
    doc = {"schema_version": "1.3", "protocol": {"name": "p", "version": 1, "title": "t", "task": "age_regression",
                                                 "primary_metric": "mae", "fingerprint": "f"},
           "baseline": {"name": "b"}, "data": {"synthetic": True, "fingerprint": "d", "split_fingerprint": "s"},
           "metrics": {"overall": {"mae": {"value": 1.0, "ci_low": 0.5, "ci_high": 1.5, "n": 3}},
                       "by_group": {}, "disparities": {}, "group_tests": []},
           "files": {"outcomes": "outcomes.csv"}}
    node = doc
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = replacement
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "results.json").write_text(json.dumps(doc), encoding="utf-8")
    (folder / "outcomes.csv").write_text("sample_id,y_true,y_pred\n", encoding="utf-8")
    _refused_in_one_sentence(lambda: load_run(folder / "results.json"))
