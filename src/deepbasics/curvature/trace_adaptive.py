"""The trace of a symmetric operator to a requested relative accuracy: Hutchinson on what a Lanczos sketch leaves.

The split of Hutch++ (:mod:`.trace_fixed`), with the sketch grown by the Lanczos iteration (:mod:`.lanczos`) and
both parts sized from the data. After m Lanczos steps Q_m (P, m) is orthonormal with Q_m^T H Q_m = T_m, so with
Pi = I - Q_m Q_m^T

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

import torch

from .._checks import check_int, check_real
from ._sampling import random_probes
from .lanczos import ConvergenceWarning, LanczosDecomposition, lanczos
from .trace_fixed import MatMat, MatVec, TraceEstimate, _loop_matmat, exact_trace

__all__ = ["DEFAULT_CONFIDENCE", "DEFAULT_TRACE_TOL", "adaptive_trace"]

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
