"""Per-group moments for the normalization layers: the one place where their variance is computed.

Every normalization layer (:mod:`.batchnorm`, :mod:`.layernorm`) computes, over some reduction dimensions
``dims`` of ``x``,

    mu      = (1/m) sum_i x_i
    sigma^2 = (1/m) sum_i (x_i - mu)^2          (biased, the one used to normalize)
    invstd  = 1 / sqrt(sigma^2 + eps)

Two numerical failures are prevented here:

- *Cancellation.* The one-pass form ``E[x^2] - E[x]^2`` subtracts two large, nearly equal numbers when
  ``|mu| >> sigma`` and can come out negative, after which ``rsqrt`` returns nan. We use the two-pass form
  above (subtract the mean first), whose result is a sum of squares and never negative; the clamp at 0 is
  kept as a second guard (it is free and documents the invariant).
- *Low-precision accumulation.* float16/bfloat16 inputs are reduced in float32, as PyTorch's own kernels do,
  and the results are cast back by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["compute_dtype", "inverse_std", "moments", "moments_into"]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype statistics are accumulated in: float32 for 16-bit floats, else ``dtype`` itself."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def moments(x: torch.Tensor, dims: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, biased variance and centered values of ``x`` over ``dims``, by the two-pass formula.

    Returns ``(mu, sigma^2, x - mu)`` with ``mu = mean(x)`` and ``sigma^2 = max(mean((x - mu)^2), 0)``, the
    statistics with their reduced ``dims`` kept as size 1 so they broadcast against ``x``; all three in
    :func:`compute_dtype` of ``x``. The centered values are returned because every caller needs them next
    (``x_hat = (x - mu) * invstd``). Plain, differentiable tensor ops, so second derivatives are exact.
    """
    x = x.to(compute_dtype(x.dtype))
    dims = tuple(dims)
    mean = x.mean(dim=dims, keepdim=True)
    centered = x - mean
    var = centered.square().mean(dim=dims, keepdim=True).clamp_min(0.0)
    return mean, var, centered


def moments_into(x: torch.Tensor, dims: Sequence[int], scratch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`moments` without allocating: ``(mu, sigma^2)``, with ``scratch`` holding ``(x - mu)^2`` after.

    Same two-pass formula; ``scratch`` is a tensor shaped like ``x`` in its compute dtype that the caller will
    overwrite next (an output buffer). Not differentiable (in-place ops): for autograd-free fast paths only.
    On CPU every fresh full-size temporary costs page faults that outweigh the arithmetic, hence this variant.
    """
    dims = tuple(dims)
    mean = x.mean(dim=dims, keepdim=True, dtype=scratch.dtype)
    torch.sub(x, mean, out=scratch).square_()
    var = scratch.mean(dim=dims, keepdim=True).clamp_min_(0.0)
    return mean, var


def inverse_std(var: torch.Tensor, eps: float) -> torch.Tensor:
    """``1 / sqrt(var + eps)``; ``var`` is clamped at 0 first, so a rounding-negative variance never gives nan."""
    return torch.rsqrt(var.clamp_min(0.0) + eps)
