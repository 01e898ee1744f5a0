"""deepbasics.optim.quadratic: exact spectra, convergence rates against theory, preconditioning, Newton."""

from __future__ import annotations

import math

import pytest
import torch

from deepbasics.optim import SGD
from deepbasics.optim.quadratic import (
    Quadratic,
    gradient_descent,
    gradient_descent_rate,
    heavy_ball,
    heavy_ball_rate,
    iterations_to_tolerance,
    jacobi_preconditioner,
    newton_step,
    preconditioned_gradient_descent,
)

TOL = 1e-4


def problem(kappa: float, dim: int = 10, seed: int = 0, rotate: bool = True) -> tuple[Quadratic, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q = Quadratic(kappa, dim, generator=g, rotate=rotate)
    return q, torch.randn(dim, generator=g, dtype=torch.float64)


# ------------------------------------------------------------------------------------------------ the problem
@pytest.mark.parametrize("kappa", [1.0, 7.5, 1e3, 1e8])
def test_spectrum_and_condition_number_are_exact(kappa):
    q, _ = problem(kappa, dim=12)
    assert q.eigenvalues[0].item() == 1.0 and q.eigenvalues[-1].item() == kappa
    assert q.lambda_min == 1.0 and q.lambda_max == kappa and q.condition_number == kappa
    # log-uniform spread: the log-eigenvalues are evenly spaced
    gaps = torch.diff(torch.log(q.eigenvalues))
    torch.testing.assert_close(gaps, torch.full_like(gaps, math.log(kappa) / 11), atol=1e-12, rtol=0)
    # the Hessian really has that spectrum (independent check with LAPACK). A backward-stable symmetric eigensolver
    # is exact for H + E with ||E|| <= c n eps ||H||, so by Weyl each eigenvalue is off by at most that much:
    # an absolute error of order n eps lambda_max (2.7e-7 at kappa = 1e8), not a fixed 1e-9 (which some LAPACK
    # builds meet for the smallest eigenvalue and others miss by 2.5x).
    measured = torch.linalg.eigvalsh(q.hessian())
    weyl = 12 * torch.finfo(torch.float64).eps * kappa
    torch.testing.assert_close(measured, q.eigenvalues, rtol=1e-9, atol=max(1e-12, weyl))
    assert measured[-1] / measured[0] == pytest.approx(kappa, rel=1e-6)


def test_rotation_is_orthogonal_and_reproducible():
    q1, _ = problem(100.0, seed=3)
    q2, _ = problem(100.0, seed=3)
    q3, _ = problem(100.0, seed=4)
    eye = torch.eye(10, dtype=torch.float64)
    torch.testing.assert_close(q1.eigenvectors.T @ q1.eigenvectors, eye, atol=1e-12, rtol=0)
    assert torch.equal(q1.hessian(), q2.hessian()) and torch.equal(q1.optimum, q2.optimum)
    assert not torch.allclose(q1.hessian(), q3.hessian())
    assert not torch.allclose(q1.hessian(), torch.diag(torch.diagonal(q1.hessian())))
    unrotated, _ = problem(100.0, rotate=False)
    assert torch.equal(unrotated.hessian(), torch.diag(unrotated.eigenvalues))


def test_value_grad_hessian_match_autograd():
    q, x = problem(50.0)
    x = x.requires_grad_()
    value = q.value(x)
    expected = 0.5 * (x - q.optimum) @ q.hessian() @ (x - q.optimum)
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(q.grad(x), torch.autograd.grad(value, x)[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        q.hessian(), torch.autograd.functional.hessian(q.value, x.detach()), rtol=1e-12, atol=1e-9
    )
    assert q.value(q.optimum).item() == 0.0
    assert q.value(torch.stack([x.detach(), q.optimum])).shape == (2,)  # batched (..., d)
    assert q.value(x.detach().float()).dtype == torch.float32  # the input's dtype is respected


# -------------------------------------------------------------------------------------- rates against theory
def test_gradient_descent_iterations_grow_with_kappa_and_match_the_bound():
    iterations = []
    for kappa in (10.0, 100.0, 1000.0):
        q, x0 = problem(kappa)
        run = gradient_descent(q, x0, tol=TOL)
        bound = iterations_to_tolerance(gradient_descent_rate(kappa), TOL)
        assert run.converged and not run.diverged
        assert run.lr == pytest.approx(2 / (kappa + 1))
        # ((κ-1)/(κ+1))^t bounds the error, and both extreme directions decay at exactly that rate
        assert bound / 2 <= run.iterations <= bound
        assert run.errors[-1] <= TOL < run.errors[-2]
        assert torch.all(torch.diff(run.errors) <= 0)  # monotone in the Euclidean norm
        iterations.append(run.iterations)
    assert iterations[0] < iterations[1] < iterations[2]
    assert iterations[2] / iterations[0] > 50  # linear in κ: ~100x the iterations for 100x the κ


def test_heavy_ball_needs_about_sqrt_kappa_iterations():
    counts = {}
    for kappa in (100.0, 1000.0):
        q, x0 = problem(kappa)
        run = heavy_ball(q, x0, tol=TOL)
        bound = iterations_to_tolerance(heavy_ball_rate(kappa), TOL)
        assert run.converged
        assert run.momentum == pytest.approx(((math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)) ** 2)
        # the optimal parameters give a double root: t · rate^t, so a little above the rate's bound
        assert bound / 2 <= run.iterations <= 2 * bound
        counts[kappa] = (run.iterations, gradient_descent(q, x0, tol=TOL).iterations)
    assert counts[1000.0][0] * 10 < counts[1000.0][1]  # momentum beats plain gradient descent by > 10x
    assert counts[1000.0][0] / counts[100.0][0] < 5  # ~sqrt(10) = 3.2x, not 10x


def test_heavy_ball_is_sgd_with_momentum():
    q, x0 = problem(30.0)
    run = heavy_ball(q, x0, tol=1e-12, max_iter=25)
    p = x0.clone().requires_grad_()
    opt = SGD([p], lr=run.lr, momentum=run.momentum)
    for t in range(1, 26):
        p.grad = q.grad(p.detach())
        opt.step()
        torch.testing.assert_close(p.detach(), run.iterates[t], rtol=1e-10, atol=1e-12)


# -------------------------------------------------------------------------------- preconditioning & Newton
@pytest.mark.parametrize("kappa", [10.0, 1e4])
def test_inverse_hessian_preconditioner_converges_in_one_step(kappa):
    q, x0 = problem(kappa)
    run = preconditioned_gradient_descent(q, torch.linalg.inv(q.hessian()), x0, tol=1e-8)
    assert run.iterations == 1 and run.converged
    assert run.lr == pytest.approx(1.0, rel=1e-8)
    assert gradient_descent(q, x0, tol=1e-8, max_iter=200).iterations > 10


def test_jacobi_fixes_badly_scaled_axes_but_not_rotated_ones():
    q, x0 = problem(1e3, rotate=False)
    assert preconditioned_gradient_descent(q, jacobi_preconditioner(q), x0, tol=TOL).iterations == 1
    q, x0 = problem(1e3, rotate=True)
    jacobi = preconditioned_gradient_descent(q, jacobi_preconditioner(q), x0, tol=TOL)
    assert jacobi.converged and jacobi.iterations > 10


@pytest.mark.parametrize("kappa", [1.0, 100.0, 1e6])
def test_newton_step_lands_on_the_optimum(kappa):
    q, x = problem(kappa)
    scale = torch.linalg.vector_norm(x - q.optimum)
    torch.testing.assert_close(newton_step(q, x), q.optimum, atol=1e-8 * scale * kappa**0.5, rtol=0)
    # the (grad, hessian) forms: tensors at x, or callables
    torch.testing.assert_close(newton_step((q.grad(x), q.hessian()), x), newton_step(q, x))
    torch.testing.assert_close(newton_step((q.grad, lambda _: q.hessian()), x), newton_step(q, x))


def test_too_large_a_step_diverges_visibly():
    q, x0 = problem(10.0)
    run = gradient_descent(q, x0, lr=2.5 / q.lambda_max, max_iter=5000)
    assert run.diverged and not run.converged
    assert torch.isfinite(run.iterates).all()  # stopped before storing a non-finite iterate


def test_start_at_the_optimum_needs_no_step():
    q, _ = problem(10.0)
    run = gradient_descent(q, q.optimum.clone())
    assert run.converged and run.iterations == 0 and run.values.shape == (1,)


# ----------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"condition_number": 0.5, "dim": 3}, ValueError, r"condition_number: expected a value in \[1, inf\)"),
        ({"condition_number": 10.0, "dim": 0}, ValueError, "dim: expected an integer in"),
        ({"condition_number": 10.0, "dim": 1}, ValueError, "condition_number: expected 1 when dim == 1"),
        ({"condition_number": 10.0, "dim": 2.0}, TypeError, "dim: expected an int"),
        ({"condition_number": math.inf, "dim": 2}, ValueError, "condition_number: expected a finite number"),
        ({"condition_number": 10.0, "dim": 2, "generator": 0}, TypeError, "generator: expected a torch.Generator"),
    ],
)
def test_bad_quadratic_arguments_raise(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Quadratic(**kwargs)


def test_bad_method_arguments_raise():
    q, x0 = problem(10.0, dim=4)
    with pytest.raises(ValueError, match=r"x0: expected shape \(\.\.\., 4\)"):
        gradient_descent(q, torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="x0: expected a 1-D tensor"):
        gradient_descent(q, torch.zeros(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"lr: expected a value in \(0, inf\)"):
        gradient_descent(q, x0, lr=0.0)
    with pytest.raises(ValueError, match="tol: expected"):
        gradient_descent(q, x0, tol=1.0)
    with pytest.raises(ValueError, match="max_iter: expected"):
        heavy_ball(q, x0, max_iter=0)
    with pytest.raises(ValueError, match="momentum: expected"):
        heavy_ball(q, x0, momentum=1.0)
    with pytest.raises(TypeError, match="quadratic: expected a Quadratic"):
        gradient_descent("q", x0)
    with pytest.raises(ValueError, match="preconditioner: expected a symmetric matrix"):
        preconditioned_gradient_descent(q, torch.triu(torch.ones(4, 4, dtype=torch.float64)), x0)
    with pytest.raises(ValueError, match="preconditioner: expected a positive definite matrix"):
        preconditioned_gradient_descent(q, -torch.eye(4, dtype=torch.float64), x0)
    with pytest.raises(ValueError, match="preconditioner: expected a positive diagonal"):
        preconditioned_gradient_descent(q, torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64), x0)
    with pytest.raises(ValueError, match="hessian: expected an invertible matrix"):
        newton_step((torch.ones(2, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64)), x0[:2])
    with pytest.raises(TypeError, match="problem: expected a Quadratic or a"):
        newton_step(q.hessian(), x0)
    with pytest.raises(ValueError, match="rate: expected"):
        iterations_to_tolerance(1.0, 1e-3)
