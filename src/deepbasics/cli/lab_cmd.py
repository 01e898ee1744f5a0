"""``deepbasics lab``: run the FAQ's experiments and write the report; ``deepbasics lab list``: show them.

The command only presents what :func:`deepbasics.lab.run` computes. Exit status: 0 when every selected
experiment ran (whatever the verdicts: a claim that does not hold is a result), 1 when an argument is bad
or an experiment ended in ``error``, 2 for usage errors (unknown option).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from deepbasics.cli.app import app

lab_app = typer.Typer(
    name="lab",
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Measure the FAQ's claims: each experiment -> a verdict against a rule declared in advance, plots, a report.",
)
app.add_typer(lab_app, name="lab")

_STYLE = {"holds": "bold green", "does_not_hold": "bold red", "inconclusive": "bold yellow", "error": "bold magenta"}


def _why(r) -> str:
    """The key number in words, then the rule's reason; with tasks, one line per task after the scoped sentence."""
    from deepbasics.lab.report import LABELS

    if not r.tasks:
        return f"{r.key_number}\n[dim]{r.reason}[/]" if r.key_number else r.reason
    lines = [r.sentence]
    for t in r.tasks:
        verdict = f"[{_STYLE[t.verdict.value]}]{LABELS[t.verdict.value]}[/]"
        lines.append(f"{t.label}: {verdict}, {t.key_number.partition(': ')[2] or t.reason}")
    return "\n".join(lines)


def _summary_table(results: list) -> Table:
    from deepbasics.lab.report import fmt

    table = Table(title="deepbasics lab: verdicts", show_lines=False)
    for name, style in (("claim", "bold cyan"), ("question", ""), ("verdict", ""), ("why", ""), ("time", "dim")):
        table.add_column(name, style=style, overflow="fold")
    previous = None
    for r in results:
        question = f"{r.question_id} {r.question}" if r.question_id != previous else ""
        previous = r.question_id
        verdict = f"[{_STYLE[r.verdict.value]}]{r.label}[/]"
        time = f"{fmt(r.seconds)} s" + (" (cached)" if r.cached else "")
        table.add_row(r.id, question, verdict, _why(r), time)
    return table


@lab_app.callback()
def lab(
    ctx: typer.Context,
    quick: Annotated[bool, typer.Option("--quick", help="Small parameters: the whole lab in minutes.")] = False,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Claim IDs or prefixes (Q3 = Q3.*, not Q30); comma-separated or repeated."),
    ] = None,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", min=1, help="Worker processes (default: CPU cores).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder (index.html, results.json).")] = Path(
        "lab-report"
    ),
    seeds: Annotated[
        int | None, typer.Option("--seeds", min=1, help="Seeds per experiment (default: its own).")
    ] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore cached results and run everything again.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Run the lab (all experiments, or those --only selects) and write OUT/index.html, report.md, results.json."""
    if ctx.invoked_subcommand is not None:
        return
    from deepbasics import lab as lab_pkg

    out = out.expanduser().resolve()
    results = lab_pkg.run(only=only, quick=quick, out=out, jobs=jobs, seeds=seeds, progress=progress, fresh=fresh)
    console = Console()
    if not results:
        console.print("[yellow]No experiment is registered yet.[/]")
        return
    console.print(_summary_table(results))
    console.print(f"Report: [bold]{out / 'index.html'}[/]")
    errors = sorted({r.experiment for r in results if r.verdict.value == "error"})
    if errors:
        Console(stderr=True).print(
            f"[bold red]error:[/] {len(errors)} experiment(s) failed: {', '.join(errors)}; "
            f"tracebacks in the report and in {out / '.cache'}/<id>.log"
        )
        raise typer.Exit(1)


def _rule_text(exp, cid: str) -> str:
    """The rule, the version it was declared in, its earlier forms, and the tasks it judges."""
    rule = exp.rules[cid]
    text = rule.describe() + (f" [dim](since {rule.since})[/]" if rule.since else "")
    for revision in rule.history:
        text += f"\n[dim]changed in {revision.changed_in}; was: {revision.describe()}[/]"
    if exp.tasks:
        text += "\n[dim]on tasks: " + ", ".join(t.name + ("*" if t.applies else "") for t in exp.tasks) + "[/]"
    return text


@lab_app.command("list")
def list_experiments(
    all_claims: Annotated[
        bool, typer.Option("--all", help="Also list the FAQ's claims that have no experiment yet.")
    ] = False,
) -> None:
    """List the registered experiments' claims: ID, question, claim and the rule that will judge it."""
    from deepbasics.faq import QUESTIONS
    from deepbasics.lab import experiments

    covered = {cid: exp for exp in experiments() for cid in exp.ids}
    table = Table(
        title="deepbasics lab: claims and their rules",
        caption="tasks marked * are those where the claim is meant to apply",
        show_lines=True,
    )
    for name, style in (("claim", "bold cyan"), ("question", ""), ("claim text", ""), ("rule", "green")):
        table.add_column(name, style=style, overflow="fold")
    for q in QUESTIONS:
        for cid, text in q.claims.items():
            exp = covered.get(cid)
            if exp is None and not all_claims:
                continue
            rule = _rule_text(exp, cid) if exp is not None else "[dim]no experiment yet[/]"
            table.add_row(cid, f"{q.id} {q.title}", text, rule)
    Console().print(table)
    if not covered:
        Console().print("[yellow]No experiment is registered yet.[/] Use --all to see every FAQ claim.")
