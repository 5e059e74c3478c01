"""The table reproduction: its plan covers every cell of the paper's table, and the smoke budget runs end
to end on real MNIST, writes a complete report, and reuses finished runs."""

import json

import pytest

from robustmi.errors import ConfigError
from robustmi.experiments.paper_tables import COLUMNS, PAPER_TABLES, ROW_LABELS
from robustmi.experiments.table import (
    TableResult,
    ordering_checks,
    reproduce_table,
    table_plan,
    write_table_report,
)


def test_plan_fills_every_cell_once() -> None:
    runs, cells = table_plan()
    names = [r.name for r in runs]
    assert len(names) == len(set(names))
    filled = {(c.row, f"{c.head}_{kind}") for c in cells for kind in ("nat", "adv")}
    assert filled == {(row, col) for row in ROW_LABELS for col in COLUMNS}
    assert all(c.run in names for c in cells)
    order = {name: i for i, name in enumerate(names)}
    for spec in runs:  # encoders train before the probes that sit on them
        if spec.encoder_run is not None:
            assert order[spec.encoder_run] < order[spec.name]


def test_paper_tables_have_every_cell() -> None:
    for table in PAPER_TABLES.values():
        assert set(table) == set(ROW_LABELS)
        assert all(set(cols) == set(COLUMNS) for cols in table.values())
    assert PAPER_TABLES["mnist"]["worst-case-mi/robust"]["mlp_adv"] == (60.64, 1.82)


def test_ordering_checks() -> None:
    result = TableResult(
        "mnist-table",
        "mnist",
        "smoke",
        1,
        cells={
            "worst-case-mi/robust": {"mlp_adv": [30.0], "linear_adv": [5.0]},
            "mi/robust": {"mlp_adv": [10.0], "linear_adv": [8.0]},
            "mi/standard": {"mlp_adv": [0.5]},
        },
    )
    checks = ordering_checks(result)
    assert checks["worst-case-mi + robust MLP beats DIM + robust MLP (adv)"] is True
    assert checks["worst-case-mi + robust linear beats DIM + robust linear (adv)"] is False
    assert checks["DIM + standard MLP has near-zero adversarial accuracy (< 5 %)"] is True
    assert checks["worst-case-mi + standard MLP beats DIM + standard MLP (adv)"] is None


def test_report_of_a_table_without_paper_numbers(tmp_path) -> None:
    """Fashion-MNIST: the paper's numbers are not recorded; the report shows ours and says so."""
    cells = {row: {col: [50.0] for col in COLUMNS} for row in ROW_LABELS}
    write_table_report(TableResult("fashion-mnist-table", "fashion-mnist", "cpu", 1, cells=cells), tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    assert all(r["paper_mean"] is None and r["difference"] is None for r in data["cells"])
    report = (tmp_path / "report.md").read_text()
    assert "not recorded here" in report and "markers" not in report  # no paper markers to point to
    assert (tmp_path / "table_comparison.png").is_file()


def test_report_of_an_unfinished_table_is_strict_json(tmp_path) -> None:
    """A cell whose runs have not finished is null in results.json (JSON has no NaN) and '–' in the report."""
    cells = {row: {col: [50.0] for col in COLUMNS} for row in ROW_LABELS if row != "supervised/robust"}
    write_table_report(TableResult("mnist-table", "mnist", "cpu", 1, cells=cells), tmp_path)
    data = json.loads((tmp_path / "results.json").read_text(), parse_constant=pytest.fail)
    missing = [r for r in data["cells"] if r["row"] == "supervised/robust"]
    assert missing and all(r["mean"] is None and r["std"] is None and r["values"] == [] for r in missing)
    assert "–" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "table_comparison.png").is_file()


@pytest.mark.parametrize(
    ("table", "budget", "trials"),
    [("no-table", "smoke", 1), ("mnist-table", "huge", 1), ("mnist-table", "smoke", 0)],
)
def test_bad_arguments(tmp_path, table: str, budget: str, trials: int) -> None:
    with pytest.raises(ConfigError):
        reproduce_table(table, budget, tmp_path, trials=trials)


def test_missing_dataset_says_what_to_supply(tmp_path, monkeypatch) -> None:
    from robustmi.errors import DataError

    monkeypatch.setenv("ROBUSTMI_DATA", str(tmp_path))
    with pytest.raises(DataError, match="cifar"):
        reproduce_table("cifar10-table", "smoke", tmp_path / "out", data_dir=str(tmp_path))


def test_smoke_table_on_real_mnist(tmp_path, monkeypatch) -> None:
    out = tmp_path / "report"
    result = reproduce_table("mnist-table", "smoke", out, trials=1, log=lambda _: None)
    payload = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert len(payload["cells"]) == len(ROW_LABELS) * len(COLUMNS)
    for cell in payload["cells"]:
        assert len(cell["values"]) == 1 and 0.0 <= cell["values"][0] <= 100.0
        assert cell["paper_mean"] == PAPER_TABLES["mnist"][cell["row"]][cell["column"]][0]
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "NOT the paper's budget" in md and "Fully-supervised robust" in md
    assert (out / "report.html").is_file() and (out / "table_comparison.png").stat().st_size > 1000
    # a second call, naming the folder by a relative path, reuses every finished run: same numbers
    monkeypatch.chdir(tmp_path)
    again = reproduce_table("mnist-table", "smoke", "report", trials=1, log=lambda _: None)
    assert again.cells == result.cells
