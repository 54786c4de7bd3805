"""Running a protocol: data → split → each baseline's fit and predict → scoring → report.

Runs are hash-addressed (DomainBed style): a baseline's run directory is named after a hash of everything
that determines its numbers (resolved protocol, baseline and params, seed, data and split fingerprints).
Running the same command again resumes a killed run from its last epoch checkpoint, and skips a finished
one.

Under torchrun (:func:`facebench.distributed.session`) every rank runs this, trains together, and rank 0 alone
prepares the data first (the others then read its caches), takes the run-folder locks, decides what is finished,
predicts, scores and writes; the other ranks go on to the next baseline after training.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facebench.data.datasets import LoadedDataset, default_cache_dir, load_dataset
from facebench.data.identities import IdentityOverlapWarning, describe_identity_overlap, identity_overlap
from facebench.data.images import image_store
from facebench.data.splits import Split
from facebench.distributed import broadcast_from_main, is_main, main_first, main_only
from facebench.evaluate import score_predictions_file
from facebench.locking import run_folder_lock
from facebench.progress import console
from facebench.protocol import BaselineSection, Protocol
from facebench.registry import BASELINES, DATASETS, SPLITS, TASKS
from facebench.seeding import seed_for


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    out_dir: Path
    seed: int = 0
    data_root: Path | None = None      # None: the synthetic stand-in
    cache_dir: Path | None = None
    progress: bool = True
    baselines: tuple[str, ...] = ()    # run only these (default: all of the protocol's)
    train_data_root: Path | None = None  # the protocol's train_dataset (default: data_root if same dataset)
    restart: bool = False              # delete each unfinished run's checkpoint instead of resuming it
    seeds: tuple[int, ...] = ()        # exactly these seeds (a sweep's job); default: seed ... seed + repeats - 1


@dataclass(frozen=True, kw_only=True)
class PlannedRun:
    """One run folder that :func:`run_protocol` writes for ``protocol`` and ``options``: a baseline and a seed."""

    baseline: str                      # the baseline's display name (label, else name)
    seed: int
    run_dir: Path


def prepare_data(protocol: Protocol, *, data_root: Path | None, cache_dir: Path, progress: bool = True
                 ) -> tuple[LoadedDataset, Split]:
    spec = DATASETS.get(protocol.dataset.name)
    dataset = load_dataset(spec, variant=protocol.dataset.variant, synthetic_settings=protocol.dataset.synthetic,
                           data_root=data_root, cache_dir=cache_dir, progress=progress, options=protocol.dataset.options)
    split_fn = SPLITS.get(protocol.split.name)
    split = split_fn(dataset.table, **{"seed": 0, **protocol.split.params})
    return dataset, split


def prepare_training_data(protocol: Protocol, dataset: LoadedDataset, split: Split, *, data_root: Path | None,
                          train_data_root: Path | None, cache_dir: Path, progress: bool = True
                          ) -> tuple[LoadedDataset, Split]:
    """What the baselines train on: the split's own train/val parts, or the protocol's ``train_dataset``
    (read from ``train_data_root``; by default from ``data_root`` when it is the test dataset's kind; the
    synthetic stand-in without either) with a subject hold-out for validation."""
    source = protocol.train_dataset
    if source is None:
        return dataset, split
    from facebench.data.splits import subject_holdout_split

    if train_data_root is None and data_root is not None and source.name == protocol.dataset.name:
        train_data_root = data_root
    if data_root is not None and train_data_root is None:
        from facebench.errors import UserInputError

        raise UserInputError(f"Protocol {protocol.name} trains on {source.name}: pass --train-data-root DIR for your copy "
                             "of it (or run without --data-root to use synthetic data for both).")
    train = load_dataset(DATASETS.get(source.name), variant=source.variant, synthetic_settings=source.synthetic,
                         data_root=train_data_root, cache_dir=cache_dir, progress=progress, options=source.options)
    return train, subject_holdout_split(train.table, seed=source.seed, val_fraction=source.val_fraction)


def training_id(protocol: Protocol, baseline_name: str, params: dict, seed: int, train: LoadedDataset,
                train_split: Split) -> str:
    """Hash of everything a model trained on a separate ``train_dataset`` depends on (not the test data)."""
    # Per-image fine-tuning happens after (and apart from) this training, so it does not address the model.
    training = protocol.training.model_dump(mode="json", exclude={"leave_one_out_finetune"})
    payload = json.dumps([baseline_name, params, seed, protocol.model.model_dump(mode="json"),
                          training, protocol.train_dataset.fingerprint_dump(),
                          train.fingerprint(), train_split.fingerprint()], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def run_id(protocol: Protocol, baseline_name: str, params: dict, seed: int, dataset: LoadedDataset, split: Split,
           train: tuple[LoadedDataset, Split] | None = None) -> str:
    fingerprints = [dataset.fingerprint(), split.fingerprint()]
    if train is not None and train[0] is not dataset:
        fingerprints += [train[0].fingerprint(), train[1].fingerprint()]
    payload = json.dumps([protocol.fingerprint(), baseline_name, params, seed, *fingerprints], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def draw_anchors(split: Split, count: int, *, seed: int) -> list[str]:
    """The ``count`` labelled target images a method with :attr:`Baseline.target_anchors` is given (the pairwise
    model's MDS anchors), drawn from the split's ``target`` part with the run's seed, sorted."""
    if count == 0:
        return []
    rng = np.random.default_rng(seed_for(seed, "anchors"))
    return sorted(rng.choice(np.array(split["target"]), size=count, replace=False).tolist())


def run_protocol(protocol: Protocol, options: RunOptions) -> list[Path]:
    """Run every baseline of ``protocol`` (``protocol.repeats`` times each, seeds ``--seed`` + k); return the run
    directories (with results.json each)."""
    started_all = time.perf_counter()
    cache_dir = options.cache_dir or default_cache_dir()
    with main_first():  # under torchrun rank 0 fetches weights, synthesises and hashes; the others find its caches
        _preflight(protocol, options)
        dataset, split = prepare_data(protocol, data_root=options.data_root, cache_dir=cache_dir,
                                      progress=options.progress)
        train_dataset, train_split = prepare_training_data(protocol, dataset, split, data_root=options.data_root,
                                                           train_data_root=options.train_data_root,
                                                           cache_dir=cache_dir, progress=options.progress)
    if dataset.synthetic:
        console.print("[bold yellow]SYNTHETIC DATA[/]: numbers measure the pipeline on generated faces, not real-world bias.")
    console.print(f"{protocol.name} ({protocol.profile} profile): {len(dataset.table)} images, split {split.sizes()}")
    if train_dataset is not dataset:
        console.print(f"training on {train_dataset.name}{' (synthetic)' if train_dataset.synthetic else ''}: "
                      f"{train_split.description}")
    identities = identity_overlap(train=train_dataset, train_split=train_split, test=dataset, test_split=split)
    if identities.n and is_main():
        warnings.warn(describe_identity_overlap(identities.as_json()), IdentityOverlapWarning, stacklevel=2)
    task = TASKS.get(protocol.task)
    table = dataset.table.set_index("sample_id")
    size = protocol.model.image_size

    def images(sample_ids: Sequence[str], *, alignment: str | None = None) -> np.ndarray:
        return image_store(dataset.root, list(sample_ids), size, cache_dir, progress=options.progress,
                           key=dataset.fingerprint(), alignment=alignment)

    def train_images(part: str, *, alignment: str | None = None) -> np.ndarray:
        return image_store(train_dataset.root, list(train_split[part]), size, cache_dir, progress=options.progress,
                           key=train_dataset.fingerprint(), alignment=alignment)

    run_dirs: list[Path] = []
    for baseline_spec in selected_baselines(protocol, options):
        for seed in run_seeds(protocol, options):
            run_dirs.append(_run_baseline(
                protocol, baseline_spec, seed=seed, options=options, task=task, dataset=dataset, split=split,
                train_dataset=train_dataset, train_split=train_split, table=table, images=images,
                train_images=train_images, identities=identities))
    console.print(f"done in {time.perf_counter() - started_all:.1f} s")
    return run_dirs


def run_seeds(protocol: Protocol, options: RunOptions) -> list[int]:
    """The seeds each baseline runs with: ``options.seeds`` when given (a sweep's job), else ``--seed`` and, for
    a protocol with ``repeats`` (seed 001 section 2.3: n = 5), ``--seed + 1`` ... ``--seed + repeats - 1``."""
    return list(options.seeds) or [options.seed + k for k in range(protocol.repeats or 1)]


def selected_baselines(protocol: Protocol, options: RunOptions) -> list[BaselineSection]:
    """The protocol's baselines that ``options.baselines`` picks (by name or label; all by default)."""
    wanted = options.baselines or tuple(b.display_name for b in protocol.baselines)
    return [b for b in protocol.baselines if b.name in wanted or b.display_name in wanted]


def run_dir_for(protocol: Protocol, baseline_spec: BaselineSection, *, params: dict, seed: int, out_dir: Path,
                dataset: LoadedDataset, split: Split, train: tuple[LoadedDataset, Split]) -> Path:
    """``OUT/<protocol>/<baseline label>-<run_id>``: where one baseline's run with one seed lives."""
    rid = run_id(protocol, baseline_spec.name, params, seed, dataset, split, train)
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in baseline_spec.display_name)
    return Path(out_dir) / protocol.name / f"{slug}-{rid}"


def plan_runs(protocol: Protocol, options: RunOptions) -> list[PlannedRun]:
    """The run folders :func:`run_protocol` would write, found without training anything: each baseline's
    preflight, then the data and split (synthesised and hashed as a run does, from the same caches) and the
    run hashes. ``facebench sweep`` addresses its jobs with these folders."""
    _preflight(protocol, options)
    cache_dir = options.cache_dir or default_cache_dir()
    dataset, split = prepare_data(protocol, data_root=options.data_root, cache_dir=cache_dir, progress=options.progress)
    train = prepare_training_data(protocol, dataset, split, data_root=options.data_root,
                                  train_data_root=options.train_data_root, cache_dir=cache_dir,
                                  progress=options.progress)
    planned = []
    for baseline_spec in selected_baselines(protocol, options):
        cls = _baseline_class(baseline_spec.name)
        params = cls.Params.model_validate(baseline_spec.params).model_dump(mode="json")
        for seed in run_seeds(protocol, options):
            planned.append(PlannedRun(baseline=baseline_spec.display_name, seed=seed, run_dir=run_dir_for(
                protocol, baseline_spec, params=params, seed=seed, out_dir=options.out_dir, dataset=dataset,
                split=split, train=train)))
    return planned


def _baseline_class(name: str):
    from facebench.baselines.specs import as_baseline_spec

    return as_baseline_spec(BASELINES.get(name)).load()


def _preflight(protocol: Protocol, options: RunOptions) -> None:
    """Each baseline to run checks what it needs before any data is read or written (missing weights: one
    sentence, and nothing synthesised or written)."""
    for spec in selected_baselines(protocol, options):
        cls = _baseline_class(spec.name)
        cls.preflight(protocol=protocol, params=cls.Params.model_validate(spec.params))


def _run_baseline(protocol: Protocol, baseline_spec, *, seed: int, options: RunOptions, task, dataset: LoadedDataset,
                  split: Split, train_dataset: LoadedDataset, train_split: Split, table, images, train_images,
                  identities) -> Path:
    """Train, predict and score one baseline with one seed; return its run directory. Under torchrun every rank
    trains; rank 0 alone holds the lock, writes, predicts and scores."""
    from facebench.baselines.training import LoopConfig, resolve_device

    started = time.perf_counter()
    cls = _baseline_class(baseline_spec.name)
    params = cls.Params.model_validate(baseline_spec.params)
    run_dir = run_dir_for(protocol, baseline_spec, params=params.model_dump(mode="json"), seed=seed,
                          out_dir=options.out_dir, dataset=dataset, split=split, train=(train_dataset, train_split))
    rid = run_dir.name.rpartition("-")[2]  # the run hash (hex, after the label's slug)
    # One writer per run folder: an identical run started meanwhile waits here, then finds results.json. The ranks
    # of a torchrun launch are one writer: rank 0 holds the lock and tells the others whether the run is done.
    with main_only(run_folder_lock(run_dir, on_wait=console.print)):
        if broadcast_from_main((run_dir / "results.json").is_file()):
            console.print(f"{baseline_spec.display_name}: already done in {run_dir} (delete it to run again)")
            return run_dir
        console.print(f"[bold]{baseline_spec.display_name}[/] → {run_dir}")
        baseline = cls(protocol=protocol, params=params)
        if baseline.input_alignment is not None:  # e.g. seed 001's OpenFace crop: the baseline's every image
            images = functools.partial(images, alignment=baseline.input_alignment)
            train_images = functools.partial(train_images, alignment=baseline.input_alignment)
        in_domain = baseline.trains_on_test_dataset
        with main_first():  # rank 0 builds the image stores; the other ranks read them
            if in_domain:  # seed 001's in-domain benchmark: the test dataset's own labelled train (and val) images
                fit_data = task.fit_data(dataset.table, split, lambda part: images(split[part]))
            else:
                fit_data = task.fit_data(train_dataset.table, train_split, train_images)
        t = protocol.training
        checkpoint_dir, fingerprint = run_dir / "checkpoints", rid
        # trained once for several protocols: one trainer at a time
        shared_model = train_dataset is not dataset and not in_domain
        if shared_model:
            # Training does not depend on the test dataset: protocols that train the same baseline the same way
            # on the same data (FG-NET and AgeDB-30 both train on CACD) share one model, trained once.
            fingerprint = training_id(protocol, baseline_spec.name, params.model_dump(mode="json"), seed,
                                      train_dataset, train_split)
            # Named after the baseline, not its label: tables that label one training differently share it too.
            checkpoint_dir = Path(options.out_dir) / "_trained" / f"{baseline_spec.name}-{fingerprint}"
        loop = LoopConfig(epochs=t.epochs, batch_size=t.batch_size, seed=seed, optimizer=t.optimizer, lr=t.lr,
                          weight_decay=t.weight_decay, loss=t.loss, device=t.device, amp=t.amp,
                          channels_last=t.channels_last, hflip=t.hflip, lr_schedule=t.lr_schedule,
                          plateau_metric=t.plateau_metric, plateau_mode=t.plateau_mode,
                          plateau_patience=t.plateau_patience, plateau_factor=t.plateau_factor,
                          checkpoint_dir=checkpoint_dir, progress=options.progress, fingerprint=fingerprint,
                          restart=options.restart, cache_dir=options.cache_dir or default_cache_dir())
        with main_only(run_folder_lock(checkpoint_dir, on_wait=console.print)) if shared_model else contextlib.nullcontext():
            history = baseline.fit(fit_data, loop)
        finetune = t.leave_one_out_finetune
        if finetune is None and not is_main():  # prediction and scoring are rank 0's
            return run_dir
        anchors = draw_anchors(split, cls.target_anchors, seed=seed)
        scored = split
        if anchors:
            if is_main():  # only prediction needs them
                baseline.set_anchors(images(anchors), table.loc[anchors, "age"].to_numpy(dtype=np.float64))
            # The method was handed these images' ages: scoring them would grade it against its own input.
            scored = split.exclude_from_test(anchors, reason=f"{len(anchors)} labelled target anchors not scored")
        predictions = run_dir / task.predictions_file
        if finetune is not None:  # FG-NET's per-image scheme: one fine-tuned model per left-out test image
            test_ids = list(scored["test"])
            with main_first():
                test_images = images(test_ids)
            scores = baseline.leave_one_out_scores(  # trains: every rank
                test_images, table.loc[test_ids, "subject_id"].to_numpy(dtype=str),
                table.loc[test_ids, "age"].to_numpy(dtype=np.float64), loop=loop, epochs=finetune.epochs,
                batch_size=finetune.batch_size, lr=finetune.lr, work_dir=run_dir / "checkpoints")
            if not is_main():
                return run_dir
            task.write_similarity(predictions, test_ids, scores)
        else:
            task.write_predictions(predictions, scored["test"], task.model_outputs(
                baseline, protocol=protocol, table=dataset.table, sample_ids=scored["test"], images=images))
        extra_splits = {}
        for extra in task.extra_splits:  # e.g. the source validation MAE of seed 000's tables
            name = extra.part if extra.dataset == "test" else f"{extra.dataset}_{extra.part}"
            extra_splits[extra.label] = run_dir / f"predictions_{name}{predictions.suffix}"
            if extra.dataset == "train":  # a part of the training data's split (seed 001's source accuracy)
                ids, pixels = train_split[extra.part], train_images(extra.part)
            else:
                ids, pixels = scored[extra.part], images(scored[extra.part])
            task.write_predictions(extra_splits[extra.label], ids, baseline.predict(pixels))
        score_predictions_file(
            protocol=protocol, dataset=dataset, split=scored, predictions=predictions, out_dir=run_dir,
            seed=seed, started=started, device=str(resolve_device(t.device)),
            baseline={"name": baseline_spec.name, "label": baseline_spec.display_name, "params": params.model_dump(mode="json"), "kind": "baseline",
                      "model": protocol.model.model_dump(mode="json"), "training": t.model_dump(mode="json"),
                      "labelled_target_anchors": anchors, "pretrained_on": cls.pretrained_on,
                      **({"train_data": {"dataset": train_dataset.name, "model_dir": f"_trained/{checkpoint_dir.name}",
                                         "synthetic": train_dataset.synthetic,
                                         "fingerprint": train_dataset.fingerprint(),
                                         "split_fingerprint": train_split.fingerprint(),
                                         "split": train_split.description}} if shared_model else {}),
                      **({"train_data": {"dataset": dataset.name, "in_domain": True, "synthetic": dataset.synthetic,
                                         "fingerprint": dataset.fingerprint(), "split_fingerprint": split.fingerprint(),
                                         "split": f"the {len(split['train'])} labelled train images of the test dataset's "
                                                  "split"}} if in_domain and train_dataset is not dataset else {})},
            training={"epochs": history.epochs, "resumed_from_epoch": history.resumed_from_epoch},
            extra_splits=extra_splits, train_data=(train_dataset, train_split), cache_dir=options.cache_dir,
            leakage_checks={"n_excluded_anchors": len(split["test"]) - len(scored["test"]),
                            "identity_overlap": identities.as_json()},
        )
        return run_dir
