"""The :class:`Fix` type: a named change to a :class:`~deepbasics.doctor.case.Case`, composable with ``then``."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..._checks import fail
from ..case import Case
from ..codes import TABLE
from ..findings import CODES

__all__ = ["Fix", "NotApplicable"]


class NotApplicable(Exception):
    """The fix has nothing to change on this case (e.g. no sigmoid to swap); ``repair`` skips it."""


@dataclass(frozen=True)
class Fix:
    """A named change ``apply(case) -> case`` aimed at the codes in ``applies_to``.

    ``applies_to`` is what the fix declares, joined with every code whose table row lists it (or, for ``he_init``
    and ``glorot_init``, ``"he_or_glorot"``) among its repair candidates. ``apply`` may change the model in place
    (``repair`` passes a deep copy) but never the tensors it was given; it raises :class:`NotApplicable` when
    there is nothing to change. ``code_snippet`` is the change as code for the user, a string or a function of
    the case *before* the fix.
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
        if not self.parts:
            object.__setattr__(self, "parts", (self.name,))
        object.__setattr__(self, "applies_to", codes | _listed_for(self.parts))

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


def _listed_for(parts: tuple[str, ...]) -> frozenset[str]:
    """The codes whose repair candidates (code table) name one of ``parts``."""
    names = set(parts) | ({"he_or_glorot"} if {"he_init", "glorot_init"} & set(parts) else set())
    return frozenset(row.code for row in TABLE if names & set(row.candidates))


def _copy_case(case: Case) -> Case:
    return case.replace(model=copy.deepcopy(case.model))
