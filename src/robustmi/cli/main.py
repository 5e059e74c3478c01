"""The ``robustmi`` typer app and the error boundary every command shares.

Commands live in sibling modules named ``*_cmd.py`` (``data_cmd.py``, ``train_cmd.py``, ...); each defines
``register(app: typer.Typer) -> None`` and is found automatically. Command modules import torch, matplotlib
and the library inside their command functions, so ``robustmi --help`` and ``--version`` answer in a fraction
of a second (tests/cli/test_startup.py checks that they import none of them).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer
from typer.exceptions import TyperException

from robustmi.errors import RobustMIError

app = typer.Typer(
    name="robustmi",
    help="Measure and train adversarially robust representations (worst-case mutual information).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


_state = {"verbose": False}


def _show_version(value: bool) -> None:
    if value:
        from robustmi import __version__

        typer.echo(f"robustmi {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", help="Show tracebacks for robustmi errors."),
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    _state["verbose"] = verbose


def _register_commands() -> None:
    if getattr(app, "_robustmi_registered", False):
        return
    package = importlib.import_module("robustmi.cli")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.endswith("_cmd"):
            importlib.import_module(f"robustmi.cli.{info.name}").register(app)
    app._robustmi_registered = True  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; a ``RobustMIError`` becomes one line on stderr and exit code 2.

    Usage errors (unknown option, bad value) also exit 2 with click's message on one line; any other exception
    is a bug in robustmi and propagates with its traceback.
    """
    _register_commands()
    verbose = "--verbose" in (argv if argv is not None else sys.argv[1:])
    try:
        code = app(args=argv, standalone_mode=False, prog_name="robustmi")
    except RobustMIError as error:
        if verbose:
            raise
        print(f"robustmi: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except typer.Exit as done:
        raise SystemExit(done.exit_code) from None
    except typer.Abort:
        print("robustmi: aborted", file=sys.stderr)
        raise SystemExit(130) from None
    except TyperException as error:  # usage errors (unknown option, bad value): one line, like ours
        ctx = getattr(error, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = " ".join(error.format_message().split())
        print(f"robustmi: error: {message}{where}", file=sys.stderr)
        raise SystemExit(2 if error.exit_code in (1, 2) else error.exit_code) from None
    if isinstance(code, int) and not isinstance(code, bool) and code != 0:
        raise SystemExit(code)  # an explicit typer.Exit(code) returned in non-standalone mode
