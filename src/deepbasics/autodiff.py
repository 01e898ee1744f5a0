"""Jacobians, Hessians and Hessian-vector products by automatic differentiation (FAQ Q11).

For ``f: R^n -> R^m`` (any tensor shapes) the Jacobian and, for scalar ``f``, the Hessian are

    J[i, j] = d f_i / d x_j,            shape  f(x).shape + x.shape
    H[i, j] = d^2 f / (d x_i d x_j),    shape  x.shape + x.shape      (symmetric when f is C^2: Schwarz)
    H v     = d/dt grad f(x + t v) |_{t=0}                            (forward-over-reverse, one pass)

This module is a thin, documented layer over ``torch.func`` (``jacrev``, ``jacfwd``, ``hessian``, ``jvp``,
``grad``), plus the two independent references the tests need (central finite differences in float64)
and the dense Hessian of a model's mean loss over its trainable parameters (``loss_hessian``), which is the
ground truth for :mod:`deepbasics.curvature`. The helpers ``trainable_parameters``, ``flatten_params``,
``unflatten`` and ``model_mode`` are shared with the curvature and noise instruments.

Reference: Griewank & Walther, *Evaluating Derivatives* (2nd ed., 2008), ch. 3-5 (forward and reverse
mode) and §5.4 (second-order adjoints); Pearlmutter, "Fast exact multiplication by the Hessian" (1994).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from ._checks import check_choice, check_int, check_module, check_positive, check_tensor, fail

__all__ = [
    "finite_difference_hessian",
    "finite_difference_jacobian",
    "flatten_params",
    "hessian",
    "hvp",
    "jacobian",
    "loss_hessian",
    "model_mode",
    "trainable_parameters",
    "unflatten",
]

TensorFn = Callable[[torch.Tensor], torch.Tensor]


def _check_fn(f: object, name: str = "f") -> None:
    if not callable(f):
        raise fail(TypeError, name, "a callable taking a tensor", type(f).__name__, "Pass a function or a lambda.")


def _scalar(out: object, name: str = "f(x)", fix: str = "Reduce the output, e.g. with .sum().") -> torch.Tensor:
    """Return ``out`` as a 0-d tensor, or raise: Hessians and HVPs need a scalar function."""
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise fail(ValueError, name, "a scalar (one-element) tensor", got, fix)
    return out.reshape(())


def _mean_loss(loss: object) -> torch.Tensor:
    """``loss_fn(model(inputs), targets)`` as a 0-d tensor; the shared check of every model-level derivative."""
    return _scalar(
        loss, "loss_fn(model(inputs), targets)", "Use reduction='mean' (the torch.nn default) or reduce with .mean()."
    )


def jacobian(f: TensorFn, x: torch.Tensor, *, mode: str = "reverse") -> torch.Tensor:
    """Jacobian ``J[i, j] = d f(x)_i / d x_j`` of a tensor function at ``x``.

    Args:
        f: a function of one tensor returning a tensor, written with torch operations.
        x: the point, a floating tensor of any shape (n).
        mode: ``"reverse"`` (``torch.func.jacrev``, one VJP per output: cheaper when ``f(x).numel() <= x.numel()``)
            or ``"forward"`` (``torch.func.jacfwd``, one JVP per input: cheaper for few inputs).

    Returns:
        Tensor of shape ``f(x).shape + x.shape`` (m, n for vectors), dtype and device of ``f(x)``.
    """
    _check_fn(f)
    x = check_tensor(x, "x", floating=True)
    check_choice(mode, "mode", ("reverse", "forward"))
    transform = torch.func.jacrev if mode == "reverse" else torch.func.jacfwd
    return transform(f)(x)


def hessian(f: TensorFn, x: torch.Tensor) -> torch.Tensor:
    """Hessian ``H[i, j] = d^2 f / (d x_i d x_j)`` at ``x`` by forward-over-reverse (``torch.func.hessian``).

    For scalar ``f`` the result has shape ``x.shape + x.shape`` and is symmetric up to rounding when ``f`` is
    twice continuously differentiable (Schwarz's theorem; FAQ Q11.a). A non-scalar ``f`` gives the stack of the
    Hessians of its entries, shape ``f(x).shape + x.shape + x.shape``.
    """
    _check_fn(f)
    x = check_tensor(x, "x", floating=True)
    return torch.func.hessian(f)(x)


def hvp(f: TensorFn, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Hessian-vector product ``H(x) v = d/dt grad f(x + t v) |_{t=0}`` without forming ``H``.

    Pearlmutter's trick as a forward-mode derivative (``torch.func.jvp``) of the reverse-mode gradient
    (``torch.func.jacrev``): about the cost of two gradient evaluations, memory O(n).

    Args:
        f: a scalar function of one tensor (a one-element output is accepted and squeezed).
        x: the point, floating tensor of shape (n) (any shape).
        v: the direction, same shape, dtype and device as ``x``.

    Returns:
        ``H v``, shape ``x.shape``.
    """
    _check_fn(f)
    x = check_tensor(x, "x", floating=True)
    v = check_tensor(v, "v", floating=True)
    if v.shape != x.shape or v.dtype != x.dtype:
        raise fail(
            ValueError,
            "v",
            f"a tensor like x ({tuple(x.shape)}, {x.dtype})",
            f"{tuple(v.shape)}, {v.dtype}",
            "Pass a direction with the shape and dtype of x.",
        )
    # jacrev of a scalar is its gradient; torch.func.grad under jvp trips over split views (ZeroTensor error)
    return torch.func.jvp(torch.func.jacrev(lambda t: _scalar(f(t))), (x,), (v,))[1]


# --------------------------------------------------------------------------------------------------------------------
# Finite differences: the independent reference


def _check_float64(x: torch.Tensor, name: str) -> torch.Tensor:
    # We refuse rather than cast: central differences in float32 lose ~half the digits (roundoff eps/h with
    # eps = 1.2e-7), and a silent cast would hide that the function under test runs in float32 too.
    x = check_tensor(x, name, floating=True)
    if x.dtype != torch.float64:
        raise fail(
            TypeError,
            name,
            "a float64 tensor (finite differences are only a reference in double precision)",
            f"dtype {x.dtype}",
            "Pass x.double() and make f compute in float64.",
        )
    return x


def finite_difference_jacobian(f: TensorFn, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Central-difference Jacobian ``J[:, j] ≈ (f(x + eps e_j) - f(x - eps e_j)) / (2 eps)`` in float64.

    Truncation error O(eps^2 |f'''|), roundoff O(1e-16 |f| / eps): about 1e-10 relative at the default
    ``eps = 1e-6``. ``2 n`` evaluations of ``f``. ``x`` and ``f(x)`` must be float64 (TypeError otherwise).

    Returns:
        Tensor of shape ``f(x).shape + x.shape``, like :func:`jacobian`.
    """
    _check_fn(f)
    x = _check_float64(x, "x")
    eps = check_positive(eps, "eps")
    flat = x.detach().reshape(-1)  # (n,)
    with torch.no_grad():
        out_shape = _check_float64(f(x.detach()), "f(x)").shape
        columns = []
        for j in range(flat.numel()):
            step = torch.zeros_like(flat)
            step[j] = eps
            columns.append((f((flat + step).view_as(x)) - f((flat - step).view_as(x))) / (2 * eps))
    return torch.stack(columns, dim=-1).reshape(*out_shape, *x.shape)  # (*out, n) -> (*out, *x.shape)


def finite_difference_hessian(f: TensorFn, x: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Central-difference Hessian of a scalar ``f`` from function values only, in float64.

        H[i, j] ≈ (f(x + h e_i + h e_j) - f(x + h e_i - h e_j) - f(x - h e_i + h e_j) + f(x - h e_i - h e_j)) / (4 h^2)

    with ``h = eps`` (for ``i = j`` this is the second difference with step ``2h``). Truncation error
    O(h^2 |f''''|), roundoff O(1e-16 |f| / h^2): about 1e-8 at the default ``eps = 1e-4``. The formula is
    symmetric in (i, j), so only the upper triangle is evaluated: ``2 n (n + 1)`` evaluations of ``f``.
    ``x`` and ``f(x)`` must be float64 (TypeError otherwise).

    Returns:
        Tensor of shape ``x.shape + x.shape``.
    """
    _check_fn(f)
    x = _check_float64(x, "x")
    eps = check_positive(eps, "eps")
    flat = x.detach().reshape(-1)  # (n,)
    n = flat.numel()

    def value(i: int, si: float, j: int, sj: float) -> torch.Tensor:
        point = flat.clone()
        point[i] += si * eps
        point[j] += sj * eps
        return _scalar(f(point.view_as(x)))

    with torch.no_grad():
        _check_float64(_scalar(f(x.detach())), "f(x)")
        out = torch.empty(n, n, dtype=x.dtype, device=x.device)
        for i in range(n):
            for j in range(i, n):
                d = value(i, 1, j, 1) - value(i, 1, j, -1) - value(i, -1, j, 1) + value(i, -1, j, -1)
                out[i, j] = out[j, i] = d / (4 * eps * eps)
    return out.reshape(*x.shape, *x.shape)


# --------------------------------------------------------------------------------------------------------------------
# Model parameters as one flat vector


def trainable_parameters(model: nn.Module) -> tuple[list[str], list[nn.Parameter]]:
    """Names and tensors of the parameters with ``requires_grad``, in ``model.named_parameters()`` order.

    Raises ValueError when there is none, or when they do not share one floating dtype and one device (a flat
    parameter vector needs both).
    """
    check_module(model, "model")
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    names, params = [n for n, _ in named], [p for _, p in named]
    kinds = {(p.dtype, p.device) for p in params}
    if len(kinds) > 1:
        raise fail(
            ValueError,
            "model",
            "trainable parameters of one dtype on one device",
            sorted(map(str, kinds)),
            "Move the model with model.to(device, dtype) first.",
        )
    return names, params


def flatten_params(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors (e.g. parameters or their gradients) into one vector of shape (P,), P = sum numel."""
    if len(tensors) == 0:
        raise fail(ValueError, "tensors", "at least one tensor", "an empty sequence", "Pass the model's parameters.")
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vector: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Split a (P,) vector into views shaped like ``like`` (the inverse of :func:`flatten_params`)."""
    sizes = [t.numel() for t in like]
    vector = check_tensor(vector, "vector", ndim=1)
    if vector.numel() != sum(sizes):
        raise fail(
            ValueError,
            "vector",
            f"{sum(sizes)} entries (one per parameter)",
            vector.numel(),
            "Build it with flatten_params(...) over the same tensors.",
        )
    return [chunk.view_as(t) for chunk, t in zip(vector.split(sizes), like, strict=True)]


@contextmanager
def model_mode(model: nn.Module, *, train: bool = False) -> Iterator[nn.Module]:
    """Evaluate ``model`` in eval mode or in train mode without side effects, restoring its state afterwards.

    ``train=False``: dropout off, BatchNorm normalizes with its running statistics. ``train=True``: dropout on,
    BatchNorm normalizes with the batch statistics but does not update its running statistics (its
    ``track_running_stats`` is switched off for the duration, which is the same train-mode formula minus the
    in-place update). Restored on exit: the ``training`` flag of every submodule, BatchNorm's
    ``track_running_stats`` and, in train mode, every buffer (in case a custom module updates one).
    """
    flags = [(m, m.training) for m in model.modules()]
    norms = [(m, m.track_running_stats) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(b, b.detach().clone()) for b in model.buffers()] if train else []
    model.train(train)
    if train:
        for module, _ in norms:
            module.track_running_stats = False
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag
        for module, tracked in norms:
            module.track_running_stats = tracked
        with torch.no_grad():
            for buffer, copy in saved:
                buffer.copy_(copy)


# --------------------------------------------------------------------------------------------------------------------
# Dense Hessian of a model's loss (the ground truth for deepbasics.curvature)


def loss_hessian(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    max_params: int = 5000,
    chunk_size: int = 256,
    train_mode: bool = False,
) -> torch.Tensor:
    """Dense Hessian of the mean loss over all trainable parameters of a small model.

        L(theta) = loss_fn(model(inputs; theta), targets),     H = d^2 L / d theta^2,   shape (P, P)

    ``theta`` is the flat vector of the parameters with ``requires_grad`` in ``model.parameters()`` order (see
    :func:`flatten_params`); frozen parameters and buffers are held fixed. Columns are computed as
    Hessian-vector products ``H e_j`` by forward-over-reverse (``torch.func.jvp`` of ``torch.func.jacrev`` of
    ``torch.func.functional_call``), vectorized with ``torch.func.vmap`` over ``chunk_size`` basis vectors at a time,
    i.e. ``torch.func.hessian`` computed in chunks to bound memory. Cost: P / chunk_size batched HVPs;
    memory O(P^2 + chunk_size * activations).

    Args:
        model: the network; evaluated in eval mode unless ``train_mode=True`` (its modes are restored).
        loss_fn: ``loss_fn(model(inputs), targets)`` must return the scalar mean loss, as torch.nn losses do.
        inputs, targets: one batch.
        max_params: refuse models with more trainable parameters (the matrix has P^2 entries).
        chunk_size: basis vectors per vectorized pass.
        train_mode: evaluate with dropout and batch statistics; one dropout mask is drawn and used for every
            column, so the result is the Hessian of one stochastic loss; BatchNorm uses batch statistics (see
            :func:`model_mode`).

    Returns:
        Tensor (P, P) in the parameters' dtype and device; symmetric up to rounding (not symmetrized).
    """
    names, params = trainable_parameters(model)
    if not callable(loss_fn):
        raise fail(
            TypeError,
            "loss_fn",
            "a callable (outputs, targets) -> loss",
            type(loss_fn).__name__,
            "Pass e.g. torch.nn.MSELoss().",
        )
    inputs = check_tensor(inputs, "inputs")
    max_params = check_int(max_params, "max_params", low=1)
    chunk_size = check_int(chunk_size, "chunk_size", low=1)
    num_params = sum(p.numel() for p in params)
    if num_params > max_params:
        raise ValueError(
            f"model: expected at most max_params={max_params} trainable parameters for a dense Hessian, got "
            f"{num_params} (the matrix would have {num_params**2:,} entries). Use deepbasics.curvature for "
            f"matrix-free estimates, or pass max_params={num_params} to allow it."
        )
    theta = flatten_params([p.detach() for p in params])  # (P,)

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        outputs = torch.func.functional_call(model, dict(zip(names, unflatten(flat, params), strict=True)), (inputs,))
        return _mean_loss(loss_fn(outputs, targets))

    def column(direction: torch.Tensor) -> torch.Tensor:  # H @ direction, (P,)
        # jacrev, not grad: torch.func.grad under jvp fails on unflatten's split views ("ZeroTensors are immutable")
        return torch.func.jvp(torch.func.jacrev(loss_of), (theta,), (direction,))[1]

    eye = torch.eye(num_params, dtype=theta.dtype, device=theta.device)  # (P, P)
    seed = int(torch.randint(0, 2**62, ()).item()) if train_mode else 0
    blocks = []
    with model_mode(model, train=train_mode):
        for basis in eye.split(chunk_size):  # (c, P)
            with torch.random.fork_rng(devices=[theta.device] if theta.device.type == "cuda" else []):
                torch.manual_seed(seed)  # the same dropout mask for every chunk
                blocks.append(torch.func.vmap(column, randomness="same")(basis))  # (c, P) rows H e_j
    return torch.cat(blocks).T.contiguous().detach()  # (P, P); column j = H e_j
