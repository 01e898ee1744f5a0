"""Matrix-free curvature of a model's loss: Hessian eigenvalues, trace, spectral density, condition number and
the second-order test (FAQ Q3.1 ill-conditioning, Q3.2 saddle points, Q11 the Hessian).

Every function takes ``(model, loss_fn, inputs, targets)`` with ``loss_fn(model(inputs), targets)`` the scalar
mean loss (or ``inputs`` an iterable of ``(x, y)`` batches and ``targets=None``), works with Hessian-vector
products only (never the P x P matrix), in torch on the parameters' device, evaluates the model in eval mode
unless ``train_mode=True`` and leaves it as it was.

Each estimate stops at the accuracy asked for: eigenvalues within relative ``tol`` by the Lanczos residual bound,
the trace within relative ``tol`` with probability ~``confidence``, the condition number within relative ``tol``.

Modules: :mod:`.hvp` (the operator v -> Hv, one or many vectors at a time), :mod:`.lanczos` (Lanczos with
reorthogonalisation and its stopping rule), :mod:`.eigen` (extreme eigenvalues), :mod:`.trace` (the trace:
:mod:`.trace_adaptive` to a requested accuracy, :mod:`.trace_fixed` Hutch++/Hutchinson and the exact trace),
:mod:`.density` (stochastic Lanczos quadrature), :mod:`.report` (condition number, definiteness, saddle verdict).
"""

from __future__ import annotations

from .density import SpectralDensity, plot_spectral_density, spectral_density
from .eigen import EigenResult, hessian_eigen, hessian_eigenvalues
from .hvp import HessianOperator, hessian_operator, hessian_vector_product
from .lanczos import ConvergenceWarning
from .report import (
    CRITICAL_GRAD_NORM,
    FLAT_EIG_RTOL,
    CriticalPoint,
    CurvatureReport,
    SaddleReport,
    condition_number,
    curvature_report,
    saddle_report,
)
from .trace import TraceEstimate, hessian_trace, hessian_trace_estimate

__all__ = [
    "CRITICAL_GRAD_NORM",
    "FLAT_EIG_RTOL",
    "ConvergenceWarning",
    "CriticalPoint",
    "CurvatureReport",
    "EigenResult",
    "HessianOperator",
    "SaddleReport",
    "SpectralDensity",
    "TraceEstimate",
    "condition_number",
    "curvature_report",
    "hessian_eigen",
    "hessian_eigenvalues",
    "hessian_operator",
    "hessian_trace",
    "hessian_trace_estimate",
    "hessian_vector_product",
    "plot_spectral_density",
    "saddle_report",
    "spectral_density",
]
