"""The loss calls a training script makes, seen at run time: output activations and validation passes.

While at least one session listens (:class:`LossWatch`), the loss functions of ``torch.nn.functional`` listed in
:data:`LOSSES` are replaced by thin wrappers (restored when the last listener leaves). ``torch.nn``'s loss modules
call these functions (``nn.CrossEntropyLoss`` calls ``F.cross_entropy``), so both styles are seen. A wrapper calls
the original with the same arguments and returns its result untouched; it then hands the call to the listening
session -- when several listen (two watched models), the one whose model ran the latest forward pass: each then
notes its model's forwards with a root hook (:meth:`LossWatch.on_forward`), which a single session does without.
Most calls only increment a counter (a few microseconds in all). Under
``torch.compile`` tracing, and for loss calls made by the doctor itself (:func:`suspended`), the original is called
and nothing is recorded.

What a :class:`LossWatch` makes of a call:

- **Output activation** (``loss_activation_mismatch``): on the first ``INSPECT_FIRST`` calls of each loss and at
  calls ``INSPECT_EVERY * 2^k`` (a model's output layer does not change from call to call: a sample that thins as
  the run grows costs O(log calls), ~0.7 ms per inspection on the digits MLP), the op that produced the loss input
  is read from the autograd graph, through views
  (``SoftmaxBackward0`` -> ``"softmax"``), with the activation module that returned it (forward hooks on the
  model's Softmax/LogSoftmax/Sigmoid modules, at most ``MAX_ACTIVATION_HOOKS``), and a few reductions of the input
  (at most ``INSPECT_ROWS`` rows) are queued: its range, how far its rows are from summing to 1 and from
  log-sum-exp 0 (:class:`~deepbasics.doctor.records.LossCall`). They are copied to the host at the next check.
- **The training loss itself**: the first loss call made with gradients on whose input is the model's first training
  output (up to reshapes) is kept as a batch and a loss function (:mod:`.lossbatch`), for the curvature checks of
  ``deepbasics doctor SCRIPT``.
- **Validation loss** (``overfitting`` in unmodified scripts). The rule: a loss computed while the model is not
  training (``model.eval()``, or gradients disabled by ``torch.no_grad()``) belongs to an *evaluation pass*; the pass
  ends at the next training loss, training forward or session step, and its validation loss is the mean of its
  batch losses weighted by batch size (``reduction="sum"`` divided by the element count, ``"none"`` averaged),
  logged at the last training step. A loss that is then backpropagated was a training loss after all (a model
  trained in eval mode) and is dropped from the pass.

Limits of the validation rule: only losses computed with ``torch.nn`` losses or these functions count (a
hand-written ``((out - y) ** 2).mean()`` is not seen); a script that evaluates the training set and the validation
set back to back, with no training step between, gets one pass averaging both; a loss function imported before the
watch began (``from torch.nn.functional import cross_entropy`` at the top of a module imported earlier) is not seen;
and validation losses given explicitly (``session.log_val``, ``session.step(val_loss=...)``, the training
callbacks) replace the tapped ones.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from . import thresholds as T
from .lossbatch import CapturedBatch, ExpectedOutput, capture
from .records import LossCall

__all__ = ["INSPECTED", "LOSSES", "LossWatch", "inspected", "suspended"]

#: The ``torch.nn.functional`` losses that are watched.
LOSSES: tuple[str, ...] = (
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "kl_div",
    "poisson_nll_loss",
    "gaussian_nll_loss",
)
#: The losses whose inputs are inspected for a mismatched output activation.
INSPECTED: tuple[str, ...] = ("cross_entropy", "nll_loss", "binary_cross_entropy_with_logits", "mse_loss")
INSPECT_FIRST = 2
INSPECT_EVERY = 200
#: Rows (or values, for element-wise losses) read per inspection: enough for the evidence, bounded cost.
INSPECT_ROWS = 256
INSPECT_VALUES = 65536
MAX_ACTIVATION_HOOKS = 8
#: Integer regression targets in [0, INDEX_TARGET_BINS) are counted per value (class indices fed to MSELoss).
INDEX_TARGET_BINS = 64


def inspected(count: int) -> bool:
    """Whether the ``count``-th call of a loss is inspected: the first ``INSPECT_FIRST``, then
    ``INSPECT_EVERY * 2^k``."""
    if count <= INSPECT_FIRST:
        return True
    quotient, rest = divmod(count, INSPECT_EVERY)
    return rest == 0 and quotient & (quotient - 1) == 0


_PRODUCERS = {"SoftmaxBackward0": "softmax", "LogSoftmaxBackward0": "log_softmax", "SigmoidBackward0": "sigmoid"}
_VIEWS = frozenset(
    {
        "ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0", "SqueezeBackward0", "SqueezeBackward1",
        "SqueezeBackward2", "UnsqueezeBackward0", "PermuteBackward0", "TransposeBackward0", "TBackward0",
        "SelectBackward0", "SliceBackward0", "CloneBackward0", "ToCopyBackward0", "ExpandBackward0",
        "AliasBackward0", "FlattenBackward0",
    }
)  # fmt: skip
_ACTIVATIONS = (nn.Softmax, nn.LogSoftmax, nn.Sigmoid, nn.Softmax2d)


class _Local(threading.local):
    busy = False  # inside a watched loss call, or in suspended()


_listeners: list[LossWatch] = []
_originals: dict[str, Callable[..., Any]] = {}
_local = _Local()
_sequence = itertools.count()
_lock = threading.Lock()
_compiling: Callable[[], bool] = getattr(getattr(torch, "compiler", None), "is_compiling", None) or (lambda: False)


@contextmanager
def suspended() -> Iterator[None]:
    """Loss calls made inside the block (by the doctor's own measurements) are not recorded."""
    previous = _local.busy
    _local.busy = True
    try:
        yield
    finally:
        _local.busy = previous


def _wrap(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def loss(*args: Any, **kwargs: Any) -> Any:
        if _local.busy or not _listeners or _compiling():
            return original(*args, **kwargs)
        grad = torch.is_grad_enabled()
        _local.busy = True  # a loss implemented with another watched loss is seen once
        try:
            result = original(*args, **kwargs)
        finally:
            _local.busy = False
        try:
            listeners = _listeners
            watch = listeners[0] if len(listeners) == 1 else max(listeners, key=lambda w: w.forward_seq)
            counts = watch.counts
            count = counts[name] = counts.get(name, 0) + 1
            if not (grad and count > INSPECT_FIRST and count % INSPECT_EVERY and watch.quiet()):
                watch.on_loss(name, args, kwargs, result, grad, count)
        except Exception:  # the doctor never disturbs the user's run; the call is simply not recorded
            pass
        return result

    loss.__wrapped__ = original  # type: ignore[attr-defined]
    loss.__doc__, loss.__name__, loss.__qualname__ = original.__doc__, original.__name__, original.__qualname__
    return loss


def _subscribe(watch: LossWatch) -> None:
    import torch.nn.functional as F

    with _lock:
        if not _listeners:
            for name in LOSSES:
                original = getattr(F, name, None)
                if original is not None:
                    _originals[name] = original
                    setattr(F, name, _wrap(name, original))
        if watch not in _listeners:
            _listeners.append(watch)
        for listener in _listeners:
            listener.track_forwards(len(_listeners) > 1)


def _unsubscribe(watch: LossWatch) -> None:
    import torch.nn.functional as F

    with _lock:
        if watch in _listeners:
            _listeners.remove(watch)
        for listener in _listeners:
            listener.track_forwards(len(_listeners) > 1)
        if not _listeners:
            for name, original in _originals.items():
                setattr(F, name, original)
            _originals.clear()


def producer_of(x: torch.Tensor) -> tuple[str | None, Any]:
    """The activation op (``"softmax"``, ``"log_softmax"``, ``"sigmoid"``) whose output ``x`` is, through views,
    read from the autograd graph, with its graph node; ``(None, None)`` when there is none or no graph."""
    node = x.grad_fn
    for _ in range(8):
        if node is None:
            return None, None
        kind = type(node).__name__
        if kind in _PRODUCERS:
            return _PRODUCERS[kind], node
        if kind not in _VIEWS or not node.next_functions:
            return None, None
        node = node.next_functions[0][0]
    return None, None


class LossWatch:
    """One session's view of the loss calls (module docstring).

    Args:
        model: the watched module (activation modules inside it are hooked to name them).
        current_step: returns the session's latest step index (where a closed evaluation pass is logged).
    """

    def __init__(self, model: nn.Module, current_step: Callable[[], int]) -> None:
        self.model = model
        self.current_step = current_step
        self.forward_seq = -1
        self.explicit_val = False
        self._forward_handle: Any = None
        self.counts: dict[str, int] = {}  # calls per loss function
        self._records: dict[tuple[str, str | None, str | None], LossCall] = {}
        self._queued: list[tuple[tuple[str, str | None, str | None], str, torch.Tensor, float]] = []
        self._pass: list[tuple[torch.Tensor, float, bool]] = []  # (mean loss, weight, made with grad)
        self._passes: list[tuple[int, torch.Tensor]] = []  # closed passes, not yet copied to the host
        self.val_losses: list[tuple[int, float]] = []
        self._outputs: dict[str, tuple[weakref.ref, Any]] = {}
        self._handles: list[Any] = []
        self.expected: ExpectedOutput | None = None  # the model's first training forward (deepbasics.doctor.lossbatch)
        self.batch: CapturedBatch | None = None  # the loss and batch reconstructed from it

    # ------------------------------------------------------------------------------------------ lifecycle
    def attach(self) -> LossWatch:
        """Listen to the loss calls and hook the model's output activation modules (idempotent)."""
        if self in _listeners:
            return self
        modules = [(n, m) for n, m in self.model.named_modules() if isinstance(m, _ACTIVATIONS)]
        if len(modules) <= MAX_ACTIVATION_HOOKS:
            for name, module in modules:
                self._handles.append(module.register_forward_hook(self._hook(name or "(root)")))
        _subscribe(self)
        return self

    def detach(self) -> None:
        """Stop listening; an evaluation pass in progress is closed (idempotent)."""
        _unsubscribe(self)
        self.track_forwards(False)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.close_pass()

    def track_forwards(self, on: bool) -> None:
        """Note the model's forwards (a root pre-hook): needed to route loss calls when several sessions listen."""
        if on and self._forward_handle is None:
            self._forward_handle = self.model.register_forward_pre_hook(
                lambda module, args: self.on_forward(module.training and torch.is_grad_enabled())
            )
        elif not on and self._forward_handle is not None:
            self._forward_handle.remove()
            self._forward_handle = None

    def _hook(self, name: str) -> Callable[..., None]:
        def remember(module: nn.Module, args: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor):
                with contextlib.suppress(TypeError):  # a tensor type without weak references: the module is not named
                    self._outputs[name] = (weakref.ref(output), output.grad_fn)

        return remember

    # ------------------------------------------------------------------------------------------ events
    def on_forward(self, training: bool) -> None:
        """The watched model's root forward begins (``training``: train mode with gradients enabled)."""
        if training and self._pass:
            self.close_pass()
        self.forward_seq = next(_sequence)

    @property
    def in_pass(self) -> bool:
        """Whether an evaluation pass is in progress."""
        return bool(self._pass)

    def on_backward(self) -> None:
        """A training step ends (``session.step``): pass entries made with gradients were training losses (a model
        trained in eval mode); the rest of the pass is closed."""
        if self._pass:
            self._pass = [entry for entry in self._pass if not entry[2]]
            self.close_pass()

    def quiet(self) -> bool:
        """The model is training and no evaluation pass is open: a loss call only counts."""
        return self.model.training and not self._pass

    def on_loss(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any, grad: bool, count: int
    ) -> None:
        """A watched loss function returned ``result`` for ``args``; ``grad``: gradients were enabled for the call.
        ``count``: the calls of this loss so far (the wrapper counts them, and skips this method for the common
        case: a training call, not inspected, no evaluation pass open -- :meth:`quiet`)."""
        training = grad and self.model.training
        if training and self._pass:
            self.close_pass()
        if grad and self.expected is not None and self.batch is None and name in _originals:
            x, target = (args[0] if args else kwargs.get("input")), (args[1] if len(args) > 1 else kwargs.get("target"))
            self.batch = capture(self.expected, _originals[name], name, x, target, kwargs)
        if training and count > INSPECT_FIRST and count % INSPECT_EVERY:
            return  # the common case: a training call, not inspected
        evaluating = not training and not self.explicit_val
        inspect = inspected(count) and name in INSPECTED
        x = args[0] if args else kwargs.get("input")
        target = args[1] if len(args) > 1 else kwargs.get("target")
        if not isinstance(x, torch.Tensor) or not isinstance(result, torch.Tensor):
            return
        with torch.no_grad():
            if evaluating:
                self._add_to_pass(name, x, target, result, kwargs.get("reduction", "mean"))
            if inspect:
                self._inspect(name, x, target)

    # ------------------------------------------------------------------------------------------ validation
    def _add_to_pass(self, name: str, x: torch.Tensor, target: Any, result: torch.Tensor, reduction: Any) -> None:
        batch = float(x.shape[0]) if x.dim() > 0 else 1.0
        value = result.detach().float()
        if reduction == "none":
            value = value.mean()
        elif reduction == "sum":
            value = value / max(_elements(name, x, target), 1)
        if value.numel() == 1:
            self._pass.append((value.reshape(()), batch, result.requires_grad))

    def close_pass(self) -> None:
        """End the evaluation pass in progress: its weighted mean is queued as a validation loss."""
        if self._pass and not self.explicit_val:
            values = torch.stack([v.to(self._pass[0][0].device) for v, _, _ in self._pass])
            weights = torch.tensor([w for _, w, _ in self._pass], dtype=values.dtype, device=values.device)
            self._passes.append((max(self.current_step(), 0), (values * weights).sum() / weights.sum()))
        self._pass = []

    def drop_tapped(self) -> None:
        """Explicit validation losses arrived: forget the tapped ones (they would mix two definitions)."""
        self.explicit_val = True
        self._pass, self._passes, self.val_losses = [], [], []

    # ------------------------------------------------------------------------------------------ activations
    def _module_of(self, x: torch.Tensor, node: Any) -> str | None:
        for name, (ref, grad_fn) in self._outputs.items():
            if (node is not None and grad_fn is node) or ref() is x:
                return name
        return None

    def _inspect(self, name: str, x: torch.Tensor, target: Any) -> None:
        producer, node = producer_of(x)
        key = (name, producer, self._module_of(x, node))
        x = x.detach()
        if name in ("cross_entropy", "nll_loss"):
            if x.dim() == 0 or x.shape[1 if x.dim() >= 2 else 0] < 2 or not x.is_floating_point():
                return
            classes = x.shape[1] if x.dim() >= 2 else x.shape[0]
            rows = (x[:INSPECT_ROWS].movedim(1, -1) if x.dim() >= 2 else x[None]).reshape(-1, classes)
            rows = rows[:INSPECT_ROWS].float()  # (R, C)
            tol = max(T.ROW_SUM_TOL, 4 * math.sqrt(classes) * torch.finfo(x.dtype).eps)
            stats = torch.stack(
                [rows.amin(), rows.amax(), (rows.sum(-1) - 1).abs().amax(), torch.logsumexp(rows, -1).abs().amax()]
            )
            self._queued.append((key, "rows", stats, tol))
        else:
            flat = x.reshape(-1)[:INSPECT_VALUES].float()
            binary = torch.zeros((), device=x.device)
            if isinstance(target, torch.Tensor) and target.numel():
                t = target.detach().reshape(-1)[:INSPECT_VALUES]
                binary = ((t == 0) | (t == 1)).all().float()
            if flat.numel():
                self._queued.append((key, "values", torch.stack([flat.amin(), flat.amax(), binary]), 0.0))
            if name == "mse_loss" and isinstance(target, torch.Tensor) and target.numel():
                self._queued.append((key, "targets", _index_target_stats(x, target), 0.0))

    def records(self) -> tuple[list[tuple[int, float]], list[LossCall]]:
        """The validation losses and loss-call records so far (one host copy of everything queued)."""
        if self._passes:
            values = _to_host([v.reshape(1) for _, v in self._passes])
            self.val_losses += [(s, v[0]) for (s, _), v in zip(self._passes, values, strict=True)]
            self._passes = []
        if self._queued:
            width = max(4, *(s.numel() for _, _, s, _ in self._queued))
            stats = _to_host([nn.functional.pad(s.double(), (0, width - s.numel())) for _, _, s, _ in self._queued])
            for (key, kind, _, tol), row in zip(self._queued, stats, strict=True):
                record = self._records.setdefault(key, LossCall(*key))
                lo, hi, a, b = row[:4]
                if kind == "targets":  # not a call of its own: the targets of the "values" entry before it
                    if lo == 1.0:
                        record.index_targets += 1
                        counts = [int(c) for c in row[4 : 4 + INDEX_TARGET_BINS]]
                        merged = [x + y for x, y in itertools.zip_longest(record.target_counts, counts, fillvalue=0)]
                        while merged and merged[-1] == 0:
                            merged.pop()  # the values seen, 0..max
                        record.target_counts = merged
                    continue
                record.calls += 1
                if kind == "rows":
                    record.probabilities += lo >= -1e-6 and hi <= 1 + 1e-6 and a <= tol
                    record.log_probabilities += hi <= 1e-6 and b <= tol
                else:
                    record.unit_interval += lo >= 0 and hi <= 1
                    record.binary_targets += a == 1.0
            self._queued = []
        return list(self.val_losses), [LossCall(**vars(r)) for r in self._records.values()]


def _index_target_stats(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``[is_index, 0, 0, 0, count_0, ..., count_{B-1}]``: ``is_index`` is 1 when the prediction has one value per
    example and every target is an integer in ``[0, INDEX_TARGET_BINS)``, and the counts of each target value,
    computed on the device (no host synchronisation; copied with the other statistics)."""
    one_output = x.dim() <= 1 or (x.dim() == 2 and x.shape[1] == 1)
    t = target.detach().reshape(-1)[:INSPECT_VALUES].float()
    integer = (t == t.round()).all() & (t.amin() >= 0) & (t.amax() < INDEX_TARGET_BINS)
    index = t.clamp(0, INDEX_TARGET_BINS - 1).long()
    counts = torch.zeros(INDEX_TARGET_BINS, device=t.device).scatter_add_(0, index, torch.ones_like(t))
    flag = integer.float() if one_output else torch.zeros((), device=t.device)
    return torch.cat([torch.stack([flag, flag.new_zeros(()), flag.new_zeros(()), flag.new_zeros(())]), counts])


def _to_host(tensors: list[torch.Tensor]) -> list[list[float]]:
    """Equal-length 1-D tensors as lists of floats, with one host copy per device (order kept)."""
    out: list[list[float]] = [[] for _ in tensors]
    by_device: dict[torch.device, list[int]] = {}
    for i, t in enumerate(tensors):
        by_device.setdefault(t.device, []).append(i)
    for indices in by_device.values():
        rows = torch.stack([tensors[i].double() for i in indices]).tolist()
        for i, row in zip(indices, rows, strict=True):
            out[i] = row
    return out


def _elements(name: str, x: torch.Tensor, target: Any) -> int:
    """Elements a ``reduction="sum"`` loss summed over (what ``"mean"`` would divide by)."""
    if name in ("cross_entropy", "nll_loss") and isinstance(target, torch.Tensor):
        if target.is_floating_point() and x.dim() >= 2:  # class probabilities as targets: one term per row
            return x.numel() // x.shape[1]
        return target.numel()
    return max(x.numel(), target.numel() if isinstance(target, torch.Tensor) else 0)
