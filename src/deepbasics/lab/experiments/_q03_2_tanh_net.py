"""Shared pieces of the Q3.2 experiments: a batched one-hidden-layer tanh regression net and its data.

Not an experiment module (the leading ``_`` keeps :func:`deepbasics.lab.experiments.discover` away).
"""

from __future__ import annotations

import torch

__all__ = ["net_data", "net_num_params", "tanh_net_loss"]


def tanh_net_loss(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, hidden: int) -> torch.Tensor:
    """Half mean squared error of ``tanh`` nets ``x -> w2 . tanh(W1 x + b1) + b2`` for each row of ``theta``.

    ``theta`` (G, P) holds ``W1 (H, D), b1 (H,), w2 (1, H), b2 (1,)`` flattened in that order, the order of
    ``deepbasics.nn.mlp([D, H, 1], "tanh").parameters()``; returns (G,).
    """
    g, d = theta.shape[0], x.shape[1]
    w1 = theta[:, : hidden * d].reshape(g, hidden, d)
    b1 = theta[:, hidden * d : hidden * (d + 1)]
    w2 = theta[:, hidden * (d + 1) : hidden * (d + 2)]
    b2 = theta[:, -1]
    h = torch.tanh(torch.einsum("ghd,nd->gnh", w1, x) + b1[:, None, :])  # (G, N, H)
    pred = (h * w2[:, None, :]).sum(-1) + b2[:, None]  # (G, N)
    return 0.5 * (pred - y).pow(2).mean(1)


def net_data(params: dict, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    from deepbasics import data

    x, y = data.teacher_student(
        params["net_samples"], params["net_in"], params["net_teacher"], params["net_noise"], g, dtype=torch.float64
    )
    return x, y[:, 0]  # (N, D), (N,)


def net_num_params(d: int, hidden: int) -> int:
    return hidden * (d + 2) + 1
