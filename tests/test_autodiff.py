"""deepbasics.autodiff against central finite differences in float64 and closed forms (FAQ Q11.a)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from deepbasics import autodiff as ad

# torch's forward-mode AD registers its decompositions with torch.jit.script on first use
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def vector_field(x: torch.Tensor) -> torch.Tensor:  # R^(2x2) -> R^3
    return torch.stack([x.sin().sum(), (x[0] * x[1]).prod(), torch.tanh(x).square().sum() * x[1, 0]])


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, rel: float) -> None:
    scale = expected.abs().max().clamp_min(1.0)
    assert float((actual - expected).abs().max()) <= rel * float(scale), float((actual - expected).abs().max())


points = st.lists(st.floats(-1.5, 1.5), min_size=4, max_size=4).map(lambda v: torch.tensor(v, dtype=torch.float64))


@given(points)
def test_jacobian_and_hessian_match_finite_differences(x):
    f = lambda t: torch.stack([rosenbrock(t), (t.exp() * t.cos()).sum()])  # noqa: E731
    assert_rel_close(ad.jacobian(f, x), ad.finite_difference_jacobian(f, x), 1e-6)
    assert_rel_close(ad.jacobian(f, x, mode="forward"), ad.finite_difference_jacobian(f, x), 1e-6)
    assert_rel_close(ad.hessian(rosenbrock, x), ad.finite_difference_hessian(rosenbrock, x), 1e-6)


@given(points)
def test_hessian_is_symmetric_and_hvp_is_its_product(x):
    h = ad.hessian(rosenbrock, x)
    torch.testing.assert_close(h, h.T, rtol=0, atol=1e-12)
    v = torch.linspace(-1, 1, 4, dtype=torch.float64)
    torch.testing.assert_close(ad.hvp(rosenbrock, x, v), h @ v, rtol=1e-12, atol=1e-10)


def test_shapes_follow_out_shape_plus_x_shape(float64):
    x = torch.randn(2, 2)
    j = ad.jacobian(vector_field, x)
    assert j.shape == (3, 2, 2)
    assert_rel_close(j, ad.finite_difference_jacobian(vector_field, x), 1e-6)
    scalar = lambda t: vector_field(t)[2]  # noqa: E731
    h = ad.hessian(scalar, x)
    assert h.shape == (2, 2, 2, 2)
    assert_rel_close(h, ad.finite_difference_hessian(scalar, x), 1e-6)
    assert ad.hessian(vector_field, x).shape == (3, 2, 2, 2, 2)  # a stack of Hessians for vector f
    assert ad.hvp(scalar, x, torch.ones_like(x)).shape == (2, 2)


def test_finite_differences_refuse_float32():
    x = torch.randn(3)
    with pytest.raises(TypeError, match="float64"):
        ad.finite_difference_jacobian(torch.sin, x)
    with pytest.raises(TypeError, match="float64"):
        ad.finite_difference_hessian(lambda t: t.sum(), x)
    with pytest.raises(TypeError, match=r"f\(x\).*float64"):  # f that silently computes in float32
        ad.finite_difference_jacobian(lambda t: t.float().sin(), x.double())


def test_bad_inputs():
    x = torch.randn(3, dtype=torch.float64)
    with pytest.raises(TypeError, match="callable"):
        ad.jacobian("sin", x)
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        ad.hessian(rosenbrock, [1.0, 2.0])
    with pytest.raises(TypeError, match="floating"):
        ad.jacobian(torch.sin, torch.arange(3))
    with pytest.raises(ValueError, match="mode"):
        ad.jacobian(torch.sin, x, mode="sideways")
    with pytest.raises(ValueError, match="scalar"):
        ad.hvp(torch.sin, x, x)
    with pytest.raises(ValueError, match="shape and dtype of x"):
        ad.hvp(rosenbrock, x, torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="scalar"):
        ad.finite_difference_hessian(torch.sin, x)
    with pytest.raises(ValueError, match="eps"):
        ad.finite_difference_jacobian(torch.sin, x, eps=0.0)


# --------------------------------------------------------------------------------------------------------------------
# Model helpers and the dense loss Hessian


def test_flatten_and_unflatten_round_trip():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    params = list(model.parameters())
    flat = ad.flatten_params(params)
    assert flat.shape == (sum(p.numel() for p in params),)
    for piece, p in zip(ad.unflatten(flat, params), params, strict=True):
        assert torch.equal(piece, p)
    with pytest.raises(ValueError, match="entries"):
        ad.unflatten(flat[:-1], params)
    with pytest.raises(ValueError, match="at least one tensor"):
        ad.flatten_params([])


def test_loss_hessian_of_linear_regression_is_two_over_n_xtx(float64):
    n, d = 30, 4
    x, y = torch.randn(n, d), torch.randn(n, 1)
    model = nn.Linear(d, 1)  # parameters in order: weight (1, d), bias (1,)
    xa = torch.cat([x, torch.ones(n, 1)], dim=1)  # (N, d + 1): the bias is the weight of a constant input
    h = ad.loss_hessian(model, nn.MSELoss(), x, y)
    torch.testing.assert_close(h, 2 / n * xa.T @ xa, rtol=1e-12, atol=1e-12)


def test_loss_hessian_of_small_mlp_matches_finite_differences(float64):
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x, y = torch.randn(12, 3), torch.randint(0, 2, (12,))
    loss_fn = nn.CrossEntropyLoss()
    names, params = ad.trainable_parameters(model)

    def loss_of(flat: torch.Tensor) -> torch.Tensor:  # forward only: no autograd in the reference
        tensors = dict(zip(names, ad.unflatten(flat, params), strict=True))
        return loss_fn(torch.func.functional_call(model, tensors, (x,)), y)

    h = ad.loss_hessian(model, loss_fn, x, y)
    reference = ad.finite_difference_hessian(loss_of, ad.flatten_params(params).detach())
    assert h.shape == (26, 26)
    assert_rel_close(h, reference, 1e-6)
    torch.testing.assert_close(h, h.T, rtol=0, atol=1e-14)


def test_loss_hessian_excludes_frozen_parameters_and_restores_modes(float64):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Dropout(0.5), nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    model.train()
    model[1].eval()
    x, y = torch.randn(10, 3), torch.randn(10, 2)
    full = ad.loss_hessian(model, nn.MSELoss(), x, y)
    assert full.shape == (4 + 8 + 10, 4 + 8 + 10)
    assert model.training and model[3].training and not model[1].training
    assert not model[0].weight.requires_grad
    running = model[1].running_mean.clone()
    ad.loss_hessian(model, nn.MSELoss(), x, y, train_mode=True)
    assert torch.equal(model[1].running_mean, running)  # batch statistics used, running ones left alone
    assert model[1].track_running_stats


def test_loss_hessian_refuses_large_models_and_bad_losses(float64):
    model = nn.Linear(100, 60)
    x, y = torch.randn(5, 100), torch.randn(5, 60)
    with pytest.raises(ValueError, match=r"6060.*pass max_params=6060"):
        ad.loss_hessian(model, nn.MSELoss(), x, y)
    with pytest.raises(ValueError, match="scalar"):
        ad.loss_hessian(nn.Linear(2, 1), nn.MSELoss(reduction="none"), torch.randn(4, 2), torch.randn(4, 1))
    with pytest.raises(ValueError, match="at least one parameter"):
        ad.loss_hessian(nn.ReLU(), nn.MSELoss(), x, y)
    with pytest.raises(TypeError, match="loss_fn"):
        ad.loss_hessian(nn.Linear(2, 1), "mse", torch.randn(4, 2), torch.randn(4, 1))
