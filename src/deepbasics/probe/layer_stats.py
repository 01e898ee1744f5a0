"""LayerStats: per-layer activation, gradient and update statistics of a training run, read through hooks.

The instruments behind the doctor's vanishing/exploding-gradient, dead-ReLU and saturation findings (FAQ Q3.3;
Glorot & Bengio 2010, "Understanding the difficulty of training deep feedforward neural networks", sec. 3-4,
who plot exactly these per-layer activation and gradient statistics).

Step counting. With an ``optimizer``, step ``k`` is the interval that ends with the ``(k+1)``-th
``optimizer.step()``: activation statistics come from the first training forward of that interval, gradient
norms are read just before ``optimizer.step()`` (so they are the accumulated gradients the optimizer uses), and
``||Δw||`` compares the weights just before and after it. Without an optimizer, each training forward of the
root module starts a new step: gradient norms are read by ``register_post_accumulate_grad_hook`` during the
backward that follows, and ``||Δw||`` compares the weights with those at the next training forward. A
*training forward* is a call of the root module with ``model.training`` and gradients enabled: evaluation
passes (``model.eval()``, ``torch.no_grad()``) are neither counted nor recorded. ``every=k`` records steps
``0, k, 2k, ...`` (with ``dense_records=d``, only the first ``d`` of them: see :func:`recorded_step`); on the other
steps no module hook is installed at all (with an optimizer only its step pre-hook runs, the post-hook being
installed for recorded steps and closures only; without one the root module's forward pre-hook, its forward hook
being installed for recorded forwards only), which is what keeps the overhead low (``benchmarks/probe_overhead.py``).
A recorded step's numbers are stacked into one tensor per dtype when the step ends, rather than one small tensor per
metric.

Guarantees: hooks never modify a tensor, never draw random numbers, run under ``torch.no_grad()`` and never
touch ``requires_grad``; a run with and without LayerStats gives bit-identical parameters, BatchNorm running
statistics and RNG state, dropout included (``tests/test_probe.py``). A recorded step holds a copy of the
trainable parameters (for ``||Δw||``) until it ends. Statistics stay on the model's device until
:meth:`LayerStats.records` (or every ``sync_every`` recorded steps), when they are copied in one batch.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .._checks import check_int, check_module, check_positive, check_real, fail
from .hooks import FunctionalActivationDetector, Watched, first_tensor, watched_modules
from .records import StepLog, activation_moments, aggregate_layers, norm_list, summarize

__all__ = ["LayerStats", "next_recorded", "recorded_step"]

#: Default ``every``. A recorded step costs about 0.5-0.9 of a plain training step on the small digits MLP of
#: ``benchmarks/probe_overhead.py`` (~45 small kernels, launch-bound on CPU), so one step in 20 keeps the overhead
#: near the 5% target there while still giving 10 points over a 200-step run. Use ``every=1`` to see every step.
DEFAULT_EVERY = 20


def recorded_step(step: int, every: int, dense_records: int | None = None) -> bool:
    """Whether step ``step`` (0-based) is recorded: every ``every``-th step, or, with ``dense_records = d``, every
    ``every``-th for the first ``d`` records and then at an interval that doubles each time the step count doubles:

        interval(s) = every                              for s < D = d * every
        interval(s) = every * 2^(k+1)                    for D 2^k <= s < D 2^(k+1)

    so each doubling of the run adds d/2 records (d even) and a run of n steps keeps about
    d + (d/2) log2(n / D) of them instead of n / every: the recording cost per step falls as 1/n once the run is
    long, while a short run is sampled exactly as without ``dense_records``. A pure function of the step, so a
    pre-hook and a post-hook of the same step always agree (and a resumed count gives the same steps).
    """
    return next_recorded(step, every, dense_records) == step


def next_recorded(step: int, every: int, dense_records: int | None = None) -> int:
    """The first step ``>= step`` that :func:`recorded_step` records, in O(1): the next multiple of the interval in
    force at ``step``; a window's end ``D 2^(k+1)`` is a multiple of both its interval and the next one."""
    dense = dense_records * every if dense_records is not None else None
    interval = every if dense is None or step < dense else every << (step // dense).bit_length()
    return -(-step // interval) * interval


_compiling: Callable[[], bool] = getattr(getattr(torch, "compiler", None), "is_compiling", None) or (lambda: False)


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """A hook that fails removes every LayerStats hook (with a ``RuntimeWarning`` and :attr:`LayerStats.failed` set)
    instead of raising into the user's training: an instrument must never stop the run it watches. Inside a
    ``torch.compile`` trace a hook does nothing (dynamo would bake the host-side bookkeeping into the graph and
    fail at run time): a compiled module's layers are simply not recorded."""

    @functools.wraps(method)
    def hook(self: LayerStats, *args: Any) -> Any:
        if self.failed is not None or _compiling():
            return None
        try:
            return method(self, *args)
        except Exception as error:
            self.failed = f"{type(error).__name__}: {error}"
            warnings.warn(f"LayerStats stopped recording after an internal error ({self.failed}).", RuntimeWarning,
                          stacklevel=2)  # fmt: skip
            self.remove()
            return None

    return hook


def _remove_all(handles: list[Any]) -> None:
    for handle in handles:
        handle.remove()
    handles.clear()


class LayerStats:
    """Record per-layer statistics of a training run; detach with :meth:`remove` or a ``with`` block.

    Watched modules: every activation module (``hooks.ACTIVATION_TYPES``: ReLU, LeakyReLU, Sigmoid, Tanh,
    ELU, GELU, SiLU, Softplus, Softmax, ...) and every module owning parameters directly (Linear, Conv,
    BatchNorm, ...), named as in ``model.named_modules()`` (the root is ``"(root)"``).

    Per recorded step and module output ``y`` (batch dim 0; see :func:`~deepbasics.probe.records.activation_stats`):
    ``act_mean``, ``act_std`` for every watched module; for activations also ``zero_frac``, ``dead_frac``
    (units zero for every example of the batch), ``sat_frac`` (bounded activations: output within ``sat_tol``
    of a bound) and, for Sigmoid/Tanh, ``preact_large_frac`` (``|input| > preact_limit``). Per parameter and,
    aggregated as ``sqrt(sum ||.||^2)``, per layer: ``grad_norm`` ``||g||``, ``weight_norm`` ``||w||`` (before
    the update), ``update_norm`` ``||Δw||`` and ``update_ratio`` ``||Δw|| / ||w||``.

    A module called several times in one forward (shared weights) is recorded at every call: the ``k``-th call
    (``k >= 1``) appears as ``"<name>#k"`` with activation metrics only; gradient and weight metrics belong to
    the module's plain name. Functional activations (``torch.relu`` inside a ``forward``) cannot be hooked; the
    first recorded forward looks for them and lists them in :attr:`unsupported` with a warning.

    Args:
        model: the module to watch (at least one trainable parameter).
        every: record every ``every``-th step (default 20); ``every=1`` records all steps.
        dense_records: after this many records the interval grows with the run (:func:`recorded_step`; must be
            even); default None: every ``every``-th step for the whole run.
        optimizer: if given, steps are counted by its ``step()`` (needed with gradient accumulation).
        sync_every: copy the statistics to the host every ``sync_every`` recorded steps (default: only when read).
        sat_tol: distance from a bound that counts as saturated (default 1e-2, in output units).
        preact_limit: ``|pre-activation|`` above which a sigmoid/tanh input counts as large (default 5).
        detect_functional: look for functional activations in the first recorded forward (default True).
        foreach: fuse the parameter norms in ``torch._foreach_norm`` (default True).
    """

    def __init__(
        self,
        model: nn.Module,
        every: int = DEFAULT_EVERY,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        sync_every: int | None = None,
        sat_tol: float = 1e-2,
        preact_limit: float = 5.0,
        detect_functional: bool = True,
        foreach: bool = True,
        dense_records: int | None = None,
    ) -> None:
        self.model = check_module(model)
        self.every = check_int(every, "every", low=1)
        self.dense_records = None if dense_records is None else check_int(dense_records, "dense_records", low=2)
        if self.dense_records is not None and self.dense_records % 2:
            raise fail(ValueError, "dense_records", "an even number (each doubling of the run adds half of them)",
                       dense_records, f"Pass {self.dense_records + 1}.")  # fmt: skip
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise fail(TypeError, "optimizer", "a torch.optim.Optimizer or None", type(optimizer).__name__,
                       "Pass the optimizer that updates this model's parameters.")  # fmt: skip
        self.optimizer = optimizer
        self.sync_every = None if sync_every is None else check_int(sync_every, "sync_every", low=1)
        self.sat_tol = check_positive(sat_tol, "sat_tol")
        self.preact_limit = check_real(preact_limit, "preact_limit", low=0.0, low_inclusive=False)
        self.detect_functional = bool(detect_functional)
        self.foreach = bool(foreach)
        self.unsupported: list[str] = []
        self.failed: str | None = None  # set when a hook failed and the probe stopped (see _guarded)
        self.steps: list[int] = []  # recorded steps, ascending
        self._watched: list[Watched] = watched_modules(model)
        self._params: list[tuple[str, str, nn.Parameter]] = [
            (w.name, f"{w.name}.{pname}" if w.name != "(root)" else pname, p)
            for w in self._watched
            for pname, p in w.module._parameters.items()
            if p is not None and p.requires_grad
        ]
        self._log = StepLog()
        self._order: dict[str, None] = {}  # activation keys in order of first call (dict: ordered set)
        self._step = 0  # current step index
        self._next_at = 0  # the next recorded step (optimizer mode), kept by _advance
        self._armed: int | None = None  # the step whose measurements are being taken
        self._fwd_handles: list[Any] = []
        self._grad_handles: list[Any] = []
        self._calls: dict[str, int] = {}
        self._grads: dict[int, torch.Tensor] = {}
        self._snapshot: list[torch.Tensor] | None = None
        self._detector: FunctionalActivationDetector | None = None
        self._functional_checked = not self.detect_functional
        self._recorded_since_sync = 0
        self._removed = False
        self._handles: list[Any] = []  # permanent hooks
        self._root_handles: list[Any] = []  # optimizer mode: root hooks, only armed around recorded steps
        self._post_handle: Any = None  # optimizer mode: the step post-hook, only around steps whose end matters
        if optimizer is None:  # the root's end hook only while a forward is recorded (_arm_forward)
            self._handles.append(model.register_forward_pre_hook(self._on_root_forward))
        else:
            # One hook runs at every step. Between recorded steps it only counts, without the guard's frames: a step
            # with nothing open and no closure (args is (optimizer,)) ends as it began, so it is counted before it
            # runs. The post-hook is installed only for the steps whose end matters -- a recorded step (||dw||), a
            # closure (LBFGS runs forwards inside the step) -- and removed by the next pre-hook (never inside the
            # post-hooks' own loop): each Python hook costs every step ~5 us on CPU after the step's kernels.
            def pre(optimizer: Any, args: Any, kwargs: Any) -> None:
                if self._step == self._next_at:
                    self._on_optimizer_step(optimizer, args, kwargs)
                elif self._armed is None and len(args) == 1 and not kwargs:
                    if self._post_handle is not None:
                        self._post_handle.remove()
                        self._post_handle = None
                    self._advance()
                    return
                if self._post_handle is None:
                    self._post_handle = optimizer.register_step_post_hook(self._on_optimizer_step_end)

            self._handles.append(optimizer.register_step_pre_hook(pre))
            self._arm_root()

    # ----------------------------------------------------------------------------------------------- hooks
    def _arm_root(self) -> None:
        """Optimizer mode: watch the root module's forward only during a recorded step (nothing otherwise)."""
        if not self._root_handles:
            self._root_handles.append(self.model.register_forward_pre_hook(self._on_root_forward))
            self._root_handles.append(self.model.register_forward_hook(self._on_root_forward_end, always_call=True))

    @_guarded
    def _on_root_forward(self, module: nn.Module, args: Any) -> None:
        """Root forward pre-hook: starts a step (no optimizer) and arms the module hooks on recorded steps."""
        if not (module.training and torch.is_grad_enabled()):
            return
        if self.optimizer is None:
            if self._armed is not None:
                self._finish_step()
            step, self._step = self._step, self._step + 1
            if self._due(step):
                self._begin_step(step)
                self._arm_forward()
                self._arm_grads()
        elif self._due(self._step) and self._armed != self._step:
            self._open(self._step)  # weights and gradients are read by the optimizer pre-hook
            self._arm_forward()

    @_guarded
    def _on_root_forward_end(self, module: nn.Module, args: Any, output: Any) -> None:
        """Root forward hook (also after an exception): disarm the module hooks, log the forward's numbers."""
        if self._detector is not None:
            self._detector.stop()
            self.unsupported.extend(f for f in self._detector.found if f not in self.unsupported)
            if self._detector.found:
                warnings.warn(self._detector.message(), stacklevel=2)
            self._detector = None
        if not self._fwd_handles:
            return
        if self.optimizer is not None:
            _remove_all(self._root_handles)  # the first training forward of the step has been recorded
        _remove_all(self._fwd_handles)

    @_guarded
    def _on_module_forward(self, watched: Watched, module: nn.Module, args: Any, output: Any) -> None:
        y = first_tensor(output)
        if y is None or not y.is_floating_point() or y.numel() == 0:
            return
        calls = self._calls.get(watched.name, 0)
        self._calls[watched.name] = calls + 1
        key = watched.name if calls == 0 else f"{watched.name}#{calls}"
        x = args[0] if watched.preact and args and isinstance(args[0], torch.Tensor) else None
        with torch.no_grad():
            raw, affine = activation_moments(
                y, units=watched.kind == "activation", bounds=watched.bounds, sat_tol=self.sat_tol,
                preact=x, preact_limit=self.preact_limit,
            )  # fmt: skip
        metrics = watched.metrics if x is not None or not watched.preact else watched.metrics[:-1]
        self._log.push([(key, m) for m in metrics], raw, affine)
        self._order.setdefault(key)

    @_guarded
    def _on_grad(self, index: int, param: torch.Tensor) -> None:
        """No-optimizer mode, parameter hook: the latest gradient norm (accumulation overwrites it)."""
        if param.grad is not None:
            with torch.no_grad():
                self._grads[index] = norm_list([param.grad], foreach=False)[0]

    @_guarded
    def _on_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        """Optimizer pre-hook: gradient and weight norms in one fused call, and the weight snapshot."""
        if self._due(self._step):
            if self._armed != self._step:
                self._open(self._step)
            with torch.no_grad():
                have = [i for i, (_, _, p) in enumerate(self._params) if p.grad is not None]
                weights = [p.detach() for _, _, p in self._params]
                norms = norm_list([self._params[i][2].grad for i in have] + weights, foreach=self.foreach)
                keys = [(self._params[i][1], "grad_norm") for i in have]
                self._log.push(keys + [(q, "weight_norm") for _, q, _ in self._params], norms)
                self._snapshot = self._clone(weights)

    @_guarded
    def _on_optimizer_step_end(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._armed == self._step:
            self._finish_step()
        self._advance()

    def _advance(self) -> None:
        """Optimizer mode: the step is over; arm the root hooks if the next one is recorded."""
        self._step += 1
        if self._step > self._next_at:
            self._next_at = next_recorded(self._step, self.every, self.dense_records)
        if self._step == self._next_at:
            self._arm_root()
        elif self._root_handles:  # a recorded step without training forward: do not keep watching
            _remove_all(self._root_handles)

    # ------------------------------------------------------------------------------------------ step logic
    def _due(self, step: int) -> bool:
        return recorded_step(step, self.every, self.dense_records)

    def _begin_step(self, step: int) -> None:
        """No-optimizer mode: weight norms and a weight snapshot (for ``||Δw||``) at a recorded training forward."""
        self._open(step)
        with torch.no_grad():
            weights = [p.detach() for _, _, p in self._params]
            self._log.push([(q, "weight_norm") for _, q, _ in self._params], norm_list(weights, foreach=self.foreach))
            self._snapshot = self._clone(weights)

    def _open(self, step: int) -> None:
        self._armed = step
        self.steps.append(step)

    def _clone(self, weights: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.foreach and hasattr(torch, "_foreach_clone"):
            return list(torch._foreach_clone(weights))
        return [w.clone() for w in weights]

    def _commit(self) -> None:
        """Log the open step's measurements so far (with the no-optimizer gradient norms)."""
        if self._armed is not None:
            if self._grads:
                idx = sorted(self._grads)
                self._log.push([(self._params[i][1], "grad_norm") for i in idx], [self._grads[i] for i in idx])
                self._grads.clear()
            self._log.commit(self._armed)

    def _arm_forward(self) -> None:
        """Hook every watched module for this forward; the first time, also look for functional activations."""
        self._calls.clear()
        for w in self._watched:
            self._fwd_handles.append(
                w.module.register_forward_hook(lambda m, a, o, w=w: self._on_module_forward(w, m, a, o))
            )
        if self.optimizer is None:  # with an optimizer the root's end hook is armed with its pre-hook (_arm_root)
            self._fwd_handles.append(self.model.register_forward_hook(self._on_root_forward_end, always_call=True))
        if not self._functional_checked:
            self._functional_checked = True
            self._detector = FunctionalActivationDetector(self.model)
            self._detector.start()

    def _arm_grads(self) -> None:
        for i, (_, _, p) in enumerate(self._params):
            if p.requires_grad:  # a parameter frozen after LayerStats attached takes no gradient hook
                self._grad_handles.append(p.register_post_accumulate_grad_hook(lambda p, i=i: self._on_grad(i, p)))

    def _finish_step(self) -> None:
        """Measure ``||Δw||`` against the snapshot, log the step, remove the parameter hooks."""
        _remove_all(self._grad_handles)
        if self._snapshot is not None and not self._removed:
            with torch.no_grad():
                params = [p.detach() for _, _, p in self._params]
                if self.foreach:
                    deltas = list(torch._foreach_sub(params, self._snapshot))
                else:
                    deltas = [p - s for p, s in zip(params, self._snapshot, strict=True)]
                self._log.push(
                    [(q, "update_norm") for _, q, _ in self._params], norm_list(deltas, foreach=self.foreach)
                )
        self._snapshot = None
        self._commit()
        self._armed = None
        self._recorded_since_sync += 1
        if self.sync_every is not None and self._recorded_since_sync >= self.sync_every:
            self._log.flush()
            self._recorded_since_sync = 0

    # ------------------------------------------------------------------------------------------ lifecycle
    def remove(self) -> None:
        """Remove every hook (module, parameter, optimizer); the recorded data stays readable. Idempotent.

        An open step keeps its activation and gradient numbers; its ``update_norm`` is not measured.
        """
        if self._removed:
            return
        self._removed = True
        if self._detector is not None:
            self._detector.stop()
            self._detector = None
        if self._armed is not None:
            try:
                self._finish_step()
            except Exception:  # removing never raises: the open step is simply dropped
                self._armed = None
        for handles in (self._handles, self._root_handles, self._fwd_handles, self._grad_handles):
            _remove_all(handles)
        if self._post_handle is not None:
            self._post_handle.remove()
            self._post_handle = None

    def __enter__(self) -> LayerStats:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # ------------------------------------------------------------------------------------------- results
    @property
    def layer_order(self) -> list[str]:
        """Watched layer names from input to output: order of first call in a recorded forward, then the rest."""
        rest = [w.name for w in self._watched if w.name not in self._order]
        return [*self._order, *rest]

    def _table(self) -> dict[str, dict[str, dict[int, float]]]:
        self._commit()  # the open step so far (its update norm comes when it ends)
        return self._log.table()

    def param_records(self) -> dict[str, dict[str, list[float | None]]]:
        """``{parameter name: {"step": [...], metric: [value or None per recorded step]}}`` (``grad_norm``,
        ``weight_norm``, ``update_norm``, ``update_ratio``)."""
        table = self._table()
        out = {}
        for _, qname, _ in self._params:
            metrics = dict(table.get(qname, {}))
            if "update_norm" in metrics:
                w = metrics.get("weight_norm", {})
                metrics["update_ratio"] = {
                    s: (u / w[s] if w.get(s) else None) for s, u in metrics["update_norm"].items()
                }
            out[qname] = self._aligned(metrics)
        return out

    def records(self) -> dict[str, dict[str, list[float | None]]]:
        """``{layer: {"step": [...], metric: [value or None per recorded step]}}``, layers in :attr:`layer_order`.

        All lists of all layers are aligned with :attr:`steps`; ``None`` marks a metric not measured at that
        step (e.g. a parameter without gradient, or the ``update_norm`` of a step still open).
        """
        table = self._table()
        owner = {q: layer for layer, q, _ in self._params}
        layers = aggregate_layers({q: table[q] for q in owner if q in table}, owner)
        out = {}
        for name in self.layer_order:
            metrics = {
                m: d for m, d in table.get(name, {}).items() if m not in ("grad_norm", "weight_norm", "update_norm")
            }
            metrics.update(layers.get(name, {}))
            out[name] = self._aligned(metrics)
        return out

    def _aligned(self, metrics: dict[str, dict[int, Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"step": list(self.steps)}
        out.update({m: [d.get(s) for s in self.steps] for m, d in metrics.items()})
        return out

    def last(self) -> dict[str, dict[str, float | None]]:
        """``{layer: {metric: value at the last recorded step}}`` (``None`` where not measured then)."""
        return {
            name: {m: v[-1] if v else None for m, v in rec.items() if m != "step"}
            for name, rec in self.records().items()
        }

    def summary(self) -> dict[str, dict[str, object]]:
        """Per-layer aggregates in :attr:`layer_order`: ``grad_norm_median``, ``update_ratio_median`` (medians
        over the recorded steps), ``weight_norm_last``, ``dead_frac_last``, ``sat_frac_last``, ... (last value),
        ``steps`` (number of recorded steps with a value); see :func:`~deepbasics.probe.records.summarize`."""
        return summarize(self.records(), self.layer_order)

    def gradient_ratio(self) -> float | None:
        """``median ||g_first|| / median ||g_last||`` over the first and last layer with a >= 2-D weight
        (Linear, Conv) in :attr:`layer_order`: << 1 means vanishing, >> 1 exploding towards the input
        (FAQ Q3.3.a). ``None`` with fewer than two such layers or without gradients."""
        weights = {w.name: getattr(w.module, "weight", None) for w in self._watched}
        names = [n for n in self.layer_order if isinstance(weights.get(n), torch.Tensor) and weights[n].dim() >= 2]
        if len(names) < 2:
            return None
        summary = self.summary()
        first, last = summary[names[0]].get("grad_norm_median"), summary[names[-1]].get("grad_norm_median")
        return None if first is None or not last else first / last

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain, JSON-serialisable data."""
        return {
            "every": self.every,
            "dense_records": self.dense_records,
            "step_source": "optimizer" if self.optimizer is not None else "forward",
            "steps": list(self.steps),
            "layer_order": self.layer_order,
            "layers": self.records(),
            "params": self.param_records(),
            "summary": self.summary(),
            "unsupported": list(self.unsupported),
        }

    def __repr__(self) -> str:
        return f"LayerStats(layers={len(self._watched)}, every={self.every}, recorded_steps={len(self.steps)})"
