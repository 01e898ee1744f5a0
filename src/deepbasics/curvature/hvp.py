"""Hessian-vector products of a model's mean loss: the matrix-free operator behind every curvature estimate.

For parameters theta (flattened, P entries, see :func:`deepbasics.autodiff.flatten_params`) and data with N
examples, the mean loss, its Hessian and a Hessian-vector product are

    L(theta) = loss_fn(model(inputs; theta), targets),   H = d^2 L / d theta^2  (P, P),   H v = d/dtheta (g . v)

with g = dL/dtheta. ``H v`` is computed by double backward (Pearlmutter 1994): one backward pass with
``create_graph=True`` gives g as a differentiable function of theta, and ``torch.autograd.grad(g, theta, v)``
differentiates ``g . v`` once more. For one batch the first pass is done once and its graph is reused by every
product, so an HVP costs one backward pass through the gradient's graph (about two gradients). For an iterable
of batches B_b of sizes n_b (a DataLoader) the mean-loss Hessian is the size-weighted mean of batch Hessians,

    H v = sum_b (n_b / N) H_b v,      N = sum_b n_b,

which needs ``loss_fn`` to return the *mean* over its batch (torch.nn losses do by default). The batch graphs
are rebuilt for every product, so memory stays that of one batch.

The model is evaluated in eval mode (dropout off, BatchNorm with running statistics) unless
``train_mode=True``; see :func:`deepbasics.autodiff.model_mode`. Gradients are taken with
``torch.autograd.grad``, so the parameters' ``.grad`` fields are never touched.

Reference: Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation 6(1), 1994.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .._checks import check_tensor, fail
from ..autodiff import _mean_loss, flatten_params, model_mode, trainable_parameters, unflatten

__all__ = ["HessianOperator", "hessian_operator", "hessian_vector_product"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Data = torch.Tensor | Iterable[tuple[torch.Tensor, torch.Tensor]]


def _check_batch(inputs: object, targets: object, where: str) -> tuple[torch.Tensor, object]:
    inputs = check_tensor(inputs, f"{where} inputs", min_dim=1, nonempty=False)
    if inputs.shape[0] == 0:
        raise fail(
            ValueError,
            f"{where} inputs",
            "at least one example",
            f"shape {tuple(inputs.shape)}",
            "Pass a non-empty batch.",
        )
    if isinstance(targets, torch.Tensor) and targets.dim() > 0 and targets.shape[0] != inputs.shape[0]:
        raise fail(
            ValueError,
            f"{where} targets",
            f"{inputs.shape[0]} rows (one per input)",
            f"shape {tuple(targets.shape)}",
            "Pass the targets of the same examples.",
        )
    return inputs, targets


class HessianOperator:
    """The linear map ``v -> H v`` (P,) -> (P,) for the mean loss of ``model`` over the given data.

    Use through :func:`hessian_operator`, which sets the model's mode and restores it afterwards. Attributes:
    ``dim`` (P), ``dtype``, ``device`` (those of the parameters), ``num_hvps`` (products computed so far).

    Args:
        model: the network; its trainable parameters (``requires_grad``) are the Hessian's variables.
        loss_fn: ``loss_fn(model(x), y)`` returns the scalar mean loss of a batch.
        inputs: one batch of inputs (N, ...), or an iterable of ``(inputs, targets)`` batches that can be
            iterated more than once (a DataLoader, a list); batches are moved to the parameters' device.
        targets: the batch's targets, or None when ``inputs`` is an iterable of batches.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, inputs: Data, targets: object = None) -> None:
        _, self.params = trainable_parameters(model)
        if not callable(loss_fn):
            raise fail(
                TypeError,
                "loss_fn",
                "a callable (outputs, targets) -> scalar loss",
                type(loss_fn).__name__,
                "Pass e.g. torch.nn.CrossEntropyLoss().",
            )
        self.model, self.loss_fn = model, loss_fn
        self.dim = sum(p.numel() for p in self.params)
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        self.num_hvps = 0
        self._graph: tuple[torch.Tensor, list[torch.Tensor]] | None = None  # single batch: (loss, grads)
        if isinstance(inputs, torch.Tensor):
            if targets is None:
                raise fail(
                    ValueError,
                    "targets",
                    "a targets tensor for the inputs batch",
                    None,
                    "Pass targets, or pass an iterable of (inputs, targets) batches as inputs.",
                )
            self._batch: tuple[torch.Tensor, object] | None = _check_batch(inputs, targets, "batch")
            self._loader = None
        else:
            if targets is not None:
                raise fail(
                    ValueError,
                    "targets",
                    "None when inputs is an iterable of batches",
                    "a value",
                    "Leave targets out; each batch carries its own.",
                )
            if not isinstance(inputs, Iterable) or iter(inputs) is inputs:  # type: ignore[arg-type]
                raise fail(
                    TypeError,
                    "inputs",
                    "a tensor or a re-iterable of (inputs, targets) batches (DataLoader, list)",
                    type(inputs).__name__,
                    "Wrap the data in a torch.utils.data.DataLoader or a list.",
                )
            self._batch, self._loader = None, inputs
        self._closed = False

    def _batches(self) -> Iterator[tuple[torch.Tensor, object]]:
        if self._batch is not None:
            yield self._batch
            return
        count = 0
        for item in self._loader:  # type: ignore[union-attr]
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise fail(
                    TypeError,
                    "batch",
                    "an (inputs, targets) pair",
                    type(item).__name__,
                    "Make the dataset return (x, y) pairs, e.g. torch.utils.data.TensorDataset(x, y).",
                )
            x, y = _check_batch(item[0], item[1], f"batch {count}")
            count += 1
            yield x, y
        if count == 0:
            raise fail(ValueError, "inputs", "at least one batch", "an empty iterable", "Pass a non-empty DataLoader.")

    def _loss_and_grads(self, x: torch.Tensor, y: object, create_graph: bool) -> tuple[torch.Tensor, list]:
        if self._closed:
            raise RuntimeError(
                "HessianOperator: used after its `with hessian_operator(...)` block ended. "
                "Call the operator inside the block."
            )
        x = x.to(self.device)
        y = y.to(self.device) if isinstance(y, torch.Tensor) else y
        loss = _mean_loss(self.loss_fn(self.model(x), y))
        grads = torch.autograd.grad(
            loss, self.params, create_graph=create_graph, allow_unused=True, materialize_grads=True
        )
        return loss, list(grads)

    def _batch_hvp(self, loss_grads: tuple[torch.Tensor, list], v: torch.Tensor, retain: bool) -> torch.Tensor:
        _, grads = loss_grads
        # Only gradient entries that depend on theta can be differentiated again; the others contribute 0 to Hv.
        live = [i for i, g in enumerate(grads) if g.requires_grad]
        if not live:
            return torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        parts = unflatten(v, self.params)
        hv = torch.autograd.grad(
            [grads[i] for i in live],
            self.params,
            grad_outputs=[parts[i] for i in live],
            retain_graph=retain,
            allow_unused=True,
            materialize_grads=True,
        )
        return flatten_params(hv).detach()

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` for a (P,) vector ``v`` in the parameters' dtype and device; counts one HVP."""
        if v.shape != (self.dim,) or v.dtype != self.dtype:
            raise fail(
                ValueError,
                "v",
                f"a ({self.dim},) {self.dtype} vector",
                f"{tuple(v.shape)} {v.dtype}",
                "Flatten it with deepbasics.autodiff.flatten_params.",
            )
        v = v.to(self.device)
        self.num_hvps += 1
        if self._batch is not None:
            if self._graph is None:
                self._graph = self._loss_and_grads(*self._batch, create_graph=True)
            return self._batch_hvp(self._graph, v, retain=True)
        total, count = torch.zeros(self.dim, dtype=self.dtype, device=self.device), 0
        for x, y in self._batches():
            hv = self._batch_hvp(self._loss_and_grads(x, y, create_graph=True), v, retain=False)
            total.add_(hv, alpha=x.shape[0])
            count += x.shape[0]
        return total / count

    __call__ = matvec

    def loss_and_gradient(self) -> tuple[float, torch.Tensor]:
        """The mean loss L and its gradient g (P,) over the data (size-weighted over batches)."""
        if self._batch is not None:
            if self._graph is None:
                self._graph = self._loss_and_grads(*self._batch, create_graph=True)
            loss, grads = self._graph
            return float(loss.detach()), flatten_params([g.detach() for g in grads])
        total_loss, total, count = 0.0, torch.zeros(self.dim, dtype=self.dtype, device=self.device), 0
        for x, y in self._batches():
            loss, grads = self._loss_and_grads(x, y, create_graph=False)
            total.add_(flatten_params(grads), alpha=x.shape[0])
            total_loss += float(loss) * x.shape[0]
            count += x.shape[0]
        return total_loss / count, total / count

    def close(self) -> None:
        """Free the cached gradient graph; later products raise."""
        self._graph, self._closed = None, True


@contextmanager
def hessian_operator(
    model: nn.Module, loss_fn: LossFn, inputs: Data, targets: object = None, *, train_mode: bool = False
) -> Iterator[HessianOperator]:
    """Open a :class:`HessianOperator` with the model in eval mode (or train mode), restoring the model after.

    Example::

        with hessian_operator(model, nn.CrossEntropyLoss(), x, y) as H:
            hv = H.matvec(v)          # (P,)
    """
    operator = HessianOperator(model, loss_fn, inputs, targets)
    with model_mode(model, train=train_mode):
        try:
            yield operator
        finally:
            operator.close()


def hessian_vector_product(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Data,
    targets: object = None,
    *,
    v: torch.Tensor,
    train_mode: bool = False,
) -> torch.Tensor:
    """One Hessian-vector product ``H v`` of the mean loss, shape (P,), parameters flattened in
    ``model.parameters()`` order (trainable ones only). See the module docstring for the formula."""
    v = check_tensor(v, "v", floating=True, ndim=1)
    with hessian_operator(model, loss_fn, inputs, targets, train_mode=train_mode) as operator:
        return operator.matvec(v)
