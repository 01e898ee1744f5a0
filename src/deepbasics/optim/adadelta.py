"""Adadelta: step sizes with the units of the parameters, from two running averages."""

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

__all__ = ["Adadelta", "adadelta"]


class Adadelta(Optimizer):
    r"""Adadelta (drop-in for ``torch.optim.Adadelta``).

    Update rule (PyTorch's pseudo-algorithm; ``lr`` = γ, ``rho`` = ρ, ``eps`` = ε, ``weight_decay`` = λ;
    operations are element-wise)::

        v_0 <- 0 (square_avg),  u_0 <- 0 (acc_delta)
        for t = 1, 2, ...:
            g_t <- -grad f(θ_{t-1})  if maximize  else  grad f(θ_{t-1})
            if λ != 0:  g_t <- g_t + λ θ_{t-1}
            v_t <- ρ v_{t-1} + (1 - ρ) g_t²
            Δx_t <- sqrt(u_{t-1} + ε) / sqrt(v_t + ε) · g_t
            u_t <- ρ u_{t-1} + (1 - ρ) Δx_t²
            θ_t <- θ_{t-1} - γ Δx_t

    Zeiler's ratio RMS[Δx]_{t-1} / RMS[g]_t makes the step carry the units of θ (a diagonal
    approximation of the inverse Hessian, Sec. 3.2 of the paper), so the method needs no learning rate:
    γ = 1 (the default) is Algorithm 1 exactly; other values are PyTorch's extra multiplier.

    Args:
        params: iterable of tensors, of ``(name, tensor)`` pairs, or of parameter-group dicts.
        lr: γ >= 0, multiplies the step (default 1.0).
        rho: ρ in [0, 1], decay of both running averages (default 0.9).
        eps: ε >= 0, added inside both square roots (default 1e-6); it also sets the size of the very
            first steps, since u_0 = 0.
        weight_decay: λ >= 0, L2 penalty added to the gradient (default 0).
        foreach: ``None`` (default) or True: multi-tensor kernel; False: reference kernel.
        capturable: accepted for signature compatibility; only False.
        maximize: ascend the objective instead of descending it.
        differentiable: record the update in autograd, via the reference kernel.

    State per parameter: ``step``, ``square_avg``, ``acc_delta``.

    Reference:
        M. D. Zeiler, "ADADELTA: An Adaptive Learning Rate Method", arXiv:1212.5701, 2012, Algorithm 1.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "rho": rho,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "capturable": capturable,
            "foreach": foreach,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def _check_hyperparameters(self, hyper: dict[str, Any]) -> dict[str, Any]:
        hyper["lr"] = check_lr(hyper["lr"])
        hyper["rho"] = check_real(hyper["rho"], "rho", low=0.0, high=1.0)
        hyper["eps"] = check_real(hyper["eps"], "eps", low=0.0)
        hyper["weight_decay"] = check_real(hyper["weight_decay"], "weight_decay", low=0.0)
        for name in ("maximize", "differentiable"):
            check_flag(hyper[name], name)
        check_foreach(hyper)
        check_unsupported(hyper, "Adadelta")
        return hyper

    def _update_group(self, group: dict[str, Any]) -> None:
        params, grads, square_avgs, acc_deltas, steps = [], [], [], [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise fail(
                    ValueError,
                    "grad",
                    "a dense gradient",
                    "a sparse one",
                    "Adadelta is dense-only; use SGD or Adagrad.",
                )
            state = self.state[p]
            if len(state) == 0:
                state["step"] = new_step()
                state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["acc_delta"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            square_avgs.append(state["square_avg"])
            acc_deltas.append(state["acc_delta"])
            steps.append(state["step"])
        adadelta(
            params,
            grads,
            square_avgs,
            acc_deltas,
            steps,
            lr=group["lr"],
            rho=group["rho"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
            differentiable=group["differentiable"],
            foreach=self._use_foreach(group, grads),
        )


def adadelta(
    params: list[Tensor],
    grads: list[Tensor],
    square_avgs: list[Tensor],
    acc_deltas: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    rho: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
    differentiable: bool = False,
    foreach: bool = False,
) -> None:
    """Functional Adadelta: update ``params`` and the state lists in place (rule in :class:`Adadelta`)."""
    if not params:
        return
    kernel = _adadelta_foreach if foreach and not differentiable else _adadelta_reference
    kernel(
        params,
        grads,
        square_avgs,
        acc_deltas,
        state_steps,
        lr=lr,
        rho=rho,
        eps=eps,
        weight_decay=weight_decay,
        maximize=maximize,
        differentiable=differentiable,
    )


def _adadelta_reference(
    params: list[Tensor],
    grads: list[Tensor],
    square_avgs: list[Tensor],
    acc_deltas: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    rho: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
    differentiable: bool,
) -> None:
    for param, grad, square_avg, acc_delta, step in zip(
        params, grads, square_avgs, acc_deltas, state_steps, strict=True
    ):
        step += 1
        grad = -grad if maximize else grad
        if weight_decay != 0:
            grad = grad.add(param, alpha=weight_decay)
        param, grad, square_avg, acc_delta = real(param), real(grad), real(square_avg), real(acc_delta)
        square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
        std = square_avg.add(eps).sqrt_()
        delta = acc_delta.add(eps).sqrt_()
        if differentiable:  # sqrt_'s backward needs its output unmodified
            delta = delta.clone()
        delta.div_(std).mul_(grad)
        acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
        param.add_(delta, alpha=-lr)


def _adadelta_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    square_avgs: list[Tensor],
    acc_deltas: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    rho: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
    differentiable: bool,
) -> None:
    buckets = group_by_device_dtype(params, grads, square_avgs, acc_deltas, state_steps)
    for dev_params, dev_grads, dev_sq, dev_acc, dev_steps in buckets:
        dev_params, dev_grads = as_real(dev_params), as_real(dev_grads)
        dev_sq, dev_acc = as_real(dev_sq), as_real(dev_acc)
        increment_steps(dev_steps)
        if maximize:
            dev_grads = torch._foreach_neg(dev_grads)
        if weight_decay != 0:
            if maximize:
                torch._foreach_add_(dev_grads, dev_params, alpha=weight_decay)
            else:
                dev_grads = torch._foreach_add(dev_grads, dev_params, alpha=weight_decay)
        torch._foreach_mul_(dev_sq, rho)
        torch._foreach_addcmul_(dev_sq, dev_grads, dev_grads, value=1 - rho)
        std = torch._foreach_add(dev_sq, eps)
        torch._foreach_sqrt_(std)
        deltas = torch._foreach_add(dev_acc, eps)
        torch._foreach_sqrt_(deltas)
        torch._foreach_div_(deltas, std)
        torch._foreach_mul_(deltas, dev_grads)
        torch._foreach_mul_(dev_acc, rho)
        torch._foreach_addcmul_(dev_acc, deltas, deltas, value=1 - rho)
        torch._foreach_add_(dev_params, deltas, alpha=-lr)
