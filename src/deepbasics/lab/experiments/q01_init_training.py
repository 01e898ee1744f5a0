r"""Q1 (part 1): how to set the initial weights: the distribution matters little, the scale matters a lot.

- **Q1.a** Gaussian vs uniform weights of the *same* variance (``deepbasics.init.glorot_normal_`` vs
  ``glorot_uniform_``, both ``Var(W) = 2 / (m + n)``) train a digits MLP to the same test accuracy.
- **Q1.b** Multiplying the Glorot standard deviation by 0.01 ... 10 changes the trained loss and accuracy
  by tens of points (Glorot & Bengio 2010; Sutskever et al. 2013, sec. 3).

Several same-shaped MLPs are trained at once as one batched model (``torch.func.stack_module_state`` +
``vmap``): the optimizers are elementwise and the loss is a sum of per-model losses, so this is exactly
independent training, only cheaper.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepbasics.lab import Metric, Rule, experiment, save_figure

from ._q01_init import held_out_digits

# ------------------------------------------------------------------------------------------------ helpers


def _train_stacked(
    models: list[nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    x_eval: torch.Tensor,
    y_eval: torch.Tensor,
    *,
    steps: int,
    optimizer: str,
    lr: float,
    record_every: int = 10,
) -> dict[str, list]:
    """Train same-architecture classifiers full-batch, all at once; return per-model curves and accuracies.

    The K models' parameters are stacked into (K, ...) tensors; the loss is ``sum_k CE_k`` so each model gets
    exactly its own gradient, and SGD/Adam act elementwise, so this equals K separate runs.
    """
    from torch.func import functional_call, stack_module_state, vmap

    from deepbasics import optim

    k = len(models)
    params, buffers = stack_module_state(models)  # {name: (K, ...)}
    base = copy.deepcopy(models[0]).to("meta")

    def forward(p, b, inputs):
        return functional_call(base, (p, b), (inputs,))

    batched = vmap(forward, in_dims=(0, 0, None))
    tensors = list(params.values())
    opt = optim.Adam(tensors, lr=lr) if optimizer == "adam" else optim.SGD(tensors, lr=lr, momentum=0.9)

    def losses(inputs, targets):
        logits = batched(params, buffers, inputs)  # (K, N, C)
        ce = F.cross_entropy(logits.flatten(0, 1), targets.repeat(k), reduction="none")  # (K * N,)
        return ce.view(k, -1).mean(1), logits

    curve: list[list[float]] = []
    for step in range(steps + 1):
        loss, _ = losses(x, y)
        if step % record_every == 0 or step == steps:
            curve.append(loss.detach().tolist())
        if step == steps:
            break
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    with torch.no_grad():
        train_loss, train_logits = losses(x, y)
        _, eval_logits = losses(x_eval, y_eval)
    return {
        "train_loss": train_loss.tolist(),
        "train_acc": (train_logits.argmax(-1) == y).float().mean(1).tolist(),
        "eval_acc": (eval_logits.argmax(-1) == y_eval).float().mean(1).tolist(),
        "curve": np.array(curve).T.tolist(),  # (K, points)
        "curve_steps": [s for s in range(0, steps + 1) if s % record_every == 0 or s == steps],
        "params": {name: t.detach() for name, t in params.items()},
    }


# ------------------------------------------------------------------------------------- Q1.a distribution
def _plot_distribution(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.8))
    for seed, out in enumerate(outputs):
        n = len(out["acc_gauss"])
        jitter = np.linspace(-0.15, 0.15, n)
        ax1.scatter(seed + jitter - 0.2, 100 * np.array(out["acc_gauss"]), c="C0", s=14)
        ax1.scatter(seed + jitter + 0.2, 100 * np.array(out["acc_uniform"]), c="C1", s=14)
    ax1.scatter([], [], c="C0", label="Glorot normal N(0, 2/(m+n))")
    ax1.scatter([], [], c="C1", label="Glorot uniform U(+-sqrt(6/(m+n)))")
    ax1.set_xticks(range(len(outputs)), [f"seed {s}" for s in range(len(outputs))])
    ax1.set(ylabel="held-out accuracy (%)", title="Q1.a: accuracy per initialization draw")
    ax1.legend(fontsize=7)
    out = outputs[0]
    for name, color in (("curve_gauss", "C0"), ("curve_uniform", "C1")):
        for c in out[name]:
            ax2.semilogy(out["curve_steps"], c, color=color, alpha=0.5)
    ax2.set(xlabel="full-batch step", ylabel="training cross-entropy (nats)", title="seed 0: training curves")
    fig.tight_layout()
    return [save_figure(fig, outdir, "gaussian_vs_uniform")]


@experiment(
    ids=("Q1.a",),
    method="A tanh MLP on the digits is trained full-batch with Adam from draws of Glorot-normal and "
    "Glorot-uniform weights, which have the same variance 2/(fan_in + fan_out); each pair shares data and "
    "recipe. The judged number is |mean accuracy(normal) - mean accuracy(uniform)| on the pooled validation "
    "and test splits (percentage points), over `pairs` draws per seed.",
    quick={"pairs": 4, "sizes": [64, 32, 10], "steps": 150, "lr": 0.01, "activation": "tanh"},
    full={"pairs": 8, "sizes": [64, 32, 10], "steps": 300, "lr": 0.01, "activation": "tanh"},
    # "Little difference": under 1.5 percentage points, about the spread of one run's accuracy on the 720
    # held-out digits over initialization draws (~1 pp), and far below Q1.b's scale effect (> 10 pp).
    rules={"Q1.a": Rule("abs_acc_diff_pp", "<", 1.5, spread="ci", since="0.1.0")},
    metrics={
        "abs_acc_diff_pp": Metric("held-out accuracy difference, Gaussian vs uniform", unit="points"),
        "acc_gauss_mean": Metric("held-out accuracy, Glorot normal", unit="%", scale=100),
        "acc_uniform_mean": Metric("held-out accuracy, Glorot uniform", unit="%", scale=100),
        "acc_std_within_pp": Metric("spread between draws of one distribution", unit="points"),
    },
    takeaways={
        "Q1.a": "Glorot-normal and Glorot-uniform weights of the same variance train to {acc_gauss_mean} and "
        "{acc_uniform_mean} held-out accuracy, {abs_acc_diff_pp} apart (draws of one distribution differ by "
        "{acc_std_within_pp})",
    },
    seeds=3,
    timeout=300,
    plot=_plot_distribution,
)
def distribution(params, seed):
    from deepbasics import init
    from deepbasics import nn as dnn

    x, y, xe, ye = held_out_digits(seed)
    models = {"gauss": [], "uniform": []}
    for i in range(params["pairs"]):
        for name, fill in (("gauss", init.glorot_normal_), ("uniform", init.glorot_uniform_)):
            g = torch.Generator().manual_seed(10_000 * seed + 2 * i + (name == "uniform"))
            model = dnn.mlp(params["sizes"], params["activation"], init=lambda w, g=g, f=fill: f(w, generator=g))
            models[name].append(model)
    res = _train_stacked(
        models["gauss"] + models["uniform"], x, y, xe, ye, steps=params["steps"], optimizer="adam", lr=params["lr"]
    )
    p = params["pairs"]
    acc_g, acc_u = res["eval_acc"][:p], res["eval_acc"][p:]
    loss_g, loss_u = res["train_loss"][:p], res["train_loss"][p:]
    return {
        "abs_acc_diff_pp": 100 * abs(float(np.mean(acc_g)) - float(np.mean(acc_u))),
        "acc_gauss_mean": float(np.mean(acc_g)),
        "acc_uniform_mean": float(np.mean(acc_u)),
        "acc_std_within_pp": 100 * float(np.std(acc_g + acc_u, ddof=1)),
        "train_loss_gauss_mean": float(np.mean(loss_g)),
        "train_loss_uniform_mean": float(np.mean(loss_u)),
        "acc_gauss": acc_g,
        "acc_uniform": acc_u,
        "curve_gauss": res["curve"][:p],
        "curve_uniform": res["curve"][p:],
        "curve_steps": res["curve_steps"],
    }


# ------------------------------------------------------------------------------------------ Q1.b scale
def _plot_scale(outputs, params, outdir):
    import matplotlib.pyplot as plt

    mult = params["multipliers"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.8))
    for seed, out in enumerate(outputs):
        ax1.semilogx(mult, 100 * np.array(out["eval_acc"]), "o-", color=f"C{seed}", label=f"held-out, seed {seed}")
        ax1.semilogx(mult, 100 * np.array(out["train_acc"]), "x:", color=f"C{seed}", alpha=0.6)
        ax2.loglog(mult, out["train_loss"], "o-", color=f"C{seed}", label=f"seed {seed}")
    ax1.plot([], [], "kx:", label="training accuracy")
    ax1.set(
        xlabel="std multiplier of Glorot normal (1 = Glorot)",
        ylabel="accuracy (%)",
        title="Q1.b: accuracy after training vs init scale",
    )
    ax1.legend(fontsize=7)
    ax2.axhline(math.log(10), color="grey", ls="--", lw=1, label="ln 10 (chance)")
    ax2.set(
        xlabel="std multiplier of Glorot normal (1 = Glorot)",
        ylabel="final training cross-entropy (nats)",
        title="Q1.b: final training loss vs init scale",
    )
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return [save_figure(fig, outdir, "init_scale_sweep")]


@experiment(
    ids=("Q1.b",),
    method="A tanh MLP with three hidden layers is trained on the digits with one fixed recipe (full-batch SGD, "
    "momentum 0.9) from Glorot-normal weights whose standard deviation is multiplied by 0.01 ... 10. We record "
    "the final training loss and the held-out accuracy (validation + test pooled); the judged number is the "
    "gap between the best and the worst held-out accuracy over the multipliers, in percentage points.",
    quick={"multipliers": [0.01, 0.1, 0.3, 1.0, 3.0, 10.0], "sizes": [64, 32, 32, 32, 10], "steps": 200, "lr": 0.1},
    full={
        "multipliers": [0.01, 0.03, 0.1, 0.3, 1.0, 2.0, 3.0, 5.0, 10.0],
        "sizes": [64, 32, 32, 32, 10],
        "steps": 400,
        "lr": 0.1,
    },
    # "Strongly affects": a gap over 10 pp, an order of magnitude above what Q1.a calls "little" (1.5 pp).
    rules={"Q1.b": Rule("acc_gap_pp", ">", 10.0, since="0.1.0")},
    metrics={
        "acc_gap_pp": Metric("held-out accuracy gap between the best and the worst init scale", unit="points"),
        "loss_ratio_worst_best": Metric("final training loss, worst over best scale", unit="x"),
    },
    takeaways={
        "Q1.b": "multiplying the Glorot standard deviation by 0.01 to 10 moves the held-out accuracy by {acc_gap_pp} "
        "between the best and the worst scale, and the worst scale ends with {loss_ratio_worst_best} the best "
        "one's training loss",
    },
    seeds=3,
    timeout=300,
    plot=_plot_scale,
)
def scale(params, seed):
    from deepbasics import init
    from deepbasics import nn as dnn

    x, y, xe, ye = held_out_digits(seed)
    models = []
    for i, m in enumerate(params["multipliers"]):
        g = torch.Generator().manual_seed(10_000 * seed + i)
        models.append(dnn.mlp(params["sizes"], "tanh", init=lambda w, g=g, m=m: init.glorot_normal_(w, m, g)))
    res = _train_stacked(models, x, y, xe, ye, steps=params["steps"], optimizer="sgd", lr=params["lr"])
    acc, loss = res["eval_acc"], res["train_loss"]
    converged = [ls < 0.1 * math.log(10) for ls in loss]  # 10% of the chance-level loss
    return {
        "acc_gap_pp": 100 * (max(acc) - min(acc)),
        "best_multiplier": params["multipliers"][int(np.argmax(acc))],
        "worst_multiplier": params["multipliers"][int(np.argmin(acc))],
        "loss_ratio_worst_best": max(loss) / min(loss),
        "fraction_converged": float(np.mean(converged)),
        "generalization_gap_pp": [100 * (a - b) for a, b in zip(res["train_acc"], acc, strict=True)],
        "eval_acc": acc,
        "train_acc": res["train_acc"],
        "train_loss": loss,
    }
