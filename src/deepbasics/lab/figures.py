"""Figures of the lab: one helper for experiment authors (:func:`save_figure`) and the engine's checks.

Plots are drawn with matplotlib's non-interactive ``Agg`` backend (worker processes select it before any
``pyplot`` import) and saved as PNG files in the experiment's own folder, ``<out>/figures/<experiment id>/``.
The report links them by relative path, so ``index.html`` opens offline.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._checks import fail

__all__ = ["check_figures", "save_figure"]


def save_figure(fig: Any, outdir: Path, name: str, *, dpi: int = 110) -> Path:
    """Save a matplotlib figure as ``outdir/<name>.png`` and close it; return the path.

    Use it in ``plot`` functions: ``return [save_figure(fig, outdir, "ks_vs_n")]``. Closing matters: a worker
    that leaves figures open leaks memory across plots.
    """
    import matplotlib.pyplot as plt

    if not isinstance(name, str) or not name or "/" in name or "\\" in name:
        raise fail(ValueError, "name", "a plain file name without folders", repr(name), 'Use e.g. "loss_curve".')
    path = Path(outdir) / (name if name.endswith(".png") else f"{name}.png")
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def check_figures(paths: object, outdir: Path) -> list[str]:
    """Check what a ``plot`` function returned; give the figure paths relative to ``outdir`` (POSIX style).

    Each path must be a non-empty PNG file inside ``outdir``, the folder the engine passed to ``plot``. A
    relative path is taken as :func:`save_figure` returns it (relative to the working directory, when ``outdir``
    itself was relative), or else as a bare name inside ``outdir``.
    """
    if isinstance(paths, (str, Path)) or not isinstance(paths, Iterable):
        raise fail(TypeError, "plot()", "a list of PNG paths", type(paths).__name__, "Return [save_figure(...)].")
    root = Path(outdir).resolve()
    names = []
    for p in paths:
        path = Path(p).resolve()  # absolute, or relative to the cwd as save_figure(fig, relative_outdir) gives it
        if not Path(p).is_absolute() and root not in path.parents:
            path = (root / Path(p)).resolve()  # a bare name inside outdir
        if root not in path.parents:
            raise fail(
                ValueError, "plot()", f"figures inside {root}", str(path), "Save into the outdir you were given."
            )
        if path.suffix.lower() != ".png" or not path.is_file() or path.stat().st_size == 0:
            raise fail(ValueError, "plot()", "an existing, non-empty .png file", str(path), "Save it with save_figure.")
        names.append(path.relative_to(root).as_posix())
    return names
