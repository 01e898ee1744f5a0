"""Batch normalization (Ioffe & Szegedy 2015) from plain tensor ops, with the closed-form backward.

For each channel ``c``, over the ``m`` values of that channel in the mini-batch ``B`` (all samples and,
for (N, C, L) or (N, C, H, W) inputs, all positions), training mode computes (Alg. 1 of the paper)

    mu_B      = (1/m) sum_i x_i
    sigma_B^2 = (1/m) sum_i (x_i - mu_B)^2                     (biased: used to normalize)
    x_hat_i   = (x_i - mu_B) / sqrt(sigma_B^2 + eps)
    y_i       = gamma * x_hat_i + beta

and keeps running estimates for inference (Alg. 2), with the *unbiased* variance as PyTorch does:

    running_mean <- (1 - momentum) * running_mean + momentum * mu_B
    running_var  <- (1 - momentum) * running_var  + momentum * sigma_B^2 * m / (m - 1)

(``momentum=None`` uses ``1 / num_batches_tracked``: a cumulative average of every batch seen). In eval mode
``y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta``, an affine map of each sample alone.

The backward is the closed form of section 3 of the paper, simplified (``dy`` = dL/dy):

    dL/dbeta  = sum_i dy_i
    dL/dgamma = sum_i dy_i x_hat_i
    dL/dx_i   = (gamma / (m sqrt(sigma_B^2 + eps))) * (m dy_i - sum_j dy_j - x_hat_i sum_j dy_j x_hat_j)

:class:`BatchNormFunction` implements it; it supports double backward (see its docstring). The modules take
the same arguments and hold the same parameters/buffers as ``torch.nn.BatchNorm1d/2d``, so state dicts load
both ways.

Reference: S. Ioffe and C. Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing
Internal Covariate Shift", ICML 2015, Algorithms 1-2 and section 3.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._checks import check_int, check_positive, check_real, check_tensor, fail
from ._stats import compute_dtype, inverse_std, moments, moments_into

__all__ = [
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNormFunction",
    "batch_norm",
    "batch_norm_backward_reference",
    "batch_norm_reference",
]


def _channel_view(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """Reshape a per-channel vector (C,) so it broadcasts against an (N, C, *) tensor: (1, C, 1, ...)."""
    return t.view(1, -1, *([1] * (ndim - 2)))


def _reduce_dims(x: torch.Tensor) -> tuple[int, ...]:
    """Every dimension except the channel dimension 1: (0,) for (N, C), (0, 2) for (N, C, L), (0, 2, 3), ..."""
    return (0, *range(2, x.dim()))


def batch_norm_reference(
    x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float
) -> torch.Tensor:
    """Training-mode batch norm written line by line as Algorithm 1 (plain differentiable ops, no custom backward).

    ``x`` (N, C, *), ``weight``/``bias`` (C,) or None; returns ``y`` (N, C, *). The reference that
    :class:`BatchNormFunction`'s fused forward is tested against; autograd through it gives the reference
    gradients.
    """
    _, var, centered = moments(x, _reduce_dims(x))  # mu_B (used through x - mu_B), sigma_B^2, x - mu_B
    x_hat = centered * inverse_std(var, eps)
    y = x_hat if weight is None else x_hat * _channel_view(weight, x.dim())
    y = y if bias is None else y + _channel_view(bias, x.dim())
    return y.to(x.dtype)


def batch_norm_backward_reference(
    dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor | None, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The closed-form gradients ``(dL/dx, dL/dgamma, dL/dbeta)`` written as in the module docstring.

    Plain differentiable ops that recompute ``mu_B``, ``sigma_B^2`` and ``x_hat`` from ``x``: used when the
    backward is itself differentiated (double backward) and as the reference the fast path is tested against.
    ``dy``, ``x`` are (N, C, *), ``weight`` (C,) or None; the returned gradients are (N, C, *), (C,), (C,).
    """
    dims = _reduce_dims(x)
    m = x.numel() // x.shape[1]
    _, var, centered = moments(x, dims)
    invstd = inverse_std(var, eps)
    x_hat = centered * invstd
    dy = dy.to(x_hat.dtype)
    gamma = 1.0 if weight is None else _channel_view(weight, x.dim())
    sum_dy = dy.sum(dim=dims, keepdim=True)
    sum_dy_xhat = (dy * x_hat).sum(dim=dims, keepdim=True)
    dx = (gamma * invstd / m) * (m * dy - sum_dy - x_hat * sum_dy_xhat)
    return dx.to(x.dtype), sum_dy_xhat.flatten(), sum_dy.flatten()


class BatchNormFunction(torch.autograd.Function):
    """Training-mode batch norm: ``(x, weight, bias, eps) -> (y, batch_mean, batch_var)``.

    ``x`` is (N, C, *); ``weight``/``bias`` are (C,) or None; ``batch_mean``/``batch_var`` are (C,), the biased
    batch statistics (marked non-differentiable: they only feed the running averages).

    Forward and backward are the formulas of the module docstring with the per-channel factors grouped first,
    so that each is a few fused passes into one output buffer (on CPU every fresh full-size temporary costs
    page faults that outweigh the arithmetic):

        forward:  y  = (x - mu_B) * (gamma invstd) + beta
        backward: dx = (x - mu_B) * k + c + a * dy,   a = gamma invstd,
                  k = -a invstd sum(dy x_hat) / m,    c = -a sum(dy) / m,
                  sum(dy x_hat) = invstd sum(dy (x - mu_B))

    which is ``dx = (a / m)(m dy - sum dy - x_hat sum(dy x_hat))`` expanded. Like torch's kernel it saves
    ``x``, ``mu_B`` and ``invstd`` (not ``x_hat``). ``tests/test_nn_batchnorm.py`` checks it with ``gradcheck``
    and against :func:`batch_norm_reference` / :func:`batch_norm_backward_reference` in float64.

    Double backward is supported: when the backward is itself recorded (``create_graph=True``) it runs
    :func:`batch_norm_backward_reference`, which rebuilds the statistics from ``x`` with differentiable ops,
    so autograd differentiates the closed form exactly (checked with ``gradgradcheck``).
    """

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dims, nd = _reduce_dims(x), x.dim()
        y = torch.empty_like(x, dtype=compute_dtype(x.dtype))  # (N, C, *): (x - mu)^2 first, then the output
        mean, var = moments_into(x, dims, y)  # mu_B, sigma_B^2: (1, C, 1, ...)
        invstd = inverse_std(var, eps)
        scale = invstd if weight is None else _channel_view(weight, nd) * invstd  # gamma invstd
        shift = torch.zeros_like(mean) if bias is None else _channel_view(bias, nd).to(mean.dtype)  # beta
        torch.sub(x, mean, out=y)
        torch.addcmul(shift, y, scale, out=y)  # y = (x - mu_B) * gamma invstd + beta
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.eps = eps
        batch_mean, batch_var = mean.flatten(), var.flatten()
        ctx.mark_non_differentiable(batch_mean, batch_var)
        return y.to(x.dtype), batch_mean, batch_var

    @staticmethod
    def backward(
        ctx: Any, dy: torch.Tensor, _dmean: torch.Tensor | None, _dvar: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        x, weight, mean, invstd = ctx.saved_tensors
        needs_x, needs_w, needs_b = ctx.needs_input_grad[:3]
        if torch.is_grad_enabled():  # create_graph=True: the differentiable reference path
            dx, dweight, dbias = batch_norm_backward_reference(dy, x, weight, ctx.eps)
        else:
            dims, nd = _reduce_dims(x), x.dim()
            m = x.numel() // x.shape[1]
            dy = dy.to(mean.dtype)
            buf = torch.sub(x, mean).mul_(dy)  # (N, C, *): dy * (x - mu_B) now, dx below (one allocation)
            sum_dy_xhat = buf.sum(dim=dims, keepdim=True).mul_(invstd)  # dL/dgamma, (1, C, 1, ...)
            sum_dy = dy.sum(dim=dims, keepdim=True)  # dL/dbeta, (1, C, 1, ...)
            dweight, dbias = sum_dy_xhat.flatten(), sum_dy.flatten()
            dx = None
            if needs_x:
                a = invstd if weight is None else _channel_view(weight, nd) * invstd
                k = a * invstd * sum_dy_xhat / -m
                c = a * sum_dy / -m
                centered = torch.sub(x, mean, out=buf)  # recomputed in place: cheaper than a second buffer
                dx = torch.addcmul(c, centered, k, out=buf).addcmul_(dy, a).to(x.dtype)
        param_dtype = mean.dtype if weight is None else weight.dtype
        return (
            dx if needs_x else None,
            dweight.to(param_dtype) if needs_w else None,
            dbias.to(param_dtype) if needs_b else None,
            None,
        )


def _check_batch_size(x: torch.Tensor, name: str) -> None:
    """Training statistics need at least two values per channel (the variance of one value is 0)."""
    if x.numel() // x.shape[1] == 1:
        raise fail(
            ValueError,
            name,
            "more than 1 value per channel when training",
            f"input of shape {tuple(x.shape)}",
            "Use a batch of at least 2 samples, call .eval() for single-sample inference, or use a "
            "batch-independent normalization (LayerNorm, GroupNorm).",
        )


def batch_norm(
    input: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Functional batch norm with the signature of ``torch.nn.functional.batch_norm``.

    ``input`` (N, C, *). With ``training=True`` normalizes with the batch statistics (module docstring) and,
    when ``running_mean``/``running_var`` (C,) are given, updates them in place with factor ``momentum``
    (unbiased variance). With ``training=False`` normalizes with the running statistics.
    """
    x = check_tensor(input, "input", floating=True, min_dim=2)
    eps = check_positive(eps, "eps")
    momentum = check_real(momentum, "momentum", low=0.0, high=1.0)
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (x.shape[1],):
            raise fail(ValueError, name, f"shape ({x.shape[1]},) (one per channel)", tuple(t.shape), "Fix its size.")
    if training:
        _check_batch_size(x, "batch_norm")
    elif running_mean is None or running_var is None:
        raise fail(
            ValueError,
            "batch_norm",
            "running_mean and running_var when training=False",
            "None",
            "Pass the running statistics, or training=True to normalize with the batch statistics.",
        )
    return _batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)


def _batch_norm(
    x: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    training: bool,
    momentum: float,
    eps: float,
) -> torch.Tensor:
    """:func:`batch_norm` after validation (the modules validate once, in their own terms)."""
    if training:
        y, batch_mean, batch_var = BatchNormFunction.apply(x, weight, bias, eps)
        m = x.numel() // x.shape[1]
        with torch.no_grad():
            if running_mean is not None:  # Alg. 2 step 10, as an exponential moving average
                running_mean.lerp_(batch_mean.to(running_mean.dtype), momentum)
            if running_var is not None:  # unbiased: sigma_B^2 * m / (m - 1)
                running_var.lerp_((batch_var * (m / (m - 1))).to(running_var.dtype), momentum)
        return y
    # Eval: an affine map per channel, y = (x - running_mean) * gamma / sqrt(running_var + eps) + beta.
    cd = compute_dtype(x.dtype)
    y = (x.to(cd) - _channel_view(running_mean, x.dim())) * _channel_view(inverse_std(running_var, eps), x.dim())
    if weight is not None:
        y = y * _channel_view(weight, x.dim())
    if bias is not None:
        y = y + _channel_view(bias, x.dim())
    return y.to(x.dtype)


class _BatchNorm(nn.Module):
    """Shared state and forward of :class:`BatchNorm1d` and :class:`BatchNorm2d` (torch's ``_BatchNorm``)."""

    _version = 2  # as torch: version 2 added num_batches_tracked
    _input_ndims: tuple[int, ...] = ()
    _input_shapes: str = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.num_features = check_int(num_features, "num_features", low=1)
        self.eps = check_positive(eps, "eps")
        self.momentum = None if momentum is None else check_real(momentum, "momentum", low=0.0, high=1.0)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        if self.affine:
            self.weight = nn.Parameter(torch.empty(num_features, **factory))  # gamma
            if bias:
                self.bias = nn.Parameter(torch.empty(num_features, **factory))  # beta
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches seen."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """gamma = 1, beta = 0 (the identity transform after normalization), and fresh running statistics."""
        self.reset_running_stats()
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def _check_input(self, x: torch.Tensor) -> None:
        name = type(self).__name__
        check_tensor(x, "input", floating=True)
        if x.dim() not in self._input_ndims:
            raise fail(ValueError, name, f"a {self._input_shapes} input", f"shape {tuple(x.shape)}", "Reshape it.")
        if x.shape[1] != self.num_features:
            raise fail(
                ValueError,
                name,
                f"{self.num_features} channels in dimension 1 (num_features)",
                f"input of shape {tuple(x.shape)}",
                "Pass the channel count of the input as num_features, or transpose channels to dimension 1.",
            )

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Normalize ``input`` with batch statistics in training mode, running statistics in eval mode."""
        self._check_input(input)
        # Without running statistics there is nothing else to normalize with, even in eval mode (as torch).
        use_batch_stats = self.training or self.running_mean is None
        if use_batch_stats:  # checked before any buffer changes, so a rejected batch leaves no trace
            _check_batch_size(input, type(self).__name__)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        track = not self.training or self.track_running_stats
        return _batch_norm(
            input,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            use_batch_stats,
            factor,
            self.eps,
        )

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # Checkpoints written before num_batches_tracked existed (version < 2) load with a count of 0, as in torch.
        version = local_metadata.get("version")
        key = prefix + "num_batches_tracked"
        if (version is None or version < 2) and self.track_running_stats and key not in state_dict:
            state_dict[key] = torch.tensor(0, dtype=torch.long, device=self.running_mean.device)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch norm over a (N, C) or (N, C, L) input; statistics per channel over N (and L).

    Arguments, parameters (``weight`` = gamma, ``bias`` = beta, shape (C,)) and buffers (``running_mean``,
    ``running_var``, ``num_batches_tracked``) are those of ``torch.nn.BatchNorm1d``:

    - ``num_features``: C. ``eps`` (1e-5): added to the variance under the square root.
    - ``momentum`` (0.1): weight of the new batch in the running averages; ``None`` = cumulative average.
    - ``affine`` (True): learn gamma, beta. ``track_running_stats`` (True): keep running averages; if False,
      batch statistics are used in eval mode too.
    - ``bias`` (keyword, True): with ``affine``, learn beta too; ``bias=False`` keeps gamma only (recent torch
      releases have the same keyword).

    Formulas (training, eval, running-average update, backward): see :mod:`deepbasics.nn.batchnorm`.
    Reference: Ioffe & Szegedy 2015, Alg. 1 and 2.
    """

    _input_ndims = (2, 3)
    _input_shapes = "2-D (N, C) or 3-D (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch norm over a (N, C, H, W) input; statistics per channel over N, H and W (the paper's section 3.2).

    Same arguments, parameters and buffers as :class:`BatchNorm1d` and ``torch.nn.BatchNorm2d``.
    Reference: Ioffe & Szegedy 2015, Alg. 1-2 and section 3.2 (convolutional networks).
    """

    _input_ndims = (4,)
    _input_shapes = "4-D (N, C, H, W)"
