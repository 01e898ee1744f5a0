"""Tests for deepbasics.init against torch.nn.init, scipy.stats and the variance formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from deepbasics import init

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
SHAPES = [(512, 256), (256, 512), (64, 32, 3, 3), (96, 16, 5)]


def _torch_fans(shape):
    return nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


def _truncnorm_var(std, bound):
    return stats.truncnorm(-bound, bound, scale=std).var()


# (name, initializer with its arguments, expected Var(W) as a function of the shape), formulas written out
# independently of the module: Glorot & Bengio eq. 16, He et al. eq. 10, LeCun 1998, Saxe et al. 2013.
CASES = [
    ("glorot_uniform", lambda t, g: init.glorot_uniform_(t, generator=g), lambda fi, fo, s: 2 / (fi + fo)),
    ("glorot_uniform_gain2", lambda t, g: init.glorot_uniform_(t, 2.0, g), lambda fi, fo, s: 4 * 2 / (fi + fo)),
    ("glorot_normal", lambda t, g: init.glorot_normal_(t, generator=g), lambda fi, fo, s: 2 / (fi + fo)),
    ("he_uniform", lambda t, g: init.he_uniform_(t, generator=g), lambda fi, fo, s: 2 / fi),
    ("he_normal", lambda t, g: init.he_normal_(t, generator=g), lambda fi, fo, s: 2 / fi),
    (
        "he_normal_leaky_fan_out",
        lambda t, g: init.he_normal_(t, a=0.2, mode="fan_out", nonlinearity="leaky_relu", generator=g),
        lambda fi, fo, s: 2 / (1 + 0.2**2) / fo,
    ),
    (
        "he_uniform_tanh",
        lambda t, g: init.he_uniform_(t, nonlinearity="tanh", generator=g),
        lambda fi, fo, s: (5 / 3) ** 2 / fi,
    ),
    ("lecun_normal", lambda t, g: init.lecun_normal_(t, generator=g), lambda fi, fo, s: 1 / fi),
    ("lecun_uniform", lambda t, g: init.lecun_uniform_(t, generator=g), lambda fi, fo, s: 1 / fi),
    ("orthogonal", lambda t, g: init.orthogonal_(t, generator=g), lambda fi, fo, s: 1 / max(s[0], math.prod(s[1:]))),
    (
        "orthogonal_gain",
        lambda t, g: init.orthogonal_(t, 0.5, g),
        lambda fi, fo, s: 0.25 / max(s[0], math.prod(s[1:])),
    ),
    ("truncated_normal", lambda t, g: init.truncated_normal_(t, generator=g), lambda fi, fo, s: _truncnorm_var(1, 2)),
    (
        "truncated_normal_narrow",
        lambda t, g: init.truncated_normal_(t, 1.0, 0.3, 0.5, g),
        lambda fi, fo, s: _truncnorm_var(0.3, 0.5),
    ),
]
CASE_IDS = [c[0] for c in CASES]


# ------------------------------------------------------------------------------------------ fans, gains
@pytest.mark.parametrize("shape", [(3, 4), (4, 3), (8, 3, 5), (8, 3, 3, 3), (2, 4, 1, 2, 3), (1, 1)])
def test_fans_match_torch(shape):
    assert init.fan_in_and_fan_out(torch.empty(shape)) == _torch_fans(shape)


@pytest.mark.parametrize("name", init.NONLINEARITIES)
def test_gain_matches_torch(name):
    assert init.gain(name) == pytest.approx(nn.init.calculate_gain("linear" if name == "identity" else name))


@pytest.mark.parametrize("slope", [0.0, 0.2, 1, 3.0])
def test_leaky_relu_gain_matches_torch(slope):
    assert init.gain("leaky_relu", slope) == pytest.approx(nn.init.calculate_gain("leaky_relu", slope))


def test_glorot_bound_formula():
    assert init.glorot_bound(300, 100) == pytest.approx(math.sqrt(6 / 400), rel=1e-15)
    assert init.glorot_bound(300, 100, gain=5 / 3) == pytest.approx(5 / 3 * math.sqrt(6 / 400), rel=1e-15)
    # the FAQ's uniform has the variance a^2 / 3 = 2 / (m + n)
    assert init.glorot_bound(30, 70) ** 2 / 3 == pytest.approx(2 / 100, rel=1e-14)


# ------------------------------------------------------------------------------------- variance formulas
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("name", "fill", "var_fn"), CASES, ids=CASE_IDS)
def test_empirical_variance_matches_formula(name, fill, var_fn, shape):
    w = fill(torch.empty(shape, dtype=torch.float64), torch.Generator().manual_seed(1))
    n = w.numel()
    var = var_fn(*_torch_fans(shape), shape)
    mean_offset = 1.0 if name == "truncated_normal_narrow" else 0.0
    # chi-square-style bound: sd(sample variance) = var * sqrt(2 / (N - 1)) for a normal; the uniform and
    # truncated normal have lighter tails (smaller sd), so 5 of these is a conservative 5-sigma bound
    assert abs(w.var().item() - var) < 5 * var * math.sqrt(2 / (n - 1)), (w.var().item(), var)
    assert abs(w.mean().item() - mean_offset) < 5 * math.sqrt(var / n)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (init.glorot_uniform_, nn.init.xavier_uniform_),
        (init.glorot_normal_, nn.init.xavier_normal_),
        (init.he_uniform_, nn.init.kaiming_uniform_),
        (init.he_normal_, nn.init.kaiming_normal_),
        (init.orthogonal_, nn.init.orthogonal_),
    ],
)
@pytest.mark.parametrize("shape", [(7, 5), (5, 7), (8, 3, 3, 3)])
def test_same_numbers_as_torch_for_the_same_seed(ours, theirs, shape):
    a = ours(torch.empty(shape), generator=torch.Generator().manual_seed(3))
    b = theirs(torch.empty(shape), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


# --------------------------------------------------------------------------------------------- orthogonal
@pytest.mark.parametrize("shape", [(16, 16), (32, 8), (8, 32), (16, 4, 3, 3), (64, 8, 3), (1, 5), (5, 1)])
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_orthogonal_is_orthogonal(shape, dtype, tol):
    w = init.orthogonal_(torch.empty(shape, dtype=dtype), generator=torch.Generator().manual_seed(0))
    m = w.reshape(shape[0], -1)
    gram = m.mT @ m if m.shape[0] >= m.shape[1] else m @ m.mT  # (min, min)
    torch.testing.assert_close(gram, torch.eye(gram.shape[0], dtype=dtype), rtol=0, atol=tol)


@pytest.mark.parametrize("gain", [0.5, 2.0, 5 / 3])
def test_orthogonal_gain_scales_norms(gain):
    w = init.orthogonal_(torch.empty(24, 10, dtype=torch.float64), gain=gain)
    x = torch.randn(10, 7, dtype=torch.float64)
    # all singular values equal gain: every vector's norm is multiplied by exactly gain
    torch.testing.assert_close(torch.linalg.vector_norm(w @ x, dim=0), gain * torch.linalg.vector_norm(x, dim=0))
    torch.testing.assert_close(torch.linalg.matrix_norm(w) ** 2, torch.tensor(gain**2 * 10, dtype=torch.float64))


@pytest.mark.parametrize(("fill", "var_fn"), [(c[1], c[2]) for c in CASES if c[0].startswith(("glorot", "he"))])
def test_gain_scales_variance(fill, var_fn):
    # each family's variance formula, checked on a second, deep-and-narrow shape
    shape = (2048, 64)
    w = fill(torch.empty(shape, dtype=torch.float64), torch.Generator().manual_seed(2))
    var = var_fn(*_torch_fans(shape), shape)
    assert abs(w.var().item() - var) < 5 * var * math.sqrt(2 / (w.numel() - 1))


def test_orthogonal_is_haar_distributed():
    # For Q uniform on O(n): the first column is uniform on the sphere, so Q_00^2 ~ Beta(1/2, (n-1)/2) and
    # Q_00 is symmetric; tr(Q) has mean 0 and variance 1. Without the sign correction Q_00 < 0 always.
    n, draws = 4, 600
    g = torch.Generator().manual_seed(5)
    qs = torch.stack([init.orthogonal_(torch.empty(n, n, dtype=torch.float64), generator=g) for _ in range(draws)])
    q00 = qs[:, 0, 0].numpy()
    assert stats.kstest(q00**2, stats.beta(0.5, (n - 1) / 2).cdf).pvalue > 1e-3
    assert abs(q00.mean()) < 5 * math.sqrt(1 / n / draws)
    trace = qs.diagonal(dim1=1, dim2=2).sum(-1).numpy()
    assert abs(trace.mean()) < 5 / math.sqrt(draws)
    assert abs((trace**2).mean() - 1) < 0.25


# -------------------------------------------------------------------------------------- truncated normal
@pytest.mark.parametrize(
    ("mean", "std", "bound"), [(0.0, 1.0, 2.0), (3.0, 0.5, 0.5), (-1.0, 2.0, 1.0), (0.0, 1.0, 0.1)]
)
def test_truncated_normal_matches_scipy(mean, std, bound):
    x = init.truncated_normal_(
        torch.empty(20_000, dtype=torch.float64), mean, std, bound, torch.Generator().manual_seed(4)
    )
    lo, hi = mean - bound * std, mean + bound * std
    assert lo <= x.min().item() and x.max().item() <= hi
    # redrawn, not clamped: clamping would put a point mass (4.6% at bound 2) on the edges
    assert not bool(((x == lo) | (x == hi)).any())
    assert stats.kstest(x.numpy(), stats.truncnorm(-bound, bound, loc=mean, scale=std).cdf).pvalue > 1e-3


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_truncated_normal_respects_bounds_in_low_precision(dtype):
    x = init.truncated_normal_(torch.empty(50_000, dtype=dtype), mean=0.5, std=0.1, bound=1.5)
    assert x.dtype == dtype
    hi = torch.tensor(0.5 + 0.15, dtype=dtype).item()  # the bound as representable in dtype
    lo = torch.tensor(0.5 - 0.15, dtype=dtype).item()
    assert lo <= x.min().item() and x.max().item() <= hi


def test_truncated_normal_redraws_until_done_on_a_tiny_bound():
    x = init.truncated_normal_(torch.empty(3, 1000, dtype=torch.float64), std=1.0, bound=1e-3)
    assert x.shape == (3, 1000) and x.abs().max().item() <= 1e-3
    # on a tiny interval the truncated normal is almost uniform: mean ~0, var ~ b^2 / 3
    assert abs(x.var().item() - 1e-6 / 3) < 0.05 * 1e-6 / 3


# ----------------------------------------------------------------------------- behaviour common to all
ALL = [c[1] for c in CASES]


@pytest.mark.parametrize("fill", ALL, ids=CASE_IDS)
def test_same_seed_same_tensor(fill):
    a = fill(torch.empty(20, 6, 3), torch.Generator().manual_seed(11))
    b = fill(torch.empty(20, 6, 3), torch.Generator().manual_seed(11))
    c = fill(torch.empty(20, 6, 3), torch.Generator().manual_seed(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize(("name", "fill", "var_fn"), CASES, ids=CASE_IDS)
def test_every_dtype(name, fill, var_fn, dtype):
    shape = (128, 96)
    w = fill(torch.empty(shape, dtype=dtype), torch.Generator().manual_seed(0))
    assert w.dtype == dtype and bool(torch.isfinite(w).all())
    var = var_fn(*_torch_fans(shape), shape)
    # rounding to 8 (bfloat16) or 11 (float16) mantissa bits changes the variance by far less than 10%
    assert abs(w.double().var().item() - var) < 0.1 * var


@pytest.mark.parametrize("fill", ALL, ids=CASE_IDS)
def test_in_place_on_a_parameter_and_no_graph(fill):
    layer = nn.Linear(12, 7)
    before = layer.weight.detach().clone()
    out = fill(layer.weight, None)
    assert out is layer.weight and out.requires_grad and out.grad_fn is None
    assert not torch.equal(before, layer.weight.detach())


def test_orthogonal_fills_a_non_contiguous_view():
    base = torch.zeros(6, 10, dtype=torch.float64)
    view = base.mT  # (10, 6), not contiguous
    init.orthogonal_(view)
    torch.testing.assert_close(base @ base.mT, torch.eye(6, dtype=torch.float64))


def test_constant_init_never_breaks_symmetry():
    # Q1.f: with every weight equal, all hidden units get the same gradient and stay identical
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    for p in model.parameters():
        init.constant_(p, 0.3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 3, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)
    for _ in range(20):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    w = model[0].weight.detach()
    assert not torch.equal(w, torch.full_like(w, 0.3))  # it did train
    torch.testing.assert_close(w, w[:1].expand_as(w), rtol=0, atol=0)  # but all rows are the same unit
    assert torch.equal(init.zeros_(torch.ones(3, 2)), torch.zeros(3, 2))


@CUDA
@pytest.mark.parametrize(("name", "fill", "var_fn"), CASES, ids=CASE_IDS)
def test_runs_on_cuda(name, fill, var_fn):
    g = torch.Generator(device="cuda").manual_seed(0)
    w = fill(torch.empty(256, 128, device="cuda"), g)
    assert w.device.type == "cuda"
    var = var_fn(*_torch_fans((256, 128)), (256, 128))
    assert abs(w.double().var().item() - var) < 5 * var * math.sqrt(2 / (w.numel() - 1))


# ----------------------------------------------------------------------------------------------- errors
FAN_BASED = [
    init.glorot_uniform_,
    init.glorot_normal_,
    init.he_uniform_,
    init.he_normal_,
    init.lecun_normal_,
    init.lecun_uniform_,
    init.orthogonal_,
]


@pytest.mark.parametrize("fn", [*FAN_BASED, init.fan_in_and_fan_out])
def test_one_dimensional_tensor_is_rejected(fn):
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        fn(torch.empty(5))


@pytest.mark.parametrize("fn", [*FAN_BASED, init.truncated_normal_, init.fan_in_and_fan_out])
def test_non_tensor_is_rejected(fn):
    with pytest.raises(TypeError, match=r"expected a torch\.Tensor, got ndarray"):
        fn(np.zeros((3, 3)))


@pytest.mark.parametrize("fn", [*FAN_BASED, init.truncated_normal_])
def test_integer_tensor_and_bad_generator_are_rejected(fn):
    with pytest.raises(TypeError, match="floating-point"):
        fn(torch.zeros(3, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"torch.Generator or None, got int"):
        fn(torch.empty(3, 3), generator=0)


@pytest.mark.parametrize(
    "fn", [init.glorot_uniform_, init.glorot_normal_, init.lecun_normal_, init.lecun_uniform_, init.orthogonal_]
)
def test_negative_gain_is_rejected(fn):
    with pytest.raises(ValueError, match=r"gain: expected a value in \[0"):
        fn(torch.empty(3, 3), gain=-1.0)


def test_bad_values_are_rejected():
    t = torch.empty(4, 4)
    with pytest.raises(ValueError, match="bound: expected a value in"):
        init.truncated_normal_(t, bound=0.0)
    with pytest.raises(ValueError, match="bound: expected a value in"):
        init.truncated_normal_(t, bound=-2.0)
    with pytest.raises(ValueError, match="std: expected a value in"):
        init.truncated_normal_(t, std=0.0)
    with pytest.raises(ValueError, match="mean: expected a finite number"):
        init.truncated_normal_(t, mean=float("nan"))
    with pytest.raises(ValueError, match="mode: expected one of"):
        init.he_normal_(t, mode="fan_avg")
    with pytest.raises(ValueError, match="nonlinearity: expected one of"):
        init.he_uniform_(t, nonlinearity="swish")
    with pytest.raises(TypeError, match="negative slope"):
        init.gain("leaky_relu", True)
    with pytest.raises(ValueError, match="fan_in: expected a value in"):
        init.glorot_bound(0, 10)
    with pytest.raises(ValueError, match="non-empty"):
        init.glorot_uniform_(torch.empty(0, 3))


@CUDA
def test_generator_on_the_wrong_device_is_rejected():
    with pytest.raises(ValueError, match="generator on the tensor's device"):
        init.glorot_uniform_(torch.empty(3, 3, device="cuda"), generator=torch.Generator())
