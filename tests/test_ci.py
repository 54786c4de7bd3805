"""CI runs the real parts: .ci/run and the README agree on the test command, and with CI=true a skipped
browser or dlib test is a failure (tests/conftest.py), while other skips stay skips."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SKIPPING_TESTS = '''
import pytest


def test_browser():
    pytest.skip("chromium not found: apt-get install chromium")


def test_dlib():
    pytest.skip("could not import 'dlib': No module named 'dlib'")


def test_dlib_protocol():
    pytest.skip('the dlib extra is not installed (pip install -e ".[dlib]")')


def test_other():
    pytest.skip("statsmodels is not installed")
'''


def _run_pytest(folder: Path, ci: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider",
                             "--rootdir", str(folder), str(folder)], cwd=folder, env=env, capture_output=True,
                            text=True, timeout=120)
    return result.stdout


def test_with_ci_true_the_browser_and_dlib_skips_fail(tmp_path: Path) -> None:
    shutil.copyfile(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_skips.py").write_text(SKIPPING_TESTS)
    assert "4 skipped" in _run_pytest(tmp_path, None)
    assert "4 skipped" in _run_pytest(tmp_path, "false")
    out = _run_pytest(tmp_path, "true")
    assert "3 failed, 1 skipped" in out, out
    assert re.search(r"FAILED .*test_browser", out) and re.search(r"FAILED .*test_dlib_protocol", out)
    assert "CI=true, so this skip is a failure: chromium not found" in out


def test_ci_script_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"run the test suite.*?```bash\n([^\n]+)\n```", readme, flags=re.S).group(1)
    script = (ROOT / ".ci" / "run").read_text()
    assert command.startswith("python -m pip install ") and "python -m pytest" in command
    assert script.rstrip().splitlines()[-1] == command
    for part in ("apt-get update", "apt-get install -y chromium", '".[dlib]"',
                 "ruff check benchmark baselines reports tests scripts"):
        assert part in script, part
