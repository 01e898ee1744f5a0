"""deepbasics.nn.dropout: inverted-dropout statistics, eval identity, gradient mask, validation."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from deepbasics.nn import Dropout, dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_train_mode_keeps_the_mean_and_zeroes_a_fraction_p(p):
    n = 200_000
    x = torch.ones(n, dtype=torch.float64)
    y = Dropout(p)(x)
    zero_fraction = (y == 0).double().mean().item()
    # Binomial(n, p) / n has standard deviation sqrt(p (1 - p) / n); 5 sigma makes a false alarm ~1e-6.
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(zero_fraction - p) < 5 * sigma
    assert abs(y.mean().item() - 1.0) < 5 * sigma / (1 - p)  # E[y] = x
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - p)), rtol=0, atol=1e-12)  # scaled 1/(1-p)


def test_eval_mode_and_p_zero_are_the_identity():
    x = torch.randn(4, 5)
    layer = Dropout(0.5).eval()
    assert layer(x) is x
    assert Dropout(0.0)(x) is x
    assert dropout(x, 0.9, training=False) is x


def test_gradient_uses_the_same_scaled_mask():
    x = torch.randn(50, 40, dtype=torch.float64).abs().add_(0.1).requires_grad_()
    y = Dropout(0.3)(x)
    y.sum().backward()
    mask = (y != 0).double()
    torch.testing.assert_close(x.grad, mask / 0.7, rtol=0, atol=1e-12)


def test_inplace_and_generator():
    x = torch.ones(1000)
    out = Dropout(0.5, inplace=True)(x)
    assert out.data_ptr() == x.data_ptr() and (x == 0).any()
    a = dropout(torch.ones(100), 0.5, generator=torch.Generator().manual_seed(3))
    b = dropout(torch.ones(100), 0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_same_arguments_and_repr_as_torch():
    assert repr(Dropout(0.25, inplace=True)) == repr(torch.nn.Dropout(0.25, inplace=True))
    assert Dropout().p == torch.nn.Dropout().p == 0.5


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_p_outside_zero_one_raises(p):
    with pytest.raises(ValueError, match=r"p: expected"):
        Dropout(p)
    with pytest.raises(ValueError, match=r"p: expected"):
        dropout(torch.ones(3), p)


def test_p_of_wrong_type_raises():
    with pytest.raises(TypeError, match="real number"):
        Dropout("0.5")


@pytest.mark.parametrize(("ours", "theirs"), [(Dropout, torch.nn.Dropout)])
def test_constructor_signature_matches_torch(ours, theirs):
    """Torch's constructor arguments, order and defaults (an older torch may lack newer keyword-only ones)."""

    def params(cls):
        return [(p.name, p.default, p.kind) for p in inspect.signature(cls.__init__).parameters.values()]

    assert params(ours)[: len(params(theirs))] == params(theirs)
    assert all(kind == inspect.Parameter.KEYWORD_ONLY for _, _, kind in params(ours)[len(params(theirs)) :])
