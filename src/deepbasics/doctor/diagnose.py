"""``diagnose``: static checks, a short probe run under ``watch`` and a curvature check, on a copy of the model.

Procedure (the user's model, optimizer and global random stream are left untouched):

1. Validate the data -- a ``DataLoader`` (or any re-iterable of ``(x, y)`` batches) or an ``(inputs, targets)``
   pair of tensors -- and run one traced forward of ``loss_fn(model(x), y)`` on the first batch; a shape error
   is re-raised as a ``ValueError`` naming the shapes.
2. Static checks (:mod:`.detectors.static`): softmax/sigmoid before a loss that applies it again, MSE on
   sigmoid/softmax outputs, the naive softmax pattern, BatchNorm with batches under 16, unnormalized inputs,
   weight scales outside the Glorot/He band, and weight layers with no nonlinearity between them (a note).
3. A probe run of ``steps`` optimizer steps on a deep copy, under :func:`~deepbasics.doctor.watch.watch` with
   per-layer statistics, and validation losses every ~5% of the run. The optimizer is a copy: the same class with
   the same ``param_groups`` hyperparameters on the copy's parameters (default Adam, lr 1e-3). A non-finite loss
   stops the run and is located with :func:`deepbasics.nonfinite.locate_nonfinite` (op and module).
4. Curvature at the start (a saddle test of the initialization) and at the end (small models;
   :mod:`.measure`), the gradient noise scale; everything goes into one
   :class:`~deepbasics.doctor.records.RunTrace` and :func:`~deepbasics.doctor.detectors.run_detectors` judges it.
"""

from __future__ import annotations

import copy
import itertools
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from .._checks import check_generator, check_int, check_module, check_positive, fail
from ..autodiff import model_mode
from .detectors import missing_nonlinearity_notes, run_detectors, static_codes
from .measure import measure_curvature, measure_noise_scale
from .records import StaticFacts
from .report import Report
from .session import DoctorSession
from .trace import batchnorm_layers, input_statistics, layer_kinds, linear_chains, trace_forward, weight_layers

__all__ = ["diagnose"]

#: Examples gathered from the training data for input statistics, curvature and the noise scale.
SAMPLE_EXAMPLES = 512
#: Validation losses recorded during the probe run (evenly spaced).
VAL_POINTS = 20
#: Validation examples evaluated per point (the first ones).
VAL_EXAMPLES = 2048

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _is_pair(data: object) -> bool:
    return isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor)


def _check_data(data: object, name: str) -> None:
    if _is_pair(data):
        x, y = data  # type: ignore[misc]
        if not isinstance(y, torch.Tensor):
            raise fail(TypeError, f"{name}[1] (targets)", "a tensor", type(y).__name__, "Pass (inputs, targets).")
        if x.dim() == 0 or x.shape[0] == 0:
            raise fail(ValueError, f"{name}[0] (inputs)", "a non-empty batch (N, ...)", f"shape {tuple(x.shape)}",
                       "Pass at least one example, batch dimension first.")  # fmt: skip
        if y.dim() == 0 or y.shape[0] != x.shape[0]:
            shapes = f"inputs {tuple(x.shape)} and targets {tuple(y.shape)}"
            raise fail(ValueError, name, "inputs and targets with the same first dimension N", shapes,
                       "Pass one target per example.")  # fmt: skip
        return
    if isinstance(data, torch.Tensor):
        raise fail(TypeError, name, "an (inputs, targets) pair or a DataLoader", "a single tensor",
                   "Pass (inputs, targets).")  # fmt: skip
    if not isinstance(data, Iterable) or iter(data) is data:  # type: ignore[arg-type]
        raise fail(TypeError, name, "an (inputs, targets) pair of tensors or a re-iterable DataLoader",
                   type(data).__name__, "Wrap the data in torch.utils.data.DataLoader or pass (x, y).")  # fmt: skip


def _batches(data: Any, batch_size: int | None, generator: torch.Generator | None) -> Iterator[tuple[Any, Any]]:
    """Endless batches: shuffled mini-batches of a tensor pair (a fresh permutation per epoch), or the
    loader's batches, cycled."""
    if _is_pair(data):
        x, y = data
        n = x.shape[0]
        size = n if batch_size is None else min(batch_size, n)
        while True:
            order = torch.randperm(n, generator=generator).to(x.device)
            for start in range(0, n - size + 1, size):  # drop the short last batch: the batch size stays fixed
                rows = order[start : start + size]
                yield x[rows], y[rows]
    while True:
        produced = False
        for batch in data:
            if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                raise fail(TypeError, "train_data batch", "an (inputs, targets) pair", type(batch).__name__,
                           "Make the dataset return (x, y), e.g. a TensorDataset.")  # fmt: skip
            produced = True
            yield batch[0], batch[1]
        if not produced:
            raise fail(ValueError, "train_data", "at least one batch", "an empty loader", "Pass a non-empty loader.")


def _sample(data: Any, limit: int) -> tuple[torch.Tensor, Any]:
    """Up to ``limit`` examples of ``data`` as one ``(inputs, targets)`` pair."""
    if _is_pair(data):
        return data[0][:limit], data[1][:limit]
    xs, ys, count = [], [], 0
    for x, y in data:
        xs.append(x)
        ys.append(y)
        count += x.shape[0]
        if count >= limit:
            break
    if not xs:
        raise fail(ValueError, "data", "at least one batch", "an empty loader", "Pass a non-empty loader.")
    y = torch.cat(ys)[:limit] if isinstance(ys[0], torch.Tensor) else ys[0]
    return torch.cat(xs)[:limit], y


def _to(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, torch.Tensor) else value


def _copy_optimizer(optimizer: Any, original: nn.Module, model: nn.Module, lr: float | None) -> torch.optim.Optimizer:
    """The optimizer to use on the copy: same class and param-group hyperparameters, or Adam(lr=1e-3)."""
    params = list(model.parameters())
    if optimizer is None:
        return torch.optim.Adam(params, lr=1e-3 if lr is None else lr)
    if not isinstance(optimizer, torch.optim.Optimizer):
        if callable(optimizer):  # a factory, params -> optimizer (as the fault zoo's make_optimizer)
            built = optimizer(iter(params))
            if not isinstance(built, torch.optim.Optimizer):
                raise fail(TypeError, "optimizer", "a factory returning a torch.optim.Optimizer",
                           type(built).__name__, "Return e.g. torch.optim.SGD(params, lr=0.1).")  # fmt: skip
            if lr is not None:
                for group in built.param_groups:
                    group["lr"] = lr
            return built
        raise fail(TypeError, "optimizer", "a torch.optim.Optimizer, a factory params -> optimizer, or None",
                   type(optimizer).__name__, "Pass the optimizer you train with.")  # fmt: skip
    index = {id(p): i for i, p in enumerate(original.parameters())}
    groups = []
    for group in optimizer.param_groups:
        try:
            mapped = [params[index[id(p)]] for p in group["params"]]
        except KeyError:
            raise fail(
                ValueError,
                "optimizer",
                "an optimizer over the model's parameters",
                "parameters that are not the model's",
                "Pass the optimizer built on this model.",
            ) from None
        settings = {k: v for k, v in group.items() if k != "params"}
        if lr is not None:
            settings["lr"] = lr
        groups.append({"params": mapped, **settings})
    return type(optimizer)(groups)


def _val_loss(model: nn.Module, loss_fn: LossFn, val: tuple[torch.Tensor, Any]) -> float:
    with model_mode(model, train=False), torch.no_grad():
        return float(loss_fn(model(val[0]), val[1]))


def _static_facts(
    model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: Any, sample_x: torch.Tensor
) -> tuple[StaticFacts, list[str]]:
    """What one traced forward, the weights and the inputs say (see the module docstring), and the notes."""
    try:
        trace = trace_forward(model, loss_fn, x, y)
    except Exception as error:  # shape and dtype mistakes become one clear ValueError naming the shapes
        shapes = f"inputs {tuple(x.shape)}" + (f", targets {tuple(y.shape)}" if isinstance(y, torch.Tensor) else "")
        raise fail(
            ValueError,
            "train_data",
            "batches the model and loss_fn accept",
            f"{shapes}: {error}",
            "Check the input feature count and the target shape/dtype the loss expects.",
        ) from error
    means, stds = input_statistics(sample_x)
    facts = StaticFacts(
        output_op=trace.output_op,
        output_module=trace.output_module,
        loss_ops=list(trace.loss_ops),
        naive_softmax_sites=list(trace.naive_softmax_sites),
        input_means=means,
        input_stds=stds,
        weight_layers=weight_layers(model, trace),
        at_init=True,
    )
    return facts, missing_nonlinearity_notes(linear_chains(trace, layer_kinds(model)))


def diagnose(
    model: nn.Module,
    loss_fn: LossFn,
    train_data: Any,
    val_data: Any = None,
    optimizer: Any = None,
    steps: int = 200,
    *,
    batch_size: int | None = None,
    lr: float | None = None,
    device: torch.device | str | None = None,
    curvature: bool = True,
    generator: torch.Generator | None = None,
) -> Report:
    """Diagnose a training setup on a copy of ``model``; return a :class:`~deepbasics.doctor.report.Report`.

    Args:
        model: the network (not modified).
        loss_fn: ``loss_fn(model(x), y)`` -> scalar mean loss.
        train_data: ``(inputs, targets)`` tensors or a re-iterable of ``(x, y)`` batches (DataLoader).
        val_data: the same kinds, for the overfitting check (optional).
        optimizer: the optimizer you train with (copied: same class and hyperparameters, not modified), a
            factory ``params -> optimizer``, or None for ``Adam(lr=1e-3)``.
        steps: optimizer steps of the probe run (default 200).
        batch_size: mini-batch size for tensor data; None trains on the full batch (as
            ``deepbasics.data.loader``); must be None for a DataLoader, which has its own.
        lr: overrides the learning rate of every param group.
        device: where to run (default: the model's device).
        curvature: compute the Hessian extremes at the end (skipped politely for models over
            ``CURVATURE_MAX_PARAMS`` parameters).
        generator: seeds the data order; the global random stream (dropout) is seeded from it inside a fork,
            so the caller's stream does not move and a diagnosis is reproducible.
    """
    check_module(model)
    if not callable(loss_fn):
        raise fail(TypeError, "loss_fn", "a callable (outputs, targets) -> scalar loss", type(loss_fn).__name__,
                   "Pass e.g. torch.nn.CrossEntropyLoss().")  # fmt: skip
    steps = check_int(steps, "steps", low=1)
    check_generator(generator)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", low=1)
        if not _is_pair(train_data):
            raise fail(ValueError, "batch_size", "None when train_data is a DataLoader", batch_size,
                       "Set the batch size on the DataLoader, or pass (inputs, targets) tensors.")  # fmt: skip
    if lr is not None:
        lr = check_positive(lr, "lr")
    _check_data(train_data, "train_data")
    if val_data is not None:
        _check_data(val_data, "val_data")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    seed = generator.initial_seed() if generator is not None else 0
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        report = _diagnose(
            model, loss_fn, train_data, val_data, optimizer, steps, batch_size, lr, device, curvature, seed
        )
    report.meta["seconds"] = time.perf_counter() - started
    return report


def _diagnose(
    original: nn.Module,
    loss_fn: LossFn,
    train_data: Any,
    val_data: Any,
    optimizer: Any,
    steps: int,
    batch_size: int | None,
    lr: float | None,
    device: torch.device,
    curvature: bool,
    seed: int,
) -> Report:
    model = copy.deepcopy(original).to(device)
    model.train()
    opt = _copy_optimizer(optimizer, original, model, lr)
    data_gen = torch.Generator().manual_seed(seed)
    batches = _batches(train_data, batch_size, data_gen)
    x0, y0 = next(batches)
    x0, y0 = _to(x0, device), _to(y0, device)
    effective_batch = int(x0.shape[0])
    sample_x, sample_y = _sample(train_data, SAMPLE_EXAMPLES)
    sample_x, sample_y = _to(sample_x, device), _to(sample_y, device)
    val = None
    if val_data is not None:
        vx, vy = _sample(val_data, VAL_EXAMPLES)
        val = (_to(vx, device), _to(vy, device))

    facts, notes = _static_facts(model, loss_fn, x0, y0, sample_x)
    start = None
    if curvature:  # a run can start on a saddle (near-zero init) and leave it slowly: test the start too
        start, _ = measure_curvature(model, loss_fn, sample_x, sample_y)
    val_every = max(1, steps // VAL_POINTS)
    layer_every = max(1, steps // 100)
    session = DoctorSession(
        model,
        opt,
        every=1,
        layer_every=layer_every,
        check_every=steps + 1,
        intercept_losses=False,
        dense_layer_records=None,
    )
    located, located_step = None, None
    steps_run = 0
    with session, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LayerStats cannot watch")  # becomes a note below
        for step, (x, y) in enumerate(itertools.chain([(x0, y0)], batches)):
            if step >= steps:
                break
            x, y = _to(x, device), _to(y, device)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            if not bool(torch.isfinite(loss.detach()).all()):
                session.step(loss)
                located, located_step = _locate(model, loss_fn, x, y), step
                notes.append(f"probe run stopped at step {step}: the loss was {float(loss.detach())}.")
                break
            loss.backward()
            opt.step()
            steps_run += 1
            session.step(loss)
            if val is not None and (step % val_every == 0 or step == steps - 1):
                session.log_val(_val_loss(model, loss_fn, val), step=step)
    trace = session.trace()
    if session.stats is not None and session.stats.unsupported:
        notes.append(
            "per-layer statistics cannot see activations called as functions: "
            + "; ".join(session.stats.unsupported)
            + ". Use modules (nn.ReLU(), nn.Sigmoid(), ...) to have them checked for dead or saturated units."
        )

    if curvature and located is None:
        result, note = measure_curvature(model, loss_fn, sample_x, sample_y)
        trace.curvature = result
        if note:
            notes.append(note)
    if located is None and isinstance(sample_y, torch.Tensor) and sample_x.shape[0] >= 2:
        result, note = measure_noise_scale(model, loss_fn, sample_x, sample_y, effective_batch)
        trace.noise = result
        if note:
            notes.append(note)
    trace.batch_size = effective_batch  # the configured batch, which every BatchNorm layer sees
    trace.batchnorm_layers = batchnorm_layers(model)
    trace.curvature_start = start
    trace.hygiene = trace.coverage = None  # the probe loop is ours: its zero_grad and optimizer are right
    if located is not None:
        facts.nonfinite = {**located.to_dict(), "step": located_step}
    trace.static = facts

    findings = run_detectors(trace)
    static = static_codes()
    opt_meta = type(opt).__name__
    return Report(
        findings=findings,
        static_findings=[f for f in findings if f.code in static and f.step is None],
        history={
            "losses": trace.losses,
            "val_losses": trace.val_losses,
            "layers": trace.layers,
            "order": trace.order,
            "kinds": trace.kinds,
            "curvature": trace.curvature,
            "noise": trace.noise,
            "nonfinite": located.to_dict() if located is not None else None,
        },
        notes=notes,
        meta={
            "model": type(original).__name__,
            "steps": steps,
            "steps_run": steps_run,
            "batch_size": effective_batch,
            "optimizer": opt_meta,
            "lr": opt.param_groups[0].get("lr"),
            "device": str(device),
            "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        },
    )


def _locate(model: nn.Module, loss_fn: LossFn, x: Any, y: Any) -> Any:
    """Re-run the failing step under :func:`deepbasics.nonfinite.locate_nonfinite` (on a copy: it accumulates
    gradients); its report, or None."""
    from ..nonfinite import locate_nonfinite  # lazy: only after a failure

    probe = copy.deepcopy(model)
    try:
        return locate_nonfinite(lambda: loss_fn(probe(x), y))
    except Exception:  # locating is best effort: the loss finding stands without it
        return None
