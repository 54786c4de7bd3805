"""AIFR protocols scored on pairs (AgeDB-30, CACD-VS) and leave-one-out (FG-NET), and cross-dataset training.

The scoring tests submit embeddings through ``facebench evaluate`` and compare with independent numpy
transcriptions of the published procedures written here (insightface's 10-fold loop; FG-NET's "each image
a probe against the other 1,001"), to 1e-9.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facebench.cli import main
from facebench.data.splits import (
    age_gap_pairs_split,
    leave_one_out_split,
    listed_pairs_split,
    subject_holdout_split,
)
from facebench.errors import UserInputError

PROTOCOLS = Path(__file__).resolve().parent.parent / "protocols"
TINY = ["--set", "dataset.synthetic.image_size=32", "--set", "dataset.synthetic.render_size=32",
        "--set", "evaluation.n_boot=50", "--no-progress"]
AGEDB_TINY = ["--set", "dataset.synthetic.n=60", "--set", "dataset.synthetic.options={pairs_per_fold: 20}",
              "--set", "split.params.pairs_per_fold=20", *TINY]
FGNET_TINY = ["--set", "dataset.synthetic.n=30", *TINY]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _ids(protocol: str, extra: list[str], cache: Path, capsys) -> list[str]:
    capsys.readouterr()
    assert main(["evaluate", str(PROTOCOLS / protocol), "--list-ids", "--cache-dir", str(cache), *extra]) == 0
    return capsys.readouterr().out.split()


def _labels(ids: list[str], pattern: str) -> pd.DataFrame:
    """Identity and age straight from the file names (independent of facebench's readers)."""
    frame = pd.Series(ids).str.extract(pattern)
    frame.columns = ["subject", "age"]
    frame["age"] = frame["age"].astype(int)
    return frame


def _noisy_identities(subjects: pd.Series, *, dim: int, noise: float, seed: int) -> np.ndarray:
    """An embedding per image: its person's random centre plus Gaussian noise of scale ``noise``."""
    rng = np.random.default_rng(seed)
    centres = {s: rng.normal(size=dim) for s in subjects.unique()}
    return np.stack([centres[s] + noise * rng.normal(size=dim) for s in subjects])


def _submit(protocol: str, extra: list[str], cache: Path, tmp_path: Path, ids: list[str], embedding: np.ndarray,
            name: str) -> dict:
    predictions = tmp_path / f"{name}.npz"
    np.savez(predictions, sample_id=np.asarray(ids), embedding=embedding)
    out = tmp_path / "runs"
    assert main(["evaluate", str(PROTOCOLS / protocol), "--predictions", str(predictions), "--name", name,
                 "--out", str(out), "--cache-dir", str(cache), *extra]) == 0
    run = out / protocol.removesuffix(".yaml") / f"submission-{name}"
    return {"results": json.loads((run / "results.json").read_text()),
            "outcomes": pd.read_csv(run / "outcomes.csv", keep_default_na=False)}


# ------------------------------------------------------------------ insightface 10-fold, transcribed


def _insightface_ten_fold(e1: np.ndarray, e2: np.ndarray, issame: np.ndarray, n_folds: int = 10) -> np.ndarray:
    """arcface_torch ``eval/verification.py`` ``calculate_roc`` (accuracy part), transcribed with numpy:
    normalise, squared L2 distance, thresholds arange(0, 4, 0.01), KFold(n_splits, shuffle=False), the
    best training threshold by argmax, the held-out accuracy at it. Returns the per-fold accuracies."""
    e1 = e1 / np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = e2 / np.linalg.norm(e2, axis=1, keepdims=True)
    dist = np.sum(np.square(e1 - e2), 1)
    thresholds = np.arange(0, 4, 0.01)
    n = len(issame)
    sizes = np.full(n_folds, n // n_folds)
    sizes[: n % n_folds] += 1
    stops = np.cumsum(sizes)
    accuracy = np.zeros(n_folds)
    for k in range(n_folds):
        test = np.arange(stops[k] - sizes[k], stops[k])
        train = np.setdiff1d(np.arange(n), test)

        def acc(threshold, idx):
            predict = dist[idx] < threshold
            tp = np.sum(predict & issame[idx])
            tn = np.sum(~predict & ~issame[idx])
            return (tp + tn) / len(idx)

        train_acc = np.array([acc(t, train) for t in thresholds])
        accuracy[k] = acc(thresholds[np.argmax(train_acc)], test)
    return accuracy


def test_agedb30_ten_fold_accuracy_equals_the_insightface_transcription(cache, tmp_path, capsys) -> None:
    ids = _ids("aifr_agedb30.yaml", AGEDB_TINY, cache, capsys)
    labels = _labels(ids, r"AgeDB/\d+_(\w+?)_(\d+)_[mf]\.jpg")
    # A weak identity signal plus noise, so that accuracy is neither 0.5 nor 1 and thresholds matter.
    embedding = _noisy_identities(labels["subject"], dim=16, noise=1.3, seed=7)
    scored = _submit("aifr_agedb30.yaml", AGEDB_TINY, cache, tmp_path, ids, embedding, "noisy")
    outcomes = scored["outcomes"]
    assert len(outcomes) == 200  # 10 folds x 20 pairs

    index = {sample_id: i for i, sample_id in enumerate(ids)}
    first, second = zip(*(key.split("|") for key in outcomes["sample_id"]), strict=True)
    issame = outcomes["y_true"].to_numpy(dtype=bool)
    # The pairs obey the protocol: 30+ years apart, first half of each fold genuine, identities as labelled.
    gap = np.abs(labels["age"].to_numpy()[[index[a] for a in first]] - labels["age"].to_numpy()[[index[b] for b in second]])
    assert (gap >= 30).all()
    subject = labels["subject"].to_numpy()
    assert np.array_equal(subject[[index[a] for a in first]] == subject[[index[b] for b in second]], issame)
    assert np.array_equal(issame, np.tile(np.repeat([True, False], 10), 10))

    folds = _insightface_ten_fold(embedding[[index[a] for a in first]], embedding[[index[b] for b in second]], issame)
    results = scored["results"]
    kfold = results["metrics"]["differentials"]["kfold"]
    assert kfold["fold_accuracies"] == pytest.approx(folds.tolist(), abs=1e-9)
    assert kfold["mean"] == pytest.approx(folds.mean(), abs=1e-9)
    assert kfold["std"] == pytest.approx(folds.std(), abs=1e-9)
    assert results["metrics"]["overall"]["accuracy"]["value"] == pytest.approx(folds.mean(), abs=1e-9)
    assert 0.55 < folds.mean() < 0.98
    # Genuine pairs' accuracy is the TAR at the fold thresholds: per-pair-type groups add back to overall.
    by_type = results["metrics"]["by_group"]["pair_type"]
    assert (by_type["genuine"]["accuracy"]["value"] + by_type["impostor"]["accuracy"]["value"]) / 2 == pytest.approx(
        folds.mean(), abs=1e-9)
    # The verification view says what it compares: the split's seeded pairs (not probe-gallery comparisons).
    assert results["data"]["pair_source"] == "seeded" and "(seed 0)" in results["data"]["split"]
    assert results["metrics"]["differentials"]["comparison_set"] == (
        f"The test split's verification pairs, each one comparison ({results['data']['split']}): a same-person "
        "pair is genuine, any other an impostor.")


def test_verification_refuses_a_missing_pair_image(cache, tmp_path, capsys) -> None:
    ids = _ids("aifr_agedb30.yaml", AGEDB_TINY, cache, capsys)
    predictions = tmp_path / "short.npz"
    np.savez(predictions, sample_id=np.asarray(ids[1:]), embedding=np.ones((len(ids) - 1, 4)))
    out = tmp_path / "runs"
    code = main(["evaluate", str(PROTOCOLS / "aifr_agedb30.yaml"), "--predictions", str(predictions),
                 "--out", str(out), "--cache-dir", str(cache), *AGEDB_TINY])
    assert code == 2
    assert ids[0] in capsys.readouterr().err
    assert not out.exists()


# ------------------------------------------------------------------ FG-NET leave-one-out, transcribed


def test_fgnet_leave_one_out_rank1_equals_the_numpy_transcription(cache, tmp_path, capsys) -> None:
    ids = _ids("aifr_fgnet.yaml", FGNET_TINY, cache, capsys)
    labels = _labels(ids, r"FGNET/images/(\d{3})[Aa](\d{2})[ab]?\.[Jj][Pp][Ee]?[Gg]")
    embedding = _noisy_identities(labels["subject"], dim=8, noise=0.9, seed=3)
    scored = _submit("aifr_fgnet.yaml", FGNET_TINY, cache, tmp_path, ids, embedding, "loo")

    # Each image a probe against all the others: rank-1 = its nearest other image is the same person.
    unit = embedding / np.linalg.norm(embedding, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = np.argmax(similarity, axis=1)
    subject = labels["subject"].to_numpy()
    rank1 = np.mean(subject[nearest] == subject)
    within5 = np.mean([subject[np.argsort(-row)[:5]].tolist().count(s) > 0 for row, s in zip(similarity, subject, strict=True)])
    overall = scored["results"]["metrics"]["overall"]
    assert overall["rank1"]["value"] == pytest.approx(rank1, abs=1e-9)
    assert overall["rank5"]["value"] == pytest.approx(within5, abs=1e-9)
    assert overall["rank1"]["n"] == len(ids)
    assert 0.2 < rank1 < 0.98
    view = scored["results"]["metrics"]["differentials"]
    assert view["comparisons"] == len(ids) * (len(ids) - 1) // 2
    assert view["comparison_set"].startswith(f"Leave-one-out: each of the {len(ids)} test images against all the "
                                             f"others, i.e. every pair of test images once ({view['comparisons']} pairs")


# ------------------------------------------------------------------ splits


def _table(n_people: int = 12, ages=(5, 20, 40, 60)) -> pd.DataFrame:
    rows = [(f"p{p:02d}_{a}.jpg", f"p{p:02d}", a) for p in range(n_people) for a in ages]
    return pd.DataFrame(rows, columns=["sample_id", "subject_id", "age"])


def test_age_gap_pairs_keep_the_gap_the_fold_layout_and_disjoint_identities() -> None:
    table = _table()
    split = age_gap_pairs_split(table, seed=1, n_folds=3, pairs_per_fold=6, min_gap=30)
    pairs = split.pairs
    age = table.set_index("sample_id")["age"]
    subject = table.set_index("sample_id")["subject_id"]
    assert len(pairs) == 18 and pairs.n_folds == 3
    assert all(abs(age[a] - age[b]) >= 30 for a, b in zip(pairs.first, pairs.second, strict=True))
    assert list(pairs.same) == [True] * 3 + [False] * 3 + [True] * 3 + [False] * 3 + [True] * 3 + [False] * 3
    assert [subject[a] == subject[b] for a, b in zip(pairs.first, pairs.second, strict=True)] == list(pairs.same)
    people_by_fold = [{subject[x] for i, x in enumerate(pairs.first + pairs.second) if pairs.fold[i % 18] == k}
                      for k in range(3)]
    assert not (people_by_fold[0] & people_by_fold[1]) and not (people_by_fold[1] & people_by_fold[2])
    assert set(split["test"]) == set(pairs.first) | set(pairs.second)
    again = age_gap_pairs_split(table, seed=1, n_folds=3, pairs_per_fold=6, min_gap=30)
    other = age_gap_pairs_split(table, seed=2, n_folds=3, pairs_per_fold=6, min_gap=30)
    assert again.fingerprint() == split.fingerprint() != other.fingerprint()


def test_age_gap_pairs_say_when_the_data_cannot_supply_them() -> None:
    with pytest.raises(UserInputError, match="positive 30-year pairs in fold 1"):
        age_gap_pairs_split(_table(ages=(20, 30)), seed=0, n_folds=2, pairs_per_fold=4, min_gap=30)


def test_leave_one_out_and_subject_holdout() -> None:
    table = _table(n_people=20)
    assert leave_one_out_split(table, seed=0)["test"] == tuple(sorted(table["sample_id"]))
    holdout = subject_holdout_split(table, seed=0, val_fraction=0.1)
    val_people = {s.split("_")[0] for s in holdout["val"]}
    assert len(val_people) == 2 and not val_people & {s.split("_")[0] for s in holdout["train"]}
    with pytest.raises(UserInputError, match="no subject has two images"):
        leave_one_out_split(table.drop_duplicates("subject_id"), seed=0)


def test_cacd_vs_pairs_come_from_the_release_layout(tmp_path) -> None:
    from facebench.data.cacd import read_cacd
    from facebench.data.synth.aifr import write_cacd

    write_cacd(tmp_path, n_people=40, seed=0, image_size=24, photos_per_year=(1, 2), n_vs_folds=10, pairs_per_fold=400)
    table = read_cacd(tmp_path, variant="vs").table
    split = listed_pairs_split(table, seed=0)
    pairs = split.pairs
    assert len(pairs) == 4000 and pairs.n_folds == 10 and len(split["test"]) == 8000
    pair_id = np.arange(4000)
    assert list(pairs.same) == list(pair_id % 400 < 200) and list(pairs.fold) == list(pair_id // 400)
    assert pairs.first[401] == "CACD_VS/0401_0.jpg" and pairs.second[401] == "CACD_VS/0401_1.jpg"
    # Derived identities assert exactly what the pairs do: the same person in a positive pair, not otherwise.
    subject = table.set_index("sample_id")["subject_id"]
    assert [subject[a] == subject[b] for a, b in zip(pairs.first, pairs.second, strict=True)] == list(pairs.same)


# ------------------------------------------------------------------ cross-dataset training


@pytest.mark.slow
def test_test_only_datasets_train_on_train_dataset_and_share_the_model(tmp_path, cache) -> None:
    out = tmp_path / "runs"
    small = ["--set", "train_dataset.synthetic.n=40", "--set", "train_dataset.synthetic.image_size=32",
             "--set", "train_dataset.synthetic.render_size=32", "--set", "model.image_size=32",
             "--set", "training.epochs=1", "--baseline", "arcface", "--out", str(out), "--cache-dir", str(cache)]
    assert main(["run", str(PROTOCOLS / "aifr_fgnet.yaml"), *FGNET_TINY, *small]) == 0
    assert main(["run", str(PROTOCOLS / "aifr_agedb30.yaml"), *AGEDB_TINY, *small]) == 0
    (fgnet,) = (out / "aifr_fgnet").glob("arcface-*/results.json")
    (agedb,) = (out / "aifr_agedb30").glob("arcface-*/results.json")
    fgnet, agedb = json.loads(fgnet.read_text()), json.loads(agedb.read_text())
    for results in (fgnet, agedb):
        train = results["baseline"]["train_data"]
        assert train["dataset"] == "cacd" and train["synthetic"] is True
        assert train["fingerprint"] != results["data"]["fingerprint"]
    # Same baseline, same training data and settings: AgeDB-30 reuses the model trained for FG-NET.
    assert fgnet["baseline"]["train_data"]["model_dir"] == agedb["baseline"]["train_data"]["model_dir"]
    assert fgnet["training"]["resumed_from_epoch"] is None and agedb["training"]["resumed_from_epoch"] == 1
    assert (out / agedb["baseline"]["train_data"]["model_dir"] / "last.pt").is_file()


@pytest.mark.slow
def test_fgnet_per_image_fine_tuning_scores_each_probe_with_its_own_model(tmp_path, cache) -> None:
    out = tmp_path / "runs"
    flags = ["--set", "dataset.synthetic.n=4", *TINY, "--set", "train_dataset.synthetic.n=30",
             "--set", "train_dataset.synthetic.image_size=32", "--set", "train_dataset.synthetic.render_size=32",
             "--set", "model.image_size=32", "--set", "training.epochs=1",
             "--set", "training.leave_one_out_finetune={epochs: 1, batch_size: 64}",
             "--baseline", "arcface", "--out", str(out), "--cache-dir", str(cache)]
    assert main(["run", str(PROTOCOLS / "aifr_fgnet.yaml"), *flags]) == 0
    (run,) = (out / "aifr_fgnet").glob("arcface-*")
    with np.load(run / "predictions.npz") as archive:
        assert sorted(archive.files) == ["sample_id", "similarity"]
        ids, similarity = archive["sample_id"].astype(str), archive["similarity"].astype(np.float64)
    n = len(ids)
    assert similarity.shape == (n, n) and n >= 20
    # Row i comes from the model fine-tuned without image i: the matrix is not one model's symmetric cosines.
    assert not np.allclose(similarity, similarity.T, atol=1e-4)
    subject = _labels(list(ids), r"FGNET/images/(\d{3})[Aa](\d{2})[ab]?\.[Jj][Pp][Ee]?[Gg]")["subject"].to_numpy()
    masked = similarity.copy()
    np.fill_diagonal(masked, -np.inf)
    rank1 = np.mean(subject[np.argmax(masked, axis=1)] == subject)
    results = json.loads((run / "results.json").read_text())
    assert results["metrics"]["overall"]["rank1"]["value"] == pytest.approx(rank1, abs=1e-9)
    # The same file submitted through evaluate scores the same.
    scored = _submit_file("aifr_fgnet.yaml", ["--set", "dataset.synthetic.n=4", *TINY], cache, tmp_path,
                          run / "predictions.npz", "resubmitted")
    assert scored["metrics"]["overall"]["rank1"]["value"] == pytest.approx(rank1, abs=1e-9)


def _submit_file(protocol: str, extra: list[str], cache: Path, tmp_path: Path, predictions: Path, name: str) -> dict:
    out = tmp_path / "submitted"
    assert main(["evaluate", str(PROTOCOLS / protocol), "--predictions", str(predictions), "--name", name,
                 "--out", str(out), "--cache-dir", str(cache), *extra]) == 0
    return json.loads((out / protocol.removesuffix(".yaml") / f"submission-{name}" / "results.json").read_text())


def test_leave_one_out_fine_tuning_is_refused_for_other_tasks(capsys) -> None:
    code = main(["protocols", "validate", str(PROTOCOLS / "aifr_morph.yaml")])
    assert code == 0
    code = main(["evaluate", str(PROTOCOLS / "aifr_morph.yaml"), "--list-ids",
                 "--set", "training.leave_one_out_finetune={epochs: 1}"])
    assert code == 2
    assert "applies to task face_identification_loo only" in capsys.readouterr().err
    code = main(["evaluate", str(PROTOCOLS / "aifr_fgnet.yaml"), "--list-ids", "--set", "baselines=[{name: dlib_resnet}]",
                 "--set", "training.leave_one_out_finetune={epochs: 1}"])
    assert code == 2
    assert "baseline 'dlib_resnet' has no trainable encoder" in capsys.readouterr().err


@pytest.mark.parametrize(("arrays", "fragment"), [
    (lambda ids: {"sample_id": ids, "similarity": np.zeros((len(ids), len(ids) - 1))}, "similarity must be square"),
    (lambda ids: {"sample_id": ids, "similarity": _with(np.zeros((len(ids),) * 2), (0, 1), np.nan)},
     "row 0 ("),
    (lambda ids: {"sample_id": ids, "scores": np.zeros((len(ids),) * 2)}, "expected exactly sample_id and embedding (or similarity)"),
])
def test_malformed_similarity_files_are_refused_and_nothing_written(arrays, fragment, cache, tmp_path, capsys) -> None:
    ids = np.asarray(_ids("aifr_fgnet.yaml", FGNET_TINY, cache, capsys))
    path, out = tmp_path / "mine.npz", tmp_path / "out"
    np.savez(path, **arrays(ids))
    code = main(["evaluate", str(PROTOCOLS / "aifr_fgnet.yaml"), "--predictions", str(path), "--out", str(out),
                 "--cache-dir", str(cache), *FGNET_TINY])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and str(path) in err and err.count("\n") == 1
    assert not out.exists()


def test_a_similarity_diagonal_is_ignored_whatever_it_holds(cache, tmp_path, capsys) -> None:
    ids = _ids("aifr_fgnet.yaml", FGNET_TINY, cache, capsys)
    subject = _labels(ids, r"FGNET/images/(\d{3})[Aa](\d{2})[ab]?\.[Jj][Pp][Ee]?[Gg]")["subject"].to_numpy()
    similarity = (subject[:, None] == subject[None, :]).astype(float)  # every mate scores 1, every other 0
    np.fill_diagonal(similarity, np.nan)
    path = tmp_path / "perfect.npz"
    np.savez(path, sample_id=np.asarray(ids), similarity=similarity)
    scored = _submit_file("aifr_fgnet.yaml", FGNET_TINY, cache, tmp_path, path, "perfect")
    assert scored["metrics"]["overall"]["rank1"]["value"] == 1.0


def _with(matrix: np.ndarray, index: tuple[int, int], value: float) -> np.ndarray:
    matrix[index] = value
    return matrix


def test_a_real_test_set_without_its_training_data_is_one_sentence(tmp_path, capsys) -> None:
    from facebench.data.synth.aifr import write_fgnet

    write_fgnet(tmp_path / "fgnet", n_people=3, seed=0, image_size=24)
    code = main(["run", str(PROTOCOLS / "aifr_fgnet.yaml"), "--data-root", str(tmp_path / "fgnet"),
                 "--out", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the run's own progress lines
    assert code == 2 and last.startswith("facebench: error: Protocol aifr_fgnet trains on cacd: pass --train-data-root DIR")
    assert not (tmp_path / "runs" / "aifr_fgnet").exists()
