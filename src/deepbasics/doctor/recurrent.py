"""Vanishing gradients through time in recurrent layers: how much of the first input reaches the last state.

A recurrent layer is one weight matrix applied ``T`` times, so the depth-wise rule of :mod:`.detectors.gradients`
(first vs last weight layer) does not see it: its weight gradient sums the contributions of every time step and is
dominated by the recent ones. What vanishes is the gradient *through time* (FAQ Q3.3 and the RNN questions;
Bengio, Simard & Frasconi 1994; Pascanu, Mikolov & Bengio 2013, sec. 2): with ``h_T`` the last output of the layer
and ``x_t`` its input at step ``t``,

    ||d(v . h_T) / d x_0|| / ||d(v . h_T) / d x_{T-1}||,

for a fixed random direction ``v`` (a one-row estimate of the Jacobian norms), averaged over a batch. A plain tanh
RNN multiplies by ``W_hh^T diag(1 - h^2)`` at every step and the ratio decays geometrically (~1e-11 over 60 steps
at PyTorch's default init); gated cells (LSTM, GRU) keep it near 1 when the task needs memory.

:class:`RecurrentProbe` keeps the input of every ``nn.RNN``/``nn.LSTM``/``nn.GRU`` module on sampled training
forwards (the first :data:`KEEP_EXAMPLES` sequences, a copy; packed sequences are skipped) and measures the ratio
once, when the session finalizes, on the last kept input: in eval mode (no dropout), with ``torch.autograd.grad``
on a copy of the input (``.grad`` untouched), under ``torch.random.fork_rng`` (no random draw reaches the user's
stream). A bidirectional layer is measured on its forward direction.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..autodiff import model_mode

__all__ = ["KEEP_EXAMPLES", "RecurrentProbe", "temporal_ratio"]

#: Sequences kept per recurrent layer for the measurement (a copy of the batch's first ones).
KEEP_EXAMPLES = 16


def temporal_ratio(module: nn.RNNBase, x: torch.Tensor) -> dict[str, Any] | None:
    """``{"ratio", "steps"}`` of the module docstring for ``module`` on input ``x`` (batched, 3-D), or None when
    the sequence is shorter than 2 steps or the numbers are not finite."""
    batch_first = bool(getattr(module, "batch_first", False))
    steps = x.shape[1] if batch_first else x.shape[0]
    if steps < 2:
        return None
    device = next(module.parameters()).device
    devices = [device.index or 0] if device.type == "cuda" else []
    generator = torch.Generator(device=x.device).manual_seed(0)
    with torch.random.fork_rng(devices=devices), model_mode(module, train=False), torch.enable_grad():
        inp = x.detach().clone().requires_grad_(True)
        out = module(inp)[0]  # (N, T, D * H) batch-first, else (T, N, D * H)
        last = out[:, -1] if batch_first else out[-1]  # (N, D * H)
        last = last[..., : module.hidden_size if getattr(module, "proj_size", 0) == 0 else module.proj_size]
        v = torch.randn(last.shape[-1], generator=generator, device=x.device, dtype=last.dtype)
        (grad,) = torch.autograd.grad((last * v).sum(), inp)
    per_step = grad.detach().double().transpose(0, 1) if batch_first else grad.detach().double()  # (T, N, F)
    norms = per_step.reshape(steps, -1).norm(dim=1)
    first, last_norm = float(norms[0]), float(norms[-1])
    if not (math.isfinite(first) and math.isfinite(last_norm)) or last_norm == 0:
        return None
    return {"ratio": first / last_norm, "steps": int(steps)}


class RecurrentProbe:
    """The inputs of one model's recurrent layers, and their through-time gradient ratios (module docstring)."""

    def __init__(self, model: nn.Module) -> None:
        self.modules = {name: m for name, m in model.named_modules() if isinstance(m, nn.RNNBase)}
        self.kept: dict[str, torch.Tensor] = {}
        self.result: dict[str, dict[str, Any]] = {}
        self._handles: dict[str, Any] = {}

    def arm(self) -> None:
        """Keep the input of each recurrent layer's next call (one-shot hooks; a training forward is starting)."""
        for name, module in self.modules.items():
            if name not in self._handles:
                self._handles[name] = module.register_forward_pre_hook(self._keeper(name))

    def _keeper(self, name: str) -> Any:
        def keep(module: nn.Module, args: Any) -> None:
            x = args[0] if args else None
            if isinstance(x, torch.Tensor) and x.dim() == 3 and x.is_floating_point():
                n = KEEP_EXAMPLES
                self.kept[name] = (x[:n] if module.batch_first else x[:, :n]).detach().clone()
            handle = self._handles.pop(name, None)
            if handle is not None:
                handle.remove()  # safe inside the hook: Module.__call__ iterates over a copy of its hooks

        return keep

    def disarm(self) -> None:
        """Remove the keeping hooks still armed."""
        for handle in self._handles.values():
            handle.remove()
        self._handles.clear()

    def measure(self) -> dict[str, dict[str, Any]]:
        """The ratio of every recurrent layer with a kept input (failures are skipped: best effort)."""
        self.disarm()
        for name, x in self.kept.items():
            try:
                result = temporal_ratio(self.modules[name], x)
            except Exception:  # an exotic layer or input: no measurement, never an error in the user's run
                result = None
            if result is not None:
                self.result[name] = result
        return dict(self.result)
