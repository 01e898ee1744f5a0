"""Adagrad: per-coordinate step sizes from the running sum of squared gradients."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._checks import check_real, fail
from ._base import (
    Optimizer,
    ParamsT,
    as_real,
    check_flag,
    check_foreach,
    check_lr,
    check_unsupported,
    group_by_device_dtype,
    increment_steps,
    new_step,
    real,
)

__all__ = ["Adagrad", "adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad (drop-in for ``torch.optim.Adagrad``).

    Update rule (PyTorch's pseudo-algorithm; ``lr`` = γ, ``lr_decay`` = η, ``weight_decay`` = λ,
    ``initial_accumulator_value`` = τ, ``eps`` = ε; operations are element-wise)::

        state_sum_0 <- τ
        for t = 1, 2, ...:
            g_t <- -grad f(θ_{t-1})  if maximize  else  grad f(θ_{t-1})
            γ_t <- γ / (1 + (t - 1) η)
            if λ != 0:  g_t <- g_t + λ θ_{t-1}
            state_sum_t <- state_sum_{t-1} + g_t²
            θ_t <- θ_{t-1} - γ_t g_t / (sqrt(state_sum_t) + ε)

    Coordinates with a history of large gradients get small steps and rarely-updated ones large steps:
    a diagonal preconditioner built from the gradients alone (Duchi et al. 2011, the diagonal
    ``diag(G_t)^{-1/2}`` variant). ``lr_decay`` is PyTorch's addition, inherited from Lua Torch.

    Args:
        params: iterable of tensors, of ``(name, tensor)`` pairs, or of parameter-group dicts.
        lr: learning rate γ >= 0 (default 1e-2).
        lr_decay: η >= 0 (default 0).
        weight_decay: λ >= 0, L2 penalty added to the gradient (default 0).
        initial_accumulator_value: τ >= 0, the starting value of ``state_sum`` (default 0). Read per
            parameter group (torch.optim reads the constructor's value for every group).
        eps: ε >= 0 added to the denominator (default 1e-10).
        foreach: ``None`` (default) or True: multi-tensor kernel; False: reference kernel. Sparse
            gradients (supported, without weight decay) use the reference kernel.
        maximize: ascend the objective instead of descending it.
        differentiable: record the update in autograd, via the reference kernel.
        fused: accepted for signature compatibility; only ``None``/False.

    State per parameter: ``step`` (CPU scalar tensor), ``sum`` (shape of the parameter).

    Reference:
        J. Duchi, E. Hazan, Y. Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic
        Optimization", JMLR 12, 2011, Sec. 1.1 (eq. for the diagonal update) and Fig. 1.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
            "fused": fused,
        }
        super().__init__(params, defaults)

    def _check_hyperparameters(self, hyper: dict[str, Any]) -> dict[str, Any]:
        hyper["lr"] = check_lr(hyper["lr"])
        for name in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            hyper[name] = check_real(hyper[name], name, low=0.0)
        for name in ("maximize", "differentiable"):
            check_flag(hyper[name], name)
        check_foreach(hyper)
        check_unsupported(hyper, "Adagrad")
        return hyper

    def _update_group(self, group: dict[str, Any]) -> None:
        params, grads, sums, steps = [], [], [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if len(state) == 0:
                init = group["initial_accumulator_value"]
                state["step"] = new_step()
                state["sum"] = torch.full_like(p, complex(init, init) if p.is_complex() else init)
            params.append(p)
            grads.append(p.grad)
            sums.append(state["sum"])
            steps.append(state["step"])
        adagrad(
            params,
            grads,
            sums,
            steps,
            lr=group["lr"],
            lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
            differentiable=group["differentiable"],
            foreach=self._use_foreach(group, grads),
        )


def adagrad(
    params: list[Tensor],
    grads: list[Tensor],
    state_sums: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
    differentiable: bool = False,
    foreach: bool = False,
) -> None:
    """Functional Adagrad: update ``params``, ``state_sums`` and ``state_steps`` in place (rule in :class:`Adagrad`)."""
    if not params:
        return
    sparse = any(g.is_sparse for g in grads)
    if sparse and weight_decay != 0:
        raise fail(
            ValueError,
            "weight_decay",
            "0 with sparse gradients",
            weight_decay,
            "Use dense gradients or weight_decay=0.",
        )
    kernel = _adagrad_foreach if foreach and not sparse and not differentiable else _adagrad_reference
    kernel(
        params,
        grads,
        state_sums,
        state_steps,
        lr=lr,
        lr_decay=lr_decay,
        weight_decay=weight_decay,
        eps=eps,
        maximize=maximize,
        differentiable=differentiable,
    )


def _adagrad_reference(
    params: list[Tensor],
    grads: list[Tensor],
    state_sums: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
    differentiable: bool,
) -> None:
    for param, grad, state_sum, step_t in zip(params, grads, state_sums, state_steps, strict=True):
        step_t += 1
        step = step_t.item()
        grad = -grad if maximize else grad
        if weight_decay != 0:
            grad = grad.add(param, alpha=weight_decay)
        clr = lr / (1 + (step - 1) * lr_decay)
        if grad.is_sparse:  # the update is non-linear, so duplicate indices must be summed first
            grad = grad.coalesce()
            indices, values = grad._indices(), grad._values()
            state_sum.add_(torch.sparse_coo_tensor(indices, values.pow(2), grad.size(), check_invariants=False))
            std_values = state_sum.sparse_mask(grad)._values().sqrt_().add_(eps)
            param.add_(
                torch.sparse_coo_tensor(indices, values / std_values, grad.size(), check_invariants=False), alpha=-clr
            )
            continue
        grad, state_sum, param = real(grad), real(state_sum), real(param)
        state_sum.addcmul_(grad, grad, value=1)
        # out of place under autograd: sqrt's backward needs its output unmodified
        std = state_sum.sqrt() + eps if differentiable else state_sum.sqrt().add_(eps)
        param.addcdiv_(grad, std, value=-clr)


def _adagrad_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    state_sums: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
    differentiable: bool,
) -> None:
    for dev_params, dev_grads, dev_sums, dev_steps in group_by_device_dtype(params, grads, state_sums, state_steps):
        dev_params, dev_grads, dev_sums = as_real(dev_params), as_real(dev_grads), as_real(dev_sums)
        owned = maximize or weight_decay != 0  # dev_grads is our copy, not the caller's .grad
        if maximize:
            dev_grads = torch._foreach_neg(dev_grads)
        steps = increment_steps(dev_steps)
        if weight_decay != 0:
            if maximize:
                torch._foreach_add_(dev_grads, dev_params, alpha=weight_decay)
            else:
                dev_grads = torch._foreach_add(dev_grads, dev_params, alpha=weight_decay)
        minus_clr = [-lr / (1 + (t - 1) * lr_decay) for t in steps]
        torch._foreach_addcmul_(dev_sums, dev_grads, dev_grads, value=1)
        std = torch._foreach_sqrt(dev_sums)
        torch._foreach_add_(std, eps)
        if owned:
            torch._foreach_mul_(dev_grads, minus_clr)
            numerator = dev_grads
        else:
            numerator = torch._foreach_mul(dev_grads, minus_clr)
        torch._foreach_addcdiv_(dev_params, numerator, std)
