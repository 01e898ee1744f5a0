"""Callbacks: one base class whose hooks fire at fixed points of :func:`~deepbasics.train.fit`.

Hook names and their order follow PyTorch Lightning's ``Callback`` (``on_<phase>_<start|end>``; Lightning docs,
"Callback API" and "Hooks" pages). Every hook takes the same single argument, the mutable :class:`TrainState`,
so a callback reads whatever it needs (``state.loss``, ``state.history``, ``state.model``) and may request a
stop with ``state.should_stop = True``. One epoch of ``fit`` calls, in this order::

    on_fit_start                                  (once; after a resume has been loaded)
    for each epoch:
        on_train_epoch_start
        for each batch:
            on_train_batch_start
            (zero_grad, forward, loss, penalty; non-finite loss check)
            on_before_backward
            (backward)
            on_after_backward
            (gradient norm, clipping; non-finite gradient check)
            on_before_optimizer_step
            (optimizer.step, step-interval scheduler)
            on_train_batch_end
        (validation, epoch-interval scheduler, epoch appended to history)
        on_validation_epoch_end                   (only when validation data were given)
        on_train_epoch_end
        (stop if state.should_stop)
    on_fit_end                                    (once; also after an early stop)

A callback with state implements ``state_dict``/``load_state_dict`` with plain data and tensors only, so that
:class:`~deepbasics.train.checkpoint.Checkpoint` can store it for ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._checks import fail
from .history import History

__all__ = ["DEFAULT_STOP_REASON", "HOOKS", "Callback", "CallbackList", "TrainState"]

DEFAULT_STOP_REASON = "should_stop set by a callback"

HOOKS = (
    "on_fit_start",
    "on_fit_end",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_validation_epoch_end",
)


@dataclass
class TrainState:
    """Everything a callback may read, and ``should_stop``/``stop_reason`` that it may set.

    ``epoch`` is 0-based; ``step`` is the 0-based global index of the current optimizer step (counting steps
    skipped because of a non-finite loss) and ``batch_idx`` its index within the epoch. ``batch`` is the
    ``(inputs, targets)`` pair on ``device``; ``outputs``, ``loss`` (mean data loss, a tensor with grad) and
    ``penalty`` (the L1/L2 term added before backward) belong to the current step; ``grad_norm`` is the
    global gradient norm before clipping (a float, set before ``on_before_optimizer_step``).
    ``generators`` are the random streams fit draws from besides the global RNG (checkpoints save them).
    """

    model: nn.Module
    loss_fn: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    history: History
    epochs: int
    device: torch.device
    callbacks: CallbackList | None = None
    epoch: int = 0
    step: int = 0
    batch_idx: int = 0
    batch: tuple[torch.Tensor, torch.Tensor] | None = None
    outputs: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    penalty: torch.Tensor | None = None
    grad_norm: float | None = None
    should_stop: bool = False
    stop_reason: str | None = None
    generators: list[torch.Generator] = field(default_factory=list)

    @property
    def global_step(self) -> int:
        """Number of optimizer steps attempted so far (``len(history.step_loss)``)."""
        return self.history.steps


class Callback:
    """Base class: override the hooks you need; each receives the :class:`TrainState`.

    Set ``runs_last = True`` on callbacks that must see the effects of all others in the same hook
    (checkpoints do, as in Lightning, which moves ``ModelCheckpoint`` to the end of the list).
    """

    runs_last: bool = False

    @property
    def state_key(self) -> str:
        """Key of this callback's state in a checkpoint (the class name; CallbackList numbers duplicates)."""
        return type(self).__name__

    def on_fit_start(self, state: TrainState) -> None:
        """Once, before the first epoch (after a checkpoint given to ``resume_from`` has been loaded)."""

    def on_fit_end(self, state: TrainState) -> None:
        """Once, after the last epoch or an early stop (not when fit raises)."""

    def on_train_epoch_start(self, state: TrainState) -> None:
        """At the start of every epoch, before its first batch is fetched."""

    def on_train_epoch_end(self, state: TrainState) -> None:
        """At the end of every epoch: after validation, the epoch scheduler step and the history record."""

    def on_train_batch_start(self, state: TrainState) -> None:
        """For every batch, after it is moved to the device, before ``zero_grad`` and the forward pass."""

    def on_train_batch_end(self, state: TrainState) -> None:
        """For every batch, after the optimizer (and any step-interval scheduler) has stepped or was skipped."""

    def on_before_backward(self, state: TrainState) -> None:
        """For every batch with a finite loss, after loss and penalty are computed, before ``backward()``."""

    def on_after_backward(self, state: TrainState) -> None:
        """For every batch with a finite loss, right after ``backward()``: raw gradients, before clipping."""

    def on_before_optimizer_step(self, state: TrainState) -> None:
        """For every batch with finite gradients, after clipping and ``state.grad_norm``, before ``step()``."""

    def on_validation_epoch_end(self, state: TrainState) -> None:
        """After each epoch's validation pass (only with val data), once its numbers are in the history."""

    def state_dict(self) -> dict[str, Any]:
        """This callback's state as plain data and tensors (default: nothing)."""
        return {}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the state returned by :meth:`state_dict` (default: nothing to restore)."""


class CallbackList:
    """Calls a hook on every callback, in list order except that ``runs_last`` callbacks go last."""

    def __init__(self, callbacks: Iterable[Callback] = ()):
        callbacks = list(callbacks)
        for i, cb in enumerate(callbacks):
            if not isinstance(cb, Callback):
                raise fail(
                    TypeError,
                    f"callbacks[{i}]",
                    "a deepbasics.train.Callback",
                    type(cb).__name__,
                    "Subclass Callback and override the hooks you need.",
                )
        self.callbacks = [cb for cb in callbacks if not cb.runs_last] + [cb for cb in callbacks if cb.runs_last]

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    def call(self, hook: str, state: TrainState) -> None:
        """Call ``hook`` (one of :data:`HOOKS`) on every callback."""
        for cb in self.callbacks:
            getattr(cb, hook)(state)

    def keys(self) -> list[str]:
        """The state key of every callback; duplicates of one class become ``Name``, ``Name#1``, ..."""
        seen: dict[str, int] = {}
        keys = []
        for cb in self.callbacks:
            k = cb.state_key
            n = seen.get(k, 0)
            seen[k] = n + 1
            keys.append(k if n == 0 else f"{k}#{n}")
        return keys

    def state_dict(self) -> dict[str, dict[str, Any]]:
        """``{state_key: callback.state_dict()}`` for every callback that has state."""
        states = {k: cb.state_dict() for k, cb in zip(self.keys(), self.callbacks, strict=True)}
        return {k: v for k, v in states.items() if v}

    def load_state_dict(self, states: Mapping[str, Mapping[str, Any]]) -> None:
        """Restore each callback from ``states[state_key]``; warns about states that have no callback."""
        keys = self.keys()
        for k, cb in zip(keys, self.callbacks, strict=True):
            if k in states:
                cb.load_state_dict(states[k])
            elif cb.state_dict():
                warnings.warn(f"checkpoint has no state for callback {k!r}; it starts fresh", stacklevel=3)
        orphans = sorted(set(states) - set(keys))
        if orphans:
            warnings.warn(f"checkpoint holds states for callbacks not given to fit: {orphans}", stacklevel=3)
