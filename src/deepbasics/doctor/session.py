"""Watch a training run with hooks only: ``with watch(model, optimizer) as session: ...; session.step(loss)``.

A :class:`DoctorSession` is a thin composition of four parts, each in its own module:

- :class:`~.recording.Recorder` (:mod:`.recording`): the hooks -- per-layer statistics, the batch size, the
  practice bookkeeping (:mod:`.hygiene`), the loss calls (:mod:`.losstap`) -- and the records they fill;
- :class:`~.schedule.Schedule` (:mod:`.schedule`): the cheap detectors every ``check_every`` steps and at the end,
  the extras every ``expensive_every`` steps and at the end; transient findings replaced at each check;
- :class:`~.extras.Extras` (:mod:`.extras`): Hessian extremes and the gradient noise scale, only when asked and with
  a ``loss_fn`` and a batch (``session.step(loss, batch=(x, y))``), or from DDP's all-reduce;
- :class:`~.gathering.RankGather` (:mod:`.gathering`): in a data-parallel run (``torchrun`` + DDP) every rank
  watches its own replica (a DDP wrapper is looked through: layer names are those of the user's module) and rank 0
  reports every rank's findings, merged per ``(code, where)`` with the ranks they occurred on.

Every check builds one :class:`~.records.RunTrace` and hands it to
:func:`~deepbasics.doctor.detectors.run_detectors`, the one place findings are assembled.

Guarantees: the session never changes training. Hooks only read tensors under ``torch.no_grad()``; the loss
functions it watches return exactly what they would; the extras run in eval mode, under
``torch.random.fork_rng``, with ``torch.autograd.grad`` (``.grad`` untouched). ``tests/test_doctor_watch.py`` checks
bit-identical parameters after 50 steps with dropout and BatchNorm. The cost with the defaults is measured by
``benchmarks/doctor_overhead.py`` (target: at most 5% per step).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._checks import check_int, check_module, fail
from ..probe import LayerStats
from ..probe.layer_stats import DEFAULT_EVERY
from . import thresholds as T
from .detectors import run_detectors
from .distributed import unwrap_model
from .extras import Extras
from .findings import Finding
from .gathering import RankGather
from .losstap import suspended
from .recording import DENSE_LAYER_RECORDS, Recorder
from .records import RunTrace
from .report import render_findings
from .schedule import CHECK_GROWTH, DEFAULT_CHECK_EVERY, Schedule, refresh
from .tensorboard import ScalarExport, make_writer

__all__ = ["DoctorSession", "findings_from_records", "watch"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def findings_from_records(
    losses: Iterable[Any] = (),
    val_losses: Iterable[Any] = (),
    layers: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
    order: Sequence[str] | None = None,
    kinds: Mapping[str, str] | None = None,
    *,
    batch_size: int | None = None,
    batchnorm: Sequence[str] = (),
    curvature: Mapping[str, float] | None = None,
    noise: Mapping[str, float] | None = None,
) -> list[Finding]:
    """Run every detector on recorded numbers (no model needed): the entry point for runners that record
    elsewhere. ``losses``: floats (step = index) or ``(step, loss)`` pairs; ``layers``/``order``:
    ``LayerStats.records()`` / ``layer_order``; ``kinds``: :func:`deepbasics.doctor.trace.layer_kinds`."""
    trace = RunTrace(
        losses=_pairs(losses),
        val_losses=_pairs(val_losses),
        layers={k: {m: list(v) for m, v in rec.items()} for k, rec in (layers or {}).items()},
        order=list(order if order is not None else (layers or {})),
        kinds=dict(kinds or {}),
        batch_size=batch_size,
        batchnorm_layers=list(batchnorm),
        curvature=dict(curvature) if curvature else None,
        noise=dict(noise) if noise else None,
    )
    return run_detectors(trace)


def _pairs(values: Iterable[Any]) -> list[tuple[int, float]]:
    out = []
    for i, item in enumerate(values):
        step, value = item if isinstance(item, (tuple, list)) else (i, item)
        out.append((int(step), float(value.item() if hasattr(value, "item") else value)))
    return sorted(out, key=lambda p: p[0])


class DoctorSession:
    """A doctor attached to one model's training (see the module docstring); :func:`watch` creates one.

    Args:
        model: the module being trained; a ``DistributedDataParallel`` (or ``DataParallel``) is looked through:
            hooks go on the module inside, whose layer names the findings use.
        optimizer: its optimizer; if None, the first optimizer that steps this model's parameters while the
            session is attached is recorded (for the report: its class and learning rate).
        every: record the loss of every ``every``-th ``step()`` call (default 1: all).
        layer_every: record per-layer statistics every ``layer_every`` steps (default 20, LayerStats' default) for
            the first ``dense_layer_records`` records (default 10), then at an interval that doubles each time the run
            doubles (:func:`deepbasics.probe.layer_stats.recorded_step`); ``dense_layer_records=None`` keeps the
            fixed interval (what ``diagnose`` and a TensorBoard export use).
        check_every: run the cheap detectors every ``check_every`` steps (default 100), less often once the run is
            long (:mod:`deepbasics.doctor.schedule`), and at :meth:`finalize`.
        expensive_every: run curvature / noise-scale checks every this many steps (default: only at the end).
        curvature, noise_scale: enable the expensive checks (need ``loss_fn`` and ``step(loss, batch=(x, y))``).
        tensorboard: a ``SummaryWriter``-like object (``add_scalar``) or a log directory; skipped with a warning
            when TensorBoard is not installed.
        loss_fn: ``loss_fn(model(x), y)`` -> scalar mean loss, for the expensive checks.
        intercept_losses: watch the script's loss calls for output activations and evaluation passes
            (:mod:`deepbasics.doctor.losstap`; default True).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        every: int = 1,
        layer_every: int = DEFAULT_EVERY,
        check_every: int = DEFAULT_CHECK_EVERY,
        expensive_every: int | None = None,
        curvature: bool = False,
        noise_scale: bool = False,
        tensorboard: Any = None,
        loss_fn: LossFn | None = None,
        intercept_losses: bool = True,
        dense_layer_records: int | None = DENSE_LAYER_RECORDS,
    ) -> None:
        check_module(model)
        self.wrapper = model  # what was passed, e.g. a DistributedDataParallel
        self.model = unwrap_model(model)
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise fail(TypeError, "optimizer", "a torch.optim.Optimizer or None", type(optimizer).__name__,
                       "Pass the optimizer that updates this model, or None to detect it.")  # fmt: skip
        if loss_fn is not None and not callable(loss_fn):
            raise fail(TypeError, "loss_fn", "a callable (outputs, targets) -> loss", type(loss_fn).__name__,
                       "Pass e.g. torch.nn.CrossEntropyLoss().")  # fmt: skip
        self.every = check_int(every, "every", low=1)
        self.layer_every = check_int(layer_every, "layer_every", low=1)
        self.schedule = Schedule(check_every, expensive_every, growth=0.0 if tensorboard is not None else CHECK_GROWTH)
        self.notes: list[str] = []
        self.recorder = Recorder(
            self.model,
            optimizer,
            every=self.every,
            layer_every=self.layer_every,
            intercept_losses=intercept_losses,
            dense_layer_records=None if tensorboard is not None else dense_layer_records,
        )
        self.extras = Extras(
            self.model, model, curvature=curvature, noise_scale=noise_scale, loss_fn=loss_fn, notes=self.notes
        )
        self.gather = RankGather()
        self._writer = make_writer(tensorboard)
        self._export = ScalarExport(self._writer) if self._writer is not None else None
        self._findings: list[Finding] = []
        self._started: float | None = None
        self._seconds = 0.0

    # ------------------------------------------------------------------------------------------- settings
    check_every = property(lambda self: self.schedule.check_every, doc="Interval of the cheap detectors.")
    expensive_every = property(lambda self: self.schedule.expensive_every, doc="Interval of the extras (or None).")
    curvature = property(lambda self: self.extras.curvature, doc="Whether the Hessian extremes are measured.")
    noise_scale = property(lambda self: self.extras.noise_scale, doc="Whether the noise scale is measured.")
    loss_fn = property(lambda self: self.extras.loss_fn, doc="The loss function of the extras.")
    num_steps = property(lambda self: self.recorder.num_steps, doc="``step()`` calls so far.")
    losses = property(lambda self: self.recorder.losses, doc="Recorded ``(step, loss)`` pairs (host copies).")
    val_losses = property(lambda self: self.recorder.val_losses, doc="Explicit ``(step, validation loss)`` pairs.")
    curvature_result = property(lambda self: self.extras.curvature_result, doc="The last curvature measurement.")
    noise_result = property(lambda self: self.extras.noise_result, doc="The last noise-scale measurement.")
    rank_info = property(lambda self: self.gather.info, doc="This process's rank (deepbasics.doctor.distributed).")
    ranks_reported = property(
        lambda self: None if self.gather.ranks_reported is None else list(self.gather.ranks_reported),
        doc="On rank 0 of a distributed run after finalize: the ranks whose findings are merged in.",
    )

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        """The optimizer given, else the first one seen stepping this model's parameters."""
        return self.recorder.optimizer

    @optimizer.setter
    def optimizer(self, value: torch.optim.Optimizer | None) -> None:
        self.recorder.given_optimizer = value

    @property
    def stats(self) -> LayerStats | None:
        """The :class:`~deepbasics.probe.LayerStats` probe (None before :meth:`attach`)."""
        return self.recorder.stats

    @property
    def batch_size(self) -> int | None:
        """The most common batch size of the training forwards (None before the first)."""
        return self.recorder.batch_size

    @property
    def model_device(self) -> torch.device:
        """The device of the model's first parameter."""
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------------------------------- lifecycle
    def attach(self) -> DoctorSession:
        """Install the hooks (idempotent). Returns ``self``."""
        if not self.recorder.attached:
            self.recorder.attach()
            self.gather.attach()
            self.extras.attach()
            self._started = time.perf_counter()
        return self

    def detach(self) -> None:
        """Remove every hook; the recorded data stay (idempotent)."""
        if self._started is not None:
            self._seconds += time.perf_counter() - self._started
            self._started = None
        self.recorder.detach()
        self.extras.detach()

    def __enter__(self) -> DoctorSession:
        return self.attach()

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.detach()
        if exc_type is not None:
            self.gather.raised()
        self.finalize()

    # ------------------------------------------------------------------------------------------- feeding
    def step(self, loss: torch.Tensor | float | None = None, *, batch: tuple[Any, Any] | None = None,
             val_loss: torch.Tensor | float | None = None) -> None:  # fmt: skip
        """Mark the end of a training step; ``loss`` is kept without a host synchronisation. ``batch=(x, y)``
        enables the expensive checks (the last batch given is used); ``val_loss`` is logged at this step."""
        step = self.recorder.record_loss(loss)
        if batch is not None:
            self.extras.batch = batch
        if val_loss is not None:
            self.recorder.record_val(val_loss, step)
        steps, schedule = step + 1, self.schedule
        if steps >= schedule.next_check and schedule.check_due(steps):
            self._check(transient=self._export is not None)  # only a TensorBoard writer reads a check's trends live
        if schedule.expensive_every is not None and schedule.expensive_due(steps):
            self._run_extras()

    def log_val(self, val_loss: torch.Tensor | float, step: int | None = None) -> None:
        """Record a validation loss (at the current step by default) for the overfitting detector. Explicit
        validation losses replace the ones seen in the script's evaluation passes."""
        self.recorder.record_val(val_loss, self.recorder.num_steps - 1 if step is None else int(step))

    def use_captured_batch(self) -> bool:
        """Measure the curvature at :meth:`finalize` on the batch and loss reconstructed from the script's first
        training step (:mod:`deepbasics.doctor.lossbatch`), unless the session has its own ``loss_fn``. What
        ``deepbasics doctor SCRIPT`` does for every model small enough (``CURVATURE_MAX_PARAMS``); returns whether
        it will."""
        watch_losses = self.recorder.losswatch
        batch = watch_losses.batch if watch_losses is not None else None
        if batch is None or self.extras.loss_fn is not None:
            return False
        if sum(p.numel() for p in self.model.parameters() if p.requires_grad) > T.CURVATURE_MAX_PARAMS:
            return False
        self.extras.curvature, self.extras.loss_fn, self.extras.batch = True, batch.loss_fn, (batch.x, batch.y)
        return True

    def _run_extras(self) -> None:
        self.schedule.expensive_ran(self.recorder.num_steps)
        self.extras.run(self.batch_size)

    # ------------------------------------------------------------------------------------------- checking
    def trace(self) -> RunTrace:
        """Everything recorded so far, with the extras' numbers, as a :class:`RunTrace`."""
        trace = self.recorder.trace()
        trace.curvature = self.extras.curvature_result
        trace.noise = self.extras.noise_result
        if isinstance(self.wrapper, nn.parallel.DistributedDataParallel) and trace.batch_size:
            trace.global_batch_size = trace.batch_size * self.gather.info.world_size  # what one step averages
        return trace

    def check(self) -> list[Finding]:
        """Run the detectors now on everything recorded (one host copy) and merge the findings."""
        return self._check(transient=True)

    def _check(self, *, transient: bool) -> list[Finding]:
        """A check; ``transient=False`` (the periodic checks of a run without a TensorBoard writer) leaves out the
        detectors of transient codes, whose findings the next check replaces: the persistent findings and the final
        ones are the same as with every detector (:func:`~deepbasics.doctor.detectors.run_detectors`)."""
        trace = self.trace()
        self._findings = refresh(self._findings, run_detectors(trace, transient=transient))
        if self._export is not None:
            self._export.log(trace, len(self._findings), self.recorder.num_steps)
        if self.recorder.hygiene.failed and not any("practice checks" in n for n in self.notes):
            self.notes.append(f"practice checks stopped after an internal error: {self.recorder.hygiene.failed}")
        return self.gather.combined(self._findings)

    def finalize(self) -> list[Finding]:
        """Run the expensive checks (if enabled and not done at this step) and every detector; return findings.

        In a distributed run the findings then go to rank 0 (:mod:`deepbasics.doctor.gathering`), once per
        recorded step count: rank 0 returns every reporting rank's findings merged, the other ranks their own,
        without waiting. Rank 0 waits at most ``DEEPBASICS_DOCTOR_TIMEOUT`` seconds (default 60) for the others.
        """
        if self.extras.enabled and self.schedule.final_expensive_due(self.recorder.num_steps):
            self._run_extras()
        with suspended():  # the recurrent layers' through-time gradients, once (deepbasics.doctor.recurrent)
            self.recorder.recurrent.measure()
        findings = self.check()
        if self._export is not None:
            self._export.flush()
        if self.gather.due(self.recorder.num_steps):
            findings = self.gather.gather(self._findings, self.notes, self.recorder.num_steps)
        return findings

    @property
    def findings(self) -> list[Finding]:
        """The findings so far, deduplicated per ``(code, where)`` (first step kept, evidence updated)."""
        return self.check()

    # ------------------------------------------------------------------------------------------- output
    def report(self, *, width: int = 110) -> str:
        """The findings as a rich-formatted table (plain text)."""
        title = self.gather.title("deepbasics doctor (watch)")
        return render_findings(self.findings, title=title, notes=self.notes, width=width)

    def meta(self) -> dict[str, Any]:
        """The run's settings: steps, batch size, optimizer and its (current) learning rate, intervals, model class,
        trainable parameters, seconds watched."""
        optimizer = self.optimizer
        seconds = self._seconds + (time.perf_counter() - self._started if self._started is not None else 0.0)
        return {
            "steps": self.num_steps,
            "batch_size": self.batch_size,
            "optimizer": type(optimizer).__name__ if optimizer is not None else None,
            "lr": optimizer.param_groups[0].get("lr") if optimizer is not None else None,
            "every": self.every,
            "layer_every": self.layer_every,
            "dense_layer_records": self.recorder.dense_layer_records,
            "model": type(self.model).__name__,
            "parameters": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
            "seconds": seconds,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: findings, the recorded trace, notes and the run's settings."""
        findings = self.findings
        out = {
            "findings": [f.to_dict() for f in findings],
            "trace": _finite_json(self.trace().to_dict()),
            "notes": list(self.notes),
            "meta": self.meta(),
        }
        distributed = self.gather.to_dict()
        if distributed is not None:
            out["distributed"] = distributed
        return out

    def _html_page(self, title: str | None) -> Any:
        """This result's HTML page (:func:`deepbasics.doctor.html.page_of` calls it)."""
        from .html.pages import session_page  # lazy: matplotlib and jinja2 load only when a report is drawn

        return session_page(self, title)

    def to_html(self, path: str | os.PathLike[str] = "doctor.html", *, title: str | None = None) -> Path:
        """Write the findings, the loss curve and the per-layer panels as one self-contained HTML file (drawn from
        the records kept; no extra cost while training): :mod:`deepbasics.doctor.html`. Returns the path."""
        from .html import write_html  # lazy: matplotlib and jinja2 load only when a report is drawn

        return write_html(self, path, title=title)

    def state_dict(self) -> dict[str, Any]:
        """Plain data to resume the session in a new process: steps, losses, layer records, findings, notes."""
        return {
            **self.recorder.state_dict(),
            "findings": [f.to_dict() for f in self._findings],
            "notes": list(self.notes),
            "curvature": self.extras.curvature_result,
            "noise": self.extras.noise_result,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` into a fresh (not yet attached) session; new records continue after it."""
        self.recorder.load_state_dict(state)
        self._findings = [Finding.from_dict(f) for f in state.get("findings", [])]
        self.notes[:] = list(state.get("notes", []))
        self.extras.curvature_result, self.extras.noise_result = state.get("curvature"), state.get("noise")


def _finite_json(value: Any) -> Any:
    """Replace inf/nan floats by their string names, so the dict is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    return value


def watch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    every: int = 1,
    expensive_every: int | None = None,
    curvature: bool = False,
    noise_scale: bool = False,
    tensorboard: Any = None,
    loss_fn: LossFn | None = None,
    layer_every: int = DEFAULT_EVERY,
    check_every: int = DEFAULT_CHECK_EVERY,
) -> DoctorSession:
    """Watch ``model``'s training; use as a context manager (hooks removed and detectors run on exit)::

        with watch(model, optimizer) as session:
            for x, y in loader:
                optimizer.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); optimizer.step()
                session.step(loss)
        print(session.report())

    Arguments: see :class:`DoctorSession`. Hooks only: training is bit-for-bit what it would be without it.
    """
    return DoctorSession(
        model,
        optimizer,
        every=every,
        layer_every=layer_every,
        check_every=check_every,
        expensive_every=expensive_every,
        curvature=curvature,
        noise_scale=noise_scale,
        tensorboard=tensorboard,
        loss_fn=loss_fn,
    )
