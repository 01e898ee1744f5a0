"""Shared pieces of the Q13 experiments: a digits MLP and every example's gradient in one backward pass.

Not an experiment module (the leading ``_`` keeps :func:`deepbasics.lab.experiments.discover` away).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["digits_mlp", "per_example_gradients"]


def digits_mlp(hidden: list[int], seed: int) -> nn.Module:
    """``mlp([64, *hidden, 10])`` (ReLU), initialized from ``seed``."""
    from deepbasics import nn as dnn

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return dnn.mlp([64, *hidden, 10])


def per_example_gradients(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Row n is the flattened gradient of example n's cross-entropy: (N, P), in parameter order.

    For a ``Sequential`` of ``Linear`` layers and parameter-free layers, the gradient of ``W`` for example n is the
    outer product ``delta_n a_n^T`` of the gradient at the layer's output and its input (and ``delta_n`` for the
    bias), so one backward pass of the summed loss gives all N of them (Goodfellow, "Efficient per-example
    gradient computations", arXiv:1510.01799, 2015). Tested against ``torch.func.vmap(grad)``.
    """
    inputs, outputs = [], []
    h = x  # (N, D_0)
    for layer in model:
        if isinstance(layer, nn.Linear):
            inputs.append(h)
            h = layer(h)  # (N, D_out)
            outputs.append(h)
        elif any(True for _ in layer.parameters()):
            raise TypeError(f"per-example gradients: expected Linear or parameter-free layers, got {layer!r}.")
        else:
            h = layer(h)
    loss = nn.functional.cross_entropy(h, y, reduction="sum")  # sum: each example's own gradient, unscaled
    deltas = torch.autograd.grad(loss, outputs)  # each (N, D_out)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    rows = []
    for layer, a, d in zip(linears, inputs, deltas, strict=True):
        rows.append(torch.einsum("no,ni->noi", d, a.detach()).reshape(len(x), -1))  # (N, D_out * D_in), as W
        if layer.bias is not None:
            rows.append(d)  # (N, D_out)
    return torch.cat(rows, dim=1)  # (N, P)
