"""What a worker process does: run one experiment over its seeds, plot it, and write one record atomically.

Each experiment runs in a fresh process, so nothing an experiment changes (default dtype, global RNG,
thread count) leaks into the next, and a run that exceeds its timeout can be killed alone. The process
forks from a server that has already imported torch (``forkserver``), so starting one costs milliseconds.

The record (JSON) is the unit of the cache::

    {"key": ..., "token": ..., "experiment": "Q2.a", "outputs": [{...seed 0...}, ...],
     "seed_seconds": [...], "figures": ["ks_vs_n.png"], "seconds": 3.2, "error": null}

An experiment with tasks runs every ``(task, seed)`` pair; its record keeps one such part per task, and the
top level lists every figure (relative to the experiment's folder) and the first task error::

    {..., "outputs": [], "figures": ["digits/acc.png", "mnist1d/acc.png"], "error": null,
     "tasks": {"digits": {"outputs": [...], "seed_seconds": [...], "figures": ["acc.png"], "seconds": 4.1,
                          "error": null}, "mnist1d": {...}}}

A task that raises does not stop the others (its error is kept with it), but makes the record an error.
"""

from __future__ import annotations

import copy
import importlib
import os
import random
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._files import to_jsonable, write_json_atomic
from .figures import check_figures
from .registry import Experiment

__all__ = ["Job", "execute", "locate", "log_path", "main", "seed_everything"]


@dataclass(frozen=True)
class Job:
    """Everything a worker needs, as plain picklable data (the experiment travels as its locator).

    ``params`` maps each task name to its parameters (``{None: params}`` for an experiment without tasks).
    """

    locator: tuple[str, str, str]
    params: dict[str | None, dict[str, Any]]
    seeds: tuple[int, ...]
    figdir: str
    record_path: str
    key: str
    token: str
    cwd: str = field(default_factory=os.getcwd)
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    sys_path: list[str] = field(default_factory=lambda: list(sys.path))


def locate(module: str, qualname: str, exp_id: str) -> Experiment:
    """Find an experiment by importing the module that declares it (worker processes do this)."""
    mod = importlib.import_module(module)
    candidates = [getattr(mod, qualname, None), *vars(mod).values()]
    for obj in candidates:
        if isinstance(obj, Experiment) and obj.id == exp_id:
            return obj
    raise LookupError(f"experiment {exp_id}: expected it in module {module} as {qualname}, found nothing there.")


def log_path(record_path: str | Path) -> Path:
    """Where a worker's stdout and stderr go: beside its record, ``out/.cache/<id>.log``."""
    return Path(record_path).with_suffix(".log")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (experiments should still use their own)."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds experiment code that uses the legacy global RNG
    torch.manual_seed(seed)


def _run_task(exp: Experiment, params: dict[str, Any], seeds: tuple[int, ...], figdir: Path) -> dict[str, Any]:
    """Run ``exp`` for each seed on one task and plot it; exceptions become the part's ``error`` (with traceback)."""
    part: dict[str, Any] = {"outputs": [], "seed_seconds": [], "figures": [], "error": None}
    start = time.perf_counter()
    try:
        for seed in seeds:
            seed_everything(seed)
            t0 = time.perf_counter()
            out = exp.run(copy.deepcopy(params), seed)
            part["seed_seconds"].append(time.perf_counter() - t0)
            if not isinstance(out, dict):
                raise TypeError(f"run(params, seed={seed}): expected a dict of metrics, got {type(out).__name__}.")
            part["outputs"].append(to_jsonable(out, f"seed {seed} output"))
        if exp.plot is not None:
            figdir.mkdir(parents=True, exist_ok=True)
            paths = exp.plot(copy.deepcopy(part["outputs"]), copy.deepcopy(params), figdir)
            part["figures"] = check_figures(paths, figdir)
    except (Exception, SystemExit):
        part["error"] = traceback.format_exc()
    finally:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")
    part["seconds"] = time.perf_counter() - start
    return part


def execute(
    exp: Experiment, params: dict[str | None, dict[str, Any]], seeds: tuple[int, ...], figdir: Path
) -> dict[str, Any]:
    """Run every ``(task, seed)`` pair of ``exp`` and plot each task; build the record (see the module docstring).

    ``params`` maps task names to parameters; ``{None: params}`` runs an experiment without tasks.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    if list(params) == [None]:
        record = {"experiment": exp.id, **_run_task(exp, params[None], seeds, figdir)}
    else:
        tasks = {name: _run_task(exp, task_params, seeds, figdir / name) for name, task_params in params.items()}
        errors = [f"task {name}: {part['error']}" for name, part in tasks.items() if part["error"]]
        record = {
            "experiment": exp.id,
            "outputs": [],
            "seed_seconds": [],
            "figures": [f"{name}/{fig}" for name, part in tasks.items() for fig in part["figures"]],
            "error": errors[0] if errors else None,
            "tasks": tasks,
        }
    record["seconds"] = time.perf_counter() - start
    # CPU seconds of this one-thread process: what the experiment costs on an idle core, whatever else the machine
    # runs at the same time (the wall-clock seconds above grow with the load; the lab's time budget uses this).
    record["cpu_seconds"] = time.process_time() - cpu_start
    return record


def _setup(job: Job) -> None:
    # A forked worker inherits the fork server's state from when it started; take the caller's instead.
    if hasattr(os, "setpgrp"):
        os.setpgrp()  # its own process group, so a timeout kills its children too (runner._kill)
    log = os.open(log_path(job.record_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)  # prints and warnings go to out/.cache/<id>.log, not through the progress bar
    os.dup2(log, 2)
    os.chdir(job.cwd)
    os.environ.clear()
    os.environ.update(job.env)
    sys.path[:] = job.sys_path
    torch.set_num_threads(1)  # one process per core: intra-op threads would oversubscribe the machine
    import matplotlib

    matplotlib.use("Agg")


def main(job: Job) -> None:
    """Worker entry point: set up, locate the experiment, run it, and write the record atomically."""
    _setup(job)
    try:
        exp = locate(*job.locator)
    except Exception:
        record = {"experiment": job.locator[2], "outputs": [], "figures": [], "seconds": 0.0}
        record["error"] = traceback.format_exc()
    else:
        record = execute(exp, job.params, job.seeds, Path(job.figdir))
    record.update(key=job.key, token=job.token)
    write_json_atomic(Path(job.record_path), record)
