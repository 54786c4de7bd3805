"""Open every page of a built leaderboard site in headless Chromium and report console errors, warnings and
dialogs per page (the browser test does the same on a small site; this checks a real one).

    facebench leaderboard runs/ --out site/ && python scripts/check_site.py site/

Exit 0 when every page is clean, 1 otherwise. Uses the DevTools-over-pipes driver of tests/test_browser.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_browser import Chromium, chromium_binary  # noqa: E402


def main(site: Path) -> int:
    binary = chromium_binary()
    if binary is None:
        sys.exit("check_site.py: chromium not found: apt-get install chromium (or set FACEBENCH_CHROMIUM)")
    pages = sorted(site.rglob("*.html"))
    browser = Chromium(binary)
    bad = 0
    try:
        for page in pages:
            browser.open(page)
            problems = browser.problems()
            if problems:
                bad += 1
                print(f"{page.relative_to(site)}: {problems[:3]}")
    finally:
        browser.close()
    print(f"{len(pages)} pages opened, {bad} with console errors, warnings or dialogs")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit("usage: python scripts/check_site.py SITE_DIR")
    sys.exit(main(Path(sys.argv[1])))
