"""Shared workloads and timer for the overhead benchmarks (probe, doctor, DDP).

The same two small real-data models everywhere, so the ratios the scripts print are comparable: scikit-learn's
bundled 8x8 digits (1797 images, 10 classes), an MLP 64-256-256-10 with ReLU and a CNN
Conv(1->16, 3x3)-ReLU-Conv(16->32, 3x3)-ReLU-MaxPool(2)-Linear(512->10).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from sklearn.datasets import load_digits
from torch import nn


def digits(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The digits as (N, 64) floats in [0, 1] and (N,) labels on ``device``."""
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32, device=device) / 16.0  # (N, 64) in [0, 1]
    y = torch.tensor(data.target, dtype=torch.long, device=device)
    return x, y


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),  # (B, 64) -> (B, 1, 8, 8)
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # (B, 32, 4, 4)
        nn.Flatten(),  # (B, 512)
        nn.Linear(512, 10),
    )


def time_block(step: Callable[[int], None], steps: int, sync: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per step over ``steps`` consecutive training steps."""
    sync()
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(steps):
        step(i)
    sync()
    return (time.perf_counter() - w0) / steps, (time.process_time() - c0) / steps
