r"""RNN (+, part 1): how far back a recurrent net learns: truncated BPTT and gated cells.

Letters: ``T`` steps, ``B`` batch, ``H`` hidden units, ``S`` symbols. Cells are :mod:`deepbasics.nn`'s single steps,
looped by :func:`deepbasics.nn.unroll`; the memory task is the latching task of
:func:`._q15_cnn_rnn.latch_task` (remember the first of ``T`` random symbols while the others arrive), whose
answer read at step ``t`` has lag ``t``.

- **RNN.a** Truncated BPTT with window ``k`` (Williams & Peng 1990) back-propagates the loss ``k`` steps only:
  ``dL/dx_t = 0`` for ``t < T - k``, so a dependency of lag ``>= k`` gets no gradient, while the activations kept
  for backward (and the backward time) shrink from ``O(T)`` to ``O(k)``.
- **RNN.b** The GRU (Cho et al. 2014) has an update gate ``z`` with ``h' = (1 - z) n + z h``: for ``z -> 1`` the
  state is copied, as the LSTM's cell is through its forget gate (Hochreiter & Schmidhuber 1997); a plain tanh
  RNN multiplies the gradient by ``W_hh^T diag(1 - h^2)`` at every step (Bengio, Simard & Frasconi 1994).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from deepbasics.lab import Metric, Rule, experiment, save_figure

from ._q15_cnn_rnn import latch_classifier, latch_task, saved_tensor_bytes, truncated_logits

#: A lag is "solved" when the test accuracy removes at least 90% of the chance-level error:
#: ``acc >= 1 - 0.1 (1 - 1/S)`` (0.925 for S = 4 symbols, chance 0.25).
SOLVED_ERROR_FRACTION = 0.1


def _solved_accuracy(num_symbols: int) -> float:
    return 1.0 - SOLVED_ERROR_FRACTION * (1.0 - 1.0 / num_symbols)


def _longest_contiguous(solved: list[bool], lags: list[int]) -> int:
    """The largest lag L such that every tested lag <= L is solved (0 if the first is not)."""
    best = 0
    for lag, ok in zip(lags, solved, strict=True):
        if not ok:
            break
        best = lag
    return best


# ------------------------------------------------------------------------------------ RNN.a TBPTT
def _plot_tbptt(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11.5, 4.2))
    lags, labels = params["lags"], [str(w) if w else "full" for w in params["windows"]]
    acc = np.array([[[out["accuracy"][lab][str(lag)] for lag in lags] for lab in labels] for out in outputs])
    for i, lab in enumerate(labels):
        mean = acc[:, i].mean(0)
        ax1.errorbar(
            lags,
            mean,
            yerr=[mean - acc[:, i].min(0), acc[:, i].max(0) - mean],
            marker="o",
            capsize=3,
            label=f"window {lab}",
        )
    ax1.axhline(outputs[0]["solved_accuracy"], color="k", ls="--", lw=0.8, label="solved")
    ax1.axhline(1 / params["num_symbols"], color="grey", ls=":", lw=0.8, label="chance")
    ax1.set(
        xlabel="lag to learn (steps)",
        ylabel="test accuracy at the last step",
        title="RNN.a: truncated BPTT cannot learn lags >= window",
    )
    ax1.legend(fontsize=8)
    w = params["cost_windows"]
    mem = np.array([out["saved_mb"] for out in outputs])
    tms = np.array([out["ms_per_step"] for out in outputs])
    ax2.plot(w, mem.mean(0), "o-", color="C0", label="memory saved for backward (MB)")
    ax2.set(xlabel=f"window k (steps back-propagated, of T = {params['cost_length']})", ylabel="MB saved for backward")
    ax3 = ax2.twinx()
    ax3.plot(w, tms.mean(0), "s--", color="C3", label="time per update (ms)")
    ax3.set_ylabel("ms per training update (fastest of repeats)")
    ax2.set_title("RNN.a: cost of one update vs window")
    ax2.legend(loc="upper left", fontsize=8)
    ax3.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return [save_figure(fig, outdir, "tbptt_window")]


def _update_cost(params: dict, seed: int) -> tuple[list[float], list[float]]:
    """MB autograd saves and the fastest of ``cost_repeats`` timings (ms) of one update, per window, on one batch."""
    from deepbasics import losses, optim

    gen = torch.Generator().manual_seed(seed)
    x, y = latch_task(params["batch_size"], params["cost_length"], params["num_symbols"], gen)
    model = latch_classifier(params["cell"], params["num_symbols"], params["hidden"], seed)
    opt = optim.Adam(model.parameters(), lr=params["lr"])
    megabytes, millis = [], []
    for window in params["cost_windows"]:
        with saved_tensor_bytes() as saved:
            loss = losses.cross_entropy(truncated_logits(model, x, window), y)
        loss.backward()
        megabytes.append(saved[0] / 2**20)
        times = []
        for _ in range(params["cost_repeats"]):
            start = time.perf_counter()
            loss = losses.cross_entropy(truncated_logits(model, x, window), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            times.append(1e3 * (time.perf_counter() - start))
        millis.append(min(times))  # the minimum is the least disturbed by other processes (as timeit reports)
    return megabytes, millis


@experiment(
    ids=("RNN.a",),
    method="A GRU (deepbasics.nn, hidden 16) must output, after lag steps, the first symbol of a latching sequence "
    "of lag + 1 random symbols; it is trained by Adam on fresh batches with the loss back-propagated through the "
    "last k steps only (the earlier steps run without autograd), for several windows k and lags, and a lag counts "
    "as learned at test accuracy >= 0.925 (90% of chance error removed). On one long batch we also measure the bytes "
    "autograd saves (saved_tensors_hooks) and the fastest time of an update per window. The judged number counts "
    "four checks: no lag >= k learned with window k; full BPTT learns a longer lag than the smallest window; the "
    "smallest window saves under half the memory and takes less time per update than full BPTT.",
    quick={
        "cell": "gru",
        "hidden": 16,
        "num_symbols": 4,
        "lr": 0.01,
        "batch_size": 64,
        "steps": 150,
        "windows": [3, None],
        "lags": [2, 5],
        "test_size": 512,
        "cost_length": 16,
        "cost_windows": [2, 4, 8, 16],
        "cost_repeats": 5,
    },
    full={
        "cell": "gru",
        "hidden": 16,
        "num_symbols": 4,
        "lr": 0.01,
        "batch_size": 64,
        "steps": 300,
        "windows": [3, 6, None],
        "lags": [2, 5, 10],
        "test_size": 1024,
        "cost_length": 32,
        "cost_windows": [2, 4, 8, 16, 32],
        "cost_repeats": 9,
    },
    # Both sides of the trade must show: the lag limit (2 checks) and the savings (memory < 1/2, less time).
    rules={"RNN.a": Rule("checks_passed", ">=", 4, since="0.1.0")},
    metrics={
        "checks_passed": Metric("checks passed, of four"),
        "memory_ratio": Metric("saved memory, smallest window over full BPTT", unit="x"),
        "time_ratio": Metric("time per update, smallest window over full BPTT", unit="x"),
        "violations": Metric("lags at or beyond the window that were learned"),
    },
    takeaways={
        "RNN.a": "truncating back-propagation to the smallest window keeps {memory_ratio} of full BPTT's saved memory "
        "and {time_ratio} of its time per update; lags at or beyond the window learned: {violations}",
    },
    seeds=3,
    timeout=900,
    plot=_plot_tbptt,
)
def tbptt(params, seed):
    from deepbasics import losses, optim

    gen = torch.Generator().manual_seed(seed)
    s = params["num_symbols"]
    solved_acc = _solved_accuracy(s)
    out = {"accuracy": {}, "longest_lag": {}, "solved_accuracy": solved_acc}
    violations = 0
    for window in params["windows"]:
        label = str(window) if window else "full"
        out["accuracy"][label] = {}
        for lag in params["lags"]:
            model = latch_classifier(params["cell"], s, params["hidden"], seed)
            opt = optim.Adam(model.parameters(), lr=params["lr"])
            k = window or lag + 1
            for _ in range(params["steps"]):
                x, y = latch_task(params["batch_size"], lag + 1, s, gen)  # (B, lag + 1, S + 1), answer at the end
                loss = losses.cross_entropy(truncated_logits(model, x, k), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            xt, yt = latch_task(params["test_size"], lag + 1, s, gen)
            with torch.no_grad():
                acc = float((model(xt).argmax(1) == yt).double().mean())
            out["accuracy"][label][str(lag)] = acc
            violations += bool(window) and lag >= window and acc >= solved_acc
        out["longest_lag"][label] = max(
            (lag for lag in params["lags"] if out["accuracy"][label][str(lag)] >= solved_acc), default=0
        )
    smallest = str(min(w for w in params["windows"] if w))
    out["saved_mb"], out["ms_per_step"] = _update_cost(params, seed)
    out["memory_ratio"] = out["saved_mb"][0] / out["saved_mb"][-1]
    out["time_ratio"] = out["ms_per_step"][0] / out["ms_per_step"][-1]
    out["violations"] = violations
    checks = {
        "nothing_beyond_window": violations == 0,
        "full_learns_longer": out["longest_lag"]["full"] > out["longest_lag"][smallest],
        "less_memory": out["memory_ratio"] < 0.5,
        "less_time": out["time_ratio"] < 1.0,
    }
    out["checks"] = checks
    out["checks_passed"] = float(sum(checks.values()))
    return out


# ---------------------------------------------------------------------------- RNN.b GRU, LSTM, RNN
def _plot_cells(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.8, 4.3))
    lags = list(range(1, params["length"]))
    for i, cell in enumerate(params["cells"]):
        acc = np.array([out["accuracy"][cell] for out in outputs])  # (S, lags)
        style = ("o-", "s--", "^:")[i % 3]  # distinct styles: gated cells often overlap at accuracy 1
        ax.plot(lags, acc.mean(0), style, color=f"C{i}", label=cell, markersize=7 - 2 * (i % 3))
        ax.fill_between(lags, acc.min(0), acc.max(0), color=f"C{i}", alpha=0.2)
    ax.axhline(outputs[0]["solved_accuracy"], color="k", ls="--", lw=0.8, label="solved")
    ax.axhline(1 / params["num_symbols"], color="grey", ls=":", lw=0.8, label="chance")
    ax.set(
        xlabel="lag (steps since the symbol to remember)",
        ylabel="test accuracy (band: seed range)",
        title="RNN.b: latching with distractors, by cell",
    )
    ax.legend(fontsize=8)
    return [save_figure(fig, outdir, "lag_by_cell")]


@experiment(
    ids=("RNN.b",),
    method="Plain tanh RNN, GRU and LSTM cells (deepbasics.nn.rnn_classifier, same hidden size) read latching "
    "sequences and must report the first symbol at every later step (a lag of t at step t), trained with the "
    "cross-entropy averaged over all lags by Adam on fresh batches. On fresh test sequences a lag is solved at "
    "accuracy >= 0.925 (90% of the chance error removed); each cell's score is the largest L with every lag <= L "
    "solved. The judged number is min(GRU's, LSTM's) / max(RNN's, 1).",
    quick={
        "cells": ["rnn", "gru", "lstm"],
        "hidden": 16,
        "num_symbols": 4,
        "length": 11,
        "lr": 0.01,
        "batch_size": 32,
        "steps": 150,
        "test_size": 512,
    },
    full={
        "cells": ["rnn", "gru", "lstm"],
        "hidden": 32,
        "num_symbols": 4,
        "length": 25,
        "lr": 0.01,
        "batch_size": 64,
        "steps": 500,
        "test_size": 1024,
    },
    # "Long lags that a plain RNN cannot": both gated cells hold at least twice the RNN's longest solved lag.
    rules={"RNN.b": Rule("gated_over_rnn", ">", 2.0, since="0.1.0")},
    metrics={
        "gated_over_rnn": Metric("longest solved lag, gated cells over the tanh RNN", unit="x"),
        "longest_lag_tested": Metric("longest lag tested", unit="steps"),
    },
    takeaways={
        "RNN.b": "GRU and LSTM solve lags at least {gated_over_rnn} as long as the tanh RNN's (lags tested up to "
        "{longest_lag_tested})",
    },
    seeds=3,
    timeout=900,
    plot=_plot_cells,
)
def gated_cells(params, seed):
    from deepbasics import losses, optim

    gen = torch.Generator().manual_seed(seed)
    s, length = params["num_symbols"], params["length"]
    lags = list(range(1, length))
    solved_acc = _solved_accuracy(s)
    out = {"accuracy": {}, "longest_lag": {}, "solved_accuracy": solved_acc, "final_loss": {}}
    for cell in params["cells"]:
        model = latch_classifier(cell, s, params["hidden"], seed)
        opt = optim.Adam(model.parameters(), lr=params["lr"])
        for _ in range(params["steps"]):
            x, y = latch_task(params["batch_size"], length, s, gen)
            _, states = model.forward_unrolled(x)
            logits = model.head(states.hidden[1:])  # (T - 1, B, S): the answer at lags 1..T-1
            loss = losses.cross_entropy(logits.reshape(-1, s), y.repeat(length - 1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        xt, yt = latch_task(params["test_size"], length, s, gen)
        with torch.no_grad():
            _, states = model.forward_unrolled(xt)
            acc = (model.head(states.hidden[1:]).argmax(-1) == yt).double().mean(dim=1)  # (T - 1,)
        out["accuracy"][cell] = acc.tolist()
        out["final_loss"][cell] = float(loss.detach())
        out["longest_lag"][cell] = _longest_contiguous([a >= solved_acc for a in acc.tolist()], lags)
    gated = min(out["longest_lag"][c] for c in ("gru", "lstm"))
    out["gated_over_rnn"] = gated / max(out["longest_lag"]["rnn"], 1)
    out["longest_lag_tested"] = lags[-1]
    return out
