"""deepbasics.losses against torch.nn.functional and autograd (FAQ Q5, Q6)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepbasics import losses as L

REDUCTIONS = ["mean", "sum", "none"]
TOL = {"rtol": 1e-12, "atol": 1e-12}


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_matches_torch(float64, reduction):
    pred, target = torch.randn(4, 3, 2) * 100, torch.randn(4, 3, 2)
    torch.testing.assert_close(L.mse(pred, target, reduction), F.mse_loss(pred, target, reduction=reduction), **TOL)
    big = torch.full((3,), 1e4)
    assert torch.isfinite(L.mse(big, -big)).all()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 2, 2), (5,)], ids=str)
def test_cross_entropy_class_targets_match_torch(float64, reduction, shape):
    logits = torch.randn(shape) * 10
    cdim = 1 if len(shape) >= 2 else 0
    target = torch.randint(0, shape[cdim], shape[:cdim] + shape[cdim + 1 :])
    expected = F.cross_entropy(logits, target, reduction=reduction)
    torch.testing.assert_close(L.cross_entropy(logits, target, reduction), expected, **TOL)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 2), (5,)], ids=str)
def test_cross_entropy_probability_targets_match_torch(float64, reduction, shape):
    logits = torch.randn(shape) * 10
    cdim = 1 if len(shape) >= 2 else 0
    target = torch.softmax(torch.randn(shape) * 3, cdim)
    expected = F.cross_entropy(logits, target, reduction=reduction)
    torch.testing.assert_close(L.cross_entropy(logits, target, reduction), expected, **TOL)


def test_cross_entropy_zero_probability_on_masked_logit_is_zero_not_nan(float64):
    logits = torch.tensor([[0.0, float("-inf"), 1.0]])
    target = torch.tensor([[0.5, 0.0, 0.5]])
    out = L.cross_entropy(logits, target)
    assert torch.isfinite(out)  # torch returns nan here (0 * -inf); we use 0 log q = 0
    torch.testing.assert_close(out, F.cross_entropy(logits[:, [0, 2]], target[:, [0, 2]]), **TOL)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_matches_torch(float64, reduction):
    logits = torch.cat([torch.randn(20) * 10, torch.tensor([-1e4, -50.0, 0.0, 50.0, 1e4])])
    target = torch.rand(25)
    target[-5:] = torch.tensor([1.0, 1.0, 0.5, 0.0, 0.0])
    expected = F.binary_cross_entropy_with_logits(logits, target, reduction=reduction)
    torch.testing.assert_close(L.binary_cross_entropy_with_logits(logits, target, reduction), expected, **TOL)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_losses_finite_and_correct_for_logits_1e4(dtype):
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], dtype=dtype)
    target = torch.tensor([1, 0])  # wrong by 2e4 in both rows
    ce = L.cross_entropy(logits, target)
    assert torch.isfinite(ce) and ce.item() == pytest.approx(2e4)
    torch.testing.assert_close(ce, F.cross_entropy(logits, target))
    z = torch.tensor([1e4, -1e4, 1e4], dtype=dtype)
    bce = L.binary_cross_entropy_with_logits(z, torch.tensor([0.0, 1.0, 1.0], dtype=dtype), "none")
    torch.testing.assert_close(bce, torch.tensor([1e4, 1e4, 0.0], dtype=dtype))


def test_loss_gradients_match_torch(float64):
    logits = torch.cat([torch.randn(4, 3) * 5, torch.tensor([[0.0, 0.0, 0.0], [1e4, -1e4, 0.0]])]).requires_grad_()
    labels = torch.tensor([0, 1, 2, 0, 1, 1])
    soft = torch.softmax(torch.randn(6, 3), 1)
    y01 = torch.rand(6, 3)
    pairs = [
        (L.cross_entropy(logits, labels), F.cross_entropy(logits, labels)),
        (L.cross_entropy(logits, soft, "sum"), F.cross_entropy(logits, soft, reduction="sum")),
        (L.binary_cross_entropy_with_logits(logits, y01), F.binary_cross_entropy_with_logits(logits, y01)),
        (L.mse(logits, y01), F.mse_loss(logits, y01)),
    ]
    for ours, ref in pairs:
        (ga,) = torch.autograd.grad(ours, logits)
        (gb,) = torch.autograd.grad(ref, logits)
        torch.testing.assert_close(ga, gb, **TOL)  # includes z = 0 exactly, where |z|-based forms go wrong


# ---- output_layer_gradient ----------------------------------------------------------------------------------


def _reference_loss(loss: str, activation: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The documented L = (1/N) sum_n l_n, built from torch ops, so autograd gives the reference dL/dz."""
    n = z.shape[0]
    if activation == "sigmoid":
        if loss == "mse":
            return 0.5 * F.mse_loss(torch.sigmoid(z), y, reduction="sum") / n
        return F.binary_cross_entropy_with_logits(z, y, reduction="sum") / n
    if loss == "ce":
        return F.cross_entropy(z, y, reduction="sum") / n
    return 0.5 * F.mse_loss(torch.softmax(z, 1), y, reduction="sum") / n


GRADIENT_CASES = [(loss, act, (5, 4)) for loss, act in L.VALID_OUTPUT_COMBINATIONS] + [
    (loss, "sigmoid", shape)
    for loss in ("mse", "bce")
    for shape in [(7,), (2, 3, 2)]  # sigmoid: any (N, ...)
]


@pytest.mark.parametrize(("loss", "activation", "shape"), GRADIENT_CASES, ids=str)
def test_output_layer_gradient_matches_autograd(float64, loss, activation, shape):
    z = torch.randn(shape) * 4
    z.view(-1)[:3] = torch.tensor([0.0, 30.0, -30.0])  # the kink-free point 0 and saturated units
    y = torch.softmax(torch.randn(shape) * 2, 1) if activation == "softmax" else torch.rand(shape)
    zr = z.clone().requires_grad_()
    (expected,) = torch.autograd.grad(_reference_loss(loss, activation, zr, y), zr)
    torch.testing.assert_close(L.output_layer_gradient(loss, activation, z, y), expected, **TOL)


def test_output_layer_gradient_ce_with_class_indices_is_p_minus_onehot(float64):
    z = torch.randn(4, 3)
    labels = torch.tensor([2, 0, 1, 2])
    expected = (torch.softmax(z, 1) - F.one_hot(labels, 3)) / 4
    torch.testing.assert_close(L.output_layer_gradient("ce", "softmax", z, labels), expected, **TOL)


@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
def test_mse_gradient_vanishes_on_saturated_wrong_outputs_but_ce_does_not(float64, activation):
    # FAQ Q5: the unit says "no" with certainty (z far negative on the true class) and is wrong
    if activation == "sigmoid":
        z, y, ce = torch.tensor([[-10.0]]), torch.tensor([[1.0]]), "bce"
    else:
        z, y, ce = torch.tensor([[-10.0, 10.0]]), torch.tensor([[1.0, 0.0]]), "ce"
    g_mse = L.output_layer_gradient("mse", activation, z, y).abs().max().item()
    g_ce = L.output_layer_gradient(ce, activation, z, y).abs().max().item()
    assert g_ce > 0.99  # proportional to the error, which is ~1
    assert g_mse < 1e-3 * g_ce


def test_output_layer_gradient_bad_inputs_raise():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"\('bce', 'sigmoid'\).*got \('ce', 'sigmoid'\)"):
        L.output_layer_gradient("ce", "sigmoid", z, z)
    with pytest.raises(ValueError, match="one of"):
        L.output_layer_gradient("hinge", "sigmoid", z, z)
    with pytest.raises(ValueError, match="one of"):
        L.output_layer_gradient("ce", "relu", z, z)
    with pytest.raises(ValueError, match="same shape"):
        L.output_layer_gradient("bce", "sigmoid", z, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="2-D"):
        L.output_layer_gradient("ce", "softmax", torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="class indices"):
        L.output_layer_gradient("ce", "softmax", z, torch.tensor([0, 3]))


# ---- penalties -----------------------------------------------------------------------------------------------


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2), nn.LayerNorm(2)).double()


def test_penalties_equal_direct_computation():
    model = _model()
    params = list(model.parameters())
    l1 = sum(p.detach().abs().sum().item() for p in params)
    l2 = sum((p.detach() ** 2).sum().item() for p in params)
    assert L.l1_penalty(model).item() == pytest.approx(l1, rel=1e-14)
    assert L.l2_penalty(model.parameters()).item() == pytest.approx(l2, rel=1e-14)
    weights = [p for p in params if p.dim() >= 2]
    assert L.l2_penalty(model, skip_1d=True).item() == pytest.approx(
        sum((w.detach() ** 2).sum().item() for w in weights), rel=1e-14
    )
    w = torch.tensor([[1.0, -2.0], [3.0, 0.0]])
    assert L.l1_penalty(w).item() == 6.0 and L.l2_penalty([w, torch.tensor([2.0])]).item() == 18.0
    assert L.l1_penalty([torch.tensor([2.0])], skip_1d=True).item() == 0.0


def test_penalty_gradients_are_sign_and_two_w(float64):
    w = torch.randn(3, 4, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    g1 = torch.autograd.grad(L.l1_penalty([w, b]), [w, b])
    g2 = torch.autograd.grad(L.l2_penalty([w, b]), [w, b])
    for t, a, c in zip([w, b], g1, g2, strict=True):
        torch.testing.assert_close(a, torch.sign(t.detach()), rtol=0, atol=0)
        torch.testing.assert_close(c, 2 * t.detach(), rtol=0, atol=0)
    (gb,) = torch.autograd.grad(L.l2_penalty([w, b], skip_1d=True), [b], allow_unused=True)
    assert gb is None  # the bias is not in the graph


def test_half_l2_penalty_equals_sgd_weight_decay():
    lam, lr = 0.1, 0.5
    a, b = _model(), _model()
    b.load_state_dict(a.state_dict())
    x = torch.randn(8, 4, dtype=torch.float64)
    opt_a = torch.optim.SGD(a.parameters(), lr=lr, weight_decay=lam)
    opt_b = torch.optim.SGD(b.parameters(), lr=lr)
    a(x).pow(2).mean().backward()
    (b(x).pow(2).mean() + lam / 2 * L.l2_penalty(b)).backward()
    opt_a.step()
    opt_b.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-14, atol=1e-15)


def test_penalty_of_half_parameters_is_float32():
    w = torch.full((1000,), 10.0, dtype=torch.float16)  # sum of squares 1e5 > float16 max 65504
    out = L.l2_penalty([w])
    assert out.dtype == torch.float32 and out.item() == 1e5


def test_bad_inputs_raise():
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="same shape"):
        L.mse(x, torch.zeros(3))
    with pytest.raises(ValueError, match=r"one of \['mean', 'sum', 'none'\]"):
        L.mse(x, x, reduction="avg")
    with pytest.raises(ValueError, match="reduction"):
        L.cross_entropy(x, torch.tensor([0, 1, 0]), reduction="batchmean")
    with pytest.raises(ValueError, match=r"class indices in \[0, 1\].*from 0 to 2"):
        L.cross_entropy(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="from -100 to 1"):
        L.cross_entropy(x, torch.tensor([0, 1, -100]))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        L.cross_entropy(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="same shape"):
        L.cross_entropy(x, torch.zeros(3, 3))
    with pytest.raises(TypeError, match="integer class indices"):
        L.cross_entropy(x, torch.tensor([True, False, True]))
    with pytest.raises(TypeError, match="floating-point"):
        L.binary_cross_entropy_with_logits(x, torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="same shape"):
        L.binary_cross_entropy_with_logits(x, torch.zeros(2, 3))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        L.mse([1.0], x)
    with pytest.raises(ValueError, match="at least one tensor"):
        L.l1_penalty([])
    with pytest.raises(TypeError, match=r"parameters\[1\]"):
        L.l2_penalty([x, 3.0])
    with pytest.raises(TypeError, match=r"nn\.Module or an iterable"):
        L.l2_penalty(3.0)
