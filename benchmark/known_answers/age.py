"""Seed 000's age methods run on synthetic settings whose answer is known (issue 13, age part).

Each :class:`Check` names a protocol, a known-answer shift of the UTKFace generator
(:mod:`facebench.data.synth.population`), the methods it tests and the reference they must beat:

- **alignment / covariate**: the target group differs from the source only in age-free appearance (skin), so
  DANN and MMD (section 3.6) should lower target MAE against the same training loop with its alignment term off;
- **alignment / concept**: the groups look alike and age at other rates, so alignment should not help;
- **pairwise / offset**: the target group's age cues show ten extra years with differences intact, so the
  pairwise model + MDS on two labelled target anchors (sections 3.2, 4.4.5) should beat direct regression.

Why "alignment off" and not source-only is the control of the alignment checks: the adapted loop (target
images in every batch, through the shared BatchNorm) is itself a change, and a single run's paired interval
cannot tell it from training noise (``scripts/method_checks.py`` measures both over seeds).

:func:`run_check` runs the real runner; :func:`group_changes` measures each method's change in target MAE
against a reference on the same images (a paired bootstrap over images: it holds the trained models fixed);
:func:`over_seeds` summarises a method's change over training seeds (a t interval over seeds: the variation a
new training run brings, which the paired bootstrap does not see). ``tests/test_known_answers.py`` asserts the
directions at toy size; ``scripts/method_checks.py`` prints the table at quick size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from facebench.known_answers.runs import read_outcomes, run_on_shift  # noqa: F401 (read_outcomes: public here too)
from facebench.metrics.intervals import t_interval
from facebench.metrics.paired import paired_difference
from facebench.protocol import PROTOCOL_DIR

TARGET_GROUP = "black"
#: The adapted training loop with its alignment term switched off (DANN at gamma 0; MMD at gamma 0 gives the same
#: weights): the control that isolates what alignment itself does.
CONTROL_METHOD = "alignment off"
CONTROL_BASELINE = {"name": "dann", "label": CONTROL_METHOD,
                    "params": {"layers": ["fc1"], "gamma": 0.0, "warmup_fraction": 0.5}}
SOURCE_ONLY = "source only"
#: Seed 000's "direct regression" for the pairwise check: the source-only regressor, added to the pairwise protocol.
DIRECT_METHOD = "direct regression"
DIRECT_BASELINE = {"name": "source_only", "label": DIRECT_METHOD}
#: Toy size (tests/test_known_answers.py): 3000 images (about 1200 White, 840 of them training), 32 px, 30 epochs,
#: ~50 s a setting on one CPU thread. Fewer epochs or images leave the small CNN predicting near the mean age
#: (validation MAE ~15 at 800 images and 6 epochs), where no method can be told from another.
TOY_OVERRIDES: tuple[str, ...] = (
    "dataset.synthetic.n=3000", "dataset.synthetic.image_size=32", "dataset.synthetic.render_size=32",
    "model.image_size=32", "training.epochs=30", "training.device=cpu", "evaluation.n_boot=20")


@dataclass(frozen=True, kw_only=True)
class Check:
    """One known answer: ``methods`` of ``protocol`` run on the ``shift`` data should move target MAE against
    ``reference`` in the ``expected`` direction (``"lower"``: an interval below zero; ``"no better"``: not below)."""

    name: str
    protocol: Path
    shift: str
    methods: tuple[str, ...]
    reference: str
    #: baselines added to the protocol's own (the reference when the protocol lacks it)
    added: tuple[dict, ...]
    expected: str
    why: str
    #: further references shown beside the ruling one, each read with the same ``expected`` direction
    also_against: tuple[str, ...] = ()


CHECKS: tuple[Check, ...] = (
    Check(name="alignment", protocol=PROTOCOL_DIR / "age_utk_dann_vs_mmd.yaml", shift="covariate",
          methods=("dann fc1", "mmd fc1"), reference=CONTROL_METHOD, added=(CONTROL_BASELINE,), expected="lower",
          why="alignment removes an age-free appearance gap", also_against=(SOURCE_ONLY,)),
    Check(name="alignment", protocol=PROTOCOL_DIR / "age_utk_dann_vs_mmd.yaml", shift="concept",
          methods=("dann fc1", "mmd fc1"), reference=CONTROL_METHOD, added=(CONTROL_BASELINE,), expected="no better",
          why="the groups already look alike: nothing to align", also_against=(SOURCE_ONLY,)),
    Check(name="pairwise", protocol=PROTOCOL_DIR / "age_utk_pairwise_mds.yaml", shift="offset",
          methods=("rank + regression", "regression"), reference=DIRECT_METHOD, added=(DIRECT_BASELINE,),
          expected="lower", why="age differences are intact and two target anchors fix the level"),
)


def check(name: str, shift: str) -> Check:
    """The :data:`CHECKS` entry of ``name`` on ``shift``."""
    (found,) = [c for c in CHECKS if c.name == name and c.shift == shift]
    return found


@dataclass(frozen=True, kw_only=True)
class GroupChange:
    """One method's MAE on one group's test images of one setting and its paired change against a reference
    method on the same images (negative: better)."""

    method: str
    shift: str
    group: str
    mae: float
    change: float
    ci_low: float
    ci_high: float
    n: int


def run_check(known: Check, *, overrides: Sequence[str], out_dir: Path, cache_dir: Path, seed: int = 0,
              only: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """Run ``known.protocol``'s baselines and ``known.added`` on the ``known.shift`` data into ``out_dir``; each
    baseline label's outcomes (:func:`read_outcomes`).

    ``overrides`` size the data, model and training (``--set`` syntax); ``seed`` is both the data's and the
    runner's seed, so a seed sweep draws new faces and new initialisations. ``only`` keeps the protocol's
    baselines of those labels (the added ones always run).
    """
    return run_on_shift(known.protocol, shift=known.shift, overrides=overrides, out_dir=out_dir, cache_dir=cache_dir,
                        seed=seed, added=known.added, only=only)


def group_changes(outcomes: dict[str, pd.DataFrame], *, shift: str, reference: str, group: str = TARGET_GROUP,
                  n_boot: int = 1000) -> list[GroupChange]:
    """Each method's MAE on ``group``'s test images and its paired change against ``reference`` on the images
    both scored (UTKFace images are independent: no clusters). The pairwise model does not score its two labelled
    anchors, so against a method that does the comparison leaves those two out."""
    def errors_of(frame: pd.DataFrame) -> pd.Series:
        return frame[frame["race"] == group].set_index("sample_id")["abs_error"]

    baseline = errors_of(outcomes[reference])
    rows = []
    for method, frame in outcomes.items():
        errors = errors_of(frame)
        common = baseline.index.intersection(errors.index).sort_values()
        if len(common) < 0.9 * max(len(baseline), len(errors)):
            raise ValueError(f"{method} and {reference} scored different {group} images ({len(common)} in common)")
        diff = paired_difference(baseline[common].to_numpy(), errors[common].to_numpy(), n_boot=n_boot, clusters=None)
        rows.append(GroupChange(method=method, shift=shift, group=group, mae=float(errors[common].mean()),
                                change=diff.difference, ci_low=diff.ci_low, ci_high=diff.ci_high, n=diff.n))
    return rows


@dataclass(frozen=True, kw_only=True)
class SeedSummary:
    """A method's change over training seeds: the mean, a t interval over seeds (the seeds are the unit: each is
    a new dataset draw and a new training run) and how many seeds' own paired intervals excluded zero each way."""

    mean: float
    ci_low: float
    ci_high: float
    n_seeds: int
    n_below: int
    n_above: int


def over_seeds(changes: Sequence[GroupChange], *, confidence: float = 0.95) -> SeedSummary:
    """Summarise one method's per-seed changes (one :class:`GroupChange` per seed).

    >>> rows = [GroupChange(method="m", shift="s", group="g", mae=0, change=c, ci_low=c - 0.1, ci_high=c + 0.1, n=9)
    ...         for c in (-1.0, -2.0, -3.0)]
    >>> s = over_seeds(rows); (s.mean, round(s.ci_low, 2), round(s.ci_high, 2), s.n_below, s.n_above)
    (-2.0, -4.48, 0.48, 3, 0)
    """
    mean, low, high = t_interval([c.change for c in changes], confidence=confidence)
    return SeedSummary(mean=mean, ci_low=low, ci_high=high, n_seeds=len(changes),
                       n_below=sum(c.ci_high < 0 for c in changes), n_above=sum(c.ci_low > 0 for c in changes))
