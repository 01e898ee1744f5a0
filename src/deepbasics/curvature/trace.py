"""The trace of the loss Hessian from Hessian-vector products: Hutch++ and Hutchinson.

Hutchinson (1989): for probes g with E[g g^T] = I (Rademacher +-1 here),

    tr(H) = E[g^T H g] ≈ (1/m) sum_i g_i^T H g_i,        Var(g^T H g) = 2 (|H|_F^2 - sum_i H_ii^2),

so the error falls like |H|_F / sqrt(m). Hutch++ (Meyer, Musco, Musco & Woodruff, SOSA 2021, Algorithm 1) spends
a third of the m products on a sketch that captures the top of the spectrum exactly and a third on Hutchinson
for the remainder, with S, G in {+-1}^(P x m/3):

    Q = orth(H S),   tr(H) ≈ tr(Q^T H Q) + (3/m) tr(G^T (I - QQ^T) H (I - QQ^T) G),

which reaches relative error eps with O(1/eps) products instead of O(1/eps^2) when the spectrum decays (as a
network Hessian's does: a few large outliers over a bulk near zero).

Error estimate: the sketch term is exact given Q, so the standard error is that of the Hutchinson part,
``std(samples, ddof=1) / sqrt(#samples)``, with samples g_i^T H g_i (Hutchinson) or
g_i^T (I - QQ^T) H (I - QQ^T) g_i (Hutch++). It is an estimate of the spread over probe draws, not a bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .._checks import check_choice, check_generator, check_int
from ._sampling import random_probes
from .hvp import Data, LossFn, hessian_operator

__all__ = ["TraceEstimate", "hessian_trace", "hessian_trace_estimate", "trace_estimate"]

DEFAULT_NUM_QUERIES = 90  # 30 sketch + 30 projection + 30 residual probes for Hutch++, or 90 Hutchinson probes


@dataclass(frozen=True)
class TraceEstimate:
    """A stochastic trace estimate: ``value`` ± ``stderr`` (one standard error over probe draws), from
    ``num_hvps`` Hessian-vector products by ``method`` ("hutch++" or "hutchinson")."""

    value: float
    stderr: float
    num_hvps: int
    method: str


def _matmat(matvec: Callable[[torch.Tensor], torch.Tensor], block: torch.Tensor) -> torch.Tensor:
    """A @ block for a (P, c) block, one product per column."""
    return torch.stack([matvec(column) for column in block.T], dim=1)  # (P, c)


def _mean_and_stderr(samples: torch.Tensor) -> tuple[float, float]:
    n = samples.numel()
    mean = float(samples.mean())
    return mean, (float(samples.std(correction=1)) / math.sqrt(n) if n > 1 else math.inf)


def trace_estimate(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    dim: int,
    *,
    method: str = "hutch++",
    num_queries: int = DEFAULT_NUM_QUERIES,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> TraceEstimate:
    """Trace of a symmetric (P, P) operator from ``num_queries`` products (see the module docstring).

    Hutch++ needs ``num_queries >= 6`` (two residual probes give a standard error) and uses 3 * (num_queries // 3)
    products, fewer when the sketch reaches P columns (then the trace is exact and ``stderr`` is 0).
    Hutchinson needs ``num_queries >= 2``.
    """
    check_choice(method, "method", ("hutch++", "hutchinson"))
    num_queries = check_int(num_queries, "num_queries", low=6 if method == "hutch++" else 2)
    device = torch.device(device)
    probes = {"dtype": dtype, "device": device, "generator": generator, "kind": "rademacher"}
    if method == "hutchinson":
        g = random_probes(dim, num_queries, **probes)  # (P, m)
        samples = (g * _matmat(matvec, g)).sum(0)  # (m,) g_i^T H g_i
        value, stderr = _mean_and_stderr(samples)
        return TraceEstimate(value, stderr, num_queries, method)

    third = num_queries // 3
    sketch = min(third, dim)
    s = random_probes(dim, sketch, **probes)  # (P, s)
    g = random_probes(dim, third, **probes)  # (P, m/3)
    q = torch.linalg.qr(_matmat(matvec, s)).Q  # (P, s) orthonormal basis of range(H S)
    exact_part = float((q * _matmat(matvec, q)).sum())  # tr(Q^T H Q)
    used = 2 * sketch
    if q.shape[1] == dim:  # Q spans R^P: the projection term is the whole trace
        return TraceEstimate(exact_part, 0.0, used, method)
    g = g - q @ (q.T @ g)  # (I - QQ^T) G
    samples = (g * _matmat(matvec, g)).sum(0)  # (m/3,)
    value, stderr = _mean_and_stderr(samples)
    return TraceEstimate(exact_part + value, stderr, used + third, method)


def hessian_trace_estimate(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Data,
    targets: object = None,
    *,
    method: str = "hutch++",
    num_queries: int = DEFAULT_NUM_QUERIES,
    generator: torch.Generator | None = None,
    train_mode: bool = False,
) -> TraceEstimate:
    """tr(H) of the mean loss's Hessian with its standard error, by Hutch++ (default) or Hutchinson.

    Args:
        model, loss_fn, inputs, targets, train_mode: as in :func:`deepbasics.curvature.hessian_eigenvalues`.
        method: "hutch++" (Meyer et al. 2021) or "hutchinson" (Rademacher probes).
        num_queries: Hessian-vector products to spend (default 90).
        generator: seeds the probes.

    Returns:
        :class:`TraceEstimate` (value, stderr, num_hvps, method).
    """
    check_generator(generator)
    with hessian_operator(model, loss_fn, inputs, targets, train_mode=train_mode) as operator:
        return trace_estimate(
            operator.matvec,
            operator.dim,
            method=method,
            num_queries=num_queries,
            dtype=operator.dtype,
            device=operator.device,
            generator=generator,
        )


def hessian_trace(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Data,
    targets: object = None,
    *,
    method: str = "hutch++",
    num_queries: int = DEFAULT_NUM_QUERIES,
    generator: torch.Generator | None = None,
    train_mode: bool = False,
) -> float:
    """tr(H) of the mean loss's Hessian (the value of :func:`hessian_trace_estimate`, which also gives the
    standard error). tr(H) = sum of the eigenvalues: the total curvature."""
    return hessian_trace_estimate(
        model,
        loss_fn,
        inputs,
        targets,
        method=method,
        num_queries=num_queries,
        generator=generator,
        train_mode=train_mode,
    ).value
