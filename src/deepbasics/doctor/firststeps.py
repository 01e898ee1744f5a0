"""The first steps of a watched run, seen whole: how large the signal grows through the model before anything trains.

A run whose gradient explodes at initialization overflows within its first steps, before the sampled records of
:class:`deepbasics.probe.LayerStats` (every 20th step; in script mode from the second forward on) show how it got
there: what is left is a non-finite loss, a symptom. :class:`FirstSteps` keeps the evidence of the cause, once:

- the first training forward: the RMS ``sqrt(mean(y^2))`` of every submodule's output, in call order (a module
  called ``k`` times, e.g. a recurrent cell in a Python loop, appears as ``name``, ``name#1``, ...), and for the
  sequence output ``(N, T, H)`` (``(T, N, H)`` unless ``batch_first``) of an ``nn.RNN``/``nn.LSTM``/``nn.GRU``
  the RMS at every time step ``t``;
- the first :data:`FIRST_BACKWARDS` backward passes: for every trainable weight (a >= 2-D parameter) its gradient
  norm ``||dL/dW||`` next to its norm ``||W||``, read when the gradient is accumulated (before the update).

Explosive growth shows in both (Pascanu, Mikolov & Bengio 2013, sec. 2; Glorot & Bengio 2010, sec. 4.2.1): a
layer map with gain ``g > 1`` multiplies the signal by ``g`` per layer or time step, forward and backward, so the
RMS grows geometrically along the calls or the time steps, and ``||dL/dW|| / ||W||`` of an untrained model reaches
orders of magnitude that a sane loss of order 1 never produces. The decision is
:func:`deepbasics.doctor.detectors.gradients.exploding_at_start`.

Norms are taken in float64 (``torch.linalg.vector_norm(..., dtype=float64)``): a float32 sum of squares overflows
for elements above ~1e19, exactly the values to be measured. Every hook reads under ``torch.no_grad()``, draws no
random numbers and never raises into the user's code (a failure ends the recording). Host copies happen once, when
the records are read.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn

from ..probe.hooks import first_tensor

__all__ = ["FIRST_BACKWARDS", "MAX_CALLS", "FirstSteps"]

#: Backward passes whose weight gradients are recorded (the untrained model's, and two more: enough to see a
#: run that overflows at its second or third step, and few enough to cost nothing afterwards).
FIRST_BACKWARDS = 3
#: Module calls recorded at most: a model whose root is never called (its submodules run directly) would otherwise
#: be watched forever; a recurrent cell in a loop over 1,000 steps with a few submodules stays below it.
MAX_CALLS = 4096


def _rms(y: torch.Tensor) -> torch.Tensor:
    """sqrt(mean(y^2)) in float64, as a 0-d tensor (no host sync)."""
    return torch.linalg.vector_norm(y.detach(), dtype=torch.float64) / max(1, y.numel()) ** 0.5


class FirstSteps:
    """Records of the first forward and backward passes (module docstring). ``attach`` / ``detach``; ``forward``,
    ``time_steps`` and ``backwards`` hold plain numbers after :meth:`result`."""

    def __init__(self, model: nn.Module, backwards: int = FIRST_BACKWARDS) -> None:
        self.model = model
        self.limit = backwards
        self._forward: list[tuple[str, torch.Tensor]] = []
        self._time_steps: dict[str, torch.Tensor] = {}
        self._backwards: list[dict[str, torch.Tensor]] = []
        self._calls: dict[str, int] = {}
        self._fwd_handles: list[Any] = []
        self._grad_handles: list[Any] = []
        self._cache: dict[str, Any] | None = None
        self._full = False

    @property
    def done(self) -> bool:
        """Whether the backward passes to record have begun (read after a pass: the gradient hooks can go)."""
        return len(self._backwards) >= self.limit

    @property
    def hooked(self) -> bool:
        """Whether some hook is still installed."""
        return bool(self._fwd_handles or self._grad_handles)

    def attach(self) -> None:
        """Hook the submodules for the next training forward (then the weights, for the next backward passes)."""
        if self._fwd_handles or self._grad_handles:
            return
        for name, module in self.model.named_modules():
            if module is not self.model:
                self._fwd_handles.append(module.register_forward_hook(partial(self._on_output, name)))
        self._fwd_handles.append(self.model.register_forward_hook(self._on_root_output))

    def _arm_grads(self) -> None:
        """Hook every trainable weight (>= 2-D) for the next backward passes: after the first forward, when the
        parameters of lazy modules (``nn.LazyLinear``) have their shapes."""
        for name, param in self.model.named_parameters():
            if param.requires_grad and not nn.parameter.is_lazy(param) and param.dim() >= 2:
                self._grad_handles.append(param.register_post_accumulate_grad_hook(partial(self._on_grad, name)))

    def detach(self) -> None:
        """Remove every hook (idempotent); the records stay."""
        self._drop_forward_hooks()
        self._drop_grad_hooks()

    def _drop_forward_hooks(self) -> None:
        for handle in self._fwd_handles:
            handle.remove()
        self._fwd_handles.clear()

    def _drop_grad_hooks(self) -> None:
        for handle in self._grad_handles:
            handle.remove()
        self._grad_handles.clear()

    # ------------------------------------------------------------------------------------------------ hooks
    def _on_output(self, name: str, module: nn.Module, args: Any, output: Any) -> None:
        if not torch.is_grad_enabled():
            return
        try:
            y = first_tensor(output)
            if y is None or not y.is_floating_point() or y.numel() == 0:
                return
            if len(self._forward) >= MAX_CALLS:
                self._drop_forward_hooks()
                self._arm_grads()
                return
            calls = self._calls.get(name, 0)
            self._calls[name] = calls + 1
            key = name if calls == 0 else f"{name}#{calls}"
            with torch.no_grad():
                self._forward.append((key, _rms(y)))
                if isinstance(module, nn.RNNBase) and y.dim() == 3:
                    steps = y.detach().transpose(0, 1) if module.batch_first else y.detach()  # (T, N, H)
                    per_step = torch.linalg.vector_norm(steps.flatten(1), dim=1, dtype=torch.float64)
                    self._time_steps[key] = per_step / max(1, steps[0].numel()) ** 0.5  # (T,)
        except Exception:  # the doctor never stops a user's run over its own failure
            self._drop_forward_hooks()

    def _on_root_output(self, module: nn.Module, args: Any, output: Any) -> None:
        """The first training forward is over: stop watching outputs (safe inside a hook: ``Module.__call__``
        iterates over a copy of its hooks) and watch the weights' gradients."""
        if torch.is_grad_enabled():
            self._drop_forward_hooks()
            if not self._grad_handles and not self._backwards:
                self._arm_grads()

    def _on_grad(self, name: str, param: torch.Tensor) -> None:
        if self._full:
            return  # removed at the next recorded loss (Recorder.record_loss), not inside the hook
        try:
            if not self._backwards or name in self._backwards[-1]:  # a weight seen twice: a new backward pass
                if len(self._backwards) >= self.limit:
                    self._full = True
                    return
                self._backwards.append({})
            grad = param.grad
            if grad is None or grad.is_sparse:
                return
            with torch.no_grad():
                norms = torch.stack(
                    [
                        torch.linalg.vector_norm(grad, dtype=torch.float64),
                        torch.linalg.vector_norm(param.detach(), dtype=torch.float64),
                    ]
                )
            self._backwards[-1][name] = norms
        except Exception:
            self._drop_grad_hooks()

    # ------------------------------------------------------------------------------------------------ records
    def result(self) -> dict[str, Any]:
        """``{"forward": [[call, rms], ...], "time_steps": {call: [rms per t]}, "backwards": [{weight: [||g||,
        ||W||]}, ...]}`` as floats (inf/nan kept); empty dict before anything was recorded."""
        if self._cache is not None:
            return self._cache
        if not self._forward and not self._backwards:
            return {}
        out = {
            "forward": [[k, float(v)] for k, v in self._forward],
            "time_steps": {k: v.tolist() for k, v in self._time_steps.items()},
            "backwards": [{k: v.tolist() for k, v in rec.items()} for rec in self._backwards if rec],
        }
        if self.done and not self._fwd_handles:
            self._cache = out  # complete: no more host copies
        return out
