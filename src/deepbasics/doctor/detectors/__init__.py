"""The doctor's detectors: pure decision functions over recorded numbers, one module per family.

- :mod:`.gradients`: ``vanishing_gradient``, ``exploding_gradient`` (FAQ Q3.3)
- :mod:`.activations`: ``dead_relu``, ``saturated_activation`` (FAQ Q15, Q3.3)
- :mod:`.loss`: ``nonfinite``, ``diverging_loss``, ``oscillating_loss``, ``slow_convergence``, ``overfitting``
- :mod:`.curvature`: ``ill_conditioned``, ``saddle_point`` (FAQ Q3.1, Q3.2)
- :mod:`.batch`: ``batchnorm_small_batch``, ``batch_size_advice`` (FAQ Q14, Q13)
- :mod:`.static`: ``loss_activation_mismatch``, ``naive_softmax``, ``unnormalized_inputs``, ``bad_init_scale``

:class:`RunTrace` bundles everything a run recorded (plain data, JSON-ready); :func:`run_detectors` applies every
detector whose inputs are present, :func:`resolve` drops findings explained by a more basic one, and
:func:`merge_findings` deduplicates per ``(code, where)``. Thresholds live in :mod:`deepbasics.doctor.thresholds`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..findings import Finding
from ._stats import present
from .activations import dead_relu, saturated_activation
from .batch import batch_size_advice, batchnorm_small_batch
from .curvature import ill_conditioned, saddle_point
from .gradients import exploding_gradient, gradient_profile, vanishing_gradient
from .loss import diverging_loss, nonfinite, oscillating_loss, overfitting, slow_convergence
from .static import (
    activation_depth,
    bad_init_scale,
    loss_activation_mismatch,
    missing_nonlinearity_notes,
    naive_softmax,
    unnormalized_inputs,
)

__all__ = [
    "RunTrace",
    "activation_depth",
    "bad_init_scale",
    "batch_size_advice",
    "batchnorm_small_batch",
    "dead_relu",
    "diverging_loss",
    "exploding_gradient",
    "gradient_profile",
    "ill_conditioned",
    "loss_activation_mismatch",
    "merge_findings",
    "missing_nonlinearity_notes",
    "naive_softmax",
    "nonfinite",
    "oscillating_loss",
    "overfitting",
    "resolve",
    "run_detectors",
    "saddle_point",
    "saturated_activation",
    "slow_convergence",
    "unnormalized_inputs",
    "vanishing_gradient",
]


@dataclass
class RunTrace:
    """What a training run recorded, as plain data (every field optional).

    Attributes:
        losses: ``(step, training loss)`` pairs. val_losses: ``(step, validation loss)`` pairs.
        layers, order: ``LayerStats.records()`` and ``LayerStats.layer_order``.
        kinds: ``{layer: "matrix" | "relu" | "bounded" | "norm" | "other"}``
            (:func:`deepbasics.doctor.trace.layer_kinds`).
        batch_size: the typical training batch size. batchnorm_layers: BatchNorm modules used in train mode.
        curvature: ``{"lambda_max", "lambda_min", "loss", "grad_norm"}`` at the end of the run.
        noise: ``{"b_simple", "stderr"}`` from :mod:`deepbasics.noise`.
    """

    losses: list[tuple[int, float]] = field(default_factory=list)
    val_losses: list[tuple[int, float]] = field(default_factory=list)
    layers: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)
    batch_size: int | None = None
    batchnorm_layers: list[str] = field(default_factory=list)
    curvature: dict[str, float] | None = None
    noise: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists and dicts)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunTrace:
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError`` naming them."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(f"RunTrace: unknown keys {sorted(unknown)}; expected {sorted(cls.__dataclass_fields__)}.")
        out = cls(**dict(data))
        out.losses = [(int(s), float(v)) for s, v in out.losses]
        out.val_losses = [(int(s), float(v)) for s, v in out.val_losses]
        return out

    def update_ratio(self) -> float | None:
        """Median over weight layers of each layer's median ||dw|| / ||w|| per step, or None."""
        medians = []
        for name in self.order:
            if self.kinds.get(name) == "matrix":
                values = present(self.layers.get(name, {}).get("update_ratio", []))
                if values:
                    medians.append(sorted(values)[len(values) // 2])
        return sorted(medians)[len(medians) // 2] if medians else None


def run_detectors(trace: RunTrace) -> list[Finding]:
    """Every detector whose inputs ``trace`` holds, then :func:`resolve`. Order: loss, gradients, activations,
    batch, curvature."""
    found: list[Finding] = []
    found += nonfinite(trace.losses, trace.layers, trace.order)
    if trace.losses:
        found += diverging_loss(trace.losses)
        found += oscillating_loss(trace.losses)
        found += slow_convergence(trace.losses, update_ratio=trace.update_ratio())
        if trace.val_losses:
            found += overfitting(trace.losses, trace.val_losses)
    if trace.layers:
        found += vanishing_gradient(trace.layers, trace.order, trace.kinds)
        found += exploding_gradient(trace.layers, trace.order, trace.kinds)
        found += dead_relu(trace.layers, trace.order, trace.kinds, batch_size=trace.batch_size)
        found += saturated_activation(trace.layers, trace.order, trace.kinds)
    found += batchnorm_small_batch(trace.batch_size, trace.batchnorm_layers)
    if trace.noise:
        found += batch_size_advice(trace.batch_size, trace.noise.get("b_simple"), trace.noise.get("stderr"))
    if trace.curvature:
        found += ill_conditioned(trace.curvature)
        if "loss" in trace.curvature and "grad_norm" in trace.curvature:
            found += saddle_point(
                trace.curvature,
                loss=trace.curvature["loss"],
                grad_norm=trace.curvature["grad_norm"],
                losses=trace.losses or None,
            )
    return resolve(found)


#: code -> the codes whose presence explains it away (the symptom is reported through its cause).
EXPLAINED_BY: Mapping[str, tuple[str, ...]] = {
    "oscillating_loss": ("nonfinite", "diverging_loss"),
    "slow_convergence": ("nonfinite", "diverging_loss", "oscillating_loss", "saddle_point"),
    "vanishing_gradient": ("dead_relu",),  # a dead layer passes no gradient to the layers below it
    "saddle_point": ("loss_activation_mismatch",),  # a double softmax flattens the output: a plateau, not a saddle
}


def resolve(findings: Iterable[Finding]) -> list[Finding]:
    """Drop findings whose symptom another finding explains (:data:`EXPLAINED_BY`), keep the order."""
    findings = list(findings)
    codes = {f.code for f in findings}
    return [f for f in findings if not codes.intersection(EXPLAINED_BY.get(f.code, ()))]


def merge_findings(old: Sequence[Finding], new: Iterable[Finding]) -> list[Finding]:
    """One finding per ``(code, where)``: the first step seen is kept, evidence/explanation/severity updated."""
    merged: dict[tuple[str, tuple[str, ...]], Finding] = {(f.code, f.where): f for f in old}
    for f in new:
        key = (f.code, f.where)
        if key in merged:
            first = merged[key]
            step = first.step if first.step is not None else f.step
            f = Finding(f.code, f.severity, f.where, f.evidence, f.explanation, f.fix, step=step, ranks=f.ranks)
        merged[key] = f
    return list(merged.values())
