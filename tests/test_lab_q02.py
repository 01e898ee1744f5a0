"""Q2.a's sampling shortcuts measure the same standardized sums as drawing every term.

The exact laws (Gamma for sums of exponentials, binomial for sums of Bernoullis) must give the distribution of
``Z_n`` that :func:`deepbasics.gaussian.standardized_sum` gives by summing draws; the noise-floor stop must only
skip distances the slope fit would have dropped anyway.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from _lab_quick import quick_run
from deepbasics import gaussian
from deepbasics.lab.experiments import q02_gaussian

#: Two-sample KS test at this size: a p-value under 1e-3 would flag a different law (the test is fixed-seed).
SAMPLES, P_MIN = 20_000, 1e-3


@pytest.mark.parametrize("name", ["exponential", "bernoulli", "uniform"])
@pytest.mark.parametrize("n", [1, 3, 20])
def test_exact_sum_laws_match_summed_draws(name, n):
    g = torch.Generator().manual_seed(n)
    fast = q02_gaussian._sum_sampler(name, n, SAMPLES, g)
    slow = gaussian.standardized_sum(name, n, SAMPLES, g)
    assert fast.shape == (SAMPLES,) and fast.dtype == torch.float64
    assert abs(fast.mean().item()) < 5 / math.sqrt(SAMPLES)  # E Z_n = 0, sampling error ~ 1/sqrt(N)
    assert fast.var().item() == pytest.approx(1.0, abs=5 * math.sqrt(2 / SAMPLES))  # Var Z_n = 1
    assert stats.ks_2samp(fast.numpy(), slow.numpy()).pvalue > P_MIN


def test_quick_run_skips_only_distances_at_the_noise_floor():
    exp = q02_gaussian.clt
    out = quick_run(exp, 0)
    floor = out["noise_floor"]
    for ks in out["ks"].values():
        drawn = [d for d in ks if d is not None]
        assert len(drawn) >= 3 and ks[0] is not None
        if None in ks:  # skipped only after BELOW_FLOOR_STOP consecutive distances under the floor
            first = ks.index(None)
            assert all(d <= floor for d in ks[first - q02_gaussian.BELOW_FLOOR_STOP : first])
            assert all(d is None for d in ks[first:])
    # the distance of sums of exponentials and Bernoullis falls with n (Berry-Esseen), above the floor throughout
    for name in ("exponential", "bernoulli"):
        assert all(d > floor for d in out["ks"][name])
        assert out["ks"][name][-1] < out["ks"][name][0] / 3
