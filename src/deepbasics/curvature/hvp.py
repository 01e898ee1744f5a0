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

Several products at once (``matmat``, for the trace estimators' probes): the c vectors go through one
``torch.autograd.grad(..., is_grads_batched=True)`` call, i.e. ``torch.func.vmap`` over the backward of the gradient
graph, in chunks whose memory (c times the graph's saved tensors, measured once on an extra forward and backward)
stays within ``BATCH_MEMORY_BYTES``. Fewer dispatches and wider kernels make a product cheaper (measured on one CPU
thread: 2.5x on a digits MLP, 1.3x on a small CNN, none on an LSTM; far more on a GPU). The plain path, one
``matvec`` per column, is the reference (the tests check that both agree in float64) and the fallback whenever an
operation in the graph has no batching rule.

The model is evaluated in eval mode (dropout off, BatchNorm with running statistics) unless
``train_mode=True``; see :func:`deepbasics.autodiff.model_mode`. Gradients are taken with
``torch.autograd.grad``, so the parameters' ``.grad`` fields are never touched. Recurrent layers run with
PyTorch's native kernels (cuDNN's have no double backward; oneDNN's are slower to differentiate twice).

Reference: Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation 6(1), 1994.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from .._checks import check_tensor, fail
from ..autodiff import _mean_loss, flatten_params, model_mode, trainable_parameters

__all__ = ["HessianOperator", "hessian_operator", "hessian_vector_product"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Data = torch.Tensor | Iterable[tuple[torch.Tensor, torch.Tensor]]

#: Memory one batched product may take: chunk size c = BATCH_MEMORY_BYTES / (2 * bytes saved by the gradient graph),
#: the factor 2 for the batched backward's own temporaries. On CUDA at most half the free memory is used.
BATCH_MEMORY_BYTES = 1 << 30
#: Vectors per batched product at most: on one CPU thread the gain per vector stops growing near 16-32 (digits MLP:
#: 1.6 ms per product alone, 0.66 ms in chunks of 16, 0.98 ms in chunks of 64).
MAX_BATCH_VECTORS = 32


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


@contextmanager
def _native_recurrent_kernels(modules: list[nn.Module], device: torch.device) -> Iterator[None]:
    """Run the recurrent ``modules`` (and only them) with PyTorch's native kernels instead of the vendor ones:
    cuDNN's RNN has no double backward (nor a backward in eval mode), and on the CPU the native LSTM's gradient
    graph is cheaper to differentiate again than oneDNN's (measured on four LSTM shapes: builds and products 15-20%
    faster; GRU unchanged; convolutions, which are slower without oneDNN, keep it)."""
    if not modules:
        yield
        return
    backend = torch.backends.cudnn if device.type == "cuda" else torch.backends.mkldnn
    original = backend.enabled
    saved: list[bool] = []

    def before(module: nn.Module, args: object) -> None:
        saved.append(backend.enabled)
        backend.enabled = False

    def after(module: nn.Module, args: object, output: object) -> None:
        backend.enabled = saved.pop()

    handles = [m.register_forward_pre_hook(before) for m in modules] + [m.register_forward_hook(after) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        backend.enabled = original  # also when a forward raised between the two hooks


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
        self._sizes = [p.numel() for p in self.params]
        self._shapes = [p.shape for p in self.params]
        self.dim = sum(self._sizes)
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        self.num_hvps = 0
        self._graph: tuple[torch.Tensor, list[torch.Tensor]] | None = None  # single batch: (loss, grads)
        self._graph_bytes = 0  # bytes the gradient graph of the first batch saves for its backward (0: not measured)
        self._batched: bool | None = None  # batched products work here: unknown until tried
        self._unused: bool | None = None  # a parameter is absent from the cached gradient graph: unknown until used
        self._recurrent = [m for m in model.modules() if isinstance(m, nn.RNNBase)]
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

    def _loss_and_grads(
        self, x: torch.Tensor, y: object, create_graph: bool, measure: bool = False
    ) -> tuple[torch.Tensor, list]:
        """Loss and gradient of one batch; with ``measure=True`` also records in ``_graph_bytes`` the memory the
        gradient graph keeps for its backward (by an identity saved-tensor hook, which costs a Python call per
        saved tensor on every later backward: so only on a graph built for measuring, never on a working one)."""
        if self._closed:
            raise RuntimeError(
                "HessianOperator: used after its `with hessian_operator(...)` block ended. "
                "Call the operator inside the block."
            )
        x = x.to(self.device)
        y = y.to(self.device) if isinstance(y, torch.Tensor) else y
        saved: dict[tuple[int, int], int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            try:
                storage = t.untyped_storage()
                saved[(storage.data_ptr(), t.dtype.itemsize)] = storage.nbytes()
            except (RuntimeError, NotImplementedError):  # tensors without a plain storage are not counted
                pass
            return t

        hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t) if measure else nullcontext()
        with _native_recurrent_kernels(self._recurrent, self.device), hooks:
            loss = _mean_loss(self.loss_fn(self.model(x), y))
            grads = torch.autograd.grad(
                loss, self.params, create_graph=create_graph, allow_unused=True, materialize_grads=True
            )
        if measure:
            self._graph_bytes = max(sum(saved.values()), 1)
        return loss, list(grads)

    def _single_graph(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The one batch's loss and differentiable gradient, built once and reused by every product."""
        if self._graph is None:
            self._graph = self._loss_and_grads(*self._batch, create_graph=True)  # type: ignore[misc]
        return self._graph

    def _batch_hvps(self, grads: list[torch.Tensor], block: torch.Tensor, retain: bool) -> torch.Tensor:
        """Rows H b for the rows b of ``block`` (c, P), by double backward through ``grads``: (c, P)."""
        # Only gradient entries that depend on theta can be differentiated again; the others contribute 0 to Hv.
        live = [i for i, g in enumerate(grads) if g.requires_grad]
        count = block.shape[0]
        if not live:
            return torch.zeros(count, self.dim, dtype=self.dtype, device=self.device)
        parts = block.split(self._sizes, dim=1)  # (c, n_i) per parameter
        outputs = [grads[i] for i in live]
        if count == 1:  # the Lanczos path: kept lean, its overhead is paid once per step
            # After the first product on the cached graph shows that every parameter is reached, the next ones
            # skip allow_unused and the zero-filling (a few percent of a small model's product).
            allow = not retain or self._unused is not False
            hv = torch.autograd.grad(
                outputs,
                self.params,
                grad_outputs=[parts[i].view(self._shapes[i]) for i in live],
                retain_graph=retain,
                allow_unused=allow,
            )
            if allow:
                if retain and self._unused is None:
                    self._unused = any(h is None for h in hv)
                hv = [torch.zeros_like(p) if h is None else h for h, p in zip(hv, self.params, strict=True)]
            return torch.cat([h.reshape(-1) for h in hv])[None]
        if self._batched is not False:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    hv = torch.autograd.grad(
                        outputs,
                        self.params,
                        grad_outputs=[parts[i].reshape(count, *self._shapes[i]) for i in live],
                        retain_graph=retain,
                        allow_unused=True,  # not materialize_grads: its zeros would lack the batch dimension
                        is_grads_batched=True,
                    )
                except RuntimeError:  # an operation without a batching rule: products one at a time from now on
                    self._batched = False
                else:
                    # vmap's per-sample fallback is slower than plain products: use it this once, then loop
                    slow = [w for w in caught if "performance drop" in str(w.message)]
                    self._batched = not slow
                    for w in caught:
                        if w not in slow:  # the model's own warnings pass through
                            warnings.warn(w.message, w.category, stacklevel=2)
                    rows = [
                        block.new_zeros(count, n) if h is None else h.reshape(count, -1)
                        for h, n in zip(hv, self._sizes, strict=True)
                    ]
                    return torch.cat(rows, dim=1)  # (c, P)
        rows = []
        for j in range(count):
            hv = torch.autograd.grad(
                outputs,
                self.params,
                grad_outputs=[parts[i][j].reshape(self._shapes[i]) for i in live],
                retain_graph=retain or j + 1 < count,
                allow_unused=True,
                materialize_grads=True,
            )
            rows.append(torch.cat([h.reshape(-1) for h in hv]))
        return torch.stack(rows)

    def _check_vector(self, v: torch.Tensor, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        if not isinstance(v, torch.Tensor) or v.shape != shape or v.dtype != self.dtype:
            got = f"{tuple(v.shape)} {v.dtype}" if isinstance(v, torch.Tensor) else type(v).__name__
            fix = "Flatten parameter-shaped tensors with deepbasics.autodiff.flatten_params."
            raise fail(ValueError, name, f"a {shape} {self.dtype} tensor", got, fix)
        return v if v.device == self.device else v.to(self.device)

    def _rows(self, block: torch.Tensor) -> torch.Tensor:
        """H b for each row b of ``block`` (c, P), over all batches (size-weighted mean): (c, P)."""
        if self._batch is not None:
            _, grads = self._single_graph()
            return self._batch_hvps(grads, block, retain=True)
        total, count = torch.zeros(block.shape[0], self.dim, dtype=self.dtype, device=self.device), 0
        for x, y in self._batches():
            _, grads = self._loss_and_grads(x, y, create_graph=True)
            total.add_(self._batch_hvps(grads, block, retain=False), alpha=x.shape[0])
            count += x.shape[0]
        return total / count

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` for a (P,) vector ``v`` in the parameters' dtype and device; counts one HVP."""
        v = self._check_vector(v, "v", (self.dim,))
        self.num_hvps += 1
        return self._rows(v[None])[0]

    __call__ = matvec

    def batch_size(self) -> int:
        """Vectors per batched product: memory-bounded (see ``BATCH_MEMORY_BYTES``), 1 where batching fails."""
        if self._batched is False:
            return 1
        if self._graph_bytes == 0:  # not measured yet: one extra forward and backward on the first batch
            self._loss_and_grads(*next(self._batches()), create_graph=True, measure=True)
        budget = BATCH_MEMORY_BYTES
        if self.device.type == "cuda":
            budget = min(budget, torch.cuda.mem_get_info(self.device)[0] // 2)
        return int(max(1, min(MAX_BATCH_VECTORS, budget // max(2 * self._graph_bytes, 1))))

    def matmat(self, block: torch.Tensor) -> torch.Tensor:
        """``H V`` for a (P, c) block of column vectors, batched where the graph allows (see the module
        docstring); equal to ``torch.stack([matvec(v) for v in V.T], 1)``. Counts c HVPs."""
        if not isinstance(block, torch.Tensor) or block.dim() != 2:
            got = f"shape {tuple(block.shape)}" if isinstance(block, torch.Tensor) else type(block).__name__
            raise fail(ValueError, "block", f"a ({self.dim}, c) tensor of c column vectors", got, "Stack the vectors.")
        block = self._check_vector(block, "block", (self.dim, block.shape[1]))
        self.num_hvps += block.shape[1]
        size = self.batch_size()
        rows = [self._rows(chunk) for chunk in block.T.contiguous().split(size)]  # (c_i, P) each
        return torch.cat(rows).T  # (P, c)

    def loss_and_gradient(self) -> tuple[float, torch.Tensor]:
        """The mean loss L and its gradient g (P,) over the data (size-weighted over batches)."""
        if self._batch is not None:
            loss, grads = self._single_graph()
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
