"""Image augmentation as small composable transforms on batches ``(N, C, H, W)``.

Each random transform is a thin class over a pure function: :func:`shift` and :func:`rotate` take explicit
per-image parameters (testable against exact references such as ``torch.roll`` and ``torch.rot90``);
:class:`RandomShift`, :class:`RandomRotation` and :class:`GaussianNoise` draw those parameters independently
for every image from their own ``torch.Generator`` (the global RNG when ``None``), so an augmented run is
reproducible and resumable. :class:`Compose` chains transforms (optax's ``chain``); :class:`AugmentedDataset`
applies one to a dataset's inputs whenever it is indexed, so it works per example or per batch.

Data augmentation enlarges the training set with label-preserving distortions (Simard, Steinkraus & Platt,
"Best practices for convolutional neural networks applied to visual document analysis", ICDAR 2003,
section 2; Goodfellow, Bengio & Courville, *Deep Learning*, 2016, section 7.4; FAQ claims Q10.a, CNN.d).

Fill value: pixels that enter the frame get ``fill``. For standardized images the blank background is not 0
but ``-mean/std``; pass ``fill=float(splits.standardizer(torch.zeros(1, 1, 1, 1)))`` (or augment before
standardizing).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .._checks import check_generator, check_int, check_real, check_tensor, fail

__all__ = ["AugmentedDataset", "Compose", "GaussianNoise", "RandomRotation", "RandomShift", "rotate", "shift"]

Transform = Callable[[torch.Tensor], torch.Tensor]


def _batched(x: object, name: str = "images") -> tuple[torch.Tensor, bool]:
    x = check_tensor(x, name, floating=True)
    if x.dim() not in (3, 4):
        raise fail(
            ValueError, name, "images of shape (N, C, H, W) or (C, H, W)", f"shape {tuple(x.shape)}", "Reshape them."
        )
    return (x, False) if x.dim() == 4 else (x.unsqueeze(0), True)


def _per_image(value: torch.Tensor | float, n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    t = torch.as_tensor(value, device=device, dtype=dtype)
    if t.dim() == 0:
        return t.expand(n)
    if t.shape != (n,):
        raise fail(ValueError, "per-image parameter", f"a scalar or shape ({n},)", f"shape {tuple(t.shape)}", "")
    return t


def shift(images: torch.Tensor, dy: torch.Tensor | int, dx: torch.Tensor | int, fill: float = 0.0) -> torch.Tensor:
    """Translate each image by whole pixels: content moves ``dy`` rows down and ``dx`` columns right.

    ``out[n, c, i, j] = images[n, c, i - dy[n], j - dx[n]]`` where that index lies inside the image, ``fill``
    elsewhere (unlike ``torch.roll``, nothing wraps around). ``dy``/``dx``: ints or int tensors ``(N,)``.
    Shape ``(N, C, H, W)`` or ``(C, H, W)`` is preserved.
    """
    x, unbatched = _batched(images)
    fill = check_real(fill, "fill")
    n, _, h, w = x.shape
    dy = _per_image(dy, n, x.device, torch.long)
    dx = _per_image(dx, n, x.device, torch.long)
    rows = torch.arange(h, device=x.device) - dy[:, None]  # (N, H) source row of each output row
    cols = torch.arange(w, device=x.device) - dx[:, None]  # (N, W)
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]  # (N, H, W)
    batch = torch.arange(n, device=x.device)[:, None, None]  # (N, 1, 1)
    picked = x[batch, :, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]  # (N, H, W, C)
    out = torch.where(inside[..., None], picked, torch.full_like(picked, fill)).permute(0, 3, 1, 2)  # (N, C, H, W)
    return out.squeeze(0) if unbatched else out.contiguous()


def rotate(images: torch.Tensor, degrees: torch.Tensor | float, fill: float = 0.0) -> torch.Tensor:
    """Rotate each image about its centre by ``degrees`` counter-clockwise (as displayed, row 0 on top).

    Bilinear resampling through :func:`torch.nn.functional.affine_grid` / ``grid_sample`` (Jaderberg et al.,
    "Spatial transformer networks", NeurIPS 2015, section 3.2), ``align_corners=False`` so pixel centres map
    to pixel centres: 0 degrees is the identity and 90 degrees equals ``torch.rot90(images, 1, (-2, -1))`` on
    square images (up to round-off). The output pixel at centred position ``p = (u, v)`` (u right, v down, in
    pixels) samples the input at ``(u cos - v sin, u sin + v cos)``; the sampling weight that falls outside the
    image is given ``fill``. ``degrees``: a float or a tensor ``(N,)``.
    """
    x, unbatched = _batched(images)
    fill = check_real(fill, "fill")
    n, _, h, w = x.shape
    theta = _per_image(degrees, n, x.device, x.dtype) * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    # With the v axis pointing down, a counter-clockwise turn of the content samples the input at
    # (u, v) -> (u cos - v sin, u sin + v cos) in pixels; affine_grid works in coordinates normalized
    # by W/2 and H/2, hence the aspect-ratio factors h/w and w/h on the off-diagonal terms.
    zero = torch.zeros_like(cos)
    mat = torch.stack(
        [torch.stack([cos, -sin * (h / w), zero], -1), torch.stack([sin * (w / h), cos, zero], -1)], dim=-2
    )  # (N, 2, 3)
    grid = F.affine_grid(mat, list(x.shape), align_corners=False)  # (N, H, W, 2)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if fill != 0.0:
        weight = F.grid_sample(torch.ones_like(x[:, :1]), grid, mode="bilinear", align_corners=False)
        out = out + fill * (1.0 - weight)
    return out.squeeze(0) if unbatched else out


def _device_of(generator: torch.Generator | None, x: torch.Tensor) -> torch.device:
    return x.device if generator is None else generator.device


class RandomShift:
    """Shift every image by independent uniform integer offsets ``dy, dx in {-max_pixels, ..., max_pixels}``.

    Calls :func:`shift`; draws ``dy`` then ``dx`` (shape ``(N,)``) from ``generator``.
    """

    def __init__(self, max_pixels: int = 1, *, fill: float = 0.0, generator: torch.Generator | None = None):
        self.max_pixels = check_int(max_pixels, "max_pixels", low=0)
        self.fill = check_real(fill, "fill")
        self.generator = check_generator(generator)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x, unbatched = _batched(images)
        m, n, dev = self.max_pixels, x.shape[0], _device_of(self.generator, x)
        dy = torch.randint(-m, m + 1, (n,), generator=self.generator, device=dev).to(x.device)
        dx = torch.randint(-m, m + 1, (n,), generator=self.generator, device=dev).to(x.device)
        out = shift(x, dy, dx, self.fill)
        return out.squeeze(0) if unbatched else out

    def __repr__(self) -> str:
        return f"RandomShift(max_pixels={self.max_pixels}, fill={self.fill:g})"


class RandomRotation:
    """Rotate every image by an independent angle ``theta ~ U(-max_degrees, max_degrees)`` (degrees).

    Calls :func:`rotate`; draws the ``(N,)`` angles from ``generator``.
    """

    def __init__(self, max_degrees: float = 10.0, *, fill: float = 0.0, generator: torch.Generator | None = None):
        self.max_degrees = check_real(max_degrees, "max_degrees", low=0.0, high=180.0)
        self.fill = check_real(fill, "fill")
        self.generator = check_generator(generator)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x, unbatched = _batched(images)
        u = torch.rand(x.shape[0], generator=self.generator, device=_device_of(self.generator, x), dtype=x.dtype)
        out = rotate(x, ((2.0 * u - 1.0) * self.max_degrees).to(x.device), self.fill)
        return out.squeeze(0) if unbatched else out

    def __repr__(self) -> str:
        return f"RandomRotation(max_degrees={self.max_degrees:g}, fill={self.fill:g})"


class GaussianNoise:
    """Add i.i.d. Gaussian pixel noise: ``x + std * eps``, ``eps ~ N(0, I)`` (Bishop, Neural Computation 1995).

    Training with small input noise is equivalent to Tikhonov regularization (Bishop 1995, section 3). Works on
    any floating tensor shape.
    """

    def __init__(self, std: float, *, generator: torch.Generator | None = None):
        self.std = check_real(std, "std", low=0.0)
        self.generator = check_generator(generator)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = check_tensor(x, "x", floating=True)
        eps = torch.randn(x.shape, generator=self.generator, device=_device_of(self.generator, x), dtype=x.dtype)
        return x + self.std * eps.to(x.device)

    def __repr__(self) -> str:
        return f"GaussianNoise(std={self.std:g})"


class Compose:
    """Apply ``transforms`` in order: ``Compose([f, g])(x) == g(f(x))``."""

    def __init__(self, transforms: Sequence[Transform]):
        transforms = list(transforms)
        for i, t in enumerate(transforms):
            if not callable(t):
                raise fail(TypeError, f"transforms[{i}]", "a callable", type(t).__name__, "Pass transform objects.")
        self.transforms = transforms

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return f"Compose([{', '.join(map(repr, self.transforms))}])"


class AugmentedDataset(Dataset):
    """Wrap a dataset of ``(inputs, targets, ...)`` items and apply ``transform`` to the inputs on access.

    Indexing with an int gives one transformed example; indexing with a list/tensor of indices (as
    :func:`~deepbasics.data.loader` does for ``TensorDataset``\\ s) transforms the whole batch in one call,
    with independent random parameters per image. Only the training split should be augmented.
    """

    def __init__(self, dataset: Dataset, transform: Transform):
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise fail(
                TypeError, "dataset", "a map-style dataset", type(dataset).__name__, "Pass e.g. a TensorDataset."
            )
        if not callable(transform):
            raise fail(TypeError, "transform", "a callable", type(transform).__name__, "Pass e.g. RandomShift(1).")
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: object) -> tuple[torch.Tensor, ...]:
        inputs, *rest = self.dataset[index]
        return (self.transform(inputs), *rest)
