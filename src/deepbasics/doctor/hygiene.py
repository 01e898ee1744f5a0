"""Following one model's gradients through backward passes and optimizer steps: the practice records.

:class:`Hygiene` watches a model with three hooks and produces :class:`~deepbasics.doctor.records.StepHygiene`
(``missing_zero_grad``, ``eval_mode_training``) and :class:`~deepbasics.doctor.records.ParameterCoverage`
(``parameters_not_updated``).

**Zeroing** (a state machine on one *sentinel*, the model's smallest trainable tensor; re-chosen among the tensors
that do receive gradients if it receives none by the first steps). A post-accumulate-grad hook sees the sentinel's
``.grad`` right after each backward pass added to it; global optimizer step hooks see every step of the optimizer
that holds it. With ``g`` the gradient tensor and ``v`` its version counter (bumped by every in-place change):

- after a step, the first accumulation *carries* the previous content when ``g`` is the very tensor the step used
  and ``v`` rose by exactly one (only the accumulation touched it: no ``zero_grad``, no ``.grad = None``);
- a later accumulation keeps that state only if nothing touched ``g`` since the previous accumulation, so
  gradient accumulation (zero, k backward passes, one step) starts fresh, and a second model's optimizer that
  dirties these gradients before they are zeroed (a GAN's generator step) does not count;
- at the step, a carried state is a *carried* step; ``g`` None after a backward reached it is a *wiped* step
  (``zero_grad(set_to_none=True)`` between ``backward()`` and ``step()``); ``g`` changed in place since the last
  accumulation is either legitimate (clipping, AMP unscaling, a DDP all-reduce) or ``zero_()``: the step then
  counts as wiped only if ``g`` is exactly zero while the accumulated gradient was not (read lazily, at the next
  check, from two small reductions on the sentinel).

A step with no backward pass before it (LBFGS evaluates its closure inside ``step()``) is judged when the step ends.
The gradient is followed in *windows* only, each from the end of one step to the next, for the first
``JUDGE_FIRST`` steps and at the steps LayerStats records (every ``probe_every``-th for the first
``dense_records``, then thinning as the run grows: :func:`~deepbasics.probe.layer_stats.recorded_step`): the verdicts
rest on that sample of steps, and the window's extra work falls on a step that already pays for a layer record.

**Mode**: at each step of that optimizer, ``model.training`` is read; a model with Dropout or normalization layers
(whose behaviour differs between modes) that steps in eval mode has an *eval step*.

**Coverage**: at the first step, at the first step of every optimizer (one built mid-run for a new head may be
gone by the end of the script), every ``COVERAGE_EVERY``-th step (any optimizer; at the end of the step when it
evaluates a closure, as LBFGS and Lightning's automatic optimization do) and every check, the model's trainable
tensors that hold a gradient are noted, with the tensors each stepping optimizer holds; at
:meth:`Hygiene.records`, a tensor with a gradient that no stepping optimizer holds and whose version counter and a
16-value sample are unchanged since attach was never updated. Manual SGD (``p -= lr * p.grad`` under ``no_grad``)
changes the version counter, so it counts as updated without any optimizer object.

Cost per training step: one Python call per optimizer step (a global step pre-hook); around windows, one more at
the step's end and one per backward pass (the sentinel's hook); the coverage probe is O(parameters) on probe steps
only. Hooks read ``.grad``, version counters and (at checks) small samples; they never write a tensor or draw a
random number.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from ..probe.layer_stats import next_recorded
from .records import ParameterCoverage, StepHygiene

__all__ = ["Hygiene", "mode_layers"]

#: Coverage is probed at the first optimizer step, every COVERAGE_EVERY-th and at every check (a parameter that
#: receives gradients receives them on most steps, so a sparse sample sees it; O(parameters) per probe).
PROBE_FIRST = 1
COVERAGE_EVERY = 100
#: The sentinel's gradient is followed (a post-accumulate-grad hook: ~10 us per backward pass on a CPU) only in
#: windows that end at the first JUDGE_FIRST optimizer steps and at every ``probe_every``-th: enough steps for the
#: verdicts (PRACTICE_MIN_STEPS of them), at a fraction of the cost of following every step.
JUDGE_FIRST = 4
#: Values compared (with the version counter) to tell whether a parameter changed.
SAMPLE_SIZE = 16
#: The sentinel is re-chosen (among tensors that hold a gradient) at most on this many first steps.
REPICK_STEPS = 3
_FAST_AFTER = max(PROBE_FIRST, REPICK_STEPS)  # global steps before the fast path may be taken


def mode_layers(model: nn.Module) -> list[str]:
    """Names of the modules that behave differently in training and eval mode: Dropout (any variant, and the
    dropout of recurrent and attention layers), BatchNorm, InstanceNorm with running statistics; torch's and
    deepbasics'."""
    return [name or "(root)" for name, m in model.named_modules() if _mode_dependent(m)]


def _mode_dependent(m: nn.Module) -> bool:
    if isinstance(m, (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)):
        return True
    if type(m).__name__.startswith(("BatchNorm", "Dropout")):  # deepbasics.nn's own layers
        return True
    if isinstance(m, nn.modules.instancenorm._InstanceNorm):
        return bool(m.track_running_stats)
    return isinstance(m, (nn.RNNBase, nn.MultiheadAttention)) and bool(getattr(m, "dropout", 0))


def _guarded(method: Callable[..., None]) -> Callable[..., None]:
    """A hook that fails switches the monitor off (with a note) instead of raising into the user's training."""

    @functools.wraps(method)
    def hook(self: Hygiene, *args: Any) -> None:
        if self.failed is not None:
            return
        try:
            method(self, *args)
        except Exception as error:
            self.failed = f"{type(error).__name__}: {error}"
            self.detach()

    return hook


@dataclass
class _Optimizer:
    """What is known about one optimizer that stepped while attached."""

    ref: weakref.ref
    name: str
    groups: int = -1
    steps: int = 0
    holds_sentinel: bool = False
    params: list[int] = field(default_factory=list)
    with_grad: set[int] = field(default_factory=set)
    post_handle: Any = None  # its step post-hook, only while the end of its steps matters
    probe_after: bool = False  # a coverage probe is due when this step ends (the step evaluates a closure)


class Hygiene:
    """Follow ``model``'s gradients and optimizer steps (module docstring); ``attach`` / ``detach``."""

    def __init__(self, model: nn.Module, *, probe_every: int = 20, dense_records: int | None = None) -> None:
        self.model = model
        self.probe_every = probe_every
        self.dense_records = dense_records
        self._next_judged = 0  # the first judged step from the last one the slow path looked at (fast path)
        self.failed: str | None = None
        self.optimizer: torch.optim.Optimizer | None = None  # the first optimizer stepping this model's parameters
        self._mode_layers = mode_layers(model)
        self._hygiene = StepHygiene(mode_layers=self._mode_layers[:8])
        self._optimizers: dict[int, _Optimizer] = {}
        self._global_steps = 0
        self._backwards = 0  # backward passes in training mode, seen in the windows
        self._train_steps = 0  # steps of the sentinel's optimizer in training mode
        self._start: dict[int, tuple[int, torch.Tensor]] = {}  # id(param) -> (version, sample) at first sight
        self._with_grad: dict[int, str] = {}
        self._handles: list[Any] = []
        self._fast: _Optimizer | None = None  # the sentinel's optimizer, for the step pre-hook's fast path
        self._sentinel_handle: Any = None  # the post-accumulate hook, while a window is open
        self._sentinel: nn.Parameter | None = None
        self._sentinel_steps = 0
        self._seen_accumulation = False
        self._track_values = False  # an in-place change between backward and step was seen: keep amax values
        self._zero_checks: list[tuple[int, bool, torch.Tensor | None, torch.Tensor]] = []
        self._open_state(stepped=False)
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad and not _lazy(p)]
        for _, p in trainable:
            self._start[id(p)] = _sample(p)  # lazy parameters get theirs at the first probe after they exist
        if trainable:  # the smallest tensor; ties: the one nearest the output
            name, param = min(reversed(trainable), key=lambda item: item[1].numel())
            self._sentinel, self._hygiene.sentinel = param, name

    # ------------------------------------------------------------------------------------------ lifecycle
    def attach(self) -> Hygiene:
        """Install the hooks (idempotent); the first window opens for the first step."""
        if not self._handles and self.failed is None:
            self._handles = [register_optimizer_step_pre_hook(self._on_step_pre)]
            self._open_window()
        return self

    def detach(self) -> None:
        """Remove the hooks; the records stay (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for state in self._optimizers.values():
            if state.post_handle is not None:
                state.post_handle.remove()
                state.post_handle = None
        self._close_window()

    # ------------------------------------------------------------------------------------------ sentinel
    def judged(self, step: int) -> bool:
        """Whether the sentinel's gradient is followed up to optimizer step ``step`` (a window): the first
        ``JUDGE_FIRST`` steps and the recorded ones (module docstring)."""
        return self.next_judged(step) == step

    def next_judged(self, step: int) -> int:
        """The first judged step ``>= step``."""
        return step if step < JUDGE_FIRST else next_recorded(step, self.probe_every, self.dense_records)

    def _open_state(self, *, stepped: bool) -> None:
        """Start following from here: ``stepped`` when the sentinel's optimizer has just stepped."""
        self._acc = 0  # accumulations since the optimizer stepped
        self._stepped = stepped  # it stepped and no accumulation has been seen since
        self._snap = self._sentinel.grad if stepped and self._sentinel is not None else None  # what the step used
        self._snap_version = -1 if self._snap is None else self._snap._version
        self._last: torch.Tensor | None = None  # the gradient after the last accumulation
        self._last_version = -1
        self._carrying = False
        self._deferred = False
        self._acc_amax: torch.Tensor | None = None

    def _open_window(self) -> None:
        if self._sentinel is not None and not self._sentinel.requires_grad:
            self._follow_trainable()  # frozen after attach (fine-tuning): follow a tensor that still trains
        if self._sentinel_handle is None and self._sentinel is not None and self._handles:
            self._sentinel_handle = self._sentinel.register_post_accumulate_grad_hook(self._on_accumulate)

    def _close_window(self) -> None:
        if self._sentinel_handle is not None:
            self._sentinel_handle.remove()
            self._sentinel_handle = None

    def _follow_trainable(self) -> None:
        """The sentinel stopped requiring gradients: the smallest tensor that still does becomes the sentinel
        (None when the whole model is frozen: there is nothing left to judge)."""
        trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad and not _lazy(p)]
        self._close_window()
        self._fast = None
        for state in self._optimizers.values():
            state.groups = -1  # re-read which optimizer holds the new sentinel
        if not trainable:
            self._sentinel = None
            return
        name, param = min(reversed(trainable), key=lambda item: item[1].numel())
        self._sentinel, self._hygiene.sentinel = param, name
        self._open_state(stepped=False)

    def _repick(self) -> None:
        """The sentinel received no gradient by this step: choose the smallest tensor that holds one."""
        holding = [
            (n, p) for n, p in self.model.named_parameters() if p.requires_grad and not _lazy(p) and p.grad is not None
        ]
        if holding:
            name, param = min(reversed(holding), key=lambda item: item[1].numel())
            if param is not self._sentinel:
                window = self._sentinel_handle is not None
                self._close_window()
                self._sentinel, self._hygiene.sentinel = param, name
                for state in self._optimizers.values():
                    state.groups = -1  # re-read which optimizer holds it
                self._fast = None
                if window:
                    self._open_window()

    # ------------------------------------------------------------------------------------------ hooks
    @_guarded
    def _on_accumulate(self, param: torch.Tensor) -> None:
        g = param.grad
        if g is None:
            return
        self._seen_accumulation = True
        if self.model.training:
            self._backwards += 1
        self._acc += 1
        if self._stepped:  # the first accumulation since the step
            self._carrying = g is self._snap and g._version == self._snap_version + 1
            self._stepped, self._snap = False, None
        elif self._carrying and not (g is self._last and g._version == self._last_version + 1):
            self._carrying = False  # zeroed or replaced since the previous accumulation
        self._last, self._last_version = g, g._version
        if self._track_values:
            with torch.no_grad():
                self._acc_amax = g.detach().abs().amax()

    def _state(self, optimizer: torch.optim.Optimizer) -> _Optimizer:
        state = self._optimizers.get(id(optimizer))
        if state is not None and state.groups == len(optimizer.param_groups) and state.ref() is optimizer:
            return state  # the common case
        if state is None or state.ref() is not optimizer:
            state = _Optimizer(weakref.ref(optimizer), type(optimizer).__name__)
            self._optimizers[id(optimizer)] = state
        if state.groups != len(optimizer.param_groups):
            state.groups = len(optimizer.param_groups)
            params = [p for group in optimizer.param_groups for p in group["params"]]
            state.params = [id(p) for p in params]
            state.holds_sentinel = any(p is self._sentinel for p in params)
            if self.optimizer is None and any(id(p) in self._start for p in params):
                self.optimizer = optimizer
        return state

    def _on_step_pre(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        """Global step pre-hook. Most steps take the fast path: the sentinel's optimizer again, no probe, no window
        now or at the next step -- only the counters move."""
        fast = self._fast
        if fast is not None and fast.ref() is optimizer and self.failed is None:
            g, s = self._global_steps + 1, self._sentinel_steps
            if (
                g > _FAST_AFTER
                and g % COVERAGE_EVERY
                and self._sentinel_handle is None
                and fast.post_handle is None
                and s + 1 < self._next_judged  # not judged (the slow path keeps _next_judged)
                and fast.groups == len(optimizer.param_groups)
            ):
                fast.steps += 1
                self._global_steps, self._sentinel_steps = g, s + 1
                self._count_mode(s)
                return
        closure = any(callable(a) for a in args[1:]) or callable(kwargs.get("closure"))  # args[0] is the optimizer
        self._step_pre(optimizer, closure)

    def _count_mode(self, step: int) -> None:
        """Training or eval mode at this step of the sentinel's optimizer."""
        if self.model.training:
            self._train_steps += 1
            if self._mode_layers:
                self._hygiene.train_steps += 1
        elif self._mode_layers:
            self._hygiene.eval_steps += 1
            if self._hygiene.first_eval_step is None:
                self._hygiene.first_eval_step = step

    @_guarded
    def _step_pre(self, optimizer: torch.optim.Optimizer, closure: bool) -> None:
        state = self._state(optimizer)
        first = state.steps == 0  # an optimizer seen for the first time (built mid-run, e.g. for a new head)
        state.steps += 1
        self._global_steps += 1
        if first or self._global_steps <= PROBE_FIRST or self._global_steps % COVERAGE_EVERY == 0:
            if closure:
                state.probe_after = True  # the closure computes the gradients inside the step: look at its end
            else:
                self._probe()
        if not self._seen_accumulation and self._global_steps <= REPICK_STEPS:
            self._repick()
            state = self._state(optimizer)
        need_post = state.probe_after
        step = self._sentinel_steps
        if state.holds_sentinel:
            self._fast = state
            self._sentinel_steps += 1
            self._count_mode(step)
            self._next_judged = self.next_judged(step + 1)
            need_post = need_post or self._sentinel_handle is not None or self._next_judged == step + 1
        # the end of a step matters only around windows and for deferred probes: then this optimizer gets a
        # post-hook (registered and removed here, never inside the post-hooks' own loop)
        if need_post and state.post_handle is None:
            state.post_handle = optimizer.register_step_post_hook(self._on_step_post)
        elif not need_post and state.post_handle is not None:
            state.post_handle.remove()
            state.post_handle = None
        if not state.holds_sentinel or self._sentinel_handle is None:
            return  # not the sentinel's optimizer, or outside a window
        if self._acc == 0:
            self._deferred = True  # judged when the step ends (a closure may run backward inside it)
            return
        self._judge(step, optimizer)

    @_guarded
    def _on_step_post(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        state = self._optimizers.get(id(optimizer))
        if state is None:
            return
        if state.probe_after:
            state.probe_after = False
            self._probe()
        if not state.holds_sentinel or self._sentinel is None:
            return
        if self._sentinel_handle is not None and self._deferred and self._acc > 0:
            self._judge(self._sentinel_steps - 1, optimizer)
        if self.judged(self._sentinel_steps):  # the next step is judged: follow the gradient from this step on
            self._open_window()
            self._open_state(stepped=True)
        else:
            self._close_window()

    def _judge(self, step: int, optimizer: torch.optim.Optimizer) -> None:
        record = self._hygiene
        record.judged += 1
        record.optimizer = type(optimizer).__name__
        g = self._sentinel.grad
        if g is None:
            self._count("wiped", step)
        elif g is not self._last:
            return  # replaced by the user after the backward pass: fresh content
        elif g._version != self._last_version:  # changed in place since the last accumulation (module docstring)
            with torch.no_grad():
                self._zero_checks.append((step, self._carrying, self._acc_amax, g.detach().abs().amax()))
            self._track_values = True
        elif self._carrying:
            self._count("carried", step)

    def _count(self, kind: str, step: int) -> None:
        record = self._hygiene
        setattr(record, kind, getattr(record, kind) + 1)
        if getattr(record, f"first_{kind}") is None:
            setattr(record, f"first_{kind}", step)

    # ------------------------------------------------------------------------------------------ coverage
    def _probe(self) -> None:
        """Note which trainable tensors hold a gradient, the model's and each stepping optimizer's."""
        for name, p in self.model.named_parameters():
            if p.requires_grad and not _lazy(p):
                if id(p) not in self._start:
                    self._start[id(p)] = _sample(p)  # a layer added after attach: its baseline is now
                if p.grad is not None:
                    self._with_grad[id(p)] = name
        for state in self._optimizers.values():
            optimizer = state.ref()
            if optimizer is not None:
                for group in optimizer.param_groups:
                    state.with_grad.update(id(p) for p in group["params"] if p.grad is not None)

    def records(self) -> tuple[StepHygiene, ParameterCoverage]:
        """The practice records so far (one probe and, when in-place changes were seen, one host copy)."""
        if self.failed is None:
            self._probe()
            if not self._seen_accumulation:
                self._repick()
            self._resolve_zero_checks()
        params = {id(p): (n, p) for n, p in self.model.named_parameters() if p.requires_grad and not _lazy(p)}
        stepping = {i for s in self._optimizers.values() if s.steps for i in s.params}
        not_updated = [
            name
            for pid, name in self._with_grad.items()
            if pid in params and pid not in stepping and not _changed(params[pid][1], self._start.get(pid))
        ]
        optimizers = [
            {
                "name": s.name,
                "steps": s.steps,
                "params": len(s.params),
                "params_with_grad": len(s.with_grad),
                "model_params": sum(i in params for i in s.params),
            }
            for s in self._optimizers.values()
            if s.steps
        ]
        coverage = ParameterCoverage(
            trainable=len(params),
            with_grad=[n for i, n in self._with_grad.items() if i in params],
            not_updated=not_updated,
            backward_passes=max(self._backwards, self._train_steps),
            optimizers=optimizers,
        )
        return StepHygiene(**vars(self._hygiene)), coverage

    def _resolve_zero_checks(self) -> None:
        """Steps whose gradient changed in place after the last backward: wiped if it is now exactly 0 while the
        accumulated gradient was not (clipping and unscaling never make a nonzero gradient exactly 0)."""
        if not self._zero_checks:
            return
        checks, self._zero_checks = self._zero_checks, []
        values = torch.stack(
            [torch.stack([a if a is not None else torch.ones_like(b), b]).double().cpu() for _, _, a, b in checks]
        ).tolist()  # one host copy
        for (step, carrying, _, _), (accumulated, at_step) in zip(checks, values, strict=True):
            if at_step == 0.0 and accumulated != 0.0:
                self._count("wiped", step)
            elif carrying:
                self._count("carried", step)


def _lazy(p: torch.Tensor) -> bool:
    """A parameter of a lazy module before its first forward (no shape, no values yet)."""
    return isinstance(p, nn.parameter.UninitializedParameter)


def _sample(p: torch.Tensor) -> tuple[int, torch.Tensor]:
    """``(version counter, SAMPLE_SIZE evenly spaced values)`` of a parameter."""
    with torch.no_grad():
        flat = p.detach().reshape(-1)
        stride = max(1, flat.numel() // SAMPLE_SIZE)
        return p._version, flat[::stride][:SAMPLE_SIZE].clone()


def _changed(p: torch.Tensor, start: tuple[int, torch.Tensor] | None) -> bool:
    """Whether ``p`` changed since ``start``: its version counter (in-place updates, optimizers, manual SGD under
    ``no_grad``) or, for writes through ``.data`` that bypass the counter, its sampled values."""
    if start is None:
        return True
    version, sample = start
    if p._version != version:
        return True
    _, now = _sample(p)
    return not torch.equal(now, sample)
