"""The training doctor: detectors -> findings -> fixes (FAQ Q1, Q3, Q5, Q8, Q10, Q11, Q13, Q14, Q15, and practice).

- :func:`watch` / :class:`DoctorSession`: hooks on a training run you write yourself; ``session.findings``.
- :class:`DoctorCallback`: the same for :func:`deepbasics.train.fit` (``callbacks=[DoctorCallback()]``).
- :func:`diagnose`: static checks + a short probe run + curvature, on a copy of the model -> :class:`Report`.
- :class:`Finding`, :class:`Severity`, :data:`CODES`: what the doctor says, from a closed vocabulary whose rows
  are :data:`deepbasics.doctor.codes.TABLE` (one declarative row per code; everything else is derived).
- :func:`findings_from_records`: the detectors on numbers recorded elsewhere.
- :func:`repair`: fixes applied to a copy, retrained and verified (implemented in :mod:`.repairing`; the
  module is not called ``repair`` so that importing it can never shadow the function on this package).

Submodules, by role: the vocabulary :mod:`.codes`, :mod:`.findings`, :mod:`.explain`, :mod:`.thresholds` (every
decision number with its source); the records :mod:`.records` (``RunTrace``, what every detector reads); the
detectors :mod:`.detectors` (pure decision functions, registered per family; ``run_detectors`` is the one place
findings are assembled); a watched run :mod:`.session` (``watch``), composed of :mod:`.recording` (hooks;
:mod:`.hygiene`, :mod:`.losstap`), :mod:`.schedule`, :mod:`.extras` (curvature, noise scale; :mod:`.measure`),
:mod:`.gathering` (ranks; :mod:`.distributed`) and :mod:`.tensorboard`; :mod:`.script` (``deepbasics doctor
SCRIPT``); :mod:`.diagnose` (with :mod:`.trace`); :mod:`.case` (``Case``, ``train_case``), :mod:`.fixes` and
:mod:`.repairing`; :mod:`.zoo` (the fault zoo, built on :mod:`.case`); :mod:`.report`.
"""

from __future__ import annotations

import importlib
from typing import Any

from .callback import DoctorCallback
from .diagnose import diagnose
from .findings import CODES, FAQ_QUESTION, Finding, Severity
from .report import Report
from .session import DoctorSession, findings_from_records, watch

__all__ = [
    "CODES",
    "FAQ_QUESTION",
    "DoctorCallback",
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
    # repair builds on diagnose and the fix catalogue; loaded on first use so that watching a run stays light
    if name in ("repair", "RepairResult"):
        module = importlib.import_module(f"{__name__}.repairing")
        globals().update(repair=module.repair, RepairResult=module.RepairResult)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
