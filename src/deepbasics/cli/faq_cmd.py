"""``deepbasics faq``: the FAQ's questions and where deepbasics answers each.

The lab column comes from the lab's registry (:func:`deepbasics.lab.coverage`): the claims that an experiment
measures, never a hand-kept list.
"""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from deepbasics.cli.app import app
from deepbasics.faq import QUESTIONS


def _cell(items: tuple[str, ...]) -> str:
    return "\n".join(items) if items else "[dim]-[/]"


@app.command("faq")
def faq(
    as_json: bool = typer.Option(False, "--json", help="Print the coverage table as JSON instead of a table."),
    claims: bool = typer.Option(False, "--claims", help="Also list every claim under its question."),
) -> None:
    """List the FAQ's questions and, for each, the modules, lab claim IDs and doctor codes that cover it."""
    from deepbasics.lab import coverage

    lab = coverage()
    if as_json:
        rows = [
            {
                "id": q.id,
                "title": q.title,
                "claims": dict(q.claims),
                "modules": list(q.modules),
                "lab": lab.get(q.id, []),
                "doctor": list(q.doctor),
                "beyond_faq": q.beyond_faq,
            }
            for q in QUESTIONS
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="deepbasics: the FAQ and where each answer lives", show_lines=True)
    table.add_column("Q", style="bold cyan", no_wrap=True)
    table.add_column("question")
    table.add_column("modules", style="green")
    table.add_column("lab claims", style="magenta")
    table.add_column("doctor codes", style="yellow")
    for q in QUESTIONS:
        title = q.title
        if claims and q.claims:
            title += "\n" + "\n".join(f"[dim]{cid}[/] {text}" for cid, text in q.claims.items())
        table.add_row(q.id, title, _cell(q.modules), _cell(tuple(lab.get(q.id, ()))), _cell(q.doctor))
    Console().print(table)
