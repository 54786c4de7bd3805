"""Human two-alternative forced-choice (2AFC) realism studies of generated faces (seed 001 §3.4, Table 5).

Seed 001 shows 3 participants 300 pairs each, one image edited by StarGAN from CelebC (the domain it was trained
on) and one from CelebO, with gender held the same within a pair, and reports the share of choices that went to
each domain per gender (Table 5: male 60 % / 40 %, female 53 % / 47 %; no interval). facebench runs the same
study offline, in two steps:

``facebench study export MANIFEST --out PAGE.html [--pairs N --seed S]``
    reads a *study manifest* (CSV, header ``image,domain,group,source_id``: ``image`` a PNG/JPEG path relative to
    the manifest's folder, never leaving it; ``domain`` the output set, e.g. CelebC / CelebO, exactly two of
    them; ``group`` the group held equal within a pair, e.g. male / female; ``source_id`` the image the edit was
    made from) and writes one self-contained rating page and, beside it, its key ``PAGE.key.json``. Pairs are
    formed within each group, one image of each domain, drawn without replacement in a seeded order
    (:func:`facebench.seeding.rng_stream`); their order and which domain is on the left are shuffled by the same
    seed. The page is blinded: it holds only opaque pair codes and the images, re-encoded as PNG data URIs
    without any metadata; which domain each side shows is only in the key, which stays with the experimenter.
    The page needs no network (a Content-Security-Policy forbids it) and no server: a rater opens the file,
    enters an id, answers with F / J (or ← / →, or the buttons; U or Backspace takes the last answer back),
    and downloads the answers as a CSV (:data:`RATINGS_HEADER`). The answers so far are kept in the browser's
    local storage, so a closed tab resumes where it stopped.

``facebench study import KEY RATINGS.csv [...] --out DIR``
    reads the ratings strictly (:func:`read_ratings`: one sentence naming the file and line, exit 2, nothing
    written), unblinds them with the key and writes ``study.json``, ``study.md`` and ``study.html`` into DIR
    (:func:`analyse`, :func:`write_study_results`).

What the numbers are
--------------------
A *rating* is one rater's choice on one pair. The **preference rate** of a domain in a group is the share of the
group's ratings in which that domain's image was chosen (Table 5's percentages); with two domains the two rates
add up to 1. Each comes with two 95 % intervals, because ratings are not independent of each other:

* **Wilson** (:func:`facebench.metrics.intervals.wilson_interval`, through the disaggregation engine) treats
  every rating as an independent trial. That is right for one rater and too narrow for several, whose ratings
  share the rater's taste.
* **Rater bootstrap** (with two or more raters): the raters are the unit of independence, so a draw resamples
  *raters* with all their ratings (the engine's cluster bootstrap, :mod:`facebench.metrics.clusters`), and the
  interval is its percentile interval. It speaks of new raters judging these same pairs (the pairs are held
  fixed); with few raters (seed 001 had 3) it rests on few clusters and is itself rough.

The gap between groups (e.g. how much more often CelebC wins among men than among women) comes from the same
draws (:meth:`facebench.metrics.groups.Disaggregation.disparities`). Agreement between raters is Cohen's kappa
for two raters and Fleiss' kappa for three or more (:func:`facebench.metrics.agreement.annotation_agreement`), on
the pairs every rater answered.

>>> frame = pd.DataFrame({"image": ["a.png", "b.png"], "domain": ["CelebC", "CelebO"], "group": ["f", "f"],
...                       "source_id": ["1", "2"]})
>>> [(p.group, p.first.image, p.second.image) for p in form_pairs(frame, ("CelebC", "CelebO"), n_pairs=None, seed=0)]
[('f', 'a.png', 'b.png')]
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from facebench.errors import UserInputError, shorten, validation_error
from facebench.io import atomic_write, inside, write_json, write_text
from facebench.limits import csv_rows, load_json, read_text
from facebench.seeding import rng_stream

#: The study manifest's header, exactly (written by the generative runs).
MANIFEST_HEADER: tuple[str, ...] = ("image", "domain", "group", "source_id")

#: The header of a ratings file, exactly as the rating page writes it.
RATINGS_HEADER: tuple[str, ...] = ("study", "rater", "pair", "chosen", "response_ms", "answered_at")

#: A rater id: what the page accepts and the importer checks (no comma, quote or leading formula character, so
#: the CSV needs no quoting and a spreadsheet never reads it as a formula).
RATER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.@-]{0,63}")

#: A domain or group label: printable, at most this long.
MAX_LABEL = 64

#: Largest manifest, ratings file and key read.
MAX_CSV_BYTES = 64 << 20

#: Longest response time accepted (a day): a larger one is a damaged file, not a slow rater.
MAX_RESPONSE_MS = 24 * 3600 * 1000

#: The default question, after seed 001 §3.4 (which also asks about the edit and the identity).
DEFAULT_QUESTION = "Which face looks more like a real photograph?"

KEY_FORMAT = "facebench-2afc-key"
RESULTS_FORMAT = "facebench-2afc-results"

#: Seed 001 Table 5 (3 participants, 300 pairs each, gender held equal within a pair; percentages, no interval).
SEED_001_TABLE_5 = {"source": "seed 001 Table 5", "domains": ["CelebC", "CelebO"], "raters": 3, "pairs_per_rater": 300,
                    "rates": {"male": {"CelebC": 0.60, "CelebO": 0.40}, "female": {"CelebC": 0.53, "CelebO": 0.47}}}


# ------------------------------------------------------------------------------------------------ the key
class KeyImage(BaseModel):
    """One side of a pair: which domain and which image (relative to the manifest's folder)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    domain: str
    image: str
    source_id: str


class KeyPair(BaseModel):
    """One pair as shown: its opaque code, position on the page (1-based), group and the two sides."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    pair: str = Field(pattern=r"^[0-9a-f]{12}$")
    position: int = Field(ge=1)
    group: str
    left: KeyImage
    right: KeyImage


class StudyKey(BaseModel):
    """The key file written beside a rating page: everything needed to unblind its ratings."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    format: Literal["facebench-2afc-key"]
    version: Literal[1]
    study: str = Field(pattern=r"^[0-9a-f]{16}$")
    page: str
    created_at: str
    question: str
    seed: int
    manifest: str
    manifest_sha256: str
    synthetic: bool
    domains: tuple[str, str]
    group_attribute: str
    pairs: tuple[KeyPair, ...] = Field(min_length=1)


def read_key(path: str | os.PathLike) -> StudyKey:
    """Read and check a key file (one sentence on any problem)."""
    path = Path(path)
    where = f"Study key {path}"
    raw = load_json(read_text(path, what="Study key", max_bytes=MAX_CSV_BYTES), where=where)
    try:
        key = StudyKey.model_validate(raw)
    except ValidationError as error:
        raise validation_error(error, where=where, model=StudyKey) from None
    codes = [p.pair for p in key.pairs]
    if len(set(codes)) != len(codes):
        raise UserInputError(f"{where} lists a pair code twice.")
    for p in key.pairs:
        if {p.left.domain, p.right.domain} != set(key.domains):
            raise UserInputError(f"{where}: pair {p.pair} does not show one image of each of {', '.join(key.domains)}.")
    return key


# ------------------------------------------------------------------------------------------- the manifest
def _label_problem(value: str) -> str | None:
    if value != value.strip():
        return "has spaces around it"
    if len(value) > MAX_LABEL:
        return f"is longer than {MAX_LABEL} characters"
    if not value.isprintable():
        return "has control characters"
    return None


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a study manifest strictly: the header :data:`MANIFEST_HEADER`, no empty field, every image a file
    inside the manifest's folder that decodes (PNG, JPEG...), listed once, exactly two domains, and every group
    with images of both. Returns a frame with the four columns and ``line``.

    Bad input is one sentence naming the file and line (:class:`~facebench.errors.UserInputError`).
    """
    from facebench.data.files import image_problem

    path = Path(path)
    what = "Study manifest"
    root = path.resolve().parent
    rows, seen = [], {}
    for line, fields in csv_rows(path, what=what, header=MANIFEST_HEADER, max_bytes=MAX_CSV_BYTES, rows_are="images"):
        where = f"{what} {path}: line {line}"
        for name, value in zip(MANIFEST_HEADER, fields, strict=True):
            if value.strip() == "":
                raise UserInputError(f"{where} has an empty {name}.")
        image, domain, group, source_id = fields
        for name, value in (("domain", domain), ("group", group)):
            problem = _label_problem(value)
            if problem:
                raise UserInputError(f"{where}: {name} {shorten(value)} {problem}.")
        file = inside(root, image, where=f"{where} names image", root_name="the manifest's folder")
        if file in seen:
            raise UserInputError(f"{where} lists image {shorten(image)} again (first on line {seen[file]}).")
        if not file.is_file():
            raise UserInputError(f"{where} names image {shorten(image)}, which is not a file.")
        problem = image_problem(file)
        if problem:
            raise UserInputError(f"{where}: image {shorten(image)} is {problem}.")
        seen[file] = line
        rows.append((image, domain, group, source_id, line))
    frame = pd.DataFrame(rows, columns=[*MANIFEST_HEADER, "line"])
    domains = list(dict.fromkeys(frame["domain"]))
    if len(domains) != 2:
        raise UserInputError(f"{what} {path} names {len(domains)} domain{'s' if len(domains) != 1 else ''} "
                             f"({', '.join(shorten(d, 30) for d in domains[:5])}{', …' if len(domains) > 5 else ''}); "
                             "a 2AFC study compares exactly two.")
    for group, part in frame.groupby("group", sort=True):
        missing = [d for d in domains if d not in set(part["domain"])]
        if missing:
            raise UserInputError(f"{what} {path}: group {shorten(group)} has no image of domain {shorten(missing[0])}, "
                                 "so none of its images can be paired; every group needs images of both domains.")
    return frame


# ------------------------------------------------------------------------------------------------ pairing
@dataclass(frozen=True)
class Side:
    image: str
    domain: str
    source_id: str


@dataclass(frozen=True)
class Pair:
    """A pair before shuffling: ``first`` is of the manifest's first domain, ``second`` of its second."""

    group: str
    first: Side
    second: Side


def form_pairs(frame: pd.DataFrame, domains: tuple[str, str], *, n_pairs: int | None, seed: int) -> list[Pair]:
    """Pairs within each group, one image of each domain, without replacement, in a seeded order.

    Each group's images of each domain are shuffled by their own stream and zipped. ``n_pairs`` (None: every
    pair a group can give, its smaller domain's count) is split equally between the groups, the first groups in
    sorted order taking one more when it does not divide, as seed 001 controlled for gender; a group that cannot
    give its share is one sentence.
    """
    groups = sorted(frame["group"].unique())
    by_group = {}
    for group in groups:
        part = frame[frame["group"] == group]
        sides = []
        for domain in domains:
            rows = part[part["domain"] == domain]
            order = rng_stream(seed, "study", "pairing", group, domain).permutation(len(rows))
            sides.append([Side(str(r.image), str(r.domain), str(r.source_id)) for r in rows.iloc[order].itertuples()])
        by_group[group] = list(zip(*sides, strict=False))
    if n_pairs is None:
        quotas = {g: len(by_group[g]) for g in groups}
    else:
        if n_pairs < len(groups):
            raise UserInputError(f"--pairs {n_pairs} is fewer than the {len(groups)} groups; each group needs at "
                                 "least one pair.")
        base, extra = divmod(n_pairs, len(groups))
        quotas = {g: base + (i < extra) for i, g in enumerate(groups)}
        for g in groups:
            if quotas[g] > len(by_group[g]):
                raise UserInputError(f"--pairs {n_pairs} asks for {quotas[g]} pairs of group {shorten(g)}, which "
                                     f"can give only {len(by_group[g])} (images of its smaller domain).")
    return [Pair(g, first, second) for g in groups for first, second in by_group[g][: quotas[g]]]


def _png_data_uri(file: Path) -> str:
    """The image re-encoded as an RGB PNG data URI: no metadata of the original file reaches the page."""
    from PIL import Image

    from facebench.data.files import decoders

    with Image.open(file, formats=decoders()) as image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def export_study(manifest: str | os.PathLike, out: str | os.PathLike, *, n_pairs: int | None = None, seed: int = 0,
                 question: str = DEFAULT_QUESTION, synthetic: bool | None = None,
                 group_attribute: str = "group") -> tuple[Path, Path]:
    """Write the rating page ``out`` and its key ``out`` with ``.key.json`` in place of ``.html``; return both.

    ``synthetic`` None: the images are synthetic when a ``SYNTHETIC.json`` marker lies in the manifest's folder.
    ``group_attribute`` names what the manifest's groups are (e.g. ``gender``, as Table 5's rows) in the results.
    """
    from facebench.reports.bias_report import content_security_policy, environment

    manifest, out = Path(manifest), Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise UserInputError(f"--out {shorten(str(out))} must name an .html file (the rating page).")
    if not question.strip() or not question.isprintable() or len(question) > 300:
        raise UserInputError(f"--question {shorten(question)} must be one printable line of at most 300 characters.")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", group_attribute):
        raise UserInputError(f"--group-attribute {shorten(group_attribute)} must be a short name of letters, digits "
                             "and _ that starts with a letter, e.g. gender.")
    frame = read_manifest(manifest)
    domains = tuple(dict.fromkeys(frame["domain"]))
    pairs = form_pairs(frame, domains, n_pairs=n_pairs, seed=seed)
    order = rng_stream(seed, "study", "order").permutation(len(pairs))
    flips = rng_stream(seed, "study", "sides").integers(0, 2, size=len(pairs)).astype(bool)
    codes = _pair_codes(seed, len(pairs))
    root = manifest.resolve().parent
    if synthetic is None:
        synthetic = (root / "SYNTHETIC.json").is_file()
    shown = []
    for position, (index, code) in enumerate(zip(order, codes, strict=True), start=1):
        pair = pairs[index]
        left, right = (pair.second, pair.first) if flips[index] else (pair.first, pair.second)
        shown.append({"pair": code, "position": position, "group": pair.group,
                      "left": {"domain": left.domain, "image": left.image, "source_id": left.source_id},
                      "right": {"domain": right.domain, "image": right.image, "source_id": right.source_id}})
    manifest_sha = _sha256(manifest)
    study = hashlib.sha256(json.dumps([manifest_sha, seed, question, shown]).encode()).hexdigest()[:16]
    key = {"format": KEY_FORMAT, "version": 1, "study": study, "page": out.name,
           "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "question": question,
           "seed": int(seed), "manifest": str(manifest), "manifest_sha256": manifest_sha, "synthetic": bool(synthetic),
           "domains": list(domains), "group_attribute": group_attribute, "pairs": shown}
    StudyKey.model_validate(key)  # what import will read back
    data = {"study": study, "header": ",".join(RATINGS_HEADER), "rater_pattern": RATER_PATTERN.pattern, "pairs": [
        {"pair": s["pair"], "left": _png_data_uri(inside(root, s["left"]["image"], where="image")),
         "right": _png_data_uri(inside(root, s["right"]["image"], where="image"))} for s in shown]}
    script = study_script()
    page = environment().get_template("study_page.html.j2").render(
        csp=content_security_policy(script), script=script, synthetic=synthetic, study=study, question=question,
        n_pairs=len(shown), data=data)
    key_path = key_file_for(out)
    write_json(key_path, key)
    write_text(out, page)
    return out, key_path


def key_file_for(page: str | os.PathLike) -> Path:
    """The key file written beside a rating page: ``study.html`` → ``study.key.json``."""
    page = Path(page)
    return page.with_name(page.stem + ".key.json")


def _pair_codes(seed: int, n: int) -> list[str]:
    """Opaque, distinct 12-hex-digit pair codes drawn from the study's seed: they say nothing about the pair."""
    rng = rng_stream(seed, "study", "codes")
    codes: list[str] = []
    while len(codes) < n:
        code = rng.bytes(6).hex()
        if code not in codes:
            codes.append(code)
    return codes


def study_script() -> str:
    """The rating page's one script (``facebench.reports``' ``static/study.js``), inserted verbatim and allowed by
    its hash in the page's Content-Security-Policy."""
    from importlib.resources import files

    return (files("facebench.reports") / "static" / "study.js").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------- ratings
def read_ratings(paths: Sequence[str | os.PathLike], key: StudyKey) -> pd.DataFrame:
    """Read ratings files strictly and unblind them with ``key``.

    Every row must belong to the key's study, name a rater id of :data:`RATER_PATTERN`, a pair of the key,
    ``left`` or ``right``, a response time in whole milliseconds and an ISO 8601 time; a rater may rate a pair
    once over all files. Returns one row per rating: ``rater``, ``pair``, ``group``, ``chosen_domain``,
    ``chosen_side``, ``response_ms``, ``answered_at``, ``file``, ``line``.
    """
    if not paths:
        raise UserInputError("study import needs at least one ratings file.")
    pairs = {p.pair: p for p in key.pairs}
    rows: list[tuple] = []
    seen: dict[tuple[str, str], str] = {}
    for path in map(Path, paths):
        what = "Ratings file"
        for line, fields in csv_rows(path, what=what, header=RATINGS_HEADER, max_bytes=MAX_CSV_BYTES,
                                     rows_are="ratings"):
            where = f"{what} {path}: line {line}"
            study, rater, pair, chosen, response, answered = fields
            if study != key.study:
                raise UserInputError(f"{where} belongs to study {shorten(study)}, not to this key's study "
                                     f"{key.study}.")
            if not RATER_PATTERN.fullmatch(rater):
                raise UserInputError(f"{where} has rater id {shorten(rater)}; a rater id is 1-64 letters, digits, "
                                     "spaces or _.@- and starts with a letter or digit.")
            if pair not in pairs:
                raise UserInputError(f"{where} rates pair {shorten(pair)}, which the key does not list.")
            if chosen not in ("left", "right"):
                raise UserInputError(f"{where} has chosen {shorten(chosen)}; expected left or right.")
            if not re.fullmatch(r"[0-9]{1,9}", response) or int(response) > MAX_RESPONSE_MS:
                raise UserInputError(f"{where} has response_ms {shorten(response)}; expected whole milliseconds "
                                     f"from 0 to {MAX_RESPONSE_MS}.")
            try:
                # The page writes Date.toISOString() ("...Z"); Python 3.10's fromisoformat wants "+00:00".
                when = dt.datetime.fromisoformat(answered[:-1] + "+00:00" if answered.endswith("Z") else answered)
            except ValueError:
                raise UserInputError(f"{where} has answered_at {shorten(answered)}, which is not an ISO 8601 "
                                     "time.") from None
            if (rater, pair) in seen:
                raise UserInputError(f"{where} rates pair {pair} by rater {shorten(rater)} again (first at "
                                     f"{seen[(rater, pair)]}); give each rating once.")
            seen[(rater, pair)] = f"{path}: line {line}"
            side = getattr(pairs[pair], chosen)
            rows.append((rater, pair, pairs[pair].group, side.domain, chosen, int(response),
                         when.isoformat(), str(path), line))
    return pd.DataFrame(rows, columns=["rater", "pair", "group", "chosen_domain", "chosen_side", "response_ms",
                                       "answered_at", "file", "line"])


# ------------------------------------------------------------------------------------------------ analysis
def _preference_metric(domain: str):
    from facebench.metrics.base import Metric

    # Not registered: a study's metric is named after its own domain and lives only in its results.
    return Metric(name=f"preference_{domain}", description=f"share of ratings choosing the {domain} image",
                  higher_is_better=True, outcome=lambda y_true, y_pred: y_pred, is_rate=True)


def _interval(lo, hi) -> list[float] | None:
    return None if not (np.isfinite(lo) and np.isfinite(hi)) else [float(lo), float(hi)]


def analyse(key: StudyKey, ratings: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0,
            confidence: float = 0.95) -> dict:
    """The study's results (the ``study.json`` document): preference rates per domain, overall and per group,
    with Wilson and (two or more raters) rater-bootstrap intervals, per rater, the gap between groups and the
    raters' agreement (module docstring)."""
    from facebench.metrics.agreement import annotation_agreement
    from facebench.metrics.groups import Disaggregation
    from facebench.metrics.intervals import wilson_interval

    first, second = key.domains
    metric = _preference_metric(first)
    chose_first = (ratings["chosen_domain"] == first).to_numpy(dtype=float)
    groups = pd.DataFrame({key.group_attribute: ratings["group"].to_numpy()})
    raters = sorted(ratings["rater"].unique())
    common = {"n_boot": n_boot, "seed": seed, "confidence": confidence, "intersections": 1, "min_group_size": 30,
              "n_jobs": 1}
    by_rating = Disaggregation.from_outcomes({metric: chose_first}, groups, **common)
    by_rater = (Disaggregation.from_outcomes({metric: chose_first}, groups, clusters=ratings["rater"].to_numpy(),
                                             **common) if len(raters) >= 2 else None)
    wilson = by_rating.frame()
    clustered = by_rater.frame() if by_rater is not None else None
    preference = []
    for i, row in wilson.iterrows():
        members = ratings if row["attribute"] == "overall" else ratings[ratings["group"] == row["group"]]
        boot = (clustered.loc[i, "ci_low"], clustered.loc[i, "ci_high"]) if clustered is not None else (np.nan, np.nan)
        for domain, flip in ((first, False), (second, True)):
            n_chosen = int((members["chosen_domain"] == domain).sum())
            rate = n_chosen / int(row["n"])  # exactly k/n (1 - k/n may differ from (n-k)/n in the last bit)
            lo, hi = (1.0 - row["ci_high"], 1.0 - row["ci_low"]) if flip else (row["ci_low"], row["ci_high"])
            blo, bhi = (1.0 - boot[1], 1.0 - boot[0]) if flip else boot
            preference.append({
                "group": "all" if row["attribute"] == "overall" else row["group"], "domain": domain,
                "rate": rate, "n_chosen": n_chosen,
                "n_ratings": int(row["n"]), "n_pairs": int(members["pair"].nunique()),
                "n_raters": int(members["rater"].nunique()), "small": bool(row["flag"]),
                "wilson": _interval(lo, hi), "rater_bootstrap": _interval(blo, bhi)})
    per_rater = []
    for rater in raters:
        mine = ratings[ratings["rater"] == rater]
        for group, part in [("all", mine), *sorted(mine.groupby("group"))]:
            k, n = int((part["chosen_domain"] == first).sum()), len(part)
            lo, hi = wilson_interval(k, n, confidence=confidence)
            per_rater.append({"rater": rater, "group": group, "domain": first, "rate": k / n, "n_chosen": k,
                              "n_ratings": n, "wilson": _interval(lo, hi),
                              "median_response_ms": float(part["response_ms"].median())})
    gaps = []
    for engine, kind in ((by_rating, "rating_bootstrap"), (by_rater, "rater_bootstrap")):
        if engine is None:
            continue
        for d in engine.disparities().to_dict("records"):
            if d["n_groups"] < 2:
                continue
            # The engine's gap interval is of sign(worst - best) * (worst - best), i.e. of (higher - lower).
            high, low = ((d["worst_group"], d["best_group"]) if d["worst_value"] >= d["best_value"]
                         else (d["best_group"], d["worst_group"]))
            gaps.append({"domain": first, "higher_group": high, "lower_group": low, "gap": float(d["gap"]),
                         "interval": _interval(d["gap_ci_low"], d["gap_ci_high"]), "interval_kind": kind})
    agreement = annotation_agreement(ratings.rename(columns={"pair": "image_id", "chosen_domain": "label",
                                                             "rater": "annotator"}), categories=list(key.domains))
    return {
        "format": RESULTS_FORMAT, "version": 1, "study": key.study, "synthetic": key.synthetic,
        "question": key.question, "domains": list(key.domains), "group_attribute": key.group_attribute,
        "n_pairs_in_study": len(key.pairs), "n_ratings": len(ratings), "n_raters": len(raters),
        "statistics": {"confidence": confidence, "n_boot": n_boot, "seed": seed, "min_group_size": 30,
                       "wilson": "every rating an independent trial (too narrow when raters differ in taste)",
                       "rater_bootstrap": ("raters resampled with all their ratings (the unit of independence), the "
                                           "pairs held fixed; percentile interval"
                                           if len(raters) >= 2 else "not computed: one rater"),
                       "few_raters": len(raters) < 10 and len(raters) >= 2},
        "preference": preference, "per_rater": per_rater, "group_gaps": gaps,
        "agreement": {**agreement.to_dict(), "line": agreement.line()},
        "reference": SEED_001_TABLE_5,
    }


def import_study(key_path: str | os.PathLike, ratings_paths: Sequence[str | os.PathLike], out: str | os.PathLike,
                 *, n_boot: int = 2000, seed: int = 0) -> dict[str, Path]:
    """Read the key and the ratings, analyse them and write DIR/study.{json,md,html}; return the paths."""
    import facebench

    key = read_key(key_path)
    ratings = read_ratings(ratings_paths, key)
    results = analyse(key, ratings, n_boot=n_boot, seed=seed)
    results["inputs"] = {"key": {"file": str(key_path), "sha256": _sha256(Path(key_path))},
                         "ratings": [{"file": str(p), "sha256": _sha256(Path(p)),
                                      "n_ratings": int((ratings["file"] == str(p)).sum())} for p in ratings_paths]}
    results["provenance"] = {"facebench_version": facebench.__version__,
                             "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    return write_study_results(results, out)


def write_study_results(results: dict, out: str | os.PathLike) -> dict[str, Path]:
    """Write ``study.json``, ``study.md`` and ``study.html`` into ``out``, each atomically, after all are made."""
    from facebench.reports.bias_report import content_security_policy, environment

    out = Path(out)
    markdown = study_markdown(results)
    html = environment().get_template("study_results.html.j2").render(
        csp=content_security_policy(None), script=None, synthetic=results["synthetic"], r=results,
        table=table5_rows(results))
    paths = {"json": out / "study.json", "markdown": out / "study.md", "html": out / "study.html"}
    write_json(paths["json"], results)
    with atomic_write(paths["markdown"], "w", encoding="utf-8") as handle:
        handle.write(markdown)
    write_text(paths["html"], html)
    return paths


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _pct_interval(interval: list[float] | None) -> str:
    return "—" if interval is None else f"[{_pct(interval[0])}, {_pct(interval[1])}]"


def table5_rows(results: dict) -> list[dict]:
    """Table 5's layout: one row per group (and all), one cell per domain with both intervals."""
    rows: dict[str, dict] = {}
    for p in results["preference"]:
        row = rows.setdefault(p["group"], {"group": p["group"], "cells": [], "n_ratings": p["n_ratings"],
                                           "n_pairs": p["n_pairs"], "n_raters": p["n_raters"], "small": p["small"]})
        row["cells"].append({"domain": p["domain"], "rate": _pct(p["rate"]), "n_chosen": p["n_chosen"],
                             "wilson": _pct_interval(p["wilson"]), "rater_bootstrap": _pct_interval(p["rater_bootstrap"])})
    return list(rows.values())


def study_markdown(results: dict) -> str:
    """The results as markdown: Table 5's layout with both intervals, the gaps, agreement, raters."""
    first, second = results["domains"]
    lines = [f"# 2AFC realism study {results['study']}" + (" [SYNTHETIC]" if results["synthetic"] else ""), ""]
    if results["synthetic"]:
        lines += ["**SYNTHETIC DATA**: the images were generated from facebench's synthetic faces; these numbers test "
                  "the pipeline and say nothing about real people.", ""]
    lines += [f"Question: {results['question']}", "",
              f"{results['n_ratings']} ratings of {results['n_pairs_in_study']} pairs by {results['n_raters']} "
              f"rater{'s' if results['n_raters'] != 1 else ''}; preference rate = share of ratings choosing the "
              "domain's image, with a Wilson interval (ratings independent) and a rater-bootstrap interval (raters "
              "resampled; — with one rater).", "",
              f"| {results['group_attribute']} | {first} | {second} | n ratings | n pairs | n raters |",
              "|---|---|---|---|---|---|"]
    for row in table5_rows(results):
        cells = [f"{c['rate']} Wilson {c['wilson']}, raters {c['rater_bootstrap']}" for c in row["cells"]]
        lines.append(f"| {row['group']} | {' | '.join(cells)} | {row['n_ratings']} | {row['n_pairs']} | "
                     f"{row['n_raters']} |")
    ref = results["reference"]
    lines += ["", f"Reference: {ref['source']} ({ref['raters']} participants, {ref['pairs_per_rater']} pairs each; "
              "no interval): " + "; ".join(f"{g} " + ", ".join(f"{d} {_pct(v)}" for d, v in rates.items())
                                           for g, rates in ref["rates"].items()) + "."]
    if results["group_gaps"]:
        lines += ["", "Gap between groups in the preference for " + first + ":"]
        for g in results["group_gaps"]:
            interval = ("—" if g["interval"] is None
                        else f"[{100 * g['interval'][0]:+.1f}, {100 * g['interval'][1]:+.1f}]")
            lines.append(f"- {g['higher_group']} − {g['lower_group']}: {100 * g['gap']:+.1f} points {interval} "
                         f"({g['interval_kind'].replace('_', ' ')})")
    lines += ["", f"Agreement: {results['agreement']['line']}.", "", "| rater | group | preference for " + first +
              " [Wilson] | n | median response (ms) |", "|---|---|---|---|---|"]
    for r in results["per_rater"]:
        lines.append(f"| {r['rater']} | {r['group']} | {_pct(r['rate'])} {_pct_interval(r['wilson'])} | "
                     f"{r['n_ratings']} | {r['median_response_ms']:.0f} |")
    return "\n".join(lines) + "\n"
