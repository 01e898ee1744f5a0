"""scikit-learn's bundled real datasets as seeded, standardized train/validation/test splits.

All four ship inside scikit-learn (no download): ``load_digits`` (Alpaydin & Kaynak, UCI "Optical Recognition
of Handwritten Digits", 1797 8x8 images, 10 classes), ``load_breast_cancer`` (Wolberg et al., UCI "Breast
Cancer Wisconsin (Diagnostic)", 569 x 30, 2 classes), ``load_wine`` (Forina et al., UCI "Wine", 178 x 13,
3 classes) and ``load_iris`` (Fisher 1936, 150 x 4, 3 classes).

Every loader returns a :class:`~deepbasics.data.splits.Splits` built by
:func:`~deepbasics.data.splits.make_splits`: stratified, seeded splits whose fractions refer to the whole
dataset, standardization fitted on the training split only (``standardize=False`` keeps the raw values; the
breast-cancer features' standard deviations then span 3e-3 to 6e2, a ready-made unnormalized-input example),
then ``scale``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from sklearn import datasets as skd

from .splits import Splits, make_splits

__all__ = ["breast_cancer", "digits", "iris", "wine"]

# The digits' pixels are counts of set bits in 4x4 blocks of a 32x32 bitmap: integers 0..16.
DIGITS_MAX = 16.0


def _load(
    loader: Callable[..., object],
    name: str,
    *,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    train_size: int | None,
    standardize: bool,
    scale: float,
    dtype: torch.dtype | None,
) -> Splits:
    bunch = loader()
    x = torch.as_tensor(bunch.data, dtype=torch.float64)  # type: ignore[attr-defined]
    if transform is not None:
        x = transform(x)
    y = torch.as_tensor(bunch.target, dtype=torch.long)  # type: ignore[attr-defined]
    return make_splits(
        x,
        y,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        stratify=True,
        train_size=train_size,
        standardize=standardize,
        scale=scale,
        dtype=dtype,
        num_classes=len(bunch.target_names),  # type: ignore[attr-defined]
        feature_names=list(bunch.feature_names),  # type: ignore[attr-defined]
        target_names=[str(t) for t in bunch.target_names],  # type: ignore[attr-defined]
        name=name,
    )


def digits(
    *,
    as_images: bool = False,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    train_size: int | None = None,
    standardize: bool = True,
    scale: float = 1.0,
    dtype: torch.dtype | None = None,
) -> Splits:
    """Handwritten digits 0-9: 1797 examples, inputs ``(N, 64)`` or, with ``as_images``, ``(N, 1, 8, 8)``.

    Pixels are first divided by 16 (their maximum) into [0, 1]; with ``standardize`` they are then z-scored
    with training statistics, per pixel for feature vectors and with one mean/std for the single channel of
    images (per-pixel statistics would erase the spatial structure a convolution relies on). Constant pixels
    (always blank in the training split) are only centred. Targets: int64 labels ``(N,)`` in 0..9.

    Args:
        as_images: return ``(N, 1, 8, 8)`` images (row-major, row 0 at the top) instead of 64 features.
        val_fraction, test_fraction: fractions of all 1797 examples; stratified by class.
        seed: ``random_state`` of the splits. train_size: keep only this many training examples (stratified).
        standardize: z-score with training statistics. scale: multiply the inputs by this afterwards.
        dtype: input dtype (default ``torch.get_default_dtype()``).

    Reference: Alpaydin & Kaynak (1998), UCI Optical Recognition of Handwritten Digits;
    ``sklearn.datasets.load_digits``.
    """

    def transform(x: torch.Tensor) -> torch.Tensor:
        x = x / DIGITS_MAX
        return x.reshape(-1, 1, 8, 8) if as_images else x  # (N, 64) -> (N, C=1, H=8, W=8)

    return _load(
        skd.load_digits,
        "digits",
        transform=transform,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        train_size=train_size,
        standardize=standardize,
        scale=scale,
        dtype=dtype,
    )


def breast_cancer(
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    train_size: int | None = None,
    standardize: bool = True,
    scale: float = 1.0,
    dtype: torch.dtype | None = None,
) -> Splits:
    """Breast Cancer Wisconsin (Diagnostic): 569 examples x 30 features, 2 classes (0 malignant, 1 benign).

    Raw features differ in scale by five orders of magnitude (standard deviations from 3e-3 to 6e2, values up to
    4254); ``standardize=False`` keeps them so.
    Arguments as in :func:`digits`. Reference: Street, Wolberg & Mangasarian (1993); UCI; ``load_breast_cancer``.
    """
    return _load(
        skd.load_breast_cancer,
        "breast_cancer",
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        train_size=train_size,
        standardize=standardize,
        scale=scale,
        dtype=dtype,
    )


def wine(
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    train_size: int | None = None,
    standardize: bool = True,
    scale: float = 1.0,
    dtype: torch.dtype | None = None,
) -> Splits:
    """Wine recognition: 178 examples x 13 chemical features, 3 cultivars.

    Arguments as in :func:`digits`. Reference: Forina et al. (1988); UCI Wine; ``sklearn.datasets.load_wine``.
    """
    return _load(
        skd.load_wine,
        "wine",
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        train_size=train_size,
        standardize=standardize,
        scale=scale,
        dtype=dtype,
    )


def iris(
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    train_size: int | None = None,
    standardize: bool = True,
    scale: float = 1.0,
    dtype: torch.dtype | None = None,
) -> Splits:
    """Fisher's iris: 150 examples x 4 measurements (cm), 3 species.

    Arguments as in :func:`digits`. Reference: Fisher (1936), Annals of Eugenics 7(2); ``load_iris``.
    """
    return _load(
        skd.load_iris,
        "iris",
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        train_size=train_size,
        standardize=standardize,
        scale=scale,
        dtype=dtype,
    )
