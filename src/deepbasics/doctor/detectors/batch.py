"""Batch-size detectors: BatchNorm with small batches (FAQ Q14) and critical-batch-size advice (FAQ Q13).

- ``batchnorm_small_batch`` (warning): a BatchNorm layer is trained with batches of ``B < BATCHNORM_MIN_BATCH``
  (16) examples. Its normalization uses the batch mean and variance, whose standard errors grow like
  1/sqrt(B) (for the variance, sqrt(2/(B-1)) relative); the FAQ's Q14.d and Wu & He 2018 (fig. 1) show the
  accuracy loss from 16 down to 2.
- ``batch_size_advice`` (info): the gradient noise scale B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018,
  eq. 2.8; :mod:`deepbasics.noise`) is more than ``BATCH_ADVICE_FACTOR`` times the batch size (larger batches
  would cut the steps almost proportionally) or less than 1 / ``BATCH_ADVICE_FACTOR`` of it (compute wasted).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .. import thresholds as T
from ..explain import make_finding
from ..findings import Finding, Severity
from ..records import RunTrace
from .registry import detector

__all__ = ["batch_size_advice", "batchnorm_small_batch"]


def batchnorm_small_batch(batch_size: int | None, batchnorm_layers: Sequence[str]) -> list[Finding]:
    """``batchnorm_small_batch`` when ``batchnorm_layers`` (names of BatchNorm modules trained in train mode) is
    non-empty and the typical training batch has fewer than ``BATCHNORM_MIN_BATCH`` examples."""
    if batch_size is None or not batchnorm_layers or batch_size >= T.BATCHNORM_MIN_BATCH:
        return []
    evidence = {"batch_size": batch_size, "min_batch_size": T.BATCHNORM_MIN_BATCH, "layers": list(batchnorm_layers)}
    detail = (
        f"{len(batchnorm_layers)} BatchNorm layer(s) normalize with statistics of only {batch_size} examples; "
        f"the variance estimate alone is off by ~{100 * math.sqrt(2 / max(batch_size - 1, 1)):.0f}% per batch."
    )
    return [make_finding("batchnorm_small_batch", Severity.WARNING, tuple(batchnorm_layers), evidence, detail=detail)]


def batch_size_advice(batch_size: int | None, b_simple: float | None, stderr: float | None = None) -> list[Finding]:
    """``batch_size_advice`` (info) when the batch is far from the critical batch size ``b_simple``."""
    if batch_size is None or b_simple is None or not math.isfinite(b_simple) or b_simple <= 0:
        return []
    factor = b_simple / batch_size
    if 1 / T.BATCH_ADVICE_FACTOR <= factor <= T.BATCH_ADVICE_FACTOR:
        return []
    evidence = {"batch_size": batch_size, "noise_scale_b_simple": b_simple, "stderr": stderr, "ratio": factor}
    if factor > 1:
        detail = (
            f"The gradient noise scale is {b_simple:.0f}, {factor:.0f} times the batch of {batch_size}: the gradient "
            "is mostly noise, and larger batches (with a proportionally larger learning rate) would need fewer steps."
        )
    else:
        detail = (
            f"The gradient noise scale is {b_simple:.1f}, far below the batch of {batch_size}: beyond the critical "
            "batch size larger batches barely reduce the steps needed, so smaller ones would save compute."
        )
    return [make_finding("batch_size_advice", Severity.INFO, ("batch",), evidence, detail=detail)]


@detector("batch", codes=("batchnorm_small_batch",), needs=("batchnorm_layers",), static=True)
def _batchnorm_small_batch(trace: RunTrace) -> list[Finding]:
    return batchnorm_small_batch(trace.batch_size, trace.batchnorm_layers)


@detector("batch", codes=("batch_size_advice",), needs=("noise",))
def _batch_size_advice(trace: RunTrace) -> list[Finding]:
    """Data-parallel runs compare the critical batch with the global batch one optimizer step averages over."""
    batch = trace.global_batch_size or trace.batch_size
    return batch_size_advice(batch, trace.noise.get("b_simple"), trace.noise.get("stderr"))
