"""Shared piece of the Q3.1 experiments: a quadratic of given condition number and a start point.

Not an experiment module (the leading ``_`` keeps :func:`deepbasics.lab.experiments.discover` away).
"""

from __future__ import annotations

import torch

__all__ = ["quadratic_problem"]


def quadratic_problem(kappa: float, dim: int, g: torch.Generator, rotate: bool = True):
    from deepbasics.optim.quadratic import Quadratic

    q = Quadratic(kappa, dim, g, rotate=rotate)
    x0 = torch.randn(dim, generator=g, dtype=torch.float64)  # (d,)
    return q, x0
