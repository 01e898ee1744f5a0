"""Shared pieces of the CNN experiments: the 8x8 digit images, a seeded Adam fit, test accuracy.

Not an experiment module (the leading ``_`` keeps :func:`deepbasics.lab.experiments.discover` away).
"""

from __future__ import annotations

import torch

__all__ = ["digit_images", "fit_adam", "test_accuracy"]


def digit_images(seed: int, train_size: int | None):
    """Standardized 8x8 digit images ``(splits, x, y, x_test, y_test)``, ``x`` (N, 1, 8, 8), for ``seed``."""
    from deepbasics import data

    splits = data.digits(as_images=True, seed=seed, train_size=train_size, dtype=torch.float32)
    return splits, *splits.tensors("train"), *splits.tensors("test")


def fit_adam(model, train_data, *, epochs: int, lr: float, batch_size: int, seed: int) -> None:
    """Mini-batch Adam (deepbasics.optim) on cross-entropy with :func:`deepbasics.train.fit`, seeded order.

    ``train_data``: ``(inputs, targets)`` or a DataLoader (e.g. one that augments every batch).
    """
    from deepbasics import losses, optim, train

    train.fit(
        model,
        losses.cross_entropy,
        optim.Adam(model.parameters(), lr=lr),
        train_data,
        epochs=epochs,
        batch_size=batch_size,
        generator=torch.Generator().manual_seed(seed),
    )


@torch.no_grad()
def test_accuracy(model, x, y) -> float:
    from deepbasics import train

    model.eval()
    return float(train.accuracy(model(x), y))
