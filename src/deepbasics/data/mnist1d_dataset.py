"""MNIST-1D: the ten digits as 1-D signals of 40 values, generated locally by the ``mnist1d`` package, cached.

Greydanus & Kobak, "Scaling down deep learning with MNIST-1D", ICML 2024 (arXiv:2011.14439), section 2. Each
example starts from one of ten hand-made 12-point templates (one per digit) and goes through the package's
random transformations: padding to 36-60 points and interpolation, scaling by ``1 + 0.4 (u - 0.5)``, a circular
translation of up to 48 points, correlated noise in the padding, i.i.d. noise, a linear shear and a final
interpolation to 40 points. The standard dataset is ``make_dataset(get_dataset_args())``: 5000 signals (500 per
class), seed 42, the first 4000 for training and the last 1000 for testing after a random permutation.

The generator runs here, never the package's download path (``mnist1d.get_dataset`` fetches a pickle from
GitHub). Generated this way with mnist1d 0.0.2.post1 the standard dataset equals the published
``mnist1d_data.pkl`` up to 9e-16 (labels identical; measured once against the pickle in the repository
greydanus/mnist1d; ``tests/test_data_mnist1d.py`` keeps a fingerprint of it).

Values: as the package returns them. After generating, it subtracts the mean and divides by the standard
deviation of all 5000 signals together (one scalar each, test split included), which is the dataset's
definition; the paper's models train on these values directly, so nothing more is done here
(``Splits.standardizer`` is ``None``). Inputs are ``(N, 40)``; a 1-D CNN wants ``x.unsqueeze(1)``
``(N, C=1, L=40)``, a recurrent net ``x.unsqueeze(-1)`` ``(N, T=40, 1)``.

Spatially shuffled variant (``spatial_shuffle=True``): one fixed permutation ``perm`` of the 40 positions,
``x'[:, j] = x[:, perm[j]]``, the same for every split, with ``perm = RandomState(42).permutation(40)`` as in the
paper's benchmark notebook (``np.random.seed(42); np.random.permutation(40)``). It removes spatial locality and
nothing else (after Zhang et al., "Understanding deep learning requires rethinking generalization", ICLR 2017):
models that ignore the order of their inputs (logistic regression, an MLP) are unaffected, convolutions and
recurrences lose their prior.

Cache: generating takes about two seconds, so the arrays are kept in
``$DEEPBASICS_CACHE/mnist1d/`` (else ``$XDG_CACHE_HOME/deepbasics/mnist1d/``, else ``~/.cache/deepbasics/mnist1d/``)
as a ``.npz`` file (no pickle) keyed by the package version and the generator arguments, written atomically. A
missing, unreadable or inconsistent file is regenerated; a folder that cannot be written only costs the cache (a
warning). A cache hit imports neither the ``mnist1d`` package nor its dependencies.

``requests``: ``mnist1d/__init__.py`` imports ``mnist1d.data``, which imports ``requests`` at module level
for the download path only. When ``requests`` is not importable, a stand-in module whose functions raise is
placed in ``sys.modules`` while the package is imported, then removed, so the generator works without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import json
import os
import random
import sys
import types
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from .._checks import FLOAT_DTYPES, check_int, check_real, fail
from .._files import atomic_write
from .splits import Splits, split_indices

__all__ = ["LENGTH", "NUM_CLASSES", "PAPER_SEED", "cache_dir", "mnist1d", "spatial_permutation"]

#: Values per signal (``get_dataset_args().final_seq_length``) and number of classes (the ten digit templates).
LENGTH, NUM_CLASSES = 40, 10
#: The seed of the standard dataset (``get_dataset_args().seed``) and of the paper's spatial permutation.
PAPER_SEED = 42
#: Examples in the standard dataset (``get_dataset_args().num_samples``): 4000 train + 1000 test.
NUM_SAMPLES = 5000
# Bump when the cache file's layout changes; part of the cache key.
_CACHE_FORMAT = 1
_ARRAYS = ("x", "y", "x_test", "y_test")


def cache_dir() -> Path:
    """The folder of deepbasics' generated-data cache: ``$DEEPBASICS_CACHE``, else ``$XDG_CACHE_HOME/deepbasics``,
    else ``~/.cache/deepbasics`` (the XDG base-directory default). Empty variables count as unset."""
    if os.environ.get("DEEPBASICS_CACHE"):
        return Path(os.environ["DEEPBASICS_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "deepbasics"
    return Path.home() / ".cache" / "deepbasics"


def spatial_permutation(seed: int = PAPER_SEED, length: int = LENGTH) -> np.ndarray:
    """The fixed permutation of the ``length`` positions used by ``mnist1d(spatial_shuffle=True)``.

    ``np.random.RandomState(seed).permutation(length)`` (int64 array): with ``seed=42`` the permutation of the
    paper's benchmark notebook, which draws it after ``np.random.seed(42)``. Shuffled inputs are ``x[:, perm]``.
    """
    seed = check_int(seed, "shuffle_seed", low=0, high=2**32 - 1)
    length = check_int(length, "length", low=1)
    return np.random.RandomState(seed).permutation(length).astype(np.int64)


def _package_version() -> str:
    try:
        return importlib.metadata.version("mnist1d")
    except importlib.metadata.PackageNotFoundError as err:
        raise fail(
            ImportError,
            "mnist1d",
            "the mnist1d package (it generates the dataset)",
            "it is not installed",
            "Install it with `pip install mnist1d` (a dependency of deepbasics).",
        ) from err


class _NoNetwork(types.ModuleType):
    """Stand-in for ``requests`` while ``mnist1d`` is imported without it: any use raises (we never download)."""

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):  # introspection (hasattr(m, "__path__"), ...) must see a plain module
            raise AttributeError(name)
        raise RuntimeError(
            f"requests.{name}: expected no network use, got a call into the stand-in for the missing 'requests' "
            "package. deepbasics generates MNIST-1D locally; install requests to use mnist1d's own downloader."
        )


@contextlib.contextmanager
def _requests_optional() -> Iterator[None]:
    """Let ``import requests`` (module level of ``mnist1d.data``) succeed inside the block when it cannot."""
    try:
        import requests  # noqa: F401
    except ImportError:
        missing = object()
        saved = sys.modules.get("requests", missing)
        sys.modules["requests"] = _NoNetwork("requests", "deepbasics stand-in: MNIST-1D is never downloaded")
        try:
            yield
        finally:  # leave sys.modules as it was: later `import requests` fails again as it should
            if saved is missing:
                del sys.modules["requests"]
            else:
                sys.modules["requests"] = saved  # type: ignore[assignment]
    else:
        yield


@contextlib.contextmanager
def _global_rng_kept() -> Iterator[None]:
    """Restore numpy's and Python's global RNGs after the block (``make_dataset`` reseeds both)."""
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)


def _generate(data_seed: int, num_samples: int) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Run the package's generator; return the four arrays and the generator arguments used."""
    with _requests_optional():
        from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed, args.num_samples = data_seed, num_samples
    with _global_rng_kept():
        made = make_dataset(args)
    arrays = {k: np.ascontiguousarray(made[k], dtype=np.int64 if k.startswith("y") else np.float64) for k in _ARRAYS}
    used = {k: v for k, v in vars(args).items() if k != "url"}
    return arrays, used


def _cache_key(version: str, data_seed: int, num_samples: int) -> str:
    # The other generator arguments are get_dataset_args()'s defaults, fixed by the package version.
    return json.dumps({"format": _CACHE_FORMAT, "mnist1d": version, "seed": data_seed, "num_samples": num_samples})


def _read_cache(path: Path, key: str, num_samples: int) -> dict[str, np.ndarray]:
    """Load and check a cache file; raise on anything unexpected (the caller then regenerates)."""
    with np.load(path, allow_pickle=False) as f:
        if str(f["key"]) != key:
            raise ValueError(f"cache key mismatch in {path}")
        arrays = {k: f[k] for k in _ARRAYS}
    n_train = int(num_samples * 0.8)  # get_dataset_args().train_split, as make_dataset cuts: int(N * 0.8)
    for part, n in (("", n_train), ("_test", num_samples - n_train)):
        x, y = arrays["x" + part], arrays["y" + part]
        if x.shape != (n, LENGTH) or x.dtype != np.float64 or not np.isfinite(x).all():
            raise ValueError(f"bad inputs in {path}")
        if y.shape != (n,) or y.dtype != np.int64 or y.min() < 0 or y.max() >= NUM_CLASSES:
            raise ValueError(f"bad labels in {path}")
    return arrays


def _write_cache(path: Path, key: str, arrays: dict[str, np.ndarray], args: dict[str, object]) -> None:
    def write(f: io.BufferedIOBase) -> None:
        np.savez(f, key=np.array(key), args=np.array(json.dumps(args)), **arrays)

    try:
        atomic_write(path, write)
    except OSError as err:
        warnings.warn(
            f"mnist1d: could not write the cache file {path} ({err}); the data were generated and are used anyway. "
            "Set DEEPBASICS_CACHE to a writable folder to avoid regenerating next time.",
            RuntimeWarning,
            stacklevel=3,
        )


def _arrays(data_seed: int, num_samples: int, cache: bool) -> dict[str, np.ndarray]:
    """The four arrays of the dataset (``x``, ``y``, ``x_test``, ``y_test``), from the cache when possible."""
    if not cache:
        return _generate(data_seed, num_samples)[0]
    key = _cache_key(_package_version(), data_seed, num_samples)
    path = cache_dir() / "mnist1d" / f"mnist1d-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"
    with contextlib.suppress(Exception):  # missing, truncated, foreign or corrupted: regenerate below
        return _read_cache(path, key, num_samples)
    arrays, args = _generate(data_seed, num_samples)
    _write_cache(path, key, arrays, args)
    return arrays


def mnist1d(
    *,
    spatial_shuffle: bool = False,
    shuffle_seed: int | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    train_size: int | None = None,
    data_seed: int = PAPER_SEED,
    num_samples: int = NUM_SAMPLES,
    dtype: torch.dtype | None = None,
    cache: bool = True,
) -> Splits:
    """MNIST-1D as :class:`~deepbasics.data.splits.Splits`: inputs ``(N, 40)``, int64 labels ``(N,)`` in 0..9.

    Splits: ``test`` is the package's test split (the last 20% of the generated signals: 1000 for the standard
    dataset), unchanged. ``val`` is a stratified random ``val_fraction`` of the package's training split, seeded
    by ``seed``; ``train`` is the rest (3200 by default). ``val_fraction=0`` gives the paper's split: all 4000
    training signals, in the package's order, and ``val=None``.

    Args:
        spatial_shuffle: permute the 40 positions of every signal by one fixed permutation,
            :func:`spatial_permutation` ``(shuffle_seed)`` (the paper's shuffled benchmark).
        shuffle_seed: seed of that permutation (default 42, the paper's); only with ``spatial_shuffle=True``.
        val_fraction: fraction of the package's training split held out for validation, in [0, 1).
        seed: ``random_state`` of the validation split and of ``train_size``'s subsample.
        train_size: keep only this many training examples (a stratified random subset).
        data_seed: the generator's seed (42: the standard, published dataset; others: new draws).
        num_samples: signals to generate, a multiple of 10 (5000: the standard dataset).
        dtype: input dtype (default ``torch.get_default_dtype()``); the arrays are generated in float64.
        cache: read and write the on-disk cache (see the module docstring); ``False`` always regenerates.

    Reference: Greydanus & Kobak, ICML 2024, section 2; ``mnist1d.data.make_dataset``.
    """
    if not isinstance(spatial_shuffle, bool):
        raise fail(TypeError, "spatial_shuffle", "a bool", type(spatial_shuffle).__name__, "Pass True or False.")
    if shuffle_seed is not None and not spatial_shuffle:
        raise fail(
            ValueError,
            "shuffle_seed",
            "None unless spatial_shuffle=True",
            shuffle_seed,
            "Pass spatial_shuffle=True as well, or drop shuffle_seed.",
        )
    perm = spatial_permutation(PAPER_SEED if shuffle_seed is None else shuffle_seed) if spatial_shuffle else None
    val_fraction = check_real(val_fraction, "val_fraction", low=0.0, high=1.0, high_inclusive=False)
    seed = check_int(seed, "seed", low=0)
    data_seed = check_int(data_seed, "data_seed", low=0, high=2**32 - 1)  # np.random.seed's range
    num_samples = check_int(num_samples, "num_samples", low=NUM_CLASSES)
    if num_samples % NUM_CLASSES:
        raise fail(
            ValueError,
            "num_samples",
            f"a multiple of {NUM_CLASSES} (the generator makes num_samples // 10 per "
            "class and would silently drop the rest)",
            num_samples,
            f"Pass e.g. {num_samples // 10 * 10 or 10}.",
        )
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if dtype not in FLOAT_DTYPES:
        raise fail(TypeError, "dtype", "a floating dtype", dtype, "Pass torch.float32 or torch.float64.")
    if not isinstance(cache, bool):
        raise fail(TypeError, "cache", "a bool", type(cache).__name__, "Pass True or False.")

    arrays = _arrays(data_seed, num_samples, cache)
    x, y, x_test, y_test = (arrays[k] for k in _ARRAYS)
    if perm is not None:
        x, x_test = x[:, perm], x_test[:, perm]  # (N, 40): position j of the output is position perm[j]
    train_ix, val_ix, _ = split_indices(
        y, len(y), val_fraction=val_fraction, test_fraction=0.0, seed=seed, stratify=True, train_size=train_size
    )

    def part(xs: np.ndarray, ys: np.ndarray) -> TensorDataset:
        return TensorDataset(torch.as_tensor(xs).to(dtype), torch.as_tensor(ys, dtype=torch.long))

    name = "mnist1d" + (" (spatially shuffled)" if perm is not None else "")
    return Splits(
        train=part(x[train_ix], y[train_ix]),
        val=part(x[val_ix], y[val_ix]) if len(val_ix) else None,
        test=part(x_test, y_test),
        num_features=LENGTH,
        num_classes=NUM_CLASSES,
        input_shape=(LENGTH,),
        target_names=tuple(str(d) for d in range(NUM_CLASSES)),
        name=name,
        seed=seed,
    )
