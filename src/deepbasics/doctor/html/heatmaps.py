"""The HTML report, part 2b: one per-layer metric of :class:`~deepbasics.probe.LayerStats` as a heatmap.

Layers (input side at the top, in the order LayerStats met them in the forward pass) by recorded steps: a log
colour scale for magnitudes (gradient norm, update-to-weight ratio, activation spread; at least a decade wide, so a
small spread does not look stark), a linear one for fractions (dead, saturated units). The layers a finding names
get a coloured tab and a bold, coloured name; the steps of those findings a dashed line. Cells not measured or
non-finite are hatched gaps; exact zeros on a log scale take the colour under it (black). More than
:data:`MAX_COLUMNS` recorded steps are thinned to evenly spaced ones, more than :data:`MAX_ROWS` layers to evenly
spaced ones plus those a finding names; the caption says so. Shared drawing plumbing: :mod:`.figures`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm, Normalize
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from .figures import (
    FIG_WIDTH,
    MIN_LEFT,
    RIGHT,
    SEVERITY_COLOR,
    Figure,
    mark_findings,
    new_figure,
    plain,
    png_uri,
    style,
)
from .view import RunView, layer_matrix, named_rows

__all__ = ["MAX_COLUMNS", "MAX_ROWS", "PANELS", "Panel", "layer_figure"]

#: Recorded steps (heatmap columns) and layers (rows) drawn at most; beyond that, evenly spaced ones.
MAX_COLUMNS, MAX_ROWS = 400, 64
#: A log colour scale spans at most this many decades below its maximum (smaller values take the 'under' colour).
DECADES = 12
GAP_HATCH = "#c9c9c9"


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
    with style():
        fig, ax = new_figure(min(12.0, max(1.9, 0.85 + 0.19 * n)), left)
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
        mark_findings(ax, [f for f in run.findings if named_rows(rows, [f])], labels=False, color=line)
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
        uri = png_uri(fig)
    if under:
        caption.append(f"Black: exactly 0 (or more than {DECADES} decades below the largest value).")
    if bool(np.isnan(values).any()) or bool(np.isinf(values).any()):
        caption.append("Hatched: not measured at that step, or non-finite.")
    if named:
        marked = sorted({f.code for f in named.values()})
        caption.append("Marked (coloured tab, bold name): the layers named by " + ", ".join(marked) + ".")
    alt = f"{panel.title}: {n} layers x {steps.size} recorded steps"
    return Figure(panel.metric, panel.title, uri, alt, caption)
