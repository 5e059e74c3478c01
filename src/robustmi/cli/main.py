"""The ``robustmi`` typer app and the error boundary every command shares.

Commands live in sibling modules (``data_cmd.py``, ``train_cmd.py``, ...) and register themselves on ``app``
through ``register(app)``; ``_COMMAND_MODULES`` lists them.
"""

from __future__ import annotations

import importlib
import sys

import typer

from robustmi.errors import RobustMIError

app = typer.Typer(
    name="robustmi",
    help="Measure and train adversarially robust representations (worst-case mutual information).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Each module defines ``register(app: typer.Typer) -> None``.
_COMMAND_MODULES: tuple[str, ...] = ("robustmi.cli.data_cmd",)

_state = {"verbose": False}


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", help="Show tracebacks for robustmi errors.")) -> None:
    _state["verbose"] = verbose


def _register_commands() -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; a ``RobustMIError`` becomes one line on stderr and exit code 2."""
    _register_commands()
    try:
        app(args=argv, standalone_mode=False)
    except RobustMIError as error:
        if _state["verbose"] or "--verbose" in (argv if argv is not None else sys.argv):
            raise
        print(f"robustmi: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except typer.Exit as done:
        raise SystemExit(done.exit_code) from None
    except SystemExit:
        raise
    except Exception as error:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(error, click.exceptions.ClickException):
            error.show()
            raise SystemExit(2) from None
        if isinstance(error, click.exceptions.Abort):
            print("robustmi: aborted", file=sys.stderr)
            raise SystemExit(130) from None
        raise
