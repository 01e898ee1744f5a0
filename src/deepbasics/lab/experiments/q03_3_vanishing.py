"""Q3.3 (part 1): vanishing gradients, the phenomenon.

Exploding gradients: :mod:`.q03_3_exploding`; remedies: :mod:`.q03_3_remedies`.

- **Q3.3.a / Q3.3.b** By the chain rule ``dL/dz_l = diag(sigma'(z_l)) W_{l+1}^T dL/dz_{l+1}`` with
  ``sigma' <= 1/4``, the gradient of a deep sigmoid net shrinks by a roughly constant factor per layer towards
  the input, so under SGD the input-side layers barely move (Hochreiter 1991; Bengio, Simard & Frasconi 1994;
  Glorot & Bengio 2010, sec. 4.2 and fig. 7).
- **Q3.3.c** ``sigma'(z) = sigma(z)(1 - sigma(z))`` peaks at ``1/4`` at ``z = 0`` and decays like ``e^-|z|``.

Gradient profiles and the vanishing/exploding thresholds are defined in :mod:`._deepnets`.
"""

from __future__ import annotations

import numpy as np
import torch

from deepbasics.lab import Metric, Rule, experiment, save_figure

from ._deepnets import (
    VANISH,
    deep_mlp,
    digits_data,
    full_batch_fit,
    layer_grad_norms,
    linear_layers,
    log10_ratio,
    log_slope,
    relative_change,
    sgd,
    val_accuracy,
)

#: Q3.3.b: "barely move" = the first layer's relative weight change is under a tenth of the last layer's.
BARELY_MOVES = 0.1


# ------------------------------------------------------------------------------------- Q3.3.a/b depth profile
def _plot_profile(outputs, params, outdir):
    import matplotlib.pyplot as plt

    layers = np.arange(1, params["layers"] + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for arm, color in (("sigmoid", "C0"), ("relu", "C1")):
        for s, out in enumerate(outputs):
            label = f"{arm} ({'Glorot' if arm == 'sigmoid' else 'He'} init), step 0" if s == 0 else None
            ax1.semilogy(layers, out["grads"][arm][0], "o-", color=color, alpha=0.7, label=label)
        last = outputs[0]["steps"][-1]
        ax1.semilogy(layers, outputs[0]["grads"][arm][-1], ":", color=color, label=f"{arm}, step {last} (seed 0)")
    ax1.set(
        xlabel="linear layer (1 = input side)",
        ylabel="layer gradient norm sqrt(||dL/dW_l||^2 + ||dL/db_l||^2)",
        title="Q3.3.a: per-layer gradient norm, 10-layer MLP on digits",
    )
    ax1.legend(fontsize=7)
    for arm, color, style in (("sigmoid", "C0", "o-"), ("relu", "C1", "o-"), ("sigmoid_adam", "C2", "s--")):
        for s, out in enumerate(outputs):
            label = {"sigmoid": "sigmoid, SGD", "relu": "ReLU, SGD", "sigmoid_adam": "sigmoid, Adam"}[arm]
            ax2.semilogy(layers, out["change"][arm], style, color=color, alpha=0.7, label=label if s == 0 else None)
    ax2.set(
        xlabel="linear layer (1 = input side)",
        ylabel="||W_T - W_0|| / ||W_0|| (relative)",
        title=f"Q3.3.b: how far each layer moved in {params['steps']} full-batch steps",
    )
    ax2.legend(fontsize=7)
    return [save_figure(fig, outdir, "gradient_and_change_per_layer")]


@experiment(
    ids=("Q3.3.a", "Q3.3.b"),
    method="Ten-layer MLPs (64-32-...-32-10) on sklearn's digits: sigmoid units with Glorot-normal init and ReLU units "
    "with He-normal init, trained with full-batch plain SGD (lr 0.1) while deepbasics.probe.LayerStats records "
    "every layer's gradient norm. Q3.3.a is judged on the sigmoid net's first/last layer gradient ratio at step 0 "
    "(later the net sits on the class-prior plateau where every layer's gradient is ~1e-6 and the ratio says "
    "nothing; the plot shows both); the fitted log10 slope per layer is reported. Q3.3.b is judged on the ratio "
    "of relative weight changes ||W_T - W_0|| / ||W_0|| of the first and last layer after training; the same "
    "sigmoid net trained with Adam (per-parameter step sizes) is reported as a contrast.",
    quick={"layers": 10, "width": 32, "lr": 0.1, "adam_lr": 1e-3, "steps": 150, "every": 15},
    full={"layers": 10, "width": 32, "lr": 0.1, "adam_lr": 1e-3, "steps": 1500, "every": 100},
    rules={
        # vanishing: two orders of magnitude lost between the last and the first layer (_deepnets.VANISH)
        "Q3.3.a": Rule("sigmoid_log10_ratio", "<", float(np.log10(VANISH)), since="0.1.0"),
        "Q3.3.b": Rule("sigmoid_change_ratio", "<", BARELY_MOVES, since="0.1.0"),
    },
    metrics={
        "sigmoid_log10_ratio": Metric("log10 of first- over last-layer gradient norm, sigmoid net"),
        "relu_log10_ratio": Metric("log10 of first- over last-layer gradient norm, ReLU net"),
        "sigmoid_change_ratio": Metric("relative weight change, first over last layer, sigmoid net, SGD", unit="x"),
        "relu_change_ratio": Metric("relative weight change, first over last layer, ReLU net, SGD", unit="x"),
        "sigmoid_adam_change_ratio": Metric(
            "relative weight change, first over last layer, sigmoid net, Adam", unit="x"
        ),
    },
    takeaways={
        "Q3.3.a": "in a 10-layer sigmoid net the first layer's gradient is 10^{sigmoid_log10_ratio} times the last "
        "layer's; in a ReLU net with He init, 10^{relu_log10_ratio} times",
        "Q3.3.b": "under SGD the sigmoid net's first layer moves {sigmoid_change_ratio} as much as its last (relative "
        "to their size); the ReLU net's {relu_change_ratio}, and the sigmoid net's under Adam "
        "{sigmoid_adam_change_ratio}",
    },
    seeds=3,
    timeout=900,
    plot=_plot_profile,
)
def depth_profile(params, seed):
    x, y, xv, yv = digits_data(seed)
    arms = {
        "sigmoid": ("sigmoid", "glorot", "sgd"),
        "relu": ("relu", "he", "sgd"),
        "sigmoid_adam": ("sigmoid", "glorot", "adam"),
    }
    out = {"grads": {}, "change": {}, "train_acc": {}, "val_acc": {}}
    for arm, (act, scheme, opt_name) in arms.items():
        g = torch.Generator().manual_seed(seed)  # both sigmoid arms start from the same weights
        model = deep_mlp(act, params["layers"], params["width"], scheme, g)
        before = [m.weight.detach().clone() for m in linear_layers(model)]
        if opt_name == "sgd":
            from deepbasics.probe import LayerStats

            opt = sgd(model, params["lr"])
            with LayerStats(model, every=params["every"], optimizer=opt) as stats:
                history = full_batch_fit(model, opt, x, y, steps=params["steps"])
            out["grads"][arm] = [layer_grad_norms(stats, k) for k in range(len(stats.steps))]
            out["steps"] = list(stats.steps)
        else:
            from deepbasics.optim import Adam

            opt = Adam(model.parameters(), lr=params["adam_lr"])
            history = full_batch_fit(model, opt, x, y, steps=params["steps"])
        out["change"][arm] = relative_change(before, model)
        out["train_acc"][arm] = history["train_accuracy"][-1]
        out["val_acc"][arm] = val_accuracy(model, xv, yv)
    for arm in ("sigmoid", "relu"):
        first, last = out["grads"][arm][0][0], out["grads"][arm][0][-1]
        out[f"{arm}_log10_ratio"] = log10_ratio(first, last)
        slope, out[f"{arm}_slope_r2"] = log_slope(out["grads"][arm][0])
        out[f"{arm}_decades_per_layer_towards_input"] = -slope  # layers are listed input side first
        out[f"{arm}_log10_ratio_end"] = log10_ratio(out["grads"][arm][-1][0], out["grads"][arm][-1][-1])
    for arm in arms:
        out[f"{arm}_change_ratio"] = out["change"][arm][0] / out["change"][arm][-1]
    return out


# ------------------------------------------------------------------------------------- Q3.3.c sigmoid derivative
#: Allowed |max sigma' - 1/4| and |ours - autograd|: float64 rounding of a few operations on numbers <= 1.
TOL = 1e-12
#: "Tends to 0 on saturation": at |z| = 10 the derivative (exactly e^-10 / (1 + e^-10)^2 = 4.5e-5) is < 1e-4.
SATURATED = 1e-4


def _plot_sigmoid(outputs, params, outdir):
    import matplotlib.pyplot as plt

    out = outputs[0]
    z, ours, auto = np.array(out["z"]), np.array(out["ours"]), np.array(out["autograd"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(z, out["sigma"], label="sigma(z)")
    ax1.plot(z, ours, label="sigma'(z), deepbasics.activations.sigmoid_grad")
    ax1.plot(z, auto, "k:", label="sigma'(z), torch autograd")
    ax1.axhline(0.25, color="grey", lw=0.8, ls="--", label="1/4")
    ax1.set(xlabel="pre-activation z", ylabel="value (dimensionless)", title="Q3.3.c: sigma and its derivative")
    ax1.legend(fontsize=7)
    pos = z >= 0
    ax2.semilogy(z[pos], ours[pos], label="sigma'(z)")
    ax2.semilogy(z[pos], np.exp(-z[pos]), "k:", label="e^-z (asymptote)")
    ax2.axhline(SATURATED, color="C3", ls="--", label=f"threshold {SATURATED:g} at |z| = {params['saturation_z']:g}")
    ax2.set(xlabel="|z|", ylabel="sigma'(z) (log scale)", title="Q3.3.c: the derivative vanishes on saturation")
    ax2.legend(fontsize=7)
    return [save_figure(fig, outdir, "sigmoid_derivative")]


@experiment(
    ids=("Q3.3.c",),
    method="On a float64 grid over [-z_max, z_max] that contains z = 0 we evaluate "
    "deepbasics.activations.sigmoid_grad and torch autograd's derivative of torch.sigmoid. The judged number is the "
    "worst of five sub-checks, each divided by its tolerance: |max sigma' - 1/4| (1e-12), |argmax| (one grid step), "
    "max |ours - autograd| (1e-12), sigma'(+-saturation_z) (1e-4) and any increase of sigma' with |z| (1e-15).",
    quick={"z_max": 20.0, "grid_step": 1e-4, "saturation_z": 10.0},
    full={"z_max": 30.0, "grid_step": 2e-5, "saturation_z": 10.0},
    rules={
        "Q3.3.c": Rule("worst_check_ratio", "<", 1.0, spread="value", since="0.1.0")
    },  # every sub-check within tolerance
    metrics={
        "worst_check_ratio": Metric("worst sub-check as a fraction of its tolerance"),
        "max_sigma_prime": Metric("largest value of the sigmoid's derivative"),
        "saturated_grad": Metric("the derivative at the saturation point"),
        "autograd_err": Metric("largest difference to autograd"),
    },
    takeaways={
        "Q3.3.c": "the sigmoid's derivative peaks at {max_sigma_prime} at z = 0 and falls to {saturated_grad} at the "
        "saturation point; ours matches autograd to {autograd_err}",
    },
    seeds=1,
    timeout=300,
    plot=_plot_sigmoid,
)
def sigmoid_derivative(params, seed):
    from deepbasics.activations import sigmoid, sigmoid_grad

    n = round(params["z_max"] / params["grid_step"])
    z = torch.arange(-n, n + 1, dtype=torch.float64) * params["grid_step"]  # (2n + 1,), z[n] == 0 exactly
    ours = sigmoid_grad(z)
    zz = z.clone().requires_grad_(True)
    torch.sigmoid(zz).sum().backward()
    auto = zz.grad
    at = torch.tensor([-params["saturation_z"], params["saturation_z"]], dtype=torch.float64)
    right = ours[n:]  # z >= 0; by symmetry the left half mirrors it
    checks = {
        "max_err": (abs(float(ours.max()) - 0.25), TOL),
        "argmax_dist": (abs(float(z[int(ours.argmax())])), params["grid_step"]),
        "autograd_err": (float((ours - auto).abs().max()), TOL),
        "saturated_grad": (float(sigmoid_grad(at).max()), SATURATED),
        "monotone_violation": (max(float((right[1:] - right[:-1]).max()), 0.0), 1e-15),
    }
    stride = max(1, len(z) // 2000)
    out = {k: v for k, (v, _) in checks.items()}
    out["worst_check_ratio"] = max(v / tol for v, tol in checks.values())
    out["max_sigma_prime"] = float(ours.max())
    out.update(z=z[::stride].tolist(), ours=ours[::stride].tolist(), autograd=auto[::stride].tolist())
    out["sigma"] = sigmoid(z[::stride]).tolist()
    return out
