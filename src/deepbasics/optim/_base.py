"""Shared plumbing of the optimizers: one base class, argument checks, and the foreach helpers.

Every optimizer in :mod:`deepbasics.optim` follows PyTorch's layout (``torch/optim/adam.py``): a thin
stateful class that validates its hyperparameters, creates its per-parameter state lazily on the first
step, and hands flat lists of tensors to a module-level functional kernel. Each kernel exists twice:

- a plain *reference* kernel, one parameter at a time, that reads like the paper's update rule;
- a *foreach* kernel over whole lists with ``torch._foreach_*`` (one multi-tensor launch per operation
  on CUDA), tested equal to the reference kernel in float64.

State names and the per-group keys are the ones ``torch.optim`` uses ("step", "exp_avg", ...), with
``state["step"]`` a CPU scalar tensor, so state dicts move between these classes and their
``torch.optim`` counterparts in both directions.

Kernel choice (``foreach`` argument): ``None`` (default) and ``True`` mean the foreach kernel, on any
device; ``False``, ``differentiable=True`` or a sparse gradient mean the reference kernel. With
``differentiable=True`` the step is recorded by autograd exactly as in torch.optim, with the same limit:
states that are overwritten in place and saved for backward (AMSGrad's maximum, centered RMSprop's
average) allow differentiating through one step only. ``capturable``/``fused`` kernels are not
implemented; asking for them raises ``ValueError``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from .._checks import check_real, fail

__all__ = ["Optimizer", "ParamsT"]

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]] | Iterable[tuple[str, Tensor]]


def scalar_dtype() -> torch.dtype:
    """The dtype of ``state["step"]``: float64 under a float64 default dtype, else float32 (as torch.optim)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def new_step() -> Tensor:
    """A fresh step counter: a 0-d CPU tensor, so reading it never synchronizes a GPU."""
    return torch.tensor(0.0, dtype=scalar_dtype())


def check_lr(lr: object) -> float:
    """Check a learning rate (``>= 0``; a 1-element tensor is read once as a float)."""
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise fail(ValueError, "lr", "a float or a 1-element tensor", f"shape {tuple(lr.shape)}", "Pass a float.")
    return check_real(lr, "lr", low=0.0)


def check_flag(value: object, name: str) -> bool:
    """Check that ``value`` is a bool."""
    if not isinstance(value, bool):
        raise fail(TypeError, name, "True or False", repr(value), f"Pass {name}=True or {name}=False.")
    return value


def check_unsupported(hyper: dict[str, Any], cls: str) -> None:
    """Reject the torch.optim options this package does not implement (``capturable``, ``fused``)."""
    for key in ("capturable", "fused"):
        if hyper.get(key):
            raise fail(
                ValueError,
                key,
                "False or None",
                hyper[key],
                f"deepbasics.optim.{cls} has no {key} kernel; use foreach=True for the fast path, "
                f"or torch.optim.{cls}({key}=True).",
            )


def check_foreach(hyper: dict[str, Any]) -> None:
    """Check ``foreach`` (None or bool) and that it is not combined with ``differentiable=True``."""
    foreach = hyper.get("foreach")
    if foreach is not None and not isinstance(foreach, bool):
        raise fail(TypeError, "foreach", "None, True or False", repr(foreach), "Leave foreach=None for the default.")
    if foreach and hyper.get("differentiable"):
        raise fail(
            ValueError,
            "foreach",
            "False or None when differentiable=True",
            foreach,
            "The foreach ops do not support autograd; leave foreach=None to use the reference kernel.",
        )


def as_real(tensors: list[Tensor]) -> list[Tensor]:
    """View complex tensors as real ``(..., 2)`` tensors: the updates are element-wise on (re, im)."""
    return [torch.view_as_real(t) if t.is_complex() else t for t in tensors]


def real(t: Tensor) -> Tensor:
    """:func:`as_real` for a single tensor."""
    return torch.view_as_real(t) if t.is_complex() else t


def group_by_device_dtype(*lists: list[Any]) -> list[tuple[list[Any], ...]]:
    """Split parallel lists into buckets of equal (device, dtype) of the first list.

    The foreach ops launch one fused kernel per bucket on CUDA; a mixed list would fall back to a loop.
    Order inside each bucket is the original order.
    """
    buckets: dict[tuple[torch.device, torch.dtype], tuple[list[Any], ...]] = defaultdict(
        lambda: tuple([] for _ in lists)
    )
    for i, p in enumerate(lists[0]):
        bucket = buckets[(p.device, p.dtype)]
        for j, lst in enumerate(lists):
            bucket[j].append(lst[i] if lst else None)
    return list(buckets.values())


def increment_steps(steps: list[Tensor]) -> list[float]:
    """Add 1 to each step counter in place and return the new values as Python floats."""
    if steps and steps[0].is_cpu:
        # one wrapped scalar instead of re-wrapping 1 per tensor (the foreach CPU path is a loop)
        torch._foreach_add_(steps, torch.tensor(1.0), alpha=1.0)
    else:
        torch._foreach_add_(steps, 1)
    return [s.item() for s in steps]


class Optimizer(torch.optim.Optimizer):
    """Base of the deepbasics optimizers: a ``torch.optim.Optimizer`` with checked hyperparameters.

    Subclasses implement ``_check_hyperparameters(hyper) -> hyper`` (validate and normalize one group's
    hyperparameters; runs on the defaults and again on every group added) and ``_update_group(group)``
    (gather the group's tensors and call the functional kernel). ``step`` runs the optional closure with
    gradients enabled, then updates every group without recording autograd history (unless the
    optimizer was built with ``differentiable=True``).
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        defaults = self._check_hyperparameters(dict(defaults))
        super().__init__(params, defaults)

    def _check_hyperparameters(self, hyper: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _update_group(self, group: dict[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group; its hyperparameters (own or inherited defaults) are validated first."""
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise fail(
                TypeError if not isinstance(param_group, dict) else ValueError,
                "param_group",
                "a dict with a 'params' key",
                type(param_group).__name__ if not isinstance(param_group, dict) else f"keys {sorted(param_group)}",
                "Pass {'params': [...], 'lr': ...}.",
            )
        hyper = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        super().add_param_group({**param_group, **self._check_hyperparameters(hyper)})

    def __setstate__(self, state: dict[str, Any]) -> None:
        # also runs at the end of load_state_dict: fill keys missing from older (or foreign) state dicts
        # and turn a Python-number step (PyTorch < 1.12 format) into the tensor the kernels expect
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)
            for p in group["params"]:
                p_state = self.state.get(p)
                if p_state and "step" in p_state and not torch.is_tensor(p_state["step"]):
                    p_state["step"] = torch.tensor(float(p_state["step"]), dtype=scalar_dtype())

    def _use_foreach(self, group: dict[str, Any], grads: list[Tensor]) -> bool:
        """foreach unless asked otherwise, differentiable, or a gradient is sparse (reference kernel then)."""
        if group["differentiable"] or any(g.is_sparse for g in grads):
            return False
        return True if group["foreach"] is None else bool(group["foreach"])

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step over every parameter group.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss (run with
                gradients enabled, before the update).

        Returns:
            the closure's loss, or ``None``.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.set_grad_enabled(bool(self.defaults.get("differentiable", False))):
            for group in self.param_groups:
                check_unsupported(group, type(self).__name__)  # a loaded state dict may ask for them
                self._update_group(group)
        return loss
