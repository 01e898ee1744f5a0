"""Batch-independent normalization: layer norm (Ba et al. 2016) and group norm (Wu & He 2018).

Both normalize each sample on its own, so they behave identically in training and evaluation, with any
batch size (even 1) and at every time step of a recurrent network: the FAQ's answer (Q14.d, Q14.e) to batch
norm's dependence on the batch. For one sample and a group ``S`` of ``m`` of its values:

    mu      = (1/m) sum_{i in S} x_i
    sigma^2 = (1/m) sum_{i in S} (x_i - mu)^2
    x_hat_i = (x_i - mu) / sqrt(sigma^2 + eps)
    y_i     = gamma_i x_hat_i + beta_i

- :class:`LayerNorm`: ``S`` = the trailing ``normalized_shape`` dimensions; gamma, beta have that shape
  (one per normalized element). Reference: J. L. Ba, J. R. Kiros, G. E. Hinton, "Layer Normalization",
  arXiv:1607.06450, 2016, section 3 (eq. 4).
- :class:`GroupNorm`: ``S`` = one of ``num_groups`` groups of ``C / num_groups`` consecutive channels and
  all their positions; gamma, beta are per channel (C,). One group = layer norm over (C, *); C groups =
  instance norm. Reference: Y. Wu and K. He, "Group Normalization", ECCV 2018, section 3 (eqs. 1-3, 6).

Gradients come from autograd through these plain ops. The variance is the two-pass form of
:func:`deepbasics.nn._stats.moments` (never negative; 16-bit inputs reduced in float32). Arguments,
parameter and attribute names are those of ``torch.nn.LayerNorm`` / ``torch.nn.GroupNorm``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._checks import check_int, check_positive, check_tensor, fail
from ._stats import inverse_std, moments

__all__ = ["GroupNorm", "LayerNorm", "group_norm", "layer_norm"]


def layer_norm(
    x: torch.Tensor,
    normalized_shape: Sequence[int],
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Layer norm over the trailing ``len(normalized_shape)`` dimensions of ``x`` (module docstring).

    ``x`` (*, *normalized_shape); ``weight``, ``bias`` of shape ``normalized_shape`` or None. Returns a tensor
    shaped like ``x``.
    """
    normalized_shape = tuple(normalized_shape)
    k = len(normalized_shape)
    if x.dim() < k or tuple(x.shape[x.dim() - k :]) != normalized_shape:
        raise fail(
            ValueError,
            "LayerNorm",
            f"an input whose trailing dimensions are normalized_shape={list(normalized_shape)}",
            f"shape {tuple(x.shape)}",
            "Pass normalized_shape equal to the last dimensions of the input (e.g. the feature size).",
        )
    _, var, centered = moments(x, tuple(range(x.dim() - k, x.dim())))  # stats (*, 1, ..., 1)
    y = centered * inverse_std(var, eps)  # x_hat, (*, *normalized_shape)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y.to(x.dtype)


def group_norm(
    x: torch.Tensor,
    num_groups: int,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Group norm of ``x`` (N, C, *) with ``num_groups`` groups of consecutive channels (module docstring).

    ``weight``, ``bias`` (C,) or None. Returns a tensor shaped like ``x``.
    """
    n, c = x.shape[0], x.shape[1]
    grouped = x.reshape(n, num_groups, -1)  # (N, G, C/G * prod(*))
    _, var, centered = moments(grouped, (2,))  # stats (N, G, 1)
    y = (centered * inverse_std(var, eps)).reshape(x.shape)  # x_hat, (N, C, *)
    per_channel = (1, c, *([1] * (x.dim() - 2)))  # (1, C, 1, ...) broadcasts over N and positions
    if weight is not None:
        y = y * weight.view(per_channel)
    if bias is not None:
        y = y + bias.view(per_channel)
    return y.to(x.dtype)


class LayerNorm(nn.Module):
    """Layer normalization over the last dimensions, as ``torch.nn.LayerNorm`` (Ba et al. 2016, eq. 4).

    Args:
        normalized_shape: int or tuple; the trailing input dimensions to normalize over (e.g. ``hidden``).
        eps: added to the variance under the square root (1e-5).
        elementwise_affine: learn ``weight`` (gamma, init 1) and ``bias`` (beta, init 0) of shape
            ``normalized_shape`` (True).
        bias: learn ``bias`` too (True); ``bias=False`` keeps gamma only.

    Input (*, *normalized_shape) -> output of the same shape. Formula: module docstring.
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if not shape:
            raise fail(ValueError, "normalized_shape", "at least one dimension", "()", "Pass e.g. the feature size.")
        self.normalized_shape = tuple(check_int(s, "normalized_shape", low=1) for s in shape)
        self.eps = check_positive(eps, "eps")
        self.elementwise_affine = bool(elementwise_affine)
        if self.elementwise_affine:
            self.weight = nn.Parameter(torch.empty(self.normalized_shape, **factory))
            if bias:
                self.bias = nn.Parameter(torch.empty(self.normalized_shape, **factory))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """gamma = 1, beta = 0."""
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Normalize each ``input[..., :]`` over the ``normalized_shape`` dimensions."""
        check_tensor(input, "input", floating=True)
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(nn.Module):
    """Group normalization, as ``torch.nn.GroupNorm`` (Wu & He 2018, section 3).

    Args:
        num_groups: G, the number of groups the channels are split into (consecutive channels per group).
        num_channels: C, must be divisible by G.
        eps: added to the variance under the square root (1e-5).
        affine: learn per-channel ``weight`` (gamma, init 1) and ``bias`` (beta, init 0) of shape (C,) (True).
        bias: keyword; with ``affine``, learn beta too (True); ``bias=False`` keeps gamma only.

    Input (N, C, *) -> output of the same shape. Statistics are per sample and group, so the result does not
    depend on the batch size. Formula: module docstring.
    """

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.num_groups = check_int(num_groups, "num_groups", low=1)
        self.num_channels = check_int(num_channels, "num_channels", low=1)
        if num_channels % num_groups:
            divisors = [g for g in range(1, num_channels + 1) if num_channels % g == 0]
            raise fail(
                ValueError,
                "GroupNorm",
                "num_channels divisible by num_groups",
                f"num_channels={num_channels}, num_groups={num_groups}",
                f"Choose num_groups among the divisors of {num_channels}: {divisors}.",
            )
        self.eps = check_positive(eps, "eps")
        self.affine = bool(affine)
        if self.affine:
            self.weight = nn.Parameter(torch.empty(num_channels, **factory))
            if bias:
                self.bias = nn.Parameter(torch.empty(num_channels, **factory))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """gamma = 1, beta = 0."""
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Normalize each sample's channel groups of ``input`` (N, C, *)."""
        check_tensor(input, "input", floating=True, min_dim=2)
        if input.shape[1] != self.num_channels:
            raise fail(
                ValueError,
                "GroupNorm",
                f"{self.num_channels} channels in dimension 1 (num_channels)",
                f"input of shape {tuple(input.shape)}",
                "Pass the input's channel count as num_channels, or move channels to dimension 1.",
            )
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
            f"bias={self.bias is not None}"
        )
