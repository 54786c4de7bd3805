"""The metric and task packages' import graph has no cycle, and every module imports on its own.

A cycle (``metrics/__init__`` importing ``verification``, which imported the package ``__init__`` back)
makes import order matter: a module imported first, in a fresh process, could see a half-initialised
package. The graph is read statically from each module's top-level and function-level imports.
"""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
import subprocess
import sys

import pytest

import facebench.metrics
import facebench.tasks

PACKAGES = (facebench.metrics, facebench.tasks)


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package.__name__)
        names += [info.name for info in pkgutil.iter_modules(package.__path__, prefix=package.__name__ + ".")]
    return sorted(names)


def _imports(name: str) -> set[str]:
    """Modules of ``PACKAGES`` that ``name`` imports (``from . import x`` names the package and x)."""
    spec = importlib.util.find_spec(name)
    tree = ast.parse(open(spec.origin, encoding="utf-8").read())
    package = name if spec.submodule_search_locations else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {module for module in found if module in _modules() and module != name}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for child in sorted(graph[node]):
            if state.get(child) == 1:
                return path[path.index(child):] + [child]
            if child not in state and (found := visit(child)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_metrics_and_tasks_import_graph_has_no_cycle() -> None:
    graph = {name: _imports(name) for name in _modules()}
    assert "facebench.metrics.registry" in graph["facebench.metrics.differentials"]  # the reader sees imports
    assert _cycle(graph) is None


@pytest.mark.parametrize("name", _modules())
def test_each_module_imports_first_in_a_fresh_process(name: str) -> None:
    code = f"import {name}, facebench.metrics as m; assert 'fmr' in m.METRIC_NAMES and 'balanced_accuracy' in m.METRIC_NAMES"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_tasks_import_no_method_module_and_no_torch() -> None:
    code = ("import sys, facebench.tasks, facebench.fit_data; "
            "bad = sorted(m for m in sys.modules if m.startswith(('torch', 'facebench.baselines'))); "
            "assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
