"""The matrix-free kernels of deepbasics.curvature on explicit symmetric matrices, against torch.linalg (float64).

Lanczos (extremes, residual bounds, orthogonality, Gauss quadrature, repeated eigenvalues) and the trace
estimators (Hutch++ and Hutchinson) need only a matvec, so dense matrices with known spectra are the reference.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from deepbasics.curvature.lanczos import ConvergenceWarning, lanczos, lanczos_extremes
from deepbasics.curvature.trace import trace_estimate

F64 = torch.float64


def symmetric_with_spectrum(eigenvalues: torch.Tensor, seed: int) -> torch.Tensor:
    """Q diag(eigenvalues) Q^T with a random orthogonal Q."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(eigenvalues.numel(), eigenvalues.numel(), generator=g, dtype=F64))
    return (q * eigenvalues) @ q.T


def random_symmetric(n: int, seed: int) -> torch.Tensor:
    a = torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return (a + a.T) / 2


@given(st.integers(20, 120), st.integers(1, 4), st.sampled_from(["largest", "smallest", "both"]), st.integers(0, 99))
def test_extremes_match_eigvalsh_within_residual_bounds(n, k, which, seed):
    a = random_symmetric(n, seed)
    exact = torch.linalg.eigvalsh(a)  # ascending
    out = lanczos_extremes(lambda v: a @ v, n, k=k, which=which, tol=1e-8, generator=torch.Generator().manual_seed(1))
    expected = {"largest": exact[-k:], "smallest": exact[:k], "both": torch.cat([exact[:k], exact[-k:]])}[which]
    expected = expected.flip(0)  # descending
    assert out.converged
    assert torch.all(out.eigenvalues[:-1] >= out.eigenvalues[1:])
    torch.testing.assert_close(out.eigenvalues, expected, rtol=1e-8, atol=1e-10)
    # the Ritz residual is a rigorous error bar for symmetric matrices
    assert torch.all((out.eigenvalues - expected).abs() <= out.residuals + 1e-12)
    assert out.num_matvecs == out.decomposition.num_steps


def test_eigenvectors_are_unit_and_satisfy_the_residual():
    a = random_symmetric(80, 3)
    out = lanczos_extremes(lambda v: a @ v, 80, k=3, which="both", tol=1e-6, return_eigenvectors=True)
    v, lam = out.eigenvectors, out.eigenvalues
    assert v.shape == (80, 6)
    torch.testing.assert_close(v.norm(dim=0), torch.ones(6, dtype=F64), rtol=0, atol=1e-12)
    torch.testing.assert_close((a @ v - v * lam).norm(dim=0), out.residuals, rtol=1e-6, atol=1e-12)


def test_full_reorthogonalisation_keeps_the_basis_orthonormal():
    # A clustered spectrum is where plain Lanczos loses orthogonality fastest (ghost eigenvalues).
    a = symmetric_with_spectrum(torch.cat([torch.linspace(0, 1, 150), torch.tensor([50.0, 100.0])]).to(F64), 0)
    start = torch.randn(152, dtype=F64, generator=torch.Generator().manual_seed(0))
    d = lanczos(lambda v: a @ v, start, 100)
    q = d.basis
    torch.testing.assert_close(q @ q.T, torch.eye(100, dtype=F64), rtol=0, atol=1e-12)
    theta, _, _ = d.ritz()
    assert (theta > 99.0).sum() == 1 and (theta - 50.0).abs().lt(1e-6).sum() == 1  # no ghost copies


def test_lanczos_is_gauss_quadrature():
    # sum_j tau_j theta_j^p = v^T A^p v / v^T v exactly for p < 2m (Golub & Meurant 2010, ch. 6)
    a = random_symmetric(60, 5) / 5
    v = torch.randn(60, dtype=F64, generator=torch.Generator().manual_seed(2))
    m = 6
    theta, s, _ = lanczos(lambda x: a @ x, v, m).ritz()
    tau = s[0] ** 2
    power = v.clone()
    for p in range(2 * m):
        torch.testing.assert_close((tau * theta**p).sum(), v @ power / (v @ v), rtol=1e-9, atol=1e-12)
        power = a @ power


def test_repeated_eigenvalues_are_found_after_breakdown():
    # Rank 6 with a triple top eigenvalue: one Krylov space holds one copy; restarts recover the others.
    spectrum = torch.cat([torch.tensor([5.0, 5.0, 5.0, 3.0, 2.0, 1.0]), torch.zeros(54)]).to(F64)
    a = symmetric_with_spectrum(spectrum, 1)
    out = lanczos_extremes(lambda v: a @ v, 60, k=4, which="largest", tol=1e-8)
    torch.testing.assert_close(out.eigenvalues, torch.tensor([5.0, 5.0, 5.0, 3.0], dtype=F64), rtol=0, atol=1e-9)
    out = lanczos_extremes(lambda v: a @ v, 60, k=3, which="smallest", tol=1e-8)
    torch.testing.assert_close(out.eigenvalues, torch.zeros(3, dtype=F64), rtol=0, atol=1e-9)


def test_small_operator_is_solved_exactly():
    a = random_symmetric(5, 0)
    out = lanczos_extremes(lambda v: a @ v, 5, k=2, which="both", tol=1e-3)
    exact = torch.linalg.eigvalsh(a)
    torch.testing.assert_close(out.eigenvalues, torch.cat([exact[:2], exact[-2:]]).flip(0), rtol=1e-10, atol=1e-12)
    assert out.num_matvecs <= 5


def test_iteration_limit_warns_and_reports_unconverged():
    a = symmetric_with_spectrum(torch.linspace(1, 2, 200, dtype=F64), 0)  # no gap: slow convergence
    with pytest.warns(ConvergenceWarning, match="did not meet tol"):
        out = lanczos_extremes(lambda v: a @ v, 200, k=1, tol=1e-10, max_iter=5)
    assert not out.converged and out.num_matvecs == 5


def test_lanczos_extremes_bad_arguments():
    a = torch.eye(4, dtype=F64)
    mv = lambda v: a @ v  # noqa: E731
    with pytest.raises(ValueError, match="which"):
        lanczos_extremes(mv, 4, which="middle")
    with pytest.raises(ValueError, match="at most 4"):
        lanczos_extremes(mv, 4, k=5)
    with pytest.raises(ValueError, match="at most 2"):
        lanczos_extremes(mv, 4, k=3, which="both")
    with pytest.raises(ValueError, match="max_iter=2"):
        lanczos_extremes(mv, 4, k=3, max_iter=2)
    with pytest.raises(ValueError, match="tol"):
        lanczos_extremes(mv, 4, tol=0.0)
    with pytest.raises(ValueError, match="non-zero"):
        lanczos(mv, torch.zeros(4, dtype=F64), 3)


# --------------------------------------------------------------------------------------------------------------------
# Trace estimators


def test_hutchpp_is_exact_when_the_sketch_spans_the_space():
    a = random_symmetric(10, 0)
    est = trace_estimate(lambda v: a @ v, 10, method="hutch++", num_queries=30)
    assert est.stderr == 0.0 and est.num_hvps == 20
    assert math.isclose(est.value, float(a.trace()), rel_tol=1e-10)


@pytest.mark.parametrize("method", ["hutch++", "hutchinson"])
def test_trace_estimates_fall_within_their_standard_error(method):
    a = symmetric_with_spectrum(1.0 / torch.arange(1, 301, dtype=F64) ** 1.5, 0)
    exact = float(a.trace())
    hits = 0
    for seed in range(20):
        est = trace_estimate(
            lambda v: a @ v, 300, method=method, num_queries=60, generator=torch.Generator().manual_seed(seed)
        )
        assert est.num_hvps == 60 and est.stderr > 0
        hits += abs(est.value - exact) <= 2 * est.stderr
    assert hits >= 16  # ~95% expected within two standard errors


def test_hutchpp_beats_hutchinson_on_a_decaying_spectrum():
    a = symmetric_with_spectrum(1.0 / torch.arange(1, 301, dtype=F64) ** 2, 1)
    exact = float(a.trace())

    def mean_error(method: str) -> float:
        errors = [
            abs(trace_estimate(lambda v: a @ v, 300, method=method, num_queries=60,
                               generator=torch.Generator().manual_seed(s)).value - exact)
            for s in range(10)
        ]  # fmt: skip
        return sum(errors) / len(errors)

    assert mean_error("hutch++") < 0.25 * mean_error("hutchinson")


def test_trace_estimate_bad_arguments():
    mv = lambda v: v  # noqa: E731
    with pytest.raises(ValueError, match="method"):
        trace_estimate(mv, 4, method="exact")
    with pytest.raises(ValueError, match="num_queries"):
        trace_estimate(mv, 4, method="hutch++", num_queries=5)
    with pytest.raises(ValueError, match="num_queries"):
        trace_estimate(mv, 4, method="hutchinson", num_queries=1)
