"""What the static checks measure: one traced forward pass, the weights, the input statistics.

:func:`trace_forward` runs ``loss_fn(model(x), y)`` once under a ``TorchDispatchMode`` (every ATen operation
passes through it, however it was called: module, ``torch.softmax``, ``Tensor.softmax``, ``F.softmax``) and
global module hooks (to know which module runs each op). It records

- the op that produced the model's output and the module that returned it (``aten._softmax`` in ``final_act``);
- the ops of the loss (``aten._log_softmax``, ``aten.nll_loss_forward`` for cross-entropy);
- every site of the naive softmax pattern ``exp(x) / sum(exp(x))``: an ``aten.div`` whose numerator is an
  ``aten.exp`` output and whose denominator is a sum of that same output, where ``x`` is not ``z - max(z)``
  (the stable form, FAQ Q8.a);
- the leaf modules in call order with their input and output tensors, from which :func:`linear_chains` finds
  weight layers that feed each other with nothing nonlinear between them.

The model runs in eval mode under ``torch.no_grad()`` and is restored (:func:`deepbasics.autodiff.model_mode`),
so BatchNorm statistics and dropout's random stream are untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..autodiff import model_mode
from ..probe.hooks import ACTIVATION_TYPES, output_bounds

__all__ = [
    "ForwardTrace",
    "batchnorm_layers",
    "feature_rows",
    "input_statistics",
    "layer_kinds",
    "linear_chains",
    "trace_forward",
    "weight_layers",
]

_TRANSPARENT = (nn.Identity, nn.Dropout, nn.Flatten, nn.Unflatten)  # no nonlinearity, data passes unchanged
_LOSS_OPS = (
    "aten._log_softmax",
    "aten.log",
    "aten.nll_loss_forward",
    "aten.nll_loss2d_forward",
    "aten.mse_loss",
    "aten.l1_loss",
    "aten.smooth_l1_loss",
    "aten.huber_loss",
    "aten.binary_cross_entropy",
    "aten.binary_cross_entropy_with_logits",
    "aten.kl_div",
)


def _is_batchnorm(module: nn.Module) -> bool:
    # deepbasics.nn's BatchNorm1d/2d subclass nn.Module, not torch's _BatchNorm: recognise them by name too
    return isinstance(module, _BatchNorm) or type(module).__name__.startswith("BatchNorm")


def _is_weight_layer(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    if isinstance(weight, nn.parameter.UninitializedParameter):
        # a lazy layer (nn.LazyLinear, nn.LazyConv2d, ...) before its first forward: its weight will be >= 2-D
        return not _is_batchnorm(module)
    return isinstance(weight, torch.Tensor) and weight.dim() >= 2 and not _is_batchnorm(module)


def layer_kinds(model: nn.Module) -> dict[str, str]:
    """``{name: kind}`` for the modules LayerStats watches: ``"matrix"`` (a >= 2-D weight: Linear, Conv, ...),
    ``"relu"`` (ReLU, ReLU6: units that can die), ``"bounded"`` (sigmoid, tanh, hardtanh, ...: can saturate),
    ``"norm"`` (BatchNorm, LayerNorm, GroupNorm), ``"other"``. The root is named ``"(root)"``."""
    out = {}
    for name, module in model.named_modules():
        name = name or "(root)"
        if isinstance(module, (nn.ReLU, nn.ReLU6)):
            out[name] = "relu"
        elif isinstance(module, ACTIVATION_TYPES) and output_bounds(module) is not None:
            out[name] = "bounded"
        elif _is_weight_layer(module):
            out[name] = "matrix"
        elif (
            _is_batchnorm(module) or isinstance(module, (nn.LayerNorm, nn.GroupNorm)) or "Norm" in type(module).__name__
        ):
            out[name] = "norm"
        elif any(p is not None for p in module._parameters.values()) or isinstance(module, ACTIVATION_TYPES):
            out[name] = "other"
    return out


def batchnorm_layers(model: nn.Module) -> list[str]:
    """Names of the BatchNorm modules (torch's or deepbasics') that normalize with batch statistics in training."""
    return [name or "(root)" for name, m in model.named_modules() if _is_batchnorm(m)]


@dataclass
class ModuleCall:
    """One leaf-module call: its name, type, and the ids of its first input and of its output tensor."""

    name: str
    type: str
    input_id: int | None
    output_id: int | None


@dataclass
class ForwardTrace:
    """See the module docstring. ``ops`` lists every forward ATen op name in order (for inspection)."""

    output_op: str | None = None
    output_module: str | None = None
    loss_ops: list[str] = field(default_factory=list)
    naive_softmax_sites: list[str] = field(default_factory=list)
    calls: list[ModuleCall] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)
    uses: dict[int, int] = field(default_factory=dict)  # tensor id -> number of ops that read it


def _op_name(func: Any) -> str:
    name = str(func)  # "aten._softmax.default"
    return ".".join(name.split(".")[:2]) if name.startswith("aten.") else name


class _Tracer(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.phase = "model"
        self.stack: list[str] = []
        self.names: dict[nn.Module, str] = {}
        self.producer: dict[int, str] = {}  # tensor id -> op that produced it
        self.exp_outputs: set[int] = set()  # outputs of exp(x) with x not shifted by its max
        self.max_outputs: set[int] = set()
        self.shifted: set[int] = set()
        self.sums_of: dict[int, int] = {}  # id(sum output) -> id(exp output summed)
        self.keep: list[Any] = []  # keeps traced tensors alive so that ids stay unique
        self.trace = ForwardTrace()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        op = _op_name(func)
        if op in ("aten.detach", "aten.lift_fresh", "aten.alias"):
            return out
        if self.phase == "loss":
            if op in _LOSS_OPS:
                self.trace.loss_ops.append(op)
            return out
        self.trace.ops.append(op)
        for t in tree_flatten((args, kwargs))[0]:
            if isinstance(t, torch.Tensor):
                self.trace.uses[id(t)] = self.trace.uses.get(id(t), 0) + 1
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        self.keep.append((args, outs))
        for t in outs:
            self.producer[id(t)] = op
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if op in ("aten.amax", "aten.max") and outs:
            self.max_outputs.add(id(outs[0]))
        elif op == "aten.sub" and len(args) > 1 and isinstance(args[1], torch.Tensor) and outs:
            if id(args[1]) in self.max_outputs:
                self.shifted.add(id(outs[0]))  # x - max(x): the stable form's input
        elif op == "aten.exp" and outs and first is not None and id(first) not in self.shifted:
            self.exp_outputs.add(id(outs[0]))
        elif op == "aten.sum" and first is not None and id(first) in self.exp_outputs and outs:
            self.sums_of[id(outs[0])] = id(first)
        elif (
            op == "aten.div"
            and first is not None
            and len(args) > 1
            and isinstance(args[1], torch.Tensor)
            and id(first) in self.exp_outputs
            and self.sums_of.get(id(args[1])) == id(first)
        ):
            site = self.stack[-1] if self.stack else "(root)"
            if site not in self.trace.naive_softmax_sites:
                self.trace.naive_softmax_sites.append(site)
        return out

    def pre(self, module: nn.Module, args: Any) -> None:
        if self.phase == "model" and module in self.names:
            self.stack.append(self.names[module])

    def post(self, module: nn.Module, args: Any, output: Any) -> None:
        if self.phase != "model" or module not in self.names:
            return
        if self.stack:
            self.stack.pop()
        if not any(True for _ in module.children()):  # leaf modules only
            x = args[0] if args and isinstance(args[0], torch.Tensor) else None
            y = output if isinstance(output, torch.Tensor) else None
            self.keep.append((x, y))
            self.trace.calls.append(
                ModuleCall(self.names[module], type(module).__name__, id(x) if x is not None else None,
                           id(y) if y is not None else None)
            )  # fmt: skip


def trace_forward(
    model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None, inputs: Any, targets: Any
) -> ForwardTrace:
    """Trace ``loss_fn(model(inputs), targets)`` once (see the module docstring). Exceptions propagate after the
    hooks are removed; ``loss_fn=None`` traces the model alone."""
    tracer = _Tracer()
    tracer.names = {m: (n or "(root)") for n, m in model.named_modules()}
    handles = [
        register_module_forward_pre_hook(tracer.pre),
        register_module_forward_hook(tracer.post, always_call=True),
    ]
    try:
        with model_mode(model, train=False), torch.no_grad(), tracer:
            output = model(inputs)
            tracer.phase = "loss"
            if loss_fn is not None and isinstance(output, torch.Tensor):
                loss_fn(output, targets)
    finally:
        for handle in handles:
            handle.remove()
    trace = tracer.trace
    if isinstance(output, torch.Tensor):
        trace.output_op = tracer.producer.get(id(output))
        trace.output_module = next((c.name for c in trace.calls if c.output_id == id(output)), None)
    return trace


def linear_chains(trace: ForwardTrace, kinds: dict[str, str]) -> list[tuple[str, str]]:
    """Pairs ``(a, b)`` of weight layers where ``b``'s input is ``a``'s output, directly or through modules that
    are transparent (Identity, Dropout, Flatten), and no other operation reads ``a``'s output (a residual
    connection that also reads it gives the pair a purpose): nothing nonlinear between them."""
    transparent = {t.__name__ for t in _TRANSPARENT}
    pairs = []
    for i, call in enumerate(trace.calls):
        if kinds.get(call.name) != "matrix" or call.input_id is None:
            continue
        wanted, source = call.input_id, None
        for earlier in reversed(trace.calls[:i]):  # the latest call that produced our input, walking back
            if earlier.output_id != wanted:
                continue
            if earlier.type in transparent and earlier.input_id is not None:
                wanted = earlier.input_id  # Identity returns its input itself: keep walking back
                continue
            source = earlier
            break
        # only when the layer's output goes nowhere else: a skip connection also reading it makes the pair useful
        alone = trace.uses.get(source.output_id, 0) <= 1 if source is not None and source.output_id else False
        if source is not None and kinds.get(source.name) == "matrix" and source.name != call.name and alone:
            pairs.append((source.name, call.name))
    return pairs


def weight_layers(model: nn.Module, trace: ForwardTrace | None = None) -> list[dict[str, Any]]:
    """``[{"name", "fan_in", "fan_out", "std", "activation"}]`` for every weight layer (Linear, Conv, ...),
    in call order when a trace is given. ``activation`` is the lower-case type name of the first activation
    module called after the layer and before the next weight layer (e.g. ``"relu"``), else None."""
    modules = dict(model.named_modules())
    modules["(root)"] = model
    kinds = layer_kinds(model)
    names = [c.name for c in trace.calls] if trace is not None else [n or "(root)" for n, _ in model.named_modules()]
    seen, out = set(), []
    for i, name in enumerate(names):
        if kinds.get(name) != "matrix" or name in seen:
            continue
        seen.add(name)
        weight = modules[name].weight.detach()
        receptive = weight[0][0].numel() if weight.dim() > 2 else 1  # conv: k_h * k_w
        activation = None
        for later in names[i + 1 :]:
            if kinds.get(later) == "matrix":
                break
            if isinstance(modules[later], ACTIVATION_TYPES):
                activation = type(modules[later]).__name__.lower()
                break
        out.append(
            {
                "name": name,
                "fan_in": weight.shape[1] * receptive,
                "fan_out": weight.shape[0] * receptive,
                "std": float(weight.float().std(correction=0)) if weight.numel() > 1 else 0.0,
                "activation": activation,
            }
        )
    return out


def feature_rows(inputs: torch.Tensor) -> torch.Tensor:
    """A batch of inputs as float64 rows of features (a detached view where possible): ``(N, F)`` as is, ``(N,)`` ->
    ``(N, 1)``, sequences ``(N, T, F)`` -> ``(N T, F)``, images ``(N, C, ...)`` -> ``(N ..., C)`` (one feature per
    channel)."""
    x = inputs.detach().double()
    if x.dim() == 1:
        return x[:, None]  # (N,) -> (N, 1)
    if x.dim() == 3:
        return x.reshape(-1, x.shape[-1])  # (N, T, F) -> (N T, F)
    if x.dim() > 3:
        return x.transpose(0, 1).reshape(x.shape[1], -1).T  # (N, C, ...) -> (N ..., C)
    return x


def input_statistics(inputs: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-feature mean and (population) std of a batch of inputs: ``(N, F)`` per column; ``(N, T, F)`` (sequences)
    per last-dim feature; ``(N, C, ...)`` (images) per channel. Integer inputs (token ids) return empty lists."""
    if not inputs.is_floating_point() or inputs.dim() < 1 or inputs.shape[0] == 0:
        return [], []
    x = feature_rows(inputs)
    finite = torch.isfinite(x).all(dim=1)
    x = x[finite]
    if x.shape[0] == 0:
        return [], []
    return x.mean(0).tolist(), x.std(0, correction=0).tolist()
