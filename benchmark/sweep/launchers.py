"""Where a sweep's jobs run: submitit's executors, not a scheduler of facebench's own.

- :class:`LocalLauncher`: submitit's ``LocalExecutor``, one process per job on this machine, at most ``parallel``
  at a time (the executor itself starts every job it is given at once);
- :class:`SlurmLauncher`: submitit's ``AutoExecutor`` on SLURM, every job of a sweep in one job array with the
  partition, GPUs per job, time limit and array parallelism asked for.

Both executors write each job's stdout and stderr under ``SWEEP/logs/<job id>/``. submitit hands the job's function
and arguments to the job process in a pickle it writes itself; facebench never reads a pickle: a job's outcome is
whether its run folders hold results.json, and a failure's reason is read from its stderr log as text.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from facebench.errors import UserInputError

#: submitit's local executor kills a job after ``timeout_min`` (2 minutes by default): a local job may take days.
LOCAL_TIMEOUT_MIN = 7 * 24 * 60

#: SLURM states of a job that has not ended (``sacct``); any other state means it ended.
SLURM_ACTIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING",
                                 "SUSPENDED", "PREEMPTED", "READY"})


def log_folder(sweep_dir: Path) -> Path:
    """submitit's folder pattern for a sweep's jobs (``%j``: the job id)."""
    return sweep_dir / "logs" / "%j"


def stderr_log(sweep_dir: Path, job_id: str) -> Path:
    """The stderr log of job ``job_id`` of the sweep (submitit's layout), made from the id, not read from a file."""
    from submitit.core.utils import JobPaths

    return JobPaths(log_folder(sweep_dir), job_id=job_id, task_id=0).stderr


_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b.*")


def last_error_line(log: Path, *, limit: int = 300) -> str | None:
    """The last line of a job's stderr log that names an exception (``FileExistsError: ...``), else its last
    non-empty line; cut to ``limit`` characters. None when the log cannot be read."""
    try:
        with open(log, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - 65536))
            lines = [line.strip() for line in handle.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return None
    named = [line for line in lines if _ERROR_LINE.match(line)]
    line = (named or lines or [""])[-1]
    return (line[: limit - 1] + "…" if len(line) > limit else line) or None


@dataclass(frozen=True, kw_only=True)
class LocalLauncher:
    """Each job a process on this machine (submitit's ``LocalExecutor``), at most ``parallel`` at a time."""

    name: ClassVar[str] = "local"
    #: Seconds between looks at the running jobs.
    poll_s: ClassVar[float] = 0.5
    #: Whether a sweep may return while its jobs run (a local job is watched by the process that started it).
    detachable: ClassVar[bool] = False
    #: What becomes of a job an earlier sweep submitted but did not see end: a local job ends with the sweep that
    #: started it (an interrupt), so it is submitted again and resumes from its last checkpoint (a twin still
    #: running holds the run folder's lock: facebench.locking).
    resubmit_unseen: ClassVar[bool] = True
    parallel: int = 1

    def check(self) -> None:
        """Nothing to check: this machine runs the jobs."""

    def executor(self, sweep_dir: Path) -> Any:
        import submitit

        executor = submitit.LocalExecutor(folder=log_folder(sweep_dir))
        # LocalExecutor sets CUDA_VISIBLE_DEVICES to its own count of GPUs (none by default); a local job sees the
        # devices this process sees instead.
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        setup = [f"export CUDA_VISIBLE_DEVICES={shlex.quote(visible)}" if visible is not None
                 else "unset CUDA_VISIBLE_DEVICES"]
        executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN, setup=setup)
        return executor

    def capacity(self, running: int) -> int:
        return max(self.parallel - running, 0)

    def submit(self, executor: Any, function, calls: list[tuple]) -> list[Any]:
        return [executor.submit(function, *args) for args in calls]

    def watch(self, sweep_dir: Path, job_id: str) -> Any | None:
        """A job submitted by an earlier sweep process cannot be watched: None (its folders tell its outcome)."""
        return None


@dataclass(frozen=True, kw_only=True)
class SlurmLauncher:
    """Every job in one SLURM job array (submitit's ``AutoExecutor`` on ``cluster="slurm"``)."""

    name: ClassVar[str] = "slurm"
    poll_s: ClassVar[float] = 30.0
    detachable: ClassVar[bool] = True
    #: A SLURM job that ended unseen without results failed (its log says why): listed, resubmitted on request.
    resubmit_unseen: ClassVar[bool] = False
    partition: str | None = None
    gpus_per_job: int = 1
    cpus_per_job: int | None = None
    mem_gb: float | None = None
    time_min: int = 240
    array_parallelism: int = 64
    account: str | None = None

    def check(self) -> None:
        """Refuse, before anything is planned, where SLURM's commands are missing."""
        missing = [command for command in ("sbatch", "srun", "sacct") if shutil.which(command) is None]
        if missing:
            raise UserInputError(f"--launcher slurm needs SLURM's {', '.join(missing)} on PATH: run facebench sweep "
                                 "on the cluster's login node, or use --launcher local.")

    def executor(self, sweep_dir: Path) -> Any:
        import submitit

        executor = submitit.AutoExecutor(folder=log_folder(sweep_dir), cluster="slurm")
        executor.update_parameters(
            name="facebench-sweep", timeout_min=self.time_min, nodes=1, tasks_per_node=1,
            gpus_per_node=self.gpus_per_job, cpus_per_task=self.cpus_per_job, mem_gb=self.mem_gb,
            slurm_partition=self.partition, slurm_array_parallelism=self.array_parallelism,
            slurm_account=self.account)
        return executor

    def capacity(self, running: int) -> int:
        return 1 << 30  # SLURM runs at most array_parallelism of the array at a time

    def submit(self, executor: Any, function, calls: list[tuple]) -> list[Any]:
        with executor.batch():  # one job array
            delayed = [executor.submit(function, *args) for args in calls]
        return list(delayed)

    def watch(self, sweep_dir: Path, job_id: str) -> Any | None:
        """The submitit job of an earlier sweep process when SLURM says it has not ended (``sacct``), else None."""
        from submitit.slurm.slurm import SlurmJob

        job = SlurmJob(folder=log_folder(sweep_dir), job_id=job_id)
        state = str(job.get_info(mode="force").get("State") or "UNKNOWN").split()[0].upper()
        return job if state in SLURM_ACTIVE_STATES else None
