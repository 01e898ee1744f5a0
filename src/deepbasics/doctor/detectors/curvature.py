"""Curvature detectors: ill-conditioning and saddle points (FAQ Q3.1, Q3.2).

Inputs are the numbers of :func:`deepbasics.curvature.curvature_report` (``lambda_max``, ``lambda_min``,
``positive_definite``; a report object or a mapping with those keys) plus the loss ``L`` and gradient norm
``||g||`` at the same parameters and, for saddles, the loss trace.

- ``ill_conditioned`` (warning). The FAQ's condition number is ``kappa = lambda_max / lambda_min``. With no
  resolved negative eigenvalue, ``kappa`` is that ratio with ``lambda_min`` floored at the Lanczos resolution
  ``FLAT_EIG_RTOL * lambda_max`` (so a flat bottom reads as kappa >= 1e3); with negative eigenvalues the Hessian
  has no condition number and the spread ``lambda_max / |lambda_min|`` measures how much steeper the steepest
  direction is than the most curved descent direction. Either above its threshold *and* ``lambda_max >=
  ILL_CONDITIONED_LAMBDA_MAX``: a flat spectrum at small curvature is a symmetry (the redundant direction of a
  softmax), which gradient descent does not feel. And, given the run's losses, only when the loss has stalled:
  relative progress over the last half below ``ILL_CONDITIONED_STALL``. Every trained network's Hessian has a
  near-flat bottom or small negative eigenvalues, so the ratio alone cannot tell a healthy run (held-out LSTM
  and ReLU regressor: spreads 145-871) from a broken one; what ill-conditioning does to gradient descent is stall
  it on the flat directions (FAQ Q3.1), and that is what the loss shows.
- ``saddle_point`` (warning). Second-order test (Dauphin et al. 2014, sec. 2): significant negative curvature
  ``lambda_min < -SADDLE_NEGATIVE_RTOL * lambda_max``, a gradient that gains little compared with it,
  ``||g||^2 / (|lambda_min| L) < SADDLE_GRADIENT_RATIO`` (a gradient step of size 1/lambda gains ~||g||^2 / lambda,
  dimensionless once divided by L), and a stalled loss (relative progress over the last half below
  ``SADDLE_STALL``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .. import thresholds as T
from ..explain import make_finding
from ..findings import Finding, Severity
from ..records import RunTrace
from ._stats import as_series, finite_prefix, median, pairs_series, window_length
from .registry import detector

__all__ = ["curvature_numbers", "ill_conditioned", "saddle_point"]

#: Lanczos resolution: eigenvalues within this fraction of lambda_max have no reliable sign
#: (``deepbasics.curvature.FLAT_EIG_RTOL``; repeated here so the detector stays a pure function).
FLAT_RTOL = 1e-3


def curvature_numbers(report: Any) -> dict[str, float]:
    """``lambda_max``, ``lambda_min`` (floats) from a CurvatureReport or a mapping."""
    get = report.get if isinstance(report, Mapping) else lambda k, d=None: getattr(report, k, d)
    return {"lambda_max": float(get("lambda_max")), "lambda_min": float(get("lambda_min"))}


def recent_progress(losses: Any) -> float | None:
    """Relative progress of the loss over the last half of the run, ``(start - end) / start`` of its first and
    last robust windows; None when the trace is too short to tell."""
    values = finite_prefix(as_series(losses).values)
    if len(values) < 2 * T.WINDOW_MIN_POINTS:
        return None
    half = values[len(values) // 2 :]
    w = min(window_length(len(values)), len(half) // 2)
    start, end = median(half[:w]), median(half[-w:])
    return (start - end) / start if start > 0 else 0.0


def ill_conditioned(report: Any, *, where: Sequence[str] = ("model",), losses: Any = None) -> list[Finding]:
    """``ill_conditioned`` from the extreme Hessian eigenvalues (see the module docstring); with the run's
    ``losses``, only when the loss has stalled (``ILL_CONDITIONED_STALL``)."""
    nums = curvature_numbers(report)
    lam_max, lam_min = nums["lambda_max"], nums["lambda_min"]
    if not (math.isfinite(lam_max) and math.isfinite(lam_min)) or lam_max < T.ILL_CONDITIONED_LAMBDA_MAX:
        return []
    progress = recent_progress(losses) if losses is not None else None
    if progress is not None and progress >= T.ILL_CONDITIONED_STALL:
        return []  # the run still learns: the spread of curvatures is not what holds it back
    band = FLAT_RTOL * lam_max
    if lam_min >= -band:
        flat = lam_min < band  # unresolved: kappa is at least 1 / FLAT_RTOL (exactly, not up to rounding)
        kappa = 1.0 / FLAT_RTOL if flat else lam_max / lam_min
        if kappa < T.ILL_CONDITIONED_KAPPA:
            return []
        evidence = {"lambda_max": lam_max, "lambda_min": lam_min, "condition_number_at_least": kappa,
                    "recent_relative_progress": progress}  # fmt: skip
        bound = "at least " if flat else ""
        detail = f"The Hessian's condition number is {bound}{kappa:.3g} (lambda_max {lam_max:.4g})."
    else:
        spread = lam_max / -lam_min
        if spread < T.ILL_CONDITIONED_SPREAD:
            return []
        evidence = {"lambda_max": lam_max, "lambda_min": lam_min, "curvature_spread": spread,
                    "recent_relative_progress": progress}  # fmt: skip
        detail = (
            f"The steepest Hessian direction (lambda_max {lam_max:.4g}) is {spread:.3g} times more curved than the "
            f"most negative one ({lam_min:.4g})."
        )
    return [make_finding("ill_conditioned", Severity.WARNING, where, evidence, detail=detail)]


def saddle_point(
    report: Any, *, loss: float, grad_norm: float, losses: Sequence[float] | None = None, at: str = "the end"
) -> list[Finding]:
    """``saddle_point`` when the loss stalls with a small gradient and significant negative curvature.

    Without ``losses`` the stall is not checked: use it for the starting point of a run (``at="initialization"``),
    where a tiny gradient next to negative curvature of the same size as the positive one already means the
    run starts on a saddle (healthy initializations have ``||g||^2 / (|lambda_min| L)`` of order 0.1-1)."""
    nums = curvature_numbers(report)
    lam_max, lam_min = nums["lambda_max"], nums["lambda_min"]
    scale = max(abs(lam_max), abs(lam_min))
    if not math.isfinite(scale) or scale == 0 or not math.isfinite(loss) or loss <= 0:
        return []
    if lam_min >= -T.SADDLE_NEGATIVE_RTOL * max(lam_max, 0.0) or lam_min >= -FLAT_RTOL * scale:
        return []
    gain = grad_norm**2 / (abs(lam_min) * loss)
    if gain >= T.SADDLE_GRADIENT_RATIO:
        return []
    progress = recent_progress(losses) if losses is not None else None
    if progress is not None and progress >= T.SADDLE_STALL:
        return []
    evidence = {
        "lambda_max": lam_max,
        "lambda_min": lam_min,
        "grad_norm": grad_norm,
        "loss": loss,
        "gradient_gain_ratio": gain,
        "recent_relative_progress": progress,
        "at": at,
    }
    detail = (
        f"At {at} the gradient norm is {grad_norm:.3g} while the Hessian has eigenvalues from {lam_min:.4g} to "
        f"{lam_max:.4g}: the loss ({loss:.4g}) sits on a saddle."
    )
    return [make_finding("saddle_point", Severity.WARNING, ("model",), evidence, detail=detail)]


@detector("curvature", codes=("ill_conditioned",), needs=("curvature",))
def _ill_conditioned(trace: RunTrace) -> list[Finding]:
    return ill_conditioned(trace.curvature, losses=pairs_series(trace.losses) if trace.losses else None)


@detector("curvature", codes=("saddle_point",))
def _saddle_point(trace: RunTrace) -> list[Finding]:
    """At the start (``curvature_start``: a run can begin on a saddle and leave it slowly) and at the end."""
    out: list[Finding] = []
    start = trace.curvature_start
    if start and "loss" in start and "grad_norm" in start:
        out += saddle_point(start, loss=start["loss"], grad_norm=start["grad_norm"], at="initialization")
    end = trace.curvature
    if end and "loss" in end and "grad_norm" in end:
        losses = pairs_series(trace.losses) if trace.losses else None
        out += saddle_point(end, loss=end["loss"], grad_norm=end["grad_norm"], losses=losses)
    return out  # both: one finding after the merge, with the end's evidence
