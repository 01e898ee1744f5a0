"""Shared pieces of the Q15, CNN and RNN experiments: a full-batch loop that records every loss, a latching
task for recurrent cells, truncated back-propagation through time, and a meter of the memory autograd keeps.

Not an experiment module (the leading underscore keeps :func:`deepbasics.lab.experiments.discover` away).
Everything trains with :mod:`deepbasics.optim` optimizers and :mod:`deepbasics.nn` modules; these helpers only
hold the loops that the experiments need step by step (a loss per step, a stop on divergence), which
:func:`deepbasics.train.fit` records per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F

from deepbasics._checks import check_generator, check_int, fail

__all__ = [
    "DIVERGENCE_FACTOR",
    "full_batch_curve",
    "latch_classifier",
    "latch_task",
    "num_params",
    "saved_tensor_bytes",
    "steps_to",
    "truncated_logits",
]

#: A run has diverged once its loss is non-finite or above this multiple of its initial loss (Q15, RNN.c).
#: Ten times the starting loss is far beyond the noise of a working run, whose loss only goes down on average.
DIVERGENCE_FACTOR = 10.0


def num_params(model: nn.Module) -> int:
    """Number of trainable scalars of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def full_batch_curve(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    *,
    clip: float | None = None,
) -> list[float]:
    """Full-batch gradient steps; the loss before each of them and after the last: ``steps + 1`` numbers.

    ``curve[t]`` is the training loss after ``t`` updates (``curve[0]`` at the start). The run stops early,
    returning a shorter curve whose last entry is the offending loss, as soon as the loss is non-finite or
    exceeds :data:`DIVERGENCE_FACTOR` times ``curve[0]`` (a diverged run). ``clip``: global gradient-norm
    threshold applied with :func:`deepbasics.optim.clip_grad_norm` before each step.
    """
    from deepbasics import optim

    steps = check_int(steps, "steps", low=0)
    curve: list[float] = []
    for t in range(steps + 1):
        loss = loss_fn(model(x), y)
        value = float(loss.detach())
        curve.append(value)
        if not math.isfinite(value) or value > DIVERGENCE_FACTOR * curve[0] or t == steps:
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            optim.clip_grad_norm(model.parameters(), clip)
        optimizer.step()
    return curve


def steps_to(curve: list[float], target: float) -> int | None:
    """The first ``t`` with ``curve[t] <= target`` (updates needed to reach ``target``), or None if never."""
    return next((t for t, v in enumerate(curve) if v <= target), None)


def latch_task(
    num_samples: int, length: int, num_symbols: int = 4, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Information latching with distractors: remember the first symbol while ``length - 1`` others arrive.

    Every step ``t`` shows a symbol ``s_t`` uniform in ``0..num_symbols-1`` (one-hot) and a marker channel
    that is 1 only at ``t = 0``; the answer at every step is ``s_0``, so the answer read at step ``t`` has a lag
    of ``t`` steps, and chance accuracy is ``1 / num_symbols``. A cell must store ``s_0`` when the marker is on
    and keep it while the distractors ``s_1, s_2, ...`` try to overwrite it: the long-term latching problem of
    Bengio, Simard & Frasconi, "Learning long-term dependencies with gradient descent is difficult", IEEE TNN
    5(2), 1994, section 3 (with a symbol instead of a bit), the memoryless core of the copy task
    (:func:`deepbasics.data.copy_task`).

    Returns ``inputs (N, T, num_symbols + 1)`` float32 (batch first) and ``targets (N,)`` int64 = ``s_0``.
    """
    num_samples = check_int(num_samples, "num_samples", low=1)
    length = check_int(length, "length", low=1)
    num_symbols = check_int(num_symbols, "num_symbols", low=2)
    generator = check_generator(generator)
    symbols = torch.randint(0, num_symbols, (num_samples, length), generator=generator)  # (N, T)
    marker = torch.zeros(num_samples, length, 1)
    marker[:, 0] = 1.0
    inputs = torch.cat([F.one_hot(symbols, num_symbols).float(), marker], dim=-1)  # (N, T, S + 1)
    return inputs, symbols[:, 0]


def latch_classifier(cell: str, num_symbols: int, hidden: int, seed: int) -> nn.Module:
    """``deepbasics.nn.rnn_classifier`` for :func:`latch_task` with ``num_symbols`` symbols, seeded by ``seed``."""
    from deepbasics import nn as dnn

    torch.manual_seed(seed)
    return dnn.rnn_classifier(cell, input_size=num_symbols + 1, hidden_size=hidden, num_classes=num_symbols)


def truncated_logits(model: nn.Module, x: torch.Tensor, window: int) -> torch.Tensor:
    """Logits of an :class:`~deepbasics.nn.RNNClassifier` at the last step, back-propagating ``window`` steps.

    Truncated BPTT for a loss at the last step (BPTT(h) of Williams & Peng, "An efficient gradient-based
    algorithm for on-line training of recurrent network trajectories", Neural Computation 2(4), 1990, with
    h = ``window``): the first ``T - window`` steps run without autograd, their final state enters the last
    ``window`` steps as a constant, so ``d loss / d x_t = 0`` for every ``t < T - window``. With
    ``window >= T`` this is full BPTT. ``x`` (B, T, I) batch first; returns (B, num_classes).
    """
    from deepbasics import nn as dbnn

    window = check_int(window, "window", low=1)
    if x.dim() != 3:
        raise fail(ValueError, "x", "a (B, T, I) batch-first sequence", f"shape {tuple(x.shape)}", "Add a batch dim.")
    length = x.shape[1]
    k = min(window, length)
    state = None
    if length > k:
        with torch.no_grad():  # the truncated prefix: forward only, nothing saved for backward
            state = dbnn.unroll(model.cell, x[:, : length - k], batch_first=True, retain_grad=False).final
    states = dbnn.unroll(model.cell, x[:, length - k :], state, batch_first=True, retain_grad=False)
    return model.head(states.steps[-1])  # (B, num_classes)


@contextmanager
def saved_tensor_bytes() -> Iterator[list[int]]:
    """Count the bytes autograd saves for backward inside the block: ``with saved_tensor_bytes() as n: ...``.

    Uses :class:`torch.autograd.graph.saved_tensors_hooks`: every tensor packed for the backward pass adds
    ``numel * element_size`` to ``n[0]`` (a tensor saved by several nodes counts each time, as autograd keeps
    each reference; parameters saved by reference count too). This is the activation memory that truncation
    bounds (Williams & Peng 1990): it grows linearly with the number of steps kept in the graph.
    """
    total = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield total
