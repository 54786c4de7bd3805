"""``facebench sweep``: a grid × seeds of real ``facebench run`` jobs through submitit's LocalExecutor (toy sizes),
their manifest, skipping, failures and retries, the summary over seeds, the leaderboard's seed rows, bad grids,
and the SLURM launcher against stand-in ``sbatch``/``sacct``/``srun`` commands (no cluster here).

One sweep (2 learning rates × 2 seeds of ``age_utk_cross_ethnicity`` on 300 synthetic 32 px faces, 1 epoch, two
jobs at a time) is run four times by the module fixture: with one run folder's lock blocked by a folder (that job
fails), again (nothing submitted), with ``--retry-failed`` after the block is removed, and again (all skipped).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import stat
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from facebench.cli import main
from facebench.errors import UserInputError
from facebench.results import load_run

AGE = Path(__file__).resolve().parent.parent / "protocols" / "age_utk_cross_ethnicity.yaml"
TOY = ["dataset.synthetic.n=300", "dataset.synthetic.image_size=32", "dataset.synthetic.render_size=32",
       "model.image_size=16", "training.epochs=1", "evaluation.n_boot=20"]
LRS = ("0.001", "0.003")
TINY_PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGA"
            "WjR9awAAAABJRU5ErkJggg==")


def sets() -> list[str]:
    return [flag for setting in TOY for flag in ("--set", setting)]


def sweep(out: Path, cache: Path, *extra: str) -> tuple[int, str]:
    """Run ``facebench sweep`` in this process; return its exit code and what it printed (stdout and stderr)."""
    from facebench.progress import console

    printed = io.StringIO()
    with contextlib.redirect_stderr(printed), contextlib.redirect_stdout(printed), pytest.MonkeyPatch.context() as patch:
        patch.setattr(console, "_width", 1000)  # one line per message, whatever the terminal
        code = main(["sweep", str(AGE), "--out", str(out), "--cache-dir", str(cache), *sets(), "--no-progress",
                     *extra])
    return code, printed.getvalue()


def manifest_of(out: Path) -> dict:
    (path,) = (out / "_sweeps").glob("age_utk_cross_ethnicity-*/manifest.json")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def flow(tmp_path_factory) -> dict:
    """The four runs of one local sweep, with what each printed and the manifest after each."""
    from facebench.locking import lock_path
    from facebench.sweep.grid import check_grid, parse_grid
    from facebench.sweep.jobs import SweepInputs, plan_jobs

    root = tmp_path_factory.mktemp("sweep")
    out, cache = root / "runs", root / "cache"
    grid = ["--grid", f"training.lr={','.join(LRS)}", "--seeds", "2", "--local-parallelism", "2"]
    inputs = SweepInputs(protocol=AGE, profile=None, sets=tuple(TOY), out_dir=out.resolve(), cache_dir=cache)
    jobs = plan_jobs(inputs, check_grid(AGE, profile=None, sets=TOY, axes=parse_grid([f"training.lr={','.join(LRS)}"])),
                     seeds=(0, 1), progress=False)
    # A folder where the run folder's lock file goes (facebench.locking): that job fails as it starts its run.
    blocked = lock_path(jobs[-1].run_dirs[0])
    blocked.mkdir(parents=True)
    result = {"out": out, "cache": cache, "jobs": jobs, "blocked": blocked, "grid": grid}

    def step(*extra: str) -> tuple[int, str, dict, str]:
        code, printed = sweep(out, cache, *grid, *extra)
        (sweep_dir,) = (out / "_sweeps").glob("age_utk_cross_ethnicity-*")
        return code, printed, manifest_of(out), (sweep_dir / "summary.md").read_text()

    with pytest.MonkeyPatch.context() as patch:  # the report's plots are tested elsewhere: 1-pixel stand-ins
        from facebench.reports import plots

        for name in ("forest_plot", "lines_by_band", "det_curves"):
            patch.setattr(plots, name, lambda *args, **kwargs: TINY_PNG)
        patch.setenv("OMP_NUM_THREADS", "1")  # the jobs' tiny nets: one thread each is faster on a busy machine
        result["first"] = step()
        result["again"] = step()
        blocked.rmdir()
        result["retry"] = step("--retry-failed")
        result["last"] = step()
    return result


def records(manifest: dict) -> dict[tuple[str, int], dict]:
    return {(job["point"][0], job["seed"]): job for job in manifest["jobs"]}


def test_a_failed_job_is_listed_with_its_log(flow) -> None:
    code, printed, manifest, summary = flow["first"]
    assert code == 1
    by_job = records(manifest)
    failed = by_job[(f"training.lr={LRS[-1]}", 1)]
    assert failed["status"] == "failed" and failed["attempts"] == 1
    assert [j["status"] for j in manifest["jobs"]].count("finished") == 3
    (sweep_dir,) = (flow["out"] / "_sweeps").glob("age_utk_cross_ethnicity-*")
    log = sweep_dir / failed["log"]
    assert log.is_file() and "IsADirectoryError" in log.read_text()  # the job's own traceback, as text
    assert failed["error"].startswith("IsADirectoryError") and str(flow["blocked"]) in failed["error"]
    assert str(log) in printed
    assert "## Failed jobs" in summary and str(log) in summary and "--retry-failed" in summary
    assert "report:" in printed and (flow["out"] / "age_utk_cross_ethnicity" / "report.html").is_file()


def test_a_rerun_submits_nothing_and_keeps_listing_the_failure(flow) -> None:
    code, printed, manifest, summary = flow["again"]
    assert code == 1 and "## Failed jobs" in summary
    assert "0 to submit" in printed and "1 failed" in printed
    assert manifest["jobs"] == flow["first"][2]["jobs"]  # no job submitted, no record changed
    assert "submitted source_only" not in printed


def test_retry_failed_submits_only_the_failed_job(flow) -> None:
    code, printed, manifest, summary = flow["retry"]
    assert code == 0 and "## Failed jobs" not in summary
    assert printed.count("submitted source_only") == 1 and "1 to submit (1 of them failed before)" in printed
    before, after = records(flow["again"][2]), records(manifest)
    for key, job in after.items():
        assert job["status"] == "finished"
        retried = before[key]["status"] == "failed"
        assert job["attempts"] == before[key]["attempts"] + retried
        assert (job["job_id"] != before[key]["job_id"]) == retried


def test_a_finished_sweep_rerun_skips_everything(flow) -> None:
    code, printed, manifest, _ = flow["last"]
    assert code == 0
    assert "4 finished (skipped), 0 to submit" in printed and "submitted" not in printed.replace("(skipped)", "")
    assert [(j["job_id"], j["attempts"]) for j in manifest["jobs"]] == \
        [(j["job_id"], j["attempts"]) for j in flow["retry"][2]["jobs"]]
    assert all(job.finished for job in flow["jobs"])


def test_jobs_are_the_run_folders_of_facebench_run(flow) -> None:
    """A sweep point is `facebench run --set ... --seed s`: run_protocol finds each job's folder finished."""
    from facebench.protocol import load_protocol
    from facebench.run import RunOptions, run_protocol

    for job in flow["jobs"][1:3]:  # (first rate, seed 1) and (second rate, seed 0)
        (run_dir,) = job.run_dirs
        written = (run_dir / "results.json").stat().st_mtime_ns
        protocol = load_protocol(AGE, overrides=[*TOY, *job.point])
        assert run_protocol(protocol, RunOptions(out_dir=flow["out"].resolve(), seed=job.seed,
                                                 cache_dir=flow["cache"], progress=False)) == [run_dir]
        assert (run_dir / "results.json").stat().st_mtime_ns == written  # skipped, not run again
        results = load_run(run_dir).results
        assert results["provenance"]["seed"] == job.seed and results["protocol"]["overrides"] == [*TOY, *job.point]
    manifest = flow["last"][2]
    assert {tuple(j["run_dirs"]) for j in manifest["jobs"]} == {
        (str(job.run_dirs[0].relative_to(flow["out"].resolve())),) for job in flow["jobs"]}


def test_summary_gives_the_t_interval_over_seeds_beside_each_runs_interval(flow) -> None:
    (sweep_dir,) = (flow["out"] / "_sweeps").glob("age_utk_cross_ethnicity-*")
    runs_table = pd.read_csv(sweep_dir / "runs.csv")
    assert list(runs_table["status"]) == ["finished"] * 4 and list(runs_table["seed"]) == [0, 1, 0, 1]
    summary = pd.read_csv(sweep_dir / "summary.csv", dtype={"training.lr": str})
    assert list(summary["training.lr"]) == list(LRS) and (summary["seeds_done"] == 2).all()
    markdown, printed = flow["last"][3], flow["last"][1]
    assert "SYNTHETIC DATA" in markdown and "SYNTHETIC DATA" in printed
    for header in ("mae: mean [t interval over seeds]", "each seed [its bootstrap interval]"):
        assert header in markdown and header in printed  # the terminal table too
    for _, row in summary.iterrows():
        runs = [load_run(d) for job in flow["jobs"] if job.point == (f"training.lr={row['training.lr']}",)
                for d in job.run_dirs]
        maes = [run.results["metrics"]["overall"]["mae"]["value"] for run in runs]
        # Student's t over the 2 seeds, written out here: mean ± t(0.975, 1) · s / √2
        mean, half = sum(maes) / 2, stats.t.ppf(0.975, 1) * abs(maes[0] - maes[1]) / math.sqrt(2) / math.sqrt(2)
        assert row["mean"] == pytest.approx(mean, rel=1e-12)
        assert (row["t_low"], row["t_high"]) == pytest.approx((mean - half, mean + half), rel=1e-9)
        assert row["metric"] == "mae" and bool(row["synthetic"])
        gaps = {a: [r.results["metrics"]["disparities"]["mae"][a]["gap"] for r in runs] for a in ("race", "gender",
                                                                                                    "age_band")}
        widest = max(gaps, key=lambda a: sum(gaps[a]))
        assert row["gap_attribute"] == widest and row["gap_mean"] == pytest.approx(sum(gaps[widest]) / 2)
        # each seed's own bootstrap interval is printed beside the mean
        for run in runs:
            mae = run.primary_value
            own = f"seed {run.results['provenance']['seed']}: {mae['value']:.3f} [{mae['ci_low']:.3f}, " \
                  f"{mae['ci_high']:.3f}]"
            assert own in markdown and own in printed
        assert f"{mean:.3f} [{mean - half:.3f}, {mean + half:.3f}]" in printed
    # The second learning rate against the first, paired by seed (same data and initial weights per seed): the t
    # interval over the two seeds' differences, written out here.
    def maes_of(lr: str) -> dict[int, float]:
        runs = [load_run(d) for job in flow["jobs"] if job.point == (f"training.lr={lr}",) for d in job.run_dirs]
        return {run.results["provenance"]["seed"]: run.results["metrics"]["overall"]["mae"]["value"] for run in runs}

    first, second = maes_of(LRS[0]), maes_of(LRS[1])
    differences = [second[seed] - first[seed] for seed in (0, 1)]
    mean = sum(differences) / 2
    half = stats.t.ppf(0.975, 1) * abs(differences[0] - differences[1]) / math.sqrt(2) / math.sqrt(2)
    assert math.isnan(summary["change_vs_first"][0]) and summary["change_seeds"][1] == 2
    assert summary["change_vs_first"][1] == pytest.approx(mean, rel=1e-9, abs=1e-12)
    assert (summary["change_t_low"][1], summary["change_t_high"][1]) == pytest.approx((mean - half, mean + half),
                                                                                    rel=1e-9)
    assert f"{mean:.3f} [{mean - half:.3f}, {mean + half:.3f}] (2 seeds)" in markdown
    assert "(reference)" in markdown and "(reference)" in printed


def test_the_leaderboard_shows_one_row_per_grid_point_with_its_seed_runs(flow, tmp_path, monkeypatch) -> None:
    from facebench.reports import plots
    from facebench.reports.leaderboard import build_site

    for name in ("forest_plot", "lines_by_band", "det_curves"):
        monkeypatch.setattr(plots, name, lambda *args, **kwargs: TINY_PNG)

    build_site([flow["out"]], out=tmp_path / "site", show_progress=False)
    page = (tmp_path / "site" / "protocols" / "age_utk_cross_ethnicity" / "index.html").read_text()
    table = page[page.index('id="leaderboard"'):page.index("</table>", page.index('id="leaderboard"'))]
    rows = re.findall(r"<tr data-run=.*?</tr>", table, flags=re.S)
    assert len(rows) == len(LRS)  # 4 runs, 2 rows
    for lr in LRS:
        (row,) = [r for r in rows if f"training.lr={lr}" in r]
        runs = [load_run(d) for job in flow["jobs"] if job.point == (f"training.lr={lr}",) for d in job.run_dirs]
        assert "mean of 2 seeds" in row and "t over seeds" in row
        for run in runs:
            link = f'href="{run.folder.name}.html">seed {run.results["provenance"]["seed"]}</a>'
            assert link in row and (tmp_path / "site" / "protocols" / "age_utk_cross_ethnicity" /
                                    f"{run.folder.name}.html").is_file()
        primary = float(re.findall(r'data-sort="([^"]+)"', row)[0])
        assert primary == pytest.approx(sum(r.primary_value["value"] for r in runs) / 2, rel=1e-12)


@pytest.mark.parametrize(("grid", "expected"), [
    (["--grid", "training.lrr=0.1,0.2"], "unknown key 'training.lrr' (did you mean 'lr'?)"),
    (["--grid", "trainng.lr=0.1"], "unknown key 'trainng' (did you mean 'training'?)"),
    (["--grid", "training.lr=0.1,abc"], "--grid training.lr=abc): key 'training.lr'"),
    (["--grid", "training.lr=0.1,0.1"], "--grid training.lr: the value '0.1' is the same as '0.1'"),
    (["--grid", "training.lr=0.001,1e-3"], "are the same protocol"),
    (["--grid", "training.lr=0.1", "--grid", "training.lr=0.2"], "is given twice"),
    (["--grid", "training.epochs=2,3"], "also given with --set"),
    (["--grid", "baselines.0.params.layers=[conv,fc1"], "unbalanced brackets"),
    (["--grid", "training.lr="], "is not of the form key.path=value1,value2"),
    (["--baseline", "source_onyl"], "did you mean 'source_only'?"),
    (["--slurm-partition", "gpu"], "--slurm-partition applies to --launcher slurm only."),
    (["--no-wait"], "--no-wait needs --launcher slurm"),
])
def test_a_bad_grid_is_one_sentence_and_nothing_is_planned(tmp_path, capsys, grid, expected) -> None:
    out, cache = tmp_path / "runs", tmp_path / "cache"
    assert main(["sweep", str(AGE), "--out", str(out), "--cache-dir", str(cache), *sets(), *grid]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("facebench: error: ") and "\n" not in error and expected in error
    assert not out.exists() and not cache.exists()  # no data synthesised, nothing submitted


def test_the_manifest_is_read_strictly(tmp_path) -> None:
    from facebench.sweep.manifest import read_manifest

    path = tmp_path / "manifest.json"
    assert read_manifest(path) is None
    good = {"schema": "facebench-sweep/1", "protocol": "p", "protocol_file": "p.yaml", "profile": "quick", "sets": [],
            "grid": {}, "seeds": [0], "baselines": ["b"], "created_at": "t", "updated_at": "t",
            "jobs": [{"key": "k", "point": [], "seed": 0, "baseline": "b", "run_dirs": ["p/b-1"],
                      "status": "failed", "job_id": "12_3", "log": "logs/12_3/12_3_0_log.err", "attempts": 1}]}
    path.write_text(json.dumps(good))
    assert read_manifest(path).jobs[0].job_id == "12_3"
    for bad, message in ((dict(good, extra=1), "unknown key 'extra'"),
                         ({**good, "jobs": [{**good["jobs"][0], "job_id": "../../etc"}]}, "jobs[0].job_id"),
                         ({**good, "jobs": [{**good["jobs"][0], "status": "lost"}]}, "jobs[0].status")):
        path.write_text(json.dumps(bad))
        with pytest.raises(UserInputError, match=re.escape(message)) as caught:
            read_manifest(path)
        assert str(path) in str(caught.value)


def test_local_jobs_run_at_most_parallel_at_a_time(tmp_path) -> None:
    """The dispatch loop against a launcher whose jobs end on the third look: never more than ``parallel`` running,
    every job submitted once, a job that ends without results.json recorded as failed with its log."""
    from dataclasses import dataclass

    from facebench.sweep.jobs import Job
    from facebench.sweep.manifest import JobRecord
    from facebench.sweep.runner import _dispatch

    running: list[object] = []
    peak = []

    @dataclass
    class Handle:
        job_id: str
        job: Job
        looks: int = 0

        def done(self) -> bool:
            self.looks += 1
            if self.looks < 3:
                return False
            if self in running:
                running.remove(self)
                if self.job.seed != 3:  # seed 3 "crashes": no results.json
                    self.job.run_dirs[0].mkdir(parents=True)
                    (self.job.run_dirs[0] / "results.json").write_text("{}")
            return True

    class Launcher:
        name, poll_s, detachable, resubmit_unseen = "local", 0.0, False, True

        def capacity(self, active: int) -> int:
            return max(2 - active, 0)

        def executor(self, sweep_dir):
            return None

        def submit(self, executor, function, calls):
            handles = [Handle(job_id=str(100 + job.seed), job=job) for _, job in calls]
            running.extend(handles)
            peak.append(len(running))
            return handles

    jobs = [Job(point=(), seed=seed, baseline="b", run_dirs=(tmp_path / f"b-{seed}",)) for seed in range(5)]
    records = {job.key: JobRecord(key=job.key, point=[], seed=job.seed, baseline="b", run_dirs=[f"b-{job.seed}"],
                                  status="pending") for job in jobs}
    saves = []
    submitted, finished = _dispatch(Launcher(), tmp_path, None, list(jobs), {}, records, lambda: saves.append(1),
                                    wait=True)
    assert (submitted, finished) == (5, 4) and max(peak) == 2 and not running
    assert [records[job.key].status for job in jobs] == ["finished"] * 3 + ["failed", "finished"]
    failed = records[jobs[3].key]
    assert failed.job_id == "103" and failed.log == "logs/103/103_0_log.err" and failed.attempts == 1
    assert failed.error == "ended without results.json"  # no log was written
    assert len(saves) >= 5 + 3  # the manifest is rewritten after every submission round and every end


def test_a_local_job_an_interrupted_sweep_left_running_is_submitted_again(tmp_path) -> None:
    """A local job ends with the sweep that started it (Ctrl-C): the next run submits it again (it resumes from its
    checkpoint), while a failed one waits for --retry-failed and a finished one is skipped."""
    from facebench.sweep.jobs import Job
    from facebench.sweep.launchers import LocalLauncher
    from facebench.sweep.manifest import JobRecord
    from facebench.sweep.runner import _decide

    jobs = [Job(point=(), seed=seed, baseline="b", run_dirs=(tmp_path / f"b-{seed}",)) for seed in range(3)]
    (tmp_path / "b-2").mkdir()
    (tmp_path / "b-2" / "results.json").write_text("{}")
    records = {job.key: JobRecord(key=job.key, point=[], seed=job.seed, baseline="b", run_dirs=[], launcher="local",
                                  job_id=str(100 + job.seed), status=status, attempts=1)
               for job, status in zip(jobs, ("submitted", "failed", "submitted"), strict=True)}
    for retry, expected in ((False, [jobs[0]]), (True, jobs[:2])):
        queue, active = _decide(jobs, dict(records), LocalLauncher(), tmp_path, retry_failed=retry)
        assert queue == expected and active == {}


def test_a_local_job_sees_the_gpus_this_process_sees(tmp_path, monkeypatch) -> None:
    """submitit's LocalExecutor would set CUDA_VISIBLE_DEVICES to its own GPU count (none): the sweep undoes it."""
    from facebench.sweep.launchers import LocalLauncher

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert LocalLauncher().executor(tmp_path).parameters["setup"] == ["export CUDA_VISIBLE_DEVICES=2,3"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert LocalLauncher().executor(tmp_path).parameters["setup"] == ["unset CUDA_VISIBLE_DEVICES"]


FAKE_SBATCH = """#!/bin/sh
n=$(cat "$FAKE_SLURM/next" 2>/dev/null || echo 4242)
cp "$1" "$FAKE_SLURM/sbatch-$n.sh"
echo $((n + 1)) > "$FAKE_SLURM/next"
echo "Submitted batch job $n"
"""
FAKE_SACCT = """#!/bin/sh
echo "JobID|State|NodeList"
while [ $# -gt 0 ]; do
  if [ "$1" = "-j" ]; then for k in 0 1; do echo "$2_$k|$(cat "$FAKE_SLURM/state")|node1"; done; shift; fi
  shift
done
"""


def test_the_slurm_launcher_submits_one_array_and_watches_it(flow, tmp_path, monkeypatch) -> None:
    """Against stand-ins for sbatch, sacct and srun: the array's sbatch file carries the options, a re-run while
    SLURM says RUNNING submits nothing, a job SLURM says FAILED is listed and resubmitted only on request."""
    bin_dir, state = tmp_path / "bin", tmp_path / "slurm"
    bin_dir.mkdir()
    state.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("sacct", FAKE_SACCT), ("srun", "#!/bin/sh\nexit 0\n")):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(state))
    out = tmp_path / "runs"
    slurm = ["--grid", "training.lr=0.005", "--seeds", "2", "--launcher", "slurm", "--no-wait", "--slurm-partition",
             "debug", "--slurm-gpus-per-job", "2", "--slurm-time", "30", "--slurm-array-parallelism", "1"]

    code, printed = sweep(out, flow["cache"], *slurm)
    assert code == 0, printed
    script = (state / "sbatch-4242.sh").read_text()
    for line in ("#SBATCH --partition=debug", "#SBATCH --gpus-per-node=2", "#SBATCH --time=30",
                 "#SBATCH --array=0-1%1", "#SBATCH --job-name=facebench-sweep"):
        assert line in script
    manifest = manifest_of(out)
    assert [(j["job_id"], j["status"], j["launcher"]) for j in manifest["jobs"]] == [
        ("4242_0", "submitted", "slurm"), ("4242_1", "submitted", "slurm")]
    assert not list(out.glob("age_utk_cross_ethnicity/*/results.json"))  # submitted, not run here

    (state / "state").write_text("RUNNING")
    code, printed = sweep(out, flow["cache"], *slurm)
    assert code == 0 and "0 to submit" in printed and "2 still running" in printed
    assert sorted(p.name for p in state.glob("sbatch-*")) == ["sbatch-4242.sh"]

    (state / "state").write_text("FAILED")
    code, printed = sweep(out, flow["cache"], *slurm)
    assert code == 1 and "0 to submit" in printed and "2 failed" in printed
    assert all(j["status"] == "failed" and j["log"] == f"logs/{j['job_id']}/{j['job_id']}_0_log.err"
               for j in manifest_of(out)["jobs"])
    code, printed = sweep(out, flow["cache"], *slurm, "--retry-failed")
    assert code == 0 and "2 to submit (2 of them failed before)" in printed
    assert [j["job_id"] for j in manifest_of(out)["jobs"]] == ["4243_0", "4243_1"]
    assert all(j["attempts"] == 2 for j in manifest_of(out)["jobs"])


def test_slurm_without_its_commands_is_one_sentence(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, srun or sacct
    assert main(["sweep", str(AGE), "--out", str(tmp_path / "runs"), "--launcher", "slurm"]) == 2
    assert "needs SLURM's sbatch, srun, sacct on PATH" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
