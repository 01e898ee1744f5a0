"""Strict, reproducible test environment shared by the whole suite.

- ``torch.use_deterministic_algorithms(True)``: a test that passes once passes every time.
- Every test starts from the same seeds (torch, numpy, random), so results never depend on test order.
- One intra-op thread: the suite runs on 2-core CI machines; oversubscription makes it slower and noisier.
- Hypothesis: no deadline (CI machines are shared and noisy), a bounded number of examples, derandomized
  so that CI is reproducible. Set ``HYPOTHESIS_PROFILE=thorough`` locally for a deeper search.
"""

from __future__ import annotations

import os
import random

import matplotlib
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SEED = 0


@pytest.fixture(autouse=True)
def _fixed_seeds():
    """Seed every random number generator before each test and restore the default dtype after it."""
    random.seed(SEED)
    np.random.seed(SEED)  # noqa: NPY002 - seeds code under test that uses the legacy global RNG
    torch.manual_seed(SEED)
    dtype = torch.get_default_dtype()
    yield
    torch.set_default_dtype(dtype)


@pytest.fixture
def float64():
    """Run the test with float64 as the default dtype (for gradient and reference checks)."""
    torch.set_default_dtype(torch.float64)
    yield torch.float64
