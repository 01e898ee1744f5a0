"""One training batch and its loss, reconstructed from an unmodified script, for the curvature checks.

The Hessian checks (``ill_conditioned``, ``saddle_point``; :mod:`.measure`) need ``loss_fn(model(x), y)`` on a
batch. ``diagnose`` is given both; a script watched by ``deepbasics doctor`` never names its loss function, so the
session reconstructs the pair from the first training step:

1. the root module's first training forward (gradients on) is noted: its input ``x`` (the first
   ``CURVATURE_EXAMPLES`` examples, copied) and its output's autograd node;
2. the first watched loss call made with gradients on (:mod:`.losstap`: ``F.cross_entropy``, ``nn.MSELoss``, ...)
   whose input *is* that output, or derives from it through reshapes only (``view``, ``reshape``, ``squeeze``,
   ``flatten``: the same values in the same order, e.g. ``logits.reshape(-1, V)`` or ``out.squeeze(1)``), gives the
   loss function (the original ``torch.nn.functional`` one, with the call's keyword arguments and
   ``reduction="mean"``), the target (the rows of the copied examples) and the reshape.

If the loss input went through anything else (a slice ``out[:, -1]``, a sum of several losses is fine as long as
the first watched call matches), nothing is captured and the curvature checks are skipped: a reconstruction that is
not exactly the script's loss would judge a different function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from . import thresholds as T

__all__ = ["CapturedBatch", "ExpectedOutput", "capture"]

_RESHAPES = frozenset(
    {
        "ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0", "SqueezeBackward0", "SqueezeBackward1",
        "SqueezeBackward2", "UnsqueezeBackward0", "AliasBackward0",
    }
)  # fmt: skip
#: Keyword arguments of the functional losses that change the function (kept); ``reduction`` is always "mean".
_KEPT = ("weight", "ignore_index", "label_smoothing", "pos_weight", "delta", "beta", "log_input", "full", "eps")


@dataclass
class ExpectedOutput:
    """The first training forward of the root module: its input (copied rows) and its output's autograd node."""

    x: Any
    node: Any
    batch: int


@dataclass
class CapturedBatch:
    """``loss_fn(model(x), y)`` as the script computes it (module docstring)."""

    x: Any
    y: torch.Tensor
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    loss: str


def _rows(t: Any, n: int) -> Any:
    return t[:n].detach().clone() if isinstance(t, torch.Tensor) and t.dim() > 0 else t


def expect(x: Any, output: Any) -> ExpectedOutput | None:
    """Note a root forward's input and output (None when either is not a batched tensor with a graph)."""
    if not isinstance(x, torch.Tensor) or x.dim() == 0 or not isinstance(output, torch.Tensor):
        return None
    if output.grad_fn is None or output.dim() == 0 or output.shape[0] != x.shape[0]:
        return None
    return ExpectedOutput(_rows(x, T.CURVATURE_EXAMPLES), output.grad_fn, int(x.shape[0]))


def _reaches(node: Any, target: Any) -> bool:
    for _ in range(8):
        if node is target:
            return True
        if node is None or type(node).__name__ not in _RESHAPES:
            return False
        node = node.next_functions[0][0] if node.next_functions else None
    return False


def capture(
    expected: ExpectedOutput, original: Callable[..., Any], name: str, x_in: Any, target: Any, kwargs: dict[str, Any]
) -> CapturedBatch | None:
    """The batch and loss of a watched loss call whose input derives from ``expected``'s output by reshapes, else
    None (module docstring). ``original``: the unwrapped ``torch.nn.functional`` loss."""
    if not isinstance(x_in, torch.Tensor) or not isinstance(target, torch.Tensor) or x_in.dim() == 0:
        return None
    if not _reaches(x_in.grad_fn, expected.node) or x_in.shape[0] % expected.batch:
        return None
    per_example = x_in.shape[0] // expected.batch  # rows of the loss input per example: T for (N T, V)
    if target.dim() == 0 or target.shape[0] != x_in.shape[0]:
        return None
    n = expected.x.shape[0]
    y = target[: n * per_example].detach().clone()
    shape = tuple(x_in.shape[1:])
    options = {k: v for k, v in kwargs.items() if k in _KEPT}

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return original(out.reshape(-1, *shape), y, reduction="mean", **options)

    return CapturedBatch(expected.x, y, loss_fn, name)
