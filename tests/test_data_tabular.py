"""Tests for deepbasics.data.tabular: the four bundled scikit-learn datasets as Splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import datasets as skd

from deepbasics import data


@pytest.mark.parametrize(
    ("loader", "sk", "n", "features", "classes"),
    [
        (data.digits, skd.load_digits, 1797, 64, 10),
        (data.breast_cancer, skd.load_breast_cancer, 569, 30, 2),
        (data.wine, skd.load_wine, 178, 13, 3),
        (data.iris, skd.load_iris, 150, 4, 3),
    ],
)
def test_shapes_names_and_class_balance(loader, sk, n, features, classes):
    s = loader()
    bunch = sk()
    sizes = [len(s.train), len(s.val), len(s.test)]
    assert sum(sizes) == n and abs(sizes[1] - 0.2 * n) <= 1 and abs(sizes[2] - 0.2 * n) <= 1
    assert (s.num_features, s.num_classes, s.input_shape) == (features, classes, (features,))
    assert s.feature_names == tuple(bunch.feature_names) and len(s.target_names) == classes
    overall = np.bincount(bunch.target, minlength=classes) / n
    for split in ("train", "val", "test"):
        x, y = s.tensors(split)
        assert x.dtype == torch.get_default_dtype() and y.dtype == torch.int64 and x.shape[1] == features
        np.testing.assert_allclose(np.bincount(y.numpy(), minlength=classes) / len(y), overall, atol=1.5 / len(y))


def test_digits_images_raw_values_match_sklearn():
    s = data.digits(as_images=True, standardize=False, val_fraction=0.0, test_fraction=0.0)
    x, y = s.tensors()
    assert x.shape == (1797, 1, 8, 8) and s.input_shape == (1, 8, 8) and s.num_features == 64
    assert x.min() >= 0.0 and x.max() == 1.0
    bunch = skd.load_digits()
    # the split shuffles the rows: compare as multisets of (image, label) via sorting by a content key
    ours = sorted(zip((x.reshape(-1, 64).double() * 16).round().long().tolist(), y.tolist(), strict=True))
    ref = sorted(zip(bunch.data.astype(int).tolist(), bunch.target.tolist(), strict=True))
    assert ours == ref


def test_digits_images_layout_is_sklearns_images():
    s = data.digits(as_images=True, standardize=False, val_fraction=0.0, test_fraction=0.0)
    x, _ = s.tensors()
    images = {tuple((xi[0].double() * 16).round().flatten().tolist()) for xi in x}
    assert tuple(skd.load_digits().images[0].flatten().tolist()) in images
    assert tuple(skd.load_digits().images[0].T.flatten().tolist()) not in images  # not transposed


def test_digits_standardization_per_pixel_and_per_channel():
    feats = data.digits()
    x, _ = feats.tensors()
    nonconstant = feats.standardizer.std != 1.0
    torch.testing.assert_close(x.mean(0), torch.zeros(64, dtype=x.dtype), rtol=0, atol=1e-5)
    assert nonconstant.sum() > 50
    torch.testing.assert_close(
        x.std(0, correction=0)[nonconstant], torch.ones_like(x[0][nonconstant]), atol=1e-5, rtol=0
    )
    img = data.digits(as_images=True)
    xi, _ = img.tensors()
    assert img.standardizer.mean.shape == (1,)
    assert abs(xi.mean().item()) < 1e-5 and abs(xi.std(correction=0).item() - 1.0) < 1e-5


def test_breast_cancer_raw_is_badly_scaled_and_scale_option():
    raw = data.breast_cancer(standardize=False)
    x, _ = raw.tensors()
    spread = x.std(0)
    assert spread.max() / spread.min() > 1e4
    big = data.breast_cancer(scale=1e3, dtype=torch.float64)
    assert abs(big.tensors()[0].std().item() - 1e3) < 10.0


def test_seed_train_size_and_dtype():
    a, b = data.wine(seed=1), data.wine(seed=1)
    assert torch.equal(a.tensors("test")[0], b.tensors("test")[0])
    assert not torch.equal(a.tensors("test")[0], data.wine(seed=2).tensors("test")[0])
    small = data.digits(train_size=100, dtype=torch.float64)
    x, y = small.tensors()
    assert len(x) == 100 and x.dtype == torch.float64 and set(y.tolist()) == set(range(10))
    with pytest.raises(ValueError, match="train_size"):
        data.iris(train_size=2)  # fewer examples than the 3 classes: a stratified subsample is impossible
    with pytest.raises(ValueError, match="train_size"):
        data.iris(train_size=1000)
    with pytest.raises(ValueError, match="sum below 1"):
        data.iris(val_fraction=0.6, test_fraction=0.4)
