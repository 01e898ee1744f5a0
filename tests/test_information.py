"""deepbasics.information against scipy.stats.entropy and torch.nn.functional, with Hypothesis (FAQ Q7)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from deepbasics import information as info

INF = math.inf


@st.composite
def distributions(draw, n: int = 2, allow_zeros: bool = True):
    """``n`` float64 tensors of one random shape (B, K), each row a probability vector."""
    b, k = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    low = 0.0 if allow_zeros else 1e-3
    out = []
    for _ in range(n):
        w = torch.tensor(draw(st.lists(st.floats(low, 1.0), min_size=b * k, max_size=b * k)), dtype=torch.float64)
        w = w.reshape(b, k)
        w[:, 0] += 1e-3  # at least one positive entry per row
        out.append(w / w.sum(-1, keepdim=True))
    return out


@given(distributions(allow_zeros=False), st.sampled_from([None, 2.0, 10.0]))
def test_cross_entropy_is_entropy_plus_kl(pq, base):
    p, q = pq
    p = torch.where(p < 0.05, torch.zeros_like(p), p)  # p may have zeros (0 log 0 = 0), q may not
    p = p / p.sum(-1, keepdim=True)
    h_pq = info.cross_entropy(p, q, base=base)
    torch.testing.assert_close(
        h_pq, info.entropy(p, base=base) + info.kl_divergence(p, q, base=base), rtol=0, atol=1e-12
    )


@given(distributions())
def test_kl_is_nonnegative_zero_iff_equal_and_above_pinsker(pq):
    p, q = pq
    kl = info.kl_divergence(p, q)
    assert (kl >= -1e-15).all()
    assert (info.kl_divergence(p, p) == 0).all()
    tv1 = (p - q).abs().sum(-1)  # L1 distance; Pinsker: KL >= ||p - q||_1^2 / 2 > 0 when p != q
    assert (kl >= tv1**2 / 2 - 1e-12).all()


def test_kl_is_asymmetric(float64):
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.9, 0.1])
    forward = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    backward = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert info.kl_divergence(p, q).item() == pytest.approx(forward, rel=1e-14)
    assert info.kl_divergence(q, p).item() == pytest.approx(backward, rel=1e-14)
    assert abs(forward - backward) > 0.1


@pytest.mark.parametrize("base", [None, 2.0])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_matches_scipy(float64, base, dim):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(5, 0.3), size=4)
    q = rng.dirichlet(np.ones(5), size=4)
    p[0, 1] = 0.0  # exercise 0 log 0 = 0
    p[0] /= p[0].sum()
    if dim == 0:
        p, q = p.T.copy(), q.T.copy()
    axis = dim % 2
    pt, qt = torch.from_numpy(p), torch.from_numpy(q)
    ref_h = scipy.stats.entropy(p, base=base, axis=axis)
    ref_kl = scipy.stats.entropy(p, q, base=base, axis=axis)
    np.testing.assert_allclose(info.entropy(pt, dim, base).numpy(), ref_h, rtol=0, atol=1e-10)
    np.testing.assert_allclose(info.kl_divergence(pt, qt, dim, base).numpy(), ref_kl, rtol=0, atol=1e-10)
    # cross-entropy has no scipy function; scipy's two pieces give it
    np.testing.assert_allclose(info.cross_entropy(pt, qt, dim, base).numpy(), ref_h + ref_kl, rtol=0, atol=1e-10)


def test_zero_conventions(float64):
    one_hot = torch.tensor([0.0, 1.0, 0.0])
    assert info.entropy(one_hot).item() == 0.0
    uniform = torch.full((8,), 1 / 8)
    assert info.entropy(uniform, base=2).item() == pytest.approx(3.0, rel=1e-15)
    p, q = torch.tensor([0.5, 0.5, 0.0]), torch.tensor([1.0, 0.0, 0.0])
    assert info.kl_divergence(p, q).item() == INF  # q = 0 < p
    assert info.cross_entropy(p, q).item() == INF
    assert info.kl_divergence(q, p).item() == pytest.approx(math.log(2.0), rel=1e-15)  # p = q = 0 term is 0


@given(distributions(n=1), st.floats(0.1, 30.0))
def test_from_logits_equal_probability_versions(ps, scale):
    (p,) = ps
    torch.manual_seed(0)
    la, lb = torch.randn(2, *p.shape, dtype=torch.float64) * scale
    pa, pb = torch.softmax(la, -1), torch.softmax(lb, -1)
    torch.testing.assert_close(info.entropy_from_logits(la), info.entropy(pa), rtol=0, atol=1e-12)
    torch.testing.assert_close(info.cross_entropy_from_logits(p, lb), info.cross_entropy(p, pb), rtol=0, atol=1e-10)
    torch.testing.assert_close(info.kl_divergence_from_logits(la, lb), info.kl_divergence(pa, pb), rtol=0, atol=1e-10)


@given(distributions(n=1), st.floats(1.0, 1e4))
def test_from_logits_match_torch_for_extreme_logits(ps, scale):
    (p,) = ps
    torch.manual_seed(1)
    la, lb = torch.randn(2, *p.shape, dtype=torch.float64) * scale
    ce_ref = F.cross_entropy(lb, p, reduction="none")  # probability targets, class dim 1
    torch.testing.assert_close(info.cross_entropy_from_logits(p, lb), ce_ref, rtol=1e-12, atol=1e-12)
    lpa, lpb = F.log_softmax(la, -1), F.log_softmax(lb, -1)
    kl_ref = F.kl_div(lpb, lpa, reduction="none", log_target=True).sum(-1)
    torch.testing.assert_close(info.kl_divergence_from_logits(la, lb), kl_ref, rtol=1e-12, atol=1e-12)
    h = info.entropy_from_logits(la)
    assert torch.isfinite(h).all() and (h >= 0).all() and (h <= math.log(p.shape[-1]) + 1e-12).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_from_logits_finite_and_exact_at_1e4(dtype):
    la = torch.tensor([1e4, 0.0], dtype=dtype)
    lb = torch.tensor([0.0, 1e4], dtype=dtype)
    # probabilities round to one-hot vectors, so the probability version says inf
    assert info.kl_divergence(torch.softmax(la, -1), torch.softmax(lb, -1)).item() == INF
    assert info.kl_divergence_from_logits(la, lb).item() == pytest.approx(1e4, rel=1e-6)  # exact: 1e4 (1 - 2e^-1e4)
    assert info.cross_entropy_from_logits(torch.tensor([1.0, 0.0], dtype=dtype), lb).item() == pytest.approx(1e4)
    h = info.entropy_from_logits(torch.tensor([1e4, 1e4, -1e4], dtype=dtype))
    assert h.item() == pytest.approx(math.log(2.0), rel=1e-6)


def test_minus_inf_logits_mask_outcomes_with_finite_gradients(float64):
    logits = torch.tensor([[2.0, -INF, 0.5], [1e4, -1e4, 0.0]], requires_grad=True)
    h = info.entropy_from_logits(logits)
    torch.testing.assert_close(h[0], info.entropy(torch.softmax(logits[0, [0, 2]].detach(), -1)))
    (g,) = torch.autograd.grad(h.sum(), logits)
    assert torch.isfinite(g).all()
    kl = info.kl_divergence_from_logits(logits, torch.tensor([[0.0, 0.0, -INF], [0.0, 0.0, 0.0]]))
    assert kl[0].item() == INF and math.isfinite(kl[1].item())


def test_gradcheck_from_logits(float64):
    la = torch.randn(3, 4, requires_grad=True)
    lb = torch.randn(3, 4, requires_grad=True)
    p = torch.softmax(torch.randn(3, 4), -1)
    assert torch.autograd.gradcheck(info.entropy_from_logits, (la,))
    assert torch.autograd.gradcheck(info.kl_divergence_from_logits, (la, lb))
    assert torch.autograd.gradcheck(lambda t: info.cross_entropy_from_logits(p, t), (lb,))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_low_precision_keeps_dtype_and_is_close(dtype):
    torch.manual_seed(0)
    p64 = torch.softmax(torch.randn(3, 10, dtype=torch.float64), -1)
    q64 = torch.softmax(torch.randn(3, 10, dtype=torch.float64), -1)
    p, q = p64.to(dtype), q64.to(dtype)  # rounding leaves rows a few eps from 1: accepted
    for fn, args, ref in [
        (info.entropy, (p,), info.entropy(p64)),
        (info.kl_divergence, (p, q), info.kl_divergence(p64, q64)),
    ]:
        out = fn(*args)
        assert out.dtype == dtype
        torch.testing.assert_close(out.double(), ref, rtol=0, atol=50 * torch.finfo(dtype).eps)


def test_bad_inputs_raise(float64):
    good = torch.tensor([[0.5, 0.5], [0.25, 0.75]])
    with pytest.raises(ValueError, match=r"row \(1,\).*summing to 1.1.*Normalize with p / p.sum"):
        info.entropy(torch.tensor([[0.5, 0.5], [0.5, 0.6]]))
    with pytest.raises(ValueError, match=r"negative entry -0.5"):
        info.entropy(torch.tensor([1.5, -0.5]))
    with pytest.raises(ValueError, match="inf or nan"):
        info.kl_divergence(good, torch.tensor([[0.5, math.nan], [0.5, 0.5]]))
    with pytest.raises(ValueError, match=r"^q: .*entropy_from_logits|^q: .*cross_entropy_from_logits"):
        info.cross_entropy(good, torch.tensor([[2.0, -1.0], [0.5, 0.5]]) * 3)
    with pytest.raises(ValueError, match="same shape"):
        info.kl_divergence(good, torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="other than 1"):
        info.entropy(good, base=1)
    with pytest.raises(ValueError, match="interval"):
        info.entropy(good, base=-2)
    with pytest.raises(TypeError, match="floating-point"):
        info.entropy(torch.tensor([0, 1]))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        info.entropy([0.5, 0.5])
    with pytest.raises(ValueError, match="dimension in"):
        info.entropy(good, dim=2)
    with pytest.raises(ValueError, match="nan or \\+inf"):
        info.entropy_from_logits(torch.tensor([0.0, math.nan]))
    with pytest.raises(ValueError, match="all -inf"):
        info.kl_divergence_from_logits(torch.zeros(2, 2), torch.tensor([[0.0, 0.0], [-INF, -INF]]))
    with pytest.raises(ValueError, match="probability distribution"):
        info.cross_entropy_from_logits(torch.tensor([3.0, 1.0]), torch.zeros(2))
