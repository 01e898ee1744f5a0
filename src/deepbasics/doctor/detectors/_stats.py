"""Robust statistics over recorded traces: windows, medians, trends. Pure Python over lists of floats.

Detectors never decide from one step: a small-batch loss can jump by 2x from one batch to the next on a healthy
run, so every rule compares medians over windows (robust to half the points being outliers) or rank trends
(Spearman's rho, insensitive to the size of the jumps).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence

from .. import thresholds as T

__all__ = [
    "Series",
    "as_series",
    "finite_prefix",
    "median",
    "present",
    "rolling_median",
    "spearman",
    "warmup_length",
    "window_length",
]


class Series:
    """A trace of ``(step, value)`` pairs in step order (values may be inf/nan)."""

    __slots__ = ("steps", "values")

    def __init__(self, steps: list[int], values: list[float]) -> None:
        self.steps, self.values = steps, values

    def __len__(self) -> int:
        return len(self.values)


def as_series(trace: object, name: str = "losses") -> Series:
    """Accept a sequence of numbers (step = index), a sequence of ``(step, value)`` pairs or a ``{step: value}``
    mapping, and return a :class:`Series` sorted by step. ``None`` entries are dropped."""
    pairs: list[tuple[int, float]] = []
    if isinstance(trace, Series):
        return trace
    if isinstance(trace, Mapping):
        pairs = [(int(s), v) for s, v in trace.items()]
    elif isinstance(trace, Iterable) and not isinstance(trace, (str, bytes)):
        for i, item in enumerate(trace):
            if isinstance(item, (tuple, list)) and len(item) == 2:
                pairs.append((int(item[0]), item[1]))
            else:
                pairs.append((i, item))
    else:
        raise TypeError(
            f"{name}: expected a sequence of numbers, of (step, value) pairs or a {{step: value}} mapping, "
            f"got {type(trace).__name__}. Pass e.g. a list of floats."
        )
    clean = []
    for step, value in pairs:
        if value is None:
            continue
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name}: expected numbers, got {type(value).__name__}. Pass floats.")
        clean.append((step, float(value)))
    clean.sort(key=lambda p: p[0])
    return Series([s for s, _ in clean], [v for _, v in clean])


def finite_prefix(values: Sequence[float]) -> list[float]:
    """The values before the first inf/nan."""
    out = []
    for v in values:
        if not math.isfinite(v):
            break
        out.append(v)
    return out


def present(values: Iterable[float | None]) -> list[float]:
    """The finite, non-None entries."""
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return float(statistics.median(values))


def window_length(n: int) -> int:
    """Points per robust window for a trace of ``n`` points."""
    return max(T.WINDOW_MIN_POINTS, round(T.WINDOW_FRACTION * n))


def warmup_length(n: int) -> int:
    """Points of the warm-up phase skipped by trend detectors."""
    return max(T.WARMUP_MIN_POINTS, round(T.WARMUP_FRACTION * n))


def rolling_median(values: Sequence[float], window: int) -> list[float]:
    """Medians of ``values[i : i + window]`` for every full window (empty if the trace is shorter)."""
    return [median(values[i : i + window]) for i in range(len(values) - window + 1)]


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):  # average ranks over ties
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0
        i = j + 1
    return ranks


def spearman(values: Sequence[float]) -> float:
    """Spearman's rank correlation of ``values`` with their position (time): +1 rising, -1 falling, 0 no trend.

    rho = Pearson correlation of the ranks (Spearman 1904); 0.0 for fewer than 3 points or a constant trace.
    """
    n = len(values)
    if n < 3:
        return 0.0
    r = _ranks(values)
    t = list(range(n))
    mr, mt = sum(r) / n, (n - 1) / 2.0
    cov = sum((a - mr) * (b - mt) for a, b in zip(r, t, strict=True))
    var_r = sum((a - mr) ** 2 for a in r)
    var_t = sum((b - mt) ** 2 for b in t)
    return 0.0 if var_r == 0 else cov / math.sqrt(var_r * var_t)
