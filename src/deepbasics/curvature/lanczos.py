"""The Lanczos iteration on any symmetric linear map ``v -> A v``, and its extreme eigenvalues to a requested accuracy.

From a unit start vector q_1 the iteration builds orthonormal q_1..q_m spanning the Krylov space
K_m = span{q_1, A q_1, ..., A^{m-1} q_1} and the tridiagonal T_m = Q_m^T A Q_m:

    w = A q_j - alpha_j q_j - beta_{j-1} q_{j-1},   alpha_j = q_j^T A q_j,   beta_j = |w|,   q_{j+1} = w / beta_j
    A Q_m = Q_m T_m + beta_m q_{m+1} e_m^T

The eigenpairs (theta_i, s_i) of T_m give Ritz pairs (theta_i, Q_m s_i) whose residual is exactly

    r_i = |A Q_m s_i - theta_i Q_m s_i| = |beta_m s_{m,i}|,

and for symmetric A some eigenvalue lies within r_i of theta_i (Parlett 1998, Thm 4.5.1). Extreme eigenvalues
converge first, far faster than power iteration (Kaniel-Paige-Saad bounds).

Stopping rule of :func:`lanczos_extremes`: every wanted Ritz value must satisfy

    r_i <= max(tol / (1 + tol) |theta_i|,  eps^(2/3) max_j |theta_j|).

The first term makes the *relative* error at most tol: |lambda - theta| <= r and |lambda| >= |theta| - r give
|lambda - theta| / |lambda| <= (tol / (1 + tol)) / (1 - tol / (1 + tol)) = tol. The second is the resolution of the
arithmetic (ARPACK's eps^(2/3) floor), for eigenvalues near zero where no relative accuracy is reachable.
The residual bound is used, not the sharper gap bound |lambda - theta| <= r^2 / delta (Kato-Temple; Parlett 1998,
ch. 11; Saad 2011, ch. 3), because delta, the distance from theta to the *nearest other eigenvalue*, can only be
estimated from the other Ritz values, and an eigenvalue the Krylov space has not resolved yet (early on, or a
near-copy: the c outputs of a regression head give near-degenerate groups) makes that estimate far too large.
On the dense Hessians of 40 random small networks x 5 start vectors (``benchmarks/curvature.py --rules``,
tol 1e-3) the gap rule stopped with an error above tol for 24% of the top eigenvalues and 6-8% of the other
requests; the residual rule for 0-2%, each time on a near-copy the Krylov space had not met yet. The price: the
residual rule takes 20-40% more steps than an oracle that stops at the first step within tol (9.2 vs 6.7 steps
for the top eigenvalue there); the returned values are then typically far more accurate than tol asks.

Floating point: the q_j lose orthogonality and Ritz values repeat ("ghosts"), so every w is orthogonalised against
all q_i by classical Gram-Schmidt. ``reorth="full"`` does two passes ("twice is enough", Giraud et al. 2005): the
reference. ``reorth="dgks"`` (default) does the second pass only when the first removed more than 1 - 1/sqrt(2)
of w's norm, the Daniel-Gragg-Kaufman-Stewart (1976) criterion under which one pass already leaves w orthogonal to
working precision; the tests check that both give the same Ritz values in float64. In Lanczos the first pass
removes alpha_j q_j + beta_j-1 q_j-1, usually most of w, so the saving is modest (second pass skipped in 47% of the
steps on a digits MLP at initialization, 3-5% on trained networks). Selective or partial reorthogonalisation
(Parlett & Scott 1979, Simon 1984) would skip more, but at these sizes a step's cost is the HVP and Python
dispatch, not the O(m P) Gram-Schmidt. Cost O(m P) per step, memory O(m P).

When beta_j vanishes K_j is invariant (its Ritz values are exact eigenvalues); if more eigenvalues are wanted the
iteration restarts with a random vector orthogonal to Q (T becomes block diagonal), which also finds further copies
of repeated eigenvalues that one Krylov space cannot hold.

References: Lanczos (1950); Parlett, *The Symmetric Eigenvalue Problem* (SIAM 1998), ch. 4, 11, 13; Saad,
*Numerical Methods for Large Eigenvalue Problems* (2nd ed., SIAM 2011), ch. 3, 6; Golub & Van Loan, *Matrix
Computations* (4th ed.), §10.1-10.3; Daniel, Gragg, Kaufman & Stewart, Math. Comp. 30 (1976).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal, lapack

from .._checks import check_choice, check_int, check_real, fail
from ._sampling import random_probes

__all__ = ["ConvergenceWarning", "ExtremeEigenpairs", "LanczosDecomposition", "lanczos", "lanczos_extremes"]

MatVec = Callable[[torch.Tensor], torch.Tensor]

#: Second Gram-Schmidt pass when |w after| < DGKS_ETA |w before| (Daniel et al. 1976; Giraud et al. 2005, §3).
DGKS_ETA = 1 / math.sqrt(2)
#: Up to this size T is solved by LAPACK's implicit QL (dstev, O(m^3) but the smallest constant), above it by MRRR
#: (O(m^2)); the two times cross near m = 30 (measured: 22 vs 30 us at m = 20, 118 vs 79 us at m = 40).
QL_MAX_SIZE = 30


class ConvergenceWarning(UserWarning):
    """An iterative curvature estimate stopped at its iteration limit before meeting its tolerance."""


@functools.cache
def resolution_floor(dtype: torch.dtype) -> float:
    """eps^(2/3) of ``dtype``: below this fraction of |A| a residual or a beta is treated as round-off.

    ARPACK uses the same eps^(2/3) floor for Ritz values near zero, where a relative test cannot be met.
    """
    return float(torch.finfo(dtype).eps) ** (2.0 / 3.0)


def tridiagonal_eigh(alphas: torch.Tensor, off: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (m,) ascending and eigenvectors (m, m) of the symmetric tridiagonal matrix with diagonal
    ``alphas`` and off-diagonal ``off``, float64 on the CPU (LAPACK via SciPy: implicit QL up to QL_MAX_SIZE,
    MRRR above)."""
    theta, s = _tridiagonal_eigh(np.asarray(alphas, dtype=np.float64), np.asarray(off, dtype=np.float64))
    return torch.from_numpy(theta), torch.from_numpy(s)


def _tridiagonal_eigh(alphas: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if alphas.size == 1:
        return alphas.copy(), np.ones((1, 1))
    if alphas.size <= QL_MAX_SIZE:
        theta, s, info = lapack.dstev(alphas, off)
        if info == 0:
            return theta, np.ascontiguousarray(s)
    theta, s = eigh_tridiagonal(alphas, off, check_finite=False)
    return np.ascontiguousarray(theta), np.ascontiguousarray(s)


@dataclass(frozen=True)
class LanczosDecomposition:
    """``A Q_m = Q_m T_m + beta_m q_{m+1} e_m^T`` after m steps.

    ``alphas`` (m,): diagonal of T; ``betas`` (m,): beta_1..beta_m, the first m-1 are T's off-diagonal (0 where
    the iteration restarted), the last is the residual norm (both float64 on the CPU); ``basis`` (m, P): the q_j
    as rows; ``block_starts``: the step at which each Krylov block (the first and every restart) begins;
    ``scale``: max |alpha_j|, beta_j seen, an estimate of |A|.
    """

    alphas: torch.Tensor
    betas: torch.Tensor
    basis: torch.Tensor
    num_matvecs: int
    block_starts: tuple[int, ...]
    scale: float
    _ritz: list = field(default_factory=list, repr=False, compare=False)  # cache: the solve runs once per step

    @property
    def num_steps(self) -> int:
        return int(self.alphas.numel())

    @property
    def broke_down(self) -> bool:
        """beta_m <= eps^(2/3) |A|: the current Krylov block is invariant under A (to working precision)."""
        return float(self.betas[-1]) <= resolution_floor(self.basis.dtype) * self.scale

    def ritz_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`ritz` as NumPy arrays (no copies): what a convergence test run every step should read."""
        if not self._ritz:
            betas = self.betas.numpy()
            theta, s = _tridiagonal_eigh(self.alphas.numpy(), betas[:-1])
            self._ritz.append((theta, s, abs(betas[-1]) * np.abs(s[-1])))
        return self._ritz[0]

    def tridiagonal(self) -> torch.Tensor:
        """T_m, (m, m), float64 on the CPU."""
        off = self.betas[:-1]
        return torch.diag(self.alphas) + torch.diag(off, 1) + torch.diag(off, -1)

    def ritz(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Ritz values theta (m,) ascending, T's eigenvectors S (m, m), residual bounds |beta_m s_{m,i}| (m,).

        T is tiny (m <= a few hundred): it is solved in float64 on the CPU, where one tridiagonal solve costs
        microseconds, rather than as a kernel launch on an accelerator; float64 keeps close Ritz values apart.
        """
        theta, s, residuals = self.ritz_arrays()
        return torch.from_numpy(theta), torch.from_numpy(s), torch.from_numpy(residuals)

    def ritz_vectors(self, columns: torch.Tensor) -> torch.Tensor:
        """Ritz vectors Q_m^T S[:, columns], shape (P, len(columns)), in the basis' dtype and device."""
        return self.basis.T @ columns.to(self.basis.device, self.basis.dtype)


def _orthogonalize(w: torch.Tensor, known: torch.Tensor, reorth: str) -> tuple[float, float]:
    """Remove from ``w`` (P,) in place its components along the rows of ``known`` (j, P), by classical
    Gram-Schmidt (one or two passes, see the module docstring). Returns (w's component along the last row, |w|)."""
    coefficients = known @ w  # (j,)
    w.addmv_(known.T, coefficients, alpha=-1.0)
    if reorth == "dgks":
        # |w before|^2 = |w after|^2 + |c|^2 (Pythagoras, the rows being orthonormal): no second reduction over P.
        after2, removed2, last = torch.stack([w @ w, coefficients @ coefficients, coefficients[-1]]).tolist()
        if after2 >= DGKS_ETA**2 * (after2 + removed2):
            return last, math.sqrt(after2)
    again = known @ w
    w.addmv_(known.T, again, alpha=-1.0)
    last, after = torch.stack([coefficients[-1] + again[-1], torch.linalg.vector_norm(w)]).tolist()
    return last, after


def lanczos(
    matvec: MatVec,
    start: torch.Tensor,
    max_steps: int,
    *,
    stop: Callable[[LanczosDecomposition], bool] | None = None,
    restart: bool = False,
    generator: torch.Generator | None = None,
    reorth: str = "dgks",
) -> LanczosDecomposition:
    """Run up to ``max_steps`` Lanczos steps with reorthogonalisation from ``start`` (P,).

    ``stop(decomposition)`` is called after each step and ends the run when it returns True. At a breakdown
    (beta_j <= eps^(2/3) max|T|: K_j is invariant) the run ends, or with ``restart=True`` continues from a random
    vector orthogonal to all q_j (drawn with ``generator``); it also ends when no such vector is left (m = P).
    ``reorth``: "dgks" (second Gram-Schmidt pass only when needed) or "full" (always two passes).
    """
    max_steps = check_int(max_steps, "max_steps", low=1)
    check_choice(reorth, "reorth", ("dgks", "full"))
    dim = start.numel()
    norm = start.norm()
    if not bool(norm > 0):
        raise fail(ValueError, "start", "a non-zero vector", "the zero vector", "Use a random start vector.")
    floor = resolution_floor(start.dtype)
    capacity = min(max_steps + 1, 32)
    basis = torch.empty(capacity, dim, dtype=start.dtype, device=start.device)  # (capacity, P), rows q_j
    basis[0] = start / norm
    alphas = np.zeros(max_steps)  # float64 on the CPU: T is solved there (see LanczosDecomposition.ritz)
    betas = np.zeros(max_steps)
    blocks = [0]
    scale = 0.0

    for j in range(max_steps):
        if j + 1 == capacity:  # grow geometrically: memory stays O(steps taken * P)
            capacity = min(2 * capacity, max_steps + 1)
            basis = torch.cat([basis, basis.new_empty(capacity - basis.shape[0], dim)])
        known = basis[: j + 1]  # (j+1, P): q_1..q_j+1
        w = basis[j + 1]  # A q_j is orthogonalised in the row where q_j+1 will live
        w.copy_(matvec(basis[j]))
        # Reorthogonalisation against all q_i subsumes the three-term recurrence (w - alpha_j q_j - beta_j-1 q_j-1)
        # and yields alpha_j = q_j^T A q_j as a by-product.
        alphas[j], betas[j] = _orthogonalize(w, known, reorth)
        scale = max(scale, abs(float(alphas[j])), float(betas[j]))
        decomposition = LanczosDecomposition(
            torch.from_numpy(alphas[: j + 1].copy()),
            torch.from_numpy(betas[: j + 1].copy()),
            known,
            j + 1,
            tuple(blocks),
            scale,
        )
        if (stop is not None and stop(decomposition)) or j + 1 == max_steps or j + 1 == dim:
            return decomposition
        if betas[j] <= floor * scale:  # decomposition.broke_down, on plain floats
            if not restart:
                return decomposition
            w.copy_(random_probes(dim, dtype=start.dtype, device=start.device, generator=generator))
            drawn = float(w.norm())
            for _ in range(2):
                w.addmv_(known.T, known @ w, alpha=-1.0)
            if float(w.norm()) <= floor * drawn:  # Q already spans the whole space
                return decomposition
            betas[j] = 0.0  # T becomes block diagonal: the new block is A restricted to the complement
            blocks.append(j + 1)
            w.div_(w.norm())
        else:
            w.div_(float(betas[j]))
    raise AssertionError("unreachable")  # pragma: no cover - the loop always returns


@dataclass(frozen=True)
class ExtremeEigenpairs:
    """Converged (or best) extreme Ritz pairs of a symmetric operator.

    ``eigenvalues`` (k,) or (2k,) sorted descending; ``residuals`` the matching bounds |beta_m s_{m,i}| (an
    eigenvalue of A lies within each); ``eigenvectors`` (P, k) unit columns or None; ``num_matvecs``;
    ``converged``; ``decomposition`` for further use (all Ritz values: ``decomposition.ritz()``).
    """

    eigenvalues: torch.Tensor
    residuals: torch.Tensor
    eigenvectors: torch.Tensor | None
    converged: bool
    num_matvecs: int
    decomposition: LanczosDecomposition


def _wanted(m: int, k: int, which: str) -> list[int]:
    """Indices into m ascending Ritz values: the k largest, the k smallest, or both (each side capped at m)."""
    top = list(range(max(m - k, 0), m))
    bottom = list(range(min(k, m)))
    return {"largest": top, "smallest": bottom, "both": sorted(set(bottom + top))}[which]


def lanczos_extremes(
    matvec: MatVec,
    dim: int,
    *,
    k: int = 1,
    which: str = "largest",
    tol: float = 1e-3,
    max_iter: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    return_eigenvectors: bool = False,
    reorth: str = "dgks",
) -> ExtremeEigenpairs:
    """The k largest, k smallest or both (2k) eigenvalues of a symmetric (P, P) operator by Lanczos.

    Stops once every wanted Ritz value passes the residual test of the module docstring,

        |beta_m s_{m,i}| <= max(tol / (1 + tol) |theta_i|, eps^(2/3) max_j |theta_j|),

    i.e. each returned eigenvalue is within relative ``tol`` of an exact one (absolute eps^(2/3)|A| for
    eigenvalues near zero). Start vector: Gaussian from ``generator``. ``max_iter`` defaults to min(P, 300);
    if the test is not met by then a :class:`ConvergenceWarning` is issued and the best Ritz values returned
    with ``converged=False``. Needs k <= P (2k <= P for "both") and k (2k) <= max_iter: ValueError otherwise.
    ``reorth``: see :func:`lanczos`.

    Repeated eigenvalues: one Krylov space holds one copy of each eigenvalue. After an exact breakdown (small or
    low-rank operators) the iteration restarts, up to 2k times, while the last block still supplies wanted values,
    so copies are found there; without a breakdown a k > 1 request on an exactly repeated eigenvalue can return
    the next distinct eigenvalue instead of the copy (a block Lanczos method would be needed). Near-copies (a
    cluster, e.g. from a multi-output head) are met one at a time, so inside a cluster a returned value can belong
    to another member; it is still within relative tol of an eigenvalue, which is what the residual certifies.
    """
    dim = check_int(dim, "dim", low=1)
    k = check_int(k, "k", low=1)
    check_choice(which, "which", ("largest", "smallest", "both"))
    tol = check_real(tol, "tol", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    needed = 2 * k if which == "both" else k
    if needed > dim:
        raise fail(
            ValueError,
            "k",
            f"at most {dim // 2 if which == 'both' else dim} for which={which!r} (the operator has {dim} eigenvalues)",
            k,
            "Ask for fewer eigenvalues.",
        )
    max_iter = min(dim, 300) if max_iter is None else check_int(max_iter, "max_iter", low=1)
    max_iter = min(max_iter, dim)
    if needed > max_iter:
        raise fail(
            ValueError,
            "k",
            f"at most max_iter={max_iter} Ritz values ({needed} needed for k={k}, which={which!r})",
            k,
            "Raise max_iter or ask for fewer eigenvalues: m Lanczos steps give m Ritz values.",
        )
    floor = resolution_floor(dtype)
    relative = tol / (1.0 + tol)  # residual <= relative |theta|  =>  relative error <= tol (module docstring)

    def passes(values: list[float], residuals: list[float], scale: float) -> bool:
        # a handful of values per step: plain floats, not tensor operations with their dispatch overhead
        return all(r <= max(relative * abs(v), floor * scale) for v, r in zip(values, residuals, strict=True))

    def converged(d: LanczosDecomposition) -> bool:
        theta, _, residuals = d.ritz_arrays()
        if theta.size < needed:
            return False
        scale = max(abs(float(theta[0])), abs(float(theta[-1])))
        idx = _wanted(theta.size, k, which)
        if not passes(theta[idx].tolist(), residuals[idx].tolist(), scale):
            return False
        start = d.block_starts[-1]
        if start == 0:
            return True
        # A restarted block must first converge its own extreme(s): until then its Ritz values understate what it
        # holds, and the wanted set, made of the earlier blocks' values, only looks converged.
        theta_b, s_b = _tridiagonal_eigh(d.alphas.numpy()[start:], d.betas.numpy()[start:-1])
        res_b = abs(float(d.betas[-1])) * np.abs(s_b[-1])
        ends = {"largest": [-1], "smallest": [0], "both": [0, -1]}[which]
        return passes(theta_b[ends].tolist(), res_b[ends].tolist(), scale)

    def stop(d: LanczosDecomposition) -> bool:
        if not converged(d):
            return False
        if not d.broke_down or len(d.block_starts) > needed:
            return True
        # Exact breakdown: one Krylov block holds one copy of each eigenvalue. If the last block supplied a wanted
        # value, restart (at most `needed` times) so that further copies of a repeated eigenvalue can appear.
        _, s, _ = d.ritz_arrays()
        idx = _wanted(s.shape[0], k, which)
        return not bool((np.abs(s[d.block_starts[-1] :, idx]).sum(0) > 0.5).any())

    start = random_probes(dim, dtype=dtype, device=torch.device(device), generator=generator)
    decomposition = lanczos(matvec, start, max_iter, stop=stop, restart=True, generator=generator, reorth=reorth)
    is_converged = converged(decomposition)
    theta, s, residuals = decomposition.ritz()
    idx = _wanted(theta.numel(), k, which)
    if not is_converged:
        warnings.warn(
            f"Lanczos: the {which} {k} eigenvalue(s) did not meet tol={tol:g} within {decomposition.num_steps} "
            f"steps; returning the best Ritz values (see .residuals). Raise max_iter or loosen tol.",
            ConvergenceWarning,
            stacklevel=3,
        )
    order = idx[::-1]  # descending
    vectors = decomposition.ritz_vectors(s[:, order]) if return_eigenvectors else None
    return ExtremeEigenpairs(
        eigenvalues=theta[order].to(dtype=dtype, device=torch.device(device)),
        residuals=residuals[order].to(dtype=dtype, device=torch.device(device)),
        eigenvectors=vectors,
        converged=is_converged,
        num_matvecs=decomposition.num_matvecs,
        decomposition=decomposition,
    )
