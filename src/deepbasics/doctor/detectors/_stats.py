"""Robust statistics over recorded traces: windows, medians, trends, over lists of floats.

Detectors never decide from one step: a small-batch loss can jump by 2x from one batch to the next on a healthy
run, so every rule compares medians over windows (robust to half the points being outliers) or rank trends
(Spearman's rho, insensitive to the size of the jumps).

A watched run is checked every ``check_every`` steps over its whole trace, so these run on traces of 10^5 points:
the loops over a trace (window medians, ranks, the finite prefix) are vectorized with numpy, and
:func:`pairs_series` builds a :class:`Series` from a RunTrace's pairs without re-validating them.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .. import thresholds as T

__all__ = [
    "Series",
    "as_series",
    "finite_prefix",
    "median",
    "pairs_series",
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
    fast = _fast_series(trace)
    if fast is not None:
        return fast
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


def pairs_series(pairs: Sequence[tuple[int, float]]) -> Series:
    """A :class:`Series` from ``(step, value)`` pairs already in step order with float values (a RunTrace's, which
    the recorder sorts and ``RunTrace.from_dict`` converts): no per-item validation."""
    return Series([s for s, _ in pairs], [v for _, v in pairs])


def _fast_series(trace: object) -> Series | None:
    """The common cases without per-item checks: a list of floats, or of ``(int, float)`` pairs (as a RunTrace
    holds them) in step order. None for anything else (the general path validates it)."""
    if not isinstance(trace, list) or not trace:
        return None
    if all(type(v) is float for v in trace):
        return Series(list(range(len(trace))), list(trace))
    if all(type(p) is tuple and len(p) == 2 and type(p[0]) is int and type(p[1]) is float for p in trace):
        steps = [s for s, _ in trace]
        if all(a <= b for a, b in itertools.pairwise(steps)):
            return Series(steps, [v for _, v in trace])
    return None


def finite_prefix(values: Sequence[float]) -> list[float]:
    """The values before the first inf/nan."""
    if not values:
        return []
    bad = ~np.isfinite(np.asarray(values, dtype=float))
    end = int(bad.argmax()) if bad.any() else len(values)
    return list(values[:end])


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


def rolling_median(values: Sequence[float], window: int, *, limit: int | None = None) -> list[float]:
    """Medians of ``values[i : i + window]`` for every full window (empty if the trace is shorter).

    ``limit``: evaluate at most about that many windows, at evenly spaced starts ``i = 0, k, 2k, ...`` plus the
    last one (``k = ceil(windows / limit)``): O(limit w log w) instead of O(n w log w), which for windows of 10% of
    a long trace is the difference between milliseconds and minutes. Without ``limit``, every window.
    """
    count = len(values) - window + 1
    if count <= 0:
        return []
    stride = 1 if limit is None else max(1, math.ceil(count / limit))
    array = np.asarray(values, dtype=float)
    if window == 3 and stride == 1 and not np.isnan(array).any():
        # the running median of 3 that diverging_loss takes at every check: max(min(a, b), min(max(a, b), c)) is the
        # middle value exactly, ~30x faster than np.median over the windows
        a, b, c = array[:-2], array[1:-1], array[2:]
        return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c)).tolist()
    starts = np.arange(0, count, stride)
    if starts[-1] != count - 1:
        starts = np.append(starts, count - 1)
    windows = np.lib.stride_tricks.sliding_window_view(array, window)  # (count, window)
    return np.median(windows[starts], axis=1).tolist()


def _ranks(values: Sequence[float]) -> np.ndarray:
    """0-based ranks of ``values``, ties given their average rank (as ``scipy.stats.rankdata`` minus 1)."""
    _, inverse, counts = np.unique(np.asarray(values, dtype=float), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # (U,): 1-based position of each distinct value's last copy
    return (ends - (counts - 1) / 2.0 - 1.0)[inverse]


def spearman(values: Sequence[float]) -> float:
    """Spearman's rank correlation of ``values`` with their position (time): +1 rising, -1 falling, 0 no trend.

    rho = Pearson correlation of the ranks (Spearman 1904); 0.0 for fewer than 3 points or a constant trace.
    """
    n = len(values)
    if n < 3:
        return 0.0
    r = _ranks(values)
    r = r - r.mean()
    t = np.arange(n) - (n - 1) / 2.0
    var_r = float(r @ r)
    return 0.0 if var_r == 0 else float(r @ t) / math.sqrt(var_r * float(t @ t))
