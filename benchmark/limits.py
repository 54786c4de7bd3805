"""Bounded reading of the files facebench parses: size, depth and alias expansion of YAML and JSON, and
:func:`read_text` for the text files of dataset readers and predictions (size, binary content, encoding).

A 417-byte YAML file whose anchors refer to anchors expands to billions of nodes ("billion laughs"); a file of
200,000 nested brackets overflows the parser's recursion. Both must end in one sentence within a second, not in
a traceback or an hour of quoting the expansion back. Every YAML and JSON input (protocols, ``--set`` values,
gate files, results.json, site manifests) goes through :func:`load_yaml` or :func:`load_json`.

>>> load_yaml("a: [1, 2]", where="p.yaml")
{'a': [1, 2]}
>>> bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\\n" + "".join(
...     f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\\n" for p, c in zip("abcdefg", "bcdefgh"))
>>> load_yaml(bomb, where="bomb.yaml")
Traceback (most recent call last):
...
facebench.errors.UserInputError: bomb.yaml: its aliases expand to more than 100000 values, more than any facebench file needs; write the values out.
>>> load_json("[" * 100000, where="r.json")
Traceback (most recent call last):
...
facebench.errors.UserInputError: r.json: nested more than 100 levels deep, more than any facebench file needs.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import yaml

from facebench.errors import UserInputError, shorten

__all__ = ["MAX_DEPTH", "MAX_EXPANDED_NODES", "MAX_JSON_BYTES", "MAX_YAML_BYTES", "csv_rows", "load_json", "load_yaml", "read_text"]

#: Largest YAML file read (protocols and gate files are a few kB).
MAX_YAML_BYTES = 1 << 20
#: Largest JSON file read (a results.json with every group test and a verification view is a few MB).
MAX_JSON_BYTES = 256 << 20
#: Deepest nesting of mappings and lists accepted.
MAX_DEPTH = 100
#: Most values a YAML document may hold once its aliases are expanded.
MAX_EXPANDED_NODES = 100_000


def read_text(path: str | os.PathLike, *, what: str, max_bytes: int) -> str:
    """The text of ``path`` (UTF-8, a byte-order mark dropped), or one sentence naming ``what`` and the path: a
    missing file, a folder, an unreadable file, more than ``max_bytes`` bytes, NUL bytes (a binary file), or bytes
    that are not UTF-8 (with their line).

    >>> read_text("/nonexistent.csv", what="FairFace label file", max_bytes=10)
    Traceback (most recent call last):
    ...
    facebench.errors.UserInputError: FairFace label file /nonexistent.csv does not exist.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise UserInputError(f"{what} {path} is not a file.")
        if size > max_bytes:
            raise UserInputError(f"{what} {path} is {size:,} bytes, more than the {max_bytes:,} facebench reads as one.")
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserInputError(f"{what} {path} does not exist.") from None
    except OSError as error:
        raise UserInputError(f"{what} {path} cannot be read: {error.strerror or error}.") from None
    if b"\0" in data:
        raise UserInputError(f"{what} {path} is not a text file (it contains NUL bytes, so it is a binary file).")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise UserInputError(f"{what} {path}: line {line} is not UTF-8 text.") from None


def _depth_of_brackets(text: str) -> int:
    """Deepest ``[``/``{`` nesting outside strings: a cheap pre-check before any recursive parser runs."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def load_json(text: str, *, where: str) -> Any:
    """``json.loads`` with the limits above; NaN and Infinity literals are refused (they are not JSON)."""
    if len(text) > MAX_JSON_BYTES:
        raise UserInputError(f"{where}: {len(text):,} characters, more than the {MAX_JSON_BYTES:,} facebench reads.")
    if _depth_of_brackets(text) > MAX_DEPTH:
        raise UserInputError(f"{where}: nested more than {MAX_DEPTH} levels deep, more than any facebench file needs.")

    def refuse(token: str):
        raise UserInputError(f"{where} is not valid JSON ({token} is not a JSON number).")

    try:
        return json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{where} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).") from None
    except RecursionError:  # nesting the bracket count could not see (it is a pre-check, not a parser)
        raise UserInputError(f"{where}: nested more than {MAX_DEPTH} levels deep, more than any facebench file "
                             "needs.") from None


def _expanded_size(node: yaml.Node, sizes: dict[int, int], depth: int, where: str) -> int:
    """Values the node stands for once aliases are expanded (memoised by node identity, so linear time)."""
    if depth > MAX_DEPTH:
        raise UserInputError(f"{where}: nested more than {MAX_DEPTH} levels deep, more than any facebench file needs.")
    key = id(node)
    if key in sizes:
        return sizes[key]
    sizes[key] = MAX_EXPANDED_NODES + 1  # a node that contains itself expands without end
    if isinstance(node, yaml.SequenceNode):
        total = 1 + sum(_expanded_size(child, sizes, depth + 1, where) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total = 1 + sum(_expanded_size(k, sizes, depth + 1, where) + _expanded_size(v, sizes, depth + 1, where)
                        for k, v in node.value)
    else:
        total = 1
    sizes[key] = total
    if total > MAX_EXPANDED_NODES:
        raise UserInputError(f"{where}: its aliases expand to more than {MAX_EXPANDED_NODES} values, more than "
                             "any facebench file needs; write the values out.")
    return total


def load_yaml(text: str, *, where: str) -> Any:
    """``yaml.safe_load`` with the limits above. Raises ``yaml.YAMLError`` for invalid YAML (the caller words
    it, with the line), :class:`UserInputError` for a file over a limit."""
    if len(text) > MAX_YAML_BYTES:
        raise UserInputError(f"{where}: {len(text):,} characters, more than the {MAX_YAML_BYTES:,} facebench reads "
                             "from a YAML file.")
    if _depth_of_brackets(text) > MAX_DEPTH or _indent_depth(text) > MAX_DEPTH:
        raise UserInputError(f"{where}: nested more than {MAX_DEPTH} levels deep, more than any facebench file needs.")
    loader = yaml.SafeLoader(text)
    try:  # compose the node graph once, measure its expansion, then build the values from that same graph
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, 0, where)
        return loader.construct_document(node)
    except RecursionError:  # nesting the pre-checks could not see
        raise UserInputError(f"{where}: nested more than {MAX_DEPTH} levels deep, more than any facebench file "
                             "needs.") from None
    finally:
        loader.dispose()


def _indent_depth(text: str) -> int:
    """Distinct indentation levels in use: a bound on block-style nesting, checked before the composer runs."""
    return len({len(line) - len(line.lstrip(" -")) for line in text.splitlines() if line.strip()})


def csv_rows(path: str | os.PathLike, *, what: str, header: tuple[str, ...], max_bytes: int,
             rows_are: str = "rows") -> list[tuple[int, list[str]]]:
    """The data rows of a CSV file with exactly the columns ``header``, as ``(line number, fields)``; or one
    sentence naming ``what``, the path and the line: what :func:`read_text` refuses, an empty file, another header,
    a row with another number of fields, text that is not valid CSV, or no data row (``rows_are`` names them).

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
    ...     _ = f.write("a,b\\n1,2\\n3\\n")
    >>> csv_rows(f.name, what="Test file", header=("a", "b"), max_bytes=100)
    Traceback (most recent call last):
    ...
    facebench.errors.UserInputError: Test file ...: line 3 has 1 field; expected 2 (a,b).
    """
    text = read_text(path, what=what, max_bytes=max_bytes)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    columns = ",".join(header)
    rows: list[tuple[int, list[str]]] = []
    try:
        first = next(reader, None)
        if first is None:
            raise UserInputError(f"{what} {path} is empty; it needs the header {columns}.")
        if tuple(first) != header:
            raise UserInputError(f"{what} {path}: line 1 is {shorten(','.join(first))}; expected the header {columns}.")
        for fields in reader:
            if len(fields) != len(header):
                raise UserInputError(f"{what} {path}: line {reader.line_num} has {len(fields)} "
                                     f"field{'s' if len(fields) != 1 else ''}; expected {len(header)} ({columns}).")
            rows.append((reader.line_num, fields))
    except csv.Error as error:
        raise UserInputError(f"{what} {path}: line {reader.line_num} is not valid CSV ({error}).") from None
    if not rows:
        raise UserInputError(f"{what} {path} has a header but no {rows_are}.")
    return rows
