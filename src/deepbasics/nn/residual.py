"""Residual blocks (He et al. 2016): learn a correction f(x) to the identity instead of a whole mapping.

    y = x + f(x)

The identity path carries the signal forwards and the gradient backwards unchanged,
``dL/dx = dL/dy (I + df/dx)``, so stacking blocks does not multiply the gradient by a product of layer
Jacobians (the FAQ's Q3.3.i: skip connections mitigate vanishing gradients).

- :class:`ResidualBlock` (vectors, width W): ``f(x) = W_2 act(norm(W_1 x + b_1)) + b_2`` and ``y = x + f(x)``
  with nothing after the addition, the "full pre-activation"-style identity path of He et al. 2016b, so
  that a stack of blocks has a clean identity path from input to output.
- :class:`ConvResidualBlock` (images, C channels): the basic block of He et al. 2016 (Fig. 2), two
  ``k x k`` convolutions with "same" padding,
  ``y = act(x + norm_2(conv_2(act(norm_1(conv_1(x))))))``.

References: K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
sections 3.1-3.3 and Fig. 2; "Identity Mappings in Deep Residual Networks", ECCV 2016 (2016b), section 3.
"""

from __future__ import annotations

from torch import Tensor, nn

from .._checks import check_int, check_tensor, fail
from ._factory import ActivationSpec, make_activation, make_norm

__all__ = ["ConvResidualBlock", "ResidualBlock"]


class ResidualBlock(nn.Module):
    """``y = x + W_2 act(norm(W_1 x + b_1)) + b_2`` on (*, width) inputs (module docstring).

    Args:
        width: W, the feature size of input and output (a block keeps it, so the sum is defined).
        activation: a name from ``deepbasics.nn._factory.ACTIVATIONS`` ("relu"), a module, or a factory.
        norm: None, "batch" (:class:`BatchNorm1d`, inputs (N, W)) or "layer" (:class:`LayerNorm`).

    Submodules ``linear1``, ``norm1`` (Identity if none), ``act1``, ``linear2``.
    Reference: He et al. 2016, section 3.2 (eq. 1); He et al. 2016b, section 3 (identity path).
    """

    def __init__(self, width: int, activation: ActivationSpec = "relu", norm: str | None = None) -> None:
        super().__init__()
        self.width = check_int(width, "width", low=1)
        self.linear1 = nn.Linear(width, width)
        self.norm1 = make_norm(norm, width, spatial=False) or nn.Identity()
        self.act1 = make_activation(activation)
        self.linear2 = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        """``x + f(x)``; ``x`` (*, width)."""
        check_tensor(x, "x", floating=True)
        if x.shape[-1] != self.width:
            raise fail(
                ValueError,
                "ResidualBlock",
                f"inputs with {self.width} features in the last dimension (width)",
                f"shape {tuple(x.shape)}",
                "A residual block keeps the width; project the input first (e.g. nn.Linear(in, width)).",
            )
        return x + self.linear2(self.act1(self.norm1(self.linear1(x))))

    def extra_repr(self) -> str:
        return f"width={self.width}"


class ConvResidualBlock(nn.Module):
    """He et al.'s basic block on (N, C, H, W): ``y = act(x + norm2(conv2(act(norm1(conv1(x))))))``.

    Args:
        channels: C, kept by the block.
        kernel_size: odd k (3); padding ``k // 2`` keeps H and W.
        norm: "batch" (:class:`BatchNorm2d`, default as in the paper), "layer" (:class:`GroupNorm` with one
            group) or None (then the convolutions get biases).
        activation: as :class:`ResidualBlock` ("relu").

    Submodules ``conv1``, ``norm1``, ``act1``, ``conv2``, ``norm2``, ``act2``.
    Reference: He et al. 2016, section 3.3 and Fig. 2 (left).
    """

    def __init__(
        self, channels: int, kernel_size: int = 3, norm: str | None = "batch", activation: ActivationSpec = "relu"
    ) -> None:
        super().__init__()
        self.channels = check_int(channels, "channels", low=1)
        check_int(kernel_size, "kernel_size", low=1)
        if kernel_size % 2 == 0:
            raise fail(
                ValueError, "kernel_size", "an odd size (so padding keeps H and W)", kernel_size, "Use 1, 3, 5, ..."
            )
        bias = norm is None  # a norm's beta makes a conv bias redundant
        self.conv1 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.norm1 = make_norm(norm, channels, spatial=True) or nn.Identity()
        self.act1 = make_activation(activation)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.norm2 = make_norm(norm, channels, spatial=True) or nn.Identity()
        self.act2 = make_activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        """``act(x + F(x))``; ``x`` (N, C, H, W) -> (N, C, H, W)."""
        check_tensor(x, "x", floating=True)
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise fail(
                ValueError,
                "ConvResidualBlock",
                f"a (N, {self.channels}, H, W) input",
                f"shape {tuple(x.shape)}",
                "Pass images with channels in dimension 1 and as many channels as the block was built with.",
            )
        f = self.norm2(self.conv2(self.act1(self.norm1(self.conv1(x)))))
        return self.act2(x + f)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"
