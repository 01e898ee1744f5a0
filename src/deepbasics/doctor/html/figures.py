"""The HTML report, part 2a: the curves of a run and the drawing plumbing every figure shares.

- :func:`loss_figure`: the training loss (raw, and a moving average) and the validation loss over steps, each
  finding marked by a vertical line and its code at the step it was first seen; non-finite losses are gaps,
  marked with a cross on the axis.
- :func:`repair_figure`: the loss curves before and after a repair.
- the per-layer heatmaps are :mod:`.heatmaps`; both draw with :func:`new_figure` and embed with :func:`png_uri`.

Every figure has the same width and the same left and right margins (in inches) and one step range per run, so a
step sits at the same horizontal position in the loss curve and in every layer panel below it.

More than :data:`MAX_POINTS` losses are drawn as :data:`LOSS_BINS` bins (mean, with a min-max band), and the
caption says so. The figures are built on ``matplotlib.figure.Figure`` directly (not ``pyplot``) and saved with the
Agg renderer, so drawing them neither changes the caller's backend nor keeps figures alive.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import MaxNLocator

from .view import Curve, FindingView, RunView, fmt_number

__all__ = ["Figure", "left_margin", "loss_figure", "new_figure", "plain", "png_uri", "repair_figure", "step_range"]

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
#: Layer names longer than this are shortened in the middle (the finding cards give them in full).
NAME_CHARS = 38
#: A log loss axis when all losses are positive and span more than this ratio.
LOG_RANGE = 30.0

SEVERITY_COLOR = {"error": "#c62828", "warning": "#e08a00", "info": "#1f6fb2"}
TRAIN, VAL, BEFORE, AFTER = "#1f4e79", "#e07b00", "#b23b3b", "#2e7d4f"


@dataclass(frozen=True)
class Figure:
    """A drawn figure: ``uri`` is a ``data:image/png;base64,...`` URI; ``caption`` lines go under it."""

    key: str
    title: str
    uri: str
    alt: str
    caption: list[str] = field(default_factory=list)


def left_margin(runs: Sequence[RunView]) -> float:
    """The left margin (inches) that fits the longest layer name of ``runs`` (shortened to NAME_CHARS)."""
    longest = max((len(plain(name)) for run in runs for name in run.trace.layers), default=0)
    return max(MIN_LEFT, 0.45 + CHAR_WIDTH * longest)


def step_range(last: int) -> tuple[float, float]:
    """The x range shared by a run's figures: steps 0..last with a small margin."""
    pad = max(0.5, 0.01 * last)
    return -pad, last + pad


# --- plumbing --------------------------------------------------------------------------------------------------


def style() -> Any:
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


def new_figure(height: float, left: float) -> tuple[Any, Any]:
    """A figure ``FIG_WIDTH`` x ``height`` inches with one axes inside the margins (``left`` inches on the left)."""
    fig = MplFigure(figsize=(FIG_WIDTH, height), dpi=100)
    bottom, top = 0.5, 0.32
    ax = fig.add_axes((left / FIG_WIDTH, bottom / height, 1 - (left + RIGHT) / FIG_WIDTH, 1 - (bottom + top) / height))
    return fig, ax


def png_uri(fig: Any) -> str:
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


def mark_findings(ax: Any, findings: Sequence[FindingView], *, labels: bool = True, color: str | None = None) -> None:
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
    with style():
        fig, ax = new_figure(3.6, left)
        if run.losses is not None:
            caption.append(_draw_curve(ax, run.losses, TRAIN, "training loss", smooth=True))
        if run.val_losses is not None:
            caption.append(_draw_curve(ax, run.val_losses, VAL, "validation loss", smooth=False))
        _y_scale(ax, curves)
        ax.set_xlim(*xlim)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for curve in curves:
            _mark_nonfinite(ax, curve)
        mark_findings(ax, run.findings)
        ax.set_xlabel("step")
        ax.set_ylabel("loss" + (" (log scale)" if ax.get_yscale() == "log" else ""))
        ax.grid(True, alpha=0.25)
        ax.legend(loc="upper right")
        uri = png_uri(fig)
    for when in dict.fromkeys(f.when for f in run.findings if f.step is None):
        codes = ", ".join(dict.fromkeys(f.code for f in run.findings if f.step is None and f.when == when))
        caption.append(f"{when[0].upper()}{when[1:]} (no step to mark): {codes}.")
    if run.val_losses is None:
        caption.append("No validation loss was seen (give session.step(loss, val_loss=...) or run an evaluation pass).")
    alt = f"Loss over {int(run.losses.steps.size) if run.losses is not None else 0} recorded steps"
    return Figure("loss", "Loss over steps", uri, alt, [c for c in caption if c])


# --- a repair: before and after --------------------------------------------------------------------------------


def repair_figure(before: RunView, after: RunView) -> Figure | None:
    """The training (and validation) loss before and after a repair, on one axes; None without losses."""
    pairs = [(before, BEFORE, "before"), (after, AFTER, "after")]
    curves = [c for run, _, _ in pairs for c in (run.losses, run.val_losses) if c is not None]
    if not curves:
        return None
    caption = []
    with style():
        fig, ax = new_figure(3.6, left_margin([before, after]))
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
        uri = png_uri(fig)
    return Figure("repair", "Loss before and after the repair", uri, "Loss curves before and after the repair",
                  [c for c in caption if c])  # fmt: skip
