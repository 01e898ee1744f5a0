"""deepbasics.noise: B_simple against a closed form, the estimators against their definitions (FAQ Q13.f)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from deepbasics import noise


def linear_regression_problem(n: int = 4000, d: int = 50, residual: float = 0.5):
    """Least squares at a point where every residual is ``residual``: the per-example gradient of
    (x.w - y)^2 is g_n = 2 c x_n, so G = 2c mean(x) and Sigma = 4c^2 Cov(x) (population) in closed form."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) + 1.0 / math.sqrt(d)  # |E x|^2 = 1, tr Cov = d
    model = nn.Linear(d, 1, bias=False).double()
    w = model.weight.detach()[0]
    y = (x @ w - residual)[:, None]  # (N, 1)
    mean = x.mean(0)
    g2 = (2 * residual) ** 2 * float(mean @ mean)
    trace_sigma = (2 * residual) ** 2 * float(((x - mean) ** 2).sum(1).mean())
    return model, x, y, g2, trace_sigma


def test_b_simple_matches_the_closed_form():
    model, x, y, g2, trace_sigma = linear_regression_problem()
    est = noise.gradient_noise_scale(model, nn.MSELoss(), (x, y), 16, 256, 200, torch.Generator().manual_seed(1))
    expected = trace_sigma / g2  # about 50
    assert abs(est.b_simple - expected) <= 0.1 * expected
    assert abs(est.g2 - g2) <= 0.1 * g2 and abs(est.trace_sigma - trace_sigma) <= 0.1 * trace_sigma
    assert 0 < est.stderr < 0.05 * expected  # the stated uncertainty is small enough to make 10% meaningful
    assert abs(est.b_simple - expected) <= 4 * est.stderr
    assert (est.num_measurements, est.b_small, est.b_big) == (200, 16, 256)


def test_a_dataloader_gives_the_same_estimate_and_leaves_the_model_alone():
    model, x, y, g2, trace_sigma = linear_regression_problem()
    loader = DataLoader(TensorDataset(x, y), batch_size=256, shuffle=True, generator=torch.Generator().manual_seed(0))
    before = model.weight.detach().clone()
    model.train()
    est = noise.gradient_noise_scale(model, nn.MSELoss(), loader, 16, 256, 200)
    assert abs(est.b_simple - trace_sigma / g2) <= 0.1 * trace_sigma / g2
    assert torch.equal(model.weight, before) and model.weight.grad is None and model.training


def test_estimators_are_exact_on_expected_norms():
    # E|G_B|^2 = |G|^2 + tr(Sigma)/B: fed the expectations, the estimators return |G|^2 and tr(Sigma) exactly.
    g2, trace_sigma, bs, bb = 2.0, 300.0, 8, 64
    small = [g2 + trace_sigma / bs] * 5
    big = [g2 + trace_sigma / bb] * 5
    est = noise.noise_scale_from_norms(small, big, bs, bb)
    assert math.isclose(est.g2, g2, rel_tol=1e-12) and math.isclose(est.trace_sigma, trace_sigma, rel_tol=1e-12)
    assert math.isclose(est.b_simple, 150.0, rel_tol=1e-12) and est.stderr == 0.0


def test_averages_are_taken_before_the_ratio_and_the_delta_method_matches_the_spread():
    # Simulated noisy measurements around the expectations: the stderr of one run should match the spread of
    # B_simple over independent runs (delta method), and the mean over runs should be close to the truth.
    g = torch.Generator().manual_seed(0)
    g2, trace_sigma, bs, bb, n = 1.0, 40.0, 4, 64, 200
    estimates, stderrs = [], []
    for _ in range(300):
        small = (g2 + trace_sigma / bs) * torch.exp(0.3 * torch.randn(n, generator=g, dtype=torch.float64) - 0.045)
        big = (g2 + trace_sigma / bb) * torch.exp(0.3 * torch.randn(n, generator=g, dtype=torch.float64) - 0.045)
        est = noise.noise_scale_from_norms(small, big, bs, bb)
        estimates.append(est.b_simple)
        stderrs.append(est.stderr)
    spread = torch.tensor(estimates).std().item()
    assert 0.8 < (sum(stderrs) / len(stderrs)) / spread < 1.25
    assert abs(sum(estimates) / len(estimates) - 40.0) < 0.1 * 40.0


def test_streaming_state_dict_and_ema():
    g = torch.Generator().manual_seed(0)
    small = 10 + torch.rand(50, generator=g, dtype=torch.float64)
    big = 2 + torch.rand(50, generator=g, dtype=torch.float64)
    batch = noise.noise_scale_from_norms(small, big, 4, 32)
    streamed = noise.NoiseScaleEstimator(4, 32)
    for s, b in zip(small[:20], big[:20], strict=True):
        streamed.update(float(s), b)  # floats and 0-d tensors
    resumed = noise.NoiseScaleEstimator(4, 32)
    resumed.load_state_dict(streamed.state_dict())
    resumed.update(small[20:], big[20:])  # several at once
    for field in ("b_simple", "g2", "trace_sigma", "stderr"):
        assert math.isclose(getattr(resumed.estimate(), field), getattr(batch, field), rel_tol=1e-10)
    ema = noise.NoiseScaleEstimator(4, 32, decay=0.9)
    ema.update(small, big)
    # an EMA weights recent measurements most: after a level shift it follows, the plain mean lags
    ema.update(small[:30] * 2, big[:30])
    plain = noise.NoiseScaleEstimator(4, 32)
    plain.update(torch.cat([small, small[:30] * 2]), torch.cat([big, big[:30]]))
    assert ema.estimate().trace_sigma > plain.estimate().trace_sigma
    assert ema.effective_count == pytest.approx(19.0)


def test_critical_batch_size_advice():
    est = noise.noise_scale_from_norms([11.0, 12.0, 10.5], [2.2, 2.3, 2.25], 8, 64)  # |G|^2 ~ 1, tr ~ 80
    advice = noise.critical_batch_size(est)
    assert advice.value == est.b_simple and advice.low < advice.value < advice.high
    assert math.isclose(advice.high - advice.value, noise.Z_95 * est.stderr)
    assert "Critical batch size" in advice.message
    unresolved = noise.noise_scale_from_norms([1.0, 1.0], [2.0, 2.0], 8, 64)  # |G|^2 estimate > 0, tr(Sigma) < 0
    assert "not resolved" in noise.critical_batch_size(unresolved).message
    no_signal = noise.noise_scale_from_norms([10.0], [0.1], 8, 64)  # |G|^2 estimate < 0
    assert no_signal.b_simple == math.inf and no_signal.stderr == math.inf
    assert noise.critical_batch_size(no_signal).high == math.inf
    assert noise.critical_batch_size(100.0).value == 100.0


def test_bad_inputs():
    model, x, y, _, _ = linear_regression_problem(n=100, d=3)
    with pytest.raises(ValueError, match="b_small < b_big"):
        noise.gradient_noise_scale(model, nn.MSELoss(), (x, y), 64, 64, 5)
    with pytest.raises(ValueError, match="b_small < b_big"):
        noise.NoiseScaleEstimator(32, 8)
    with pytest.raises(ValueError, match="non-empty"):
        noise.gradient_noise_scale(model, nn.MSELoss(), (x[:0], y[:0]), 4, 16, 5)
    with pytest.raises(ValueError, match="at least one batch"):
        noise.gradient_noise_scale(model, nn.MSELoss(), [], 4, 16, 5)
    with pytest.raises(ValueError, match="at least b_big=16"):
        noise.gradient_noise_scale(model, nn.MSELoss(), DataLoader(TensorDataset(x, y), batch_size=8), 4, 16, 5)
    with pytest.raises(ValueError, match="scalar"):
        noise.gradient_noise_scale(model, nn.MSELoss(reduction="none"), (x, y), 4, 16, 5)
    with pytest.raises(ValueError, match="rows"):
        noise.gradient_noise_scale(model, nn.MSELoss(), (x, y[:10]), 4, 16, 5)
    with pytest.raises(ValueError, match="same non-zero number"):
        noise.noise_scale_from_norms([1.0, 2.0], [1.0], 4, 16)
    with pytest.raises(ValueError, match="same non-zero number"):
        noise.noise_scale_from_norms([], [], 4, 16)
    with pytest.raises(ValueError, match=">= 0"):
        noise.noise_scale_from_norms([-1.0], [1.0], 4, 16)
    with pytest.raises(ValueError, match="finite"):
        noise.noise_scale_from_norms([math.nan], [1.0], 4, 16)
    with pytest.raises(ValueError, match="at least one measurement"):
        noise.NoiseScaleEstimator(4, 16).estimate()
    with pytest.raises(ValueError, match="keys"):
        noise.NoiseScaleEstimator(4, 16).load_state_dict({"count": 3})
    with pytest.raises(ValueError, match="decay"):
        noise.NoiseScaleEstimator(4, 16, decay=1.0)
    with pytest.raises(ValueError, match="nan"):
        noise.critical_batch_size(math.nan)
