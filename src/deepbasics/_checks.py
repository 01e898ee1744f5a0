"""Argument checks shared by every public function.

Each check raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right kind, bad value) with a
message in three parts, as PyTorch and equinox do: what was expected, what was received, and the fix.
Nothing here returns silently wrong data; on success each check returns its (possibly converted) input
so that calls read ``x = check_tensor(x, "x")``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Real

import torch
from torch import nn

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def fail(kind: type[Exception], name: str, expected: str, got: object, fix: str) -> Exception:
    """Build the project's standard error: ``<name>: expected <expected>, got <got>. <fix>``."""
    return kind(f"{name}: expected {expected}, got {got}. {fix}")


def check_tensor(
    x: object,
    name: str,
    *,
    floating: bool = False,
    min_dim: int | None = None,
    ndim: int | None = None,
    nonempty: bool = True,
    finite: bool = False,
) -> torch.Tensor:
    """Check that ``x`` is a tensor with the required properties and return it.

    ``floating`` asks for a float16/bfloat16/float32/float64 dtype; ``min_dim``/``ndim`` for a rank;
    ``nonempty`` (default) rejects tensors with zero elements; ``finite`` rejects inf and nan.
    """
    if not isinstance(x, torch.Tensor):
        raise fail(TypeError, name, "a torch.Tensor", type(x).__name__, "Convert it with torch.as_tensor(...).")
    if floating and x.dtype not in FLOAT_DTYPES:
        raise fail(
            TypeError, name, "a floating-point tensor", f"dtype {x.dtype}", "Convert it with .float() or .double()."
        )
    if ndim is not None and x.dim() != ndim:
        raise fail(ValueError, name, f"a {ndim}-D tensor", f"shape {tuple(x.shape)}", "Reshape it.")
    if min_dim is not None and x.dim() < min_dim:
        raise fail(
            ValueError, name, f"a tensor with at least {min_dim} dimensions", f"shape {tuple(x.shape)}", "Reshape it."
        )
    if nonempty and x.numel() == 0:
        raise fail(ValueError, name, "a non-empty tensor", f"shape {tuple(x.shape)}", "Pass at least one element.")
    if finite and not bool(torch.isfinite(x).all()):
        raise fail(ValueError, name, "finite values", "inf or nan entries", "Remove or clamp the non-finite entries.")
    return x


def check_dim(x: torch.Tensor, dim: int, name: str = "dim") -> int:
    """Check that ``dim`` indexes a dimension of ``x`` (negative allowed) and return it normalized."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise fail(TypeError, name, "an int", type(dim).__name__, "Pass the dimension as an integer.")
    n = max(x.dim(), 1)
    if not -n <= dim < n:
        raise fail(ValueError, name, f"a dimension in [{-n}, {n - 1}]", dim, f"The tensor has shape {tuple(x.shape)}.")
    return dim % n


def check_real(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    finite: bool = True,
) -> float:
    """Check that ``value`` is a real number (not bool) inside the given interval and return it as float."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise fail(TypeError, name, "a real number", type(value).__name__, "Pass a Python float or int.")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise fail(ValueError, name, "a finite number", value, "Pass a finite value.")
    lo_ok = low is None or (value >= low if low_inclusive else value > low)
    hi_ok = high is None or (value <= high if high_inclusive else value < high)
    if not (lo_ok and hi_ok):
        left = "(-inf" if low is None else ("[" if low_inclusive else "(") + f"{low:g}"
        right = "inf)" if high is None else f"{high:g}" + ("]" if high_inclusive else ")")
        raise fail(ValueError, name, f"a value in {left}, {right}", value, "Choose a value inside that interval.")
    return value


def check_positive(value: object, name: str, *, strict: bool = True) -> float:
    """Check ``value > 0`` (or ``>= 0`` with ``strict=False``)."""
    return check_real(value, name, low=0.0, low_inclusive=not strict)


def check_int(value: object, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """Check that ``value`` is an int (not bool) in ``[low, high]`` and return it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(TypeError, name, "an int", type(value).__name__, "Pass a whole number.")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise fail(ValueError, name, f"an integer in {span}", value, "Choose a value inside that range.")
    return value


def check_choice(value: object, name: str, choices: Iterable[object]) -> object:
    """Check that ``value`` is one of ``choices``; the message lists them."""
    choices = tuple(choices)
    if value not in choices:
        raise fail(ValueError, name, f"one of {list(choices)}", repr(value), "Pick one of the listed values.")
    return value


def check_module(model: object, name: str = "model", *, has_params: bool = True) -> nn.Module:
    """Check that ``model`` is an ``nn.Module`` (with at least one trainable parameter by default)."""
    if not isinstance(model, nn.Module):
        raise fail(
            TypeError, name, "a torch.nn.Module", type(model).__name__, "Wrap your function in an nn.Module subclass."
        )
    if has_params and not any(p.requires_grad for p in model.parameters()):
        raise fail(
            ValueError,
            name,
            "a module with at least one parameter that requires grad",
            "none",
            "Check that the model has layers and that its parameters are not all frozen.",
        )
    return model


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Check that two tensors have equal shapes."""
    if a.shape != b.shape:
        raise fail(
            ValueError,
            f"{name_a}/{name_b}",
            "tensors of the same shape",
            f"{tuple(a.shape)} and {tuple(b.shape)}",
            "Broadcast or reshape them to one shape first.",
        )


def check_generator(generator: object, name: str = "generator") -> torch.Generator | None:
    """Check that ``generator`` is ``None`` or a ``torch.Generator``."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise fail(
            TypeError, name, "a torch.Generator or None", type(generator).__name__, "Create one with torch.Generator()."
        )
    return generator
