"""deepbasics.optim.clip against torch.nn.utils.clip_grad_norm_ / clip_grad_value_ in float64."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from deepbasics.optim import clip_grad_norm, clip_grad_norm_per_parameter, clip_grad_value

SHAPES = [(3, 4), (5,), (2, 2, 2), ()]


def make_params(scale: float = 1.0, seed: int = 0, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    """Parameters with random gradients, plus one without a gradient (which must be skipped)."""
    g = torch.Generator().manual_seed(seed)
    params = []
    for shape in SHAPES:
        p = torch.zeros(shape, dtype=dtype, requires_grad=True)
        p.grad = scale * torch.randn(shape, generator=g, dtype=dtype)
        params.append(p)
    params.append(torch.zeros(2, dtype=dtype, requires_grad=True))  # grad None
    return params


def twin(params: list[torch.Tensor]) -> list[torch.Tensor]:
    out = []
    for p in params:
        q = p.detach().clone().requires_grad_()
        q.grad = None if p.grad is None else p.grad.clone()
        out.append(q)
    return out


def grads(params: list[torch.Tensor]) -> list[torch.Tensor]:
    return [p.grad for p in params if p.grad is not None]


def assert_same(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> None:
    for a, b in zip(grads(ours), grads(theirs), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.5, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.0, 0.5, 2.0, 1e3], ids=["zero", "clips", "clips-less", "inactive"])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    ours, theirs = make_params(), make_params()
    before = [g.clone() for g in grads(ours)]
    total = clip_grad_norm(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    torch.testing.assert_close(total, expected, rtol=1e-12, atol=0)
    assert_same(ours, theirs)
    if max_norm == 1e3:  # the clamp at 1: an inactive clip leaves the gradients exactly as they were
        assert all(torch.equal(a, b) for a, b in zip(grads(ours), before, strict=True))
    else:  # the clipped global norm is max_norm up to the 1e-6 in the denominator
        after = torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads(ours)]), float(norm_type))
        assert after <= max_norm + 1e-12
        assert after >= max_norm * total / (total + 1e-6) - 1e-12


@given(
    scale=st.floats(1e-6, 1e6),
    max_norm=st.floats(0.0, 1e3),
    norm_type=st.sampled_from([0.5, 1.0, 2.0, 3.0, math.inf]),
    seed=st.integers(0, 2**31 - 1),
)
def test_clip_grad_norm_matches_torch_on_random_gradients(scale, max_norm, norm_type, seed):
    ours, theirs = make_params(scale, seed), make_params(scale, seed)
    total = clip_grad_norm(ours, max_norm, norm_type)
    torch.testing.assert_close(total, torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type), rtol=1e-12, atol=0)
    assert_same(ours, theirs)


@pytest.mark.parametrize("bad", [math.inf, math.nan])
@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_nonfinite_gradients_behave_like_torch(bad, norm_type):
    ours = make_params()
    ours[0].grad[1, 2] = bad
    theirs = twin(ours)
    total = clip_grad_norm(ours, 1.0, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type)
    torch.testing.assert_close(total, expected, equal_nan=True)
    assert not torch.isfinite(total)
    assert_same(ours, theirs)
    with pytest.raises(RuntimeError, match="clip_grad_norm: expected a finite total gradient norm"):
        clip_grad_norm(twin(ours), 1.0, norm_type, error_if_nonfinite=True)


def test_error_if_nonfinite_leaves_finite_gradients_alone():
    ours, theirs = make_params(), make_params()
    clip_grad_norm(ours, 0.5, error_if_nonfinite=True)
    torch.nn.utils.clip_grad_norm_(theirs, 0.5, error_if_nonfinite=True)
    assert_same(ours, theirs)


def test_single_tensor_float32_and_mixed_dtypes_match_torch():
    single = torch.zeros(4, requires_grad=True)
    single.grad = torch.tensor([3.0, -4.0, 0.0, 12.0])
    other = twin([single])[0]
    torch.testing.assert_close(clip_grad_norm(single, 1.0), torch.nn.utils.clip_grad_norm_(other, 1.0))
    torch.testing.assert_close(single.grad, other.grad)

    mixed = make_params(dtype=torch.float32)[:2] + make_params(seed=3)[2:]
    theirs = twin(mixed)
    torch.testing.assert_close(clip_grad_norm(mixed, 0.3), torch.nn.utils.clip_grad_norm_(theirs, 0.3))
    for a, b in zip(grads(mixed), grads(theirs), strict=True):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b)


def test_no_gradients_give_a_zero_norm():
    params = [torch.zeros(3, requires_grad=True)]
    assert torch.equal(clip_grad_norm(params, 1.0), torch.nn.utils.clip_grad_norm_(params, 1.0))
    assert clip_grad_norm_per_parameter(params, 1.0).shape == (0,)
    clip_grad_value(params, 1.0)
    assert params[0].grad is None


@pytest.mark.parametrize("norm_type", [1.0, 2.0, math.inf])
def test_per_parameter_clipping_is_torchs_clip_on_each_parameter(norm_type):
    ours, theirs = make_params(scale=3.0), make_params(scale=3.0)
    norms = clip_grad_norm_per_parameter(ours, 1.0, norm_type)
    expected = torch.stack([torch.nn.utils.clip_grad_norm_([p], 1.0, norm_type) for p in theirs if p.grad is not None])
    assert norms.shape == (len(SHAPES),)
    torch.testing.assert_close(norms, expected, rtol=1e-12, atol=0)
    assert_same(ours, theirs)
    # each parameter on its own is at most max_norm, and the small ones were not touched
    assert all(torch.linalg.vector_norm(g, norm_type) <= 1.0 + 1e-12 for g in grads(ours))


@pytest.mark.parametrize("clip_value", [0.0, 0.3, 10.0])
def test_clip_grad_value_matches_torch(clip_value):
    ours, theirs = make_params(), make_params()
    assert clip_grad_value(ours, clip_value) is None
    torch.nn.utils.clip_grad_value_(theirs, clip_value)
    assert_same(ours, theirs)
    assert all(g.abs().max() <= clip_value for g in grads(ours))


BAD = [
    (clip_grad_norm, (-1.0,), ValueError, r"max_norm: expected a value in \[0, inf\)"),
    (clip_grad_norm, (1.0, 0.0), ValueError, r"norm_type: expected a value in \(0, inf\)"),
    (clip_grad_norm, (1.0, -2.0), ValueError, "norm_type: expected"),
    (clip_grad_norm, (1.0, "two"), TypeError, "norm_type: expected a real number"),
    (clip_grad_norm, (math.nan,), ValueError, "max_norm: expected a finite number"),
    (clip_grad_norm_per_parameter, (-0.1,), ValueError, "max_norm: expected"),
    (clip_grad_value, (-0.1,), ValueError, "clip_value: expected"),
]


@pytest.mark.parametrize(("fn", "args", "exc", "match"), BAD)
def test_bad_arguments_raise(fn, args, exc, match):
    with pytest.raises(exc, match=match):
        fn(make_params(), *args)


@pytest.mark.parametrize("fn", [clip_grad_norm, clip_grad_norm_per_parameter, clip_grad_value])
def test_parameters_must_be_tensors(fn):
    with pytest.raises(TypeError, match="parameters: expected a tensor or an iterable of tensors"):
        fn(3, 1.0)
    with pytest.raises(TypeError, match="parameters: expected tensors"):
        fn([torch.zeros(2), "w"], 1.0)
