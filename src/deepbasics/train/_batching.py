r"""Internal: turn the data given to fit/evaluate into batches on the training device.

``(inputs, targets)`` pairs and ``TensorDataset``\ s are moved to the device once and cut into batches by
indexing (a random permutation per epoch from a seeded ``torch.Generator``); a ``DataLoader`` is used as is and
its batches are moved per step. :func:`find_generators` lists the random streams a loader draws from, so that
checkpoints can save and restore them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .._checks import fail

__all__ = ["TensorBatches", "as_batches", "find_generators", "model_device", "sum_dtype", "unpack"]

# Generators are looked for under these attributes of a DataLoader (samplers, augmentation transforms).
GENERATOR_ATTRS = ("generator", "sampler", "batch_sampler", "dataset", "transform", "transforms", "collate_fn")


class TensorBatches:
    """Mini-batches of an in-memory ``(inputs, targets)`` pair, shuffled by ``generator``, already on device."""

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        batch_size: int | None,
        shuffle: bool,
        g: torch.Generator | None,
    ):
        if shuffle and g is None:
            g = torch.Generator()
        self.inputs, self.targets, self.generator = inputs, targets, g
        self.n = len(inputs)
        self.batch_size = self.n if batch_size is None else min(batch_size, self.n)
        self.shuffle = shuffle and self.batch_size < self.n  # a full batch's order does not change its mean

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not self.shuffle:
            for i in range(0, self.n, self.batch_size):
                yield self.inputs[i : i + self.batch_size], self.targets[i : i + self.batch_size]
            return
        g = self.generator
        perm = torch.randperm(self.n, generator=g, device=g.device).to(self.inputs.device)
        for i in range(0, self.n, self.batch_size):
            idx = perm[i : i + self.batch_size]
            yield self.inputs[idx], self.targets[idx]


def as_batches(
    data: object,
    name: str,
    batch_size: int | None,
    shuffle: bool,
    generator: torch.Generator | None,
    device: torch.device,
) -> Iterable:
    """A re-iterable of ``(inputs, targets)`` batches: a DataLoader as is, tensors as :class:`TensorBatches`,
    any other map-style Dataset through a DataLoader (``batch_size=None``: one full batch)."""
    if isinstance(data, DataLoader | TensorBatches):
        return data
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        data = data.tensors
    if isinstance(data, tuple | list) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
        if len(x) == 0 or len(x) != len(y):
            raise fail(
                ValueError, name, "non-empty inputs and targets of equal length", f"{len(x)} and {len(y)}", "Fix data."
            )
        return TensorBatches(x.to(device), y.to(device), batch_size, shuffle, generator)
    if isinstance(data, Dataset) and hasattr(data, "__len__"):
        if len(data) == 0:  # type: ignore[arg-type]
            raise fail(ValueError, name, "a non-empty dataset", "0 examples", "Check how it was built.")
        size = len(data) if batch_size is None else batch_size  # type: ignore[arg-type]
        return DataLoader(data, batch_size=size, shuffle=shuffle, generator=generator)
    raise fail(
        TypeError,
        name,
        "a DataLoader, a Dataset, or an (inputs, targets) pair of tensors",
        type(data).__name__,
        "Wrap the data, e.g. fit(..., (x, y)) or deepbasics.data.loader(dataset, batch_size).",
    )


def find_generators(obj: object, found: list[torch.Generator], depth: int = 0) -> list[torch.Generator]:
    """Collect (deduplicated, in a fixed order) the torch.Generators a DataLoader and its parts draw from."""
    if isinstance(obj, torch.Generator):
        if all(obj is not g for g in found):
            found.append(obj)
        return found
    if depth > 6 or obj is None or isinstance(obj, torch.Tensor | str | int | float):
        return found
    if isinstance(obj, list | tuple):
        for o in obj:
            find_generators(o, found, depth + 1)
        return found
    for attr in GENERATOR_ATTRS:
        find_generators(getattr(obj, attr, None), found, depth + 1)
    return found


def unpack(batch: object, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(batch, tuple | list) and len(batch) == 2):
        raise fail(
            ValueError,
            "batch",
            "an (inputs, targets) pair from the data loader",
            f"{type(batch).__name__} of length {len(batch) if hasattr(batch, '__len__') else '?'}",
            "Make the dataset return (inputs, targets).",
        )
    x, y = batch
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def model_device(model: nn.Module) -> torch.device:
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def sum_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
