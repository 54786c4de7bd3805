"""A sweep's jobs: one per grid point, seed and baseline, addressed by the run folders ``facebench run`` writes.

There is no second addressing scheme: :func:`plan_jobs` asks :func:`facebench.run.plan_runs` for the hash-addressed
run folders (resolved protocol, params, seed, data and split fingerprints) of each grid point, and a job is
finished exactly when each of its folders holds ``results.json``. :func:`run_job` is what a submitit job executes:
:func:`facebench.run.run_protocol` for one baseline and one seed, which skips a finished folder and resumes an
unfinished one from its checkpoint, as ``facebench run`` does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from facebench.protocol import Protocol, load_protocol
from facebench.run import RunOptions, plan_runs, run_protocol, selected_baselines


@dataclass(frozen=True, kw_only=True)
class SweepInputs:
    """What every job of a sweep shares: ``facebench run``'s arguments apart from the grid point, the seed and
    the baseline. Paths are absolute: a job may start in another folder (a SLURM node)."""

    protocol: Path                     # the protocol file
    profile: str | None
    sets: tuple[str, ...]              # the --set overrides of every point
    out_dir: Path
    cache_dir: Path | None = None
    data_root: Path | None = None
    train_data_root: Path | None = None

    def options(self, *, seeds: Sequence[int], baselines: Sequence[str], progress: bool) -> RunOptions:
        return RunOptions(out_dir=self.out_dir, seeds=tuple(seeds), baselines=tuple(baselines),
                          data_root=self.data_root, cache_dir=self.cache_dir, train_data_root=self.train_data_root,
                          progress=progress)

    def protocol_at(self, point: Sequence[str]) -> Protocol:
        return load_protocol(self.protocol, profile=self.profile, overrides=self.sets, grid=tuple(point))


@dataclass(frozen=True, kw_only=True)
class Job:
    """One submitit job: ``facebench run PROTOCOL --set ... --grid point --seed seed --baseline baseline``, which
    writes ``run_dirs`` (one folder; several only when baselines share a label)."""

    point: tuple[str, ...]
    seed: int
    baseline: str
    run_dirs: tuple[Path, ...]

    @property
    def key(self) -> str:
        """The job's name in the sweep manifest: its grid point, seed and baseline."""
        return json.dumps([list(self.point), self.seed, self.baseline])

    @property
    def finished(self) -> bool:
        return all((run_dir / "results.json").is_file() for run_dir in self.run_dirs)

    def describe(self) -> str:
        """One line: baseline, seed and grid point."""
        return f"{self.baseline} seed {self.seed}" + (f" ({', '.join(self.point)})" if self.point else "")


def plan_jobs(inputs: SweepInputs, points: Sequence[tuple[tuple[str, ...], Protocol]], *, seeds: Sequence[int],
              baselines: Sequence[str] = (), progress: bool = True) -> list[Job]:
    """The jobs of every grid point (``points`` from :func:`facebench.sweep.grid.check_grid`), seed and baseline
    (``baselines``: names or labels; all by default), with their run folders. This reads (or synthesises) each
    point's data to hash it, as ``facebench run`` does, but trains nothing."""
    jobs = []
    for point, protocol in points:
        planned = plan_runs(protocol, inputs.options(seeds=seeds, baselines=baselines, progress=progress))
        labels = dict.fromkeys(run.baseline for run in planned)
        for label in labels:
            # What `run --baseline LABEL` runs (a name matches every baseline of that name).
            picked = {b.display_name for b in selected_baselines(protocol, inputs.options(
                seeds=seeds, baselines=(label,), progress=progress))}
            for seed in seeds:
                jobs.append(Job(point=point, seed=seed, baseline=label, run_dirs=tuple(
                    run.run_dir for run in planned if run.seed == seed and run.baseline in picked)))
    return jobs


class PlanMismatch(RuntimeError):
    """A job wrote other run folders than were planned: the data or facebench changed in between."""


def run_job(inputs: SweepInputs, job: Job) -> list[str]:
    """What one submitit job runs: one baseline with one seed at one grid point, through
    :func:`facebench.run.run_protocol`; returns the run folders (each with results.json)."""
    protocol = inputs.protocol_at(job.point)
    run_dirs = run_protocol(protocol, inputs.options(seeds=(job.seed,), baselines=(job.baseline,), progress=False))
    if sorted(map(str, run_dirs)) != sorted(map(str, job.run_dirs)):
        raise PlanMismatch(f"{job.describe()} wrote {', '.join(map(str, run_dirs))} instead of the planned "
                           f"{', '.join(map(str, job.run_dirs))}: the data or facebench changed since the sweep was "
                           "planned; run the sweep again to plan it afresh.")
    return [str(run_dir) for run_dir in run_dirs]
