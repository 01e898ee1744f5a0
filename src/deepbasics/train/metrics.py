"""Evaluation: mean loss and metrics over a dataset, in eval mode and without gradients.

Every number is an example-weighted mean, ``(1/N) sum_b |b| m(batch b)``, so it does not depend on the batch
size (unlike a plain mean of batch means when the last batch is smaller). The default metric for integer
class labels is :func:`accuracy`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from .._checks import check_module
from ._batching import as_batches, model_device, sum_dtype, unpack

__all__ = ["Metric", "accuracy", "default_metrics", "evaluate"]

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor | float]


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose arg-max class equals the integer target: ``mean(argmax_c outputs[n, c] == y[n])``.

    ``outputs (N, C)`` logits or probabilities, ``targets (N,)`` int64. Returns a 0-D float64 tensor on the
    outputs' device (no host sync).
    """
    hits = outputs.argmax(dim=1) == targets  # (N,) bool
    return hits.to(torch.float32 if outputs.device.type == "mps" else torch.float64).mean()  # MPS lacks float64


def default_metrics(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Metric]:
    is_labels = not (targets.is_floating_point() or targets.is_complex()) and targets.dtype != torch.bool
    if is_labels and outputs.dim() == 2 and outputs.shape[1] > 1 and targets.dim() == 1:
        return {"accuracy": accuracy}
    return {}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data: object,
    *,
    metrics: Mapping[str, Metric] | None = None,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Mean loss and metrics of ``model`` on ``data`` in eval mode, without gradients.

    ``data``: a DataLoader, Dataset or ``(inputs, targets)`` pair (``batch_size=None``: one batch). Batch
    means are weighted by batch size, so the result is the mean over examples. ``metrics=None`` adds accuracy
    for integer class labels. Returns ``{"loss": ..., name: ...}``; the model's train/eval mode is restored.
    """
    check_module(model, has_params=False)
    device = torch.device(device) if device is not None else model_device(model)
    batches = as_batches(data, "data", batch_size, False, None, device)
    was_training = model.training
    model.eval()
    try:
        sums: dict[str, torch.Tensor] = {}
        count = 0
        for batch in batches:
            x, y = unpack(batch, device)
            out = model(x)
            if metrics is None:
                metrics = default_metrics(out, y)
            n = len(x)
            values = {"loss": loss_fn(out, y), **{k: f(out, y) for k, f in metrics.items()}}
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + torch.as_tensor(v, dtype=sum_dtype(device), device=device) * n
            count += n
    finally:
        model.train(was_training)
    return {k: float(v / count) for k, v in sums.items()}
