"""The detector registry and :func:`run_detectors`, the one place where findings are assembled.

Each family module (:mod:`.loss`, :mod:`.gradients`, ...) keeps its detectors as pure functions over numbers and
registers, with the :func:`detector` decorator, one adapter per detector that reads what it needs from a
:class:`~deepbasics.doctor.records.RunTrace`::

    @detector("loss", codes=("overfitting",), needs=("losses", "val_losses"))
    def _overfitting(trace: RunTrace) -> list[Finding]:
        return overfitting(trace.losses, trace.val_losses)

``needs`` names RunTrace fields that must be non-empty for the detector to run. :func:`run_detectors` runs every
registered detector whose inputs are present, in registration order (the families in the order
:mod:`deepbasics.doctor.detectors` imports them), merges the findings per ``(code, where)`` and drops the symptoms
whose cause is present (the table's ``explained_by``). A detector that emits a code it did not declare is a bug
and raises; a detector that fails on odd numbers is skipped with a ``RuntimeWarning`` naming it -- the doctor
never stops a user's run over its own failure.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..codes import spec
from ..findings import Finding
from ..records import RunTrace

__all__ = ["DETECTORS", "Detector", "detector", "merge_findings", "resolve", "run_detectors", "static_codes"]


@dataclass(frozen=True)
class Detector:
    """A registered detector: ``run(trace) -> findings`` of ``codes``, run when the ``needs`` fields are present.

    ``static``: it judges the setup before training (model, loss, data), so ``diagnose`` lists its findings as
    static ones.
    """

    name: str
    family: str
    codes: tuple[str, ...]
    needs: tuple[str, ...]
    run: Callable[[RunTrace], list[Finding]]
    static: bool = False


#: Every registered detector, in registration order.
DETECTORS: list[Detector] = []


def detector(
    family: str, *, codes: Sequence[str], needs: Sequence[str] = (), static: bool = False
) -> Callable[[Callable[[RunTrace], list[Finding]]], Callable[[RunTrace], list[Finding]]]:
    """Decorator: register ``fn(trace) -> list[Finding]`` as a detector of ``codes`` (see the module docstring)."""
    for code in codes:
        spec(code)  # a code outside the table is a ValueError naming the vocabulary
    unknown = set(needs) - set(RunTrace.__dataclass_fields__)
    if unknown:
        raise ValueError(f"detector needs: {sorted(unknown)} are not RunTrace fields.")

    def register(fn: Callable[[RunTrace], list[Finding]]) -> Callable[[RunTrace], list[Finding]]:
        name = f"{family}.{fn.__name__.lstrip('_')}"
        if any(d.name == name for d in DETECTORS):
            raise ValueError(f"detector {name!r} is registered twice.")
        DETECTORS.append(Detector(name, family, tuple(codes), tuple(needs), fn, static))
        return fn

    return register


def static_codes() -> frozenset[str]:
    """The codes emitted by static detectors (checks of the setup before training)."""
    return frozenset(c for d in DETECTORS if d.static for c in d.codes)


def run_detectors(trace: RunTrace, *, transient: bool = True) -> list[Finding]:
    """Every registered detector whose inputs ``trace`` holds, merged per ``(code, where)``, then :func:`resolve`.

    ``transient=False`` skips the detectors whose codes are all transient (the table's ``transient``: a loss trend, a
    fraction over the whole run), for a check made during a run whose transient findings nobody reads: the next
    check replaces them anyway (:func:`deepbasics.doctor.schedule.refresh`). The persistent findings are exactly
    those of a full run, because no persistent code is explained by a transient one (``tests/test_doctor_codes.py``
    checks the table for it), so :func:`resolve` drops the same ones.
    """
    found: list[Finding] = []
    for entry in DETECTORS:
        if not transient and all(spec(code).transient for code in entry.codes):
            continue
        if not all(getattr(trace, need) for need in entry.needs):
            continue
        try:
            out = entry.run(trace)
        except Exception as error:  # a detector bug must not cost the user the other findings or the run
            warnings.warn(
                f"deepbasics doctor: detector {entry.name} failed ({type(error).__name__}: {error}); "
                f"{', '.join(entry.codes)} not checked.",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        stray = {f.code for f in out} - set(entry.codes)
        if stray:
            raise RuntimeError(f"detector {entry.name} emitted {sorted(stray)}, not among its codes {entry.codes}.")
        found += out
    return resolve(merge_findings([], found))


def resolve(findings: Iterable[Finding]) -> list[Finding]:
    """Drop findings whose symptom another finding explains (the table's ``explained_by``), keep the order."""
    findings = list(findings)
    codes = {f.code for f in findings}
    return [f for f in findings if not codes.intersection(spec(f.code).explained_by)]


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
