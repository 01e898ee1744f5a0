"""Tests for deepbasics.data.splits: stratified seeded splits, train-only standardization, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepbasics.data import Standardizer, make_splits, split_indices


def _labelled(n: int = 200, classes: int = 4):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % classes
    x = 3.0 + 2.0 * torch.randn(n, 5, generator=g, dtype=torch.float64) + y[:, None]
    return x, y


def test_split_sizes_disjoint_and_covering():
    tr, va, te = split_indices(None, 100, val_fraction=0.2, test_fraction=0.1, seed=3, stratify=False)
    assert (len(tr), len(va), len(te)) == (70, 20, 10)
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(100))


def test_stratified_splits_keep_class_proportions():
    y = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    tr, va, te = split_indices(y, 100, val_fraction=0.2, test_fraction=0.2, seed=1)
    for ix in (tr, va, te):
        counts = np.bincount(y.numpy()[ix], minlength=3)
        np.testing.assert_allclose(counts / len(ix), [0.6, 0.3, 0.1], atol=1.0 / len(ix))


def test_standardization_uses_training_statistics_only():
    x, y = _labelled()
    s = make_splits(x, y, seed=0)
    xtr, _ = s.tensors("train")
    xva, _ = s.tensors("val")
    tr, va, _ = split_indices(y, len(x), seed=0)
    raw_tr = x.numpy()[tr]
    np.testing.assert_allclose(s.standardizer.mean.numpy(), raw_tr.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.standardizer.std.numpy(), raw_tr.std(0, ddof=0), rtol=1e-12)
    torch.testing.assert_close(xtr.mean(0), torch.zeros(5, dtype=xtr.dtype), rtol=0, atol=1e-6)
    torch.testing.assert_close(xtr.std(0, correction=0), torch.ones(5, dtype=xtr.dtype), rtol=0, atol=1e-6)
    assert xva.mean(0).abs().max() > 1e-3  # validation is transformed with the train statistics, not its own
    np.testing.assert_allclose(xva.numpy(), (x.numpy()[va] - raw_tr.mean(0)) / raw_tr.std(0), rtol=1e-6)


def test_standardizer_per_channel_for_images_inverse_and_constant_features(float64):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(10, 2, 3, 3, generator=g) * torch.tensor([1.0, 5.0])[None, :, None, None]
    st = Standardizer.fit(images)
    assert st.mean.shape == (2,)
    torch.testing.assert_close(st.std, images.transpose(0, 1).reshape(2, -1).std(1, correction=0))
    torch.testing.assert_close(st.inverse(st(images)), images)
    constant = torch.cat([torch.zeros(6, 1), torch.randn(6, 1, generator=g)], dim=1)
    assert Standardizer.fit(constant).std[0] == 1.0 and torch.isfinite(Standardizer.fit(constant)(constant)).all()
    with pytest.raises(ValueError, match="dim 1"):
        st(torch.zeros(4, 3, 3, 3))


def test_scale_raw_and_dtype():
    x, y = _labelled()
    raw = make_splits(x, y, standardize=False, dtype=torch.float64)
    scaled = make_splits(x, y, scale=1e3, dtype=torch.float32)
    std = make_splits(x, y, dtype=torch.float32)
    assert raw.standardizer is None
    tr, _, _ = split_indices(y, len(x))
    assert torch.equal(raw.tensors()[0], x[torch.as_tensor(tr)])
    assert scaled.tensors()[0].dtype == torch.float32 and scaled.tensors()[1].dtype == torch.int64
    torch.testing.assert_close(scaled.tensors()[0], 1e3 * std.tensors()[0])


def test_seed_determinism_and_train_subsampling():
    x, y = _labelled()
    a, b, c = make_splits(x, y, seed=5), make_splits(x, y, seed=5), make_splits(x, y, seed=6)
    assert torch.equal(a.tensors("val")[0], b.tensors("val")[0])
    assert not torch.equal(a.tensors("val")[0], c.tensors("val")[0])
    full, _, _ = split_indices(y, len(x), seed=5)
    small, va, _ = split_indices(y, len(x), seed=5, train_size=20)
    assert len(small) == 20 and set(small) <= set(full)
    assert np.bincount(y.numpy()[small]).tolist() == [5, 5, 5, 5]  # stratified subsample
    assert (va == split_indices(y, len(x), seed=5)[1]).all()  # val/test do not change with train_size
    sub = make_splits(x, y, seed=5, train_size=20)
    assert len(sub.train) == 20 and len(sub.val) == len(a.val)


def test_zero_fractions_give_no_split():
    x, y = _labelled()
    s = make_splits(x, y, val_fraction=0.0, test_fraction=0.0)
    assert s.val is None and s.test is None and len(s.train) == 200
    with pytest.raises(ValueError, match="fraction was 0"):
        s.tensors("val")
    with pytest.raises(ValueError, match="train"):
        s.tensors("dev")
    assert "train=200, val=0, test=0" in repr(s)


def test_regression_targets_are_not_stratified():
    x, _ = _labelled()
    y = x[:, :1] * 2.0
    s = make_splits(x, y, standardize=False)
    assert s.num_classes is None and s.tensors()[1].dtype == torch.get_default_dtype()
    with pytest.raises(ValueError, match="stratify=False"):
        make_splits(x, y, stratify=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "sum below 1"),
        ({"val_fraction": -0.1}, "val_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"train_size": 1000}, "train_size"),
        ({"train_size": 2}, "train_size"),  # fewer than the 4 classes: stratification impossible
        ({"scale": 0.0}, "scale"),
    ],
)
def test_bad_arguments(kwargs, match):
    x, y = _labelled()
    with pytest.raises(ValueError, match=match):
        make_splits(x, y, **kwargs)


def test_empty_and_mismatched_inputs():
    with pytest.raises(ValueError, match="at least one example"):
        make_splits(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="same number"):
        make_splits(torch.zeros(5, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="empty dataset"):
        split_indices(None, 0, stratify=False)
    with pytest.raises(TypeError, match="floating"):
        make_splits(torch.zeros(5, 3), torch.zeros(5, dtype=torch.long), dtype=torch.int32)
