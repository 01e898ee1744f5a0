"""The training doctor: detectors -> findings -> fixes (FAQ Q1, Q3, Q5, Q8, Q10, Q11, Q13, Q14, Q15).

- :func:`watch` / :class:`DoctorSession`: hooks on a training run you write yourself; ``session.findings``.
- :func:`diagnose`: static checks + a short probe run + curvature, on a copy of the model -> :class:`Report`.
- :class:`Finding`, :class:`Severity`, :data:`CODES`: what the doctor says, from a closed vocabulary.
- :func:`findings_from_records`: the detectors on numbers recorded elsewhere.
- :mod:`.distributed`: findings gathered across torch.distributed ranks (DDP).
- :func:`repair`: fixes applied to a copy, retrained and verified (implemented in :mod:`.repairing`; the
  module is not called ``repair`` so that importing it can never shadow the function on this package).

Submodules: :mod:`.detectors` (pure decision functions), :mod:`.thresholds` (every decision number with its
source), :mod:`.explain` (explanations and fixes), :mod:`.trace` / :mod:`.measure` (what the checks measure),
:mod:`.report`, :mod:`.zoo` (the fault zoo: broken and healthy setups).
"""

from __future__ import annotations

import importlib
from typing import Any

from .diagnose import diagnose
from .findings import CODES, FAQ_QUESTION, Finding, Severity
from .report import Report
from .watch import DoctorSession, findings_from_records, watch

__all__ = [
    "CODES",
    "FAQ_QUESTION",
    "DoctorSession",
    "Finding",
    "Report",
    "Severity",
    "diagnose",
    "findings_from_records",
    "repair",
    "watch",
]


def __getattr__(name: str) -> Any:
    # repair builds on diagnose and the fault zoo; loaded on first use so that watching a run stays light
    if name in ("repair", "RepairResult"):
        module = importlib.import_module(f"{__name__}.repairing")
        globals().update(repair=module.repair, RepairResult=module.RepairResult)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
