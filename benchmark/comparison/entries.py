"""Which leaderboard entry a candidate is compared with (``facebench compare --leaderboard/--against``).

The rules are the user's guide's (``docs/ci.md``) and :mod:`facebench.compare`'s docstring: entries of the
candidate's protocol from a site's ``manifest.json`` or a folder of runs; ``--against NAME`` by label, name or
run folder; otherwise the best entry measured like the candidate.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from facebench.errors import UserInputError, did_you_mean, shorten
from facebench.io import inside, is_file
from facebench.metrics import get_metric
from facebench.results import Run, load_run, read_json

__all__ = ["LEADERBOARD_SCHEMA", "leaderboard_runs", "same_measurement", "choose_reference"]

LEADERBOARD_SCHEMA = "facebench-leaderboard/1"


def leaderboard_runs(source: str | os.PathLike, *, protocol: str) -> tuple[Run, ...]:
    """The entries of ``protocol`` in a leaderboard site (``manifest.json``) or a folder of run directories.

    A folder is searched recursively for ``results.json``; every one found must be a valid results file.
    Entries come sorted by path (ties of the default choice go to the first).
    """
    source = Path(source)
    if not source.exists():
        raise UserInputError(f"--leaderboard {source} does not exist.")
    manifest = source / "manifest.json"
    if manifest.is_file():
        return _site_runs(source, manifest, protocol=protocol)
    if not source.is_dir():
        raise UserInputError(f"--leaderboard {source} is neither a leaderboard site nor a folder of runs.")
    runs = [load_run(path) for path in sorted(source.rglob("results.json"))]
    return tuple(r for r in runs if r.protocol["name"] == protocol)


def _site_runs(site: Path, manifest: Path, *, protocol: str) -> tuple[Run, ...]:
    doc = read_json(manifest)
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if schema != LEADERBOARD_SCHEMA:
        raise UserInputError(f"{manifest}: key 'schema' is {shorten(schema)}; expected '{LEADERBOARD_SCHEMA}'.")
    entries = doc.get("entries")
    if not isinstance(entries, list):
        raise UserInputError(f"{manifest}: key 'entries' must be a list.")
    runs = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise UserInputError(f"{manifest}: entries[{i}] must be an object.")
        for key in ("protocol", "results", "outcomes"):
            if not isinstance(entry.get(key), str):
                raise UserInputError(f"{manifest}: key 'entries[{i}].{key}' is missing or not a string.")
        if entry["protocol"] != protocol:
            continue
        results = inside(site, entry["results"], where=f"{manifest}: entries[{i}].results names")
        if not is_file(results):
            raise UserInputError(f"{manifest}: entries[{i}].results names {shorten(entry['results'])}, which does "
                                 "not exist.")
        runs.append(load_run(results, outcomes=inside(site, entry["outcomes"], where=f"{manifest}: entries[{i}].outcomes names")))
    return tuple(sorted(runs, key=lambda r: str(r.results_path)))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def same_measurement(a: Run, b: Run) -> bool:
    """Same protocol version, data and split: the entries the default choice considers."""
    return (a.protocol["version"] == b.protocol["version"] and a.data["fingerprint"] == b.data["fingerprint"]
            and a.data["split_fingerprint"] == b.data["split_fingerprint"])


def choose_reference(candidate: Run, entries: Sequence[Run], *, against: str | None,
                     where: str | os.PathLike) -> Run:
    """The entry to compare with: ``--against NAME``, or the best comparable entry on the primary metric."""
    protocol = candidate.protocol["name"]
    if not entries:
        raise UserInputError(f"{where} has no entry of protocol '{protocol}' to compare with.")
    if against is not None:
        matches = [r for r in entries if against in r.names]
        if not matches:
            known = sorted({r.name for r in entries})
            hint = did_you_mean(against, sorted({n for r in entries for n in r.names}))
            raise UserInputError(f"--against {against}: no entry of protocol '{protocol}' in {where} has "
                                 f"that name{hint}; entries: {', '.join(known)}.")
        if len(matches) > 1:
            matches = [r for r in matches if same_measurement(r, candidate)] or matches
        if len(matches) > 1:
            paths = ", ".join(str(r.results_path) for r in matches)
            raise UserInputError(f"--against {against}: {len(matches)} entries of protocol '{protocol}' in "
                                 f"{where} have that name ({paths}); name one by its run folder or narrow "
                                 "--leaderboard.")
        return matches[0]
    others = [r for r in entries if not _same_file(r.results_path, candidate.results_path)]
    comparable = [r for r in others if same_measurement(r, candidate)]
    if not comparable:
        raise UserInputError(
            f"{where} has no other entry of protocol '{protocol}' version {candidate.protocol['version']} "
            f"scored on the candidate's data and split (data {candidate.data['fingerprint'][:12]}, split "
            f"{candidate.data['split_fingerprint'][:12]}); {len(others)} other entries were scored "
            "otherwise.")
    metric = get_metric(candidate.protocol["primary_metric"])
    scored = [(float(metric.badness(r.overall(metric.name))), i) for i, r in enumerate(comparable)
              if r.overall(metric.name) is not None]
    if not scored:
        raise UserInputError(f"No entry of protocol '{protocol}' in {where} has a value of '{metric.name}'.")
    return comparable[min(scored)[1]]
