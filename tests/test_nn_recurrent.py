"""deepbasics.nn.recurrent cells against torch.nn.RNNCell/LSTMCell/GRUCell (float64, same state dict)."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from deepbasics.nn import GRUCell, LSTMCell, RNNCell

TOL = {"atol": 1e-10, "rtol": 1e-10}

PAIRS = [
    (RNNCell, torch.nn.RNNCell, {}),
    (RNNCell, torch.nn.RNNCell, {"nonlinearity": "relu"}),
    (LSTMCell, torch.nn.LSTMCell, {}),
    (GRUCell, torch.nn.GRUCell, {}),
]


def _flat(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize(("ours_cls", "torch_cls", "kwargs"), PAIRS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_cell_matches_torch_over_steps(float64, ours_cls, torch_cls, kwargs, bias, batched):
    theirs = torch_cls(3, 4, bias=bias, **kwargs)
    ours = ours_cls(3, 4, bias=bias, **kwargs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    ours.load_state_dict(theirs.state_dict())
    xs = torch.randn(3, 2, 3) if batched else torch.randn(3, 3)
    xa, xb = xs.clone().requires_grad_(), xs.clone().requires_grad_()
    sa = sb = None  # both start from zeros
    for t in range(3):
        sa, sb = ours(xa[t], sa), theirs(xb[t], sb)
        for a, b in zip(_flat(sa), _flat(sb), strict=True):
            torch.testing.assert_close(a, b, **TOL)
    loss_a = sum((s * torch.arange(s.numel()).view_as(s)).sum() for s in _flat(sa))
    loss_b = sum((s * torch.arange(s.numel()).view_as(s)).sum() for s in _flat(sb))
    loss_a.backward()
    loss_b.backward()
    torch.testing.assert_close(xa.grad, xb.grad, **TOL)
    for (na, pa), (nb, pb) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        assert na == nb
        torch.testing.assert_close(pa.grad, pb.grad, **TOL)


@pytest.mark.parametrize(("ours_cls", "torch_cls", "kwargs"), PAIRS)
def test_state_dict_loads_into_torch_and_init_matches_torch_range(ours_cls, torch_cls, kwargs):
    ours = ours_cls(5, 16, **kwargs)
    theirs = torch_cls(5, 16, **kwargs)
    theirs.load_state_dict(ours.state_dict())
    x, h = torch.randn(2, 5), torch.randn(2, 16)
    state = (h, torch.randn(2, 16)) if ours_cls is LSTMCell else h
    for a, b in zip(_flat(ours(x, state)), _flat(theirs(x, state)), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    bound = 1 / math.sqrt(16)
    for p in ours.parameters():
        assert p.abs().max() <= bound and p.std() > bound / 4  # U(-1/sqrt(H), 1/sqrt(H)) as torch


def test_lstm_gate_order_is_i_f_g_o(float64):
    """Open only the forget gate block (f = 1) and close input (i = 0): the cell state is carried unchanged."""
    cell = LSTMCell(2, 3)
    with torch.no_grad():
        cell.weight_ih.zero_()
        cell.weight_hh.zero_()
        cell.bias_hh.zero_()
        cell.bias_ih.copy_(torch.cat([torch.full((3,), -50.0), torch.full((3,), 50.0), torch.zeros(3), torch.zeros(3)]))
    c = torch.randn(4, 3)
    h, c_next = cell(torch.randn(4, 2), (torch.randn(4, 3), c))
    torch.testing.assert_close(c_next, c, atol=1e-12, rtol=0)
    torch.testing.assert_close(h, 0.5 * torch.tanh(c), atol=1e-12, rtol=0)  # o = sigma(0) = 1/2


def test_bad_inputs_raise_clearly():
    lstm, gru = LSTMCell(10, 32), GRUCell(10, 32)
    with pytest.raises(ValueError, match=r"hidden size 32.*got h of shape \(4, 16\)"):
        lstm(torch.randn(4, 10), (torch.randn(4, 16), torch.randn(4, 32)))
    with pytest.raises(ValueError, match=r"hidden size 32.*got hx of shape \(3, 32\)"):
        gru(torch.randn(4, 10), torch.randn(3, 32))  # batch mismatch
    with pytest.raises(ValueError, match=r"input_size=10.*got input of shape \(4, 7\)"):
        gru(torch.randn(4, 7))
    with pytest.raises(ValueError, match=r"input of shape \(2, 3, 10\)"):
        RNNCell(10, 32)(torch.randn(2, 3, 10))
    with pytest.raises(TypeError, match=r"pair \(h, c\)"):
        lstm(torch.randn(4, 10), torch.randn(4, 32))
    with pytest.raises(ValueError, match="nonlinearity"):
        RNNCell(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size"):
        GRUCell(3, 0)


@pytest.mark.parametrize(
    ("ours", "theirs"), [(RNNCell, torch.nn.RNNCell), (LSTMCell, torch.nn.LSTMCell), (GRUCell, torch.nn.GRUCell)]
)
def test_constructor_signature_matches_torch(ours, theirs):
    """Torch's constructor arguments, order and defaults (an older torch may lack newer keyword-only ones)."""

    def params(cls):
        return [(p.name, p.default, p.kind) for p in inspect.signature(cls.__init__).parameters.values()]

    assert params(ours)[: len(params(theirs))] == params(theirs)
    assert all(kind == inspect.Parameter.KEYWORD_ONLY for _, _, kind in params(ours)[len(params(theirs)) :])
