"""The trace of the loss Hessian from Hessian-vector products: adaptive to a requested accuracy, Hutch++, Hutchinson.

Hutchinson (1989): for probes g with E[g g^T] = I (Rademacher +-1 here),

    tr(H) = E[g^T H g] ≈ (1/m) sum_i g_i^T H g_i,        Var(g^T H g) = 2 (|H|_F^2 - sum_i H_ii^2),

so the error falls like |H|_F / sqrt(m). Hutch++ (Meyer, Musco, Musco & Woodruff, SOSA 2021, Algorithm 1) spends
a third of the m products on a sketch that captures the top of the spectrum exactly and a third on Hutchinson
for the remainder, with S, G in {+-1}^(P x m/3):

    Q = orth(H S),   tr(H) ≈ tr(Q^T H Q) + (3/m) tr(G^T (I - QQ^T) H (I - QQ^T) G).

Adaptive (the default of :func:`hessian_trace`): the same split, with the sketch grown by the Lanczos iteration
(:mod:`.lanczos`) and both parts sized from the data to meet a requested relative accuracy. After m Lanczos steps
Q_m (P, m) is orthonormal with Q_m^T H Q_m = T_m, so with Pi = I - Q_m Q_m^T

    tr(H) = tr(T_m) + tr(Pi H Pi),    x_i = g_i^T Pi H Pi g_i = a_i - 2 c_i^T d_i + c_i^T T_m c_i,
    a_i = g_i^T H g_i,   c_i = Q_m^T g_i,   d_i = Q_m^T (H g_i),

and tr(T_m) + mean_i x_i is unbiased for every m because the probes g_i are drawn independently of Q_m. A sketch
dimension costs one product (Hutch++ pays two: H S, then H Q), tr(T_m) is the sum of the alphas, and a pilot set of
probes (their H g_i kept) gives x_i for every m at O(P) per step, so the sketch grows one step at a time while its
effect on the variance is measured (Krylov sketches: Chen & Hallman, SIMAX 2023).

Stopping and cost planning, all counted in Hessian-vector products. With N samples x_i of standard deviation s and
Student's quantile t = t_{(1 + confidence)/2, N - 1}, the estimate is accepted when

    t s / sqrt(N) <= tol |estimate|,

i.e. by the central limit theorem its relative error is within tol with probability ~confidence (adaptive Hutch++
stops on the same kind of test: Persson, Cortinovis & Kressner, SIMAX 2022). N*(m) = (t s_m / (tol |estimate|))^2
samples are needed with an m-step sketch, judged on the pilot probes; the sketch grows while m < N*(m), i.e. while
it has cost less than the sampling it saves (the ski-rental rule: whatever the decay of N*, the total m + N* stays
within twice the best split). Then, as in Stein's two-stage procedure (Stein 1945), the pilot only plans how many
*fresh* probes to draw, and the estimate and its test use the fresh ones alone: the pilot chose the sketch, and
reusing it lowered the coverage by ~5 points (measured: 87.5% instead of 93% at confidence 0.9 on an LSTM's
Hessian). Fresh probes come in batches (batched products, :mod:`.hvp`), at most doubling N per round. When the
samples still needed exceed P, the exact trace sum_j e_j^T H e_j costs less (P batched products) and is returned
with stderr 0. The standard error is an estimate of the spread over probe draws, not a bound.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .._checks import check_choice, check_generator, check_int, check_real, fail
from ._sampling import random_probes
from .hvp import Data, LossFn, hessian_operator
from .lanczos import ConvergenceWarning, LanczosDecomposition, lanczos

__all__ = [
    "TraceEstimate",
    "adaptive_trace",
    "exact_trace",
    "hessian_trace",
    "hessian_trace_estimate",
    "trace_estimate",
]

MatVec = Callable[[torch.Tensor], torch.Tensor]
MatMat = Callable[[torch.Tensor], torch.Tensor]

DEFAULT_NUM_QUERIES = 90  # fixed budget: 30 sketch + 30 projection + 30 residual probes for Hutch++, or 90 Hutchinson
#: Default relative accuracy of hessian_trace and the probability of meeting it. A trace is a sum of P eigenvalues of
#: both signs; 1% is the accuracy at which it is read (e.g. trends over training), 90% the usual coverage.
DEFAULT_TRACE_TOL = 1e-2
DEFAULT_CONFIDENCE = 0.9
#: Probes drawn before the sketch grows: their sample variance (15 degrees of freedom, relative spread ~1/sqrt(7.5)
#: on s^2) is what the sketch's growth is judged by, and the fewest samples the stopping test accepts.
PILOT_PROBES = 16
#: The sketch spends at most 1/SKETCH_SHARE of the P products that the exact trace would cost: where deflation
#: does not pay (a spectrum without dominant eigenvalues), the exact trace follows with at most 12.5% waste.
SKETCH_SHARE = 8
#: Sketch steps at most: reorthogonalisation costs O(m P) per step, O(m^2 P) in all.
MAX_SKETCH = 500
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


class _Samples:
    """Deflated samples x_i = a_i - 2 c_i^T d_i + c_i^T T c_i (module docstring) from the kept a_i (N,), c_i and d_i
    (columns of ``c``, ``d`` (m, N): one row per sketch dimension), all float64 on the CPU."""

    def __init__(self, a: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> None:
        self.a, self.c, self.d = a, c, d

    @classmethod
    def of(cls, g: torch.Tensor, hg: torch.Tensor, q: torch.Tensor | None) -> _Samples:
        """From probes ``g`` (P, N), their products ``hg`` and the sketch's basis ``q`` (m, P) or None."""
        a = (g * hg).sum(0).to("cpu", torch.float64)
        if q is None:
            empty = torch.zeros(0, g.shape[1], dtype=torch.float64)
            return cls(a, empty, empty)
        return cls(a, (q @ g).to("cpu", torch.float64), (q @ hg).to("cpu", torch.float64))

    def grow(self, q: torch.Tensor, g: torch.Tensor, hg: torch.Tensor) -> None:
        """Add the sketch direction q (P,) for the probes ``g`` (P, N) with products ``hg``."""
        rows = torch.stack([q @ g, q @ hg]).to("cpu", torch.float64)  # (2, N)
        self.c, self.d = torch.cat([self.c, rows[:1]]), torch.cat([self.d, rows[1:]])

    def add(self, other: _Samples) -> None:
        self.a = torch.cat([self.a, other.a])
        self.c, self.d = torch.cat([self.c, other.c], 1), torch.cat([self.d, other.d], 1)

    def values(self, alphas: torch.Tensor, off: torch.Tensor) -> torch.Tensor:
        """x (N,) for the tridiagonal T with diagonal ``alphas`` (m,) and off-diagonal ``off`` (m-1,)."""
        c = self.c
        quad = (alphas[:, None] * c * c).sum(0) + 2 * (off[:, None] * c[:-1] * c[1:]).sum(0)  # c^T T c
        return self.a - 2 * (c * self.d).sum(0) + quad


def adaptive_trace(
    matvec: MatVec,
    dim: int,
    *,
    tol: float = DEFAULT_TRACE_TOL,
    confidence: float = DEFAULT_CONFIDENCE,
    max_matvecs: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    matmat: MatMat | None = None,
) -> TraceEstimate:
    """tr(A) of a symmetric (P, P) operator to relative accuracy ``tol`` with probability ~``confidence``, by the
    Lanczos-sketched Hutchinson estimator of the module docstring (or exactly, where that is cheaper).

    ``max_matvecs`` caps the products (default: none; the exact trace bounds the cost by about P + MAX_SKETCH);
    when the cap stops the run first, a :class:`ConvergenceWarning` is issued and the estimate so far returned
    with ``converged=False``. ``matmat`` (batched products) defaults to one ``matvec`` per column.
    """
    from scipy.stats import t as student_t  # lazy: scipy.stats is slow to import

    dim = check_int(dim, "dim", low=1)
    tol = check_real(tol, "tol", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    confidence = check_real(confidence, "confidence", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    budget = math.inf if max_matvecs is None else check_int(max_matvecs, "max_matvecs", low=2 * PILOT_PROBES)
    matmat = matmat or _loop_matmat(matvec)
    device = torch.device(device)
    used, sketch = 0, 0

    def done_exactly() -> TraceEstimate:
        value = exact_trace(matmat, dim, dtype=dtype, device=device)
        return TraceEstimate(value, 0.0, used + dim, "adaptive", exact=True, sketch_size=sketch, num_samples=0)

    if dim <= 4 * PILOT_PROBES and dim <= budget:  # tiny: no estimate beats P products
        return done_exactly()
    probes = {"dtype": dtype, "device": device, "generator": generator, "kind": "rademacher"}
    pilot_g = random_probes(dim, PILOT_PROBES, **probes)  # (P, N0)
    pilot_hg = matmat(pilot_g)
    used += PILOT_PROBES
    pilot = _Samples.of(pilot_g, pilot_hg, None)

    def needed(x: torch.Tensor, base: float) -> tuple[float, float, float]:
        """(samples needed, estimate, standard error) from the samples x and the sketch's exact part."""
        n = x.numel()
        estimate = base + float(x.mean())
        spread = float(x.std(correction=1))
        quantile = float(student_t.ppf((1 + confidence) / 2, n - 1))
        need = (quantile * spread / (tol * abs(estimate))) ** 2 if estimate != 0 else math.inf
        return need, estimate, spread / math.sqrt(n)

    cap = min(MAX_SKETCH, max(dim // SKETCH_SHARE, 1))

    def stop(d: LanczosDecomposition) -> bool:
        pilot.grow(d.basis[-1], pilot_g, pilot_hg)
        need = needed(pilot.values(d.alphas, d.betas[:-1]), float(d.alphas.sum()))[0]
        m = d.num_steps
        # Ski rental: sketch while it has cost less than the sampling it would replace (2-competitive for any
        # decreasing N*(m)), and never more than a 1/SKETCH_SHARE of the exact trace's P products.
        return need <= PILOT_PROBES or m >= need or m >= cap or used + m >= budget

    q, alphas, off, base = None, torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64), 0.0
    if needed(pilot.a, 0.0)[0] > PILOT_PROBES:
        start = random_probes(dim, dtype=dtype, device=device, generator=generator)
        steps = int(min(dim, cap, max(budget - used - PILOT_PROBES, 1)))
        decomposition = lanczos(matvec, start, steps, stop=stop, restart=True, generator=generator)
        sketch = decomposition.num_steps
        used += sketch
        q = decomposition.basis  # (m, P)
        alphas, off = decomposition.alphas, decomposition.betas[:-1]
        base = float(alphas.sum())  # tr(T_m) = tr(Q^T A Q)
    pilot_g = pilot_hg = None  # the pilot's probes are no longer needed: only the variance they measured is

    # Stein's two-stage procedure: the pilot, which chose the sketch, plans the sample size; the estimate and the
    # stopping test use fresh probes only (under the pilot's influence they cover ~5% less often, measured).
    need = needed(pilot.values(alphas, off), base)[0]
    samples: _Samples | None = None
    target = max(PILOT_PROBES, math.ceil(min(need, dim + PILOT_PROBES)))  # need is inf for an estimate of 0
    while True:
        count = 0 if samples is None else samples.a.numel()
        if need - count > dim and used + dim <= budget:  # more samples than the exact trace's P products
            return done_exactly()
        batch = int(min(target - count, budget - used))
        if batch < 1 or (samples is None and batch < 2):
            x = pilot.values(alphas, off) if samples is None else samples.values(alphas, off)
            _, estimate, stderr = needed(x, base)
            warnings.warn(
                f"adaptive trace: max_matvecs={max_matvecs} products were spent before the estimate met "
                f"tol={tol:g} at confidence {confidence:g} (standard error {stderr:.3g} of {estimate:.4g}); "
                "returning it. Raise max_matvecs or loosen tol.",
                ConvergenceWarning,
                stacklevel=3,
            )
            return TraceEstimate(estimate, stderr, used, "adaptive", False, False, sketch, x.numel())
        g = random_probes(dim, batch, **probes)  # (P, b)
        fresh = _Samples.of(g, matmat(g), q)
        used += batch
        if samples is None:
            samples = fresh
        else:
            samples.add(fresh)
        count = samples.a.numel()
        need, estimate, stderr = needed(samples.values(alphas, off), base)
        if count >= need or sketch == dim:
            return TraceEstimate(estimate, stderr, used, "adaptive", sketch_size=sketch, num_samples=count)
        target = math.ceil(min(need, 2 * count))  # at most double N per round


def hessian_trace_estimate(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Data,
    targets: object = None,
    *,
    method: str = "adaptive",
    tol: float | None = None,
    confidence: float | None = None,
    max_hvps: int | None = None,
    num_queries: int | None = None,
    generator: torch.Generator | None = None,
    train_mode: bool = False,
) -> TraceEstimate:
    """tr(H) of the mean loss's Hessian with its standard error and cost.

    Args:
        model, loss_fn, inputs, targets, train_mode: as in :func:`deepbasics.curvature.hessian_eigenvalues`.
        method: "adaptive" (default: relative error within ``tol`` with probability ~``confidence``, see the
            module docstring), or a fixed budget of ``num_queries`` products by "hutch++" (Meyer et al. 2021)
            or "hutchinson" (Rademacher probes).
        tol, confidence: the adaptive method's target (default 1e-2 and 0.9).
        max_hvps: the adaptive method's cap on products (default: none; it stays near P at most).
        num_queries: the fixed methods' products (default 90).
        generator: seeds the probes and the sketch's start vector.

    Returns:
        :class:`TraceEstimate` (value, stderr, num_hvps, method, converged, exact, sketch_size, num_samples).
    """
    check_choice(method, "method", ("adaptive", "hutch++", "hutchinson"))
    check_generator(generator)
    if method == "adaptive" and num_queries is not None:
        raise fail(
            ValueError,
            "num_queries",
            "None for method='adaptive' (it stops at tol)",
            num_queries,
            "Pass max_hvps to cap the adaptive method, or method='hutch++' for a fixed budget.",
        )
    if method != "adaptive" and (tol is not None or confidence is not None or max_hvps is not None):
        raise fail(
            ValueError,
            "tol/confidence/max_hvps",
            f"None for the fixed-budget method {method!r}",
            "a value",
            "Use method='adaptive' for an accuracy target, or num_queries for a budget.",
        )
    with hessian_operator(model, loss_fn, inputs, targets, train_mode=train_mode) as operator:
        common = {"dtype": operator.dtype, "device": operator.device, "generator": generator}
        if method == "adaptive":
            return adaptive_trace(
                operator.matvec,
                operator.dim,
                tol=DEFAULT_TRACE_TOL if tol is None else tol,
                confidence=DEFAULT_CONFIDENCE if confidence is None else confidence,
                max_matvecs=max_hvps,
                matmat=operator.matmat,
                **common,
            )
        return trace_estimate(
            operator.matvec,
            operator.dim,
            method=method,
            num_queries=DEFAULT_NUM_QUERIES if num_queries is None else num_queries,
            matmat=operator.matmat,
            **common,
        )


def hessian_trace(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Data,
    targets: object = None,
    *,
    method: str = "adaptive",
    tol: float | None = None,
    confidence: float | None = None,
    max_hvps: int | None = None,
    num_queries: int | None = None,
    generator: torch.Generator | None = None,
    train_mode: bool = False,
) -> float:
    """tr(H) of the mean loss's Hessian, the sum of its eigenvalues (the total curvature): by default within
    relative 1e-2 with probability ~0.9. The value of :func:`hessian_trace_estimate` (same arguments), which also
    gives the standard error and the cost.

    Example::

        tr = hessian_trace(model, nn.CrossEntropyLoss(), x, y, tol=1e-3)   # within 0.1% in ~90% of draws
    """
    return hessian_trace_estimate(
        model,
        loss_fn,
        inputs,
        targets,
        method=method,
        tol=tol,
        confidence=confidence,
        max_hvps=max_hvps,
        num_queries=num_queries,
        generator=generator,
        train_mode=train_mode,
    ).value
