"""The expensive measurements behind the curvature and batch-size findings, shared by ``watch`` and ``diagnose``.

- :func:`measure_curvature`: the extreme Hessian eigenvalues (:func:`deepbasics.curvature.curvature_report`,
  Lanczos, ~20-100 Hessian-vector products) plus the loss and gradient norm at the same parameters;
- :func:`measure_noise_scale`: the gradient noise scale B_simple (:func:`deepbasics.noise.gradient_noise_scale`,
  McCandlish et al. 2018, appendix A.1) from gradients at two batch sizes.

Both are read-only: the model is evaluated in eval mode and restored, gradients come from
``torch.autograd.grad`` (``.grad`` untouched) and every random draw uses a private generator seeded with 0, so
the global random stream is not consumed. Each returns ``(numbers or None, note or None)``: a failure or a model
too large becomes a note in the report instead of an exception.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from . import thresholds as T

__all__ = ["measure_curvature", "measure_noise_scale", "noise_numbers"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Lanczos iterations at most (the extremes of small models converge in 20-70).
MAX_LANCZOS_ITER = 100
#: Noise-scale measurements: pairs of gradients at B_SMALL and B_BIG examples (drawn with replacement).
NOISE_MEASUREMENTS = 20
B_SMALL, B_BIG = 4, 64


def _generator(model: nn.Module) -> torch.Generator:
    device = next(model.parameters()).device
    return torch.Generator(device=device).manual_seed(0)


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def measure_curvature(
    model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: Any
) -> tuple[dict[str, Any] | None, str | None]:
    """``{"lambda_max", "lambda_min", "condition_number", "positive_definite", "loss", "grad_norm",
    "gradient_curvature", "num_hvps", "converged", "examples"}`` on up to ``CURVATURE_EXAMPLES`` examples, or a note
    saying why it was skipped. ``gradient_curvature`` is the Rayleigh quotient g^T H g / ||g||^2 of the gradient g
    (None for a zero gradient): the curvature in the direction a gradient step takes."""
    from ..curvature import ConvergenceWarning, curvature_report, hessian_operator  # lazy: heavy, rarely needed

    size = _num_params(model)
    if size > T.CURVATURE_MAX_PARAMS:
        return None, (
            f"curvature skipped: the model has {size} parameters (> {T.CURVATURE_MAX_PARAMS}); the Hessian checks "
            "(ill_conditioned, saddle_point) run on small models only."
        )
    if size < 2:
        return None, "curvature skipped: the model has fewer than 2 trainable parameters."
    x = inputs[: T.CURVATURE_EXAMPLES]
    y = targets[: T.CURVATURE_EXAMPLES] if isinstance(targets, torch.Tensor) else targets
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            report = curvature_report(model, loss_fn, x, y, k=1, max_iter=MAX_LANCZOS_ITER, generator=_generator(model))
        with hessian_operator(model, loss_fn, x, y) as operator:
            loss, gradient = operator.loss_and_gradient()
            g2 = float(gradient @ gradient)
            # the curvature along the gradient, g^T H g / ||g||^2: what a gradient step feels (one more product)
            along = float(gradient @ operator.matvec(gradient)) / g2 if g2 > 0 else None
    except Exception as error:  # a failed measurement becomes a note, never fatal to the diagnosis
        return None, f"curvature skipped: {type(error).__name__}: {error}"
    grad_norm = float(gradient.norm())
    if not all(math.isfinite(v) for v in (report.lambda_max, report.lambda_min, loss, grad_norm)):
        return None, "curvature skipped: the loss or its derivatives are not finite at the final parameters."
    return {
        "lambda_max": report.lambda_max,
        "lambda_min": report.lambda_min,
        "condition_number": report.condition_number,
        "positive_definite": report.positive_definite,
        "loss": loss,
        "grad_norm": grad_norm,
        "gradient_curvature": along if along is not None and math.isfinite(along) else None,
        "num_hvps": report.num_hvps,
        "converged": report.converged,
        "examples": int(x.shape[0]),
    }, None


def measure_noise_scale(
    model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: Any, batch_size: int | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """``{"b_simple", "stderr", "g2", "trace_sigma", "b_small", "b_big", "measurements"}`` from
    ``NOISE_MEASUREMENTS`` pairs of gradients over ``inputs`` (drawn with replacement), or a note."""
    from ..noise import gradient_noise_scale  # lazy

    if not isinstance(inputs, torch.Tensor) or inputs.shape[0] < 2 or not isinstance(targets, torch.Tensor):
        return None, "noise scale skipped: it needs an (inputs, targets) batch of at least 2 examples."
    try:
        scale = gradient_noise_scale(
            model,
            loss_fn,
            (inputs, targets),
            B_SMALL,
            B_BIG,
            num_batches=NOISE_MEASUREMENTS,
            generator=torch.Generator(device=inputs.device).manual_seed(0),
        )
    except Exception as error:  # reported as a note
        return None, f"noise scale skipped: {type(error).__name__}: {error}"
    return noise_numbers(scale, batch_size), None


def noise_numbers(scale: Any, batch_size: int | None, **extra: Any) -> dict[str, Any]:
    """The numbers of a :class:`deepbasics.noise.NoiseScale` estimate as the plain dict the detectors read."""
    return {
        "b_simple": scale.b_simple,
        "stderr": scale.stderr,
        "g2": scale.g2,
        "trace_sigma": scale.trace_sigma,
        "b_small": scale.b_small,
        "b_big": scale.b_big,
        "measurements": scale.num_measurements,
        "batch_size": batch_size,
        **extra,
    }
