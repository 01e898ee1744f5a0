"""The trace of the loss Hessian from Hessian-vector products (FAQ Q11, Q3.1): tr(H) = sum of its eigenvalues.

:func:`hessian_trace` meets a requested relative accuracy ``tol`` with probability ~``confidence`` by default
(Hutchinson on what a Lanczos sketch leaves, or the exact trace where that is cheaper: :mod:`.trace_adaptive`);
``method="hutch++"`` or ``"hutchinson"`` spend a fixed budget of ``num_queries`` products instead
(:mod:`.trace_fixed`). Every estimate reports its standard error and its cost in HVPs (:class:`TraceEstimate`).
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_choice, check_generator, fail
from .hvp import Data, LossFn, hessian_operator
from .trace_adaptive import DEFAULT_CONFIDENCE, DEFAULT_TRACE_TOL, adaptive_trace
from .trace_fixed import DEFAULT_NUM_QUERIES, TraceEstimate, exact_trace, trace_estimate

__all__ = [
    "TraceEstimate",
    "adaptive_trace",
    "exact_trace",
    "hessian_trace",
    "hessian_trace_estimate",
    "trace_estimate",
]


def hessian_trace_estimate(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Data,
    targets: object = None,
    *,
    method: str = "adaptive",
    tol: float | None = None,
    confidence: float | None = None,
    max_hvps: int | None = None,
    num_queries: int | None = None,
    generator: torch.Generator | None = None,
    train_mode: bool = False,
) -> TraceEstimate:
    """tr(H) of the mean loss's Hessian with its standard error and cost.

    Args:
        model, loss_fn, inputs, targets, train_mode: as in :func:`deepbasics.curvature.hessian_eigenvalues`.
        method: "adaptive" (default: relative error within ``tol`` with probability ~``confidence``, see the
            module docstring), or a fixed budget of ``num_queries`` products by "hutch++" (Meyer et al. 2021)
            or "hutchinson" (Rademacher probes).
        tol, confidence: the adaptive method's target (default 1e-2 and 0.9).
        max_hvps: the adaptive method's cap on products (default: none; it stays near P at most).
        num_queries: the fixed methods' products (default 90).
        generator: seeds the probes and the sketch's start vector.

    Returns:
        :class:`TraceEstimate` (value, stderr, num_hvps, method, converged, exact, sketch_size, num_samples).
    """
    check_choice(method, "method", ("adaptive", "hutch++", "hutchinson"))
    check_generator(generator)
    if method == "adaptive" and num_queries is not None:
        raise fail(
            ValueError,
            "num_queries",
            "None for method='adaptive' (it stops at tol)",
            num_queries,
            "Pass max_hvps to cap the adaptive method, or method='hutch++' for a fixed budget.",
        )
    if method != "adaptive" and (tol is not None or confidence is not None or max_hvps is not None):
        raise fail(
            ValueError,
            "tol/confidence/max_hvps",
            f"None for the fixed-budget method {method!r}",
            "a value",
            "Use method='adaptive' for an accuracy target, or num_queries for a budget.",
        )
    with hessian_operator(model, loss_fn, inputs, targets, train_mode=train_mode) as operator:
        common = {"dtype": operator.dtype, "device": operator.device, "generator": generator}
        if method == "adaptive":
            return adaptive_trace(
                operator.matvec,
                operator.dim,
                tol=DEFAULT_TRACE_TOL if tol is None else tol,
                confidence=DEFAULT_CONFIDENCE if confidence is None else confidence,
                max_matvecs=max_hvps,
                matmat=operator.matmat,
                **common,
            )
        return trace_estimate(
            operator.matvec,
            operator.dim,
            method=method,
            num_queries=DEFAULT_NUM_QUERIES if num_queries is None else num_queries,
            matmat=operator.matmat,
            **common,
        )


def hessian_trace(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Data,
    targets: object = None,
    *,
    method: str = "adaptive",
    tol: float | None = None,
    confidence: float | None = None,
    max_hvps: int | None = None,
    num_queries: int | None = None,
    generator: torch.Generator | None = None,
    train_mode: bool = False,
) -> float:
    """tr(H) of the mean loss's Hessian, the sum of its eigenvalues (the total curvature): by default within
    relative 1e-2 with probability ~0.9. The value of :func:`hessian_trace_estimate` (same arguments), which also
    gives the standard error and the cost.

    Example::

        tr = hessian_trace(model, nn.CrossEntropyLoss(), x, y, tol=1e-3)   # within 0.1% in ~90% of draws
    """
    return hessian_trace_estimate(
        model,
        loss_fn,
        inputs,
        targets,
        method=method,
        tol=tol,
        confidence=confidence,
        max_hvps=max_hvps,
        num_queries=num_queries,
        generator=generator,
        train_mode=train_mode,
    ).value
