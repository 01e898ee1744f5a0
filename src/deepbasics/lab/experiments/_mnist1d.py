"""MNIST-1D for the lab's experiments, generated locally by the ``mnist1d`` package (Greydanus & Kobak 2020).

# TODO(lead): replace with deepbasics.data.mnist1d when merged

The dataset's own defaults (``get_dataset_args()``: 5,000 signals of 40 points, seed 42, 80/20 split) give the
standard 4,000 / 1,000 split of the paper's table; ``shuffled=True`` applies its ``shuffle_seq`` option, one
fixed random permutation of the 40 positions (the paper's "shuffled" column). Nothing is downloaded: only
``make_dataset`` is called. Not an experiment module (the leading ``_`` keeps ``discover`` away).

Reference: Greydanus & Kobak, "Scaling down deep learning with MNIST-1D", ICML 2024 (arXiv:2011.14439).
"""

from __future__ import annotations

import functools
import random

import numpy as np
import torch

__all__ = ["mnist1d", "mnist1d_cnn"]


@functools.lru_cache(maxsize=2)
def _generate(shuffled: bool) -> tuple[np.ndarray, ...]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.shuffle_seq = shuffled
    state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002 - the legacy global state it reseeds
    try:  # make_dataset reseeds the global generators (seed 42): keep the experiment's own streams intact
        data = make_dataset(args)
    finally:
        np.random.set_state(state)  # noqa: NPY002
        random.setstate(py_state)
    return data["x"], data["y"], data["x_test"], data["y_test"]


def mnist1d(shuffled: bool = False, train_size: int | None = None) -> tuple[torch.Tensor, ...]:
    """``(x, y, x_test, y_test)``: float32 signals (N, 40) (centred, unit variance) and int64 labels (N,).

    ``train_size`` keeps the first that many training signals (the generator already shuffled them).
    """
    x, y, xt, yt = _generate(bool(shuffled))
    n = len(x) if train_size is None else int(train_size)
    return (
        torch.tensor(x[:n], dtype=torch.float32),
        torch.tensor(y[:n], dtype=torch.int64),
        torch.tensor(xt, dtype=torch.float32),
        torch.tensor(yt, dtype=torch.int64),
    )


def mnist1d_cnn(channels: int, length: int = 40, num_classes: int = 10) -> torch.nn.Sequential:
    """The paper's ``ConvBase``: three ReLU convolutions (kernel 5 stride 2, then 3 and 3 stride 2, padding 1)
    of ``channels`` each, flattened into a linear classifier. With 25 channels: 5,210 parameters.

    Lengths: 40 -> 19 -> 10 -> 5, so the classifier reads ``5 * channels`` features. Input (N, 1, length).
    """
    nn = torch.nn
    out = length
    for kernel in (5, 3, 3):
        out = (out + 2 - kernel) // 2 + 1  # (L + 2 p - k) // s + 1
    return nn.Sequential(
        nn.Conv1d(1, channels, 5, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(channels * out, num_classes),
    )
