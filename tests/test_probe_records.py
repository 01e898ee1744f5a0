"""Kernels and log of deepbasics.probe.records, against independent numpy float64 references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deepbasics.probe.records import (
    StepLog,
    activation_moments,
    activation_stats,
    aggregate_layers,
    summarize,
    tensor_norms,
)


def reference_stats(y, bounds=None, tol=1e-2, x=None, limit=5.0):
    """Plain numpy float64 definitions of every metric."""
    y = np.asarray(y, dtype=np.float64)
    batch = y.shape[0] if y.ndim >= 2 else 1
    per_unit = y.reshape(batch, -1)
    out = [y.mean(), y.std(), np.mean(y == 0), np.mean(np.all(per_unit == 0, axis=0))]
    if bounds is not None:
        out.append(np.mean((y <= bounds[0] + tol) | (y >= bounds[1] - tol)))
    if x is not None:
        out.append(np.mean(np.abs(np.asarray(x, dtype=np.float64)) > limit))
    return np.array(out)


finite = st.floats(-50, 50, allow_nan=False, width=64)
shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


@given(arrays(np.float64, shapes, elements=finite))
def test_activation_stats_match_numpy(values):
    y = torch.from_numpy(values).clamp_min(0)  # ReLU-like: exact zeros and possibly dead units
    got = activation_stats(y).numpy()
    np.testing.assert_allclose(got, reference_stats(y.numpy()), rtol=1e-10, atol=1e-12)


@given(arrays(np.float64, shapes, elements=finite))
def test_saturation_and_preactivation_match_numpy(x):
    xt = torch.from_numpy(x)
    y = torch.tanh(xt)
    got = activation_stats(y, bounds=(-1.0, 1.0), sat_tol=1e-2, preact=xt, preact_limit=5.0).numpy()
    np.testing.assert_allclose(got, reference_stats(y.numpy(), (-1.0, 1.0), 1e-2, x, 5.0), rtol=1e-10, atol=1e-12)


def test_dead_unit_needs_every_example_zero():
    y = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])  # unit 0 dead, units 1 and 2 alive in one example each
    _, _, zero, dead = activation_stats(y).tolist()
    assert zero == pytest.approx(4 / 6) and dead == pytest.approx(1 / 3)


def test_conv_units_are_channel_position_pairs():
    y = torch.ones(4, 2, 3, 3)
    y[:, 1, 0, 0] = 0  # one (channel, pixel) unit dead over the batch
    assert activation_stats(y)[3].item() == pytest.approx(1 / 18)


def test_units_false_returns_mean_and_population_std(float64):
    y = torch.randn(7, 5)
    np.testing.assert_allclose(activation_stats(y, units=False).numpy(), [y.mean().item(), y.std(correction=0).item()])


def test_low_precision_is_summarised_in_float32():
    y = torch.full((4, 300), 200.0, dtype=torch.float16)  # sum of squares overflows float16
    got = activation_stats(y)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    assert got[0].item() == 200.0


def test_moments_affine_reproduces_stats(float64):
    y = torch.randn(6, 4).relu()
    raw, affine = activation_moments(y, bounds=(0.0, 1.0))
    manual = [a * r.item() + b for r, (a, b) in zip(raw, affine, strict=True)]
    np.testing.assert_allclose(manual, activation_stats(y, bounds=(0.0, 1.0)).numpy(), rtol=1e-12)


def test_stats_do_not_touch_input_or_graph():
    x = torch.randn(5, 3, requires_grad=True)
    y = x * 2
    before = y.detach().clone()
    out = activation_stats(y, preact=x)
    assert not out.requires_grad and torch.equal(y, before)


@pytest.mark.parametrize("foreach", [True, False])
def test_tensor_norms_match_numpy(foreach, float64):
    ts = [torch.randn(3, 4), torch.randn(7), torch.randn(2, 2, 2)]
    expected = [np.linalg.norm(t.numpy().ravel()) for t in ts]
    np.testing.assert_allclose(tensor_norms(ts, foreach=foreach).numpy(), expected, rtol=1e-12)


def test_tensor_norms_fast_and_reference_paths_agree(float64):
    ts = [torch.randn(50, 20) * 10**k for k in range(-3, 4)]
    torch.testing.assert_close(tensor_norms(ts, foreach=True), tensor_norms(ts, foreach=False), rtol=1e-13, atol=0)


def test_tensor_norms_sparse_and_half():
    dense = torch.tensor([[0.0, 3.0], [4.0, 0.0]])
    assert tensor_norms([dense.to_sparse()]).item() == pytest.approx(5.0)
    half = torch.full((100,), 1000.0, dtype=torch.float16)  # norm 1e4 is fine, its square is not in float16
    assert tensor_norms([half]).item() == pytest.approx(1e4)


def test_tensor_norms_rejects_empty_list():
    with pytest.raises(ValueError, match="non-empty list"):
        tensor_norms([])


def test_activation_stats_rejects_bad_input():
    with pytest.raises(TypeError, match="floating-point"):
        activation_stats(torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match="non-empty"):
        activation_stats(torch.ones(0))
    with pytest.raises(ValueError, match="lo < hi"):
        activation_stats(torch.ones(3), bounds=(1.0, 0.0))
    with pytest.raises(ValueError, match="sat_tol"):
        activation_stats(torch.ones(3), bounds=(0.0, 1.0), sat_tol=-1.0)


def test_step_log_flushes_once_and_applies_affine():
    log = StepLog()
    log.add(0, [("a", "x"), ("a", "y")], torch.tensor([2.0, 3.0]), [(0.5, 0.0), (-1.0, 1.0)])
    log.add(1, [("b", "x")], torch.tensor([7.0]))
    assert log.pending == 2
    table = log.table()
    assert log.pending == 0
    assert table == {"a": {"x": {0: 1.0}, "y": {0: -2.0}}, "b": {"x": {1: 7.0}}}
    assert log.table() == table  # already on the host: same answer, no second copy


def test_step_log_push_commit_groups_dtypes():
    log = StepLog()
    log.push([("a", "mean")], [torch.tensor(0.5)])
    log.push([("a", "count"), ("b", "x")], [torch.tensor(3), torch.tensor(2.0, dtype=torch.float64)], [(0.25, 1.0)] * 2)
    log.commit(7)
    assert log.pending == 3  # one block per dtype
    assert log.table() == {"a": {"mean": {7: 0.5}, "count": {7: 1.75}}, "b": {"x": {7: 1.5}}}


def test_aggregate_layers_combines_norms_in_quadrature():
    params = {
        "l.weight": {"grad_norm": {0: 3.0}, "weight_norm": {0: 6.0}, "update_norm": {0: 0.3}},
        "l.bias": {"grad_norm": {0: 4.0}, "weight_norm": {0: 8.0}, "update_norm": {0: 0.4}},
        "z.bias": {"weight_norm": {0: 0.0}, "update_norm": {0: 0.1}},
    }
    out = aggregate_layers(params, {"l.weight": "l", "l.bias": "l", "z.bias": "z"})
    assert out["l"]["grad_norm"][0] == pytest.approx(5.0)
    assert out["l"]["weight_norm"][0] == pytest.approx(10.0)
    assert out["l"]["update_ratio"][0] == pytest.approx(0.05)
    assert out["z"]["update_ratio"][0] is None  # ||w|| = 0: undefined, not inf


def test_summarize_medians_and_last_values():
    records = {
        "fc": {"step": [0, 5, 10], "grad_norm": [1.0, None, 3.0], "dead_frac": [0.1, 0.2, None]},
        "act": {"step": [0, 5, 10], "sat_frac": [None, None, None]},
    }
    out = summarize(records, ["fc", "act"])
    assert list(out) == ["fc", "act"]
    assert out["fc"]["grad_norm_median"] == 2.0 and out["fc"]["dead_frac_last"] == 0.2 and out["fc"]["steps"] == 3
    assert out["act"]["sat_frac_last"] is None and out["act"]["steps"] == 0
    assert math.isclose(summarize({}, ["x"])["x"]["steps"], 0)
