"""The README's option table says exactly which command takes which shared option."""

from pathlib import Path

import typer

from robustmi.cli.main import _register_commands, app

DOC = Path(__file__).resolve().parents[2] / "README.md"


def _takes(command, option: str) -> bool:
    if option == "key=value":
        return any(p.param_type_name == "argument" and p.name == "overrides" for p in command.params)
    return any(option in p.opts for p in command.params)


def test_option_table_matches_the_cli() -> None:
    _register_commands()
    commands = typer.main.get_command(app).commands
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| option |"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    rows = [line.split("|")[1:-1] for line in lines[start:end] if line.startswith("| ")]
    header, body = rows[0], rows[1:]
    names = [cell.strip().strip("`") for cell in header[2:]]
    assert body and names
    for row in body:
        option = row[0].strip().strip("`")
        for name, cell in zip(names, row[2:], strict=True):
            documented = cell.strip() == "✓"
            assert documented == _takes(commands[name], option), f"README.md: {name} {option}"
