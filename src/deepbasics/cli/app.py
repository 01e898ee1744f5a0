"""The root Typer application and the console-script entry point.

Bad arguments print Typer's short usage message and exit with status 2; an expected failure inside a
command (a ``ValueError``/``TypeError`` from our argument checks, a missing file) prints one red line
and exits with status 1. Tracebacks are reserved for bugs.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

app = typer.Typer(
    name="deepbasics",
    help="Deep-learning fundamentals as running evidence: the FAQ's answers, measured and explained.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# Command modules register themselves on ``app`` when imported; the order here is the order in --help.
_COMMAND_MODULES = ("deepbasics.cli.faq_cmd", "deepbasics.cli.lab_cmd", "deepbasics.cli.doctor_cmd")

err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from .._version import __version__

        typer.echo(f"deepbasics {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Deep-learning fundamentals as running evidence: the FAQ's answers, measured and explained."""


def _load_commands() -> None:
    for name in _COMMAND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a command whose module is not built yet is simply absent
            if exc.name != name:
                raise


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and turn expected errors into a one-line message."""
    _load_commands()
    try:
        app(args=argv, prog_name="deepbasics", standalone_mode=True)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(1)
