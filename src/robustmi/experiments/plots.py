"""Matplotlib figures of the reports: titled, labelled axes with units, legends, saved as PNG."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: reports are written to files
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig: plt.Figure, path: str | Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


_GROUP_INCHES = 1.4  # horizontal room per bar group: its tick label wraps to fit it


def _group_figure(groups: int, height: float = 4.8) -> tuple[plt.Figure, Any]:
    """A figure sized to the number of bar groups, so labels keep their room however many bars there are."""
    return plt.subplots(figsize=(max(6.4, _GROUP_INCHES * groups + 1.6), height))


def _group_labels(ax: Any, labels: Sequence[str], fontsize: float = 8) -> None:
    """Tick labels wrapped to a group's width (spaces, hyphens; long words split): never overlapping."""
    chars = max(6, int(_GROUP_INCHES * 72 / (0.65 * fontsize)))  # <= 0.65 em per character, 72 pt per inch
    wrapped = ["\n".join(textwrap.wrap(lab, chars)) or lab for lab in labels]
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(wrapped, fontsize=fontsize)


def plot_table_comparison(rows: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Grouped bars of our PGD accuracy per table row (MLP and linear heads), the paper's as markers."""
    labels = list(dict.fromkeys(r["label"] for r in rows))
    fig, ax = _group_figure(len(labels))
    width = 0.38
    for offset, col, colour in ((-width / 2, "mlp_adv", "tab:blue"), (width / 2, "linear_adv", "tab:orange")):
        ours = [next(r["mean"] for r in rows if r["label"] == lab and r["column"] == col) for lab in labels]
        ours = [math.nan if m is None else m for m in ours]  # a missing cell: no bar
        paper = [
            next(r["paper_mean"] for r in rows if r["label"] == lab and r["column"] == col) for lab in labels
        ]
        xs = [i + offset for i in range(len(labels))]
        head = col.split("_")[0]
        ax.bar(xs, ours, width, color=colour, label=f"ours, {head} head")
        known = [(x, p) for x, p in zip(xs, paper, strict=True) if p is not None]  # no paper numbers: none
        if known:
            ax.scatter(*zip(*known, strict=True), color="black", marker="_", s=300, zorder=3,
                       label="paper" if col == "mlp_adv" else None)
    _group_labels(ax, labels)
    ax.set_ylabel("PGD accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_scatter(
    xs: Sequence[float],
    ys: Sequence[float],
    names: Sequence[str],
    path: str | Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    line: tuple[Sequence[float], Sequence[float]] | None = None,
    line_label: str | None = None,
) -> Path:
    """Labelled scatter plot, optionally with a reference curve (e.g. the Theorem 3.4 ceiling)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.scatter(xs, ys, color="tab:blue", zorder=3, label="models")
    for x, y, name in zip(xs, ys, names, strict=True):
        ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if line is not None:
        ax.plot(line[0], line[1], color="tab:red", label=line_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_bars(groups: dict[str, dict[str, float]], path: str | Path, *, ylabel: str, title: str) -> Path:
    """Grouped bars: one group per key of ``groups``, one bar per inner key (the same in every group)."""
    names = list(groups)
    series = list(next(iter(groups.values())))
    width = 0.8 / len(series)
    fig, ax = _group_figure(len(names), height=4.5)
    for i, key in enumerate(series):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(names))]
        values = [groups[name][key] for name in names]
        bars = ax.bar(xs, values, width, label=key)
        ax.bar_label(bars, fmt="%.2f" if max(abs(v) for v in values) < 10 else "%.1f", fontsize=7)
    _group_labels(ax, names)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)
