"""Seeded train/validation/test splits and standardization fitted on the training split only.

Standardization (z-scoring) maps every feature to zero mean and unit variance::

    x' = (x - mu) / sigma,    mu = mean_train(x),    sigma = std_train(x)   (population std, ddof = 0)

with ``mu`` and ``sigma`` estimated on the *training* split and then applied unchanged to validation and test.
Estimating them on all the data leaks information from the held-out splits into the model (Hastie, Tibshirani
& Friedman, *The Elements of Statistical Learning*, 2nd ed., section 7.10.2, "the wrong and right way to do
cross-validation"). Why normalize at all: unnormalized inputs make the loss surface ill-conditioned
(LeCun, Bottou, Orr & Mueller, "Efficient BackProp", 1998, section 4.3; FAQ claim Q3.1.d).

Statistics are taken per entry of dimension 1 and pooled over every other dimension, like batch normalization:
per feature for ``(N, F)`` inputs, per channel for ``(N, C, H, W)`` images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import TensorDataset

from .._checks import FLOAT_DTYPES, check_int, check_real, check_tensor, fail

__all__ = ["Splits", "Standardizer", "make_splits", "split_indices"]

# A feature whose training std is below this is constant (e.g. the always-blank corner pixels of the digits);
# dividing by it would blow up round-off, so it is only centred (sigma := 1). 1e-8 is far below any real spread
# in the bundled datasets (smallest non-zero std: 2.6e-3, breast cancer "fractal dimension error").
MIN_STD = 1e-8


def _stat_dims(x: torch.Tensor) -> tuple[int, ...]:
    # (N,) -> pool over N; (N, F) -> over N; (N, C, H, W) -> over N, H, W
    return (0,) if x.dim() == 1 else tuple(d for d in range(x.dim()) if d != 1)


@dataclass(frozen=True)
class Standardizer:
    """Affine map ``x -> (x - mean) / std`` with statistics per entry of dimension 1.

    ``mean`` and ``std`` have shape ``(F,)`` (or ``(C,)`` for images, ``()`` for 1-D inputs). Build one with
    :meth:`fit`; apply it with ``standardizer(x)`` and undo it with :meth:`inverse`.
    """

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor) -> Standardizer:
        """Estimate ``mean`` and population ``std`` (ddof = 0) of ``x`` over all dims except dim 1.

        Computed in float64 and returned in ``x``'s dtype; a std below :data:`MIN_STD` is replaced by 1.
        """
        x = check_tensor(x, "x", floating=True, min_dim=1)
        dims = _stat_dims(x)
        x64 = x.double()
        mean = x64.mean(dim=dims)
        std = x64.var(dim=dims, correction=0).sqrt()
        std = torch.where(std < MIN_STD, torch.ones_like(std), std)
        return cls(mean=mean.to(x.dtype), std=std.to(x.dtype))

    def _view(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.dim() == 1:
            return t.to(device=x.device, dtype=x.dtype)
        if x.shape[1] != t.numel():
            raise fail(
                ValueError,
                "x",
                f"{t.numel()} entries along dim 1 (the standardizer was fitted on that many)",
                f"shape {tuple(x.shape)}",
                "Apply the standardizer to data shaped like its training split.",
            )
        shape = (1, t.numel()) + (1,) * (x.dim() - 2)  # (1, F) or (1, C, 1, 1)
        return t.to(device=x.device, dtype=x.dtype).reshape(shape)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(x - mean) / std``."""
        x = check_tensor(x, "x", floating=True, min_dim=1, nonempty=False)
        return (x - self._view(x, self.mean)) / self._view(x, self.std)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x * std + mean`` (undo :meth:`__call__`)."""
        x = check_tensor(x, "x", floating=True, min_dim=1, nonempty=False)
        return x * self._view(x, self.std) + self._view(x, self.mean)


@dataclass(frozen=True)
class Splits:
    """A dataset cut into train/validation/test ``TensorDataset``\\ s of ``(inputs, targets)``.

    ``val``/``test`` are ``None`` when their fraction is 0. ``num_features`` is the number of input values per
    example (64 for the digits, as features or as 1x8x8 images); ``input_shape`` is the per-example shape;
    ``num_classes`` is ``None`` for regression. ``standardizer`` holds the training-split statistics (``None``
    with ``standardize=False``); ``scale`` is the factor applied after it.
    """

    train: TensorDataset
    val: TensorDataset | None
    test: TensorDataset | None
    num_features: int
    num_classes: int | None
    input_shape: tuple[int, ...]
    feature_names: tuple[str, ...] = ()
    target_names: tuple[str, ...] = ()
    standardizer: Standardizer | None = None
    scale: float = 1.0
    name: str = ""
    seed: int = field(default=0, compare=False)

    def tensors(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(inputs, targets)`` of ``split`` in {"train", "val", "test"}."""
        if split not in ("train", "val", "test"):
            raise fail(ValueError, "split", "one of ['train', 'val', 'test']", repr(split), "Pick one of those.")
        ds = getattr(self, split)
        if ds is None:
            raise fail(
                ValueError, "split", "a split that exists", f"{split!r} (its fraction was 0)", "Pass a fraction > 0."
            )
        inputs, targets = ds.tensors
        return inputs, targets

    def __repr__(self) -> str:
        sizes = ", ".join(
            f"{k}={0 if getattr(self, k) is None else len(getattr(self, k))}" for k in ("train", "val", "test")
        )
        return (
            f"Splits({self.name or 'data'}: {sizes}, input_shape={self.input_shape}, num_classes={self.num_classes}, "
            f"standardized={self.standardizer is not None}, scale={self.scale:g})"
        )


def split_indices(
    targets: torch.Tensor | np.ndarray | None,
    num_samples: int,
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    stratify: bool = True,
    train_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded (stratified) index split into train/val/test, fractions of the whole dataset.

    Two calls of :func:`sklearn.model_selection.train_test_split`: first the test set is cut off, then the
    validation set from the rest (with fraction ``val_fraction / (1 - test_fraction)``, so both fractions refer
    to the whole dataset). With ``stratify`` every split keeps the class proportions of ``targets``.
    ``train_size`` keeps a (stratified) random subset of that many training examples, the rest are dropped.
    Returns three int64 numpy index arrays (in shuffled order); an empty one for a fraction of 0.
    """
    num_samples = check_int(num_samples, "num_samples", low=0)
    if num_samples == 0:
        raise fail(ValueError, "dataset", "at least one example", "an empty dataset", "Check how the data was built.")
    val_fraction = check_real(val_fraction, "val_fraction", low=0.0, high=1.0, high_inclusive=False)
    test_fraction = check_real(test_fraction, "test_fraction", low=0.0, high=1.0, high_inclusive=False)
    if val_fraction + test_fraction >= 1.0:
        raise fail(
            ValueError,
            "val_fraction + test_fraction",
            "a sum below 1 (the rest is the training split)",
            f"{val_fraction} + {test_fraction} = {val_fraction + test_fraction}",
            "Lower one of the two fractions.",
        )
    seed = check_int(seed, "seed", low=0)
    labels = None
    if stratify:
        if targets is None:
            raise fail(ValueError, "targets", "class labels to stratify on", None, "Pass stratify=False.")
        labels = targets.detach().cpu().numpy() if isinstance(targets, torch.Tensor) else np.asarray(targets)
    idx = np.arange(num_samples)

    def cut(ix: np.ndarray, size: float | int, name: str) -> tuple[np.ndarray, np.ndarray]:
        strat = None if labels is None else labels[ix]
        try:
            return train_test_split(ix, test_size=size, random_state=seed, shuffle=True, stratify=strat)
        except ValueError as err:
            raise fail(
                ValueError,
                name,
                "a split that leaves every class (when stratifying) at least one example on each side",
                f"{size} of {len(ix)} examples ({err})",
                "Use a larger fraction/size, more data, or stratify=False.",
            ) from err

    empty = np.empty(0, dtype=np.int64)
    rest, test = cut(idx, test_fraction, "test_fraction") if test_fraction > 0 else (idx, empty)
    if val_fraction > 0:
        train, val = cut(rest, val_fraction / (1.0 - test_fraction), "val_fraction")
    else:
        train, val = rest, empty
    if train_size is not None:
        train_size = check_int(train_size, "train_size", low=1)
        if train_size > len(train):
            raise fail(
                ValueError,
                "train_size",
                f"at most the {len(train)} examples of the training split",
                train_size,
                "Pass a smaller train_size or smaller val/test fractions.",
            )
        if train_size < len(train):
            train, _ = cut(train, len(train) - train_size, "train_size")
    return train.astype(np.int64), val.astype(np.int64), test.astype(np.int64)


def make_splits(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    stratify: bool | None = None,
    train_size: int | None = None,
    standardize: bool = True,
    scale: float = 1.0,
    dtype: torch.dtype | None = None,
    num_classes: int | None = None,
    feature_names: Sequence[str] = (),
    target_names: Sequence[str] = (),
    name: str = "",
) -> Splits:
    """Split ``(inputs, targets)`` into a :class:`Splits`, standardizing with training statistics only.

    Steps: (1) :func:`split_indices` (stratified by default when ``targets`` are integer class labels);
    (2) with ``standardize``, fit a :class:`Standardizer` on the (subsampled) training inputs and apply it to
    every split; (3) multiply every split by ``scale`` (``scale=1e3`` makes deliberately badly scaled inputs
    for ill-conditioning demos). Inputs are cast to ``dtype`` (default: ``torch.get_default_dtype()``);
    integer targets stay int64 class labels, float targets are cast to ``dtype``.

    Args:
        inputs: ``(N, ...)`` floating tensor. targets: ``(N,)`` labels or ``(N, ...)`` regression targets.
    """
    inputs = check_tensor(inputs, "inputs", min_dim=1, nonempty=False)
    targets = check_tensor(targets, "targets", min_dim=1, nonempty=False)
    if len(inputs) == 0:
        raise fail(ValueError, "inputs", "at least one example", "an empty tensor", "Check how the data was built.")
    if len(inputs) != len(targets):
        raise fail(
            ValueError,
            "inputs/targets",
            "the same number of examples",
            f"{len(inputs)} and {len(targets)}",
            "Pass matching tensors.",
        )
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if dtype not in FLOAT_DTYPES:
        raise fail(TypeError, "dtype", "a floating dtype", dtype, "Pass torch.float32 or torch.float64.")
    scale = check_real(scale, "scale", low=0.0, low_inclusive=False)
    classification = not (targets.is_floating_point() or targets.is_complex())
    if stratify is None:
        stratify = classification
    if stratify and not classification:
        raise fail(
            ValueError, "stratify", "integer class-label targets", f"dtype {targets.dtype}", "Pass stratify=False."
        )
    tr, va, te = split_indices(
        targets if stratify else None,
        len(inputs),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        stratify=stratify,
        train_size=train_size,
    )
    x = inputs.to(torch.promote_types(inputs.dtype, dtype))  # standardize in the finer of the two precisions
    y = targets.long() if classification else targets.to(dtype)

    def take(ix: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.as_tensor(ix, dtype=torch.long, device=x.device)
        return x[t], y[t]

    parts = {k: take(ix) if len(ix) else None for k, ix in (("train", tr), ("val", va), ("test", te))}
    standardizer = Standardizer.fit(parts["train"][0]) if standardize else None
    datasets: dict[str, TensorDataset | None] = {}
    for k, part in parts.items():
        if part is None:
            datasets[k] = None
            continue
        xi, yi = part
        if standardizer is not None:
            xi = standardizer(xi)
        if scale != 1.0:
            xi = xi * scale
        datasets[k] = TensorDataset(xi.to(dtype), yi)
    if classification and num_classes is None:
        num_classes = int(y.max()) + 1
    return Splits(
        train=datasets["train"],  # type: ignore[arg-type]
        val=datasets["val"],
        test=datasets["test"],
        num_features=int(np.prod(inputs.shape[1:])) if inputs.dim() > 1 else 1,
        num_classes=num_classes if classification else None,
        input_shape=tuple(inputs.shape[1:]),
        feature_names=tuple(str(f) for f in feature_names),
        target_names=tuple(str(t) for t in target_names),
        standardizer=standardizer,
        scale=scale,
        name=name,
        seed=seed,
    )
