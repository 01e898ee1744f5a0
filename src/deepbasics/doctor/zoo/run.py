"""Running a :class:`~deepbasics.doctor.zoo.Case`: train a copy, measure it, diagnose it.

- :func:`train_case`: ``case.steps`` optimizer steps on a deep copy, seeded (same batches, same draws);
- :func:`evaluate_case`: validation loss and accuracy of a trained model, in eval mode;
- :func:`diagnose_case`: :func:`deepbasics.doctor.diagnose.diagnose` with the case's loss, data, optimizer factory
  and budget.

``repair`` and ``benchmarks/doctor_zoo.py`` use these so that every candidate fix is trained and measured the
same way. Nothing here modifies the case it is given.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..report import Report
from .registry import Case

__all__ = ["diagnose_case", "evaluate_case", "train_case"]


@torch.no_grad()
def evaluate_case(model: nn.Module, case: Case) -> dict[str, Any]:
    """``{"val_loss", "val_accuracy" (classification/binary), "split"}`` of ``model`` on ``case``'s data.

    Uses the validation pair when there is one, else the training pair (``split`` says which); eval mode, no
    gradients, the model's mode restored. Accuracy: ``mean(argmax_c out == y)``, or for ``task="binary"``
    ``mean((out > case.binary_threshold) == y)``.
    """
    split, (x, y) = ("val", case.val_data) if case.val_data is not None else ("train", case.train_data)
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    was_training = model.training
    model.eval()
    try:
        out = model(x)
        loss = float(case.loss_fn(out, y))
        metrics: dict[str, Any] = {"val_loss": loss}
        if case.task == "classification":
            metrics["val_accuracy"] = float((out.argmax(dim=1) == y).double().mean())
        elif case.task == "binary":
            metrics["val_accuracy"] = float(((out > case.binary_threshold).to(y.dtype) == y).double().mean())
    finally:
        model.train(was_training)
    metrics["split"] = split
    return metrics


def train_case(case: Case, seed: int = 0, device: torch.device | str | None = None) -> nn.Module:
    """Train a deep copy of ``case.model`` for ``case.steps`` steps and return it; ``case`` is not modified.

    Mini-batches of ``case.batch_size`` are drawn without replacement from a permutation per epoch, from a
    generator seeded with ``seed``; weights and dropout draw from the global RNG forked and seeded with ``seed``,
    so two calls give the same model. Stops early (leaving the weights as they are) at a non-finite loss.
    """
    model = copy.deepcopy(case.model)
    if device is not None:
        model.to(device)
    dev = next(model.parameters()).device
    x, y = case.train_data[0].to(dev), case.train_data[1].to(dev)
    n = len(x)
    batch = case.batch_size or n
    generator = torch.Generator().manual_seed(seed)
    optimizer = case.optimizer(model)
    model.train()
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        order, pos = torch.randperm(n, generator=generator), 0
        for _ in range(case.steps):
            if pos + batch > n:
                order, pos = torch.randperm(n, generator=generator), 0
            idx = order[pos : pos + batch].to(dev)
            pos += batch
            optimizer.zero_grad(set_to_none=True)
            loss = case.loss_fn(model(x[idx]), y[idx])
            if not torch.isfinite(loss):
                break
            loss.backward()
            optimizer.step()
    return model


def diagnose_case(case: Case, seed: int = 0, device: Any = None, curvature: bool = True) -> Report:
    """``diagnose`` on a copy of ``case.model`` with the case's loss, data, optimizer factory and budget."""
    from ..diagnose import diagnose  # lazy: the zoo loads without the probe machinery

    model = copy.deepcopy(case.model)
    return diagnose(
        model,
        case.loss_fn,
        case.train_data,
        case.val_data,
        case.make_optimizer,
        case.steps,
        batch_size=case.batch_size,
        device=device,
        curvature=curvature,
        generator=torch.Generator().manual_seed(seed),
    )
