"""Adam, its AMSGrad variant, and AdamW (decoupled weight decay)."""

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

__all__ = ["Adam", "AdamW", "adam"]


class Adam(Optimizer):
    r"""Adam, optionally AMSGrad or with decoupled weight decay (drop-in for ``torch.optim.Adam``).

    Update rule (PyTorch's pseudo-algorithm; ``lr`` = γ, ``betas`` = (β1, β2), ``eps`` = ε,
    ``weight_decay`` = λ; operations are element-wise)::

        m_0 <- 0 (exp_avg),  v_0 <- 0 (exp_avg_sq),  v^max_0 <- 0 (max_exp_avg_sq)
        for t = 1, 2, ...:
            g_t <- -grad f(θ_{t-1})  if maximize  else  grad f(θ_{t-1})
            if λ != 0:
                if decoupled_weight_decay:  θ_{t-1} <- θ_{t-1} (1 - γ λ)      # AdamW
                else:                       g_t <- g_t + λ θ_{t-1}            # L2 penalty
            m_t <- β1 m_{t-1} + (1 - β1) g_t
            v_t <- β2 v_{t-1} + (1 - β2) g_t²
            if amsgrad:  v^max_t <- max(v^max_{t-1}, v_t);  v_t <- v^max_t   # (only in the step below)
            θ_t <- θ_{t-1} - γ (m_t / (1 - β1^t)) / (sqrt(v_t / (1 - β2^t)) + ε)

    The divisions by 1 - β^t undo the bias of moving averages started at 0 (Kingma & Ba, Sec. 3).
    AMSGrad keeps the largest v seen so far, so the effective step size never grows (Reddi et al.,
    Algorithm 2); like PyTorch, the maximum is taken over the raw v and then bias-corrected.

    Args:
        params: iterable of tensors, of ``(name, tensor)`` pairs, or of parameter-group dicts.
        lr: learning rate γ >= 0 (default 1e-3).
        betas: (β1, β2), each in [0, 1) (default (0.9, 0.999)).
        eps: ε >= 0, added to the denominator (default 1e-8).
        weight_decay: λ >= 0 (default 0): an L2 penalty, or a decoupled decay with
            ``decoupled_weight_decay=True``.
        amsgrad: use the AMSGrad maximum (default False).
        foreach: ``None`` (default) or True: multi-tensor kernel; False: reference kernel.
        maximize: ascend the objective instead of descending it.
        capturable: accepted for signature compatibility; only False.
        differentiable: record the update in autograd, via the reference kernel.
        fused: accepted for signature compatibility; only ``None``/False.
        decoupled_weight_decay: apply λ to θ directly (AdamW) instead of adding it to the gradient.

    State per parameter: ``step`` (CPU scalar tensor), ``exp_avg``, ``exp_avg_sq``; ``max_exp_avg_sq``
    if amsgrad.

    References:
        D. P. Kingma, J. Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, Algorithm 1.
        S. J. Reddi, S. Kale, S. Kumar, "On the Convergence of Adam and Beyond", ICLR 2018, Algorithm 2.
        I. Loshchilov, F. Hutter, "Decoupled Weight Decay Regularization", ICLR 2019, Algorithm 2.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
            "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _check_hyperparameters(self, hyper: dict[str, Any]) -> dict[str, Any]:
        hyper["lr"] = check_lr(hyper["lr"])
        betas = hyper["betas"]
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise fail(TypeError, "betas", "a pair (beta1, beta2)", repr(betas), "Pass e.g. betas=(0.9, 0.999).")
        hyper["betas"] = tuple(
            check_real(b, f"betas[{i}]", low=0.0, high=1.0, high_inclusive=False) for i, b in enumerate(betas)
        )
        hyper["eps"] = check_real(hyper["eps"], "eps", low=0.0)
        hyper["weight_decay"] = check_real(hyper["weight_decay"], "weight_decay", low=0.0)
        for name in ("amsgrad", "maximize", "differentiable", "decoupled_weight_decay"):
            check_flag(hyper[name], name)
        check_foreach(hyper)
        check_unsupported(hyper, type(self).__name__)
        return hyper

    def _update_group(self, group: dict[str, Any]) -> None:
        params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps = [], [], [], [], [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise fail(
                    ValueError,
                    "grad",
                    "a dense gradient",
                    "a sparse one",
                    "Adam is dense-only; use torch.optim.SparseAdam for sparse embeddings.",
                )
            state = self.state[p]
            if len(state) == 0:
                state["step"] = new_step()
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if group["amsgrad"] and "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
            if group["amsgrad"]:
                max_exp_avg_sqs.append(state["max_exp_avg_sq"])
        beta1, beta2 = group["betas"]
        adam(
            params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            max_exp_avg_sqs,
            steps,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            amsgrad=group["amsgrad"],
            maximize=group["maximize"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
            differentiable=group["differentiable"],
            foreach=self._use_foreach(group, grads),
        )


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay (drop-in for ``torch.optim.AdamW``).

    The rule of :class:`Adam` with ``decoupled_weight_decay=True``: each step first shrinks the
    parameters, θ <- θ (1 - γ λ), and the gradient moments never see λ. With an L2 penalty instead,
    Adam divides the penalty's gradient λθ by sqrt(v), so weights with large gradients are barely
    regularized; decoupling restores weight decay's meaning (Loshchilov & Hutter, Sec. 2). PyTorch
    (and this class) multiply λ by the learning rate γ; the paper multiplies it by the schedule factor
    η_t only, so λ here is the paper's λ / α.

    Args:
        params, lr, betas, eps, amsgrad, maximize, foreach, capturable, differentiable, fused: as
            :class:`Adam`.
        weight_decay: λ >= 0 (default 1e-2).

    Reference:
        I. Loshchilov, F. Hutter, "Decoupled Weight Decay Regularization", ICLR 2019, Algorithm 2.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        # AdamW is decoupled by definition, whatever the loaded state dict says (as torch.optim.AdamW)
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


def adam(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    max_exp_avg_sqs: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool = False,
    differentiable: bool = False,
    foreach: bool = False,
) -> None:
    """Functional Adam/AdamW: update ``params`` and the state lists in place (rule in :class:`Adam`).

    ``max_exp_avg_sqs`` is empty unless ``amsgrad``.
    """
    if not params:
        return
    kernel = _adam_foreach if foreach and not differentiable else _adam_reference
    kernel(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        max_exp_avg_sqs,
        state_steps,
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        weight_decay=weight_decay,
        amsgrad=amsgrad,
        maximize=maximize,
        decoupled_weight_decay=decoupled_weight_decay,
        differentiable=differentiable,
    )


def _adam_reference(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    max_exp_avg_sqs: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
    differentiable: bool,
) -> None:
    for i, param in enumerate(params):
        grad = -grads[i] if maximize else grads[i]
        state_steps[i] += 1
        step = state_steps[i].item()
        if weight_decay != 0:
            if decoupled_weight_decay:
                param.mul_(1 - lr * weight_decay)
            else:
                grad = grad.add(param, alpha=weight_decay)
        param, grad, exp_avg, exp_avg_sq = real(param), real(grad), real(exp_avgs[i]), real(exp_avg_sqs[i])
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        second_moment = exp_avg_sq
        if amsgrad:
            max_exp_avg_sq = real(max_exp_avg_sqs[i])
            # under autograd the old maximum is an input of torch.maximum, so it must not be overwritten
            old_max = max_exp_avg_sq.clone() if differentiable else max_exp_avg_sq
            max_exp_avg_sq.copy_(torch.maximum(old_max, exp_avg_sq))
            second_moment = max_exp_avg_sq
        denom = (second_moment.sqrt() / bias_correction2_sqrt).add_(eps)
        # exp_avg is updated in place next step, so autograd needs its own copy of today's value
        param.addcdiv_(exp_avg.clone() if differentiable else exp_avg, denom, value=-lr / bias_correction1)


def _adam_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    max_exp_avg_sqs: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
    differentiable: bool,
) -> None:
    buckets = group_by_device_dtype(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps)
    for dev_params, dev_grads, dev_m, dev_v, dev_vmax, dev_steps in buckets:
        dev_params, dev_grads, dev_m, dev_v = as_real(dev_params), as_real(dev_grads), as_real(dev_m), as_real(dev_v)
        if maximize:
            dev_grads = torch._foreach_neg(dev_grads)
        steps = increment_steps(dev_steps)
        if weight_decay != 0:
            if decoupled_weight_decay:
                torch._foreach_mul_(dev_params, 1 - lr * weight_decay)
            elif maximize:  # reuse the negated copy
                torch._foreach_add_(dev_grads, dev_params, alpha=weight_decay)
            else:
                dev_grads = torch._foreach_add(dev_grads, dev_params, alpha=weight_decay)
        torch._foreach_lerp_(dev_m, dev_grads, 1 - beta1)
        torch._foreach_mul_(dev_v, beta2)
        torch._foreach_addcmul_(dev_v, dev_grads, dev_grads, value=1 - beta2)
        del dev_grads  # lower peak memory: the gradient copies are not needed any more
        step_sizes = [-lr / (1 - beta1**t) for t in steps]
        bias_corrections2_sqrt = [(1 - beta2**t) ** 0.5 for t in steps]
        if amsgrad:
            dev_vmax = as_real(dev_vmax)
            torch._foreach_maximum_(dev_vmax, dev_v)
            denom = torch._foreach_sqrt(dev_vmax)
        else:
            denom = torch._foreach_sqrt(dev_v)
        torch._foreach_div_(denom, bias_corrections2_sqrt)
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(dev_params, dev_m, denom, step_sizes)
