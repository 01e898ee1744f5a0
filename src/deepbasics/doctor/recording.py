"""Recording a watched run: the hooks and the plain records they fill (losses, layer statistics, practice).

:class:`Recorder` owns every hook a session installs and turns what they saw into a
:class:`~deepbasics.doctor.records.RunTrace`:

- :class:`deepbasics.probe.LayerStats`: per-layer activation, gradient and update statistics every ``layer_every``
  steps for the first :data:`DENSE_LAYER_RECORDS` records, then at an interval that doubles with the run
  (:func:`deepbasics.probe.layer_stats.recorded_step`), kept on the device and copied in batches;
- one forward pre-hook on the model (the root module), armed on the first forward and then at the recorded steps
  only (a hook on the root costs every forward the slow path of ``Module.__call__``): the batch size of a
  training forward, sampled;
- :class:`~deepbasics.doctor.hygiene.Hygiene`: the gradient and optimizer-step bookkeeping of the practice codes,
  which also recognises the optimizer that steps this model when none was given;
- the loss calls (:class:`~deepbasics.doctor.losstap.LossWatch`, when ``intercept_losses``): output activations
  and the script's evaluation passes;
- the first forward's output scales and the first backward passes' weight gradients (:mod:`.firststeps`): what a
  run that overflows at once leaves of how it got there;
- the first steps' view of the setup (:mod:`.graphscan`): a naive softmax in the first losses' autograd graphs, and
  the per-feature moments of the inputs of the first sampled training forwards (what ``diagnose``'s static checks
  see before training);
- the loss of each ``step``: read at once on the CPU, kept *as a tensor* on an accelerator (no host
  synchronisation) until :meth:`Recorder.flush`, which copies the pending losses with one ``tolist`` per device;
  validation losses given explicitly, or seen in the script's evaluation passes.

A recorder never changes training: its hooks read tensors under ``torch.no_grad()`` and draw no random numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .._checks import fail
from ..probe import LayerStats
from ..probe.layer_stats import next_recorded, recorded_step
from .firststeps import FirstSteps
from .graphscan import SCAN_LOSSES, GraphScan, InputMoments
from .hygiene import Hygiene
from .lossbatch import expect
from .losstap import LossWatch
from .records import RunTrace, StaticFacts
from .recurrent import RecurrentProbe
from .trace import batchnorm_layers, layer_kinds

__all__ = ["CAPTURE_FORWARDS", "DENSE_LAYER_RECORDS", "Recorder"]

#: Layer records taken every ``layer_every`` steps before the interval starts doubling with the run (5 more records
#: per doubling). A recorded step costs about one plain step on the digits MLP of ``benchmarks/doctor_overhead.py``
#: (1.4 ms against 1.2 ms: ~20 small kernels and the weight snapshot), so at a fixed interval of 20 it alone is 5-6%
#: of the run; thinned, a 3,000-step run keeps 29 records (1.1%) instead of 150, and the first 200 steps, where
#: short runs and the startup pathologies live, are sampled as before.
DENSE_LAYER_RECORDS = 10

#: Training forwards whose output is offered to the loss reconstruction (:mod:`.lossbatch`) at most.
CAPTURE_FORWARDS = 4


class Recorder:
    """The hooks and records of one watched model (module docstring).

    Args:
        model: the (unwrapped) module. optimizer: its optimizer, or None to recognise it from its steps.
        every: keep the loss of every ``every``-th step. layer_every: LayerStats' interval, ``dense_layer_records``
        records at that interval and then thinned (None: the fixed interval for the whole run).
        intercept_losses: watch the loss calls (output activations, evaluation passes); ``diagnose`` turns it off.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None,
        *,
        every: int,
        layer_every: int,
        intercept_losses: bool = True,
        dense_layer_records: int | None = DENSE_LAYER_RECORDS,
    ) -> None:
        self.model = model
        self.dense_layer_records = dense_layer_records
        self.given_optimizer = optimizer
        self.every, self.layer_every = every, layer_every
        self.num_steps = 0
        self.losses: list[tuple[int, float]] = []
        self.val_losses: list[tuple[int, float]] = []
        self.batch_sizes: Counter[int] = Counter()
        self.kinds = layer_kinds(model)
        self.batchnorm = batchnorm_layers(model)
        self.stats: LayerStats | None = None
        self.hygiene = Hygiene(model, probe_every=layer_every, dense_records=dense_layer_records)
        self.losswatch = LossWatch(model, lambda: self.num_steps - 1) if intercept_losses else None
        self.graphscan = GraphScan(model)
        self.inputs = InputMoments()
        self.recurrent = RecurrentProbe(model)
        self.first = FirstSteps(model)
        self._pending: list[tuple[int, torch.Tensor]] = []
        self._early = True  # the first steps' probes are still on (see _early_step)
        self._next_sample = 0  # the next step at which the root sampler is armed (record_loss)
        self._prior_layers: dict[str, dict[str, list[Any]]] = {}
        self._prior_steps = 0
        self._attached = False
        self._sampler: Any = None  # the root pre-hook, while armed
        self._first_output: Any = None  # a root forward hook for the first training forwards (lossbatch)
        self._captures = 0
        self.adversarial = False  # trained against another trained model (deepbasics.doctor.script)

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        """The optimizer given, else the first one seen stepping this model's parameters."""
        return self.given_optimizer if self.given_optimizer is not None else self.hygiene.optimizer

    # ------------------------------------------------------------------------------------------ lifecycle
    def attach(self) -> None:
        """Install the hooks (idempotent)."""
        if self.stats is not None:
            return
        self.stats = LayerStats(
            self.model, every=self.layer_every, optimizer=self.given_optimizer, dense_records=self.dense_layer_records
        )
        self._attached = True
        self._arm_sampler()
        self.hygiene.attach()
        self.first.attach()
        if self.losswatch is not None:
            self.losswatch.attach()
            self._first_output = self.model.register_forward_hook(self._on_first_output)

    def detach(self) -> None:
        """Remove every hook; the records stay (idempotent)."""
        self._attached = False
        if self._sampler is not None:
            self._sampler.remove()
            self._sampler = None
        if self._first_output is not None:
            self._first_output.remove()
            self._first_output = None
        if self.stats is not None:
            self.stats.remove()
        self.hygiene.detach()
        self.first.detach()
        self.graphscan.remove()
        self.recurrent.disarm()
        if self.losswatch is not None:
            self.losswatch.detach()

    @property
    def attached(self) -> bool:
        """Whether the hooks are installed."""
        return self._attached

    # ------------------------------------------------------------------------------------------ events
    def _arm_sampler(self) -> None:
        if self._sampler is None and self._attached:
            self._sampler = self.model.register_forward_pre_hook(self._sample_forward)

    def _sample_forward(self, module: nn.Module, args: Any) -> None:
        """The armed root pre-hook: record one training forward, then disarm until the next sample."""
        if self.on_forward(module, args) and self._sampler is not None:
            self._sampler.remove()  # safe inside the hook: Module.__call__ iterates over a copy of its hooks
            self._sampler = None

    def _on_first_output(self, module: nn.Module, args: Any, output: Any) -> None:
        """A forward with gradients on, until a loss call matched one (at most ``CAPTURE_FORWARDS``): note its input
        and output for the loss reconstruction (:mod:`.lossbatch`). Not only the first: a script that fetched its
        loss function before the doctor attached (``F.mse_loss(model(x), y)`` evaluates ``F.mse_loss`` first) makes
        its first loss call unseen."""
        if not torch.is_grad_enabled() or self.losswatch is None:
            return
        self._captures += 1
        if self.losswatch.batch is None:
            self.losswatch.expected = expect(args[0] if args else None, output)
        if (self.losswatch.batch is not None or self._captures >= CAPTURE_FORWARDS) and self._first_output is not None:
            self.losswatch.expected = None
            self._first_output.remove()  # safe inside the hook: Module.__call__ iterates over a copy of its hooks
            self._first_output = None

    def on_forward(self, module: nn.Module, args: Any) -> bool:
        """A root forward begins: the batch size of a training forward (returns whether it was one)."""
        if not (module.training and torch.is_grad_enabled()):
            return False
        x = args[0] if args else None
        if isinstance(x, torch.Tensor) and x.dim() > 0:
            self.batch_sizes[int(x.shape[0])] += 1
            self.inputs.add(x)
        self.graphscan.on_training_forward()
        if self.recurrent.modules:
            self.recurrent.arm()
        return True

    def record_loss(self, loss: torch.Tensor | float | None) -> int:
        """Count a step; keep ``loss`` (a scalar tensor, without a host sync, or a float). Returns the step index."""
        step = self.num_steps
        self.num_steps = step + 1
        if self._early:  # the first steps' probes still want the loss (this runs at every step: kept lean)
            self._early_step(loss)
        watch_losses = self.losswatch
        if watch_losses is not None and watch_losses.in_pass:
            watch_losses.on_backward()
        if step + 1 >= self._next_sample:
            if recorded_step(step + 1, self.layer_every, self.dense_layer_records):
                self._arm_sampler()
            self._next_sample = next_recorded(step + 2, self.layer_every, self.dense_layer_records)
        if loss is not None and step % self.every == 0:
            if isinstance(loss, torch.Tensor):
                if loss.numel() != 1:
                    raise fail(ValueError, "loss", "a scalar loss", f"shape {tuple(loss.shape)}",
                               "Pass the mean loss of the batch (reduction='mean').")  # fmt: skip
                if loss.is_cpu:  # no device to wait for: one read now beats a copy per loss later
                    self.losses.append((step, loss.item()))
                else:
                    self._pending.append((step, loss.detach()))
            else:
                self.losses.append((step, float(loss)))
        return step

    def _early_step(self, loss: torch.Tensor | float | None) -> None:
        """The first steps: the first-steps probe leaves once its backward passes are recorded, the first losses'
        graphs are scanned (:mod:`.graphscan`); when both are over, :meth:`record_loss` stops calling this."""
        if self.first.done and self.first.hooked:  # its backward passes are recorded: no hook left on the weights
            self.first.detach()
        if isinstance(loss, torch.Tensor) and self.graphscan.scanned < SCAN_LOSSES:
            self.graphscan.on_loss(loss)
        self._early = self.first.hooked or self.graphscan.scanned < SCAN_LOSSES

    def record_val(self, value: torch.Tensor | float, step: int) -> None:
        """An explicit validation loss; from now on the tapped evaluation passes are not used."""
        self.val_losses.append((int(step), float(value.detach()) if isinstance(value, torch.Tensor) else float(value)))
        if self.losswatch is not None and not self.losswatch.explicit_val:
            self.losswatch.drop_tapped()

    def flush(self) -> None:
        """Copy the pending loss tensors (an accelerator's: CPU losses are read at once) to the host: one stack and
        one ``tolist`` per device and dtype."""
        if not self._pending:
            return
        groups: dict[tuple[torch.device, torch.dtype], list[tuple[int, torch.Tensor]]] = {}
        for step, t in self._pending:
            groups.setdefault((t.device, t.dtype), []).append((step, t))
        for items in groups.values():
            values = torch.stack([t.reshape(()) for _, t in items]).tolist()  # tolist: exact Python floats
            self.losses.extend((s, float(v)) for (s, _), v in zip(items, values, strict=True))
        self.losses.sort(key=lambda p: p[0])
        self._pending.clear()

    # ------------------------------------------------------------------------------------------ records
    @property
    def batch_size(self) -> int | None:
        """The most common batch size of the training forwards (None before the first)."""
        return self.batch_sizes.most_common(1)[0][0] if self.batch_sizes else None

    def layers(self) -> tuple[dict[str, dict[str, list[Any]]], list[str]]:
        """Per-layer records (those of a loaded state first) and the layer order, input side first."""
        layers = {k: {m: list(v) for m, v in rec.items()} for k, rec in self._prior_layers.items()}
        order = list(layers)
        if self.stats is not None:
            for name, rec in self.stats.records().items():
                rec = dict(rec)
                if self._prior_layers:
                    rec["step"] = [s + self._prior_steps for s in rec["step"]]
                if name in layers:
                    old = layers[name]
                    length = len(old.get("step", []))
                    for metric in set(old) | set(rec):
                        added = rec.get(metric, [None] * len(rec["step"]))
                        old[metric] = old.get(metric, [None] * length) + list(added)
                else:
                    layers[name] = {m: list(v) for m, v in rec.items()}
            order = [*self.stats.layer_order, *[n for n in order if n not in self.stats.layer_order]]
        return layers, order

    def trace(self) -> RunTrace:
        """Everything recorded so far as a :class:`RunTrace` (one host copy of the pending numbers)."""
        self.flush()
        layers, order = self.layers()
        val = list(self.val_losses)
        loss_calls = []
        if self.losswatch is not None:
            tapped, loss_calls = self.losswatch.records()
            if not self.losswatch.explicit_val:
                val += tapped
        hygiene, coverage = self.hygiene.records()
        means, stds = self.inputs.statistics()
        static = None
        if self.graphscan.sites or means:  # what the first steps showed of the setup (module docstring)
            static = StaticFacts(naive_softmax_sites=list(self.graphscan.sites), input_means=means, input_stds=stds)
        return RunTrace(
            losses=list(self.losses),
            val_losses=sorted(val),
            layers=layers,
            order=order,
            kinds=dict(self.kinds),
            batch_size=self.batch_size,
            batchnorm_layers=list(self.batchnorm) if self.model.training or self.batch_sizes else [],
            hygiene=hygiene,
            coverage=coverage,
            loss_calls=loss_calls,
            adversarial=self.adversarial,
            static=static,
            recurrent=dict(self.recurrent.result),
            first_steps=self.first.result(),
        )

    def state_dict(self) -> dict[str, Any]:
        """Plain data: steps, losses, validation losses, layer records, batch sizes."""
        self.flush()
        return {
            "num_steps": self.num_steps,
            "losses": list(self.losses),
            "val_losses": list(self.val_losses),
            "layers": self.layers()[0],
            "batch_sizes": dict(self.batch_sizes),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` before attaching; new records continue after it."""
        if self.stats is not None and self.stats.steps:
            raise fail(RuntimeError, "load_state_dict", "a session that has not recorded yet", "a recording session",
                       "Create a new DoctorSession, load the state, then attach it.")  # fmt: skip
        missing = {"num_steps", "losses", "layers"} - set(state)
        if missing:
            raise fail(KeyError, "state", f"keys {sorted(missing)}", sorted(state), "Pass DoctorSession.state_dict().")
        self.num_steps = self._prior_steps = int(state["num_steps"])
        self.losses = [(int(s), float(v)) for s, v in state["losses"]]
        self.val_losses = [(int(s), float(v)) for s, v in state.get("val_losses", [])]
        self._prior_layers = {k: {m: list(v) for m, v in r.items()} for k, r in state["layers"].items()}
        self.batch_sizes = Counter({int(k): int(v) for k, v in state.get("batch_sizes", {}).items()})
