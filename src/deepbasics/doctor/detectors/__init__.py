"""The doctor's detectors: pure decision functions over recorded numbers, one module per family.

- :mod:`.static`: ``naive_softmax``, ``unnormalized_inputs``, ``bad_init_scale`` (FAQ Q8, Q3.1, Q1)
- :mod:`.pairing`: ``loss_activation_mismatch``, before training and at run time (FAQ Q5)
- :mod:`.practice`: ``missing_zero_grad``, ``parameters_not_updated``, ``eval_mode_training`` (from practice)
- :mod:`.loss`: ``nonfinite``, ``diverging_loss``, ``oscillating_loss``, ``slow_convergence``, ``overfitting``
- :mod:`.gradients`: ``vanishing_gradient``, ``exploding_gradient`` (FAQ Q3.3)
- :mod:`.activations`: ``dead_relu``, ``saturated_activation`` (FAQ Q15, Q3.3)
- :mod:`.batch`: ``batchnorm_small_batch``, ``batch_size_advice`` (FAQ Q14, Q13)
- :mod:`.curvature`: ``ill_conditioned``, ``saddle_point`` (FAQ Q3.1, Q3.2)

Each family registers its detectors with :func:`~.registry.detector`; :func:`run_detectors` (in :mod:`.registry`)
is the one place findings are assembled from a :class:`~deepbasics.doctor.records.RunTrace`. Importing this
package registers every family, in the order above. Thresholds live in :mod:`deepbasics.doctor.thresholds`.
"""

from __future__ import annotations

from ..records import RunTrace
from . import activations, batch, curvature, gradients, loss, pairing, practice, static  # noqa: F401  (registers)
from .activations import dead_relu, saturated_activation
from .batch import batch_size_advice, batchnorm_small_batch
from .curvature import ill_conditioned, saddle_point
from .gradients import exploding_gradient, gradient_profile, vanishing_gradient, vanishing_through_time
from .loss import diverging_loss, nonfinite, oscillating_loss, overfitting, slow_convergence
from .pairing import loss_activation_mismatch, loss_activation_runtime
from .practice import eval_mode_training, missing_zero_grad, parameters_not_updated
from .registry import DETECTORS, Detector, detector, merge_findings, resolve, run_detectors, static_codes
from .static import activation_depth, bad_init_scale, missing_nonlinearity_notes, naive_softmax, unnormalized_inputs

__all__ = [
    "DETECTORS",
    "Detector",
    "RunTrace",
    "activation_depth",
    "bad_init_scale",
    "batch_size_advice",
    "batchnorm_small_batch",
    "dead_relu",
    "detector",
    "diverging_loss",
    "eval_mode_training",
    "exploding_gradient",
    "gradient_profile",
    "ill_conditioned",
    "loss_activation_mismatch",
    "loss_activation_runtime",
    "merge_findings",
    "missing_nonlinearity_notes",
    "missing_zero_grad",
    "naive_softmax",
    "nonfinite",
    "oscillating_loss",
    "overfitting",
    "parameters_not_updated",
    "resolve",
    "run_detectors",
    "saddle_point",
    "saturated_activation",
    "slow_convergence",
    "static_codes",
    "unnormalized_inputs",
    "vanishing_gradient",
    "vanishing_through_time",
]
