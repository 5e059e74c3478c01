"""The saliency PNG grid: rows are samples, columns are the input and then each model's map.

Colour scaling (``scale``):

- ``"absolute"`` (default): ``|s|`` summed over channels, shown with the ``inferno`` colour map from 0 (black)
  to the cell's own maximum (bright). Shows *where* a model looks.
- ``"signed"``: ``s`` summed over channels, shown with the diverging ``RdBu_r`` colour map symmetric about 0,
  from ``-max|s|`` (blue) to ``+max|s|`` (red) of the cell, white = 0. Red pixels raise the target (for a loss
  target: increasing them increases the loss).

Every cell is scaled on its own because the size of input gradients differs by orders of magnitude between
models (and samples); compare shapes across cells, not brightness. Column titles are the model names,
wrapped to the cell width (with the mean edge alignment under them when scores are given); row labels give
the dataset index and true label.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

SCALES = ("absolute", "signed")
_CELL_INCHES = 1.7
_TITLE_POINTS = 9


def _column_title(name: str) -> str:
    """A column title wrapped to its cell's width (spaces, hyphens; long words split), never clipped."""
    chars = max(6, int(_CELL_INCHES * 72 / (0.65 * _TITLE_POINTS)))  # <= 0.65 em per character
    return "\n".join(textwrap.wrap(name, chars)) or name


def _cell(map_chw: Tensor, scale: str) -> tuple[np.ndarray, dict]:
    """One map ``(C, H, W)`` -> an ``(H, W)`` array and the imshow colour settings for ``scale``."""
    if scale == "absolute":
        image = map_chw.float().abs().sum(dim=0).cpu().numpy()  # (C, H, W) -> (H, W)
        top = float(image.max()) or 1.0
        return image, {"cmap": "inferno", "vmin": 0.0, "vmax": top}
    image = map_chw.float().sum(dim=0).cpu().numpy()  # (C, H, W) -> (H, W)
    bound = float(np.abs(image).max()) or 1.0
    return image, {"cmap": "RdBu_r", "vmin": -bound, "vmax": bound}


def _show_input(ax, image_chw: Tensor) -> None:
    image = image_chw.float().clamp(0, 1).cpu()
    if image.shape[0] == 1:
        ax.imshow(image[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
    else:
        ax.imshow(image.permute(1, 2, 0).numpy())  # (C, H, W) -> (H, W, C) for RGB display


def save_grid(
    path: str | Path,
    images: Tensor,
    labels: Tensor,
    maps: Mapping[str, Tensor],
    *,
    scale: str = "absolute",
    row_names: list[str] | None = None,
    scores: Mapping[str, float | None] | None = None,
) -> Path:
    """Write the grid PNG.

    Args:
        path: the PNG file to write.
        images: ``(N, C, H, W)`` inputs in [0, 1].
        labels: ``(N,)`` true labels.
        maps: model name -> ``(N, C, H, W)`` saliency maps, in column order.
        scale: ``"absolute"`` or ``"signed"`` (see the module docstring).
        row_names: optional per-row label prefix (e.g. the dataset index).
        scores: optional model name -> a number shown under its column title.

    Returns:
        The written path.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    fig = _grid_figure(images, labels, maps, scale, row_names, scores)
    path = Path(path)
    fig.savefig(path, format="png")
    return path


def _grid_figure(images, labels, maps, scale, row_names, scores) -> Figure:
    """The grid as a matplotlib ``Figure`` (arguments as :func:`save_grid`)."""
    rows, cols = images.shape[0], 1 + len(maps)
    title_lines = 1 + max(_column_title(name).count("\n") for name in maps) if maps else 1
    fig = Figure(figsize=(_CELL_INCHES * cols, _CELL_INCHES * rows + 0.4 + 0.2 * title_lines), dpi=100,
                 layout="constrained")  # constrained layout makes room for the (wrapped) titles and suptitle
    FigureCanvasAgg(fig)  # attaches an Agg canvas: no pyplot, no global figure state
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))  # (rows, cols)
    for i in range(rows):
        _show_input(axes[i, 0], images[i])
        prefix = f"{row_names[i]}  " if row_names else ""
        axes[i, 0].set_ylabel(f"{prefix}y={int(labels[i])}", fontsize=8)
        for j, model_maps in enumerate(maps.values(), start=1):
            image, colours = _cell(model_maps[i], scale)
            axes[i, j].imshow(image, **colours)
    axes[0, 0].set_title("input", fontsize=9)
    for j, name in enumerate(maps, start=1):
        value = scores.get(name) if scores else None
        subtitle = f"\nedge ρ={value:.2f}" if value is not None else ""
        axes[0, j].set_title(f"{_column_title(name)}{subtitle}", fontsize=_TITLE_POINTS)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"saliency ({scale} scale, each cell scaled to its own maximum)", fontsize=9)
    return fig
