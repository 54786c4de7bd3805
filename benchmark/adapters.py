"""Bring your own model: ``facebench evaluate PROTOCOL --model package.module:factory``.

A model is scored exactly like a predictions file: facebench runs it over the protocol's test images, writes
its outputs with the task's own writer (:meth:`write_predictions`) and scores that file through
:func:`facebench.evaluate.score_predictions_file`, the path every baseline and every ``--predictions``
submission takes.

The adapter contract (also in ``docs/submissions.md``):

* ``--model`` names a factory, ``package.module:factory`` (importable, or a module in the current folder)
  or ``path/to/file.py:factory``. facebench calls it with keyword arguments only::

      model = factory(task="age_regression", image_size=64)

  ``task`` is the protocol's task name and ``image_size`` the side ``S`` of the images the model will get.
* ``model(batch)`` takes a ``torch.float32`` tensor of shape ``(N, 3, S, S)``: aligned face crops, RGB,
  values in ``[0, 1]`` (``uint8 / 255``), contiguous NCHW, no normalisation: the same input the baselines get
  (:func:`facebench.baselines.training.predict_batches` prepares it, for baselines and models alike). Any
  normalisation belongs in the model. Batches hold up to 256 images, in the test split's order.
* It returns a ``torch.Tensor`` or ``numpy.ndarray`` of real numbers: for ``age_regression`` ages in years,
  shape ``(N,)`` or ``(N, 1)``; for ``race_classification`` the probability of ``white`` (in [0, 1]), shape
  ``(N,)`` or ``(N, 1)``; for face-recognition tasks (``face_identification``, ``face_retrieval``, ...)
  embeddings of shape ``(N, D)``, ``D >= 1`` and the same for every batch. Outputs are stored as float32 and
  must be finite there.
* If the model is a ``torch.nn.Module`` facebench moves it to the device (CUDA when present, else Apple MPS,
  else CPU; ``--set training.device=cpu`` forces the CPU) and calls ``.eval()``; any other callable gets its
  batches on that device and places its own weights (``batch.device`` says where). Calls run under
  ``torch.inference_mode()`` without autocast.

Anything wrong (a spec that does not import, a factory that raises, an output of the wrong shape, type or
value) ends with one sentence naming the spec, and the batch and sample where it applies
(:class:`~facebench.errors.UserInputError`), and nothing is written.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from facebench.errors import UserInputError, did_you_mean
from facebench.io import partial_folder, remove_stale_partials, replace_folder

if TYPE_CHECKING:  # torch is imported when a model runs, so that scoring a predictions file does not pay for it
    import torch

    from facebench.data.datasets import LoadedDataset
    from facebench.data.splits import Split
    from facebench.protocol import Protocol
    from facebench.tasks import Task

Output = Literal["age", "embedding", "probability"]

#: What a model returns, by the ``baseline_kind`` of the protocol's task.
OUTPUTS: dict[str, Output] = {"age_regression": "age", "face_recognition": "embedding",
                               "race_classification": "probability"}

#: Images per model call (the batch size of :func:`facebench.baselines.training.predict_batches`).
BATCH_SIZE = 256


@dataclass(frozen=True, kw_only=True)
class UserModel:
    """A loaded model: the spec it came from, its default submission name and what it must return."""

    spec: str
    name: str
    model: Callable[..., Any]
    output: Output


def output_kind(task: Task) -> Output:
    """What a model must return for ``task``: ``"age"`` or ``"embedding"``.

    >>> from facebench.tasks import AGE_REGRESSION, FACE_RETRIEVAL
    >>> output_kind(AGE_REGRESSION), output_kind(FACE_RETRIEVAL)
    ('age', 'embedding')
    """
    kind = OUTPUTS.get(task.baseline_kind)
    if kind is None:
        raise UserInputError(f"Task {task.name} has no model adapter; submit a predictions file with --predictions "
                             f"({task.description}).")
    return kind


def parse_spec(spec: str) -> tuple[str, str, bool]:
    """Split a model spec into (module or file, attribute path, whether it is a file).

    >>> parse_spec("my_models.age:build")
    ('my_models.age', 'build', False)
    >>> parse_spec("models/age.py:Factory.create")
    ('models/age.py', 'Factory.create', True)
    """
    target, _, attribute = spec.rpartition(":")
    if not target or not attribute or not all(part.isidentifier() for part in attribute.split(".")):
        raise UserInputError(f"--model {spec}: expected package.module:factory or path/to/file.py:factory.")
    is_file = target.endswith(".py") or "/" in target or os.sep in target
    return target, attribute, is_file


def _describe(exc: BaseException) -> str:
    """``"ValueError: first line of the message"``, without a trailing full stop."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0].rstrip('.')}" if lines else type(exc).__name__


def _importable(folder: str) -> None:
    """Let modules in ``folder`` be imported (appended: an installed package of the same name wins)."""
    if folder not in sys.path and not (folder == os.getcwd() and "" in sys.path):
        sys.path.append(folder)


def _import(spec: str, target: str, *, is_file: bool) -> ModuleType:
    if is_file:
        path = Path(target).expanduser()
        if not path.is_file():
            raise UserInputError(f"--model {spec}: {path} is not a file.")
        name = f"facebench_user_model_{uuid.uuid4().hex[:12]}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise UserInputError(f"--model {spec}: {path} cannot be imported as a Python module.")
        module = importlib.util.module_from_spec(module_spec)
        _importable(str(path.resolve().parent))  # its sibling modules import, as under `python file.py`
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    _importable(os.getcwd())
    return importlib.import_module(target)


def load_factory(spec: str) -> tuple[Callable[..., Any], str]:
    """Import the factory named by ``spec``; return it and its name in the spec (the default submission name)."""
    target, attribute, is_file = parse_spec(spec)
    try:
        module = _import(spec, target, is_file=is_file)
    except UserInputError:
        raise
    except ModuleNotFoundError as exc:
        if not is_file and exc.name and (target == exc.name or target.startswith(f"{exc.name}.")):
            raise UserInputError(f"--model {spec}: there is no module {target} (not installed, and not in the current "
                                 "folder).") from None
        raise UserInputError(f"--model {spec}: importing {target} raised {_describe(exc)}.") from exc
    except Exception as exc:
        raise UserInputError(f"--model {spec}: importing {target} raised {_describe(exc)}.") from exc
    factory: Any = module
    parts = attribute.split(".")
    for depth, part in enumerate(parts):
        if not hasattr(factory, part):
            owner = f"{target}:{'.'.join(parts[:depth])}" if depth else target
            public = [name for name in dir(factory) if not name.startswith("_")]
            raise UserInputError(f"--model {spec}: {owner} has no attribute {part!r}{did_you_mean(part, public)}.")
        factory = getattr(factory, part)
    if not callable(factory):
        raise UserInputError(f"--model {spec}: {attribute} is not callable ({type(factory).__name__}), so it is not a "
                             "factory.")
    return factory, parts[-1]


def load_model(spec: str, *, task: Any, image_size: int) -> UserModel:
    """Import the factory of ``spec`` and build the model: ``factory(task=task.name, image_size=image_size)``."""
    output = output_kind(task)
    factory, name = load_factory(spec)
    call = f"{spec.rpartition(':')[2]}(task={task.name!r}, image_size={image_size})"
    try:
        model = factory(task=task.name, image_size=image_size)
    except Exception as exc:
        raise UserInputError(f"--model {spec}: {call} raised {_describe(exc)}.") from exc
    if not callable(model):
        raise UserInputError(f"--model {spec}: {call} returned a {type(model).__name__}, not a callable model.")
    return UserModel(spec=spec, name=name, model=model, output=output)


def check_output(output: Any, *, model: UserModel, batch: int, start: int, sample_ids: Sequence[str],
                 width: int | None = None) -> np.ndarray:
    """Validate one batch's output; return it as float32, ages (N,) or embeddings (N, D).

    ``batch`` counts from 1, ``start`` is the index of the batch's first sample, ``sample_ids`` are the batch's
    ids and ``width`` the embedding width of the earlier batches (None for the first).

    >>> m = UserModel(spec="m.py:f", name="f", model=print, output="age")
    >>> check_output(np.array([[30.0], [41.5]]), model=m, batch=1, start=0, sample_ids=["a", "b"])
    array([30. , 41.5], dtype=float32)
    >>> check_output(np.array([30.0, np.inf]), model=m, batch=2, start=256, sample_ids=["c", "d"])
    Traceback (most recent call last):
    ...
    facebench.errors.UserInputError: --model m.py:f: batch 2 has a NaN or infinite output (as float32) for sample 257 ('d').
    """
    import torch

    n = len(sample_ids)
    where = f"batch {batch} ({n} images from sample {start})"
    if isinstance(output, torch.Tensor):
        real = output.dtype.is_floating_point or output.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32,
                                                                   torch.int64)
        dtype, shape = str(output.dtype), tuple(output.shape)
    elif isinstance(output, np.ndarray):
        real, dtype, shape = output.dtype.kind in "iuf", str(output.dtype), output.shape
    else:
        raise UserInputError(f"--model {model.spec}: the model returned a {type(output).__name__} for {where}, not a "
                             "torch.Tensor or numpy array.")
    if not real:
        raise UserInputError(f"--model {model.spec}: the model returned dtype {dtype} for {where}, not real numbers.")
    if model.output in ("age", "probability") and shape not in ((n,), (n, 1)):
        what = "ages" if model.output == "age" else "probabilities"
        raise UserInputError(f"--model {model.spec}: the model returned shape {shape} for {where}; {what} must have "
                             f"shape ({n},) or ({n}, 1).")
    if model.output == "embedding" and (len(shape) != 2 or shape[0] != n or shape[1] < 1):
        raise UserInputError(f"--model {model.spec}: the model returned shape {shape} for {where}; embeddings must "
                             f"have shape ({n}, D) with D >= 1.")
    if model.output == "embedding" and width is not None and shape[1] != width:
        raise UserInputError(f"--model {model.spec}: the model returned embeddings of width {shape[1]} for {where} "
                             f"after width {width} for the batches before.")
    if isinstance(output, torch.Tensor):
        values = output.detach().to("cpu", torch.float32).numpy()
    else:
        with np.errstate(over="ignore"):
            values = output.astype(np.float32)
    values = values.reshape(n) if model.output in ("age", "probability") else values
    bad = ~np.isfinite(values.reshape(n, -1)).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserInputError(f"--model {model.spec}: batch {batch} has a NaN or infinite output (as float32) for "
                             f"sample {start + i} ({str(sample_ids[i])!r}).")
    if model.output == "probability" and ((values < 0) | (values > 1)).any():
        i = int(np.flatnonzero((values < 0) | (values > 1))[0])
        raise UserInputError(f"--model {model.spec}: batch {batch} has output {float(values[i]):.4g} for sample "
                             f"{start + i} ({str(sample_ids[i])!r}), which is not a probability in [0, 1].")
    return values


def predict(model: UserModel, images: np.ndarray, *, sample_ids: Sequence[str], device: str | torch.device = "cpu",
            batch_size: int = BATCH_SIZE, progress: bool = True) -> np.ndarray:
    """Run ``model`` over a uint8 image store (N, 3, S, S); return ages (N,) or embeddings (N, D), float64.

    The batches come from :func:`facebench.baselines.training.predict_batches`, the function that feeds the
    baselines (float32 in [0, 1], here without autocast or channels_last); each output is validated by
    :func:`check_output` before the next batch runs.
    """
    import torch

    from facebench.baselines.training import predict_batches
    from facebench.progress import make_progress, progress_enabled

    if len(sample_ids) != len(images):
        raise ValueError(f"{len(sample_ids)} sample ids for {len(images)} images")
    device = torch.device(device)

    class Checked(torch.nn.Module):
        """The user's model as the module ``predict_batches`` runs: a Module is registered (so that ``.to``
        and ``.eval`` reach it), any other callable is kept as a plain attribute."""

        def __init__(self) -> None:
            super().__init__()
            self.user = model.model
            self.done = self.batches = 0
            self.width: int | None = None
            self.advance: Callable[[int], Any] = lambda n: None

        def forward(self, batch: torch.Tensor) -> torch.Tensor:
            start, self.batches = self.done, self.batches + 1
            ids = sample_ids[start : start + len(batch)]
            try:
                output = self.user(batch)
            except Exception as exc:
                raise UserInputError(f"--model {model.spec}: the model raised {_describe(exc)} on batch "
                                     f"{self.batches} ({len(batch)} images from sample {start}).") from exc
            values = check_output(output, model=model, batch=self.batches, start=start, sample_ids=ids, width=self.width)
            self.width = values.shape[1] if values.ndim == 2 else None
            self.done += len(batch)
            self.advance(len(batch))
            return torch.from_numpy(values)

    checked = Checked().to(device)
    show = progress_enabled(progress)
    with make_progress() if show else contextlib.nullcontext() as bar, torch.inference_mode():
        if show:
            task = bar.add_task(f"{model.name}: {len(images)} images", total=len(images), status="")
            checked.advance = lambda n: bar.advance(task, n)
        outputs = predict_batches(checked, images, device=device, batch_size=batch_size, amp=False,
                                  channels_last=False)
    return outputs.reshape(-1) if model.output in ("age", "probability") else outputs


def submission_dir(out: Path, protocol_name: str, name: str) -> Path:
    """``OUT/<protocol>/submission-<name>/``, the name reduced to characters safe in a folder name.

    >>> submission_dir(Path("runs"), "age_utk_cross_ethnicity", "my model/v2").as_posix()
    'runs/age_utk_cross_ethnicity/submission-my_model_v2'
    """
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._") or "submission"
    return Path(out) / protocol_name / f"submission-{safe}"


def score_submission(*, protocol: Protocol, dataset: LoadedDataset, split: Split, predictions: Path, out: Path,
                     name: str, source: str, seed: int, device: str = "cpu", started: float | None = None,
                     cache_dir: Path | None = None) -> Path:
    """Score a predictions file as submission ``name``; return its run directory ``OUT/<protocol>/submission-<name>``.

    Scoring is :func:`facebench.evaluate.score_predictions_file`. All or nothing: the run directory is written
    under a hidden temporary name beside its place and renamed into place (replacing an earlier submission of
    the same name) only once scoring succeeded; after any failure nothing is left, not even the folders this
    call created.
    """
    from facebench.evaluate import score_predictions_file

    run_dir = submission_dir(out, protocol.name, name)
    created = [folder for folder in (run_dir.parent, *run_dir.parent.parents) if not folder.exists()]  # deepest first
    partial: Path | None = None
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(run_dir)  # left by a scoring process that was killed
        partial = partial_folder(run_dir)
        score_predictions_file(protocol=protocol, dataset=dataset, split=split, predictions=predictions, out_dir=partial,
                               seed=seed, device=device, started=started, cache_dir=cache_dir,
                               baseline={"name": name, "params": {}, "kind": "submission", "source": source})
        replace_folder(partial, run_dir)
    except BaseException:
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return run_dir


def evaluate_model(model: UserModel, *, protocol: Protocol, dataset: LoadedDataset, split: Split, cache_dir: Path,
                   out: Path, seed: int, name: str | None = None, progress: bool = True) -> Path:
    """Predict the protocol's test images with ``model`` and score the outputs like a predictions file.

    The images are the baselines' own cached store (:func:`facebench.data.images.image_store` at the protocol's
    ``model.image_size``); the outputs go through the task's ``write_predictions`` into a temporary file that
    :func:`score_submission` scores. Returns the run directory.
    """
    from facebench.baselines.training import resolve_device
    from facebench.data.images import image_store
    from facebench.registry import TASKS

    started = time.perf_counter()
    task = TASKS.get(protocol.task)
    ids = list(split["test"])
    images = image_store(dataset.root, ids, protocol.model.image_size, cache_dir, progress=progress,
                         key=dataset.fingerprint())
    device = resolve_device(protocol.training.device)
    outputs = predict(model, images, sample_ids=ids, device=device, progress=progress)
    with tempfile.TemporaryDirectory(prefix="facebench-model-") as folder:
        predictions = Path(folder) / task.predictions_file
        task.write_predictions(predictions, ids, outputs)
        return score_submission(protocol=protocol, dataset=dataset, split=split, predictions=predictions, out=out,
                                name=name or model.name, source=f"model:{model.spec}", seed=seed, device=str(device),
                                started=started, cache_dir=cache_dir)
