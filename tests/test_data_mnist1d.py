"""Tests for deepbasics.data.mnist1d: MNIST-1D generated locally, cached, optionally spatially shuffled."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from deepbasics import data

m1d = importlib.import_module("deepbasics.data.mnist1d_dataset")  # the module behind deepbasics.data.mnist1d

# Fingerprint of the published dataset, greydanus/mnist1d's mnist1d_data.pkl (commit 7878d96), computed once from
# that file: label hashes (sha256 of the int64 bytes) and three sums plus the first values of the first signal.
PUBLISHED = {
    "y": "d97dc7aecec8ad6b5d8f143ba3e9c4bd7e25c420d7dfc2eb990591cfc0ed3e15",
    "y_test": "8de99be3ff9dab15ae0dc072c3d6ced7cf6b33d365888ce4a386fc944489452c",
    "x": (-51.78746787509559, 159248.2538653486, 19388.11334187731, (-0.3320056673693902, -0.4719103656557236)),
    "x_test": (51.78746787509186, 40751.74613465136, 7565.977652536864, (-0.07877078047732886, -0.2107317058864292)),
}
# The generator reproduces the pickle up to 9e-16 per value; sums over 160,000 values agree to about 1e-11.
SUM_TOL = 1e-8


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("deepbasics-cache")


@pytest.fixture(autouse=True)
def _private_cache(cache_root, monkeypatch):
    """Never write to the user's cache: every test uses one shared temporary cache folder."""
    monkeypatch.setenv("DEEPBASICS_CACHE", str(cache_root))


def _tensors(s):
    return (*s.train.tensors, *s.test.tensors)


def _np(ds):
    return [t.numpy() for t in ds.tensors]


def test_standard_split_shapes_dtypes_and_balance():
    s = data.mnist1d(val_fraction=0.0)
    assert (len(s.train), s.val, len(s.test)) == (4000, None, 1000)
    assert (s.num_features, s.num_classes, s.input_shape, s.standardizer) == (40, 10, (40,), None)
    assert s.target_names == tuple("0123456789")
    counts = 0
    for split in ("train", "test"):
        x, y = s.tensors(split)
        assert x.dtype == torch.get_default_dtype() and y.dtype == torch.int64 and x.shape == (len(y), 40)
        assert torch.isfinite(x).all()
        counts = counts + np.bincount(y.numpy(), minlength=10)
    assert counts.tolist() == [500] * 10  # the generator makes num_samples // 10 signals per class
    # the package's normalization: mean 0 and std 1 over all 5000 signals together
    both = np.concatenate([_np(data.mnist1d(val_fraction=0.0, dtype=torch.float64).train)[0], _np(s.test)[0]])
    assert abs(both.mean()) < 1e-6 and abs(both.std() - 1.0) < 1e-6


def test_default_validation_split_is_stratified_slice_of_train():
    s = data.mnist1d()
    full = data.mnist1d(val_fraction=0.0, dtype=torch.float64)
    assert (len(s.train), len(s.val), len(s.test)) == (3200, 800, 1000)
    _, y_full = full.tensors("train")
    _, y_val = s.tensors("val")
    overall = np.bincount(y_full.numpy(), minlength=10) / len(y_full)
    np.testing.assert_allclose(np.bincount(y_val.numpy(), minlength=10) / len(y_val), overall, atol=1.5 / 800)
    # train + val is exactly the package's training split (as a multiset of rows), the test split is untouched
    rows = {tuple(r) for r in full.train.tensors[0].numpy().round(12).tolist()}
    for split in ("train", "val"):
        x, _ = data.mnist1d(dtype=torch.float64).tensors(split)
        assert {tuple(r) for r in x.numpy().round(12).tolist()} <= rows
    assert torch.equal(s.test.tensors[1], full.test.tensors[1])
    sub = data.mnist1d(train_size=500, seed=3)
    assert len(sub.train) == 500 and len(sub.val) == 800


def test_generated_dataset_is_the_published_one():
    s = data.mnist1d(val_fraction=0.0, dtype=torch.float64)
    for name, ds in (("x", s.train), ("x_test", s.test)):
        x, y = _np(ds)
        label = "y" + name[1:]
        assert hashlib.sha256(np.ascontiguousarray(y, dtype=np.int64).tobytes()).hexdigest() == PUBLISHED[label]
        total, squares, weighted, first = PUBLISHED[name]
        assert abs(x.sum() - total) < SUM_TOL and abs((x**2).sum() - squares) < SUM_TOL
        assert abs((x * np.arange(40)).sum() - weighted) < SUM_TOL
        np.testing.assert_allclose(x[0, :2], first, rtol=0, atol=1e-14)


def test_same_arrays_as_the_packages_generator():
    from mnist1d.data import get_dataset_args, make_dataset

    ref = make_dataset(get_dataset_args())
    s = data.mnist1d(val_fraction=0.0, dtype=torch.float64)
    for (x, y), kx, ky in ((_np(s.train), "x", "y"), (_np(s.test), "x_test", "y_test")):
        assert np.array_equal(x, ref[kx]) and np.array_equal(y, ref[ky])


def test_deterministic_and_leaves_global_rngs_alone():
    np.random.seed(7)  # noqa: NPY002
    random.seed(7)
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    a = m1d._arrays(42, 500, cache=False)
    b = m1d._arrays(42, 500, cache=False)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    after = np.random.get_state()  # noqa: NPY002
    assert np.array_equal(after[1], np_state[1]) and after[2] == np_state[2] and random.getstate() == py_state
    other = m1d._arrays(1, 500, cache=False)
    assert other["x"].shape == (400, 40) and not np.array_equal(other["x"][:5], a["x"][:5])


def test_cache_hit_equals_regenerated_bitwise(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPBASICS_CACHE", str(tmp_path))
    fresh = m1d._arrays(42, 500, cache=False)
    first = m1d._arrays(42, 500, cache=True)  # miss: generates and writes
    files = list((tmp_path / "mnist1d").glob("*.npz"))
    assert len(files) == 1

    def no_generation(*args):
        raise AssertionError("expected a cache hit, but the generator ran")

    monkeypatch.setattr(m1d, "_generate", no_generation)
    hit = m1d._arrays(42, 500, cache=True)
    for k in fresh:
        assert fresh[k].dtype == hit[k].dtype and np.array_equal(fresh[k], hit[k]) and np.array_equal(first[k], hit[k])
    with np.load(files[0], allow_pickle=False) as f:
        key, args = json.loads(str(f["key"])), json.loads(str(f["args"]))
    assert (key["seed"], key["num_samples"], args["num_samples"], args["final_seq_length"]) == (42, 500, 500, 40)
    assert "url" not in args


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other_key", "bad_labels"])
def test_unreadable_cache_is_regenerated(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("DEEPBASICS_CACHE", str(tmp_path))
    good = m1d._arrays(42, 500, cache=True)
    path = next((tmp_path / "mnist1d").glob("*.npz"))
    if damage == "garbage":
        path.write_bytes(b"not an npz file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:3000])
    else:
        arrays = dict(good)
        key = m1d._cache_key(m1d._package_version(), 42, 500)
        if damage == "other_key":
            key = key.replace('"seed": 42', '"seed": 43')
        else:
            arrays["y"] = arrays["y"] + 10
        with open(path, "wb") as f:
            np.savez(f, key=np.array(key), args=np.array("{}"), **arrays)
    again = m1d._arrays(42, 500, cache=True)
    assert all(np.array_equal(good[k], again[k]) for k in good)
    assert m1d._read_cache(path, m1d._cache_key(m1d._package_version(), 42, 500), 500)["y"].max() == 9  # rewritten


def test_unwritable_cache_warns_and_still_returns_data(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DEEPBASICS_CACHE", str(blocker))
    with pytest.warns(RuntimeWarning, match="could not write the cache"):
        s = data.mnist1d(num_samples=100, val_fraction=0.0)
    assert len(s.train) == 80 and len(s.test) == 20


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPBASICS_CACHE", str(tmp_path / "own"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert m1d.cache_dir() == tmp_path / "own"
    monkeypatch.setenv("DEEPBASICS_CACHE", "")
    assert m1d.cache_dir() == tmp_path / "xdg" / "deepbasics"
    monkeypatch.delenv("DEEPBASICS_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert m1d.cache_dir() == tmp_path / "home" / ".cache" / "deepbasics"


@pytest.mark.parametrize("val_fraction", [0.0, 0.2])
def test_spatial_shuffle_is_one_fixed_permutation_of_every_split(val_fraction):
    plain = data.mnist1d(val_fraction=val_fraction, dtype=torch.float64)
    shuffled = data.mnist1d(val_fraction=val_fraction, dtype=torch.float64, spatial_shuffle=True)
    perm = m1d.spatial_permutation()
    assert sorted(perm.tolist()) == list(range(40)) and (perm != np.arange(40)).any()
    np.random.seed(42)  # noqa: NPY002 - the paper's notebook draws its permutation exactly so
    assert np.array_equal(perm, np.random.permutation(40))  # noqa: NPY002
    assert "shuffled" in shuffled.name
    for split in ("train", "val", "test") if val_fraction else ("train", "test"):
        (x, y), (xs, ys) = plain.tensors(split), shuffled.tensors(split)
        assert torch.equal(ys, y) and torch.equal(xs, x[:, torch.as_tensor(perm)])
    other = data.mnist1d(val_fraction=val_fraction, dtype=torch.float64, spatial_shuffle=True, shuffle_seed=1)
    assert torch.equal(other.train.tensors[0], plain.tensors("train")[0][:, m1d.spatial_permutation(1)])
    assert not torch.equal(other.train.tensors[0], shuffled.tensors("train")[0])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"spatial_shuffle": "yes"}, TypeError, "spatial_shuffle: expected a bool"),
        ({"shuffle_seed": 3}, ValueError, "shuffle_seed: expected None unless spatial_shuffle=True"),
        ({"spatial_shuffle": True, "shuffle_seed": -1}, ValueError, "shuffle_seed: expected an integer"),
        ({"val_fraction": 1.0}, ValueError, "val_fraction: expected a value in"),
        ({"num_samples": 4999}, ValueError, "num_samples: expected a multiple of 10"),
        ({"num_samples": 5.0}, TypeError, "num_samples: expected an int"),
        ({"data_seed": -1}, ValueError, "data_seed: expected an integer"),
        ({"data_seed": 2**32}, ValueError, "data_seed: expected an integer"),
        ({"dtype": torch.int64}, TypeError, "dtype: expected a floating dtype"),
        ({"cache": "no"}, TypeError, "cache: expected a bool"),
        ({"train_size": 5000}, ValueError, "train_size: expected at most"),
        ({"seed": -2}, ValueError, "seed: expected an integer"),
    ],
)
def test_bad_arguments_say_what_was_expected(kwargs, error, match):
    with pytest.raises(error, match=match):
        data.mnist1d(**kwargs)


def test_requests_stand_in_refuses_network_use_only():
    stub = m1d._NoNetwork("requests")
    with pytest.raises(RuntimeError, match="expected no network use"):
        stub.get("https://example.org")
    assert not hasattr(stub, "__path__")  # introspection sees a plain module, not an error


def _python(code: str, cache: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEEPBASICS_CACHE": cache}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_works_without_requests(tmp_path):
    """``mnist1d.data`` imports requests at module level; generating must not need it, nor leave a stand-in."""
    code = (
        "import sys; sys.modules['requests'] = None\n"
        "import torch\n"
        "from deepbasics.data import mnist1d\n"
        "s = mnist1d(val_fraction=0.0, dtype=torch.float64)\n"
        "assert sys.modules['requests'] is None, 'the stand-in leaked'\n"
        "try:\n    import requests\nexcept ImportError:\n    pass\nelse:\n    raise SystemExit('requests importable')\n"
        "import hashlib\n"
        "print(*(hashlib.sha256(t.numpy().tobytes()).hexdigest() for t in (*s.train.tensors, *s.test.tensors)))\n"
    )
    result = _python(code, str(tmp_path))
    assert result.returncode == 0, result.stderr
    s = data.mnist1d(val_fraction=0.0, dtype=torch.float64)
    assert result.stdout.split() == [hashlib.sha256(t.numpy().tobytes()).hexdigest() for t in _tensors(s)]
    assert list((tmp_path / "mnist1d").glob("*.npz")), "the subprocess generated and cached the data"


@pytest.mark.slow
def test_cache_hit_imports_neither_mnist1d_nor_requests(cache_root):
    data.mnist1d()  # warm the shared cache
    code = (
        "import sys\nfrom deepbasics.data import mnist1d\nmnist1d()\n"
        "print(sorted(m for m in ('mnist1d', 'requests', 'matplotlib.pyplot') if m in sys.modules))\n"
    )
    result = _python(code, str(cache_root))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
