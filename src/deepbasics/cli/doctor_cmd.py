"""``deepbasics doctor``: watch an unmodified training script, or run a built-in broken demo and repair it.

- ``deepbasics doctor SCRIPT.py [-- ARGS...]``: :func:`deepbasics.doctor.script.run_script`; prints the findings
  (also when the script raises or its loss turns non-finite), writes ``doctor.json`` (``--out``), and exits with
  :data:`deepbasics.doctor.script.EXIT_CODES` (0 ok, 1 the script raised, 3 non-finite loss, 4 error findings).
- ``deepbasics doctor --demo NAME``: a fault-zoo setup, diagnosed, then repaired; prints before and after.
- ``deepbasics doctor --list-demos``: the zoo's setups.

Under ``torchrun`` (``torchrun --nproc_per_node N -m deepbasics doctor train.py``) rank 0 prints the findings of
every rank and writes ``doctor.json``, once; the other ranks print only their own traceback if their script raised.
A rank about to exit with an error first waits (at most ``DEEPBASICS_DOCTOR_TIMEOUT`` s) for rank 0 to finish
writing, because ``torchrun`` stops every rank when one fails; if rank 0 never reports, it prints its own findings.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from deepbasics.cli.app import app

if TYPE_CHECKING:
    from deepbasics.doctor.script import ScriptResult


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

        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
        console.print(f"wrote {out}")
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
    out: Annotated[Path | None, typer.Option("--out", help="JSON output (default: doctor.json for a script).")] = None,
    keep_going: Annotated[bool, typer.Option("--keep-going", help="Do not stop at a non-finite loss.")] = False,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the demo setups.")] = 0,
) -> None:
    """Watch a training script (``deepbasics doctor train.py -- --epochs 3``) or run a broken demo and repair it."""
    console = Console()
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
    if result.rank != 0:
        _other_rank(result)
        raise typer.Exit(result.exit_code)
    typer.echo(result.summary())  # already rendered to plain text at its own width
    if result.error_traceback:
        typer.echo(result.error_traceback, err=True)
    path = result.write_json(out if out is not None else Path("doctor.json"))
    console.print(f"wrote {path}")
    if result.world_size > 1:
        from deepbasics.doctor.distributed import signal_done

        signal_done("report")
    raise typer.Exit(result.exit_code)


def _other_rank(result: ScriptResult) -> None:
    """A rank other than 0 (module docstring): its traceback, and its own findings only if rank 0 does not report."""
    from deepbasics.doctor.distributed import wait_done

    if result.error_traceback:
        typer.echo(f"[rank {result.rank}] " + result.error_traceback, err=True)
    if result.exit_code != 0 and not wait_done("report"):
        typer.echo(f"[rank {result.rank}] rank 0 did not write the report; the findings of rank {result.rank}:")
        typer.echo(result.summary())
