"""Which modules :class:`~deepbasics.probe.LayerStats` watches, and the activations it cannot watch.

Module hooks see module calls only. A model that applies ``torch.relu(x)`` or ``F.gelu(x)`` inside its own
``forward`` has activations that no module hook can observe; :class:`FunctionalActivationDetector` finds them
with a ``TorchFunctionMode`` (the ``__torch_function__`` protocol, PyTorch docs "Extending torch with a
Tensor-like type") active for one forward pass, so that the gap is reported instead of silently missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = [
    "ACTIVATION_TYPES",
    "FunctionalActivationDetector",
    "Watched",
    "first_tensor",
    "output_bounds",
    "watched_modules",
]

#: Module types treated as activations (their outputs get zero/dead/saturation statistics).
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardtanh,
    nn.Hardsigmoid,
    nn.Hardswish,
    nn.Softplus,
    nn.Softsign,
    nn.Softmax,
    nn.Softmin,
    nn.LogSoftmax,
    nn.LogSigmoid,
    nn.Tanhshrink,
    nn.Softshrink,
    nn.Hardshrink,
    nn.Threshold,
    nn.GLU,
)


def output_bounds(module: nn.Module) -> tuple[float, float] | None:
    """The range ``(lo, hi)`` of a bounded activation, whose ends are its flat, saturated regions; else None.

    Sigmoid and Hardsigmoid map into (0, 1), Tanh and Softsign into (-1, 1), Hardtanh into
    ``[min_val, max_val]`` (ReLU6 is ``Hardtanh(0, 6)``). Softmax is bounded too but not included: its
    outputs near 0 are the normal case for many classes, not saturation.
    """
    if isinstance(module, (nn.Sigmoid, nn.Hardsigmoid)):
        return (0.0, 1.0)
    if isinstance(module, (nn.Tanh, nn.Softsign)):
        return (-1.0, 1.0)
    if isinstance(module, nn.Hardtanh):
        return (float(module.min_val), float(module.max_val))
    return None


@dataclass(frozen=True)
class Watched:
    """One watched module: its qualified name, kind and which output statistics apply to it."""

    name: str
    module: nn.Module = field(repr=False)
    kind: str  # "activation" or "parametric"
    bounds: tuple[float, float] | None = None
    preact: bool = False  # also measure |input| > limit (sigmoid/tanh: the pre-activation feeding them)

    @property
    def metrics(self) -> tuple[str, ...]:
        """Names of the entries of ``activation_stats`` for this module, in order."""
        if self.kind != "activation":
            return ("act_mean", "act_std")
        extra = (("sat_frac",) if self.bounds else ()) + (("preact_large_frac",) if self.preact else ())
        return ("act_mean", "act_std", "zero_frac", "dead_frac", *extra)


def watched_modules(model: nn.Module) -> list[Watched]:
    """Every activation module and every module that owns parameters directly, in ``named_modules`` order.

    The root module is named ``"(root)"``. Containers without parameters of their own (``nn.Sequential``,
    custom blocks) are not watched themselves; their children are.
    """
    out = []
    for name, module in model.named_modules():
        name = name or "(root)"
        if isinstance(module, ACTIVATION_TYPES):
            preact = isinstance(module, (nn.Sigmoid, nn.Tanh))
            out.append(Watched(name, module, "activation", output_bounds(module), preact))
        elif any(p is not None for p in module._parameters.values()):
            out.append(Watched(name, module, "parametric"))
    return out


def first_tensor(output: Any) -> torch.Tensor | None:
    """The tensor a module returned, or the first tensor of a returned tuple/list (``nn.LSTM``: the outputs)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        return next((o for o in output if isinstance(o, torch.Tensor)), None)
    return None


def _functional_table() -> dict[Callable[..., Any], str]:
    names = {
        "relu": [torch.relu, torch.relu_, F.relu, F.relu_, torch.Tensor.relu, torch.Tensor.relu_],
        "sigmoid": [torch.sigmoid, torch.sigmoid_, F.sigmoid, torch.Tensor.sigmoid, torch.Tensor.sigmoid_],
        "tanh": [torch.tanh, torch.tanh_, F.tanh, torch.Tensor.tanh, torch.Tensor.tanh_],
        "gelu": [F.gelu],
        "silu": [F.silu],
        "mish": [F.mish],
        "elu": [F.elu, F.elu_],
        "selu": [F.selu, torch.selu],
        "celu": [F.celu],
        "leaky_relu": [F.leaky_relu, F.leaky_relu_],
        "softplus": [F.softplus],
        "hardtanh": [F.hardtanh, F.hardtanh_],
        "relu6": [F.relu6],
        "hardsigmoid": [F.hardsigmoid],
        "hardswish": [F.hardswish],
        "softsign": [F.softsign],
        "logsigmoid": [F.logsigmoid],
    }
    return {fn: name for name, fns in names.items() for fn in fns}


_FUNCTIONAL = _functional_table()


class FunctionalActivationDetector(TorchFunctionMode):
    """Find elementwise activations called as functions outside activation modules during one forward.

    Usage: ``start()`` before the forward, ``stop()`` after it (also after an exception); then ``found``
    holds entries such as ``"torch.relu in 'block' (Block)"``. The mode only observes: each intercepted call
    is forwarded unchanged (``func(*args, **kwargs)``), so results and RNG state are those of the plain call.
    Softmax is not reported (in attention it normalises scores rather than acting as a unit's nonlinearity).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.found: list[str] = []
        self._names = {m: n for n, m in model.named_modules() if n}
        self._stack: list[nn.Module] = []
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._active = False

    def start(self) -> None:
        """Track the module call stack (hooks on every submodule) and enter the mode."""
        for module in self._names:
            self._handles.append(module.register_forward_pre_hook(self._push))
            self._handles.append(module.register_forward_hook(self._pop, always_call=True))
        self.__enter__()
        self._active = True

    def stop(self) -> None:
        """Leave the mode and remove every hook ``start`` added; safe to call twice."""
        if self._active:
            self._active = False
            self.__exit__(None, None, None)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._stack.clear()

    def message(self) -> str:
        """A warning text naming every functional activation found and the fix."""
        return (
            "LayerStats cannot watch activations called as functions: "
            + "; ".join(self.found)
            + ". Replace them by modules (nn.ReLU(), nn.Sigmoid(), ...) to monitor them."
        )

    def _push(self, module: nn.Module, args: Any) -> None:
        self._stack.append(module)

    def _pop(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._stack:
            self._stack.pop()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        try:
            name = _FUNCTIONAL.get(func)
        except TypeError:  # an unhashable callable cannot be an activation of the table
            name = None
        if name is not None:
            top = self._stack[-1] if self._stack else self.model
            if not isinstance(top, ACTIVATION_TYPES):
                where = self._names.get(top, "(root)")
                entry = f"functional {name} in '{where}' ({type(top).__name__})"
                if entry not in self.found:
                    self.found.append(entry)
        return func(*args, **(kwargs or {}))
