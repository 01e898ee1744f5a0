"""Optimizers from first principles, gradient clipping, and ill-conditioned quadratics (FAQ Q3.1, Q3.3).

- :class:`SGD`, :class:`Adagrad`, :class:`RMSprop`, :class:`Adadelta`, :class:`Adam`, :class:`AdamW`:
  drop-in ``torch.optim.Optimizer`` subclasses with the same constructor signatures, state names and
  state dicts as their ``torch.optim`` counterparts; each has a per-parameter reference kernel and a
  ``torch._foreach_*`` kernel (the functional forms are ``optim.sgd.sgd``, ``optim.adam.adam``, ...).
- :mod:`~deepbasics.optim.clip`: global and per-parameter gradient-norm clipping, value clipping (Q3.3).
- :mod:`~deepbasics.optim.quadratic`: quadratics of chosen condition number; gradient descent,
  preconditioning, Newton and heavy-ball on them (Q3.1).
"""

from __future__ import annotations

from . import clip, quadratic
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .clip import clip_grad_norm, clip_grad_norm_per_parameter, clip_grad_value
from .quadratic import Quadratic, Trajectory
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Quadratic",
    "RMSprop",
    "Trajectory",
    "clip",
    "clip_grad_norm",
    "clip_grad_norm_per_parameter",
    "clip_grad_value",
    "quadratic",
]
