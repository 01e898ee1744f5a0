"""The trace estimators of deepbasics.curvature on explicit symmetric matrices, against torch.trace (float64).

Fixed budgets (Hutch++, Hutchinson) and the adaptive estimator (Lanczos sketch + Hutchinson on the deflated
remainder, stopped at a requested accuracy) need only products, so dense matrices with known traces are the
reference; the statistical promises are checked over many seeds with binomial slack.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from _spectra import F64, random_symmetric, symmetric_with_spectrum
from deepbasics.curvature.lanczos import ConvergenceWarning, lanczos
from deepbasics.curvature.trace_adaptive import PILOT_PROBES, _Samples, adaptive_trace
from deepbasics.curvature.trace_fixed import exact_trace, trace_estimate


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def hessian_like(n: int, seed: int) -> torch.Tensor:
    """A few large outliers over a bulk of both signs that decays like a power law (a trained network's shape)."""
    g = gen(seed)
    bulk = torch.arange(1, n - 3, dtype=F64) ** -1.2 * torch.where(torch.rand(n - 4, generator=g) < 0.2, -0.5, 1.0)
    return symmetric_with_spectrum(torch.cat([torch.tensor([40.0, 25.0, 18.0, 11.0], dtype=F64), bulk]), seed)


# --------------------------------------------------------------------------------------------------------------------
# Fixed budgets


def test_hutchpp_is_exact_when_the_sketch_spans_the_space():
    a = random_symmetric(10, 0)
    est = trace_estimate(lambda v: a @ v, 10, method="hutch++", num_queries=30)
    assert est.stderr == 0.0 and est.num_hvps == 20 and est.exact
    assert math.isclose(est.value, float(a.trace()), rel_tol=1e-10)


@pytest.mark.parametrize("method", ["hutch++", "hutchinson"])
def test_trace_estimates_fall_within_their_standard_error(method):
    a = symmetric_with_spectrum(1.0 / torch.arange(1, 301, dtype=F64) ** 1.5, 0)
    exact = float(a.trace())
    hits = 0
    for seed in range(20):
        est = trace_estimate(lambda v: a @ v, 300, method=method, num_queries=60, generator=gen(seed))
        assert est.num_hvps == 60 and est.stderr > 0
        hits += abs(est.value - exact) <= 2 * est.stderr
    assert hits >= 16  # ~95% expected within two standard errors


def test_hutchpp_beats_hutchinson_on_a_decaying_spectrum():
    a = symmetric_with_spectrum(1.0 / torch.arange(1, 301, dtype=F64) ** 2, 1)
    exact = float(a.trace())

    def mean_error(method: str) -> float:
        errors = [
            abs(trace_estimate(lambda v: a @ v, 300, method=method, num_queries=60, generator=gen(s)).value - exact)
            for s in range(10)
        ]
        return sum(errors) / len(errors)

    assert mean_error("hutch++") < 0.25 * mean_error("hutchinson")


def test_batched_products_give_the_same_fixed_budget_estimate():
    a = hessian_like(200, 3)
    loop = trace_estimate(lambda v: a @ v, 200, num_queries=30, generator=gen(0))
    batched = trace_estimate(lambda v: a @ v, 200, num_queries=30, generator=gen(0), matmat=lambda b: a @ b)
    assert math.isclose(loop.value, batched.value, rel_tol=1e-12) and loop.num_hvps == batched.num_hvps


# --------------------------------------------------------------------------------------------------------------------
# Exact trace and the deflated samples


def test_exact_trace_sums_the_diagonal_in_blocks():
    a = random_symmetric(300, 1)  # more than one EXACT_BLOCK of unit vectors
    calls = []

    def matmat(block):
        calls.append(block.shape[1])
        return a @ block

    assert math.isclose(exact_trace(matmat, 300, dtype=F64, device="cpu"), float(a.trace()), rel_tol=1e-12)
    assert sum(calls) == 300


def test_deflated_samples_equal_the_projected_quadratic_forms():
    # x_i = a_i - 2 c_i^T d_i + c_i^T T c_i must equal g_i^T (I - QQ^T) A (I - QQ^T) g_i for the Lanczos Q, T
    a = hessian_like(120, 0)
    g = torch.randint(0, 2, (120, 5), generator=gen(1)).to(F64) * 2 - 1
    hg = a @ g
    grown = _Samples.of(g, hg, None)
    d = lanczos(lambda v: a @ v, torch.randn(120, dtype=F64, generator=gen(2)), 12)
    for q in d.basis:
        grown.grow(q, g, hg)
    x = grown.values(d.alphas, d.betas[:-1])
    torch.testing.assert_close(_Samples.of(g, hg, d.basis).values(d.alphas, d.betas[:-1]), x, rtol=1e-12, atol=1e-12)
    projector = torch.eye(120, dtype=F64) - d.basis.T @ d.basis
    direct = ((projector @ g) * (a @ (projector @ g))).sum(0)
    torch.testing.assert_close(x, direct, rtol=1e-10, atol=1e-10)
    assert math.isclose(float(d.alphas.sum()), float(torch.trace(d.basis @ a @ d.basis.T)), rel_tol=1e-10)


# --------------------------------------------------------------------------------------------------------------------
# Adaptive


@pytest.mark.parametrize("tol", [1e-2, 1e-3])
def test_adaptive_trace_meets_tol_in_about_confidence_of_the_draws(tol):
    a = hessian_like(400, 7)
    exact = float(a.trace())
    runs = [adaptive_trace(lambda v: a @ v, 400, tol=tol, confidence=0.9, generator=gen(s)) for s in range(60)]
    hits = sum(abs(r.value - exact) <= tol * abs(exact) for r in runs)
    assert hits >= 48  # 90% expected; P(hits < 48) < 1e-3 for a binomial(60, 0.9)
    assert all(r.converged and r.method == "adaptive" for r in runs)
    stochastic = [r for r in runs if not r.exact]  # pilot + sketch + fresh samples
    assert stochastic and all(r.num_hvps == PILOT_PROBES + r.sketch_size + r.num_samples for r in stochastic)
    assert all(r.num_samples >= PILOT_PROBES for r in stochastic)
    assert max(r.num_hvps for r in runs) < 400  # cheaper than the exact trace's P products


def test_adaptive_trace_is_cheaper_than_hutchinson_at_equal_accuracy():
    # Hutchinson needs (z sigma / (tol tr))^2 samples, sigma^2 = 2 (|A|_F^2 - sum A_ii^2): the sketch removes the
    # outliers that dominate sigma
    a = hessian_like(400, 8)
    sigma = math.sqrt(2 * (float((a * a).sum()) - float((a.diagonal() ** 2).sum())))
    hutchinson = (1.645 * sigma / (1e-2 * float(a.trace()))) ** 2
    runs = [adaptive_trace(lambda v: a @ v, 400, tol=1e-2, generator=gen(s)).num_hvps for s in range(10)]
    assert sorted(runs)[5] < 0.25 * hutchinson


def test_adaptive_trace_goes_exact_when_sampling_would_cost_more():
    # A trace near zero relative to |A|_F: no stochastic estimate reaches 1e-3 in fewer than P products
    eigenvalues = torch.linspace(-1, 1, 300, dtype=F64) + 1e-3
    a = symmetric_with_spectrum(eigenvalues, 2)
    est = adaptive_trace(lambda v: a @ v, 300, tol=1e-3, generator=gen(0), matmat=lambda b: a @ b)
    assert est.exact and est.stderr == 0.0 and est.num_samples == 0
    assert math.isclose(est.value, float(a.trace()), rel_tol=1e-9)
    assert est.num_hvps <= 300 + PILOT_PROBES + 300 // 8  # pilot + the capped sketch + P unit vectors
    small = random_symmetric(20, 3)  # tiny operators: exact right away
    est = adaptive_trace(lambda v: small @ v, 20)
    assert est.exact and est.num_hvps == 20 and math.isclose(est.value, float(small.trace()), rel_tol=1e-12)


def test_adaptive_trace_is_exact_for_a_low_rank_operator():
    # rank 5: the Lanczos sketch captures the whole range (the deflated samples are ~0)
    a = symmetric_with_spectrum(torch.cat([torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0]), torch.zeros(195)]).to(F64), 4)
    est = adaptive_trace(lambda v: a @ v, 200, tol=1e-6, generator=gen(0))
    assert math.isclose(est.value, 15.0, rel_tol=1e-9) and est.num_hvps < 100


def test_adaptive_trace_budget_warns():
    a = symmetric_with_spectrum(torch.linspace(0.5, 1.5, 500, dtype=F64), 5)  # flat: deflation does not help
    with pytest.warns(ConvergenceWarning, match="max_matvecs"):
        est = adaptive_trace(lambda v: a @ v, 500, tol=1e-5, max_matvecs=100, generator=gen(0))
    assert not est.converged and est.num_hvps <= 100 and est.stderr > 0
    assert abs(est.value - float(a.trace())) <= 5 * est.stderr


def test_adaptive_trace_of_a_traceless_operator():
    # tr = 0: no relative accuracy is reachable by sampling; the exact trace is, or the budget ends the run
    a = symmetric_with_spectrum(torch.cat([torch.linspace(1, 2, 150), -torch.linspace(1, 2, 150)]).to(F64), 6)
    est = adaptive_trace(lambda v: a @ v, 300, generator=gen(0))
    assert est.exact and abs(est.value) < 1e-9
    with pytest.warns(ConvergenceWarning, match="max_matvecs"):
        est = adaptive_trace(lambda v: a @ v, 300, max_matvecs=120, generator=gen(0))
    assert not est.converged and est.num_hvps <= 120 and abs(est.value) <= 5 * est.stderr


def test_adaptive_trace_is_reproducible_and_float32_works():
    a = hessian_like(300, 9)
    first = adaptive_trace(lambda v: a @ v, 300, generator=gen(4))
    assert first == adaptive_trace(lambda v: a @ v, 300, generator=gen(4))
    a32 = a.float()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = adaptive_trace(lambda v: a32 @ v, 300, tol=1e-2, dtype=torch.float32, generator=gen(4))
    assert abs(est.value - float(a.trace())) <= 0.05 * float(a.trace())


def test_trace_estimate_bad_arguments():
    mv = lambda v: v  # noqa: E731
    with pytest.raises(ValueError, match="method"):
        trace_estimate(mv, 4, method="exact")
    with pytest.raises(ValueError, match="num_queries"):
        trace_estimate(mv, 4, method="hutch++", num_queries=5)
    with pytest.raises(ValueError, match="num_queries"):
        trace_estimate(mv, 4, method="hutchinson", num_queries=1)
    with pytest.raises(ValueError, match="tol"):
        adaptive_trace(mv, 4, tol=0.0)
    with pytest.raises(ValueError, match="confidence"):
        adaptive_trace(mv, 4, confidence=1.0)
    with pytest.raises(ValueError, match="max_matvecs"):
        adaptive_trace(mv, 400, max_matvecs=3)
