"""What a run recorded, as plain data: the one input of the detectors (and of any report drawn from a run).

:class:`RunTrace` bundles everything: the loss curves, the per-layer statistics of
:class:`deepbasics.probe.LayerStats`, the batch size, the expensive extras (curvature, noise scale), the facts of
``diagnose``'s static checks (:class:`StaticFacts`) and the practice records of a watched loop
(:class:`StepHygiene`, :class:`ParameterCoverage`, :class:`LossCall`). Every field is optional; a detector runs
when the fields it needs are present (:mod:`deepbasics.doctor.detectors.registry`). ``to_dict`` / ``from_dict``
round-trip through JSON (the ``"trace"`` of ``doctor.json``); unknown keys are rejected, naming them.

Step numbers are those of the session (``session.step`` calls, or the script's backward passes) unless a field
says otherwise; ``StepHygiene`` counts optimizer steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["LossCall", "ParameterCoverage", "RunTrace", "StaticFacts", "StepHygiene"]


def _build(cls: type, data: Mapping[str, Any] | None) -> Any:
    """``cls(**data)`` with unknown keys named in a TypeError (None stays None)."""
    if data is None or isinstance(data, cls):
        return data
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise TypeError(f"{cls.__name__}: unknown keys {sorted(unknown)}; expected {sorted(names)}.")
    return cls(**dict(data))


@dataclass
class StaticFacts:
    """What ``diagnose`` learns before training (:mod:`deepbasics.doctor.trace`), or a watched run from its first
    steps (:mod:`deepbasics.doctor.graphscan`: the naive-softmax sites and the input statistics only).

    Attributes:
        output_op, output_module: the ATen op that produced the model output and the module that returned it.
        loss_ops: the loss's ATen ops (``aten._log_softmax``, ``aten.nll_loss_forward`` for cross-entropy).
        naive_softmax_sites: modules computing ``exp(x) / sum(exp(x))`` without subtracting the max.
        input_means, input_stds: per-feature statistics of the training inputs.
        weight_layers: ``[{"name", "fan_in", "fan_out", "std", "activation"}]``, input side first.
        at_init: the first recorded step is the model's initialization (the step-0 depth check applies).
        nonfinite: where a non-finite loss was located (:func:`deepbasics.nonfinite.locate_nonfinite`: ``op``,
            ``phase``, ``kind``, ``module``, ``backward_of``, ``hint``) and at which ``step``; None if none.
    """

    output_op: str | None = None
    output_module: str | None = None
    loss_ops: list[str] = field(default_factory=list)
    naive_softmax_sites: list[str] = field(default_factory=list)
    input_means: list[float] = field(default_factory=list)
    input_stds: list[float] = field(default_factory=list)
    weight_layers: list[dict[str, Any]] = field(default_factory=list)
    at_init: bool = False
    nonfinite: dict[str, Any] | None = None


@dataclass
class StepHygiene:
    """How one model's optimizer steps met its gradients (``missing_zero_grad``, ``eval_mode_training``).

    A *sentinel* parameter of the model (its smallest trainable tensor) is followed through every backward pass
    and every step of the optimizer that holds it (:mod:`deepbasics.doctor.hygiene`), in windows around the first
    steps and the steps whose layers are recorded. A step is *judged* when it ends such a window and a backward
    pass reached the sentinel since the previous step.

    Attributes:
        optimizer: class name of the optimizer stepping the sentinel. sentinel: its parameter name.
        judged: optimizer steps judged. carried: judged steps whose gradient still held what the previous step had
            already used (no zeroing in between). wiped: judged steps at which the gradient had been set to None
            or zeroed after the last backward pass. first_carried, first_wiped: the first such step (optimizer
            step index).
        eval_steps: steps whose forward pass ran with ``model.training`` False while the model has Dropout or
            normalization layers; first_eval_step: the first. train_steps: steps in training mode.
        mode_layers: the Dropout/normalization layers (names, at most 8).
    """

    optimizer: str = ""
    sentinel: str = ""
    judged: int = 0
    carried: int = 0
    wiped: int = 0
    first_carried: int | None = None
    first_wiped: int | None = None
    eval_steps: int = 0
    first_eval_step: int | None = None
    train_steps: int = 0
    mode_layers: list[str] = field(default_factory=list)


@dataclass
class ParameterCoverage:
    """Which trainable parameters received gradients and which changed (``parameters_not_updated``).

    Attributes:
        trainable: number of trainable parameter tensors of the model.
        with_grad: names of the parameters seen holding a gradient.
        not_updated: parameters with a gradient that no stepping optimizer holds and that never changed (neither
            their version counter nor a sample of their values) since the session attached.
        backward_passes: how much the model was trained: its optimizer's steps in training mode, or -- without
            one -- the backward passes seen reaching it in training mode.
        optimizers: per optimizer that stepped while attached: ``{"name", "steps", "params", "params_with_grad",
            "model_params"}`` (its parameter tensors, how many were seen with a gradient, how many are this
            model's).
    """

    trainable: int = 0
    with_grad: list[str] = field(default_factory=list)
    not_updated: list[str] = field(default_factory=list)
    backward_passes: int = 0
    optimizers: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LossCall:
    """What the inputs of one loss function looked like (``loss_activation_mismatch`` at run time).

    Attributes:
        loss: the ``torch.nn.functional`` loss (``"cross_entropy"``, ``"nll_loss"``,
            ``"binary_cross_entropy_with_logits"``, ``"mse_loss"``, ...).
        producer: the last op before the loss read from the autograd graph (``"softmax"``, ``"log_softmax"``,
            ``"sigmoid"``), through views; None when unknown (no graph, e.g. under ``no_grad``).
        module: the module that returned the input (a watched activation module), else None.
        calls: calls inspected. probabilities: calls whose input rows (class dimension) were in [0, 1] and summed
            to 1. unit_interval: calls whose every input value was in [0, 1]. log_probabilities: calls whose input
            rows were <= 0 with log-sum-exp 0 (log-probabilities). binary_targets: calls whose targets were all 0 or 1.
        index_targets: calls (of ``mse_loss``) with one prediction per example and non-negative integer targets
            below 64; target_counts: how often each target value 0, 1, ... occurred in those calls.
    """

    loss: str
    producer: str | None = None
    module: str | None = None
    calls: int = 0
    probabilities: int = 0
    unit_interval: int = 0
    log_probabilities: int = 0
    binary_targets: int = 0
    index_targets: int = 0
    target_counts: list[int] = field(default_factory=list)


@dataclass
class RunTrace:
    """What a training run recorded, as plain data (every field optional).

    Attributes:
        losses: ``(step, training loss)`` pairs. val_losses: ``(step, validation loss)`` pairs.
        layers, order: ``LayerStats.records()`` and ``LayerStats.layer_order``.
        kinds: ``{layer: "matrix" | "relu" | "bounded" | "norm" | "other"}``
            (:func:`deepbasics.doctor.trace.layer_kinds`).
        batch_size: the typical training batch size. global_batch_size: the batch one optimizer step averages over
            (data-parallel: world size x batch_size), None when it is batch_size.
        batchnorm_layers: BatchNorm modules used in train mode.
        curvature: ``{"lambda_max", "lambda_min", "loss", "grad_norm", ...}`` at the end of the run;
            curvature_start: the same at initialization (``diagnose``).
        noise: ``{"b_simple", "stderr", ...}`` from :mod:`deepbasics.noise`.
        static: :class:`StaticFacts` (``diagnose``). hygiene: :class:`StepHygiene`. coverage:
            :class:`ParameterCoverage`. loss_calls: :class:`LossCall` per (loss, producer, module).
        adversarial: the model is trained against another trained model -- a loss that trained it was computed by
            the other model's forward, as a GAN generator's loss is by the discriminator. The losses of such a game
            settle at an equilibrium instead of falling, so the loss-trend rules do not apply to them.
        recurrent: ``{layer: {"ratio", "steps"}}``: how much of a recurrent layer's first input reaches its last
            state, relative to its last input (:mod:`deepbasics.doctor.recurrent`), measured when the run ends.
        first_steps: the first training forward and backward passes (:mod:`deepbasics.doctor.firststeps`):
            ``{"forward": [[call, output rms], ...], "time_steps": {recurrent call: [rms per time step]},
            "backwards": [{weight: [grad norm, weight norm]}, ...]}``; empty when not recorded.
    """

    losses: list[tuple[int, float]] = field(default_factory=list)
    val_losses: list[tuple[int, float]] = field(default_factory=list)
    layers: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)
    batch_size: int | None = None
    batchnorm_layers: list[str] = field(default_factory=list)
    curvature: dict[str, Any] | None = None
    noise: dict[str, Any] | None = None
    global_batch_size: int | None = None
    curvature_start: dict[str, Any] | None = None
    static: StaticFacts | None = None
    hygiene: StepHygiene | None = None
    coverage: ParameterCoverage | None = None
    loss_calls: list[LossCall] = field(default_factory=list)
    adversarial: bool = False
    recurrent: dict[str, dict[str, Any]] = field(default_factory=dict)
    first_steps: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists and dicts)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunTrace:
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError`` naming them."""
        out = _build(cls, data)
        out.losses = [(int(s), float(v)) for s, v in out.losses]
        out.val_losses = [(int(s), float(v)) for s, v in out.val_losses]
        out.static = _build(StaticFacts, out.static)
        out.hygiene = _build(StepHygiene, out.hygiene)
        out.coverage = _build(ParameterCoverage, out.coverage)
        out.loss_calls = [_build(LossCall, c) for c in out.loss_calls]
        return out

    def update_ratio(self) -> float | None:
        """Median over weight layers of each layer's median ||dw|| / ||w|| per step, or None."""
        medians = []
        for name in self.order:
            if self.kinds.get(name) == "matrix":
                raw = self.layers.get(name, {}).get("update_ratio", [])
                values = [float(v) for v in raw if v is not None and math.isfinite(v)]
                if values:
                    medians.append(sorted(values)[len(values) // 2])
        return sorted(medians)[len(medians) // 2] if medians else None
