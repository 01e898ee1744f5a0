"""Activation detectors: dead ReLUs and saturated sigmoid/tanh units (FAQ Q15, Q3.3).

Input as in :mod:`.gradients`: ``records`` from :meth:`deepbasics.probe.LayerStats.records`, ``order`` input to
output, ``kinds`` with ``"relu"`` for ReLU-type modules whose units can die (ReLU, ReLU6) and ``"bounded"`` for
saturating ones (Sigmoid, Tanh, Hardtanh, Softsign, Hardsigmoid).

Per layer, over the last third of the recorded steps (at least ``MIN_LAYER_RECORDS``), the current state of the
network rather than its start:

- ``dead_relu``: median ``dead_frac`` (units zero for every example of the batch; Lu et al. 2019, "Dying ReLU
  and initialization", sec. 1) >= ``DEAD_RELU_FRACTION`` (error from ``DEAD_RELU_ERROR_FRACTION``: nothing passes);
  with batches of fewer than ``DEAD_RELU_MIN_BATCH`` examples a live unit is often zero on the whole batch by
  chance, so ``DEAD_RELU_SMALL_BATCH_FRACTION`` is needed;
- ``saturated_activation``: median ``sat_frac`` (outputs within ``sat_tol`` of a bound) or ``preact_large_frac``
  (|z| > 5, sigma'(5) = 0.0066) >= ``SATURATION_FRACTION``, for hidden layers only: a sigmoid at the model's
  output is *meant* to be confident once trained, so the output activation is left to the loss checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .. import thresholds as T
from ..explain import make_finding
from ..findings import Finding, Severity
from ..records import RunTrace
from ._stats import median, present
from .registry import detector

__all__ = ["dead_relu", "recent", "saturated_activation"]

Records = Mapping[str, Mapping[str, Sequence[float | None]]]


def recent(values: Sequence[float | None]) -> list[float]:
    """The finite values of the last third of the recorded steps (at least ``MIN_LAYER_RECORDS`` of them)."""
    values = present(values)
    k = max(T.MIN_LAYER_RECORDS, len(values) // 3)
    return values[-k:] if len(values) >= T.MIN_LAYER_RECORDS else []


def dead_relu(
    records: Records, order: Sequence[str], kinds: Mapping[str, str], *, batch_size: int | None = None
) -> list[Finding]:
    """``dead_relu`` for every ReLU layer whose median dead fraction is ``DEAD_RELU_FRACTION`` or more
    (``DEAD_RELU_SMALL_BATCH_FRACTION`` for batches under ``DEAD_RELU_MIN_BATCH``, where chance zeros look dead)."""
    small = batch_size is not None and batch_size < T.DEAD_RELU_MIN_BATCH
    threshold = T.DEAD_RELU_SMALL_BATCH_FRACTION if small else T.DEAD_RELU_FRACTION
    dead = {}
    for name in order:
        if kinds.get(name) != "relu":
            continue
        values = recent(records.get(name, {}).get("dead_frac", []))
        if values and median(values) >= threshold:
            dead[name] = median(values)
    if not dead:
        return []
    worst = max(dead.values())
    severity = Severity.ERROR if worst >= T.DEAD_RELU_ERROR_FRACTION else Severity.WARNING
    detail = (
        "Dead units (zero for every example of a batch): "
        + ", ".join(f"{100 * f:.0f}% in {n}" for n, f in dead.items())
        + "."
    )
    return [make_finding("dead_relu", severity, tuple(dead), {"dead_fraction_by_layer": dead}, detail=detail)]


def saturated_activation(records: Records, order: Sequence[str], kinds: Mapping[str, str]) -> list[Finding]:
    """``saturated_activation`` for hidden sigmoid/tanh layers pinned at their bounds."""
    bounded = [n for n in order if kinds.get(n) == "bounded"]
    last_layer = order[-1] if order else None
    saturated = {}
    for name in bounded:
        if name == last_layer:
            continue
        rec = records.get(name, {})
        fracs = [recent(rec.get(m, [])) for m in ("sat_frac", "preact_large_frac")]
        value = max((median(v) for v in fracs if v), default=0.0)
        if value >= T.SATURATION_FRACTION:
            saturated[name] = value
    if not saturated:
        return []
    detail = "Saturated units: " + ", ".join(f"{100 * f:.0f}% in {n}" for n, f in saturated.items()) + "."
    evidence = {"saturated_fraction_by_layer": saturated}
    return [make_finding("saturated_activation", Severity.WARNING, tuple(saturated), evidence, detail=detail)]


@detector("activations", codes=("dead_relu",), needs=("layers",))
def _dead_relu(trace: RunTrace) -> list[Finding]:
    return dead_relu(trace.layers, trace.order, trace.kinds, batch_size=trace.batch_size)


@detector("activations", codes=("saturated_activation",), needs=("layers",))
def _saturated_activation(trace: RunTrace) -> list[Finding]:
    return saturated_activation(trace.layers, trace.order, trace.kinds)
