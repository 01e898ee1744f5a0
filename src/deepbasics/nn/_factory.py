"""Name -> module factories shared by the blocks and builders: activations and normalization layers.

Kept in one place so that every builder accepts the same names and rejects unknown ones with the same message.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from torch import nn

from .._checks import check_choice, fail
from .batchnorm import BatchNorm1d, BatchNorm2d
from .layernorm import GroupNorm, LayerNorm

__all__ = ["ACTIVATIONS", "NORMS", "make_activation", "make_norm"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
}

NORMS = (None, "batch", "layer")

ActivationSpec = str | nn.Module | Callable[[], nn.Module] | None


def make_activation(spec: ActivationSpec, name: str = "activation") -> nn.Module:
    """A fresh activation module from a name in :data:`ACTIVATIONS`, a module (copied), a zero-argument
    factory such as ``nn.Tanh`` or ``lambda: nn.LeakyReLU(0.2)``, or None (identity)."""
    if spec is None:
        return nn.Identity()
    if isinstance(spec, str):
        return ACTIVATIONS[check_choice(spec, name, ACTIVATIONS)]()
    if isinstance(spec, nn.Module):
        return copy.deepcopy(spec)  # one instance per layer, so hooks and names stay per layer
    if callable(spec):
        module = spec()
        if isinstance(module, nn.Module):
            return module
    raise fail(
        TypeError,
        name,
        f"one of {list(ACTIVATIONS)}, an nn.Module, a factory returning one, or None",
        type(spec).__name__,
        "Pass e.g. 'relu' or nn.Tanh.",
    )


def make_norm(kind: str | None, num_features: int, *, spatial: bool, name: str = "norm") -> nn.Module | None:
    """The normalization layer ``kind`` for ``num_features`` features/channels, or None for ``kind=None``.

    ``"batch"``: :class:`BatchNorm1d` (vectors) / :class:`BatchNorm2d` (images, ``spatial=True``).
    ``"layer"``: :class:`LayerNorm` over the features / :class:`GroupNorm` with one group for images (layer
    norm over (C, H, W), Wu & He 2018 section 3.1).
    """
    check_choice(kind, name, NORMS)
    if kind is None:
        return None
    if kind == "batch":
        return BatchNorm2d(num_features) if spatial else BatchNorm1d(num_features)
    return GroupNorm(1, num_features) if spatial else LayerNorm(num_features)
