"""What each finding code means and what to do about it, read from the code table (:mod:`.codes`).

:func:`explain` and :func:`fix_for` return a code's general explanation and fix; :func:`make_finding` builds a
:class:`~deepbasics.doctor.findings.Finding` from a detector's numbers, putting a sentence about *this* run
(``detail``) before the general explanation. :data:`EXPLANATIONS` and :data:`FIXES` are read-only views of the
table's text columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from .codes import TABLE, spec
from .findings import Finding, Severity

__all__ = ["EXPLANATIONS", "FIXES", "explain", "fix_for", "make_finding"]

EXPLANATIONS: Mapping[str, str] = MappingProxyType({row.code: row.explanation for row in TABLE})
FIXES: Mapping[str, str] = MappingProxyType({row.code: row.fix for row in TABLE})


def explain(code: str) -> str:
    """The general explanation of ``code`` (an unknown code raises a ValueError naming the codes)."""
    return spec(code).explanation


def fix_for(code: str) -> str:
    """The concrete fix for ``code``, with a code snippet."""
    return spec(code).fix


def make_finding(
    code: str,
    severity: Severity | str | None,
    where: Iterable[str],
    evidence: Mapping[str, Any],
    *,
    detail: str = "",
    step: int | None = None,
) -> Finding:
    """A :class:`Finding` for ``code`` with the general explanation, preceded by ``detail`` (this run's numbers).

    ``severity=None`` takes the code's default severity from the table.
    """
    row = spec(code)
    text = f"{detail} {row.explanation}" if detail else row.explanation
    level = row.severity if severity is None else Severity(severity)
    return Finding(code, level, tuple(where), dict(evidence), text, row.fix, step=step)
