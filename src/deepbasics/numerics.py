"""Numerically stable softmax, log-softmax and log-sum-exp, and the small safe helpers other modules use.

FAQ Q8 ("how are overflow and underflow avoided? the softmax example"). Overflow rounds a large number to
``inf``; underflow rounds a tiny one to ``0``. The softmax of a vector ``x`` of length ``n``

    softmax(x)_i = e^{x_i} / sum_{j=1}^{n} e^{x_j}

overflows (``e^{x_i} = inf`` for ``x_i > 88`` in float32, ``> 11`` in float16) and then returns
``inf / inf = nan``; for strongly negative ``x`` every ``e^{x_j}`` underflows to 0 and it returns ``0 / 0 = nan``.
Softmax is unchanged by adding a scalar to every input, so we evaluate it at ``x - max_i(x_i)``: the largest
exponent is then ``e^0 = 1`` (no overflow) and the denominator is ``>= 1`` (it cannot underflow to 0, so no
division by zero). Numerators can still underflow to 0, which makes ``log(softmax(x))`` equal ``-inf``; hence
``log_softmax(x) = x - logsumexp(x)`` is computed directly and is finite whenever ``x`` is.
Reference: Goodfellow, Bengio & Courville, *Deep Learning* (2016), sec. 4.1.

Every function here says which failure it prevents. float16/bfloat16 inputs are computed in float32 and cast
back (as torch does), so results keep the input's dtype and device. Gradients come from plain differentiable
torch ops (the shift ``max(x)`` is detached: the result does not depend on it, and detaching keeps ties in
the max from splitting gradients).

This module is the one place for numerically delicate code (STYLE.md); ``information``, ``activations`` and
``losses`` build on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ._checks import check_dim, check_tensor, fail

__all__ = [
    "log1pexp",
    "log_sigmoid",
    "log_softmax",
    "logsumexp",
    "naive_log_softmax",
    "naive_softmax",
    "safe_log",
    "softmax",
    "split_where",
    "upcast",
    "xlogy",
]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def upcast(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` in float32 if it is float16/bfloat16, else ``x`` itself (torch's "opmath" type).

    Prevents: overflow and rounding of intermediate results in half precision (``e^{12} = inf`` in float16;
    bfloat16 keeps 8 significant bits). Cast the result back with ``.to(x.dtype)``.
    """
    return x.float() if x.dtype in _LOW_PRECISION else x


def _float_tensor(x: object, name: str) -> torch.Tensor:
    return check_tensor(x, name, floating=True, nonempty=False)


def _dims(x: torch.Tensor, dim: int | Sequence[int]) -> tuple[int, ...]:
    dims = (dim,) if isinstance(dim, int) or not isinstance(dim, Sequence) else tuple(dim)
    if not dims:
        raise fail(ValueError, "dim", "an int or a non-empty tuple of ints", dim, "Name the dimension(s) to reduce.")
    out = tuple(check_dim(x, d) for d in dims)
    if len(set(out)) != len(out):
        raise fail(ValueError, "dim", "distinct dimensions", dim, "Name each dimension once.")
    return out


def _shift(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """``max(x)`` over ``dims`` (kept), detached: the results are exactly invariant to the shift."""
    if x.dim() == 0:
        return x.detach()
    return x.detach().amax(dim=dims, keepdim=True)


def logsumexp(x: torch.Tensor, dim: int | Sequence[int] = -1, keepdim: bool = False) -> torch.Tensor:
    """Stable ``log sum_j e^{x_j}`` over ``dim``.

    Computed as ``m + log sum_j e^{x_j - m}`` with ``m = max_j x_j``: no term exceeds ``e^0 = 1`` (no
    overflow) and the sum is ``>= 1`` (no ``log 0``). As in ``torch.logsumexp``, an infinite ``m`` is replaced
    by 0, so a row of all ``-inf`` gives ``-inf`` and a row containing ``+inf`` gives ``+inf``; nan propagates.

    Args:
        x: floating tensor of any shape (..., n, ...).
        dim: the dimension (int) or dimensions (tuple of ints) to reduce; default the last.
        keepdim: keep the reduced dimensions with size 1.

    Returns:
        ``x``'s shape without ``dim`` (or with size 1 there if ``keepdim``); ``x``'s dtype and device.

    Reference: Goodfellow et al., *Deep Learning*, sec. 4.1.
    """
    x = _float_tensor(x, "x")
    dims = _dims(x, dim)
    xc = upcast(x)
    if x.numel() == 0:  # nothing can overflow; an empty sum is 0 and log 0 = -inf, like torch
        return torch.log(torch.exp(xc).sum(dim=dims, keepdim=keepdim)).to(x.dtype)
    m = _shift(xc, dims)
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    out = m + torch.log(torch.exp(xc - m).sum(dim=dims, keepdim=True))
    if not keepdim and x.dim() > 0:
        out = out.squeeze(dims)
    return out.to(x.dtype)


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Stable softmax ``softmax(x)_i = e^{x_i} / sum_j e^{x_j}`` along ``dim`` (FAQ Q8).

    Evaluated at ``x - max_j x_j`` (the value is unchanged by that shift): the largest exponential is
    ``e^0 = 1``, so nothing overflows, and the denominator is at least 1, so it cannot underflow to 0.
    Matches ``torch.softmax`` on special values: a row of all ``-inf`` or one containing ``+inf`` (or nan)
    gives a row of nan; ``-inf`` entries in an otherwise finite row get probability 0.

    Args:
        x: floating tensor of any shape; dim: the dimension to normalize over (int, default last).

    Returns:
        Probabilities of ``x``'s shape, dtype and device, summing to 1 along ``dim``.

    Reference: Goodfellow et al., *Deep Learning*, sec. 4.1.
    """
    x = _float_tensor(x, "x")
    dims = (check_dim(x, dim),)
    xc = upcast(x)
    if x.numel() == 0:
        return torch.empty_like(x)
    e = torch.exp(xc - _shift(xc, dims))
    return (e / e.sum(dim=dims, keepdim=True)).to(x.dtype)


def log_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Stable ``log softmax(x)_i = x_i - logsumexp(x)`` along ``dim`` (FAQ Q8, second half).

    ``log(softmax(x))`` fails when a numerator ``e^{x_i - max x}`` underflows to 0: the log is then ``-inf``
    although the true value (e.g. ``-2000``) is finite. Computing
    ``(x_i - m) - log sum_j e^{x_j - m}``, ``m = max_j x_j``, never takes the log of an underflowed number,
    so the result is finite whenever ``x`` is. Special values as in ``torch.log_softmax`` (all ``-inf`` or any
    ``+inf`` in a row gives nan; a ``-inf`` entry in a finite row gives ``-inf``).

    Args:
        x: floating tensor of any shape; dim: the dimension to normalize over (int, default last).

    Returns:
        Log-probabilities of ``x``'s shape, dtype and device.

    Reference: Goodfellow et al., *Deep Learning*, sec. 4.1.
    """
    x = _float_tensor(x, "x")
    dims = (check_dim(x, dim),)
    xc = upcast(x)
    if x.numel() == 0:
        return torch.empty_like(x)
    shifted = xc - _shift(xc, dims)
    return (shifted - torch.log(torch.exp(shifted).sum(dim=dims, keepdim=True))).to(x.dtype)


def naive_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """DELIBERATELY UNSTABLE ``e^{x_i} / sum_j e^{x_j}``, computed as written, in ``x``'s own dtype.

    Kept for demonstrations (FAQ Q8.a, the doctor's ``naive_softmax`` finding): it returns nan once any
    ``x_i`` exceeds ~88 (float32) or ~11 (float16) because ``inf / inf = nan``, and nan when every ``x_j``
    is below ~-104 (float32) because ``0 / 0 = nan``. Use :func:`softmax` for real work.
    """
    x = _float_tensor(x, "x")
    dims = (check_dim(x, dim),)
    e = torch.exp(x)
    return e / e.sum(dim=dims, keepdim=True)


def naive_log_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """DELIBERATELY UNSTABLE ``log(naive_softmax(x))``, kept for demonstrations (FAQ Q8.b).

    Besides inheriting :func:`naive_softmax`'s overflow, it returns ``-inf`` wherever a probability
    underflows to 0 (e.g. ``x = [0, -1000]`` gives ``[0, -inf]``; the true value is ``[0, -1000]``).
    Use :func:`log_softmax` for real work.
    """
    return torch.log(naive_softmax(x, dim))


def xlogy(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x * log(y)`` with the information-theory convention ``0 * log(anything) = 0``.

    Prevents: ``0 * log 0 = 0 * (-inf) = nan`` in entropies (``-sum p log p`` with some ``p_i = 0``).
    Where ``x > 0`` and ``y = 0`` the result is ``-inf`` (so cross-entropy and KL are ``+inf`` there).
    Thin wrapper over ``torch.xlogy`` after argument checks; works elementwise with broadcasting.
    """
    x = _float_tensor(x, "x")
    y = _float_tensor(y, "y")
    return torch.xlogy(x, y)


def safe_log(x: torch.Tensor) -> torch.Tensor:
    """``log(max(x, tiny))`` with ``tiny`` the smallest normal number of ``x``'s dtype.

    Prevents: ``log 0 = -inf`` (and the nan it becomes in ``0 * log 0`` or in gradients) for non-negative
    inputs that underflowed to 0; the result is at least ``log(tiny)`` (about -708 in float64, -87 in
    float32). Its gradient is 0 below ``tiny``. Negative inputs are clamped too: validate them before if
    they are errors.
    """
    x = _float_tensor(x, "x")
    return torch.log(x.clamp_min(torch.finfo(x.dtype).tiny))


def split_where(
    z: torch.Tensor,
    nonneg: Callable[[torch.Tensor], torch.Tensor],
    neg: Callable[[torch.Tensor], torch.Tensor],
    *,
    strict: bool = False,
) -> torch.Tensor:
    """``nonneg(z)`` where ``z >= 0`` (``z > 0`` if ``strict``), else ``neg(z)``: a gradient-safe piecewise.

    Each branch is evaluated only on inputs clamped to its own half-line (``clamp_min(z, 0)`` and
    ``clamp_max(z, 0)``), so neither ever sees the inputs that make it overflow. Prevents the classic
    ``torch.where`` pitfall: the branch that is not selected still back-propagates ``0 * inf = nan``.
    Also keeps the derivative at ``z = 0`` exact, which formulas using ``|z|`` lose (``d|z|/dz = 0`` at 0).
    """
    zp, zn = z.clamp_min(0), z.clamp_max(0)
    mask = z > 0 if strict else z >= 0
    return torch.where(mask, nonneg(zp), neg(zn))


def log1pexp(x: torch.Tensor) -> torch.Tensor:
    """Stable softplus ``log(1 + e^x) = max(x, 0) + log1p(e^{-|x|})``.

    Prevents: ``e^x = inf`` for large ``x`` (``log(1 + e^{1000})`` is 1000, not inf) and loss of precision
    for very negative ``x`` (``log1p`` keeps ``log(1 + 1e-30) = 1e-30``). Derivative ``sigmoid(x)``, exact at 0.
    Reference: Mächler, "Accurately computing log(1 - exp(-|a|)) assessed by the Rmpfr package" (2012).
    """
    x = _float_tensor(x, "x")
    xc = upcast(x)
    out = split_where(xc, lambda t: t + torch.log1p(torch.exp(-t)), lambda t: torch.log1p(torch.exp(t)))
    return out.to(x.dtype)


def log_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Stable ``log sigmoid(x) = -log(1 + e^{-x}) = min(x, 0) - log1p(e^{-|x|})``.

    Prevents: ``log(sigmoid(x)) = log 0 = -inf`` for ``x < -745`` (float64; ``-104`` in float32); the true
    value is about ``x``. Derivative ``sigmoid(-x)``. Same as ``torch.nn.functional.logsigmoid``.
    """
    x = _float_tensor(x, "x")
    return -log1pexp(-x)
