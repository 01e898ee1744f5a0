"""Deliberately faulty modules: textbook mistakes, written the way people write them.

The fault zoo builds broken setups from them and the fix catalogue recognises them (``stable_softmax`` swaps
:class:`NaiveLogSoftmax` for ``nn.LogSoftmax``), so they live here, below both.

- :class:`NaiveLogSoftmax`: ``log(exp(z) / sum exp(z))`` as written; overflows once a logit exceeds ~88.7 in
  float32 (``exp(88.7) = 3.4e38``) and gives ``inf / inf = nan`` (FAQ Q8; Goodfellow et al. 2016, section 4.1).
  The stable form subtracts the maximum first, ``z - max z - log sum exp(z - max z)`` (``nn.LogSoftmax``).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["NaiveLogSoftmax"]


class NaiveLogSoftmax(nn.Module):
    """DELIBERATELY UNSTABLE ``log(exp(z_i) / sum_j exp(z_j))`` over ``dim``, computed as written (FAQ Q8).

    Returns nan once any ``z_i > ~88.7`` in float32 (``inf / inf``) and ``-inf`` where a probability underflows.
    The doctor reports it as ``naive_softmax``; the fix is ``nn.LogSoftmax(dim)`` (or logits with
    ``nn.CrossEntropyLoss``), which computes ``z - logsumexp(z)`` with the maximum subtracted first.
    """

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        e = torch.exp(z)  # overflows for z > log(float max)
        return torch.log(e / e.sum(dim=self.dim, keepdim=True))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
