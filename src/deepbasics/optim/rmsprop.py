"""RMSprop: divide the gradient by a running root-mean-square of recent gradients."""

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

__all__ = ["RMSprop", "rmsprop"]


class RMSprop(Optimizer):
    r"""RMSprop, optionally centered and with momentum (drop-in for ``torch.optim.RMSprop``).

    Update rule (PyTorch's pseudo-algorithm; ``lr`` = γ, ``alpha`` = α, ``eps`` = ε, ``weight_decay`` = λ,
    ``momentum`` = μ; operations are element-wise)::

        v_0 <- 0 (square_avg),  b_0 <- 0 (momentum_buffer),  g^ave_0 <- 0 (grad_avg)
        for t = 1, 2, ...:
            g_t <- -grad f(θ_{t-1})  if maximize  else  grad f(θ_{t-1})
            if λ != 0:  g_t <- g_t + λ θ_{t-1}
            v_t <- α v_{t-1} + (1 - α) g_t²
            v~_t <- v_t
            if centered:
                g^ave_t <- α g^ave_{t-1} + (1 - α) g_t
                v~_t <- v~_t - (g^ave_t)²            # a running variance instead of a second moment
            if μ > 0:
                b_t <- μ b_{t-1} + g_t / (sqrt(v~_t) + ε)
                θ_t <- θ_{t-1} - γ b_t
            else:
                θ_t <- θ_{t-1} - γ g_t / (sqrt(v~_t) + ε)

    ε is added outside the square root, as in PyTorch (TensorFlow adds it inside).

    Args:
        params: iterable of tensors, of ``(name, tensor)`` pairs, or of parameter-group dicts.
        lr: learning rate γ >= 0 (default 1e-2).
        alpha: smoothing constant α in [0, 1] (default 0.99).
        eps: ε >= 0 (default 1e-8).
        weight_decay: λ >= 0, L2 penalty added to the gradient (default 0).
        momentum: μ in [0, 1) (default 0).
        centered: normalize by the estimated variance of the gradient (Graves 2013) instead of its
            second moment (default False).
        capturable: accepted for signature compatibility; only False.
        foreach: ``None`` (default) or True: multi-tensor kernel; False: reference kernel.
        maximize: ascend the objective instead of descending it.
        differentiable: record the update in autograd, via the reference kernel.

    State per parameter: ``step``, ``square_avg``; ``momentum_buffer`` if μ > 0; ``grad_avg`` if centered.

    References:
        G. Hinton, N. Srivastava, K. Swersky, "Neural Networks for Machine Learning", lecture 6e
        ("rmsprop: divide the gradient by a running average of its recent magnitude"), Coursera 2012.
        A. Graves, "Generating Sequences With Recurrent Neural Networks", arXiv:1308.0850, 2013,
        Sec. 4, eqs. (38)-(41) (centered variant with momentum).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "capturable": capturable,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def _check_hyperparameters(self, hyper: dict[str, Any]) -> dict[str, Any]:
        hyper["lr"] = check_lr(hyper["lr"])
        hyper["alpha"] = check_real(hyper["alpha"], "alpha", low=0.0, high=1.0)
        hyper["eps"] = check_real(hyper["eps"], "eps", low=0.0)
        hyper["weight_decay"] = check_real(hyper["weight_decay"], "weight_decay", low=0.0)
        hyper["momentum"] = check_real(hyper["momentum"], "momentum", low=0.0, high=1.0, high_inclusive=False)
        for name in ("centered", "maximize", "differentiable"):
            check_flag(hyper[name], name)
        check_foreach(hyper)
        check_unsupported(hyper, "RMSprop")
        return hyper

    def _update_group(self, group: dict[str, Any]) -> None:
        params, grads, square_avgs, grad_avgs, buffers, steps = [], [], [], [], [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise fail(
                    ValueError, "grad", "a dense gradient", "a sparse one", "RMSprop is dense-only; use SGD or Adagrad."
                )
            state = self.state[p]
            if len(state) == 0:
                state["step"] = new_step()
                state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            # created on demand, so momentum/centered may be switched on in a group mid-training
            if group["momentum"] > 0 and "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if group["centered"] and "grad_avg" not in state:
                state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            square_avgs.append(state["square_avg"])
            steps.append(state["step"])
            if group["momentum"] > 0:
                buffers.append(state["momentum_buffer"])
            if group["centered"]:
                grad_avgs.append(state["grad_avg"])
        rmsprop(
            params,
            grads,
            square_avgs,
            grad_avgs,
            buffers,
            steps,
            lr=group["lr"],
            alpha=group["alpha"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            centered=group["centered"],
            maximize=group["maximize"],
            differentiable=group["differentiable"],
            foreach=self._use_foreach(group, grads),
        )


def rmsprop(
    params: list[Tensor],
    grads: list[Tensor],
    square_avgs: list[Tensor],
    grad_avgs: list[Tensor],
    momentum_buffers: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
    differentiable: bool = False,
    foreach: bool = False,
) -> None:
    """Functional RMSprop: update ``params`` and the state lists in place (rule in :class:`RMSprop`).

    ``grad_avgs`` is empty unless ``centered``; ``momentum_buffers`` is empty unless ``momentum > 0``.
    """
    if not params:
        return
    kernel = _rmsprop_foreach if foreach and not differentiable else _rmsprop_reference
    kernel(
        params,
        grads,
        square_avgs,
        grad_avgs,
        momentum_buffers,
        state_steps,
        lr=lr,
        alpha=alpha,
        eps=eps,
        weight_decay=weight_decay,
        momentum=momentum,
        centered=centered,
        maximize=maximize,
        differentiable=differentiable,
    )


def _rmsprop_reference(
    params: list[Tensor],
    grads: list[Tensor],
    square_avgs: list[Tensor],
    grad_avgs: list[Tensor],
    momentum_buffers: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
    differentiable: bool,
) -> None:
    for i, param in enumerate(params):
        state_steps[i] += 1
        grad = -grads[i] if maximize else grads[i]
        if weight_decay != 0:
            grad = grad.add(param, alpha=weight_decay)
        param, grad, square_avg = real(param), real(grad), real(square_avgs[i])
        square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        if centered:
            grad_avg = real(grad_avgs[i])
            grad_avg.lerp_(grad, 1 - alpha)
            avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        else:
            avg = square_avg.sqrt()
        # out of place under autograd: sqrt's backward needs its output unmodified
        avg = avg.add(eps) if differentiable else avg.add_(eps)
        if momentum > 0:
            buf = real(momentum_buffers[i])
            buf.mul_(momentum).addcdiv_(grad, avg)
            param.add_(buf, alpha=-lr)
        else:
            param.addcdiv_(grad, avg, value=-lr)


def _rmsprop_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    square_avgs: list[Tensor],
    grad_avgs: list[Tensor],
    momentum_buffers: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
    differentiable: bool,
) -> None:
    buckets = group_by_device_dtype(params, grads, square_avgs, grad_avgs, momentum_buffers, state_steps)
    for dev_params, dev_grads, dev_sq, dev_gavg, dev_bufs, dev_steps in buckets:
        dev_params, dev_grads, dev_sq = as_real(dev_params), as_real(dev_grads), as_real(dev_sq)
        if maximize:
            dev_grads = torch._foreach_neg(dev_grads)
        increment_steps(dev_steps)
        if weight_decay != 0:
            if maximize:
                torch._foreach_add_(dev_grads, dev_params, alpha=weight_decay)
            else:
                dev_grads = torch._foreach_add(dev_grads, dev_params, alpha=weight_decay)
        torch._foreach_mul_(dev_sq, alpha)
        torch._foreach_addcmul_(dev_sq, dev_grads, dev_grads, value=1 - alpha)
        if centered:
            dev_gavg = as_real(dev_gavg)
            torch._foreach_lerp_(dev_gavg, dev_grads, 1 - alpha)
            avg = torch._foreach_addcmul(dev_sq, dev_gavg, dev_gavg, value=-1)
            torch._foreach_sqrt_(avg)
        else:
            avg = torch._foreach_sqrt(dev_sq)
        torch._foreach_add_(avg, eps)
        if momentum > 0:
            dev_bufs = as_real(dev_bufs)
            torch._foreach_mul_(dev_bufs, momentum)
            torch._foreach_addcdiv_(dev_bufs, dev_grads, avg)
            torch._foreach_add_(dev_params, dev_bufs, alpha=-lr)
        else:
            torch._foreach_addcdiv_(dev_params, dev_grads, avg, value=-lr)
