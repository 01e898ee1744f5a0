"""Practice detectors: the training-loop bugs PyTorch users report most, from a watched loop's records.

Inputs are the plain records of :mod:`deepbasics.doctor.hygiene` (:class:`~deepbasics.doctor.records.StepHygiene`,
:class:`~deepbasics.doctor.records.ParameterCoverage`); with ``j`` the optimizer steps judged:

- ``missing_zero_grad`` (error): ``carried >= PRACTICE_MIN_STEPS`` and ``carried >= PRACTICE_FRACTION j``: the
  gradient a step used still held what the previous step had used, i.e. nothing zeroed it in between. The same
  code names the misplaced ``zero_grad`` that *wipes* the gradient between ``backward()`` and ``step()`` (``wiped``
  on as many steps): both are a ``zero_grad()`` in the wrong place, and the fix is the same line moved. (The
  optimizer then never sees a gradient, which is also ``parameters_not_updated``'s idle optimizer; the code table
  says ``missing_zero_grad`` explains it, so only the cause is reported.)
- ``eval_mode_training`` (warning): the model has Dropout or normalization layers and
  ``eval_steps >= PRACTICE_MIN_STEPS``, ``eval_steps >= PRACTICE_FRACTION (eval_steps + train_steps)``. A model
  without such layers computes the same in both modes: nothing to say.
- ``parameters_not_updated`` (error when no parameter that receives gradients is updated, else warning): after at
  least ``NOT_UPDATED_MIN_BACKWARDS`` backward passes in training mode, tensors that receive gradients, that no
  stepping optimizer holds and that never changed; or an optimizer that stepped ``IDLE_OPTIMIZER_MIN_STEPS`` times
  or more although none of its parameters ever held a gradient, when it holds this model's parameters or the model
  has parameters no optimizer updates. Frozen layers (``requires_grad=False``) receive no gradient and are not
  concerned; parameters updated by hand (manual SGD) change and are not concerned.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import thresholds as T
from ..explain import make_finding
from ..findings import Finding, Severity
from ..records import ParameterCoverage, RunTrace, StepHygiene
from .registry import detector

__all__ = ["eval_mode_training", "missing_zero_grad", "parameters_not_updated"]


def _pattern(count: int, total: int) -> bool:
    return count >= T.PRACTICE_MIN_STEPS and count >= T.PRACTICE_FRACTION * total


def missing_zero_grad(record: StepHygiene) -> list[Finding]:
    """``missing_zero_grad`` from carried or wiped steps (module docstring)."""
    where = (f"optimizer ({record.optimizer or 'unknown'})",)
    evidence = {
        "steps_judged": record.judged,
        "carried_steps": record.carried,
        "wiped_steps": record.wiped,
        "first_carried_step": record.first_carried,
        "first_wiped_step": record.first_wiped,
        "sentinel_parameter": record.sentinel,
    }
    what = {
        "carried": "still held what the previous step had used: nothing zeroed it between the two steps.",
        "wiped": "had been cleared after backward() (set to None or zeroed): zero_grad() sits between backward() "
        "and step().",
    }
    for kind, happened in what.items():
        count = getattr(record, kind)
        if _pattern(count, record.judged):
            detail = f"At {count} of {record.judged} optimizer steps the gradient of {record.sentinel!r} {happened}"
            step = getattr(record, f"first_{kind}")
            return [make_finding("missing_zero_grad", Severity.ERROR, where, evidence, detail=detail, step=step)]
    return []


def eval_mode_training(record: StepHygiene) -> list[Finding]:
    """``eval_mode_training`` when most optimizer steps were taken in eval mode (module docstring)."""
    if not record.mode_layers or not _pattern(record.eval_steps, record.eval_steps + record.train_steps):
        return []
    total = record.eval_steps + record.train_steps
    evidence = {"eval_steps": record.eval_steps, "steps": total, "first_eval_step": record.first_eval_step,
                "mode_layers": list(record.mode_layers)}  # fmt: skip
    detail = (
        f"{record.eval_steps} of {total} optimizer steps were taken with the model in eval mode, where "
        f"{', '.join(record.mode_layers[:4])} behave as at test time."
    )
    return [make_finding("eval_mode_training", Severity.WARNING, tuple(record.mode_layers), evidence, detail=detail,
                         step=record.first_eval_step)]  # fmt: skip


def _owners(names: Sequence[str]) -> tuple[str, ...]:
    """``["0.weight", "0.bias", "head.weight"]`` -> ``("0", "head")``; a root parameter is ``"(root)"``."""
    return tuple(dict.fromkeys(n.rsplit(".", 1)[0] if "." in n else "(root)" for n in names))


def parameters_not_updated(coverage: ParameterCoverage) -> list[Finding]:
    """``parameters_not_updated`` from the coverage record (module docstring)."""
    if coverage.backward_passes < T.NOT_UPDATED_MIN_BACKWARDS:
        return []
    idle = [
        o
        for o in coverage.optimizers
        if o["steps"] >= T.IDLE_OPTIMIZER_MIN_STEPS
        and o["params_with_grad"] == 0
        and (o["model_params"] or coverage.not_updated)
    ]
    evidence = {
        "not_updated": list(coverage.not_updated),
        "with_grad": len(coverage.with_grad),
        "trainable": coverage.trainable,
        "backward_passes": coverage.backward_passes,
        "optimizers": list(coverage.optimizers),
    }
    stepping = ", ".join(f"{o['name']} ({o['steps']} steps, {o['model_params']} of its {o['params']} tensors are "
                         "this model's)" for o in coverage.optimizers) or "none"  # fmt: skip
    if coverage.not_updated:
        everything = len(coverage.not_updated) >= len(coverage.with_grad)
        detail = (
            f"{len(coverage.not_updated)} of the {len(coverage.with_grad)} parameter tensors that receive gradients "
            f"never changed and no stepping optimizer holds them ({', '.join(coverage.not_updated[:4])}"
            f"{', ...' if len(coverage.not_updated) > 4 else ''}). Optimizers stepping: {stepping}."
        )
        severity = Severity.ERROR if everything else Severity.WARNING
        return [make_finding("parameters_not_updated", severity, _owners(coverage.not_updated), evidence,
                             detail=detail)]  # fmt: skip
    if idle:
        names = ", ".join(o["name"] for o in idle)
        detail = (
            f"{names} stepped {idle[0]['steps']} times, but none of its {idle[0]['params']} parameter tensors ever "
            "held a gradient: they are frozen or no longer part of the model."
        )
        where = tuple(f"optimizer ({o['name']})" for o in idle)
        return [make_finding("parameters_not_updated", Severity.ERROR, where, evidence, detail=detail)]
    return []


@detector("practice", codes=("missing_zero_grad",), needs=("hygiene",))
def _missing_zero_grad(trace: RunTrace) -> list[Finding]:
    return missing_zero_grad(trace.hygiene)


@detector("practice", codes=("parameters_not_updated",), needs=("coverage",))
def _parameters_not_updated(trace: RunTrace) -> list[Finding]:
    return parameters_not_updated(trace.coverage)


@detector("practice", codes=("eval_mode_training",), needs=("hygiene",))
def _eval_mode_training(trace: RunTrace) -> list[Finding]:
    return eval_mode_training(trace.hygiene)
