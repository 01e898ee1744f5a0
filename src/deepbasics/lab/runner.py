"""The lab runner: selected experiments -> worker processes -> cached records -> one Result per claim ID.

``run`` resolves ``only`` to experiments, skips those whose cached record is still valid, runs the rest in
parallel worker processes (one fresh process per experiment, at most ``jobs`` at a time, each with one
torch thread), kills any that exceed their timeout, judges every claim with its declared rule, and writes
the report. Guarantees:

- **No silent failure, no lost work.** An experiment that raises, crashes or times out becomes a Result
  with verdict ``error`` and the message (traceback, exit code, or "timed out after N s"); the others go on.
  Each finished experiment's record is written atomically to ``out/.cache/<id>.json`` as soon as it ends,
  so a killed run, started again, redoes only what had not finished.
- **Cache key** = sha256 of (claim IDs, tasks and their parameters, seeds, the source of the experiment's
  module and of every module of :mod:`deepbasics.lab.experiments` it imports, transitively (shared helpers
  such as ``_deepnets.py``), the source of every library layer it may use (basics, train, probe: everything
  outside ``lab`` and ``cli``), the deepbasics version, the cache format). Changing a library function or a
  shared helper therefore invalidates the results that could depend on it. Records with an error are never
  reused. ``fresh=True`` ignores the cache.
- **Deterministic**: seeds ``0..n-1`` are passed to ``run`` and seed the global generators first, in a fresh
  process, so the same seeds give the same numbers whatever ran before or alongside.

Why not ``concurrent.futures.ProcessPoolExecutor``: its workers cannot be killed one at a time (killing one
breaks the whole pool and every experiment in flight), and reused workers carry global state from one
experiment to the next. Processes forked from a ``forkserver`` that has imported torch start in milliseconds,
so one process per experiment costs nothing that matters.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import importlib
import inspect
import json
import multiprocessing as mp
import os
import signal
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing import connection
from pathlib import Path
from typing import Any

from .._checks import check_int, fail
from .._version import __version__
from ._files import read_json
from .progress import Progress, progress_mode
from .registry import Experiment, Registry, default_registry
from .result import Result, results_of

__all__ = ["CACHE_FORMAT", "cache_key", "default_jobs", "experiment_modules", "run"]

#: Bump when the record layout changes, so old caches are ignored rather than misread (2: per-task records).
CACHE_FORMAT = 2
_EXPERIMENTS = "deepbasics.lab.experiments"


def default_jobs() -> int:
    """The number of CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def library_fingerprint() -> str:
    """sha256 over the source of every deepbasics module an experiment may import (all but ``lab`` and ``cli``)."""
    root = Path(__file__).resolve().parents[1]  # src/deepbasics
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in ("lab", "cli"):
            continue
        digest.update(str(rel).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _module_file(name: str) -> Path | None:
    module = sys.modules.get(name)
    if module is None:
        try:
            module = importlib.import_module(name)
        except ImportError:
            return None
    file = getattr(module, "__file__", None)
    return Path(file) if file else None


def _imported_names(path: Path, package: str) -> set[str]:
    """The modules a source file imports (``import a.b``, ``from .x import y``, ``from . import x``), absolute."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # from . import _helpers
    return names


def experiment_modules(module: str) -> list[str]:
    """``module`` and every module of :mod:`deepbasics.lab.experiments` it imports, transitively, sorted.

    Read from the source (``ast``), so editing a shared helper such as ``experiments/_deepnets.py`` changes
    the cache key of exactly the experiments that use it.
    """
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if path is None or path.suffix != ".py":
            continue
        seen.add(name)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for imported in _imported_names(path, package):
            if imported.startswith(_EXPERIMENTS + ".") and imported not in seen:
                todo.append(imported)
    return sorted(seen)


def _code_digest(exp: Experiment) -> str:
    digest = hashlib.sha256()
    modules = experiment_modules(exp.module)
    if exp.module not in modules:  # defined outside a file (an interactive session): hash the function itself
        digest.update(inspect.getsource(exp.run).encode())
    for name in modules:
        path = _module_file(name)
        digest.update(name.encode())
        digest.update(path.read_bytes() if path else b"")
    return digest.hexdigest()


def cache_key(exp: Experiment, params: dict[str | None, dict[str, Any]], seeds: tuple[int, ...]) -> str:
    """The sha256 that identifies one experiment's result: IDs, tasks and parameters, seeds, code, version.

    ``params`` maps each task to its parameters (``{None: params}`` without tasks); code is the experiment's
    module with the experiment modules it imports (:func:`experiment_modules`) and the library.
    """
    payload = {
        "format": CACHE_FORMAT,
        "ids": list(exp.ids),
        "params": params[None] if list(params) == [None] else {"tasks": params},
        "seeds": list(seeds),
        "code": _code_digest(exp),
        "library": library_fingerprint(),
        "deepbasics": __version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class _Plan:
    """One experiment as it will run now: its parameters, seeds, key, and where its files go."""

    exp: Experiment
    params: dict[str | None, dict[str, Any]]  # task name -> parameters ({None: ...} without tasks)
    seeds: tuple[int, ...]
    key: str
    record_path: Path
    figdir: Path


def _load_cached(plan: _Plan) -> dict[str, Any] | None:
    record = read_json(plan.record_path)
    if not isinstance(record, dict) or record.get("key") != plan.key or record.get("error") is not None:
        return None
    if not all((plan.figdir / name).is_file() for name in record.get("figures", [])):
        return None  # someone deleted a figure: recompute rather than report a broken link
    return record


def _mp_context() -> Any:
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["deepbasics.lab._preload"])  # torch and pyplot, imported once in the server
        return ctx
    return mp.get_context("spawn")


def _kill(proc: Any) -> None:
    if proc.is_alive():
        with contextlib.suppress(ProcessLookupError, PermissionError, AttributeError):
            os.killpg(proc.pid, signal.SIGKILL)  # the worker leads its own group: take its children too
        proc.kill()
    proc.join()


def _error_record(plan: _Plan, message: str, seconds: float) -> dict[str, Any]:
    return {"experiment": plan.exp.id, "outputs": [], "figures": [], "seconds": seconds, "error": message}


def _execute(plans: Iterable[_Plan], jobs: int, progress: Progress) -> Iterator[tuple[_Plan, dict[str, Any]]]:
    """Run the plans in worker processes, ``jobs`` at a time; yield ``(plan, record)`` as each ends."""
    from . import _worker  # imports torch: only when something actually runs

    ctx = _mp_context()
    queue = deque(plans)
    running: dict[int, tuple[_Plan, Any, str, float, float]] = {}  # sentinel -> (plan, proc, token, t0, deadline)
    try:
        while queue or running:
            while queue and len(running) < jobs:
                plan = queue.popleft()
                for stale in plan.figdir.rglob("*.png") if plan.figdir.is_dir() else ():
                    stale.unlink()
                plan.record_path.parent.mkdir(parents=True, exist_ok=True)
                token = uuid.uuid4().hex
                job = _worker.Job(
                    plan.exp.locator, plan.params, plan.seeds, str(plan.figdir), str(plan.record_path), plan.key, token
                )
                proc = ctx.Process(target=_worker.main, args=(job,), name=f"deepbasics-lab-{plan.exp.id}")
                proc.start()
                t0 = time.monotonic()
                running[proc.sentinel] = (plan, proc, token, t0, t0 + plan.exp.timeout)
                progress.running([p.exp.id for p, *_ in running.values()])
            next_deadline = min(deadline for *_, deadline in running.values())
            ready = set(connection.wait(list(running), timeout=max(0.0, next_deadline - time.monotonic())))
            now = time.monotonic()
            for sentinel, (plan, proc, token, t0, deadline) in list(running.items()):
                if sentinel in ready:
                    proc.join()
                    record = read_json(plan.record_path)
                    if not isinstance(record, dict) or record.get("token") != token:
                        record = _error_record(
                            plan,
                            f"the worker process exited with code {proc.exitcode} without writing a result "
                            f"(a crash, a kill signal, or out of memory); see {_worker.log_path(plan.record_path)}",
                            now - t0,
                        )
                elif now >= deadline:
                    _kill(proc)
                    record = _error_record(plan, f"timed out after {plan.exp.timeout:g} s", now - t0)
                else:
                    continue
                del running[sentinel]
                progress.running([p.exp.id for p, *_ in running.values()])
                yield plan, record
    finally:
        for _, proc, *_ in running.values():
            _kill(proc)


def _report_folder(out: str | os.PathLike[str]) -> Path:
    """``out`` as an absolute path (``~`` expanded), so that workers and figure paths never depend on the cwd."""
    if not isinstance(out, (str, os.PathLike)) or not str(out).strip():
        raise fail(TypeError, "out", "a folder path (str or Path)", repr(out), "Pass e.g. out='lab-report'.")
    folder = Path(out).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise fail(ValueError, "out", "a folder for the report", f"the file {folder}", "Choose another --out.")
    return folder


def run(
    only: str | Iterable[str] | None = None,
    quick: bool = False,
    out: str | os.PathLike[str] = "lab-report",
    jobs: int | None = None,
    seeds: int | None = None,
    progress: bool = True,
    *,
    fresh: bool = False,
    registry: Registry | None = None,
) -> list[Result]:
    """Run the lab's experiments and write ``out/index.html``, ``out/report.md`` and ``out/results.json``.

    Args:
        only: claim IDs or prefixes (``"Q3"`` = every ``Q3.*``, not ``Q30``), comma-separated or a list;
            ``None`` runs everything. Unknown tokens raise ``ValueError`` listing the valid prefixes.
        quick: use each experiment's ``quick`` parameters (minutes in total) instead of ``full``.
        out: the report folder (relative to the working directory, ``~`` expanded); its ``.cache/`` holds
            one record per experiment.
        jobs: worker processes at a time (default: the usable CPU cores). ``1`` runs one at a time.
        seeds: run seeds ``0..seeds-1`` instead of each experiment's own count (``value`` rules run once).
        progress: show progress: a bar on stderr when standard output is a terminal, else one line per
            finished experiment on standard output (claims, verdicts, seconds, ``done/total``).
        fresh: ignore cached records and run everything selected again.
        registry: the experiments to choose from (default: every module of ``deepbasics.lab.experiments``).

    Returns:
        One :class:`Result` per claim ID of the selected experiments, in the FAQ's order.
    """
    reg = default_registry() if registry is None else registry
    if not isinstance(reg, Registry):
        raise fail(TypeError, "registry", "a deepbasics.lab.Registry or None", type(reg).__name__, "")
    selected = reg.select(only)
    jobs = default_jobs() if jobs is None else check_int(jobs, "jobs", low=1)
    if seeds is not None:
        check_int(seeds, "seeds", low=1)
    out = _report_folder(out)
    mode = "quick" if quick else "full"
    plans = []
    for exp in selected:
        params = {task: exp.params(quick, task) for task in exp.task_names}
        seed_list = exp.seed_list(seeds)
        plans.append(
            _Plan(
                exp,
                params,
                seed_list,
                cache_key(exp, params, seed_list),
                out / ".cache" / f"{exp.id}.json",
                out / "figures" / exp.id,
            )
        )
    results: dict[str, list[Result]] = {}
    pending = []
    for plan in plans:
        cached = None if fresh else _load_cached(plan)
        if cached is None:
            pending.append(plan)
        else:
            results[plan.exp.id] = results_of(plan.exp, cached, True, plan.seeds, mode)
    start = time.perf_counter()
    with Progress(progress_mode(progress), len(plans), len(plans) - len(pending), out / ".cache") as shown:
        for plan in plans:
            if plan.exp.id in results:
                shown.finished(results[plan.exp.id], 0.0, cached=True)
        # Longest first (LPT scheduling, Graham 1969): an experiment that starts last and runs alone idles the
        # other workers. Its declared timeout is the cost estimate a fresh clone has; on the 0.2.0 full lab this
        # order gives 1,146 s against 1,253 s in FAQ order on 2 workers (simulated from measured durations;
        # perfect packing 1,142 s). Ties keep the FAQ order; results are reported in FAQ order either way.
        pending.sort(key=lambda plan: -plan.exp.timeout)
        for plan, record in _execute(pending, min(jobs, max(len(pending), 1)), shown):
            results[plan.exp.id] = results_of(plan.exp, record, False, plan.seeds, mode)
            shown.finished(results[plan.exp.id], float(record.get("seconds", 0.0)))
    wall = time.perf_counter() - start
    ordered = [r for plan in plans for r in results[plan.exp.id]]
    from .report import write_report

    cpu = sum({r.experiment: r.cpu_seconds for r in ordered}.values())
    meta = {"mode": mode, "jobs": jobs, "seeds": seeds, "wall_seconds": wall, "cpu_seconds": cpu}
    write_report(ordered, out, meta)
    shown.close(wall)
    return ordered
