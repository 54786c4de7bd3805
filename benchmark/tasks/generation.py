"""Face generation, judged per group: does a face generator work as well for everyone? (seed 001 section 3, seed 004)

A generator (StarGAN, AcGAN: :mod:`facebench.baselines.gan`) trains on real faces; then every held-out face is asked
for the protocol's edits (``generation.edits``: hair colour, age, bangs...; or, with ``generation.age_groups``, every
age group older than its own, seed 004 Table 2). One *request* is (source face, edit); the predictions are the
generated faces, an ``.npz`` of ``sample_id`` and ``edit`` (R strings) and ``images`` (R, 3, S, S uint8, S the
protocol's ``model.image_size``), one row per request (:func:`edit_requests` lists them; a request whose target equals
the source's own labels, e.g. blond hair for a blond face, is not made).

Scoring (the one path, :func:`facebench.evaluate.score_predictions_file`) first trains the judges on the real
training images (:mod:`facebench.baselines.judges`, cached) and reads every generated face with them
(:meth:`FaceGenerationTask.prepare_scoring`):

* ``edit_success``: the attribute classifier reads the requested value back (for ageing: the estimated age falls in
  the target group);
* ``identity_preservation`` (a rate) and ``identity_similarity`` (mean cosine): the verifier compares source and
  generated face; the threshold is the one giving the stated ``generation.far`` on real impostor pairs of the
  held-out faces (seed 004 Table 2: 1e-5 with Face++'s verifier);
* ``aging_offset``: estimated age of the aged face minus the real target group's mean estimated age (Table 1);
* ``fid@<extractor>`` / ``kid@<extractor>``: the realism of a group's generated faces against the real held-out faces
  sharing their ``generation.reference_attributes`` (and target age group), :class:`~facebench.metrics.generation.
  SetDistance`.

Every metric is disaggregated by the source's ``domain`` (seed 001: CelebC, the faces annotated White the generator
trained on, against CelebO, the others), ``race`` (the dataset's own labels; CelebA's are annotators'), ``gender``,
the ``edit``, the source's and the target's age group, with intervals that resample source people (the unit of
independence: a person's several faces and edits are not independent). The ``differentials`` view holds the verifier's
threshold, the real target groups' mean estimated ages and the judges' own accuracy on real held-out faces per
group: a judge that reads one group worse makes that group's edits look worse too.

Each scored run also writes ``samples/``: sample grids per domain (source face, then its edits) and
``samples/study_manifest.csv`` (``image,domain,group,source_id``: generated faces of both domains, balanced by gender,
for the two-alternative forced-choice study of seed 001 Table 5, ``facebench study export``).

>>> FACE_GENERATION.predictions_file, FACE_GENERATION.unit_columns, FACE_GENERATION.row_keys
('generated.npz', ('subject_id',), ('sample_id', 'edit'))
>>> age_group_labels((10, 21, 31, 41, 51))
('10-20', '21-30', '31-40', '41-50', '51+')
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facebench.data.splits import race_label_column
from facebench.errors import UserInputError, shorten
from facebench.fit_data import GenerationFitData
from facebench.tasks.base import Task

__all__ = ["FACE_GENERATION", "FaceGenerationTask", "GeneratedFaces", "JudgedFaces", "age_group_labels",
           "edit_requests"]

#: Largest predictions file read (generated faces are images: 1 GB holds 100,000 faces at 64 px).
MAX_BYTES = 1024**3


def age_group_labels(edges: Sequence[int]) -> tuple[str, ...]:
    """"10-20", ..., "51+" for lower edges (10, 21, ..., 51)."""
    edges = list(edges)
    return tuple(f"{a}-{b - 1}" for a, b in zip(edges[:-1], edges[1:], strict=True)) + (f"{edges[-1]}+",)


def _age_group(ages: pd.Series, edges: Sequence[int]) -> pd.Series:
    """The age group label of each age (below the first edge: the first group); missing ages stay missing."""
    labels = age_group_labels(edges)
    values = pd.to_numeric(ages, errors="coerce").to_numpy(dtype=float)
    codes = np.clip(np.searchsorted(np.asarray(edges), values, side="right") - 1, 0, len(edges) - 1)
    return pd.Series([labels[c] if np.isfinite(v) else pd.NA for c, v in zip(codes, values, strict=True)],
                     index=ages.index, dtype="string")


def _domain(table: pd.DataFrame, protocol) -> pd.Series:
    """``generation.domains[0]`` for faces of the split's ``train_groups`` (CelebC), ``[1]`` for the other labelled
    faces (CelebO); missing without a race label or without ``generation.domains``."""
    domains = protocol.generation.domains
    groups = list(protocol.split.params.get("train_groups") or ())
    if domains is None or not groups:
        return pd.Series(pd.NA, index=table.index, dtype="string")
    race = table[race_label_column(table)].astype("string")
    return pd.Series(np.where(race.isna(), None, np.where(race.isin(groups), domains[0], domains[1])),
                     index=table.index, dtype="string")


def edit_requests(protocol, table: pd.DataFrame, sample_ids: Sequence[str]) -> pd.DataFrame:
    """The requests for ``sample_ids`` (in order): columns ``sample_id``, ``edit``, ``target`` (the label values
    asked for, a dict) and ``target_group`` (ageing: the target age group's label; else missing).

    An attribute edit ``set`` values or ``flip`` a 0/1 column; it is left out where the source already has the
    target's values. Ageing asks every face for every older group."""
    g = protocol.generation
    rows = table.set_index("sample_id").loc[list(sample_ids)]
    out: list[tuple[str, str, dict[str, float], Any]] = []
    if g.age_groups is not None:
        labels = age_group_labels(g.age_groups)
        own = _age_group(rows["age"], g.age_groups)
        for sample_id, group in own.items():
            if pd.isna(group):
                raise UserInputError(f"test image {shorten(str(sample_id))} has no age, so it cannot be aged.")
            for k in range(labels.index(group) + 1, len(labels)):
                out.append((str(sample_id), f"to {labels[k]}", {"age": float(g.age_groups[k])}, labels[k]))
    for sample_id, row in rows.iterrows():
        for edit in g.edits:
            if edit.flip is not None:
                target = {edit.flip: 1.0 - float(row[edit.flip])}
            else:
                target = dict(edit.set)
                if all(float(row[k]) == v for k, v in target.items()):
                    continue  # nothing to change
            out.append((str(sample_id), edit.name, target, pd.NA))
    frame = pd.DataFrame(out, columns=["sample_id", "edit", "target", "target_group"])
    frame["target_group"] = frame["target_group"].astype("string")
    return frame


@dataclass(frozen=True, eq=False)
class GeneratedFaces:
    """A predictions file: one generated face per request, ``images`` (R, 3, S, S) uint8."""

    sample_id: np.ndarray
    edit: np.ndarray
    images: np.ndarray


@dataclass(eq=False)
class JudgedFaces:
    """The generated faces with what the judges read from them, row for row with :attr:`requests`."""

    faces: GeneratedFaces
    requests: pd.DataFrame  # sample_id, edit, target, target_group + the judges' readings
    #: per realism extractor: (generated features (R, D), real features (M, D))
    features: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    generated_cells: np.ndarray | None = None
    real_cells: np.ndarray | None = None
    view: dict[str, Any] = field(default_factory=dict)
    real_test_images: np.ndarray | None = None


@dataclass(frozen=True, kw_only=True)
class FaceGenerationTask(Task):
    name: str = "face_generation"
    baseline_kind: str = "face_generation"
    predictions_file: str = "generated.npz"
    description: str = ("an .npz of sample_id and edit (R strings) and images (R, 3, S, S uint8): one generated face per "
                        "edit request")
    group_attributes: tuple[str, ...] = ("domain", "race", "gender", "edit", "source_group", "target_group")
    outcome_columns: tuple[tuple[str, str], ...] = (
        ("edit_success", "edit_success"), ("identity_preservation", "identity_match"),
        ("identity_similarity", "identity_similarity"), ("aging_offset", "aging_offset"))
    unit_columns: tuple[str, ...] = ("subject_id",)
    unit_name: str = "person"
    row_keys: tuple[str, ...] = ("sample_id", "edit")  # one row per source face and requested edit

    # ------------------------------------------------------------------ training data and outputs

    def fit_data(self, table: pd.DataFrame, split, images) -> GenerationFitData:
        indexed = table.set_index("sample_id", drop=False)

        def labels(part: str) -> pd.DataFrame:
            return indexed.loc[list(split[part])].reset_index(drop=True)

        train, val = labels("train"), labels("val") if "val" in split.parts else labels("train").iloc[:0]
        return GenerationFitData(
            train_images=images("train"), train_ages=pd.to_numeric(train["age"]).to_numpy(dtype=float, na_value=np.nan),
            val_images=images("val") if len(val) else images("train")[:0],
            val_ages=pd.to_numeric(val["age"]).to_numpy(dtype=float, na_value=np.nan), train_labels=train,
            val_labels=val)

    def model_outputs(self, baseline, *, protocol, table: pd.DataFrame, sample_ids: Sequence[str], images
                      ) -> GeneratedFaces:
        requests = edit_requests(protocol, table, sample_ids)
        ids = list(sample_ids)
        store = images(ids)
        position = {sample_id: i for i, sample_id in enumerate(ids)}
        index = requests["sample_id"].map(position).to_numpy(dtype=np.int64)
        sources = table.set_index("sample_id").loc[requests["sample_id"]].reset_index()
        generated = baseline.generate(store[index], sources, list(requests["target"]))
        return GeneratedFaces(sample_id=requests["sample_id"].to_numpy(dtype=str),
                              edit=requests["edit"].to_numpy(dtype=str), images=generated)

    def write_predictions(self, path: Path, sample_ids, outputs: GeneratedFaces) -> None:
        from facebench.io import atomic_write

        with atomic_write(path, "wb") as handle:
            np.savez(handle, sample_id=np.asarray(outputs.sample_id, dtype=str),
                     edit=np.asarray(outputs.edit, dtype=str), images=np.asarray(outputs.images, dtype=np.uint8))

    def read_predictions(self, path: str | Path, expected_ids: tuple[str, ...]) -> GeneratedFaces:
        from facebench.tasks.face_recognition import read_npz_arrays

        path = Path(path)
        if not path.is_file():
            raise UserInputError(f"Predictions file {path} {'is not a file' if path.exists() else 'does not exist'}.")
        if path.stat().st_size > MAX_BYTES:
            raise UserInputError(f"{path}: larger than the {MAX_BYTES:,} bytes facebench reads as generated faces.")
        arrays = read_npz_arrays(path)
        if set(arrays) != {"sample_id", "edit", "images"}:
            names = ", ".join(repr(k)[1:-1] for k in sorted(arrays)) or "none"
            raise UserInputError(f"{path}: arrays are {shorten(names, 80)}; expected exactly sample_id, edit and images.")
        ids, edits, images = arrays["sample_id"], arrays["edit"], arrays["images"]
        if ids.dtype.kind != "U" or edits.dtype.kind != "U" or ids.ndim != 1 or edits.shape != ids.shape:
            raise UserInputError(f"{path}: sample_id and edit must be 1-D string arrays of one length.")
        if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(ids) or images.shape[1] != 3 \
                or images.shape[2] != images.shape[3]:
            raise UserInputError(f"{path}: images must be uint8 of shape (R, 3, S, S), one per sample_id (got "
                                 f"{images.dtype} {images.shape}).")
        expected = set(expected_ids)
        unknown = [i for i in ids if i not in expected]
        if unknown:
            raise UserInputError(f"{path}: sample_id {shorten(unknown[0])} is not in this protocol's test set.")
        pairs = pd.Series([f"{a}\0{b}" for a, b in zip(ids, edits, strict=True)])
        if pairs.duplicated().any():
            first = int(np.flatnonzero(pairs.duplicated().to_numpy())[0])
            raise UserInputError(f"{path}: row {first} repeats the edit {shorten(str(edits[first]))} of "
                                 f"{shorten(str(ids[first]))}.")
        return GeneratedFaces(sample_id=ids.astype(str), edit=edits.astype(str), images=images)

    # ------------------------------------------------------------------ judging

    def prepare_scoring(self, predictions: GeneratedFaces, *, dataset, split, protocol, seed: int, cache_dir=None,
                        progress: bool = False) -> JudgedFaces:
        """Check that every request has its face (and nothing else), train or load the judges and read every
        generated and every real held-out face with them."""
        from facebench.data.datasets import default_cache_dir
        from facebench.data.images import image_store
        from facebench.metrics import get_metric
        from facebench.metrics.generation import is_set_metric

        table, g = dataset.table, protocol.generation
        requests = edit_requests(protocol, table, split["test"])
        given = pd.DataFrame({"sample_id": predictions.sample_id, "edit": predictions.edit,
                              "row": np.arange(len(predictions.sample_id))})
        merged = requests.merge(given, on=["sample_id", "edit"], how="outer", indicator=True)
        for side, words in (("left_only", "has no generated face"), ("right_only", "was not requested")):
            bad = merged[merged["_merge"] == side]
            if len(bad):
                row = bad.iloc[0]
                raise UserInputError(f"generated faces: the edit {shorten(str(row['edit']))} of "
                                     f"{shorten(str(row['sample_id']))} {words} ({len(bad)} such).")
        requests = merged[merged["_merge"] == "both"].sort_values("row").drop(columns="_merge").reset_index(drop=True)
        size = protocol.model.image_size
        if predictions.images.shape[-1] != size:
            raise UserInputError(f"generated faces are {predictions.images.shape[-1]} px; this protocol judges faces of "
                                 f"model.image_size {size} px.")
        cache = Path(cache_dir or default_cache_dir())

        def store(ids: Sequence[str]) -> np.ndarray:
            return image_store(dataset.root, list(ids), size, cache, progress=progress, key=dataset.fingerprint())

        judges = self.judges(protocol, dataset, split, store, cache=cache, progress=progress)
        test_ids = list(split["test"])
        rows = table.set_index("sample_id", drop=False)
        real = store(test_ids)
        real_rows = rows.loc[test_ids].reset_index(drop=True)
        faces = predictions.images[requests["row"].to_numpy()]
        source_index = requests["sample_id"].map({s: i for i, s in enumerate(test_ids)}).to_numpy()

        # identity: cosine of the verifier's embeddings; the threshold at the FAR on real impostor pairs
        real_embeddings = judges.embeddings(real)
        fake_embeddings = judges.embeddings(faces)
        similarity = np.einsum("ij,ij->i", real_embeddings[source_index], fake_embeddings)
        threshold = far_threshold(real_embeddings, real_rows["subject_id"].astype("string").fillna(
            real_rows["sample_id"].astype("string")).astype(str).to_numpy(), g.far)
        requests["identity_similarity"] = similarity
        requests["identity_match"] = (similarity >= threshold["threshold"]).astype(float)

        view: dict[str, Any] = {"verifier_threshold": threshold, "judges": judges.description()}
        # edit success and ageing
        requests["edit_success"] = np.nan
        requests["aging_offset"] = np.nan
        if g.age_groups is not None:
            real_ages = judges.ages(real)
            fake_ages = judges.ages(faces)
            real_groups = _age_group(real_rows["age"], g.age_groups)
            generic = pd.Series(real_ages).groupby(real_groups.to_numpy()).mean()
            estimated_group = _age_group(pd.Series(fake_ages), g.age_groups).to_numpy()
            ageing = requests["target_group"].notna().to_numpy()
            requests.loc[ageing, "edit_success"] = (estimated_group[ageing] == requests["target_group"][ageing]).astype(float)
            requests.loc[ageing, "aging_offset"] = fake_ages[ageing] - requests["target_group"][ageing].map(generic).to_numpy(
                dtype=float, na_value=np.nan)
            requests["estimated_age"] = fake_ages
            view["generic_ages"] = {str(k): float(v) for k, v in generic.items()}
            view["estimator_on_real"] = _estimator_view(real_ages, real_rows, protocol)
        if g.edits:
            attributes = list(judges.config.attributes)
            probability = judges.attribute_probabilities(faces)
            for i, target in enumerate(requests["target"]):
                if pd.isna(requests["target_group"].iloc[i]):
                    hits = [(probability[i, attributes.index(k)] >= 0.5) == (v >= 0.5) for k, v in target.items()
                            if v >= 0.5 or len(target) == 1]
                    requests.loc[i, "edit_success"] = float(all(hits))
            view["classifier_on_real"] = _classifier_view(judges.attribute_probabilities(real), real_rows, attributes,
                                                          protocol)
        view["verifier_on_real"] = _verifier_view(real_embeddings, real_rows, threshold["threshold"], protocol)

        # realism features for the set metrics the protocol asks for
        features = {}
        for name in protocol.evaluation.metrics:
            metric = get_metric(name)
            if is_set_metric(metric) and metric.aggregate.extractor not in features:
                extractor = metric.aggregate.extractor
                features[extractor] = (judges.features(extractor, faces), judges.features(extractor, real))
        generated_cells, real_cells = self._cells(protocol, table, requests, real_rows)
        return JudgedFaces(faces=predictions, requests=requests, features=features, generated_cells=generated_cells,
                           real_cells=real_cells, view=view, real_test_images=real)

    def judges(self, protocol, dataset, split, store, *, cache: Path, progress: bool):
        """The judges of this protocol's data, trained once on the real images of every part but ``test`` (the
        generator's training images, the judge-only images of other groups, validation) and cached."""
        from facebench.baselines.judges import JudgeConfig, train_judges
        from facebench.locking import run_folder_lock

        g = protocol.generation
        attributes = sorted({k for e in g.edits for k in ([e.flip] if e.flip else list(e.set))})
        config = JudgeConfig(protocol=protocol, attributes=tuple(attributes), ages=g.age_groups is not None)
        ids = tuple(i for part in ("train", "val", "judge") if part in split.parts for i in split[part])
        folder = cache / "judges" / config.key(dataset.fingerprint(), ids)
        labels = dataset.table.set_index("sample_id", drop=False).loc[list(ids)].reset_index(drop=True)
        with run_folder_lock(folder):
            return train_judges(config, store(ids), labels, folder=folder, progress=progress)

    def _cells(self, protocol, table, requests: pd.DataFrame, real_rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Reference-cell codes of the generated rows and of the real held-out faces: the reference attributes of
        ``generation.reference_attributes`` (and the age group: the target's for a generated face, its own for a
        real one)."""
        g = protocol.generation
        sources = self._groups(protocol, table, requests["sample_id"])
        reals = self._groups(protocol, table, real_rows["sample_id"])
        keys_fake = [sources[a].astype("string").fillna("?") for a in g.reference_attributes]
        keys_real = [reals[a].astype("string").fillna("?") for a in g.reference_attributes]
        if g.age_groups is not None:
            keys_fake.append(requests["target_group"].astype("string").fillna("?").reset_index(drop=True))
            keys_real.append(_age_group(real_rows["age"], g.age_groups).fillna("?").reset_index(drop=True))
        fake = pd.Series(["\0".join(p) for p in zip(*[k.tolist() for k in keys_fake], strict=True)] if keys_fake
                         else [""] * len(requests))
        real = pd.Series(["\0".join(p) for p in zip(*[k.tolist() for k in keys_real], strict=True)] if keys_real
                         else [""] * len(real_rows))
        codes = {cell: i for i, cell in enumerate(sorted(set(fake) | set(real)))}
        return fake.map(codes).to_numpy(dtype=np.int64), real.map(codes).to_numpy(dtype=np.int64)

    def _groups(self, protocol, table: pd.DataFrame, sample_ids: pd.Series) -> pd.DataFrame:
        """The source attributes of each id: domain, race (the dataset's own or annotators' labels), gender and
        the age group (ageing protocols)."""
        rows = table.set_index("sample_id", drop=False).loc[list(sample_ids)].reset_index(drop=True)
        race = rows[race_label_column(rows)].astype("string") if _has_race(rows) else pd.Series(pd.NA, index=rows.index,
                                                                                                 dtype="string")
        g = protocol.generation
        return pd.DataFrame({
            "subject_id": rows["subject_id"].astype("string").fillna(rows["sample_id"].astype("string")),
            "domain": _domain(rows, protocol), "race": race, "gender": rows["gender"].astype("string"),
            "source_group": (_age_group(rows["age"], g.age_groups) if g.age_groups is not None
                             else pd.Series(pd.NA, index=rows.index, dtype="string"))})

    # ------------------------------------------------------------------ outcomes and metrics

    def outcomes(self, table: pd.DataFrame, predictions: JudgedFaces, *, protocol, split) -> pd.DataFrame:
        r = predictions.requests
        groups = self._groups(protocol, table, r["sample_id"])
        return pd.DataFrame({
            "sample_id": r["sample_id"].to_numpy(), "subject_id": groups["subject_id"].to_numpy(),
            "edit": r["edit"].to_numpy(), "domain": groups["domain"].to_numpy(), "race": groups["race"].to_numpy(),
            "gender": groups["gender"].to_numpy(), "source_group": groups["source_group"].to_numpy(),
            "target_group": r["target_group"].to_numpy(), "edit_success": r["edit_success"].to_numpy(dtype=float),
            "identity_match": r["identity_match"].to_numpy(dtype=float),
            "identity_similarity": r["identity_similarity"].to_numpy(dtype=float),
            "aging_offset": r["aging_offset"].to_numpy(dtype=float)})

    def set_metrics(self, predictions: JudgedFaces, outcomes: pd.DataFrame, metrics, attributes, *, clusters,
                    **options):
        """The engine of the set metrics (FID, KID) on this run's features: ``y_true`` the generated rows' reference
        cells, ``y_pred`` their row numbers; the same units (source people) as the per-sample metrics."""
        from facebench.metrics import Disaggregation

        bound = []
        for metric in metrics:
            fake, real = predictions.features[metric.aggregate.extractor]
            aggregate = metric.aggregate.bind(fake=fake, real=real, real_cells=predictions.real_cells)
            bound.append(type(metric)(**{**metric.__dict__, "aggregate": aggregate}))
        return Disaggregation(predictions.generated_cells, np.arange(len(outcomes), dtype=float),
                              outcomes[list(attributes)], bound, clusters=clusters, **options)

    def differentials(self, table: pd.DataFrame, predictions: JudgedFaces, *, protocol, split, seed: int) -> dict:
        return predictions.view

    # ------------------------------------------------------------------ samples and the study manifest

    def write_extras(self, out_dir: Path, predictions: JudgedFaces, table: pd.DataFrame, *, protocol, split,
                     seed: int) -> None:
        """``samples/grid-<domain>.png`` (per row a source face and its edits) and ``samples/study_manifest.csv``
        with the generated faces of ``samples_per_domain`` source faces per domain (balanced by gender), each
        written as ``samples/<domain>/<n>.png``."""
        from facebench.baselines.gan import image_grid, write_png
        from facebench.io import atomic_write
        from facebench.seeding import rng_stream

        g = protocol.generation
        r = predictions.requests
        groups = self._groups(protocol, table, r["sample_id"])
        domain_column = "domain" if groups["domain"].notna().any() else "race"
        folder = Path(out_dir) / "samples"
        test_ids = list(split["test"])
        position = {s: i for i, s in enumerate(test_ids)}
        edits = list(dict.fromkeys(r["edit"]))
        manifest: list[tuple[str, str, str, str]] = []
        for domain in sorted(groups[domain_column].dropna().unique()):
            in_domain = (groups[domain_column] == domain).fillna(False).to_numpy(dtype=bool)
            chosen: list[str] = []
            for gender in sorted(groups.loc[in_domain, "gender"].dropna().unique()):
                mask = in_domain & (groups["gender"] == gender).fillna(False).to_numpy(dtype=bool)
                people = pd.unique(r.loc[mask, "sample_id"])
                order = rng_stream(seed, "samples", domain, gender).permutation(len(people))
                chosen += [str(people[i]) for i in order[: max(1, g.samples_per_domain // 2)]]
            chosen = chosen[: g.samples_per_domain] if g.samples_per_domain else []
            if not chosen:
                continue
            slug = "".join(c if c.isalnum() else "_" for c in str(domain))
            blank = np.full_like(predictions.faces.images[0], 255)
            grid = []
            for source in chosen:
                rows = r.index[r["sample_id"] == source]
                by_edit = {r.loc[i, "edit"]: predictions.faces.images[r.loc[i, "row"]] for i in rows}
                grid.append([predictions.real_test_images[position[source]],
                             *[by_edit.get(e, blank) for e in edits]])
                for i in rows:
                    name = f"{slug}/{len(manifest):04d}.png"
                    write_png(folder / name, predictions.faces.images[r.loc[i, "row"]])
                    manifest.append((name, str(domain), str(groups.loc[i, "gender"]), str(source)))
            write_png(folder / f"grid-{slug}.png", image_grid(np.array(grid)))
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["image", "domain", "group", "source_id"])
        writer.writerows(manifest)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / "study_manifest.csv", "w", encoding="utf-8", newline="") as handle:
            handle.write(text.getvalue())
        with atomic_write(folder / "grid_columns.txt", "w", encoding="utf-8") as handle:
            handle.write("\n".join(["source face", *edits]) + "\n")


def _has_race(rows: pd.DataFrame) -> bool:
    try:
        race_label_column(rows)
    except UserInputError:
        return False
    return True


def far_threshold(embeddings: np.ndarray, subjects: np.ndarray, far: float) -> dict[str, Any]:
    """The verifier's threshold at false accept rate ``far`` on every impostor pair (different people) of the real
    held-out faces: the smallest cosine t with at most ``far`` of the impostor scores at or above it. With fewer
    than 1/far impostor pairs the achievable rate is coarser: the threshold is then just above the largest impostor
    score (measured FAR 0) and the record says so.

    >>> e = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    >>> far_threshold(e, np.array(["a", "b", "c"]), 0.5)["threshold"]    # impostor cosines 0.8, 0.0, 0.6
    0.8
    """
    scores = embeddings @ embeddings.T
    upper = np.triu_indices(len(subjects), k=1)
    impostor = np.sort(scores[upper][subjects[upper[0]] != subjects[upper[1]]])[::-1]
    n = len(impostor)
    if n == 0:
        return {"threshold": float("inf"), "far": far, "measured_far": None, "n_impostor_pairs": 0,
                "note": "no impostor pair: every generated face fails the identity check"}
    allowed = int(np.floor(far * n))
    if allowed == 0:
        threshold = float(np.nextafter(impostor[0], np.inf))
        note = (f"{n} impostor pairs cannot resolve a FAR of {far:g}: the threshold is just above the largest impostor "
                "score")
    else:
        threshold = float(impostor[allowed - 1]) if impostor[allowed] < impostor[allowed - 1] else \
            float(np.nextafter(impostor[allowed - 1], np.inf))
        note = ""
    measured = float(np.mean(impostor >= threshold))
    return {"threshold": threshold, "far": far, "measured_far": measured, "n_impostor_pairs": n, "note": note}


def _group_columns(rows: pd.DataFrame, protocol) -> dict[str, pd.Series]:
    out = {"gender": rows["gender"].astype("string")}
    if _has_race(rows):
        out["race"] = rows[race_label_column(rows)].astype("string")
    domain = _domain(rows, protocol)
    if domain.notna().any():
        out["domain"] = domain
    return out


def _per_group(values: np.ndarray, rows: pd.DataFrame, protocol) -> dict[str, dict[str, dict[str, float]]]:
    """Mean of ``values`` (per real face) with its n, per group of each attribute."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for attribute, column in _group_columns(rows, protocol).items():
        frame = pd.DataFrame({"v": values, "g": column.to_numpy()}).dropna(subset=["g"])
        out[attribute] = {str(k): {"value": float(v.mean()), "n": int(len(v))} for k, v in frame.groupby("g")["v"]}
    return out


def _classifier_view(probability: np.ndarray, rows: pd.DataFrame, attributes: list[str], protocol) -> dict:
    """The attribute classifier's accuracy on the real held-out faces, per attribute and group."""
    return {a: _per_group(((probability[:, k] >= 0.5) == rows[a].astype(float).to_numpy().astype(bool)).astype(float),
                          rows, protocol) for k, a in enumerate(attributes)}


def _estimator_view(ages: np.ndarray, rows: pd.DataFrame, protocol) -> dict:
    """The age estimator's mean signed and absolute error on the real held-out faces, per group."""
    error = ages - pd.to_numeric(rows["age"]).to_numpy(dtype=float)
    return {"mean_signed_error": _per_group(error, rows, protocol), "mae": _per_group(np.abs(error), rows, protocol)}


def _verifier_view(embeddings: np.ndarray, rows: pd.DataFrame, threshold: float, protocol) -> dict:
    """The verifier's true accept rate at the threshold on genuine pairs (one person's two real held-out faces),
    per group of the pair's person."""
    subjects = rows["subject_id"].astype("string").fillna(rows["sample_id"].astype("string")).astype(str).to_numpy()
    first, second = np.triu_indices(len(rows), k=1)
    genuine = subjects[first] == subjects[second]
    first, second = first[genuine], second[genuine]
    accepted = (np.einsum("ij,ij->i", embeddings[first], embeddings[second]) >= threshold).astype(float)
    return {"true_accept_rate": _per_group(accepted, rows.iloc[first].reset_index(drop=True), protocol),
            "n_genuine_pairs": int(len(first))}


FACE_GENERATION = FaceGenerationTask()
