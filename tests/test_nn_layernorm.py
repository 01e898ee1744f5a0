"""deepbasics.nn.layernorm (LayerNorm, GroupNorm) against torch.nn.LayerNorm/GroupNorm in float64."""

from __future__ import annotations

import inspect

import pytest
import torch

from deepbasics.nn import GroupNorm, LayerNorm

TOL = {"atol": 1e-10, "rtol": 1e-10}


def _randomize_affine(module):
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()


def _compare(ours, theirs, x):
    """Outputs, input grads and parameter grads of two modules with the same state on the same input."""
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), theirs(xb)
    torch.testing.assert_close(ya, yb, **TOL)
    dy = torch.randn_like(ya)
    ya.backward(dy)
    yb.backward(dy)
    torch.testing.assert_close(xa.grad, xb.grad, **TOL)
    for (na, pa), (nb, pb) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        assert na == nb
        torch.testing.assert_close(pa.grad, pb.grad, **TOL)


@pytest.mark.parametrize(
    ("normalized_shape", "input_shape"), [(6, (4, 6)), ((6,), (3, 2, 6)), ((3, 4), (5, 3, 4)), (5, (5,))]
)
@pytest.mark.parametrize(("elementwise_affine", "bias"), [(True, True), (True, False), (False, True)])
def test_layernorm_matches_torch(float64, normalized_shape, input_shape, elementwise_affine, bias):
    theirs = torch.nn.LayerNorm(normalized_shape, elementwise_affine=elementwise_affine, bias=bias)
    _randomize_affine(theirs)
    ours = LayerNorm(normalized_shape, elementwise_affine=elementwise_affine, bias=bias)
    ours.load_state_dict(theirs.state_dict())
    assert ours.normalized_shape == theirs.normalized_shape
    _compare(ours, theirs, torch.randn(input_shape) * 4 + 1)
    theirs.load_state_dict(ours.state_dict())  # and back


@pytest.mark.parametrize("num_groups", [1, 2, 6])
@pytest.mark.parametrize("shape", [(3, 6), (3, 6, 5), (2, 6, 3, 4)])
@pytest.mark.parametrize("affine", [{"affine": True}, {"affine": False}, {"bias": False}], ids=str)
def test_groupnorm_matches_torch(float64, num_groups, shape, affine):
    if "bias" in affine and "bias" not in inspect.signature(torch.nn.GroupNorm).parameters:
        pytest.skip("this torch's GroupNorm has no bias argument (added in a recent release)")
    theirs = torch.nn.GroupNorm(num_groups, 6, **affine)
    _randomize_affine(theirs)
    ours = GroupNorm(num_groups, 6, **affine)
    ours.load_state_dict(theirs.state_dict())
    _compare(ours, theirs, torch.randn(shape) * 3 - 2)


def test_groupnorm_is_batch_independent_and_one_group_is_layernorm_over_c_h_w(float64):
    gn = GroupNorm(2, 4)
    x = torch.randn(5, 4, 3, 3)
    torch.testing.assert_close(gn(x)[2:3], gn(x[2:3]), **TOL)  # a sample's output ignores the others
    one_group = GroupNorm(1, 4, affine=False)
    torch.testing.assert_close(one_group(x), LayerNorm((4, 3, 3), elementwise_affine=False)(x), **TOL)


def test_constant_and_offset_inputs_stay_finite():
    """Two-pass variance: a huge common offset neither turns the variance negative nor produces nan."""
    x = torch.full((2, 8), 3e4) + torch.linspace(0, 1e-3, 8)
    for module in (LayerNorm(8), GroupNorm(2, 8)):
        y = module(x if isinstance(module, LayerNorm) else x.view(2, 8, 1))
        assert torch.isfinite(y).all()
    assert torch.equal(LayerNorm(8)(torch.full((2, 8), 7.0)), torch.zeros(2, 8))


def test_bad_arguments_raise_clearly():
    with pytest.raises(ValueError, match="num_channels divisible by num_groups"):
        GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"divisors of 6: \[1, 2, 3, 6\]"):
        GroupNorm(4, 6)
    with pytest.raises(ValueError, match="6 channels in dimension 1"):
        GroupNorm(2, 6)(torch.randn(3, 4, 2))
    with pytest.raises(ValueError, match=r"trailing dimensions are normalized_shape=\[5\]"):
        LayerNorm(5)(torch.randn(3, 4))
    with pytest.raises(ValueError, match="normalized_shape"):
        LayerNorm(())
    with pytest.raises(ValueError, match="eps"):
        LayerNorm(3, eps=-1.0)
    with pytest.raises(TypeError, match="num_groups"):
        GroupNorm(2.0, 6)
    with pytest.raises(TypeError, match="floating-point"):
        GroupNorm(2, 4)(torch.ones(2, 4, dtype=torch.long))


@pytest.mark.parametrize(("ours", "theirs"), [(LayerNorm, torch.nn.LayerNorm), (GroupNorm, torch.nn.GroupNorm)])
def test_constructor_signature_matches_torch(ours, theirs):
    """Torch's constructor arguments, order and defaults (an older torch may lack newer keyword-only ones)."""

    def params(cls):
        return [(p.name, p.default, p.kind) for p in inspect.signature(cls.__init__).parameters.values()]

    assert params(ours)[: len(params(theirs))] == params(theirs)
    assert all(kind == inspect.Parameter.KEYWORD_ONLY for _, _, kind in params(ours)[len(params(theirs)) :])
