"""deepbasics.nn.lnlstm.LayerNormLSTMCell against the equations of Ba et al. 2016 written with torch ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deepbasics.nn import LayerNormLSTMCell


def _reference_step(cell, x, h, c):
    """Ba et al. 2016, supplementary material, in torch's gate order i, f, g, o."""
    H = cell.hidden_size
    ln = F.layer_norm
    gates = (
        ln(x @ cell.weight_ih.T, (4 * H,), cell.ln_ih.weight, None, cell.eps)
        + ln(h @ cell.weight_hh.T, (4 * H,), cell.ln_hh.weight, None, cell.eps)
        + cell.bias_ih
        + cell.bias_hh
    )
    i, f, g, o = gates.split(H, dim=1)
    c_next = f.sigmoid() * c + i.sigmoid() * g.tanh()
    h_next = o.sigmoid() * ln(c_next, (H,), cell.ln_cell.weight, cell.ln_cell.bias, cell.eps).tanh()
    return h_next, c_next


def test_matches_reference_equations_and_gradients(float64):
    cell = LayerNormLSTMCell(3, 5)
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(torch.randn_like(p) * 0.3)  # move gains and biases off their identity start
    x, h, c = torch.randn(4, 3), torch.randn(4, 5), torch.randn(4, 5)
    out = cell(x, (h, c))
    ref = _reference_step(cell, x, h, c)
    for a, b in zip(out, ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    ga = torch.autograd.grad(sum(o.sum() for o in out), list(cell.parameters()))
    gb = torch.autograd.grad(sum(o.sum() for o in ref), list(cell.parameters()))
    torch.testing.assert_close(ga, gb, atol=1e-12, rtol=1e-12)
    assert torch.autograd.gradcheck(lambda x, h, c: cell(x, (h, c)), (x.requires_grad_(), h, c))


def test_gates_ignore_the_scale_of_the_weights(float64):
    """Layer norm of W x is invariant to scaling W: the point of normalizing the pre-activations."""
    cell = LayerNormLSTMCell(3, 4, eps=1e-12)
    x, state = torch.randn(2, 3), (torch.randn(2, 4), torch.randn(2, 4))
    before = cell(x, state)
    with torch.no_grad():
        cell.weight_ih.mul_(25.0)
        cell.weight_hh.mul_(0.04)
    for a, b in zip(before, cell(x, state), strict=True):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)


def test_names_unbatched_and_errors():
    cell = LayerNormLSTMCell(3, 4)
    assert {"weight_ih", "weight_hh", "bias_ih", "bias_hh", "ln_ih.weight", "ln_cell.bias"} <= set(cell.state_dict())
    assert "ln_ih.bias" not in cell.state_dict()
    h, c = cell(torch.randn(3))
    assert h.shape == c.shape == (4,)
    with pytest.raises(ValueError, match=r"hidden size 4.*got c of shape \(2, 5\)"):
        cell(torch.randn(2, 3), (torch.zeros(2, 4), torch.zeros(2, 5)))
