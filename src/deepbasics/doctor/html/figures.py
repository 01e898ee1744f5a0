"""The HTML report, part 2: the figures of a run, drawn with matplotlib (Agg) and embedded as PNG data URIs.

- :func:`loss_figure`: the training loss (raw, and a moving average) and the validation loss over steps, each
  finding marked by a vertical line and its code at the step it was first seen; non-finite losses are gaps,
  marked with a cross on the axis.
- :func:`layer_figure`: one metric of :class:`~deepbasics.probe.LayerStats` as a heatmap, layers (input side at
  the top) x recorded steps, on a log colour scale for magnitudes (gradient norm, update-to-weight ratio,
  activation spread) and a linear one for fractions (dead, saturated units); the layers a finding names get a
  coloured tab and a bold coloured name. Cells not measured or non-finite are hatched gaps.
- :func:`repair_figure`: the loss curves before and after a repair.

Every figure has the same width and the same left and right margins (in inches) and one step range per run, so a
step sits at the same horizontal position in the loss curve and in every layer panel below it.

Long runs are drawn downsampled and the caption says so: more than :data:`MAX_POINTS` losses become
:data:`LOSS_BINS` bins (mean, with a min-max band), more than :data:`MAX_COLUMNS` recorded steps are thinned to
evenly spaced ones, more than :data:`MAX_ROWS` layers to evenly spaced ones plus every layer a finding names.
The figures are built on ``matplotlib.figure.Figure`` directly (not ``pyplot``) and saved with the Agg renderer,
so drawing them neither changes the caller's backend nor keeps figures alive.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure as MplFigure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from .view import Curve, FindingView, RunView, fmt_number, layer_matrix, named_rows

__all__ = ["PANELS", "Figure", "Panel", "layer_figure", "loss_figure", "repair_figure", "run_figures"]

#: Figure width in inches: at 100 dpi the page's 1280-pixel column.
FIG_WIDTH = 12.8
#: Right margin (the colour bar and its label) and the smallest left margin (the loss axis' numbers), in inches;
#: the left margin grows with the longest layer name, by the width of a character of the 8-point tick labels.
RIGHT, MIN_LEFT, CHAR_WIDTH = 1.45, 0.95, 0.066
#: Pixels per inch of the embedded PNGs: 1.5x the on-page size, sharp on scaled laptop screens.
DPI = 150
#: Losses drawn point by point; a longer curve is drawn as LOSS_BINS bins (a 1400-pixel-wide page cannot show
#: more than ~1000 distinct x positions anyway).
MAX_POINTS, LOSS_BINS = 2000, 1000
#: Recorded steps (heatmap columns) and layers (rows) drawn at most; beyond that, evenly spaced ones.
MAX_COLUMNS, MAX_ROWS = 400, 64
#: Layer names longer than this are shortened in the middle (the finding cards give them in full).
NAME_CHARS = 38
#: A log loss axis when all losses are positive and span more than this ratio.
LOG_RANGE = 30.0
#: A log colour scale spans at most this many decades below its maximum (smaller values take the 'under' colour).
DECADES = 12

SEVERITY_COLOR = {"error": "#c62828", "warning": "#e08a00", "info": "#1f6fb2"}
TRAIN, VAL, BEFORE, AFTER = "#1f4e79", "#e07b00", "#b23b3b", "#2e7d4f"
GAP_HATCH = "#c9c9c9"


@dataclass(frozen=True)
class Figure:
    """A drawn figure: ``uri`` is a ``data:image/png;base64,...`` URI; ``caption`` lines go under it."""

    key: str
    title: str
    uri: str
    alt: str
    caption: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Panel:
    """One per-layer metric drawn as a heatmap: ``bar`` labels its colour bar, ``about`` says how to read it."""

    metric: str
    title: str
    bar: str
    log: bool
    cmap: str
    kinds: tuple[tuple[str, ...] | None, ...] = (None,)  # layer kinds drawn, the first choice with data wins
    about: str = ""  # (None: every layer that recorded the metric)


PANELS: tuple[Panel, ...] = (
    Panel("grad_norm", "Gradient norm per layer", "‖∂L/∂W‖", True, "viridis",
          about="The L2 norm of each layer's parameter gradient, log colour scale. Vanishing gradients: the top "
          "(input-side) rows orders of magnitude darker than the bottom; exploding: the reverse, or a bright band "
          "growing over the steps."),
    Panel("update_ratio", "Update-to-weight ratio per layer", "‖ΔW‖ / ‖W‖", True, "viridis",
          about="How far each optimizer step moves a layer's weights relative to their size, log colour scale. "
          "Around 1e-3 is typical of healthy runs; orders of magnitude below, the layer barely learns; near 1, "
          "updates overshoot."),
    Panel("dead_frac", "Dead units (ReLU layers)", "dead fraction", False, "YlOrRd", (("relu",),),
          "The fraction of a ReLU layer's units that output 0 for every example of the batch. A dead unit passes "
          "no gradient and does not recover."),
    Panel("sat_frac", "Saturated units (sigmoid / tanh layers)", "saturated fraction", False, "YlOrRd",
          (("bounded",),), "The fraction of outputs within 0.01 of the activation's bounds, where its slope is "
          "almost 0 and little gradient passes."),
    Panel("act_std", "Activation spread per layer", "std of output", True, "cividis", (("relu", "bounded"), None),
          "The standard deviation of each activation layer's output (of every layer when no activation is a "
          "module), log colour scale: signals that shrink or grow with depth show as a gradient down the rows."),
)  # fmt: skip


def run_figures(run: RunView) -> list[Figure]:
    """The loss figure and every layer panel with data, for one run (in page order)."""
    xlim, left = step_range(run.last_step()), left_margin([run])
    figures = [loss_figure(run, xlim, left)]
    figures += [layer_figure(run, panel, xlim, left) for panel in PANELS]
    return [f for f in figures if f is not None]


def left_margin(runs: Sequence[RunView]) -> float:
    """The left margin (inches) that fits the longest layer name of ``runs`` (shortened to NAME_CHARS)."""
    longest = max((len(plain(name)) for run in runs for name in run.trace.layers), default=0)
    return max(MIN_LEFT, 0.45 + CHAR_WIDTH * longest)


def step_range(last: int) -> tuple[float, float]:
    """The x range shared by a run's figures: steps 0..last with a small margin."""
    pad = max(0.5, 0.01 * last)
    return -pad, last + pad


# --- plumbing --------------------------------------------------------------------------------------------------


def _style() -> Any:
    return matplotlib.rc_context(
        {
            "font.size": 9,
            "axes.titlesize": 10,
            "axes.labelsize": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.fontsize": 8,
            "legend.framealpha": 0.92,
            "text.usetex": False,
        }
    )


def _figure(height: float, left: float) -> tuple[Any, Any]:
    """A figure ``FIG_WIDTH`` x ``height`` inches with one axes inside the margins (``left`` inches on the left)."""
    fig = MplFigure(figsize=(FIG_WIDTH, height), dpi=100)
    bottom, top = 0.5, 0.32
    ax = fig.add_axes((left / FIG_WIDTH, bottom / height, 1 - (left + RIGHT) / FIG_WIDTH, 1 - (bottom + top) / height))
    return fig, ax


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def plain(text: str, limit: int = NAME_CHARS) -> str:
    """A user's name as literal matplotlib text: ``$`` escaped (no mathtext), control characters removed,
    shortened in the middle to ``limit`` characters."""
    text = "".join(c if c.isprintable() else " " for c in str(text))
    if len(text) > limit:
        keep = limit - 1
        text = text[: (keep + 1) // 2] + "…" + text[len(text) - keep // 2 :]
    return text.replace("$", r"\$")


def _groups(findings: Sequence[FindingView]) -> dict[int, list[FindingView]]:
    """Findings with a step, grouped by it (each group most severe first, as the findings are sorted)."""
    out: dict[int, list[FindingView]] = {}
    for f in findings:
        if f.step is not None:
            out.setdefault(int(f.step), []).append(f)
    return dict(sorted(out.items()))


# --- the loss curve --------------------------------------------------------------------------------------------


def _bins(curve: Curve) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``LOSS_BINS`` bins of equal count: mean step, mean / min / max of the finite values (NaN: none finite)."""
    n = len(curve.values)
    starts = np.unique(np.linspace(0, n, LOSS_BINS + 1).astype(np.int64)[:-1])
    finite = np.isfinite(curve.values)
    v = np.where(finite, curve.values, 0.0)
    count = np.add.reduceat(finite.astype(np.float64), starts)
    size = np.diff(np.append(starts, n))
    x = np.add.reduceat(curve.steps.astype(np.float64), starts) / size
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, np.add.reduceat(v, starts) / count, np.nan)
    lo = np.minimum.reduceat(np.where(finite, curve.values, np.inf), starts)
    hi = np.maximum.reduceat(np.where(finite, curve.values, -np.inf), starts)
    lo[count == 0] = np.nan
    hi[count == 0] = np.nan
    return x, mean, lo, hi


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centered mean over ``window`` points of the finite values; NaN where the value itself is non-finite (gaps
    stay gaps) or no finite value is in the window."""
    finite = np.isfinite(values)
    v = np.where(finite, values, 0.0)
    kernel = np.ones(window)
    total = np.convolve(v, kernel, mode="same")
    count = np.convolve(finite.astype(np.float64), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(count > 0, total / count, np.nan)
    out[~finite] = np.nan
    return out


def _draw_curve(ax: Any, curve: Curve, color: str, label: str, *, smooth: bool, dashed: bool = False) -> str | None:
    """Draw one curve; returns a caption line when it was downsampled."""
    ls = "--" if dashed else "-"
    if len(curve.values) > MAX_POINTS:
        x, mean, lo, hi = _bins(curve)
        ax.fill_between(x, lo, hi, color=color, alpha=0.18, lw=0)
        ax.plot(x, mean, color=color, lw=1.4, ls=ls, label=f"{label} (bin mean; band: min-max)")
        return f"The {label}: {len(curve.values)} values drawn as {len(x)} bins (mean, with a min-max band)."
    n = len(curve.values)
    marker = "o" if n <= 60 else None  # a short curve: its points visible, even a lone one
    if smooth and n >= 40:
        window = max(3, n // 40) | 1
        ax.plot(curve.steps, curve.values, color=color, lw=0.8, alpha=0.35, ls=ls)
        ax.plot(curve.steps, moving_average(curve.values, window), color=color, lw=1.8, ls=ls,
                label=f"{label} (moving average of {window})")  # fmt: skip
    else:
        ax.plot(curve.steps, curve.values, color=color, lw=1.5, ls=ls, marker=marker, ms=3, label=label)
    return None


def _y_scale(ax: Any, curves: Sequence[Curve]) -> None:
    values = np.concatenate([c.values[np.isfinite(c.values)] for c in curves])
    if values.size == 0:
        return
    lo, hi = float(values.min()), float(values.max())
    if lo > 0 and hi / lo > LOG_RANGE:
        ax.set_yscale("log")
    elif lo < 0 and hi - lo > 1e6:
        ax.set_yscale("symlog")


def _mark_findings(ax: Any, findings: Sequence[FindingView], *, labels: bool = True, color: str | None = None) -> None:
    """A dashed vertical line per step at which findings were first seen, with their codes at the top."""
    lo, hi = ax.get_xlim()
    for step, group in _groups(findings).items():
        c = color or SEVERITY_COLOR[group[0].severity]
        ax.axvline(step, color=c, lw=1.3, ls=(0, (4, 3)), zorder=3)
        if labels:  # to the left of the line, or to its right near the left edge
            codes = list(dict.fromkeys(f.code for f in group))
            side = "left" if step < lo + 0.06 * (hi - lo) else "right"
            ax.text(step, 0.97, "\n".join(codes), transform=ax.get_xaxis_transform(), rotation=90, ha=side,
                    va="top", fontsize=8, color=c, zorder=4,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})  # fmt: skip


def _mark_nonfinite(ax: Any, curve: Curve) -> None:
    """Crosses at the bottom of the axes where the loss was inf/nan; the first one labelled."""
    bad = np.flatnonzero(curve.bad)
    if bad.size == 0:
        return
    shown = bad[np.unique(np.linspace(0, bad.size - 1, min(bad.size, 300)).astype(np.int64))]
    trans = ax.get_xaxis_transform()
    label = f"non-finite {curve.label} (gap)"
    ax.scatter(curve.steps[shown], np.full(shown.size, 0.04), transform=trans, marker="x", s=22, lw=1.4,
               color=SEVERITY_COLOR["error"], zorder=5, clip_on=False, label=label)  # fmt: skip
    first = int(bad[0])
    ax.annotate(f"{fmt_number(curve.values[first])} at step {int(curve.steps[first])}",
                (curve.steps[first], 0.04), xycoords=trans, xytext=(6, 9), textcoords="offset points",
                fontsize=8, color=SEVERITY_COLOR["error"], zorder=5)  # fmt: skip


def loss_figure(run: RunView, xlim: tuple[float, float], left: float = MIN_LEFT) -> Figure | None:
    """The loss curves with the findings marked; None when no loss was recorded."""
    curves = [c for c in (run.losses, run.val_losses) if c is not None]
    if not curves:
        return None
    caption = []
    with _style():
        fig, ax = _figure(3.6, left)
        if run.losses is not None:
            caption.append(_draw_curve(ax, run.losses, TRAIN, "training loss", smooth=True))
        if run.val_losses is not None:
            caption.append(_draw_curve(ax, run.val_losses, VAL, "validation loss", smooth=False))
        _y_scale(ax, curves)
        ax.set_xlim(*xlim)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for curve in curves:
            _mark_nonfinite(ax, curve)
        _mark_findings(ax, run.findings)
        ax.set_xlabel("step")
        ax.set_ylabel("loss" + (" (log scale)" if ax.get_yscale() == "log" else ""))
        ax.grid(True, alpha=0.25)
        ax.legend(loc="upper right")
        uri = _png(fig)
    for when in dict.fromkeys(f.when for f in run.findings if f.step is None):
        codes = ", ".join(dict.fromkeys(f.code for f in run.findings if f.step is None and f.when == when))
        caption.append(f"{when[0].upper()}{when[1:]} (no step to mark): {codes}.")
    if run.val_losses is None:
        caption.append("No validation loss was seen (give session.step(loss, val_loss=...) or run an evaluation pass).")
    alt = f"Loss over {int(run.losses.steps.size) if run.losses is not None else 0} recorded steps"
    return Figure("loss", "Loss over steps", uri, alt, [c for c in caption if c])


# --- the layer heatmaps ----------------------------------------------------------------------------------------


def _edges(steps: np.ndarray, xlim: tuple[float, float]) -> np.ndarray:
    """Column edges: midway between recorded steps, the outer ones half a gap out (a lone step: a band)."""
    s = steps.astype(np.float64)
    if s.size == 1:
        half = max(0.5, 0.02 * (xlim[1] - xlim[0]))
        return np.array([s[0] - half, s[0] + half])
    mid = (s[1:] + s[:-1]) / 2
    return np.concatenate([[s[0] - (mid[0] - s[0])], mid, [s[-1] + (s[-1] - mid[-1])]])


def _thin(n: int, limit: int, keep: Sequence[int]) -> np.ndarray:
    """At most ``limit`` indices of ``range(n)``: evenly spaced ones and those in ``keep`` (themselves thinned evenly
    to half of ``limit`` when a finding names more layers than that)."""
    keep = sorted(set(keep))
    if len(keep) > limit // 2:
        keep = [keep[i] for i in np.unique(np.linspace(0, len(keep) - 1, limit // 2).round().astype(np.int64))]
    spread = np.linspace(0, n - 1, max(2, limit - len(keep))).round().astype(np.int64)
    return np.asarray(sorted(set(spread.tolist()) | set(keep)), dtype=np.int64)  # at most limit indices


def _norm(panel: Panel, data: np.ndarray) -> tuple[Any, bool]:
    """The colour normalisation and whether values fall under it (zeros on a log scale)."""
    finite = data[np.isfinite(data)]
    if not panel.log:
        return Normalize(0.0, max(1.0, float(finite.max()) if finite.size else 1.0)), False
    positive = finite[finite > 0]
    if positive.size == 0:  # every value is 0: all drawn in the 'under' colour
        return LogNorm(0.1, 1.0), bool(finite.size)
    hi = float(positive.max())
    lo = max(float(positive.min()), hi * 10.0**-DECADES)
    if hi / lo < 10:  # at least a decade, centred: a 30% spread must not look as stark as a factor of 1000
        mid = math.sqrt(hi * lo)
        lo, hi = mid / math.sqrt(10), mid * math.sqrt(10)
    return LogNorm(lo, hi), bool((finite < lo).any())


def layer_figure(run: RunView, panel: Panel, xlim: tuple[float, float], left: float = MIN_LEFT) -> Figure | None:
    """One per-layer metric as a heatmap (layers x steps); None when no layer recorded it."""
    for kinds in panel.kinds:
        rows, steps, values = layer_matrix(run.trace, panel.metric, kinds)
        if rows and steps.size:
            break
    else:
        return None
    caption = [panel.about] if panel.about else []
    named = named_rows(rows, run.findings)
    if len(rows) > MAX_ROWS:
        idx = _thin(len(rows), MAX_ROWS, [i for i, r in enumerate(rows) if r in named])
        caption.append(f"{len(rows)} layers recorded this; {idx.size} drawn: evenly spaced ones and the layers a "
                       "finding names (evenly spaced too, when it names many).")  # fmt: skip
        rows, values = [rows[i] for i in idx], values[idx]
    if steps.size > MAX_COLUMNS:
        idx = np.unique(np.linspace(0, steps.size - 1, MAX_COLUMNS).round().astype(np.int64))
        caption.append(f"{steps.size} recorded steps; {idx.size} evenly spaced ones drawn.")
        steps, values = steps[idx], values[:, idx]
    norm, under = _norm(panel, values)
    if panel.log:  # a log scale masks zeros as invalid: move them under its range, to the 'under' colour
        values = np.where(values <= 0, norm.vmin * 1e-3, values)
    data = np.ma.masked_invalid(values)
    cmap = matplotlib.colormaps[panel.cmap].with_extremes(under="#111111")
    n = len(rows)
    with _style():
        fig, ax = _figure(min(12.0, max(1.9, 0.85 + 0.19 * n)), left)
        edges = _edges(steps, xlim)
        ax.add_patch(
            Rectangle(
                (edges[0], 0),
                edges[-1] - edges[0],
                n,
                facecolor="#f4f4f4",
                hatch="////",
                edgecolor=GAP_HATCH,
                lw=0,
                zorder=0,
            )
        )  # fmt: skip  (gaps: not measured or inf/nan)
        mesh = ax.pcolormesh(edges, np.arange(n + 1), data, cmap=cmap, norm=norm, shading="flat", zorder=1)
        ax.set_xlim(*xlim)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(n, 0)  # input side at the top
        size = 8 if n <= 40 else 6.5
        ax.set_yticks(np.arange(n) + 0.5, [plain(r) for r in rows], fontsize=size)
        tab = blended_transform_factory(ax.transAxes, ax.transData)
        for i, (row, label) in enumerate(zip(rows, ax.get_yticklabels(), strict=True)):
            if row in named:
                color = SEVERITY_COLOR[named[row].severity]
                label.set_color(color)
                label.set_fontweight("bold")
                ax.add_patch(Rectangle((-0.009, i + 0.08), 0.006, 0.84, transform=tab, color=color, clip_on=False))
        ax.tick_params(axis="y", length=0, pad=12)
        line = "white" if panel.cmap != "YlOrRd" else "#333333"
        _mark_findings(ax, [f for f in run.findings if named_rows(rows, [f])], labels=False, color=line)
        ax.set_xlabel("step")
        for side in ("left", "bottom"):
            ax.spines[side].set_visible(False)
        cax = fig.add_axes((1 - (RIGHT - 0.25) / FIG_WIDTH, ax.get_position().y0, 0.16 / FIG_WIDTH,
                            ax.get_position().height))  # fmt: skip
        bar = fig.colorbar(mesh, cax=cax, extend="min" if under else "neither")
        bar.set_label(panel.bar, fontsize=8.5)
        bar.ax.tick_params(labelsize=7.5)
        if panel.log and norm.vmax / norm.vmin < 11:  # a decade: a few plain ticks, not a wall of 10^x labels
            ticks = np.geomspace(norm.vmin, norm.vmax, 4)
            bar.set_ticks(ticks, labels=[f"{t:.3g}" for t in ticks])
            bar.minorticks_off()
        uri = _png(fig)
    if under:
        caption.append(f"Black: exactly 0 (or more than {DECADES} decades below the largest value).")
    if bool(np.isnan(values).any()) or bool(np.isinf(values).any()):
        caption.append("Hatched: not measured at that step, or non-finite.")
    if named:
        marked = sorted({f.code for f in named.values()})
        caption.append("Marked (coloured tab, bold name): the layers named by " + ", ".join(marked) + ".")
    alt = f"{panel.title}: {n} layers x {steps.size} recorded steps"
    return Figure(panel.metric, panel.title, uri, alt, caption)


# --- a repair: before and after --------------------------------------------------------------------------------


def repair_figure(before: RunView, after: RunView) -> Figure | None:
    """The training (and validation) loss before and after a repair, on one axes; None without losses."""
    pairs = [(before, BEFORE, "before"), (after, AFTER, "after")]
    curves = [c for run, _, _ in pairs for c in (run.losses, run.val_losses) if c is not None]
    if not curves:
        return None
    caption = []
    with _style():
        fig, ax = _figure(3.6, left_margin([before, after]))
        for run, color, when in pairs:
            if run.losses is not None:
                caption.append(_draw_curve(ax, run.losses, color, f"training loss {when}", smooth=True))
            if run.val_losses is not None:
                caption.append(_draw_curve(ax, run.val_losses, color, f"validation loss {when}", smooth=False,
                                           dashed=True))  # fmt: skip
        _y_scale(ax, curves)
        for c in curves:
            _mark_nonfinite(ax, c)
        ax.set_xlim(*step_range(max(before.last_step(), after.last_step())))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("step")
        ax.set_ylabel("loss" + (" (log scale)" if ax.get_yscale() == "log" else ""))
        ax.grid(True, alpha=0.25)
        ax.legend(loc="upper right")
        uri = _png(fig)
    return Figure("repair", "Loss before and after the repair", uri, "Loss curves before and after the repair",
                  [c for c in caption if c])  # fmt: skip
