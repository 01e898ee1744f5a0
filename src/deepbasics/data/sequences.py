"""Long-range memory tasks for recurrent networks: the adding problem and the copy task.

Both were introduced to show that a plain RNN cannot bridge long time lags while an LSTM can
(Hochreiter & Schmidhuber, "Long Short-Term Memory", Neural Computation 9(8), 1997, section 5, experiments
4 "adding problem" and 2 "noise-free sequences"); we use the modern variants of Le, Jaitly & Hinton
("A simple way to initialize recurrent networks of rectified linear units", 2015, section 4.1) and Arjovsky,
Shah & Bengio ("Unitary evolution recurrent neural networks", ICML 2016, sections 4.1-4.2), which make the lag a
single knob. Each function states the score of the best memoryless strategy: a model that does not beat it
has learned nothing across the lag (FAQ claim Q9.a).

Sequences are batch-first: ``(N, T, C)`` for real-valued inputs, ``(N, T)`` token ids for the copy task.
"""

from __future__ import annotations

import math

import torch

from .._checks import FLOAT_DTYPES, check_generator, check_int, fail

__all__ = ["ADDING_BASELINE_MSE", "adding_problem", "copy_task", "copy_task_baseline"]

# Predicting the mean E[a + b] = 1 for two independent U(0, 1) values gives MSE Var(a + b) = 2 * 1/12.
ADDING_BASELINE_MSE = 1.0 / 6.0


def adding_problem(
    num_samples: int,
    length: int,
    generator: torch.Generator | None = None,
    *,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The adding problem: output the sum of the two marked values of a length-``length`` sequence.

    Each input step has two channels, ``x[:, t, 0] = a_t ~ U(0, 1)`` and a marker ``x[:, t, 1] in {0, 1}``
    that is 1 at exactly two steps, ``i`` uniform in the first half ``[0, ceil(T/2))`` and ``j`` uniform in the
    second half ``[ceil(T/2), T)``, so the two markers lie about ``T/2`` steps apart::

        y = a_i + a_j

    Returns ``inputs (N, T, 2)`` and ``targets (N, 1)`` in ``dtype``, on the generator's device. Always
    predicting 1 scores MSE :data:`ADDING_BASELINE_MSE` = 1/6; a model must go well below it.
    Draws values, then ``i``, then ``j`` from ``generator`` (the global RNG when ``None``).
    Reference: Hochreiter & Schmidhuber (1997), section 5.4; Le et al. (2015), section 4.1.
    """
    num_samples = check_int(num_samples, "num_samples", low=1)
    length = check_int(length, "length", low=2)
    generator = check_generator(generator)
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if dtype not in FLOAT_DTYPES:
        raise fail(TypeError, "dtype", "a floating dtype", dtype, "Pass torch.float32 or torch.float64.")
    device = None if generator is None else generator.device
    half = math.ceil(length / 2)
    values = torch.rand(num_samples, length, generator=generator, dtype=dtype, device=device)  # (N, T)
    first = torch.randint(0, half, (num_samples,), generator=generator, device=device)  # (N,)
    second = torch.randint(half, length, (num_samples,), generator=generator, device=device)  # (N,)
    markers = torch.zeros_like(values)
    rows = torch.arange(num_samples, device=values.device)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    inputs = torch.stack([values, markers], dim=-1)  # (N, T, 2)
    targets = (values[rows, first] + values[rows, second]).unsqueeze(-1)  # (N, 1)
    return inputs, targets


def copy_task(
    num_samples: int,
    lag: int,
    num_symbols: int = 8,
    generator: torch.Generator | None = None,
    *,
    seq_length: int = 10,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The copy task: read ``seq_length`` symbols, wait ``lag`` blank steps, then reproduce the symbols.

    Token ids: 0 is the blank, ``1..num_symbols`` are the symbols, ``num_symbols + 1`` is the delimiter (so
    the vocabulary has ``num_symbols + 2`` entries; one-hot with ``F.one_hot(inputs, num_symbols + 2)``).
    With ``K = seq_length`` and total length ``L = 2K + lag + 1``::

        inputs  = s_1 .. s_K | 0 x lag | delimiter | 0 x K
        targets = 0 x (K + lag + 1)                | s_1 .. s_K

    so each symbol must be remembered for ``K + lag + 1`` steps. Arjovsky et al.'s ``T`` is ``lag + 1``.
    Returns int64 ``inputs (N, L)`` and ``targets (N, L)`` on the generator's device; train with
    cross-entropy over all ``L`` positions and compare with :func:`copy_task_baseline`.
    Reference: Hochreiter & Schmidhuber (1997), section 5.2; Arjovsky, Shah & Bengio (2016), section 4.1.
    """
    num_samples = check_int(num_samples, "num_samples", low=1)
    lag = check_int(lag, "lag", low=0)
    num_symbols = check_int(num_symbols, "num_symbols", low=1)
    seq_length = check_int(seq_length, "seq_length", low=1)
    generator = check_generator(generator)
    device = None if generator is None else generator.device
    k = seq_length
    total = 2 * k + lag + 1
    symbols = torch.randint(1, num_symbols + 1, (num_samples, k), generator=generator, device=device)  # (N, K)
    inputs = torch.zeros(num_samples, total, dtype=torch.long, device=symbols.device)  # (N, L)
    targets = torch.zeros_like(inputs)
    inputs[:, :k] = symbols
    inputs[:, k + lag] = num_symbols + 1
    targets[:, k + lag + 1 :] = symbols
    return inputs, targets


def copy_task_baseline(lag: int, num_symbols: int = 8, seq_length: int = 10) -> float:
    """Per-step cross-entropy (nats) of the best memoryless strategy on :func:`copy_task`.

    Predict the blank with certainty for the first ``K + lag + 1`` steps and a uniform guess over the symbols
    for the last ``K``: ``K * log(num_symbols) / (2K + lag + 1)`` (Arjovsky et al. 2016, section 4.1).
    """
    lag = check_int(lag, "lag", low=0)
    num_symbols = check_int(num_symbols, "num_symbols", low=1)
    seq_length = check_int(seq_length, "seq_length", low=1)
    return seq_length * math.log(num_symbols) / (2 * seq_length + lag + 1)
