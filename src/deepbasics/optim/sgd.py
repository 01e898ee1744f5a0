"""Stochastic gradient descent with heavy-ball or Nesterov momentum (FAQ Q3.1.c)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._checks import check_real, fail
from ._base import Optimizer, ParamsT, check_flag, check_foreach, check_lr, check_unsupported, group_by_device_dtype

__all__ = ["SGD", "sgd"]


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with momentum (drop-in for ``torch.optim.SGD``).

    Update rule (PyTorch's pseudo-algorithm; ``lr`` = γ, ``weight_decay`` = λ, ``momentum`` = μ,
    ``dampening`` = τ)::

        for t = 1, 2, ...:
            g_t <- -grad f(θ_{t-1})  if maximize  else  grad f(θ_{t-1})
            if λ != 0:  g_t <- g_t + λ θ_{t-1}                 # L2 penalty folded into the gradient
            if μ != 0:
                b_t <- g_t                   if t = 1           # the buffer starts at the first gradient
                b_t <- μ b_{t-1} + (1 - τ) g_t   otherwise
                g_t <- g_t + μ b_t  if nesterov  else  b_t
            θ_t <- θ_{t-1} - γ g_t

    With μ > 0 this is Polyak's heavy ball: on a quadratic with condition number κ, tuned γ and μ shrink
    the error like ((sqrt κ - 1)/(sqrt κ + 1))^t instead of ((κ - 1)/(κ + 1))^t
    (see :func:`deepbasics.optim.quadratic.heavy_ball`). The Nesterov variant evaluates the momentum step
    "ahead", in the reformulation of Sutskever et al. (2013). PyTorch (and this class) keeps γ outside
    the buffer (b accumulates gradients, not steps); Sutskever et al. put it inside, which is the same
    for a constant γ but differs when a scheduler changes γ.

    Args:
        params: iterable of tensors, of ``(name, tensor)`` pairs, or of parameter-group dicts.
        lr: learning rate γ >= 0 (default 1e-3, as torch.optim.SGD in torch 2.13).
        momentum: momentum factor μ in [0, 1) (default 0: plain SGD, no state).
        dampening: τ in [0, 1], scales the new gradient in the buffer by (1 - τ) (default 0).
        weight_decay: λ >= 0, the coefficient of the L2 penalty (λ/2)||θ||² added to the gradient.
        nesterov: use Nesterov momentum (needs μ > 0 and τ = 0).
        maximize: ascend the objective instead of descending it.
        foreach: ``None`` (default) or True: the multi-tensor kernel; False: the per-parameter reference
            kernel. Sparse gradients and ``differentiable=True`` always use the reference kernel.
        differentiable: record the update in autograd (for hypergradients), via the reference kernel.
        fused: accepted for signature compatibility; only ``None``/False.

    State per parameter: ``momentum_buffer`` (only when μ != 0; created at the first step).

    References:
        B. T. Polyak, "Some methods of speeding up the convergence of iteration methods",
        USSR Comput. Math. Math. Phys. 4(5), 1964, Sec. 2.
        I. Sutskever, J. Martens, G. Dahl, G. Hinton, "On the importance of initialization and momentum in
        deep learning", ICML 2013, Sec. 2 (eqs. 1-4).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float | Tensor = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
            "differentiable": differentiable,
            "fused": fused,
        }
        super().__init__(params, defaults)

    def _check_hyperparameters(self, hyper: dict[str, Any]) -> dict[str, Any]:
        hyper["lr"] = check_lr(hyper["lr"])
        hyper["momentum"] = check_real(hyper["momentum"], "momentum", low=0.0, high=1.0, high_inclusive=False)
        hyper["dampening"] = check_real(hyper["dampening"], "dampening", low=0.0, high=1.0)
        hyper["weight_decay"] = check_real(hyper["weight_decay"], "weight_decay", low=0.0)
        for name in ("nesterov", "maximize", "differentiable"):
            check_flag(hyper[name], name)
        if hyper["nesterov"] and (hyper["momentum"] <= 0 or hyper["dampening"] != 0):
            raise fail(
                ValueError,
                "nesterov",
                "momentum > 0 and dampening == 0",
                f"momentum={hyper['momentum']}, dampening={hyper['dampening']}",
                "Set momentum (e.g. 0.9) and dampening=0, or nesterov=False.",
            )
        check_foreach(hyper)
        check_unsupported(hyper, "SGD")
        return hyper

    def _update_group(self, group: dict[str, Any]) -> None:
        params = [p for p in group["params"] if p.grad is not None]
        grads = [p.grad for p in params]
        with_momentum = group["momentum"] != 0
        buffers = [self.state[p].get("momentum_buffer") for p in params] if with_momentum else []
        sgd(
            params,
            grads,
            buffers,
            lr=group["lr"],
            momentum=group["momentum"],
            dampening=group["dampening"],
            weight_decay=group["weight_decay"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
            foreach=self._use_foreach(group, grads),
        )
        if with_momentum:  # the kernel created the buffers of the first step in the list
            for p, buf in zip(params, buffers, strict=True):
                self.state[p]["momentum_buffer"] = buf


def sgd(
    params: list[Tensor],
    grads: list[Tensor],
    momentum_buffers: list[Tensor | None],
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
    foreach: bool = False,
) -> None:
    """Functional SGD: update ``params`` in place (rule in :class:`SGD`).

    ``momentum_buffers`` is parallel to ``params`` (empty when ``momentum == 0``); ``None`` entries are
    replaced by the new buffers of the first step. ``foreach`` picks the multi-tensor kernel.
    """
    if not params:
        return
    kernel = _sgd_foreach if foreach and not any(g.is_sparse for g in grads) else _sgd_reference
    kernel(
        params,
        grads,
        momentum_buffers,
        lr=lr,
        momentum=momentum,
        dampening=dampening,
        weight_decay=weight_decay,
        nesterov=nesterov,
        maximize=maximize,
    )


def _sgd_reference(
    params: list[Tensor],
    grads: list[Tensor],
    momentum_buffers: list[Tensor | None],
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
) -> None:
    for i, param in enumerate(params):
        grad = -grads[i] if maximize else grads[i]
        if weight_decay != 0:
            grad = grad.add(param, alpha=weight_decay)
        if momentum != 0:
            buf = momentum_buffers[i]
            if buf is None:
                buf = momentum_buffers[i] = grad.detach().clone()
            else:
                buf.mul_(momentum).add_(grad, alpha=1 - dampening)
            grad = grad.add(buf, alpha=momentum) if nesterov else buf
        param.add_(grad, alpha=-lr)


def _sgd_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    momentum_buffers: list[Tensor | None],
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
) -> None:
    index = list(range(len(params)))
    for dev_params, dev_grads, dev_bufs, dev_index in group_by_device_dtype(params, grads, momentum_buffers, index):
        if maximize:
            dev_grads = torch._foreach_neg(dev_grads)
        if weight_decay != 0:
            if maximize:  # reuse the negated copy instead of allocating another
                torch._foreach_add_(dev_grads, dev_params, alpha=weight_decay)
            else:
                dev_grads = torch._foreach_add(dev_grads, dev_params, alpha=weight_decay)
        if momentum != 0:
            if all(b is not None for b in dev_bufs):
                torch._foreach_mul_(dev_bufs, momentum)
                torch._foreach_add_(dev_bufs, dev_grads, alpha=1 - dampening)
            else:  # first step (or a param that just got its first gradient): the buffer starts at g_1
                for j, buf in enumerate(dev_bufs):
                    if buf is None:
                        dev_bufs[j] = momentum_buffers[dev_index[j]] = dev_grads[j].detach().clone()
                    else:
                        buf.mul_(momentum).add_(dev_grads[j], alpha=1 - dampening)
            if nesterov:  # out of place when dev_grads are still the caller's .grad tensors
                if maximize or weight_decay != 0:
                    torch._foreach_add_(dev_grads, dev_bufs, alpha=momentum)
                else:
                    dev_grads = torch._foreach_add(dev_grads, dev_bufs, alpha=momentum)
            else:
                dev_grads = dev_bufs
        torch._foreach_add_(dev_params, dev_grads, alpha=-lr)
