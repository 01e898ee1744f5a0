"""A training case: everything one training run needs, and the one way the doctor trains, measures and diagnoses it.

:class:`Case` is the unit ``repair`` works on (each fix maps a case to a changed case) and the fault zoo builds
(:mod:`deepbasics.doctor.zoo`: a registered setup's ``build(seed)`` returns one). The functions run a case the same
way every time, so that every candidate fix is trained and measured alike:

- :func:`train_case`: ``case.steps`` optimizer steps on a deep copy, seeded (same batches, same draws);
- :func:`evaluate_case`: validation loss and accuracy of a trained model, in eval mode;
- :func:`diagnose_case`: :func:`deepbasics.doctor.diagnose.diagnose` with the case's loss, data, optimizer factory
  and budget;
- :func:`make_case`: a case from what a user has (a model, a loss, tensors, an optimizer), the task and the
  architecture inferred when not given.

Nothing here modifies the case it is given.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .._checks import check_choice, check_int, check_module, fail

if TYPE_CHECKING:
    from .report import Report

__all__ = [
    "ARCHITECTURES",
    "TASKS",
    "Case",
    "OptimizerFactory",
    "diagnose_case",
    "evaluate_case",
    "make_case",
    "train_case",
]

#: The architectures a case can have (``Case.architecture``; the fault zoo covers each).
ARCHITECTURES: tuple[str, ...] = ("mlp", "cnn", "lstm", "residual")
#: ``"classification"``: integer labels, logits (N, C), accuracy is the metric; ``"binary"``: float targets
#: (N, 1) in {0, 1}, accuracy of ``output > threshold``; ``"regression"``: the validation loss is the metric.
TASKS: tuple[str, ...] = ("classification", "binary", "regression")

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
Data = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Case:
    """Everything one training run needs: ``loss_fn(model(x), y)`` is the scalar mean loss.

    Attributes:
        model: the network (a fresh one per :meth:`Setup.build`).
        loss_fn: a ``torch.nn`` loss module or function of ``(outputs, targets)``.
        train_data, val_data: ``(inputs, targets)`` pairs of tensors (``val_data`` may be ``None``).
        make_optimizer: ``make_optimizer(params) -> torch.optim.Optimizer``; call it on the parameters of the
            model that will be trained (a copy, for ``diagnose``/``repair``).
        batch_size: examples per step (``None``: full batch).
        steps: the training budget in optimizer steps.
        architecture: one of :data:`ARCHITECTURES`. task: one of :data:`TASKS`.
        binary_threshold: for ``task="binary"``: outputs above it predict class 1 (0.5 for probabilities,
            0.0 for logits).
        name: the setup's name ("" for a case built by hand).
        best_step: the step with the lowest validation loss in the last run of this case, when known (set by
            ``repair`` for the early-stopping fix).
    """

    model: nn.Module
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    train_data: Data
    val_data: Data | None
    make_optimizer: OptimizerFactory
    batch_size: int | None
    steps: int
    architecture: str
    task: str = "classification"
    binary_threshold: float = 0.5
    name: str = ""
    best_step: int | None = None

    def __post_init__(self) -> None:
        check_choice(self.architecture, "architecture", ARCHITECTURES)
        check_choice(self.task, "task", TASKS)
        check_int(self.steps, "steps", low=1)
        if self.batch_size is not None:
            check_int(self.batch_size, "batch_size", low=1)
        if not callable(self.make_optimizer):
            raise fail(
                TypeError,
                "make_optimizer",
                "a callable params -> torch.optim.Optimizer",
                type(self.make_optimizer).__name__,
                "Pass e.g. lambda params: torch.optim.SGD(params, lr=0.1).",
            )

    def optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """A new optimizer on ``model``'s parameters (default: this case's model)."""
        return self.make_optimizer((self.model if model is None else model).parameters())

    def replace(self, **changes: Any) -> Case:
        """A shallow copy with ``changes`` (``dataclasses.replace``); the model object is shared unless given."""
        return dataclasses.replace(self, **changes)

    @property
    def num_parameters(self) -> int:
        """Trainable parameter count of the model."""
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)


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
    from .diagnose import diagnose  # lazy: a case loads without the probe machinery

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


def make_case(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    train_data: object,
    val_data: object = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    make_optimizer: OptimizerFactory | None = None,
    steps: int = 200,
    batch_size: int | None = 32,
    task: str | None = None,
    architecture: str | None = None,
) -> Case:
    """A :class:`Case` from a user's training setup (the arguments of :func:`deepbasics.doctor.repair`).

    ``optimizer`` is rebuilt from its class and first group's hyperparameters for every copy (or pass
    ``make_optimizer``; neither: ``Adam(lr=1e-3)``); ``task`` defaults to "classification" for integer targets,
    "binary" for float targets with a BCE loss, else "regression"; ``architecture`` to "lstm" (recurrent layers),
    "cnn" (Conv2d), "residual" (deepbasics' ResidualBlock), else "mlp".
    """
    check_module(model)
    if not callable(loss_fn):
        raise fail(TypeError, "loss_fn", "a callable", type(loss_fn).__name__, "Pass e.g. nn.CrossEntropyLoss().")
    train = _as_pair(train_data, "train_data")
    val = None if val_data is None else _as_pair(val_data, "val_data")
    if optimizer is not None and make_optimizer is not None:
        raise fail(ValueError, "optimizer/make_optimizer", "at most one of them", "both", "Pass only one.")
    if make_optimizer is None:
        make_optimizer = (
            _optimizer_factory(optimizer) if optimizer is not None else (lambda p: torch.optim.Adam(p, lr=1e-3))
        )
    task = _infer_task(loss_fn, train[1]) if task is None else check_choice(task, "task", TASKS)
    architecture = _infer_architecture(model) if architecture is None else architecture
    check_choice(architecture, "architecture", ARCHITECTURES)
    threshold = 0.0 if isinstance(loss_fn, nn.BCEWithLogitsLoss) else 0.5  # logits vs probabilities
    steps = check_int(steps, "steps", low=1)
    return Case(model, loss_fn, train, val, make_optimizer, batch_size, steps, architecture, task, threshold)


def _infer_architecture(model: nn.Module) -> str:
    from ..nn import ResidualBlock

    kinds = list(model.modules())
    if any(hasattr(m, "weight_hh") or isinstance(m, nn.RNNBase) for m in kinds):
        return "lstm"
    if any(isinstance(m, nn.Conv2d) for m in kinds):
        return "cnn"
    if any(isinstance(m, ResidualBlock) for m in kinds):
        return "residual"
    return "mlp"


def _infer_task(loss_fn: object, targets: torch.Tensor) -> str:
    if not targets.is_floating_point():
        return "classification"
    if isinstance(loss_fn, nn.BCELoss | nn.BCEWithLogitsLoss):
        return "binary"
    return "regression"


def _as_pair(data: object, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(data, tuple | list) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        return data[0], data[1]
    tensors = getattr(data, "tensors", None)
    if isinstance(tensors, tuple) and len(tensors) == 2:
        return tensors
    raise fail(TypeError, name, "an (inputs, targets) pair of tensors or a TensorDataset", type(data).__name__,
               "repair retrains copies, so it needs the data as tensors: pass (x, y).")  # fmt: skip


def _optimizer_factory(optimizer: torch.optim.Optimizer) -> Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]:
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise fail(TypeError, "optimizer", "a torch.optim.Optimizer", type(optimizer).__name__,
                   "Pass the optimizer you train with, or make_optimizer=lambda params: ...")  # fmt: skip
    cls = type(optimizer)
    hyper = {k: v for k, v in optimizer.param_groups[0].items() if k in optimizer.defaults}
    return lambda params: cls(params, **copy.deepcopy(hyper))
