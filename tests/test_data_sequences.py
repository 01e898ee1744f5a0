"""Tests for deepbasics.data.sequences: the adding problem and the copy task."""

from __future__ import annotations

import math

import pytest
import torch

from deepbasics import data


def test_adding_problem_structure_and_targets(float64):
    x, y = data.adding_problem(200, 11, generator=torch.Generator().manual_seed(0))
    assert x.shape == (200, 11, 2) and y.shape == (200, 1) and x.dtype == torch.float64
    values, markers = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert set(markers.unique().tolist()) == {0.0, 1.0} and (markers.sum(1) == 2).all()
    half = math.ceil(11 / 2)
    assert (markers[:, :half].sum(1) == 1).all() and (markers[:, half:].sum(1) == 1).all()
    expected = [
        sum(v for v, m in zip(vs, ms, strict=True) if m == 1.0)
        for vs, ms in zip(values.tolist(), markers.tolist(), strict=True)
    ]
    torch.testing.assert_close(y[:, 0], torch.tensor(expected), rtol=0, atol=1e-15)


def test_adding_baseline_is_the_variance_of_the_target(float64):
    _, y = data.adding_problem(20000, 6, generator=torch.Generator().manual_seed(1))
    assert abs(((y - 1.0) ** 2).mean().item() - data.ADDING_BASELINE_MSE) < 0.01


def test_adding_problem_is_reproducible():
    a = data.adding_problem(5, 8, generator=torch.Generator().manual_seed(2))
    b = data.adding_problem(5, 8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_copy_task_layout():
    k, lag, m = 4, 3, 5
    x, y = data.copy_task(30, lag, m, generator=torch.Generator().manual_seed(0), seq_length=k)
    total = 2 * k + lag + 1
    assert x.shape == y.shape == (30, total) and x.dtype == y.dtype == torch.int64
    symbols = x[:, :k]
    assert ((symbols >= 1) & (symbols <= m)).all()
    assert (x[:, k : k + lag] == 0).all() and (x[:, k + lag] == m + 1).all() and (x[:, k + lag + 1 :] == 0).all()
    assert (y[:, : k + lag + 1] == 0).all()
    assert torch.equal(y[:, k + lag + 1 :], symbols)  # the symbols come back, in order, after the delimiter
    assert int(x.max()) < m + 2  # vocabulary size num_symbols + 2


def test_copy_task_lag_zero_and_baseline():
    x, y = data.copy_task(2, 0, 3, generator=torch.Generator().manual_seed(0), seq_length=2)
    assert x.shape == (2, 5) and (x[:, 2] == 4).all() and torch.equal(y[:, 3:], x[:, :2])
    assert data.copy_task_baseline(lag=9, num_symbols=8, seq_length=10) == pytest.approx(10 * math.log(8) / 30)


@pytest.mark.parametrize(
    ("fn", "kwargs", "exc"),
    [
        (data.adding_problem, {"num_samples": 4, "length": 1}, ValueError),
        (data.adding_problem, {"num_samples": 0, "length": 5}, ValueError),
        (data.adding_problem, {"num_samples": 4, "length": 5, "dtype": torch.int32}, TypeError),
        (data.copy_task, {"num_samples": 4, "lag": -1}, ValueError),
        (data.copy_task, {"num_samples": 4, "lag": 2, "num_symbols": 0}, ValueError),
        (data.copy_task, {"num_samples": 4, "lag": 2, "generator": "seed"}, TypeError),
    ],
)
def test_bad_arguments(fn, kwargs, exc):
    with pytest.raises(exc):
        fn(**kwargs)
