"""Layer-normalized LSTM step (Ba, Kiros & Hinton 2016): layer norm on the gate pre-activations and the cell.

The FAQ (Q14.e) says batch norm does not suit recurrent networks, whose statistics vary with the time step
and sequence length, and that layer normalization does: it normalizes each sample at each step on its own.
Following the layer-normalized LSTM of the paper's supplementary material, with torch's gate order
i, f, g, o and ``LN(z; alpha) = alpha * (z - mean(z)) / sqrt(var(z) + eps)`` over the 4H (or H) features:

    [i; f; g; o] = LN(W_ih x; alpha_ih) + LN(W_hh h; alpha_hh) + b_ih + b_hh      (4H,)
    c' = sigma(f) * c + sigma(i) * tanh(g)
    h' = sigma(o) * tanh(LN(c'; alpha_c) + beta_c)

Normalizing the input and recurrent contributions separately keeps either from dominating the gates whatever
the scale of ``x`` or ``h``; normalizing the cell before the output squashing keeps ``tanh`` out of
saturation. The paper's separate biases of the two gate LNs and the gate bias ``b`` add up to one vector;
like torch's LSTM we keep two (``bias_ih``, ``bias_hh``) so the parameter names match :class:`LSTMCell`.
The carried cell state ``c'`` is the un-normalized one, as in the paper.

Reference: J. L. Ba, J. R. Kiros, G. E. Hinton, "Layer Normalization", arXiv:1607.06450, 2016,
section 3.1 (layer-normalized RNNs) and supplementary material ("layer normalized LSTM" equations).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .._checks import check_positive
from .layernorm import LayerNorm
from .recurrent import _RecurrentCell

__all__ = ["LayerNormLSTMCell"]


class LayerNormLSTMCell(_RecurrentCell):
    """LSTM step with layer normalization (equations in :mod:`deepbasics.nn.lnlstm`).

    Args:
        input_size, hidden_size, bias: as :class:`deepbasics.nn.LSTMCell`.
        eps: the layer norms' epsilon (1e-5).

    Parameters: ``weight_ih`` (4H, I), ``weight_hh`` (4H, H) ~ U(-1/sqrt(H), 1/sqrt(H)) as torch's LSTM;
    ``bias_ih``, ``bias_hh`` (4H,) start at 0 (the normalized pre-activations are already centered);
    submodules ``ln_ih``, ``ln_hh`` (gain only, 4H) and ``ln_cell`` (gain and bias, H) start as identity.

    ``forward(input (B, I) or (I,), hx=(h, c) or None) -> (h', c')``, shapes as :class:`LSTMCell`.
    Reference: Ba et al. 2016, supplementary material.
    """

    _num_gates = 4

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        eps: float = 1e-5,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        eps = check_positive(eps, "eps")
        super().__init__(input_size, hidden_size, bias, device, dtype)
        factory = {"device": device, "dtype": dtype}
        self.eps = eps
        self.ln_ih = LayerNorm(4 * hidden_size, eps=eps, bias=False, **factory)
        self.ln_hh = LayerNorm(4 * hidden_size, eps=eps, bias=False, **factory)
        self.ln_cell = LayerNorm(hidden_size, eps=eps, **factory)

    def reset_parameters(self) -> None:
        """Weights ~ U(-1/sqrt(H), 1/sqrt(H)), biases 0, layer norms identity (gain 1, bias 0)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)
        nn.init.uniform_(self.weight_hh, -bound, bound)
        for b in (self.bias_ih, self.bias_hh):
            if b is not None:
                nn.init.zeros_(b)
        for ln in self.children():  # empty while the base class constructor runs
            ln.reset_parameters()

    def _gates(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(LN(W_ih x) + b_ih, LN(W_hh h) + b_hh)``, each (B, 4H): biases after the normalization."""
        pre_x = self.ln_ih(F.linear(x, self.weight_ih))
        pre_h = self.ln_hh(F.linear(h, self.weight_hh))
        if self.bias_ih is not None:
            pre_x = pre_x + self.bias_ih
            pre_h = pre_h + self.bias_hh
        return pre_x, pre_h

    def forward(
        self, input: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: the new state ``(h', c')``."""
        x, batched = self._check_input(input)
        h, c = self._check_pair_state(hx, x, batched)
        pre_x, pre_h = self._gates(x, h)
        i, f, g, o = (pre_x + pre_h).chunk(4, dim=1)  # (B, H) each
        c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_next = torch.sigmoid(o) * torch.tanh(self.ln_cell(c_next))
        return (h_next, c_next) if batched else (h_next.squeeze(0), c_next.squeeze(0))

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.eps == 1e-5 else f", eps={self.eps}")
