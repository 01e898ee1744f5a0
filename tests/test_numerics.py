"""deepbasics.numerics against torch (float64 reference) and numpy, with Hypothesis properties (FAQ Q8)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from deepbasics import numerics as nm

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
INF = math.inf


@st.composite
def tensor_and_dim(draw, low: float = -1e4, high: float = 1e4, max_ndim: int = 3):
    """A float64 tensor of random shape (1-3 dims, sizes 1-5) with entries in [low, high], and a valid dim."""
    ndim = draw(st.integers(1, max_ndim))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim)))
    n = math.prod(shape)
    values = draw(st.lists(st.floats(low, high, allow_nan=False), min_size=n, max_size=n))
    dim = draw(st.integers(-ndim, ndim - 1))
    return torch.tensor(values, dtype=torch.float64).reshape(shape), dim


@given(tensor_and_dim(-1e3, 1e3), st.floats(-1e3, 1e3))
def test_softmax_is_shift_invariant(xd, c):
    x, dim = xd
    torch.testing.assert_close(nm.softmax(x + c, dim), nm.softmax(x, dim), rtol=0, atol=1e-9)
    # log_softmax shifts by exactly 0 as well
    torch.testing.assert_close(nm.log_softmax(x + c, dim), nm.log_softmax(x, dim), rtol=0, atol=1e-9)


@given(tensor_and_dim())
def test_rows_sum_to_one_and_are_finite_in_float32(xd):
    x, dim = xd
    x32 = x.float()
    p = nm.softmax(x32, dim)
    assert p.dtype == torch.float32
    assert torch.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    torch.testing.assert_close(p.sum(dim), torch.ones_like(p.sum(dim)), rtol=0, atol=1e-5)
    assert torch.isfinite(nm.log_softmax(x32, dim)).all()
    assert torch.isfinite(nm.logsumexp(x32, dim)).all()
    p64 = nm.softmax(x, dim)
    torch.testing.assert_close(p64.sum(dim), torch.ones_like(p64.sum(dim)), rtol=0, atol=1e-12)


def _assert_agrees_or_is_closer_to_truth(ours: torch.Tensor, theirs: torch.Tensor, truth: torch.Tensor) -> None:
    """``ours`` equals torch's result within the dtype's tolerance, or else is the one closer to the float64 truth.

    torch computes some half-precision reductions with an intermediate rounded to the low dtype
    (bfloat16 ``log_softmax([0, 2])[1]`` is -0.1245 against a true -0.1269; float16 ``logsumexp([0, -2])`` is
    0.12732 against 0.12693); ours computes in float32 and rounds once, so it may differ from torch by a few
    ulps while being more accurate.
    """
    try:
        torch.testing.assert_close(ours, theirs)  # default tolerances are per dtype
    except AssertionError:
        err_ours = (ours.double() - truth).abs().nan_to_num(0.0)
        err_torch = (theirs.double() - truth).abs().nan_to_num(0.0)
        assert (err_ours <= err_torch).all(), (ours, theirs, truth)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@given(xd=tensor_and_dim())
def test_agrees_with_torch_in_every_dtype(dtype, xd):
    x, dim = xd
    x = x.to(dtype)  # both implementations see the same rounded inputs
    for ours, ref in [(nm.softmax, torch.softmax), (nm.log_softmax, torch.log_softmax)]:
        out = ours(x, dim)
        assert out.dtype == dtype and out.shape == x.shape
        _assert_agrees_or_is_closer_to_truth(out, ref(x, dim), ref(x.double(), dim))
    for keepdim in (False, True):
        out = nm.logsumexp(x, dim, keepdim=keepdim)
        assert out.dtype == dtype
        truth = torch.logsumexp(x.double(), dim, keepdim=keepdim)
        _assert_agrees_or_is_closer_to_truth(out, torch.logsumexp(x, dim, keepdim=keepdim), truth)


def test_logsumexp_tuple_dims_zero_dim_and_empty_match_torch(float64):
    x = torch.randn(2, 3, 4) * 50
    for dims in [(0, 2), (-1, 0), (0, 1, 2)]:
        for keepdim in (False, True):
            torch.testing.assert_close(
                nm.logsumexp(x, dims, keepdim), torch.logsumexp(x, dims, keepdim), rtol=1e-14, atol=0
            )
    s = torch.tensor(3.0)
    assert nm.logsumexp(s, 0).item() == torch.logsumexp(s, 0).item()
    assert nm.softmax(s, 0).item() == 1.0 and nm.log_softmax(s, 0).item() == 0.0
    torch.testing.assert_close(nm.logsumexp(torch.empty(5, 0)), torch.logsumexp(torch.empty(5, 0), -1))
    assert nm.softmax(torch.empty(0, 3)).shape == (0, 3)


@pytest.mark.parametrize(
    "row",
    [[-INF, -INF], [-INF, 1.0], [INF, 1.0], [INF, INF], [INF, -INF], [math.nan, 1.0], [-INF, -INF, 0.0]],
    ids=str,
)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_special_values_match_torch(row, dtype):
    x = torch.tensor([row, [0.5] * len(row)], dtype=dtype)  # a bad row next to a good one
    torch.testing.assert_close(nm.softmax(x), torch.softmax(x, -1), equal_nan=True)
    torch.testing.assert_close(nm.log_softmax(x), torch.log_softmax(x, -1), equal_nan=True)
    torch.testing.assert_close(nm.logsumexp(x), torch.logsumexp(x, -1), equal_nan=True)


def test_all_minus_inf_row_semantics():
    x = torch.full((3,), -INF)
    assert nm.logsumexp(x).item() == -INF
    assert torch.isnan(nm.softmax(x)).all()  # torch's convention: 0/0 is undefined


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=str)
def test_naive_softmax_overflows_where_ours_does_not(dtype):
    big = 12.0 if dtype == torch.float16 else 100.0  # e^12 > 65504 (float16 max); e^100 > 3.4e38
    x = torch.tensor([big, 0.0], dtype=dtype)
    assert torch.isnan(nm.naive_softmax(x)).any()
    torch.testing.assert_close(nm.softmax(x), torch.softmax(x, -1))
    assert torch.isfinite(nm.softmax(x)).all()
    tiny = torch.tensor([-1000.0, -1001.0], dtype=dtype)  # every e^x underflows: 0 / 0
    assert torch.isnan(nm.naive_softmax(tiny)).all()
    torch.testing.assert_close(nm.softmax(tiny), torch.softmax(tiny.double(), -1).to(dtype))


def test_naive_log_softmax_underflows_to_minus_inf_where_ours_is_exact(float64):
    x = torch.tensor([0.0, -1000.0])
    assert nm.naive_log_softmax(x)[1].item() == -INF
    ours = nm.log_softmax(x)
    assert torch.isfinite(ours).all()
    expected = x - math.log1p(math.exp(-1000.0))  # exact: [0, -1000] up to e^-1000
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(ours, torch.log_softmax(x, -1), rtol=0, atol=1e-12)


def test_naive_versions_agree_on_moderate_inputs(float64):
    x = torch.randn(4, 6)
    torch.testing.assert_close(nm.naive_softmax(x), torch.softmax(x, -1), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(nm.naive_log_softmax(x, 0), torch.log_softmax(x, 0), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gradients_match_torch_float64(float64, dim):
    x = (torch.randn(3, 5) * 30).requires_grad_()
    upstream = torch.randn(3, 5)
    pairs = [
        (lambda t: nm.softmax(t, dim), lambda t: torch.softmax(t, dim)),
        (lambda t: nm.log_softmax(t, dim), lambda t: torch.log_softmax(t, dim)),
        (lambda t: nm.logsumexp(t, dim, keepdim=True), lambda t: torch.logsumexp(t, dim, keepdim=True)),
    ]
    for ours, ref in pairs:
        out, expected = ours(x), ref(x)
        g = upstream if out.shape == x.shape else upstream.sum(dim, keepdim=True)
        (ga,) = torch.autograd.grad(out, x, g)
        (gb,) = torch.autograd.grad(expected, x, g)
        torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-14)


def test_gradcheck_and_gradgradcheck(float64):
    x = torch.randn(2, 4, requires_grad=True)
    for fn in (nm.softmax, nm.log_softmax, nm.logsumexp, nm.log1pexp, nm.log_sigmoid):
        assert torch.autograd.gradcheck(fn, (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))


def test_gradient_with_ties_and_extremes(float64):
    x = torch.tensor([[5.0, 5.0, 1.0], [1e4, -1e4, 0.0]], requires_grad=True)  # a tie at the max; extremes
    (g,) = torch.autograd.grad(nm.logsumexp(x).sum(), x)
    torch.testing.assert_close(g, torch.softmax(x.detach(), -1), rtol=1e-12, atol=0)
    assert torch.isfinite(g).all()


def test_xlogy_and_safe_log(float64):
    x = torch.tensor([0.0, 0.0, 2.0, 0.5])
    y = torch.tensor([0.0, 3.0, 0.0, 0.25])
    out = nm.xlogy(x, y)
    assert out[0].item() == 0.0 and out[1].item() == 0.0 and out[2].item() == -INF
    assert out[3].item() == pytest.approx(0.5 * math.log(0.25), rel=1e-15)
    t = torch.tensor([0.0, 1e-320, 2.0], requires_grad=True)
    s = nm.safe_log(t)
    assert torch.isfinite(s).all() and s[0].item() == math.log(torch.finfo(torch.float64).tiny)
    assert s[2].item() == math.log(2.0)
    (g,) = torch.autograd.grad(s.sum(), t)
    assert torch.isfinite(g).all() and g[0].item() == 0.0


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_log1pexp_and_log_sigmoid_match_references(dtype):
    grid = np.concatenate([[-1e4, -800.0, -40.0, -1e-8, 0.0, 1e-8, 40.0, 800.0, 1e4], np.linspace(-30, 30, 61)])
    x = torch.tensor(grid, dtype=dtype)
    ref = torch.from_numpy(np.logaddexp(0.0, x.double().numpy()))  # log(e^0 + e^x), independent of torch
    out = nm.log1pexp(x)
    assert out.dtype == dtype and torch.isfinite(out).all()
    tol = {} if dtype != torch.float64 else {"rtol": 1e-14, "atol": 1e-300}
    torch.testing.assert_close(out, ref.to(dtype), **tol)
    torch.testing.assert_close(nm.log_sigmoid(x), F.logsigmoid(x.double()).to(dtype), **tol)


def test_log1pexp_gradient_is_sigmoid_even_at_zero(float64):
    x = torch.tensor([-1e4, -3.0, 0.0, 3.0, 1e4], requires_grad=True)
    (g,) = torch.autograd.grad(nm.log1pexp(x).sum(), x)
    torch.testing.assert_close(g, torch.sigmoid(x.detach()), rtol=1e-15, atol=0)


def test_split_where_keeps_gradients_finite(float64):
    # exp(z) overflows on the positive half-line, but that branch is never evaluated there
    z = torch.tensor([-2.0, 0.0, 800.0], requires_grad=True)
    out = nm.split_where(z, lambda t: t, lambda t: torch.exp(t) - 1)
    (g,) = torch.autograd.grad(out.sum(), z)
    assert torch.isfinite(g).all()
    torch.testing.assert_close(g, torch.tensor([math.exp(-2.0), 1.0, 1.0]), rtol=1e-15, atol=0)
    out = nm.split_where(z, lambda t: t, lambda t: torch.exp(t) - 1, strict=True)
    (g,) = torch.autograd.grad(out.sum(), z)
    assert g[1].item() == 1.0  # at 0 the negative branch is taken: d(e^z - 1)/dz = 1 too


def test_upcast():
    h = torch.ones(2, dtype=torch.float16)
    assert nm.upcast(h).dtype == torch.float32
    d = torch.ones(2, dtype=torch.float64)
    assert nm.upcast(d) is d


def test_bad_inputs_raise():
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        nm.softmax([1.0, 2.0])
    with pytest.raises(TypeError, match="floating-point"):
        nm.log_softmax(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="dimension in"):
        nm.logsumexp(torch.randn(2, 3), dim=2)
    with pytest.raises(TypeError, match="an int"):
        nm.softmax(torch.randn(2, 3), dim=1.0)
    with pytest.raises(ValueError, match="distinct"):
        nm.logsumexp(torch.randn(2, 3), dim=(1, -1))
    with pytest.raises(ValueError, match="non-empty tuple"):
        nm.logsumexp(torch.randn(2, 3), dim=())
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        nm.xlogy(torch.ones(1), 1.0)
