"""The record of a training run: per-epoch and per-step numbers as plain Python lists.

Everything is a ``float``/``int``/``str`` in lists and dicts, so a :class:`History` converts losslessly to a
plain dict (:meth:`History.to_dict`) that ``torch.load(weights_only=True)`` accepts inside a checkpoint and
``json.dump`` writes as is (non-finite floats aside).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._checks import check_choice, fail

__all__ = ["History"]

EPOCH_KEYS = ("train_loss", "val_loss", "lr", "epoch_time")
STEP_KEYS = ("step_loss", "grad_norm", "step_lr")


@dataclass
class History:
    """Numbers recorded by :func:`~deepbasics.train.fit`, one entry per epoch or per optimizer step.

    Per epoch (length = epochs run): ``train_loss`` (mean data loss over the epoch's batches, weighted by
    batch size, measured in train mode while the weights change, as Keras does), ``val_loss`` (after the epoch,
    eval mode; empty without validation data), ``train_metrics[name]``/``val_metrics[name]`` (same averaging),
    ``lr`` (learning rate of the first parameter group at the epoch's first step), ``epoch_time`` (wall-clock
    seconds, validation included), and ``extra[name]`` for numbers callbacks add with :meth:`log`.
    Per step (length = optimizer steps attempted): ``step_loss`` (data loss, without the L1/L2 penalty),
    ``grad_norm`` (global L2 norm of all gradients before clipping, penalty included), ``step_lr``.
    ``nonfinite`` lists the non-finite events ``{"epoch", "step", "what", "value"}``; ``stop_reason`` says why
    the run stopped early (``None`` when it ran all epochs).

    Look-ups: ``history["val_accuracy"]`` reads ``val_metrics["accuracy"]``; :meth:`keys` lists every key.
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_metrics: dict[str, list[float]] = field(default_factory=dict)
    val_metrics: dict[str, list[float]] = field(default_factory=dict)
    lr: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    step_lr: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)
    nonfinite: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None

    @property
    def epochs(self) -> int:
        """Number of epochs recorded."""
        return len(self.train_loss)

    @property
    def steps(self) -> int:
        """Number of optimizer steps attempted (skipped non-finite steps included)."""
        return len(self.step_loss)

    def keys(self) -> list[str]:
        """Every key :meth:`__getitem__` accepts that holds at least one number."""
        keys = [k for k in (*EPOCH_KEYS, *STEP_KEYS) if getattr(self, k)]
        keys += [f"train_{m}" for m in self.train_metrics] + [f"val_{m}" for m in self.val_metrics]
        return keys + list(self.extra)

    def __getitem__(self, key: str) -> list[float]:
        if key in EPOCH_KEYS or key in STEP_KEYS:
            return getattr(self, key)
        for prefix, table in (("train_", self.train_metrics), ("val_", self.val_metrics)):
            if key.startswith(prefix) and key[len(prefix) :] in table:
                return table[key[len(prefix) :]]
        if key in self.extra:
            return self.extra[key]
        raise KeyError(
            f"History has no key {key!r}; available: {', '.join(self.keys()) or '(nothing recorded yet)'}. "
            "Validation keys need val data; metric keys need metrics=... or integer class-label targets."
        )

    def __contains__(self, key: object) -> bool:
        try:
            return bool(self[key])  # type: ignore[index]
        except KeyError:
            return False

    def log(self, key: str, value: float) -> None:
        """Append ``value`` to ``extra[key]`` (for callbacks that record their own per-epoch numbers)."""
        if key in (*EPOCH_KEYS, *STEP_KEYS):
            raise fail(ValueError, "key", "a name not used by fit itself", repr(key), "Pick another name.")
        self.extra.setdefault(key, []).append(float(value))

    def best(self, key: str = "val_loss", mode: str = "min") -> tuple[int, float]:
        """Return ``(index, value)`` of the best finite entry of ``history[key]`` (first one on ties).

        ``mode="min"`` for losses, ``"max"`` for accuracies. Raises ``ValueError`` when no entry is finite.
        """
        check_choice(mode, "mode", ("min", "max"))
        values = self[key]
        finite = [(i, v) for i, v in enumerate(values) if math.isfinite(v)]
        if not finite:
            raise fail(ValueError, key, "at least one finite value", values, "Check the run for non-finite losses.")
        pick = min if mode == "min" else max
        return pick(finite, key=lambda iv: iv[1])

    def to_dict(self) -> dict[str, Any]:
        """A plain-dict copy: lists of floats, dicts of lists, str/None (safe for ``weights_only`` loading)."""
        return {
            "train_loss": list(self.train_loss),
            "val_loss": list(self.val_loss),
            "train_metrics": {k: list(v) for k, v in self.train_metrics.items()},
            "val_metrics": {k: list(v) for k, v in self.val_metrics.items()},
            "lr": list(self.lr),
            "epoch_time": list(self.epoch_time),
            "step_loss": list(self.step_loss),
            "grad_norm": list(self.grad_norm),
            "step_lr": list(self.step_lr),
            "extra": {k: list(v) for k, v in self.extra.items()},
            "nonfinite": [dict(e) for e in self.nonfinite],
            "stop_reason": self.stop_reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` (they indicate a foreign file)."""
        known = set(cls().to_dict())
        unknown = set(data) - known
        if unknown:
            raise fail(ValueError, "history", f"keys among {sorted(known)}", sorted(unknown), "Is this a History?")
        history = cls()
        for k, v in data.items():
            if isinstance(v, dict):
                v = {name: list(vals) for name, vals in v.items()}
            elif isinstance(v, list):
                v = [dict(e) if isinstance(e, dict) else e for e in v]
            setattr(history, k, v)
        return history

    def __repr__(self) -> str:
        last = []
        for k in ("train_loss", "val_loss"):
            if getattr(self, k):
                last.append(f"{k}={getattr(self, k)[-1]:.4g}")
        tail = f", stop_reason={self.stop_reason!r}" if self.stop_reason else ""
        return f"History(epochs={self.epochs}, steps={self.steps}{', ' if last else ''}{', '.join(last)}{tail})"
