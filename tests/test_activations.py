"""deepbasics.activations against torch's implementations and autograd (FAQ Q3.3.2, Q4, Q15)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from deepbasics import activations as act

NAMES = sorted(act.ACTIVATIONS)
LOW = [torch.float16, torch.bfloat16]
EXTREMES = [-1e4, -1e3, -100.0, -40.0, -20.0, -1e-8, 0.0, 1e-8, 20.0, 40.0, 100.0, 1e3, 1e4]

# (name, our fn, our grad, torch reference fn) for non-default arguments
VARIANTS = [
    ("leaky_relu(0.2)", lambda z: act.leaky_relu(z, 0.2), lambda z: act.leaky_relu_grad(z, 0.2),
     lambda z: F.leaky_relu(z, 0.2)),
    ("elu(0.5)", lambda z: act.elu(z, 0.5), lambda z: act.elu_grad(z, 0.5), lambda z: F.elu(z, 0.5)),
    ("gelu(tanh)", lambda z: act.gelu(z, "tanh"), lambda z: act.gelu_grad(z, "tanh"),
     lambda z: F.gelu(z, approximate="tanh")),
    ("softplus(2, 10)", lambda z: act.softplus(z, 2.0, 10.0), lambda z: act.softplus_grad(z, 2.0, 10.0),
     lambda z: F.softplus(z, 2.0, 10.0)),
]  # fmt: skip


def _cases():
    for name in NAMES:
        fn, grad, module = act.ACTIVATIONS[name]
        yield pytest.param(fn, grad, module(), id=name)
    for name, fn, grad, ref in VARIANTS:
        yield pytest.param(fn, grad, ref, id=name)


CASES = list(_cases())


def grid(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.cat(
        [torch.tensor(EXTREMES, dtype=torch.float64), torch.linspace(-10, 10, 201, dtype=torch.float64)]
    ).to(dtype)


@pytest.mark.parametrize(("fn", "grad", "ref"), CASES)
def test_function_matches_torch_float64(fn, grad, ref):
    z = grid()
    out = fn(z)
    assert out.dtype == torch.float64 and out.shape == z.shape
    torch.testing.assert_close(out, ref(z), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize(("fn", "grad", "ref"), CASES)
def test_function_matches_torch_low_precision_and_is_finite(fn, grad, ref, dtype):
    z = grid(dtype)
    out = fn(z)
    assert out.dtype == dtype and torch.isfinite(out).all()
    torch.testing.assert_close(out, ref(z))  # torch's per-dtype tolerances
    g = grad(z)
    assert g.dtype == dtype and torch.isfinite(g).all()
    torch.testing.assert_close(g, grad(z.double()).to(dtype))  # computed in float32, rounded once


@pytest.mark.parametrize(("fn", "grad", "ref"), CASES)
def test_analytic_derivative_matches_autograd(fn, grad, ref):
    z = grid().requires_grad_()
    (g_ref,) = torch.autograd.grad(ref(z).sum(), z)  # autograd through torch's own implementation
    torch.testing.assert_close(grad(z.detach()), g_ref, rtol=1e-12, atol=1e-12)
    (g_ours,) = torch.autograd.grad(fn(z).sum(), z)  # and through ours, kinks included
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-12, atol=1e-12)


@given(st.floats(-1e4, 1e4, allow_nan=False))
def test_sigmoid_derivative_is_at_most_a_quarter(x):
    z = torch.tensor([x], dtype=torch.float64)
    g = act.sigmoid_grad(z).item()
    assert 0.0 <= g <= 0.25
    s = act.sigmoid(z).item()
    assert g == pytest.approx(s * (1 - s), abs=1e-15)  # the FAQ's formula


def test_sigmoid_derivative_peaks_at_zero_and_vanishes_on_saturation(float64):
    assert act.sigmoid_grad(torch.tensor(0.0)).item() == 0.25
    z = torch.tensor([2.0, 5.0, 10.0, 20.0, 40.0])
    g = act.sigmoid_grad(z)
    assert (g[1:] < g[:-1]).all()  # strictly decreasing away from 0
    torch.testing.assert_close(g, act.sigmoid_grad(-z), rtol=0, atol=0)  # symmetric
    assert g[-1].item() < 1e-17 and act.sigmoid_grad(torch.tensor(1e4)).item() == 0.0


def test_sigmoid_and_tanh_keep_relative_precision_in_the_tails(float64):
    z = torch.tensor([-700.0, -40.0, 1e-12])
    torch.testing.assert_close(act.sigmoid(z[:2]), torch.exp(z[:2]) / (1 + torch.exp(z[:2])), rtol=1e-14, atol=0)
    assert act.tanh(z[2:]).item() == pytest.approx(1e-12, rel=1e-15)


def test_registry_and_get():
    expected = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "silu", "softplus"]
    assert sorted(expected) == NAMES
    entry = act.get("gelu")
    assert entry.fn is act.gelu and entry.grad is act.gelu_grad and entry.torch_module is nn.GELU
    fn, grad, module = act.get("relu")  # an entry unpacks as a plain tuple
    assert (fn, grad, module) == (act.relu, act.relu_grad, nn.ReLU)
    with pytest.raises(ValueError, match=r"'swish'.*Pick one"):
        act.get("swish")
    with pytest.raises(TypeError, match="a str"):
        act.get(3)


def test_bad_arguments_raise():
    z = torch.zeros(3)
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        act.relu([1.0])
    with pytest.raises(TypeError, match="floating-point"):
        act.sigmoid(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="approximate"):
        act.gelu(z, approximate="fast")
    with pytest.raises(ValueError, match="beta"):
        act.softplus(z, beta=0.0)
    with pytest.raises(TypeError, match="negative_slope"):
        act.leaky_relu(z, negative_slope="0.1")
    with pytest.raises(ValueError, match="alpha"):
        act.elu_grad(z, alpha=math.inf)


# ---- Maxout -----------------------------------------------------------------------------------------------


def test_maxout_shapes_and_is_the_max_of_its_pieces(float64):
    layer = act.Maxout(5, 3, pieces=4)
    assert layer.weight.shape == (3, 4, 5) and layer.bias.shape == (3, 4)
    x = torch.randn(2, 7, 5)
    out = layer(x)
    assert out.shape == (2, 7, 3)
    pieces = torch.einsum("bnd,ukd->bnuk", x, layer.weight) + layer.bias  # (B, N, U, k)
    torch.testing.assert_close(out, pieces.max(-1).values, rtol=1e-14, atol=1e-14)
    no_bias = act.Maxout(5, 3, pieces=2, bias=False)
    assert no_bias.bias is None and no_bias(x).shape == (2, 7, 3)
    assert "pieces=4" in repr(layer)


def test_maxout_represents_abs_exactly(float64):
    layer = act.Maxout(1, 1, pieces=2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[[1.0], [-1.0]]]))
        layer.bias.zero_()
    x = torch.linspace(-5, 5, 101).unsqueeze(-1)
    assert torch.equal(layer(x), x.abs())


def test_maxout_gradient_flows_to_the_winning_pieces(float64):
    layer = act.Maxout(4, 2, pieces=3)
    x = torch.randn(64, 4, requires_grad=True)
    layer(x).pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert layer.weight.grad.abs().sum() > 0 and layer.bias.grad.abs().sum() > 0
    assert torch.autograd.gradcheck(layer, (torch.randn(3, 4, requires_grad=True),))


def test_maxout_init_matches_linear_bound():
    layer = act.Maxout(64, 64, pieces=4, dtype=torch.float64)
    bound = 1 / math.sqrt(64)
    ref = nn.Linear(64, 64 * 4, dtype=torch.float64)  # torch's default init for the same fan-in
    assert layer.weight.abs().max() <= bound and ref.weight.abs().max() <= bound
    assert layer.weight.std().item() == pytest.approx(ref.weight.std().item(), rel=0.05)
    assert layer.bias.abs().max() <= bound and layer.weight.dtype == torch.float64


def test_maxout_bad_arguments_raise():
    with pytest.raises(ValueError, match="pieces"):
        act.Maxout(3, 2, pieces=0)
    with pytest.raises(TypeError, match="pieces"):
        act.Maxout(3, 2, pieces=2.0)
    with pytest.raises(ValueError, match="in_features"):
        act.Maxout(0, 2, pieces=2)
    layer = act.Maxout(3, 2, pieces=2)
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        layer([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=r"last dimension 3 \(in_features\)"):
        layer(torch.randn(4, 5))
