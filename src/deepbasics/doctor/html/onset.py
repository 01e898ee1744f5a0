"""When did a finding first show? Its step, replayed from the records: the detectors on prefixes of the run.

Detectors that judge a trend or a profile (``vanishing_gradient``, ``dead_relu``, ``slow_convergence``, ...) return
findings without a step: they look at the whole record. To mark such a finding on the loss curve at the step it was
first detectable, :func:`first_seen` runs the same detectors (those of its code, from the registry of
:mod:`deepbasics.doctor.detectors`) on the run cut at a grid of steps -- the losses, validation losses and
per-layer records up to that step -- and takes the first cut at which the finding appears, trying coarse cuts
first. This needs nothing but the records the run already kept: no hook, and no cost while training (milliseconds
a cut for ordinary runs, after training).

What a cut cannot replay keeps no step (the page says "judged on the whole run"): the measurements made once at the
end (curvature, noise scale) and the practice records, which are running totals rather than series (their
detectors give a step where they know one).
"""

from __future__ import annotations

import bisect
import dataclasses
import time
from collections.abc import Sequence

import numpy as np

from ..detectors import DETECTORS, Detector
from ..findings import Finding
from ..records import RunTrace

__all__ = ["CUTS", "REPLAY_SECONDS", "STRIDE", "cut", "cut_steps", "first_seen"]

#: Cuts replayed at most: evenly spaced among the recorded steps. A 40-point grid places a finding within 2.5% of
#: the run's length, finer than a laptop-width plot can show next to the loss curve.
CUTS = 40
#: Every STRIDE-th cut is tried first; the ones in between only where a finding first shows.
STRIDE = 4
#: Seconds the replay may take (the detectors over very long records take seconds a cut); then it stops.
REPLAY_SECONDS = 5.0


def cut(trace: RunTrace, step: int) -> RunTrace:
    """``trace`` as it stood at ``step``: the series up to it; the end-of-run measurements and the practice totals
    removed; the facts known before training (static checks, layer kinds, batch size) kept."""
    layers = {}
    for name, rec in trace.layers.items():
        k = _count_upto(rec.get("step", []), step)
        layers[name] = {m: list(v[:k]) for m, v in rec.items()}
    return dataclasses.replace(
        trace,
        losses=list(trace.losses[: _count_upto([s for s, _ in trace.losses], step)]),
        val_losses=list(trace.val_losses[: _count_upto([s for s, _ in trace.val_losses], step)]),
        layers=layers,
        curvature=None,
        noise=None,
        hygiene=None,
        coverage=None,
        loss_calls=[],
    )


def _count_upto(steps: Sequence[int], step: int) -> int:
    """How many of the ascending ``steps`` are at most ``step`` (records are kept in step order)."""
    return bisect.bisect_right(steps, step)


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


def _detect(detectors: Sequence[Detector], trace: RunTrace) -> list[Finding]:
    """The findings of ``detectors`` on ``trace`` (those whose inputs it holds; one that fails is skipped)."""
    found: list[Finding] = []
    for entry in detectors:
        if all(getattr(trace, need) for need in entry.needs):
            try:
                found += entry.run(trace)
            except Exception:  # a detector failing on a short cut is not news: the full run was judged
                continue
    return found


def first_seen(trace: RunTrace, findings: Sequence[Finding], seconds: float = REPLAY_SECONDS) -> dict[int, int]:
    """``{index in findings: step}`` for the findings without a step that a cut of the run already shows.

    Only the detectors of the findings' codes run. Every :data:`STRIDE`-th cut of :func:`cut_steps` is tried first;
    where a finding first shows, the cuts since the previous one tried are searched for the first that shows it.
    After ``seconds`` the search stops and the findings left keep no step (a guard for very long records).
    """
    pending = {i: f for i, f in enumerate(findings) if f.step is None}
    out: dict[int, int] = {}
    if not pending:
        return out
    codes = {f.code for f in pending.values()}
    detectors = [d for d in DETECTORS if codes & set(d.codes)]
    grid = cut_steps(trace)
    deadline = time.perf_counter() + seconds
    memo: dict[int, list[Finding]] = {}

    def shows(step: int, f: Finding) -> bool:
        if step not in memo:
            memo[step] = _detect(detectors, cut(trace, step))
        return any(_same(f, g) for g in memo[step])

    previous = -1  # index in grid of the last coarse cut tried
    for j in sorted({*range(0, len(grid), STRIDE), len(grid) - 1}):
        if not pending or time.perf_counter() > deadline:
            break
        for i, f in list(pending.items()):
            if shows(grid[j], f):
                earlier = (k for k in range(previous + 1, j) if time.perf_counter() <= deadline and shows(grid[k], f))
                out[i] = grid[next(earlier, j)]
                del pending[i]
        previous = j
    return out
