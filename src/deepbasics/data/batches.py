"""Seeded mini-batch loaders.

Mini-batch SGD visits the training set in a fresh random order every epoch (Bottou, Curtis & Nocedal,
"Optimization methods for large-scale machine learning", SIAM Review 2018, section 4). :func:`loader` builds a
:class:`torch.utils.data.DataLoader` whose order comes from its own seeded ``torch.Generator``, independent of
the global RNG (so dropout and weight initialization do not change the data order, and vice versa), and which
fetches a ``TensorDataset`` batch with one indexing operation instead of ``batch_size`` single-item lookups.
"""

from __future__ import annotations

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, TensorDataset

from .._checks import check_int, check_tensor, fail
from .augment import AugmentedDataset, Transform

__all__ = ["as_dataset", "loader"]


def as_dataset(data: object, name: str = "data") -> Dataset:
    """Return ``data`` as a map-style ``Dataset``: a dataset unchanged, an ``(inputs, targets)`` pair as a
    ``TensorDataset``. Empty data raise ``ValueError``."""
    if isinstance(data, tuple | list) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        inputs = check_tensor(data[0], f"{name}[0] (inputs)", min_dim=1)
        targets = check_tensor(data[1], f"{name}[1] (targets)", min_dim=1)
        if len(inputs) != len(targets):
            raise fail(
                ValueError,
                name,
                "inputs and targets with the same first dimension",
                f"{len(inputs)} and {len(targets)}",
                "Pass one target per example.",
            )
        data = TensorDataset(inputs, targets)
    if not isinstance(data, Dataset) or not hasattr(data, "__len__"):
        raise fail(
            TypeError,
            name,
            "a map-style Dataset or an (inputs, targets) pair of tensors",
            type(data).__name__,
            "Wrap your tensors as (inputs, targets) or in a TensorDataset.",
        )
    if len(data) == 0:  # type: ignore[arg-type]
        raise fail(ValueError, name, "a non-empty dataset", "0 examples", "Check how the dataset was built.")
    return data


def _batch_indexable(ds: Dataset) -> bool:
    while isinstance(ds, AugmentedDataset):
        ds = ds.dataset
    return isinstance(ds, TensorDataset)


def loader(
    dataset: Dataset | tuple[torch.Tensor, torch.Tensor],
    batch_size: int | None = 32,
    shuffle: bool = True,
    seed: int = 0,
    *,
    drop_last: bool = False,
    transform: Transform | None = None,
) -> DataLoader:
    """A reproducible ``DataLoader`` over ``dataset``.

    Args:
        dataset: a map-style dataset or an ``(inputs, targets)`` pair of tensors.
        batch_size: examples per batch; ``None`` gives one full batch (full-batch gradient descent).
        shuffle: draw a new permutation every epoch from a ``torch.Generator`` seeded with ``seed``.
        drop_last: drop the final incomplete batch.
        transform: applied to each batch's inputs (wraps the dataset in an
            :class:`~deepbasics.data.augment.AugmentedDataset`); use only for training data.

    Same ``seed`` -> same batches, whatever the global RNG does. For ``TensorDataset``\\ s each batch is fetched
    with one ``dataset[list_of_indices]`` call (``batch_size=None`` in the DataLoader, a ``BatchSampler`` as
    sampler), so a transform sees whole batches.
    """
    ds = as_dataset(dataset, "dataset")
    n = len(ds)  # type: ignore[arg-type]
    size = n if batch_size is None else check_int(batch_size, "batch_size", low=1)
    seed = check_int(seed, "seed", low=0)
    if transform is not None:
        ds = AugmentedDataset(ds, transform)
    generator = torch.Generator().manual_seed(seed)
    if _batch_indexable(ds):
        base = RandomSampler(ds, generator=generator) if shuffle else SequentialSampler(ds)
        sampler = BatchSampler(base, batch_size=size, drop_last=drop_last)
        return DataLoader(ds, batch_size=None, sampler=sampler, generator=generator)
    return DataLoader(ds, batch_size=size, shuffle=shuffle, drop_last=drop_last, generator=generator)
