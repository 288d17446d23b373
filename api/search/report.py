"""Search logs and plots, regenerated from the search history after every step.

Each log holds one ``x<TAB>value`` line per step, x being the edges left for AutoShrink (the
original's format) or the candidates trained so far for random search; each plot draws that
series against x. Because everything is rebuilt from the journalled history
with atomic writes, a resumed search ends with exactly the files of an uninterrupted one.
"""
from __future__ import annotations

import io
import os
from typing import Dict, List

from api.runs.atomic_io import atomic_write_bytes, atomic_write_text


def png_bytes(fig) -> bytes:
    """A matplotlib figure as PNG bytes (90 dpi), closed: every plot the searches write goes
    through here, then to ``atomic_write_bytes``."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()

# log file stem -> (history field, plot title)
SERIES = {
    "best_perf": ("best_score", "best score"),
    "perf": ("mean_score", "mean score"),
    "mean_acc": ("mean_metric", "mean {metric}"),
    "best_acc": ("best_metric", "best {metric}"),
    "mean_latency": ("mean_macs", "mean MACs"),
}
PLOT_NAMES = {"best_perf": "best_perf_log.png", "perf": "perf_log.png", "mean_acc": "mean_acc.png",
              "best_acc": "best_acc.png", "mean_latency": "mean_latency.png"}


def _fmt(value) -> str:
    return "nan" if value is None else f"{value:.6g}"


def write_logs(root: str, history: List[Dict]) -> None:
    for stem, (key, _) in SERIES.items():
        lines = "".join(f"{h['x']}\t{_fmt(h.get(key))}\n" for h in history)
        atomic_write_text(os.path.join(root, f"{stem}.log"), lines)
    atomic_write_text(os.path.join(root, "search.log"),
                      "".join(h["summary"] + "\n" for h in history))


def write_plots(root: str, history: List[Dict], metric: str, x_label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for stem, (key, title) in SERIES.items():
        points = [(h["x"], h[key]) for h in history if h.get(key) is not None]
        fig, ax = plt.subplots(figsize=(5, 3.4))
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", ms=3, lw=1.2)
        ax.set_xlabel(x_label)
        ax.set_ylabel(title.format(metric=metric))
        if x_label == "edges left":
            ax.invert_xaxis()  # the search shrinks from left to right
        ax.grid(alpha=0.3)
        fig.tight_layout()
        atomic_write_bytes(os.path.join(root, PLOT_NAMES[stem]), png_bytes(fig))


def write_report(root: str, history: List[Dict], metric: str, x_label: str = "edges left",
                 plots: bool = True) -> None:
    write_logs(root, history)
    if plots:
        write_plots(root, history, metric, x_label)


def plot_curves(root: str, records: List[Dict], key: str) -> None:
    """``curves.png``: every trained candidate's per-epoch ``key`` (e.g. val_acc), one line
    each, coloured by step, so a researcher sees how candidates learned, not just their best."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [(r["step"], [(row["epoch"], row[key]) for row in r["curve"] if key in row])
              for r in records if r.get("curve")]
    curves = [(step, pts) for step, pts in curves if pts]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    if curves:
        last = max(step for step, _ in curves)
        cmap = plt.get_cmap("viridis")
        for step, pts in curves:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, color=cmap(step / max(last, 1)), lw=0.8, alpha=0.6, marker="o",
                    ms=2.5)  # markers: one-epoch curves are single points
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(1, max(last, 1)))
        fig.colorbar(sm, ax=ax, label="step")
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    ax.set_title(f"{len(curves)} candidates")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write_bytes(os.path.join(root, "curves.png"), png_bytes(fig))
