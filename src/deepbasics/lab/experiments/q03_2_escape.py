r"""Q3.2 (part 2): which optimizers leave a saddle point fast.

- **Q3.2.c** Starting ``eps`` away from a saddle, gradient descent, heavy-ball momentum, AdaDelta (Zeiler 2012)
  and Adam (Kingma & Ba 2015) from ``deepbasics.optim`` race to a loss below the saddle's.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from deepbasics.lab import Metric, Rule, experiment, save_figure

from ._q03_2_tanh_net import net_data, net_num_params, tanh_net_loss


# ------------------------------------------------------------------------------------------- Q3.2.c escape race
def _problems(params: dict, g: torch.Generator) -> dict:
    """name -> (batched loss theta (G, P) -> (G,), saddle point (P,), saddle loss, minimum loss)."""
    n = params["linear_width"]
    teacher = torch.randn(n, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    depth = params["linear_depth"]

    def double_well(theta):  # x^2 + y^4/4 - y^2/2: saddle (0, 0) at 0, minima (0, +-1) at -1/4
        return theta[:, 0] ** 2 + theta[:, 1] ** 4 / 4 - theta[:, 1] ** 2 / 2

    def deep_linear(theta):  # 1/(2n) ||W_L ... W_1 - M||_F^2, saddle at 0 (degenerate for L >= 3), minimum 0
        ws = theta.reshape(theta.shape[0], depth, n, n)
        prod = ws[:, 0]
        for i in range(1, depth):
            prod = ws[:, i] @ prod  # (G, n, n)
        return 0.5 * (prod - teacher).pow(2).sum((1, 2)) / n

    x, y = net_data(params, g)
    hidden = params["net_hidden"]
    p = net_num_params(x.shape[1], hidden)
    zero_net = torch.zeros(p, dtype=torch.float64)
    zero_net[-1] = y.mean()  # w = 0, b2 = mean(y): a strict saddle of every tanh net (grad = 0, H indefinite)

    def tanh_net(theta):
        return tanh_net_loss(theta, x, y, hidden)

    saddle_loss = float(tanh_net(zero_net[None])[0])
    return {
        "2-D double well": (double_well, torch.zeros(2, dtype=torch.float64), 0.0, -0.25),
        f"deep linear net (depth {depth})": (
            deep_linear,
            torch.zeros(depth * n * n, dtype=torch.float64),
            float(deep_linear(torch.zeros(1, depth * n * n, dtype=torch.float64))[0]),
            0.0,
        ),
        "tanh net (teacher-student)": (tanh_net, zero_net, saddle_loss, params["net_noise"] ** 2 / 2),
    }


_METHODS = ("gd", "momentum", "adadelta", "adam")
#: Seven learning rates per method, half a decade apart (three decades), each containing the method's usual
#: default (SGD 0.01-0.1, AdaDelta 1.0 as in Zeiler 2012 and torch, Adam 1e-3); declared before any run.
_LR_GRID = {
    "gd": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0],
    "momentum": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0],
    "adadelta": [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
    "adam": [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0],
}


def _optimizer(method: str, tensors: list[torch.Tensor], lrs: list[float]) -> torch.optim.Optimizer:
    from deepbasics import optim

    groups = [{"params": [t], "lr": lr} for t, lr in zip(tensors, lrs, strict=True)]  # one learning rate per row
    if method == "gd":
        return optim.SGD(groups, lr=lrs[0])
    if method == "momentum":
        return optim.SGD(groups, lr=lrs[0], momentum=0.9)
    if method == "adadelta":
        return optim.Adadelta(groups, lr=lrs[0])
    return optim.Adam(groups, lr=lrs[0])


def _escape_steps(
    loss_fn, start: torch.Tensor, method: str, lrs: list[float], threshold: float, max_steps: int, hold: int
):
    """Race every step size of the grid from ``start`` at once.

    A run has escaped at step t when its loss is <= ``threshold`` at steps t, t+1, ..., t+hold-1: a wild jump
    that lands below the threshold once does not count. Returns (the earliest such t over the grid, or None
    if no run escapes by ``max_steps``; the winning step size; the winner's loss curve, or the largest step
    size's if none escapes).
    """
    rows = [nn.Parameter(start.clone()) for _ in lrs]
    opt = _optimizer(method, rows, lrs)
    curves: list[list[float]] = [[] for _ in lrs]
    below = [0] * len(lrs)  # length of the current run of steps at or below the threshold
    for step in range(max_steps + hold):
        losses = loss_fn(torch.stack(rows))  # (G,)
        for i, v in enumerate(losses.detach().tolist()):
            curves[i].append(v)
            below[i] = below[i] + 1 if v <= threshold else 0
        done = [i for i, b in enumerate(below) if b >= hold]
        if done:
            best = done[0]  # all entered the region at step - hold + 1; ties go to the smallest step size
            return step - hold + 1, lrs[best], curves[best]
        if step - max(below) >= max_steps:  # no run can still escape by max_steps
            break
        opt.zero_grad()
        torch.where(torch.isfinite(losses), losses, torch.zeros_like(losses)).sum().backward()
        opt.step()
    return None, None, curves[-1]


def _plot_race(outputs, params, outdir):
    import matplotlib.pyplot as plt

    out = outputs[0]
    names = list(out["curves"])
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.8))
    for ax, name in zip(axes, names, strict=True):
        for i, method in enumerate(_METHODS):
            curve = out["curves"][name][method]
            lr = out["best_lr"][name][method]
            ax.plot(curve, color=f"C{i}", label=f"{method} (lr {lr:g})" if lr else f"{method} (not escaped)")
        ax.axhline(out["thresholds"][name], color="grey", ls=":", label="escape threshold")
        ax.set(xlabel="step", ylabel="loss", title=name)
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(left=0)
        ax.legend(fontsize=6)
    fig.suptitle(f"Q3.2.c: escaping from eps = {params['eps']:g} off a saddle (seed 0, best lr per method)", fontsize=9)
    fig.tight_layout()
    return [save_figure(fig, outdir, "saddle_escape_race")]


@experiment(
    ids=("Q3.2.c",),
    method="From a point eps away (random direction) from a saddle of a 2-D double well, of a deep linear net "
    "(0) and of a tanh net on teacher-student data (all weights 0, output bias at the mean), full-batch GD, "
    "momentum 0.9, AdaDelta and Adam (deepbasics.optim) each race a declared grid of learning rates; a run has "
    "escaped when the loss has covered half of the gap from the saddle's loss to the minimum's and stays there "
    "for `hold` steps. Steps of each "
    "method's best rate (max_steps when none escapes: a censored count) give speedup = steps(GD) / steps(method), "
    "geometric mean over the three problems; the judged number is the smaller of Adam's and AdaDelta's.",
    quick={
        "eps": 1e-3,
        "max_steps": 400,
        "hold": 10,
        "linear_width": 4,
        "linear_depth": 3,
        "net_in": 2,
        "net_hidden": 4,
        "net_teacher": 4,
        "net_samples": 32,
        "net_noise": 0.0,
        "lr_grid": _LR_GRID,
    },
    full={
        "eps": 1e-3,
        "max_steps": 5000,
        "hold": 10,
        "linear_width": 8,
        "linear_depth": 3,
        "net_in": 4,
        "net_hidden": 8,
        "net_teacher": 4,
        "net_samples": 128,
        "net_noise": 0.0,
        "lr_grid": _LR_GRID,
    },
    # "Faster": at least twice as few steps (geometric mean over the three problems) for EACH adaptive method,
    # so that neither a lucky grid point nor one problem decides; each grid spans three decades.
    rules={"Q3.2.c": Rule("adaptive_speedup", ">", 2.0, since="0.1.0")},
    metrics={
        "adaptive_speedup": Metric("slower of Adam and AdaDelta, speedup over gradient descent", unit="x"),
        "speedup_adam": Metric("Adam's speedup over gradient descent", unit="x"),
        "speedup_adadelta": Metric("AdaDelta's speedup over gradient descent", unit="x"),
        "speedup_momentum": Metric("momentum's speedup over gradient descent", unit="x"),
    },
    takeaways={
        "Q3.2.c": "starting next to a saddle, Adam leaves it {speedup_adam} faster than gradient descent, AdaDelta "
        "{speedup_adadelta} and momentum {speedup_momentum} (geometric means over three problems)",
    },
    seeds=3,
    timeout=600,
    plot=_plot_race,
)
def escape(params, seed):
    g = torch.Generator().manual_seed(seed)
    out = {"steps": {}, "best_lr": {}, "curves": {}, "thresholds": {}}
    for name, (loss_fn, saddle, saddle_loss, min_loss) in _problems(params, g).items():
        direction = torch.randn(saddle.shape, generator=g, dtype=saddle.dtype)
        start = saddle + params["eps"] * direction / direction.norm()
        threshold = saddle_loss - 0.5 * (saddle_loss - min_loss)
        out["thresholds"][name] = threshold
        out["steps"][name], out["best_lr"][name], out["curves"][name] = {}, {}, {}
        for method in _METHODS:
            steps, lr, curve = _escape_steps(
                loss_fn, start, method, params["lr_grid"][method], threshold, params["max_steps"], params["hold"]
            )
            out["steps"][name][method] = steps
            out["best_lr"][name][method] = lr
            out["curves"][name][method] = curve
    for method in _METHODS[1:]:
        ratios = [
            (s["gd"] or params["max_steps"]) / max(1, s[method] or params["max_steps"]) for s in out["steps"].values()
        ]
        out[f"speedup_{method}"] = float(np.exp(np.mean(np.log(ratios))))
        out[f"speedup_{method}_per_problem"] = ratios
    out["adaptive_speedup"] = min(out["speedup_adam"], out["speedup_adadelta"])
    out["best_lr_at_grid_top"] = sorted(
        f"{name}: {method}"
        for name, lrs in out["best_lr"].items()
        for method, lr in lrs.items()
        if lr is not None and lr == params["lr_grid"][method][-1]
    )
    out["escaped_fraction"] = float(np.mean([s is not None for steps in out["steps"].values() for s in steps.values()]))
    return out
