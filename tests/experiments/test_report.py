"""The report document model and the summary statistics every report uses."""

import math

import pytest

from robustmi.experiments.report import Report, fmt_mean_std, mean_std


def test_mean_std_matches_sample_statistics() -> None:
    mean, std = mean_std([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3)
    assert std == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2))
    assert mean_std([5.0]) == (5.0, 0.0)
    assert all(math.isnan(v) for v in mean_std([]))
    assert mean_std([1.0, float("nan"), 3.0]) == (2.0, pytest.approx(math.sqrt(2)))


def test_fmt_mean_std() -> None:
    assert fmt_mean_std(12.345, 0.5) == "12.35 ± 0.50"
    assert fmt_mean_std(math.nan, 0.0) == "–"


def test_report_writes_markdown_and_escaped_html(tmp_path) -> None:
    report = Report("Title <1>")
    report.heading("Section").text("a < b & c").bullets(["one", "two"])
    report.table(["col a", "col b"], [[1, "x|y"], [2.5, "<z>"]]).image("plot.png", "a plot")
    md_path, html_path = report.write(tmp_path / "out")
    md = md_path.read_text(encoding="utf-8")
    assert md.startswith("# Title <1>")
    assert "| col a | col b |" in md and "|---|---|" in md and "| 2.5 | <z> |" in md
    assert "![a plot](plot.png)" in md and "- two" in md
    page = html_path.read_text(encoding="utf-8")
    assert "<h1>Title &lt;1&gt;</h1>" in page and "a &lt; b &amp; c" in page
    assert "<td>&lt;z&gt;</td>" in page and '<img src="plot.png"' in page
