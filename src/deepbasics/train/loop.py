"""A small, explicit training loop: mini-batch gradient descent with hooks, penalties, clipping and a record.

One optimizer step on a batch ``(x, y)`` of size ``B``::

    L_data  = loss_fn(model(x), y)                                  (the scalar mean loss)
    Omega   = l1 * sum_w |w|  +  (l2 / 2) * sum_w w^2               (weights only: parameters with dim >= 2)
    g       = grad(L_data + Omega)
    g      <- g * min(1, clip / ||g||_2)                            (if clip; Pascanu et al. 2013, alg. 1)
    optimizer.step(g)

Penalty convention: ``(l2 / 2) * ||w||^2`` has gradient ``l2 * w``, so ``l2`` here equals the ``weight_decay``
of ``torch.optim.SGD`` (and of ``Adam``, which adds ``weight_decay * w`` to the gradient). It is NOT AdamW's
decoupled decay, which shrinks ``w <- w - lr * weight_decay * w`` outside the adaptive scaling; with adaptive
methods the two differ (Loshchilov & Hutter, "Decoupled weight decay regularization", ICLR 2019, section 2).
Biases and normalization gains are not penalized, as is usual (Goodfellow, Bengio & Courville, *Deep
Learning*, 2016, section 7.1). The L1 subgradient at 0 is 0. FAQ claims Q3.3.f, Q6.a, Q6.b.

The loss recorded in :class:`~deepbasics.train.history.History` is ``L_data`` (so train and val losses compare
like with like); the gradient norm is that of ``L_data + Omega``, taken before clipping with one fused
(foreach) norm over all gradients.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._checks import check_choice, check_generator, check_int, check_module, check_real, fail
from ._batching import as_batches, find_generators, model_device, sum_dtype, unpack
from .callbacks import DEFAULT_STOP_REASON, Callback, CallbackList, TrainState
from .checkpoint import load_checkpoint, restore, set_rng_state
from .history import History
from .metrics import Metric, default_metrics, evaluate

__all__ = ["NonFiniteLossError", "fit", "weight_penalty"]


class NonFiniteLossError(FloatingPointError):
    """The loss (or the gradient norm) became inf or nan; names the epoch, the global step and the batch."""

    def __init__(self, what: str, value: float, epoch: int, step: int, batch_idx: int):
        self.what, self.value, self.epoch, self.step, self.batch_idx = what, value, epoch, step, batch_idx
        super().__init__(
            f"non-finite {what} ({value}) at epoch {epoch}, step {step} (batch {batch_idx} of the epoch; all 0-based). "
            "Usual causes: a learning rate too large, unnormalized inputs, log/softmax computed naively. Lower the "
            "learning rate, set clip=..., check the data for inf/nan, or pass on_nonfinite='stop'/'continue'."
        )

    def __reduce__(self):
        return type(self), (self.what, self.value, self.epoch, self.step, self.batch_idx)


def weight_penalty(params: Iterable[torch.Tensor], l1: float = 0.0, l2: float = 0.0) -> torch.Tensor:
    """``l1 * sum |w| + (l2 / 2) * sum w^2`` over ``params`` (pass the ones to penalize).

    Returns a 0-D tensor with grad; ``l2`` matches ``torch.optim.SGD(weight_decay=l2)``, see the module docstring.
    """
    l1 = check_real(l1, "l1", low=0.0)
    l2 = check_real(l2, "l2", low=0.0)
    params = list(params)
    if not params:
        return torch.zeros(())
    terms = []
    if l1:
        terms.append(l1 * torch.stack([p.abs().sum() for p in params]).sum())
    if l2:
        terms.append(0.5 * l2 * torch.stack([p.pow(2).sum() for p in params]).sum())
    return torch.stack(terms).sum() if terms else params[0].new_zeros(())


def _global_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """``sqrt(sum_i ||g_i||^2)`` with one fused foreach norm over all gradient tensors."""
    if not grads:
        return torch.zeros(())
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6
        return torch.nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))  # older torch: same computation


def _lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def _step_scheduler(scheduler: Any, metric: float) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(metric)
    else:
        scheduler.step()


def fit(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    train: object,
    val: object = None,
    *,
    epochs: int,
    callbacks: Iterable[Callback] = (),
    clip: float | None = None,
    l1: float = 0.0,
    l2: float = 0.0,
    device: torch.device | str | None = None,
    metrics: Mapping[str, Metric] | None = None,
    on_nonfinite: str = "raise",
    scheduler: Any = None,
    scheduler_interval: str = "epoch",
    progress: bool = False,
    generator: torch.Generator | None = None,
    batch_size: int | None = 32,
    shuffle: bool = True,
    resume_from: str | Any | None = None,
) -> History:
    """Train ``model`` for ``epochs`` epochs and return its :class:`~deepbasics.train.history.History`.

    Each step is the update in the module docstring; callbacks fire as listed in
    :mod:`deepbasics.train.callbacks`.

    Args:
        model, loss_fn, optimizer: ``loss_fn(model(x), y)`` must return the scalar mean loss.
        train, val: a DataLoader (used as is), a Dataset, a ``TensorDataset`` or an ``(inputs, targets)`` pair
            (batched here by ``batch_size``; ``None`` = full batch). Validation runs after every epoch.
        epochs: total number of epochs, including those already done in a ``resume_from`` checkpoint.
        clip: max global gradient L2 norm (``torch.nn.utils.clip_grad_norm_``); None: no clipping.
        l1, l2: penalty strengths, see the module docstring (``l2`` == SGD ``weight_decay``).
        device: where to train (the model is moved there); default: the model's device.
        metrics: ``{"name": fn(outputs, targets)}`` averaged over examples; ``None`` gives ``accuracy`` when
            targets are integer class labels and outputs are ``(N, C)``; ``{}`` gives none.
        on_nonfinite: ``"raise"`` :class:`NonFiniteLossError`; ``"stop"``: skip the step, finish the epoch and
            stop; ``"continue"``: skip the step and go on. Events are recorded in ``history.nonfinite``.
        scheduler: a ``torch.optim.lr_scheduler`` object, stepped every ``scheduler_interval`` ("epoch" or
            "step"); ``ReduceLROnPlateau`` receives the epoch's val loss (train loss without val data).
        progress: show a ``rich`` progress bar. generator: the ``torch.Generator`` that shuffles tensor data
            (default: one seeded from the global RNG, so ``torch.manual_seed`` makes runs reproducible).
        shuffle: shuffle tensor/Dataset training data every epoch (a DataLoader shuffles as configured).
        resume_from: a checkpoint written by :class:`~deepbasics.train.checkpoint.Checkpoint`; the run continues
            after its epoch with every state and RNG stream restored, ending where the uninterrupted run would.

    Reference: Goodfellow, Bengio & Courville, *Deep Learning* (2016), algorithm 8.1 (SGD) and section 7.1.
    """
    check_module(model)
    if not callable(loss_fn):
        raise fail(TypeError, "loss_fn", "a callable", type(loss_fn).__name__, "Pass e.g. nn.CrossEntropyLoss().")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise fail(
            TypeError,
            "optimizer",
            "a torch.optim.Optimizer",
            type(optimizer).__name__,
            "Create one on model.parameters().",
        )
    model_params = {id(p) for p in model.parameters()}
    if not any(id(p) in model_params for g in optimizer.param_groups for p in g["params"]):
        raise fail(
            ValueError,
            "optimizer",
            "an optimizer over this model's parameters",
            "one holding none of them",
            "Create the optimizer from model.parameters() after building (or copying) the model.",
        )
    epochs = check_int(epochs, "epochs", low=1)
    clip = None if clip is None else check_real(clip, "clip", low=0.0, low_inclusive=False)
    l1 = check_real(l1, "l1", low=0.0)
    l2 = check_real(l2, "l2", low=0.0)
    check_choice(on_nonfinite, "on_nonfinite", ("raise", "stop", "continue"))
    check_choice(scheduler_interval, "scheduler_interval", ("epoch", "step"))
    if scheduler is not None and not callable(getattr(scheduler, "step", None)):
        raise fail(TypeError, "scheduler", "an LR scheduler with .step()", type(scheduler).__name__, "")
    if metrics is not None:
        if not isinstance(metrics, Mapping) or not all(isinstance(k, str) and callable(f) for k, f in metrics.items()):
            raise fail(TypeError, "metrics", "a dict {name: fn(outputs, targets)}", repr(metrics), "")
        if "loss" in metrics:
            raise fail(ValueError, "metrics", "names other than 'loss'", "'loss'", "The loss is always recorded.")
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", low=1)
    generator = check_generator(generator)
    if generator is None:  # seeded from the global RNG: torch.manual_seed(s) fixes the data order too
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))

    if device is not None:
        device = torch.device(device)
        model.to(device)
    else:
        device = model_device(model)
    train_batches = as_batches(train, "train", batch_size, shuffle, generator, device)
    val_batches = None if val is None else as_batches(val, "val", batch_size, False, None, device)
    params = [p for p in model.parameters() if p.requires_grad]
    penalized = [p for p in params if p.dim() >= 2] if (l1 or l2) else []

    history = History()
    cbs = CallbackList(callbacks)
    state = TrainState(model, loss_fn, optimizer, scheduler, history, epochs, device, callbacks=cbs)
    state.generators = find_generators(train_batches, [])
    run = _Run(params, penalized, clip, l1, l2, metrics, on_nonfinite, scheduler_interval, val_batches)
    start_epoch, rng = 0, None
    if resume_from is not None:
        payload = load_checkpoint(resume_from)
        restore(payload, model, optimizer, scheduler, cbs)
        state.history = history = History.from_dict(payload["history"])
        state.should_stop, state.stop_reason = bool(payload["should_stop"]), payload["stop_reason"]
        start_epoch, rng = int(payload["epoch"]) + 1, payload["rng"]

    cbs.call("on_fit_start", state)
    if rng is not None:  # after on_fit_start, so nothing a callback draws there shifts the streams
        set_rng_state(rng, state.generators)
    if progress:
        run.bar = _Progress(epochs - start_epoch, _len_or_none(train_batches))
    try:
        for epoch in range(start_epoch, epochs):
            if state.should_stop:
                break
            state.epoch = epoch
            _train_epoch(state, run, train_batches)
            if state.should_stop:
                history.stop_reason = state.stop_reason or DEFAULT_STOP_REASON
                break
    finally:
        if run.bar is not None:
            run.bar.close()
    cbs.call("on_fit_end", state)
    return history


@dataclass
class _Run:
    """The loop's fixed settings (what TrainState does not expose to callbacks)."""

    params: list[torch.Tensor]
    penalized: list[torch.Tensor]
    clip: float | None
    l1: float
    l2: float
    metrics: Mapping[str, Metric] | None
    on_nonfinite: str
    scheduler_interval: str
    val_batches: Iterable | None
    bar: _Progress | None = None


def _train_epoch(state: TrainState, run: _Run, batches: Iterable) -> None:
    model, optimizer, history, cbs = state.model, state.optimizer, state.history, state.callbacks
    assert cbs is not None  # always set by fit
    model.train()
    cbs.call("on_train_epoch_start", state)
    start, epoch_lr = time.perf_counter(), _lr(optimizer)
    loss_sum, metric_sums = 0.0, {}
    count, steps_before = 0, history.steps
    for batch_idx, batch in enumerate(batches):
        x, y = unpack(batch, state.device)
        state.batch_idx, state.step, state.batch, state.grad_norm = batch_idx, history.steps, (x, y), None
        cbs.call("on_train_batch_start", state)
        optimizer.zero_grad(set_to_none=True)
        out = model(x)
        loss = state.loss_fn(out, y)
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise fail(
                ValueError,
                "loss_fn(outputs, targets)",
                "a 0-D tensor (the mean loss)",
                f"shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__,
                "Use reduction='mean' (the torch.nn default).",
            )
        state.outputs, state.loss = out, loss
        state.penalty = weight_penalty(run.penalized, run.l1, run.l2) if run.penalized else None
        lr, loss_value = _lr(optimizer), float(loss.detach())
        what, bad = "loss", loss_value
        finite = math.isfinite(loss_value)
        if finite:
            cbs.call("on_before_backward", state)
            (loss if state.penalty is None else loss + state.penalty).backward()
            cbs.call("on_after_backward", state)
            if run.clip is not None:  # returns the norm before clipping, computed with the same foreach norm
                state.grad_norm = float(torch.nn.utils.clip_grad_norm_(run.params, run.clip))
            else:
                state.grad_norm = float(_global_norm([p.grad for p in run.params if p.grad is not None]))
            what, bad = "gradient norm", state.grad_norm
            finite = math.isfinite(state.grad_norm)
        if finite:
            cbs.call("on_before_optimizer_step", state)
            optimizer.step()
            if state.scheduler is not None and run.scheduler_interval == "step":
                state.scheduler.step()
            if run.metrics is None:  # chosen once, on the first batch, from the outputs' and targets' kinds
                run.metrics = default_metrics(out, y)
            n = len(x)
            count += n
            loss_sum += loss_value * n
            with torch.no_grad():  # metric sums stay on the device: no host sync per step
                for k, f in run.metrics.items():
                    value = torch.as_tensor(f(out.detach(), y), dtype=sum_dtype(state.device), device=state.device)
                    metric_sums[k] = metric_sums.get(k, 0.0) + value * n
        else:
            if run.on_nonfinite == "raise":
                raise NonFiniteLossError(what, bad, state.epoch, state.step, batch_idx)
            optimizer.zero_grad(set_to_none=True)  # never apply a non-finite update
            history.nonfinite.append({"epoch": state.epoch, "step": state.step, "what": what, "value": bad})
            if run.on_nonfinite == "stop":
                state.should_stop = True
                state.stop_reason = f"non-finite {what} ({bad}) at epoch {state.epoch}, step {state.step}"
        history.step_loss.append(loss_value)
        history.grad_norm.append(math.nan if state.grad_norm is None else state.grad_norm)
        history.step_lr.append(lr)
        cbs.call("on_train_batch_end", state)
        if run.bar is not None:
            run.bar.advance(state.epoch, state.epochs, loss_value)
        if state.should_stop:
            break
    if history.steps == steps_before:
        raise fail(ValueError, "train", "at least one batch per epoch", "none", "Check batch_size and drop_last.")

    # end of epoch: record, validate, schedule, then the epoch-end hooks
    history.train_loss.append(loss_sum / count if count else math.nan)
    for k in run.metrics or {}:
        history.train_metrics.setdefault(k, []).append(float(metric_sums[k]) / count if count else math.nan)
    if run.val_batches is not None:
        result = evaluate(state.model, state.loss_fn, run.val_batches, metrics=run.metrics, device=state.device)
        history.val_loss.append(result.pop("loss"))
        for k, v in result.items():
            history.val_metrics.setdefault(k, []).append(v)
    if state.scheduler is not None and run.scheduler_interval == "epoch":
        plateau_metric = history.val_loss[-1] if run.val_batches is not None else history.train_loss[-1]
        _step_scheduler(state.scheduler, plateau_metric)
    history.lr.append(epoch_lr)
    history.epoch_time.append(time.perf_counter() - start)
    if run.val_batches is not None:
        cbs.call("on_validation_epoch_end", state)
    cbs.call("on_train_epoch_end", state)


def _len_or_none(obj: object) -> int | None:
    try:
        return len(obj)  # type: ignore[arg-type]
    except TypeError:
        return None


class _Progress:
    """A rich progress bar over all remaining steps, showing epoch and last loss."""

    def __init__(self, epochs: int, steps_per_epoch: int | None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("[bold]fit"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
        )
        total = None if steps_per_epoch is None else epochs * steps_per_epoch
        self._task = self._bar.add_task("fit", total=total, info="")
        self._bar.start()

    def advance(self, epoch: int, epochs: int, loss: float) -> None:
        self._bar.update(self._task, advance=1, info=f"epoch {epoch + 1}/{epochs}  loss {loss:.4g}")

    def close(self) -> None:
        self._bar.stop()
