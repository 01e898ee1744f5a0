"""Curvature verdicts: condition number, definiteness and the second-order test at a point (FAQ Q3.1, Q3.2).

Condition number of the (symmetric) Hessian, defined where H is positive definite:

    kappa(H) = lambda_max / lambda_min        (inf when lambda_min <= 0: indefinite or singular)

Gradient descent needs O(kappa log(1/eps)) steps on a quadratic (FAQ Q3.1.a; Nocedal & Wright,
*Numerical Optimization*, 2nd ed., Thm 3.3). Second-order test at a critical point (grad L = 0; FAQ Q3.2.b):
all eigenvalues > 0 -> local minimum, all < 0 -> local maximum, both signs -> saddle point
(Dauphin et al., "Identifying and attacking the saddle point problem", NeurIPS 2014, §2).

Every decision uses the Lanczos error bars: a Ritz value theta with residual r is only known to lie in
[theta - r, theta + r], and values within ``FLAT_EIG_RTOL * max|lambda|`` of zero count as zero.
"""

from __future__ import annotations

import enum
import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from .._checks import check_generator, check_positive, check_real
from .eigen import hessian_eigen
from .hvp import Data, LossFn, hessian_operator
from .lanczos import ConvergenceWarning, lanczos_extremes, resolution_floor

__all__ = [
    "CRITICAL_GRAD_NORM",
    "FLAT_EIG_RTOL",
    "CriticalPoint",
    "CurvatureReport",
    "SaddleReport",
    "condition_number",
    "curvature_report",
    "saddle_report",
]

# Below this gradient norm a point counts as critical. Absolute, because the loss scale is the user's: float32
# training stalls around 1e-3..1e-4 on the small models of the lab; pass grad_tol for another scale.
CRITICAL_GRAD_NORM = 1e-3
# Eigenvalues with |lambda| <= FLAT_EIG_RTOL * max|lambda| count as zero (flat directions). Equal to the default
# Lanczos tolerance: a Ritz value is only known to that relative accuracy, so smaller ones have no reliable sign.
FLAT_EIG_RTOL = 1e-3


class CriticalPoint(str, enum.Enum):
    """The second-order verdict; members compare equal to their strings ("saddle" == CriticalPoint.SADDLE)."""

    MINIMUM = "minimum"
    SADDLE = "saddle"
    MAXIMUM = "maximum"
    NOT_CRITICAL = "not_critical"


@dataclass(frozen=True)
class CurvatureReport:
    """Extreme eigenvalues of the Hessian and what they say.

    Attributes:
        top_eigenvalues, bottom_eigenvalues: (k,) each, descending.
        lambda_max, lambda_min: the extreme eigenvalues.
        condition_number: lambda_max / lambda_min if H is positive definite, else ``math.inf``.
        positive_definite: lambda_min is positive beyond its error bar (Ritz residual, at least eps^(2/3) |H|).
        num_negative: negative eigenvalues found (converged negative Ritz values: a lower bound on the count).
        most_negative: the most negative eigenvalue, or None when none was found.
        num_hvps: Hessian-vector products used; converged: every eigenvalue met the tolerance.
        message: one sentence for people.
    """

    top_eigenvalues: torch.Tensor
    bottom_eigenvalues: torch.Tensor
    lambda_max: float
    lambda_min: float
    condition_number: float
    positive_definite: bool
    num_negative: int
    most_negative: float | None
    num_hvps: int
    converged: bool
    message: str


def _error_bar(scale: float, residual: float, dtype: torch.dtype) -> float:
    """Half-width of the interval around a Ritz value that holds an eigenvalue: its residual, but at least the
    eps^(2/3) |H| resolution of the Lanczos test. An eigenvalue's sign is known only beyond it."""
    return max(residual, resolution_floor(dtype) * scale)


def curvature_report(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Data,
    targets: object = None,
    *,
    k: int = 1,
    tol: float = 1e-3,
    max_iter: int | None = None,
    generator: torch.Generator | None = None,
    train_mode: bool = False,
) -> CurvatureReport:
    """The k largest and k smallest Hessian eigenvalues (one Lanczos run), definiteness and condition number.

    Arguments as in :func:`deepbasics.curvature.hessian_eigen` (``which="both"``); needs 2k <= P.
    """
    result = hessian_eigen(
        model, loss_fn, inputs, targets, k, "both", tol, max_iter=max_iter, generator=generator, train_mode=train_mode
    )
    values, residuals = result.eigenvalues, result.residuals  # (2k,) descending
    lam_max, lam_min = float(values[0]), float(values[-1])
    scale = max(abs(lam_max), abs(lam_min))
    dtype = values.dtype
    band = _error_bar(scale, float(residuals[-1]), dtype)
    positive_definite = lam_min > band
    # Negative Ritz values that have converged are eigenvalues of H (each within its residual of one).
    ritz, ritz_res = result.ritz_values, result.ritz_residuals
    ok = ritz_res <= torch.clamp(tol * ritz.abs(), min=resolution_floor(dtype) * scale)
    negative = ok & (ritz < -torch.clamp(ritz_res, min=resolution_floor(dtype) * scale))
    num_negative = int(negative.sum())
    most_negative = lam_min if lam_min < -band else None
    if positive_definite:
        kappa = lam_max / lam_min
        message = (
            f"positive definite: condition number {kappa:.4g} (lambda_max {lam_max:.4g}, lambda_min {lam_min:.4g})"
        )
    else:
        kappa = math.inf
        if most_negative is not None:
            message = (
                f"indefinite: {num_negative} negative eigenvalue(s) found, the most negative {lam_min:.4g} "
                f"(lambda_max {lam_max:.4g}); the condition number is undefined (inf)"
            )
        else:
            message = (
                f"singular to working accuracy: lambda_min = {lam_min:.3g} is within +-{band:.3g} of 0 "
                f"(lambda_max {lam_max:.4g}); the condition number is inf"
            )
    return CurvatureReport(
        top_eigenvalues=values[:k],
        bottom_eigenvalues=values[k:],
        lambda_max=lam_max,
        lambda_min=lam_min,
        condition_number=kappa,
        positive_definite=positive_definite,
        num_negative=num_negative,
        most_negative=most_negative,
        num_hvps=result.num_hvps,
        converged=result.converged,
        message=message,
    )


def condition_number(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Data,
    targets: object = None,
    *,
    tol: float = 1e-3,
    max_iter: int | None = None,
    generator: torch.Generator | None = None,
    train_mode: bool = False,
) -> float:
    """kappa(H) = lambda_max / lambda_min of the mean-loss Hessian, within relative ``tol``; ``inf`` where H is not
    positive definite (:func:`curvature_report` says why: negative eigenvalues found, or lambda_min
    indistinguishable from 0).

    Both ends come from one Lanczos run, each to relative accuracy e = tol / (2 + tol): with per-end errors up to
    e the ratio lies in kappa [(1 - e) / (1 + e), (1 + e) / (1 - e)], and 2e / (1 - e) = tol.
    """
    tol = check_real(tol, "tol", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    return curvature_report(
        model,
        loss_fn,
        inputs,
        targets,
        k=1,
        tol=tol / (2 + tol),
        max_iter=max_iter,
        generator=generator,
        train_mode=train_mode,
    ).condition_number


@dataclass(frozen=True)
class SaddleReport:
    """The second-order test at the current parameters.

    Attributes:
        verdict: a :class:`CriticalPoint` ("minimum", "saddle", "maximum", "not_critical").
        loss, grad_norm: L and |grad L| over the data.
        lambda_max, lambda_min: extreme Hessian eigenvalues (lambda_min is the most negative one if any).
        smallest_abs_eigenvalue: min_i |lambda_i|, from Lanczos on H^2 (its smallest eigenvalue is
            min lambda_i^2); resolved to about eps^(1/3) max|lambda| at best. ``smallest_abs_converged`` says
            whether that run met its tolerance.
        grad_tol, flat_tol: the thresholds used (flat_tol absolute: FLAT_EIG_RTOL * max|lambda|, or the error
            bar if larger).
        num_hvps: Hessian-vector products used; message: one sentence.
    """

    verdict: CriticalPoint
    loss: float
    grad_norm: float
    lambda_max: float
    lambda_min: float
    smallest_abs_eigenvalue: float
    smallest_abs_converged: bool
    grad_tol: float
    flat_tol: float
    num_hvps: int
    message: str


def saddle_report(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Data,
    targets: object = None,
    *,
    grad_tol: float = CRITICAL_GRAD_NORM,
    tol: float = 1e-3,
    max_iter: int | None = None,
    generator: torch.Generator | None = None,
    train_mode: bool = False,
) -> SaddleReport:
    """Classify the current parameters as a minimum, saddle, maximum or no critical point at all.

    Verdict: ``not_critical`` if |grad L| > grad_tol; otherwise, with t = max(FLAT_EIG_RTOL max|lambda|, error
    bars): ``saddle`` if lambda_min < -t and lambda_max > t; ``maximum`` if lambda_min < -t and lambda_max <= t;
    else ``minimum`` (lambda_min >= -t; the message says "degenerate" when min|lambda| <= t).

    Arguments as in :func:`deepbasics.curvature.hessian_eigen`; ``grad_tol`` defaults to
    :data:`CRITICAL_GRAD_NORM`. Cost: about 3x the HVPs of :func:`curvature_report` (the H^2 run).
    """
    grad_tol = check_positive(grad_tol, "grad_tol", strict=False)
    check_generator(generator)
    common = {"tol": tol, "max_iter": max_iter, "generator": generator}
    with hessian_operator(model, loss_fn, inputs, targets, train_mode=train_mode) as operator:
        kind = {"dtype": operator.dtype, "device": operator.device}
        loss, gradient = operator.loss_and_gradient()
        ends = lanczos_extremes(operator.matvec, operator.dim, k=1, which="both", **common, **kind)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            squared = lanczos_extremes(
                lambda v: operator.matvec(operator.matvec(v)), operator.dim, k=1, which="smallest", **common, **kind
            )
        num_hvps = operator.num_hvps
    grad_norm = float(gradient.norm())
    lam_max, lam_min = float(ends.eigenvalues[0]), float(ends.eigenvalues[-1])
    smallest_abs = math.sqrt(max(float(squared.eigenvalues[0]), 0.0))
    scale = max(abs(lam_max), abs(lam_min))
    flat = max(FLAT_EIG_RTOL * scale, _error_bar(scale, float(ends.residuals.max()), operator.dtype))
    negative, positive = lam_min < -flat, lam_max > flat
    if grad_norm > grad_tol:
        verdict = CriticalPoint.NOT_CRITICAL
        why = f"|grad L| = {grad_norm:.3g} > grad_tol = {grad_tol:.3g}"
    else:
        verdict = (
            CriticalPoint.SADDLE
            if negative and positive
            else CriticalPoint.MAXIMUM
            if negative
            else CriticalPoint.MINIMUM
        )
        why = f"|grad L| = {grad_norm:.3g} <= {grad_tol:.3g}, eigenvalues in [{lam_min:.4g}, {lam_max:.4g}]"
        if smallest_abs <= flat:
            why += f"; degenerate: min |lambda| = {smallest_abs:.3g} <= {flat:.3g} (flat directions)"
    return SaddleReport(
        verdict=verdict,
        loss=loss,
        grad_norm=grad_norm,
        lambda_max=lam_max,
        lambda_min=lam_min,
        smallest_abs_eigenvalue=smallest_abs,
        smallest_abs_converged=squared.converged and not caught,
        grad_tol=grad_tol,
        flat_tol=flat,
        num_hvps=num_hvps,
        message=f"{verdict.value}: {why}",
    )
