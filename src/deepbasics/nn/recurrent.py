"""Recurrent cells as single steps ``(x_t, state_{t-1}) -> state_t``: Elman RNN, LSTM and GRU.

A cell does one time step; looping over time is :func:`deepbasics.nn.unroll`, kept separate so that every
per-step state (and the gradient reaching it) can be inspected. Arguments, parameter names and shapes, gate
order and initialization are exactly those of ``torch.nn.RNNCell`` / ``LSTMCell`` / ``GRUCell``, so a state
dict loads in either direction and the outputs agree.

Shapes: ``B`` batch, ``I`` = ``input_size``, ``H`` = ``hidden_size``. ``x`` is (B, I) or unbatched (I,);
the state is (B, H) (or (H,)), for the LSTM a pair ``(h, c)``; ``state=None`` means zeros. Parameters:
``weight_ih`` (G H, I), ``weight_hh`` (G H, H), ``bias_ih`` and ``bias_hh`` (G H,) with G gate blocks
stacked in the order given below; all initialized U(-1/sqrt(H), 1/sqrt(H)) as torch does. With ``bias=False``
the biases are None and drop out of the equations. ``sigma`` is the logistic sigmoid, ``*`` elementwise.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .._checks import check_choice, check_int, check_tensor, fail

__all__ = ["GRUCell", "LSTMCell", "RNNCell"]

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class _RecurrentCell(nn.Module):
    """Parameters, initialization and input/state validation shared by the cells (torch's ``RNNCellBase``)."""

    _num_gates = 1  # G: gate blocks stacked along dim 0 of weight_ih / weight_hh

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.input_size = check_int(input_size, "input_size", low=1)
        self.hidden_size = check_int(hidden_size, "hidden_size", low=1)
        self.bias = bool(bias)
        gh = self._num_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gh, input_size, **factory))  # (G H, I)
        self.weight_hh = nn.Parameter(torch.empty(gh, hidden_size, **factory))  # (G H, H)
        if self.bias:
            self.bias_ih = nn.Parameter(torch.empty(gh, **factory))
            self.bias_hh = nn.Parameter(torch.empty(gh, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every parameter ~ U(-1/sqrt(H), 1/sqrt(H)), as torch's recurrent cells."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _gates(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W_ih x + b_ih, W_hh h + b_hh)``, each (B, G H); kept apart because the GRU needs them apart."""
        return F.linear(x, self.weight_ih, self.bias_ih), F.linear(h, self.weight_hh, self.bias_hh)

    def _check_input(self, x: object) -> tuple[torch.Tensor, bool]:
        """Validate ``x`` (B, I) or (I,); return it as (B, I) and whether it was batched."""
        name = type(self).__name__
        x = check_tensor(x, "input", floating=True)
        if x.dim() not in (1, 2) or x.shape[-1] != self.input_size:
            raise fail(
                ValueError,
                name,
                f"an input of shape (B, {self.input_size}) or ({self.input_size},) (input_size={self.input_size})",
                f"input of shape {tuple(x.shape)}",
                "Pass one time step at a time with the feature count the cell was built with; "
                "loop over time with deepbasics.nn.unroll.",
            )
        return (x, True) if x.dim() == 2 else (x.unsqueeze(0), False)

    def _check_state(self, s: object, x: torch.Tensor, batched: bool, what: str = "state") -> torch.Tensor:
        """Validate one state tensor against the (B, I) input; None becomes zeros. Returns it as (B, H)."""
        name, hidden = type(self).__name__, self.hidden_size
        batch = x.shape[0]
        if s is None:
            return x.new_zeros(batch, hidden)
        s = check_tensor(s, what, floating=True)
        want = (batch, hidden) if batched else (hidden,)
        if tuple(s.shape) != want:
            raise fail(
                ValueError,
                name,
                f"hidden size {hidden}, i.e. {what} of shape {want}",
                f"{what} of shape {tuple(s.shape)}",
                f"Pass the {what} returned by a cell with hidden_size={hidden} for the same batch, or None for zeros.",
            )
        return s if batched else s.unsqueeze(0)

    def _check_pair_state(self, hx: object, x: torch.Tensor, batched: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate an LSTM state ``(h, c)`` (or None = zeros) against the (B, I) input; return both as (B, H)."""
        if hx is None:
            h = c = None
        elif isinstance(hx, tuple | list) and len(hx) == 2:
            h, c = hx
        else:
            raise fail(
                TypeError,
                type(self).__name__,
                "hx as a pair (h, c) or None",
                type(hx).__name__,
                "Pass the (h, c) pair returned by the previous step.",
            )
        return self._check_state(h, x, batched, "h"), self._check_state(c, x, batched, "c")

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_RecurrentCell):
    """Elman RNN step, as ``torch.nn.RNNCell``:

        h' = phi(W_ih x + b_ih + W_hh h + b_hh),    phi = tanh (default) or relu

    ``forward(input (B, I) or (I,), hx (B, H) or (H,) or None) -> h' (B, H) or (H,)``.
    Reference: J. L. Elman, "Finding Structure in Time", Cognitive Science 14, 1990, section "Simple recurrent
    networks"; the FAQ's Q9 contrasts it with the LSTM (its gradient through time is a product of
    ``W_hh^T diag(phi')`` factors, which vanishes or explodes).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        check_choice(nonlinearity, "nonlinearity", ("tanh", "relu"))
        super().__init__(input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: torch.Tensor, hx: torch.Tensor | None = None) -> torch.Tensor:
        """One step: the new hidden state h'."""
        x, batched = self._check_input(input)
        h = self._check_state(hx, x, batched, "hx")
        pre_x, pre_h = self._gates(x, h)  # (B, H) each
        pre = pre_x + pre_h
        h_next = torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)
        return h_next if batched else h_next.squeeze(0)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity!r}")


class LSTMCell(_RecurrentCell):
    """Long short-term memory step with a forget gate, as ``torch.nn.LSTMCell`` (gate order i, f, g, o):

        i  = sigma(W_ii x + b_ii + W_hi h + b_hi)        input gate
        f  = sigma(W_if x + b_if + W_hf h + b_hf)        forget gate
        g  = tanh (W_ig x + b_ig + W_hg h + b_hg)        candidate cell
        o  = sigma(W_io x + b_io + W_ho h + b_ho)        output gate
        c' = f * c + i * g
        h' = o * tanh(c')

    ``W_ih = [W_ii; W_if; W_ig; W_io]`` (4H, I), likewise ``W_hh``, ``b_ih``, ``b_hh``.
    ``forward(input (B, I) or (I,), hx=(h, c) each (B, H) or (H,), or None) -> (h', c')``.

    The additive cell update is why gradients survive long lags (FAQ Q9): ``dc'/dc = diag(f)``, no squashing
    nonlinearity or weight matrix on that path, so with f near 1 the error is carried unchanged.

    References: S. Hochreiter and J. Schmidhuber, "Long Short-Term Memory", Neural Computation 9(8), 1997
    (sections 4: constant error carousel, input/output gates); F. A. Gers, J. Schmidhuber, F. Cummins,
    "Learning to Forget: Continual Prediction with LSTM", Neural Computation 12(10), 2000 (forget gate).
    """

    _num_gates = 4

    def forward(
        self, input: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: the new state ``(h', c')``."""
        x, batched = self._check_input(input)
        h, c = self._check_pair_state(hx, x, batched)
        pre_x, pre_h = self._gates(x, h)
        i, f, g, o = (pre_x + pre_h).chunk(4, dim=1)  # (B, H) each, torch's gate order
        c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_next = torch.sigmoid(o) * torch.tanh(c_next)
        return (h_next, c_next) if batched else (h_next.squeeze(0), c_next.squeeze(0))


class GRUCell(_RecurrentCell):
    """Gated recurrent unit step, as ``torch.nn.GRUCell`` (gate order r, z, n):

        r  = sigma(W_ir x + b_ir + W_hr h + b_hr)          reset gate
        z  = sigma(W_iz x + b_iz + W_hz h + b_hz)          update gate
        n  = tanh (W_in x + b_in + r * (W_hn h + b_hn))    candidate state
        h' = (1 - z) * n + z * h

    ``W_ih = [W_ir; W_iz; W_in]`` (3H, I), likewise ``W_hh``, ``b_ih``, ``b_hh``.
    ``forward(input (B, I) or (I,), hx (B, H) or (H,) or None) -> h'``.

    Note: Cho et al. write the candidate as ``tanh(W x + U (r * h))`` (reset applied before the recurrent
    matrix); torch and cuDNN apply it after (``r * (W_hn h + b_hn)``), and this cell follows torch so that
    weights are interchangeable.

    Reference: K. Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder for Statistical
    Machine Translation", EMNLP 2014, section 2.3 (eqs. 5-8).
    """

    _num_gates = 3

    def forward(self, input: torch.Tensor, hx: torch.Tensor | None = None) -> torch.Tensor:
        """One step: the new hidden state h'."""
        x, batched = self._check_input(input)
        h = self._check_state(hx, x, batched, "hx")
        pre_x, pre_h = self._gates(x, h)  # (B, 3H) each
        xr, xz, xn = pre_x.chunk(3, dim=1)  # (B, H) each
        hr, hz, hn = pre_h.chunk(3, dim=1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        h_next = (1.0 - z) * n + z * h
        return h_next if batched else h_next.squeeze(0)
