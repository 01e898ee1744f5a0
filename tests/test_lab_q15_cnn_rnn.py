"""Lab experiments for Q15 (update rules, schedules, activations), CNN.a-d and RNN.a-d.

Each experiment runs once in quick mode with one seed: every metric a rule names must be present and finite (the
verdict itself is a finding and is not tested). The shared helpers are checked against independent references:
the receptive-field formula against brute force, truncated BPTT against autograd, the saved-bytes meter
against a hand count.
"""

from __future__ import annotations

import math

import pytest
import torch

from _lab_quick import quick_run
from deepbasics.lab.experiments import (
    cnn_augmentation,
    cnn_equivariance,
    cnn_receptive_field,
    cnn_weight_sharing,
    q15_activations,
    q15_optimizers,
    q15_schedules,
    rnn_memory,
    rnn_stability,
)
from deepbasics.lab.experiments._q15_cnn_rnn import (
    full_batch_curve,
    latch_task,
    saved_tensor_bytes,
    steps_to,
    truncated_logits,
)

EXPERIMENTS = [
    q15_optimizers.update_rules,
    q15_schedules.schedules,
    q15_activations.activations,
    cnn_weight_sharing.weight_sharing,
    cnn_equivariance.shifts,
    cnn_receptive_field.receptive_field,
    cnn_augmentation.augmentation,
    rnn_memory.tbptt,
    rnn_memory.gated_cells,
    rnn_stability.clipping,
    rnn_stability.layer_norm,
]


def _quick(exp):
    """One quick run per experiment per test session (the plot test reuses it)."""
    return quick_run(exp, 0)


@pytest.mark.parametrize("exp", EXPERIMENTS, ids=lambda e: e.id)
def test_quick_run_returns_every_rule_metric_finite(exp):
    out = _quick(exp)
    for cid, rule in exp.rules.items():
        assert rule.metric in out, f"{cid}: metric {rule.metric} missing"
        value = out[rule.metric]
        assert isinstance(value, float | int) and not isinstance(value, bool)
        assert math.isfinite(value), f"{cid}: {rule.metric} = {value}"


@pytest.mark.parametrize(
    ("exp", "task"),
    [
        (cnn_equivariance.shifts, "digits"),
        (cnn_equivariance.shifts, "mnist1d"),
        (cnn_receptive_field.receptive_field, "mnist1d"),
        (cnn_augmentation.augmentation, "mnist1d"),
        (q15_schedules.schedules, "mnist1d"),
        (q15_activations.activations, "mnist1d"),
        (rnn_stability.clipping, None),
    ],
    ids=lambda v: getattr(v, "id", v),
)
def test_plot_smoke(exp, task, tmp_path):
    paths = exp.plot([quick_run(exp, 0, task)], exp.params(quick=True, task=task), tmp_path)
    assert paths and all(p.suffix == ".png" and p.stat().st_size > 0 for p in paths)


def test_ids_cover_the_sections():
    ids = {cid for exp in EXPERIMENTS for cid in exp.ids}
    assert ids == {"Q15.a", "Q15.b", "Q15.c", "CNN.a", "CNN.b", "CNN.c", "CNN.d", "RNN.a", "RNN.b", "RNN.c", "RNN.d"}


# --------------------------------------------------------------------------------------- helpers
def test_receptive_field_formula_matches_brute_force():
    """r_L from the closed form equals the span of input indices reaching one output index (1-D brute force)."""
    configs = [[[3, 1, 1]] * 3, [[3, 2, 1], [3, 2, 1]], [[5, 1, 2], [3, 3, 1], [3, 1, 4]]]
    for layers in configs:
        reach = {0}  # input positions, in the coordinates of the current map, that feed output unit 0
        for k, s, d in reversed(layers):  # position p of layer l reads p*s + j*d, j = 0..k-1, of layer l-1
            reach = {p * s + j * d for p in reach for j in range(k)}
        assert cnn_receptive_field._formula(layers) == max(reach) - min(reach) + 1


def test_measured_receptive_field_matches_formula():
    for layers in ([[3, 1, 1]] * 2, [[3, 2, 1], [3, 1, 2]]):
        assert cnn_receptive_field._measured(layers, 40, seed=0) == cnn_receptive_field._formula(layers)


def test_truncated_logits_cut_the_gradient_and_keep_the_output():
    from deepbasics import nn

    torch.manual_seed(0)
    model = nn.rnn_classifier("gru", input_size=5, hidden_size=6, num_classes=4)
    x = torch.randn(3, 8, 5, requires_grad=True)
    full = model(x)
    cut = truncated_logits(model, x, 3)
    torch.testing.assert_close(cut, full)  # truncation changes gradients, never values
    (grad,) = torch.autograd.grad(cut.sum(), x)
    assert torch.all(grad[:, :5] == 0) and torch.all(grad[:, 5:].abs().sum(dim=(0, 2)) > 0)
    (grad_full,) = torch.autograd.grad(truncated_logits(model, x, 100).sum(), x)
    (ref,) = torch.autograd.grad(model(x).sum(), x)
    torch.testing.assert_close(grad_full, ref)


def test_saved_tensor_bytes_counts_what_autograd_keeps():
    a = torch.randn(10, 7, requires_grad=True)
    with saved_tensor_bytes() as n:
        torch.exp(a)  # saves its output: 70 float32
    assert n[0] == 70 * 4
    with saved_tensor_bytes() as n, torch.no_grad():
        torch.exp(a)
    assert n[0] == 0


def test_latch_task_layout():
    x, y = latch_task(50, 6, 3, torch.Generator().manual_seed(0))
    assert x.shape == (50, 6, 4) and y.shape == (50,)
    torch.testing.assert_close(x[:, :, :3].sum(-1), torch.ones(50, 6))  # one symbol per step
    assert torch.equal(x[:, :, 3].sum(1), torch.ones(50)) and torch.all(x[:, 0, 3] == 1)  # marker at t = 0
    assert torch.equal(x[:, 0, :3].argmax(-1), y)


def test_full_batch_curve_stops_on_divergence_and_steps_to():
    from deepbasics import losses, optim

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x, y = torch.randn(20, 3), torch.randn(20, 1)
    ok = full_batch_curve(model, losses.mse, optim.SGD(model.parameters(), lr=0.1), x, y, 30)
    assert len(ok) == 31 and ok[-1] < ok[0]
    bad = full_batch_curve(model, losses.mse, optim.SGD(model.parameters(), lr=50.0), x, y, 30)
    assert len(bad) < 31 and (not math.isfinite(bad[-1]) or bad[-1] > 10 * bad[0])
    assert steps_to([3.0, 2.0, 1.0], 2.0) == 1 and steps_to([3.0, 2.0], 0.5) is None


def test_helpers_reject_bad_input():
    with pytest.raises(ValueError, match="length"):
        latch_task(4, 0)
    with pytest.raises(ValueError, match="num_symbols"):
        latch_task(4, 3, 1)
    with pytest.raises(ValueError, match="window"):
        truncated_logits(torch.nn.Identity(), torch.zeros(1, 2, 3), 0)


# ------------------------------------------------------------------------------ second tasks (issue 15)
def test_shifts_on_mnist1d_are_exactly_equivariant_and_global_pooling_absorbs_them():
    """CNN.b's 1-D twin: conv commutes with shifts to rounding, and global pooling damps shifts far more than none."""
    out = quick_run(cnn_equivariance.shifts, 0, "mnist1d")
    assert out["equivariance_error"] < 1e-12
    change = out["change"]
    assert all(c > 0 for c in change["no pooling"])  # the shifted signal does change the unpooled logits
    assert change["max + global average pooling"][0] < change["no pooling"][0]
    assert out["global_pooling_ratio"] == pytest.approx(
        change["max + global average pooling"][0] / change["no pooling"][0]
    )


def test_shift1d_moves_values_and_fills_the_vacated_end():
    x = torch.arange(1.0, 6.0).reshape(1, 1, 5)
    assert cnn_equivariance._shift1d(x, 2, fill=-1.0).flatten().tolist() == [-1, -1, 1, 2, 3]
    assert cnn_equivariance._shift1d(x, -1).flatten().tolist() == [2, 3, 4, 5, 0]
    assert torch.equal(cnn_equivariance._shift1d(x, 0), x)


def test_receptive_field_on_mnist1d_measures_the_reference_cnn():
    """CNN.c on MNIST-1D: every kept stack fits 40 positions; the reference CNN's kernels 5, 3, 3 stride 2 see 17."""
    out = quick_run(cnn_receptive_field.receptive_field, 0, "mnist1d")
    assert out["formula"]["mnist1d_cnn3"] == 17 and out["measured"]["mnist1d_cnn3"] == 17
    assert all(r <= 40 for r in out["formula"].values())
    assert out["measured"] == out["formula"]  # tanh: the whole architectural field
    assert all(out["measured_relu"][n] <= out["formula"][n] for n in out["formula"])  # ReLU: at most as wide


def test_measured_receptive_field_with_relu_needs_the_union_over_inputs():
    """One signal can leave ReLUs off and hide part of the field; the union over many signals recovers all of it."""
    from deepbasics import data

    signals, _ = data.mnist1d(val_fraction=0.0, dtype=torch.float64).tensors("test")
    layers = [[3, 1, 1]] * 4
    many = cnn_receptive_field._measured(layers, 40, seed=0, inputs=signals[:256, None], relu=True)
    assert many <= cnn_receptive_field._formula(layers) == 9
    assert cnn_receptive_field._measured(layers, 40, seed=0, inputs=signals[:1, None], relu=True) <= many
    assert cnn_receptive_field._measured(layers, 40, seed=0, inputs=signals[:1, None]) == 9  # tanh: one signal suffices


def test_mnist1d_distortions_mirror_the_generator():
    """A roll permutes each signal's values by at most max_shift places; the scale stays within 1 +- 20%."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 40)
    rolled = cnn_augmentation._RandomRoll(4, gen)(x)
    for row, moved in zip(x, rolled, strict=True):
        assert any(torch.equal(torch.roll(row, k), moved) for k in range(-4, 5))
    ratio = cnn_augmentation._RandomScale(cnn_augmentation.SCALE_COEFF, gen)(torch.ones(1000, 40))
    assert ratio.min() >= 0.8 and ratio.max() <= 1.2 and ratio.std() > 0.05
    assert torch.equal(ratio[:, 0:1].expand(-1, 40), ratio)  # one factor per signal


def test_augmentation_on_mnist1d_stops_memorization():
    """Without distortions the CNN fits its 500 signals far better than it generalizes; with them, much less."""
    out = quick_run(cnn_augmentation.augmentation, 0, "mnist1d")
    gap = {arm: out["train_acc"][arm] - out["test_acc"][arm] for arm in ("none", "all")}
    assert out["train_acc"]["none"] > out["train_acc"]["all"]
    assert gap["none"] > gap["all"] + 0.1
    assert out["gain_all"] == pytest.approx(out["acc_all"] - out["acc_none"])


def test_schedules_on_mnist1d_anneal_the_rate():
    """Each schedule's learning-rate curve on MNIST-1D has the declared shape, relative to its chosen base rate."""
    out = quick_run(q15_schedules.schedules, 0, "mnist1d")
    lr, base = out["lr_curves"], out["best_lr"]
    assert all(b in q15_schedules.schedules.params(quick=True, task="mnist1d")["lrs"] for b in base.values())
    assert lr["constant"][-1] == pytest.approx(base["constant"])
    assert lr["step"][-1] == pytest.approx(0.01 * base["step"])
    assert lr["cosine"][-1] < 0.01 * base["cosine"]
    assert lr["warmup_cosine"][0] == pytest.approx(0.1 * base["warmup_cosine"])
    assert all(math.isfinite(v) and v > 0 for v in out["test_loss"].values())


def test_activations_on_mnist1d_start_relus_dead_under_a_negative_bias():
    """On MNIST-1D a bias of -3 switches most ReLUs off at init (the second layer's all, the first layer's few:
    some signals exceed 3 standard deviations); a shallow ReLU net at bias 0 still trains within the budget."""
    out = quick_run(q15_activations.activations, 0, "mnist1d")
    negative = [c for c in out["conditions"] if c["bias"] < 0]
    zero = [c for c in out["conditions"] if c["bias"] == 0]
    assert negative and all(c["inactive_at_init"]["relu"] > 0.5 for c in negative)
    assert all(c["inactive_at_init"]["relu"] < 0.2 for c in zero)
    assert out["steps"]["relu"][0] is not None and out["max_depth"]["relu"] >= 2
