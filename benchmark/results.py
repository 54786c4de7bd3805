"""The results contract: what ``results.json`` holds (after lm-evaluation-harness ``result_schema.py``).

Every run directory (a baseline run or a scored submission) contains:

- ``results.json`` — the document typed by :class:`Results` below;
- ``predictions.csv`` — the predictions that were scored (the task's documented format);
- ``outcomes.csv`` — one row per scored sample: its outcome (e.g. absolute error) and its groups, so later
  comparisons can be paired sample by sample.

Numbers: every metric value is a :class:`MetricValue` ``{value, ci_low, ci_high, n}`` (+ ``flag``:
``"small"`` when the group has fewer than the protocol's ``min_group_size`` samples). Intervals are
percentile intervals of a bootstrap at the protocol's confidence level: people resampled with all their rows
where the task names them (see "Units of independence" below), otherwise rows resampled *within* each group
(Wilson intervals for rates). Group names are lower-case words (``white``, ``female``, ``30-44``);
intersections join attribute and group names with ``*`` (``race*gender`` → ``black*female``).

Statistics (since 1.1): ``statistics`` records the settings every interval and flag above was computed with:
``{n_boot, confidence, interval_method, min_group_size, seed}`` (:class:`Statistics`). Readers of a 1.0 file,
which lacks it, say so where it matters (``facebench compare`` recovers ``min_group_size`` from the flags).

Deviations (since 1.2): ``protocol.deviations`` copies the protocol's ``deviations:`` list, each entry
``{setting, kind, choice, reason}`` (:class:`Deviation`; ``kind`` is ``unspecified``, ``different`` or
``transductive``, ``reason`` may be null): where the run's setting is not simply the paper's. Files without it
(1.0, 1.1) still load; readers show nothing for them. Reference entries may carry a ``note`` (since 1.2).

Leakage checks (since 1.3, baseline runs of ``facebench run``; submissions have neither key), in ``data``:

- ``n_excluded_anchors``: how many test images were left out of scoring because the method was given their
  labels (the pairwise model's MDS anchors, listed in ``baseline.labelled_target_anchors``); ``n_samples``,
  ``split_sizes.test`` and ``split_fingerprint`` describe the test set without them. 0 for other methods.
- ``identity_overlap`` (:class:`IdentityOverlap`): how many people are in both the training data and the test
  data, by subject id within one dataset or by normalised celebrity name across datasets that name their
  people (:mod:`facebench.data.identities`); ``n`` is null where the two cannot be compared, and ``compared``
  then says why. The runner warns when ``n`` > 0.

Comparability (since 1.3): ``protocol.overrides`` lists the ``--set`` overrides the run was made with (``[]``:
none), ``protocol.comparability`` copies the protocol's stated conditions (``{pairs, pretrained,
training_data}``, each null or ``{..., paper}``; the whole key null when the protocol states none) and
``data.pair_source`` says where a verification split's pairs came from (``"listed"``: the dataset's own list;
``"seeded"``: drawn by facebench with a seed; null without pairs). :func:`facebench.comparability.judge` reads
these to say whether each ``reference`` number is comparable; a file without them (1.0-1.2) is judged "reference
only" with that reason.

Verification view (``metrics.differentials``, tasks that have one): since 1.3 ``comparison_set`` is the task's
sentence saying which comparisons were scored (probe-gallery, the split's pairs, every image against the others)
and each ``by_attribute[a]`` carries its own ``pair_rule`` sentence; 1.2 files have one top-level ``pair_rule``,
the last attribute's.

Known answer (since 1.3, synthetic data only): ``synthetic_truth`` (:class:`SyntheticTruth`, made by
:func:`facebench.synthetic_truth.synthetic_truth`): ``injected`` (the generator's per-group ageing rates from
``SYNTHETIC.json``, the rule and the labels' exactness), ``metric`` and ``attribute`` (the primary metric, race),
``implied`` (an oracle's per-group values and its worst-vs-best ``gap``, or null with ``implied_reason``) and
``measured`` (the run's own gap of that metric and attribute, with its interval, as in ``metrics.disparities``).

Reading: :func:`load_run` is the one reader of a results.json (``facebench compare``, the bias report and the
leaderboard site all use it). It returns a :class:`Run`: the parsed document, its file and its
``outcomes.csv``, whose path, read from ``files.outcomes``, may not leave the run folder. Any problem is one
:class:`~facebench.errors.UserInputError` sentence naming the file and the key.

Units of independence (since 1.3): a task whose rows share people (MORPH, FG-NET, CACD, AgeDB and CACD-VS pairs)
names each row's person in ``outcomes.csv`` (``subject_id``; a pair's ``subject_id_1``/``subject_id_2``), and
every interval and group test resamples people with all their rows (:mod:`facebench.metrics.clusters`).
``statistics.units`` says what was resampled: ``{unit, columns, n_units, note, row_wise_overall}``, the last the
overall intervals had rows been independent (to show how much narrower they would have claimed to be). Each
:class:`MetricValue` carries ``n_units`` (distinct people among its rows; equal to ``n`` for independent rows) and
``detectable_gap``: the smallest difference from a fixed value its interval would detect with 80 % power at the
protocol's confidence, ``(z + z_0.8) · SE`` with the bootstrap standard error (see docs/metrics.md). Group
tests carry ``test``: ``cluster_bootstrap``, ``permutation`` or ``fisher_exact``.

Rejected files (since 1.3): ``data.n_rejected`` counts every file of the dataset that the run left out — names
and label rows the reader refused, and images that do not decode (zero-byte, truncated, not an image, over the
pixel limit, a dangling link or a folder under an image name: :mod:`facebench.data.files`) — and
``data.rejected`` lists the first 50 of them (``facebench.evaluate.REJECTED_LISTED``), each ``{sample_id,
reason}`` cut to 200 characters; ``facebench data verify`` lists them all. Older files lack the list.

Bump :data:`SCHEMA_VERSION`'s major number on any incompatible change (readers accept ``1.x``), its minor
number when a key is added.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from facebench.errors import UserInputError, shorten
from facebench.io import inside, is_file
from facebench.limits import MAX_JSON_BYTES, load_json

SCHEMA_VERSION = "1.3"

#: Keys every results.json must have (dotted paths), checked in this order.
REQUIRED_KEYS = ("protocol.name", "protocol.version", "protocol.title", "protocol.task", "protocol.primary_metric",
                 "protocol.fingerprint", "baseline.name", "data.synthetic", "data.fingerprint",
                 "data.split_fingerprint", "metrics.overall", "metrics.by_group", "metrics.disparities",
                 "schema_version")


class MetricValue(TypedDict, total=False):
    value: float | None       # None when undefined (e.g. a ratio against a zero best value)
    ci_low: float | None
    ci_high: float | None
    n: int                    # samples the value was computed on
    flag: str                 # "" or "small"
    n_units: int              # distinct units of independence (people) among them; = n for independent rows
    detectable_gap: float | None   # smallest difference its interval detects with 80 % power (since 1.3)


class Disparity(TypedDict):
    worst_group: str          # by the metric's own direction (max MAE, min accuracy)
    best_group: str
    worst_value: float
    best_value: float
    gap: float                # |worst - best|, in the metric's unit
    gap_ci_low: float
    gap_ci_high: float
    ratio: float | None       # worst/best for lower-is-better, best/worst otherwise (>= 1: "times worse")


class Metrics(TypedDict):
    overall: dict[str, MetricValue]                              # metric -> value
    by_group: dict[str, dict[str, dict[str, MetricValue]]]       # attribute -> group -> metric -> value
    disparities: dict[str, dict[str, Disparity]]                 # metric -> attribute -> disparity
    # One row per (metric, attribute, group): that group against the rest of the test set — a permutation
    # test (mean metrics) or Fisher's exact test (rates), Holm-adjusted across the attribute's groups, with
    # effect sizes and gaps to the best group and to overall (see docs/metrics.md, section 2).
    group_tests: list[dict[str, Any]]


class Statistics(TypedDict):
    n_boot: int                   # bootstrap resamples per group (evaluation.n_boot)
    confidence: float             # two-sided level of every interval (evaluation.confidence)
    interval_method: str          # how intervals are made (see the module docstring)
    min_group_size: int           # groups with fewer samples are flagged "small" and never worst/best
    seed: int                     # seed of the bootstrap and the tests (the run's seed)
    units: NotRequired[dict[str, Any]]  # since 1.3: unit, columns, n_units, note, row_wise_overall


class Deviation(TypedDict):
    setting: str                  # the key path or topic, e.g. "training.epochs"
    kind: str                     # "unspecified" | "different" | "transductive"
    choice: str                   # what facebench does
    reason: str | None            # why (always given for "different")


class IdentityOverlap(TypedDict):
    n: int | None                 # people in both the training and the test data; None: not comparable
    train: str                    # training side: dataset and parts, e.g. "cacd train+val"
    test: str                     # test side, e.g. "agedb test"
    compared: str                 # what was compared, or why nothing could be
    examples: list[str]           # up to 5 of the people in both, as the test data spells them, cut short


class SyntheticTruth(TypedDict):
    generator: str | None             # SYNTHETIC.json's generator and generator_version
    generator_version: str | None
    injected: dict[str, Any]          # attribute ("race"), aging_rate: {group: rate}, rule, labels
    metric: str                       # the primary metric
    attribute: str                    # the attribute the generator's groups are ("race")
    implied: dict[str, Any] | None    # method ("oracle"), oracle (what it does), by_group: {group: {value, n,
                                      # flag}}, worst_group, best_group, worst_value, best_value, gap
    implied_reason: str | None        # why ``implied`` is null
    measured: dict[str, Any] | None   # worst_group, best_group, worst_value, best_value, gap, gap_ci_low, gap_ci_high


class RejectedFile(TypedDict):
    sample_id: str                # the file (or label row) as the reader names it, cut to 200 characters
    reason: str                   # why it was left out, e.g. "truncated: image file is truncated (…)"


class Results(TypedDict):
    schema_version: str
    protocol: dict[str, Any]      # name, version, profile, title, fingerprint, primary_metric, task,
                                  # deviations: list[Deviation] (since 1.2; absent in older files),
                                  # overrides: list[str], comparability: dict | None (since 1.3)
    baseline: dict[str, Any]      # name, params, kind ("baseline" | "submission")
    data: dict[str, Any]          # dataset, synthetic, fingerprint, split_fingerprint, split, n_samples,
                                  # split_sizes, n_rejected; since 1.3: rejected (list[RejectedFile], the first 50),
                                  # pair_source ("listed" | "seeded" | None); baseline runs since 1.3:
                                  # n_excluded_anchors (int), identity_overlap (IdentityOverlap)
    provenance: dict[str, Any]    # facebench_version, git_commit, torch, device, seed, processes (torchrun's world size), duration_s, created_at, python
    metrics: Metrics              # on the protocol's test split
    splits: dict[str, dict[str, MetricValue]]   # other scored splits (e.g. "source_val") -> metric -> value
    training: dict[str, Any]      # per-epoch logs, resumed_from_epoch (baselines only)
    reference: list[dict[str, Any]]   # published numbers from the protocol, for side-by-side display
    files: dict[str, str]         # relative paths of predictions.csv and outcomes.csv
    statistics: NotRequired[Statistics]   # since 1.1
    synthetic_truth: NotRequired[SyntheticTruth]   # since 1.3, synthetic data only


#: ``statistics.interval_method`` when the task names its units of independence (people).
INTERVAL_METHOD = ("cluster bootstrap: people resampled with all their rows (a pair of two people by both), "
                   "percentile intervals; group tests from the same draws")
#: ``statistics.interval_method`` when rows are independent (UTKFace names no one).
ROW_INTERVAL_METHOD = "percentile bootstrap resampled within each group; Wilson score interval for rates"


@dataclass(frozen=True, kw_only=True)
class Run:
    """A scored run: its results.json document (:class:`Results`), that file, and its ``outcomes.csv``."""

    results_path: Path
    outcomes_path: Path
    results: dict[str, Any] = field(repr=False, compare=False)

    @property
    def folder(self) -> Path:
        """The run directory (the folder holding results.json)."""
        return self.results_path.parent

    @property
    def name(self) -> str:
        """How reports name the run: ``baseline.label``, else ``baseline.name``."""
        baseline = self.results["baseline"]
        return str(baseline.get("label") or baseline["name"])

    @property
    def names(self) -> frozenset[str]:
        """Every name that picks this run (``compare --against``): label, name and run folder."""
        baseline = self.results["baseline"]
        candidates = (baseline.get("label"), baseline["name"], self.folder.name)
        return frozenset(str(n) for n in candidates if n)

    @property
    def kind(self) -> str:
        """``"baseline"`` or ``"submission"``."""
        return str(self.results["baseline"].get("kind", "baseline"))

    @property
    def protocol(self) -> dict[str, Any]:
        return self.results["protocol"]

    @property
    def data(self) -> dict[str, Any]:
        return self.results["data"]

    @property
    def synthetic(self) -> bool:
        return bool(self.data.get("synthetic"))

    @property
    def primary_metric(self) -> str:
        return str(self.protocol["primary_metric"])

    @property
    def primary_value(self) -> dict[str, Any]:
        """The overall :class:`MetricValue` of the primary metric (empty when absent)."""
        return self.results["metrics"]["overall"].get(self.primary_metric) or {}

    @property
    def statistics(self) -> Statistics | None:
        """The statistics settings (None in a schema 1.0 file, which predates them)."""
        return self.results.get("statistics")

    def overall(self, metric: str) -> float | None:
        """The overall value of ``metric`` (None: absent, undefined or not finite)."""
        value = self.results["metrics"]["overall"].get(metric, {}).get("value")
        return None if value is None or not math.isfinite(float(value)) else float(value)


def read_json(path: Path) -> Any:
    """Parse a JSON file within :mod:`facebench.limits` (size, depth; NaN and Infinity refused: they are not
    JSON and facebench never writes them); one sentence naming the file when it cannot be read or parsed."""
    try:
        if Path(path).stat().st_size > MAX_JSON_BYTES:
            raise UserInputError(f"{path}: larger than the {MAX_JSON_BYTES:,} bytes facebench reads from a JSON file.")
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path} cannot be read ({exc.__class__.__name__}).") from None
    return load_json(text, where=str(path))


def _check_document(doc: Any, file: Path) -> None:
    """The one check of a results.json, for every reader (``compare``, the report, the leaderboard): the
    required keys, then the types of everything they read (:class:`_Document`), then the schema's major
    version and the metric names. One sentence naming the file and the key for the first problem."""
    if not isinstance(doc, dict):
        raise UserInputError(f"{file} is not a facebench results.json (it holds no JSON object).")
    for dotted in REQUIRED_KEYS:
        node: Any = doc
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                raise UserInputError(f"{file} is not a facebench results.json: it has no '{dotted}'.")
            node = node[key]
    from pydantic import ValidationError

    from facebench.errors import validation_error
    from facebench.results_schema import ResultsDocument

    try:
        ResultsDocument.model_validate(doc)
    except ValidationError as exc:
        raise validation_error(exc, where=str(file), model=ResultsDocument) from None
    version = str(doc["schema_version"])
    if version.split(".")[0] != "1":
        raise UserInputError(f"{file} has results schema version {shorten(version)}; this facebench reads 1.x.")
    from facebench.metrics import get_metric  # metrics import numpy and pandas

    for metric in [doc["protocol"]["primary_metric"], *doc["metrics"]["disparities"]]:
        try:
            get_metric(metric)
        except UserInputError as exc:
            raise UserInputError(f"{file} uses a metric this facebench does not know: {exc}") from None


def _outcomes_in_run(doc: dict[str, Any], file: Path) -> Path:
    """The run's outcomes.csv from ``files.outcomes``, refused when it leaves the run folder (a ``..`` or a
    symbolic link pointing elsewhere) or does not exist."""
    files = doc.get("files") if isinstance(doc.get("files"), dict) else {}
    relative = files.get("outcomes") or "outcomes.csv"
    if not isinstance(relative, str):
        raise UserInputError(f"{file}: key 'files.outcomes' must be a file name, not {shorten(relative)}.")
    outcomes = inside(file.parent, relative, where=f"{file} names outcomes file", root_name="its run directory")
    if not is_file(outcomes):
        raise UserInputError(f"{file} names outcomes file {shorten(relative)}, which does not exist.")
    return outcomes


def load_run(path: str | os.PathLike, *, outcomes: str | os.PathLike | None = None) -> Run:
    """Read and check a results.json (or the run folder holding one).

    ``outcomes`` overrides where outcomes.csv is (a leaderboard site's ``manifest.json`` says where its
    copies are); otherwise ``files.outcomes`` names it, inside the run folder. Raises
    :class:`~facebench.errors.UserInputError` (one sentence naming the file and the key) for a missing file,
    invalid JSON (NaN and Infinity included), a missing key, another major schema version, an unknown metric
    or an outcomes file outside the run folder or missing.
    """
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise UserInputError(f"{path} is a folder without a results.json." if path.is_dir()
                             else f"Results file {path} does not exist.")
    doc = read_json(file)
    _check_document(doc, file)
    if outcomes is None:
        outcomes_path = _outcomes_in_run(doc, file)
    else:
        outcomes_path = Path(outcomes)
        if not outcomes_path.is_file():
            raise UserInputError(f"Outcomes file {outcomes_path} does not exist (named for {file}).")
    return Run(results_path=file, outcomes_path=outcomes_path, results=doc)


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the facebench checkout, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path or Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment() -> dict[str, Any]:
    import torch

    import facebench

    return {
        "facebench_version": facebench.__version__,
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
