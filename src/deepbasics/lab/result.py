"""One claim's outcome: :class:`Result`, built from an experiment's record by applying the declared rule.

The experiment never returns a verdict. It returns numbers per seed (per task, if it has tasks);
:func:`results_of` applies each claim's :class:`~deepbasics.lab.rules.Rule` to them
(:func:`~deepbasics.lab.rules.evaluate`), per task, combines the task verdicts (:func:`~deepbasics.lab.tasks.combine`),
and fills the claim's takeaway with the measured numbers (:mod:`deepbasics.lab.words`). So the verdict and
every sentence about it depend only on the measurement and on what was declared before the run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from numbers import Real
from typing import Any

from .registry import Experiment
from .rules import Judgement, Rule, Verdict, evaluate
from .tasks import Task, combine
from .words import key_number, render

__all__ = ["Result", "TaskResult", "results_of", "scalar_metrics"]


@dataclass(frozen=True)
class TaskResult:
    """A claim's verdict on one task of a multi-task experiment (see :mod:`deepbasics.lab.tasks`).

    Attributes: ``name`` (``"mnist1d"``), ``label``/``data`` (from the task table), ``applies`` and ``why``
    (whether the claim is meant to apply there), ``verdict``/``reason`` (the rule on this task's seeds),
    ``metrics`` (scalar name -> per-seed list), ``figures``, ``seconds``, ``key_number`` and ``takeaway`` (in
    words), ``error``.
    """

    name: str
    label: str
    data: str
    applies: bool
    why: str
    verdict: Verdict
    reason: str
    metrics: Mapping[str, list[float]] = field(default_factory=dict)
    figures: tuple[str, ...] = ()
    seconds: float = 0.0
    key_number: str = ""
    takeaway: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``results.json`` (without ``name``, the key it is stored under)."""
        data = asdict(self)
        del data["name"]
        data["verdict"], data["figures"] = self.verdict.value, list(self.figures)
        data["metrics"] = {k: list(v) for k, v in self.metrics.items()}
        return data

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> TaskResult:
        """Inverse of :meth:`to_dict`."""
        kwargs = dict(data, name=name, verdict=Verdict(data["verdict"]), figures=tuple(data["figures"]))
        kwargs["metrics"] = _floats(data["metrics"])
        return cls(**kwargs)


def _floats(metrics: Mapping[str, Sequence[float | None]]) -> dict[str, list[float]]:
    return {k: [math.nan if v is None else float(v) for v in vs] for k, vs in metrics.items()}


@dataclass(frozen=True)
class Result:
    """The verdict on one claim ID, with the evidence.

    Attributes:
        id: the claim ID, e.g. ``"Q3.3.a"``.
        question_id, question, claim: from :mod:`deepbasics.faq`.
        verdict: ``holds``, ``does_not_hold``, ``inconclusive`` or ``error`` (a :class:`Verdict`, equal to
            its string).
        reason: why, in words with the measured numbers (``"slope < -0.3 in 3/3 seeds (mean -0.49, ...)"``).
        rule: the declared rule in words; metric: the name of the metric it judges.
        metrics: every scalar metric of the experiment, name -> per-seed list (seed order as ``seeds``).
        figures: PNG paths relative to the report folder.
        seconds: the experiment's run time (all seeds and the plot; shared by its claims).
        cpu_seconds: the CPU time its one-thread worker used: the cost on an idle core, unlike ``seconds``,
            which grows with whatever else the machine runs.
        error: the traceback or message when ``verdict == "error"``, else ``None``.
        experiment: the experiment's ID (its first claim); method: how it measures, in words.
        seeds, mode (``"quick"``/``"full"``), cached (reused from an earlier run).
        scope: for a ``holds`` on some tasks only, the names of the tasks where it held; else ``None``.
        sentence: for an experiment with tasks, the verdict in one sentence ("Holds on MNIST-1D; does not hold
            on 8x8 digits. Meant to apply on: MNIST-1D."); ``""`` without tasks.
        tasks: one :class:`TaskResult` per task, in the declared order (empty without tasks). The top-level
            ``metrics`` then hold ``"<task>.<metric>"`` keys.
        key_number: the judged number in words and units; takeaway: the claim's template filled with the
            measured numbers (per task).
        rule_since: the version the rule was declared in; rule_history: its earlier forms, oldest first, as
            ``{"changed_in", "what", "was", "reason"}``.
    """

    id: str
    question_id: str
    question: str
    claim: str
    verdict: Verdict
    reason: str
    rule: str
    metric: str
    metrics: Mapping[str, list[float]] = field(default_factory=dict)
    figures: tuple[str, ...] = ()
    seconds: float = 0.0
    error: str | None = None
    experiment: str = ""
    method: str = ""
    seeds: tuple[int, ...] = ()
    mode: str = "full"
    cached: bool = False
    cpu_seconds: float = 0.0
    scope: tuple[str, ...] | None = None
    sentence: str = ""
    tasks: tuple[TaskResult, ...] = ()
    key_number: str = ""
    takeaway: str = ""
    rule_since: str | None = None
    rule_history: tuple[Mapping[str, str], ...] = ()

    @property
    def why(self) -> str:
        """``"<verdict>: <reason>"``, the one-line explanation the report prints."""
        return f"{self.verdict.value}: {self.reason}"

    @property
    def label(self) -> str:
        """The verdict for people, scoped when it holds on some tasks only: ``"holds on MNIST-1D"``."""
        if self.scope is not None:
            labels = {task.name: task.label for task in self.tasks}
            return "holds on " + ", ".join(labels.get(name, name) for name in self.scope)
        return self.verdict.value.replace("_", " ")

    @property
    def contradicts_faq(self) -> bool:
        """True when the measurement says the FAQ's claim does not hold."""
        return self.verdict is Verdict.DOES_NOT_HOLD

    def summary(self, name: str | None = None) -> tuple[float, float] | None:
        """``(mean, std)`` of a metric over seeds (default: the rule's metric); ``None`` if absent or non-finite."""
        values = self.metrics.get(name or self.metric)
        if not values or not all(isinstance(v, float) and math.isfinite(v) for v in values):
            return None
        return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``results.json``: the verdict as its string, ``tasks`` as ``{name: {...}}`` or ``null``."""
        data = asdict(self)
        data["verdict"] = self.verdict.value
        data["figures"], data["seeds"] = list(self.figures), list(self.seeds)
        data["metrics"] = {k: list(v) for k, v in self.metrics.items()}
        data["scope"] = None if self.scope is None else list(self.scope)
        data["tasks"] = {task.name: task.to_dict() for task in self.tasks} if self.tasks else None
        data["rule_history"] = [dict(h) for h in self.rule_history]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        """Inverse of :meth:`to_dict` (``null`` metric values read back as NaN; older files lack the newer keys)."""
        kwargs = dict(data)
        kwargs.pop("faq", None)  # the report adds the question's FAQ text; it is not part of the result
        kwargs["verdict"] = Verdict(kwargs["verdict"])
        kwargs["figures"], kwargs["seeds"] = tuple(kwargs["figures"]), tuple(kwargs["seeds"])
        kwargs["metrics"] = _floats(data["metrics"])
        if kwargs.get("scope") is not None:
            kwargs["scope"] = tuple(kwargs["scope"])
        kwargs["tasks"] = tuple(TaskResult.from_dict(n, d) for n, d in (data.get("tasks") or {}).items())
        kwargs["rule_history"] = tuple(data.get("rule_history") or ())
        return cls(**kwargs)


def scalar_metrics(outputs: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """The keys whose value is a real number (or bool) in every seed, name -> per-seed floats."""
    if not outputs:
        return {}
    return {
        key: [float(out[key]) for out in outputs]
        for key in outputs[0]
        if all(key in out and isinstance(out[key], Real) for out in outputs)
    }


def _last_line(message: str) -> str:
    lines = [line for line in message.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else message


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[0].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")) if text else ""


def _clause(sentence: str) -> str:
    """A sentence as a clause: no final period, first letter lowered unless it starts an acronym ("MLP")."""
    text = sentence.rstrip(".")
    return text[0].lower() + text[1:] if len(text) > 1 and text[1].islower() else text


def _takeaway(exp: Experiment, cid: str, metrics: dict[str, list[float]], failed: bool) -> str:
    """The claim's template filled with these numbers, as written (no capital added), or ``""``."""
    template = exp.takeaways.get(cid)
    if template is None or failed:
        return ""
    try:
        return render(template, exp.metrics, metrics).strip().rstrip(".")
    except KeyError as exc:
        return f"(no takeaway: {exc.args[0]})"


def _history(rule: Rule) -> tuple[dict[str, str], ...]:
    return tuple(
        {"changed_in": r.changed_in, "what": r.what, "was": r.describe(), "reason": r.reason} for r in rule.history
    )


def _judge(rule: Rule, outputs: list, seeds: Sequence[int], error: str | None) -> Judgement:
    return Judgement(Verdict.ERROR, _last_line(error)) if error else evaluate(rule, outputs, seeds)


def _task_result(
    exp: Experiment, cid: str, task: Task, part: Mapping[str, Any], seeds: Sequence[int], error: str | None
) -> TaskResult:
    rule = exp.rules[cid]
    outputs = part.get("outputs", [])
    error = part.get("error") or error
    metrics = scalar_metrics(outputs)
    judgement = _judge(rule, outputs, seeds, error)
    failed = judgement.verdict is Verdict.ERROR
    key = key_number(rule.metric, exp.metrics.get(rule.metric), metrics.get(rule.metric, []))
    return TaskResult(
        name=task.name,
        label=task.label,
        data=task.data,
        applies=task.applies,
        why=task.why,
        verdict=judgement.verdict,
        reason=judgement.reason,
        metrics=metrics,
        figures=tuple(f"figures/{exp.id}/{task.name}/{name}" for name in part.get("figures", [])),
        seconds=float(part.get("seconds", 0.0)),
        key_number="" if failed else key,
        takeaway=_sentence(_takeaway(exp, cid, metrics, failed)),
        error=(error or judgement.reason) if failed else None,
    )


def _combined_fields(exp: Experiment, cid: str, record: Mapping[str, Any], seeds: Sequence[int]) -> dict[str, Any]:
    """The claim-level fields of a multi-task experiment: per-task results, combined verdict, words."""
    parts = record.get("tasks") or {}
    error = None if parts else record.get("error")  # no parts: the whole run failed (timeout, crash)
    tasks = tuple(_task_result(exp, cid, t, parts.get(t.name, {}), seeds, error) for t in exp.tasks)
    combined = combine(exp.tasks, [t.verdict for t in tasks])
    metric = exp.rules[cid].metric
    values = "; ".join(f"{t.label} {t.key_number.partition(': ')[2]}" for t in tasks if t.key_number)
    label = exp.metrics[metric].label if metric in exp.metrics else metric.replace("_", " ")
    errors = [f"task {t.name}: {t.error}" for t in tasks if t.error]
    return {
        "verdict": combined.verdict,
        "reason": "; ".join(f"{t.label}: {t.reason}" for t in tasks),
        "metrics": {f"{t.name}.{k}": v for t in tasks for k, v in t.metrics.items()},
        "figures": tuple(f for t in tasks for f in t.figures),
        "error": "\n".join(errors) if combined.verdict is Verdict.ERROR else None,
        "scope": combined.scope,
        "sentence": combined.sentence,
        "tasks": tasks,
        "key_number": f"{label}: {values}" if values else "",
        "takeaway": " ".join(f"On {t.label}, {_clause(t.takeaway)}." for t in tasks if t.takeaway),
    }


def _single_fields(exp: Experiment, cid: str, record: Mapping[str, Any], seeds: Sequence[int]) -> dict[str, Any]:
    rule = exp.rules[cid]
    outputs = record.get("outputs", [])
    error = record.get("error")
    metrics = scalar_metrics(outputs)
    judgement = _judge(rule, outputs, seeds, error)
    failed = judgement.verdict is Verdict.ERROR
    return {
        "verdict": judgement.verdict,
        "reason": judgement.reason,
        "metrics": metrics,
        "figures": tuple(f"figures/{exp.id}/{name}" for name in record.get("figures", [])),
        # a rule that cannot be applied (a missing metric) is an error of this claim only
        "error": error or (judgement.reason if failed else None),
        "key_number": "" if failed else key_number(rule.metric, exp.metrics.get(rule.metric), metrics[rule.metric]),
        "takeaway": _sentence(_takeaway(exp, cid, metrics, failed)),
    }


def results_of(
    exp: Experiment, record: Mapping[str, Any], cached: bool, seeds: Sequence[int], mode: str
) -> list[Result]:
    """One :class:`Result` per claim of ``exp`` from its worker record (see :mod:`deepbasics.lab._worker`)."""
    results = []
    for cid in exp.ids:
        rule = exp.rules[cid]
        fields = (_combined_fields if exp.tasks else _single_fields)(exp, cid, record, seeds)
        results.append(
            Result(
                id=cid,
                question_id=exp.question_id,
                question=exp.question,
                claim=exp.claims[cid],
                rule=rule.describe(),
                metric=rule.metric,
                seconds=float(record.get("seconds", 0.0)),
                cpu_seconds=float(record.get("cpu_seconds", 0.0)),
                experiment=exp.id,
                method=exp.method,
                seeds=tuple(seeds),
                mode=mode,
                cached=cached,
                rule_since=rule.since,
                rule_history=_history(rule),
                **fields,
            )
        )
    return results
