"""What the doctor says: a :class:`Finding` per problem, drawn from a closed vocabulary of codes.

A finding is plain data. Detectors (pure functions over recorded statistics) create them; ``run_detectors`` is
the one place they are assembled; the watch session, ``diagnose`` and ``repair`` collect them; reports and the
command line only present them.

The vocabulary is closed on purpose: downstream tools (the fault zoo benchmark, JSON consumers, the FAQ coverage
table) can rely on it. It is the row set of :data:`deepbasics.doctor.codes.TABLE`; :data:`CODES` and
:data:`FAQ_QUESTION` are derived from it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .codes import TABLE, Severity, spec

__all__ = ["CODES", "FAQ_QUESTION", "Finding", "Severity"]

#: The closed vocabulary of finding codes (ARCHITECTURE.md, "Finding codes"), in the table's root-cause order.
CODES: tuple[str, ...] = tuple(row.code for row in TABLE)

#: The FAQ question whose reasoning explains each code, or "practice" (see ``deepbasics faq``).
FAQ_QUESTION: Mapping[str, str] = MappingProxyType({row.code: row.faq for row in TABLE})


@dataclass(frozen=True)
class Finding:
    """One diagnosed problem.

    Attributes:
        code: one of :data:`CODES`.
        severity: a :class:`Severity`.
        where: the modules, parameters or operations at fault, by their names in ``model.named_modules()``
            / ``named_parameters()`` (or an aten op name), input side first.
        evidence: the numbers that triggered the finding (name -> number, list or short string).
        explanation: two or three sentences in our words, with the FAQ reasoning.
        fix: a concrete action, with a code snippet.
        step: the training step at which it was first seen (``None`` for static checks).
        ranks: the distributed ranks it occurred on (empty for single-process runs).
    """

    code: str
    severity: Severity
    where: tuple[str, ...]
    evidence: Mapping[str, Any]
    explanation: str
    fix: str
    step: int | None = None
    ranks: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        spec(self.code)  # ValueError naming the vocabulary for an unknown code
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "where", tuple(self.where))
        object.__setattr__(self, "ranks", tuple(self.ranks))

    @property
    def faq(self) -> str:
        """The FAQ question (e.g. ``"Q3.3"``) whose reasoning this finding follows, or ``"practice"``."""
        return FAQ_QUESTION[self.code]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (numbers converted to plain Python floats/ints)."""
        return {
            "code": self.code,
            "severity": self.severity.value,
            "where": list(self.where),
            "evidence": json.loads(json.dumps(dict(self.evidence), default=_jsonable)),
            "explanation": self.explanation,
            "fix": self.fix,
            "faq": self.faq,
            "step": self.step,
            "ranks": list(self.ranks),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Inverse of :meth:`to_dict` (the ``faq`` key is derived, so it is ignored)."""
        return cls(
            code=data["code"],
            severity=Severity(data["severity"]),
            where=tuple(data.get("where", ())),
            evidence=dict(data.get("evidence", {})),
            explanation=data.get("explanation", ""),
            fix=data.get("fix", ""),
            step=data.get("step"),
            ranks=tuple(data.get("ranks", ())),
        )

    def __str__(self) -> str:
        where = ", ".join(self.where) if self.where else "the model"
        return f"[{self.severity.value}] {self.code} at {where}: {self.explanation}"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # tensors and numpy arrays
        return value.tolist()
    if isinstance(value, enum.Enum):
        return value.value
    return str(value)
