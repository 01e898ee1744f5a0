"""Verdict rules: a claim's pass/fail criterion, declared before the experiment runs, and its evaluation.

A :class:`Rule` names one metric that the experiment returns for every seed, a comparison ``op`` against a
``threshold``, and how the spread over seeds counts (``spread``). With ``x_s`` the metric in seed ``s``,
``S`` seeds, and ``ok(x) = (x op threshold)``:

- ``"all_seeds"``: **holds** if ``ok(x_s)`` for every seed, **does_not_hold** if ``ok(x_s)`` fails for every
  seed, else **inconclusive** (the seeds disagree).
- ``"ci"``: the two-sided ``confidence`` t-interval of the mean,
  ``mean +- t_{(1 + confidence) / 2, S - 1} * std / sqrt(S)`` (``std`` with ``ddof=1``), lies entirely on the
  holding side (**holds**), entirely on the other side (**does_not_hold**), or straddles the threshold
  (**inconclusive**). Needs ``S >= 2``.
- ``"value"``: one deterministic measurement (the experiment must declare ``seeds=1``): **holds** if ``ok(x)``,
  else **does_not_hold**; never inconclusive.

Because the set ``{x : ok(x)}`` is a half-line, an interval lies on one side exactly when both of its
endpoints do, so every mode reduces to checking ``ok`` on a few numbers. A metric that is missing, not a real
number, or not finite makes the verdict **error**: a NaN must never pass or fail a claim silently.

**Declared before the run, visibly.** A rule records the version it was declared in (``since``). A rule changed
after its results were seen keeps each earlier form in ``history`` as a :class:`Revision` with the version of
the change and the reason; the report prints that history under the claim, and ``tests/test_lab_fingerprints.py``
fails when a rule changes without one (see :mod:`deepbasics.lab.fingerprints`). A revision may also record a
change to what the rule judges without changing the rule itself: the metric's definition (``what="metric"``)
or the experiment's parameters (``what="params"``), described in words (``was``).

This mirrors asv's ``compare`` (Droettboom et al., airspeed velocity): a change counts only when it is both
past the threshold and larger than the run-to-run spread. The t-interval is Student (1908), "The probable
error of a mean", *Biometrika* 6(1).
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from numbers import Real
from typing import Any

from .._checks import check_choice, check_real, fail
from .._version import __version__

__all__ = ["OPS", "SPREADS", "Judgement", "Revision", "Rule", "Verdict", "evaluate", "metric_values", "version_tuple"]

OPS: Mapping[str, Any] = {">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le}
SPREADS: tuple[str, ...] = ("all_seeds", "ci", "value")
_SIDE = {">": "above", ">=": "at or above", "<": "below", "<=": "at or below"}


class Verdict(str, Enum):
    """The four verdicts of a lab claim (ARCHITECTURE.md). Compares equal to its string value."""

    HOLDS = "holds"
    DOES_NOT_HOLD = "does_not_hold"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def version_tuple(version: object, name: str) -> tuple[int, ...]:
    """``"0.2.0"`` -> ``(0, 2, 0)``; a version after the package's own (``deepbasics._version``) is an error."""
    parts = version.split(".") if isinstance(version, str) else []
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise fail(ValueError, name, 'a version "MAJOR.MINOR.PATCH"', repr(version), f'Write e.g. "{__version__}".')
    current = tuple(int(p) for p in __version__.split(".")[:3] if p.isdigit())
    if tuple(map(int, parts)) > current:
        raise fail(ValueError, name, f"a version up to this package's {__version__}", version, "Use the current one.")
    return tuple(map(int, parts))


@dataclass(frozen=True)
class Rule:
    """The criterion a claim's measurement must meet: ``metric op threshold``, counted over seeds by ``spread``.

    Args:
        metric: key of the per-seed dict the experiment's ``run`` returns (a real number in every seed).
        op: one of ``">"``, ``"<"``, ``">="``, ``"<="``; the claim holds where ``metric op threshold``.
        threshold: a finite real number, fixed before the experiment runs.
        spread: ``"all_seeds"`` (default), ``"ci"`` or ``"value"``; see the module docstring.
        confidence: the t-interval's coverage for ``spread="ci"`` (default 0.95); only allowed with ``"ci"``.
        since: the deepbasics version the rule was declared in, e.g. ``"0.2.0"`` (required for the lab's own
            experiments; checked by ``tests/test_lab_fingerprints.py``).
        history: the rule's earlier forms, oldest first, as :class:`Revision` entries (empty if never changed).

    Example: ``Rule("slope", "<", -0.3, since="0.2.0")`` holds when the fitted slope is below -0.3 in every seed.
    """

    metric: str
    op: str
    threshold: float
    spread: str = "all_seeds"
    confidence: float = 0.95
    since: str | None = None
    history: tuple[Revision, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric.isidentifier():
            raise fail(
                TypeError if not isinstance(self.metric, str) else ValueError,
                "Rule.metric",
                "a metric name that is a Python identifier (a key of run()'s returned dict)",
                repr(self.metric),
                'Write e.g. Rule("slope", "<", -0.3).',
            )
        if not isinstance(self.op, str) or self.op not in OPS:
            raise fail(ValueError, "Rule.op", f"one of {list(OPS)}", repr(self.op), "Use a comparison string.")
        object.__setattr__(self, "threshold", check_real(self.threshold, "Rule.threshold"))
        check_choice(self.spread, "Rule.spread", SPREADS)
        confidence = check_real(self.confidence, "Rule.confidence", low=0.0, high=1.0, low_inclusive=False)
        if confidence == 1.0:
            raise fail(ValueError, "Rule.confidence", "a value in (0, 1)", confidence, "Use e.g. 0.95.")
        if self.spread != "ci" and confidence != 0.95:
            raise fail(
                ValueError,
                "Rule.confidence",
                'the default 0.95 unless spread="ci"',
                f"confidence={confidence} with spread={self.spread!r}",
                'Set spread="ci" or drop the confidence argument.',
            )
        object.__setattr__(self, "confidence", confidence)
        if self.since is not None:
            version_tuple(self.since, "Rule.since")
        history = (self.history,) if isinstance(self.history, Revision) else self.history
        if not isinstance(history, (tuple, list)) or not all(isinstance(r, Revision) for r in history):
            raise fail(
                TypeError,
                "Rule.history",
                "a tuple of Revision(...)",
                repr(self.history),
                'Write history=(Revision(changed_in="0.2.0", old=Rule(...), reason="..."),).',
            )
        object.__setattr__(self, "history", tuple(history))

    @property
    def fingerprint(self) -> str:
        """sha256 (16 hex digits) of what decides the verdict: metric, op, threshold, spread, confidence."""
        core = [self.metric, self.op, float(self.threshold), self.spread, float(self.confidence)]
        return hashlib.sha256(json.dumps(core).encode()).hexdigest()[:16]

    def source(self) -> str:
        """The rule as Python, without ``since``/``history``: ``Rule("slope", "<", -0.3, spread="ci")``."""
        args = [repr(self.metric).replace("'", '"'), f'"{self.op}"', repr(float(self.threshold))]
        if self.spread != "all_seeds":
            args.append(f'spread="{self.spread}"')
        if self.confidence != 0.95:
            args.append(f"confidence={self.confidence!r}")
        return f"Rule({', '.join(args)})"

    def ok(self, x: float) -> bool:
        """Whether one number is on the holding side: ``x op threshold``."""
        return bool(OPS[self.op](x, self.threshold))

    def describe(self) -> str:
        """The rule in words, e.g. ``"slope < -0.3 in every seed"``."""
        base = f"{self.metric} {self.op} {_fmt(self.threshold)}"
        if self.spread == "all_seeds":
            return f"{base} in every seed"
        if self.spread == "ci":
            pct = f"{100 * self.confidence:g}%"
            return f"{base} for the mean, with the {pct} t-confidence interval over seeds entirely {_SIDE[self.op]}"
        return f"{base} (one deterministic measurement)"


REVISION_KINDS: tuple[str, ...] = ("rule", "metric", "params")


@dataclass(frozen=True)
class Revision:
    """An earlier form of a claim's test, kept when it was changed after its results were seen.

    Args:
        changed_in: the deepbasics version in which the change was made (``"0.1.0"``).
        reason: why it was changed, in one or two sentences (what the old form got wrong).
        old: the previous :class:`Rule` (required for ``what="rule"``; its ``since``/``history`` are ignored).
        was: the previous form in words (required for ``"metric"`` and ``"params"``, optional for ``"rule"``).
        what: ``"rule"`` (the Rule itself changed), ``"metric"`` (the judged number's definition changed, the Rule
            did not) or ``"params"`` (the experiment's parameters changed after a look at its results).

    Example: ``Revision(changed_in="0.1.0", old=Rule("speedup", ">", 1.0, spread="ci"), reason="...")``.
    """

    changed_in: str
    reason: str
    old: Rule | None = None
    was: str = ""
    what: str = "rule"

    def __post_init__(self) -> None:
        version_tuple(self.changed_in, "Revision.changed_in")
        check_choice(self.what, "Revision.what", REVISION_KINDS)
        for name in ("reason", "was"):
            if not isinstance(getattr(self, name), str):
                raise fail(TypeError, f"Revision.{name}", "a str", type(getattr(self, name)).__name__, "")
        if not self.reason.strip():
            raise fail(ValueError, "Revision.reason", "why the rule was changed", repr(self.reason), "Say why.")
        if (self.what == "rule") != isinstance(self.old, Rule):
            raise fail(
                ValueError,
                "Revision.old",
                'the previous Rule exactly when what="rule"',
                f"what={self.what!r}, old={self.old!r}",
                'Pass old=Rule(...) for a rule change; for a metric or params change pass was="..." instead.',
            )
        if self.what != "rule" and not self.was.strip():
            raise fail(ValueError, "Revision.was", f"the previous {self.what} in words", repr(self.was), "Describe it.")

    def describe(self) -> str:
        """The previous form in words: the old rule's :meth:`Rule.describe` or ``was``."""
        if self.old is not None:
            return self.old.describe() + (f" ({self.was})" if self.was else "")
        return self.was


@dataclass(frozen=True)
class Judgement:
    """A verdict and the reason in words with the measured numbers, e.g. ``slope < -0.3 in 3/3 seeds ...``."""

    verdict: Verdict
    reason: str

    @property
    def why(self) -> str:
        """``"<verdict>: <reason>"``, the sentence the report prints."""
        return f"{self.verdict.value}: {self.reason}"


def metric_values(rule: Rule, outputs: Sequence[Mapping[str, Any]], seeds: Sequence[int]) -> list[float]:
    """Pull ``rule.metric`` out of each seed's output; raise ``ValueError`` if it is missing, not real or not finite."""
    values = []
    for seed, out in zip(seeds, outputs, strict=True):
        if rule.metric not in out:
            returned = ", ".join(sorted(out)) or "nothing"
            raise ValueError(
                f"metric {rule.metric!r}: expected it in the output of seed {seed}, got only: {returned}. "
                "Return it from run() or fix the rule's metric name."
            )
        x = out[rule.metric]
        if isinstance(x, bool) or not isinstance(x, Real):
            raise ValueError(
                f"metric {rule.metric!r}: expected a real number in seed {seed}, got {type(x).__name__}. "
                "Return a float for every metric a rule uses."
            )
        if not math.isfinite(x):
            raise ValueError(
                f"metric {rule.metric!r}: expected a finite number in seed {seed}, got {x}. "
                "A NaN/inf metric cannot decide a claim; return a finite summary (a fraction, a clipped value)."
            )
        values.append(float(x))
    return values


def _counted(rule: Rule, values: Sequence[float]) -> str:
    n_ok = sum(rule.ok(x) for x in values)
    spread = f"mean {_fmt(sum(values) / len(values))}, range [{_fmt(min(values))}, {_fmt(max(values))}]"
    return f"{rule.metric} {rule.op} {_fmt(rule.threshold)} in {n_ok}/{len(values)} seeds ({spread})"


def _t_interval(values: Sequence[float], confidence: float) -> tuple[float, float, float]:
    from scipy import stats  # scipy is the independent reference; imported lazily to keep `import` cheap

    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in values) / (n - 1))
    half = float(stats.t.ppf((1.0 + confidence) / 2.0, n - 1)) * std / math.sqrt(n)
    return mean, mean - half, mean + half


def evaluate(rule: Rule, outputs: Sequence[Mapping[str, Any]], seeds: Sequence[int] | None = None) -> Judgement:
    """Apply ``rule`` to the per-seed outputs of an experiment and return the verdict with its reason.

    ``outputs[i]`` is the dict ``run(params, seeds[i])`` returned; ``seeds`` default to ``0..len(outputs)-1``
    and only label messages. Never raises for bad measurements: those become ``Verdict.ERROR``.
    """
    seeds = list(range(len(outputs))) if seeds is None else list(seeds)
    if not outputs:
        return Judgement(Verdict.ERROR, "no seed produced an output")
    try:
        values = metric_values(rule, outputs, seeds)
    except ValueError as exc:
        return Judgement(Verdict.ERROR, str(exc))
    if rule.spread == "value" and len(values) == 1:
        x = values[0]
        verdict = Verdict.HOLDS if rule.ok(x) else Verdict.DOES_NOT_HOLD
        relation = rule.op if rule.ok(x) else f"is not {rule.op}"
        return Judgement(verdict, f"{rule.metric} = {_fmt(x)} {relation} {_fmt(rule.threshold)}")
    if rule.spread == "ci":
        if len(values) < 2:
            return Judgement(Verdict.INCONCLUSIVE, f"a confidence interval needs at least 2 seeds, got {len(values)}")
        mean, lo, hi = _t_interval(values, rule.confidence)
        ends = (rule.ok(lo), rule.ok(hi))
        verdict = Verdict.HOLDS if all(ends) else Verdict.DOES_NOT_HOLD if not any(ends) else Verdict.INCONCLUSIVE
        where = {
            Verdict.HOLDS: f"lies entirely {_SIDE[rule.op]}",
            Verdict.DOES_NOT_HOLD: "lies entirely on the other side of",
            Verdict.INCONCLUSIVE: "straddles",
        }[verdict]
        pct = f"{100 * rule.confidence:g}%"
        return Judgement(
            verdict,
            f"mean {rule.metric} {_fmt(mean)}, {pct} CI [{_fmt(lo)}, {_fmt(hi)}] over {len(values)} seeds "
            f"{where} {_fmt(rule.threshold)}",
        )
    # all_seeds (and a "value" rule that was given several seeds: every one must agree)
    oks = [rule.ok(x) for x in values]
    verdict = Verdict.HOLDS if all(oks) else Verdict.DOES_NOT_HOLD if not any(oks) else Verdict.INCONCLUSIVE
    return Judgement(verdict, _counted(rule, values))
