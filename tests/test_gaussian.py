"""Tests for deepbasics.gaussian against scipy.stats (densities, entropies, KS statistic, moments)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from deepbasics import gaussian

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
F64 = torch.float64


def _spd(d, *batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(*batch, d, d, dtype=F64, generator=g)
    return a @ a.mT + 0.5 * torch.eye(d, dtype=F64)  # (..., d, d)


# ------------------------------------------------------------------------------------------- univariate
def test_normal_logpdf_and_pdf_match_scipy_with_broadcasting():
    x = torch.linspace(-6, 6, 25, dtype=F64).reshape(5, 5)
    mean = torch.tensor([-1.0, 0.0, 0.5, 2.0, 3.0], dtype=F64)  # broadcasts along the last dimension
    var = torch.tensor([[0.1], [1.0], [2.0], [4.0], [9.0]], dtype=F64)  # and along the first
    ref = stats.norm(mean.numpy(), np.sqrt(var.numpy()))
    np.testing.assert_allclose(gaussian.normal_logpdf(x, mean, var).numpy(), ref.logpdf(x.numpy()), rtol=1e-12)
    np.testing.assert_allclose(gaussian.normal_pdf(x, mean, var).numpy(), ref.pdf(x.numpy()), rtol=1e-12)
    np.testing.assert_allclose(gaussian.normal_pdf(x).numpy(), stats.norm.pdf(x.numpy()), rtol=1e-12)


@given(
    x=st.floats(-1e3, 1e3),
    mean=st.floats(-1e3, 1e3),
    var=st.floats(1e-4, 1e4),
)
def test_normal_logpdf_matches_scipy_everywhere(x, mean, var):
    ours = gaussian.normal_logpdf(torch.tensor(x, dtype=F64), mean, var).item()
    ref = stats.norm.logpdf(x, loc=mean, scale=math.sqrt(var))
    # absolute error relative to the size of the terms that are summed (they may cancel)
    scale = 1.0 + (x - mean) ** 2 / var + abs(math.log(2 * math.pi * var))
    assert abs(ours - ref) <= 1e-13 * scale


def test_normal_pdf_integrates_to_one_and_keeps_dtype():
    x = torch.linspace(-12, 14, 200_001, dtype=F64)
    assert torch.trapezoid(gaussian.normal_pdf(x, 1.0, 4.0), x).item() == pytest.approx(1.0, abs=1e-10)
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        assert gaussian.normal_logpdf(torch.zeros(3, dtype=dtype)).dtype == dtype


def test_normal_logpdf_has_the_right_gradient():
    x = torch.randn(6, dtype=F64, requires_grad=True)
    mean = torch.randn(6, dtype=F64, requires_grad=True)
    var = (torch.rand(6, dtype=F64) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(gaussian.normal_logpdf, (x, mean, var))


def test_normal_bad_inputs():
    x = torch.zeros(3)
    with pytest.raises(ValueError, match=r"var: expected a variance > 0 everywhere, got minimum 0\. .*not a log-var"):
        gaussian.normal_logpdf(x, var=0.0)
    with pytest.raises(ValueError, match="var: expected a variance > 0 everywhere, got minimum -1"):
        gaussian.normal_pdf(x, var=torch.tensor([1.0, -1.0, 2.0]))
    with pytest.raises(ValueError, match="mean: expected a shape broadcastable with x"):
        gaussian.normal_logpdf(x, mean=torch.zeros(4))
    with pytest.raises(ValueError, match="mean/var: expected shapes that broadcast together"):
        gaussian.normal_logpdf(torch.zeros(1), mean=torch.zeros(2), var=torch.ones(3))
    with pytest.raises(TypeError, match=r"x: expected a torch\.Tensor"):
        gaussian.normal_logpdf([0.0, 1.0])
    with pytest.raises(TypeError, match="floating-point"):
        gaussian.normal_logpdf(torch.arange(3))


# ----------------------------------------------------------------------------------------- multivariate
@pytest.mark.parametrize("d", [1, 2, 5])
@pytest.mark.parametrize("batch", [(), (7,), (2, 3)])
def test_mvn_matches_scipy(d, batch):
    g = torch.Generator().manual_seed(d)
    x = torch.randn(*batch, d, dtype=F64, generator=g)
    mean = torch.randn(d, dtype=F64, generator=g)
    cov = _spd(d, seed=d)
    ref = stats.multivariate_normal(mean.numpy(), cov.numpy())
    ours = gaussian.mvn_logpdf(x, mean, cov)
    assert ours.shape == batch
    np.testing.assert_allclose(ours.numpy(), ref.logpdf(x.numpy()), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gaussian.mvn_pdf(x, mean, cov).numpy(), ref.pdf(x.numpy()), rtol=1e-10, atol=1e-300)


def test_mvn_batched_mean_and_covariance_broadcast():
    d = 3
    x = torch.randn(2, 3, d, dtype=F64)
    mean = torch.randn(3, d, dtype=F64)  # one mean per column of the batch
    cov = _spd(d, 2, 1, seed=1)  # (2, 1, d, d): one covariance per row of the batch
    ours = gaussian.mvn_logpdf(x, mean, cov)
    assert ours.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            ref = stats.multivariate_normal(mean[j].numpy(), cov[i, 0].numpy()).logpdf(x[i, j].numpy())
            assert ours[i, j].item() == pytest.approx(ref, rel=1e-10)


def test_mvn_with_one_dimension_is_the_univariate_normal():
    x = torch.randn(10, 1, dtype=F64)
    torch.testing.assert_close(
        gaussian.mvn_logpdf(x, torch.tensor([0.3], dtype=F64), torch.tensor([[2.5]], dtype=F64)),
        gaussian.normal_logpdf(x[:, 0], 0.3, 2.5),
        rtol=1e-14,
        atol=1e-14,
    )


def test_mvn_gradients_and_low_precision():
    d = 4
    x = torch.randn(3, d, dtype=F64, requires_grad=True)
    mean = torch.randn(d, dtype=F64, requires_grad=True)
    a = torch.randn(d, d, dtype=F64, requires_grad=True)

    def f(x, mean, a):  # cov = A A^T + I stays SPD under gradcheck's perturbations
        return gaussian.mvn_logpdf(x, mean, a @ a.mT + torch.eye(d, dtype=F64))

    assert torch.autograd.gradcheck(f, (x, mean, a))
    cov = _spd(d)
    ref = gaussian.mvn_logpdf(x.detach(), mean.detach(), cov)
    for dtype, tol in ((torch.float32, 1e-4), (torch.float16, 2e-2)):
        out = gaussian.mvn_logpdf(x.detach().to(dtype), mean.detach().to(dtype), cov.to(dtype))
        assert out.dtype == dtype
        torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)


def test_mvn_non_spd_covariance_is_explained():
    x, mean = torch.zeros(2, 3, dtype=F64), torch.zeros(3, dtype=F64)
    indefinite = torch.diag(torch.tensor([2.0, 1.0, -0.5], dtype=F64))
    with pytest.raises(ValueError, match=r"smallest eigenvalue -0\.5 .*cov \+ eps \* I with eps >= 0\.5"):
        gaussian.mvn_logpdf(x, mean, indefinite)
    samples = torch.randn(2, 3, dtype=F64)  # fewer samples than dimensions: singular sample covariance
    singular = samples.mT @ samples / 2
    with pytest.raises(ValueError, match=r"positive-definite.*more samples than dimensions"):
        gaussian.mvn_logpdf(x, mean, singular)
    asymmetric = torch.eye(3, dtype=F64)
    asymmetric[0, 2] = 0.5  # the lower triangle alone is SPD: Cholesky would silently accept it
    with pytest.raises(ValueError, match=r"max \|cov - cov\^T\| = 0\.5\. Symmetrize it"):
        gaussian.mvn_pdf(x, mean, asymmetric)
    with pytest.raises(ValueError, match="Symmetrize it"):  # the check is relative to the matrix's scale
        gaussian.mvn_pdf(x.float(), mean.float(), 1e-6 * asymmetric.float())
    torch.testing.assert_close(  # rounding-level asymmetry (a float32 sample covariance) is accepted
        gaussian.mvn_logpdf(x, mean, _spd(3) + 1e-15 * torch.triu(torch.ones(3, 3, dtype=F64), 1)),
        gaussian.mvn_logpdf(x, mean, _spd(3)),
    )


def test_mvn_shape_errors():
    cov = _spd(3)
    with pytest.raises(ValueError, match=r"cov: expected shape \(\.\.\., 4, 4\)"):
        gaussian.mvn_logpdf(torch.zeros(5, 4, dtype=F64), torch.zeros(4, dtype=F64), cov)
    with pytest.raises(ValueError, match=r"mean: expected shape \(\.\.\., 3\)"):
        gaussian.mvn_logpdf(torch.zeros(5, 3, dtype=F64), torch.zeros(2, dtype=F64), cov)
    with pytest.raises(ValueError, match="broadcastable batch shapes"):
        gaussian.mvn_logpdf(torch.zeros(5, 3, dtype=F64), torch.zeros(4, 3, dtype=F64), cov)
    with pytest.raises(ValueError, match=r"cov: expected shape \(\.\.\., 3, 3\)"):
        gaussian.mvn_logpdf(torch.zeros(5, 3, dtype=F64), torch.zeros(3, dtype=F64), torch.zeros(3, 2, dtype=F64))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        gaussian.mvn_logpdf(torch.zeros(5, 3, dtype=F64), torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="finite values"):
        gaussian.mvn_logpdf(torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64), cov * float("nan"))


# ------------------------------------------------------------------------------------ maximum entropy
@pytest.mark.parametrize("var", [0.01, 0.5, 1.0, 3.7, 250.0])
def test_entropies_match_scipy_and_normal_is_largest(var):
    s = math.sqrt(var)
    c = math.sqrt(6 * var)  # symmetric triangular on [-c, c] has variance c^2 / 6
    ref = {
        "normal": stats.norm(scale=s).entropy(),
        "uniform": stats.uniform(loc=-math.sqrt(3) * s, scale=math.sqrt(12) * s).entropy(),
        "laplace": stats.laplace(scale=s / math.sqrt(2)).entropy(),
        "logistic": stats.logistic(scale=math.sqrt(3) * s / math.pi).entropy(),
        "triangular": stats.triang(c=0.5, loc=-c, scale=2 * c).entropy(),
    }
    # the scales above really give variance var (so the comparison is at equal variance)
    assert stats.triang(c=0.5, loc=-c, scale=2 * c).var() == pytest.approx(var, rel=1e-12)
    assert stats.logistic(scale=math.sqrt(3) * s / math.pi).var() == pytest.approx(var, rel=1e-12)
    table = gaussian.max_entropy_table(var)
    assert set(table) == set(ref)
    for name, h in table.items():
        assert h == pytest.approx(float(ref[name]), abs=1e-10), name
    assert next(iter(table)) == "normal" and all(table["normal"] > h for k, h in table.items() if k != "normal")
    assert gaussian.normal_entropy(var) == pytest.approx(float(ref["normal"]), abs=1e-12)


def test_normal_entropy_on_tensors_and_bad_variance():
    var = torch.tensor([0.5, 2.0, 9.0], dtype=F64)
    np.testing.assert_allclose(gaussian.normal_entropy(var).numpy(), stats.norm(scale=np.sqrt(var.numpy())).entropy())
    with pytest.raises(ValueError, match="var: expected a value in"):
        gaussian.normal_entropy(-1.0)
    with pytest.raises(ValueError, match="variance > 0"):
        gaussian.normal_entropy(torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="var: expected a value in"):
        gaussian.max_entropy_table(0.0)


# ------------------------------------------------------------------------------ central limit theorem
@pytest.mark.parametrize(
    ("dist", "ref"),
    [
        (gaussian.uniform(-1.0, 3.0), stats.uniform(-1.0, 4.0)),
        (gaussian.exponential(2.0), stats.expon(scale=0.5)),
        (gaussian.laplace(0.7), stats.laplace(scale=0.7)),
        (gaussian.normal(1.0, 2.0), stats.norm(1.0, 2.0)),
        (gaussian.bernoulli(0.3), stats.bernoulli(0.3)),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_distribution_moments_match_scipy(dist, ref):
    assert dist.mean == pytest.approx(ref.mean(), rel=1e-12)
    assert dist.var == pytest.approx(ref.var(), rel=1e-12)
    assert dist.abs3 == pytest.approx(ref.expect(lambda x: abs(x - ref.mean()) ** 3), rel=1e-7)
    draws = dist((200_000,), torch.Generator().manual_seed(0))
    assert draws.shape == (200_000,) and draws.dtype == F64
    n = draws.numel()
    assert abs(draws.mean().item() - dist.mean) < 5 * math.sqrt(dist.var / n)
    kurt = ref.stats(moments="k") + 3  # sd of the sample variance is var * sqrt((kurtosis - 1) / n)
    assert abs(draws.var().item() - dist.var) < 5 * dist.var * math.sqrt((kurt - 1) / n)


@pytest.mark.parametrize("name", list(gaussian.DISTRIBUTIONS))
@pytest.mark.parametrize("n", [1, 3, 30])
def test_standardized_sum_has_mean_zero_and_unit_variance(name, n):
    num = 40_000
    z = gaussian.standardized_sum(name, n, num, torch.Generator().manual_seed(n))
    assert z.shape == (num,) and z.dtype == F64
    assert abs(z.mean().item()) < 5 / math.sqrt(num)
    # Var of the sample variance ~ (kurtosis(Z_n) - 1) / N, and kurtosis(Z_n) = 3 + excess / n <= 3 + 6 / n
    assert abs(z.var().item() - 1) < 5 * math.sqrt((2 + 6 / n) / num)


def test_clt_distance_falls_like_one_over_sqrt_n():
    num = 40_000
    ns = [1, 4, 16, 64]
    gen = torch.Generator().manual_seed(0)
    dists = [gaussian.ks_distance_to_normal(gaussian.standardized_sum("exponential", n, num, gen)) for n in ns]
    assert all(a > b for a, b in itertools.pairwise(dists)), dists
    # Berry-Esseen: D_n <= C rho / (sigma^3 sqrt n); the measured D also carries ~1/sqrt(N) sampling noise
    for n, d in zip(ns, dists, strict=True):
        assert d <= gaussian.berry_esseen_bound(gaussian.exponential(), n) + 3 / math.sqrt(num)
    # slope of log D against log n is about -1/2 (skewness term of the Edgeworth expansion)
    slope = np.polyfit(np.log(ns), np.log(dists), 1)[0]
    assert -0.75 < slope < -0.3, slope
    # control: sums of normals are exactly normal, so only the sampling noise remains
    control = gaussian.ks_distance_to_normal(gaussian.standardized_sum("normal", 4, num, gen))
    assert control < 2 / math.sqrt(num) < dists[-1]


@pytest.mark.parametrize("draw", ["normal", "bernoulli", "exponential"])
def test_ks_distance_matches_scipy(draw):
    z = gaussian.standardized_sum(draw, 5, 3_001, torch.Generator().manual_seed(1))  # bernoulli: many ties
    assert gaussian.ks_distance_to_normal(z) == pytest.approx(stats.kstest(z.numpy(), "norm").statistic, abs=1e-12)


def test_standardized_sum_with_a_callable_and_chunking(monkeypatch):
    calls = []

    def ones(shape, generator):
        calls.append(shape)
        return torch.ones(shape, dtype=torch.int64)  # integer draws are promoted to float64

    monkeypatch.setattr(gaussian, "_MAX_DRAWS_PER_CHUNK", 10)
    z = gaussian.standardized_sum(ones, 7, 3, mean=0.5, std=2.0)
    torch.testing.assert_close(z, torch.full((3,), (7 - 7 * 0.5) / (math.sqrt(7) * 2.0), dtype=F64))
    assert [s[1] for s in calls] == [3, 3, 1] and all(s[0] == 3 for s in calls)

    def draw(shape, generator):
        return torch.empty(shape, dtype=F64).uniform_(generator=generator)

    a = gaussian.standardized_sum(draw, 12, 50, torch.Generator().manual_seed(3), mean=0.5, std=math.sqrt(1 / 12))
    b = gaussian.standardized_sum(draw, 12, 50, torch.Generator().manual_seed(3), mean=0.5, std=math.sqrt(1 / 12))
    assert torch.equal(a, b)


def test_standardized_sum_bad_inputs():
    with pytest.raises(ValueError, match="sampler: expected one of"):
        gaussian.standardized_sum("cauchy", 4, 10)
    with pytest.raises(ValueError, match="population mean and std of a callable"):
        gaussian.standardized_sum(lambda s, g: torch.rand(s), 4, 10)
    with pytest.raises(ValueError, match="None with a Distribution"):
        gaussian.standardized_sum(gaussian.uniform(), 4, 10, mean=0.5)
    with pytest.raises(ValueError, match=r"sampler: expected a tensor of shape \(10, 4\)"):
        gaussian.standardized_sum(lambda s, g: torch.rand(4), 4, 10, mean=0.5, std=0.3)
    with pytest.raises(TypeError, match="sampler: expected a distribution name"):
        gaussian.standardized_sum(3, 4, 10)
    with pytest.raises(ValueError, match="n: expected an integer in"):
        gaussian.standardized_sum("uniform", 0, 10)
    with pytest.raises(TypeError, match="generator"):
        gaussian.standardized_sum("uniform", 2, 10, generator=1)
    with pytest.raises(ValueError, match="p: expected a value in"):
        gaussian.bernoulli(1.0)
    with pytest.raises(ValueError, match="high: expected a value in"):
        gaussian.uniform(1.0, 1.0)
    with pytest.raises(ValueError, match="samples: expected a 1-D tensor"):
        gaussian.ks_distance_to_normal(torch.zeros(3, 2))
    with pytest.raises(TypeError, match="dist: expected a Distribution"):
        gaussian.berry_esseen_bound("exponential", 4)


@CUDA
def test_everything_runs_on_cuda():
    dev = torch.device("cuda")
    x = torch.randn(2, 3, 4, dtype=F64, device=dev)
    cov = _spd(4).to(dev)
    ref = gaussian.mvn_logpdf(x.cpu(), torch.zeros(4, dtype=F64), cov.cpu())
    out = gaussian.mvn_logpdf(x, torch.zeros(4, dtype=F64, device=dev), cov)
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), ref)
    assert gaussian.normal_logpdf(x, 1.0, torch.tensor(2.0, dtype=F64, device=dev)).device.type == "cuda"
    z = gaussian.standardized_sum("exponential", 16, 10_000, torch.Generator(device="cuda").manual_seed(0))
    assert z.device.type == "cuda" and abs(z.mean().item()) < 0.05
    assert 0 < gaussian.ks_distance_to_normal(z) < 0.1
