"""``deepbasics doctor``: watch an unmodified training script, or run a built-in broken demo and repair it.

- ``deepbasics doctor SCRIPT.py [-- ARGS...]``: :func:`deepbasics.doctor.script.run_script`; prints the findings
  (also when the script raises or its loss turns non-finite), writes ``doctor.json`` (``--out``), and exits with
  :data:`deepbasics.doctor.script.EXIT_CODES` (0 ok, 1 the script raised, 3 non-finite loss, 4 error findings).
- ``--html [PATH]`` (with either): also write the findings as one self-contained HTML page
  (:mod:`deepbasics.doctor.html`) -- by default ``doctor.html`` next to ``doctor.json`` (``--out x/run.json``:
  ``x/run.html``). The page is drawn after the run from what it recorded: the same hooks, no cost per step.
- ``deepbasics doctor --demo NAME``: a fault-zoo setup, diagnosed, then repaired; prints before and after.
- ``deepbasics doctor --list-demos``: the zoo's setups.
- ``deepbasics doctor --codes``: the finding codes, as a Markdown table derived from the doctor's code table.

Under ``torchrun`` (``torchrun --nproc_per_node N -m deepbasics doctor train.py``) rank 0 prints the findings of
every rank and writes ``doctor.json`` once (:meth:`deepbasics.doctor.script.ScriptResult.deliver` knows how the
ranks agree on that; this command does not).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperCommand

from deepbasics.cli.app import app


class _DoctorCommand(TyperCommand):
    """The doctor command, whose ``--html`` takes an optional PATH (click options need a value or none).

    Before parsing, a bare ``--html`` -- last, or followed by another option, by ``--`` or by the script (a
    ``.py`` file: a report is never written over one) -- gets the empty value that stands for the default path.
    Only the doctor's own options are looked at: everything after ``--`` belongs to the script.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        args = list(args)
        for i, token in enumerate(args):
            if token == "--":
                break
            if token == "--html":
                following = args[i + 1] if i + 1 < len(args) else None
                if following is None or following.startswith("-") or following.lower().endswith(".py"):
                    args.insert(i + 1, "")
                break
        return super().parse_args(ctx, args)


def _html_target(html: str, out: Path | None) -> Path:
    """Where ``--html`` writes: its PATH, else next to the JSON output (``doctor.html`` beside ``doctor.json``)."""
    from deepbasics.doctor.html import html_path

    if html:
        return html_path(html)
    return html_path((out if out is not None else Path("doctor.json")).with_suffix(".html"))


def _write_html(result: Any, target: Path, title: str | None = None) -> None:
    """Write the HTML page; a folder that cannot be written is one line on stderr, not a traceback."""
    try:
        typer.echo(f"wrote {result.to_html(target, title=title)}")
    except OSError as exc:
        typer.echo(f"error: could not write the HTML report to {target}: {exc}", err=True)


def _list_demos(console: Console) -> None:
    from rich.table import Table

    from deepbasics.doctor import zoo

    table = Table(title="deepbasics doctor --demo NAME", show_lines=False)
    table.add_column("name", style="bold cyan", no_wrap=True)
    table.add_column("arch", style="green")
    table.add_column("expected findings", style="yellow")
    table.add_column("what is wrong")
    for s in zoo.setups():
        table.add_row(s.name, s.architecture, ", ".join(sorted(s.expected)) or "(healthy)", s.description)
    console.print(table)


_LIST_HINT = "List them with `deepbasics doctor --list-demos`."


def _demo(name: str, out: Path | None, seed: int, console: Console, html: Path | None = None) -> int:
    from deepbasics.doctor import zoo
    from deepbasics.doctor.repairing import repair_case

    names = [s.name for s in zoo.setups()]
    if name not in names:  # the user is at a shell: point to the command that lists them, not to a Python call
        import difflib

        from deepbasics._checks import fail

        close = difflib.get_close_matches(name, names, n=3)
        hint = f"Did you mean {', '.join(close)}? " if close else ""
        raise fail(ValueError, "--demo", "the name of a built-in demo", repr(name), hint + _LIST_HINT)
    setup = zoo.get(name)
    case = setup.build(seed)
    console.print(f"[bold]demo {setup.name}[/] ({setup.architecture}): {setup.description}")
    console.print(f"expected findings: {', '.join(sorted(setup.expected)) or 'none (a healthy setup)'}")

    def progress(attempt: object) -> None:
        console.print(f"  tried {attempt.fix} for {attempt.target}: {attempt.status}"  # type: ignore[attr-defined]
                      + (f" ({attempt.reason})" if attempt.reason else ""))  # type: ignore[attr-defined]  # fmt: skip

    from deepbasics.doctor.repairing import diagnose_case

    before = diagnose_case(case, seed)
    typer.echo(before.summary())
    title = f"demo {setup.name}: {setup.description}"
    if not before.findings:
        console.print("nothing to repair.")
        if html is not None:
            _write_html(before, html, title)
        return 0
    console.print("[bold]repairing[/] (each fix on a copy, retrained for the same budget and diagnosed again) ...")
    result = repair_case(case, report=before, seed=seed, on_attempt=progress)
    typer.echo(result.summary())
    if out is not None:
        import json

        from deepbasics._files import atomic_write

        text = json.dumps(result.to_dict(), indent=2, default=str) + "\n"
        console.print(f"wrote {atomic_write(out, lambda f: f.write(text.encode('utf-8')))}")
    if html is not None:
        _write_html(result, html, title)
    return 0 if result.success else 4


@app.command(
    "doctor",
    cls=_DoctorCommand,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def doctor(
    ctx: typer.Context,
    script: Annotated[
        Path | None, typer.Argument(help="The training script to watch (unmodified, in-process).")
    ] = None,
    demo: Annotated[str | None, typer.Option("--demo", help="Run a built-in broken setup and repair it.")] = None,
    list_demos: Annotated[bool, typer.Option("--list-demos", help="List the built-in setups and exit.")] = False,
    codes: Annotated[bool, typer.Option("--codes", help="Print the finding codes (Markdown) and exit.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="JSON output (default: doctor.json for a script).")] = None,
    keep_going: Annotated[bool, typer.Option("--keep-going", help="Do not stop at a non-finite loss.")] = False,
    html: Annotated[
        str | None,
        typer.Option(
            "--html",
            metavar="[PATH]",
            help="Also write an offline HTML report: loss curve, per-layer heatmaps, findings "
            "(default: doctor.html next to the JSON output).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the demo setups.")] = 0,
) -> None:
    """Watch a training script (``deepbasics doctor train.py -- --epochs 3``) or run a broken demo and repair it."""
    console = Console()
    if codes:
        from deepbasics.doctor.codes import markdown

        typer.echo(markdown())
        return
    if list_demos:
        _list_demos(console)
        return
    if demo is not None:
        if script is not None:
            raise typer.BadParameter("give either SCRIPT or --demo NAME, not both")
        target = _html_target(html, out) if html is not None else None
        raise typer.Exit(_demo(demo, out, seed, console, target))
    if script is None:
        raise typer.BadParameter("missing SCRIPT (or --demo NAME / --list-demos)")
    if not script.is_file():
        raise FileNotFoundError(f"SCRIPT: expected an existing Python file, got {script}. Check the path.")
    from deepbasics.doctor.script import run_script

    args = list(ctx.args)
    if args and args[0] == "--":
        args = args[1:]
    out_path = out if out is not None else Path("doctor.json")
    target = _html_target(html, out_path) if html is not None else None  # a bad PATH fails before the run
    result = run_script(script, args, keep_going=keep_going)
    code = result.deliver(out_path, typer.echo, lambda text: typer.echo(text, err=True))
    if target is not None and result.rank == 0:  # drawn after the run, from its records: no cost per step
        _write_html(result, target)
    raise typer.Exit(code)
