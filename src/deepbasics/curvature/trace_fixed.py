"""Trace estimators with a fixed budget of Hessian-vector products, and the exact trace.

Hutchinson (1989): for probes g with E[g g^T] = I (Rademacher +-1 here),

    tr(H) = E[g^T H g] ≈ (1/m) sum_i g_i^T H g_i,        Var(g^T H g) = 2 (|H|_F^2 - sum_i H_ii^2),

so the error falls like |H|_F / sqrt(m). Hutch++ (Meyer, Musco, Musco & Woodruff, SOSA 2021, Algorithm 1) spends
a third of the m products on a sketch that captures the top of the spectrum exactly and a third on Hutchinson
for the remainder, with S, G in {+-1}^(P x m/3):

    Q = orth(H S),   tr(H) ≈ tr(Q^T H Q) + (3/m) tr(G^T (I - QQ^T) H (I - QQ^T) G).

Error estimate: the sketch term is exact given Q, so the standard error is that of the Hutchinson part,
``std(samples, ddof=1) / sqrt(#samples)``. It is an estimate of the spread over probe draws, not a bound. The exact
trace sum_j e_j^T H e_j costs P products, in batches (:meth:`.hvp.HessianOperator.matmat`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .._checks import check_choice, check_int
from ._sampling import random_probes

__all__ = ["TraceEstimate", "exact_trace", "trace_estimate"]

MatVec = Callable[[torch.Tensor], torch.Tensor]
MatMat = Callable[[torch.Tensor], torch.Tensor]

DEFAULT_NUM_QUERIES = 90  # fixed budget: 30 sketch + 30 projection + 30 residual probes for Hutch++, or 90 Hutchinson
#: Unit vectors per block of the exact trace (each block is one batched product, chunked again by memory).
EXACT_BLOCK = 256


@dataclass(frozen=True)
class TraceEstimate:
    """A trace estimate: ``value`` ± ``stderr`` (one standard error over probe draws; 0 when exact), from
    ``num_hvps`` Hessian-vector products by ``method`` ("adaptive", "hutch++" or "hutchinson").

    Adaptive runs also report ``converged`` (the accuracy test was met; False after a ConvergenceWarning),
    ``exact`` (the exact trace was cheaper and was computed), ``sketch_size`` (Lanczos steps) and ``num_samples``.
    """

    value: float
    stderr: float
    num_hvps: int
    method: str
    converged: bool = True
    exact: bool = False
    sketch_size: int = 0
    num_samples: int = 0


def _loop_matmat(matvec: MatVec) -> MatMat:
    """A @ block for a (P, c) block, one product per column (the plain path)."""
    return lambda block: torch.stack([matvec(column) for column in block.T], dim=1)  # (P, c)


def _mean_and_stderr(samples: torch.Tensor) -> tuple[float, float]:
    n = samples.numel()
    mean = float(samples.mean())
    return mean, (float(samples.std(correction=1)) / math.sqrt(n) if n > 1 else math.inf)


def exact_trace(matmat: MatMat, dim: int, *, dtype: torch.dtype, device: torch.device | str) -> float:
    """sum_j e_j^T A e_j from P products, ``EXACT_BLOCK`` unit vectors per ``matmat`` call."""
    total = torch.zeros((), dtype=torch.float64, device=device)
    for start in range(0, dim, EXACT_BLOCK):
        width = min(EXACT_BLOCK, dim - start)
        block = torch.zeros(dim, width, dtype=dtype, device=device)  # (P, c) columns e_start .. e_start+c-1
        block[start : start + width].diagonal().fill_(1)
        total += matmat(block)[start : start + width].diagonal().sum(dtype=torch.float64)
    return float(total)


def trace_estimate(
    matvec: MatVec,
    dim: int,
    *,
    method: str = "hutch++",
    num_queries: int = DEFAULT_NUM_QUERIES,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    matmat: MatMat | None = None,
) -> TraceEstimate:
    """Trace of a symmetric (P, P) operator from a fixed budget of ``num_queries`` products (module docstring).

    Hutch++ needs ``num_queries >= 6`` (two residual probes give a standard error) and uses 3 * (num_queries // 3)
    products, fewer when the sketch reaches P columns (then the trace is exact and ``stderr`` is 0).
    Hutchinson needs ``num_queries >= 2``. ``matmat`` (batched products) defaults to one ``matvec`` per column.
    """
    check_choice(method, "method", ("hutch++", "hutchinson"))
    num_queries = check_int(num_queries, "num_queries", low=6 if method == "hutch++" else 2)
    matmat = matmat or _loop_matmat(matvec)
    device = torch.device(device)
    probes = {"dtype": dtype, "device": device, "generator": generator, "kind": "rademacher"}
    if method == "hutchinson":
        g = random_probes(dim, num_queries, **probes)  # (P, m)
        samples = (g * matmat(g)).sum(0)  # (m,) g_i^T H g_i
        value, stderr = _mean_and_stderr(samples)
        return TraceEstimate(value, stderr, num_queries, method, num_samples=num_queries)

    third = num_queries // 3
    sketch = min(third, dim)
    s = random_probes(dim, sketch, **probes)  # (P, s)
    g = random_probes(dim, third, **probes)  # (P, m/3)
    q = torch.linalg.qr(matmat(s)).Q  # (P, s) orthonormal basis of range(H S)
    exact_part = float((q * matmat(q)).sum())  # tr(Q^T H Q)
    used = 2 * sketch
    if q.shape[1] == dim:  # Q spans R^P: the projection term is the whole trace
        return TraceEstimate(exact_part, 0.0, used, method, exact=True, sketch_size=sketch)
    g = g - q @ (q.T @ g)  # (I - QQ^T) G
    samples = (g * matmat(g)).sum(0)  # (m/3,)
    value, stderr = _mean_and_stderr(samples)
    return TraceEstimate(exact_part + value, stderr, used + third, method, sketch_size=sketch, num_samples=third)
