"""MNIST-1D's reference models (Greydanus & Kobak), shared by REF.mnist1d and CNN.a.

The four architectures of ``notebooks/models.py`` in github:greydanus/mnist1d, with the paper's parameter counts
(logistic regression 410, MLP 15,210, CNN 5,210, GRU 5,134 at the default sizes). Every model takes the flat
signal ``(N, 40)`` and returns logits ``(N, 10)``; the data come from :func:`deepbasics.data.mnist1d`. Not an
experiment module (the leading ``_`` keeps ``discover`` away).

Reference: Greydanus & Kobak, "Scaling down deep learning with MNIST-1D", ICML 2024 (arXiv:2011.14439).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BUILDERS", "CLASSES", "CNN", "GRU", "LENGTH", "MLP", "Logistic", "build"]

LENGTH, CLASSES = 40, 10


class Logistic(nn.Module):
    """Multinomial logistic regression ``logits = W x + b``: ``(N, 40) -> (N, 10)`` (the paper's LinearBase)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(LENGTH, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class MLP(nn.Module):
    """``h1 = relu(W1 x)``, ``h2 = h1 + relu(W2 h1)``, ``W3 h2``; ``(N, 40) -> (N, 10)`` (the paper's MLPBase)."""

    def __init__(self, hidden: int = 100) -> None:
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(LENGTH, hidden), nn.Linear(hidden, hidden)
        self.linear3 = nn.Linear(hidden, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear1(x).relu()  # (N, H)
        h = h + self.linear2(h).relu()  # (N, H): the reference model's second layer is residual
        return self.linear3(h)


class CNN(nn.Module):
    """Three stride-2 ``Conv1d`` + ReLU layers of ``channels`` maps, then a linear classifier (the paper's ConvBase).

    Lengths ``L_out = floor((L_in + 2 p - k) / s) + 1``: 40 -> 19 (k=5) -> 10 (k=3) -> 5 (k=3), so the classifier
    sees ``channels * 5`` features.
    """

    def __init__(self, channels: int = 25) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.linear = nn.Linear(channels * 5, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(1)  # (N, 40) -> (N, C=1, L=40)
        h = self.conv3(self.conv2(self.conv1(h).relu()).relu()).relu()  # (N, channels, 5)
        return self.linear(h.flatten(1))  # (N, channels * 5) -> (N, 10)


class GRU(nn.Module):
    """A bidirectional GRU over the 40 positions, all outputs flattened into a linear classifier (GRUBase).

    ``torch.nn.GRU`` (Cho et al. 2014), zero initial states as in the reference model.
    """

    def __init__(self, hidden: int = 6) -> None:
        super().__init__()
        self.gru = nn.GRU(input_size=1, hidden_size=hidden, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(2 * hidden * LENGTH, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x.unsqueeze(-1))  # (N, T=40, 1) -> (N, T, 2 H)
        return self.linear(out.flatten(1))  # (N, T * 2 H) -> (N, 10)


BUILDERS = {"logistic": Logistic, "mlp": MLP, "cnn": CNN, "gru": GRU}


def build(name: str, seed: int) -> nn.Module:
    """A reference model with its weights drawn from ``seed`` (torch's default layer initializations)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BUILDERS[name]()
