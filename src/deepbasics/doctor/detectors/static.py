"""Static detectors: checks on the model and its data before training (FAQ Q1, Q3.1, Q8).

Pure functions over numbers and names gathered by :mod:`deepbasics.doctor.trace` (one traced forward pass, the
weights, the input statistics):

- ``naive_softmax`` (warning; error when it overflowed) from the sites of ``exp(x) / sum(exp(x))`` in the
  trace, or a non-finite value first produced by ``aten.exp`` (FAQ Q8.a).
- ``unnormalized_inputs`` (warning) from per-feature means and standard deviations (LeCun et al. 1998, sec. 4.3).
- ``bad_init_scale`` (warning) from each weight layer's std compared with the band of variance-preserving
  schemes for its activation, ``[min(refs) / f, max(refs) * f]``, ``f = INIT_SCALE_FACTOR``; refs are LeCun
  ``1/sqrt(fan_in)`` and He ``sqrt(2/fan_in)`` before ReLU-type units, LeCun and Glorot
  ``sqrt(2/(fan_in + fan_out))`` otherwise (Glorot & Bengio 2010, eq. 16; He et al. 2015, eq. 10); two or more
  constant layers (Q1.f: symmetry never broken); or, at step 0, output stds growing or shrinking by
  ``ACTIVATION_DEPTH_RATIO`` from the first to the last weight layer.
- :func:`missing_nonlinearity_notes`: consecutive weight layers with nothing nonlinear between them compose to
  one linear map; there is no finding code for it, so it is reported as a note.

The output activation against the loss (``loss_activation_mismatch``) is :mod:`.pairing`'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .. import thresholds as T
from ..explain import make_finding
from ..findings import Finding, Severity
from ..records import RunTrace
from .pairing import aten_base
from .registry import detector

__all__ = [
    "activation_depth",
    "bad_init_scale",
    "init_band",
    "missing_nonlinearity_notes",
    "naive_softmax",
    "unnormalized_inputs",
]

_RELU_LIKE = ("relu", "leaky_relu", "relu6", "elu", "gelu", "silu", "selu", "celu", "mish", "prelu", "rrelu")


def naive_softmax(
    sites: Sequence[str], *, overflow_op: str | None = None, overflow_module: str | None = None
) -> list[Finding]:
    """``naive_softmax`` at each site (module names) of the traced ``exp / sum(exp)`` pattern; an error when a
    non-finite value was first produced by ``exp`` (``overflow_op``, from
    :func:`deepbasics.nonfinite.locate_nonfinite`)."""
    overflowed = aten_base(overflow_op) == "aten.exp"
    where = tuple(dict.fromkeys([*sites, *([overflow_module] if overflowed and overflow_module else [])]))
    if not where and not overflowed:
        return []
    severity = Severity.ERROR if overflowed else Severity.WARNING
    detail = "exp(x) / sum(exp(x)) is computed without subtracting max(x) first" + (
        ", and exp overflowed to inf in this run." if overflowed else "."
    )
    evidence = {"sites": list(sites), "overflow_op": overflow_op, "overflow_module": overflow_module}
    return [make_finding("naive_softmax", severity, where or ("model",), evidence, detail=detail)]


def unnormalized_inputs(
    means: Sequence[float], stds: Sequence[float], *, names: Sequence[str] | None = None
) -> list[Finding]:
    """``unnormalized_inputs`` from per-feature means and standard deviations of the training inputs."""
    if not means or len(means) != len(stds):
        return []
    names = list(names) if names is not None else [f"feature {i}" for i in range(len(means))]
    abs_means = [abs(m) for m in means]
    live = [s for s in stds if s > 0]
    reasons = []
    i_mean = max(range(len(means)), key=abs_means.__getitem__)
    i_std = max(range(len(stds)), key=lambda i: stds[i])
    if abs_means[i_mean] > T.INPUT_MAX_SCALE:
        reasons.append(f"{names[i_mean]} has mean {means[i_mean]:.4g}")
    if stds[i_std] > T.INPUT_MAX_SCALE:
        reasons.append(f"{names[i_std]} has standard deviation {stds[i_std]:.4g}")
    if live and max(live) < T.INPUT_MIN_SCALE:
        reasons.append(f"every feature has standard deviation below {T.INPUT_MIN_SCALE:g}")
    spread = max(live) / min(live) if live else 1.0
    if spread > T.INPUT_SCALE_SPREAD:
        reasons.append(f"feature standard deviations span a factor {spread:.3g}")
    if not reasons:
        return []
    evidence = {
        "max_abs_mean": abs_means[i_mean],
        "max_std": stds[i_std],
        "min_std": min(live) if live else 0.0,
        "std_spread": spread,
        "features": len(means),
    }
    detail = "The inputs are not standardized: " + "; ".join(reasons) + "."
    return [make_finding("unnormalized_inputs", Severity.WARNING, ("inputs",), evidence, detail=detail)]


def init_band(fan_in: int, fan_out: int, activation: str | None) -> tuple[float, float]:
    """``(low, high)`` weight std accepted for a layer followed by ``activation`` (see the module docstring)."""
    lecun = 1.0 / math.sqrt(fan_in)
    other = math.sqrt(2.0 / fan_in) if activation in _RELU_LIKE else math.sqrt(2.0 / (fan_in + fan_out))
    return min(lecun, other) / T.INIT_SCALE_FACTOR, max(lecun, other) * T.INIT_SCALE_FACTOR


def bad_init_scale(layers: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """``bad_init_scale`` from ``[{"name", "fan_in", "fan_out", "std", "activation"}]`` (input side first)."""
    off: dict[str, dict[str, float]] = {}
    constant = [str(layer["name"]) for layer in layers if float(layer["std"]) == 0.0]
    for layer in layers:
        std = float(layer["std"])
        if std == 0.0:
            continue
        low, high = init_band(int(layer["fan_in"]), int(layer["fan_out"]), layer.get("activation"))
        if not low <= std <= high:
            off[str(layer["name"])] = {"std": std, "band_low": low, "band_high": high}
    findings_where = list(off)
    reasons = []
    if off:
        name = next(iter(off))
        side = "above" if off[name]["std"] > off[name]["band_high"] else "below"
        bound = off[name]["band_high"] if side == "above" else off[name]["band_low"]
        reasons.append(
            f"{len(off)} layer(s) have weight std outside the Glorot/He band, e.g. {name}: {off[name]['std']:.3g} "
            f"({side} {bound:.3g})"
        )
    if len(constant) >= 2:
        findings_where += constant
        reasons.append(f"{len(constant)} layers start constant ({', '.join(constant)}): their units stay identical")
    if not reasons:
        return []
    evidence = {"layers": off, "constant_layers": constant}
    return [
        make_finding(
            "bad_init_scale", Severity.WARNING, tuple(findings_where), evidence, detail="; ".join(reasons) + "."
        )
    ]


def activation_depth(output_stds: Sequence[tuple[str, float]]) -> list[Finding]:
    """``bad_init_scale`` when, at step 0, the weight layers' output std changes by ``ACTIVATION_DEPTH_RATIO`` or
    more from the first weight layer to the last (``[(layer, std)]`` input side first)."""
    stds = [(n, s) for n, s in output_stds if s is not None and math.isfinite(s)]
    if len(stds) < 3:  # two layers say little about a trend with depth
        return []
    (first, s_first), (last, s_last) = stds[0], stds[-1]
    if s_first <= 0:
        return []
    ratio = s_last / s_first
    if 1 / T.ACTIVATION_DEPTH_RATIO < ratio < T.ACTIVATION_DEPTH_RATIO:
        return []
    trend = "grows" if ratio > 1 else "shrinks"
    evidence = {"output_std_by_layer": dict(stds), "depth_ratio": ratio}
    detail = f"At step 0 the layer outputs' std {trend} from {s_first:.3g} ({first}) to {s_last:.3g} ({last})."
    return [make_finding("bad_init_scale", Severity.WARNING, (last,), evidence, detail=detail, step=0)]


def missing_nonlinearity_notes(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """One note per pair of weight layers applied one after the other with nothing nonlinear between them."""
    return [
        f"{a} feeds {b} with no nonlinearity between them: the two compose to a single linear map "
        f"(W_b W_a x), so the extra layer adds parameters but no expressive power (FAQ Q4)."
        for a, b in pairs
    ]


@detector("static", codes=("naive_softmax",), needs=("static",), static=True)
def _naive_softmax(trace: RunTrace) -> list[Finding]:
    located = trace.static.nonfinite or {}
    return naive_softmax(
        trace.static.naive_softmax_sites, overflow_op=located.get("op"), overflow_module=located.get("module")
    )


@detector("static", codes=("unnormalized_inputs",), needs=("static",), static=True)
def _unnormalized_inputs(trace: RunTrace) -> list[Finding]:
    return unnormalized_inputs(trace.static.input_means, trace.static.input_stds)


@detector("static", codes=("bad_init_scale",), needs=("static",), static=True)
def _bad_init_scale(trace: RunTrace) -> list[Finding]:
    """From the weights, and -- when the trace starts at the initialization -- from the layer outputs' std at
    step 0 (``activation_depth``)."""
    out = bad_init_scale(trace.static.weight_layers)
    if trace.static.at_init:
        stds = []
        for name in trace.order:
            values = trace.layers.get(name, {}).get("act_std", []) if trace.kinds.get(name) == "matrix" else []
            if values and values[0] is not None and math.isfinite(values[0]):
                stds.append((name, values[0]))
        out += activation_depth(stds)
    return out
