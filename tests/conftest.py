"""Fixtures shared by several test files (pytest finds them here without imports)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Skip reasons that mean the machine lacks what the real tests need: Debian's Chromium (the browser tests)
#: or the dlib extra (the dlib tests). With ``CI=true`` (as CI services set it) such a skip fails, so that CI
#: cannot pass without running them; .ci/run installs both.
CI_REQUIRED_SKIPS = ("chromium not found", "the dlib extra is not installed", "could not import 'dlib'",
                     "could not import 'face_recognition_models'")


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def pytest_configure(config) -> None:
    """Under pytest-xdist (the README's ``-n 2``) each worker gets one of the machine's cores: one intra-op torch
    thread per worker, so two workers do not fight over the cores with four threads."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import torch

        torch.set_num_threads(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and running_in_ci()) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    if any(text in reason for text in CI_REQUIRED_SKIPS):
        report.outcome = "failed"
        report.longrepr = f"CI=true, so this skip is a failure: {reason}"


def set_flags(settings: tuple[str, ...]) -> list[str]:
    """``--set`` flags for protocol overrides, plus ``--no-progress``."""
    return [flag for setting in settings for flag in ("--set", setting)] + ["--no-progress"]


@pytest.fixture(scope="session")
def submission_cache(tmp_path_factory) -> Path:
    """One synthetic-data cache for the submission tests (the data is made once per session)."""
    return tmp_path_factory.mktemp("submission-cache")


@pytest.fixture(scope="module")
def site(runs: Path, tmp_path_factory) -> Path:
    """A leaderboard site built from the module's ``runs`` fixture."""
    from facebench.reports.leaderboard import build_site

    out = tmp_path_factory.mktemp("site") / "site"
    build_site([runs], out=out, show_progress=False)
    return out


@pytest.fixture
def one_torch_thread():
    """Tiny nets train faster on one intra-op thread, and far faster on a busy 2-core machine. Modules of tiny
    training runs use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
