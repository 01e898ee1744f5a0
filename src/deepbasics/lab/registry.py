"""The experiment registry: each experiment declared as data (asv-style), found by its FAQ claim IDs.

An :class:`Experiment` is a frozen record of what is measured and how it is judged: the claim IDs it
covers, a short method, the parameters of the ``quick`` and ``full`` modes, the tasks it runs on (optional),
the number of seeds, a timeout, one :class:`~deepbasics.lab.rules.Rule` per claim ID, and how its numbers read
(:class:`~deepbasics.lab.words.Metric` descriptions, one takeaway template per claim), all fixed before anything
runs. Everything is
validated when the module that declares it is imported, so a typo fails at once, not after an hour of
training. The question and claim texts come from :mod:`deepbasics.faq`; they are never restated here.

A :class:`Registry` holds experiments; the default one, :data:`REGISTRY`, is filled by importing every module
of :mod:`deepbasics.lab.experiments` (see :func:`experiments`). Tests build their own ``Registry()``.
Reference: airspeed velocity (asv), "Writing benchmarks": benchmark attributes ``params``, ``timeout``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib
import inspect
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .._checks import check_int, check_positive, fail
from ..faq import CLAIMS, question_of
from .rules import Rule
from .selection import parse_only
from .tasks import Task, check_tasks
from .words import Metric, check_metrics, check_takeaways

__all__ = [
    "FIELDS",
    "REGISTRY",
    "Experiment",
    "PlotFn",
    "Registry",
    "RunFn",
    "coverage",
    "experiment",
    "experiments",
]

RunFn = Callable[[dict[str, Any], int], Mapping[str, Any]]
PlotFn = Callable[[list[dict[str, Any]], dict[str, Any], Path], list[Path]]

_ORDER = {cid: i for i, cid in enumerate(CLAIMS)}


def _json_params(params: object, name: str) -> Mapping[str, Any]:
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise fail(TypeError, name, "a dict with string keys", type(params).__name__, 'Write e.g. {"n": 100}.')
    try:  # JSON round trip: params are part of the cache key and of the report, and tuples become lists here
        plain = json.loads(json.dumps(dict(params), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise fail(
            TypeError, name, "JSON data (numbers, strings, bools, None, lists, dicts)", exc, "Use plain values."
        ) from exc
    return MappingProxyType(plain)


def _check_callable(fn: object, name: str, args: tuple[object, ...], signature: str) -> None:
    if not callable(fn):
        raise fail(TypeError, name, f"a function {signature}", type(fn).__name__, "Pass a function.")
    try:
        inspect.signature(fn).bind(*args)
    except TypeError as exc:
        raise fail(TypeError, name, f"a function {signature}", f"{fn!r} ({exc})", "Fix its parameters.") from exc
    except ValueError:  # builtins without a signature: accept
        pass


@dataclass(frozen=True, eq=False)
class Experiment:
    """One experiment: what it measures (``run``), how it is shown (``plot``) and how it is judged (``rules``).

    Fields (all validated on construction; prefer the :meth:`Registry.experiment` decorator):
        ids: the claim IDs it covers, siblings of one FAQ question, e.g. ``("Q3.3.a", "Q3.3.b")``.
        run: ``run(params: dict, seed: int) -> dict``, the per-seed measurement (JSON-able values).
        method: what is measured and how, in two or three sentences.
        quick, full: the parameters of each mode (same keys; JSON data). ``run`` gets a fresh copy.
        rules: ``{claim_id: Rule}``, exactly one rule per ID in ``ids``; the same rule judges every task.
        tasks: ``(Task(...), ...)``: the tasks to measure on (:mod:`deepbasics.lab.tasks`); empty (default) for
            one implicit task, in which case ``run`` gets the mode's parameters unchanged (no ``"task"`` key).
        metrics: ``{metric_name: Metric(label, unit=..., scale=...)}``: how the numbers read in the report.
        takeaways: ``{claim_id: template}``: one plain-language sentence per claim with ``{metric}``
            placeholders, filled with the measured numbers per task (:mod:`deepbasics.lab.words`).
        seeds: how many seeds (``0..seeds-1``) to run (default 3); ``1`` for ``spread="value"`` rules.
        timeout: seconds allowed for all tasks, seeds and plots together (default 300), in either mode.
        plot: ``plot(outputs: list[dict], params: dict, outdir: Path) -> list[Path]`` or ``None``; with tasks it is
            called once per task with that task's outputs and params, and its own ``outdir``.
    """

    ids: tuple[str, ...]
    run: RunFn
    method: str
    quick: Mapping[str, Any]
    full: Mapping[str, Any]
    rules: Mapping[str, Rule]
    tasks: tuple[Task, ...] = ()
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    takeaways: Mapping[str, str] = field(default_factory=dict)
    seeds: int = 3
    timeout: float = 300.0
    plot: PlotFn | None = None

    def __post_init__(self) -> None:
        ids = (self.ids,) if isinstance(self.ids, str) else tuple(self.ids)
        if not ids or len(set(ids)) != len(ids):
            raise fail(ValueError, "ids", "one or more distinct claim IDs", repr(self.ids), 'Write ids=("Q2.a",).')
        for cid in ids:
            if cid not in CLAIMS:
                close = difflib.get_close_matches(str(cid), CLAIMS, n=3)
                hint = f"Did you mean {', '.join(close)}?" if close else "See deepbasics.faq.CLAIMS."
                raise fail(ValueError, "ids", "claim IDs from deepbasics.faq.CLAIMS", repr(cid), hint)
        questions = {question_of(cid).id for cid in ids}
        if len(questions) > 1:
            raise fail(
                ValueError, "ids", "sibling claims of one question", f"{ids} from {sorted(questions)}", "Split it."
            )
        object.__setattr__(self, "ids", ids)
        _check_callable(self.run, "run", ({}, 0), "run(params: dict, seed: int) -> dict")
        qualname = getattr(self.run, "__qualname__", "")
        if "<locals>" in qualname or "<lambda>" in qualname:
            raise fail(
                ValueError,
                "run",
                "a function defined at module level (worker processes import it by name)",
                qualname,
                "Move the experiment out of the enclosing function.",
            )
        if not isinstance(self.method, str) or not self.method.strip():
            raise fail(
                TypeError,
                "method",
                "two or three sentences (a non-empty str)",
                repr(self.method),
                "Say what is measured.",
            )
        object.__setattr__(self, "method", " ".join(self.method.split()))
        quick, full = _json_params(self.quick, "quick"), _json_params(self.full, "full")
        if set(quick) != set(full):
            diff = sorted(set(quick) ^ set(full))
            raise fail(ValueError, "quick/full", "the same parameter names", f"differences {diff}", "Align them.")
        object.__setattr__(self, "quick", quick)
        object.__setattr__(self, "full", full)
        if isinstance(self.rules, Rule) or not isinstance(self.rules, Mapping):
            raise fail(
                TypeError,
                "rules",
                "a dict {claim_id: Rule}",
                type(self.rules).__name__,
                f"Write rules={{{ids[0]!r}: Rule(...)}}.",
            )
        if set(self.rules) != set(ids):
            missing, extra = sorted(set(ids) - set(self.rules)), sorted(set(self.rules) - set(ids))
            raise fail(
                ValueError,
                "rules",
                f"exactly one rule per claim ID {list(ids)}, declared before the experiment runs",
                f"missing {missing}, extra {extra}",
                "Add a Rule for each claim and none for others.",
            )
        for cid, rule in self.rules.items():
            if not isinstance(rule, Rule):
                raise fail(TypeError, f"rules[{cid!r}]", "a Rule", type(rule).__name__, 'Write Rule("m", ">", 0).')
        object.__setattr__(self, "rules", MappingProxyType({cid: self.rules[cid] for cid in ids}))
        object.__setattr__(self, "tasks", check_tasks(self.tasks, set(quick)))
        object.__setattr__(self, "metrics", MappingProxyType(check_metrics(self.metrics)))
        object.__setattr__(self, "takeaways", MappingProxyType(check_takeaways(self.takeaways, ids, self.metrics)))
        seeds = check_int(self.seeds, "seeds", low=1)
        if seeds != 1 and self._deterministic:
            raise fail(
                ValueError, "seeds", 'seeds=1 with a spread="value" rule', seeds, "Set seeds=1 or use all_seeds/ci."
            )
        if seeds < 2 and any(r.spread == "ci" for r in self.rules.values()):
            raise fail(ValueError, "seeds", 'at least 2 seeds with a spread="ci" rule', seeds, "Use seeds=3 or more.")
        object.__setattr__(self, "timeout", check_positive(self.timeout, "timeout"))
        if self.plot is not None:
            _check_callable(self.plot, "plot", ([], {}, Path()), "plot(outputs, params, outdir) -> list[Path]")

    # --- derived, read-only views -------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """The first claim ID; names the experiment (cache file, figure folder)."""
        return self.ids[0]

    @property
    def question_id(self) -> str:
        """The FAQ question's ID, e.g. ``"Q3.3"``."""
        return question_of(self.id).id

    @property
    def question(self) -> str:
        """The FAQ question, from :data:`deepbasics.faq.QUESTIONS`."""
        return question_of(self.id).title

    @property
    def claim(self) -> str:
        """The text of the first claim (``.claims`` has all of them)."""
        return CLAIMS[self.id]

    @property
    def claims(self) -> Mapping[str, str]:
        """Claim ID -> claim text for every ID the experiment covers."""
        return MappingProxyType({cid: CLAIMS[cid] for cid in self.ids})

    @property
    def module(self) -> str:
        """The module that declares the experiment (its source is part of the cache key)."""
        return self.run.__module__

    @property
    def name(self) -> str:
        """``module.function`` of the run function."""
        return f"{self.module}.{self.run.__qualname__}"

    def params(self, quick: bool, task: str | None = None) -> dict[str, Any]:
        """A fresh, mutable copy of the parameters ``run`` gets in a mode, on a task (if the experiment has tasks).

        With tasks: ``{**mode_params, **task_overrides, "task": task}``; ``task`` must name one of them.
        Without: the mode's parameters, and ``task`` must be ``None``.
        """
        base = copy.deepcopy(dict(self.quick if quick else self.full))
        if not self.tasks:
            if task is not None:
                raise fail(ValueError, "task", "None (this experiment has no tasks)", repr(task), "Drop task=.")
            return base
        by_name = {t.name: t for t in self.tasks}
        if task not in by_name:
            raise fail(ValueError, "task", f"one of the experiment's tasks {list(by_name)}", repr(task), "")
        overrides = json.loads(json.dumps(dict(by_name[task].overrides(quick))))  # tuples -> lists, as in params
        return {**base, **overrides, "task": task}

    @property
    def task_names(self) -> tuple[str | None, ...]:
        """The names of the tasks, in order; ``(None,)`` for an experiment without tasks."""
        return tuple(t.name for t in self.tasks) or (None,)

    def seed_list(self, override: int | None = None) -> tuple[int, ...]:
        """The seeds to run: ``0..n-1`` with ``n = override or self.seeds``; a ``value`` rule always runs once."""
        n = self.seeds if override is None or self._deterministic else check_int(override, "seeds", low=1)
        return tuple(range(n))

    @property
    def _deterministic(self) -> bool:
        return any(r.spread == "value" for r in self.rules.values())

    def __repr__(self) -> str:
        tasks = f", tasks={[t.name for t in self.tasks]}" if self.tasks else ""
        return f"Experiment(ids={self.ids}, run={self.name}{tasks}, seeds={self.seeds}, timeout={self.timeout:g})"

    @property
    def locator(self) -> tuple[str, str, str]:
        """``(module, qualname, id)``: how a worker process finds the experiment again (``_worker.locate``)."""
        return (self.module, self.run.__qualname__, self.id)


#: The fields an experiment declares (those of :class:`Experiment` but ``run``); anything else is rejected.
FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Experiment) if f.name != "run")


class Registry:
    """A set of experiments indexed by claim ID; one claim belongs to at most one experiment."""

    def __init__(self) -> None:
        self._by_claim: dict[str, Experiment] = {}

    def add(self, exp: Experiment) -> Experiment:
        """Register ``exp``; re-registering the same function (a module reload) replaces the old entry."""
        if not isinstance(exp, Experiment):
            raise fail(TypeError, "exp", "an Experiment", type(exp).__name__, "Use the experiment decorator.")
        for cid in exp.ids:
            old = self._by_claim.get(cid)
            if old is not None and old.name != exp.name:
                raise ValueError(
                    f"ids: expected each claim ID in one experiment, got {cid} in both {old.name} and {exp.name}. "
                    "Merge the two experiments or give each its own claims."
                )
        stale = {cid for cid, old in self._by_claim.items() if old.name == exp.name}
        for cid in stale:
            del self._by_claim[cid]
        self._by_claim.update(dict.fromkeys(exp.ids, exp))
        return exp

    def experiment(
        self,
        *,
        ids: str | Iterable[str],
        method: str,
        quick: Mapping[str, Any],
        full: Mapping[str, Any],
        rules: Mapping[str, Rule],
        tasks: Iterable[Task] = (),
        metrics: Mapping[str, Metric] | None = None,
        takeaways: Mapping[str, str] | None = None,
        seeds: int = 3,
        timeout: float = 300.0,
        plot: PlotFn | None = None,
        **unknown: Any,
    ) -> Callable[[RunFn], Experiment]:
        """Decorator: declare the decorated ``run(params, seed) -> dict`` as an experiment and register it.

        The fields are those of :class:`Experiment` (see its docstring); an unknown keyword is a
        ``TypeError`` that lists the valid ones. Returns the :class:`Experiment`, so the module-level
        name is the experiment (``exp.run(params, seed)`` calls the function directly, e.g. in a test).
        """
        if unknown:
            bad = sorted(unknown)
            close = [m for b in bad for m in difflib.get_close_matches(b, FIELDS, n=1)]
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise TypeError(
                f"experiment: expected only the fields {', '.join(FIELDS)}, got unknown {', '.join(bad)}.{hint}"
            )
        fields = dict(
            ids=ids,
            method=method,
            quick=quick,
            full=full,
            rules=rules,
            tasks=tasks,
            metrics={} if metrics is None else metrics,
            takeaways={} if takeaways is None else takeaways,
            seeds=seeds,
            timeout=timeout,
        )

        def decorate(run: RunFn) -> Experiment:
            return self.add(Experiment(run=run, plot=plot, **fields))

        return decorate

    def experiments(self) -> list[Experiment]:
        """Every experiment once, in the FAQ's order of their first claim."""
        unique = {exp.name: exp for exp in self._by_claim.values()}
        return sorted(unique.values(), key=lambda e: _ORDER[e.id])

    def claim_ids(self) -> list[str]:
        """Every covered claim ID, in the FAQ's order."""
        return sorted(self._by_claim, key=_ORDER.__getitem__)

    def get(self, claim_id: str) -> Experiment:
        """The experiment that covers ``claim_id``; ``KeyError`` lists what is covered."""
        try:
            return self._by_claim[claim_id]
        except KeyError:
            raise KeyError(f"no experiment covers {claim_id!r}; covered: {', '.join(self.claim_ids())}") from None

    def select(self, only: str | Iterable[str] | None = None) -> list[Experiment]:
        """The experiments covering the claims ``only`` selects (see :mod:`deepbasics.lab.selection`)."""
        wanted = parse_only(only, self.claim_ids(), CLAIMS)
        if wanted is None:
            return self.experiments()
        return [exp for exp in self.experiments() if set(exp.ids) & set(wanted)]

    def __iter__(self) -> Iterator[Experiment]:
        return iter(self.experiments())

    def __len__(self) -> int:
        return len(self.experiments())

    def __contains__(self, claim_id: object) -> bool:
        return claim_id in self._by_claim


#: The default registry: every experiment of :mod:`deepbasics.lab.experiments`.
REGISTRY = Registry()

#: ``@experiment(ids=..., method=..., quick=..., full=..., rules=..., tasks=(), metrics={}, takeaways={}, seeds=3,
#: timeout=300.0, plot=None)`` declares and registers an experiment in the default registry.
experiment = REGISTRY.experiment


def default_registry() -> Registry:
    """The default registry after importing every module of :mod:`deepbasics.lab.experiments`."""
    importlib.import_module("deepbasics.lab.experiments").discover()
    return REGISTRY


def experiments() -> list[Experiment]:
    """Every registered experiment of the lab, in the FAQ's order (imports the experiment modules first)."""
    return default_registry().experiments()


def coverage() -> dict[str, list[str]]:
    """Question ID -> the claim IDs the lab measures, from the registry (``deepbasics faq`` prints this)."""
    out: dict[str, list[str]] = {}
    for cid in default_registry().claim_ids():
        out.setdefault(question_of(cid).id, []).append(cid)
    return out
