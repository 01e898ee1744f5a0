"""The Hessian's eigenvalue density by stochastic Lanczos quadrature (SLQ).

The spectral density of H (P, P) with eigenpairs (lambda_i, u_i), smoothed by a Gaussian kernel of width sigma,

    phi_sigma(t) = (1/P) sum_i N(t; lambda_i, sigma^2),

is a quadratic form in disguise: for a random unit vector v (Gaussian, normalized), E[v^T f(H) v] = tr f(H) / P.
m Lanczos steps from v give T_m = S diag(theta) S^T, and Gauss quadrature turns the quadratic form into

    v^T f(H) v ≈ sum_j tau_j f(theta_j),    tau_j = S[0, j]^2,   sum_j tau_j = 1,

exact for polynomials f of degree < 2m (Golub & Meurant 2010, ch. 6). Averaging over n_v vectors,

    phi_sigma(t) ≈ (1/n_v) sum_l sum_j tau_j^(l) N(t; theta_j^(l), sigma^2),

a density that integrates to 1 (Ubaru, Chen & Saad 2017, §2-3; Ghorbani, Krishnan & Xiao 2019, §2;
PyHessian's ``density``, Yao et al. 2020, §3). The same nodes estimate the trace: tr(H) ≈ P sum_j tau_j theta_j.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._checks import check_generator, check_int, check_positive, fail
from ._sampling import random_probes
from .hvp import Data, LossFn, hessian_operator
from .lanczos import lanczos

__all__ = ["SpectralDensity", "plot_spectral_density", "spectral_density"]

DEFAULT_SIGMA_FRACTION = 0.01  # kernel width, as a fraction of the spread of the nodes (cf. PyHessian's sigma^2)


@dataclass(frozen=True)
class SpectralDensity:
    """SLQ result.

    Attributes:
        grid: (G,) eigenvalue axis; density: (G,) phi_sigma on it (integrates to ~1).
        nodes: (n_v, m) Ritz values theta_j^(l); weights: (n_v, m) tau_j^(l), each row sums to 1. A run that
            stopped early (its Krylov space became invariant: its quadrature is then exact) is padded with
            nodes 0 of weight 0.
        sigma: the Gaussian kernel's width; num_hvps: products used; dim: P.
    """

    grid: torch.Tensor
    density: torch.Tensor
    nodes: torch.Tensor
    weights: torch.Tensor
    sigma: float
    num_hvps: int
    dim: int

    @property
    def trace(self) -> float:
        """The SLQ estimate of tr(H) = P * mean_l sum_j tau_j theta_j."""
        return self.dim * float((self.weights * self.nodes).sum(1).mean())


def spectral_density(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Data,
    targets: object = None,
    *,
    num_steps: int = 80,
    num_vectors: int = 1,
    num_points: int = 1000,
    sigma: float | None = None,
    generator: torch.Generator | None = None,
    train_mode: bool = False,
) -> SpectralDensity:
    """Gaussian-smoothed eigenvalue density of the mean-loss Hessian by stochastic Lanczos quadrature.

    Args:
        model, loss_fn, inputs, targets, train_mode: as in :func:`deepbasics.curvature.hessian_eigenvalues`.
        num_steps: Lanczos steps per vector, m (capped at P); the quadrature is exact for moments up to 2m - 1.
        num_vectors: random start vectors n_v; the estimate's variance falls like 1/(n_v P).
        num_points: grid points G.
        sigma: kernel width; default 1% of max(theta) - min(theta) (or of max|theta| if they coincide).
        generator: seeds the start vectors.

    Cost: ``num_vectors * num_steps`` HVPs and O(num_steps * P) memory.
    """
    check_generator(generator)
    num_steps = check_int(num_steps, "num_steps", low=1)
    num_vectors = check_int(num_vectors, "num_vectors", low=1)
    num_points = check_int(num_points, "num_points", low=2)
    with hessian_operator(model, loss_fn, inputs, targets, train_mode=train_mode) as operator:
        steps = min(num_steps, operator.dim)
        nodes = torch.zeros(num_vectors, steps, dtype=torch.float64)
        weights = torch.zeros(num_vectors, steps, dtype=torch.float64)
        for run in range(num_vectors):
            start = random_probes(operator.dim, dtype=operator.dtype, device=operator.device, generator=generator)
            theta, s, _ = lanczos(operator.matvec, start, steps).ritz()  # (m',), (m', m')
            nodes[run, : theta.numel()] = theta
            weights[run, : theta.numel()] = s[0] ** 2
        num_hvps = operator.num_hvps
    # nodes and weights come from the tiny tridiagonal solves (float64, CPU); the smoothed density is evaluated
    # on the parameters' device (in float64 there, then cast to the parameters' dtype).
    used = weights > 0
    low, high = float(nodes[used].min()), float(nodes[used].max())
    if sigma is None:
        spread = (high - low) or max(abs(low), abs(high)) or 1.0
        sigma = DEFAULT_SIGMA_FRACTION * spread
    else:
        sigma = check_positive(sigma, "sigma")
    f64 = {"dtype": torch.float64, "device": operator.device}
    grid = torch.linspace(low - 5 * sigma, high + 5 * sigma, num_points, **f64)  # (G,)
    centred = (grid[:, None] - nodes.reshape(1, -1).to(**f64)) / sigma  # (G, n_v m)
    kernel = torch.exp(-0.5 * centred**2) / (sigma * math.sqrt(2 * math.pi))
    density = kernel @ weights.reshape(-1).to(**f64) / num_vectors  # (G,)
    return SpectralDensity(
        grid.to(operator.dtype), density.to(operator.dtype), nodes, weights, float(sigma), num_hvps, operator.dim
    )


def plot_spectral_density(result: SpectralDensity, ax: Any = None, *, log: bool = True) -> Any:
    """Plot ``result.density`` against ``result.grid`` (log scale by default, as in Ghorbani et al. 2019,
    Fig. 1) on ``ax`` (a new figure if None) and return the axes. Imports matplotlib only when called."""
    if not isinstance(result, SpectralDensity):
        raise fail(
            TypeError, "result", "a SpectralDensity", type(result).__name__, "Pass spectral_density(...)'s result."
        )
    import matplotlib.pyplot as plt  # lazy: deepbasics.curvature must not pull in matplotlib

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    grid, density = result.grid.detach().cpu(), result.density.detach().cpu()
    if log:
        ax.semilogy(grid, density.clamp_min(1e-12 * float(density.max())))
    else:
        ax.plot(grid, density)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    ax.set_title(f"Hessian spectral density (SLQ, sigma={result.sigma:.3g})")
    return ax
