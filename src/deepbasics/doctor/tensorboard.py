"""TensorBoard export of a watched run: the loss and the latest per-layer statistics at every check.

``watch(..., tensorboard=writer_or_logdir)``: a ``SummaryWriter``-like object (anything with ``add_scalar``) or a
log directory (a ``torch.utils.tensorboard.SummaryWriter`` is created; without TensorBoard installed a warning says
so and nothing is written). At each check :class:`ScalarExport` writes the new training losses
(``doctor/loss``), the last recorded ``grad_norm``, ``update_ratio``, ``dead_frac`` and ``sat_frac`` of every
layer (``doctor/<metric>/<layer>``) and the number of findings (``doctor/findings``). Non-finite values are skipped.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

from .._checks import fail
from .records import RunTrace

__all__ = ["ScalarExport", "make_writer"]

METRICS = ("grad_norm", "update_ratio", "dead_frac", "sat_frac")


def make_writer(tensorboard: Any) -> Any:
    """A writer from ``tensorboard`` (a writer, a log directory or None); see the module docstring."""
    if tensorboard is None:
        return None
    if hasattr(tensorboard, "add_scalar"):
        return tensorboard
    if isinstance(tensorboard, (str, os.PathLike)):
        try:
            from torch.utils.tensorboard import SummaryWriter  # lazy: optional extra
        except ImportError:
            warnings.warn(
                "watch(tensorboard=...): TensorBoard is not installed, so nothing is written. "
                "Install it with `pip install deepbasics[tensorboard]`.",
                stacklevel=4,
            )
            return None
        return SummaryWriter(log_dir=os.fspath(tensorboard))
    raise fail(TypeError, "tensorboard", "a SummaryWriter, a log directory or None", type(tensorboard).__name__,
               "Pass torch.utils.tensorboard.SummaryWriter(...) or a path.")  # fmt: skip


class ScalarExport:
    """Writes a session's scalars to ``writer`` at each check (module docstring)."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self._written = 0

    def log(self, trace: RunTrace, findings: int, step: int) -> None:
        """Write what is new in ``trace`` and the finding count at ``step``."""
        for s, value in trace.losses[self._written :]:
            if math.isfinite(value):
                self.writer.add_scalar("doctor/loss", value, s)
        self._written = len(trace.losses)
        for name, rec in trace.layers.items():
            steps = rec.get("step", [])
            for metric in METRICS:
                values = rec.get(metric, [])
                if values and values[-1] is not None and steps and math.isfinite(values[-1]):
                    self.writer.add_scalar(f"doctor/{metric}/{name}", values[-1], steps[-1])
        self.writer.add_scalar("doctor/findings", findings, step)

    def flush(self) -> None:
        """Flush the writer when it can."""
        if hasattr(self.writer, "flush"):
            self.writer.flush()
