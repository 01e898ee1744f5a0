"""The output activation against the loss: ``loss_activation_mismatch`` (FAQ Q5), before and during training.

Two sources of evidence, one code:

- **static** (``diagnose``, :func:`loss_activation_mismatch`): the ATen op that produced the model output and the
  ops of the loss in one traced forward: ``_softmax`` then cross-entropy (``_log_softmax`` + ``nll_loss``) applies
  softmax twice; ``_softmax`` then ``nll_loss`` alone feeds probabilities where log-probabilities belong;
  ``sigmoid`` then ``binary_cross_entropy_with_logits`` applies the sigmoid twice; ``sigmoid``/``_softmax`` then
  ``mse_loss`` has gradients that carry sigma'(z) and vanish on confident mistakes.
- **run time** (a watched loop or script, :func:`loss_activation_runtime`): the loss calls the script makes, as
  :class:`~deepbasics.doctor.records.LossCall` records (:mod:`deepbasics.doctor.losstap`): the op that produced the
  loss input, read from the autograd graph through views (``SoftmaxBackward0`` -> ``"softmax"``), the module that
  returned it, and what its values looked like. With ``p`` = rows in [0, 1] summing to 1 within ``ROW_SUM_TOL``
  over the class dimension:

  ======================================  =====================================================  ========
  loss                                    fires when                                              severity
  ======================================  =====================================================  ========
  ``cross_entropy`` (CrossEntropyLoss)    producer softmax, or ``p`` on the inspected calls       warning
  ``cross_entropy``                       producer log_softmax, or log-probability rows           warning
  ``nll_loss`` (NLLLoss)                  producer softmax, or ``p`` on the inspected calls       warning
  ``binary_cross_entropy_with_logits``    producer sigmoid, or every value in [0, 1] on many      warning
                                          calls (``PAIRING_UNIT_CALLS``)
  ``mse_loss``                            producer softmax/sigmoid and 0/1 targets                warning
  ``mse_loss``                            one output per example, targets the integers 0..K-1     warning
                                          (K >= 3), all present, balanced: class indices
  ======================================  =====================================================  ========

  "On the inspected calls": at least ``PAIRING_MIN_CALLS`` calls, ``PAIRING_FRACTION`` of them. LogSoftmax before
  CrossEntropyLoss is a ``warning`` too (issue 14 names it), although log-softmax is idempotent (``logsumexp`` of
  log-probabilities is 0) so this loss and its gradient equal those of the logits: the model's outputs are not the
  logits that the loss, and every later use of the model (a temperature, a distillation, a second loss), takes
  them for, and the softmax is computed twice. Sigmoid + MSE on
  continuous targets in [0, 1] (image reconstruction) is a regression and is not flagged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .. import thresholds as T
from ..explain import make_finding
from ..findings import Finding, Severity
from ..records import LossCall, RunTrace
from .registry import detector

__all__ = ["aten_base", "loss_activation_mismatch", "loss_activation_runtime"]

_CE = "aten._log_softmax"
_NLL = ("aten.nll_loss_forward", "aten.nll_loss2d_forward")
#: How a loss names itself in a finding.
_LOSS_NAMES = {
    "cross_entropy": "CrossEntropyLoss",
    "nll_loss": "NLLLoss",
    "binary_cross_entropy_with_logits": "BCEWithLogitsLoss",
    "mse_loss": "MSELoss",
}


def aten_base(op: str | None) -> str:
    """``aten._softmax.default`` -> ``aten._softmax``."""
    if not op:
        return ""
    parts = op.split(".")
    return ".".join(parts[:2]) if parts[0] == "aten" else op


def loss_activation_mismatch(
    output_op: str | None, loss_ops: Sequence[str], *, output_module: str | None = None
) -> list[Finding]:
    """Static: ``loss_activation_mismatch`` from the model's output op and the loss's ops (ATen names, e.g.
    ``"aten._softmax"``, ``["aten._log_softmax", "aten.nll_loss_forward"]``)."""
    out = aten_base(output_op)
    ops = [aten_base(o) for o in loss_ops]
    where = (output_module or out or "output",)
    evidence = {"output_op": out, "loss_ops": ops}
    problem = None
    if out == "aten._softmax" and _CE in ops and any(o in ops for o in _NLL):
        problem = "The model ends in softmax and the loss is cross-entropy, which applies log-softmax again."
    elif out == "aten._softmax" and any(o in ops for o in _NLL) and "aten.log" not in ops:
        problem = "The model outputs probabilities (softmax) but NLLLoss expects log-probabilities."
    elif out == "aten.sigmoid" and "aten.binary_cross_entropy_with_logits" in ops:
        problem = "The model ends in a sigmoid and BCEWithLogitsLoss applies the sigmoid again."
    elif out in ("aten.sigmoid", "aten._softmax") and "aten.mse_loss" in ops:
        kind = "sigmoid" if out == "aten.sigmoid" else "softmax"
        problem = f"Mean squared error on a {kind} output: its gradient carries the {kind}'s slope."
    if problem is None:
        return []
    return [make_finding("loss_activation_mismatch", Severity.WARNING, where, evidence, detail=problem)]


def _mostly(count: int, calls: int, min_calls: int = T.PAIRING_MIN_CALLS) -> bool:
    return calls >= min_calls and count >= T.PAIRING_FRACTION * calls


def _verdict(call: LossCall) -> tuple[Severity, str] | None:
    """(severity, what is wrong) for one loss-call record, or None when it looks right (module docstring)."""
    softmax, sigmoid = call.producer == "softmax", call.producer == "sigmoid"
    if call.loss == "cross_entropy":
        if softmax or _mostly(call.probabilities, call.calls):
            return Severity.WARNING, (
                "CrossEntropyLoss receives probabilities (softmax outputs) and applies log-softmax to them again, "
                "so its gradient is squashed and the loss cannot go below ~log(C) - 1."
            )
        if call.producer == "log_softmax" or _mostly(call.log_probabilities, call.calls):
            return Severity.WARNING, (
                "CrossEntropyLoss receives log-probabilities (LogSoftmax) and applies log-softmax again: this loss "
                "happens to be unchanged (log-softmax is idempotent), but the model does not output the logits the "
                "loss and any later use take it for. Drop the LogSoftmax, or use NLLLoss."
            )
    elif call.loss == "nll_loss" and (softmax or _mostly(call.probabilities, call.calls)):
        return Severity.WARNING, (
            "NLLLoss receives probabilities (softmax outputs) but expects log-probabilities: it minimizes "
            "-p_y, whose gradient vanishes as p_y -> 0, instead of -log p_y."
        )
    elif call.loss == "binary_cross_entropy_with_logits" and (
        sigmoid or _mostly(call.unit_interval, call.calls, T.PAIRING_UNIT_CALLS)
    ):
        return Severity.WARNING, (
            "BCEWithLogitsLoss receives values in [0, 1] (a sigmoid output) and applies the sigmoid again, so its "
            "predictions never leave (0.5, 0.73) and the gradient is squashed."
        )
    elif call.loss == "mse_loss" and (softmax or sigmoid) and _mostly(call.binary_targets, call.calls, 1):
        return Severity.WARNING, (
            f"Mean squared error on a {call.producer} output with 0/1 targets: its gradient carries the "
            f"{call.producer}'s slope and vanishes on confident mistakes."
        )
    elif call.loss == "mse_loss" and _class_indices(call):
        classes = len(call.target_counts)
        return Severity.WARNING, (
            f"MSELoss regresses one output onto integer targets 0..{classes - 1}, every value present and about "
            f"equally often: class indices. As numbers they claim that class 1 lies between classes 0 and 2; a "
            f"classifier needs {classes} logits and CrossEntropyLoss."
        )
    return None


def _class_indices(call: LossCall) -> bool:
    """Targets that look like class labels: non-negative integers 0..K-1 (K >= ``CLASS_INDEX_MIN_VALUES``), each
    value present, the rarest at least ``CLASS_INDEX_BALANCE`` times the mean count, on the inspected calls."""
    counts = list(call.target_counts)
    while counts and counts[-1] == 0:
        counts.pop()
    if not _mostly(call.index_targets, call.calls) or len(counts) < T.CLASS_INDEX_MIN_VALUES:
        return False
    return min(counts) >= T.CLASS_INDEX_BALANCE * sum(counts) / len(counts)


def loss_activation_runtime(calls: Iterable[LossCall]) -> list[Finding]:
    """Run time: ``loss_activation_mismatch`` from the loss calls a script made (module docstring)."""
    out = []
    for call in calls:
        verdict = _verdict(call)
        if verdict is None:
            continue
        severity, problem = verdict
        where = call.module or (f"{call.producer} (functional)" if call.producer else "model output")
        loss = _LOSS_NAMES.get(call.loss, call.loss)
        evidence = {
            "loss": loss,
            "producer": call.producer,
            "module": call.module,
            "calls_inspected": call.calls,
            "probability_rows": call.probabilities,
            "unit_interval": call.unit_interval,
            "log_probability_rows": call.log_probabilities,
        }
        named = f"{call.module!r}" if call.module else f"a functional {call.producer}" if call.producer else "it"
        detail = f"The model output fed to {loss} comes from {named}. {problem}"
        out.append(make_finding("loss_activation_mismatch", severity, (where,), evidence, detail=detail))
    return out


@detector("pairing", codes=("loss_activation_mismatch",), static=True)
def _loss_activation(trace: RunTrace) -> list[Finding]:
    out = []
    if trace.static is not None and trace.static.output_op:
        facts = trace.static
        out += loss_activation_mismatch(facts.output_op, facts.loss_ops, output_module=facts.output_module)
    return out + loss_activation_runtime(trace.loss_calls)
