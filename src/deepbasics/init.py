r"""Weight initialization from first principles (FAQ Q1).

Every initializer fills a weight tensor **in place** (under ``torch.no_grad``, like ``torch.nn.init``) and
returns it. Shapes follow PyTorch: a linear weight is ``(out, in)``, a convolution weight is
``(out, in / groups, *kernel)``; with receptive field ``k = prod(kernel)``,

    fan_in = in * k,    fan_out = out * k.

The FAQ's rule (Glorot & Bengio, 2010, sec. 4.2) with ``m = fan_in`` and ``n = fan_out``:

    W_ij ~ U(-a, a),   a = sqrt(6 / (m + n)),   so   Var(W) = a^2 / 3 = 2 / (m + n).

A uniform ``U(-a, a)`` has variance ``a^2 / 3``; Glorot & Bengio ask for ``m Var(W) = 1`` (forward signal)
and ``n Var(W) = 1`` (backward gradient), and the harmonic compromise ``Var(W) = 2 / (m + n)`` gives
``a = sqrt(6 / (m + n))``. Every variant here is "pick Var(W), then draw from a uniform or a normal with
that variance":

==================  =========================================  ============================================
initializer         Var(W)                                     reference
==================  =========================================  ============================================
glorot_*            gain^2 * 2 / (fan_in + fan_out)            Glorot & Bengio (2010), sec. 4.2
he_*                gain(nonlinearity, a)^2 / fan              He et al. (2015), sec. 2.2
lecun_*             gain^2 / fan_in                            LeCun et al. (1998), Efficient BackProp, 4.6
orthogonal_         gain^2 / max(rows, cols)                   Saxe et al. (2013), sec. 3; Mezzadri (2007)
truncated_normal_   std^2 (1 - 2 b phi(b) / (2 Phi(b) - 1))    Robert (1995)
==================  =========================================  ============================================

Random numbers come from ``generator`` (a ``torch.Generator`` on the tensor's device) so that an
initialization is reproducible. Half-precision tensors are sampled in float32 and rounded once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ._checks import check_choice, check_generator, check_positive, check_real, check_tensor, fail

__all__ = [
    "constant_",
    "fan_in_and_fan_out",
    "gain",
    "glorot_bound",
    "glorot_normal_",
    "glorot_uniform_",
    "he_normal_",
    "he_uniform_",
    "lecun_normal_",
    "lecun_uniform_",
    "orthogonal_",
    "truncated_normal_",
    "zeros_",
]

_LINEAR_NAMES = (
    "linear",
    "identity",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
)
NONLINEARITIES = (*_LINEAR_NAMES, "tanh", "relu", "leaky_relu", "selu")
# Below this bound (in units of std) normal proposals are accepted with probability 2 Phi(b) - 1 < 0.68, so
# the truncated normal switches to uniform proposals on [-b, b], accepted with probability >= exp(-1/2).
_UNIFORM_PROPOSAL_BELOW = 1.0


# ----------------------------------------------------------------------------------------------- helpers
def _check_weight(t: object, name: str = "tensor") -> torch.Tensor:
    return check_tensor(t, name, floating=True, min_dim=2)


def _check_generator(generator: object, t: torch.Tensor) -> torch.Generator | None:
    generator = check_generator(generator)
    if generator is not None and generator.device.type != t.device.type:
        raise fail(
            ValueError,
            "generator",
            f"a generator on the tensor's device ({t.device.type})",
            f"a generator on {generator.device.type}",
            f"Create it with torch.Generator(device={str(t.device)!r}).",
        )
    return generator


def _sampling_dtype(t: torch.Tensor) -> torch.dtype:
    # float16/bfloat16 have too few bits for QR, rejection tests and erfinv: sample in float32, round once.
    return t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32


def _fill(t: torch.Tensor, draw: Callable[[torch.Tensor], object]) -> torch.Tensor:
    """Apply the in-place sampler ``draw`` to ``t`` (or to a float32 buffer copied into a half tensor)."""
    if _sampling_dtype(t) == t.dtype:
        draw(t)
    else:
        buf = torch.empty(t.shape, dtype=torch.float32, device=t.device)
        draw(buf)
        t.copy_(buf)
    return t


def fan_in_and_fan_out(t: torch.Tensor) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight tensor, with PyTorch's convention.

    For ``t`` of shape ``(out, in, *kernel)`` with ``k = prod(kernel)`` (``k = 1`` for a linear weight):
    ``fan_in = in * k`` and ``fan_out = out * k``. Identical to
    ``torch.nn.init._calculate_fan_in_and_fan_out``. Raises ``ValueError`` for fewer than 2 dimensions.
    """
    t = check_tensor(t, "tensor", min_dim=2)
    receptive_field = math.prod(t.shape[2:])
    return t.shape[1] * receptive_field, t.shape[0] * receptive_field


def _fan(t: torch.Tensor, mode: str) -> int:
    check_choice(mode, "mode", ("fan_in", "fan_out"))
    fan_in, fan_out = fan_in_and_fan_out(t)
    return fan_in if mode == "fan_in" else fan_out


def gain(nonlinearity: str, param: float | None = None) -> float:
    r"""Recommended gain for a nonlinearity, the same numbers as ``torch.nn.init.calculate_gain``.

    linear / identity / conv* / sigmoid: 1; tanh: 5/3; relu: sqrt(2); selu: 3/4;
    leaky_relu: sqrt(2 / (1 + a^2)) with negative slope ``a = param`` (default 0.01).
    The ReLU value comes from He et al. (2015), sec. 2.2: a ReLU halves the second moment of a symmetric
    input, so ``Var(W) = 2 / fan_in`` keeps it constant; a leaky ReLU keeps ``(1 + a^2) / 2`` of it.
    """
    check_choice(nonlinearity, "nonlinearity", NONLINEARITIES)
    if nonlinearity in _LINEAR_NAMES:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "selu":
        return 3.0 / 4.0
    slope = 0.01 if param is None else check_real(param, "param (negative slope)")
    return math.sqrt(2.0 / (1.0 + slope**2))


def glorot_bound(fan_in: int, fan_out: int, gain: float = 1.0) -> float:
    """Half-width of Glorot's uniform: ``gain * sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio 2010, eq. 16)."""
    fan_in = check_positive(fan_in, "fan_in")
    fan_out = check_positive(fan_out, "fan_out")
    gain = check_positive(gain, "gain", strict=False)
    return gain * math.sqrt(6.0 / (fan_in + fan_out))


# ------------------------------------------------------------------------------ variance-scaling families
def _uniform_(t: torch.Tensor, bound: float, generator: torch.Generator | None) -> torch.Tensor:
    return _fill(t, lambda buf: buf.uniform_(-bound, bound, generator=generator))


def _normal_(t: torch.Tensor, std: float, generator: torch.Generator | None) -> torch.Tensor:
    return _fill(t, lambda buf: buf.normal_(0.0, std, generator=generator))


@torch.no_grad()
def glorot_uniform_(t: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Glorot/Xavier uniform, the FAQ's rule: ``W ~ U(-a, a)``, ``a = gain * sqrt(6 / (fan_in + fan_out))``.

    ``Var(W) = a^2 / 3 = gain^2 * 2 / (fan_in + fan_out)``: the compromise between keeping the forward
    variance (``fan_in Var(W) = 1``) and the backward variance (``fan_out Var(W) = 1``) of tanh/linear
    layers (Glorot & Bengio, 2010, sec. 4.2, eq. 16). ``t``: (out, in, *kernel); returns ``t``.
    """
    t = _check_weight(t)
    generator = _check_generator(generator, t)
    fan_in, fan_out = fan_in_and_fan_out(t)
    return _uniform_(t, glorot_bound(fan_in, fan_out, gain), generator)


@torch.no_grad()
def glorot_normal_(t: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Glorot/Xavier normal: ``W ~ N(0, gain^2 * 2 / (fan_in + fan_out))`` (Glorot & Bengio, 2010, sec. 4.2).

    Same variance as :func:`glorot_uniform_` (the FAQ: Gaussian or uniform matters little, the scale does).
    """
    t = _check_weight(t)
    generator = _check_generator(generator, t)
    gain = check_positive(gain, "gain", strict=False)
    fan_in, fan_out = fan_in_and_fan_out(t)
    return _normal_(t, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _he_std(t: torch.Tensor, a: float, mode: str, nonlinearity: str) -> float:
    return gain(nonlinearity, a) / math.sqrt(_fan(t, mode))


@torch.no_grad()
def he_uniform_(
    t: torch.Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "relu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""He/Kaiming uniform: ``W ~ U(-b, b)``, ``b = sqrt(3) * gain(nonlinearity, a) / sqrt(fan)``.

    ``Var(W) = gain^2 / fan`` with ``fan = fan_in`` (``mode="fan_in"``: forward variance preserved) or
    ``fan_out`` (backward). For ReLU ``gain^2 = 2``: a ReLU zeroes half of a symmetric input, so
    ``Var(y_l) = fan_in Var(W) Var(y_{l-1}) / 2`` is constant when ``Var(W) = 2 / fan_in`` (He et al., 2015,
    sec. 2.2, eq. 10). ``a`` is the leaky-ReLU negative slope (used with ``nonlinearity="leaky_relu"``).
    Same numbers as ``torch.nn.init.kaiming_uniform_``.
    """
    t = _check_weight(t)
    generator = _check_generator(generator, t)
    return _uniform_(t, math.sqrt(3.0) * _he_std(t, a, mode, nonlinearity), generator)  # Var U(-b, b) = b^2/3


@torch.no_grad()
def he_normal_(
    t: torch.Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "relu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""He/Kaiming normal: ``W ~ N(0, gain(nonlinearity, a)^2 / fan)`` (He et al., 2015, sec. 2.2).

    Arguments as in :func:`he_uniform_`; same numbers as ``torch.nn.init.kaiming_normal_``.
    """
    t = _check_weight(t)
    generator = _check_generator(generator, t)
    return _normal_(t, _he_std(t, a, mode, nonlinearity), generator)


@torch.no_grad()
def lecun_normal_(t: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""LeCun normal: ``W ~ N(0, gain^2 / fan_in)``.

    With inputs of unit variance, a unit's pre-activation ``sum_i W_i x_i`` then has unit variance, the
    linear regime of a scaled tanh (LeCun, Bottou, Orr & Müller, 1998, "Efficient BackProp", sec. 4.6).
    """
    t = _check_weight(t)
    generator = _check_generator(generator, t)
    gain = check_positive(gain, "gain", strict=False)
    return _normal_(t, gain / math.sqrt(fan_in_and_fan_out(t)[0]), generator)


@torch.no_grad()
def lecun_uniform_(t: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""LeCun uniform: ``W ~ U(-b, b)``, ``b = gain * sqrt(3 / fan_in)``, so ``Var(W) = gain^2 / fan_in``.

    Same variance as :func:`lecun_normal_` (LeCun et al., 1998, "Efficient BackProp", sec. 4.6).
    """
    t = _check_weight(t)
    generator = _check_generator(generator, t)
    gain = check_positive(gain, "gain", strict=False)
    return _uniform_(t, math.sqrt(3.0) * gain / math.sqrt(fan_in_and_fan_out(t)[0]), generator)


# ------------------------------------------------------------------------------------------- orthogonal
@torch.no_grad()
def orthogonal_(t: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Random (semi-)orthogonal weights, Haar-distributed, times ``gain`` (Saxe et al., 2013, sec. 3).

    ``t`` of shape ``(out, *rest)`` is viewed as a matrix ``(rows, cols) = (out, prod(rest))`` (conv weights
    flattened). Draw ``A ~ N(0, 1)^(max x min)``, factor ``A = Q R`` and set ``Q <- Q diag(sign(diag R))``:
    without the sign correction ``Q`` is *not* uniform on the orthogonal group (Mezzadri, 2007, sec. 5).
    Tall (rows >= cols): ``W^T W = gain^2 I``; wide: ``W W^T = gain^2 I``. Every singular value equals
    ``gain``, so a deep linear network's product of such matrices preserves norms (the point of Saxe et al.).
    Entry variance is ``gain^2 / max(rows, cols)``.
    """
    t = _check_weight(t)
    generator = _check_generator(generator, t)
    gain = check_positive(gain, "gain", strict=False)
    rows = t.shape[0]
    cols = t.numel() // rows
    a = torch.empty((rows, cols), dtype=_sampling_dtype(t), device=t.device).normal_(0.0, 1.0, generator=generator)
    if rows < cols:
        a = a.mT  # (cols, rows): QR needs a tall matrix
    q, r = torch.linalg.qr(a)  # q: (max, min) with orthonormal columns
    d = torch.diagonal(r).sign()
    d = torch.where(d == 0, torch.ones_like(d), d)  # sign(0) = 0 would zero a column (probability 0, but safe)
    q = q * d  # flip column j by the sign of R_jj: Haar measure
    if rows < cols:
        q = q.mT  # (rows, cols)
    t.copy_(q.reshape(t.shape))
    return t.mul_(gain)


# ------------------------------------------------------------------------------------- truncated normal
def _truncated_standard_normal(
    n: int, bound: float, dtype: torch.dtype, device: torch.device, generator: torch.Generator | None
) -> torch.Tensor:
    """``n`` exact draws of ``Z ~ N(0, 1)`` conditioned on ``|Z| <= bound``, by vectorised rejection.

    ``bound >= 1``: propose ``N(0, 1)``, accept ``|z| <= bound`` (rate ``2 Phi(b) - 1 >= 0.68``).
    ``bound < 1``: propose ``U(-b, b)``, accept with probability ``exp(-z^2 / 2)`` (rate ``>= exp(-1/2)``);
    both are exact (Robert, 1995, sec. 2). Only rejected entries are redrawn, until none remain.
    """
    out = torch.empty(n, dtype=dtype, device=device)
    todo = torch.arange(n, device=device)
    while todo.numel() > 0:
        k = todo.numel()
        z = torch.empty(k, dtype=dtype, device=device)
        if bound >= _UNIFORM_PROPOSAL_BELOW:
            z.normal_(0.0, 1.0, generator=generator)
            accept = z.abs() <= bound
        else:
            z.uniform_(-bound, bound, generator=generator)
            u = torch.empty(k, dtype=dtype, device=device).uniform_(0.0, 1.0, generator=generator)
            accept = (u < torch.exp(-0.5 * z * z)) & (z.abs() <= bound)
        out[todo[accept]] = z[accept]
        todo = todo[~accept]
    return out


@torch.no_grad()
def truncated_normal_(
    t: torch.Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    bound: float = 2.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Fill ``t`` with ``N(mean, std^2)`` truncated to ``[mean - bound * std, mean + bound * std]``.

    ``bound`` is in units of ``std`` (the FAQ's "truncated Gaussian"; TensorFlow's default is 2). Values
    outside are **redrawn**, never clamped, so the result is exactly the truncated normal with density
    ``phi((x - mean) / std) / (std * (2 Phi(bound) - 1))`` on the interval. Its variance is
    ``std^2 (1 - 2 bound phi(bound) / (2 Phi(bound) - 1))``: smaller than ``std^2``, by 12% at ``bound = 2``;
    rescale ``std`` if you need an exact target variance. ``t``: any shape (also 1-D); returns ``t``.
    """
    t = check_tensor(t, "tensor", floating=True)
    generator = _check_generator(generator, t)
    mean = check_real(mean, "mean")
    std = check_positive(std, "std")
    bound = check_positive(bound, "bound")
    z = _truncated_standard_normal(t.numel(), bound, _sampling_dtype(t), t.device, generator)
    t.copy_((mean + std * z).reshape(t.shape))
    return t


# ----------------------------------------------------------------------------------------------- constant
@torch.no_grad()
def constant_(t: torch.Tensor, value: float) -> torch.Tensor:
    """Fill ``t`` with ``value``. Every unit of a layer then computes the same function and receives the same
    gradient, so the symmetry is never broken (FAQ Q1.f; Goodfellow et al., 2016, sec. 8.4)."""
    t = check_tensor(t, "tensor", floating=True)
    return t.fill_(check_real(value, "value"))


def zeros_(t: torch.Tensor) -> torch.Tensor:
    """Fill ``t`` with zeros (see :func:`constant_` for why this cannot train a hidden layer)."""
    return constant_(t, 0.0)
