"""Q8: overflow and underflow, the softmax example.

- **Q8.a** ``softmax(x)_i = e^{x_i} / sum_j e^{x_j}`` computed as written overflows: ``e^{x_i} = inf`` once
  ``x_i > ln(max float)`` (11.1 in float16, 88.7 in bfloat16 and float32) and the row becomes ``inf / inf = nan``.
  Evaluated at ``x - max_i x_i`` (:func:`deepbasics.numerics.softmax`) it stays correct, because
  ``softmax(x + c) = softmax(x)`` for every scalar ``c``.
- **Q8.b** ``log(softmax(x))`` underflows: ``e^{x_i - max x}`` rounds to 0 for strongly negative entries and its log
  is ``-inf``, although the true value (e.g. -1000) is finite. ``log_softmax(x) = x - logsumexp(x)``
  (:func:`deepbasics.numerics.log_softmax`) never takes the log of an underflowed number.

Reference: Goodfellow, Bengio & Courville, *Deep Learning* (2016), sec. 4.1; rounding-error bounds:
Higham, *Accuracy and Stability of Numerical Algorithms* (2nd ed., 2002), sec. 3.1 (a sum of ``n`` terms
carries at most ``n - 1`` roundings, each of relative size ``eps / 2``).
"""

from __future__ import annotations

import numpy as np
import torch

from deepbasics.lab import Metric, Rule, experiment, save_figure

#: Worst-check ratios above this are reported as this (a non-finite ratio would make the verdict "error").
RATIO_CAP = 1e9

#: "Most rows": the naive function must fail in more than half of the rows at the largest magnitude.
MOST = 0.5

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def _ratio(value: float, op: str, limit: float) -> float:
    """How far a sub-check is from failing: < 1 passes, > 1 fails (``value / limit`` or ``limit / value``)."""
    if not np.isfinite(value):
        return RATIO_CAP
    r = value / limit if op == "<" else (limit / value if value > 0 else RATIO_CAP)
    return float(min(r, RATIO_CAP))


def _ulps_bound(length: int) -> int:
    """Allowed error in units of the dtype's eps: one rounding per exp, ``n - 1`` in the sum, one per division,
    one for the final cast (Higham 2002, sec. 3.1), for rows of ``n = length`` entries."""
    return length + 2


def _rows(params, magnitude: float, g: torch.Generator, negative: bool) -> torch.Tensor:
    """(R, n) float64 inputs of scale ``magnitude``: N(0, M^2) entries, or ``-M * U(0, 1)`` with one 0 per row."""
    shape = (params["rows"], params["length"])
    if not negative:
        return magnitude * torch.randn(shape, generator=g, dtype=torch.float64)
    x = -magnitude * torch.rand(shape, generator=g, dtype=torch.float64)
    x[:, 0] = 0.0  # the row's max is 0: no overflow can occur, only underflow
    return x


# ---------------------------------------------------------------------------------------------- Q8.a overflow
def _plot_overflow(outputs, params, outdir):
    import matplotlib.pyplot as plt

    mags = params["magnitudes"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4), layout="constrained")
    for i, name in enumerate(params["dtypes"]):
        naive = np.mean([out["naive_nonfinite"][name] for out in outputs], axis=0)
        err = np.max([out["stable_err_ulps"][name] for out in outputs], axis=0)
        ax1.semilogx(mags, naive, "o-", color=f"C{i}", label=f"naive, {name}")
        ax2.loglog(mags, np.maximum(err, 1e-3), "s-", color=f"C{i}", label=f"max-shifted, {name}")
    ax1.set(
        xlabel="input scale M (x ~ N(0, M^2))",
        ylabel="fraction of rows with inf/nan",
        title="Q8.a: naive softmax overflows",
    )
    ax1.legend(fontsize=8)
    ax2.axhline(_ulps_bound(params["length"]), color="k", ls="--", label="threshold (n + 2) eps")
    ax2.set(
        xlabel="input scale M",
        ylabel="max abs. error / eps(dtype) (exact: 1e-3)",
        title="Q8.a: max-shifted softmax vs float64 torch.softmax",
    )
    ax2.legend(fontsize=8)
    return [save_figure(fig, outdir, "softmax_overflow")]


@experiment(
    ids=("Q8.a",),
    method="Rows of n entries x ~ N(0, M^2), M from 1 to 1e4, are rounded to float16, bfloat16 and float32; we count "
    "the rows where the naive e^x / sum e^x (deepbasics.numerics.naive_softmax) returns inf/nan and measure the error "
    "of deepbasics.numerics.softmax (shifted by max x) against torch.softmax in float64 on the same rounded inputs, "
    "in units of the dtype's eps; shift invariance is max |softmax(x + c) - softmax(x)| in float64 for |c| up to 1e3. "
    "The judged number is the worst of three checks as a ratio to its limit (holds below 1): naive failing rows at "
    "M = max > 0.5 in every dtype, stable error < (n + 2) eps everywhere, shift error < 1e-12.",
    quick={
        "dtypes": ["float16", "bfloat16", "float32"],
        "magnitudes": [1, 3, 10, 30, 100, 300, 1000, 3000, 10000],
        "rows": 500,
        "length": 10,
        "shifts": [-1000, -100, -10, -1, 1, 10, 100, 1000],
    },
    full={
        "dtypes": ["float16", "bfloat16", "float32"],
        "magnitudes": [1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000, 2000, 3000, 5000, 10000],
        "rows": 20000,
        "length": 10,
        "shifts": [-1000, -100, -10, -1, 1, 10, 100, 1000],
    },
    # Every check's limit comes from the claim: "overflows for large inputs" = most rows fail at the largest scale;
    # "correct" = within the rounding-error bound (n + 2) eps; "unchanged" = the float64 rounding of x + c,
    # |c| <= 1e3, moves a probability by at most ~1e3 * 1.1e-16 = 1e-13, so 1e-12 leaves a margin of 10.
    rules={"Q8.a": Rule("worst_check_ratio", "<", 1.0, since="0.1.0")},
    metrics={
        "worst_check_ratio": Metric("worst of the three checks as a fraction of its limit"),
        "naive_nonfinite_at_max_scale": Metric(
            "rows where the naive softmax overflows, at the largest scale", unit="%", scale=100
        ),
        "stable_max_err_ulps": Metric("largest error of the shifted softmax", unit="eps"),
    },
    takeaways={
        "Q8.a": "at the largest input scale the naive softmax returns inf or nan on {naive_nonfinite_at_max_scale} of "
        "the rows; subtracting the maximum keeps every row within {stable_max_err_ulps} of the exact answer",
    },
    seeds=3,
    timeout=120,
    plot=_plot_overflow,
)
def overflow(params, seed):
    from deepbasics import numerics

    g = torch.Generator().manual_seed(seed)
    bound = _ulps_bound(params["length"])
    naive_frac, stable_err, stable_nonfinite, threshold_m = {}, {}, {}, {}
    xs = [_rows(params, m, g, negative=False) for m in params["magnitudes"]]
    for name in params["dtypes"]:
        dtype = _DTYPES[name]
        eps = torch.finfo(dtype).eps
        naive_frac[name], stable_err[name] = [], []
        nonfinite = 0
        for x64 in xs:
            x = x64.to(dtype)  # the rounded input, shared by every method
            ref = torch.softmax(x.double(), dim=-1)  # independent float64 reference on the same numbers
            naive = numerics.naive_softmax(x)
            naive_frac[name].append(float((~torch.isfinite(naive)).any(-1).double().mean()))
            ours = numerics.softmax(x)
            nonfinite += int((~torch.isfinite(ours)).sum())
            err = (ours.double() - ref).abs().nan_to_num(nan=float("inf")).max().item()
            stable_err[name].append(err / eps)
        stable_nonfinite[name] = nonfinite
        failing = [m for m, f in zip(params["magnitudes"], naive_frac[name], strict=True) if f > 0]
        threshold_m[name] = float(failing[0]) if failing else float("nan")
    # shift invariance in float64, at a moderate scale where every method is exact enough
    x = _rows(params, 10.0, g, negative=False)
    base = numerics.softmax(x)
    shift_err = max((numerics.softmax(x + c) - base).abs().max().item() for c in params["shifts"])
    worst_naive_at_max = min(naive_frac[name][-1] for name in params["dtypes"])
    worst_err = max(max(v) for v in stable_err.values())
    checks = {
        "naive_fails_at_max_scale": _ratio(worst_naive_at_max, ">", MOST),
        "stable_error": _ratio(worst_err, "<", bound),
        "shift_invariance": _ratio(shift_err, "<", 1e-12),
    }
    return {
        "worst_check_ratio": max(checks.values()),
        "checks": checks,
        "naive_nonfinite_at_max_scale": worst_naive_at_max,
        "stable_max_err_ulps": worst_err,
        "stable_nonfinite_count": sum(stable_nonfinite.values()),
        "shift_max_abs_err": shift_err,
        "first_failing_scale": threshold_m,
        "naive_nonfinite": naive_frac,
        "stable_err_ulps": stable_err,
    }


# -------------------------------------------------------------------------------------------- Q8.b underflow
def _plot_log(outputs, params, outdir):
    import matplotlib.pyplot as plt

    mags = params["magnitudes"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4), layout="constrained")
    for i, name in enumerate(params["dtypes"]):
        naive = np.mean([out["naive_neg_inf"][name] for out in outputs], axis=0)
        err = np.max([out["stable_rel_err_ulps"][name] for out in outputs], axis=0)
        ax1.semilogx(mags, naive, "o-", color=f"C{i}", label=f"log(softmax(x)), {name}")
        ax2.loglog(mags, np.maximum(err, 1e-3), "s-", color=f"C{i}", label=f"x - logsumexp(x), {name}")
    ax1.set(
        xlabel="most negative input -M (x_i = -M u, u ~ U(0, 1), max x = 0)",
        ylabel="fraction of entries = -inf",
        title="Q8.b: naive log-softmax underflows",
    )
    ax1.legend(fontsize=8)
    ax2.axhline(_ulps_bound(params["length"]), color="k", ls="--", label="threshold (n + 2) eps")
    ax2.set(
        xlabel="scale M",
        ylabel="max rel. error / eps(dtype) (exact: 1e-3)",
        title="Q8.b: x - logsumexp(x) vs float64 torch.log_softmax",
    )
    ax2.legend(fontsize=8)
    return [save_figure(fig, outdir, "log_softmax_underflow")]


@experiment(
    ids=("Q8.b",),
    method="Rows of n entries x_i = -M u_i (u ~ U(0, 1), one entry 0, so nothing can overflow), M from 1 to 1e4, are "
    "rounded to float16, bfloat16 and float32. We count the entries where log(softmax(x)) computed naively "
    "(deepbasics.numerics.naive_log_softmax) is -inf, and measure deepbasics.numerics.log_softmax against "
    "torch.log_softmax in float64 on the same rounded inputs (relative error in units of eps). The judged number is "
    "the worst of two checks as a ratio to its limit (holds below 1): naive -inf entries at M = max > 0.5 of all "
    "entries in every dtype, and the stable version finite with error < (n + 2) eps everywhere.",
    quick={
        "dtypes": ["float16", "bfloat16", "float32"],
        "magnitudes": [1, 10, 30, 100, 300, 1000, 10000],
        "rows": 500,
        "length": 10,
    },
    full={
        "dtypes": ["float16", "bfloat16", "float32"],
        "magnitudes": [1, 3, 10, 20, 30, 50, 100, 200, 300, 1000, 3000, 10000],
        "rows": 20000,
        "length": 10,
    },
    # At M = 1e4 the exact log-probabilities reach -1e4; e^-1e4 underflows in every one of these dtypes, so "strongly
    # negative entries" are most of the row: the naive version must give -inf for more than half of the entries.
    rules={"Q8.b": Rule("worst_check_ratio", "<", 1.0, since="0.1.0")},
    metrics={
        "worst_check_ratio": Metric("worst of the two checks as a fraction of its limit"),
        "naive_neg_inf_at_max_scale": Metric(
            "entries where naive log(softmax) is -inf, at the largest scale", unit="%", scale=100
        ),
        "stable_max_rel_err_ulps": Metric("largest relative error of log-softmax", unit="eps"),
    },
    takeaways={
        "Q8.b": "naive log(softmax(x)) gives -inf for {naive_neg_inf_at_max_scale} of the entries at the largest "
        "scale; log-softmax through log-sum-exp stays finite, within {stable_max_rel_err_ulps}",
    },
    seeds=3,
    timeout=120,
    plot=_plot_log,
)
def log_softmax_underflow(params, seed):
    from deepbasics import numerics

    g = torch.Generator().manual_seed(seed)
    bound = _ulps_bound(params["length"])
    naive_frac, stable_err = {}, {}
    nonfinite = 0
    xs = [_rows(params, m, g, negative=True) for m in params["magnitudes"]]
    for name in params["dtypes"]:
        dtype = _DTYPES[name]
        eps = torch.finfo(dtype).eps
        naive_frac[name], stable_err[name] = [], []
        for x64 in xs:
            x = x64.to(dtype)
            ref = torch.log_softmax(x.double(), dim=-1)  # float64 reference: finite (>= -1e4 - log n)
            naive = numerics.naive_log_softmax(x)
            naive_frac[name].append(float((naive == -torch.inf).double().mean()))
            ours = numerics.log_softmax(x)
            nonfinite += int((~torch.isfinite(ours)).sum())
            rel = ((ours.double() - ref).abs() / ref.abs().clamp_min(1.0)).nan_to_num(nan=float("inf"))
            stable_err[name].append(rel.max().item() / eps)
    worst_naive_at_max = min(naive_frac[name][-1] for name in params["dtypes"])
    worst_err = max(max(v) for v in stable_err.values())
    checks = {
        "naive_neg_inf_at_max_scale": _ratio(worst_naive_at_max, ">", MOST),
        "stable_error": _ratio(worst_err if nonfinite == 0 else float("inf"), "<", bound),
    }
    return {
        "worst_check_ratio": max(checks.values()),
        "checks": checks,
        "naive_neg_inf_at_max_scale": worst_naive_at_max,
        "stable_max_rel_err_ulps": worst_err,
        "stable_nonfinite_count": nonfinite,
        "naive_neg_inf": naive_frac,
        "stable_rel_err_ulps": stable_err,
    }
