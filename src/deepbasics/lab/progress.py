"""How a lab run shows its progress: a rich bar in a terminal, one plain line per experiment otherwise.

A person at a terminal wants a live bar; a log file, ``| tee`` or CI wants lines that survive being piped:
which claims finished, with which verdict, how long they took and how far the run has come::

    lab: 49 experiments to run, 0 reused from lab-report/.cache
    lab: [ 1/49] Q2.a holds (3.1 s)
    lab: [ 2/49] Q3.3.a holds, Q3.3.b inconclusive (12.4 s)
    lab: [ 3/49] CNN.a holds on MNIST-1D [digits: does not hold, mnist1d: holds] (95.0 s)
    ...
    lab: done in 401.2 s: 66 claims, 48 holds, 9 does not hold, 9 inconclusive, 0 error

The mode follows standard output: ``"bar"`` when it is a terminal, ``"lines"`` when it is not, ``"off"`` when
the caller asked for no progress. The bar goes to standard error (the summary table replaces it); the lines
go to standard output, flushed one by one, so that they interleave correctly with everything else printed.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any, TextIO

from .result import Result
from .rules import Verdict

__all__ = ["Progress", "progress_mode"]

MODES = ("bar", "lines", "off")


def progress_mode(enabled: bool, stream: TextIO | None = None) -> str:
    """``"off"`` when disabled, else ``"bar"`` if ``stream`` (default: stdout) is a terminal, else ``"lines"``."""
    if not enabled:
        return "off"
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "bar" if callable(isatty) and isatty() else "lines"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _verdict(r: Result) -> str:
    """``"Q2.a holds"``; with tasks the per-task verdicts follow: ``"CNN.a holds on MNIST-1D [digits: ...]"``."""
    if not r.tasks:
        return f"{r.id} {r.label}"
    per_task = ", ".join(f"{t.name}: {t.verdict.value.replace('_', ' ')}" for t in r.tasks)
    return f"{r.id} {r.label} [{per_task}]"


def _verdicts(results: Sequence[Result]) -> str:
    return ", ".join(_verdict(r) for r in results) or "no claims"


class Progress:
    """The progress of one lab run over ``total`` experiments, of which ``cached`` were reused.

    Use it as a context manager; call :meth:`running` when the set of running experiments changes and
    :meth:`finished` when one ends (cached ones included, so that the count reaches ``total``).
    """

    def __init__(self, mode: str, total: int, cached: int, cache_dir: Any = None, stream: TextIO | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}.")
        self.mode, self.total, self.done = mode, total, 0
        self._stream = stream
        self._bar: Any = None
        self._claims: Counter[str] = Counter()
        if mode == "bar" and total:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]lab[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                console=Console(stderr=True),
                transient=True,  # the summary table replaces it
            )
            self._task = self._bar.add_task("", total=total)
        elif mode == "lines":
            where = f" from {cache_dir}" if cached and cache_dir is not None else ""
            self._line(f"{_count(total - cached, 'experiment')} to run, {cached} reused{where}")

    def _line(self, text: str) -> None:
        print(f"lab: {text}", file=self._stream or sys.stdout, flush=True)

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def running(self, ids: Sequence[str]) -> None:
        """The experiments running now (shown in the bar's description)."""
        if self._bar is not None:
            self._bar.update(self._task, description=f"running {', '.join(ids)}" if ids else "")

    def finished(self, results: Sequence[Result], seconds: float, cached: bool = False) -> None:
        """One experiment ended (or was reused) with these per-claim results."""
        self.done += 1
        self._claims.update(r.verdict.value for r in results)
        if self._bar is not None:
            self._bar.advance(self._task)
        elif self.mode == "lines":
            width = len(str(self.total))
            when = "cached" if cached else f"{seconds:.1f} s"
            self._line(f"[{self.done:>{width}}/{self.total}] {_verdicts(results)} ({when})")

    def close(self, wall_seconds: float) -> None:
        """The run's total: wall time and the count of each verdict (lines mode only; the CLI prints a table)."""
        if self.mode != "lines":
            return
        counts = ", ".join(f"{self._claims[v]} {v.replace('_', ' ')}" for v in map(str, Verdict) if self._claims[v])
        claims = _count(sum(self._claims.values()), "claim")
        self._line(f"done in {wall_seconds:.1f} s: {claims} ({counts or 'no verdict'})")
