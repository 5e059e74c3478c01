"""Figures keep every label readable whatever the run names: no two texts overlap, none leaves the figure."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from matplotlib.text import Text

from robustmi.experiments import plots
from robustmi.saliency import plot as saliency_plot

LONG_NAMES = [
    "Fully-supervised standard",
    "Fully-supervised robust",
    "Ours (worst-case MI) + standard head (E.S.)",
    "supervised-baseline-h-standard-seed-1234",
    "averyveryverylongrunnamewithoutanyspacesorhyphensatall",
    "x",
]


def _texts_apart(fig) -> None:
    """Every visible, non-empty text lies inside the figure, at least 2 px away from every other one."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    page = fig.bbox
    for text, box in boxes:
        assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1, f"{text!r} is clipped at the sides"
        assert page.y0 - 1 <= box.y0 and box.y1 <= page.y1 + 1, f"{text!r} is clipped at the top/bottom"
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not box_a.padded(2).overlaps(box_b), f"{a!r} overlaps (or touches) {b!r}"


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list:
    figures: list = []

    def keep(fig, path):
        figures.append(fig)
        return Path(path)

    monkeypatch.setattr(plots, "_save", lambda fig, path: keep(fig, path))
    return figures


@pytest.mark.parametrize("groups", [2, 6, 12])
def test_table_comparison_labels_never_overlap(captured, groups: int) -> None:
    labels = [f"{LONG_NAMES[i % len(LONG_NAMES)]} {i}" for i in range(groups)]
    rows = [{"label": lab, "column": col, "mean": 10.0 + i, "paper_mean": 20.0}
            for i, lab in enumerate(labels) for col in ("mlp_adv", "linear_adv")]
    plots.plot_table_comparison(rows, "unused.png", "mnist-table (cpu budget) vs paper")
    fig = captured[0]
    fig.tight_layout()  # what _save does before writing
    _texts_apart(fig)
    assert fig.get_size_inches()[0] >= 1.4 * groups  # the figure grows with the number of groups


def test_bar_groups_never_overlap(captured) -> None:
    groups = {name: {"natural": 90.0, "PGD-10": 10.0} for name in LONG_NAMES}
    plots.plot_bars(groups, "unused.png", ylabel="test accuracy (%)", title="heads")
    captured[0].tight_layout()
    _texts_apart(captured[0])


@pytest.mark.parametrize("models", [2, 5])
def test_saliency_column_titles_wrap_instead_of_clipping(models: int) -> None:
    images, labels = torch.rand(3, 1, 28, 28), torch.tensor([1, 7, 3])
    maps = {LONG_NAMES[i]: torch.randn(3, 1, 28, 28) for i in range(models)}
    scores = {name: 0.5 for name in maps}
    fig = saliency_plot._grid_figure(images, labels, maps, "absolute", ["#1", "#2", "#3"], scores)
    _texts_apart(fig)


def test_saliency_grid_is_written(tmp_path: Path) -> None:
    maps = {name: torch.randn(2, 1, 28, 28) for name in LONG_NAMES[:3]}
    images, labels = torch.rand(2, 1, 28, 28), torch.tensor([0, 1])
    path = saliency_plot.save_grid(tmp_path / "grid.png", images, labels, maps)
    assert path.stat().st_size > 0
