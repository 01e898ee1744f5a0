"""The fault zoo: broken and healthy training setups with known diagnoses, described as data.

Each :class:`Setup` names what is wrong (``expected`` finding codes; empty for a healthy run), the
architecture (MLP, CNN, LSTM, residual) and ``build(seed) -> Case``, a fresh model, loss, data and optimizer
factory; :class:`Case` and the functions that train and diagnose it belong to the doctor
(:mod:`deepbasics.doctor.case`), the zoo only builds cases. The zoo is the doctor's test bench
(``benchmarks/doctor_zoo.py`` measures recall per code, false findings on healthy setups and the repair success
rate) and the source of ``deepbasics doctor --demo``.

>>> from deepbasics.doctor import zoo
>>> case = zoo.get("dead_relu_mlp").build(seed=0)
>>> report = diagnose(case.model, case.loss_fn, case.train_data, case.val_data, case.optimizer(), case.steps,
...                   batch_size=case.batch_size)                                    # doctest: +SKIP

Every code ``diagnose`` can find (``seen_by`` in the code table) has at least one broken setup
(:func:`coverage`); at least eight setups are healthy. The practice codes (a broken training loop) need a loop of
the user's, which ``diagnose`` does not run: they are exercised by ``tests/test_doctor_practice.py``.
"""

from __future__ import annotations

from . import broken_inputs, broken_training, healthy_setups  # noqa: F401  (importing them registers the setups)
from .parts import NaiveLogSoftmax, Scale
from .registry import ARCHITECTURES, REGISTRY, TASKS, Case, Registry, Score, Setup, setup

__all__ = [
    "ARCHITECTURES",
    "REGISTRY",
    "TASKS",
    "Case",
    "NaiveLogSoftmax",
    "Registry",
    "Scale",
    "Score",
    "Setup",
    "broken",
    "coverage",
    "get",
    "healthy",
    "setup",
    "setups",
]


def setups(architecture: str | None = None) -> list[Setup]:
    """Every registered setup (optionally only those of one ``architecture``), in registration order."""
    if architecture is not None:
        from ..._checks import check_choice

        check_choice(architecture, "architecture", ARCHITECTURES)
        return [s for s in REGISTRY if s.architecture == architecture]
    return list(REGISTRY)


def get(name: str) -> Setup:
    """The setup called ``name`` (``ValueError`` listing close names if there is none)."""
    return REGISTRY.get(name)


def broken() -> list[Setup]:
    """The setups with at least one expected finding."""
    return [s for s in REGISTRY if not s.healthy]


def healthy() -> list[Setup]:
    """The setups on which the doctor must report no warning or error."""
    return [s for s in REGISTRY if s.healthy]


def coverage() -> dict[str, list[str]]:
    """Finding code -> names of the broken setups that expect it (every code ``diagnose`` can find is a key)."""
    from ..codes import TABLE

    table: dict[str, list[str]] = {row.code: [] for row in TABLE if "diagnose" in row.seen_by}
    for s in broken():
        for code in sorted(s.expected):
            table[code].append(s.name)
    return table
