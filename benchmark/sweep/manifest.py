"""The sweep manifest (``SWEEP/manifest.json``): which jobs, their run folders, submitit job ids and status.

It is rewritten atomically (:func:`facebench.io.write_json`) after every change, and read back strictly by the
next run of the same sweep. The run folders and log paths in it are a record for people: a re-run plans the folders
afresh (from the data) and takes from the manifest only each job's status, job id and error line, matched by the
job's key (grid point, seed, baseline); log paths are rebuilt from the job id, so no path read from the file is
ever opened.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from facebench.errors import validation_error
from facebench.io import write_json
from facebench.results import read_json

#: ``manifest.json``'s ``schema``; bump on an incompatible change.
MANIFEST_SCHEMA = "facebench-sweep/1"

#: A job's status: ``pending`` (planned, not submitted), ``submitted`` (queued or running, outcome not seen yet),
#: ``finished`` (every run folder holds results.json), ``failed`` (it ended without them; see its log).
Status = Literal["pending", "submitted", "finished", "failed"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class JobRecord(_Record):
    key: str = Field(max_length=10_000, description="the job's grid point, seed and baseline (jobs.Job.key)")
    point: list[str]
    seed: int
    baseline: str
    run_dirs: list[str] = Field(description="the job's run folders, relative to the sweep's output folder")
    status: Status
    launcher: Literal["local", "slurm"] | None = None
    job_id: str | None = Field(None, pattern=r"^[0-9]{1,20}(_[0-9]{1,10})?$",
                               description="submitit's job id: a process id (local) or SLURM's ARRAY_TASK id")
    log: str | None = Field(None, description="the job's stderr log, relative to the sweep folder (a record only)")
    error: str | None = Field(None, max_length=2000, description="the last error line of a failed job's log")
    attempts: int = Field(0, ge=0)


class Manifest(_Record):
    schema_: Literal["facebench-sweep/1"] = Field(MANIFEST_SCHEMA, alias="schema")
    protocol: str
    protocol_file: str
    profile: str
    sets: list[str]
    grid: dict[str, list[str]]
    seeds: list[int]
    baselines: list[str]
    created_at: str
    updated_at: str
    jobs: list[JobRecord]

    def by_key(self) -> dict[str, JobRecord]:
        return {job.key: job for job in self.jobs}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_manifest(path: Path) -> Manifest | None:
    """The manifest at ``path`` (None when there is none); one sentence naming the file and key when it is not a
    sweep manifest (delete it to start the record afresh: the run folders keep the results)."""
    if not path.is_file():
        return None
    try:
        return Manifest.model_validate(read_json(path))
    except ValidationError as exc:
        raise validation_error(exc, where=f"{path} (delete it to start the sweep's record afresh)",
                               model=Manifest) from None


def write_manifest(path: Path, manifest: Manifest) -> None:
    write_json(path, manifest.model_copy(update={"updated_at": now()}).model_dump(mode="json", by_alias=True))
