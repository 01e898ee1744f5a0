"""The numbers LayerStats measures: device-side kernels, a lazily synchronised log, and plain-data summaries.

Kernels (pure functions over tensors, no host synchronisation):

- :func:`activation_stats` -- mean, standard deviation, zero / dead / saturated fractions of one output;
- :func:`tensor_norms` -- Euclidean norms of a list of tensors (gradients, weights, updates), with a fused
  ``torch._foreach_norm`` path beside the plain reference path (``tests/test_probe_records.py`` checks that
  they agree in float64).

:class:`StepLog` keeps what the kernels return as device tensors and copies them to the host in one batch
(one ``.tolist()`` per device) only when asked, so that monitoring never forces a GPU synchronisation per step.
:func:`aggregate_layers` and :func:`summarize` turn the log into plain Python data.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from .._checks import check_positive, check_tensor, fail

__all__ = [
    "ACTIVATION_METRICS",
    "PARAM_METRICS",
    "StepLog",
    "activation_moments",
    "activation_stats",
    "aggregate_layers",
    "norm_list",
    "stack_values",
    "summarize",
    "tensor_norms",
]

#: Metrics of a module's output, in the order :func:`activation_stats` returns them.
ACTIVATION_METRICS = ("act_mean", "act_std", "zero_frac", "dead_frac", "sat_frac", "preact_large_frac")
#: Metrics of a parameter (and, aggregated, of a layer's own parameters).
PARAM_METRICS = ("grad_norm", "weight_norm", "update_norm", "update_ratio")

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def activation_moments(
    y: torch.Tensor,
    *,
    units: bool = True,
    bounds: tuple[float, float] | None = None,
    sat_tol: float = 1e-2,
    preact: torch.Tensor | None = None,
    preact_limit: float = 5.0,
) -> tuple[list[torch.Tensor], list[tuple[float, float]]]:
    """Raw sums and counts behind :func:`activation_stats` (0-d tensors), and the maps that turn them into it.

    Returns ``(raw, affine)`` with ``activation_stats(...)[i] = a_i * raw[i] + b_i``, ``(a_i, b_i) = affine[i]``.
    The divisions by ``n``, ``U`` and ``sqrt(n)`` are left to the host (``affine`` holds plain floats) and the
    0-d results are left unstacked, so that :class:`~deepbasics.probe.LayerStats` launches only the reductions
    and stacks a whole step's numbers at once: on small models the kernel launches are the overhead.
    """
    y = y.detach()
    if y.dtype in _LOW_PRECISION:
        y = y.float()
    n = y.numel()
    mean = y.mean()
    raw = [mean, torch.linalg.vector_norm(y - mean)]  # two-pass: exact, unlike E[y^2] - E[y]^2
    affine = [(1.0, 0.0), (1.0 / math.sqrt(n), 0.0)]
    if units:
        batch = y.shape[0] if y.dim() >= 2 else 1
        alive = torch.count_nonzero(y.reshape(batch, -1), dim=0)  # (U,) nonzero entries per unit
        raw += [alive.sum(), torch.count_nonzero(alive)]
        affine += [(-1.0 / n, 1.0), (-1.0 / alive.numel(), 1.0)]
        if bounds is not None:
            lo, hi = bounds
            raw.append(torch.count_nonzero((y <= lo + sat_tol) | (y >= hi - sat_tol)))
            affine.append((1.0 / n, 0.0))
        if preact is not None:
            x = preact.detach()
            raw.append(torch.count_nonzero(x.abs() > preact_limit))
            affine.append((1.0 / x.numel(), 0.0))
    return raw, affine


def activation_stats(
    y: torch.Tensor,
    *,
    units: bool = True,
    bounds: tuple[float, float] | None = None,
    sat_tol: float = 1e-2,
    preact: torch.Tensor | None = None,
    preact_limit: float = 5.0,
) -> torch.Tensor:
    """Summarise one module output ``y`` in a 1-D tensor on ``y``'s device (no host synchronisation).

    With ``B`` the batch size (``y.shape[0]`` when ``y.dim() >= 2``, else 1), ``n = y.numel()`` and the
    ``U = n / B`` *units* (every position of one example: a feature, or a (channel, pixel) pair of a conv map):

    - ``act_mean = (1/n) sum y``, ``act_std = sqrt((1/n) sum (y - act_mean)^2)`` (population; two-pass, one
      ``vector_norm`` of the centred tensor, several times faster than ``torch.std_mean`` on CPU and as exact);
    - ``zero_frac = #{y == 0} / n``;
    - ``dead_frac = #{units u : y[b, u] == 0 for every b} / U`` -- a dead ReLU unit passes no gradient for
      the whole batch (FAQ Q3.3; Lu et al. 2019, "Dying ReLU and initialization", sec. 1);
    - with ``bounds = (lo, hi)``: ``sat_frac = #{y <= lo + sat_tol or y >= hi - sat_tol} / n``, the fraction of
      a bounded unit (sigmoid, tanh) in its flat region where the derivative nearly vanishes (FAQ Q3.3.c;
      Glorot & Bengio 2010, sec. 3);
    - with ``preact`` (the activation's input): ``preact_large_frac = #{|preact| > preact_limit} / preact.numel()``.

    ``units=False`` returns only ``[act_mean, act_std]`` (used for the outputs of parametric layers, the
    pre-activations). Otherwise the result is ``[act_mean, act_std, zero_frac, dead_frac]`` followed by
    ``sat_frac`` if ``bounds`` is given and ``preact_large_frac`` if ``preact`` is given. float16/bfloat16
    inputs are summarised in float32. The function never modifies ``y`` and builds no autograd graph.
    """
    check_tensor(y, "y", floating=True)
    if preact is not None:
        check_tensor(preact, "preact", floating=True)
    check_positive(sat_tol, "sat_tol")
    if bounds is not None and not bounds[0] < bounds[1]:
        raise fail(ValueError, "bounds", "(lo, hi) with lo < hi", bounds, "Pass the activation's range in order.")
    with torch.no_grad():
        raw, affine = activation_moments(
            y, units=units, bounds=bounds, sat_tol=sat_tol, preact=preact, preact_limit=preact_limit
        )
        values = torch.stack(raw)  # promotes the int64 counts to the float dtype of the mean
        scale = torch.tensor([a for a, _ in affine], dtype=values.dtype, device=values.device)
        offset = torch.tensor([b for _, b in affine], dtype=values.dtype, device=values.device)
        return torch.addcmul(offset, values, scale)


def stack_values(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack 0-d results into one 1-D tensor on the first one's device (a model may span several devices)."""
    device = tensors[0].device
    return torch.stack([t if t.device == device else t.to(device) for t in tensors])


def norm_list(tensors: Sequence[torch.Tensor], *, foreach: bool = True) -> list[torch.Tensor]:
    """:func:`tensor_norms` as a list of 0-d tensors, for callers that stack many results at once."""
    if not tensors:
        raise ValueError("tensors: expected a non-empty list of tensors, got an empty list. Pass at least one.")
    ts = [t.detach().coalesce().values() if t.is_sparse else t.detach() for t in tensors]
    if not foreach or any(t.dtype in _LOW_PRECISION for t in ts):
        return [torch.linalg.vector_norm(t, dtype=torch.float32 if t.dtype in _LOW_PRECISION else None) for t in ts]
    return list(torch._foreach_norm(ts))  # inputs are detached: no autograd graph is built


def tensor_norms(tensors: Sequence[torch.Tensor], *, foreach: bool = True) -> torch.Tensor:
    """Euclidean norms ``||t_i||_2 = sqrt(sum_j t_ij^2)`` of a list of tensors, as one 1-D tensor ``(k,)``.

    ``foreach=True`` uses one fused ``torch._foreach_norm`` call (one kernel launch per device and dtype on
    CUDA instead of one per tensor); ``foreach=False`` is the plain reference path, one
    ``torch.linalg.vector_norm`` per tensor. Sparse tensors use their stored values; float16/bfloat16 are
    accumulated in float32 (a norm above 65504 would overflow float16). The result lives on the first tensor's
    device.
    """
    return stack_values(norm_list(tensors, foreach=foreach))


@dataclass
class _Block:
    """Numbers measured at one step: ``keys[i] = (name, metric)`` labels ``values[i]``."""

    step: int
    keys: list[tuple[str, str]]
    values: torch.Tensor | list[float]
    affine: list[tuple[float, float]] | None = None  # value = a * raw + b, applied on the host


class StepLog:
    """Measurements keyed by ``(step, name, metric)``, kept on the device until :meth:`flush` is called.

    A step's 0-d results are collected with :meth:`push` and stacked by :meth:`commit` into one tensor per
    (dtype, device) -- one launch instead of dozens, and stacking int64 counts with float32 means separately is
    ~4x cheaper on CPU than one promoting stack. ``add`` logs a ready 1-D tensor. Nothing synchronises until
    :meth:`flush`, which concatenates every pending block of one device and copies it with one ``.tolist()``.
    """

    def __init__(self) -> None:
        self._blocks: list[_Block] = []
        self._pending = 0
        self._keys: list[tuple[str, str]] = []
        self._values: list[torch.Tensor] = []
        self._affine: list[tuple[float, float]] = []

    def push(
        self, keys: list[tuple[str, str]], values: list[torch.Tensor], affine: list[tuple[float, float]] | None = None
    ) -> None:
        """Collect 0-d tensors ``values`` labelled by ``keys``; ``affine[i] = (a, b)`` logs ``a * values[i] + b``."""
        self._keys.extend(keys)
        self._values.extend(values)
        self._affine.extend(affine if affine is not None else [(1.0, 0.0)] * len(keys))

    def commit(self, step: int) -> None:
        """Log everything pushed since the last commit as measured at ``step``."""
        groups: dict[tuple[torch.dtype, torch.device], list[int]] = {}
        for i, v in enumerate(self._values):
            groups.setdefault((v.dtype, v.device), []).append(i)
        with torch.no_grad():
            for idx in groups.values():
                values = torch.stack([self._values[i] for i in idx])
                self.add(step, [self._keys[i] for i in idx], values, [self._affine[i] for i in idx])
        self._keys, self._values, self._affine = [], [], []

    def add(
        self,
        step: int,
        keys: list[tuple[str, str]],
        values: torch.Tensor,
        affine: list[tuple[float, float]] | None = None,
    ) -> None:
        """Log a 1-D tensor ``values`` labelled by ``keys``; ``affine[i] = (a, b)`` logs ``a * values[i] + b``."""
        self._blocks.append(_Block(step, keys, values, affine))
        self._pending += 1

    @property
    def pending(self) -> int:
        """Number of blocks still on the device."""
        return self._pending

    def flush(self) -> None:
        """Copy every pending block to the host (lists of Python floats)."""
        if not self._pending:
            return
        by_device: dict[torch.device, list[_Block]] = {}
        for block in self._blocks:
            if isinstance(block.values, torch.Tensor):
                by_device.setdefault(block.values.device, []).append(block)
        for blocks in by_device.values():
            flat = torch.cat([b.values.reshape(-1).to(torch.float64) for b in blocks]).tolist()  # type: ignore[union-attr]
            start = 0
            for b in blocks:
                size = len(b.keys)
                chunk = flat[start : start + size]
                if b.affine is not None:
                    chunk = [a * v + c for v, (a, c) in zip(chunk, b.affine, strict=True)]
                b.values, b.affine = chunk, None
                start += size
        self._pending = 0

    def table(self) -> dict[str, dict[str, dict[int, float]]]:
        """Flush, then return ``{name: {metric: {step: value}}}``; a later block of the same key wins."""
        self.flush()
        out: dict[str, dict[str, dict[int, float]]] = {}
        for block in self._blocks:
            for (name, metric), value in zip(block.keys, block.values, strict=True):  # type: ignore[arg-type]
                out.setdefault(name, {}).setdefault(metric, {})[block.step] = value
        return out


def aggregate_layers(
    params: Mapping[str, Mapping[str, Mapping[int, float]]], owner: Mapping[str, str]
) -> dict[str, dict[str, dict[int, float | None]]]:
    """Combine per-parameter norms into per-layer norms: ``||(g_1, ..., g_m)|| = sqrt(sum_i ||g_i||^2)``.

    ``params`` is ``{param name: {metric: {step: value}}}`` with the ``grad_norm``, ``weight_norm`` and
    ``update_norm`` metrics; ``owner`` maps a parameter name to its layer. The layer's ``update_ratio`` is
    ``update_norm / weight_norm`` (``||Δw|| / ||w||``, Karpathy's "update-to-data ratio"), ``None`` where the
    layer's weights are all zero (the ratio is undefined there, e.g. a zero-initialised bias alone).
    """
    sums: dict[str, dict[str, dict[int, float]]] = {}
    for pname, metrics in params.items():
        layer = sums.setdefault(owner[pname], {})
        for metric in ("grad_norm", "weight_norm", "update_norm"):
            for step, value in metrics.get(metric, {}).items():
                acc = layer.setdefault(metric, {})
                acc[step] = acc.get(step, 0.0) + value * value
    out: dict[str, dict[str, dict[int, float | None]]] = {}
    for layer, metrics in sums.items():
        rooted: dict[str, dict[int, float | None]] = {
            m: {s: math.sqrt(v) for s, v in d.items()} for m, d in metrics.items()
        }
        ratio: dict[int, float | None] = {}
        for step, du in rooted.get("update_norm", {}).items():
            w = rooted.get("weight_norm", {}).get(step)
            ratio[step] = None if w is None or du is None or w == 0 else du / w
        if ratio:
            rooted["update_ratio"] = ratio
        out[layer] = rooted
    return out


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _last(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return present[-1] if present else None


def summarize(records: Mapping[str, Mapping[str, Sequence]], order: Sequence[str]) -> dict[str, dict[str, object]]:
    """Per-layer aggregates over the recorded steps, layers in ``order`` (input to output).

    Gradient and update metrics vary from step to step, so they are summarised by their median over the
    recorded steps (``grad_norm_median``, ``update_ratio_median``); activation metrics describe the current
    state of the network, so by their value at the last recorded step that measured them (``*_last``).
    Missing values (``None``) are skipped; a metric never measured is ``None``.
    """
    out: dict[str, dict[str, object]] = {}
    for name in order:
        rec = records.get(name, {})
        row: dict[str, object] = {}
        for metric in ("grad_norm", "update_ratio"):
            if metric in rec:
                row[f"{metric}_median"] = _median(rec[metric])
        for metric in ("weight_norm", *ACTIVATION_METRICS):
            if metric in rec:
                row[f"{metric}_last"] = _last(rec[metric])
        n_steps = len(rec.get("step", ()))
        row["steps"] = sum(any(rec[m][i] is not None for m in rec if m != "step") for i in range(n_steps))
        out[name] = row
    return out
