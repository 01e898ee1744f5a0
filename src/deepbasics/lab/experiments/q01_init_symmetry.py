r"""Q1 (part 3): zero or constant initial weights never break the symmetry between units.

- **Q1.f** Zero or constant weights make all hidden units compute and receive the same thing, so they stay
  identical for ever (Goodfellow, Bengio & Courville 2016, sec. 8.4).

Several same-shaped MLPs are trained at once as one batched model (``torch.func.stack_module_state`` +
``vmap``): the optimizers are elementwise and the loss is a sum of per-model losses, so this is exactly
independent training, only cheaper.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepbasics.lab import Metric, Rule, experiment, save_figure

from ._q01_init import held_out_digits


# --------------------------------------------------------------------------------------- Q1.f symmetry
def _unit_spread(w: torch.Tensor) -> float:
    """max_{i,j} max_k |w_ik - w_jk| / max |w|: 0 when every row (unit) of ``w`` is the same."""
    scale = float(w.abs().max())
    return float((w - w[:1]).abs().max()) / scale if scale > 0 else 0.0


def _plot_symmetry(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    names = ["wide, zero", "wide, constant", "1 unit, random", "wide, zero + 1e-6 noise", "wide, Glorot"]
    keys = ["acc_wide_zero", "acc_wide_const", "acc_one_unit", "acc_wide_nudged", "acc_wide_random"]
    vals = np.array([[100 * out[k] for k in keys] for out in outputs])  # (S, 5)
    ax1.bar(range(5), vals.mean(0), yerr=vals.std(0), color=["C0", "C0", "C1", "C2", "C2"], alpha=0.8)
    ax1.set_xticks(range(5), names, rotation=20, fontsize=7)
    ax1.set(ylabel="held-out accuracy (%)", title=f"Q1.f: sigmoid MLP, {params['hidden']} hidden units")
    acts = params["activations"]
    layers = ["linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias"]
    moved = np.array([[np.mean([out["moved"][a][p] > 0 for out in outputs]) for p in layers] for a in acts])
    ax2.imshow(moved, cmap="Greens", vmin=0, vmax=1)
    for i in range(len(acts)):
        for j in range(len(layers)):
            ax2.text(j, i, "learns" if moved[i, j] else "frozen", ha="center", va="center", fontsize=8)
    ax2.set_xticks(range(len(layers)), layers, rotation=15, fontsize=8)
    ax2.set_yticks(range(len(acts)), acts)
    ax2.set(title="zero init: which parameters change in training", xlabel="parameter", ylabel="hidden activation")
    fig.tight_layout()
    return [save_figure(fig, outdir, "symmetry")]


def _train_plain(model: nn.Module, x, y, x_eval, y_eval, *, steps: int, lr: float) -> float:
    """Full-batch Adam on one model in place (no vmap: every hidden unit goes through the same kernel, so
    exactly symmetric units stay bit-identical); returns the held-out accuracy."""
    from deepbasics import optim

    opt = optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    with torch.no_grad():
        return float((model(x_eval).argmax(-1) == y_eval).float().mean())


@experiment(
    ids=("Q1.f",),
    method="One-hidden-layer sigmoid MLPs on the digits start from all-zero weights and from a constant 0.05 "
    "(biases 0) and are trained full-batch with Adam. We measure how far the hidden units' incoming weight "
    "vectors are from each other afterwards (max pairwise difference / max weight), compare held-out accuracy "
    "with a 1-unit net, a Glorot-initialized net and a zero-init net nudged by 1e-6 noise, and record which "
    "parameters move under zero init for sigmoid, tanh and ReLU units. The judged number is the largest "
    "relative unit difference over the two symmetric inits.",
    quick={
        "hidden": 32,
        "steps": 150,
        "lr": 0.01,
        "constant": 0.05,
        "nudge": 1e-6,
        "moved_steps": 20,
        "activations": ["sigmoid", "tanh", "relu"],
    },
    full={
        "hidden": 128,
        "steps": 500,
        "lr": 0.01,
        "constant": 0.05,
        "nudge": 1e-6,
        "moved_steps": 50,
        "activations": ["sigmoid", "tanh", "relu"],
    },
    # Units that receive identical inputs and gradients are updated by the same float operations, so they stay
    # equal up to rounding: 1e-5 is ~100 float32 ulps of the largest weight, far below any real difference.
    rules={"Q1.f": Rule("max_unit_difference", "<", 1e-5, since="0.1.0")},
    metrics={
        "max_unit_difference": Metric("largest relative difference between hidden units after training"),
        "acc_wide_zero": Metric("held-out accuracy, zero init", unit="%", scale=100),
        "acc_one_unit": Metric("held-out accuracy, one hidden unit", unit="%", scale=100),
        "acc_wide_random": Metric("held-out accuracy, Glorot init", unit="%", scale=100),
    },
    takeaways={
        "Q1.f": "after training from zero weights the hidden units differ by at most {max_unit_difference} (relative) "
        "and the net reaches {acc_wide_zero} held-out accuracy, close to a one-unit net ({acc_one_unit}); random "
        "initial weights reach {acc_wide_random}",
    },
    seeds=3,
    timeout=300,
    plot=_plot_symmetry,
)
def symmetry(params, seed):
    from deepbasics import init
    from deepbasics import nn as dnn

    x, y, xe, ye = held_out_digits(seed)
    h, c, steps, lr = params["hidden"], params["constant"], params["steps"], params["lr"]
    g = torch.Generator().manual_seed(seed)

    def build(width, act, fill):
        return dnn.mlp([64, width, 10], act, init=fill)

    out = {}
    spreads = []
    for name, fill in (("zero", init.zeros_), ("const", lambda w: init.constant_(w, c))):
        model = build(h, "sigmoid", fill)
        out[f"acc_wide_{name}"] = _train_plain(model, x, y, xe, ye, steps=steps, lr=lr)
        # rows of linear1.weight (H, 64) are the units' incoming weights; columns of linear2.weight their outgoing
        spreads.append((_unit_spread(model.linear1.weight.detach()), _unit_spread(model.linear2.weight.detach().T)))
    out["max_unit_difference"] = max(s[0] for s in spreads)
    out["max_outgoing_difference"] = max(s[1] for s in spreads)
    # The symmetric wide net is a 1-unit net in disguise: unit 0's incoming weights and the sum of the outgoing
    # columns give the same logits. A 1-unit net trained from a random start for 3x the steps is its ceiling.
    one = dnn.mlp([64, 1, 10], "sigmoid")
    with torch.no_grad():
        one.linear1.weight.copy_(model.linear1.weight[:1])
        one.linear1.bias.copy_(model.linear1.bias[:1])
        one.linear2.weight.copy_(model.linear2.weight.sum(1, keepdim=True))
        one.linear2.bias.copy_(model.linear2.bias)
        out["collapse_max_logit_diff"] = float((one(xe) - model(xe)).abs().max())
    single = build(1, "sigmoid", lambda w: init.glorot_uniform_(w, generator=g))
    out["acc_one_unit"] = _train_plain(single, x, y, xe, ye, steps=3 * steps, lr=lr)
    out["acc_wide_random"] = _train_plain(
        build(h, "sigmoid", lambda w: init.glorot_uniform_(w, generator=g)), x, y, xe, ye, steps=steps, lr=lr
    )
    nudged = build(h, "sigmoid", lambda w: w.normal_(0.0, params["nudge"], generator=g))
    out["acc_wide_nudged"] = _train_plain(nudged, x, y, xe, ye, steps=steps, lr=lr)
    out["nudged_unit_difference"] = _unit_spread(nudged.linear1.weight.detach())
    moved = {}
    for act in params["activations"]:
        model = build(h, act, init.zeros_)
        before = {k: v.detach().clone() for k, v in model.named_parameters()}
        _train_plain(model, x, y, xe, ye, steps=params["moved_steps"], lr=lr)
        moved[act] = {k: float((v.detach() - before[k]).abs().max()) for k, v in model.named_parameters()}
    out["moved"] = moved
    return out
