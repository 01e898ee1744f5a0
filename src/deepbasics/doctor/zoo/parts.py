"""Small pieces the zoo's setups are made of: deliberately faulty modules, re-initializations, data.

The faulty modules are the textbook mistakes, written the way people write them:

- :class:`NaiveLogSoftmax` (from :mod:`deepbasics.doctor.faulty`, where the ``stable_softmax`` fix finds it):
  ``log(exp(z) / sum exp(z))`` as written; overflows once a logit exceeds ~88.7 in float32.
- :class:`Scale`: multiplies by a constant (a "temperature" of ``1 / factor``), to push logits into the range
  where the naive form overflows.

Re-initializations (:func:`normal_init_`, :func:`fill_bias_`) act on every ``nn.Linear``/``nn.Conv2d`` (and the
recurrent cells' ``weight_ih``/``weight_hh``) so a setup can be described in one line ("weights N(0, 3^2)").
The data helpers (:func:`digits_pairs`, :func:`cancer_pairs`) return ``(inputs, targets)`` pairs cut from
:mod:`deepbasics.data` (``DIGITS_TRAIN`` training and ``VAL_SIZE`` validation digits), small enough that a probe
run takes seconds on a CPU; :func:`sgd` and :func:`adam` are optimizer factories ``params -> Optimizer``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from ... import data as db_data
from ..._checks import check_int, check_real, check_tensor
from ..faulty import NaiveLogSoftmax

__all__ = [
    "DIGITS_TRAIN",
    "LABEL_NOISE",
    "VAL_SIZE",
    "NaiveLogSoftmax",
    "Scale",
    "adam",
    "binary_targets",
    "cancer_pairs",
    "digits_pairs",
    "fill_bias_",
    "normal_init_",
    "pair",
    "scaled_init_",
    "sgd",
    "splits_pairs",
]

Data = tuple[torch.Tensor, torch.Tensor]
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


class Scale(nn.Module):
    """``y = factor * x`` (a fixed logit scale; ``factor = 1 / temperature``)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = check_real(factor, "factor")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor:g}"


def _weights(model: nn.Module) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            out.append(module.weight)
        for name in ("weight_ih", "weight_hh"):
            w = getattr(module, name, None)
            if isinstance(w, nn.Parameter):
                out.append(w)
    return out


@torch.no_grad()
def normal_init_(model: nn.Module, std: float) -> nn.Module:
    """Every Linear/Conv2d/recurrent weight ``~ N(0, std^2)`` (an absolute std, whatever the fan-in)."""
    std = check_real(std, "std", low=0.0)
    for w in _weights(model):
        w.normal_(0.0, std)
    return model


@torch.no_grad()
def scaled_init_(model: nn.Module, gain: float, *, skip_last: bool = False) -> nn.Module:
    """Every Linear/Conv2d weight ``~ N(0, gain^2 / fan_in)`` (LeCun's variance times ``gain^2``).

    ``gain = 1`` is LeCun (1998), ``sqrt(2)`` is He et al. (2015); ``gain = 4`` puts a tanh network deep in
    the chaotic phase (Poole et al. 2016, section 4) where back-propagated gradients grow with depth.
    ``skip_last`` leaves the output layer as it is.
    """
    gain = check_real(gain, "gain", low=0.0)
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    if skip_last:
        weights = weights[:-1]
    for w in weights:
        fan_in = w[0].numel()  # in_features, or in_channels * kh * kw
        w.normal_(0.0, gain / math.sqrt(fan_in))
    return model


@torch.no_grad()
def fill_bias_(model: nn.Module, value: float, *, skip_last: bool = True) -> nn.Module:
    """Set every Linear/Conv2d bias to ``value`` (the output layer's too unless ``skip_last``)."""
    value = check_real(value, "value")
    layers = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d) and m.bias is not None]
    if skip_last:
        layers = layers[:-1]
    for m in layers:
        m.bias.fill_(value)
    return model


def pair(ds: torch.utils.data.TensorDataset | None) -> Data | None:
    """``(inputs, targets)`` of a ``TensorDataset`` (``None`` stays ``None``)."""
    return None if ds is None else (ds.tensors[0], ds.tensors[1])


def splits_pairs(splits: db_data.Splits, *, val_size: int | None = None) -> tuple[Data, Data | None]:
    """The training and validation pairs of ``splits``; ``val_size`` keeps only the first that many val rows."""
    train, val = pair(splits.train), pair(splits.val)
    if val is not None and val_size is not None:
        val_size = check_int(val_size, "val_size", low=1)
        val = (val[0][:val_size], val[1][:val_size])
    return train, val  # type: ignore[return-value]


def binary_targets(data: Data) -> Data:
    """Integer labels in {0, 1} as float targets ``(N, 1)`` for BCE/MSE on one output unit."""
    x, y = data
    check_tensor(y, "targets")
    return x, y.to(x.dtype).unsqueeze(1)  # (N,) -> (N, 1)


# --- data and optimizers shared by the setups -----------------------------------------------------------

DIGITS_TRAIN = 600
VAL_SIZE = 256
# Fraction of flipped training labels in the oscillation setup: keeps the loss floor near log 2, so the bouncing
# loss stays high instead of touching zero between bounces.
LABEL_NOISE = 0.3


def sgd(lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> OptimizerFactory:
    """``params -> torch.optim.SGD(params, lr, momentum, weight_decay)``."""
    return lambda params: torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def adam(lr: float = 1e-3) -> OptimizerFactory:
    """``params -> torch.optim.Adam(params, lr)``."""
    return lambda params: torch.optim.Adam(params, lr=lr)


@functools.lru_cache(maxsize=32)
def _splits(loader: str, dtype: torch.dtype, **kw) -> db_data.Splits:
    # sklearn's loaders parse their files on every call; the zoo builds the same splits many times
    return getattr(db_data, loader)(dtype=dtype, **kw)


def _fresh(splits: db_data.Splits) -> tuple[Data, Data]:
    # copies, so that nothing a caller does to a case's tensors reaches the cache
    train, val = splits_pairs(splits, val_size=VAL_SIZE)
    return (train[0].clone(), train[1].clone()), (val[0].clone(), val[1].clone())


def digits_pairs(
    seed: int, *, images: bool = False, rows: bool = False, train_size: int | None = DIGITS_TRAIN, **kw: object
) -> tuple[Data, Data]:
    """Digits train/val pairs: features (N, 64), ``images`` (N, 1, 8, 8) or ``rows`` (N, T=8, I=8); ``kw`` go to
    :func:`deepbasics.data.digits` (e.g. ``scale``, ``standardize``). The val pair keeps ``VAL_SIZE`` rows."""
    dtype = torch.get_default_dtype()
    splits = _splits("digits", dtype, as_images=images or rows, seed=seed, train_size=train_size, **kw)
    train, val = _fresh(splits)
    if rows:  # (N, 1, 8, 8) -> (N, T=8, I=8): one image row per time step
        train, val = (train[0][:, 0], train[1]), (val[0][:, 0], val[1])
    return train, val


def cancer_pairs(seed: int, **kw: object) -> tuple[Data, Data]:
    """Breast-cancer train/val pairs (30 features, 2 classes); ``kw`` go to :func:`deepbasics.data.breast_cancer`."""
    return _fresh(_splits("breast_cancer", torch.get_default_dtype(), seed=seed, **kw))
