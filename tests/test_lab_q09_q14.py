"""Smoke tests of the lab experiments for FAQ Q9, Q10, Q13 and Q14, and checks of their measuring helpers.

The verdicts are findings, not test outcomes: the smoke tests check that each experiment runs in quick mode with
one seed, returns every metric its rules name as a finite real number, and that plots render. The helpers that
do the measuring (per-example gradients, the critical-batch fit, the saved-tensor byte count, the per-step
batch-norm LSTM, the decay fit) are checked against independent references.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
import pytest
import torch
from torch import nn

from _lab_quick import quick_run
from deepbasics.lab.experiments import (
    _q13_gradients,
    q09_lstm,
    q10_overfitting,
    q13_batch_cost,
    q13_critical_batch,
    q13_gradient_noise,
    q14_batchnorm_benefits,
    q14_batchnorm_limits,
)

EXPERIMENTS = {
    "Q9.a": q09_lstm.longest_lag,
    "Q9.b": q09_lstm.gradient_decay,
    "Q9.c": q09_lstm.exploding,
    "Q10.a": q10_overfitting.remedies,
    "Q13.a": q13_gradient_noise.gradient_error,
    "Q13.b": q13_critical_batch.critical_batch,
    "Q13.c": q13_batch_cost.memory,
    "Q13.d": q13_batch_cost.step_time,
    "Q14.a": q14_batchnorm_benefits.init_and_lr,
    "Q14.c": q14_batchnorm_benefits.regularization,
    "Q14.d": q14_batchnorm_limits.small_batches,
    "Q14.e": q14_batchnorm_limits.recurrent,
}


def _quick(cid: str) -> dict:
    """``run(quick params, seed 0)``, computed once per experiment for the whole module."""
    return quick_run(EXPERIMENTS[cid], 0)


def test_every_claim_of_the_assignment_is_covered():
    covered = {cid for exp in EXPERIMENTS.values() for cid in exp.ids}
    expected = {"Q9.a", "Q9.b", "Q9.c", "Q10.a"} | {f"Q13.{c}" for c in "abcdef"} | {f"Q14.{c}" for c in "abcde"}
    assert covered == expected
    for exp in EXPERIMENTS.values():
        assert exp.quick.keys() == exp.full.keys()
        assert len(exp.method.split(". ")) >= 2  # a method of at least two sentences
        assert exp.plot is not None


@pytest.mark.parametrize("cid", sorted(EXPERIMENTS))
def test_quick_run_returns_every_rule_metric_finite(cid):
    exp = EXPERIMENTS[cid]
    out = _quick(cid)
    for rule in exp.rules.values():
        assert rule.metric in out, f"{cid}: rule metric {rule.metric!r} missing from {sorted(out)}"
        value = out[rule.metric]
        assert isinstance(value, Real) and not isinstance(value, bool), (cid, rule.metric, type(value))
        assert math.isfinite(value), (cid, rule.metric, value)
    for key, value in out.items():
        if isinstance(value, float):
            assert math.isfinite(value), (cid, key, value)


@pytest.mark.parametrize("cid", ["Q9.b", "Q13.c", "Q14.e"])
def test_plot_renders(cid, tmp_path):
    exp = EXPERIMENTS[cid]
    paths = exp.plot([_quick(cid)], exp.params(quick=True), tmp_path)
    assert paths
    for path in paths:
        assert path.parent == tmp_path
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_outputs_are_consistent_with_their_parts():
    out = _quick("Q9.a")
    lengths = q09_lstm.longest_lag.params(quick=True)["lengths"]
    assert out["length_ratio"] == out["longest_lstm"] / max(out["longest_rnn"], lengths[0] / 2)
    out = _quick("Q10.a")
    helped = [out["test_error"][r] < out["test_error"]["baseline"] for r in q10_overfitting.REMEDIES]
    assert out["fraction_helping"] == pytest.approx(np.mean(helped))
    out = _quick("Q14.d")
    others = [d for norm, d in out["drop"].items() if norm != "batch"]
    assert out["bn_excess_drop"] == pytest.approx(out["drop"]["batch"] - max(others))


# ----------------------------------------------------------------------------------- measuring helpers
def test_per_example_gradients_match_torch_func(float64):
    from torch.func import functional_call, grad, vmap

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3, bias=False), nn.ReLU(), nn.Linear(3, 4))
    x, y = torch.randn(11, 5), torch.randint(4, (11,))
    ours = _q13_gradients.per_example_gradients(model, x, y)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_one(p, xi, yi):
        return nn.functional.cross_entropy(functional_call(model, p, (xi[None],)), yi[None])

    ref = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, y)
    ref = torch.cat([g.reshape(11, -1) for g in ref.values()], dim=1)
    assert ours.shape == ref.shape == (11, sum(p.numel() for p in model.parameters()))
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)
    # their mean is the mini-batch gradient autograd gives
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    torch.testing.assert_close(ours.mean(0), torch.cat([p.grad.reshape(-1) for p in model.parameters()]))


def test_per_example_gradients_reject_layers_with_parameters():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    with pytest.raises(TypeError, match="Linear or parameter-free"):
        _q13_gradients.per_example_gradients(model, torch.randn(2, 3), torch.tensor([0, 1]))


def test_critical_batch_fit_recovers_exact_curve():
    sizes = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    steps = [37.0 * (1 + 50.0 / b) for b in sizes]
    s_min, b_crit = q13_critical_batch._fit_critical_batch(sizes, steps)
    assert s_min == pytest.approx(37.0, rel=1e-6)
    assert b_crit == pytest.approx(50.0, rel=1e-6)


def test_saved_bytes_are_affine_in_batch_size():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 9), nn.ReLU(), nn.Linear(9, 4))
    b = [q13_batch_cost._saved_bytes(model, torch.randn(n, 6), torch.randint(4, (n,))) for n in (1, 2, 3, 5)]
    per_example = b[1] - b[0]
    assert per_example > 0
    assert b == [b[0] + per_example * (n - 1) for n in (1, 2, 3, 5)]
    # at least the float32 input and hidden activation of each example are kept for backward
    assert per_example >= 4 * (6 + 9)


def test_decay_per_step_of_a_geometric_profile():
    t = np.arange(40)
    assert q09_lstm._decay_per_step(10.0 ** (0.25 * t - 7)) == pytest.approx(0.25)


def test_forget_bias_is_set_and_kept_out_of_rnn():
    lstm = q09_lstm._recurrent_model("lstm", 6, seed=0)
    bias = lstm.cell.bias_ih + lstm.cell.bias_hh
    torch.testing.assert_close(bias[6:12], torch.full((6,), q09_lstm.FORGET_BIAS))
    default = q09_lstm._recurrent_model("lstm", 6, seed=0, forget_bias=None)
    assert not torch.equal(default.cell.bias_ih, lstm.cell.bias_ih)
    rnn_a, rnn_b = q09_lstm._recurrent_model("rnn", 6, seed=3), q09_lstm._recurrent_model("rnn", 6, seed=3)
    torch.testing.assert_close(rnn_a.cell.weight_hh, rnn_b.cell.weight_hh)  # seeded, reproducible


def test_batchnorm_lstm_keeps_statistics_per_step_and_reuses_the_last():
    torch.manual_seed(0)
    cell = q14_batchnorm_limits.BatchNormLSTMCell(2, 5, max_steps=3)
    x = torch.randn(16, 2)
    state = None
    for t in range(3):  # training mode: each step updates only its own running statistics
        state = cell(x * (t + 1), state, t)
    means = [bn.running_mean.clone() for bn in cell.bn_x]
    assert not torch.allclose(means[0], means[2])  # inputs of different scale -> different statistics
    cell.eval()
    h = torch.randn(4, 5), torch.randn(4, 5)
    x_eval = torch.randn(4, 2)
    last = cell(x_eval, h, 2)
    for a, b in zip(cell(x_eval, h, 7), last, strict=True):  # beyond max_steps: the last step's statistics
        torch.testing.assert_close(a, b)


def test_group_norm_cnn_swaps_every_norm():
    from deepbasics import nn as dnn

    model = q14_batchnorm_limits._cnn("group", seed=0, groups=4)
    norms = [m for m in model.modules() if isinstance(m, dnn.GroupNorm)]
    assert [m.num_groups for m in norms] == [4, 4]
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    layer = q14_batchnorm_limits._cnn("layer", seed=0, groups=4)
    assert [m.num_groups for m in layer.modules() if isinstance(m, dnn.GroupNorm)] == [1, 1]
