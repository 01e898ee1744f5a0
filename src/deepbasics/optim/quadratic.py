r"""Ill-conditioned quadratics and the methods that cope with them (FAQ Q3.1).

The FAQ defines the condition number of a twice-differentiable objective as

    κ = λ_max(H) / λ_min(H),

the ratio of the largest to the smallest eigenvalue of the Hessian H: how much faster the gradient
changes along the steepest direction than along the flattest one. On the quadratic

    f(x) = 1/2 (x - x*)^T A (x - x*),    A = Q diag(λ_1, ..., λ_d) Q^T,   1 = λ_1 <= ... <= λ_d = κ,

everything the FAQ claims can be computed exactly (write L = λ_max, μ = λ_min):

- gradient descent x <- x - γ ∇f(x) with the best constant step γ = 2/(L + μ) shrinks the error
  ||x_t - x*|| by (κ - 1)/(κ + 1) per step, so it needs about log(1/tol) · (κ + 1)/2 steps: the number
  of iterations grows linearly with κ (Q3.1.a);
- multiplying the gradient by a preconditioner P replaces A by PA; with P = A^{-1} (Newton's method on a
  quadratic) the condition number is 1 and one step lands on x* -- the FAQ's "4 iterations become 1"
  (Q3.1.b); P = diag(A)^{-1} (Jacobi) is the cheap version that fixes badly scaled axes;
- Polyak's heavy ball, x <- x - γ ∇f(x) + β (x - x_prev), with γ = 4/(sqrt L + sqrt μ)² and
  β = ((sqrt κ - 1)/(sqrt κ + 1))², shrinks the error by (sqrt κ - 1)/(sqrt κ + 1) per step: about
  sqrt κ instead of κ iterations (Q3.1.c, momentum).

References:
    J. Nocedal, S. J. Wright, "Numerical Optimization", 2nd ed., Springer 2006, Sec. 3.3 (rate of
    steepest descent on quadratics, Thm. 3.3) and Sec. 3.3 "Newton's method".
    B. T. Polyak, "Some methods of speeding up the convergence of iteration methods", USSR Comput.
    Math. Math. Phys. 4(5), 1964; B. T. Polyak, "Introduction to Optimization", 1987, Sec. 1.4.3 (optimal
    step 2/(L + μ)) and Sec. 3.2.1 (heavy ball and its optimal parameters).
    I. Goodfellow, Y. Bengio, A. Courville, "Deep Learning", MIT Press 2016, Sec. 4.3.1 and 8.2.1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import check_generator, check_int, check_real, check_tensor, fail

__all__ = [
    "Quadratic",
    "Trajectory",
    "gradient_descent",
    "gradient_descent_rate",
    "heavy_ball",
    "heavy_ball_rate",
    "iterations_to_tolerance",
    "jacobi_preconditioner",
    "newton_step",
    "preconditioned_gradient_descent",
]


class Quadratic:
    r"""f(x) = 1/2 (x - x*)^T A (x - x*) with a Hessian A of prescribed condition number.

    The eigenvalues are spread log-uniformly (evenly spaced in log scale) from 1 to ``condition_number``:
    λ_i = κ^{(i-1)/(d-1)}, i = 1..d, so λ_min = 1 and λ_max = κ exactly and every decade of curvature
    holds as many directions. With ``rotate=True`` the eigenvectors Q are a Haar-random orthogonal matrix
    (QR of a Gaussian matrix with the signs of diag(R) fixed, Mezzadri 2007), so the ill-conditioning is
    not aligned with the coordinate axes and a diagonal preconditioner cannot remove it; with
    ``rotate=False``, Q = I and A is diagonal. The optimum x* is drawn from N(0, I).

    Args:
        condition_number: κ >= 1.
        dim: d >= 1 (d = 1 needs κ = 1: one eigenvalue cannot be both 1 and κ).
        generator: optional ``torch.Generator`` for Q and x* (reproducible problems).
        rotate: random eigenvectors (default) or the coordinate axes.
        dtype: dtype of A and x* (default float64, so that κ up to ~1e12 stays exact enough).
        device: device of A and x*.

    Attributes:
        eigenvalues: (d,) ascending; eigenvectors: (d, d), column i belongs to eigenvalue i;
        optimum: x*, shape (d,); lambda_min, lambda_max, condition_number: Python floats; dim: d.
    """

    def __init__(
        self,
        condition_number: float,
        dim: int,
        generator: torch.Generator | None = None,
        rotate: bool = True,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        kappa = check_real(condition_number, "condition_number", low=1.0)
        dim = check_int(dim, "dim", low=1)
        generator = check_generator(generator)
        if dim == 1 and kappa != 1.0:
            raise fail(ValueError, "condition_number", "1 when dim == 1", kappa, "Use dim >= 2 for kappa > 1.")
        if dtype not in (torch.float32, torch.float64):
            raise fail(TypeError, "dtype", "torch.float32 or torch.float64", dtype, "Pass dtype=torch.float64.")
        gen_device = generator.device if generator is not None else torch.device("cpu")
        exponents = torch.linspace(0.0, 1.0, dim, dtype=torch.float64)  # (d,); [0.] when d = 1
        eigenvalues = torch.pow(torch.tensor(kappa, dtype=torch.float64), exponents)  # κ^0 = 1, κ^1 = κ exactly
        if rotate and dim > 1:
            gaussian = torch.randn(dim, dim, generator=generator, dtype=torch.float64, device=gen_device)
            q, r = torch.linalg.qr(gaussian)
            q = q * torch.sign(torch.diagonal(r))  # (d, d); sign fix makes Q Haar-distributed
        else:
            q = torch.eye(dim, dtype=torch.float64, device=gen_device)
        a = (q * eigenvalues.to(gen_device)) @ q.T  # Q diag(λ) Q^T, (d, d)
        a = (a + a.T) / 2  # exactly symmetric despite rounding
        optimum = torch.randn(dim, generator=generator, dtype=torch.float64, device=gen_device)
        self.dim = dim
        self.eigenvalues = eigenvalues.to(device=device or gen_device, dtype=dtype)
        self.eigenvectors = q.to(device=device or gen_device, dtype=dtype)
        self.optimum = optimum.to(device=device or gen_device, dtype=dtype)
        self._a = a.to(device=device or gen_device, dtype=dtype)
        self.lambda_min = 1.0
        self.lambda_max = kappa
        self.condition_number = kappa  # λ_max / λ_min with λ_min = 1

    def __repr__(self) -> str:
        return f"Quadratic(condition_number={self.condition_number:g}, dim={self.dim})"

    def _check_x(self, x: object, name: str = "x") -> Tensor:
        x = check_tensor(x, name, floating=True, min_dim=1)
        if x.shape[-1] != self.dim:
            raise fail(ValueError, name, f"shape (..., {self.dim})", f"shape {tuple(x.shape)}", "Match the dimension.")
        return x

    def hessian(self) -> Tensor:
        """The Hessian A, shape (d, d) (a copy)."""
        return self._a.clone()

    def value(self, x: Tensor) -> Tensor:
        """f(x) = 1/2 (x - x*)^T A (x - x*); x (..., d) -> (...)."""
        x = self._check_x(x)
        e = x - self.optimum.to(x)  # (..., d)
        return 0.5 * ((e @ self._a.to(x)) * e).sum(-1)

    def grad(self, x: Tensor) -> Tensor:
        """∇f(x) = A (x - x*); x (..., d) -> (..., d)."""
        x = self._check_x(x)
        return (x - self.optimum.to(x)) @ self._a.to(x)  # A is symmetric, so row-vector form is A e


@dataclass(frozen=True)
class Trajectory:
    """The iterates of a first-order method on a :class:`Quadratic`.

    Attributes:
        iterates: (T + 1, d), x_0 .. x_T.
        values: (T + 1,), f(x_t).
        errors: (T + 1,), the relative distance ||x_t - x*|| / ||x_0 - x*|| (the stopping criterion).
        iterations: T, the number of steps taken; when ``converged`` it is the first t with
            errors[t] <= tol.
        converged: whether the tolerance was reached within ``max_iter`` steps.
        diverged: whether the iterates stopped on a non-finite value (step size too large).
        lr, momentum: the step size and momentum used (after defaults were filled in).
    """

    iterates: Tensor
    values: Tensor
    errors: Tensor
    iterations: int
    converged: bool
    diverged: bool
    lr: float
    momentum: float = 0.0


def gradient_descent_rate(condition_number: float) -> float:
    """(κ - 1)/(κ + 1): error contraction per step of gradient descent with γ = 2/(L + μ)."""
    kappa = check_real(condition_number, "condition_number", low=1.0)
    return (kappa - 1.0) / (kappa + 1.0)


def heavy_ball_rate(condition_number: float) -> float:
    """(sqrt κ - 1)/(sqrt κ + 1): asymptotic error contraction per step of the tuned heavy ball."""
    root = math.sqrt(check_real(condition_number, "condition_number", low=1.0))
    return (root - 1.0) / (root + 1.0)


def iterations_to_tolerance(rate: float, tol: float) -> int:
    """The smallest t >= 1 with rate^t <= tol: ceil(log(tol) / log(rate)) (1 when rate = 0)."""
    rate = check_real(rate, "rate", low=0.0, high=1.0, high_inclusive=False)
    tol = check_real(tol, "tol", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    if rate == 0.0:
        return 1
    return max(1, math.ceil(math.log(tol) / math.log(rate) - 1e-12))


def _run(
    quadratic: Quadratic,
    x0: Tensor,
    direction: Callable[[Tensor], Tensor],
    lr: float,
    momentum: float,
    tol: float,
    max_iter: int,
) -> Trajectory:
    """x_{t+1} = x_t - lr · direction(x_t) + momentum · (x_t - x_{t-1}), stopped on the relative error."""
    tol = check_real(tol, "tol", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    max_iter = check_int(max_iter, "max_iter", low=1)
    x = quadratic._check_x(x0, "x0")
    if x.dim() != 1:
        raise fail(
            ValueError, "x0", f"a 1-D tensor of shape ({quadratic.dim},)", f"shape {tuple(x.shape)}", "Pass one point."
        )
    optimum = quadratic.optimum.to(x)
    e0 = torch.linalg.vector_norm(x - optimum).item()
    iterates, errors = [x.clone()], [1.0 if e0 > 0 else 0.0]
    x_prev, converged, diverged = x, e0 == 0.0, False
    while not converged and len(iterates) <= max_iter:
        x_new = x - lr * direction(x)
        if momentum != 0.0:
            x_new = x_new + momentum * (x - x_prev)
        x_prev, x = x, x_new
        err = torch.linalg.vector_norm(x - optimum).item() / e0
        if not math.isfinite(err):
            diverged = True
            break
        iterates.append(x)  # x_new was computed out of place: no copy needed
        errors.append(err)
        converged = err <= tol
    stacked = torch.stack(iterates)  # (T + 1, d)
    return Trajectory(
        iterates=stacked,
        values=quadratic.value(stacked),
        errors=torch.tensor(errors, dtype=torch.float64),
        iterations=len(iterates) - 1,
        converged=converged,
        diverged=diverged,
        lr=lr,
        momentum=momentum,
    )


def _check_lr(lr: object) -> float:
    return check_real(lr, "lr", low=0.0, low_inclusive=False)


def _check_quadratic(quadratic: object) -> Quadratic:
    if not isinstance(quadratic, Quadratic):
        raise fail(
            TypeError, "quadratic", "a Quadratic", type(quadratic).__name__, "Build one with Quadratic(kappa, dim)."
        )
    return quadratic


def gradient_descent(
    quadratic: Quadratic, x0: Tensor, lr: float | None = None, tol: float = 1e-6, max_iter: int = 10_000
) -> Trajectory:
    r"""Gradient descent x_{t+1} = x_t - γ ∇f(x_t) on a :class:`Quadratic`, until ||x_t - x*|| <= tol ||x_0 - x*||.

    The error evolves as x_{t+1} - x* = (I - γA)(x_t - x*), so each eigen-direction shrinks by
    |1 - γλ_i| per step. ``lr=None`` picks γ = 2/(L + μ), the constant step that minimizes the worst
    factor max_i |1 - γλ_i| = (κ - 1)/(κ + 1) (the smallest and largest eigenvalues then shrink at that
    same rate, so the bound is tight); the common safe choice 1/L gives 1 - 1/κ instead. Any
    γ >= 2/L diverges (the run stops with ``diverged=True`` once the iterates are non-finite).

    Args:
        quadratic: the problem. x0: starting point, shape (d,).
        lr: step size γ > 0, or None for 2/(L + μ).
        tol: relative tolerance in (0, 1) on the distance to x* (default 1e-6).
        max_iter: the most steps to take (default 10 000).

    Returns:
        the :class:`Trajectory`; with the default step, ``iterations`` is at most
        ``iterations_to_tolerance(gradient_descent_rate(kappa), tol)``.
    """
    q = _check_quadratic(quadratic)
    lr = 2.0 / (q.lambda_max + q.lambda_min) if lr is None else _check_lr(lr)
    return _run(q, x0, q.grad, lr, 0.0, tol, max_iter)


def _check_preconditioner(preconditioner: object, dim: int) -> Tensor:
    """Return the preconditioner as a (d, d) SPD matrix (a (d,) vector is its diagonal)."""
    p = check_tensor(preconditioner, "preconditioner", floating=True)
    if p.shape == (dim,):
        if not bool((p > 0).all()):
            raise fail(ValueError, "preconditioner", "a positive diagonal", "entries <= 0", "Use 1 / diag(A).")
        return torch.diag(p)
    if p.shape != (dim, dim):
        raise fail(
            ValueError,
            "preconditioner",
            f"shape ({dim}, {dim}) or ({dim},)",
            f"shape {tuple(p.shape)}",
            "Match the dimension.",
        )
    if not torch.allclose(p, p.T, rtol=1e-10, atol=1e-12 * float(p.abs().max())):
        raise fail(ValueError, "preconditioner", "a symmetric matrix", "an asymmetric one", "Use (P + P.T) / 2.")
    return p


def jacobi_preconditioner(quadratic: Quadratic) -> Tensor:
    """P = diag(A)^{-1} as a (d,) vector: rescales each coordinate by its own curvature."""
    return 1.0 / torch.diagonal(_check_quadratic(quadratic)._a)


def preconditioned_gradient_descent(
    quadratic: Quadratic,
    preconditioner: Tensor,
    x0: Tensor,
    lr: float | None = None,
    tol: float = 1e-6,
    max_iter: int = 10_000,
) -> Trajectory:
    r"""x_{t+1} = x_t - γ P ∇f(x_t): gradient descent on the preconditioned problem.

    With P = L L^T symmetric positive definite this is plain gradient descent in the variables
    y = L^{-1} x, whose Hessian L^T A L has the eigenvalues of PA; the rate is (κ' - 1)/(κ' + 1) with
    κ' = κ(PA). P = A^{-1} gives κ' = 1 and convergence in one step (Newton's method); P = diag(A)^{-1}
    (:func:`jacobi_preconditioner`) gives κ' = 1 when A is diagonal (``rotate=False``) and helps when
    the ill-conditioning comes from badly scaled coordinates.

    Args:
        quadratic: the problem. x0: starting point, shape (d,).
        preconditioner: P, an SPD (d, d) matrix or a positive (d,) vector (a diagonal P).
        lr: step size γ > 0, or None for the optimal 2/(λ_max(PA) + λ_min(PA)) (= 1 for P = A^{-1}).
        tol, max_iter: as :func:`gradient_descent`.
    """
    q = _check_quadratic(quadratic)
    p = _check_preconditioner(preconditioner, q.dim).to(q._a)
    if lr is None:
        try:
            chol = torch.linalg.cholesky(p)  # (d, d), P = L L^T
        except torch.linalg.LinAlgError:
            raise fail(
                ValueError,
                "preconditioner",
                "a positive definite matrix",
                "a matrix with eigenvalues <= 0",
                "Use A^-1 or 1/diag(A).",
            ) from None
        eig = torch.linalg.eigvalsh(chol.T @ q._a @ chol)  # the spectrum of PA
        lr = 2.0 / (eig[-1].item() + eig[0].item())
    else:
        lr = _check_lr(lr)
    return _run(q, x0, lambda x: q.grad(x) @ p, lr, 0.0, tol, max_iter)  # row form of P g (P symmetric)


def heavy_ball(
    quadratic: Quadratic,
    x0: Tensor,
    lr: float | None = None,
    momentum: float | None = None,
    tol: float = 1e-6,
    max_iter: int = 10_000,
) -> Trajectory:
    r"""Polyak's heavy ball: x_{t+1} = x_t - γ ∇f(x_t) + β (x_t - x_{t-1}), with x_{-1} = x_0.

    The defaults are Polyak's optimal parameters for a quadratic with curvatures in [μ, L]:
    γ = 4/(sqrt L + sqrt μ)² and β = ((sqrt κ - 1)/(sqrt κ + 1))². The error then shrinks by
    (sqrt κ - 1)/(sqrt κ + 1) per step asymptotically (the extreme eigen-directions get a double root,
    so a factor linear in t comes on top), i.e. about sqrt κ iterations where gradient descent needs κ.
    :class:`deepbasics.optim.SGD` with ``momentum=β`` and ``lr=γ`` runs the same recursion.

    Args:
        quadratic: the problem. x0: starting point, shape (d,).
        lr: γ > 0, or None for the optimal value. momentum: β in [0, 1), or None for the optimal value.
        tol, max_iter: as :func:`gradient_descent`.
    """
    q = _check_quadratic(quadratic)
    root_l, root_mu = math.sqrt(q.lambda_max), math.sqrt(q.lambda_min)
    lr = 4.0 / (root_l + root_mu) ** 2 if lr is None else _check_lr(lr)
    if momentum is None:
        momentum = heavy_ball_rate(q.condition_number) ** 2
    else:
        momentum = check_real(momentum, "momentum", low=0.0, high=1.0, high_inclusive=False)
    return _run(q, x0, q.grad, lr, momentum, tol, max_iter)


def newton_step(
    problem: Quadratic | tuple[Tensor | Callable[[Tensor], Tensor], Tensor | Callable[[Tensor], Tensor]],
    x: Tensor,
) -> Tensor:
    r"""One Newton step x - H^{-1} ∇f(x), solved with ``torch.linalg.solve`` (no explicit inverse).

    On a quadratic the second-order model is exact, so the step lands on x* from any x (Nocedal &
    Wright, Sec. 3.3): Newton's method is gradient descent preconditioned by the inverse Hessian.

    Args:
        problem: a :class:`Quadratic`, or a pair ``(grad, hessian)`` where each is either the tensor
            at ``x`` (shapes (d,) and (d, d)) or a callable ``x -> tensor``.
        x: the current point, shape (d,).

    Returns:
        the new point, shape (d,).
    """
    if isinstance(problem, Quadratic):
        x = problem._check_x(x)
        g, h = problem.grad(x), problem.hessian().to(x)
    elif isinstance(problem, tuple | list) and len(problem) == 2:
        x = check_tensor(x, "x", floating=True, ndim=1)
        g, h = (f(x) if callable(f) else f for f in problem)
        g = check_tensor(g, "grad", floating=True)
        h = check_tensor(h, "hessian", floating=True)
    else:
        raise fail(
            TypeError,
            "problem",
            "a Quadratic or a (grad, hessian) pair",
            type(problem).__name__,
            "Pass (g, H) tensors or callables.",
        )
    d = x.shape[-1]
    if g.shape != (d,) or h.shape != (d, d):
        raise fail(
            ValueError,
            "grad/hessian",
            f"shapes ({d},) and ({d}, {d})",
            f"{tuple(g.shape)} and {tuple(h.shape)}",
            "Evaluate them at x.",
        )
    try:
        return x - torch.linalg.solve(h, g)
    except torch.linalg.LinAlgError:
        raise fail(
            ValueError, "hessian", "an invertible matrix", "a singular one", "Add damping: (H + lambda I), lambda > 0."
        ) from None
