"""``robustmi flags [NAME]``: what a sanity flag in results.json means and what to do about it.

The explanations are docs/flags.md, shipped inside the package (``robustmi/flags.md``), so an installed wheel
explains its own flags without the repository.
"""

from __future__ import annotations

import re
from importlib import resources

import typer

from robustmi.errors import ConfigError


def flag_docs() -> dict[str, str]:
    """Flag name -> its section of flags.md (the ``## name`` heading's text), in the file's order."""
    text = resources.files("robustmi").joinpath("flags.md").read_text(encoding="utf-8")
    parts = re.split(r"^## +(\S+)[ \t]*$", text, flags=re.MULTILINE)  # [intro, name1, body1, name2, ...]
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def flags_command(
    name: str = typer.Argument(None, help="Flag name from results.json (zero_gradients, ...); none: list."),
) -> None:
    """Explain a sanity flag (what it checks, what it means, what to do); without NAME, list the flags."""
    docs = flag_docs()
    if name is None:
        typer.echo("Sanity flags (robustmi flags NAME explains one):")
        for flag in docs:
            typer.echo(f"  {flag}")
        return
    if name not in docs:
        raise ConfigError(
            f"no explanation of flag {name!r} in robustmi's flag docs; documented flags: {', '.join(docs)} "
            "(flags of robustmi.vulnerability are explained in that module's docstring)"
        )
    typer.echo(f"{name}\n\n{docs[name]}")


def register(app: typer.Typer) -> None:
    """Add ``flags`` to the robustmi app."""
    app.command("flags")(flags_command)
