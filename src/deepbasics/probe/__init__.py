"""Read-only instruments on a model and its training step: per-layer statistics through hooks.

- :class:`LayerStats` -- activation mean/std, zero/dead/saturated fractions, gradient and weight norms and the
  update-to-weight ratio of every layer, recorded every ``every`` steps (FAQ Q3.3).
- :func:`activation_stats`, :func:`tensor_norms` -- the device-side kernels it uses, usable on their own.
- :data:`ACTIVATION_TYPES` -- the module types treated as activations.

Non-finite values are located by :mod:`deepbasics.nonfinite`; curvature lives in :mod:`deepbasics.curvature`.
"""

from __future__ import annotations

from .hooks import ACTIVATION_TYPES
from .layer_stats import LayerStats
from .records import ACTIVATION_METRICS, PARAM_METRICS, activation_stats, tensor_norms

__all__ = ["ACTIVATION_METRICS", "ACTIVATION_TYPES", "PARAM_METRICS", "LayerStats", "activation_stats", "tensor_norms"]
