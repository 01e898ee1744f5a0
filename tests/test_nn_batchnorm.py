"""deepbasics.nn.batchnorm against torch.nn.BatchNorm1d/2d (float64), gradcheck, and independent formulas."""

from __future__ import annotations

import inspect

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepbasics.nn import BatchNorm1d, BatchNorm2d, BatchNormFunction, batch_norm
from deepbasics.nn.batchnorm import batch_norm_backward_reference, batch_norm_reference

TOL = {"atol": 1e-10, "rtol": 1e-10}  # float64; the brief asks for 1e-6, the implementation reaches ~1e-14

CASES = [
    (BatchNorm1d, torch.nn.BatchNorm1d, (8, 5)),
    (BatchNorm1d, torch.nn.BatchNorm1d, (6, 5, 7)),
    (BatchNorm2d, torch.nn.BatchNorm2d, (4, 5, 3, 6)),
]


AFFINE = [{"affine": True}, {"affine": False}]
if "bias" in inspect.signature(torch.nn.BatchNorm1d).parameters:  # recent torch: gamma without beta
    AFFINE.append({"bias": False})


def _pair(ours_cls, torch_cls, **kwargs):
    """Our module and torch's with identical random affine parameters (loaded through the state dict)."""
    theirs = torch_cls(5, **kwargs).double()
    with torch.no_grad():
        for p in theirs.parameters():
            p.uniform_(0.5, 2.0)
    ours = ours_cls(5, **kwargs).double()
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _step(ours, theirs, x):
    """One forward/backward of both on the same input and upstream gradient; compare outputs and gradients."""
    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    ya, yb = ours(xa), theirs(xb)
    torch.testing.assert_close(ya, yb, **TOL)
    dy = torch.randn_like(ya)
    ya.backward(dy)
    yb.backward(dy)
    torch.testing.assert_close(xa.grad, xb.grad, **TOL)
    for (na, pa), (nb, pb) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        assert na == nb
        torch.testing.assert_close(pa.grad, pb.grad, **TOL)
    ours.zero_grad()
    theirs.zero_grad()


@pytest.mark.parametrize(("ours_cls", "torch_cls", "shape"), CASES)
@pytest.mark.parametrize("momentum", [0.1, None, 0.7])
@pytest.mark.parametrize("affine", AFFINE, ids=str)
def test_train_then_eval_matches_torch(ours_cls, torch_cls, shape, momentum, affine):
    ours, theirs = _pair(ours_cls, torch_cls, momentum=momentum, **affine)
    for _ in range(3):  # training: batch statistics, running averages updated
        _step(ours, theirs, torch.randn(shape, dtype=torch.float64) * 3.0 + 2.0)
        torch.testing.assert_close(ours.running_mean, theirs.running_mean, **TOL)
        torch.testing.assert_close(ours.running_var, theirs.running_var, **TOL)
        assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked)
    ours.eval()
    theirs.eval()
    _step(ours, theirs, torch.randn(shape, dtype=torch.float64))  # eval: running statistics, frozen
    assert int(ours.num_batches_tracked) == 3
    torch.testing.assert_close(ours.running_var, theirs.running_var, **TOL)


@pytest.mark.parametrize(("ours_cls", "torch_cls", "shape"), CASES)
def test_without_running_stats_uses_batch_statistics_in_eval_too(ours_cls, torch_cls, shape):
    ours, theirs = _pair(ours_cls, torch_cls, track_running_stats=False)
    assert ours.running_mean is None and ours.num_batches_tracked is None
    _step(ours, theirs, torch.randn(shape, dtype=torch.float64))
    ours.eval()
    theirs.eval()
    _step(ours, theirs, torch.randn(shape, dtype=torch.float64) + 1.0)


@pytest.mark.parametrize(("ours_cls", "torch_cls", "shape"), CASES)
def test_state_dicts_load_both_ways(ours_cls, torch_cls, shape):
    ours, theirs = _pair(ours_cls, torch_cls)
    _step(ours, theirs, torch.randn(shape, dtype=torch.float64))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    fresh = torch_cls(5).double()
    fresh.load_state_dict(ours.state_dict())  # strict: same names and shapes
    for (ka, va), (kb, vb) in zip(ours.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert ka == kb
        torch.testing.assert_close(va, vb, rtol=0, atol=0)


def test_old_checkpoint_without_num_batches_tracked_loads():
    state = torch.nn.BatchNorm1d(3).state_dict()  # an OrderedDict carrying _metadata
    del state["num_batches_tracked"]
    state._metadata[""]["version"] = 1  # what torch < 0.4.1 wrote
    ours = BatchNorm1d(3)
    ours.load_state_dict(state)
    assert int(ours.num_batches_tracked) == 0


def test_running_stats_follow_algorithm_2_independently():
    """Unbiased running variance, cumulative average for momentum=None: checked without torch's module."""
    bn = BatchNorm1d(4, momentum=None).double()
    batches = [torch.randn(10, 4, dtype=torch.float64) * (k + 1) + k for k in range(4)]
    for x in batches:
        bn(x)
    torch.testing.assert_close(bn.running_mean, torch.stack([x.mean(0) for x in batches]).mean(0), **TOL)
    torch.testing.assert_close(bn.running_var, torch.stack([x.var(0, unbiased=True) for x in batches]).mean(0), **TOL)
    bn1 = BatchNorm1d(4, momentum=1.0).double()
    y = bn1(batches[0])
    torch.testing.assert_close(bn1.running_var, batches[0].var(0, unbiased=True), **TOL)
    # ... while the output is normalized with the biased variance v: mean 0 and variance exactly v / (v + eps)
    v = batches[0].var(0, unbiased=False)
    torch.testing.assert_close(y.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(y.var(0, unbiased=False), v / (v + bn1.eps), **TOL)


@pytest.mark.parametrize("shape", [(6, 3), (5, 3, 4), (3, 3, 2, 3)])
@pytest.mark.parametrize("affine", [True, False])
def test_closed_form_backward_passes_gradcheck_and_gradgradcheck(float64, shape, affine):
    x = torch.randn(shape, requires_grad=True)
    params = (torch.rand(3) + 0.5, torch.randn(3)) if affine else (None, None)
    params = tuple(p.requires_grad_() if p is not None else None for p in params)

    def f(x, w, b):
        return BatchNormFunction.apply(x, w, b, 1e-5)[0]

    inputs = (x, *params) if affine else (x,)
    fn = f if affine else (lambda x: f(x, None, None))
    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


@given(
    n=st.integers(2, 7),
    c=st.integers(1, 4),
    length=st.integers(1, 5),
    scale=st.floats(1e-2, 1e2),
    offset=st.floats(-1e3, 1e3),
)
@settings(max_examples=25)
def test_fast_path_agrees_with_the_line_by_line_reference(n, c, length, scale, offset):
    """Fused forward/backward == Algorithm 1 via autograd == the closed form written as in the docstring."""
    gen = torch.Generator().manual_seed(n * 100 + c * 10 + length)
    x = (torch.randn(n, c, length, generator=gen, dtype=torch.float64) * scale + offset).requires_grad_()
    w = torch.rand(c, generator=gen, dtype=torch.float64).add_(0.5).requires_grad_()
    b = torch.randn(c, generator=gen, dtype=torch.float64).requires_grad_()
    dy = torch.randn(n, c, length, generator=gen, dtype=torch.float64)
    y_fast = BatchNormFunction.apply(x, w, b, 1e-5)[0]
    grads_fast = torch.autograd.grad(y_fast, (x, w, b), dy)
    y_ref = batch_norm_reference(x, w, b, 1e-5)
    grads_ref = torch.autograd.grad(y_ref, (x, w, b), dy)
    closed = batch_norm_backward_reference(dy, x.detach(), w.detach(), 1e-5)
    torch.testing.assert_close(y_fast, y_ref, atol=1e-9, rtol=1e-9)
    for g_fast, g_ref, g_closed in zip(grads_fast, grads_ref, closed, strict=True):
        torch.testing.assert_close(g_fast, g_ref, atol=1e-8, rtol=1e-8)
        torch.testing.assert_close(g_closed, g_ref, atol=1e-8, rtol=1e-8)


def test_float32_matches_torch_and_bfloat16_keeps_its_dtype():
    ours, theirs = BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    x = torch.randn(4, 3, 5, 5) * 10 + 3
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.running_var, theirs.running_var, atol=1e-5, rtol=1e-5)
    xb = x[:, :, 0, 0].bfloat16()  # statistics are accumulated in float32, the output cast back
    y = BatchNorm1d(3)(xb)
    assert y.dtype == torch.bfloat16
    reference = torch.nn.functional.batch_norm(xb.float(), None, None, training=True)
    torch.testing.assert_close(y.float(), reference, atol=2e-2, rtol=2e-2)


def test_constant_channel_gives_zero_output_not_nan():
    x = torch.full((8, 2), 1e6)
    y = BatchNorm1d(2)(x)
    assert torch.equal(y, torch.zeros_like(y))


def test_batch_size_one_in_training_raises_like_torch_and_changes_nothing():
    bn = BatchNorm1d(4)
    with pytest.raises(ValueError, match="more than 1 value per channel when training"):
        bn(torch.randn(1, 4))
    with pytest.raises(ValueError, match="more than 1 value per channel when training"):
        BatchNorm2d(4)(torch.randn(1, 4, 1, 1))
    with pytest.raises(ValueError, match="more than 1 value per channel when training"):
        batch_norm(torch.randn(1, 4), None, None, training=True)
    assert int(bn.num_batches_tracked) == 0
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        torch.nn.BatchNorm1d(4)(torch.randn(1, 4))  # the behaviour we mirror
    bn(torch.randn(1, 4, 5))  # one sample but five positions: fine, as in torch
    bn.eval()
    assert bn(torch.randn(1, 4)).shape == (1, 4)  # single-sample inference uses the running statistics


def test_bad_inputs_and_arguments_raise_clearly():
    with pytest.raises(ValueError, match=r"2-D \(N, C\) or 3-D"):
        BatchNorm1d(3)(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"4-D \(N, C, H, W\)"):
        BatchNorm2d(3)(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="3 channels in dimension 1"):
        BatchNorm1d(3)(torch.randn(4, 5))
    with pytest.raises(TypeError, match="floating-point"):
        BatchNorm1d(3)(torch.ones(4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm1d(0)
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm1d(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        BatchNorm2d(3, eps=0.0)
    with pytest.raises(ValueError, match="running_mean and running_var when training=False"):
        batch_norm(torch.randn(4, 3), None, None, training=False)
    with pytest.raises(ValueError, match="running_mean"):
        batch_norm(torch.randn(4, 3), torch.zeros(2), torch.ones(3))


def test_functional_matches_torch_functional(float64):
    x = torch.randn(7, 3, 2)
    rm_a, rv_a = torch.randn(3), torch.rand(3) + 0.5
    rm_b, rv_b = rm_a.clone(), rv_a.clone()
    w, b = torch.rand(3), torch.randn(3)
    y_a = batch_norm(x, rm_a, rv_a, w, b, training=True, momentum=0.3)
    y_b = torch.nn.functional.batch_norm(x, rm_b, rv_b, w, b, training=True, momentum=0.3)
    torch.testing.assert_close(y_a, y_b, **TOL)
    torch.testing.assert_close((rm_a, rv_a), (rm_b, rv_b), **TOL)
    y_a = batch_norm(x, rm_a, rv_a, w, b, training=False)
    y_b = torch.nn.functional.batch_norm(x, rm_b, rv_b, w, b, training=False)
    torch.testing.assert_close(y_a, y_b, **TOL)


@pytest.mark.parametrize(("ours", "theirs"), [(BatchNorm1d, torch.nn.BatchNorm1d), (BatchNorm2d, torch.nn.BatchNorm2d)])
def test_constructor_signature_matches_torch(ours, theirs):
    """Torch's constructor arguments, order and defaults (an older torch may lack newer keyword-only ones)."""

    def params(cls):
        return [(p.name, p.default, p.kind) for p in inspect.signature(cls.__init__).parameters.values()]

    assert params(ours)[: len(params(theirs))] == params(theirs)
    assert all(kind == inspect.Parameter.KEYWORD_ONLY for _, _, kind in params(ours)[len(params(theirs)) :])
