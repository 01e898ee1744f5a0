"""``deepbasics doctor``: watch an unmodified training script, or run a built-in broken demo and repair it.

- ``deepbasics doctor SCRIPT.py [-- ARGS...]``: :func:`deepbasics.doctor.script.run_script`; prints the findings
  (also when the script raises or its loss turns non-finite), writes ``doctor.json`` (``--out``), and exits with
  :data:`deepbasics.doctor.script.EXIT_CODES` (0 ok, 1 the script raised, 3 non-finite loss, 4 error findings).
- ``deepbasics doctor --demo NAME``: a fault-zoo setup, diagnosed, then repaired; prints before and after.
- ``deepbasics doctor --list-demos``: the zoo's setups.
- ``deepbasics doctor --codes``: the finding codes, as a Markdown table derived from the doctor's code table.

Under ``torchrun`` (``torchrun --nproc_per_node N -m deepbasics doctor train.py``) rank 0 prints the findings of
every rank and writes ``doctor.json`` once (:meth:`deepbasics.doctor.script.ScriptResult.deliver` knows how the
ranks agree on that; this command does not).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from deepbasics.cli.app import app


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


def _demo(name: str, out: Path | None, seed: int, console: Console) -> int:
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
    if not before.findings:
        console.print("nothing to repair.")
        return 0
    console.print("[bold]repairing[/] (each fix on a copy, retrained for the same budget and diagnosed again) ...")
    result = repair_case(case, report=before, seed=seed, on_attempt=progress)
    typer.echo(result.summary())
    if out is not None:
        import json

        from deepbasics._files import atomic_write

        text = json.dumps(result.to_dict(), indent=2, default=str) + "\n"
        console.print(f"wrote {atomic_write(out, lambda f: f.write(text.encode('utf-8')))}")
    return 0 if result.success else 4


@app.command(
    "doctor",
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
        raise typer.Exit(_demo(demo, out, seed, console))
    if script is None:
        raise typer.BadParameter("missing SCRIPT (or --demo NAME / --list-demos)")
    if not script.is_file():
        raise FileNotFoundError(f"SCRIPT: expected an existing Python file, got {script}. Check the path.")
    from deepbasics.doctor.script import run_script

    args = list(ctx.args)
    if args and args[0] == "--":
        args = args[1:]
    result = run_script(script, args, keep_going=keep_going)
    out_path = out if out is not None else Path("doctor.json")
    raise typer.Exit(result.deliver(out_path, typer.echo, lambda text: typer.echo(text, err=True)))
