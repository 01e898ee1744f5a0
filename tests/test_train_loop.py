"""Tests for deepbasics.train.loop: fit, evaluate, penalties, clipping, non-finite handling, History."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
from torch import nn

from deepbasics.train import (
    Callback,
    History,
    NonFiniteLossError,
    accuracy,
    evaluate,
    fit,
    weight_penalty,
)


def _blobs(n: int = 60, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    centers = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]], dtype=dtype)
    x = centers[y] + 0.5 * torch.randn(n, 2, generator=g, dtype=dtype)
    return x, y


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 3))


def test_fit_decreases_loss_and_records_consistent_lengths():
    x, y = _blobs()
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    h = fit(model, nn.CrossEntropyLoss(), opt, (x, y), (x[:30], y[:30]), epochs=5, batch_size=16)
    assert h.train_loss[-1] < 0.5 * h.train_loss[0]
    assert h.val_loss[-1] < h.val_loss[0]
    assert h.epochs == len(h.val_loss) == len(h.lr) == len(h.epoch_time) == 5
    assert h.steps == len(h.grad_norm) == len(h.step_lr) == 5 * math.ceil(60 / 16)
    assert len(h.train_metrics["accuracy"]) == len(h.val_metrics["accuracy"]) == 5
    assert h.val_metrics["accuracy"][-1] > 0.9
    assert all(t > 0 for t in h.epoch_time)
    assert h.stop_reason is None


def test_train_loss_is_example_weighted_mean_of_step_losses():
    x, y = _blobs(50)
    model = _mlp()
    h = fit(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), (x, y), epochs=1, batch_size=20)
    sizes = [20, 20, 10]
    expected = sum(s * l for s, l in zip(sizes, h.step_loss, strict=True)) / 50
    assert h.train_loss[0] == pytest.approx(expected, rel=1e-12)


def test_train_numbers_with_frozen_weights_equal_full_data_reference(float64):
    x, y = _blobs(dtype=torch.float64)
    model = _mlp()
    h = fit(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.0), (x, y), epochs=1, batch_size=7)
    with torch.no_grad():
        out = model(x)
    assert h.train_loss[0] == pytest.approx(nn.functional.cross_entropy(out, y).item(), rel=1e-12)
    assert h.train_metrics["accuracy"][0] == pytest.approx((out.argmax(1) == y).double().mean().item(), abs=1e-15)


def test_val_loss_matches_independent_evaluation():
    x, y = _blobs()
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    h = fit(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), (x, y), (x, y), epochs=2)
    model.eval()
    with torch.no_grad():
        ref = nn.functional.cross_entropy(model(x), y).item()
        ref_acc = (model(x).argmax(1) == y).double().mean().item()
    assert h.val_loss[-1] == pytest.approx(ref, rel=1e-5)
    assert h.val_metrics["accuracy"][-1] == pytest.approx(ref_acc, abs=1e-12)
    assert evaluate(model, nn.CrossEntropyLoss(), (x, y), batch_size=7)["loss"] == pytest.approx(ref, rel=1e-5)


def test_same_seed_same_run_and_generator_controls_shuffling():
    x, y = _blobs()

    def run(seed: int, gen_seed: int | None) -> list[float]:
        torch.manual_seed(seed)
        model = _mlp()
        g = None if gen_seed is None else torch.Generator().manual_seed(gen_seed)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=2, batch_size=8, generator=g).step_loss

    assert run(0, None) == run(0, None)
    assert run(0, 1) == run(0, 1)
    assert run(0, 1) != run(0, 2)


def test_regression_has_no_default_metric_and_custom_metrics_are_recorded():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    model = nn.Linear(3, 1)
    h = fit(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.1), (x, y), (x, y), epochs=2)
    assert h.train_metrics == {} and h.val_metrics == {}
    mae = {"mae": lambda out, t: (out - t).abs().mean()}
    h = fit(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.1), (x, y), (x, y), epochs=2, metrics=mae)
    with torch.no_grad():
        ref = (model(x) - y).abs().mean().item()
    assert h["val_mae"][-1] == pytest.approx(ref, rel=1e-5)
    assert "train_mae" in h and h.keys() == [
        "train_loss",
        "val_loss",
        "lr",
        "epoch_time",
        "step_loss",
        "grad_norm",
        "step_lr",
        "train_mae",
        "val_mae",
    ]


def test_grad_norm_is_global_l2_norm_before_clipping(float64):
    x, y = _blobs(dtype=torch.float64)
    model = _mlp()
    seen_raw, seen_clipped = [], []

    class Probe(Callback):
        def on_after_backward(self, state):
            seen_raw.append(torch.cat([p.grad.flatten() for p in state.model.parameters()]).norm().item())

        def on_before_optimizer_step(self, state):
            seen_clipped.append(torch.cat([p.grad.flatten() for p in state.model.parameters()]).norm().item())

    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    h = fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=2, batch_size=20, clip=0.05, callbacks=[Probe()])
    assert h.grad_norm == pytest.approx(seen_raw, rel=1e-12)
    assert all(r > 0.05 for r in seen_raw)
    # clip_grad_norm_ scales by max_norm / (norm + 1e-6), hence the 1e-6 / norm relative shortfall
    assert seen_clipped == pytest.approx([0.05] * len(seen_clipped), rel=1e-4)


def test_l2_penalty_equals_sgd_weight_decay_and_adam_but_not_adamw(float64):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 4, generator=g), torch.randn(32, 2, generator=g)

    def train(opt_cls, l2: float, wd: float) -> torch.Tensor:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 5, bias=False), nn.Tanh(), nn.Linear(5, 2, bias=False))
        opt = opt_cls(model.parameters(), lr=0.05, weight_decay=wd)
        fit(model, nn.MSELoss(), opt, (x, y), epochs=3, batch_size=8, l2=l2, generator=torch.Generator())
        return torch.cat([p.flatten() for p in model.parameters()])

    torch.testing.assert_close(train(torch.optim.SGD, 0.3, 0.0), train(torch.optim.SGD, 0.0, 0.3), rtol=0, atol=1e-12)
    torch.testing.assert_close(train(torch.optim.Adam, 0.3, 0.0), train(torch.optim.Adam, 0.0, 0.3), rtol=0, atol=1e-10)
    assert not torch.allclose(train(torch.optim.Adam, 0.3, 0.0), train(torch.optim.AdamW, 0.0, 0.3), atol=1e-4)


def test_penalty_covers_weights_not_biases(float64):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    seen = []

    class Probe(Callback):
        def on_before_backward(self, state):
            seen.append(state.penalty.item())
            w = [state.model[0].weight, state.model[2].weight]
            seen.append((0.1 * sum(p.abs().sum() for p in w) + 0.5 * 0.2 * sum((p**2).sum() for p in w)).item())

    x, y = torch.randn(6, 3), torch.randn(6, 2)
    fit(
        model,
        nn.MSELoss(),
        torch.optim.SGD(model.parameters(), lr=0.01),
        (x, y),
        epochs=1,
        l1=0.1,
        l2=0.2,
        batch_size=None,
        callbacks=[Probe()],
    )
    assert seen[0] == pytest.approx(seen[1], rel=1e-12)
    w = [torch.tensor([[1.0, -2.0]]), torch.tensor([3.0])]
    assert weight_penalty(w, l1=0.5, l2=2.0).item() == pytest.approx(0.5 * 6.0 + 1.0 * 14.0)


def _nan_data() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = torch.randn(8, 2), torch.randn(8, 1)
    x[5, 0] = float("nan")  # batch 2 (examples 4, 5) when batch_size=2 and no shuffling
    return x, y


def test_nonfinite_loss_raises_naming_epoch_and_step():
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at epoch 0, step 2") as info:
        fit(model, nn.MSELoss(), opt, _nan_data(), epochs=2, batch_size=2, shuffle=False)
    assert isinstance(info.value, FloatingPointError)
    assert (info.value.epoch, info.value.step, info.value.batch_idx) == (0, 2, 2)


def test_nonfinite_error_pickles_for_worker_processes():
    err = pickle.loads(pickle.dumps(NonFiniteLossError("loss", math.inf, 3, 17, 2)))
    assert (err.what, err.epoch, err.step, err.batch_idx) == ("loss", 3, 17, 2) and "epoch 3, step 17" in str(err)


def test_global_norm_fallback_agrees_with_get_total_norm(monkeypatch, float64):
    from deepbasics.train.loop import _global_norm

    grads = [torch.randn(3, 4), torch.randn(5), torch.randn(2, 2, 2)]
    ref = torch.cat([g.flatten() for g in grads]).norm()
    fast = _global_norm(grads)
    monkeypatch.delattr(torch.nn.utils, "get_total_norm")
    torch.testing.assert_close(fast, ref, rtol=1e-14, atol=0)
    torch.testing.assert_close(_global_norm(grads), ref, rtol=1e-14, atol=0)


def test_nonfinite_stop_and_continue_skip_the_update():
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    h = fit(model, nn.MSELoss(), opt, _nan_data(), epochs=3, batch_size=2, shuffle=False, on_nonfinite="stop")
    assert h.epochs == 1 and h.steps == 3
    assert h.nonfinite == [{"epoch": 0, "step": 2, "what": "loss", "value": h.step_loss[2]}]
    assert "non-finite loss" in h.stop_reason
    assert all(torch.isfinite(p).all() for p in model.parameters())
    h = fit(model, nn.MSELoss(), opt, _nan_data(), epochs=2, batch_size=2, shuffle=False, on_nonfinite="continue")
    assert h.epochs == 2 and h.steps == 8 and [e["step"] for e in h.nonfinite] == [2, 6]
    assert math.isfinite(h.train_loss[-1])
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nonfinite_gradient_with_finite_loss_is_caught_before_the_update():
    model = nn.Linear(2, 1, bias=False)
    nn.init.zeros_(model.weight)  # output 0, where d sqrt(|u|)/du is infinite

    def sqrt_loss(out, y):
        return out.abs().sqrt().mean()

    x, y = torch.randn(4, 2), torch.zeros(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(NonFiniteLossError, match=r"non-finite gradient norm \(nan\) at epoch 0, step 0"):
        fit(model, sqrt_loss, opt, (x, y), epochs=1)
    assert torch.equal(model.weight, torch.zeros(1, 2))
    h = fit(model, sqrt_loss, opt, (x, y), epochs=1, on_nonfinite="continue")
    assert h.nonfinite[0]["what"] == "gradient norm" and h.step_loss == [0.0]
    assert torch.equal(model.weight, torch.zeros(1, 2))


def test_schedulers_step_per_epoch_or_per_step_and_plateau_gets_val_loss():
    x, y = _blobs()
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    h = fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=3, batch_size=30, scheduler=sched)
    assert h.lr == [1.0, 0.5, 0.25] and h.step_lr == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    h = fit(
        model, nn.CrossEntropyLoss(), opt, (x, y), epochs=1, batch_size=20, scheduler=sched, scheduler_interval="step"
    )
    assert h.step_lr == [1.0, 0.5, 0.25]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.1)
    seen = []

    class Spy(Callback):
        def on_train_epoch_end(self, state):
            seen.append((plateau.best, state.history.val_loss[-1], state.history.train_loss[-1]))

    fit(model, nn.CrossEntropyLoss(), opt, (x, y), (x[:9], y[:9]), epochs=1, scheduler=plateau, callbacks=[Spy()])
    best, val_loss, train_loss = seen[0]
    assert best == val_loss != train_loss  # the plateau scheduler saw the epoch's validation loss


def test_callback_should_stop_ends_after_the_current_batch():
    class StopAtStep(Callback):
        def on_train_batch_end(self, state):
            if state.step == 4:
                state.should_stop = True

    x, y = _blobs()
    model = _mlp()
    h = fit(
        model,
        nn.CrossEntropyLoss(),
        torch.optim.SGD(model.parameters(), lr=0.1),
        (x, y),
        epochs=5,
        batch_size=20,
        callbacks=[StopAtStep()],
    )
    assert h.steps == 5 and h.epochs == 2 and h.stop_reason == "should_stop set by a callback"


def test_dataloader_and_dataset_inputs():
    x, y = _blobs()
    ds = torch.utils.data.TensorDataset(x, y)
    dl = torch.utils.data.DataLoader(ds, batch_size=25)
    model = _mlp()
    h = fit(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), dl, ds, epochs=1)
    assert h.steps == 3 and len(h.val_loss) == 1


def test_progress_bar_runs(capsys):
    x, y = _blobs()
    model = _mlp()
    fit(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), (x, y), epochs=1, progress=True)


def test_accuracy_against_manual_count():
    out = torch.tensor([[0.1, 0.9], [2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert accuracy(out, torch.tensor([1, 0, 0, 1])).item() == 0.5


def test_history_round_trip_best_and_missing_key():
    h = History(train_loss=[3.0, 2.0, 2.5], val_loss=[3.0, 1.0, 1.5], val_metrics={"accuracy": [0.1, 0.7, 0.9]})
    h.log("gap", 0.5)
    assert History.from_dict(h.to_dict()) == h
    assert h.best() == (1, 1.0)
    assert h.best("val_accuracy", mode="max") == (2, 0.9)
    assert h["gap"] == [0.5]
    with pytest.raises(KeyError, match="available: train_loss, val_loss, val_accuracy, gap"):
        h["val_f1"]
    with pytest.raises(ValueError, match="finite"):
        History(val_loss=[math.nan]).best()


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"epochs": 0}, ValueError, "epochs"),
        ({"epochs": 1, "clip": -1.0}, ValueError, "clip"),
        ({"epochs": 1, "l2": -0.1}, ValueError, "l2"),
        ({"epochs": 1, "on_nonfinite": "ignore"}, ValueError, "on_nonfinite"),
        ({"epochs": 1, "batch_size": 0}, ValueError, "batch_size"),
        ({"epochs": 1, "metrics": {"loss": accuracy}}, ValueError, "metrics"),
        ({"epochs": 1, "generator": 3}, TypeError, "generator"),
        ({"epochs": 1, "scheduler_interval": "batch"}, ValueError, "scheduler_interval"),
    ],
)
def test_bad_arguments_raise(kwargs, exc, match):
    x, y = _blobs()
    model = _mlp()
    with pytest.raises(exc, match=match):
        fit(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), (x, y), **kwargs)


def test_bad_data_model_optimizer_and_loss_raise():
    x, y = _blobs()
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="non-empty"):
        fit(model, nn.CrossEntropyLoss(), opt, (x[:0], y[:0]), epochs=1)
    with pytest.raises(TypeError, match="DataLoader"):
        fit(model, nn.CrossEntropyLoss(), opt, [1, 2, 3], epochs=1)
    with pytest.raises(ValueError, match="this model's parameters"):
        fit(_mlp(), nn.CrossEntropyLoss(), opt, (x, y), epochs=1)
    with pytest.raises(TypeError, match="Optimizer"):
        fit(model, nn.CrossEntropyLoss(), "sgd", (x, y), epochs=1)
    with pytest.raises(ValueError, match="0-D tensor"):
        fit(model, nn.CrossEntropyLoss(reduction="none"), opt, (x, y), epochs=1)
