"""Losses and penalties from their formulas, and the closed-form output-layer gradients behind FAQ Q5 and Q6.

FAQ Q5 (why cross-entropy beats mean squared error with sigmoid and softmax outputs). For a sigmoid output
``a = sigma(z)`` and target ``y``, the per-element gradients with respect to the pre-activation ``z`` are

    MSE, l = (a - y)^2 / 2:                         dl/dz = (a - y) * sigma'(z) = (a - y) a (1 - a)
    binary cross-entropy, l = -y log a - (1-y) log(1-a):  dl/dz = a - y

When the unit is saturated and wrong (``z = -10``, ``y = 1``: ``a ~ 4.5e-5``) the MSE gradient carries the factor
``sigma'(z) ~ 4.5e-5`` and learning stalls, although the error ``a - y ~ -1`` is as large as it gets; the
cross-entropy gradient is the error itself. The same holds for softmax: cross-entropy gives ``p - y``, MSE
gives ``J_softmax^T (p - y)`` whose entries all carry a factor ``p_j``. Reference: Nielsen, *Neural Networks
and Deep Learning* (2015), ch. 3; Goodfellow et al., *Deep Learning* (2016), sec. 6.2.2.2.

FAQ Q6 (L1 and L2 regularization): :func:`l1_penalty` and :func:`l2_penalty` add ``lambda * sum |w|`` or
``lambda * sum w^2`` to the loss; they make the model prefer small weights, and L1 drives many to zero.
Reference: Goodfellow et al. (2016), sec. 7.1.

All losses agree with ``torch.nn.functional`` (tested in float64 to 1e-12), use the stable
:func:`deepbasics.numerics.log_softmax` / :func:`deepbasics.numerics.log1pexp`, and stay finite for logits of
``|1e4|``. ``reduction`` is ``"mean"`` (default), ``"sum"`` or ``"none"``, as in torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from ._checks import check_choice, check_same_shape, check_tensor, fail
from .activations import sigmoid
from .numerics import log1pexp, log_softmax, softmax, upcast

__all__ = [
    "VALID_OUTPUT_COMBINATIONS",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "l1_penalty",
    "l2_penalty",
    "mse",
    "output_layer_gradient",
]

REDUCTIONS = ("mean", "sum", "none")
VALID_OUTPUT_COMBINATIONS = (("mse", "sigmoid"), ("bce", "sigmoid"), ("ce", "softmax"), ("mse", "softmax"))


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def mse(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error ``(1/n) sum_i (pred_i - target_i)^2`` over all ``n`` elements (``reduction="mean"``).

    Same as ``torch.nn.functional.mse_loss``, except that shapes must match exactly (torch broadcasts with a
    warning, a common silent bug). ``"sum"`` drops the ``1/n``; ``"none"`` returns the squared errors.
    """
    pred = check_tensor(pred, "pred", floating=True)
    target = check_tensor(target, "target", floating=True)
    check_same_shape(pred, target, "pred", "target")
    check_choice(reduction, "reduction", REDUCTIONS)
    loss = (upcast(pred) - upcast(target)) ** 2
    return _reduce(loss, reduction).to(torch.promote_types(pred.dtype, target.dtype))


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Softmax cross-entropy ``l = -sum_c y_c log softmax(logits)_c``, as ``torch.nn.functional.cross_entropy``.

    Shapes (torch's conventions): ``logits`` (N, C) or (N, C, d1, ...) with classes along dim 1, or (C,) for
    one example. ``target`` is either integer class indices of shape (N,) / (N, d1, ...) / () with values in
    ``[0, C)``, for which ``l = -log softmax(logits)_target``, or class probabilities of ``logits``' shape
    (soft labels; ``0 * log q = 0``). ``"mean"`` averages ``l`` over the N (x d1 ...) examples. No
    ``ignore_index``, class weights or label smoothing: compose those yourself.

    ``log softmax`` comes from :func:`deepbasics.numerics.log_softmax`, so the loss is finite for logits of
    ``|1e4|`` (where ``log(softmax(logits))`` would be ``-inf``).
    Reference: Goodfellow et al. (2016), sec. 6.2.2.3.
    """
    logits = check_tensor(logits, "logits", floating=True, min_dim=1)
    target = check_tensor(target, "target", nonempty=False)
    check_choice(reduction, "reduction", REDUCTIONS)
    cdim = 1 if logits.dim() >= 2 else 0
    n_classes = logits.shape[cdim]
    logp = log_softmax(upcast(logits), cdim)
    if target.is_floating_point():
        check_same_shape(logits, target, "logits", "target")
        t = upcast(target)
        loss = -(t * torch.where(t == 0, torch.zeros_like(logp), logp)).sum(cdim)
        return _reduce(loss, reduction).to(torch.promote_types(logits.dtype, target.dtype))
    if target.dtype == torch.bool or target.is_complex():
        raise fail(TypeError, "target", "integer class indices or float probabilities", target.dtype, "Use .long().")
    expected = logits.shape[:cdim] + logits.shape[cdim + 1 :]
    if target.shape != expected:
        raise fail(
            ValueError,
            "target",
            f"class indices of shape {tuple(expected)} (logits' shape without the class dim {cdim})",
            f"shape {tuple(target.shape)}",
            "For probability targets pass a float tensor of the logits' shape.",
        )
    lo, hi = int(target.min()), int(target.max())
    if lo < 0 or hi >= n_classes:
        raise fail(
            ValueError,
            "target",
            f"class indices in [0, {n_classes - 1}] ({n_classes} classes in logits' dim {cdim})",
            f"values from {lo} to {hi}",
            "Fix the labels or the number of output units (ignore_index is not supported).",
        )
    loss = -logp.gather(cdim, target.long().unsqueeze(cdim)).squeeze(cdim)
    return _reduce(loss, reduction).to(logits.dtype)


def binary_cross_entropy_with_logits(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """``l = -y log sigma(z) - (1 - y) log(1 - sigma(z)) = max(z, 0) - z y + log(1 + e^{-|z|})``.

    The right-hand form (``log(1 + e^z) - z y``, with ``log(1 + e^z)`` from
    :func:`deepbasics.numerics.log1pexp`) never evaluates ``log 0`` or ``e^{large}``: finite for ``|z|`` up
    to 1e4, where ``log(sigmoid(z))`` is ``-inf``. ``target`` in [0, 1], same shape as ``logits``.
    Same as ``torch.nn.functional.binary_cross_entropy_with_logits`` (no ``weight``/``pos_weight``).
    """
    logits = check_tensor(logits, "logits", floating=True)
    target = check_tensor(target, "target", floating=True)
    check_same_shape(logits, target, "logits", "target")
    check_choice(reduction, "reduction", REDUCTIONS)
    z, y = upcast(logits), upcast(target)
    loss = log1pexp(z) - z * y
    return _reduce(loss, reduction).to(torch.promote_types(logits.dtype, target.dtype))


def _parameters(parameters: object) -> list[torch.Tensor]:
    if isinstance(parameters, nn.Module):
        tensors = list(parameters.parameters())
    elif isinstance(parameters, torch.Tensor):
        tensors = [parameters]  # a lone tensor, not an iterable of its rows
    elif isinstance(parameters, Iterable):
        tensors = list(parameters)
    else:
        raise fail(
            TypeError, "parameters", "an nn.Module or an iterable of tensors", type(parameters).__name__,
            "Pass model or model.parameters().",
        )  # fmt: skip
    if not tensors:
        raise fail(
            ValueError, "parameters", "at least one tensor", "none",
            "Check that the module has parameters and that a generator was not already consumed.",
        )  # fmt: skip
    for i, t in enumerate(tensors):
        check_tensor(t, f"parameters[{i}]", floating=True, nonempty=False)
    return tensors


def _penalty(parameters: object, skip_1d: bool, term: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    tensors = _parameters(parameters)
    device, dtype = tensors[0].device, upcast(tensors[0]).dtype
    for t in tensors:
        dtype = torch.promote_types(dtype, upcast(t).dtype)
    total = torch.zeros((), dtype=dtype, device=device)
    for t in tensors:
        if not (skip_1d and t.dim() < 2):
            total = total + term(t.to(dtype)).sum().to(device)
    return total


def l1_penalty(parameters: nn.Module | Iterable[torch.Tensor], skip_1d: bool = False) -> torch.Tensor:
    """L1 penalty ``sum_i |w_i|`` over every element of every parameter (FAQ Q6).

    Add ``lambda * l1_penalty(model)`` to the loss. Its (sub)gradient ``lambda * sign(w)`` pulls every weight
    towards 0 by the same amount whatever its size, which sets many weights exactly to zero (sparsity).

    Args:
        parameters: an ``nn.Module`` (all its parameters) or an iterable of tensors (a lone tensor counts
            as one parameter).
        skip_1d: leave out tensors with fewer than 2 dims (biases, normalization scales), as is usual for
            weight decay.

    Returns:
        A 0-d tensor on the first parameter's device; float32 at least (a float16 sum of many squares
        would overflow), else the parameters' promoted dtype.

    Reference: Tibshirani (1996), the lasso; Goodfellow et al. (2016), sec. 7.1.2.
    """
    return _penalty(parameters, skip_1d, torch.abs)


def l2_penalty(parameters: nn.Module | Iterable[torch.Tensor], skip_1d: bool = False) -> torch.Tensor:
    """L2 penalty ``||w||_2^2 = sum_i w_i^2`` over every element of every parameter (FAQ Q6), without 1/2.

    Convention: no factor 1/2, so ``d l2_penalty / dw = 2 w``. Weight decay with coefficient ``lambda``
    (``torch.optim.SGD(weight_decay=lambda)``, which adds ``lambda * w`` to the gradient) equals adding
    ``(lambda / 2) * l2_penalty(model)`` to the loss, since ``grad (lambda/2) ||w||^2 = lambda w``. (With Adam
    the two differ; decoupled weight decay is AdamW, Loshchilov & Hutter 2019.)

    Args and returns as :func:`l1_penalty`.

    Reference: Goodfellow et al. (2016), sec. 7.1.1.
    """
    return _penalty(parameters, skip_1d, torch.square)


def output_layer_gradient(loss: str, activation: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Closed-form ``dL/dz`` at the output layer's pre-activations ``z`` (FAQ Q5).

    Reduction (used by every combination): ``L = (1/N) sum_n l_n``, the mean over the batch (dim 0, size N)
    of per-example losses that sum over the example's output units:

    - ("mse", "sigmoid"): ``l_n = 1/2 sum_k (a_k - y_k)^2``, ``dL/dz = (a - y) a (1 - a) / N``, ``a = sigma(z)``
    - ("bce", "sigmoid"): ``l_n = -sum_k [y_k log a_k + (1 - y_k) log(1 - a_k)]``, ``dL/dz = (a - y) / N``
    - ("ce", "softmax"): ``l_n = -sum_k y_k log p_k``, ``p = softmax(z)``, ``dL/dz = (p - y) / N``
      (``(p sum_k y_k - y) / N`` when the targets do not sum to 1)
    - ("mse", "softmax"): ``l_n = 1/2 sum_k (p_k - y_k)^2``, ``dL/dz = J^T (p - y) / N`` with the softmax
      Jacobian ``J_kj = p_k (delta_kj - p_j)``, i.e. ``dL/dz_j = p_j (e_j - sum_k e_k p_k) / N``, ``e = p - y``

    The 1/2 in MSE is Nielsen's convention; torch's ``mse_loss(a, y, reduction="sum") / N`` is twice this L.
    With the MSE rows the error ``a - y`` is multiplied by the activation's derivative, which vanishes when
    the output saturates, even if it saturates on the wrong answer; with the cross-entropy rows it is not.

    Args:
        loss: "mse", "bce" or "ce". activation: "sigmoid" or "softmax"; see ``VALID_OUTPUT_COMBINATIONS``.
        z: pre-activations; (N, K) for softmax, (N,) or (N, ...) for sigmoid (elementwise units).
        y: targets of ``z``'s shape; for ("ce", "softmax") also integer class indices of shape (N,).

    Returns:
        ``dL/dz`` of ``z``'s shape, dtype and device.
    """
    check_choice(loss, "loss", ("mse", "bce", "ce"))
    check_choice(activation, "activation", ("sigmoid", "softmax"))
    if (loss, activation) not in VALID_OUTPUT_COMBINATIONS:
        raise fail(
            ValueError, "(loss, activation)", f"one of {list(VALID_OUTPUT_COMBINATIONS)}", (loss, activation),
            "Use 'bce' with 'sigmoid' and 'ce' with 'softmax' (or 'mse' with either).",
        )  # fmt: skip
    z = check_tensor(z, "z", floating=True, min_dim=1, ndim=2 if activation == "softmax" else None)
    y = check_tensor(y, "y")
    zc = upcast(z)
    if not y.is_floating_point() and (loss, activation) == ("ce", "softmax"):
        if y.shape != z.shape[:1] or bool(((y < 0) | (y >= z.shape[1])).any()):
            raise fail(
                ValueError, "y", f"class indices of shape ({z.shape[0]},) in [0, {z.shape[1] - 1}]",
                f"shape {tuple(y.shape)}, values {y.min().item()}..{y.max().item()}", "Fix the labels.",
            )  # fmt: skip
        y = torch.nn.functional.one_hot(y.long(), z.shape[1]).to(zc.dtype)
    check_tensor(y, "y", floating=True)
    check_same_shape(z, y, "z", "y")
    yc = upcast(y).to(zc.dtype)
    n = z.shape[0]
    if activation == "sigmoid":
        a = sigmoid(zc)
        grad = (a - yc) * a * sigmoid(-zc) if loss == "mse" else a - yc  # a (1 - a) as sigma(z) sigma(-z)
    else:
        p = softmax(zc, dim=1)
        if loss == "ce":
            grad = p * yc.sum(1, keepdim=True) - yc
        else:
            e = p - yc  # (N, K)
            grad = p * (e - (e * p).sum(1, keepdim=True))
    return (grad / n).to(z.dtype)
