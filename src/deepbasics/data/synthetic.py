"""Small synthetic classification and regression tasks with known structure.

- :func:`circles` and :func:`blobs` wrap :func:`sklearn.datasets.make_circles` / :func:`~sklearn.datasets.make_blobs`
  (seeded through ``random_state``) and return tensors; pass them to
  :func:`~deepbasics.data.splits.make_splits` for train/val/test splits.
- :func:`teacher_student` draws a random one-hidden-layer "teacher" network and labels Gaussian inputs with
  it (Gardner & Derrida, "Three unfinished works on the optimal storage capacity of networks", J. Phys. A 22,
  1989; Saad & Solla, Phys. Rev. E 52, 1995): a regression task that a student of at least the teacher's width
  can fit exactly, with irreducible error ``noise**2`` (the Bayes MSE).
"""

from __future__ import annotations

import math

import torch
from sklearn import datasets as skd

from .._checks import FLOAT_DTYPES, check_generator, check_int, check_real, fail

__all__ = ["blobs", "circles", "teacher_student"]


def _dtype(dtype: torch.dtype | None) -> torch.dtype:
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if dtype not in FLOAT_DTYPES:
        raise fail(TypeError, "dtype", "a floating dtype", dtype, "Pass torch.float32 or torch.float64.")
    return dtype


def circles(
    num_samples: int = 1000,
    *,
    noise: float = 0.1,
    factor: float = 0.5,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two concentric circles in 2-D (radii 1 and ``factor``), not linearly separable.

    Returns ``inputs (N, 2)`` in ``dtype`` and int64 ``targets (N,)`` (0 outer, 1 inner circle); Gaussian
    noise of std ``noise`` is added to each coordinate. Reference: :func:`sklearn.datasets.make_circles`.
    """
    num_samples = check_int(num_samples, "num_samples", low=2)
    noise = check_real(noise, "noise", low=0.0)
    factor = check_real(factor, "factor", low=0.0, high=1.0, low_inclusive=True, high_inclusive=False)
    seed = check_int(seed, "seed", low=0)
    x, y = skd.make_circles(n_samples=num_samples, noise=noise, factor=factor, random_state=seed)
    return torch.as_tensor(x, dtype=_dtype(dtype)), torch.as_tensor(y, dtype=torch.long)


def blobs(
    num_samples: int = 1000,
    *,
    centers: int = 3,
    num_features: int = 2,
    cluster_std: float = 1.0,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Isotropic Gaussian clusters: ``centers`` classes in ``num_features`` dimensions.

    Centres are drawn uniformly in [-10, 10]^d, each point is ``centre + cluster_std * N(0, I)``.
    Returns ``inputs (N, num_features)`` and int64 ``targets (N,)``. Reference: :func:`sklearn.datasets.make_blobs`.
    """
    num_samples = check_int(num_samples, "num_samples", low=1)
    centers = check_int(centers, "centers", low=1)
    num_features = check_int(num_features, "num_features", low=1)
    cluster_std = check_real(cluster_std, "cluster_std", low=0.0)
    seed = check_int(seed, "seed", low=0)
    x, y = skd.make_blobs(
        n_samples=num_samples, centers=centers, n_features=num_features, cluster_std=cluster_std, random_state=seed
    )
    return torch.as_tensor(x, dtype=_dtype(dtype)), torch.as_tensor(y, dtype=torch.long)


def teacher_student(
    num_samples: int,
    in_features: int,
    hidden: int,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
    *,
    out_features: int = 1,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Regression data labelled by a random two-layer tanh teacher network.

    With ``W1 ~ N(0, 1/in_features)`` of shape ``(hidden, in_features)``, ``W2 ~ N(0, 1/hidden)`` of shape
    ``(out_features, hidden)``, inputs ``x ~ N(0, I)`` and ``eps ~ N(0, I)``::

        y = tanh(x W1^T) W2^T + noise * eps

    The 1/fan_in variances keep ``Var(y) = O(1)`` whatever the sizes. Draws ``W1, W2, x, eps`` in that order
    from ``generator`` (the global RNG when ``None``) on the generator's device.
    Returns ``inputs (N, in_features)`` and ``targets (N, out_features)``. A student with ``hidden`` or more
    tanh units can reach the Bayes error ``E[(y - f(x))^2] = noise**2`` per output.
    """
    num_samples = check_int(num_samples, "num_samples", low=1)
    in_features = check_int(in_features, "in_features", low=1)
    hidden = check_int(hidden, "hidden", low=1)
    out_features = check_int(out_features, "out_features", low=1)
    noise = check_real(noise, "noise", low=0.0)
    generator = check_generator(generator)
    dtype = _dtype(dtype)
    kw = {"generator": generator, "dtype": dtype, "device": None if generator is None else generator.device}
    w1 = torch.randn(hidden, in_features, **kw) / math.sqrt(in_features)
    w2 = torch.randn(out_features, hidden, **kw) / math.sqrt(hidden)
    x = torch.randn(num_samples, in_features, **kw)
    eps = torch.randn(num_samples, out_features, **kw)
    y = torch.tanh(x @ w1.T) @ w2.T + noise * eps  # (N, in) -> (N, hidden) -> (N, out)
    return x, y
