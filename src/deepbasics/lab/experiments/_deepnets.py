"""Shared pieces of the Q3.3 experiments (vanishing and exploding gradients): nets, inits, gradient profiles.

Not an experiment module (the leading ``_`` keeps :func:`deepbasics.lab.experiments.discover` away from it).

Two gradient profiles of a feed-forward net with linear layers ``z_l = W_l h_{l-1} + b_l`` (``l = 1..L``,
``h_l = phi(z_l)``, ``h_0 = x``), both listed from the input side to the output side:

- the **weight gradient** ``||dL/dW_l||`` (what the optimizer applies; what :class:`deepbasics.probe.LayerStats`
  records), ``dL/dW_l = sum_n delta_l^(n) h_{l-1}^(n)T``;
- the **back-propagated error** ``||dL/dz_l|| = ||delta_l||``, with ``delta_l = diag(phi'(z_l)) W_{l+1}^T
  delta_{l+1}``: the product of layer Jacobians of the FAQ's chain rule (Q3.3.1).

Their first/last ratios differ when the weight scale drives the effect: in a positively homogeneous net
(linear, ReLU) with every ``W_l`` multiplied by ``s``, ``delta_l`` grows like ``s^(L-l)`` while ``h_{l-1}``
grows like ``s^(l-1)``, so every ``||dL/dW_l||`` grows like ``s^(L-1)`` and their first/last ratio stays near 1
although the error ratio is ``~s^(L-1)``. Exploding (or vanishing) by scale is therefore judged on the error
ratio. Reference: Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural networks",
AISTATS 2010, sec. 4.2 (back-propagated gradients, eq. 13-14); Schoenholz et al., "Deep Information
Propagation", ICLR 2017, sec. 3 (chi = sigma_w^2 E[phi'(z)^2], the per-layer factor of ``||delta||^2``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from deepbasics import init as db_init
from deepbasics import nn as db_nn
from deepbasics import optim as db_optim
from deepbasics import train as db_train
from deepbasics.data import digits

if TYPE_CHECKING:
    from deepbasics.probe import LayerStats
    from deepbasics.train import Callback, History

#: The FAQ's threshold words made numbers: a first/last gradient ratio below 1e-2 is "vanishing", above 1e2
#: "exploding" (two orders of magnitude across the net: a learning rate that suits one end is then 100x off at
#: the other, which no single step size can serve).
VANISH, EXPLODE = 1e-2, 1e2

#: ``std`` of a named init scheme for a (fan_out, fan_in) weight; "default" is torch's ``nn.Linear`` init
#: U(+-1/sqrt(fan_in)), std = 1/sqrt(3 fan_in) (kaiming_uniform_ with a = sqrt(5)).
BASE_STD: dict[str, Callable[[int, int], float]] = {
    "default": lambda fan_in, fan_out: 1.0 / math.sqrt(3.0 * fan_in),
    "glorot": lambda fan_in, fan_out: math.sqrt(2.0 / (fan_in + fan_out)),
    "he": lambda fan_in, fan_out: math.sqrt(2.0 / fan_in),
    "N(0,1)": lambda fan_in, fan_out: 1.0,
    "N(0,0.01)": lambda fan_in, fan_out: 0.01,
}


def digits_data(
    seed: int, train_size: int | None = None, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_val, y_val)`` of sklearn's digits (64 standardized features, 10 classes)."""
    splits = digits(seed=seed, train_size=train_size, dtype=dtype)
    return (*splits.tensors("train"), *splits.tensors("val"))


def scaled_init(scheme: str, multiplier: float, generator: torch.Generator) -> Callable[[torch.Tensor], object]:
    """A weight filler for :func:`deepbasics.nn.mlp`: ``scheme``'s std times ``multiplier``, from ``generator``.

    "glorot" and "he" use :func:`deepbasics.init.glorot_normal_` / :func:`~deepbasics.init.he_normal_`
    (N(0, 2/(fan_in+fan_out)), N(0, 2/fan_in)); the others draw N(0, std^2) with std from :data:`BASE_STD`.
    """

    def fill(weight: torch.Tensor) -> None:
        if scheme == "glorot":
            db_init.glorot_normal_(weight, generator=generator)
        elif scheme == "he":
            db_init.he_normal_(weight, generator=generator)
        else:
            fan_out, fan_in = weight.shape
            weight.normal_(0.0, BASE_STD[scheme](fan_in, fan_out), generator=generator)
        weight.mul_(multiplier)

    return fill


@contextlib.contextmanager
def global_rng_from(generator: torch.Generator) -> Iterator[None]:
    """Seed torch's global RNG from ``generator`` inside the block and restore it afterwards.

    Torch's default layer initialization (``nn.Linear.reset_parameters``) draws from the global RNG; this keeps
    such draws a function of the experiment's seed without leaking state into the caller.
    """
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def deep_mlp(
    activation: str,
    layers: int,
    width: int,
    scheme: str,
    generator: torch.Generator,
    *,
    multiplier: float = 1.0,
    norm: str | None = None,
    in_features: int = 64,
    classes: int = 10,
) -> nn.Sequential:
    """``mlp([in] + [width] * (layers - 1) + [classes])``: ``layers`` linear layers, weights from ``scheme``
    (a key of :data:`BASE_STD`; "default" with multiplier 1 keeps torch's uniform init) times ``multiplier``."""
    sizes = [in_features] + [width] * (layers - 1) + [classes]
    init = None if scheme == "default" and multiplier == 1.0 else scaled_init(scheme, multiplier, generator)
    with global_rng_from(generator):
        return db_nn.mlp(sizes, activation=activation, norm=norm, init=init)


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The model's ``nn.Linear`` modules in registration order (input side first for our builders)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def backprop_profile(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, list[float]]:
    """One cross-entropy backward: ``{"error": [||dL/dz_l||], "weight": [||dL/dW_l||]}`` per linear layer.

    Layers in call order (input side first); ``L`` is the mean cross-entropy over the batch. Gradients are
    taken with ``torch.autograd.grad`` (the model's ``.grad`` fields are left untouched).
    """
    outputs: list[torch.Tensor] = []
    weights: list[torch.Tensor] = []

    def keep(module: nn.Module, args: object, out: torch.Tensor) -> None:
        outputs.append(out)
        weights.append(module.weight)

    handles = [m.register_forward_hook(keep) for m in linear_layers(model)]
    try:
        loss = nn.functional.cross_entropy(model(x), y)
    finally:
        for h in handles:
            h.remove()
    grads = torch.autograd.grad(loss, outputs + weights)
    norms = [float(torch.linalg.vector_norm(g)) for g in grads]
    return {"error": norms[: len(outputs)], "weight": norms[len(outputs) :]}


def log10_ratio(first: float, last: float) -> float:
    """``log10(first / last)`` for norms ``>= 0``, kept finite: an underflowed 0 or an overflowed inf in one of
    them gives -300 or +300 (beyond any threshold used here), equal ones give 0. A nan stays nan (the engine then
    reports "error" rather than a silent verdict)."""
    if math.isnan(first) or math.isnan(last):
        return math.nan
    if first == last:
        return 0.0
    if first == 0.0 or last == math.inf:
        return -300.0
    if last == 0.0 or first == math.inf:
        return 300.0
    return float(np.clip(math.log10(first / last), -300.0, 300.0))


def log_slope(values: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope of ``log10(values[l])`` against ``l`` (decades per layer) and its R^2."""
    v = np.log10(np.maximum(np.asarray(values, dtype=float), 1e-300))
    idx = np.arange(len(v), dtype=float)
    slope, intercept = np.polyfit(idx, v, 1)
    resid = v - (slope * idx + intercept)
    total = float(((v - v.mean()) ** 2).sum())
    return float(slope), float(1.0 - (resid**2).sum() / total) if total > 0 else 1.0


def layer_grad_norms(stats: LayerStats, step_index: int) -> list[float]:
    """Per-linear-layer gradient norms (weight and bias together) at the ``step_index``-th recorded step of a
    :class:`deepbasics.probe.LayerStats`; ``nan`` where not measured."""
    rec = stats.records()
    out = []
    for name in stats.layer_order:
        if "grad_norm" in rec[name] and name.split(".")[-1].startswith(("linear", "stem", "head")):
            v = rec[name]["grad_norm"][step_index]
            out.append(math.nan if v is None else float(v))
    return out


def relative_change(before: list[torch.Tensor], model: nn.Module) -> list[float]:
    """``||W_T - W_0|| / ||W_0||`` per linear layer, ``before`` the weights at step 0 (same order)."""
    after = [m.weight.detach() for m in linear_layers(model)]
    return [
        float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b)) for a, b in zip(after, before, strict=True)
    ]


def full_batch_fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    callbacks: Iterable[Callback] = (),
    clip: float | None = None,
    l2: float = 0.0,
) -> History:
    """``steps`` full-batch steps of :func:`deepbasics.train.fit` with cross-entropy; stops at a non-finite loss
    or gradient (recorded in ``history.nonfinite``). One epoch is one step, so per-epoch lists are per step."""
    return db_train.fit(
        model,
        nn.CrossEntropyLoss(),
        optimizer,
        (x, y),
        epochs=steps,
        batch_size=None,
        callbacks=callbacks,
        clip=clip,
        l2=l2,
        on_nonfinite="stop",
        generator=torch.Generator().manual_seed(0),
    )


def val_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy of ``model`` on ``(x, y)`` in eval mode (:func:`deepbasics.train.evaluate`)."""
    return float(db_train.evaluate(model, nn.CrossEntropyLoss(), (x, y), batch_size=None)["accuracy"])


def sgd(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """Plain SGD, ``w <- w - lr * dL/dw`` (:class:`deepbasics.optim.SGD`), the update of the FAQ's Q3.3.1."""
    return db_optim.SGD(model.parameters(), lr=lr)


def curve(values: Sequence[float], n: int = 200) -> list[float]:
    """At most ``n`` evenly spaced entries of a per-step series, for plots (non-finite entries kept)."""
    return list(values[:: max(1, len(values) // n)])


def steps_to(values: Sequence[float], target: float) -> int | None:
    """First index ``k`` with ``values[k] >= target`` (the number of updates made before it), or None."""
    return next((k for k, v in enumerate(values) if v >= target), None)
