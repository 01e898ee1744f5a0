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
  windows of recorded steps (FAQ Q3.3.d);
- ``exploding_gradient`` at the start (error): the run turned inf/nan and its first steps
  (:mod:`deepbasics.doctor.firststeps`) show explosive growth -- the untrained model's first backward gave a weight
  a gradient ``||dL/dW|| >= EXPLOSION_GRADIENT_RATIO * ||W||``, or its first forward grew the signal's RMS by
  ``EXPLOSION_FORWARD_GROWTH`` or more from one module call to a later one, or from one time step of a recurrent
  layer to a later one. The overflow is then the end of a geometric growth through depth or time, not an exp or a
  log of a value at the edge of its range (``naive_softmax``, ``nonfinite``), and not a learning rate that makes
  a sane first gradient overshoot (``diverging_loss``: its first step looks healthy). Limits: the evidence is the
  first forward and the first three backward passes only -- gradients that grow during training and overflow late
  are left to the growth-over-time rule (while finite) and to ``diverging_loss``; and a run that stays finite is
  never judged by this rule.
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

__all__ = [
    "exploding_at_start",
    "exploding_gradient",
    "gradient_profile",
    "vanishing_gradient",
    "vanishing_through_time",
]

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


def _as_float(value: object) -> float:
    """A recorded number; JSON keeps inf/nan as the strings "inf"/"nan"."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _largest_rise(values: Sequence[float]) -> tuple[float, int, int]:
    """``(max_{i<j} v_j / v_i, i, j)`` over the finite positive values (the strongest growth from an earlier point
    to a later one); ``(1.0, 0, 0)`` when there is none."""
    best, where, low, low_at = 1.0, (0, 0), math.inf, 0
    for j, v in enumerate(values):
        if not (math.isfinite(v) and v > 0):
            continue
        if low < math.inf and v / low > best:
            best, where = v / low, (low_at, j)
        if v < low:
            low, low_at = v, j
    return best, where[0], where[1]


def exploding_at_start(first_steps: Mapping[str, object], *, went_nonfinite: bool) -> list[Finding]:
    """``exploding_gradient`` (error) for a run that turned inf/nan after its first steps grew explosively (module
    docstring). ``first_steps``: ``RunTrace.first_steps``; ``went_nonfinite``: a loss, gradient or activation of the
    run was inf/nan."""
    if not went_nonfinite or not first_steps:
        return []
    evidence: dict[str, object] = {}
    reasons: list[str] = []
    where: list[str] = []  # where the signal grows first (modules), then the weights with the largest gradients
    weights: list[str] = []
    backwards = first_steps.get("backwards") or []
    if backwards:
        ratios = {}
        for name, (g, w) in dict(backwards[0]).items():
            g, w = _as_float(g), _as_float(w)
            if math.isfinite(g) and math.isfinite(w) and w > 0:
                ratios[name] = g / w
        big = {n: r for n, r in sorted(ratios.items(), key=lambda kv: -kv[1]) if r >= T.EXPLOSION_GRADIENT_RATIO}
        if big:
            top = next(iter(big))
            evidence["first_gradient_over_weight"] = big
            weights = list(big)[:3]
            reasons.append(f"the first gradient of {top} was {big[top]:.3g} times the weight's own norm")
    calls = [(str(k), _as_float(v)) for k, v in first_steps.get("forward") or []]
    rise, i, j = _largest_rise([v for _, v in calls])
    if rise >= T.EXPLOSION_FORWARD_GROWTH:
        evidence["forward_rms_growth"] = {"from": calls[i][0], "to": calls[j][0], "factor": rise}
        where.append(calls[j][0].split("#")[0])
        reasons.append(
            f"the first forward's output RMS grew {rise:.3g}-fold from {calls[i][0]} ({calls[i][1]:.3g}) to "
            f"{calls[j][0]} ({calls[j][1]:.3g})"
        )
    for call, per_step in dict(first_steps.get("time_steps") or {}).items():
        values = [_as_float(v) for v in per_step]
        rise, i, j = _largest_rise(values)
        if rise >= T.EXPLOSION_FORWARD_GROWTH:
            rate = rise ** (1.0 / (j - i))
            evidence.setdefault("time_step_rms_growth", {})[call] = {"from_step": i, "to_step": j, "factor": rise,
                                                                      "per_step": rate}  # fmt: skip
            where.append(call.split("#")[0])
            reasons.append(
                f"the output RMS of {call} grew {rise:.3g}-fold from time step {i} to {j} ({rate:.3g}x per step)"
            )
    if not reasons:
        return []
    detail = "The run turned inf/nan after explosive growth at its first steps: " + "; ".join(reasons) + "."
    where = list(dict.fromkeys(where + weights))
    return [make_finding("exploding_gradient", Severity.ERROR, tuple(where), evidence, detail=detail, step=0)]


def _run_went_nonfinite(trace: RunTrace) -> bool:
    """Whether a recorded loss, layer statistic or first-step norm is inf/nan."""
    if any(not math.isfinite(v) for _, v in trace.losses):
        return True
    for rec in trace.layers.values():
        for metric, values in rec.items():
            if metric != "step" and any(v is not None and not math.isfinite(_as_float(v)) for v in values):
                return True
    for rec in trace.first_steps.get("backwards") or []:
        if any(not math.isfinite(_as_float(v)) for pair in dict(rec).values() for v in pair):
            return True
    return bool(trace.static is not None and trace.static.nonfinite)


@detector("gradients", codes=("vanishing_gradient",), needs=("layers",))
def _vanishing_gradient(trace: RunTrace) -> list[Finding]:
    return vanishing_gradient(trace.layers, trace.order, trace.kinds)


@detector("gradients", codes=("vanishing_gradient",), needs=("recurrent", "losses"))
def _vanishing_through_time(trace: RunTrace) -> list[Finding]:
    return vanishing_through_time(trace.recurrent, pairs_series(trace.losses).values)


@detector("gradients", codes=("exploding_gradient",), needs=("layers",))
def _exploding_gradient(trace: RunTrace) -> list[Finding]:
    return exploding_gradient(trace.layers, trace.order, trace.kinds)


@detector("gradients", codes=("exploding_gradient",), needs=("first_steps",))
def _exploding_at_start(trace: RunTrace) -> list[Finding]:
    return exploding_at_start(trace.first_steps, went_nonfinite=_run_went_nonfinite(trace))
