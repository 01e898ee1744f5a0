"""Embedded datasets: scikit-learn's bundled real data, synthetic tasks, sequence-memory tasks, augmentation.

- :mod:`.tabular`: :func:`digits`, :func:`breast_cancer`, :func:`wine`, :func:`iris` -> :class:`Splits`
- :mod:`.splits`: :class:`Splits`, :class:`Standardizer`, :func:`make_splits`, :func:`split_indices`
- :mod:`.synthetic`: :func:`circles`, :func:`blobs`, :func:`teacher_student`
- :mod:`.sequences`: :func:`adding_problem`, :func:`copy_task`, :func:`copy_task_baseline`
- :mod:`.augment`: :func:`shift`, :func:`rotate`, :class:`RandomShift`, :class:`RandomRotation`,
  :class:`GaussianNoise`, :class:`Compose`, :class:`AugmentedDataset`
- :mod:`.mnist1d`: :func:`mnist1d` (Greydanus & Kobak's MNIST-1D, generated locally and cached)
- :mod:`.batches`: :func:`loader` (seeded DataLoader), :func:`as_dataset`

Nothing here downloads anything.
"""

from __future__ import annotations

from .augment import AugmentedDataset, Compose, GaussianNoise, RandomRotation, RandomShift, rotate, shift
from .batches import as_dataset, loader
from .mnist1d_dataset import mnist1d
from .sequences import ADDING_BASELINE_MSE, adding_problem, copy_task, copy_task_baseline
from .splits import Splits, Standardizer, make_splits, split_indices
from .synthetic import blobs, circles, teacher_student
from .tabular import breast_cancer, digits, iris, wine

__all__ = [
    "ADDING_BASELINE_MSE",
    "AugmentedDataset",
    "Compose",
    "GaussianNoise",
    "RandomRotation",
    "RandomShift",
    "Splits",
    "Standardizer",
    "adding_problem",
    "as_dataset",
    "blobs",
    "breast_cancer",
    "circles",
    "copy_task",
    "copy_task_baseline",
    "digits",
    "iris",
    "loader",
    "make_splits",
    "mnist1d",
    "rotate",
    "shift",
    "split_indices",
    "teacher_student",
    "wine",
]
