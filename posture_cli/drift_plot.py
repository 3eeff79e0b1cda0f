"""The picture of `posture drift report`: reference against live histograms of the worst
features at the last scoring, and each score against its threshold over time (matplotlib,
imported here only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

WORST_FEATURES = 3


def write_drift_plot(scorings: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    last = scorings[-1]
    worst = sorted(last["features"], key=lambda r: -1.0 if r["score"] is None else r["score"], reverse=True)
    worst = worst[:WORST_FEATURES]
    fig = plt.figure(figsize=(4.2 * max(len(worst), 2), 7.5))
    grid = fig.add_gridspec(2, max(len(worst), 1))
    for column, row in enumerate(worst):
        _histograms(fig.add_subplot(grid[0, column]), row)
    _over_time(fig.add_subplot(grid[1, :]), scorings)
    fig.suptitle(f"drift of version {last['version']} at {last['time']:%Y-%m-%d %H:%M} UTC")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _histograms(ax: Any, row: dict[str, Any]) -> None:
    """Reference and live shares per quantile bin (bins of equal reference share, so the
    reference is flat: where live leaves it is the shift)."""
    bins = row["bins"] or {}
    reference, live = np.asarray(bins.get("reference", [])), np.asarray(bins.get("live", []))
    edges = bins.get("edges", [])
    where = np.arange(len(reference))
    ax.bar(where - 0.2, reference, width=0.4, label="training (reference)", color="#9ab")
    ax.bar(where + 0.2, live, width=0.4, label="live window", color="#d62")
    labels = [f"<={e:.3g}" for e in edges] + [f">{edges[-1]:.3g}"] if edges else []
    ax.set_xticks(where, labels[: len(where)], rotation=60, fontsize=7)
    score = "-" if row["score"] is None else f"{row['score']:.2f}"
    ax.set_title(f"{row['feature']}: PSI {score}", fontsize=10)
    ax.set_ylabel("share of windows")
    ax.legend(fontsize=7)


def _over_time(ax: Any, scorings: list[dict[str, Any]]) -> None:
    from matplotlib.dates import ConciseDateFormatter

    times = [s["time"] for s in scorings]
    series = [
        ("worst feature PSI", "worst", "#d62"),
        ("predicted labels JS", "prediction", "#26a"),
        ("confidence drop", "confidence", "#2a6"),
    ]
    for label, key, color in series:
        rows = [s[key] for s in scorings]
        values = [np.nan if r is None or r["score"] is None else r["score"] for r in rows]
        ax.plot(times, values, marker="o", label=label, color=color)
        threshold = next((r["threshold"] for r in rows if r is not None), None)
        if threshold is not None:
            ax.axhline(threshold, linestyle="--", linewidth=0.8, color=color)
    for s in scorings:
        if s["alarm"]:
            ax.axvline(s["time"], color="red", alpha=0.15, linewidth=6)
    ax.set_ylabel("score (dashed: threshold)")
    ax.set_title("scores over time (red: alarm)", fontsize=10)
    ax.legend(fontsize=8)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(ax.xaxis.get_major_locator()))
    ax.tick_params(axis="x", labelsize=8)
