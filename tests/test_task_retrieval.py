"""CACD retrieval scoring equals an independent transcription of CARC's evaluation.m (to 1e-9), end to end
through the same scoring path `facebench evaluate` uses; and identification rank-1 likewise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facebench.data.splits import cacd_retrieval_split, largest_age_gap_split
from facebench.evaluate import metrics_section, score_outcomes
from facebench.protocol import load_protocol
from facebench.tasks import FACE_IDENTIFICATION, FACE_RETRIEVAL

PROTOCOLS = Path(__file__).resolve().parent.parent / "protocols"


def _cacd_table(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for person in range(24):
        rank = 3 + person % 3 if person < 12 else 10 + person  # 12 test celebrities
        for year in range(2004, 2014):
            for k in range(int(rng.integers(0, 3))):
                rows.append({"sample_id": f"CACD2000/{30 + year - 2004}_P{person}_{year}{k}.jpg", "subject_id": str(person),
                             "age": 30 + year - 2004, "year": year, "rank": rank, "gender": pd.NA, "race": pd.NA})
    return pd.DataFrame(rows)


def _carc_transcription(q: np.ndarray, d: np.ndarray, q_ids, d_ids) -> tuple[np.ndarray, np.ndarray]:
    """evaluation.m: dist = -normalizeL2(q) * normalizeL2(X)'; [~, order] = sort(dist(i,:), 'ascend') (stable);
    AP_i = 1/n_i * sum_j j / r_j over the relevant items' 1-based ranks r_j; P@1 = relevance of the first."""
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    dn = d / np.linalg.norm(d, axis=1, keepdims=True)
    aps, p1 = [], []
    for i in range(len(q)):
        order = np.argsort(-(qn[i] @ dn.T), kind="stable")
        relevant = np.asarray(d_ids)[order] == q_ids[i]
        ranks = np.flatnonzero(relevant) + 1
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
        p1.append(float(relevant[0]))
    return np.array(aps), np.array(p1)


def test_retrieval_scores_equal_the_carc_transcription(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    table = _cacd_table(rng)
    split = cacd_retrieval_split(table, seed=0, val_fraction=0.0)
    centres = {s: rng.normal(size=16) for s in table["subject_id"].unique()}
    subject = table.set_index("sample_id")["subject_id"]
    ids = list(split["test"])
    embeddings = np.stack([centres[subject[i]] + rng.normal(scale=1.5, size=16) for i in ids])
    path = tmp_path / "mine.npz"
    FACE_RETRIEVAL.write_predictions(path, ids, embeddings)
    protocol = load_protocol(PROTOCOLS / "aifr_cacd.yaml", overrides=["evaluation.n_boot=50"])
    predictions = FACE_RETRIEVAL.read_predictions(path, split["test"])
    outcomes = FACE_RETRIEVAL.outcomes(table, predictions, protocol=protocol, split=split)
    metrics = metrics_section(score_outcomes(protocol, outcomes, seed=0))

    vectors = dict(zip(ids, embeddings, strict=True))
    for label in ("2004-2006", "2007-2009", "2010-2012"):
        database = list(split[f"db_{label}"])
        d_ids = subject[database].to_numpy(dtype=str)
        queries = [q for q in split["query"] if subject[q] in set(d_ids)]
        aps, p1 = _carc_transcription(np.stack([vectors[q] for q in queries]), np.stack([vectors[x] for x in database]),
                                      subject[queries].to_numpy(dtype=str), d_ids)
        ours = metrics["by_group"]["database"][label]
        assert ours["map"]["value"] == pytest.approx(aps.mean(), abs=1e-9)
        assert ours["p_at_1"]["value"] == pytest.approx(p1.mean(), abs=1e-9)
        assert ours["map"]["n"] == len(queries)
    assert set(outcomes["database"]) == {"2004-2006", "2007-2009", "2010-2012"}


def test_identification_rank1_equals_a_direct_transcription(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    rows = [{"sample_id": f"Album2/{s}_{k}.JPG", "subject_id": str(s), "age": 20 + 3 * k, "race": "black" if s % 2 else "white",
             "gender": "male"} for s in range(60) for k in range(3)]
    table = pd.DataFrame(rows)
    split = largest_age_gap_split(table, seed=1, n_test_subjects=40, val_fraction=0.0)
    centres = {str(s): rng.normal(size=8) for s in range(60)}
    subject = table.set_index("sample_id")["subject_id"]
    ids = list(split["test"])
    embeddings = np.stack([centres[subject[i]] + rng.normal(scale=1.2, size=8) for i in ids])
    path = tmp_path / "mine.npz"
    FACE_IDENTIFICATION.write_predictions(path, ids, embeddings)
    protocol = load_protocol(PROTOCOLS / "aifr_morph.yaml", overrides=["evaluation.n_boot=50"])
    outcomes = FACE_IDENTIFICATION.outcomes(table, FACE_IDENTIFICATION.read_predictions(path, split["test"]),
                                            protocol=protocol, split=split)
    metrics = metrics_section(score_outcomes(protocol, outcomes, seed=0))
    vectors = dict(zip(ids, embeddings, strict=True))
    gallery = np.stack([vectors[g] for g in split["gallery"]])
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    hits = []
    for probe in split["probe"]:
        v = vectors[probe] / np.linalg.norm(vectors[probe])
        best = int(np.argmax(gallery @ v))
        hits.append(subject[split["gallery"][best]] == subject[probe])
    assert metrics["overall"]["rank1"]["value"] == pytest.approx(np.mean(hits), abs=1e-9)
    assert metrics["overall"]["rank1"]["n"] == 40


@pytest.mark.slow
def test_aifr_cacd_runs_end_to_end_on_tiny_synthetic_cacd(tmp_path: Path) -> None:
    from facebench.cli import main

    tiny = ["--set", "dataset.synthetic.n=160", "--set", "dataset.synthetic.image_size=32", "--set",
            "dataset.synthetic.render_size=32", "--set", "model.image_size=32", "--set", "training.epochs=1",
            "--set", "evaluation.n_boot=50", "--no-progress"]
    assert main(["run", str(PROTOCOLS / "aifr_cacd.yaml"), "--baseline", "arcface", "--out", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache"), *tiny]) == 0
    import json

    (path,) = (tmp_path / "out" / "aifr_cacd").glob("arcface-*/results.json")
    results = json.loads(path.read_text())
    assert set(results["metrics"]["by_group"]["database"]) == {"2004-2006", "2007-2009", "2010-2012"}
    assert 0 < results["metrics"]["overall"]["map"]["value"] <= 1


def test_identification_verification_view_counts_every_comparison(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    rows = [{"sample_id": f"Album2/{s}_{k}.JPG", "subject_id": str(s), "age": 20 + 4 * k, "race": "black" if s % 2 else "white",
             "gender": "male" if s % 3 else "female"} for s in range(50) for k in range(2)]
    table = pd.DataFrame(rows)
    split = largest_age_gap_split(table, seed=0, n_test_subjects=40, val_fraction=0.0)
    subject = table.set_index("sample_id")["subject_id"]
    centres = {str(s): rng.normal(size=8) for s in range(50)}
    ids = list(split["test"])
    path = tmp_path / "e.npz"
    FACE_IDENTIFICATION.write_predictions(path, ids, np.stack([centres[subject[i]] + rng.normal(scale=0.8, size=8) for i in ids]))
    predictions = FACE_IDENTIFICATION.read_predictions(path, split["test"])
    protocol = load_protocol(PROTOCOLS / "aifr_morph.yaml")
    view = FACE_IDENTIFICATION.differentials(table, predictions, protocol=protocol, split=split, seed=0)
    assert (view["comparisons"], view["genuine"]) == (40 * 40, 40)
    race = view["by_attribute"]["race"]
    # FMR of the white group at the 1e-2 threshold, recomputed directly from same-group impostor pairs.
    row = next(r for r in race["rates"] if r["group"] == "white" and r["metric"] == "fmr" and r["target_fmr"] == 0.01)
    unit = lambda m: m / np.linalg.norm(m, axis=1, keepdims=True)  # noqa: E731
    probes, gallery = list(split["probe"]), list(split["gallery"])
    scores = unit(predictions.rows(probes)) @ unit(predictions.rows(gallery)).T
    white = table.set_index("sample_id")["race"]
    mask = np.outer(white[probes].to_numpy() == "white", white[gallery].to_numpy() == "white")
    impostor = mask & (subject[probes].to_numpy()[:, None] != subject[gallery].to_numpy()[None, :])
    assert row["n"] == impostor.sum()
    assert row["value"] == pytest.approx(np.mean(scores[impostor] >= row["threshold"]), abs=1e-12)
    assert set(race["det"]) == {"black", "white"} and len(race["det"]["white"]["fmr"]) == 81
