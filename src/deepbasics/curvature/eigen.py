"""Extreme eigenvalues of the loss Hessian by Lanczos, matrix-free (FAQ Q3.1, Q3.2, Q11.c).

    H = d^2 L / d theta^2  (P, P),   L = loss_fn(model(inputs), targets)  the mean loss

``hessian_eigenvalues`` returns the k largest, k smallest or both (2k) eigenvalues of the exact Hessian of
the mean loss (no Gauss-Newton or Fisher approximation), sorted descending, each within relative ``tol`` of an
exact eigenvalue by the Ritz residual test |beta_m s_{m,i}| <= tol / (1 + tol) |theta_i| (see :mod:`.lanczos`, which
also says why the sharper residual^2 / gap bound is not used). Cost: one Hessian-vector product per Lanczos step;
``hessian_eigen`` also reports that count.

Why Lanczos and not power iteration (PyHessian, Yao et al. 2020): power iteration's error falls like
(lambda_2/lambda_1)^(2m) after m products, Lanczos' like exp(-4 m sqrt(gap)) (Kaniel-Paige-Saad), and
Lanczos gets the bottom of the spectrum from the same Krylov space without a spectral shift.

References: Lanczos (1950); Parlett, *The Symmetric Eigenvalue Problem* (1998), ch. 12-13;
Ghorbani, Krishnan & Xiao, "An investigation into neural net optimization via Hessian eigenvalue density",
ICML 2019, §2; Yao et al., "PyHessian", IEEE BigData 2020, §3.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._checks import check_generator
from .hvp import Data, LossFn, hessian_operator
from .lanczos import lanczos_extremes

__all__ = ["EigenResult", "hessian_eigen", "hessian_eigenvalues"]


@dataclass(frozen=True)
class EigenResult:
    """Extreme Hessian eigenpairs and what they cost.

    Attributes:
        eigenvalues: (k,) for "largest"/"smallest", (2k,) for "both" (k largest then k smallest), descending.
        residuals: matching Ritz residual norms; each eigenvalue is within its residual of an exact one.
        eigenvectors: (P, k) unit columns in the order of ``eigenvalues`` (parameters flattened in
            ``model.parameters()`` order), or None unless asked for.
        converged: whether every eigenvalue met the tolerance (a ConvergenceWarning was issued otherwise).
        num_hvps: Hessian-vector products used (= Lanczos steps).
        ritz_values: all Ritz values of the final Krylov space, ascending (the reports count negative ones).
        ritz_residuals: their residual norms.
    """

    eigenvalues: torch.Tensor
    residuals: torch.Tensor
    eigenvectors: torch.Tensor | None
    converged: bool
    num_hvps: int
    ritz_values: torch.Tensor
    ritz_residuals: torch.Tensor


def hessian_eigen(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Data,
    targets: object = None,
    k: int = 1,
    which: str = "largest",
    tol: float = 1e-3,
    *,
    max_iter: int | None = None,
    return_eigenvectors: bool = False,
    generator: torch.Generator | None = None,
    train_mode: bool = False,
) -> EigenResult:
    """Extreme eigenvalues of the Hessian of the mean loss, with residuals and the HVP count.

    Args:
        model: the network; its trainable parameters are the variables. Evaluated in eval mode unless
            ``train_mode=True``; its modes, parameters, ``requires_grad`` flags and ``.grad`` are left as they were.
        loss_fn: ``loss_fn(model(x), y)`` returns the scalar mean loss of a batch.
        inputs, targets: one batch, or ``inputs`` an iterable of ``(x, y)`` batches (DataLoader) and
            ``targets=None``; the Hessian is then that of the mean loss over all examples.
        k: eigenvalues per end of the spectrum; k <= P (2k <= P for "both").
        which: "largest", "smallest" or "both".
        tol: relative accuracy: each eigenvalue is returned within relative ``tol`` of an exact one, certified by its
            Ritz residual (absolute eps^(2/3) |H| for eigenvalues near 0).
        max_iter: Lanczos steps at most (= HVPs); default min(P, 300).
        return_eigenvectors: also return the Ritz vectors.
        generator: seeds the random start vector (reproducible results).

    Raises:
        ValueError: unknown ``which``; k too large; non-scalar loss; empty batch; model without trainable
            parameters. TypeError: wrong argument types.
    """
    check_generator(generator)
    with hessian_operator(model, loss_fn, inputs, targets, train_mode=train_mode) as operator:
        pairs = lanczos_extremes(
            operator.matvec,
            operator.dim,
            k=k,
            which=which,
            tol=tol,
            max_iter=max_iter,
            dtype=operator.dtype,
            device=operator.device,
            generator=generator,
            return_eigenvectors=return_eigenvectors,
        )
    theta, _, residuals = pairs.decomposition.ritz()
    return EigenResult(
        eigenvalues=pairs.eigenvalues,
        residuals=pairs.residuals,
        eigenvectors=pairs.eigenvectors,
        converged=pairs.converged,
        num_hvps=operator.num_hvps,
        ritz_values=theta,
        ritz_residuals=residuals,
    )


def hessian_eigenvalues(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Data,
    targets: object = None,
    k: int = 1,
    which: str = "largest",
    tol: float = 1e-3,
    *,
    max_iter: int | None = None,
    return_eigenvectors: bool = False,
    generator: torch.Generator | None = None,
    train_mode: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The k largest / k smallest / both (2k) eigenvalues of the exact Hessian of the mean loss, descending.

    Same arguments as :func:`hessian_eigen`, which also gives residuals and the HVP count. Returns the
    eigenvalues (k,) or (2k,) in the parameters' dtype and device, or ``(eigenvalues, eigenvectors (P, k))``
    with ``return_eigenvectors=True``.

    Example::

        top = hessian_eigenvalues(model, nn.CrossEntropyLoss(), x, y, k=3)             # tensor([l1, l2, l3])
        lr_limit = 2 / top[0]                                                           # FAQ Q11.c
    """
    result = hessian_eigen(
        model,
        loss_fn,
        inputs,
        targets,
        k,
        which,
        tol,
        max_iter=max_iter,
        return_eigenvectors=return_eigenvectors,
        generator=generator,
        train_mode=train_mode,
    )
    if return_eigenvectors:
        return result.eigenvalues, result.eigenvectors  # type: ignore[return-value]
    return result.eigenvalues
