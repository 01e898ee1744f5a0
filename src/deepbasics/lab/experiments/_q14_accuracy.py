"""Shared piece of the Q14 experiments: accuracy in eval mode.

Not an experiment module (the leading ``_`` keeps :func:`deepbasics.lab.experiments.discover` away).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["eval_accuracy"]


def eval_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy in eval mode (running statistics for BN); the model's mode is restored."""
    was = model.training
    model.eval()
    with torch.no_grad():
        acc = float((model(x).argmax(-1) == y).float().mean())
    model.train(was)
    return acc
