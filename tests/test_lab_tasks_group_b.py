"""Per-task quick runs of the regularization and batch experiments measured on two tasks (issue 15, group B).

Each experiment of Q6, Q10, Q13.b and Q14.c/d runs on the task where it was first measured and on one where its
claim is meant to apply. These tests check the measured mechanism on every task's quick run (what the penalty,
remedy or normalization did to the weights, errors and gaps), never the verdict: the verdicts are findings.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from _lab_quick import quick_run
from deepbasics.lab.experiments import (
    q06_regularization,
    q10_overfitting,
    q13_critical_batch,
    q14_batchnorm_benefits,
    q14_batchnorm_limits,
)


# ----------------------------------------------------------------------------------------------- Q6
@pytest.mark.parametrize("task", ["digits", "mnist1d"])
def test_q6_penalties_shrink_weights_and_l1_zeroes_more(task):
    out = quick_run(q06_regularization.penalties, 0, task)
    norms, zeros = out["weight_norm"], out["near_zero_fraction"]
    assert norms["l1"] < norms["none"] and norms["l2"] < norms["none"]
    assert zeros["l1"] > zeros["l2"]  # L1's constant pull sets weights to ~0; L2's proportional one does not
    assert math.isfinite(out["overfitting_benefit"]) and abs(out["overfitting_benefit"]) <= 1.0 + 0.01
    for name in q06_regularization._PENALTIES:  # the gap is train minus test accuracy, in [-1, 1]
        assert out["gap"][name] == pytest.approx(out["train_accuracy"][name] - out["test_accuracy"][name])


def test_q6_mnist1d_is_where_the_unpenalized_model_overfits():
    """The intended task: the plain MLP fits far more of its training set than of the test set."""
    digits = quick_run(q06_regularization.penalties, 0, "digits")
    signals = quick_run(q06_regularization.penalties, 0, "mnist1d")
    assert signals["gap"]["none"] > 0.3  # quick mode: ~0.65 (300 signals); full: ~0.5 with 1,000
    assert signals["gap"]["none"] > digits["gap"]["none"]
    assert len(signals["log10_abs_weights"]["l1"]) == 2000


# ---------------------------------------------------------------------------------------------- Q10
@pytest.mark.parametrize("task", ["digits", "mnist1d"])
def test_q10_baseline_overfits_and_remedies_are_compared_with_it(task):
    out = quick_run(q10_overfitting.remedies, 0, task)
    test, train = out["test_error"], out["train_error"]
    assert test["baseline"] > train["baseline"] + 5  # points: the network fits its training set better than new data
    helped = [test[r] < test["baseline"] for r in q10_overfitting.REMEDIES]
    assert out["fraction_helping"] == pytest.approx(sum(helped) / len(helped))
    for r in q10_overfitting.REMEDIES:
        assert out[f"improvement_{r}"] == pytest.approx(test["baseline"] - test[r])
        assert 0.0 <= test[r] <= 100.0 and 0.0 <= train[r] <= 100.0
    assert (
        len(out["baseline_member_test_errors"])
        == q10_overfitting.remedies.params(quick=True, task=task)["ensemble_size"]
    )


def test_q10_signal_shift_moves_each_signal_by_its_offset():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(10.0).repeat(200, 1)  # (200, 10)
    out = q10_overfitting.RandomShift1d(3, g)(x)
    d = out[:, 5] - x[:, 5]  # interior positions move by -d: out[j] = x[j - d]
    assert set(d.tolist()) == {-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0}
    for row, shift in zip(out, (-d).long().tolist(), strict=True):
        expected = (torch.arange(10) - shift).clamp(0, 9).float()
        torch.testing.assert_close(row, expected)
    torch.testing.assert_close(q10_overfitting.RandomShift1d(0, g)(x), x)


# --------------------------------------------------------------------------------------------- Q13.b
@pytest.mark.parametrize("task", ["digits", "mnist1d"])
def test_q13_larger_batches_take_fewer_steps_at_larger_rates(task):
    exp = q13_critical_batch.critical_batch
    out = quick_run(exp, 0, task)
    sizes = out["sizes_reached"]
    assert len(sizes) >= 3 and set(sizes) <= set(exp.params(quick=True, task=task)["sizes"])
    assert out["steps"][-1] < out["steps"][0]  # S(B) = S_min (1 + B_crit / B) falls with B
    assert out["best_lr"][-1] >= out["best_lr"][0]  # the tuned rate grows with the batch (Goyal et al. 2017)
    slope = np.polyfit(np.log2(sizes), out["test_error"], 1)[0]
    assert out["error_slope_per_doubling"] == pytest.approx(slope)
    assert all(0.0 <= e <= 100.0 for e in out["test_error"])
    assert out["b_crit"] > 0 and out["b_simple"] > 0


def test_q13_mnist1d_model_has_the_task_inputs():
    params = q13_critical_batch.critical_batch.params(quick=True, task="mnist1d")
    (x, _), (xt, _), model = q13_critical_batch._data_and_model(params, 0)
    assert x.shape == (params["train_size"], 40) and xt.shape == (1000, 40)
    assert model(x[:2]).shape == (2, 10)
    assert [m.out_features for m in model if isinstance(m, torch.nn.Linear)] == [*params["hidden"], 10]


# --------------------------------------------------------------------------------------------- Q14.c
@pytest.mark.parametrize("task", ["digits", "mnist1d"])
def test_q14c_gaps_are_test_minus_train_error_per_variant(task):
    out = quick_run(q14_batchnorm_benefits.regularization, 0, task)
    for name in ("none", "batchnorm", "dropout"):
        assert out["gap"][name] == pytest.approx(out["test_error"][name] - out["train_error"][name])
    assert out["gap_reduction"] == pytest.approx(out["gap"]["none"] - out["gap"]["batchnorm"])
    assert out["gap_reduction_dropout"] == pytest.approx(out["gap"]["none"] - out["gap"]["dropout"])
    assert out["train_error"]["batchnorm"] < 5.0  # points: BN fits the training set (nothing to blame on underfitting)


def test_q14c_mnist1d_plain_network_fits_and_overfits():
    out = quick_run(q14_batchnorm_benefits.regularization, 0, "mnist1d")
    assert out["train_error"]["none"] < 5.0 and out["gap"]["none"] > 30.0  # points


# --------------------------------------------------------------------------------------------- Q14.d
@pytest.mark.parametrize("task", ["digits", "mnist1d"])
def test_q14d_drops_are_large_minus_small_batch_accuracy(task):
    exp = q14_batchnorm_limits.small_batches
    params = exp.params(quick=True, task=task)
    out = quick_run(exp, 0, task)
    large, small = str(max(params["batch_sizes"])), str(min(params["batch_sizes"]))
    for norm in params["norms"]:
        acc = out["test_accuracy"][norm]
        assert set(acc) == {str(b) for b in params["batch_sizes"]}
        assert out["drop"][norm] == pytest.approx(100 * (acc[large] - acc[small]))
        assert acc[large] > 0.15  # above chance (10%) even in quick mode: the networks learn
    others = [out["drop"][n] for n in params["norms"] if n != "batch"]
    assert out["bn_excess_drop"] == pytest.approx(out["drop"]["batch"] - max(others))


@pytest.mark.parametrize("norm", ["batch", "group", "layer"])
def test_q14d_signal_cnn_normalizes_every_convolution(norm):
    model = q14_batchnorm_limits._signal_cnn(norm, seed=0, groups=5, channels=25)
    convs = [m for m in model if isinstance(m, torch.nn.Conv1d)]
    norms = [m for m in model if m.__class__.__name__ in ("BatchNorm1d", "GroupNorm")]
    assert len(convs) == 3 and len(norms) == 3 and all(c.bias is None for c in convs)
    assert model(torch.randn(4, 40)).shape == (4, 10)
    same = q14_batchnorm_limits._signal_cnn(norm, seed=0, groups=5, channels=25)
    for a, b in zip(model.parameters(), same.parameters(), strict=True):  # the seed fixes the initialization
        torch.testing.assert_close(a, b)
    if norm != "batch":  # batch-independent: an example's output does not depend on the rest of its batch
        model.train()
        x = torch.randn(6, 40)
        torch.testing.assert_close(model(x)[:1], model(x[:1]))
