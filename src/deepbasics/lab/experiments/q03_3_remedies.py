"""Q3.3 (part 2): architectural remedies for vanishing gradients. Phenomena: :mod:`.q03_3_vanishing`; clipping
and L2 against exploding gradients: :mod:`.q03_3_clip_l2`.

- **Q3.3.g** Batch normalization rescales each pre-activation to unit variance, so the per-layer backward
  factor no longer carries the weight scale (Ioffe & Szegedy, "Batch Normalization", ICML 2015, sec. 3-3.3).
- **Q3.3.h** ``relu'(z) = 1`` for ``z > 0``: with He init the per-layer factor is ~1 (He et al., "Delving Deep
  into Rectifiers", ICCV 2015, sec. 2.2).
- **Q3.3.i** A residual block ``y = x + f(x)`` has Jacobian ``I + df/dx`` (He et al., "Deep Residual Learning",
  CVPR 2016, sec. 3.1); an LSTM's cell path ``dc_t/dc_{t-1} = diag(f_t)`` carries the error unchanged when the
  forget gate is open (Hochreiter & Schmidhuber 1997, sec. 4; Gers, Schmidhuber & Cummins 2000, sec. 3).
"""

from __future__ import annotations

import numpy as np
import torch

from deepbasics.lab import Metric, Rule, experiment, save_figure

from ._deepnets import (
    curve,
    deep_mlp,
    digits_data,
    full_batch_fit,
    global_rng_from,
    layer_grad_norms,
    log10_ratio,
    sgd,
    steps_to,
    val_accuracy,
)

#: "Mitigates vanishing gradients": at least one decade (10x) more gradient reaches the input-side layer.
MITIGATES_DECADES = 1.0


# ------------------------------------------------------------------------------------- Q3.3.g batch norm
def _plot_bn(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.0))
    layers = np.arange(1, params["layers"] + 1)
    for arm, color in (("plain", "C0"), ("batchnorm", "C2")):
        for s, out in enumerate(outputs):
            ax1.semilogy(layers, out["grads"][arm], "o-", color=color, alpha=0.7, label=arm if s == 0 else None)
            ax2.plot(out["train_acc"][arm], color=color, alpha=0.7, label=arm if s == 0 else None)
    ax1.set(
        xlabel="linear layer (1 = input side)",
        ylabel="sqrt(||dL/dW_l||^2 + ||dL/db_l||^2) at step 0",
        title="Q3.3.g: 10-layer sigmoid MLP, with and without BatchNorm",
    )
    val = {arm: np.mean([o["val_acc"][arm] for o in outputs]) for arm in ("plain", "batchnorm")}
    ax2.set(
        xlabel="full-batch SGD step",
        ylabel="training accuracy (fraction)",
        title=f"Q3.3.g: val. accuracy at the end {val['plain']:.2f} (plain), {val['batchnorm']:.2f} (BN)",
    )
    for ax in (ax1, ax2):
        ax.legend(fontsize=8)
    return [save_figure(fig, outdir, "batchnorm_gradients")]


@experiment(
    ids=("Q3.3.g",),
    method="Ten-layer width-32 sigmoid MLPs (Glorot-normal) on digits, without and with BatchNorm before every "
    "sigmoid (deepbasics.nn.mlp(norm='batch')), from the same weights, trained with full-batch SGD (lr 0.1). "
    "Judged: log10 of the first/last layer gradient ratio at step 0 (LayerStats) with BN minus without; "
    "validation accuracy after the fixed budget is reported.",
    quick={"layers": 10, "width": 32, "lr": 0.1, "steps": 100},
    full={"layers": 10, "width": 32, "lr": 0.1, "steps": 1000},
    rules={"Q3.3.g": Rule("log10_gain", ">", MITIGATES_DECADES, since="0.1.0")},
    metrics={
        "log10_gain": Metric("gain in the first- over last-layer gradient ratio with BatchNorm", unit="decades"),
        "plain_log10_ratio": Metric("log10 first- over last-layer gradient, plain sigmoid net"),
        "batchnorm_log10_ratio": Metric("log10 first- over last-layer gradient, with BatchNorm"),
    },
    takeaways={
        "Q3.3.g": "BatchNorm before every sigmoid lifts the first layer's gradient relative to the last from "
        "10^{plain_log10_ratio} to 10^{batchnorm_log10_ratio}",
    },
    seeds=3,
    timeout=600,
    plot=_plot_bn,
)
def batchnorm(params, seed):
    from deepbasics.probe import LayerStats

    x, y, xv, yv = digits_data(seed)
    out = {"grads": {}, "train_acc": {}, "val_acc": {}}
    for arm, norm in (("plain", None), ("batchnorm", "batch")):
        g = torch.Generator().manual_seed(seed)
        model = deep_mlp("sigmoid", params["layers"], params["width"], "glorot", g, norm=norm)
        opt = sgd(model, params["lr"])
        with LayerStats(model, every=params["steps"], optimizer=opt) as stats:  # records step 0 only
            history = full_batch_fit(model, opt, x, y, steps=params["steps"])
        out["grads"][arm] = layer_grad_norms(stats, 0)
        out["train_acc"][arm] = curve(history["train_accuracy"])
        out["val_acc"][arm] = val_accuracy(model, xv, yv)
        out[f"{arm}_log10_ratio"] = log10_ratio(out["grads"][arm][0], out["grads"][arm][-1])
    out["log10_gain"] = out["batchnorm_log10_ratio"] - out["plain_log10_ratio"]
    return out


# ------------------------------------------------------------------------------------- Q3.3.h ReLU
def _plot_relu(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.6, 4.2))
    for arm, color in (("sigmoid", "C0"), ("relu", "C1")):
        for s, out in enumerate(outputs):
            label = f"{arm} (log10 grad ratio {out[f'{arm}_log10_ratio']:.1f})" if s == 0 else None
            ax.plot(out["train_acc"][arm], color=color, alpha=0.7, label=label)
    ax.axhline(params["target"], color="k", ls="--", lw=0.8, label=f"target {params['target']:.0%}")
    ax.set(
        xlabel="full-batch SGD step",
        ylabel="training accuracy (fraction)",
        title="Q3.3.h: 10-layer MLP, sigmoid (Glorot) vs ReLU (He)",
    )
    ax.legend(fontsize=8)
    return [save_figure(fig, outdir, "relu_vs_sigmoid")]


@experiment(
    ids=("Q3.3.h",),
    method="The 10-layer width-32 MLP on digits with sigmoid units (Glorot-normal) and with ReLU units (He-normal), "
    "full-batch SGD (lr 0.1) until the training accuracy reaches the target or the budget ends (then the sigmoid's "
    "count is the budget, a lower bound on its true count). Judged: min(gradient-ratio gain / 10, speed-up / 2), "
    "with the gain in first/last layer gradient ratio at step 0 and the speed-up in steps to the target. That ReLU "
    "does not stop explosion by itself is measured in Q3.3.d (ReLU with too-large init explodes).",
    quick={"layers": 10, "width": 32, "lr": 0.1, "budget": 300, "target": 0.9},
    full={"layers": 10, "width": 32, "lr": 0.1, "budget": 1500, "target": 0.9},
    # a decade more gradient at the input layer and at least twice as fast ("speeds up" as a clear factor)
    rules={"Q3.3.h": Rule("min_factor", ">", 1.0, since="0.1.0")},
    metrics={
        "min_factor": Metric("smaller of gradient gain / 10 and speedup / 2"),
        "log10_gain": Metric("gain in the first- over last-layer gradient ratio, ReLU over sigmoid", unit="decades"),
        "speedup": Metric("steps to the target accuracy, sigmoid over ReLU", unit="x"),
    },
    takeaways={
        "Q3.3.h": "ReLU units instead of sigmoids raise the first- over last-layer gradient ratio by {log10_gain} and "
        "reach the target accuracy {speedup} faster",
    },
    seeds=3,
    timeout=600,
    plot=_plot_relu,
)
def relu_vs_sigmoid(params, seed):
    from deepbasics.probe import LayerStats
    from deepbasics.train import EarlyStopping

    x, y, _, _ = digits_data(seed)
    out = {"train_acc": {}, "steps": {}}
    for arm, scheme in (("sigmoid", "glorot"), ("relu", "he")):
        g = torch.Generator().manual_seed(seed)
        model = deep_mlp(arm, params["layers"], params["width"], scheme, g)
        opt = sgd(model, params["lr"])
        stop = EarlyStopping(
            "train_accuracy",
            patience=params["budget"] + 1,
            mode="max",
            restore_best=False,
            stopping_threshold=params["target"],
        )
        with LayerStats(model, every=params["budget"], optimizer=opt) as stats:  # records step 0 only
            history = full_batch_fit(model, opt, x, y, steps=params["budget"], callbacks=[stop])
        grads = layer_grad_norms(stats, 0)
        out[f"{arm}_log10_ratio"] = log10_ratio(grads[0], grads[-1])
        out["train_acc"][arm] = curve(history["train_accuracy"], params["budget"])
        reached = steps_to(history["train_accuracy"], params["target"])
        out["steps"][arm] = params["budget"] if reached is None else reached
        out[f"{arm}_reached"] = reached is not None
    out["speedup"] = out["steps"]["sigmoid"] / max(out["steps"]["relu"], 1)
    out["log10_gain"] = out["relu_log10_ratio"] - out["sigmoid_log10_ratio"]
    out["min_factor"] = float(min(10 ** (out["log10_gain"] - MITIGATES_DECADES), out["speedup"] / 2.0))
    return out


# ------------------------------------------------------------------------------------- Q3.3.i ResNet and LSTM
def _plot_skip(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.0))
    for i, act in enumerate(params["activations"]):
        for arm, style in (("plain", "o--"), ("residual", "s-")):
            prof = outputs[0]["profiles"][act][arm]
            ax1.semilogy(np.arange(1, len(prof) + 1), prof, style, color=f"C{i}", label=f"{arm}, {act}")
    ax1.set(
        xlabel="linear layer (1 = input side)",
        ylabel="||dL/dW_l|| at init (seed 0)",
        title=f"Q3.3.i: plain vs residual MLP ({2 * params['blocks'] + 2} linear layers)",
    )
    ax1.legend(fontsize=7)
    for i, cell in enumerate(("rnn", "lstm", "lstm_forget1", "gru")):
        per_step = np.array(outputs[0]["per_step"][cell])
        ax2.semilogy(np.arange(1, len(per_step) + 1), per_step / per_step[-1], color=f"C{i}", label=cell)
    ax2.set(
        xlabel="time step t",
        ylabel="||dL/dh_t|| / ||dL/dh_T|| (log)",
        title=f"Q3.3.i: gradient reaching step t, T = {params['seq_len']} (seed 0, at init)",
    )
    ax2.legend(fontsize=7)
    return [save_figure(fig, outdir, "residual_and_lstm_gradients")]


def _lstm_forget_bias(cell, value: float) -> None:
    """Set the forget-gate bias (gate order i, f, g, o) to ``value`` in total, as Gers et al. 2000 advise."""
    h = cell.hidden_size
    with torch.no_grad():
        cell.bias_ih[h : 2 * h] = value
        cell.bias_hh[h : 2 * h] = 0.0


def _step_ratio(model, xs, ys) -> tuple[float, list[float]]:
    from deepbasics.nn import gradient_per_step

    pred, states = model.forward_unrolled(xs)
    per_step = gradient_per_step(states, torch.nn.functional.mse_loss(pred, ys))
    return log10_ratio(float(per_step[0]), float(per_step[-1])), per_step.tolist()


@experiment(
    ids=("Q3.3.i",),
    method="Residual: deepbasics.nn.resnet_mlp (5 blocks) against a plain MLP with as many linear layers (12), "
    "sigmoid and ReLU units, torch's default init, at init on digits: log10 gain of the first/last weight-gradient "
    "ratio. LSTM: ||dL/dh_1|| / ||dL/dh_T|| (deepbasics.nn.unroll + gradient_per_step) on the adding problem at "
    "init, LSTM with forget-gate bias 1 vs tanh RNN (torch-init LSTM and GRU reported; full mode also trains them). "
    "Judged: the smallest of the three gains, in decades.",
    quick={
        "blocks": 5,
        "width": 32,
        "activations": ["sigmoid", "relu"],
        "seq_len": 30,
        "hidden": 32,
        "batch": 128,
        "train_steps": 0,
    },
    full={
        "blocks": 5,
        "width": 32,
        "activations": ["sigmoid", "relu"],
        "seq_len": 30,
        "hidden": 32,
        "batch": 512,
        "train_steps": 400,
    },
    rules={"Q3.3.i": Rule("min_gain_decades", ">", MITIGATES_DECADES, since="0.1.0")},
    metrics={
        "min_gain_decades": Metric("smallest gradient gain of skip connections and the LSTM", unit="decades"),
        "residual_gain_sigmoid": Metric("gain of skip connections, sigmoid", unit="decades"),
        "residual_gain_relu": Metric("gain of skip connections, ReLU", unit="decades"),
        "lstm_forget1_gain": Metric("gain of an LSTM with forget bias 1 over a tanh RNN", unit="decades"),
    },
    takeaways={
        "Q3.3.i": "skip connections raise the first- over last-layer gradient ratio by {residual_gain_sigmoid} "
        "(sigmoid) and {residual_gain_relu} (ReLU); an LSTM with forget-gate bias 1 keeps the gradient reaching "
        "the first step {lstm_forget1_gain} higher than a tanh RNN",
    },
    seeds=3,
    timeout=900,
    plot=_plot_skip,
)
def skip_and_lstm(params, seed):
    from deepbasics import nn as db_nn
    from deepbasics.data import adding_problem

    from ._deepnets import backprop_profile

    x, y, _, _ = digits_data(seed)
    out = {"profiles": {}, "per_step": {}}
    gains = []
    for act in params["activations"]:
        g = torch.Generator().manual_seed(seed)
        plain = deep_mlp(act, 2 * params["blocks"] + 2, params["width"], "default", g)
        with global_rng_from(g):
            residual = db_nn.resnet_mlp(params["blocks"], params["width"], 64, 10, activation=act)
        profiles = {arm: backprop_profile(m, x, y)["weight"] for arm, m in (("plain", plain), ("residual", residual))}
        out["profiles"][act] = profiles
        for arm, prof in profiles.items():
            out[f"{arm}_{act}_log10_ratio"] = log10_ratio(prof[0], prof[-1])
        out[f"residual_gain_{act}"] = out[f"residual_{act}_log10_ratio"] - out[f"plain_{act}_log10_ratio"]
        gains.append(out[f"residual_gain_{act}"])
    g = torch.Generator().manual_seed(seed)
    xs, ys = adding_problem(params["batch"], params["seq_len"], g)
    models = {}
    for cell in ("rnn", "lstm", "lstm_forget1", "gru"):
        with global_rng_from(torch.Generator().manual_seed(seed)):
            models[cell] = db_nn.rnn_classifier(
                cell.split("_")[0], input_size=2, hidden_size=params["hidden"], output_size=1
            )
        if cell == "lstm_forget1":
            _lstm_forget_bias(models[cell].cell, 1.0)
        out[f"{cell}_log10_ratio"], out["per_step"][cell] = _step_ratio(models[cell], xs, ys)
    for cell in ("lstm", "lstm_forget1", "gru"):
        out[f"{cell}_gain"] = out[f"{cell}_log10_ratio"] - out["rnn_log10_ratio"]
    gains.append(out["lstm_forget1_gain"])
    out["min_gain_decades"] = float(min(gains))
    if params["train_steps"]:
        out.update(_train_recurrent(models, params, seed))
    return out


def _train_recurrent(models, params, seed) -> dict[str, float]:
    """Full mode: Adam (lr 1e-2, clip 1) on the adding problem; the step ratio and test MSE afterwards."""
    from deepbasics.data import adding_problem
    from deepbasics.optim import Adam
    from deepbasics.train import fit

    g = torch.Generator().manual_seed(seed + 1)
    train = adding_problem(1280, params["seq_len"], g)  # 20 batches of 64 per epoch
    test = adding_problem(params["batch"], params["seq_len"], g)
    res = {}
    for cell, model in models.items():
        fit(
            model,
            torch.nn.functional.mse_loss,
            Adam(model.parameters(), lr=1e-2),
            train,
            epochs=params["train_steps"] // 20,
            batch_size=64,
            clip=1.0,
            metrics={},
            generator=torch.Generator().manual_seed(seed),
        )
        res[f"trained_{cell}_log10_ratio"], _ = _step_ratio(model, *test)
        with torch.no_grad():
            res[f"trained_{cell}_test_mse"] = float(torch.nn.functional.mse_loss(model(test[0]), test[1]))
    return res
