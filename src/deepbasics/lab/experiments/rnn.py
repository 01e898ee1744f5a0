r"""RNN (+): truncated BPTT, gated cells, gradient clipping and layer normalization in recurrent networks.

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
- **RNN.c** Clipping the global gradient norm, ``g <- g min(1, c / ||g||)``, bounds every step by ``lr c`` (Pascanu,
  Mikolov & Bengio, "On the difficulty of training recurrent neural networks", ICML 2013, alg. 1).
- **RNN.d** Layer normalization of the gate pre-activations and the cell (:class:`deepbasics.nn.LayerNormLSTMCell`;
  Ba, Kiros & Hinton 2016, sec. 3.1 and fig. 2: faster convergence of LSTMs).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from deepbasics.lab import Rule, experiment, save_figure

from ._q15_cnn_rnn import DIVERGENCE_FACTOR, latch_task, saved_tensor_bytes, truncated_logits

#: A lag is "solved" when the test accuracy removes at least 90% of the chance-level error:
#: ``acc >= 1 - 0.1 (1 - 1/S)`` (0.925 for S = 4 symbols, chance 0.25).
SOLVED_ERROR_FRACTION = 0.1


def _solved_accuracy(num_symbols: int) -> float:
    return 1.0 - SOLVED_ERROR_FRACTION * (1.0 - 1.0 / num_symbols)


def _classifier(cell: str, num_symbols: int, hidden: int, seed: int):
    from deepbasics import nn

    torch.manual_seed(seed)
    return nn.rnn_classifier(cell, input_size=num_symbols + 1, hidden_size=hidden, num_classes=num_symbols)


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
    model = _classifier(params["cell"], params["num_symbols"], params["hidden"], seed)
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
    rules={"RNN.a": Rule("checks_passed", ">=", 4)},
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
            model = _classifier(params["cell"], s, params["hidden"], seed)
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
    rules={"RNN.b": Rule("gated_over_rnn", ">", 2.0)},
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
        model = _classifier(cell, s, params["hidden"], seed)
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


# ---------------------------------------------------------------------------------- RNN.c clipping
def _plot_clipping(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11.5, 4))
    lrs = params["lrs"]
    for j, arm in enumerate(("no clipping", "clipped")):
        rates = np.array([[out["divergence_rate"][arm][str(lr)] for lr in lrs] for out in outputs])
        ax1.errorbar(
            np.array(lrs) * (1 + 0.06 * (2 * j - 1)),
            rates.mean(0),
            yerr=[rates.mean(0) - rates.min(0), rates.max(0) - rates.mean(0)],
            marker="o",
            capsize=3,
            label=arm,
        )
    ax1.set_xscale("log")
    ax1.set(
        xlabel="SGD learning rate",
        ylabel="fraction of runs that diverged",
        ylim=(-0.05, 1.05),
        title=f"RNN.c: divergence (loss non-finite or > {DIVERGENCE_FACTOR:g}x initial)",
    )
    ax1.legend(fontsize=8)
    out = outputs[0]
    for j, arm in enumerate(("no clipping", "clipped")):
        for r, curve in enumerate(out["curves"][arm]):
            ax2.semilogy(range(len(curve)), curve, color=f"C{j}", alpha=0.6, label=arm if r == 0 else None)
    ax2.set(xlabel="update", ylabel="training MSE (fresh batch)", title=f"RNN.c: seed 0 at lr {out['curve_lr']:g}")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return [save_figure(fig, outdir, "clipping_divergence")]


@experiment(
    ids=("RNN.c",),
    method="A plain tanh RNN (deepbasics.nn, hidden 16) learns the adding problem (deepbasics.data.adding_problem) "
    "by plain SGD on fresh batches at several learning rates, from several initializations per seed, with and "
    "without clipping the global gradient norm to 1 (deepbasics.optim.clip_grad_norm). A run diverges if its loss "
    "becomes non-finite or exceeds 10 times its initial loss. The judged number is the largest reduction of the "
    "divergence rate by clipping over the learning rates.",
    quick={
        "hidden": 16,
        "length": 10,
        "lrs": [0.3, 1.0, 3.0],
        "clip": 1.0,
        "repeats": 4,
        "steps": 50,
        "batch_size": 32,
    },
    full={
        "hidden": 16,
        "length": 20,
        "lrs": [0.1, 0.3, 1.0, 3.0, 10.0],
        "clip": 1.0,
        "repeats": 6,
        "steps": 100,
        "batch_size": 32,
    },
    # "Stable where it would otherwise diverge": at some learning rate clipping saves at least half of the runs.
    rules={"RNN.c": Rule("divergence_prevented", ">=", 0.5)},
    seeds=3,
    timeout=900,
    plot=_plot_clipping,
)
def clipping(params, seed):
    from deepbasics import data, losses, nn, optim

    out = {"divergence_rate": {"no clipping": {}, "clipped": {}}, "final_loss_clipped": {}}
    curves = {}
    for lr in params["lrs"]:
        for arm, clip in (("no clipping", None), ("clipped", params["clip"])):
            diverged, finals, arm_curves = 0, [], []
            for r in range(params["repeats"]):
                run_seed = 1000 * seed + r
                gen = torch.Generator().manual_seed(run_seed)
                torch.manual_seed(run_seed)
                model = nn.rnn_classifier("rnn", input_size=2, hidden_size=params["hidden"], output_size=1)
                opt = optim.SGD(model.parameters(), lr=lr)
                curve = []
                for _ in range(params["steps"]):
                    x, y = data.adding_problem(params["batch_size"], params["length"], gen)
                    loss = losses.mse(model(x), y)
                    curve.append(loss.item())
                    if not math.isfinite(curve[-1]) or curve[-1] > DIVERGENCE_FACTOR * curve[0]:
                        diverged += 1
                        break
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if clip is not None:
                        optim.clip_grad_norm(model.parameters(), clip)
                    opt.step()
                else:
                    finals.append(float(np.mean(curve[-10:])))
                arm_curves.append([c if math.isfinite(c) else 1e30 for c in curve])
            out["divergence_rate"][arm][str(lr)] = diverged / params["repeats"]
            if clip is not None:
                out["final_loss_clipped"][str(lr)] = float(np.mean(finals)) if finals else None
            curves[(lr, arm)] = arm_curves
    reductions = {
        str(lr): out["divergence_rate"]["no clipping"][str(lr)] - out["divergence_rate"]["clipped"][str(lr)]
        for lr in params["lrs"]
    }
    best_lr = max(params["lrs"], key=lambda lr: reductions[str(lr)])
    out["reduction"] = reductions
    out["divergence_prevented"] = reductions[str(best_lr)]
    out["curve_lr"] = best_lr
    out["curves"] = {arm: curves[(best_lr, arm)] for arm in ("no clipping", "clipped")}
    out["baseline_mse"] = data.ADDING_BASELINE_MSE
    return out


# ---------------------------------------------------------------------------- RNN.d layer norm
#: RNN.d: "speeds up" = at least 20% fewer updates to the target (a 1.25x speed-up), at every learning rate.
LN_SPEEDUP_MIN = 1.25


def _plot_layernorm(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(params["lrs"]), figsize=(5.2 * len(params["lrs"]), 3.9), squeeze=False)
    target = outputs[0]["target_loss"]
    for ax, lr in zip(axes[0], params["lrs"], strict=True):
        for i, cell in enumerate(("lstm", "lnlstm")):
            for s, out in enumerate(outputs):
                curve = out["curves"][cell][str(lr)]
                ax.semilogy(
                    range(len(curve)),
                    curve,
                    color=f"C{i}",
                    alpha=0.7,
                    label=("LSTM" if cell == "lstm" else "layer-norm LSTM") if s == 0 else None,
                )
        ax.axhline(target, color="k", ls="--", lw=0.8, label="target (0.1 x chance loss)")
        ax.set(
            xlabel="Adam update", ylabel="cross-entropy (fresh batch)", title=f"RNN.d: lr {lr:g} (one line per seed)"
        )
        ax.legend(fontsize=8)
    fig.tight_layout()
    return [save_figure(fig, outdir, "layernorm_lstm")]


@experiment(
    ids=("RNN.d",),
    method="An LSTM and a layer-normalized LSTM (deepbasics.nn.LayerNormLSTMCell), same hidden size and seed, learn "
    "the latching task with the answer read at every step, by Adam on fresh batches at each learning rate of a "
    "grid; a run stops once the batch loss falls below 10% of the chance-level loss ln(S). The judged number is "
    "the smallest over the learning rates of steps(LSTM) / steps(layer-norm LSTM) (a run that never reaches the "
    "target counts as budget + 1); the spread over seeds is shown in the plot.",
    quick={"hidden": 16, "num_symbols": 4, "length": 9, "lrs": [0.01, 0.03], "batch_size": 32, "budget": 150},
    full={
        "hidden": 16,
        "num_symbols": 4,
        "length": 13,
        "lrs": [0.003, 0.01, 0.03, 0.1],
        "batch_size": 32,
        "budget": 400,
    },
    # "Speeds up and stabilizes": faster by LN_SPEEDUP_MIN at every learning rate, the high ones included.
    rules={"RNN.d": Rule("min_speedup", ">", LN_SPEEDUP_MIN)},
    seeds=3,
    timeout=900,
    plot=_plot_layernorm,
)
def layer_norm(params, seed):
    from deepbasics import losses, optim

    s, length = params["num_symbols"], params["length"]
    target = 0.1 * math.log(s)
    out = {"steps": {"lstm": {}, "lnlstm": {}}, "curves": {"lstm": {}, "lnlstm": {}}, "target_loss": target}
    speedups = []
    for lr in params["lrs"]:
        for cell in ("lstm", "lnlstm"):
            gen = torch.Generator().manual_seed(seed)  # both cells see the same batches
            model = _classifier(cell, s, params["hidden"], seed)
            opt = optim.Adam(model.parameters(), lr=lr)
            curve, reached = [], None
            for t in range(params["budget"]):
                x, y = latch_task(params["batch_size"], length, s, gen)
                _, states = model.forward_unrolled(x)
                loss = losses.cross_entropy(model.head(states.hidden[1:]).reshape(-1, s), y.repeat(length - 1))
                curve.append(loss.item())
                if curve[-1] < target:
                    reached = t
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            out["steps"][cell][str(lr)] = reached
            out["curves"][cell][str(lr)] = curve
        censored = params["budget"] + 1
        lstm, ln = out["steps"]["lstm"][str(lr)], out["steps"]["lnlstm"][str(lr)]
        speedups.append((censored if lstm is None else max(lstm, 1)) / (censored if ln is None else max(ln, 1)))
    out["speedups"] = speedups
    out["min_speedup"] = float(min(speedups))
    return out
