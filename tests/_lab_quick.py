"""One quick-mode run per (experiment, task, seed) for the whole test session, shared by the lab test modules.

The lab's experiment tests and the takeaway test all need real quick-mode outputs; computing each once keeps the
suite's cost at one quick run per experiment. Not a test module (no ``test_`` prefix); test modules import it
(pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

from typing import Any

_CACHE: dict[tuple[str, str | None, int], dict[str, Any]] = {}


def quick_run(exp, seed: int = 0, task: str | None = None) -> dict[str, Any]:
    """``exp.run(exp.params(quick=True, task=...), seed)``, computed once per session (raw values, not JSON)."""
    if task is None and exp.tasks:
        task = exp.tasks[0].name
    key = (exp.name, task, seed)
    if key not in _CACHE:
        _CACHE[key] = dict(exp.run(exp.params(quick=True, task=task), seed))
    return _CACHE[key]


def quick_outputs(exp, seed: int | None = None) -> dict[str | None, dict[str, Any]]:
    """Every task's quick output; ``seed=None`` reuses any seed already computed for the experiment, else 0."""
    if seed is None:
        seeds = [s for (name, _, s) in _CACHE if name == exp.name]
        seed = seeds[0] if seeds else 0
    return {task: quick_run(exp, seed, task) for task in exp.task_names}
