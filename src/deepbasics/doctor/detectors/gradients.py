"""Gradient detectors: vanishing and exploding gradients (FAQ Q3.3).

Input: ``records`` as returned by :meth:`deepbasics.probe.LayerStats.records` (``{layer: {"step": [...],
metric: [value or None per recorded step]}}``), ``order`` the layers from input to output
(``LayerStats.layer_order``) and ``kinds`` a ``{layer: kind}`` map in which weight layers (Linear, Conv, ...: a
>= 2-D weight) have kind ``"matrix"`` (see :func:`deepbasics.doctor.trace.layer_kinds`).

With ``g_l`` the median over the recorded steps of layer ``l``'s gradient norm ||dL/dW_l||, first and last the
input-most and output-most weight layers:

- ``vanishing_gradient`` (warning): ``g_first / g_last < VANISHING_RATIO`` -- the FAQ's Q3.3.a: the gradient
  shrinks exponentially from the output towards the input (AUTOTRAINER, Zhang et al. ICSE 2021, uses the same
  first/last ratio; Glorot & Bengio 2010 fig. 7 plot it per layer);
- ``vanishing_gradient`` through time (warning): a recurrent layer whose first input reaches its last state
  ``VANISHING_RATIO`` times less than its last input does (:mod:`deepbasics.doctor.recurrent`) *and* a loss that
  stalled (the ``slow_convergence`` rule: less than ``SLOW_PROGRESS`` relative decrease). Gated layers that learned
  to forget what the task does not need also show a small ratio; only together with a stalled loss is it the reason
  the model does not learn;
- ``exploding_gradient`` (warning; error with inf/nan gradients elsewhere): ``g_first / g_last > EXPLODING_RATIO``,
  or a layer whose median update ||dW|| / ||W|| exceeds ``EXPLODING_UPDATE_RATIO`` (each step moves the layer by
  more than its own size), or the total gradient norm grows by ``GRADIENT_GROWTH`` between the first and last
  windows of recorded steps (FAQ Q3.3.d).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from .. import thresholds as T
from ..explain import make_finding
from ..findings import Finding, Severity
from ..records import RunTrace
from ._stats import finite_prefix, median, pairs_series, present, window_length
from .registry import detector

__all__ = ["exploding_gradient", "gradient_profile", "vanishing_gradient", "vanishing_through_time"]

Records = Mapping[str, Mapping[str, Sequence[float | None]]]


def gradient_profile(records: Records, order: Sequence[str], kinds: Mapping[str, str]) -> list[tuple[str, float]]:
    """``[(layer, median gradient norm)]`` for the weight layers, input side first. A layer needs
    ``MIN_LAYER_RECORDS`` finite gradient norms, or all the recorded steps when the run recorded fewer (a run that
    died after one step still shows its first gradients)."""
    needed = _needed(records)
    out = []
    for name in order:
        if kinds.get(name) != "matrix":
            continue
        values = present(records.get(name, {}).get("grad_norm", []))
        if len(values) >= needed:
            out.append((name, median(values)))
    return out


def _needed(records: Records, metric: str = "grad_norm") -> int:
    """MIN_LAYER_RECORDS, or fewer when no layer has that many values of ``metric`` (a run that died early)."""
    most = max((len(present(rec.get(metric, []))) for rec in records.values()), default=0)
    return max(1, min(T.MIN_LAYER_RECORDS, most))


def _ratio(profile: list[tuple[str, float]]) -> float | None:
    if len(profile) < 2:
        return None
    (_, first), (_, last) = profile[0], profile[-1]
    if last == 0:
        return None if first == 0 else math.inf
    return first / last


def vanishing_gradient(records: Records, order: Sequence[str], kinds: Mapping[str, str]) -> list[Finding]:
    """``vanishing_gradient`` when the input-side gradient is ``VANISHING_RATIO`` times the output-side one or less."""
    profile = gradient_profile(records, order, kinds)
    ratio = _ratio(profile)
    if ratio is None or ratio >= T.VANISHING_RATIO:
        return []
    (first, g_first), (last, g_last) = profile[0], profile[-1]
    small = [name for name, g in profile if g < T.VANISHING_RATIO * g_last]
    evidence = {
        "gradient_ratio": ratio,
        "first_layer_grad_norm": g_first,
        "last_layer_grad_norm": g_last,
        "grad_norm_by_layer": dict(profile),
    }
    detail = (
        f"The median gradient norm of {first} is {g_first:.3g}, {ratio:.2g} times that of {last} ({g_last:.3g}); "
        f"{len(small)} of {len(profile)} weight layers are below {T.VANISHING_RATIO:g} of the output layer's."
    )
    return [make_finding("vanishing_gradient", Severity.WARNING, small or (first,), evidence, detail=detail)]


def vanishing_through_time(recurrent: Mapping[str, Mapping[str, float]], losses: Sequence[float]) -> list[Finding]:
    """``vanishing_gradient`` at the recurrent layers whose through-time ratio is below ``VANISHING_RATIO``, when the
    loss stalled (module docstring). ``recurrent``: ``RunTrace.recurrent``; ``losses``: the training losses."""
    values = finite_prefix(list(losses))
    if len(values) < T.SLOW_MIN_POINTS:
        return []
    w = window_length(len(values))
    start, end = median(values[:w]), median(values[-w:])
    progress = (start - end) / start if start > 0 else 0.0
    if progress >= T.SLOW_PROGRESS or end <= T.LOSS_FLOOR:
        return []
    small = {name: r for name, r in recurrent.items() if r.get("ratio") is not None and r["ratio"] < T.VANISHING_RATIO}
    if not small:
        return []
    name = min(small, key=lambda n: small[n]["ratio"])
    ratio, steps = small[name]["ratio"], small[name]["steps"]
    evidence = {
        "through_time_ratio_by_layer": {n: r["ratio"] for n, r in small.items()},
        "sequence_steps": steps,
        "loss_relative_decrease": progress,
    }
    detail = (
        f"Over {steps} steps, the gradient of {name}'s last state reaches its first input {ratio:.2g} times as "
        f"strongly as its last input, and the loss fell by only {100 * progress:.1f}%: what happened early in a "
        "sequence cannot be learned."
    )
    return [make_finding("vanishing_gradient", Severity.WARNING, tuple(small), evidence, detail=detail)]


def exploding_gradient(records: Records, order: Sequence[str], kinds: Mapping[str, str]) -> list[Finding]:
    """``exploding_gradient`` by the first/last ratio, by update size or by growth over time (module docstring)."""
    profile = gradient_profile(records, order, kinds)
    ratio = _ratio(profile)
    evidence: dict[str, object] = {"grad_norm_by_layer": dict(profile)}
    reasons: list[str] = []
    where: list[str] = []
    if ratio is not None and ratio > T.EXPLODING_RATIO:
        (first, g_first), (last, g_last) = profile[0], profile[-1]
        evidence["gradient_ratio"] = ratio
        where += [name for name, g in profile if g > T.EXPLODING_RATIO * g_last] or [first]
        reasons.append(f"the gradient norm of {first} ({g_first:.3g}) is {ratio:.3g} times that of {last}")
    big_updates = {}
    for name in order:
        if kinds.get(name) != "matrix":
            continue
        values = present(records.get(name, {}).get("update_ratio", []))
        if len(values) >= _needed(records, "update_ratio") and median(values) > T.EXPLODING_UPDATE_RATIO:
            big_updates[name] = median(values)
    if big_updates:
        evidence["update_ratio_by_layer"] = big_updates
        where += [n for n in big_updates if n not in where]
        worst = max(big_updates, key=big_updates.__getitem__)
        reasons.append(f"each step changes {worst} by {big_updates[worst]:.3g} times its norm")
    totals = _total_grad_norms(records, order, kinds)
    if len(totals) >= 2 * T.MIN_LAYER_RECORDS:
        k = max(T.MIN_LAYER_RECORDS, len(totals) // 5)
        first_w, last_w = median(totals[:k]), median(totals[-k:])
        if first_w > 0 and last_w / first_w > T.GRADIENT_GROWTH:
            evidence["gradient_growth"] = last_w / first_w
            reasons.append(f"the total gradient norm grew {last_w / first_w:.3g}-fold during training")
            where = where or [name for name, _ in profile[:1]]
    if not reasons:
        return []
    detail = "Gradients explode: " + "; ".join(reasons) + "."
    return [make_finding("exploding_gradient", Severity.WARNING, where or ("model",), evidence, detail=detail)]


def _total_grad_norms(records: Records, order: Sequence[str], kinds: Mapping[str, str]) -> list[float]:
    """sqrt(sum_l ||g_l||^2) per recorded step over the weight layers (steps where all are present and finite)."""
    columns = [records.get(n, {}).get("grad_norm", []) for n in order if kinds.get(n) == "matrix"]
    if not columns:
        return []
    out = []
    for row in zip(*columns, strict=False):
        if all(v is not None and math.isfinite(v) for v in row):
            out.append(math.sqrt(sum(v * v for v in row)))
    return out


@detector("gradients", codes=("vanishing_gradient",), needs=("layers",))
def _vanishing_gradient(trace: RunTrace) -> list[Finding]:
    return vanishing_gradient(trace.layers, trace.order, trace.kinds)


@detector("gradients", codes=("vanishing_gradient",), needs=("recurrent", "losses"))
def _vanishing_through_time(trace: RunTrace) -> list[Finding]:
    return vanishing_through_time(trace.recurrent, pairs_series(trace.losses).values)


@detector("gradients", codes=("exploding_gradient",), needs=("layers",))
def _exploding_gradient(trace: RunTrace) -> list[Finding]:
    return exploding_gradient(trace.layers, trace.order, trace.kinds)
