"""Comparability: when a run's numbers may be read against a paper's published (reference) numbers.

One rule, used by the per-protocol report and the leaderboard site alike. A reference row is *comparable*
with a run only when

(a) the run scored the real dataset, and trained on real data (not facebench's synthetic stand-ins);
(b) the run used the ``paper`` profile, unchanged by ``--set`` (apart from settings that cannot move the number:
    :data:`NEUTRAL_OVERRIDES`);
(c) the protocol's stated conditions hold (``comparability:`` in its YAML,
    :class:`facebench.protocol.ComparabilityConditions`, copied to results.json's ``protocol.comparability``):
    ``pairs`` (the paper scored the dataset's official pair list, not pairs facebench drew with a seed),
    ``pretrained`` (the paper fine-tunes pre-trained weights; a run trained from scratch is not its setting)
    and ``training_data`` (the paper trains on that dataset);
(d) the run measured the row's number at all (its metric, its split, its group).

Otherwise the row is "reference only", with every failing condition in one line, e.g. "reference only: quick
profile; synthetic data". Everything is judged from the run's results.json alone (:class:`facebench.results.Run`),
so a report rebuilt later, elsewhere, says the same. What facebench cannot check is stated as an assumption
(a ``params.init`` encoder is taken to be the pre-training the paper names).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from facebench.data.datasets import dataset_display_name
from facebench.results import Run

__all__ = ["NEUTRAL_OVERRIDES", "ComparabilityVerdict", "judge"]

#: ``--set`` keys (and their sub-keys) that leave a paper-profile number comparable: the synthetic stand-ins'
#: settings (unused on real data), the statistics of the intervals (not the value) and where training runs.
NEUTRAL_OVERRIDES: tuple[str, ...] = ("dataset.synthetic", "train_dataset.synthetic", "evaluation.n_boot",
                                      "evaluation.confidence", "training.device", "training.num_workers")


@dataclass(frozen=True, kw_only=True)
class ComparabilityVerdict:
    """Whether a published number may be read against a run's: comparable when no reason says otherwise.

    ``reasons``: every failing condition, in words ("quick profile", "synthetic data"); ``assumptions``: what
    the verdict takes on trust because results.json cannot show it (what a ``params.init`` encoder learnt from).
    """

    reasons: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()

    @property
    def comparable(self) -> bool:
        return not self.reasons

    @property
    def line(self) -> str:
        """The verdict in one line: "comparable", "comparable, assuming ..." or "reference only: ..."."""
        if self.reasons:
            return "reference only: " + "; ".join(self.reasons)
        return "comparable" + (", assuming " + "; ".join(self.assumptions) if self.assumptions else "")


def _changed_settings(overrides: list[str]) -> list[str]:
    """The ``--set`` texts that may change the number (see :data:`NEUTRAL_OVERRIDES`)."""
    changed = []
    for text in overrides:
        key = str(text).partition("=")[0].strip()
        if not any(key == neutral or key.startswith(neutral + ".") for neutral in NEUTRAL_OVERRIDES):
            changed.append(str(text))
    return changed


def _pretrained_reason(baseline: Mapping[str, Any], condition: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(reason, assumption) of the ``pretrained`` condition for a trained baseline."""
    paper = condition["paper"]
    init = (baseline.get("params") or {}).get("init")
    published = baseline.get("pretrained_on")
    weights = (baseline.get("model") or {}).get("pretrained")
    if init:  # an encoder loaded before training (seed 002's Algorithm 1, line 1); what it learnt from is not recorded
        return None, f"its params.init is {paper}"
    if published:
        if condition["kind"] == "face_encoder":
            return f"used as published, pre-trained on {published}; the paper fine-tunes {paper}", None
        return None, None
    if weights:
        if condition["kind"] == "face_encoder":
            return (f"started from backbone weights {weights} (not a face encoder); the paper fine-tunes {paper}",
                    None)
        return None, None
    return f"trained from scratch; the paper fine-tunes {paper}", None


def _training_data_reason(results: Mapping[str, Any], condition: Mapping[str, Any]) -> str | None:
    baseline = results["baseline"]
    if baseline.get("pretrained_on"):
        return f"used as published, not trained on {condition['paper']}"
    trained_on = (baseline.get("train_data") or {}).get("dataset") or results["data"].get("dataset")
    if trained_on != condition["dataset"]:
        return f"trained on {dataset_display_name(str(trained_on))}; the paper trains on {condition['paper']}"
    return None


def _measured(results: Mapping[str, Any], reference: Mapping[str, Any]) -> str | None:
    """Why the run has no number to set beside ``reference`` (None when it has one)."""
    metric = reference["metric"]
    if reference.get("split") == "source_val":
        if metric not in ((results.get("splits") or {}).get("source_val") or {}):
            return f"no source-validation {metric}"
        return None
    if metric not in results["metrics"]["overall"]:
        return f"the run does not measure {metric}"
    group = reference.get("group")
    if group:
        attribute, _, label = group.partition("=")
        if metric not in results["metrics"]["by_group"].get(attribute, {}).get(label, {}):
            return f"no {attribute} group {label} in the run"
    return None


def judge(run: Run, reference: Mapping[str, Any] | None = None) -> ComparabilityVerdict:
    """Whether ``reference`` (a published-number row of results.json's ``reference`` list) may be read against
    ``run``; without a row, the run-level conditions (a)–(c) only. See the module docstring for the rule."""
    results = run.results
    protocol, data, baseline = results["protocol"], results["data"], results["baseline"]
    reasons: list[str] = []
    assumptions: list[str] = []

    # (a) real data, for scoring and for training
    if data.get("synthetic"):
        reasons.append("synthetic data")
    train_data = baseline.get("train_data") or {}
    if train_data.get("synthetic") and not data.get("synthetic"):
        reasons.append(f"trained on synthetic {dataset_display_name(str(train_data.get('dataset')))}")
    # (b) the paper profile, unchanged
    profile = str(protocol.get("profile") or "unknown")
    if profile != "paper":
        reasons.append(f"{profile} profile")
    else:
        changed = _changed_settings(list(protocol.get("overrides") or []))
        if changed:
            reasons.append("paper profile changed by --set " + ", ".join(changed))
    # (c) the protocol's stated conditions
    if "comparability" not in protocol:
        reasons.append(f"its results.json (schema {results.get('schema_version')}) predates comparability "
                       "conditions")
    elif protocol["comparability"] is None:
        reasons.append("the protocol states no comparability conditions")
    else:
        conditions = protocol["comparability"]
        pairs = conditions.get("pairs")
        if pairs and data.get("pair_source") != pairs["source"]:
            scored = {"seeded": "seeded pairs", "listed": "listed pairs"}.get(data.get("pair_source"), "other pairs")
            reasons.append(f"{scored}, the paper used {pairs['paper']}")
        pretrained, training_data = conditions.get("pretrained"), conditions.get("training_data")
        if baseline.get("kind", "baseline") != "baseline" and (pretrained or training_data):
            paper = (f"fine-tunes {pretrained['paper']}" if pretrained else f"trains on {training_data['paper']}")
            reasons.append(f"a submission, whose training facebench does not record (the paper {paper})")
        else:
            if pretrained:
                reason, assumption = _pretrained_reason(baseline, pretrained)
                reasons += [reason] if reason else []
                assumptions += [assumption] if assumption else []
            if training_data:
                reason = _training_data_reason(results, training_data)
                reasons += [reason] if reason else []
    # (d) the row's number exists in the run
    if reference is not None:
        missing = _measured(results, reference)
        reasons += [missing] if missing else []
    return ComparabilityVerdict(reasons=tuple(reasons), assumptions=tuple(assumptions) if not reasons else ())
