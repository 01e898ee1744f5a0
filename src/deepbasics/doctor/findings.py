"""What the doctor says: a :class:`Finding` per problem, drawn from a closed vocabulary of codes.

A finding is plain data. Detectors (pure functions over recorded statistics) create them; the watch
session, ``diagnose`` and ``repair`` collect them; reports and the command line only present them.

The vocabulary (:data:`CODES`) is closed on purpose: downstream tools (the fault zoo benchmark, JSON
consumers, the FAQ coverage table) can rely on it. Adding a code is a deliberate change to this file,
to :data:`FAQ_QUESTION` and to the detector that emits it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CODES", "FAQ_QUESTION", "Finding", "Severity"]

#: The closed vocabulary of finding codes (ARCHITECTURE.md, "Finding codes").
CODES: tuple[str, ...] = (
    "nonfinite",
    "exploding_gradient",
    "vanishing_gradient",
    "dead_relu",
    "saturated_activation",
    "diverging_loss",
    "oscillating_loss",
    "slow_convergence",
    "overfitting",
    "ill_conditioned",
    "saddle_point",
    "bad_init_scale",
    "unnormalized_inputs",
    "batchnorm_small_batch",
    "loss_activation_mismatch",
    "naive_softmax",
    "batch_size_advice",
)

#: The FAQ question whose reasoning explains each code (see ``deepbasics faq``).
FAQ_QUESTION: Mapping[str, str] = {
    "nonfinite": "Q8",
    "exploding_gradient": "Q3.3",
    "vanishing_gradient": "Q3.3",
    "dead_relu": "Q15",
    "saturated_activation": "Q3.3",
    "diverging_loss": "Q11",
    "oscillating_loss": "Q3.1",
    "slow_convergence": "Q3.1",
    "overfitting": "Q10",
    "ill_conditioned": "Q3.1",
    "saddle_point": "Q3.2",
    "bad_init_scale": "Q1",
    "unnormalized_inputs": "Q3.1",
    "batchnorm_small_batch": "Q14",
    "loss_activation_mismatch": "Q5",
    "naive_softmax": "Q8",
    "batch_size_advice": "Q13",
}


class Severity(str, enum.Enum):
    """How urgent a finding is: ``error`` breaks training, ``warning`` slows or hurts it, ``info`` advises."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


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
        if self.code not in CODES:
            raise ValueError(
                f"code: expected one of {list(CODES)}, got {self.code!r}. Add new codes deliberately to CODES."
            )
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "where", tuple(self.where))
        object.__setattr__(self, "ranks", tuple(self.ranks))

    @property
    def faq(self) -> str:
        """The FAQ question (e.g. ``"Q3.3"``) whose reasoning this finding follows."""
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
