"""Tests for deepbasics.data.synthetic: circles, blobs (against scikit-learn) and the teacher-student task."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import datasets as skd

from deepbasics import data


def test_circles_and_blobs_equal_sklearn_with_the_same_seed():
    x, y = data.circles(100, noise=0.05, factor=0.3, seed=4, dtype=torch.float64)
    rx, ry = skd.make_circles(n_samples=100, noise=0.05, factor=0.3, random_state=4)
    np.testing.assert_array_equal(x.numpy(), rx)
    np.testing.assert_array_equal(y.numpy(), ry)
    x, y = data.blobs(90, centers=4, num_features=3, cluster_std=0.5, seed=2, dtype=torch.float64)
    rx, ry = skd.make_blobs(n_samples=90, centers=4, n_features=3, cluster_std=0.5, random_state=2)
    np.testing.assert_array_equal(x.numpy(), rx)
    assert y.dtype == torch.int64 and set(y.tolist()) == {0, 1, 2, 3}


def test_circles_radii_and_splits():
    x, y = data.circles(200, noise=0.0, factor=0.5, seed=0)
    r = x.norm(dim=1)
    torch.testing.assert_close(r[y == 0], torch.ones_like(r[y == 0]))
    torch.testing.assert_close(r[y == 1], torch.full_like(r[y == 1], 0.5))
    s = data.make_splits(x, y, standardize=False)
    assert s.num_classes == 2 and s.num_features == 2


def test_teacher_student_noise_free_targets_are_the_teacher_function(float64):
    x, y = data.teacher_student(50, 4, 6, noise=0.0, generator=torch.Generator().manual_seed(3), out_features=2)
    g = torch.Generator().manual_seed(3)
    w1 = torch.randn(6, 4, generator=g) / 2.0
    w2 = torch.randn(2, 6, generator=g) / math.sqrt(6)
    assert torch.equal(x, torch.randn(50, 4, generator=g))
    torch.testing.assert_close(y, torch.tanh(x @ w1.T) @ w2.T, rtol=0, atol=1e-14)


def test_teacher_student_noise_has_requested_std_and_is_reproducible(float64):
    clean = data.teacher_student(4000, 3, 5, noise=0.0, generator=torch.Generator().manual_seed(0))
    noisy = data.teacher_student(4000, 3, 5, noise=0.3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(clean[0], noisy[0])
    residual = noisy[1] - clean[1]
    assert abs(residual.std().item() - 0.3) < 0.02  # 4000 draws: std of the std estimate ~ 0.3/sqrt(8000)
    again = data.teacher_student(4000, 3, 5, noise=0.3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(noisy[1], again[1])


@pytest.mark.parametrize(
    ("fn", "kwargs", "exc"),
    [
        (data.circles, {"num_samples": 1}, ValueError),
        (data.circles, {"factor": 1.0}, ValueError),
        (data.circles, {"noise": -0.1}, ValueError),
        (data.blobs, {"centers": 0}, ValueError),
        (data.blobs, {"num_samples": 2.5}, TypeError),
        (data.teacher_student, {"num_samples": 0, "in_features": 2, "hidden": 2}, ValueError),
        (data.teacher_student, {"num_samples": 5, "in_features": 2, "hidden": 2, "generator": 1}, TypeError),
        (data.teacher_student, {"num_samples": 5, "in_features": 2, "hidden": 2, "dtype": torch.int64}, TypeError),
    ],
)
def test_bad_arguments(fn, kwargs, exc):
    with pytest.raises(exc):
        fn(**kwargs)
