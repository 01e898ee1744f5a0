"""Numbers in words and units: metric descriptions, key numbers, and takeaways filled from measurements.

A learner reads "accuracy gap: 25.1 points (mean of 3 seeds, ±0.8)", not ``claim_margin = 1.111 ± 0``. Each
experiment declares, next to its rules, what its numbers are (:class:`Metric`: a label, a unit, a scale) and
one takeaway template per claim, e.g.::

    metrics={"param_ratio": Metric("MLP-to-CNN parameter ratio at matched accuracy", unit="x")},
    takeaways={"CNN.a": "the smallest MLP that matches the CNN has {param_ratio} its parameters"},

The engine fills ``{param_ratio}`` with the measured mean over seeds, per task, in the metric's unit ("5.3x").
Nothing in a takeaway is written by hand: a template states what was measured, the verdict comes from the rule.

Placeholders: ``{name}`` (the mean over seeds), ``{name.min}``, ``{name.max}``, ``{name.std}``,
``{name.range}`` ("4.9x to 5.6x") for a declared metric ``name``, and ``{seeds}`` (how many seeds). No format
specs: the :class:`Metric` decides the format, so that every number of a metric reads the same everywhere.
"""

from __future__ import annotations

import math
import statistics
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .._checks import check_int, check_real, fail

__all__ = ["FIELDS", "Metric", "check_metrics", "check_takeaways", "human", "key_number", "render"]

#: The statistics a placeholder may ask for (``{name.min}``); none means the mean.
FIELDS: tuple[str, ...] = ("mean", "min", "max", "std", "range")
#: Units written without a space before them: ``93.1%``, ``5.3x``.
_TIGHT_UNITS = ("%", "x", "°")


def human(x: float, digits: int = 3) -> str:
    """A number for people: ``digits`` significant digits, thousands separators for counts, ``1.2e-13`` for tiny.

    ``human(93.123) == "93.1"``, ``human(15210.0) == "15,210"``, ``human(1.234e-13) == "1.23e-13"``,
    ``human(0.01234) == "0.0123"``.
    """
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    ax = abs(x)
    if 1e3 <= ax < 1e9:
        return f"{x:,.0f}"
    if 1e-3 <= ax < 1e3:
        text = f"{x:.{digits}g}"
        return f"{float(text):,.0f}" if "e" in text else text  # 999.6 -> "1e+03" with 3 digits: write 1,000
    return f"{x:.{max(digits - 1, 0)}e}"


@dataclass(frozen=True)
class Metric:
    """What a metric is, for people: ``Metric("accuracy gap (CNN - MLP)", unit="points", scale=100)``.

    Args:
        label: a few words; the key number reads ``"<label>: <value> <unit>"``.
        unit: ``""``, ``"%"``, ``"x"`` (a ratio), ``"points"``, ``"s"``, ``"decades"``, ``"steps"``, ...
        scale: multiply the raw value before showing it (``100`` turns an accuracy of 0.93 into 93%).
        digits: significant digits shown (default 3).
    """

    label: str
    unit: str = ""
    scale: float = 1.0
    digits: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label.strip():
            raise fail(TypeError, "Metric.label", "a few words (non-empty str)", repr(self.label), "")
        if not isinstance(self.unit, str):
            raise fail(TypeError, "Metric.unit", "a str", type(self.unit).__name__, 'Write e.g. unit="points".')
        object.__setattr__(self, "scale", check_real(self.scale, "Metric.scale"))
        object.__setattr__(self, "digits", check_int(self.digits, "Metric.digits", low=1))

    def format(self, x: float) -> str:
        """One value in the metric's unit: ``"93.1%"``, ``"5.32x"``, ``"25.1 points"``."""
        number = human(x * self.scale, self.digits)
        if not self.unit:
            return number
        return f"{number}{self.unit}" if self.unit in _TIGHT_UNITS else f"{number} {self.unit}"


def _default(name: str) -> Metric:
    return Metric(name.replace("_", " "))


class _Measured:
    """A metric's per-seed values as a placeholder value: ``f"{m}"`` is the mean, ``m.min`` etc. the rest."""

    def __init__(self, metric: Metric, values: Sequence[float]) -> None:
        self._metric, self._values = metric, list(values)

    def _stat(self, name: str) -> float:
        v = self._values
        return {
            "mean": statistics.fmean(v),
            "min": min(v),
            "max": max(v),
            "std": statistics.stdev(v) if len(v) > 1 else 0.0,
        }[name]

    def __getattr__(self, name: str) -> str:
        if name == "range":
            return f"{self._metric.format(min(self._values))} to {self._metric.format(max(self._values))}"
        if name in FIELDS:
            return self._metric.format(self._stat(name))
        raise AttributeError(name)

    def __format__(self, spec: str) -> str:
        return self._metric.format(self._stat("mean"))


def _placeholders(template: str) -> list[tuple[str, str | None, str]]:
    """``(name, attribute or None, spec)`` for each ``{...}`` of a template."""
    found = []
    for _, field, spec, conversion in string.Formatter().parse(template):
        if field is None:
            continue
        name, _, attr = field.partition(".")
        found.append((name, attr or None, (spec or "") + (conversion or "")))
    return found


def check_metrics(metrics: object) -> Mapping[str, Metric]:
    """Validate an experiment's ``metrics`` field: ``{metric_name: Metric}``."""
    if not isinstance(metrics, Mapping):
        raise fail(TypeError, "metrics", "a dict {name: Metric}", type(metrics).__name__, 'Write {"x": Metric("...")}.')
    for name, metric in metrics.items():
        if not isinstance(name, str) or not name.isidentifier() or not isinstance(metric, Metric):
            raise fail(
                TypeError, "metrics", "entries name: Metric(...)", f"{name!r}: {metric!r}", 'Write Metric("label").'
            )
    return dict(metrics)


def check_takeaways(takeaways: object, ids: Sequence[str], metrics: Mapping[str, Metric]) -> dict[str, str]:
    """Validate ``takeaways``: ``{claim_id: template}`` for claims of the experiment, placeholders declared."""
    if not isinstance(takeaways, Mapping):
        raise fail(TypeError, "takeaways", "a dict {claim_id: template}", type(takeaways).__name__, "")
    extra = sorted(set(takeaways) - set(ids))
    if extra:
        raise fail(ValueError, "takeaways", f"templates for the claims {list(ids)}", f"extra {extra}", "Remove them.")
    for cid, template in takeaways.items():
        if not isinstance(template, str) or not template.strip():
            raise fail(TypeError, f"takeaways[{cid!r}]", "a sentence with {metric} placeholders", repr(template), "")
        try:
            fields = _placeholders(template)
        except ValueError as exc:
            raise fail(ValueError, f"takeaways[{cid!r}]", "a str.format template", exc, "Balance the braces.") from exc
        for name, attr, spec in fields:
            where = f"takeaways[{cid!r}]: {{{name}{'.' + attr if attr else ''}}}"
            if name == "seeds" and attr is None and not spec:
                continue
            if name not in metrics:
                raise fail(
                    ValueError,
                    where,
                    f"a declared metric ({', '.join(sorted(metrics)) or 'none declared'}) or seeds",
                    repr(name),
                    "Declare it in metrics={...} or fix the name.",
                )
            if (attr is not None and attr not in FIELDS) or spec:
                raise fail(
                    ValueError, where, f"{{name}} or {{name.<{'|'.join(FIELDS)}>}} without a format spec", attr, ""
                )
    return dict(takeaways)


def render(template: str, metrics: Mapping[str, Metric], values: Mapping[str, Sequence[float]]) -> str:
    """Fill a takeaway template with per-seed ``values`` (name -> list); raises ``KeyError`` naming what is missing."""
    filled: dict[str, object] = {"seeds": len(next(iter(values.values()), []))}
    for name, _, _ in _placeholders(template):
        if name == "seeds":
            continue
        seq = values.get(name)
        if not seq or not all(isinstance(v, float) and math.isfinite(v) for v in seq):
            raise KeyError(f"metric {name!r} has no finite value in every seed")
        filled[name] = _Measured(metrics.get(name) or _default(name), seq)
    return template.format(**filled)


def key_number(name: str, metric: Metric | None, values: Sequence[float]) -> str:
    """The judged number in words: ``"accuracy gap: 25.1 points (mean of 3 seeds, ±0.8)"``."""
    metric = metric or _default(name)
    if not values:
        return f"{metric.label}: not measured"
    if not all(math.isfinite(v) for v in values):
        return f"{metric.label}: " + ", ".join(metric.format(v) for v in values) + " (not all finite)"
    if len(values) == 1:
        return f"{metric.label}: {metric.format(values[0])}"
    mean, std = statistics.fmean(values), statistics.stdev(values)
    spread = "±" + human(std * abs(metric.scale), metric.digits)
    return f"{metric.label}: {metric.format(mean)} (mean of {len(values)} seeds, {spread})"
