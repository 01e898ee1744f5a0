"""deepbasics.nn.residual: the block equations written out with torch.nn.functional, identity path, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deepbasics.nn import BatchNorm2d, ConvResidualBlock, LayerNorm, ResidualBlock


def test_mlp_block_is_x_plus_f_of_x(float64):
    block = ResidualBlock(6, activation="tanh")
    x = torch.randn(4, 6)
    f = F.linear(torch.tanh(F.linear(x, block.linear1.weight, block.linear1.bias)), block.linear2.weight)
    torch.testing.assert_close(block(x), x + f + block.linear2.bias, atol=1e-12, rtol=0)


def test_zero_residual_branch_gives_identity_and_identity_gradient(float64):
    block = ResidualBlock(5, norm="layer")
    with torch.no_grad():
        block.linear2.weight.zero_()
        block.linear2.bias.zero_()
    x = torch.randn(3, 5, requires_grad=True)
    y = block(x)
    torch.testing.assert_close(y, x, atol=0, rtol=0)
    dy = torch.randn(3, 5)
    y.backward(dy)
    torch.testing.assert_close(x.grad, dy, atol=0, rtol=0)  # dL/dx = dL/dy (I + df/dx), df/dx = 0 here
    assert isinstance(block.norm1, LayerNorm)


@pytest.mark.parametrize("norm", ["batch", "layer", None])
def test_conv_block_follows_he_et_al_figure_2(float64, norm):
    block = ConvResidualBlock(3, kernel_size=3, norm=norm)
    x = torch.randn(2, 3, 5, 5)
    y = block(x)
    assert y.shape == x.shape
    assert (block.conv1.bias is None) == (norm is not None)
    if norm == "batch":
        assert isinstance(block.norm1, BatchNorm2d)
    b1 = block.conv1.bias
    b2 = block.conv2.bias
    z = F.conv2d(x, block.conv1.weight, b1, padding=1)
    z = F.relu(block.norm1(z))
    z = block.norm2(F.conv2d(z, block.conv2.weight, b2, padding=1))
    torch.testing.assert_close(y, F.relu(x + z), atol=1e-12, rtol=0)


def test_bad_arguments_raise_clearly():
    with pytest.raises(ValueError, match="odd size"):
        ConvResidualBlock(4, kernel_size=2)
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\)"):
        ConvResidualBlock(4)(torch.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match="6 features in the last dimension"):
        ResidualBlock(6)(torch.randn(2, 5))
    with pytest.raises(ValueError, match="norm"):
        ResidualBlock(6, norm="instance")
    with pytest.raises(ValueError, match="activation"):
        ResidualBlock(6, activation="swishy")
