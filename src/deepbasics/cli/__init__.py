"""The command line: ``deepbasics faq``, ``deepbasics lab``, ``deepbasics doctor``.

Each command lives in its own module and registers itself on the one Typer ``app`` defined in
:mod:`deepbasics.cli.app`; this package only presents results computed by the layers below it.
"""

from deepbasics.cli.app import app, main

__all__ = ["app", "main"]
