"""When did a finding first show? Its step, replayed from the records: the detectors on prefixes of the run.

Detectors that judge a trend or a profile (``vanishing_gradient``, ``dead_relu``, ``slow_convergence``, ...) return
findings without a step: they look at the whole record. To mark such a finding on the loss curve at the step it was
first detectable, :func:`first_seen` runs the same detectors (:func:`~deepbasics.doctor.detectors.run_detectors`)
on the run cut at a grid of steps -- the losses, validation losses and per-layer records up to that step -- and
takes the first cut at which the finding appears. This needs nothing but the records the run already kept: no hook,
and no cost while training (a few milliseconds per cut, after training).

What a cut cannot replay keeps no step: the measurements made once at the end (curvature, noise scale) and the
practice records, which are running totals rather than series (their detectors give a step where they know one).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import numpy as np

from ..detectors import run_detectors
from ..findings import Finding
from ..records import RunTrace

__all__ = ["CUTS", "cut", "cut_steps", "first_seen"]

#: Cuts replayed at most: evenly spaced among the recorded steps. A 40-point grid places a finding within 2.5% of
#: the run's length, finer than a laptop-width plot can show next to the loss curve.
CUTS = 40


def cut(trace: RunTrace, step: int) -> RunTrace:
    """``trace`` as it stood at ``step``: the series up to it; the end-of-run measurements and the practice totals
    removed; the facts known before training (static checks, layer kinds, batch size) kept."""
    layers = {}
    for name, rec in trace.layers.items():
        keep = [i for i, s in enumerate(rec.get("step", [])) if s <= step]
        layers[name] = {m: [v[i] for i in keep if i < len(v)] for m, v in rec.items()}
    return dataclasses.replace(
        trace,
        losses=[(s, v) for s, v in trace.losses if s <= step],
        val_losses=[(s, v) for s, v in trace.val_losses if s <= step],
        layers=layers,
        curvature=None,
        noise=None,
        hygiene=None,
        coverage=None,
        loss_calls=[],
    )


def cut_steps(trace: RunTrace) -> list[int]:
    """The steps the run is cut at: every recorded step, or :data:`CUTS` evenly spaced ones among them."""
    steps = {int(s) for s, _ in trace.losses} | {int(s) for s, _ in trace.val_losses}
    steps |= {int(s) for rec in trace.layers.values() for s in rec.get("step", [])}
    ordered = sorted(steps)
    if len(ordered) <= CUTS:
        return ordered
    idx = np.unique(np.linspace(0, len(ordered) - 1, CUTS).round().astype(np.int64))
    return [ordered[i] for i in idx]


def _same(a: Finding, b: Finding) -> bool:
    """The same finding at another cut: its code, and the same or overlapping places (a layer list can grow)."""
    return a.code == b.code and (a.where == b.where or not a.where or not b.where or bool(set(a.where) & set(b.where)))


def first_seen(trace: RunTrace, findings: Sequence[Finding]) -> dict[int, int]:
    """``{index in findings: step}`` for the findings without a step that a cut of the run already shows."""
    pending = {i: f for i, f in enumerate(findings) if f.step is None}
    out: dict[int, int] = {}
    if not pending:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a detector failing on a short cut is not news: the full run was judged
        for step in cut_steps(trace):
            found = run_detectors(cut(trace, step))
            for i, f in list(pending.items()):
                if any(_same(f, g) for g in found):
                    out[i] = step
                    del pending[i]
            if not pending:
                break
    return out
