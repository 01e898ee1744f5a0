r"""Gradient clipping (FAQ Q3.3: "set a clipping threshold; gradients above it are limited to it").

Three ways to bound an exploding gradient before the optimizer step, all in place on ``p.grad``:

- :func:`clip_grad_norm`: rescale *all* gradients together so that their global norm is at most
  ``max_norm``; the direction of the full gradient is kept (Pascanu et al. 2013, Algorithm 1).
- :func:`clip_grad_norm_per_parameter`: the same rule applied to each parameter's gradient on its own;
  the direction of the full gradient changes.
- :func:`clip_grad_value`: clamp every gradient entry to ``[-clip_value, clip_value]`` (Mikolov's
  element-wise clipping); the direction changes too.

Parameters whose ``grad`` is ``None`` are skipped. Norms are computed in each gradient's own dtype and
combined on the device of the first gradient, as ``torch.nn.utils.clip_grad_norm_`` does.

Reference:
    R. Pascanu, T. Mikolov, Y. Bengio, "On the difficulty of training recurrent neural networks",
    ICML 2013, Sec. 3.2 and Algorithm 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from .._checks import check_real, fail

__all__ = ["clip_grad_norm", "clip_grad_norm_per_parameter", "clip_grad_value"]

# Added to the norm in the clip coefficient, as in torch.nn.utils.clip_grad_norm_: keeps
# max_norm / (norm + EPS) finite for an all-zero gradient and makes a clipped norm land just below max_norm.
EPS = 1e-6


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    elif not isinstance(parameters, Iterable):
        raise fail(
            TypeError,
            "parameters",
            "a tensor or an iterable of tensors",
            type(parameters).__name__,
            "Pass model.parameters().",
        )
    grads = []
    for p in parameters:
        if not isinstance(p, Tensor):
            raise fail(TypeError, "parameters", "tensors", type(p).__name__, "Pass model.parameters().")
        if p.grad is not None:
            grads.append(p.grad)
    return grads


def _norm_type(norm_type: object) -> float:
    if isinstance(norm_type, str) and norm_type.lower() == "inf":
        return math.inf
    return check_real(norm_type, "norm_type", low=0.0, low_inclusive=False, finite=False)


def _norms(grads: list[Tensor], norm_type: float) -> list[Tensor]:
    """Per-gradient p-norms, each in its gradient's dtype and on its device."""
    return [torch.linalg.vector_norm(g, norm_type) for g in grads]


@torch.no_grad()
def clip_grad_norm(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    r"""Rescale the gradients in place so that their global p-norm is at most ``max_norm``.

    With the gradients g_1, ..., g_n of the parameters (``p = norm_type``)::

        total_norm = || (||g_1||_p, ..., ||g_n||_p) ||_p      # = ||concat(g_1, ..., g_n)||_p
        coef       = min(max_norm / (total_norm + 1e-6), 1)
        g_i       <- coef · g_i

    For p = inf the norm is the largest absolute entry. The coefficient is clamped at 1, so gradients are
    only ever scaled down; the multiplication happens even when coef = 1 (no host-device sync to decide).
    Equivalent to ``torch.nn.utils.clip_grad_norm_``.

    Args:
        parameters: a tensor or an iterable of tensors (e.g. ``model.parameters()``); grads may be None.
        max_norm: the largest allowed global norm, >= 0.
        norm_type: p > 0, or ``inf`` / ``"inf"`` (default 2).
        error_if_nonfinite: raise instead of clipping when the total norm is nan or inf. Otherwise the
            gradients are multiplied by a coefficient of 0 (inf norm) or nan (nan norm), as in torch.

    Returns:
        the total norm *before* clipping, a 0-d tensor on the first gradient's device (``tensor(0.)`` when
        no parameter has a gradient).

    Raises:
        RuntimeError: ``error_if_nonfinite`` and the total norm is not finite (torch's exception type).
    """
    max_norm = check_real(max_norm, "max_norm", low=0.0)
    p = _norm_type(norm_type)
    grads = _grads(parameters)
    if not grads:
        return torch.tensor(0.0)
    device = grads[0].device
    total = torch.linalg.vector_norm(torch.stack([n.to(device) for n in _norms(grads, p)]), p)
    if error_if_nonfinite and not bool(torch.isfinite(total)):
        raise fail(
            RuntimeError,
            "clip_grad_norm",
            "a finite total gradient norm",
            f"{total.item()} (norm_type={p})",
            "Find the source of the inf/nan (e.g. deepbasics.nonfinite), or pass error_if_nonfinite=False.",
        )
    coef = torch.clamp(max_norm / (total + EPS), max=1.0)
    for g in grads:
        g.mul_(coef.to(g.device))
    return total


@torch.no_grad()
def clip_grad_norm_per_parameter(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float | str = 2.0,
) -> Tensor:
    r"""Rescale each parameter's gradient on its own so that its p-norm is at most ``max_norm``.

    For every gradient g_i::

        coef_i = min(max_norm / (||g_i||_p + 1e-6), 1)
        g_i   <- coef_i · g_i

    Unlike :func:`clip_grad_norm`, a layer with a small gradient is left alone when another layer
    explodes; the price is that the direction of the full gradient is no longer preserved.

    Args:
        parameters: a tensor or an iterable of tensors; parameters without a gradient are skipped.
        max_norm: the largest allowed norm per parameter, >= 0.
        norm_type: p > 0, or ``inf`` / ``"inf"`` (default 2).

    Returns:
        a tensor of shape ``(n,)`` with each gradient's norm *before* clipping, in the order of the
        parameters that have a gradient (on the first gradient's device; empty when none has one).
    """
    max_norm = check_real(max_norm, "max_norm", low=0.0)
    p = _norm_type(norm_type)
    grads = _grads(parameters)
    if not grads:
        return torch.zeros(0)
    norms = _norms(grads, p)
    for g, n in zip(grads, norms, strict=True):
        g.mul_(torch.clamp(max_norm / (n + EPS), max=1.0))
    device = grads[0].device
    return torch.stack([n.to(device=device, dtype=norms[0].dtype) for n in norms])


@torch.no_grad()
def clip_grad_value(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    r"""Clamp every gradient entry in place: g <- min(max(g, -clip_value), clip_value).

    Equivalent to ``torch.nn.utils.clip_grad_value_``. Element-wise clipping bounds each coordinate but
    changes the gradient's direction whenever some coordinates are clipped and others are not.

    Args:
        parameters: a tensor or an iterable of tensors; parameters without a gradient are skipped.
        clip_value: the bound c >= 0.
    """
    clip_value = check_real(clip_value, "clip_value", low=0.0)
    for g in _grads(parameters):
        g.clamp_(min=-clip_value, max=clip_value)
