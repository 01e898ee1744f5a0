"""When a watched run is judged: the cheap detectors every ``check_every`` steps, the extras every
``expensive_every``, and how each check's findings replace or join the earlier ones.

The cheap detectors cost one host copy of the pending numbers plus a pass over the whole recorded trace, O(steps), so
they run after ``check_every`` steps (default :data:`DEFAULT_CHECK_EVERY`) and then every :data:`CHECK_GROWTH` of the
run's length so far, but never more often than every ``check_every`` steps (checks at 100, 200, 400, 800, 1600, ...):
a run of n steps is judged O(log n) times, and the cost per training step falls as the run grows (a
trace of 50k losses takes ~0.1 s to judge; checking it every 100 steps would cost more than the training). With a
TensorBoard writer the interval stays ``check_every``, so the scalars keep their spacing. They also run at the end;
the expensive extras (:mod:`.extras`: ~50 Hessian-vector products, or 40 extra gradients) only every
``expensive_every`` steps when asked, and once at the end. A check's findings are merged with the earlier ones per
``(code, where)`` (first step kept, evidence updated), except the codes the table marks ``transient`` -- a loss
trend, a fraction over the whole run -- which describe the run *now*: each check replaces them (:func:`refresh`).
So the checks during a run leave the transient detectors out unless a TensorBoard writer logs what they find: their
findings would be replaced by the next check unread (``DoctorSession._check``), and the final check runs them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .._checks import check_int
from .codes import spec
from .detectors import merge_findings
from .findings import Finding

__all__ = ["DEFAULT_CHECK_EVERY", "Schedule", "refresh"]

#: Default interval of the cheap detectors (one host copy of the pending losses per interval).
DEFAULT_CHECK_EVERY = 100
#: Once ``steps * CHECK_GROWTH`` exceeds ``check_every``, the next check comes that many steps later: the amortized
#: cost of the checks per step is then at most 1 / (CHECK_GROWTH * steps) of one check. Measured on the digits MLP of
#: ``benchmarks/doctor_overhead.py`` (1.0-1.2 ms per step; a check during the run, cold after the training step,
#: 2-6 ms for 100-3000 recorded losses without the transient detectors, 9 ms with them): 0.125 gave 10 checks in a
#: 1,000-step run, ~2% of its time; 0.5 gave 6 and 9 in 1,000 and 3,000 steps; 1.0 (the run length doubles between
#: checks) gives 5 and 6, ~1% and ~0.7%. A persistent finding is then on record by the time the run has doubled.
CHECK_GROWTH = 1.0


@dataclass
class Schedule:
    """The cadence of a session's checks (module docstring); ``expensive_every=None``: extras at the end only;
    ``growth``: :data:`CHECK_GROWTH`, or 0 for a fixed interval."""

    check_every: int = DEFAULT_CHECK_EVERY
    expensive_every: int | None = None
    expensive_done_at: int | None = None
    growth: float = CHECK_GROWTH
    next_check: int = 0

    def __post_init__(self) -> None:
        self.check_every = check_int(self.check_every, "check_every", low=1)
        if self.expensive_every is not None:
            self.expensive_every = check_int(self.expensive_every, "expensive_every", low=1)
        self.next_check = self.next_check or self.check_every

    def check_due(self, steps: int) -> bool:
        """Run the cheap detectors after ``steps`` steps? (Each True schedules the next check.)"""
        if steps < self.next_check:
            return False
        self.next_check = steps + max(self.check_every, int(self.growth * steps))
        return True

    def expensive_due(self, steps: int) -> bool:
        """Run the extras after ``steps`` steps (the periodic schedule)?"""
        return self.expensive_every is not None and steps % self.expensive_every == 0

    def final_expensive_due(self, steps: int) -> bool:
        """At the end: run the extras unless they already ran at this step."""
        return self.expensive_done_at != steps

    def expensive_ran(self, steps: int) -> None:
        """Note that the extras ran after ``steps`` steps."""
        self.expensive_done_at = steps


def refresh(previous: Sequence[Finding], fresh: Sequence[Finding]) -> list[Finding]:
    """The findings after a check: the earlier non-transient ones merged with ``fresh`` (transient ones replaced)."""
    kept = [f for f in previous if not spec(f.code).transient]
    return merge_findings(kept, fresh)
