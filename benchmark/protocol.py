"""Protocols: declarative YAML files validated into frozen spec objects.

A protocol file says which dataset, split, subgroups, metrics and baselines make one benchmark setting,
and carries ``profiles`` (at least ``paper`` and ``quick``) whose keys override the base settings. Loading
goes: ``yaml.safe_load`` → pick a profile and deep-merge it → apply ``--set key.path=value`` overrides →
validate with pydantic (unknown keys and wrong types rejected) → check names against the registries.
Every failure is one :class:`~facebench.errors.UserInputError` sentence naming the file and the key path.

Every protocol states a non-empty ``deviations:`` list (:class:`Deviation`): the settings its paper does not
give, with the choice made, and its deliberate differences from the paper, with the reason; the ``paper``
profile follows the paper wherever the paper is specific. Unlike other lists, ``deviations`` accumulate: an
``include:``d file's entries come first, then the file's own, then those of the chosen profile (if it has any).

A protocol also states under ``comparability:`` (:class:`ComparabilityConditions`) what a run must meet, besides
real data and the unchanged ``paper`` profile, for its published reference numbers to be comparable: the
official pairs, a pre-trained start, the paper's training data. :mod:`facebench.comparability` judges a run
against them; the loader records the ``--set`` overrides it applied (``Protocol.overrides``) for that rule.

The spec objects here only *describe* a run; :mod:`facebench.run` executes them (HELM's split between
``RunSpec`` and the code that runs it).
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from facebench.errors import UserInputError, did_you_mean, shorten, validation_error
from facebench.io import is_file
from facebench.limits import MAX_YAML_BYTES, load_yaml
from facebench.registry import BASELINES, DATASETS, SPLITS, TASKS


def _protocol_dir() -> Path:
    """The built-in protocols: ``facebench/protocols/`` (package data) in an installed copy, the top-level
    ``protocols/`` folder in a checkout (and in an editable install, which imports from the checkout)."""
    here = Path(__file__).resolve().parent
    installed = here / "protocols"
    return installed if installed.is_dir() else here.parent / "protocols"


#: Where the built-in protocols live (see :func:`builtin_protocols`, :func:`locate_protocol`).
PROTOCOL_DIR = _protocol_dir()


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticData(_Spec):
    """How the embedded synthetic stand-in for the dataset is generated (``--synthetic``)."""

    n: int = Field(6000, ge=2, description="number of synthetic images (people, for the longitudinal datasets)")
    seed: int = 0
    image_size: int = Field(200, ge=16, description="side of the written JPEGs (UTKFace crops are 200)")
    render_size: int | None = Field(None, ge=16, description="internal render size; None = image_size")
    options: dict[str, Any] = Field({}, description="more settings of the dataset's synthetic writer, e.g. "
                                    "{pairs_per_fold: 100} for the pairs of a small synthetic agedb_30.bin")


class DatasetSection(_Spec):
    name: str
    variant: str = "aligned"
    synthetic: SyntheticData = SyntheticData()
    options: dict[str, Any] | None = Field(
        {}, description="keyword options of the dataset's reader (DatasetSpec.read_options), e.g. CelebA's "
                        "{race_annotations: race_annotations.csv, race_categories: [white, black, ...]}; null or {}: "
                        "none (null also clears an included file's options); left out of the fingerprint when empty, "
                        "so protocols without it keep their run hashes")

    def fingerprint_dump(self) -> dict[str, Any]:
        """The section as the run hashes see it: ``options`` only when set (protocols written before the key
        existed keep their fingerprints, run folders and shared models)."""
        return self.model_dump(mode="json", exclude=None if self.options else {"options"})


class TrainingDataSection(DatasetSection):
    """A training dataset other than the test dataset (FG-NET and AgeDB are test sets only): every subject
    of it trains, but a ``val_fraction`` of subjects (drawn with ``seed``) validates."""

    val_fraction: float = Field(0.05, ge=0.0, lt=1.0)
    seed: int = 0


class SplitSection(_Spec):
    name: str
    params: dict[str, Any] = {}


class GroupsSection(_Spec):
    attributes: tuple[str, ...] = ("race", "gender", "age_band")
    intersections: int = Field(2, ge=1, le=3, description="largest k of the k-way intersections reported")
    age_bands: tuple[int, ...] = Field((0, 15, 30, 45, 60), description="lower edges of the age bands")
    min_group_size: int = Field(30, ge=1)

    @field_validator("age_bands")
    @classmethod
    def _increasing(cls, edges: tuple[int, ...]) -> tuple[int, ...]:
        if list(edges) != sorted(set(edges)) or not edges or edges[0] != 0:
            raise ValueError("age_bands must be strictly increasing lower edges starting at 0")
        return edges


class EvaluationSection(_Spec):
    metrics: tuple[str, ...]
    primary_metric: str
    n_boot: int = Field(1000, ge=0)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)


class ModelSection(_Spec):
    backbone: str = Field(description="'small_cnn' or a torchvision classification model name, e.g. resnet50")
    pretrained: str | None = Field(None, description="torchvision weights name ('DEFAULT', 'IMAGENET1K_V2') or a local .pth file")
    image_size: int = Field(ge=16)
    head_hidden: tuple[int, ...] = Field((256, 64), description="widths of the regression module's hidden layers")


class LeaveOneOutFinetune(_Spec):
    """FG-NET's per-image scheme (seed 002 section 4.2): for each image, fine-tune the trained model on the
    other images (their identities), then score that image against all others with the fine-tuned model."""

    epochs: int = Field(1, ge=1, description="fine-tuning epochs per left-out image")
    batch_size: int = Field(1001, ge=1, description="seed 002: 1001, the whole of FG-NET but one image")
    lr: float | None = Field(None, gt=0, description="default: training.lr")


class TrainingSection(_Spec):
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    optimizer: Literal["adam", "sgd", "adamw", "rmsprop"] = "adam"
    weight_decay: float = Field(0.0, ge=0)
    loss: Literal["l1", "l2"] = "l1"
    lr_schedule: Literal["constant", "cosine", "plateau"] = Field(
        "constant", description="constant; cosine (decay to 0 over the epochs); plateau (seed 002 section 4.1: lr "
                                "divided by 10 when the loss does not decrease, see the plateau_* settings)")
    plateau_metric: str = Field("train_loss", description="plateau only: the epoch-log quantity watched: train_loss "
                                "(the paper's 'the loss') or a method's validation log such as val_rank1 or val_mae")
    plateau_mode: Literal["min", "max"] = Field("min", description="plateau only: min (a loss, val_mae) or max "
                                                "(val_rank1)")
    plateau_patience: int = Field(0, ge=0, description="plateau only: epochs without improvement tolerated before the "
                                  "drop (0: the first epoch that does not improve; the paper gives no patience)")
    plateau_factor: float = Field(0.1, gt=0, lt=1, description="plateau only: lr multiplier (the paper: divided by 10)")
    hflip: bool = True
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    num_workers: int = Field(0, ge=0)
    leave_one_out_finetune: LeaveOneOutFinetune | None = Field(
        None, description="face_identification_loo only: fine-tune once per left-out test image (slow: N fine-tunes)")


class BaselineSection(_Spec):
    name: str
    label: str | None = Field(None, description="how reports name this entry (e.g. 'dann conv+fc1'); default: name")
    params: dict[str, Any] = {}

    @property
    def display_name(self) -> str:
        return self.label or self.name


class Deviation(_Spec):
    """One place where a protocol is not simply the paper: a setting the paper does not give (``unspecified``,
    with the choice made), a deliberate difference (``different``, with the reason), or a use of data the paper's
    setting implies but a reader should know about (``transductive``: unlabelled target *test* images are seen
    during training). Every protocol states its list under ``deviations:``; the report and results.json copy it."""

    setting: str = Field(min_length=1, description="the key path or topic, e.g. 'training.epochs'")
    kind: Literal["unspecified", "different", "transductive"]
    choice: str = Field(min_length=1, description="what facebench does")
    reason: str | None = Field(None, description="why; required when kind is 'different'")

    @model_validator(mode="after")
    def _reason_for_differences(self) -> Deviation:
        if self.kind == "different" and not (self.reason or "").strip():
            raise ValueError("a deviation of kind 'different' needs a 'reason'")
        return self


class ReferenceResult(_Spec):
    """A published number the report shows beside ours, comparable with a run only under the rule of
    :mod:`facebench.comparability` (real data, the unchanged ``paper`` profile, the protocol's ``comparability``)."""

    source: str
    setting: str
    metric: str
    value: float
    split: str = "target"
    #: The paper-table layout (optional): the row (``method``, e.g. "MT-MIM") and the column's group
    #: (``group: "database=2004-2006"``, read from our ``by_group``; none: the overall value); ``baseline``
    #: names our baseline that implements the method, so the report can set the two side by side.
    method: str | None = None
    group: str | None = Field(None, pattern=r"^[a-z_*]+=.+$")
    baseline: str | None = None
    #: What a reader should know about this number (e.g. the paper gives another value for the same model).
    note: str | None = None


class PairsCondition(_Spec):
    """The paper scored the pairs its dataset lists (the official pairs), not pairs drawn with a seed."""

    source: Literal["listed"] = Field(description="listed: the dataset's own pair list (split listed_pairs)")
    paper: str = Field(min_length=1, description="the paper's pairs in words, e.g. 'the official AgeDB-30 pairs'")


class PretrainedCondition(_Spec):
    """The paper fine-tunes pre-trained weights instead of training from scratch."""

    kind: Literal["face_encoder", "any_weights"] = Field(
        description="face_encoder: only a face encoder counts (a baseline's params.init, or a model used as "
                    "published); any_weights: backbone weights (model.pretrained, e.g. ImageNet) count too")
    paper: str = Field(min_length=1, description="what the paper starts from, in words, e.g. 'an encoder "
                       "pre-trained on MS-Celeb-1M + CASIA-WebFace'")


class TrainingDataCondition(_Spec):
    """The paper trains (or fine-tunes) on this dataset; a run that trains on another one is reference only."""

    dataset: str = Field(min_length=1, description="a DATASETS name: the test dataset's own training part, or "
                         "the train_dataset a run must train on")
    paper: str = Field(min_length=1, description="the paper's training data in words, e.g. 'the 10,000 "
                       "training subjects of MORPH Album 2'")


class ComparabilityConditions(_Spec):
    """What must hold, besides real data and the ``paper`` profile unchanged, for a run's numbers to be read
    against the paper's published ones (:mod:`facebench.comparability` judges it). A condition the paper does
    not let one state (it does not say what it trained on) is left out; ``{}`` states that none is needed."""

    pairs: PairsCondition | None = None
    pretrained: PretrainedCondition | None = None
    training_data: TrainingDataCondition | None = None


class GenerationEdit(_Spec):
    """One edit the ``face_generation`` task asks of every held-out face: ``set`` attributes to values (a hair colour
    to 1) or ``flip`` one 0/1 attribute (young to old and back). A request that would not change the face (its hair
    is already that colour) is not made."""

    name: str = Field(min_length=1, description="how results and reports name the edit, e.g. 'blond hair'")
    set: dict[str, float] = Field({}, description="label columns and the values asked for, e.g. {Blond_Hair: 1}")
    flip: str | None = Field(None, description="a 0/1 label column asked for its opposite value, e.g. Young")

    @model_validator(mode="after")
    def _one_kind(self) -> GenerationEdit:
        if bool(self.set) == (self.flip is not None):
            raise ValueError("an edit gives exactly one of 'set' (values to set) and 'flip' (a column to flip)")
        return self


class JudgeSettings(_Spec):
    """How the task's judges are trained on the real training images (the generator never sees them score): an
    attribute classifier (edit success), a face verifier (identity permanence and the realism features) and, for
    ageing, an age estimator. Their network is the protocol's ``model.backbone`` at ``model.image_size``."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(3e-3, gt=0)
    embedding_dim: int = Field(128, ge=2, description="the verifier's embedding (also the realism features' width)")
    arcface_scale: float = Field(16.0, gt=0, description="the verifier's ArcFace scale s (margin 0.35)")


class GenerationSection(_Spec):
    """Task ``face_generation`` only: what the held-out faces are asked for and how the results are judged."""

    edits: tuple[GenerationEdit, ...] = Field((), description="attribute edits asked of every held-out face")
    age_groups: tuple[int, ...] | None = Field(
        None, description="ageing: lower edges of the age groups (seed 004: [10, 21, 31, 41, 51]); every face is "
                          "asked for every older group (Table 2), the first group's faces for every other")
    domains: tuple[str, str] | None = Field(
        None, description="names of the faces of the split's train_groups and of the others (seed 001: [CelebC, "
                          "CelebO]); None: no domain attribute")
    reference_attributes: tuple[str, ...] = Field(
        ("gender",), description="the realism of a group's generated faces is measured against the real held-out "
        "faces that share these attributes with them (and, when ageing, the target age group)")
    far: float = Field(1e-5, gt=0, lt=1, description="the false accept rate fixing the verifier's threshold on real "
                       "impostor pairs of the held-out faces (seed 004 Table 2: 1e-5)")
    judges: JudgeSettings = JudgeSettings()
    inception_weights: str | None = Field(None, description="a local state dict of torchvision's inception_v3 "
                                          "(needed by the fid@inception and kid@inception metrics only)")
    samples_per_domain: int = Field(16, ge=0, description="source faces per domain in the sample grids and the "
                                    "study manifest's pairs")

    @field_validator("age_groups")
    @classmethod
    def _ages_increasing(cls, edges: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if edges is not None and (len(edges) < 2 or list(edges) != sorted(set(edges))):
            raise ValueError("age_groups must be at least two strictly increasing lower edges")
        return edges


class Protocol(_Spec):
    """A validated protocol with one profile applied: the frozen description of a benchmark run."""

    name: str
    version: int = Field(ge=1)
    title: str
    description: str = ""
    paper: str = ""
    task: str
    dataset: DatasetSection
    train_dataset: TrainingDataSection | None = Field(
        None, description="train on this dataset instead of the split's train part (test-only datasets)")
    split: SplitSection
    groups: GroupsSection = GroupsSection()
    evaluation: EvaluationSection
    model: ModelSection
    training: TrainingSection
    baselines: tuple[BaselineSection, ...] = Field(min_length=1)
    reference: tuple[ReferenceResult, ...] = ()
    deviations: tuple[Deviation, ...] = Field(
        description="every setting the paper does not give and every deliberate difference (non-empty)")
    comparability: ComparabilityConditions | None = Field(
        None, description="the paper's conditions a run must meet for its reference numbers to be comparable; "
                          "None: the protocol states none, so no reference number is ever comparable")
    repeats: int | None = Field(
        None, ge=1, le=100, description="train and score every baseline this many times, with seeds --seed, --seed+1, "
        "...; the report gives the mean over repeats with its t interval beside each run's bootstrap interval "
        "(seed 001 section 2.3: n = 5); None: once. Left out of the fingerprint when None")
    generation: GenerationSection | None = Field(
        None, description="task face_generation: the edits asked for and how they are judged; left out of the "
                          "fingerprint when None")
    profile: str = Field(description="the profile applied (set by the loader)")
    overrides: tuple[str, ...] = Field((), description="the --set overrides applied, as given (set by the loader)")

    @field_validator("deviations")
    @classmethod
    def _stated(cls, deviations: tuple[Deviation, ...]) -> tuple[Deviation, ...]:
        if not deviations:
            raise ValueError("must list at least one deviation from the paper (each setting the paper does not "
                             "give, with the choice made; each deliberate difference, with the reason)")
        return deviations

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def fingerprint(self) -> str:
        """sha256 of the resolved protocol, to address runs and detect protocol changes. The ``--set`` text is
        left out: its effect is in the resolved values, and a value set by ``--set`` or written in the file is
        the same protocol."""
        resolved = self.model_dump(mode="json", exclude={"overrides"})
        # Keys added after protocols were published enter the hash only when set, so that a protocol without
        # them keeps its fingerprint (and its run folders): dataset options, repeats.
        resolved["dataset"] = self.dataset.fingerprint_dump()
        if self.train_dataset is not None:
            resolved["train_dataset"] = self.train_dataset.fingerprint_dump()
        if self.repeats is None:
            del resolved["repeats"]
        if self.generation is None:
            del resolved["generation"]
        return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()


# ----------------------------------------------------------------------------------------------- loading


#: Top-level lists that accumulate instead of being replaced: an included file's entries come first, then the
#: including file's, then the chosen profile's (every other list is replaced whole).
ACCUMULATING_KEYS = ("deviations",)


def _deep_merge(base: dict, override: dict, *, accumulate: tuple[str, ...] = ()) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if key in accumulate and isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = merged[key] + copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_override(text: str, *, flag: str = "--set") -> tuple[list[str], Any]:
    """Parse ``key.path=value`` (the value as YAML) into a path and a value; errors name ``flag``.

    >>> parse_override("training.epochs=3")
    (['training', 'epochs'], 3)
    >>> parse_override("model.pretrained=null")
    (['model', 'pretrained'], None)
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserInputError(f"{flag} {shorten(text)} is not of the form key.path=value.")
    try:
        value = load_yaml(raw, where=f"{flag} {shorten(text)}") if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _apply_override(raw: dict, path: list[str], value: Any, text: str, flag: str = "--set") -> None:
    node: Any = raw
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise UserInputError(f"{flag} {text}: '{'.'.join(path[: i + 1])}' is not an index of a list of {len(node)}.")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise UserInputError(f"{flag} {text}: '{'.'.join(path[:i])}' is a value, not a section.")


def read_yaml_mapping(path: Path, *, what: str) -> dict[str, Any]:
    """Parse a YAML file that must hold a mapping; one sentence naming the file (and line) otherwise.
    ``what`` completes "PATH: ..." when the document is not a mapping."""
    try:
        if Path(path).stat().st_size > MAX_YAML_BYTES:
            raise UserInputError(f"{path}: larger than the {MAX_YAML_BYTES:,} bytes facebench reads from a YAML file.")
        raw = load_yaml(Path(path).read_text(encoding="utf-8"), where=str(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserInputError(f"{path}: not valid YAML{line}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path}: cannot be read ({exc.__class__.__name__}).") from None
    if not isinstance(raw, dict):
        raise UserInputError(f"{path}: {what}.")
    return raw


def builtin_protocol_names() -> list[str]:
    """Names of the built-in protocols (file stems), as ``facebench run NAME`` accepts them."""
    return [path.stem for path in builtin_protocols()]


def locate_protocol(ref: str | Path, *, beside: Path | None = None) -> Path:
    """The protocol file that ``ref`` means: a path to a YAML file, or a built-in protocol's name.

    ``ref`` is tried as a path first (relative to ``beside``'s folder when given, as ``include:`` does, else to
    the working folder); a ``ref`` without a folder part (``age_utk_cross_ethnicity``, with or without
    ``.yaml``) then names a built-in protocol. Anything else is one sentence with a did-you-mean.
    """
    text = str(ref)
    candidate = (beside.parent / text) if beside is not None else Path(text)
    if is_file(candidate):
        return candidate
    bare = Path(text).name == text and text not in ("", ".", "..")
    stem = text.removesuffix(".yaml").removesuffix(".yml") if bare else ""
    if stem and is_file(PROTOCOL_DIR / f"{stem}.yaml"):
        return PROTOCOL_DIR / f"{stem}.yaml"
    names = builtin_protocol_names()
    hint = did_you_mean(stem or Path(text).stem, names)
    text = shorten(text, 120).strip("'\"")
    if beside is not None:
        raise UserInputError(f"{beside}: key 'include': {text} is neither a file beside it nor a built-in protocol{hint}.")
    if bare and not text.endswith((".yaml", ".yml")):
        raise UserInputError(f"Unknown protocol '{text}'{hint}; `facebench protocols list` shows the built-in ones.")
    raise UserInputError(f"Protocol file {text} does not exist{hint}; `facebench protocols list` shows the built-in ones.")


def read_protocol_file(path: str | Path, *, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a protocol YAML into a dict (no semantics yet); one-sentence errors for unreadable files.

    ``path`` may name a built-in protocol (:func:`locate_protocol`). ``include: other.yaml`` (a path
    relative to this file; else a built-in protocol's name) starts from the other protocol's keys; this
    file's keys win, mappings merge key by key, lists are replaced whole, except ``deviations``, whose entries
    accumulate (the included file's first). Include cycles are refused.
    """
    path = locate_protocol(path)
    raw = read_yaml_mapping(path, what="a protocol must be a YAML mapping of keys")
    include = raw.pop("include", None)
    if include is not None:
        if not isinstance(include, str):
            raise UserInputError(f"{path}: key 'include' must be one file name.")
        base_path = locate_protocol(include, beside=path).resolve()
        if base_path in _seen or base_path == path.resolve():
            raise UserInputError(f"{path}: key 'include' makes a cycle through {base_path.name}.")
        raw = _deep_merge(read_protocol_file(base_path, _seen=(*_seen, path.resolve())), raw,
                          accumulate=ACCUMULATING_KEYS)
    return raw


def profile_names(raw: dict[str, Any]) -> list[str]:
    return sorted((raw.get("profiles") or {}).keys())


def load_protocol(path: str | Path, *, profile: str | None = None, overrides: tuple[str, ...] | list[str] = (),
                  grid: tuple[str, ...] | list[str] = ()) -> Protocol:
    """Load, merge a profile, apply overrides, validate, and check every name against the registries.
    ``path`` is a protocol file or a built-in protocol's name (:func:`locate_protocol`). ``grid`` holds a sweep's
    grid point (``facebench sweep --grid``): ``--set`` overrides applied after ``overrides``, named ``--grid`` in
    error messages; ``Protocol.overrides`` records both, as they are both in effect."""
    path = locate_protocol(path)
    raw = read_protocol_file(path)
    given = [f"{flag} {', '.join(texts)}" for flag, texts in (("--set", overrides), ("--grid", grid)) if texts]
    where = str(path) + (f" (with {'; '.join(given)})" if given else "")
    profiles = raw.pop("profiles", None) or {}
    if not isinstance(profiles, dict):
        raise UserInputError(f"{path}: key 'profiles' must be a mapping of profile names to overrides.")
    default_profile = raw.pop("default_profile", "quick" if "quick" in profiles else None)
    chosen = profile or default_profile
    if chosen is not None:
        if chosen not in profiles:
            raise UserInputError(
                f"{path}: unknown profile '{chosen}'{did_you_mean(chosen, profiles)}; profiles: {', '.join(sorted(profiles)) or 'none'}."
            )
        if not isinstance(profiles[chosen], dict):
            raise UserInputError(f"{path}: key 'profiles.{chosen}' must be a mapping of overrides.")
        raw = _deep_merge(raw, profiles[chosen], accumulate=ACCUMULATING_KEYS)
    for text, flag in [(text, "--set") for text in overrides] + [(text, "--grid") for text in grid]:
        keys, value = parse_override(text, flag=flag)
        _apply_override(raw, keys, value, text, flag)
    raw["profile"] = chosen or "base"
    raw["overrides"] = [*overrides, *grid]
    try:
        protocol = Protocol.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, where=where, model=Protocol) from None
    _check_names(protocol, where)
    return protocol


def _check_names(protocol: Protocol, where: str) -> None:
    # Imported here: metric names live with the metric code, which imports numpy/pandas.
    from facebench.metrics import METRIC_NAMES, get_metric

    TASKS.check(protocol.task, where=f"{where}: key 'task'")
    DATASETS.check(protocol.dataset.name, where=f"{where}: key 'dataset.name'")
    if protocol.train_dataset is not None:
        DATASETS.check(protocol.train_dataset.name, where=f"{where}: key 'train_dataset.name'")
    for key, section in (("dataset", protocol.dataset), ("train_dataset", protocol.train_dataset)):
        if section is not None and section.options:  # the reader's own options only (one sentence otherwise)
            DATASETS.get(section.name).check_read_options(section.options, where=f"{where}: key '{key}.options'")
    SPLITS.check(protocol.split.name, where=f"{where}: key 'split.name'")
    if protocol.comparability is not None and protocol.comparability.training_data is not None:
        DATASETS.check(protocol.comparability.training_data.dataset,
                       where=f"{where}: key 'comparability.training_data.dataset'")
    _check_split_params(protocol, where)
    for i, metric in enumerate(protocol.evaluation.metrics):
        try:
            get_metric(metric)
        except UserInputError:
            raise UserInputError(
                f"{where}: key 'evaluation.metrics[{i}]': unknown metric '{metric}'{did_you_mean(metric, METRIC_NAMES)}."
            ) from None
    if protocol.evaluation.primary_metric not in protocol.evaluation.metrics:
        raise UserInputError(
            f"{where}: key 'evaluation.primary_metric': '{protocol.evaluation.primary_metric}' is not one of evaluation.metrics."
        )
    # Torch-free: the baselines' params models and the backbone names live apart from the torch code.
    from facebench.baselines.params import BACKBONE_NAMES
    from facebench.baselines.specs import as_baseline_spec

    if protocol.model.backbone not in BACKBONE_NAMES:
        raise UserInputError(
            f"{where}: key 'model.backbone': unknown backbone '{protocol.model.backbone}'"
            f"{did_you_mean(protocol.model.backbone, BACKBONE_NAMES)}."
        )
    if protocol.training.leave_one_out_finetune is not None:
        if protocol.task != "face_identification_loo":
            raise UserInputError(f"{where}: key 'training.leave_one_out_finetune' applies to task "
                                 f"face_identification_loo only, not to '{protocol.task}'.")
        for i, baseline in enumerate(protocol.baselines):  # fine-tuning starts from the trained encoder
            if not as_baseline_spec(BASELINES.get(baseline.name)).leave_one_out_finetune:
                raise UserInputError(f"{where}: key 'baselines[{i}].name': baseline '{baseline.name}' has no trainable "
                                     "encoder, so training.leave_one_out_finetune cannot fine-tune it.")
    _check_generation(protocol, where)
    known_attributes = TASKS.get(protocol.task).group_attributes
    for i, attribute in enumerate(protocol.groups.attributes):
        if attribute not in known_attributes:
            raise UserInputError(
                f"{where}: key 'groups.attributes[{i}]': unknown attribute '{attribute}'{did_you_mean(attribute, known_attributes)}."
            )
    for i, baseline in enumerate(protocol.baselines):
        key = f"baselines[{i}]"
        spec = as_baseline_spec(BASELINES.get(baseline.name, where=f"{where}: key '{key}.name'"))
        task = TASKS.get(protocol.task)
        if spec.task != task.baseline_kind:
            raise UserInputError(f"{where}: key '{key}.name': baseline '{baseline.name}' is a {spec.task} method and "
                                 f"cannot run task '{protocol.task}'.")
        try:
            spec.params.model_validate(baseline.params)
        except ValidationError as exc:
            raise validation_error(exc, where=where, model=spec.params, key_prefix=f"{key}.params.") from None


def _check_generation(protocol: Protocol, where: str) -> None:
    """``generation:`` belongs to task face_generation (which needs it); the Inception realism metrics need a
    weights file (none can be downloaded)."""
    if (protocol.task == "face_generation") != (protocol.generation is not None):
        raise UserInputError(f"{where}: key 'generation' is {'required by' if protocol.generation is None else 'only for'}"
                             f" task face_generation (this protocol's task is '{protocol.task}').")
    if protocol.generation is None:
        for i, metric in enumerate(protocol.evaluation.metrics):
            if metric.startswith(("fid@", "kid@")):
                raise UserInputError(f"{where}: key 'evaluation.metrics[{i}]': {metric} scores generated faces (task "
                                     "face_generation only).")
    elif protocol.generation.inception_weights is None:
        for i, metric in enumerate(protocol.evaluation.metrics):
            if metric.endswith("@inception"):
                raise UserInputError(f"{where}: key 'evaluation.metrics[{i}]': {metric} needs Inception weights; set "
                                     "generation.inception_weights to a local inception_v3 state dict.")


def _check_split_params(protocol: Protocol, where: str) -> None:
    """Every key of ``split.params`` must be a keyword of the split function (``seed`` included)."""
    import inspect

    accepted = [name for name, p in inspect.signature(SPLITS.get(protocol.split.name)).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY]
    for key in protocol.split.params:
        if key not in accepted:
            raise UserInputError(f"{where}: unknown key 'split.params.{key}' for split '{protocol.split.name}'"
                                 f"{did_you_mean(key, accepted)}; it takes {', '.join(accepted)}.")


def validate_all_profiles(path: str | Path) -> list[Protocol]:
    """Validate the base settings merged with every profile; the first problem raises."""
    path = locate_protocol(path)
    raw = read_protocol_file(path)
    names = profile_names(raw)
    if not {"paper", "quick"} <= set(names):
        raise UserInputError(f"{path}: key 'profiles' must define at least 'paper' and 'quick' (has: {', '.join(names) or 'none'}).")
    return [load_protocol(path, profile=name) for name in names]


def builtin_protocols() -> list[Path]:
    return sorted(PROTOCOL_DIR.glob("*.yaml")) if PROTOCOL_DIR.is_dir() else []
