"""``facebench sweep``: run a protocol over a grid of settings and seeds as submitit jobs, locally or on SLURM.

1. Check: every ``--grid`` key and value against the protocol (one sentence with a did-you-mean, exit 2, nothing
   planned or submitted), and the launcher (SLURM's commands on PATH).
2. Plan (:func:`facebench.sweep.jobs.plan_jobs`): one job per grid point, seed and baseline, addressed by the
   run folders ``facebench run`` writes. The sweep's folder ``OUT/_sweeps/<protocol>-<hash>/`` is named after its
   jobs, so the same command finds the same folder.
3. Decide from the run folders and the manifest of an earlier run (:mod:`facebench.sweep.manifest`): a finished job
   is skipped (a re-run submits nothing), a failed one is listed with its log and submitted again only with
   ``--retry-failed``, a SLURM job still queued or running is watched, not submitted twice.
4. Submit through the launcher (:mod:`facebench.sweep.launchers`), watch the jobs, and rewrite the manifest
   atomically after every change; then the protocol's report and the summary (:mod:`facebench.sweep.summary`).

One sweep process at a time per sweep folder (``facebench.locking``); a second one is refused in one sentence.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facebench.errors import UserInputError, did_you_mean
from facebench.locking import run_folder_lock
from facebench.progress import console
from facebench.sweep.grid import MAX_JOBS, GridAxis, check_grid
from facebench.sweep.jobs import Job, SweepInputs, plan_jobs, run_job
from facebench.sweep.launchers import LocalLauncher, SlurmLauncher, last_error_line, stderr_log
from facebench.sweep.manifest import JobRecord, Manifest, now, read_manifest, write_manifest

Launcher = LocalLauncher | SlurmLauncher


@dataclass(frozen=True, kw_only=True)
class SweepRequest:
    """A sweep as asked for: the shared run inputs, the grid, the seeds, the baselines and what to do."""

    inputs: SweepInputs
    axes: tuple[GridAxis, ...]
    seeds: tuple[int, ...] | None = None        # None: --seed ... --seed + repeats - 1 of the protocol
    first_seed: int = 0
    baselines: tuple[str, ...] = ()
    retry_failed: bool = False
    wait: bool = True
    dry_run: bool = False
    progress: bool = True


@dataclass(kw_only=True)
class SweepOutcome:
    """What a sweep run did: its folder, jobs, their records, and how many it submitted."""

    sweep_dir: Path
    jobs: list[Job]
    records: dict[str, JobRecord] = field(default_factory=dict)
    submitted: int = 0

    def count(self, status: str) -> int:
        return sum(record.status == status for record in self.records.values())


def sweep_folder(out_dir: Path, protocol_name: str, jobs: Sequence[Job]) -> Path:
    """``OUT/_sweeps/<protocol>-<hash12>``: the hash covers every job's key and run folders, so the same command
    on the same data finds the same folder (and a changed grid, seed list or data gets a new one)."""
    payload = json.dumps(sorted([job.key, sorted(str(d.name) for d in job.run_dirs)] for job in jobs))
    return Path(out_dir) / "_sweeps" / f"{protocol_name}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def _check_baselines(names: Sequence[str], protocol, ref: str) -> None:
    known = [b.display_name for b in protocol.baselines]
    for name in names:
        if name not in known and name not in {b.name for b in protocol.baselines}:
            raise UserInputError(f"--baseline {name}: not a baseline of {ref}{did_you_mean(name, known)}; "
                                 f"it has {', '.join(known)}.")


def _record(job: Job, out_dir: Path, previous: JobRecord | None) -> JobRecord:
    """The job's record: the earlier one's status, id, log and error when there is one, the planned folders."""
    fields = previous.model_dump() if previous is not None else {"status": "pending"}
    fields.update(key=job.key, point=list(job.point), seed=job.seed, baseline=job.baseline,
                  run_dirs=[str(d.relative_to(out_dir)) for d in job.run_dirs])
    return JobRecord.model_validate(fields)


def _relative_log(sweep_dir: Path, job_id: str) -> str:
    return str(stderr_log(sweep_dir, job_id).relative_to(sweep_dir))


def run_sweep(request: SweepRequest, launcher: Launcher) -> SweepOutcome:
    """Check, plan, submit and watch a sweep; write its manifest, report and summary. See the module docstring."""
    from facebench.protocol import locate_protocol

    inputs = request.inputs
    launcher.check()
    if not request.wait and not launcher.detachable:
        raise UserInputError("--no-wait needs --launcher slurm: a local job is watched by the sweep that starts it.")
    base = inputs.protocol_at(())
    points = check_grid(inputs.protocol, profile=inputs.profile, sets=inputs.sets, axes=request.axes)
    _check_baselines(request.baselines, base, str(inputs.protocol))
    seeds = request.seeds or tuple(request.first_seed + k for k in range(base.repeats or 1))
    labels = {b.display_name for b in base.baselines
              if not request.baselines or {b.name, b.display_name} & set(request.baselines)}
    if len(points) * len(seeds) * len(labels) > MAX_JOBS:
        raise UserInputError(f"The sweep would be {len(points) * len(seeds) * len(labels):,} jobs ({len(points)} grid "
                             f"points × {len(seeds)} seeds × {len(labels)} baselines); facebench submits at most "
                             f"{MAX_JOBS:,} per sweep.")
    jobs = plan_jobs(inputs, points, seeds=seeds, baselines=request.baselines, progress=request.progress)
    sweep_dir = sweep_folder(inputs.out_dir, base.name, jobs)
    outcome = SweepOutcome(sweep_dir=sweep_dir, jobs=jobs)
    console.print(f"sweep {sweep_dir}: {len(jobs)} jobs ({len(points)} grid points × {len(seeds)} seeds × "
                  f"{len(labels)} baselines), launcher {launcher.name}")
    if request.dry_run:
        for job in jobs:
            state = "finished" if job.finished else "to run"
            console.print(f"  {state}: {job.describe()} → {', '.join(map(str, job.run_dirs))}", highlight=False,
                          markup=False)
        return outcome
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with run_folder_lock(sweep_dir, wait=False):
        manifest_path = sweep_dir / "manifest.json"
        previous = read_manifest(manifest_path)
        earlier = previous.by_key() if previous is not None else {}
        manifest = previous or Manifest(
            protocol=base.name, protocol_file=str(locate_protocol(inputs.protocol)), profile=base.profile,
            sets=list(inputs.sets), grid={axis.key: list(axis.values) for axis in request.axes}, seeds=list(seeds),
            baselines=sorted(labels), created_at=now(), updated_at=now(), jobs=[])
        records = outcome.records
        for job in jobs:
            records[job.key] = _record(job, inputs.out_dir, earlier.get(job.key))
        queue, active = _decide(jobs, records, launcher, sweep_dir, retry_failed=request.retry_failed)

        def save() -> None:
            write_manifest(manifest_path, manifest.model_copy(update={"jobs": [records[job.key] for job in jobs]}))

        save()
        skipped = sum(records[job.key].status == "finished" for job in jobs)
        retried = sum(records[job.key].status == "failed" for job in queue)
        failed = sum(records[job.key].status == "failed" for job in jobs) - retried
        console.print(f"{skipped} finished (skipped), {len(queue)} to submit ({retried} of them failed before), "
                      f"{len(active)} still running, {failed} failed"
                      + (" (listed below; --retry-failed submits them again)" if failed else ""))
        outcome.submitted, finished_now = _dispatch(launcher, sweep_dir, inputs, queue, active, records, save,
                                                    wait=request.wait)
        if finished_now:
            _write_reports(jobs)
        from facebench.sweep.summary import write_summary

        write_summary(sweep_dir, jobs, records, title=f"sweep of {base.name} ({base.profile} profile)")
        console.print(f"manifest: {manifest_path}\nsummary:  {sweep_dir / 'summary.md'}", highlight=False,
                      markup=False)
    return outcome


def _decide(jobs: Sequence[Job], records: dict[str, JobRecord], launcher: Launcher, sweep_dir: Path, *,
            retry_failed: bool) -> tuple[list[Job], dict[str, tuple[Job, Any]]]:
    """Which jobs to submit and which earlier ones to watch; updates ``records`` (finished, failed)."""
    queue: list[Job] = []
    active: dict[str, tuple[Job, Any]] = {}
    for job in jobs:
        record = records[job.key]
        if job.finished:
            records[job.key] = record.model_copy(update={"status": "finished", "error": None})
            continue
        if record.status == "submitted" and record.job_id and record.launcher == launcher.name:
            handle = launcher.watch(sweep_dir, record.job_id)
            if handle is not None:
                active[job.key] = (job, handle)
                continue
            if not launcher.resubmit_unseen:  # it ended while no sweep watched it, without results
                log = stderr_log(sweep_dir, record.job_id)
                records[job.key] = record = record.model_copy(update={
                    "status": "failed", "log": _relative_log(sweep_dir, record.job_id),
                    "error": last_error_line(log) or "ended without results.json"})
        if record.status == "failed" and not retry_failed:
            continue
        queue.append(job)
    return queue, active


def _dispatch(launcher: Launcher, sweep_dir: Path, inputs: SweepInputs, queue: list[Job],
              active: dict[str, tuple[Job, Any]], records: dict[str, JobRecord], save, *, wait: bool
              ) -> tuple[int, int]:
    """Submit ``queue`` as the launcher allows and watch every active job until all have ended (or, without
    ``wait``, return once all are submitted); return how many jobs were submitted and how many finished."""
    executor = None
    submitted = finished = 0
    total = len(queue) + len(active)
    try:
        while queue or (active and wait):
            free = min(launcher.capacity(len(active)), len(queue))
            if free:
                batch, queue[:] = queue[:free], queue[free:]
                executor = executor or launcher.executor(sweep_dir)
                handles = launcher.submit(executor, run_job, [(inputs, job) for job in batch])
                for job, handle in zip(batch, handles, strict=True):
                    job_id = str(handle.job_id)
                    records[job.key] = records[job.key].model_copy(update={
                        "status": "submitted", "launcher": launcher.name, "job_id": job_id, "error": None,
                        "log": _relative_log(sweep_dir, job_id), "attempts": records[job.key].attempts + 1})
                    active[job.key] = (job, handle)
                    console.print(f"submitted {job.describe()}: job {job_id}", highlight=False, markup=False)
                submitted += len(batch)
                save()
            if not wait and not queue:
                break
            time.sleep(launcher.poll_s)
            for key, (job, handle) in list(active.items()):
                if not handle.done():
                    continue
                del active[key]
                record = records[key]
                if job.finished:
                    records[key] = record.model_copy(update={"status": "finished", "error": None})
                    finished += 1
                else:
                    log = stderr_log(sweep_dir, record.job_id)
                    records[key] = record.model_copy(update={
                        "status": "failed", "error": last_error_line(log) or "ended without results.json"})
                done = total - len(queue) - len(active)
                console.print(f"[{done}/{total}] {records[key].status}: {job.describe()}"
                              + (f" (log {sweep_dir / records[key].log})" if records[key].status == "failed" else ""),
                              highlight=False, markup=False)
                save()
    except KeyboardInterrupt:
        save()  # the jobs stay "submitted": the next run watches (SLURM) or resubmits (local) them
        raise
    return submitted, finished


def _write_reports(jobs: Sequence[Job]) -> None:
    """The per-protocol report of every protocol folder the sweep wrote into, as ``facebench run`` writes it."""
    from facebench.reports.bias_report import write_protocol_report

    folders = dict.fromkeys(d.parent for job in jobs for d in job.run_dirs if (d / "results.json").is_file())
    for folder in folders:
        console.print(f"report:   {write_protocol_report(folder)}", highlight=False, markup=False)


def cli_main(args) -> int:
    """``facebench sweep``: build the request and the launcher from the command line, run the sweep; exit 0 when
    every job finished (or, with --no-wait, was submitted), 1 when a job failed."""
    from facebench.protocol import locate_protocol

    if args.data_root is not None and not args.data_root.is_dir():
        raise UserInputError(f"--data-root {args.data_root} is not a folder.")
    slurm_flags = {"--slurm-partition": args.slurm_partition, "--slurm-gpus-per-job": args.slurm_gpus_per_job,
                   "--slurm-cpus-per-job": args.slurm_cpus_per_job, "--slurm-mem-gb": args.slurm_mem_gb,
                   "--slurm-time": args.slurm_time, "--slurm-array-parallelism": args.slurm_array_parallelism,
                   "--slurm-account": args.slurm_account}
    if args.launcher == "local":
        given = [flag for flag, value in slurm_flags.items() if value is not None]
        if given:
            raise UserInputError(f"{given[0]} applies to --launcher slurm only.")
        launcher: Launcher = LocalLauncher(parallel=args.local_parallelism or 1)
    else:
        if args.local_parallelism is not None:
            raise UserInputError("--local-parallelism applies to --launcher local only (SLURM: "
                                 "--slurm-array-parallelism).")
        defaults = SlurmLauncher()
        launcher = SlurmLauncher(
            partition=args.slurm_partition, account=args.slurm_account, cpus_per_job=args.slurm_cpus_per_job,
            mem_gb=args.slurm_mem_gb,
            gpus_per_job=defaults.gpus_per_job if args.slurm_gpus_per_job is None else args.slurm_gpus_per_job,
            time_min=args.slurm_time or defaults.time_min,
            array_parallelism=args.slurm_array_parallelism or defaults.array_parallelism)
    from facebench.sweep.grid import parse_grid

    inputs = SweepInputs(protocol=locate_protocol(args.protocol).resolve(), profile=args.profile,
                         sets=tuple(args.overrides), out_dir=args.out.resolve(),
                         cache_dir=args.cache_dir.resolve() if args.cache_dir else None,
                         data_root=args.data_root.resolve() if args.data_root else None,
                         train_data_root=args.train_data_root.resolve() if args.train_data_root else None)
    request = SweepRequest(
        inputs=inputs, axes=tuple(parse_grid(args.grid, sets=args.overrides)),
        seeds=tuple(range(args.seed, args.seed + args.seeds)) if args.seeds else None, first_seed=args.seed,
        baselines=tuple(args.baseline), retry_failed=args.retry_failed, wait=not args.no_wait,
        dry_run=args.dry_run, progress=not args.no_progress)
    outcome = run_sweep(request, launcher)
    return 1 if outcome.count("failed") else 0
