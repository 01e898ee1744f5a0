"""One claim's outcome: :class:`Result`, built from an experiment's record by applying the declared rule.

The experiment never returns a verdict. It returns numbers per seed; :func:`results_of` applies each
claim's :class:`~deepbasics.lab.rules.Rule` to them (:func:`~deepbasics.lab.rules.evaluate`), so the verdict
depends only on the measurement and on the rule fixed before the run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from numbers import Real
from typing import Any

from .registry import Experiment
from .rules import Judgement, Verdict, evaluate

__all__ = ["Result", "results_of", "scalar_metrics"]


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
        error: the traceback or message when ``verdict == "error"``, else ``None``.
        experiment: the experiment's ID (its first claim); method: how it measures, in words.
        seeds, mode (``"quick"``/``"full"``), cached (reused from an earlier run).
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

    @property
    def why(self) -> str:
        """``"<verdict>: <reason>"``, the one-line explanation the report prints."""
        return f"{self.verdict.value}: {self.reason}"

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
        """Plain data for ``results.json`` (the verdict as its string)."""
        data = asdict(self)
        data["verdict"] = self.verdict.value
        data["figures"], data["seeds"] = list(self.figures), list(self.seeds)
        data["metrics"] = {k: list(v) for k, v in self.metrics.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        """Inverse of :meth:`to_dict` (``null`` metric values read back as NaN)."""
        kwargs = dict(data)
        kwargs["verdict"] = Verdict(kwargs["verdict"])
        kwargs["figures"], kwargs["seeds"] = tuple(kwargs["figures"]), tuple(kwargs["seeds"])
        kwargs["metrics"] = {k: [math.nan if v is None else float(v) for v in vs] for k, vs in data["metrics"].items()}
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


def results_of(
    exp: Experiment, record: Mapping[str, Any], cached: bool, seeds: Sequence[int], mode: str
) -> list[Result]:
    """One :class:`Result` per claim of ``exp`` from its worker record (see :mod:`deepbasics.lab._worker`)."""
    outputs = record.get("outputs", [])
    error = record.get("error")
    metrics = scalar_metrics(outputs)
    figures = tuple(f"figures/{exp.id}/{name}" for name in record.get("figures", []))
    results = []
    for cid in exp.ids:
        rule = exp.rules[cid]
        judgement = Judgement(Verdict.ERROR, _last_line(error)) if error else evaluate(rule, outputs, seeds)
        results.append(
            Result(
                id=cid,
                question_id=exp.question_id,
                question=exp.question,
                claim=exp.claims[cid],
                verdict=judgement.verdict,
                reason=judgement.reason,
                rule=rule.describe(),
                metric=rule.metric,
                metrics=metrics,
                figures=figures,
                seconds=float(record.get("seconds", 0.0)),
                # a rule that cannot be applied (a missing metric) is an error of this claim only
                error=error or (judgement.reason if judgement.verdict is Verdict.ERROR else None),
                experiment=exp.id,
                method=exp.method,
                seeds=tuple(seeds),
                mode=mode,
                cached=cached,
            )
        )
    return results
