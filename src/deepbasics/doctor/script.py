"""Watch an unmodified training script: run it with ``runpy`` in this process, with global hooks.

:func:`run_script` executes ``SCRIPT.py`` as ``__main__`` (``sys.argv = [SCRIPT, *args]``, the script's folder
first on ``sys.path``, as ``python SCRIPT.py`` would) while global hooks watch it:

- ``torch.nn.modules.module.register_module_forward_pre_hook`` / ``register_module_forward_hook``: a module
  called while no other module is running is a *root* call (with one watched model these global hooks are removed
  after the first steps and come back briefly every ``REDISCOVER_EVERY`` steps and when an optimizer of no watched
  model steps: they cost every module call PyTorch's slow path); every root module with trainable parameters that runs
  with gradients enabled (in training mode or not: a model trained in eval mode is a finding) gets a
  :class:`~deepbasics.doctor.session.DoctorSession`, whose own hooks recognise the optimizer that steps it, watch
  its gradients and steps (:mod:`.hygiene`) and the loss calls of the script (:mod:`.losstap`: output activations,
  and the evaluation passes whose losses become the validation curve);
- ``torch.Tensor.backward`` and ``torch.autograd.backward`` are wrapped to see the loss: each scalar loss goes to
  the session of the model it trains (``session.step(loss)``). With one watched model that is the model. With
  several (a GAN's generator and discriminator, a teacher and a student), the last root module that ran is not
  necessarily the one trained: a GAN's generator loss is computed by the discriminator. The loss is then held
  until the next optimizer step, and goes to the watched model that holds most of that optimizer's parameters
  (the model whose weights this backward pass is meant to change); losses that no optimizer step claims (manual
  updates, or the end of the script) go to the last root module. A loss computed by one trained model that trains
  another marks both as *adversarial* (:attr:`~deepbasics.doctor.records.RunTrace.adversarial`): their losses are a
  game's, which settle instead of falling. A non-finite loss stops the script
  (:class:`NonFiniteLoss`) unless ``keep_going``: the findings made so far are the diagnosis.

Under ``torchrun`` every rank runs the script under its own watcher; the sessions gather their findings to
rank 0 (:mod:`deepbasics.doctor.gathering`), and so does each rank's outcome (:attr:`ScriptResult.ranks`);
:meth:`ScriptResult.deliver` presents the outcome the way the ranks agreed (rank 0 prints and writes the report
once; the others print their traceback and wait for it).
A non-finite loss stops a rank only once the model's parameters are non-finite too. The parameters of a DDP model
are the same on every rank, so every rank stops at the same step, before its backward: none is left waiting in
an all-reduce for a rank that stopped. A rank whose data alone turned the loss non-finite goes through one more
backward, whose all-reduce carries the inf/nan to every replica; all stop at the next loss.

Everything is restored afterwards, whatever happens. The outcome (:class:`ScriptResult`) has the findings of
every watched model, the script's exception if it raised, and an exit code (:data:`EXIT_CODES`).

Cost: one host synchronisation per ``backward`` (the finiteness check of the loss); the session's own hooks
cost what ``watch`` costs (``benchmarks/doctor_overhead.py``, which also times a script under the doctor).
"""

from __future__ import annotations

import json
import math
import os
import runpy
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import (
    register_module_forward_hook,
    register_module_forward_pre_hook,
    register_module_parameter_registration_hook,
)
from torch.optim.optimizer import register_optimizer_step_pre_hook

from .._checks import fail
from .._files import atomic_write
from .distributed import gather_payloads, rank_info, signal_done, unwrap_model, wait_done
from .findings import Finding, Severity
from .report import render_findings
from .session import DoctorSession

__all__ = ["EXIT_CODES", "NonFiniteLoss", "ScriptResult", "run_script"]

#: Exit status of ``deepbasics doctor SCRIPT.py``, by outcome.
EXIT_CODES: dict[str, int] = {
    "ok": 0,  # the script finished and no finding is an error
    "script_error": 1,  # the script raised (its traceback is printed after the findings)
    "nonfinite": 3,  # the doctor stopped the script at a non-finite loss
    "error_findings": 4,  # the script finished, but a finding has severity error
}


#: Losses held for attribution (several watched models) with no optimizer step to claim them are handed to their
#: last root module once this many wait: a script without optimizer objects (manual updates) is not held up.
MAX_PENDING = 64
#: The global module hooks find the root modules, but while they are installed every ``Module.__call__`` of every
#: model takes PyTorch's slow path (measured: +146 us on a 6-module digits-MLP forward of ~600 us, ~10% of its
#: training step). With one watched model they are removed after this many training steps (backward passes) that
#: found no new model, and come back (for that many steps) when a module registers a parameter (a model built later:
#: a new fold), when an optimizer no watched model owns steps, when a loss arrives whose forward did not run the
#: watched model (that loss is not credited to it), and every REDISCOVER_EVERY steps.
DISCOVERY_STEPS = 2
REDISCOVER_EVERY = 100


class NonFiniteLoss(FloatingPointError):
    """Raised inside the script by the wrapped ``backward`` when the loss is inf or nan (stops the script)."""


@dataclass
class WatchedModel:
    """One model the script trained: its session and what identifies it in the output."""

    name: str
    session: DoctorSession
    parameters: int
    findings: list[Finding] = field(default_factory=list)


@dataclass
class ScriptResult:
    """The outcome of :func:`run_script`.

    Attributes:
        script, args: what ran. status: a key of :data:`EXIT_CODES`. exit_code: the process exit status to use
        (the script's own ``sys.exit`` status when it exited non-zero). error: the exception (text and
        traceback) when the script raised. models: every watched model with its findings. losses: the number of
        losses seen. seconds: wall time of the script. rank, world_size: this process in a distributed run.
        ranks: on rank 0 of a distributed run, ``{rank: {"status", "exit_code", "error"}}`` of every rank that
        reported (None elsewhere).
    """

    script: str
    args: list[str]
    status: str
    exit_code: int
    models: list[WatchedModel]
    error: str | None = None
    error_traceback: str | None = None
    losses: int = 0
    seconds: float = 0.0
    rank: int = 0
    world_size: int = 1
    ranks: dict[int, dict[str, Any]] | None = None

    @property
    def findings(self) -> list[Finding]:
        """Every finding of every watched model."""
        return [f for m in self.models for f in m.findings]

    def summary(self, width: int = 110) -> str:
        """The findings table per model, then one line on how the script ended."""
        parts = []
        if not self.models:
            parts.append("deepbasics doctor: no model was trained (no module ran a training forward pass).")
        for m in self.models:
            title = f"deepbasics doctor: {m.name} ({m.parameters} parameters, {m.session.num_steps} losses)"
            if m.session.ranks_reported:
                title += f", findings of ranks {', '.join(map(str, m.session.ranks_reported))}"
            parts.append(render_findings(m.findings, title=title, notes=m.session.notes, width=width))
        parts.append(f"script {self.status}: exit code {self.exit_code}" + (f" ({self.error})" if self.error else ""))
        for r, other in sorted((self.ranks or {}).items()):
            if r != self.rank:
                error = f" ({other['error']})" if other.get("error") else ""
                parts.append(f"rank {r}: script {other['status']}: exit code {other['exit_code']}{error}")
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the run, each model's session data (findings, trace, meta) and the error."""
        return {
            "script": self.script,
            "args": list(self.args),
            "status": self.status,
            "exit_code": self.exit_code,
            "error": self.error,
            "traceback": self.error_traceback,
            "losses": self.losses,
            "seconds": self.seconds,
            "findings": [f.to_dict() for f in self.findings],
            "models": [{"name": m.name, "parameters": m.parameters, **m.session.to_dict()} for m in self.models],
            **({"distributed": self._distributed()} if self.world_size > 1 else {}),
        }

    def _distributed(self) -> dict[str, Any]:
        ranks = {str(r): v for r, v in (self.ranks or {}).items()}
        return {"rank": self.rank, "world_size": self.world_size, "ranks": ranks}

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as strict JSON (inf/nan as strings) to ``path``, atomically; returns the path."""
        text = json.dumps(_strict(self.to_dict()), indent=2) + "\n"
        return atomic_write(path, lambda f: f.write(text.encode("utf-8")))

    def _html_page(self, title: str | None) -> Any:
        """This result's HTML page (:func:`deepbasics.doctor.html.page_of` calls it)."""
        from .html.pages import script_page  # lazy: matplotlib and jinja2 load only when a report is drawn

        return script_page(self, title)

    def to_html(self, path: str | os.PathLike[str] = "doctor.html", *, title: str | None = None) -> Path:
        """Write the outcome as one self-contained HTML page (the script's exit status, and per watched model the
        loss curve, per-layer heatmaps and findings): :mod:`deepbasics.doctor.html`. Returns the path."""
        from .html import write_html  # lazy: matplotlib and jinja2 load only when a report is drawn

        return write_html(self, path, title=title)

    def deliver(self, out: str | os.PathLike[str], echo: Any, echo_err: Any) -> int:
        """Present the outcome (the command line's part) and return the exit code.

        Alone, or on rank 0: the summary (``echo``), the script's traceback (``echo_err``), ``doctor.json`` written
        to ``out``; in a distributed run rank 0 then tells the other ranks the report is written. Another rank:
        its traceback only, and -- when it is about to exit with an error, which makes ``torchrun`` stop every
        rank -- it first waits (at most ``DEEPBASICS_DOCTOR_TIMEOUT`` s) for rank 0 to finish writing; if rank 0
        never reports, it prints its own findings.
        """
        if self.rank != 0:
            if self.error_traceback:
                echo_err(f"[rank {self.rank}] " + self.error_traceback)
            if self.exit_code != 0 and not wait_done("report"):
                echo(f"[rank {self.rank}] rank 0 did not write the report; the findings of rank {self.rank}:")
                echo(self.summary())
            return self.exit_code
        echo(self.summary())  # already rendered to plain text at its own width
        if self.error_traceback:
            echo_err(self.error_traceback)
        echo(f"wrote {self.write_json(out)}")
        if self.world_size > 1:
            signal_done("report")
        return self.exit_code


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


class _Watcher:
    """The global hooks of one script run (module docstring); ``install()`` / ``remove()``."""

    def __init__(self, keep_going: bool) -> None:
        self.keep_going = keep_going
        self.models: dict[int, WatchedModel] = {}
        self.depth = 0
        self.last_root: WatchedModel | None = None
        self.losses = 0
        self.nonfinite: float | None = None
        self._handles: list[Any] = []  # the global optimizer hook
        self._module_hooks: list[Any] = []  # the global module hooks, while looking for root modules
        self._quiet = 0  # training steps since the module hooks were installed or found a model
        self._away = 0  # training steps since they were removed
        self._unowned: set[int] = set()  # optimizers owned by no watched model that re-armed the search once
        self._root_hooks: list[Any] = []  # one forward pre-hook per watched model: it ran since the last loss
        self._root_ran = False
        self._local = threading.local()  # re-entrancy: Tensor.backward calls torch.autograd.backward
        self._saved: dict[str, Any] = {}
        self._pending: list[tuple[WatchedModel, torch.Tensor]] = []  # losses waiting for the optimizer step
        self._owners: dict[int, tuple[int, WatchedModel | None]] = {}  # id(optimizer) -> (groups, model)

    # ---------------------------------------------------------------------------------------------- hooks
    def _pre(self, module: nn.Module, args: Any) -> None:
        if self.depth == 0 and torch.is_grad_enabled():
            watched = self.models.get(id(module))
            if watched is None and any(p.requires_grad for p in module.parameters()):
                watched = self._attach(module)
                # its own hooks start with the next forward: note this one (batch size; loss-call routing)
                watched.session.recorder.on_forward(module, args)
                if watched.session.recorder.losswatch is not None:
                    watched.session.recorder.losswatch.on_forward(module.training)
            if watched is not None:
                self.last_root = watched
        self.depth += 1

    def _post(self, module: nn.Module, args: Any, output: Any) -> None:
        self.depth = max(0, self.depth - 1)

    def _search(self, on: bool) -> None:
        """Install or remove the global module hooks that find root modules (see DISCOVERY_STEPS)."""
        if on and not self._module_hooks:
            self._module_hooks = [register_module_forward_pre_hook(self._pre), register_module_forward_hook(self._post)]
            self._quiet = 0
        elif not on and self._module_hooks:
            for handle in self._module_hooks:
                handle.remove()
            self._module_hooks.clear()
            self.depth, self._away = 0, 0

    def _tick(self) -> None:
        """A training step (an outer backward): keep searching for models, stop, or search again (DISCOVERY_STEPS)."""
        if self._module_hooks:
            self._quiet += 1
            if self._quiet > DISCOVERY_STEPS and len(self.models) == 1:  # several models: loss routing needs them
                self._search(False)
        else:
            self._away += 1
            if self._away >= REDISCOVER_EVERY:
                self._search(True)

    def _attach(self, module: nn.Module) -> WatchedModel:
        self._quiet = 0
        session = DoctorSession(module).attach()
        params = sum(p.numel() for p in module.parameters() if p.requires_grad and not nn.parameter.is_lazy(p))
        name = type(unwrap_model(module)).__name__ + (f"#{len(self.models) + 1}" if self.models else "")
        watched = WatchedModel(name, session, params)
        self.models[id(module)] = watched
        self._root_hooks.append(module.register_forward_pre_hook(lambda m, args: self._ran(watched)))
        return watched

    def _ran(self, watched: WatchedModel) -> None:
        """A watched model's own root pre-hook: with the global hooks gone, this is how a loss finds its model."""
        if torch.is_grad_enabled():
            self._root_ran = True
            if not self._module_hooks:  # while they are in, the global pre-hook names the root (nested calls too)
                self.last_root = watched

    def _on_parameter(self, module: nn.Module, name: str, param: Any) -> None:
        """A module registered a parameter: maybe a model built now, to be found at its first forward."""
        if not self._module_hooks and param is not None:
            self._search(True)

    def _loss(self, tensors: Any) -> None:
        self.depth = 0  # a forward that raised never ran its post hooks; a backward means it is over
        loss = tensors[0] if isinstance(tensors, list | tuple) and tensors else tensors
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or self.last_root is None:
            return
        self.losses += 1
        searching, ran, self._root_ran = bool(self._module_hooks), self._root_ran, False
        self._tick()
        if not searching and not ran:  # no watched model ran since the last loss: some other model made this one
            self._search(True)
        elif len(self.models) > 1:  # which model this loss trains is known at the next optimizer step
            self._pending.append((self.last_root, loss))  # with its graph: the first ones are scanned (graphscan)
            if len(self._pending) >= MAX_PENDING:
                self._flush()
        else:
            self.last_root.session.step(loss)
        value = loss.item()  # the one host sync per step: a non-finite loss must stop the run
        if not math.isfinite(value):
            if self.nonfinite is None:
                self.nonfinite = value
            if not self.keep_going and self._stop_now():
                self._flush()
                raise NonFiniteLoss(
                    f"the loss was {value} at step {self.last_root.session.num_steps - 1}; deepbasics doctor stopped "
                    "the script (use --keep-going to continue)"
                )

    def _on_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        """Global optimizer step pre-hook: the losses held since the last step train this optimizer's model; an
        optimizer that no watched model owns makes the module hooks look for its model (once per optimizer)."""
        if self._pending:
            self._flush(self._owner(optimizer))
        if not self._module_hooks and id(optimizer) not in self._unowned and self._owner(optimizer) is None:
            self._unowned.add(id(optimizer))
            self._search(True)

    def _owner(self, optimizer: torch.optim.Optimizer) -> WatchedModel | None:
        """The watched model holding most of ``optimizer``'s parameters (cached per optimizer and group count)."""
        groups = len(optimizer.param_groups)
        cached = self._owners.get(id(optimizer))
        if cached is not None and cached[0] == groups:
            return cached[1]
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        counts = [(sum(id(p) in held for p in m.session.model.parameters()), m) for m in self.models.values()]
        best = max(counts, key=lambda c: c[0], default=(0, None))
        owner = best[1] if best[0] > 0 else None
        self._owners[id(optimizer)] = (groups, owner)
        return owner

    def _flush(self, owner: WatchedModel | None = None) -> None:
        """Hand the held losses to ``owner``, or each to its last root module when no optimizer claims them."""
        pending, self._pending = self._pending, []
        for candidate, loss in pending:
            if owner is not None and candidate is not owner:  # computed by one trained model, training another
                owner.session.recorder.adversarial = candidate.session.recorder.adversarial = True
            (owner or candidate).session.step(loss)

    def _stop_now(self) -> bool:
        """Stop at this non-finite loss? Alone: yes. Distributed: only once the parameters are non-finite too
        (module docstring), a test that is as replicated as the parameters; one host sync, at non-finite losses only."""
        if not rank_info().distributed:
            return True
        return not all(bool(torch.isfinite(p).all()) for p in self.last_root.session.model.parameters())

    def _wrap(self, fn: Any, tensor_method: bool) -> Any:
        watcher = self

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            outer = not getattr(watcher._local, "inside", False)
            if outer:
                watcher._loss(args[0] if args else kwargs.get("tensors", kwargs.get("self")))
            watcher._local.inside = True
            try:
                return fn(*args, **kwargs)
            finally:
                if outer:
                    watcher._local.inside = False

        wrapped.__wrapped__ = fn  # type: ignore[attr-defined]
        wrapped.__doc__ = fn.__doc__
        return wrapped

    # ---------------------------------------------------------------------------------------------- life
    def install(self) -> None:
        self._handles = [
            register_optimizer_step_pre_hook(self._on_step),
            register_module_parameter_registration_hook(self._on_parameter),
        ]
        self._search(True)
        self._saved = {"tensor": torch.Tensor.backward, "autograd": torch.autograd.backward}
        torch.Tensor.backward = self._wrap(self._saved["tensor"], True)  # type: ignore[method-assign]
        torch.autograd.backward = self._wrap(self._saved["autograd"], False)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._search(False)
        for handle in self._root_hooks:
            handle.remove()
        self._root_hooks.clear()
        self._flush()
        if self._saved:
            torch.Tensor.backward = self._saved["tensor"]  # type: ignore[method-assign]
            torch.autograd.backward = self._saved["autograd"]
            self._saved = {}
        for watched in self.models.values():
            watched.session.detach()


def run_script(
    script: str | os.PathLike[str], args: list[str] | tuple[str, ...] = (), *, keep_going: bool = False
) -> ScriptResult:
    """Run ``script`` as ``__main__`` under the doctor's global hooks and return the diagnosis.

    Args:
        script: path to a Python file; a missing file raises ``FileNotFoundError`` before anything runs.
        args: the script's command-line arguments (``sys.argv[1:]`` inside it).
        keep_going: do not stop the script at the first non-finite loss.

    The script's exceptions are caught and reported in the result (``status="script_error"``); ``sys.argv``,
    ``sys.path``, the hooks and the wrapped ``backward`` functions are restored in every case.
    """
    path = Path(script)
    if not path.is_file():
        raise fail(FileNotFoundError, "SCRIPT", "an existing Python file", str(script), "Check the path.")
    args = [str(a) for a in args]
    watcher = _Watcher(keep_going)
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    status, exit_code, error, tb = "ok", 0, None, None
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(path.resolve().parent))
    started = time.perf_counter()
    watcher.install()
    try:
        runpy.run_path(str(path), run_name="__main__")
    except NonFiniteLoss as exc:
        status, error = "nonfinite", str(exc)
    except SystemExit as exc:  # the script's own sys.exit(...)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code != 0:
            status, exit_code, error = "script_error", code, f"the script called sys.exit({exc.code!r})"
    except BaseException as exc:  # whatever the script raises is part of the diagnosis
        if isinstance(exc, KeyboardInterrupt):
            status, error = "script_error", "interrupted"
        else:
            status, error = "script_error", f"{type(exc).__name__}: {exc}"
            frames = exc.__traceback__  # drop the runner's and runpy's frames: start at the script's own
            while frames is not None and frames.tb_frame.f_code.co_filename != str(path):
                frames = frames.tb_next
            tb = "".join(traceback.format_exception(type(exc), exc, frames or exc.__traceback__))
    finally:
        watcher.remove()
        sys.argv, sys.path[:] = saved_argv, saved_path
    seconds = time.perf_counter() - started
    models = list(watcher.models.values())
    for m in models:
        try:
            m.session.use_captured_batch()  # curvature on the script's own loss and first batch (lossbatch)
            m.findings = m.session.finalize()
        except Exception as error:  # the doctor's own failure must not hide the script's outcome
            m.findings = []
            m.session.notes.append(f"the doctor could not judge this model: {type(error).__name__}: {error}")
    if status == "ok" and any(f.severity == Severity.ERROR for m in models for f in m.findings):
        status = "error_findings"
    if status != "script_error" or exit_code == 0:
        exit_code = EXIT_CODES[status]
    info, ranks = rank_info(), None
    if info.distributed:  # every rank's outcome to rank 0, next to the findings the sessions gathered
        ranks = gather_payloads({"status": status, "exit_code": exit_code, "error": error}, info=info)
    return ScriptResult(
        str(path),
        args,
        status,
        exit_code,
        models,
        error,
        tb,
        watcher.losses,
        seconds,
        rank=info.rank,
        world_size=info.world_size,
        ranks=ranks,
    )
