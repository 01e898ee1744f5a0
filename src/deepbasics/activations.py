"""Activation functions from their formulas, each with its analytic derivative, and a maxout layer.

FAQ Q3.3.2 (the sigmoid's derivative ``sigma(z)(1 - sigma(z)) <= 1/4`` vanishes on saturation, which causes
vanishing gradients), Q4 (a maxout unit approximates any convex function) and Q15 (which activation to use).

Every ``f`` here has a companion ``f_grad(z) = df/dz`` written from the closed form, so the lab and the doctor
can reason about derivatives without autograd, and the tests compare both with torch. ``ACTIVATIONS`` maps a
name to ``(fn, grad, torch_module)`` for code that iterates over them; :func:`get` looks one up.

Numerics: every function is finite for ``|z|`` up to 1e4 (and beyond) in every float dtype. float16/bfloat16
inputs are computed in float32 and cast back, as torch does. Exponentials only ever see non-positive
arguments (``sigmoid`` uses ``e^{-|z|}`` through :func:`deepbasics.numerics.split_where`), so nothing overflows
to ``inf / inf = nan``. At kinks (``z = 0`` for ReLU, leaky ReLU, ELU, SELU) the derivative follows torch's
convention: the value of the ``z <= 0`` branch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_choice, check_int, check_positive, check_real, check_tensor, fail
from .numerics import log1pexp, split_where, upcast

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Maxout",
    "elu",
    "elu_grad",
    "gelu",
    "gelu_grad",
    "get",
    "leaky_relu",
    "leaky_relu_grad",
    "relu",
    "relu_grad",
    "selu",
    "selu_grad",
    "sigmoid",
    "sigmoid_grad",
    "silu",
    "silu_grad",
    "softplus",
    "softplus_grad",
    "tanh",
    "tanh_grad",
]

Fn = Callable[[torch.Tensor], torch.Tensor]

# SELU's fixed point constants (Klambauer et al. 2017, eq. 14), the digits torch uses.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_C = 0.044715  # Hendrycks & Gimpel 2016, sec. 2


def _apply(z: object, f: Fn) -> torch.Tensor:
    """Check ``z``, evaluate ``f`` in at least float32, return in ``z``'s dtype."""
    z = check_tensor(z, "z", floating=True, nonempty=False)
    return f(upcast(z)).to(z.dtype)


def _sigmoid(t: torch.Tensor) -> torch.Tensor:
    return split_where(t, lambda u: 1 / (1 + torch.exp(-u)), lambda u: torch.exp(u) / (1 + torch.exp(u)))


def sigmoid(z: torch.Tensor) -> torch.Tensor:
    """Logistic sigmoid ``sigma(z) = 1 / (1 + e^{-z})``, evaluated as ``e^z / (1 + e^z)`` for ``z < 0``.

    Either form alone overflows on one side (``e^{-z}`` for ``z << 0``); using the one whose exponent is
    ``-|z| <= 0`` keeps every value in [0, 1] with no nan. Shape, dtype and device of ``z``.
    """
    return _apply(z, _sigmoid)


def sigmoid_grad(z: torch.Tensor) -> torch.Tensor:
    """``sigma'(z) = sigma(z)(1 - sigma(z))`` (FAQ Q3.3.2), computed as ``sigma(z) sigma(-z)`` (no cancellation).

    At most 1/4 (at ``z = 0``) and tending to 0 as ``|z|`` grows: a saturated sigmoid passes almost no
    gradient, and a stack of them multiplies factors ``<= 1/4`` (vanishing gradients, FAQ Q3.3).
    """
    return _apply(z, lambda t: _sigmoid(t) * _sigmoid(-t))


def _tanh(t: torch.Tensor) -> torch.Tensor:
    # (1 - e^{-2z}) / (1 + e^{-2z}) for z >= 0; expm1 keeps full relative precision near 0
    return split_where(
        t,
        lambda u: -torch.expm1(-2 * u) / (1 + torch.exp(-2 * u)),
        lambda u: torch.expm1(2 * u) / (1 + torch.exp(2 * u)),
    )


def tanh(z: torch.Tensor) -> torch.Tensor:
    """``tanh(z) = (e^z - e^{-z}) / (e^z + e^{-z}) = 2 sigma(2z) - 1``, evaluated with ``e^{-2|z|}`` only."""
    return _apply(z, _tanh)


def tanh_grad(z: torch.Tensor) -> torch.Tensor:
    """``tanh'(z) = 1 - tanh(z)^2``, computed as ``4 sigma(2z) sigma(-2z)`` (accurate in the tails); max 1 at 0."""
    return _apply(z, lambda t: 4 * _sigmoid(2 * t) * _sigmoid(-2 * t))


def relu(z: torch.Tensor) -> torch.Tensor:
    """``relu(z) = max(z, 0)`` (Nair & Hinton 2010). Derivative 1 for ``z > 0``: no saturation there (FAQ Q3.3.h)."""
    return _apply(z, lambda t: torch.where(t > 0, t, torch.zeros_like(t)))


def relu_grad(z: torch.Tensor) -> torch.Tensor:
    """``relu'(z) = 1 if z > 0 else 0`` (0 at the kink, as torch). A unit whose inputs stay negative is dead."""
    return _apply(z, lambda t: (t > 0).to(t.dtype))


def leaky_relu(z: torch.Tensor, negative_slope: float = 0.01) -> torch.Tensor:
    """``z if z > 0 else negative_slope * z`` (Maas et al. 2013): never exactly zero gradient, so no dead units."""
    a = check_real(negative_slope, "negative_slope")
    return _apply(z, lambda t: torch.where(t > 0, t, a * t))


def leaky_relu_grad(z: torch.Tensor, negative_slope: float = 0.01) -> torch.Tensor:
    """``1 if z > 0 else negative_slope`` (``negative_slope`` at the kink, as torch)."""
    a = check_real(negative_slope, "negative_slope")
    return _apply(z, lambda t: torch.where(t > 0, torch.ones_like(t), torch.full_like(t, a)))


def _elu(t: torch.Tensor, alpha: float) -> torch.Tensor:
    return split_where(t, lambda u: u, lambda u: alpha * torch.expm1(u), strict=True)


def _elu_grad(t: torch.Tensor, alpha: float) -> torch.Tensor:
    return torch.where(t > 0, torch.ones_like(t), alpha * torch.exp(t.clamp_max(0)))


def elu(z: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """``z if z > 0 else alpha (e^z - 1)`` (Clevert et al. 2016, eq. 1); ``e^z - 1`` via ``expm1``."""
    a = check_real(alpha, "alpha")
    return _apply(z, lambda t: _elu(t, a))


def elu_grad(z: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """``1 if z > 0 else alpha e^z`` (``alpha`` at the kink, as torch)."""
    a = check_real(alpha, "alpha")
    return _apply(z, lambda t: _elu_grad(t, a))


def selu(z: torch.Tensor) -> torch.Tensor:
    """``scale * elu(z, alpha)`` with ``alpha ~ 1.6733``, ``scale ~ 1.0507`` (Klambauer et al. 2017, eq. 2).

    The constants make zero mean and unit variance a fixed point of the layer map for suitably initialized
    weights (self-normalizing networks).
    """
    return _apply(z, lambda t: SELU_SCALE * _elu(t, SELU_ALPHA))


def selu_grad(z: torch.Tensor) -> torch.Tensor:
    """``scale if z > 0 else scale * alpha * e^z`` (the negative branch at the kink, as torch)."""
    return _apply(z, lambda t: SELU_SCALE * _elu_grad(t, SELU_ALPHA))


def _check_approximate(approximate: str) -> str:
    return str(check_choice(approximate, "approximate", ("none", "tanh")))


def _gelu(t: torch.Tensor, approximate: str) -> torch.Tensor:
    if approximate == "tanh":
        return 0.5 * t * (1 + torch.tanh(_SQRT_2_OVER_PI * (t + _GELU_TANH_C * t**3)))
    return t * 0.5 * torch.special.erfc(-t / math.sqrt(2.0))  # Phi(z) via erfc: no 1 + erf(-large) cancellation


def gelu(z: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """Gaussian error linear unit ``gelu(z) = z Phi(z)``, ``Phi`` the standard normal CDF (Hendrycks & Gimpel 2016).

    ``approximate="tanh"``: ``0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))`` (their sec. 2), as in
    ``torch.nn.functional.gelu(z, approximate="tanh")``. ``Phi(z) = erfc(-z / sqrt 2) / 2``.
    """
    approximate = _check_approximate(approximate)
    return _apply(z, lambda t: _gelu(t, approximate))


def _gelu_grad(t: torch.Tensor, approximate: str) -> torch.Tensor:
    if approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (t + _GELU_TANH_C * t**3)
        th = torch.tanh(inner)
        return 0.5 * (1 + th) + 0.5 * t * (1 - th * th) * _SQRT_2_OVER_PI * (1 + 3 * _GELU_TANH_C * t * t)
    cdf = 0.5 * torch.special.erfc(-t / math.sqrt(2.0))
    pdf = torch.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)
    return cdf + t * pdf


def gelu_grad(z: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """``gelu'(z) = Phi(z) + z phi(z)`` with ``phi`` the normal density; for ``approximate="tanh"``,
    ``0.5 (1 + T) + 0.5 z (1 - T^2) sqrt(2/pi) (1 + 3 * 0.044715 z^2)``, ``T = tanh(sqrt(2/pi)(z + 0.044715 z^3))``.
    """
    approximate = _check_approximate(approximate)
    return _apply(z, lambda t: _gelu_grad(t, approximate))


def silu(z: torch.Tensor) -> torch.Tensor:
    """``silu(z) = z sigma(z)`` (Elfwing et al. 2018; "swish", Ramachandran et al. 2017)."""
    return _apply(z, lambda t: t * _sigmoid(t))


def silu_grad(z: torch.Tensor) -> torch.Tensor:
    """``silu'(z) = sigma(z) (1 + z (1 - sigma(z)))``, with ``1 - sigma(z)`` computed as ``sigma(-z)``."""
    return _apply(z, lambda t: _sigmoid(t) * (1 + t * _sigmoid(-t)))


def _softplus_args(beta: float, threshold: float) -> tuple[float, float]:
    return check_positive(beta, "beta"), check_real(threshold, "threshold")


def softplus(z: torch.Tensor, beta: float = 1.0, threshold: float = 20.0) -> torch.Tensor:
    """``softplus(z) = log(1 + e^{beta z}) / beta``, and ``z`` itself where ``beta z > threshold`` (as torch).

    Computed with the stable :func:`deepbasics.numerics.log1pexp`, so it stays finite for any ``threshold``
    (torch's own formula overflows when ``threshold`` exceeds ~88 in float32). Defaults as ``torch.nn.Softplus``.
    """
    b, th = _softplus_args(beta, threshold)
    return _apply(z, lambda t: torch.where(b * t > th, t, log1pexp(b * t) / b))


def softplus_grad(z: torch.Tensor, beta: float = 1.0, threshold: float = 20.0) -> torch.Tensor:
    """``softplus'(z) = sigma(beta z)``, and 1 in the linear region ``beta z > threshold``."""
    b, th = _softplus_args(beta, threshold)
    return _apply(z, lambda t: torch.where(b * t > th, torch.ones_like(t), _sigmoid(b * t)))


class Activation(NamedTuple):
    """One registry entry: the function, its analytic derivative, and the torch module that is its reference."""

    fn: Fn
    grad: Fn
    torch_module: type[nn.Module]


ACTIVATIONS: Mapping[str, Activation] = MappingProxyType(
    {
        "sigmoid": Activation(sigmoid, sigmoid_grad, nn.Sigmoid),
        "tanh": Activation(tanh, tanh_grad, nn.Tanh),
        "relu": Activation(relu, relu_grad, nn.ReLU),
        "leaky_relu": Activation(leaky_relu, leaky_relu_grad, nn.LeakyReLU),
        "elu": Activation(elu, elu_grad, nn.ELU),
        "selu": Activation(selu, selu_grad, nn.SELU),
        "gelu": Activation(gelu, gelu_grad, nn.GELU),
        "silu": Activation(silu, silu_grad, nn.SiLU),
        "softplus": Activation(softplus, softplus_grad, nn.Softplus),
    }
)
"""Name -> ``Activation(fn, grad, torch_module)``; each ``fn``/``grad`` with its default arguments matches
``torch_module()`` with its defaults."""


def get(name: str) -> Activation:
    """Look up ``ACTIVATIONS[name]``; an unknown name raises ``ValueError`` listing the known ones."""
    if not isinstance(name, str):
        raise fail(TypeError, "name", "a str", type(name).__name__, f"Pass one of {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[str(check_choice(name, "name", ACTIVATIONS))]


class Maxout(nn.Module):
    """Maxout layer (Goodfellow et al. 2013, eq. 1): ``h_i(x) = max_{j <= k} (x W_{i j}^T + b_{i j})``.

    Each of the ``out_features`` units takes the maximum of ``pieces`` (k) affine functions of the input.
    A maximum of affine functions is convex and piecewise linear, and with enough pieces it approximates
    any convex function to arbitrary precision (FAQ Q4); with ``k = 2`` pieces ``x`` and ``-x`` it is ``|x|``
    exactly, and with ``0`` and ``x`` it is a ReLU.

    Args:
        in_features: size D of each input. out_features: number of units U. pieces: affine pieces k >= 1.
        bias: learn the offsets ``b``. device, dtype: as for ``nn.Linear``.

    Shapes: ``weight`` (U, k, D), ``bias`` (U, k); input (..., D) -> output (..., U).
    Init as ``nn.Linear``: every weight and bias ~ U(-1/sqrt(D), 1/sqrt(D)).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        pieces: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_int(in_features, "in_features", low=1)
        self.out_features = check_int(out_features, "out_features", low=1)
        self.pieces = check_int(pieces, "pieces", low=1)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(self.out_features, self.pieces, self.in_features, **factory))
        self.bias = nn.Parameter(torch.empty(self.out_features, self.pieces, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(D), 1/sqrt(D)) for weight and bias, the bound ``nn.Linear``'s default init gives."""
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_tensor(x, "x", floating=True, min_dim=1, nonempty=False)
        if x.shape[-1] != self.in_features:
            raise fail(
                ValueError,
                "x",
                f"last dimension {self.in_features} (in_features)",
                f"shape {tuple(x.shape)}",
                "Reshape the input or build Maxout with the matching in_features.",
            )
        w = self.weight.reshape(-1, self.in_features)  # (U*k, D)
        b = self.bias.reshape(-1) if self.bias is not None else None  # (U*k,)
        z = F.linear(x, w, b).unflatten(-1, (self.out_features, self.pieces))  # (..., U, k)
        return z.amax(-1)  # (..., U)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, pieces={self.pieces}, "
            f"bias={self.bias is not None}"
        )
