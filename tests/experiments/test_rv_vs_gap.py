"""Spearman correlation of the Fig. 1 reproduction, checked against scipy."""

import math

import pytest

from robustmi.experiments.rv_vs_gap import ModelPoint, spearman, write_rv_report


def test_spearman_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    xs = [0.3, 0.1, 0.9, 0.5, 0.5, 0.2]
    ys = [10.0, 3.0, 80.0, 40.0, 20.0, 3.0]
    assert spearman(xs, ys) == pytest.approx(stats.spearmanr(xs, ys).statistic)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 2], [1, 2]))
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_report_flags_a_violated_ceiling(tmp_path) -> None:
    points = [
        ModelPoint("a", 0.99, 0.0, 1.2, 0.1, 1.1, 0.35),
        ModelPoint("b", 0.9, 0.5, 1.5, 0.9, 0.6, 0.69),
        ModelPoint("c", 0.95, 0.9, 1.5, 0.2, 1.3, 0.39),
    ]
    write_rv_report(points, tmp_path, "smoke", "mnist", 1.0)
    import json

    payload = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert payload["theorem34_holds"] is False  # model c beats its ceiling: the report must say so
    assert "NO" in (tmp_path / "report.md").read_text(encoding="utf-8")
    assert (tmp_path / "fig1_rv_vs_gap.png").is_file() and (
        tmp_path / "fig2_worst_mi_vs_accuracy.png"
    ).is_file()


def test_report_of_unmeasured_models_says_incomplete(tmp_path) -> None:
    import json

    points = [ModelPoint(n, 0.9, 0.1 * i, 1.0, 0.5, 0.5 + i, 0.5) for i, n in enumerate("abc")]
    write_rv_report(points, tmp_path, "cpu", "mnist", 1.0, missing=["d"])
    payload = json.loads((tmp_path / "results.json").read_text(), parse_constant=pytest.fail)  # strict JSON
    assert payload["missing_models"] == ["d"] and payload["spearman_rv_gap_supervised"] is None  # none here
    assert payload["spearman_rv_gap"] == pytest.approx(-1.0)  # RV rises as the gap falls here
    assert "**Incomplete**: 1 planned model(s) not measured yet (d)" in (tmp_path / "report.md").read_text()
    write_rv_report(points, tmp_path, "cpu", "mnist", 1.0)
    assert "Incomplete" not in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_smoke_rv_vs_gap_on_real_mnist(tmp_path) -> None:
    import json

    from robustmi.experiments.rv_vs_gap import reproduce_rv_vs_gap

    points = reproduce_rv_vs_gap("smoke", tmp_path, log=lambda _: None)
    assert len(points) >= 6
    payload = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert payload["theorem34_holds"] == all(p.adversarial_accuracy <= p.ceiling + 1e-9 for p in points)
    assert (tmp_path / "fig1_rv_vs_gap.png").is_file() and (tmp_path / "report.html").is_file()
