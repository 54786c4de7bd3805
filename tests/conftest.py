"""Fixtures shared by several test files (pytest finds them here without imports)."""

from __future__ import annotations

from pathlib import Path

import pytest


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
