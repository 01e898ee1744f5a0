"""The :class:`Fix` type: a named change to a :class:`~deepbasics.doctor.zoo.Case`, composable with ``then``."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..._checks import fail
from ..findings import CODES
from ..zoo.registry import Case

__all__ = ["Fix", "NotApplicable"]


class NotApplicable(Exception):
    """The fix has nothing to change on this case (e.g. no sigmoid to swap); ``repair`` skips it."""


@dataclass(frozen=True)
class Fix:
    """A named change ``apply(case) -> case`` aimed at the codes in ``applies_to``.

    ``apply`` may change the model in place (``repair`` passes a deep copy) but never the tensors it was
    given; it raises :class:`NotApplicable` when there is nothing to change. ``code_snippet`` is the change as
    code for the user, a string or a function of the case *before* the fix.
    """

    name: str
    applies_to: frozenset[str]
    apply: Callable[[Case], Case]
    code_snippet: str | Callable[[Case], str]
    description: str = ""
    parts: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        codes = frozenset(self.applies_to)
        unknown = sorted(codes - set(CODES))
        if unknown:
            raise fail(ValueError, "applies_to", f"codes from {list(CODES)}", unknown, "Use the closed vocabulary.")
        object.__setattr__(self, "applies_to", codes)
        if not self.parts:
            object.__setattr__(self, "parts", (self.name,))

    def __call__(self, case: Case) -> Case:
        return self.apply(case)

    def snippet(self, case: Case) -> str:
        """The change as code, for ``case`` as it is before the fix."""
        return self.code_snippet(case) if callable(self.code_snippet) else self.code_snippet

    def then(self, other: Fix) -> Fix:
        """``self`` followed by ``other``, named ``"self+other"``, aimed at the codes of both."""

        def both(case: Case) -> Case:
            return other.apply(self.apply(case))

        def code(case: Case) -> str:
            with torch.random.fork_rng(devices=[]):  # applying to a scratch copy must not move the caller's RNG
                after = self.apply(_copy_case(case))
            return self.snippet(case) + "\n" + other.snippet(after)

        return Fix(
            f"{self.name}+{other.name}",
            self.applies_to | other.applies_to,
            both,
            code,
            f"{self.description}; then {other.description}",
            self.parts + other.parts,
        )


def _copy_case(case: Case) -> Case:
    return case.replace(model=copy.deepcopy(case.model))
