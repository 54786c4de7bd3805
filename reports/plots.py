"""Plots for the reports, rendered to inline PNG (base64) so a report is one self-contained file."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # headless: reports are built on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook")


def figure_to_data_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def forest_plot(rows: list[dict], *, metric: str, unit: str, title: str, overall: dict | None = None) -> str:
    """Point and interval per group (one row each), with the overall value as a dashed line."""
    height = 0.9 + 0.32 * len(rows)
    fig, ax = plt.subplots(figsize=(6.4, height))
    labels = [f"{r['group']} (n={r['n']})" for r in rows]
    ys = list(range(len(rows)))[::-1]
    for y, row in zip(ys, rows, strict=True):
        colour = "#999999" if row.get("flag") == "small" else "#1f5fa8"
        ax.plot([row["ci_low"], row["ci_high"]], [y, y], color=colour, lw=2.2, solid_capstyle="round")
        ax.plot(row["value"], y, "o", color=colour, ms=6)
    if overall is not None and overall.get("value") is not None:
        ax.axvline(overall["value"], color="#c0392b", ls="--", lw=1, label=f"overall {overall['value']:.2f}")
        ax.legend(loc="best", fontsize=8, frameon=False)
    ax.set_yticks(ys, labels)
    ax.set_xlabel(f"{metric}" + (f" ({unit})" if unit else "") + " with 95% interval")
    ax.set_title(title, fontsize=10, loc="left")
    return figure_to_data_uri(fig)


def lines_by_band(series: dict[str, list[tuple[str, float, float, float]]], *, metric: str, unit: str, title: str) -> str:
    """One line per group across age bands: value with a shaded interval."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    palette = sns.color_palette("colorblind", n_colors=max(len(series), 1))
    for colour, (group, points) in zip(palette, series.items(), strict=False):
        bands = [p[0] for p in points]
        ax.plot(bands, [p[1] for p in points], "o-", color=colour, label=group, lw=1.6, ms=4)
        ax.fill_between(bands, [p[2] for p in points], [p[3] for p in points], color=colour, alpha=0.15)
    ax.set_xlabel("age band (years)")
    ax.set_ylabel(metric + (f" ({unit})" if unit else ""))
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=8, frameon=False, ncols=min(len(series), 5))
    return figure_to_data_uri(fig)


def det_curves(curves: dict[str, dict[str, list[float]]], *, title: str) -> str:
    """One DET curve per group: FNMR against FMR over a shared threshold grid, both axes logarithmic."""
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    palette = sns.color_palette("colorblind", n_colors=max(len(curves), 1))
    floor = 1e-4  # rates of exactly 0 cannot sit on a log axis; they are drawn at the floor
    for colour, (group, curve) in zip(palette, curves.items(), strict=False):
        fmr = [max(v, floor) for v in curve["fmr"]]
        fnmr = [max(v, floor) for v in curve["fnmr"]]
        ax.plot(fmr, fnmr, "-", color=colour, lw=1.6, label=group)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("false match rate (FMR)")
    ax.set_ylabel("false non-match rate (FNMR)")
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=8, frameon=False)
    return figure_to_data_uri(fig)
