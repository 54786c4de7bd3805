"""Build a leaderboard site from run folders and screenshot each kind of page with headless Chromium.

    python scripts/screenshots.py /tmp/fb_sample_runs --out docs/screenshots

writes ``index.png`` (the protocol index), ``protocol.png`` (a protocol's sortable table), ``run.png`` (a
run's bias report) and ``protocol-dark.png`` (the table in the dark colour scheme), each 1280x900 by default.
The site itself goes to a temporary folder unless ``--site`` is given. Needs Chromium
(``apt-get install chromium``; ``--chromium`` or ``FACEBENCH_CHROMIUM`` names another binary).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from facebench.reports.leaderboard import build_site


def find_chromium(explicit: str | None) -> str:
    for candidate in (explicit, os.environ.get("FACEBENCH_CHROMIUM"), "chromium", "chromium-browser",
                      "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    sys.exit("screenshots.py: chromium not found: apt-get install chromium (or pass --chromium BINARY)")


def screenshot(chromium: str, page: Path, png: Path, *, width: int, height: int, dark: bool = False) -> None:
    """One viewport-sized PNG of ``page`` (a local file) in a fresh, throw-away browser profile."""
    with tempfile.TemporaryDirectory(prefix="facebench-chromium-") as profile:
        args = [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                "--no-first-run", f"--user-data-dir={profile}", f"--window-size={width},{height}",
                f"--screenshot={png}"]
        if dark:
            args.append("--force-dark-mode")  # makes prefers-color-scheme: dark match
        subprocess.run([*args, page.resolve().as_uri()], check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(png)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path,
                        help="folders of run directories (as for facebench leaderboard)")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"), help="folder for the PNGs")
    parser.add_argument("--site", type=Path, help="where to build the site (default: a temporary folder)")
    parser.add_argument("--protocol", help="the protocol to show (default: the first in the manifest)")
    parser.add_argument("--chromium", help="the Chromium binary")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args(argv)
    chromium = find_chromium(args.chromium)
    with tempfile.TemporaryDirectory(prefix="facebench-site-") as scratch:
        site = args.site or Path(scratch) / "site"
        build_site(args.runs, out=site, show_progress=False)
        entries = json.loads((site / "manifest.json").read_text())["entries"]
        protocol = args.protocol or entries[0]["protocol"]
        chosen = [e for e in entries if e["protocol"] == protocol]
        if not chosen:
            folders = ", ".join(map(str, args.runs))
            sys.exit(f"screenshots.py: no run of protocol {protocol!r} under {folders}")
        # A baseline's report when there is one (a submission's otherwise).
        run = next((e for e in chosen if e["kind"] == "baseline"), chosen[0])
        protocol_folder = (site / run["results"]).parent.parent.name
        pages = site / "protocols" / protocol_folder
        args.out.mkdir(parents=True, exist_ok=True)
        size = {"width": args.width, "height": args.height}
        screenshot(chromium, site / "index.html", args.out / "index.png", **size)
        screenshot(chromium, pages / "index.html", args.out / "protocol.png", **size)
        screenshot(chromium, pages / f"{run['run']}.html", args.out / "run.png", **size)
        screenshot(chromium, pages / "index.html", args.out / "protocol-dark.png", dark=True, **size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
