"""Model surgery for the fixes: find output activations, swap or insert modules, re-initialize weights.

Every function changes the model it is given in place (``repair`` hands the fixes a deep copy) and returns
what it changed, so a fix can say :class:`~deepbasics.doctor.fixes.base.NotApplicable` when nothing was.

- :func:`output_activations`: the activation modules after the last parametrized layer (they shape the output,
  so activation swaps and dropout leave them alone);
- :func:`replace_modules`, :func:`set_module`: swap submodules by type, by dotted name;
- :func:`reinit`: He (``N(0, 2 / fan_in)``, He et al. 2015, sec. 2.2) or Glorot (``U(+-sqrt(6 / (fan_in +
  fan_out)))``, Glorot & Bengio 2010, eq. 16) weights with zero biases, and Fixup's ``L^-1/2`` scaling of each
  residual branch's last layer for ``L`` blocks (Zhang, Dauphin & Ma 2019, sec. 3);
- :func:`insert_norms`, :func:`insert_dropout`: a normalization layer between each hidden linear/conv layer and
  its activation (Ioffe & Szegedy 2015, sec. 3.2), dropout after each hidden activation (Srivastava et al. 2014);
- :func:`clipped`: an optimizer subclass that clips the global gradient norm (Pascanu et al. 2013, alg. 1).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from ... import init as db_init
from ..._checks import check_real
from ...nn import BatchNorm1d, BatchNorm2d, Dropout, GroupNorm, LayerNorm, ResidualBlock

__all__ = [
    "ACTIVATIONS",
    "BATCHNORMS",
    "NORMS",
    "RELU_LIKE",
    "SQUASHING",
    "clipped",
    "insert_dropout",
    "insert_norms",
    "leaf_modules",
    "output_activations",
    "reinit",
    "replace_modules",
    "set_module",
    "uses_relu",
]

RELU_LIKE = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.ReLU6, nn.PReLU)
SQUASHING = (nn.Sigmoid, nn.Tanh)
ACTIVATIONS = (*RELU_LIKE, *SQUASHING, nn.Softmax, nn.LogSoftmax, nn.Identity)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, BatchNorm1d, BatchNorm2d)
NORMS = (*BATCHNORMS, nn.LayerNorm, nn.GroupNorm, LayerNorm, GroupNorm)


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` for every module without children, in registration order."""
    return [(n, m) for n, m in model.named_modules() if not list(m.children())]


def output_activations(model: nn.Module) -> set[str]:
    """Names of the activation modules after the last Linear/Conv2d/recurrent layer (they act on the output)."""
    leaves = leaf_modules(model)
    last = max((i for i, (_, m) in enumerate(leaves) if any(True for _ in m.parameters(recurse=False))), default=-1)
    return {n for n, m in leaves[last + 1 :] if isinstance(m, ACTIVATIONS)}


def set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    """Replace the submodule at dotted ``name`` (e.g. ``"block1.act1"``) by ``module``."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def replace_modules(
    model: nn.Module, kinds: tuple[type, ...], make: Callable[[nn.Module], nn.Module], hidden: bool
) -> int:
    skip = output_activations(model) if hidden else set()
    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, kinds) and n not in skip and n]
    for name, module in targets:
        set_module(model, name, make(module))
    return len(targets)


def uses_relu(model: nn.Module) -> bool:
    """Whether a hidden (non-output) activation is ReLU-like (then He init is the matching scheme)."""
    hidden = output_activations(model)
    return any(isinstance(m, RELU_LIKE) for n, m in model.named_modules() if n not in hidden)


@torch.no_grad()
def reinit(model: nn.Module, scheme: str) -> nn.Module:
    """``scheme`` "he" or "glorot" on every Linear/Conv2d (zero biases), torch's scale on recurrent cells, and
    Fixup's ``L^-1/2`` on each of the ``L`` residual branches' last layer (module docstring)."""
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            if scheme == "he":
                db_init.he_normal_(module.weight)
            else:
                db_init.glorot_uniform_(module.weight)
            if module.bias is not None:
                module.bias.zero_()
        elif hasattr(module, "weight_hh") and callable(getattr(module, "reset_parameters", None)):
            module.reset_parameters()  # recurrent cells: torch's U(+-1/sqrt(H)) scale
    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    for block in blocks:  # Fixup: keep the sum of L residual branches at O(1) variance
        block.linear2.weight.mul_(len(blocks) ** -0.5)
    return model


def insert_norms(model: nn.Module, kind: str) -> int:
    """Insert a ``kind`` ("batch" or "layer") norm between each hidden Linear/Conv2d and its activation inside
    nn.Sequential modules, and into the empty ``norm1`` of residual blocks; returns how many were inserted."""
    count = 0
    output_acts = output_activations(model)
    for name, seq in list(model.named_modules()):
        if not isinstance(seq, nn.Sequential):
            continue
        items = list(seq.named_children())
        new: OrderedDict[str, nn.Module] = OrderedDict()
        for i, (child_name, child) in enumerate(items):
            new[child_name] = child
            nxt = items[i + 1][1] if i + 1 < len(items) else None
            nxt_name = f"{name}.{items[i + 1][0]}" if name and nxt is not None else (items[i + 1][0] if nxt else "")
            if (
                isinstance(child, nn.Linear | nn.Conv2d)
                and isinstance(nxt, ACTIVATIONS)
                and nxt_name not in output_acts
            ):
                width = child.out_features if isinstance(child, nn.Linear) else child.out_channels
                spatial = isinstance(child, nn.Conv2d)
                norm: nn.Module
                if kind == "batch":
                    norm = BatchNorm2d(width) if spatial else BatchNorm1d(width)
                else:
                    norm = GroupNorm(1, width) if spatial else LayerNorm(width)
                new[f"{child_name}_norm"] = norm.to(child.weight.device, child.weight.dtype)
                count += 1
        if count:
            seq._modules = new  # type: ignore[assignment]  # keeps the Sequential object (and its parent link)
    for block in (m for m in model.modules() if isinstance(m, ResidualBlock)):
        if isinstance(block.norm1, nn.Identity):
            w = block.linear1.weight
            block.norm1 = (BatchNorm1d(block.width) if kind == "batch" else LayerNorm(block.width)).to(
                w.device, w.dtype
            )
            count += 1
    return count


def insert_dropout(model: nn.Module, p: float) -> int:
    """Insert ``Dropout(p)`` after every hidden activation inside an ``nn.Sequential``; returns how many."""
    hidden_out = output_activations(model)
    count = 0
    for name, seq in list(model.named_modules()):
        if not isinstance(seq, nn.Sequential):
            continue
        new: OrderedDict[str, nn.Module] = OrderedDict()
        for child_name, child in seq.named_children():
            new[child_name] = child
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, (*RELU_LIKE, *SQUASHING)) and full not in hidden_out:
                new[f"{child_name}_dropout"] = Dropout(p)
                count += 1
        seq._modules = new  # type: ignore[assignment]
    return count


def clipped(optimizer_cls: type[torch.optim.Optimizer], max_norm: float = 1.0) -> type[torch.optim.Optimizer]:
    """A subclass of ``optimizer_cls`` whose ``step`` first rescales the global gradient norm to <= ``max_norm``.

    A subclass (not a hook) so that rebuilding the optimizer from its class and hyperparameters, as
    ``diagnose`` does for its copy of the model, keeps the clipping (Pascanu et al. 2013, algorithm 1).
    """
    max_norm = check_real(max_norm, "max_norm", low=0.0, low_inclusive=False)

    class Clipped(optimizer_cls):  # type: ignore[misc, valid-type]
        def step(self, closure=None):
            grads = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
            if grads:
                nn.utils.clip_grad_norm_(grads, max_norm)
            return super().step(closure)

    Clipped.__name__ = Clipped.__qualname__ = f"Clipped{optimizer_cls.__name__}"
    return Clipped
