"""Tests for deepbasics.train.callbacks: hook order, state passed to hooks, CallbackList."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepbasics.train import HOOKS, Callback, CallbackList, fit

BATCH = [
    "on_train_batch_start",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_train_batch_end",
]


class Recorder(Callback):
    def __init__(self):
        self.calls: list[str] = []

    def __getattribute__(self, name):
        if name in HOOKS:
            calls = object.__getattribute__(self, "calls")
            return lambda state: calls.append(name)
        return object.__getattribute__(self, name)


def _run(val: bool, callbacks, epochs: int = 2):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, generator=g), torch.randn(8, 1, generator=g)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return fit(
        model, nn.MSELoss(), opt, (x, y), (x, y) if val else None, epochs=epochs, batch_size=4, callbacks=callbacks
    )


@pytest.mark.parametrize("val", [True, False])
def test_hooks_fire_in_documented_order(val):
    rec = Recorder()
    _run(val, [rec])
    epoch = ["on_train_epoch_start", *BATCH, *BATCH]
    epoch += ["on_validation_epoch_end", "on_train_epoch_end"] if val else ["on_train_epoch_end"]
    assert rec.calls == ["on_fit_start", *epoch, *epoch, "on_fit_end"]


def test_every_hook_is_documented_in_one_line_and_is_a_noop_by_default():
    for name in HOOKS:
        doc = getattr(Callback, name).__doc__
        assert doc and "\n" not in doc.strip(), name
        assert getattr(Callback(), name)(None) is None


def test_hooks_see_the_current_step_state():
    seen = []

    class Spy(Callback):
        def on_before_optimizer_step(self, state):
            seen.append((state.epoch, state.step, state.batch_idx, state.global_step, state.grad_norm > 0))

        def on_train_epoch_end(self, state):
            seen.append(("end", state.history.epochs, len(state.history.val_loss)))

    _run(True, [Spy()])
    assert seen == [
        (0, 0, 0, 0, True),
        (0, 1, 1, 1, True),
        ("end", 1, 1),
        (1, 2, 0, 2, True),
        (1, 3, 1, 3, True),
        ("end", 2, 2),
    ]


def test_runs_last_callbacks_go_last_and_keys_number_duplicates():
    class Last(Callback):
        runs_last = True

    a, b, last, c = Callback(), Callback(), Last(), Callback()
    cbs = CallbackList([a, last, b, c])
    assert list(cbs) == [a, b, c, last]
    assert cbs.keys() == ["Callback", "Callback#1", "Callback#2", "Last"]


def test_callback_list_state_round_trip_and_warnings():
    class Counter(Callback):
        def __init__(self):
            self.n = 0

        def on_train_batch_end(self, state):
            self.n += 1

        def state_dict(self):
            return {"n": self.n}

        def load_state_dict(self, state_dict):
            self.n = state_dict["n"]

    c = Counter()
    _run(False, [c])
    states = CallbackList([c]).state_dict()
    assert states == {"Counter": {"n": 4}}
    fresh = Counter()
    CallbackList([fresh]).load_state_dict(states)
    assert fresh.n == 4
    with pytest.warns(UserWarning, match="not given to fit"):
        CallbackList([]).load_state_dict(states)
    with pytest.warns(UserWarning, match="starts fresh"):
        CallbackList([Counter()]).load_state_dict({})


def test_non_callback_is_rejected():
    with pytest.raises(TypeError, match="Callback"):
        CallbackList([lambda state: None])
