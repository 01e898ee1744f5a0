"""What a watched run's first steps show about the setup: the naive softmax in the autograd graph, the input scale.

``diagnose`` learns these before training from one traced forward (:mod:`.trace`); a watched loop or script has no
such forward, so the session learns them from its first training steps instead, at a one-time cost:

- :class:`GraphScan`, ``naive_softmax`` (FAQ Q8.a): on the first training forwards, forward hooks on every
  submodule note which module returned which autograd node; at the first :data:`SCAN_LOSSES` losses the loss's
  autograd graph is walked (at most :data:`MAX_NODES` nodes) for the pattern ``exp(x) / sum(exp(x))`` -- a
  ``DivBackward0`` whose numerator is an ``ExpBackward0`` and whose denominator is a sum (through views) of that same
  exp, or of an exp of the same input -- where ``x`` is not a difference (``x - max(x)``, the stable form). The site
  is the innermost module whose output the walk passed on its way from the loss to the division. The graph's
  structure survives ``backward()`` (only its saved tensors are freed), so ``session.step(loss)`` may come after it.
- :class:`InputMoments`, ``unnormalized_inputs`` (FAQ Q3.1.d): the per-feature count, sum and sum of squares of the
  model's floating-point input on the first :data:`INPUT_SAMPLES` sampled training forwards (kept on the device,
  in float64), from which the same per-feature means and standard deviations as
  :func:`~deepbasics.doctor.trace.input_statistics` are computed at a check. Token ids (integer inputs) and packed
  sequences are not features and are skipped.

Both only read tensors; the naming hooks are removed after the last scan.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from .trace import feature_rows

__all__ = ["INPUT_SAMPLES", "MAX_NODES", "SCAN_LOSSES", "GraphScan", "InputMoments", "naive_softmax_nodes"]

#: Losses whose autograd graph is scanned (the first ones: the pattern is in the model's code, every step has it).
SCAN_LOSSES = 2
#: Autograd nodes visited per scan at most (a transformer step has ~10^3; the bound keeps the one-time cost small).
MAX_NODES = 20_000
#: Sampled training forwards whose inputs are accumulated for the input statistics (the first forward and then one
#: per ``layer_every`` steps: 8 batches, enough for per-feature means and standard deviations).
INPUT_SAMPLES = 8

_VIEWS = frozenset(
    {
        "ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0", "SqueezeBackward0", "SqueezeBackward1",
        "SqueezeBackward2", "UnsqueezeBackward0", "ExpandBackward0", "AliasBackward0", "CloneBackward0",
        "ToCopyBackward0",
    }
)  # fmt: skip
_SUMS = frozenset({"SumBackward0", "SumBackward1"})


def _children(node: Any) -> Iterator[Any]:
    for child, _ in getattr(node, "next_functions", ()):
        if child is not None:
            yield child


def _through_views(node: Any) -> Any:
    for _ in range(8):
        if node is None or type(node).__name__ not in _VIEWS:
            return node
        node = next(_children(node), None)
    return node


def _naive(div: Any) -> bool:
    """``div`` computes exp(x) / sum(exp(x)) with x not a difference (module docstring)."""
    parts = [child for child, _ in div.next_functions]
    if len(parts) != 2 or parts[0] is None or parts[1] is None:
        return False
    numerator, denominator = _through_views(parts[0]), _through_views(parts[1])
    if type(numerator).__name__ != "ExpBackward0" or type(denominator).__name__ not in _SUMS:
        return False
    summed = _through_views(next(_children(denominator), None))
    if summed is not numerator:
        if type(summed).__name__ != "ExpBackward0":
            return False
        if next(_children(summed), None) is not next(_children(numerator), None):
            return False  # exp of another input
    source = next(_children(numerator), None)
    return type(source).__name__ != "SubBackward0"  # exp(x - max(x)) is the stable form


def naive_softmax_nodes(loss: torch.Tensor, names: dict[int, str] | None = None) -> list[str]:
    """The sites of ``exp(x) / sum(exp(x))`` in ``loss``'s autograd graph (module docstring): for each, the innermost
    module (``names``: ``{id(output grad_fn): module name}``) whose output lies on the way from the loss, else
    ``"(model)"``. Visits at most :data:`MAX_NODES` nodes."""
    root = loss.grad_fn
    if root is None:
        return []
    names = names or {}
    sites: list[str] = []
    seen = {id(root)}
    stack: list[tuple[Any, str]] = [(root, names.get(id(root), "(model)"))]
    while stack and len(seen) <= MAX_NODES:
        node, where = stack.pop()
        if type(node).__name__ == "DivBackward0" and _naive(node) and where not in sites:
            sites.append(where)
        for child in _children(node):
            if id(child) not in seen:
                seen.add(id(child))
                stack.append((child, names.get(id(child), where)))
    return sites


class GraphScan:
    """The naive-softmax scan of one model's first losses (module docstring)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.sites: list[str] = []
        self.scanned = 0
        self._names: dict[int, tuple[Any, str]] = {}  # id(grad_fn) -> (grad_fn, module name): ids stay valid
        self._handles: list[Any] = []

    def __deepcopy__(self, memo: dict[int, Any]) -> GraphScan:
        """Shared, not copied: a deep copy of the watched model (``diagnose`` locating a non-finite step) reaches
        the scan through the recorder's bound-method hooks, and autograd nodes cannot be copied."""
        return self

    def on_training_forward(self) -> None:
        """A training forward before the last scan: note which module returns which autograd node (hooks until the
        last scan)."""
        if self.scanned >= SCAN_LOSSES or self._handles:
            return
        for name, module in self.model.named_modules():
            self._handles.append(module.register_forward_hook(self._hook(name or "(root)")))

    def _hook(self, name: str) -> Any:
        def note(module: nn.Module, args: Any, output: Any) -> None:
            node = getattr(output, "grad_fn", None)
            if node is not None and id(node) not in self._names:
                self._names[id(node)] = (node, name)

        return note

    def on_loss(self, loss: torch.Tensor) -> None:
        """Scan the first :data:`SCAN_LOSSES` losses' graphs."""
        if self.scanned >= SCAN_LOSSES:
            return
        self.scanned += 1
        names = {key: name for key, (_, name) in self._names.items()}
        self.sites += [s for s in naive_softmax_nodes(loss, names) if s not in self.sites]
        if self.scanned >= SCAN_LOSSES:
            self.remove()
            self._names.clear()

    def remove(self) -> None:
        """Remove the naming hooks (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


class InputMoments:
    """Per-feature moments of a model's training inputs (module docstring)."""

    def __init__(self, samples: int = INPUT_SAMPLES) -> None:
        self.samples = samples
        self.taken = 0
        self._moments: torch.Tensor | None = None  # (3, F): count, sum, sum of squares (float64, on the device)

    def add(self, x: Any) -> None:
        """Accumulate one batch ``x``: (N, F) per column, (N, T, F) per last-dim feature, (N, C, ...) per channel."""
        if self.taken >= self.samples or not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 1:
            return
        with torch.no_grad():
            v = feature_rows(x)  # (rows, F)
            if v.shape[0] == 0 or (self._moments is not None and self._moments.shape[1] != v.shape[1]):
                return
            v = v.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
            moments = torch.stack([torch.full_like(v[0], float(v.shape[0])), v.sum(0), (v * v).sum(0)])
            self._moments = moments if self._moments is None else self._moments + moments
        self.taken += 1

    def statistics(self) -> tuple[list[float], list[float]]:
        """Per-feature means and population standard deviations of the accumulated inputs (one host copy)."""
        if self._moments is None:
            return [], []
        count, total, squares = self._moments.cpu()
        mean = total / count
        var = (squares / count - mean * mean).clamp_min(0.0)  # rounding can make it slightly negative
        return mean.tolist(), var.sqrt().tolist()
