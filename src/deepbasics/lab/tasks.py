"""Tasks: the named data/model settings an experiment measures its claim on, and how their verdicts combine.

A verdict drawn from one small task can say the opposite of what holds where a claim is meant to apply (CNN.a
on 8x8 digits vs MNIST-1D, issue 15). So an experiment may declare several tasks; the engine runs every
``(task, seed)`` pair, judges each task with the claim's one :class:`~deepbasics.lab.rules.Rule`, and combines
the task verdicts into the claim's overall verdict (:func:`combine`).

Two pieces:

- :data:`TASKS`, the lab's shared table ``name -> TaskInfo(label, data)``: what the report calls a task and a
  one-line description of its data and size. A task name is declared once here and reused by every experiment
  (add a line here for a new one).
- :class:`Task`, one experiment's use of a task: whether the claim is meant to apply there (``applies``) and
  why, an optional ``detail`` (what this experiment changes, e.g. ``"20-layer MLP"``), and parameter overrides
  for the ``quick`` and ``full`` modes.

How task verdicts combine (``H`` = tasks where the claim holds, ``I`` = tasks where it is meant to apply):

1. ``error`` if any task is in error (a broken measurement is fixed, never outvoted);
2. ``holds`` with no scope if every task holds;
3. ``holds`` *scoped to H* ("holds on MNIST-1D, not on 8x8 digits") if some but not all tasks hold and ``H``
   contains at least one task of ``I``;
4. ``does_not_hold`` if no task of ``I`` holds and every task of ``I`` does not hold, whatever the tasks outside
   ``I`` say (a claim that holds only where it is not meant to apply is not confirmed; the sentence says so);
5. ``inconclusive`` otherwise: no task of ``I`` holds and at least one is inconclusive.

So with every task in ``I`` the overall verdict is ``holds`` (all), scoped ``holds`` (some), ``does_not_hold``
(none, all failing) or ``inconclusive`` (none holds, some inconclusive), as issue 15 defines them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .._checks import fail
from .rules import Verdict

__all__ = ["TASKS", "Combined", "Task", "TaskInfo", "combine", "scope_sentence"]


@dataclass(frozen=True)
class TaskInfo:
    """A row of the shared task table: ``label`` (short, for tables) and ``data`` (one line: data and size)."""

    label: str
    data: str


#: The lab's tasks. Sizes are those the lab uses (deepbasics.data); experiments may subsample (say so in
#: ``Task.detail``).
TASKS: Mapping[str, TaskInfo] = MappingProxyType(
    {
        "digits": TaskInfo(
            "8x8 digits",
            "scikit-learn's handwritten digits: 1,797 grey images of 8x8 pixels, 10 classes (deepbasics.data.digits)",
        ),
        "mnist1d": TaskInfo(
            "MNIST-1D",
            "MNIST-1D (Greydanus & Kobak 2020): 5,000 one-dimensional signals of 40 points, 10 classes, 4,000 train "
            "/ 1,000 test, generated locally",
        ),
        "mnist1d_shuffled": TaskInfo(
            "MNIST-1D, shuffled",
            "MNIST-1D with one fixed random permutation of the 40 positions: the same values, spatial order destroyed",
        ),
        # group A (Q1, Q2, Q3.3, Q11 conversions)
        "linear_teacher": TaskInfo(
            "random linear map",
            "a random Gaussian n x n matrix (N(0, 1/n) entries) learned by a deep linear net from whitened inputs, "
            "n = 16 (quick) or 24 (full)",
        ),
        "quadratic": TaskInfo(
            "quadratic",
            "a convex quadratic 1/2 (x - x*)^T A (x - x*) with condition number 100 in 20 dimensions (quick) or 1,000 "
            "in 50 (full), written as a least-squares model",
        ),
        "teacher_student": TaskInfo(
            "teacher-student regression",
            "regression on the outputs of a random 8-unit tanh teacher net plus noise 0.1 (deepbasics.data."
            "teacher_student): 200 examples of 5 features (quick) or 1,000 of 10 (full)",
        ),
        # Group C (architectures, activations, schedules, augmentation, recurrent nets), lab v2 conversions.
        "gaussian_images": TaskInfo(
            "random images",
            "i.i.d. standard normal 2-D inputs, one per seed, larger than every receptive field measured (96x96 "
            "quick, 320x320 full)",
        ),
    }
)


def _overrides(value: object, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise fail(TypeError, name, "a dict of parameter overrides", type(value).__name__, 'Write e.g. {"epochs": 30}.')
    return MappingProxyType(dict(value))


@dataclass(frozen=True)
class Task:
    """One task of an experiment: ``Task("mnist1d", applies=True, why="...", quick={"epochs": 30})``.

    Args:
        name: a key of :data:`TASKS` (``run`` receives it as ``params["task"]``).
        applies: whether the claim is meant to apply here (the setting its literature tests). Every experiment
            with tasks needs at least one such task; see the module docstring for how this shapes the verdict.
        why: one sentence: why the claim is (or is not) meant to apply on this task.
        detail: what this experiment changes on the task, e.g. ``"20-layer MLP"`` (shown after the label).
        quick, full: parameter overrides for this task in each mode; every key must be a parameter of the
            experiment. ``run`` gets ``{**mode_params, **overrides, "task": name}``.
    """

    name: str
    applies: bool
    why: str
    detail: str = ""
    quick: Mapping[str, Any] = field(default_factory=dict)
    full: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or self.name not in TASKS:
            raise fail(
                ValueError,
                "Task.name",
                f"a task of the lab's table ({', '.join(TASKS)})",
                repr(self.name),
                "Use one of them, or add a TaskInfo row to TASKS in deepbasics/lab/tasks.py.",
            )
        if not isinstance(self.applies, bool):
            raise fail(TypeError, "Task.applies", "True or False", repr(self.applies), "Say if the claim applies here.")
        if not isinstance(self.why, str) or not self.why.strip():
            raise fail(
                TypeError, "Task.why", "a sentence (non-empty str)", repr(self.why), "Say why it (does not) apply."
            )
        if not isinstance(self.detail, str):
            raise fail(TypeError, "Task.detail", "a str", type(self.detail).__name__, 'Write e.g. "20-layer MLP".')
        object.__setattr__(self, "quick", _overrides(self.quick, f"Task({self.name!r}).quick"))
        object.__setattr__(self, "full", _overrides(self.full, f"Task({self.name!r}).full"))

    @property
    def label(self) -> str:
        """The task's label, with this experiment's detail: ``"MNIST-1D"``, ``"8x8 digits (20-layer MLP)"``."""
        base = TASKS[self.name].label
        return f"{base} ({self.detail})" if self.detail else base

    @property
    def data(self) -> str:
        """One line on the task's data and size (from :data:`TASKS`)."""
        return TASKS[self.name].data

    def overrides(self, quick: bool) -> Mapping[str, Any]:
        """This task's parameter overrides in the given mode."""
        return self.quick if quick else self.full


def check_tasks(tasks: object, param_names: set[str]) -> tuple[Task, ...]:
    """Validate an experiment's ``tasks`` field; return it as a tuple (empty: a single-task experiment)."""
    if isinstance(tasks, Task) or not isinstance(tasks, Sequence) or isinstance(tasks, str):
        raise fail(
            TypeError, "tasks", "a tuple of Task(...)", type(tasks).__name__, 'Write tasks=(Task("digits", ...),).'
        )
    tasks = tuple(tasks)
    for task in tasks:
        if not isinstance(task, Task):
            raise fail(TypeError, "tasks", "Task(...) entries", type(task).__name__, 'Write Task("mnist1d", ...).')
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise fail(ValueError, "tasks", "each task once", names, "Remove the repeated task.")
    if tasks and not any(t.applies for t in tasks):
        raise fail(
            ValueError,
            "tasks",
            "at least one task where the claim is meant to apply (applies=True)",
            names,
            "Add the setting the claim's literature tests (MNIST-1D, a deeper net, longer sequences, ...).",
        )
    if "task" in param_names:
        raise fail(ValueError, "quick/full", "no parameter named 'task' (the engine sets it)", "'task'", "Rename it.")
    for task in tasks:
        for mode in ("quick", "full"):
            unknown = sorted(set(task.overrides(mode == "quick")) - param_names)
            if unknown:
                raise fail(
                    ValueError,
                    f"Task({task.name!r}).{mode}",
                    f"overrides of the experiment's parameters ({', '.join(sorted(param_names))})",
                    f"unknown {unknown}",
                    "Declare the parameter in quick and full first.",
                )
    return tasks


@dataclass(frozen=True)
class Combined:
    """The overall verdict of a claim measured on several tasks: ``scope`` names the tasks where a scoped
    ``holds`` held (``None`` when it held everywhere or did not hold), ``sentence`` says it in words."""

    verdict: Verdict
    scope: tuple[str, ...] | None
    sentence: str


def _labels(tasks: Sequence[Task]) -> str:
    labels = [t.label for t in tasks]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


_PHRASE = {
    Verdict.HOLDS: "holds on",
    Verdict.DOES_NOT_HOLD: "does not hold on",
    Verdict.INCONCLUSIVE: "is inconclusive on",
    Verdict.ERROR: "is in error on",
}


def scope_sentence(tasks: Sequence[Task], verdicts: Sequence[Verdict]) -> str:
    """``"Holds on MNIST-1D; does not hold on 8x8 digits. Meant to apply on: MNIST-1D."``"""
    parts = []
    for verdict, phrase in _PHRASE.items():
        group = [t for t, v in zip(tasks, verdicts, strict=True) if v is verdict]
        if group:
            parts.append(f"{phrase} {_labels(group)}")
    text = "; ".join(parts)
    intended = [t for t in tasks if t.applies]
    where = "every task" if len(intended) == len(tasks) else _labels(intended)
    return f"{text[0].upper()}{text[1:]}. Meant to apply on: {where}."


def combine(tasks: Sequence[Task], verdicts: Sequence[Verdict]) -> Combined:
    """Combine per-task verdicts into the claim's verdict, by the five rules of the module docstring."""
    if not tasks or len(tasks) != len(verdicts):
        raise ValueError(f"combine: expected one verdict per task, got {len(verdicts)} for {len(tasks)} tasks.")
    verdicts = [Verdict(v) for v in verdicts]
    sentence = scope_sentence(tasks, verdicts)
    held = tuple(t.name for t, v in zip(tasks, verdicts, strict=True) if v is Verdict.HOLDS)
    intended = [v for t, v in zip(tasks, verdicts, strict=True) if t.applies]
    if Verdict.ERROR in verdicts:
        return Combined(Verdict.ERROR, None, sentence)
    if len(held) == len(tasks):
        return Combined(Verdict.HOLDS, None, sentence)
    if Verdict.HOLDS in intended:
        return Combined(Verdict.HOLDS, held, sentence)
    if all(v is Verdict.DOES_NOT_HOLD for v in intended):
        return Combined(Verdict.DOES_NOT_HOLD, None, sentence)
    return Combined(Verdict.INCONCLUSIVE, None, sentence)
