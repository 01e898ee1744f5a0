"""Q3.3 lab experiments (vanishing and exploding gradients): each runs in quick mode and returns its metrics.

What is tested is the measurement, not the verdict: every rule metric is present and finite, the per-layer
series have the declared lengths, and the gradient-profile helper agrees with a hand-written backward pass.
Whether a claim holds is a finding of the lab run, never asserted here.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from _lab_quick import quick_run
from deepbasics.lab.experiments import _deepnets, q03_3_clip_l2, q03_3_exploding, q03_3_remedies, q03_3_vanishing

EXPERIMENTS = [
    q03_3_vanishing.depth_profile,
    q03_3_vanishing.sigmoid_derivative,
    q03_3_exploding.init_scale,
    q03_3_exploding.population,
    q03_3_clip_l2.clipping,
    q03_3_clip_l2.l2_penalty,
    q03_3_remedies.batchnorm,
    q03_3_remedies.relu_vs_sigmoid,
    q03_3_remedies.skip_and_lstm,
]


def _quick(exp) -> dict:
    """One quick-mode run with seed 1 (not 0, so that nothing is tuned to the default seed), cached per module."""
    return quick_run(exp, 1)


def test_every_q3_3_claim_has_exactly_one_experiment():
    ids = [i for exp in EXPERIMENTS for i in exp.ids]
    assert sorted(ids) == [f"Q3.3.{c}" for c in "abcdefghij"]


@pytest.mark.parametrize("exp", EXPERIMENTS, ids=lambda e: e.id)
def test_quick_run_returns_every_rule_metric_finite(exp):
    out = _quick(exp)
    for claim, rule in exp.rules.items():
        assert rule.metric in out, f"{claim}: metric {rule.metric} missing"
        value = out[rule.metric]
        assert isinstance(value, int | float) and math.isfinite(value), f"{claim}: {rule.metric} = {value!r}"


def test_depth_profile_series_have_one_entry_per_layer():
    exp = q03_3_vanishing.depth_profile
    params, out = exp.params(quick=True), _quick(exp)
    for arm in ("sigmoid", "relu"):
        assert len(out["grads"][arm]) == len(out["steps"]) == params["steps"] // params["every"]
        assert all(len(g) == params["layers"] for g in out["grads"][arm])
    for arm in ("sigmoid", "relu", "sigmoid_adam"):
        assert len(out["change"][arm]) == params["layers"] and min(out["change"][arm]) >= 0.0
    assert 0.0 <= out["sigmoid_slope_r2"] <= 1.0


def test_sigmoid_derivative_subchecks_are_reported():
    out = _quick(q03_3_vanishing.sigmoid_derivative)
    for key in ("max_err", "argmax_dist", "autograd_err", "saturated_grad", "monotone_violation"):
        assert key in out and out[key] >= 0.0
    assert len(out["z"]) == len(out["ours"]) == len(out["autograd"]) == len(out["sigma"])


def test_population_classes_are_consistent_with_the_declared_thresholds():
    out = _quick(q03_3_exploding.population)
    params = q03_3_exploding.population.params(quick=True)
    assert len(out["configs"]) == params["population"]
    for c in out["configs"]:
        r = c["log10_error_ratio"]
        want = "vanishing" if r < -2 else ("exploding" if r > 2 else "neither")
        assert c["class"] == want
        assert params["min_layers"] <= c["depth"] <= params["max_layers"]
    frac = sum(c["class"] == "vanishing" for c in out["configs"]) / len(out["configs"])
    assert out["frac_vanishing"] == pytest.approx(frac)


def test_clipping_grid_covers_every_cell_with_and_without_clipping():
    exp = q03_3_clip_l2.clipping
    params, out = exp.params(quick=True), _quick(exp)
    cells = len(params["multipliers"]) * len(params["lrs"])
    assert len(out["runs"]["none"]) == len(out["runs"]["clip"]) == cells
    assert 0 <= out["exploding_cells"] <= cells
    assert -1.0 <= out["rescued_fraction"] <= 1.0


def test_backprop_profile_matches_a_hand_written_backward(float64):
    """||dL/dz_l|| and ||dL/dW_l|| of a 3-layer sigmoid MLP against the explicit chain rule (Q3.3.1)."""
    g = torch.Generator().manual_seed(3)
    model = _deepnets.deep_mlp("sigmoid", 3, 5, "glorot", g, in_features=4, classes=3).double()
    x = torch.randn(7, 4, generator=g)
    y = torch.randint(0, 3, (7,), generator=g)
    prof = _deepnets.backprop_profile(model, x, y)
    w = [m.weight for m in _deepnets.linear_layers(model)]
    b = [m.bias for m in _deepnets.linear_layers(model)]
    with torch.no_grad():
        z1 = x @ w[0].T + b[0]
        h1 = torch.sigmoid(z1)
        z2 = h1 @ w[1].T + b[1]
        h2 = torch.sigmoid(z2)
        z3 = h2 @ w[2].T + b[2]
        d3 = (torch.softmax(z3, dim=1) - nn.functional.one_hot(y, 3)) / len(x)  # dL/dz3 of the mean CE
        d2 = (d3 @ w[2]) * h2 * (1 - h2)  # diag(sigma'(z2)) W3^T d3
        d1 = (d2 @ w[1]) * h1 * (1 - h1)
    want_err = [d.norm().item() for d in (d1, d2, d3)]
    want_w = [(d.T @ h).norm().item() for d, h in ((d1, x), (d2, h1), (d3, h2))]
    assert prof["error"] == pytest.approx(want_err, rel=1e-12)
    assert prof["weight"] == pytest.approx(want_w, rel=1e-12)


def test_scaled_init_multiplies_the_std(float64):
    w = torch.empty(400, 300)
    _deepnets.scaled_init("he", 3.0, torch.Generator().manual_seed(0))(w)
    assert w.std().item() == pytest.approx(3.0 * math.sqrt(2.0 / 300), rel=0.02)


@pytest.mark.parametrize(
    ("first", "last", "want"),
    [
        (1.0, 100.0, -2.0),
        (0.0, 1.0, -300.0),
        (1.0, 0.0, 300.0),
        (math.inf, 1.0, 300.0),
        (1.0, math.inf, -300.0),
        (0.0, 0.0, 0.0),
    ],
)
def test_log10_ratio_is_finite_at_the_extremes(first, last, want):
    assert _deepnets.log10_ratio(first, last) == pytest.approx(want)


def test_plots_are_written(tmp_path):
    for exp in (q03_3_vanishing.sigmoid_derivative, q03_3_remedies.skip_and_lstm, q03_3_clip_l2.clipping):
        paths = exp.plot([_quick(exp)], exp.params(quick=True), tmp_path)
        assert paths and all(p.exists() and p.stat().st_size > 0 for p in paths)
