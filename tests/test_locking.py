"""One writer per run folder: a second process waits for the lock or refuses in one sentence; a killed
holder never leaves the lock behind."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from facebench.errors import UserInputError
from facebench.locking import lock_path, run_folder_lock


def _hold(run_dir: str, seconds: float, ready) -> None:
    with run_folder_lock(Path(run_dir)):
        ready.set()
        time.sleep(seconds)


@pytest.fixture
def holder(tmp_path):
    """A child process holding the lock of tmp_path/run for 1.5 s."""
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    process = context.Process(target=_hold, args=(str(tmp_path / "run"), 1.5, ready))
    process.start()
    assert ready.wait(10)
    yield process
    process.join(10)


def test_a_second_writer_is_refused_in_one_sentence(tmp_path, holder) -> None:
    with pytest.raises(UserInputError, match=rf"being written by another facebench process \(pid {holder.pid}\)"):
        with run_folder_lock(tmp_path / "run", wait=False):
            pass


def test_a_second_writer_waits_for_the_first(tmp_path, holder) -> None:
    messages = []
    started = time.perf_counter()
    with run_folder_lock(tmp_path / "run", on_wait=messages.append):
        waited = time.perf_counter() - started
        assert waited > 0.5  # the holder keeps it for 1.5 s after signalling
    assert len(messages) == 1 and "waiting" in messages[0]
    assert lock_path(tmp_path / "run").read_text() == str(os.getpid())


def test_a_killed_holder_releases_the_lock(tmp_path, holder) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    with run_folder_lock(tmp_path / "run", wait=False):  # no stale lock after kill -9
        pass


@pytest.mark.slow
def test_two_identical_runs_train_once(tmp_path) -> None:
    """Two identical `facebench run` commands started together: one trains, the other waits for it and then
    reuses its results (before the lock, both trained in full and raced on the same files)."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "facebench", "run", "age_utk_cross_ethnicity", "--baseline", "source_only",
               "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--no-progress",
               "--set", "dataset.synthetic.n=300", "--set", "dataset.synthetic.image_size=48",
               "--set", "dataset.synthetic.render_size=48", "--set", "model.image_size=32",
               "--set", "training.epochs=1", "--set", "evaluation.n_boot=50"]
    subprocess.run(command[:4] + ["--help"], check=True, capture_output=True)  # warm imports before the race
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.5)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outputs = [process.communicate(timeout=300)[0] for process in (first, second)]
    assert [process.returncode for process in (first, second)] == [0, 0], outputs
    assert sum("already done" in text for text in outputs) == 1, outputs
    assert len(list((tmp_path / "out").glob("*/*/results.json"))) == 1
