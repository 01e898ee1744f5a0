"""Loss-curve detectors: nonfinite, diverging, oscillating, slow convergence, overfitting (FAQ Q8, Q11, Q3.1, Q10).

Each is a pure function of recorded losses -- a sequence of floats (step = index), ``(step, value)`` pairs or a
``{step: value}`` mapping -- returning a list of findings (empty when healthy). Rules compare window medians
and rank trends after the warm-up (see :mod:`._stats`), so single noisy small-batch losses, the fast fall of the
first steps and a learning-rate warm-up do not trigger them. Let ``L`` be the losses, ``w`` the window length
(10% of the trace, at least 5), ``L_0`` the initial loss ``min(L[0], median(L[:3]))``:

- ``nonfinite``: some ``L_t`` is inf/nan (error, at the first such step).
- ``diverging_loss``: the rolling median (window 3) reaches ``DIVERGENCE_FACTOR * L_0`` (the loss exploded), or
  the loss turned inf/nan after growing, or the last window's median exceeds both ``L_0`` and
  ``DIVERGENCE_RISE`` times the best window's median while the second half rises (Spearman rho >= 0.3).
- ``oscillating_loss``: over the second half, median |dL| / median L >= ``OSCILLATION_SWING`` while the loss has
  stalled (last quarter >= ``STALL_RATIO`` x third quarter) and stays high (>= ``OSCILLATION_HIGH`` x L_0).
- ``slow_convergence``: at least ``SLOW_MIN_POINTS`` losses, the last window's median is above ``LOSS_FLOOR``
  and more than ``(1 - SLOW_PROGRESS)`` times the first window's median.
- ``overfitting``: the validation loss rose from its minimum, sustained, while the training loss kept falling
  (Prechelt, "Early stopping -- but when?", 1998, sec. 2.2; rule and limits in :func:`overfitting`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

from .. import thresholds as T
from ..explain import make_finding
from ..findings import Finding, Severity
from ..records import RunTrace
from ._stats import (
    as_series,
    finite_prefix,
    median,
    pairs_series,
    rolling_median,
    spearman,
    warmup_length,
    window_length,
)
from .registry import detector

__all__ = [
    "diverging_loss",
    "initial_loss",
    "located_nonfinite",
    "nonfinite",
    "oscillating_loss",
    "overfitting",
    "slow_convergence",
]

LossTrace = Sequence[float] | Sequence[tuple[int, float]] | Mapping[int, float]


def initial_loss(values: Sequence[float]) -> float:
    """``L_0 = min(L[0], median(L[:3]))``: the untrained model's loss, robust to one exploded second step."""
    head = finite_prefix(values[:3])
    if not head:
        return math.nan
    return min(head[0], median(head))


def nonfinite(
    losses: LossTrace = (),
    layers: Mapping[str, Mapping[str, Sequence[float | None]]] | None = None,
    order: Sequence[str] | None = None,
) -> list[Finding]:
    """Error at the first inf/nan loss, and at the first layer (input side first) whose recorded gradient norm,
    weight norm or activation statistics contain inf/nan. ``layers`` is ``LayerStats.records()``."""
    out: list[Finding] = []
    series = as_series(losses)
    bad = [(s, v) for s, v in zip(series.steps, series.values, strict=True) if not math.isfinite(v)]
    if bad:
        step, value = bad[0]
        out.append(
            make_finding(
                "nonfinite",
                Severity.ERROR,
                ("loss",),
                {"first_step": step, "value": value, "nonfinite_losses": len(bad), "losses": len(series)},
                detail=f"The loss was {value} at step {step} ({len(bad)} of {len(series)} recorded losses).",
                step=step,
            )
        )
    for name in order or list(layers or {}):
        rec = (layers or {}).get(name, {})
        steps = rec.get("step", [])
        for metric in ("grad_norm", "weight_norm", "act_mean", "act_std"):
            for i, value in enumerate(rec.get(metric, [])):
                if value is not None and not math.isfinite(value):
                    step = steps[i] if i < len(steps) else None
                    out.append(
                        make_finding(
                            "nonfinite",
                            Severity.ERROR,
                            (name,),
                            {"metric": metric, "value": value, "first_step": step},
                            detail=f"{metric} of {name} was {value} at step {step}.",
                            step=step,
                        )
                    )
                    return out  # the input-most layer is where to look first
    return out


def diverging_loss(losses: LossTrace, *, rising: bool = True) -> list[Finding]:
    """``diverging_loss`` (error) when the loss explodes or keeps rising; see the module docstring. ``rising=False``
    checks the explosion only (the loss of a model trained against another may rise back legitimately)."""
    series = as_series(losses)
    values = series.values
    prefix = finite_prefix(values)
    l0 = initial_loss(values)
    if not math.isfinite(l0) or l0 <= 0:
        return []
    went_nonfinite = len(prefix) < len(values)
    rolled = rolling_median(prefix, 3) if len(prefix) >= 3 else []
    peak = max(rolled, default=max(prefix, default=l0))
    evidence: dict[str, object] = {"initial_loss": l0, "peak_median_loss": peak}
    if peak >= T.DIVERGENCE_FACTOR * l0 or (went_nonfinite and len(prefix) >= 2 and prefix[-1] > prefix[0]):
        step = series.steps[next((i for i, v in enumerate(values) if not v <= T.DIVERGENCE_FACTOR * l0), 0)]
        if went_nonfinite:
            evidence["nonfinite_at_step"] = series.steps[len(prefix)]
        detail = f"The loss grew from {l0:.4g} to a running median of {peak:.4g}" + (
            " and then became non-finite." if went_nonfinite else "."
        )
        return [make_finding("diverging_loss", Severity.ERROR, ("loss",), evidence, detail=detail, step=step)]
    if len(prefix) < T.MIN_LOSS_POINTS or not rising:
        return []
    w = window_length(len(prefix))
    body = prefix[warmup_length(len(prefix)) :]
    if len(body) < w:
        return []
    windows = rolling_median(body, w, limit=T.MAX_TREND_WINDOWS)
    best, last = min(windows), windows[-1]
    rho = spearman(body[len(body) // 2 :])
    if last > l0 and last > T.DIVERGENCE_RISE * best and rho >= T.RISING_TREND:
        evidence.update({"best_median_loss": best, "last_median_loss": last, "trend_rho": rho})
        detail = f"The loss fell to {best:.4g} and has risen back to {last:.4g}, above its initial {l0:.4g}."
        stride = max(1, math.ceil((len(body) - w + 1) / T.MAX_TREND_WINDOWS))
        start = min(windows.index(best) * stride, len(body) - w)
        step = series.steps[warmup_length(len(prefix)) + start + w - 1]
        return [make_finding("diverging_loss", Severity.ERROR, ("loss",), evidence, detail=detail, step=step)]
    return []


def _swing(values: Sequence[float]) -> float:
    """median |L_t - L_{t-1}| / median L: the typical step-to-step jump relative to the loss level."""
    level = median(values)
    if level <= 0 or len(values) < 2:
        return 0.0
    return median([abs(b - a) for a, b in itertools.pairwise(values)]) / level


def oscillating_loss(losses: LossTrace) -> list[Finding]:
    """``oscillating_loss`` (warning): big jumps, no trend, loss still high; see the module docstring."""
    series = as_series(losses)
    values = finite_prefix(series.values)
    if len(values) < 2 * T.MIN_LOSS_POINTS or diverging_loss(values if len(values) < len(series) else series):
        return []
    l0 = initial_loss(values)
    half = values[len(values) // 2 :]
    quarter = len(half) // 2
    third_q, last_q = half[:quarter], half[quarter:]
    swing = _swing(half)
    stall = median(last_q) / median(third_q) if median(third_q) > 0 else 0.0
    level = median(half)
    if swing >= T.OSCILLATION_SWING and stall >= T.STALL_RATIO and level >= T.OSCILLATION_HIGH * l0:
        evidence = {"relative_swing": swing, "stall_ratio": stall, "median_loss": level, "initial_loss": l0}
        detail = (
            f"Over the second half the loss jumps by {100 * swing:.0f}% of its level from step to step while "
            f"staying at {level:.4g} ({100 * level / l0:.0f}% of the initial {l0:.4g})."
        )
        return [
            make_finding(
                "oscillating_loss",
                Severity.WARNING,
                ("loss",),
                evidence,
                detail=detail,
                step=series.steps[len(series.steps) // 2],
            )
        ]
    return []


def slow_convergence(losses: LossTrace, *, update_ratio: float | None = None) -> list[Finding]:
    """``slow_convergence`` (warning): less than ``SLOW_PROGRESS`` relative decrease over the budget.

    ``update_ratio`` (optional): the median ||dw|| / ||w|| per step, reported as evidence (values far below
    1e-3 point at a learning rate that is too small).
    """
    series = as_series(losses)
    values = finite_prefix(series.values)
    if len(values) < T.SLOW_MIN_POINTS or len(values) < len(series.values):
        return []
    w = window_length(len(values))
    start, end = median(values[:w]), median(values[-w:])
    if end <= T.LOSS_FLOOR or start <= 0:
        return []
    progress = (start - end) / start
    if progress >= T.SLOW_PROGRESS:
        return []
    evidence: dict[str, object] = {
        "first_median_loss": start,
        "last_median_loss": end,
        "relative_decrease": progress,
        "losses": len(values),
    }
    if update_ratio is not None:
        evidence["median_update_ratio"] = update_ratio
    detail = f"In {len(values)} steps the loss went from {start:.4g} to {end:.4g} ({100 * progress:+.1f}%)."
    if update_ratio is not None and update_ratio < 1e-4:
        detail += f" Each step changes the weights by only {update_ratio:.2g} of their norm."
    return [make_finding("slow_convergence", Severity.WARNING, ("loss",), evidence, detail=detail)]


def overfitting(train_losses: LossTrace, val_losses: LossTrace) -> list[Finding]:
    """``overfitting`` (warning): the validation loss rose from its minimum, sustained, while the training loss fell.

    With ``E`` the validation losses (usually sparse ``(step, value)`` pairs), ``E_min`` at point ``b``, ``E_now``
    the median of the last two points and Prechelt's generalization loss ``GL = 100 (E_now / E_min - 1)``
    (Prechelt 1998, sec. 2.2), every finding needs

    - a minimum in the first three quarters of the curve with at least ``OVERFIT_MIN_AFTER`` points after it (a
      rise that lasted, not the last wiggle), and
    - the training loss lower now than when the validation loss was best (the generalization gap widened: the model
      fits the training set better and the validation set worse; a training loss that stalls or rises too is
      another problem),

    and then one of two shapes:

    - **large**: ``GL >= OVERFIT_GL`` -- the validation loss at least doubled -- and the rise is significant,
      ``(E_now - E_min) / median |E_t - E_{t-1}|_{t > b} >= OVERFIT_SIGNIFICANCE`` (a signal-to-noise test);
    - **steady**: at least ``OVERFIT_STEADY_POINTS`` validation points after the minimum, rising with time in rank
      order, Spearman ``rho(E_b, ..., E_now) >= OVERFIT_STEADY_RHO``, and ``GL >= GENERALIZATION_LOSS`` (his GL_5).
      This is Prechelt's ``UP_s`` (``s`` successive increases of the validation loss) made robust to a single dip
      of a noisy curve: ``rho = 1`` is ``UP_s`` over every point since the minimum. The rise must also go on: the
      second half of the points since the minimum holds at least ``OVERFIT_STILL_RISING`` of it (a curve that rose a
      little and went flat when a schedule cut the learning rate to ~0 has rho ~1 too).

    Why not GL_5 alone: Prechelt's criteria decide *when to stop*, not whether a run is broken. Healthy runs of the
    corpus (validated every epoch on 30-120 examples, cross-entropy) end 18-45% above their best validation loss
    with a significant rise, as a classifier that is already right grows more confident on the few examples it gets
    wrong; the broken ones (memorized noise) double or more, or creep up at every evaluation for dozens of points.
    The measured populations are in :mod:`deepbasics.doctor.thresholds`.

    Limits: a mild rise (below 2x) over fewer than ``OVERFIT_STEADY_POINTS`` validation points, or a noisy one
    (rank correlation below ``OVERFIT_STEADY_RHO``), is not reported even when it is real overfitting; a smooth rise
    over fewer than ~``OVERFIT_SIGNIFICANCE`` points is not significant by construction (its median step is about
    the rise divided by the number of points); nor is a rise seen at fewer than ``MIN_VAL_POINTS`` validation
    points, or one that begins in the last quarter of the run. Prechelt's progress quotient PQ (GL over the
    training progress within a strip) is not used: the training losses of an unmodified script are mini-batch losses,
    whose noise swamps the progress term.
    """
    val = as_series(val_losses, "val_losses")
    train = as_series(train_losses, "train_losses")
    if len(val) < T.MIN_VAL_POINTS or not all(math.isfinite(v) for v in val.values):
        return []
    best_i = min(range(len(val)), key=lambda i: val.values[i])
    best, best_step = val.values[best_i], val.steps[best_i]
    current = val.values[-1] if len(val) < 3 else median(val.values[-2:])  # two last points: not one fluke
    after = len(val) - 1 - best_i
    if best <= 0 or after < T.OVERFIT_MIN_AFTER or best_i > 0.75 * (len(val) - 1):
        return []
    gl = 100.0 * (current / best - 1.0)
    since = val.values[best_i:]
    wander = median([abs(b - a) for a, b in itertools.pairwise(since)])
    significance = (current - best) / wander if wander > 0 else math.inf
    trend = spearman(since)
    late = (current - since[len(since) // 2]) / (current - best) if current > best else 0.0
    large = gl >= T.OVERFIT_GL and significance >= T.OVERFIT_SIGNIFICANCE
    steady = (
        after >= T.OVERFIT_STEADY_POINTS
        and trend >= T.OVERFIT_STEADY_RHO
        and gl >= T.GENERALIZATION_LOSS
        and late >= T.OVERFIT_STILL_RISING
    )
    if not (large or steady):
        return []
    finite_train = [(s, v) for s, v in zip(train.steps, train.values, strict=True) if math.isfinite(v)]
    if len(finite_train) >= 2 * T.WINDOW_MIN_POINTS:
        w = window_length(len(finite_train))
        at_best = [v for s, v in finite_train if s <= best_step][-w:]
        now = [v for _, v in finite_train][-w:]
        if at_best and median(now) >= median(at_best):
            return []  # the training loss is not falling: this is not the overfitting signature
        train_then, train_now = (median(at_best) if at_best else None), median(now)
    else:
        train_then, train_now = None, None
    evidence = {
        "best_val_loss": best,
        "best_val_step": best_step,
        "last_val_loss": current,
        "generalization_loss_percent": gl,
        "rise_over_noise": significance,
        "rise_rank_trend": trend,
        "late_rise_fraction": late,
        "points_since_best": after,
        "train_loss_at_best": train_then,
        "train_loss_now": train_now,
    }
    detail = (
        f"The validation loss was lowest ({best:.4g}) at step {best_step} and is now {current:.4g} "
        f"(+{gl:.0f}%"
        + (f", rising steadily over the {after} evaluations since, rank correlation {trend:.2f})" if steady else ")")
        + (f" while the training loss fell to {train_now:.4g}." if train_now is not None else ".")
    )
    return [make_finding("overfitting", Severity.WARNING, ("validation",), evidence, detail=detail, step=best_step)]


# ------------------------------------------------------------------------------------------------ registered


def located_nonfinite(report: Mapping[str, object]) -> Finding:
    """``nonfinite`` at the op and module where :func:`deepbasics.nonfinite.locate_nonfinite` found the first
    inf/nan (``report``: its ``to_dict()`` plus the ``step``); it says more than the recorded symptoms."""
    step = report.get("step")
    module, op = report.get("module"), report.get("op")
    where = str(module or op)
    detail = (
        f"At step {step}, {op} ({report.get('phase')}) "
        + ("produced inf/nan from finite inputs" if report.get("kind") == "produced" else "received a non-finite input")
        + f" in {module or 'code outside any module'}."
        + (f" Hint: {report['hint']}." if report.get("hint") else "")
    )
    keys = ("op", "phase", "kind", "module", "backward_of", "step")
    return make_finding("nonfinite", Severity.ERROR, (where,), {k: report.get(k) for k in keys}, detail=detail,
                        step=step if isinstance(step, int) else None)  # fmt: skip


@detector("loss", codes=("nonfinite",))
def _nonfinite(trace: RunTrace) -> list[Finding]:
    located = trace.static.nonfinite if trace.static is not None else None
    if located:
        return [located_nonfinite(located)]
    return nonfinite(pairs_series(trace.losses), trace.layers, trace.order)


@detector("loss", codes=("diverging_loss",), needs=("losses",))
def _diverging_loss(trace: RunTrace) -> list[Finding]:
    """An adversarial model's loss may rise back as its opponent improves: only an explosion counts there."""
    return diverging_loss(pairs_series(trace.losses), rising=not trace.adversarial)


@detector("loss", codes=("oscillating_loss",), needs=("losses",))
def _oscillating_loss(trace: RunTrace) -> list[Finding]:
    """Not for adversarial models: a two-player game's losses hover at an equilibrium by design."""
    return [] if trace.adversarial else oscillating_loss(pairs_series(trace.losses))


@detector("loss", codes=("slow_convergence",), needs=("losses",))
def _slow_convergence(trace: RunTrace) -> list[Finding]:
    """Not for adversarial models: at a game's equilibrium neither loss falls (a GAN's discriminator at 2 log 2)."""
    if trace.adversarial:
        return []
    return slow_convergence(pairs_series(trace.losses), update_ratio=trace.update_ratio())


@detector("loss", codes=("overfitting",), needs=("losses", "val_losses"))
def _overfitting(trace: RunTrace) -> list[Finding]:
    return overfitting(pairs_series(trace.losses), pairs_series(trace.val_losses))
