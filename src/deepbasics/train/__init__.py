"""A small training loop with Lightning-style callbacks, early stopping, resumable checkpoints and ensembles.

- :func:`fit` -> :class:`History`; :func:`weight_penalty`; :class:`NonFiniteLossError` (:mod:`.loop`,
  :mod:`.history`); :func:`evaluate`, :func:`accuracy` (:mod:`.metrics`)
- :class:`Callback`, :class:`CallbackList`, :class:`TrainState`, hook order (:mod:`.callbacks`)
- :class:`EarlyStopping`, :func:`early_stopping_decision`, :class:`EarlyStoppingReason` (:mod:`.early_stopping`)
- :class:`Checkpoint`, :func:`atomic_save` (:mod:`.checkpoint`)
- :func:`ensemble_predict` (:mod:`.ensemble`)
"""

from __future__ import annotations

from .callbacks import HOOKS, Callback, CallbackList, TrainState
from .checkpoint import Checkpoint, atomic_save
from .early_stopping import EarlyStopping, EarlyStoppingDecision, EarlyStoppingReason, early_stopping_decision
from .ensemble import ensemble_predict
from .history import History
from .loop import NonFiniteLossError, fit, weight_penalty
from .metrics import accuracy, evaluate

__all__ = [
    "HOOKS",
    "Callback",
    "CallbackList",
    "Checkpoint",
    "EarlyStopping",
    "EarlyStoppingDecision",
    "EarlyStoppingReason",
    "History",
    "NonFiniteLossError",
    "TrainState",
    "accuracy",
    "atomic_save",
    "early_stopping_decision",
    "ensemble_predict",
    "evaluate",
    "fit",
    "weight_penalty",
]
