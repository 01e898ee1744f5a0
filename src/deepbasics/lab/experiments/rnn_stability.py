r"""RNN (+, part 2): stable and fast recurrent training: gradient clipping and layer normalization.

Letters: ``T`` steps, ``B`` batch, ``H`` hidden units, ``S`` symbols. Cells are :mod:`deepbasics.nn`'s single steps,
looped by :func:`deepbasics.nn.unroll`; the memory task is the latching task of
:func:`._q15_cnn_rnn.latch_task` (remember the first of ``T`` random symbols while the others arrive), whose
answer read at step ``t`` has lag ``t``.

- **RNN.c** Clipping the global gradient norm, ``g <- g min(1, c / ||g||)``, bounds every step by ``lr c`` (Pascanu,
  Mikolov & Bengio, "On the difficulty of training recurrent neural networks", ICML 2013, alg. 1).
- **RNN.d** Layer normalization of the gate pre-activations and the cell (:class:`deepbasics.nn.LayerNormLSTMCell`;
  Ba, Kiros & Hinton 2016, sec. 3.1 and fig. 2: faster convergence of LSTMs).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from deepbasics.lab import Metric, Rule, experiment, save_figure

from ._q15_cnn_rnn import DIVERGENCE_FACTOR, latch_classifier, latch_task


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
    rules={"RNN.c": Rule("divergence_prevented", ">=", 0.5, since="0.1.0")},
    metrics={
        "divergence_prevented": Metric(
            "drop in the share of diverging runs with clipping, largest over learning rates", unit="points", scale=100
        ),
    },
    takeaways={
        "RNN.c": "clipping the gradient norm to 1 lowers the share of diverging runs by up to {divergence_prevented}",
    },
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
    rules={"RNN.d": Rule("min_speedup", ">", LN_SPEEDUP_MIN, since="0.1.0")},
    metrics={
        "min_speedup": Metric("steps to the target, LSTM over layer-norm LSTM, smallest over learning rates", unit="x"),
    },
    takeaways={
        "RNN.d": "layer normalization reaches the target loss at least {min_speedup} faster at every learning rate "
        "tried",
    },
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
            model = latch_classifier(cell, s, params["hidden"], seed)
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
