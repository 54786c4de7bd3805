"""Time facebench's disaggregation against fairlearn's MetricFrame on the same data, in one process.

20,000 samples, one attribute with 10 groups, MAE, 200 bootstrap resamples, 95 % percentile intervals.
Prints both wall times, their ratio, and per group how far apart the interval ends are, relative to the
width of facebench's interval. The two bootstraps differ by design (fairlearn resamples the whole data set,
facebench resamples within each group), so ends agree only up to Monte-Carlo error (~5-15 % of the width
with 200 resamples).

A second facebench timing resamples people instead of rows (the cluster bootstrap, 10 rows per person by
default: ``--rows-per-person``), as facebench does on MORPH, CACD, FG-NET and AgeDB; fairlearn has no
cluster bootstrap, so its row bootstrap at equal resamples is the yardstick for both.

Usage: python scripts/bench_disaggregate.py [--samples 20000] [--groups 10] [--n-boot 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame
from sklearn.metrics import mean_absolute_error

from facebench.metrics import disaggregate


def make_data(n: int, n_groups: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    group = rng.integers(0, n_groups, size=n)
    y_true = rng.uniform(1, 90, size=n)
    y_pred = y_true + rng.normal(0.5 * (group % 3), 3.0 + 0.4 * group, size=n)  # group-dependent error
    labels = np.array([f"g{g:02d}" for g in range(n_groups)])[group]
    return y_true, y_pred, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="facebench timing: best of this many runs")
    parser.add_argument("--rows-per-person", type=int, default=10, help="rows per person of the cluster timing")
    args = parser.parse_args()

    y_true, y_pred, labels = make_data(args.samples, args.groups)
    frame = pd.DataFrame({"group": labels})

    t0 = time.perf_counter()
    mf = MetricFrame(metrics=mean_absolute_error, y_true=y_true, y_pred=y_pred, sensitive_features=labels,
                     n_boot=args.n_boot, ci_quantiles=[0.025, 0.975], random_state=0)
    t_fairlearn = time.perf_counter() - t0

    disaggregate(y_true, y_pred, frame, "mae", n_boot=args.n_boot, intersections=1)  # warm-up (imports)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ours = disaggregate(y_true, y_pred, frame, "mae", n_boot=args.n_boot, seed=0, intersections=1)
        times.append(time.perf_counter() - t0)
    t_ours = min(times)
    people = np.arange(args.samples) // args.rows_per_person
    cluster_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        disaggregate(y_true, y_pred, frame, "mae", n_boot=args.n_boot, seed=0, intersections=1, clusters=people)
        cluster_times.append(time.perf_counter() - t0)
    t_cluster = min(cluster_times)

    ours = ours[ours["attribute"] == "group"].set_index("group")
    fl_lo, fl_hi = (s.rename(index=str) for s in mf.by_group_ci)
    fl_value = mf.by_group.rename(index=str)
    width = ours["ci_high"] - ours["ci_low"]
    rel = pd.DataFrame({
        "n": ours["n"],
        "value_diff": (ours["value"] - fl_value.reindex(ours.index)).abs(),
        "width": width,
        "low_diff/width": (ours["ci_low"] - fl_lo.reindex(ours.index)).abs() / width,
        "high_diff/width": (ours["ci_high"] - fl_hi.reindex(ours.index)).abs() / width,
    })

    print(f"data: {args.samples} samples, {args.groups} groups, n_boot={args.n_boot}, metric=MAE")
    print(f"fairlearn MetricFrame : {t_fairlearn * 1000:10.1f} ms")
    print(f"facebench disaggregate: {t_ours * 1000:10.1f} ms (best of {args.repeats}: "
          + ", ".join(f"{t * 1000:.1f}" for t in times) + ")")
    print(f"speed-up              : {t_fairlearn / t_ours:10.0f}x")
    print(f"facebench, clustered  : {t_cluster * 1000:10.1f} ms ({people.max() + 1} people resampled; best of "
          f"{args.repeats})")
    print(f"speed-up, clustered   : {t_fairlearn / t_cluster:10.0f}x (fairlearn's row bootstrap as yardstick)")
    print()
    print(rel.to_string(float_format=lambda x: f"{x:.4f}"))
    print()
    print(f"max |value difference|            : {rel['value_diff'].max():.2e}")
    print(f"max interval-end difference / width: "
          f"{max(rel['low_diff/width'].max(), rel['high_diff/width'].max()):.3f}  (facebench seed 0 vs fairlearn seed 0)")

    # What is Monte-Carlo error here? The same comparison between two runs of each tool with other seeds:
    # with n_boot=200 a 2.5 % percentile rests on ~5 draws, so ends of two honest runs differ by ~10 % of a width.
    mf_other = MetricFrame(metrics=mean_absolute_error, y_true=y_true, y_pred=y_pred, sensitive_features=labels,
                           n_boot=args.n_boot, ci_quantiles=[0.025, 0.975], random_state=1)
    fl2_lo, fl2_hi = (s.rename(index=str).reindex(ours.index) for s in mf_other.by_group_ci)
    ours_other = disaggregate(y_true, y_pred, frame, "mae", n_boot=args.n_boot, seed=1, intersections=1)
    ours_other = ours_other[ours_other["attribute"] == "group"].set_index("group")

    def max_end_gap(lo_a, hi_a, lo_b, hi_b) -> float:
        return float(max(((lo_a - lo_b).abs() / width).max(), ((hi_a - hi_b).abs() / width).max()))

    print(f"  Monte-Carlo reference, fairlearn seed 0 vs seed 1 : "
          f"{max_end_gap(fl_lo.reindex(ours.index), fl_hi.reindex(ours.index), fl2_lo, fl2_hi):.3f}")
    print(f"  Monte-Carlo reference, facebench seed 0 vs seed 1 : "
          f"{max_end_gap(ours['ci_low'], ours['ci_high'], ours_other['ci_low'], ours_other['ci_high']):.3f}")
    mean_gap = float(pd.concat([rel["low_diff/width"], rel["high_diff/width"]]).mean())
    print(f"  mean interval-end difference / width, facebench vs fairlearn: {mean_gap:.3f}")


if __name__ == "__main__":
    main()
