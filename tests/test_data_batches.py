"""Tests for deepbasics.data.batches.loader: seeded order, full batch, batched transforms, errors."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from deepbasics import data


def _pairs(n: int = 10):
    return torch.arange(n, dtype=torch.float32)[:, None], torch.arange(n)


def _order(dl) -> list[int]:
    return [int(i) for _, y in dl for i in y]


def test_seed_fixes_the_order_independently_of_the_global_rng():
    a = data.loader(_pairs(), batch_size=3, seed=1)
    torch.manual_seed(123)
    b = data.loader(_pairs(), batch_size=3, seed=1)
    first, second = _order(a), _order(a)
    assert first == _order(b) and sorted(first) == list(range(10))
    assert first != second  # a new permutation each epoch
    assert first != _order(data.loader(_pairs(), batch_size=3, seed=2))
    assert [len(y) for _, y in a] == [3, 3, 3, 1]


def test_unshuffled_full_batch_and_drop_last():
    full = list(data.loader(_pairs(), batch_size=None, shuffle=False))
    assert len(full) == 1 and full[0][1].tolist() == list(range(10))
    assert [len(y) for _, y in data.loader(_pairs(), batch_size=4, drop_last=True)] == [4, 4]


def test_transform_sees_whole_batches():
    shapes = []

    def spy(x):
        shapes.append(tuple(x.shape))
        return x + 100.0

    dl = data.loader(TensorDataset(*_pairs()), batch_size=4, shuffle=False, transform=spy)
    xb, yb = next(iter(dl))
    assert shapes == [(4, 1)] and torch.equal(xb[:, 0], yb.float() + 100.0)


def test_generic_dataset_path():
    class Squares(Dataset):
        def __len__(self):
            return 7

        def __getitem__(self, i):
            return torch.tensor([float(i)]), torch.tensor(i * i)

    batches = list(data.loader(Squares(), batch_size=3, seed=0))
    ys = sorted(int(v) for _, y in batches for v in y)
    assert ys == [i * i for i in range(7)] and len(batches) == 3


def test_bad_inputs():
    with pytest.raises(ValueError, match="non-empty"):
        data.loader(TensorDataset(torch.zeros(0, 2), torch.zeros(0)), batch_size=2)
    with pytest.raises(ValueError, match="same first dimension"):
        data.loader((torch.zeros(3, 2), torch.zeros(4)), batch_size=2)
    with pytest.raises(TypeError, match="Dataset"):
        data.loader([1, 2, 3], batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        data.loader(_pairs(), batch_size=0)
