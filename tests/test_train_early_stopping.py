"""Tests for deepbasics.train.early_stopping: the pure decision rule (table + property) and the callback."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from deepbasics.train import (
    Callback,
    EarlyStopping,
    EarlyStoppingReason,
    early_stopping_decision,
    fit,
)

R = EarlyStoppingReason


@pytest.mark.parametrize(
    ("values", "kwargs", "reason", "index", "best_index"),
    [
        ([3.0, 2.0, 1.0], {"patience": 1}, R.NOT_STOPPED, 2, 2),
        ([3.0, 2.0, 2.5, 2.1], {"patience": 2}, R.PATIENCE_EXHAUSTED, 3, 1),
        ([3.0, 2.0, 2.5, 1.9], {"patience": 2}, R.NOT_STOPPED, 3, 3),
        ([3.0, 2.0, 1.95, 1.9], {"patience": 2, "min_delta": 0.1}, R.PATIENCE_EXHAUSTED, 3, 1),
        ([0.1, 0.5, 0.4, 0.45], {"patience": 2, "mode": "max"}, R.PATIENCE_EXHAUSTED, 3, 1),
        ([3.0, math.nan, 1.0], {"patience": 5}, R.NON_FINITE_METRIC, 1, 0),
        ([3.0, math.nan, 1.0], {"patience": 5, "check_finite": False}, R.NOT_STOPPED, 2, 2),
        ([3.0, 0.5, 0.4], {"stopping_threshold": 1.0}, R.STOPPING_THRESHOLD, 1, 1),
        ([3.0, 2.0, 50.0], {"divergence_threshold": 10.0}, R.DIVERGENCE_THRESHOLD, 2, 1),
        ([], {}, R.NOT_STOPPED, -1, None),
    ],
)
def test_decision_table(values, kwargs, reason, index, best_index):
    d = early_stopping_decision(values, **kwargs)
    assert (d.reason, d.index, d.best_index) == (reason, index, best_index)
    assert d.should_stop == (reason is not R.NOT_STOPPED)
    assert reason.value in d.message


def _reference(values, patience, min_delta):
    """Keras/Lightning's counter written independently: wait resets on improvement, stops at wait >= patience."""
    best, wait = None, 0
    for i, v in enumerate(values):
        if best is None or v < best - min_delta:
            best, wait = v, 0
        else:
            wait += 1
            if wait >= patience:
                return i
    return None


@given(
    st.lists(st.floats(0.0, 10.0, allow_nan=False), max_size=30),
    st.integers(1, 6),
    st.sampled_from([0.0, 0.01, 0.5]),
)
def test_decision_matches_independent_counter(values, patience, min_delta):
    d = early_stopping_decision(values, patience=patience, min_delta=min_delta)
    ref = _reference(values, patience, min_delta)
    assert (d.index if d.should_stop else None) == ref
    flipped = early_stopping_decision([-v for v in values], patience=patience, min_delta=min_delta, mode="max")
    assert (flipped.reason, flipped.index, flipped.best_index) == (d.reason, d.index, d.best_index)


class WeightLog(Callback):
    def __init__(self):
        self.weights = []

    def on_train_epoch_end(self, state):
        self.weights.append(state.model.weight.detach().clone())


def _overfitting_run(callbacks, epochs=10):
    """w_t = 1 - 0.8^t on train targets y = x; the val targets y = x / 2 are best fit near epoch index 2."""
    x = torch.ones(4, 1)
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    h = fit(model, nn.MSELoss(), opt, (x, x), (x, 0.5 * x), epochs=epochs, batch_size=None, callbacks=callbacks)
    return model, h


def test_restores_best_validation_weights_and_stops_after_patience():
    log = WeightLog()
    es = EarlyStopping(patience=2)
    model, h = _overfitting_run([log, es])
    best = min(range(h.epochs), key=lambda i: h.val_loss[i])
    assert best == 2 and h.val_loss[3] > h.val_loss[2]  # the run really overfits after epoch 2
    assert h.epochs == best + 1 + 2 and es.stopped_epoch == 4
    assert torch.equal(model.weight, log.weights[best])
    assert not torch.equal(model.weight, log.weights[-1])
    assert h.stop_reason.startswith("EarlyStopping(val_loss): patience_exhausted at epoch 4")
    assert es.decision.reason is R.PATIENCE_EXHAUSTED and es.best_epoch == best


def test_restore_best_false_keeps_last_weights_and_state_round_trips():
    log = WeightLog()
    es = EarlyStopping(patience=2, restore_best=False)
    model, _ = _overfitting_run([log, es])
    assert torch.equal(model.weight, log.weights[-1]) and es.best_state is None
    es = EarlyStopping(patience=2)
    _overfitting_run([es])
    other = EarlyStopping(patience=2)
    other.load_state_dict(es.state_dict())
    assert torch.equal(other.best_state["weight"], es.best_state["weight"]) and other.stopped_epoch == 4


def test_monitor_max_on_accuracy_and_missing_key():
    es = EarlyStopping(monitor="train_loss", patience=100)
    _, h = _overfitting_run([es], epochs=3)
    assert es.decision.reason is R.NOT_STOPPED and h.epochs == 3
    with pytest.raises(ValueError, match=r"available: .*train_loss.*val_loss"):
        _overfitting_run([EarlyStopping(monitor="val_accuracy", mode="max")], epochs=1)


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"patience": 0}, ValueError),
        ({"mode": "lowest"}, ValueError),
        ({"min_delta": -1.0}, ValueError),
        ({"monitor": "grad_norm"}, ValueError),
        ({"monitor": 3}, TypeError),
    ],
)
def test_bad_arguments(kwargs, exc):
    with pytest.raises(exc):
        EarlyStopping(**kwargs)
