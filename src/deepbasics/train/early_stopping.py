"""Early stopping: stop when the monitored number has not improved for ``patience`` epochs, keep the best weights.

Early stopping treats the number of training steps as a hyperparameter chosen on validation data; for a
linear model with squared error it acts like an L2 penalty whose strength falls as training goes on
(Goodfellow, Bengio & Courville, *Deep Learning*, 2016, section 7.8, algorithm 7.1; Prechelt, "Early
stopping - but when?", 1998). FAQ claim Q10.a.

The rule is a pure function of the recorded numbers, :func:`early_stopping_decision`, returning an
:class:`EarlyStoppingReason` (named as in Lightning's ``EarlyStoppingReason``). For ``mode="min"``, epoch ``t``
improves on the best value so far ``b`` iff::

    v_t < b - min_delta            (mode="max": v_t > b + min_delta)

``wait`` counts epochs since the last improvement, and the run stops once ``wait >= patience``; the first
finite value always improves. :class:`EarlyStopping` is the thin callback around it: it copies the weights at
every improvement and loads the best copy back at the end of fit (``restore_best``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._checks import check_choice, check_int, check_real, fail
from .callbacks import Callback, TrainState
from .history import STEP_KEYS

__all__ = ["EarlyStopping", "EarlyStoppingDecision", "EarlyStoppingReason", "early_stopping_decision"]


class EarlyStoppingReason(str, enum.Enum):
    """Why early stopping fired (or did not)."""

    NOT_STOPPED = "not_stopped"
    PATIENCE_EXHAUSTED = "patience_exhausted"
    STOPPING_THRESHOLD = "stopping_threshold"
    DIVERGENCE_THRESHOLD = "divergence_threshold"
    NON_FINITE_METRIC = "non_finite_metric"


@dataclass(frozen=True)
class EarlyStoppingDecision:
    """Outcome of :func:`early_stopping_decision` after the last recorded value.

    ``index`` is the epoch at which the rule fired (the last one when not stopped), ``best_index``/``best_value``
    the best epoch so far (``None``/``nan`` if no value was finite), ``wait`` the epochs since it.
    """

    reason: EarlyStoppingReason
    index: int
    best_index: int | None
    best_value: float
    wait: int
    message: str

    @property
    def should_stop(self) -> bool:
        """True unless ``reason`` is ``NOT_STOPPED``."""
        return self.reason is not EarlyStoppingReason.NOT_STOPPED


def early_stopping_decision(
    values: Sequence[float],
    *,
    patience: int = 5,
    min_delta: float = 0.0,
    mode: str = "min",
    stopping_threshold: float | None = None,
    divergence_threshold: float | None = None,
    check_finite: bool = True,
) -> EarlyStoppingDecision:
    """Replay the early-stopping rule over ``values`` (one per epoch) and return the first stop, if any.

    Per epoch, in this order: a non-finite value stops (``check_finite``); an improvement (see module
    docstring) resets ``wait``, otherwise ``wait += 1``; a value better than ``stopping_threshold`` stops
    (goal reached); a value worse than ``divergence_threshold`` stops (diverged); ``wait >= patience`` stops.
    Pure: same numbers, same decision, so it can be tested on recorded traces and replayed after a resume.
    """
    patience = check_int(patience, "patience", low=1)
    min_delta = check_real(min_delta, "min_delta", low=0.0)
    check_choice(mode, "mode", ("min", "max"))
    sign = 1.0 if mode == "min" else -1.0  # compare sign * v, so "smaller is better" in both modes
    best, best_i, wait = math.inf, None, 0
    for i, raw in enumerate(values):
        v = float(raw)
        if not math.isfinite(v):
            if check_finite:
                return _decision(EarlyStoppingReason.NON_FINITE_METRIC, i, best_i, best, sign, wait, f"value {v}")
            wait += 1
        elif sign * v < best - min_delta:
            best, best_i, wait = sign * v, i, 0
        else:
            wait += 1
        if stopping_threshold is not None and math.isfinite(v) and sign * v < sign * stopping_threshold:
            msg = f"value {v:.6g} passed the stopping threshold {stopping_threshold:g}"
            return _decision(EarlyStoppingReason.STOPPING_THRESHOLD, i, best_i, best, sign, wait, msg)
        if divergence_threshold is not None and math.isfinite(v) and sign * v > sign * divergence_threshold:
            msg = f"value {v:.6g} is worse than the divergence threshold {divergence_threshold:g}"
            return _decision(EarlyStoppingReason.DIVERGENCE_THRESHOLD, i, best_i, best, sign, wait, msg)
        if wait >= patience:
            msg = f"no improvement greater than {min_delta:g} for {wait} epochs"
            return _decision(EarlyStoppingReason.PATIENCE_EXHAUSTED, i, best_i, best, sign, wait, msg)
    return _decision(EarlyStoppingReason.NOT_STOPPED, len(values) - 1, best_i, best, sign, wait, "still improving")


def _decision(reason, index, best_i, best, sign, wait, msg) -> EarlyStoppingDecision:
    best_value = sign * best if best_i is not None else math.nan
    where = f"best {best_value:.6g} at epoch {best_i}" if best_i is not None else "no finite value yet"
    return EarlyStoppingDecision(
        reason, index, best_i, best_value, wait, f"{reason.value} at epoch {index}: {msg}; {where}"
    )


class EarlyStopping(Callback):
    """Stop fit when ``history[monitor]`` stops improving; optionally restore the best weights at the end.

    Args:
        monitor: a per-epoch History key: ``"val_loss"``, ``"train_loss"``, ``"val_accuracy"``, ...
        patience: epochs without improvement before stopping (default 5, the usual choice in Keras examples).
        min_delta: smallest change that counts as improvement. mode: ``"min"`` (losses) or ``"max"``.
        restore_best: at fit end, load the weights (``model.state_dict()``, buffers included) of the best epoch,
            also when the run was not stopped early.
        stopping_threshold / divergence_threshold / check_finite: see :func:`early_stopping_decision`.

    Decides in ``on_train_epoch_end`` (after validation), sets ``state.should_stop`` and ``state.stop_reason``.
    ``decision`` holds the last :class:`EarlyStoppingDecision`.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "min",
        restore_best: bool = True,
        *,
        stopping_threshold: float | None = None,
        divergence_threshold: float | None = None,
        check_finite: bool = True,
    ):
        if not isinstance(monitor, str):
            raise fail(TypeError, "monitor", "a History key (str)", type(monitor).__name__, "Pass e.g. 'val_loss'.")
        if monitor in STEP_KEYS:
            raise fail(ValueError, "monitor", "a per-epoch History key", repr(monitor), "Pass e.g. 'val_loss'.")
        self.monitor = monitor
        self.patience = check_int(patience, "patience", low=1)
        self.min_delta = check_real(min_delta, "min_delta", low=0.0)
        self.mode = check_choice(mode, "mode", ("min", "max"))
        self.restore_best = bool(restore_best)
        self.stopping_threshold = (
            None if stopping_threshold is None else check_real(stopping_threshold, "stopping_threshold")
        )
        self.divergence_threshold = (
            None if divergence_threshold is None else check_real(divergence_threshold, "divergence_threshold")
        )
        self.check_finite = bool(check_finite)
        self.best_state: dict[str, Any] | None = None
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.decision: EarlyStoppingDecision | None = None

    def on_train_epoch_end(self, state: TrainState) -> None:
        """Replay the rule over the monitored values; copy the weights if this epoch is the new best."""
        try:
            values = state.history[self.monitor]
        except KeyError as err:
            raise fail(
                ValueError,
                "EarlyStopping.monitor",
                f"a key the run records; available: {state.history.keys()}",
                repr(self.monitor),
                "Pass val data for 'val_*' keys or choose another key.",
            ) from err
        d = early_stopping_decision(
            values,
            patience=self.patience,
            min_delta=self.min_delta,
            mode=self.mode,
            stopping_threshold=self.stopping_threshold,
            divergence_threshold=self.divergence_threshold,
            check_finite=self.check_finite,
        )
        self.decision = d
        if self.restore_best and d.best_index == len(values) - 1 and d.best_index != self.best_epoch:
            self.best_state = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
        self.best_epoch = d.best_index
        if d.should_stop:
            self.stopped_epoch = state.epoch
            state.should_stop = True
            state.stop_reason = f"EarlyStopping({self.monitor}): {d.message}"

    def on_fit_end(self, state: TrainState) -> None:
        """Load the best epoch's weights back into the model (``restore_best``)."""
        if self.restore_best and self.best_state is not None:
            state.model.load_state_dict(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        return {"best_state": self.best_state, "best_epoch": self.best_epoch, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self.best_state = state_dict["best_state"]
        self.best_epoch = state_dict["best_epoch"]
        self.stopped_epoch = state_dict["stopped_epoch"]
