"""deepbasics.nn.unroll: equals torch.nn.LSTM/GRU/RNN with the same weights; dL/dh_t against manual BPTT."""

from __future__ import annotations

import pytest
import torch

from deepbasics.nn import GRUCell, LayerNormLSTMCell, LSTMCell, RNNCell, Unrolled, gradient_per_step, unroll

TOL = {"atol": 1e-10, "rtol": 1e-10}

LAYERS = [(LSTMCell, torch.nn.LSTM), (GRUCell, torch.nn.GRU), (RNNCell, torch.nn.RNN)]


def _layer_from_cell(cell, layer_cls, batch_first):
    layer = layer_cls(cell.input_size, cell.hidden_size, batch_first=batch_first)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(layer, f"{name}_l0").copy_(getattr(cell, name))
    return layer


@pytest.mark.parametrize(("cell_cls", "layer_cls"), LAYERS)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("with_state0", [False, True])
def test_unroll_equals_torch_recurrent_layer(float64, cell_cls, layer_cls, batch_first, with_state0):
    T, B, I, H = 6, 3, 4, 5
    cell = cell_cls(I, H)
    layer = _layer_from_cell(cell, layer_cls, batch_first)
    x = torch.randn((B, T, I) if batch_first else (T, B, I))
    is_lstm = cell_cls is LSTMCell
    h0, c0 = torch.randn(B, H), torch.randn(B, H)
    state0 = ((h0, c0) if is_lstm else h0) if with_state0 else None
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = unroll(cell, xa, state0, batch_first=batch_first)
    if with_state0:
        theirs_out, theirs_final = layer(xb, (h0[None], c0[None]) if is_lstm else h0[None])
    else:
        theirs_out, theirs_final = layer(xb)
    torch.testing.assert_close(ours.output, theirs_out, **TOL)
    assert ours.hidden.shape == (T, B, H) and len(ours) == T
    if is_lstm:
        torch.testing.assert_close(ours.final[0], theirs_final[0][0], **TOL)
        torch.testing.assert_close(ours.final[1], theirs_final[1][0], **TOL)
        assert ours.cells.shape == (T, B, H)
    else:
        torch.testing.assert_close(ours.final, theirs_final[0], **TOL)
        assert ours.cells is None and ours.cell_steps is None
    weights = torch.linspace(-1, 1, T * B * H).view(T, B, H)
    (ours.hidden * weights).sum().backward()
    (theirs_out * (weights.transpose(0, 1) if batch_first else weights)).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, **TOL)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        torch.testing.assert_close(getattr(cell, name).grad, getattr(layer, f"{name}_l0").grad, **TOL)


def test_gradient_per_step_equals_manual_bptt_for_a_tanh_rnn(float64):
    """dL/dh_T = v and dL/dh_{t-1} = W_hh^T ((1 - h_t^2) * dL/dh_t) + u (a direct term at every step)."""
    T, B, I, H = 7, 2, 3, 4
    cell = RNNCell(I, H)
    x = torch.randn(T, B, I)
    states = unroll(cell, x)
    v, u = torch.randn(B, H), torch.randn(B, H) * 0.1
    loss = (states.final * v).sum() + (states.hidden[:-1] * u).sum()
    measured = gradient_per_step(states, loss)
    h = states.hidden.detach()
    grads = [None] * T
    grads[-1] = v + 0.0
    for t in range(T - 1, 0, -1):
        grads[t - 1] = ((1 - h[t] ** 2) * grads[t]) @ cell.weight_hh.detach() + u
    expected = torch.stack([g.norm() for g in grads])
    torch.testing.assert_close(measured, expected, **TOL)
    loss.backward()  # the graph was retained; retain_grad() filled .grad on every step
    torch.testing.assert_close(torch.stack([s.grad.norm() for s in states.steps]), expected, **TOL)


def test_lstm_cell_gradients_and_torch_cells_are_accepted(float64):
    cell = torch.nn.LSTMCell(3, 4)  # any single-step cell with this signature works
    states = unroll(cell, torch.randn(5, 2, 3))
    loss = states.final[0].sum()
    g_h = gradient_per_step(states, loss)
    g_c = gradient_per_step(states, loss, of="cell")
    assert g_h.shape == g_c.shape == (5,)
    assert g_h[-1] > 0 and g_c[-1] > 0  # h_T and c_T both reach the loss
    manual_c = torch.autograd.grad(loss, states.cell_steps[2], retain_graph=True)[0].norm()
    torch.testing.assert_close(g_c[2], manual_c, **TOL)


def test_unbatched_sequence_and_lnlstm(float64):
    states = unroll(LayerNormLSTMCell(3, 4), torch.randn(6, 3))
    assert isinstance(states, Unrolled)
    assert states.hidden.shape == (6, 4) and states.final[0].shape == (4,)
    assert gradient_per_step(states, states.hidden.sum()).shape == (6,)


def test_steps_the_loss_ignores_get_zero():
    cell = GRUCell(2, 3)
    states = unroll(cell, torch.randn(4, 1, 2))
    g = gradient_per_step(states, states.steps[1].sum())  # depends on h_1 and h_2 only (h_1 -> h_2)
    assert g[2] == 0 and g[3] == 0 and g[0] > 0 and g[1] > 0


def test_bad_inputs_raise_clearly():
    cell = GRUCell(2, 3)
    with pytest.raises(ValueError, match=r"\(T, B, I\)"):
        unroll(cell, torch.randn(2, 3, 4, 2))
    with pytest.raises(TypeError, match="callable"):
        unroll("gru", torch.randn(4, 2))
    with pytest.raises(TypeError, match="a tensor h or a pair"):
        unroll(lambda x, s: {"h": x}, torch.randn(4, 1, 2))
    states = unroll(cell, torch.randn(4, 1, 2))
    with pytest.raises(ValueError, match="a scalar that requires grad"):
        gradient_per_step(states, states.hidden.sum(-1))
    with pytest.raises(ValueError, match="cell state"):
        gradient_per_step(states, states.hidden.sum(), of="cell")
    with torch.no_grad():
        frozen = unroll(cell, torch.randn(4, 1, 2))
    with pytest.raises(ValueError, match="scalar that requires grad"):
        gradient_per_step(frozen, frozen.hidden.sum())
