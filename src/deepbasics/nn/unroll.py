"""Back-propagation through time made visible: unroll a cell over a sequence and measure dL/dh_t per step.

:func:`unroll` runs a single-step cell ``(x_t, state_{t-1}) -> state_t`` over ``t = 1..T`` in a plain
Python loop and keeps every per-step state as a node of the autograd graph:

    state_0 = state0 (zeros if None);   state_t = cell(x_t, state_{t-1});   h_t = state_t (or its h)

The total derivative of a loss with respect to each hidden state,

    dL/dh_t = (direct term from outputs at t) + (dh_{t+1}/dh_t)^T dL/dh_{t+1},

is what BPTT propagates backwards; its norm as a function of ``t`` is the FAQ's Q9.b measurement (in a plain
RNN ``dh_{t+1}/dh_t = diag(phi') W_hh`` and the product over many steps vanishes; in an LSTM the cell path
``dc_{t+1}/dc_t = diag(f)`` lets it survive). :func:`gradient_per_step` returns ``||dL/dh_t||`` for all t.

It works with any cell of that signature: ours (:mod:`.recurrent`, :mod:`.lnlstm`) and
``torch.nn.RNNCell``/``LSTMCell``/``GRUCell``. Looping in Python is slower than ``torch.nn.LSTM``'s fused
kernels (see ``benchmarks/nn_forward.py``) and is the point: each step is a separate, inspectable tensor.

Reference: P. J. Werbos, "Backpropagation Through Time: What It Does and How to Do It", Proc. IEEE 78(10),
1990; Y. Bengio, P. Simard, P. Frasconi, "Learning Long-Term Dependencies with Gradient Descent is
Difficult", IEEE TNN 5(2), 1994 (the vanishing product of Jacobians); Hochreiter & Schmidhuber 1997, sec. 3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .._checks import check_choice, check_tensor, fail

__all__ = ["Unrolled", "gradient_per_step", "unroll"]

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Unrolled:
    """The states of one unrolled sequence (letters: T steps, B batch, H hidden size).

    Attributes:
        steps: ``[h_1, ..., h_T]``, each (B, H) (or (H,) unbatched): the very tensors fed to the next step, so
            ``torch.autograd.grad(loss, steps)`` gives the total dL/dh_t; with ``retain_grad=True`` (default)
            each also keeps ``.grad`` after ``loss.backward()``.
        cell_steps: ``[c_1, ..., c_T]`` for LSTM-type cells (state ``(h, c)``), else None.
        hidden: ``stack(steps)``, (T, B, H): every hidden state, time first.
        cells: ``stack(cell_steps)`` (T, B, H), or None.
        final: the last state, ``h_T`` or ``(h_T, c_T)``.
        batch_first: whether the input was (B, T, I); :attr:`output` then is (B, T, H).
    """

    steps: list[torch.Tensor]
    cell_steps: list[torch.Tensor] | None
    hidden: torch.Tensor
    cells: torch.Tensor | None
    final: State
    batch_first: bool = False

    @property
    def output(self) -> torch.Tensor:
        """Every hidden state in the input's layout: (T, B, H), or (B, T, H) if ``batch_first``."""
        return self.hidden.transpose(0, 1) if self.batch_first and self.hidden.dim() == 3 else self.hidden

    def __len__(self) -> int:
        return len(self.steps)


def _split_state(state: object, t: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(h, c)`` from a cell's output: a tensor h, or a pair (h, c) as LSTM cells return."""
    if isinstance(state, torch.Tensor):
        return state, None
    if isinstance(state, tuple | list) and len(state) == 2 and all(isinstance(s, torch.Tensor) for s in state):
        return state[0], state[1]
    raise fail(
        TypeError,
        "unroll",
        "a cell returning a tensor h or a pair (h, c) of tensors",
        f"{type(state).__name__} at step {t}",
        "Pass a single-step cell such as deepbasics.nn.LSTMCell or torch.nn.GRUCell.",
    )


def unroll(
    cell: Callable[[torch.Tensor, State | None], State],
    inputs: torch.Tensor,
    state0: State | None = None,
    batch_first: bool = False,
    *,
    retain_grad: bool = True,
) -> Unrolled:
    """Run ``cell`` over the time steps of ``inputs`` and return every state (module docstring).

    Args:
        cell: a single step ``(x_t, state) -> state``; state a tensor h or a pair (h, c).
        inputs: (T, B, I), or (B, T, I) with ``batch_first=True``, or unbatched (T, I).
        state0: the initial state (shapes as the cell's); None lets the cell start from zeros.
        batch_first: layout of a 3-D ``inputs`` (as ``torch.nn.LSTM``'s argument).
        retain_grad: call ``retain_grad()`` on every per-step h and c that requires grad, so that their
            ``.grad`` is filled by ``loss.backward()``.

    Returns:
        :class:`Unrolled`. For the same weights, ``hidden`` equals ``torch.nn.LSTM``/``GRU``/``RNN``'s output
        and ``final`` its ``(h_n, c_n)`` (tested).
    """
    if not callable(cell):
        raise fail(TypeError, "cell", "a callable single-step cell", type(cell).__name__, "Pass e.g. LSTMCell(...).")
    x = check_tensor(inputs, "inputs", floating=True)
    if x.dim() not in (2, 3):
        raise fail(
            ValueError,
            "inputs",
            "a (T, B, I) tensor ((B, T, I) with batch_first=True) or an unbatched (T, I) one",
            f"shape {tuple(x.shape)}",
            "Add or remove the batch dimension.",
        )
    if batch_first and x.dim() == 3:
        x = x.transpose(0, 1)  # (T, B, I)
    steps: list[torch.Tensor] = []
    cell_steps: list[torch.Tensor] = []
    state = state0
    for t in range(x.shape[0]):
        state = cell(x[t], state)  # the visible time loop: one cell call per step
        h, c = _split_state(state, t)
        for s in (h, c):
            if retain_grad and s is not None and s.requires_grad:
                s.retain_grad()
        steps.append(h)
        if c is not None:
            cell_steps.append(c)
    return Unrolled(
        steps=steps,
        cell_steps=cell_steps or None,
        hidden=torch.stack(steps),  # (T, B, H)
        cells=torch.stack(cell_steps) if cell_steps else None,
        final=state,
        batch_first=bool(batch_first),
    )


def gradient_per_step(unrolled: Unrolled, loss: torch.Tensor, *, of: str = "hidden") -> torch.Tensor:
    """``||dL/dh_t||`` (Frobenius norm over batch and features) for every step t = 1..T, as a (T,) tensor.

    ``dL/dh_t`` is the total derivative (through the outputs at t and through all later steps), computed with
    ``torch.autograd.grad(loss, unrolled.steps, retain_graph=True)``: the graph is kept, so ``loss.backward()``
    can still follow, and the steps' ``.grad`` fields are left as they were. A step the loss does not depend on
    gets 0. ``of="cell"`` measures ``||dL/dc_t||``
    instead (LSTM-type cells only). The result is detached, on the loss's device, in its dtype.
    """
    if not isinstance(unrolled, Unrolled):
        raise fail(TypeError, "unrolled", "an Unrolled (from unroll)", type(unrolled).__name__, "Call unroll first.")
    loss = check_tensor(loss, "loss", floating=True)
    if loss.numel() != 1 or not loss.requires_grad:
        raise fail(
            ValueError,
            "loss",
            "a scalar that requires grad",
            f"shape {tuple(loss.shape)}, requires_grad={loss.requires_grad}",
            "Reduce the loss to a scalar (e.g. .mean()) computed from the unrolled states with grad enabled.",
        )
    check_choice(of, "of", ("hidden", "cell"))
    targets = unrolled.steps if of == "hidden" else unrolled.cell_steps
    if targets is None:
        raise fail(ValueError, "of", "'hidden' for a cell without a cell state", repr(of), "Use of='hidden'.")
    if not all(s.requires_grad for s in targets):
        raise fail(
            ValueError,
            "unrolled",
            "states that are part of the autograd graph",
            "states that do not require grad",
            "Unroll with grad enabled and a cell whose parameters (or inputs) require grad.",
        )
    # autograd.grad also fires retain_grad() hooks; restore every step's .grad so a later loss.backward()
    # accumulates into exactly what it would have without this measurement.
    retained = [s for s in [*unrolled.steps, *(unrolled.cell_steps or [])] if s.retains_grad]
    saved = [s.grad for s in retained]
    try:
        grads = torch.autograd.grad(loss.reshape(()), targets, retain_graph=True, allow_unused=True)
    finally:
        for s, g in zip(retained, saved, strict=True):
            s.grad = g
    zero = loss.new_zeros(())
    return torch.stack([zero if g is None else torch.linalg.vector_norm(g).to(loss.dtype) for g in grads]).detach()
