"""Locate the first operation that turns finite numbers into inf or nan, forward or backward (FAQ Q8).

Floating point has a finite range: ``exp(x)`` overflows float32 for ``x > 88.72`` (``log(3.4e38)``), ``log(0)``
is ``-inf``, ``x / 0`` is ``±inf`` and ``0 / 0``, ``inf - inf`` are ``nan`` (Goodfellow, Bengio & Courville 2016,
"Deep Learning", sec. 4.1; IEEE 754). Once one value is non-finite it spreads through every later operation, so
the loss alone says nothing about where it came from. :func:`locate_nonfinite` runs a function under a
``TorchDispatchMode`` (every ATen operation, forward and backward, passes through it) and reports the first
operation whose output is non-finite while its inputs are finite, with the module that called it.

Cost: one device-to-host synchronisation per operation, so this is a debugging tool, not a monitor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ._checks import fail

__all__ = ["NonFiniteReport", "TensorRange", "locate_nonfinite"]

#: Why each usual culprit produces inf/nan, and the stable alternative (FAQ Q8).
HINTS = {
    "exp": "exp overflows for large inputs (float32: x > 88.7); subtract the max first (stable softmax / "
    "logsumexp, deepbasics.numerics)",
    "log": "log(0) = -inf and log(x < 0) = nan; use log_softmax / logsumexp, or clamp the input to >= eps",
    "div": "division by zero (x/0 = inf, 0/0 = nan); add eps to the denominator or mask the zero entries",
    "pow": "pow overflows or takes a fractional power of a negative number",
    "sqrt": "sqrt of a negative number is nan; its gradient 1/(2 sqrt(x)) is inf at 0",
    "rsqrt": "rsqrt(0) = inf; add eps before the inverse square root",
    "reciprocal": "1/0 = inf; add eps to the denominator",
    "mul": "a product overflowed (|x y| > max float) or multiplied inf by 0",
}


@dataclass(frozen=True)
class TensorRange:
    """Shape, dtype and value range of one tensor: ``min``/``max`` over its finite entries (None if none)."""

    shape: tuple[int, ...]
    dtype: str
    min: float | None
    max: float | None
    n_nan: int
    n_posinf: int
    n_neginf: int

    @property
    def finite(self) -> bool:
        return self.n_nan == 0 and self.n_posinf == 0 and self.n_neginf == 0

    def __str__(self) -> str:
        rng = "no finite entries" if self.min is None else f"[{self.min:.4g}, {self.max:.4g}]"
        bad = "" if self.finite else f", nan={self.n_nan} +inf={self.n_posinf} -inf={self.n_neginf}"
        return f"{self.dtype}{list(self.shape)} {rng}{bad}"


def _range(t: torch.Tensor) -> TensorRange:
    """Summarise ``t`` on the host (a few small reductions and one synchronisation)."""
    with torch.no_grad():
        x = t.detach()
        if x.is_complex():
            x = torch.view_as_real(x)
        dtype = str(t.dtype).replace("torch.", "")
        if not x.is_floating_point():  # integers and booleans are always finite
            lo, hi = (float(x.min()), float(x.max())) if x.numel() else (None, None)
            return TensorRange(tuple(t.shape), dtype, lo, hi, 0, 0, 0)
        finite = x[torch.isfinite(x)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.numel() else (None, None)
        n_nan, n_pos, n_neg = torch.stack([x.isnan().sum(), x.isposinf().sum(), x.isneginf().sum()]).tolist()
        return TensorRange(tuple(t.shape), dtype, lo, hi, n_nan, n_pos, n_neg)


@dataclass(frozen=True)
class NonFiniteReport:
    """Where inf/nan first appeared.

    ``kind``: ``"produced"`` (``op`` made inf/nan out of finite inputs) or ``"input"`` (a non-finite value
    came from outside the run -- an argument, a parameter or a buffer -- and ``op`` is the first to use it).
    ``phase``: ``"forward"`` or ``"backward"``. ``module``: dotted path of the innermost module running
    ``op`` (``"(root)"`` for the outermost one, None outside any module); in the backward phase, the module
    whose forward created the autograd node (``backward_of``, e.g. ``"SqrtBackward0"``) being differentiated.
    ``inputs``/``outputs``: ranges of the op's tensor arguments and results. ``op_index``: position of ``op``
    among all operations run (forward and backward).
    """

    op: str
    kind: str
    phase: str
    module: str | None
    inputs: list[TensorRange]
    outputs: list[TensorRange]
    op_index: int
    backward_of: str | None = None
    hint: str | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable data."""
        return asdict(self)

    def __str__(self) -> str:
        where = f"module '{self.module}'" if self.module else "outside any module"
        what = "produced inf/nan from finite inputs" if self.kind == "produced" else "received a non-finite input"
        lines = [f"{self.op} ({self.phase}, op #{self.op_index}) {what} in {where}"]
        if self.backward_of:
            lines.append(f"  while differentiating {self.backward_of}")
        lines += [f"  input {i}: {r}" for i, r in enumerate(self.inputs)]
        lines += [f"  output {i}: {r}" for i, r in enumerate(self.outputs)]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


_INPUT_HINT = (
    "the non-finite value existed before this run: check the inputs, and the parameters and buffers "
    "(a previous update or a corrupted checkpoint can leave nan weights)"
)
_LABEL = "deepbasics_module"  # key in autograd Node.metadata


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor) and t.layout == torch.strided]


def _all_finite(tensors: list[torch.Tensor]) -> bool:
    checked = [torch.isfinite(t).all() for t in tensors if (t.is_floating_point() or t.is_complex()) and t.numel()]
    return bool(torch.stack(checked).all()) if checked else True


def _hint(op: str) -> str | None:
    base = op.split(".")[1] if op.startswith("aten.") else op
    return HINTS.get(base.rstrip("_"))


class _Labeler(TorchFunctionMode):
    """Labels each autograd node with the module whose forward created it, for backward reports.

    After each torch function, the nodes reachable from its outputs' ``grad_fn`` that carry no label yet are
    exactly those it created (earlier nodes are labelled already), so the walk stops at the first labelled one.
    """

    def __init__(self, stack: list[str]) -> None:
        super().__init__()
        self.stack = stack

    def label(self, tree: Any, name: str | None) -> None:
        todo = [t.grad_fn for t in _tensors(tree) if t.grad_fn is not None]
        while todo:
            node = todo.pop()
            if node is None or _LABEL in node.metadata:
                continue
            node.metadata[_LABEL] = name
            todo.extend(nxt for nxt, _ in node.next_functions)

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        self.label(out, self.stack[-1] if self.stack else None)
        return out


class _Locator(TorchDispatchMode):
    """Checks every ATen op for inf/nan; keeps the module stack through global module hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.report: NonFiniteReport | None = None
        self.phase = "forward"
        self.count = 0
        self.stack: list[str] = []
        self.names: dict[nn.Module, str] = {}

    # --- module tracking -------------------------------------------------------------------------------
    def pre(self, module: nn.Module, args: Any) -> None:
        if module not in self.names:  # an outermost module: name it and its submodules
            self.names.update({m: n or "(root)" for n, m in module.named_modules() if m not in self.names})
        self.stack.append(self.names[module])

    def post(self, module: nn.Module, args: Any, output: Any) -> None:
        if self.stack:
            self.stack.pop()

    # --- op checking -----------------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        if self.report is not None:
            return func(*args, **kwargs)
        self.count += 1
        inputs = _tensors((args, kwargs))
        schema = getattr(func, "_schema", None)
        mutates = schema is None or schema.is_mutable  # in-place: check the inputs before they are overwritten
        before = (_all_finite(inputs), [_range(t) for t in inputs]) if mutates else None
        out = func(*args, **kwargs)
        outputs = _tensors(out)
        if _all_finite(outputs) and (before is None or before[0]):
            return out
        inputs_finite, ranges = before if before is not None else (_all_finite(inputs), [_range(t) for t in inputs])
        op = str(func)  # e.g. "aten.exp.default": namespace.name.overload
        module, backward_of = self.stack[-1] if self.stack else None, None
        if self.phase == "backward":
            node = torch._C._current_autograd_node()
            if node is not None:
                backward_of = node.name()
                module = node.metadata.get(_LABEL)
        self.report = NonFiniteReport(
            op=op,
            kind="produced" if inputs_finite else "input",
            phase=self.phase,
            module=module,
            inputs=ranges,
            outputs=[_range(t) for t in outputs],
            op_index=self.count,
            backward_of=backward_of,
            hint=_hint(op) if inputs_finite else _INPUT_HINT,
        )
        return out


def locate_nonfinite(
    fn: Callable[..., Any], *args: Any, backward: bool = True, **kwargs: Any
) -> NonFiniteReport | None:
    """Run ``fn(*args, **kwargs)`` (and its backward) and return where inf/nan first appeared, or None.

    Every ATen operation is checked: the first one whose outputs contain inf/nan while its inputs are all
    finite is reported (``kind="produced"``); if an operation receives a non-finite tensor before any was
    produced, that value came from outside (``kind="input"``: an argument, a parameter, a buffer). If the
    forward stays finite, ``backward=True`` and the result is a scalar that requires grad, ``result.backward()``
    runs under the same check (``phase="backward"``); it accumulates into the parameters' ``.grad`` as a normal
    backward does. Backward reports name the autograd node being differentiated (``backward_of``) and the module
    whose forward created it, found by labelling each node at creation with a ``TorchFunctionMode``.

    Args:
        fn: the forward computation, e.g. ``lambda: loss_fn(model(x), y)`` or a module.
        *args, **kwargs: passed to ``fn``.
        backward: also differentiate a scalar result (default True).

    Returns:
        A :class:`NonFiniteReport`, or ``None`` when every value stayed finite. Exceptions raised by ``fn``
        propagate after the instrumentation is removed.
    """
    if not callable(fn):
        raise fail(TypeError, "fn", "a callable (function or nn.Module)", type(fn).__name__,
                   "Pass the computation itself, e.g. lambda: loss_fn(model(x), y).")  # fmt: skip
    locator = _Locator()
    labeler = _Labeler(locator.stack) if backward else contextlib.nullcontext()
    if backward:
        labeler.label((args, kwargs), "(before locate_nonfinite)")
    handles = [
        register_module_forward_pre_hook(locator.pre),
        register_module_forward_hook(locator.post, always_call=True),
    ]
    try:
        with locator:
            with labeler:
                result = fn(*args, **kwargs)
            if (
                backward
                and locator.report is None
                and isinstance(result, torch.Tensor)
                and result.numel() == 1
                and result.requires_grad
            ):
                locator.phase = "backward"
                locator.stack.clear()
                result.backward()
    finally:
        for handle in handles:
            handle.remove()
    return locator.report
