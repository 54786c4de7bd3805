"""The leaderboard site in a real browser: headless Chromium driven over the Chrome DevTools Protocol.

No extra dependency: Chromium's ``--remote-debugging-pipe`` speaks the DevTools protocol over two pipes (it
reads commands on file descriptor 3 and writes replies and events on 4, each a JSON text ended by a NUL
byte), so a small client over ``os.pipe`` is enough — no websocket library, no webdriver. The tests load the
pages from ``file://``, as a reader of a copied site would, and check that they load without console
errors or dialogs (the submission named ``<script>alert(1)</script>`` must stay text), that clicking a
column header sorts the table, and that every number in the tables matches results.json.

Skipped when no Chromium is installed (``apt-get install chromium``); ``FACEBENCH_CHROMIUM`` names another
binary.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from test_leaderboard import (
    XSS,
    age_results,
    expected_disparity_row,
    expected_group_rows,
    expected_leaderboard_cells,
    fmt,
    load,
    page_of,
    sample_runs,
    value_ci,
)


def chromium_binary() -> str | None:
    candidates = [os.environ.get("FACEBENCH_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"]
    return next((shutil.which(c) for c in candidates if c and shutil.which(c)), None)


class Chromium:
    """A headless Chromium and one page, driven over the DevTools protocol on a pair of pipes."""

    def __init__(self, binary: str, *, width: int = 1280, height: int = 900, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="facebench-chromium-")
        commands_read, commands_write = os.pipe()   # we write commands, Chromium reads them on fd 3
        replies_read, replies_write = os.pipe()     # Chromium writes on fd 4, we read

        def give_chromium_fds_3_and_4() -> None:  # runs in the child between fork and exec
            reading, writing = os.dup(commands_read), os.dup(replies_write)
            os.dup2(reading, 3)
            os.dup2(writing, 4)

        args = [binary, "--headless", "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
                # The pages are the test's own local files; the sandbox is off because containers (and root)
                # cannot start it.
                "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", f"--window-size={width},{height}",
                "about:blank"]
        self.process = subprocess.Popen(args, pass_fds=(3, 4), preexec_fn=give_chromium_fds_3_and_4,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        os.close(commands_read)
        os.close(replies_write)
        self._out, self._in = commands_write, replies_read
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.dialogs: list[str] = []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=True)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=True)

    # -- the protocol
    def _write(self, method: str, params: dict | None, session: bool) -> int:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode("utf-8") + b"\0")
        return self._next_id

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._in], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise EOFError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(raw)
        if message.get("method") == "Page.javascriptDialogOpening":
            # Record it and dismiss it at once, so that a dialog can never block the page.
            self.dialogs.append(message["params"].get("message", ""))
            self._write("Page.handleJavaScriptDialog", {"accept": False}, session=True)
        return message

    def send(self, method: str, params: dict | None = None, *, session: bool = False) -> dict[str, Any]:
        """Send a command and wait for its reply; events that arrive meanwhile are kept in ``events``."""
        command_id = self._write(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._read(deadline)
            if message.get("id") == command_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for(self, event: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        for i, message in enumerate(self.events):
            if message["method"] == event:
                return self.events.pop(i)
        while True:
            message = self._read(deadline)
            if message.get("method") == event:
                return message
            if "method" in message:
                self.events.append(message)

    # -- the page
    def open(self, path: Path) -> None:
        """Load a file and wait for its load event; forget the previous page's events."""
        self.events.clear()
        self.dialogs.clear()
        self.send("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=True)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        reply = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression!r} threw {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and browser errors (a CSP violation, a missing file) so far."""
        found = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert",
                                                                                    "warning"):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") in ("error", "warning"):
                found.append(f"log {params['entry']['level']}: {params['entry'].get('text')}")
        return found + [f"dialog: {message}" for message in self.dialogs]

    def click(self, selector: str) -> None:
        """A real left click (mouse events at the element's centre), as a reader would click."""
        x, y = self.evaluate(f"""(() => {{
            const element = document.querySelector({json.dumps(selector)});
            element.scrollIntoView({{block: "center"}});
            const box = element.getBoundingClientRect();
            return [box.x + box.width / 2, box.y + box.height / 2];
        }})()""")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent",
                      {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}, session=True)

    def table(self, selector: str) -> list[list[str]]:
        """The texts of a table's body cells, whitespace collapsed, as displayed now."""
        return self.evaluate(f"""Array.from(document.querySelectorAll({json.dumps(selector + " tbody tr")}),
            row => Array.from(row.cells, cell => cell.textContent.replace(/\\s+/g, " ").trim()))""")

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.process.wait(timeout=10)
        except (OSError, TimeoutError, EOFError, RuntimeError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            os.close(self._out)
            os.close(self._in)
            shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium not found: apt-get install chromium "
                    "(or set FACEBENCH_CHROMIUM to a Chrome binary)")
    chromium = Chromium(binary)
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return sample_runs(tmp_path_factory)




PROTOCOL_PAGE = Path("protocols") / "age_utk_cross_ethnicity" / "index.html"


@pytest.mark.parametrize("page", ["index", "protocol", "run report"])
def test_pages_load_without_console_errors_or_dialogs(browser: Chromium, site: Path, page: str) -> None:
    pages = {"index": site / "index.html", "protocol": site / PROTOCOL_PAGE, "run report": page_of(site, XSS)}
    path = pages[page]
    browser.open(path)
    assert browser.problems() == []
    assert browser.evaluate("document.title").endswith("[SYNTHETIC]")
    assert browser.evaluate("document.querySelector('.banner').textContent").startswith("SYNTHETIC DATA")
    assert browser.evaluate("document.images.length") == browser.evaluate(
        "Array.from(document.images)"
        ".filter(i => i.src.startsWith('data:image/png;base64,') && i.naturalWidth > 0).length")
    # The hostile submission name is text on the page, never an element: the only script is the sorter.
    assert browser.evaluate("document.scripts.length") == (0 if page == "run report" else 1)
    if page != "index":
        assert XSS in browser.evaluate("document.body.innerText")
    assert browser.problems() == []


def test_clicking_a_header_sorts_the_table(browser: Chromium, site: Path, runs: Path) -> None:
    browser.open(site / PROTOCOL_PAGE)
    results = age_results(runs)
    gaps = {name: float(expected_leaderboard_cells(r)[3].split()[1]) for name, r in results.items()}
    assert len(set(gaps.values())) == 3  # distinct, so the order is a real check

    def column(index: int) -> list[str]:
        return [row[index] for row in browser.table("#leaderboard")]

    def header_state() -> list[str | None]:
        return browser.evaluate("Array.from(document.querySelectorAll('#leaderboard thead th'), "
                                "th => th.getAttribute('aria-sort'))")

    ranked = column(1)
    assert header_state()[0] == "ascending" and column(0) == ["1", "2", "3"]
    largest_gap = "#leaderboard thead th:nth-child(7) button"
    browser.click(largest_gap)
    assert column(1) == sorted(gaps, key=gaps.get)
    assert header_state() == [None] * 6 + ["ascending", None, None]
    browser.click(largest_gap)
    assert column(1) == sorted(gaps, key=gaps.get, reverse=True) != ranked
    assert header_state()[6] == "descending"
    browser.click("#leaderboard thead th:nth-child(2) button")  # entry names: text, natural order
    assert column(1) == sorted(results, key=str.casefold)
    rank = "#leaderboard thead th:nth-child(1) button"
    browser.click(rank)  # a newly clicked column starts ascending: back to the ranking
    assert column(1) == ranked and column(0) == ["1", "2", "3"]
    browser.click(rank)
    assert column(0) == ["3", "2", "1"]
    assert browser.problems() == []


def test_every_number_in_the_tables_matches_results_json(browser: Chromium, site: Path, runs: Path) -> None:
    results = age_results(runs)
    browser.open(site / PROTOCOL_PAGE)
    rows = browser.table("#leaderboard")
    assert len(rows) == len(results)
    for row in rows:
        assert row[3:7] == expected_leaderboard_cells(results[row[1]])
        assert row[8].startswith("reference only synthetic data quick profile")  # the summary, then each reason
    references = browser.table("table.reference")
    assert [r[4] for r in references] == [fmt(r["value"], 3) for r in results[XSS]["reference"]]

    browser.open(site / "index.html")
    best = min(results, key=lambda name: results[name]["metrics"]["overall"]["mae"]["value"])
    (age_row,) = [r for r in browser.table("#protocols") if r[0].startswith("age_utk_cross_ethnicity")]
    assert age_row[2:6] == ["1", "2", best, "mae " + value_ci(results[best]["metrics"]["overall"]["mae"])]

    for name, result in results.items():
        browser.open(page_of(site, name))
        metrics = result["metrics"]
        for attribute in metrics["by_group"]:
            shown = browser.table(f'table.groups[data-attribute="{attribute}"]')
            assert shown == expected_group_rows(result, attribute), (name, attribute)
        assert browser.table("table.overall") == [
            [m, fmt(v["value"], 3), f"[{fmt(v['ci_low'], 3)}, {fmt(v['ci_high'], 3)}]", str(v["n"])]
            for m, v in metrics["overall"].items()]
        shown = browser.table("table.disparities")
        assert sorted(shown) == sorted(expected_disparity_row(result, metric, attribute)
                                       for metric, by_attribute in metrics["disparities"].items()
                                       for attribute in by_attribute)
        assert browser.problems() == []
    manifest = load(site / "manifest.json")
    assert len(manifest["entries"]) == 4
