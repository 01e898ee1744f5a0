"""Shared pieces of the Q1 experiments: the digits with a pooled held-out split.

Not an experiment module (the leading ``_`` keeps :func:`deepbasics.lab.experiments.discover` away).
"""

from __future__ import annotations

import torch

__all__ = ["held_out_digits"]


def held_out_digits(seed: int, train_size: int | None = None) -> tuple[torch.Tensor, ...]:
    """Standardized digits: train inputs/labels, and the validation + test splits pooled as held-out data."""
    from deepbasics import data

    splits = data.digits(seed=seed, train_size=train_size, dtype=torch.float32)
    x, y = splits.tensors("train")
    xv, yv = splits.tensors("val")
    xt, yt = splits.tensors("test")
    return x, y, torch.cat([xv, xt]), torch.cat([yv, yt])  # (N, 64), (N,), (M, 64), (M,)
