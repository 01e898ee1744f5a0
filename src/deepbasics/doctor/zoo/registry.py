"""The fault zoo's data model: a :class:`Setup` (a described, registered training run) builds a :class:`Case`.

A *setup* is declared as data (asv-style, like :mod:`deepbasics.lab.registry`): a name, a one-line
description, the architecture, and the finding codes the doctor MUST report on it (``expected``; empty for a
healthy run), plus codes that may legitimately accompany them (``allowed``: a learning rate of 10 that
diverges may also produce inf/nan, so ``nonfinite`` is allowed next to ``diverging_loss``). Its ``build(seed)``
returns a fresh :class:`Case`: the model, the loss, the data and an optimizer factory, everything ``diagnose``
and ``repair`` need, deterministic in ``seed`` and without touching the caller's global random state.

Scoring a diagnosis against a setup (:meth:`Setup.score`): recall is ``expected & found``; a *false
finding* is a warning/error code outside ``expected | allowed`` (info-level advice never counts as false).

Reference: airspeed velocity (asv), "Writing benchmarks" (benchmarks as declared data); the fault-zoo idea
follows AUTOTRAINER (Zhang et al., ICSE 2021, section 5.1: a benchmark of buggy models with known problems).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch

from ..._checks import check_choice, check_int, fail
from ..case import ARCHITECTURES, TASKS, Case, OptimizerFactory
from ..findings import CODES, Finding, Severity

__all__ = [
    "ARCHITECTURES",
    "REGISTRY",
    "TASKS",
    "Case",
    "OptimizerFactory",
    "Registry",
    "Score",
    "Setup",
    "setup",
]


@dataclass(frozen=True)
class Score:
    """How a set of found codes compares with a setup's ground truth.

    ``detected = expected & found``, ``missed = expected - found``, ``false = serious - (expected | allowed)``
    where ``serious`` are the found codes of severity warning or error.
    """

    setup: str
    expected: frozenset[str]
    found: frozenset[str]
    detected: frozenset[str]
    missed: frozenset[str]
    false: frozenset[str]

    @property
    def passed(self) -> bool:
        """Every expected code found and no false warning/error."""
        return not self.missed and not self.false


@dataclass(frozen=True)
class Setup:
    """A registered zoo entry: ``build(seed) -> Case`` plus its ground truth.

    Attributes:
        name: unique identifier (``snake_case``), e.g. ``"sigmoid_deep_mlp"``.
        description: one sentence: what is wrong (or that nothing is) and why the doctor should see it.
        expected: codes that MUST be found; empty for a healthy setup.
        build: ``build(seed: int = 0) -> Case``; deterministic in ``seed``. Stored wrapped: the call validates
            ``seed`` and the result and runs under ``torch.random.fork_rng`` seeded with ``seed``, so building a
            case never moves the caller's global random stream.
        architecture: one of :data:`ARCHITECTURES`.
        allowed: codes that may also be found without counting as false (consequences of the fault).
        faq: the FAQ question the fault illustrates (e.g. ``"Q3.3"``), "" for healthy setups.
    """

    name: str
    description: str
    expected: frozenset[str]
    build: Callable[[int], Case]
    architecture: str
    allowed: frozenset[str] = field(default=frozenset())
    faq: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise fail(ValueError, "name", "a snake_case identifier", repr(self.name), "Use e.g. 'dead_relu_mlp'.")
        check_choice(self.architecture, "architecture", ARCHITECTURES)
        for attr in ("expected", "allowed"):
            codes = frozenset(getattr(self, attr))
            unknown = sorted(codes - set(CODES))
            if unknown:
                raise fail(ValueError, attr, f"codes from {list(CODES)}", unknown, "Use the closed vocabulary.")
            object.__setattr__(self, attr, codes)
        if not callable(self.build):
            raise fail(TypeError, "build", "a function seed -> Case", type(self.build).__name__, "")
        if not getattr(self.build, "_zoo_wrapped", False):
            object.__setattr__(self, "build", _seeded(self.name, self.architecture, self.build))

    @property
    def healthy(self) -> bool:
        """True when nothing is wrong (``expected`` is empty)."""
        return not self.expected

    def score(self, findings: Iterable[Finding]) -> Score:
        """Compare ``findings`` (from ``diagnose`` on this setup) with the ground truth; see :class:`Score`."""
        findings = list(findings)
        found = frozenset(f.code for f in findings)
        serious = frozenset(f.code for f in findings if f.severity in (Severity.WARNING, Severity.ERROR))
        return Score(
            setup=self.name,
            expected=self.expected,
            found=found,
            detected=self.expected & found,
            missed=self.expected - found,
            false=serious - self.expected - self.allowed,
        )


def _seeded(name: str, architecture: str, build: Callable[[int], Case]) -> Callable[[int], Case]:
    """Wrap a setup's ``build`` so that it validates ``seed`` and its result, and runs under a forked RNG."""

    def seeded_build(seed: int = 0) -> Case:
        seed = check_int(seed, "seed", low=0)
        with torch.random.fork_rng(devices=[]):  # the caller's global stream is left where it was
            torch.manual_seed(seed)
            case = build(seed)
        if not isinstance(case, Case):
            raise fail(TypeError, f"{name}.build", "a Case", type(case).__name__, "Return Case(...).")
        if case.architecture != architecture:
            raise fail(
                ValueError,
                f"{name}.build",
                f"a case with architecture {architecture!r}",
                repr(case.architecture),
                "Make the setup and the case agree.",
            )
        case.name = name
        return case

    seeded_build._zoo_wrapped = True  # type: ignore[attr-defined]
    seeded_build.__doc__ = build.__doc__
    return seeded_build


class Registry:
    """An ordered name -> :class:`Setup` map that rejects duplicates and lists close names for typos."""

    def __init__(self) -> None:
        self._setups: dict[str, Setup] = {}

    def add(self, setup: Setup) -> Setup:
        """Register ``setup``; a second setup with the same name raises ``ValueError``."""
        if not isinstance(setup, Setup):
            raise fail(TypeError, "setup", "a Setup", type(setup).__name__, "Build one with Setup(...).")
        if setup.name in self._setups:
            raise fail(ValueError, "setup.name", "a new name", repr(setup.name), "Names are unique in the zoo.")
        self._setups[setup.name] = setup
        return setup

    def get(self, name: str) -> Setup:
        """The setup called ``name``; an unknown name lists the closest registered ones."""
        if name not in self._setups:
            close = difflib.get_close_matches(str(name), self._setups, n=3)
            hint = f"Did you mean {', '.join(close)}?" if close else "List them with deepbasics.doctor.zoo.setups()."
            raise fail(ValueError, "name", "the name of a zoo setup", repr(name), hint)
        return self._setups[name]

    def __iter__(self) -> Iterator[Setup]:
        return iter(self._setups.values())

    def __len__(self) -> int:
        return len(self._setups)

    def __contains__(self, name: object) -> bool:
        return name in self._setups

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._setups)


#: The default registry, filled when :mod:`deepbasics.doctor.zoo` imports its ``broken`` and ``healthy`` modules.
REGISTRY = Registry()


def setup(
    name: str,
    description: str,
    expected: Iterable[str],
    architecture: str,
    *,
    allowed: Iterable[str] = (),
    faq: str = "",
    registry: Registry | None = None,
) -> Callable[[Callable[[int], Case]], Setup]:
    """Decorator: register ``build(seed) -> Case`` as a :class:`Setup` (in :data:`REGISTRY` by default)."""

    def register(build: Callable[[int], Case]) -> Setup:
        entry = Setup(name, description, frozenset(expected), build, architecture, frozenset(allowed), faq)
        return (REGISTRY if registry is None else registry).add(entry)

    return register
