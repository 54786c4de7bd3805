"""The known answer of a run on synthetic data: the group effect the generator injected, and the gap it implies.

On facebench's synthetic faces the audit can be checked against the truth. The generator's settings are in
the dataset's ``SYNTHETIC.json`` (read by the dataset loader, :attr:`facebench.data.datasets.LoadedDataset.manifest`):
each group's *visible ageing rate* (adult skin and hair cues show the cue age ``18 + (age − 18) × rate``, the
true age below 18; :func:`facebench.data.synth.render.cue_age`). Labels are written exactly (the generator adds
no label noise), so the rate is the one deliberate group shift.

What it implies for the primary metric is not a closed form of the rates alone (it depends on each test face's
age), so it is computed by an **oracle**: a model that reads every face's age cues exactly and maps them to ages
as for the group it was trained on (the split's ``source``), with no other error. Its predictions go through the
task's own outcomes and the same disaggregation engine as the run's (without bootstrap: the oracle's values on
this test set are exact), so the implied gap is the measured gap's definition applied to the oracle. A trained
model adds its own error to every group and may also react to other group differences (skin tone, hair colour),
so its measured gap is expected near the implied one, not equal to it.

Today the oracle exists for age regression on a split with a training group (``cross_ethnicity``); for other
tasks (face recognition, where the shift reaches rank-1 only through a learnt embedding) ``implied`` is null
with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from facebench.data.datasets import LoadedDataset
from facebench.data.splits import Split
from facebench.data.synth.render import cue_age
from facebench.protocol import Protocol

__all__ = ["GROUP_ATTRIBUTE", "injected_effect", "oracle_ages", "synthetic_truth"]

#: The FaceTable attribute the generator's groups are (their names are race labels).
GROUP_ATTRIBUTE = "race"

#: How the generator uses a group's ``aging_rate`` (:func:`facebench.data.synth.render.cue_age`).
AGEING_RULE = ("adult skin and hair cues (wrinkles, texture, greying, hairline) show the cue age 18 + (age − 18) × "
               "ageing rate for ages over 18; younger faces show their true age")
#: What each known-answer shift kind (:data:`facebench.data.synth.population.SHIFTS`) means for adaptation.
SHIFT_MEANINGS: dict[str, str] = {
    "default": ("mixed: groups differ in appearance (skin, hair, eyes) and in ageing rate, so feature alignment "
                "may help with the first and cannot with the second"),
    "covariate": ("covariate shift: groups differ only in appearance that carries no age information and age at "
                  "the same rate, so feature alignment (DANN, MMD) is expected to reduce target error"),
    "concept": ("concept shift: groups look alike and age at different rates, so no feature-alignment method can "
                "help"),
    "offset": ("offset shift: groups look alike and age at the same rate, but the age cues of the groups not trained "
               "on show a constant number of extra years, so age differences are intact and absolute ages are not: a direct "
               "regressor is biased by about the offset, and differences plus labelled target anchors (pairwise + "
               "MDS) are expected to remove the bias; feature alignment cannot (the features already match)"),
    # The longitudinal (AIFR) generators' setting (facebench.data.synth.longitudinal.AIFR_SHIFTS).
    "age_entangled": ("age-entangled identity: every person's identity parameters move along one shared age "
                      "direction as they age, so an embedding that keeps it confuses a person's young and old photos "
                      "with other people; an age-invariant representation (MT-MIM) is expected to beat ArcFace at "
                      "the largest age gap"),
}
LABELS = "exact: every face's age, gender and group are the generator's own (no label noise)"


def injected_effect(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The deliberate group shift recorded in a ``SYNTHETIC.json``: each group's visible ageing rate, and the
    known-answer shift kind (``default`` for manifests written before the setting existed)."""
    groups = (manifest.get("config") or {}).get("groups") or []
    shift = str(manifest.get("shift", "default"))
    effect = {"attribute": GROUP_ATTRIBUTE, "aging_rate": {str(g["name"]): float(g["aging_rate"]) for g in groups},
              "rule": AGEING_RULE, "labels": LABELS, "shift": shift, "shift_meaning": SHIFT_MEANINGS[shift]}
    offsets = {str(g["name"]): float(g.get("cue_age_offset", 0.0)) for g in groups}
    if any(offsets.values()):  # only the offset shift has any; the other kinds' results stay as they were
        effect["cue_age_offset"] = offsets
    return effect


def oracle_ages(ages: np.ndarray, rates: np.ndarray, source_rate: float, offsets: np.ndarray | float = 0.0
                ) -> np.ndarray:
    """What a model that reads age cues exactly, as for a group of ``source_rate`` and no cue offset, predicts for
    faces of true ``ages`` whose groups age at ``rates`` with cue-age ``offsets``: the cue age mapped back with the
    source rate.

    >>> oracle_ages(np.array([10.0, 18.0, 58.0]), np.array([0.9, 0.9, 0.9]), 1.0).round(2).tolist()
    [10.0, 18.0, 54.0]
    >>> oracle_ages(np.array([30.0]), np.array([1.0]), 1.0, 10.0).tolist()
    [40.0]
    """
    cue = cue_age(ages, rates, offsets)
    return np.where(cue > 18.0, 18.0 + (cue - 18.0) / source_rate, cue)


def _gap(disparity: Mapping[str, Any] | None, *, interval: bool) -> dict[str, Any] | None:
    """The worst-vs-best gap of a ``metrics.disparities`` entry (with its interval when ``interval``)."""
    if not disparity or disparity.get("worst_group") is None:
        return None
    keys = ("worst_group", "best_group", "worst_value", "best_value", "gap")
    return {key: disparity.get(key) for key in (*keys, *(("gap_ci_low", "gap_ci_high") if interval else ()))}


def synthetic_truth(*, protocol: Protocol, dataset: LoadedDataset, split: Split, measured: Mapping[str, Any],
                    score_oracle: Callable[[pd.DataFrame], Mapping[str, Any]]) -> dict[str, Any] | None:
    """results.json's ``synthetic_truth`` block for a run on ``dataset`` (None on real data).

    ``measured`` is the run's ``metrics`` section; ``score_oracle`` scores a predictions frame in the task's
    format (``sample_id,age`` for age regression) exactly like the run's and returns its ``metrics`` section.
    """
    if not dataset.synthetic or dataset.manifest is None:
        return None
    metric = protocol.evaluation.primary_metric
    effect = injected_effect(dataset.manifest)
    truth: dict[str, Any] = {
        "generator": dataset.manifest.get("generator"), "generator_version": dataset.manifest.get("generator_version"),
        "injected": effect, "metric": metric, "attribute": GROUP_ATTRIBUTE,
        "measured": _gap(measured["disparities"].get(metric, {}).get(GROUP_ATTRIBUTE), interval=True),
        "implied": None, "implied_reason": None,
    }
    source = protocol.split.params.get("source")
    rates = effect["aging_rate"]
    if protocol.task != "age_regression":
        truth["implied_reason"] = (f"no oracle is derived for task {protocol.task}: the ageing shift reaches "
                                   f"{metric} only through a learnt embedding, which has no closed form")
    elif source not in rates:
        truth["implied_reason"] = ("the model trains on every group, so no single group's ageing rate is the one "
                                   "it learns cues from")
    else:
        test = dataset.table.set_index("sample_id").loc[list(split["test"])]
        group_rates = test[GROUP_ATTRIBUTE].map(rates).to_numpy(dtype=float, na_value=np.nan)
        ages = test["age"].to_numpy(dtype=float)
        offsets = test[GROUP_ATTRIBUTE].map(effect.get("cue_age_offset", {})).to_numpy(dtype=float, na_value=0.0)
        predicted = np.where(np.isnan(group_rates), ages,  # a face of no generator group: no shift
                             oracle_ages(ages, np.nan_to_num(group_rates, nan=1.0), rates[source], offsets))
        oracle = score_oracle(pd.DataFrame({"sample_id": list(split["test"]), "age": predicted}))
        by_group = oracle["by_group"].get(GROUP_ATTRIBUTE, {})
        reference = rates[source]
        off_by = ("(age − 18) × (1 − rate)" if reference == 1.0
                  else f"(age − 18) × |rate − {reference:g}| / {reference:g}")
        truth["implied"] = {
            "method": "oracle",
            "oracle": (f"reads every test face's age cues exactly and maps them to ages as they map for the training "
                       f"group (the generator's group {source}, ageing rate {reference:g}), with no other error: it is "
                       f"off by {off_by} years for an adult of a group ageing at another rate"
                       + (", plus its group's cue-age offset" if "cue_age_offset" in effect else "")),
            "by_group": {group: {"value": values[metric]["value"], "n": values[metric]["n"],
                                 "flag": values[metric].get("flag", "")} for group, values in by_group.items()},
            **(_gap(oracle["disparities"].get(metric, {}).get(GROUP_ATTRIBUTE), interval=False) or {}),
        }
    return truth
