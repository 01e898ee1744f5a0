"""Inverted dropout (Srivastava et al. 2014), as ``torch.nn.Dropout``.

In training mode each element is kept with probability ``1 - p`` and the kept ones are scaled up:

    m_i ~ Bernoulli(1 - p)  (independently),      y_i = m_i x_i / (1 - p)

so ``E[y_i] = x_i``; in eval mode ``y = x``.

Why *inverted* (scale at training time, not at test time): the paper's original form multiplies the weights
by ``1 - p`` at test time so that a unit's expected input matches what it saw in training. Scaling by
``1 / (1 - p)`` during training gives the same expectation but leaves the evaluated network untouched: eval
mode is the identity, nothing needs rescaling when the model is exported or when ``p`` changes, and a
network trained with dropout can be evaluated by code that knows nothing about it. The FAQ (Q10) lists
dropout as a cure for overfitting; the gradient is ``dL/dx_i = m_i dL/dy_i / (1 - p)``, the same mask.

``p`` must lie in [0, 1). ``torch.nn.Dropout`` also accepts ``p = 1`` and special-cases it to output zeros;
here it is rejected, because the scale ``1 / (1 - p)`` is undefined and a layer that zeroes everything is
almost certainly a bug (use ``torch.zeros_like`` if that is really meant).

Reference: N. Srivastava, G. Hinton, A. Krizhevsky, I. Sutskever, R. Salakhutdinov, "Dropout: A Simple Way
to Prevent Neural Networks from Overfitting", JMLR 15, 2014, section 4 (the masked layer) and Fig. 2 (the
test-time weight scaling that inverted dropout replaces). The paper's ``p`` is the probability of *keeping*
a unit; here, as in torch, ``p`` is the probability of dropping it.
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_generator, check_real, check_tensor

__all__ = ["Dropout", "dropout"]


def dropout(
    x: torch.Tensor,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Inverted dropout of ``x`` (any shape): ``m * x / (1 - p)`` with ``m ~ Bernoulli(1 - p)`` in training.

    ``training=False`` or ``p=0`` returns ``x`` itself. ``inplace=True`` overwrites ``x``. ``generator``
    (optional) draws the mask reproducibly without touching the global random state.
    """
    check_tensor(x, "input", floating=True, nonempty=False)
    p = check_real(p, "p", low=0.0, high=1.0, high_inclusive=False)
    check_generator(generator)
    if not training or p == 0.0:
        return x
    keep = torch.empty_like(x).bernoulli_(1.0 - p, generator=generator)  # m, 1 with probability 1 - p
    scaled_mask = keep.div_(1.0 - p)  # m / (1 - p), in place: one temporary instead of two
    return x.mul_(scaled_mask) if inplace else x * scaled_mask


class Dropout(nn.Module):
    """Inverted dropout layer with the arguments of ``torch.nn.Dropout``.

    Args:
        p: probability of zeroing an element, in [0, 1) (0.5).
        inplace: overwrite the input instead of allocating the output (False).

    Training: ``y = m * x / (1 - p)``, ``m ~ Bernoulli(1 - p)`` elementwise; eval: ``y = x``. Input of any
    shape. Why inverted and why ``p = 1`` is rejected: see :mod:`deepbasics.nn.dropout`.
    Reference: Srivastava et al. 2014, JMLR 15, section 4.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        self.p = check_real(p, "p", low=0.0, high=1.0, high_inclusive=False)
        self.inplace = bool(inplace)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Drop and rescale in training mode, identity in eval mode."""
        return dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
