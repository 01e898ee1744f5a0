"""Watch a training run with hooks only: ``with watch(model, optimizer) as session: ...; session.step(loss)``.

A :class:`DoctorSession` attaches :class:`deepbasics.probe.LayerStats` (per-layer activation, gradient and update
statistics, kept on the device and copied in batches), one forward pre-hook on the root module that notes the
batch size, and -- without an ``optimizer`` -- a global optimizer step hook that recognises the optimizer
updating this model's parameters. ``session.step(loss)`` stores the loss *as a tensor* (no host
synchronisation); every ``check_every`` steps the pending losses are copied in one batch and the cheap detectors
run (:func:`deepbasics.doctor.detectors.run_detectors`). The expensive ones -- Hessian extremes through
:mod:`deepbasics.curvature`, the gradient noise scale through :mod:`deepbasics.noise` -- run every
``expensive_every`` steps and at the end, only when asked and when a ``loss_fn`` and a batch
(``session.step(loss, batch=(x, y))``) are available.

Guarantees: the session never changes training. Hooks only read tensors under ``torch.no_grad()``; the expensive
checks run in eval mode (no BatchNorm update), under ``torch.random.fork_rng`` with their own generator, and take
gradients with ``torch.autograd.grad`` (``.grad`` untouched). ``tests/test_doctor_watch.py`` checks bit-identical
parameters after 50 steps with dropout and BatchNorm. The cost with the defaults is measured by
``benchmarks/doctor_overhead.py`` (target: at most 5% per step).

Data-parallel runs (``torchrun`` + ``DistributedDataParallel``, or plain ``torch.distributed``): every rank watches
its own replica; a DDP wrapper is looked through, so hooks and layer names are those of the user's module (``0``,
not ``module.0``). At :meth:`DoctorSession.finalize` the findings go to rank 0 through the process group's store
(:mod:`deepbasics.doctor.distributed`: no collective, bounded wait), which merges them per ``(code, where)`` with the
ranks they occurred on (``Finding.ranks``) and which rank went first. With ``noise_scale=True`` on a DDP model the
noise scale comes from DDP's own gradient all-reduce (:class:`deepbasics.noise.DDPNoiseScale`: local norm before,
global norm after, at almost no cost) and the batch-size advice compares it with the global batch.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from .._checks import check_int, check_module, fail
from ..probe import LayerStats
from ..probe.layer_stats import DEFAULT_EVERY
from .detectors import RunTrace, batch_size_advice, merge_findings, run_detectors
from .distributed import default_store, gather_payloads, merge_rank_findings, rank_info, tag_ranks, unwrap_model
from .findings import Finding
from .report import render_findings
from .trace import batchnorm_layers, layer_kinds

__all__ = ["DoctorSession", "findings_from_records", "watch"]

#: Loss-trend findings describe the run *now*: a later check replaces them instead of accumulating.
TRANSIENT_CODES = frozenset(
    {"slow_convergence", "oscillating_loss", "overfitting", "saddle_point", "batch_size_advice"}
)
#: Default interval of the cheap detectors (one host copy of the pending losses per interval).
DEFAULT_CHECK_EVERY = 100
#: Seconds rank 0 waits for the other ranks when the watched block raised: they may be stuck in a collective
#: waiting for this rank, so the exception should not be held up for the full gather timeout.
RAISING_GATHER_TIMEOUT = 10.0


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
    return out


class DoctorSession:
    """A doctor attached to one model's training (see the module docstring); :func:`watch` creates one.

    Args:
        model: the module being trained; a ``DistributedDataParallel`` (or ``DataParallel``) is looked through:
            hooks go on the module inside, whose layer names the findings use.
        optimizer: its optimizer; if None, the first optimizer that steps this model's parameters while the
            session is attached is recorded (for the report: its class and learning rate).
        every: record the loss of every ``every``-th ``step()`` call (default 1: all).
        layer_every: record per-layer statistics every ``layer_every`` steps (default 10, LayerStats' default:
            the overhead target of 5% holds there).
        check_every: run the cheap detectors every ``check_every`` steps (default 100) and at :meth:`finalize`.
        expensive_every: run curvature / noise-scale checks every this many steps (default: only at the end).
        curvature, noise_scale: enable the expensive checks (need ``loss_fn`` and ``step(loss, batch=(x, y))``).
        tensorboard: a ``SummaryWriter``-like object (``add_scalar``) or a log directory; skipped with a warning
            when TensorBoard is not installed.
        loss_fn: ``loss_fn(model(x), y)`` -> scalar mean loss, for the expensive checks.
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
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        check_module(model)
        self.wrapper = model  # what was passed, e.g. a DistributedDataParallel
        self.model = unwrap_model(model)
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise fail(TypeError, "optimizer", "a torch.optim.Optimizer or None", type(optimizer).__name__,
                       "Pass the optimizer that updates this model, or None to detect it.")  # fmt: skip
        self.optimizer = optimizer
        self.every = check_int(every, "every", low=1)
        self.layer_every = check_int(layer_every, "layer_every", low=1)
        self.check_every = check_int(check_every, "check_every", low=1)
        self.expensive_every = None if expensive_every is None else check_int(expensive_every, "expensive_every", low=1)
        self.curvature, self.noise_scale = bool(curvature), bool(noise_scale)
        if loss_fn is not None and not callable(loss_fn):
            raise fail(TypeError, "loss_fn", "a callable (outputs, targets) -> loss", type(loss_fn).__name__,
                       "Pass e.g. torch.nn.CrossEntropyLoss().")  # fmt: skip
        self.loss_fn = loss_fn
        self.notes: list[str] = []
        self.num_steps = 0
        self.losses: list[tuple[int, float]] = []
        self.val_losses: list[tuple[int, float]] = []
        self.curvature_result: dict[str, float] | None = None
        self.noise_result: dict[str, float] | None = None
        self._pending: list[tuple[int, torch.Tensor]] = []
        self._batch: tuple[Any, Any] | None = None
        self._batch_sizes: Counter[int] = Counter()
        self._findings: list[Finding] = []
        self._prior_layers: dict[str, dict[str, list[Any]]] = {}
        self._prior_steps = 0
        self._kinds = layer_kinds(self.model)
        self._batchnorm = batchnorm_layers(self.model)
        self._writer = self._make_writer(tensorboard)
        self._written = 0
        self._stats: LayerStats | None = None
        self._handles: list[Any] = []
        self._expensive_done_at: int | None = None
        self.rank_info = rank_info()
        self._remote: dict[int, list[Finding]] = {}  # the other ranks' findings, gathered at finalize (rank 0)
        self._ranks_reported: list[int] | None = None
        self._gathered_at: int | None = None
        self._gather_timeout: float | None = None
        self._ddp_noise: Any = None  # deepbasics.noise.DDPNoiseScale (DDP model, noise_scale=True)

    # ------------------------------------------------------------------------------------------- lifecycle
    def attach(self) -> DoctorSession:
        """Install the hooks (idempotent). Returns ``self``."""
        if self._stats is not None:
            return self
        self._stats = LayerStats(self.model, every=self.layer_every, optimizer=self.optimizer)
        self._handles.append(self.model.register_forward_pre_hook(self._on_forward))
        if self.optimizer is None:
            self._params = {id(p) for p in self.model.parameters()}
            self._handles.append(register_optimizer_step_post_hook(self._on_any_step))
        self.rank_info = rank_info()
        if self.rank_info.distributed:
            default_store()  # remembered now: a script may destroy its process group before finalize
        if self.noise_scale and isinstance(self.wrapper, nn.parallel.DistributedDataParallel):
            self._attach_ddp_noise()
        return self

    def _attach_ddp_noise(self) -> None:
        from ..noise import DDPNoiseScale  # lazy: data-parallel runs only

        try:
            self._ddp_noise = DDPNoiseScale(self.wrapper)
        except (RuntimeError, ValueError) as error:  # DDP takes one communication hook, e.g. the script's own
            self.notes.append(
                f"noise scale from DDP's all-reduce skipped ({error}); with loss_fn and session.step(loss, "
                "batch=(x, y)) it is measured on the batches instead."
            )

    def detach(self) -> None:
        """Remove every hook; the recorded data stays (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self._stats is not None:
            self._stats.remove()
        if self._ddp_noise is not None:
            self._ddp_noise.remove()  # DDP keeps the hook; it now only averages

    def __enter__(self) -> DoctorSession:
        return self.attach()

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.detach()
        if exc_type is not None:
            self._gather_timeout = RAISING_GATHER_TIMEOUT
        self.finalize()

    # --------------------------------------------------------------------------------------------- hooks
    def _on_forward(self, module: nn.Module, args: Any) -> None:
        x = args[0] if args else None
        if module.training and torch.is_grad_enabled() and isinstance(x, torch.Tensor) and x.dim() > 0:
            self._batch_sizes[int(x.shape[0])] += 1

    def _on_any_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self.optimizer is None and any(id(p) in self._params for g in optimizer.param_groups for p in g["params"]):
            self.optimizer = optimizer

    # ------------------------------------------------------------------------------------------ feeding
    def step(self, loss: torch.Tensor | float | None = None, *, batch: tuple[Any, Any] | None = None,
             val_loss: torch.Tensor | float | None = None) -> None:  # fmt: skip
        """Mark the end of a training step; ``loss`` is kept without a host synchronisation. ``batch=(x, y)``
        enables the expensive checks (the last batch given is used); ``val_loss`` is logged at this step."""
        step = self.num_steps
        self.num_steps += 1
        if loss is not None and step % self.every == 0:
            if isinstance(loss, torch.Tensor):
                if loss.numel() != 1:
                    raise fail(ValueError, "loss", "a scalar loss", f"shape {tuple(loss.shape)}",
                               "Pass the mean loss of the batch (reduction='mean').")  # fmt: skip
                value = loss.detach()
                self._pending.append((step, value.reshape(()) if value.dim() else value))
            else:
                self.losses.append((step, float(loss)))
        if batch is not None:
            self._batch = batch
        if val_loss is not None:
            self.log_val(val_loss, step=step)
        if self.num_steps % self.check_every == 0:
            self.check()
        if self.expensive_every is not None and self.num_steps % self.expensive_every == 0:
            self._expensive()

    def log_val(self, val_loss: torch.Tensor | float, step: int | None = None) -> None:
        """Record a validation loss (at the current step by default) for the overfitting detector."""
        value = float(val_loss.detach()) if isinstance(val_loss, torch.Tensor) else float(val_loss)
        self.val_losses.append((self.num_steps - 1 if step is None else int(step), value))

    def _flush(self) -> None:
        """Copy the pending loss tensors to the host: one ``tolist`` per device."""
        if not self._pending:
            return
        by_device: dict[torch.device, list[tuple[int, torch.Tensor]]] = {}
        for step, t in self._pending:
            by_device.setdefault(t.device, []).append((step, t))
        for items in by_device.values():
            values = torch.stack([t.to(torch.float64) for _, t in items]).tolist()
            self.losses.extend((s, v) for (s, _), v in zip(items, values, strict=True))
        self.losses.sort(key=lambda p: p[0])
        self._pending.clear()

    # ------------------------------------------------------------------------------------------ checking
    @property
    def stats(self) -> LayerStats | None:
        """The :class:`~deepbasics.probe.LayerStats` probe (None before :meth:`attach`)."""
        return self._stats

    @property
    def batch_size(self) -> int | None:
        """The most frequent training batch size seen (ties: the larger), or None."""
        if not self._batch_sizes:
            return None
        top = max(self._batch_sizes.values())
        return max(size for size, n in self._batch_sizes.items() if n == top)

    def trace(self) -> RunTrace:
        """Everything recorded so far as a :class:`~deepbasics.doctor.detectors.RunTrace` (flushes the losses)."""
        self._flush()
        layers: dict[str, dict[str, list[Any]]] = {
            k: {m: list(v) for m, v in r.items()} for k, r in self._prior_layers.items()
        }
        order: list[str] = list(layers)
        if self._stats is not None:
            for name, rec in self._stats.records().items():
                rec = dict(rec)
                rec["step"] = [s + self._prior_steps for s in rec.get("step", [])]
                if name in layers:
                    old = layers[name]
                    length = len(old.get("step", []))
                    for metric in set(old) | set(rec):
                        added = rec.get(metric, [None] * len(rec["step"]))
                        old[metric] = old.get(metric, [None] * length) + list(added)
                else:
                    layers[name] = {m: list(v) for m, v in rec.items()}
            order = [*self._stats.layer_order, *[n for n in order if n not in self._stats.layer_order]]
        return RunTrace(
            losses=list(self.losses),
            val_losses=sorted(self.val_losses),
            layers=layers,
            order=order,
            kinds=dict(self._kinds),
            batch_size=self.batch_size,
            batchnorm_layers=list(self._batchnorm) if self.model.training or self._batch_sizes else [],
            curvature=self.curvature_result,
            noise=self.noise_result,
        )

    def check(self) -> list[Finding]:
        """Run the cheap detectors now on everything recorded (one host copy) and merge the findings."""
        trace = self.trace()
        fresh = self._global_batch_advice(run_detectors(trace), trace)
        kept = [f for f in self._findings if f.code not in TRANSIENT_CODES]
        self._findings = merge_findings(kept, fresh)
        self._log_tensorboard(trace)
        return self._combined()

    def _global_batch_advice(self, fresh: list[Finding], trace: RunTrace) -> list[Finding]:
        """Under DDP the optimizer steps on the global batch (world size x the per-rank batch): the critical batch
        size is compared with that one, not with the batch one rank's forward sees."""
        if not (isinstance(self.wrapper, nn.parallel.DistributedDataParallel) and trace.noise and trace.batch_size):
            return fresh
        noise = trace.noise
        global_batch = trace.batch_size * self.rank_info.world_size
        advice = batch_size_advice(global_batch, noise.get("b_simple"), noise.get("stderr"))
        return [f for f in fresh if f.code != "batch_size_advice"] + advice

    def _combined(self) -> list[Finding]:
        """This rank's findings (tagged with its rank in a distributed run), merged with the other ranks' once
        :meth:`finalize` gathered them (rank 0)."""
        if not self.rank_info.distributed:
            return list(self._findings)
        own = tag_ranks(self._findings, self.rank_info.rank)
        return merge_rank_findings({self.rank_info.rank: own, **self._remote}) if self._remote else own

    def finalize(self) -> list[Finding]:
        """Run the expensive checks (if enabled and not done at this step) and every detector; return findings.

        In a distributed run the findings then go to rank 0 (:mod:`deepbasics.doctor.distributed`), once per
        recorded step count: rank 0 returns every reporting rank's findings merged, the other ranks their own,
        without waiting. Rank 0 waits at most ``DEEPBASICS_DOCTOR_TIMEOUT`` seconds (default 60) for the others.
        """
        if (self.curvature or self.noise_scale) and self._expensive_done_at != self.num_steps:
            self._expensive()
        findings = self.check()
        if self._writer is not None and hasattr(self._writer, "flush"):
            self._writer.flush()
        if self.rank_info.distributed and self._gathered_at != self.num_steps:
            findings = self._gather()
        return findings

    def _gather(self) -> list[Finding]:
        """Send this rank's findings and notes to rank 0; there, merge every rank's (see :meth:`finalize`)."""
        info = self.rank_info
        self._gathered_at = self.num_steps
        own = tag_ranks(self._findings, info.rank)
        payload = {"findings": [f.to_dict() for f in own], "notes": list(self.notes), "steps": self.num_steps}
        gathered = gather_payloads(payload, timeout=self._gather_timeout, info=info)
        if gathered is None:
            return own
        self._remote = {r: [Finding.from_dict(d) for d in p["findings"]] for r, p in gathered.items() if r != info.rank}
        self._ranks_reported = sorted(gathered)
        own_notes = set(payload["notes"])
        for r in self._ranks_reported:
            for note in gathered[r].get("notes", []) if r != info.rank else ():
                if note not in own_notes and f"rank {r}: {note}" not in self.notes:
                    self.notes.append(f"rank {r}: {note}")
        missing = sorted(set(range(info.world_size)) - set(gathered))
        if missing:
            self.notes.append(
                f"rank(s) {missing} did not report within the timeout (crashed, killed or still training): "
                "their findings are missing."
            )
        return self._combined()

    @property
    def ranks_reported(self) -> list[int] | None:
        """On rank 0 of a distributed run after :meth:`finalize`: the ranks whose findings are merged in."""
        return None if self._ranks_reported is None else list(self._ranks_reported)

    @property
    def findings(self) -> list[Finding]:
        """The findings so far, deduplicated per ``(code, where)`` (first step kept, evidence updated)."""
        return self.check()

    def _expensive(self) -> None:
        """Curvature and noise scale on the last batch given, without touching training (module docstring)."""
        self._expensive_done_at = self.num_steps
        if not (self.curvature or self.noise_scale):
            return
        if self.noise_scale and self._ddp_noise is not None:
            self._read_ddp_noise()
            if not self.curvature:
                return
        if self.loss_fn is None or self._batch is None:
            note = "curvature/noise-scale checks skipped: pass loss_fn to watch() and batch=(x, y) to session.step()."
            if note not in self.notes:
                self.notes.append(note)
            return
        from .measure import measure_curvature, measure_noise_scale  # lazy: curvature/noise only when used

        x, y = self._batch
        devices = [self.model_device.index or 0] if self.model_device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if self.curvature:
                result, note = measure_curvature(self.model, self.loss_fn, x, y)
                self.curvature_result = result or self.curvature_result
                if note:
                    self.notes.append(note)
            if self.noise_scale and self._ddp_noise is None:
                result, note = measure_noise_scale(self.model, self.loss_fn, x, y, self.batch_size)
                self.noise_result = result or self.noise_result
                if note:
                    self.notes.append(note)

    def _read_ddp_noise(self) -> None:
        """B_simple from DDP's all-reduce (:class:`deepbasics.noise.DDPNoiseScale`): no extra forward or backward."""
        try:
            scale = self._ddp_noise.estimate()
        except ValueError as error:  # fewer measured steps than one exchange
            note = f"noise scale skipped: {error}"
            if note not in self.notes:
                self.notes.append(note)
            return
        self.noise_result = {
            "b_simple": scale.b_simple,
            "stderr": scale.stderr,
            "g2": scale.g2,
            "trace_sigma": scale.trace_sigma,
            "b_small": scale.b_small,
            "b_big": scale.b_big,
            "measurements": scale.num_measurements,
            "batch_size": scale.b_big,
            "source": "ddp_allreduce",
        }

    @property
    def model_device(self) -> torch.device:
        """The device of the model's first parameter."""
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------------------------------ output
    def report(self, *, width: int = 110) -> str:
        """The findings as a rich-formatted table (plain text)."""
        title = "deepbasics doctor (watch)"
        info = self.rank_info
        if info.distributed:
            ranks = ", ".join(map(str, self._ranks_reported or [info.rank]))
            title = f"deepbasics doctor (watch; rank {info.rank} of {info.world_size}; findings of ranks {ranks})"
        return render_findings(self.findings, title=title, notes=self.notes, width=width)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: findings, the recorded trace, notes and the run's settings."""
        findings = self.findings
        optimizer = self.optimizer
        out = {
            "findings": [f.to_dict() for f in findings],
            "trace": _finite_json(self.trace().to_dict()),
            "notes": list(self.notes),
            "meta": {
                "steps": self.num_steps,
                "batch_size": self.batch_size,
                "optimizer": type(optimizer).__name__ if optimizer is not None else None,
                "lr": optimizer.param_groups[0].get("lr") if optimizer is not None else None,
                "every": self.every,
                "layer_every": self.layer_every,
            },
        }
        info = self.rank_info
        if info.distributed:
            reported = self.ranks_reported
            out["distributed"] = {
                "rank": info.rank,
                "world_size": info.world_size,
                "ranks_reported": reported,
                "missing": None if reported is None else sorted(set(range(info.world_size)) - set(reported)),
            }
        return out

    def state_dict(self) -> dict[str, Any]:
        """Plain data to resume the session in a new process: steps, losses, layer records, findings, notes."""
        trace = self.trace()
        return {
            "num_steps": self.num_steps,
            "losses": list(self.losses),
            "val_losses": list(self.val_losses),
            "layers": trace.layers,
            "findings": [f.to_dict() for f in self._findings],
            "notes": list(self.notes),
            "batch_sizes": dict(self._batch_sizes),
            "curvature": self.curvature_result,
            "noise": self.noise_result,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` into a fresh (not yet attached) session; new records continue after it."""
        if self._stats is not None and self._stats.steps:
            raise fail(RuntimeError, "load_state_dict", "a session that has not recorded yet", "a recording session",
                       "Create a new DoctorSession, load the state, then attach it.")  # fmt: skip
        missing = {"num_steps", "losses", "layers"} - set(state)
        if missing:
            raise fail(KeyError, "state", f"keys {sorted(missing)}", sorted(state), "Pass DoctorSession.state_dict().")
        self.num_steps = self._prior_steps = int(state["num_steps"])
        self.losses = [(int(s), float(v)) for s, v in state["losses"]]
        self.val_losses = [(int(s), float(v)) for s, v in state.get("val_losses", [])]
        self._prior_layers = {k: {m: list(v) for m, v in r.items()} for k, r in state["layers"].items()}
        self._findings = [Finding.from_dict(f) for f in state.get("findings", [])]
        self.notes = list(state.get("notes", []))
        self._batch_sizes = Counter({int(k): int(v) for k, v in state.get("batch_sizes", {}).items()})
        self.curvature_result, self.noise_result = state.get("curvature"), state.get("noise")

    # ------------------------------------------------------------------------------------------ tensorboard
    def _make_writer(self, tensorboard: Any) -> Any:
        if tensorboard is None:
            return None
        if hasattr(tensorboard, "add_scalar"):
            return tensorboard
        if isinstance(tensorboard, (str, os.PathLike)):
            try:
                from torch.utils.tensorboard import SummaryWriter  # lazy: optional extra
            except ImportError:
                warnings.warn(
                    "watch(tensorboard=...): TensorBoard is not installed, so nothing is written. "
                    "Install it with `pip install deepbasics[tensorboard]`.",
                    stacklevel=3,
                )
                return None
            return SummaryWriter(log_dir=os.fspath(tensorboard))
        raise fail(TypeError, "tensorboard", "a SummaryWriter, a log directory or None", type(tensorboard).__name__,
                   "Pass torch.utils.tensorboard.SummaryWriter(...) or a path.")  # fmt: skip

    def _log_tensorboard(self, trace: RunTrace) -> None:
        if self._writer is None:
            return
        for step, value in trace.losses[self._written :]:
            if math.isfinite(value):
                self._writer.add_scalar("doctor/loss", value, step)
        self._written = len(trace.losses)
        for name, rec in trace.layers.items():
            steps = rec.get("step", [])
            for metric in ("grad_norm", "update_ratio", "dead_frac", "sat_frac"):
                values = rec.get(metric, [])
                if values and values[-1] is not None and steps and math.isfinite(values[-1]):
                    self._writer.add_scalar(f"doctor/{metric}/{name}", values[-1], steps[-1])
        self._writer.add_scalar("doctor/findings", len(self._findings), self.num_steps)


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
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
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
