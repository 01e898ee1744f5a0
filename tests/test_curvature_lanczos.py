"""The Lanczos kernel of deepbasics.curvature on explicit symmetric matrices, against torch.linalg (float64).

Lanczos (extremes, residual bounds, the stopping rule's accuracy and cost, orthogonality, the two
reorthogonalisation paths, Gauss quadrature, repeated eigenvalues) needs only a matvec, so dense matrices with
known spectra are the reference.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from _spectra import F64, random_symmetric, symmetric_with_spectrum
from deepbasics.curvature.lanczos import ConvergenceWarning, lanczos, lanczos_extremes, resolution_floor


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


SPECTRA = {
    # the kinds of spectra a loss Hessian has: a few outliers over a bulk near zero, both signs, power-law decay
    "outliers_over_bulk": lambda n, g: torch.cat(
        [torch.tensor([9.0, 6.0, 4.5]), 0.3 * torch.randn(n - 3, generator=g)]
    ),
    "semicircle": lambda n, g: torch.linalg.eigvalsh(
        random_symmetric(n, int(torch.randint(0, 999, (1,), generator=g)))
    ),
    "power_law": lambda n, g: torch.arange(1, n + 1) ** -1.5 * torch.where(torch.rand(n, generator=g) < 0.3, -1, 1),
    "tiny_gap_at_top": lambda n, g: torch.cat([torch.tensor([1.0, 0.98]), torch.rand(n - 2, generator=g) * 0.9]),
}


def oracle_steps(a: torch.Tensor, start: torch.Tensor, wanted, tol: float, steps: int) -> int:
    """The first Lanczos step at which the wanted Ritz values are within relative tol of the exact ones."""
    exact = torch.linalg.eigvalsh(a)
    floor = resolution_floor(a.dtype) * float(exact.abs().max())
    found = []

    def record(d) -> bool:
        theta = d.ritz()[0]
        if theta.numel() >= len(wanted(exact)):
            err = (wanted(theta) - wanted(exact)).abs()
            if bool((err <= torch.clamp(tol * wanted(exact).abs(), min=floor)).all()):
                found.append(d.num_steps)
                return True
        return False

    lanczos(lambda v: a @ v, start, steps, stop=record)
    return found[0] if found else steps


@given(
    st.sampled_from(sorted(SPECTRA)),
    st.integers(60, 200),
    st.integers(1, 3),
    st.sampled_from(["largest", "smallest", "both"]),
    st.sampled_from([1e-2, 1e-3, 1e-4]),
    st.integers(0, 10**6),
)
def test_stopping_rule_delivers_tol_and_not_much_more(kind, n, k, which, tol, seed):
    g = torch.Generator().manual_seed(seed)
    spectrum = SPECTRA[kind](n, g).to(F64)
    a = symmetric_with_spectrum(spectrum, seed)
    exact = torch.linalg.eigvalsh(a)
    start_seed = seed + 1
    out = lanczos_extremes(
        lambda v: a @ v, n, k=k, which=which, tol=tol, generator=torch.Generator().manual_seed(start_seed)
    )

    def wanted(values):  # ascending values -> the wanted ones, descending
        picked = {"largest": values[-k:], "smallest": values[:k], "both": torch.cat([values[:k], values[-k:]])}
        return picked[which].flip(0)

    assert out.converged
    truth = wanted(exact)
    floor = resolution_floor(F64) * float(exact.abs().max())
    # accuracy: every value within relative tol (absolute eps^(2/3) |A| near zero), as promised
    assert torch.all((out.eigenvalues - truth).abs() <= torch.clamp(tol * truth.abs(), min=floor) * (1 + 1e-9))
    # cost: the residual rule stops a few products after the first step whose Ritz values are within tol
    start = torch.randn(n, dtype=F64, generator=torch.Generator().manual_seed(start_seed))
    best = oracle_steps(a, start, wanted, tol, out.num_matvecs)
    assert out.num_matvecs <= 2 * best + 3


@given(st.sampled_from(sorted(SPECTRA)), st.integers(40, 150), st.integers(0, 10**6))
def test_dgks_and_full_reorthogonalisation_agree(kind, n, seed):
    g = torch.Generator().manual_seed(seed)
    a = symmetric_with_spectrum(SPECTRA[kind](n, g).to(F64), seed)
    start = torch.randn(n, dtype=F64, generator=g)
    steps = min(n, 60)
    fast = lanczos(lambda v: a @ v, start, steps, reorth="dgks")
    reference = lanczos(lambda v: a @ v, start, steps, reorth="full")
    for d in (fast, reference):  # both keep Q orthonormal to working precision
        q = d.basis
        torch.testing.assert_close(q @ q.T, torch.eye(d.num_steps, dtype=F64), rtol=0, atol=1e-12)
    scale = float(torch.linalg.eigvalsh(a).abs().max())
    torch.testing.assert_close(fast.alphas, reference.alphas, rtol=0, atol=1e-10 * scale)
    torch.testing.assert_close(fast.ritz()[0], reference.ritz()[0], rtol=0, atol=1e-10 * scale)


def test_tridiagonal_solver_matches_dense_eigh_on_both_size_ranges():
    from deepbasics.curvature.lanczos import QL_MAX_SIZE, tridiagonal_eigh

    for m in (1, 2, QL_MAX_SIZE, QL_MAX_SIZE + 1, 120):
        g = torch.Generator().manual_seed(m)
        alphas, off = torch.randn(m, generator=g, dtype=F64), torch.rand(max(m - 1, 0), generator=g, dtype=F64)
        dense = torch.diag(alphas) + torch.diag(off, 1) + torch.diag(off, -1)
        theta, s = tridiagonal_eigh(alphas, off)
        torch.testing.assert_close(theta, torch.linalg.eigvalsh(dense), rtol=0, atol=1e-12)
        torch.testing.assert_close(dense @ s, s * theta, rtol=0, atol=1e-11)
        torch.testing.assert_close(s.T @ s, torch.eye(m, dtype=F64), rtol=0, atol=1e-12)
