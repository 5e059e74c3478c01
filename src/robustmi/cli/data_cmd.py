"""``robustmi data check``: which datasets load offline, from where, and how to get the missing ones."""

from __future__ import annotations

import json
from pathlib import Path

import typer

data_app = typer.Typer(help="Inspect the offline datasets.", no_args_is_help=True)


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _print_table(entries: list[dict]) -> None:
    """Plain columns; the last one (folder or install hint) unwrapped, so paths copy and paste whole."""
    rows = [("dataset", "available", "train", "test", "path / how to get it")]
    for entry in entries:
        where = (entry["path"] or "(generated, no files)") if entry["available"] else entry["hint"]
        available = "yes" if entry["available"] else "no"
        rows.append((entry["name"], available, _count(entry["train"]), _count(entry["test"]), where))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for *columns, where in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + "  " + where)


@data_app.command("check")
def check(
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Folder searched before $ROBUSTMI_DATA and the built-in offline sources."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
) -> None:
    """Load and validate every dataset; print availability, sample counts, folder and install hints."""
    from robustmi.data import check_datasets  # torch: imported by the command, not by `robustmi --help`

    entries = check_datasets(data_dir)
    if as_json:
        typer.echo(json.dumps(entries, indent=2))
    else:
        _print_table(entries)


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to the robustmi app."""
    app.add_typer(data_app, name="data")
