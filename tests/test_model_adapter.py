"""Bring your own model: `facebench evaluate PROTOCOL --model spec` scores a model's outputs exactly like a
predictions file holding the same outputs; bad specs and bad outputs end with one sentence and write nothing."""

from __future__ import annotations

import importlib
import importlib.util
import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import set_flags

from facebench.adapters import load_model, predict
from facebench.baselines.training import resolve_device
from facebench.cli import main
from facebench.data.images import image_store
from facebench.protocol import load_protocol
from facebench.run import prepare_data
from facebench.tasks import AGE_REGRESSION, FACE_RETRIEVAL

ROOT = Path(__file__).resolve().parent.parent
AGE = ROOT / "protocols" / "age_utk_cross_ethnicity.yaml"
CACD = ROOT / "protocols" / "aifr_cacd.yaml"
EXAMPLE = ROOT / "docs" / "examples" / "torchvision_adapter.py"
# Tiny settings (the same in test_predictions_validation.py, so that a session makes the synthetic data once).
AGE_SETTINGS = ("dataset.synthetic.n=700", "dataset.synthetic.image_size=32", "dataset.synthetic.render_size=32",
                "model.image_size=32", "evaluation.n_boot=100")
CACD_SETTINGS = ("dataset.synthetic.n=30", "dataset.synthetic.image_size=32", "dataset.synthetic.render_size=32",
                 "model.image_size=32", "evaluation.n_boot=100")
MODULE = "facebench_test_adapter_models"  # imported by its dotted name (its folder is put on sys.path)

MODELS = '''
    """Tiny models written against the adapter contract (and some that break it)."""
    import numpy as np
    import torch
    from torch import nn

    SEEN = []  # what mean_age's model was given: (shape, dtype, device, min, max, contiguous) per batch


    def mean_age(*, task, image_size):
        assert task == "age_regression" and image_size == 32

        def model(batch):
            SEEN.append((tuple(batch.shape), batch.dtype, batch.device.type, float(batch.min()), float(batch.max()),
                         batch.is_contiguous()))
            return 20 + 40 * batch.mean(dim=(1, 2, 3))
        return model


    class Pooled(nn.Module):
        def forward(self, batch):
            return nn.functional.avg_pool2d(batch, 8).flatten(1)


    def pooled(*, task, image_size):
        assert task == "face_retrieval" and image_size == 32
        return Pooled()


    def numpy_column(*, task, image_size):
        return lambda batch: 50 * batch.cpu().numpy().mean(axis=(1, 2, 3))[:, None].astype(np.float64)


    not_callable = 42


    def raises(*, task, image_size):
        raise FileNotFoundError("weights.pth not found.")


    def positional(config):
        return config


    def returns_none(*, task, image_size):
        return None


    def _constant(make):
        return lambda *, task, image_size: make


    two_columns = _constant(lambda batch: torch.zeros(len(batch), 2))
    one_short = _constant(lambda batch: torch.zeros(len(batch) - 1))
    a_list = _constant(lambda batch: [30.0] * len(batch))
    booleans = _constant(lambda batch: torch.ones(len(batch), dtype=torch.bool))
    overflow = _constant(lambda batch: torch.full((len(batch),), 1e300, dtype=torch.float64))
    flat = _constant(lambda batch: batch.mean(dim=(1, 2, 3)))
    width_0 = _constant(lambda batch: torch.zeros(len(batch), 0))
    width_changes = _constant(lambda batch: torch.ones(len(batch), 4 if len(batch) == 256 else 5))


    def nan_at_300(*, task, image_size):
        seen = [0]

        def model(batch):
            ages = torch.full((len(batch),), 30.0)
            if seen[0] <= 300 < seen[0] + len(batch):
                ages[300 - seen[0]] = float("nan")
            seen[0] += len(batch)
            return ages
        return model


    def crashes(*, task, image_size):
        def model(batch):
            raise RuntimeError("boom")
        return model
'''



@pytest.fixture(scope="module")
def cache(submission_cache: Path) -> Path:
    return submission_cache


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """The models' file; its folder is on sys.path, so `facebench_test_adapter_models:NAME` imports too."""
    folder = tmp_path_factory.mktemp("models")
    (folder / f"{MODULE}.py").write_text(textwrap.dedent(MODELS))
    (folder / "broken.py").write_text("def factory(*, task, image_size)\n    return None\n")
    (folder / "needs_missing.py").write_text("import facebench_missing_dependency\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder))
        yield folder / f"{MODULE}.py"


def _data(protocol_file: Path, settings: tuple[str, ...], cache: Path):
    protocol = load_protocol(protocol_file, overrides=settings)
    dataset, split = prepare_data(protocol, data_root=None, cache_dir=cache, progress=False)
    images = image_store(dataset.root, list(split["test"]), protocol.model.image_size, cache, progress=False,
                         key=dataset.fingerprint())
    return list(split["test"]), images


@pytest.fixture(scope="module")
def age(cache):
    """The tiny age protocol's test ids and the uint8 images the baselines are given."""
    return _data(AGE, AGE_SETTINGS, cache)


@pytest.fixture(scope="module")
def cacd(cache):
    return _data(CACD, CACD_SETTINGS, cache)


def _evaluate(protocol: Path, settings, cache: Path, out: Path, *submission: str) -> int:
    return main(["evaluate", str(protocol), *submission, "--out", str(out), "--cache-dir", str(cache), *set_flags(settings)])


def _results(out: Path, protocol: str, name: str) -> dict:
    return json.loads((out / protocol / f"submission-{name}" / "results.json").read_text())


def test_an_age_model_is_scored_exactly_like_a_file_of_its_outputs(models, age, cache, tmp_path) -> None:
    ids, images = age
    out = tmp_path / "out"
    spec = f"{MODULE}:mean_age"
    assert _evaluate(AGE, AGE_SETTINGS, cache, out, "--model", spec) == 0
    mine = _results(out, "age_utk_cross_ethnicity", "mean_age")  # default name: the factory's
    assert mine["baseline"] == {"name": "mean_age", "params": {}, "kind": "submission", "source": f"model:{spec}"}

    # The model saw the baselines' images: its outputs are what this computes from their image store ...
    expected = (20 + 40 * (torch.from_numpy(np.asarray(images)).float() / 255.0).mean(dim=(1, 2, 3))).numpy()
    stored = pd.read_csv(out / "age_utk_cross_ethnicity" / "submission-mean_age" / "predictions.csv")
    assert stored["sample_id"].tolist() == ids
    np.testing.assert_allclose(stored["age"], expected, atol=1e-5)
    # ... and the same outputs handed in as a predictions file score the same, to the last digit.
    AGE_REGRESSION.write_predictions(tmp_path / "same.csv", ids, stored["age"].to_numpy())
    assert _evaluate(AGE, AGE_SETTINGS, cache, out, "--predictions", str(tmp_path / "same.csv")) == 0
    same = _results(out, "age_utk_cross_ethnicity", "same")
    assert mine["metrics"] == same["metrics"] and mine["metrics"]["overall"]["mae"]["n"] == len(ids)
    assert mine["data"] == same["data"]

    # What the model was given: the test images in order, float32 in [0, 1], batches of 256, on the device.
    seen = importlib.import_module(MODULE).SEEN
    assert [batch[0] for batch in seen] == [(256, 3, 32, 32), (len(ids) - 256, 3, 32, 32)]
    for _, dtype, device, low, high, contiguous in seen:
        assert dtype == torch.float32 and device == resolve_device().type and 0.0 <= low <= high <= 1.0 and contiguous


def test_an_embedding_model_is_scored_exactly_like_a_file_of_its_outputs(models, cacd, cache, tmp_path) -> None:
    ids, images = cacd
    out = tmp_path / "out"
    assert _evaluate(CACD, CACD_SETTINGS, cache, out, "--model", f"{MODULE}:pooled", "--name", "pooled v1") == 0
    mine = _results(out, "aifr_cacd", "pooled_v1")
    assert mine["baseline"]["name"] == "pooled v1" and mine["baseline"]["source"] == f"model:{MODULE}:pooled"

    x = torch.from_numpy(np.asarray(images)).float() / 255.0
    expected = torch.nn.functional.avg_pool2d(x, 8).flatten(1).numpy()
    with np.load(out / "aifr_cacd" / "submission-pooled_v1" / "predictions.npz") as stored:
        assert stored["sample_id"].tolist() == ids
        embeddings = stored["embedding"]
    assert embeddings.shape == (len(ids), 48)
    np.testing.assert_allclose(embeddings, expected, rtol=1e-5, atol=1e-6)
    FACE_RETRIEVAL.write_predictions(tmp_path / "same.npz", ids, embeddings)
    assert _evaluate(CACD, CACD_SETTINGS, cache, out, "--predictions", str(tmp_path / "same.npz")) == 0
    same = _results(out, "aifr_cacd", "same")
    assert mine["metrics"] == same["metrics"] and "map" in mine["metrics"]["overall"]


def test_numpy_outputs_of_shape_n_by_1_are_ages(models) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(10, 3, 8, 8), dtype=np.uint8)
    model = load_model(f"{models}:numpy_column", task=AGE_REGRESSION, image_size=8)
    ages = predict(model, images, sample_ids=[f"s{i}" for i in range(10)], batch_size=4, progress=False)
    assert ages.shape == (10,)
    np.testing.assert_allclose(ages, 50 * images.astype(np.float32).mean(axis=(1, 2, 3)) / 255.0, rtol=1e-5)


BAD_SPECS = {  # spec (MODELS = the models file) -> a fragment of the one sentence
    "no module": ("facebench_no_such_module:factory", "there is no module facebench_no_such_module"),
    "no colon": ("MODELS", "expected package.module:factory or path/to/file.py:factory"),
    "no factory name": ("MODELS:", "expected package.module:factory"),
    "no such file": ("DIR/absent.py:factory", "absent.py is not a file"),
    "no such attribute": ("MODELS:nope", "has no attribute 'nope'"),
    "misspelt factory": ("MODELS:mean_agee", "has no attribute 'mean_agee' (did you mean 'mean_age'?)"),
    "not callable": ("MODELS:not_callable", "not_callable is not callable (int)"),
    "factory raises": ("MODELS:raises", "raises(task='age_regression', image_size=32) raised FileNotFoundError: "
                                        "weights.pth not found"),
    "factory without keywords": ("MODELS:positional", "raised TypeError"),
    "factory returns None": ("MODELS:returns_none", "returned a NoneType, not a callable model"),
    "syntax error": ("DIR/broken.py:factory", "raised SyntaxError"),
    "missing dependency": ("DIR/needs_missing.py:factory", "raised ModuleNotFoundError: No module named "
                                                           "'facebench_missing_dependency'"),
    "dotted, missing attribute": (f"{MODULE}:nope", f"{MODULE} has no attribute 'nope'"),
}


def _one_sentence(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("facebench: error: --model ") and err.endswith("."), err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_a_bad_spec_is_one_sentence_and_writes_nothing(case, models, cache, tmp_path, capsys) -> None:
    spec, fragment = BAD_SPECS[case]
    spec = spec.replace("MODELS", str(models)).replace("DIR", str(models.parent))
    out = tmp_path / "out"
    assert _evaluate(AGE, AGE_SETTINGS, cache, out, "--model", spec) == 2
    _one_sentence(capsys, spec, fragment)
    assert not out.exists()


BAD_OUTPUTS = {  # factory -> (protocol, fragment); ids[k] stands for the k-th test id
    "two_columns": ("age", "returned shape (256, 2) for batch 1 (256 images from sample 0); ages must have shape "
                           "(256,) or (256, 1)"),
    "one_short": ("age", "returned shape (255,) for batch 1"),
    "a_list": ("age", "returned a list for batch 1"),
    "booleans": ("age", "returned dtype torch.bool for batch 1"),
    "overflow": ("age", "batch 1 has a NaN or infinite output (as float32) for sample 0 ('ids[0]')"),
    "nan_at_300": ("age", "batch 2 has a NaN or infinite output (as float32) for sample 300 ('ids[300]')"),
    "crashes": ("age", "the model raised RuntimeError: boom on batch 1 (256 images from sample 0)"),
    "flat": ("cacd", "returned shape (256,) for batch 1"),
    "width_0": ("cacd", "returned shape (256, 0) for batch 1 (256 images from sample 0); embeddings must have shape "
                        "(256, D) with D >= 1"),
    "width_changes": ("cacd", "returned embeddings of width 5 for batch 2 (78 images from sample 256) after width 4"),
}


@pytest.mark.parametrize("factory", list(BAD_OUTPUTS))
def test_a_bad_output_is_one_sentence_naming_the_batch_and_writes_nothing(factory, models, age, cacd, cache, tmp_path,
                                                                          capsys) -> None:
    which, fragment = BAD_OUTPUTS[factory]
    protocol, settings, (ids, _) = (AGE, AGE_SETTINGS, age) if which == "age" else (CACD, CACD_SETTINGS, cacd)
    for k in (0, 300):
        fragment = fragment.replace(f"ids[{k}]", ids[k] if k < len(ids) else "")
    out = tmp_path / "out"
    assert _evaluate(protocol, settings, cache, out, "--model", f"{models}:{factory}") == 2
    _one_sentence(capsys, f"{models}:{factory}", fragment)
    assert not out.exists()


def test_model_and_predictions_exclude_each_other_and_one_is_needed(models, cache, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        _evaluate(AGE, AGE_SETTINGS, cache, tmp_path, "--model", f"{models}:mean_age", "--predictions", "x.csv")
    assert exit_.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert _evaluate(AGE, AGE_SETTINGS, cache, tmp_path / "out") == 2
    assert "needs --predictions FILE or --model MODULE:FACTORY" in capsys.readouterr().err


def test_the_torchvision_example_loads_through_its_spec_and_returns_the_contract_shapes(age, tmp_path) -> None:
    """docs/examples/torchvision_adapter.py:factory, as `--model` loads it, on a few test images (CPU seconds)."""
    ids, images = age
    ages = predict(load_model(f"{EXAMPLE}:factory", task=AGE_REGRESSION, image_size=32), images[:6],
                   sample_ids=ids[:6], batch_size=4, progress=False)
    assert ages.shape == (6,) and np.isfinite(ages).all()
    model = load_model(f"{EXAMPLE}:factory", task=FACE_RETRIEVAL, image_size=32)
    assert isinstance(model.model, torch.nn.Module) and model.name == "factory"
    embeddings = predict(model, images[:6], sample_ids=ids[:6], batch_size=4, progress=False)
    assert embeddings.shape == (6, 128)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)

    # The weights option: a saved state dict comes back as the same model.
    module_spec = importlib.util.spec_from_file_location("torchvision_adapter_example", EXAMPLE)
    example = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(example)
    trained = example.ResNet18Adapter(task="age_regression")
    torch.nn.init.constant_(trained.head.bias, 33.0)
    torch.save(trained.state_dict(), tmp_path / "weights.pth")
    loaded = example.factory(task="age_regression", image_size=32, weights=str(tmp_path / "weights.pth")).eval()
    batch = torch.from_numpy(np.asarray(images[:4])).float() / 255.0
    with torch.inference_mode():
        np.testing.assert_allclose(loaded(batch).numpy(), trained.eval()(batch).numpy(), rtol=1e-6)


def test_a_task_without_an_adapter_asks_for_a_predictions_file(models) -> None:
    from types import SimpleNamespace

    from facebench.errors import UserInputError

    task = SimpleNamespace(name="pairs_only", baseline_kind="pairwise", description="CSV with header pair_id,score")
    with pytest.raises(UserInputError, match=r"^Task pairs_only has no model adapter; submit a predictions file with "
                                             r"--predictions \(CSV with header pair_id,score\)\.$"):
        load_model(f"{models}:mean_age", task=task, image_size=32)
