r"""Q1 (part 2): initializations that keep signals and training speed constant with depth.

- **Q1.c** ``U(-a, a)``, ``a = sqrt(6 / (m + n))`` has ``Var(W) = a^2 / 3 = 2 / (m + n)``; with it the variance
  of activations ``Var(h_l)`` and of back-propagated gradients ``Var(dL/ds_l)`` (``s_l = W_l h_{l-1}``) stays
  roughly constant over the layers of a tanh or linear net, since ``Var(s_l) = m Var(W) Var(h_{l-1})`` and
  ``Var(dL/dh_{l-1}) = n Var(W) Var(dL/ds_l)`` (Glorot & Bengio 2010, sec. 4.2, eqs. 5-12).
- **Q1.d** For ReLU, ``Var(W) = 2 / fan_in`` (He et al. 2015, sec. 2.2, eq. 10) does the same; Glorot's
  variance, ``1 / n`` on square layers, halves the second moment at every layer instead.
- **Q1.e** Random orthogonal weights (``deepbasics.init.orthogonal_``) make the end-to-end map of a deep
  linear net an isometry, and its training time on a regression task barely changes with depth; scaled
  Gaussian weights (``N(0, 1/n)``) give products whose singular values spread exponentially with depth
  (Saxe, McClelland & Ganguli 2014, sec. 3-4).

Several same-shaped MLPs are trained at once as one batched model (``torch.func.stack_module_state`` +
``vmap``): the optimizers are elementwise and the loss is a sum of per-model losses, so this is exactly
independent training, only cheaper.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from deepbasics.lab import Metric, Revision, Rule, Task, experiment, save_figure

from ._q01_init import held_out_digits

_ACTS = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda s: s, "sigmoid": torch.sigmoid}


# ----------------------------------------------------------------------------- Q1.c / Q1.d propagation
def _profile(x: torch.Tensor, weights: list[torch.Tensor], act: str, g: torch.Generator) -> tuple[list, list]:
    """Per-layer Var(h_l) forward and Var(dL/ds_l) backward for ``L = sum_n u . h_L(x_n)``, u ~ N(0, I)."""
    h, pre, acts = x, [], []
    for w in weights:
        s = h @ w.T  # (N, n_l)
        s.retain_grad()
        h = _ACTS[act](s)
        pre.append(s)
        acts.append(h)
    u = torch.randn(h.shape[1], generator=g, dtype=h.dtype)  # a random linear read-out: dL/dh_L ~ u
    (h @ u).sum().backward()
    return [float(a.detach().var()) for a in acts], [float(s.grad.var()) for s in pre]


def _factor(profile: list[float]) -> float:
    """How far the last layer is from the first, as a factor >= 1: max(r, 1/r), r = last / first."""
    r = profile[-1] / profile[0]
    return max(r, 1.0 / r) if r > 0 else math.inf


_SCHEMES = {
    # name: (activation, weight filler(w, g)); "standard" is Glorot & Bengio's contrast U(+-1/sqrt(m)).
    "linear / Glorot": ("linear", "glorot"),
    "tanh / Glorot": ("tanh", "glorot"),
    "tanh / standard U(+-1/sqrt(m))": ("tanh", "standard"),
    "tanh / N(0, 1)": ("tanh", "std1"),
    "tanh / N(0, 0.01^2)": ("tanh", "std0.01"),
    "relu / He": ("relu", "he"),
    "relu / Glorot": ("relu", "glorot"),
}


def _fill(kind: str, w: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    from deepbasics import init

    if kind == "glorot":
        return init.glorot_uniform_(w, generator=g)
    if kind == "he":
        return init.he_normal_(w, generator=g)
    if kind == "standard":
        bound = 1.0 / math.sqrt(w.shape[1])
        return w.uniform_(-bound, bound, generator=g)
    return w.normal_(0.0, 1.0 if kind == "std1" else 0.01, generator=g)


def _plot_propagation(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    layers = np.arange(1, params["depth"] + 1)
    for i, name in enumerate(_SCHEMES):
        acts = np.exp(np.mean([np.log(out["act_var"][name]) for out in outputs], axis=0))
        grads = np.exp(np.mean([np.log(out["grad_var"][name]) for out in outputs], axis=0))
        style = "-" if ("Glorot" in name and "relu" not in name) or "He" in name else "--"
        axes[0].semilogy(layers, acts / acts[0], style, marker="o", color=f"C{i}", label=name)
        axes[1].semilogy(layers[::-1], grads[::-1] / grads[-1], style, marker="o", color=f"C{i}")
    for ax in axes:
        ax.axhspan(1 / params["factor"], params["factor"], color="grey", alpha=0.15)
    axes[0].set(
        xlabel="hidden layer l (input side = 1)",
        ylabel="Var(h_l) / Var(h_1)",
        title="Q1.c/d: activation variance, forward",
    )
    axes[1].set(
        xlabel="hidden layer l (read backwards from l = L)",
        ylabel="Var(dL/ds_l) / Var(dL/ds_L)",
        title="back-propagated gradient variance",
    )
    axes[1].invert_xaxis()
    axes[0].legend(fontsize=7)
    fig.suptitle(f"geometric mean over seeds; grey band: within a factor {params['factor']:g}", fontsize=8)
    fig.tight_layout()
    return [save_figure(fig, outdir, "variance_per_layer")]


@experiment(
    ids=("Q1.c", "Q1.d"),
    method="Glorot & Bengio's setting: standardized digits go through `depth` square hidden layers of `width` "
    "units; we measure Var(W) of deepbasics.init.glorot_uniform_ against 2/(m+n), the variance of each layer's "
    "activations, and of the gradient w.r.t. each layer's pre-activations back-propagated from a random linear "
    "read-out. The judged number is the largest factor by which the last layer differs from the first (and the "
    "measured Var(W) from 2/(m+n)): Glorot with tanh and linear units for Q1.c, He with ReLU for Q1.d; "
    "Glorot's 'standard' U(+-1/sqrt(m)), N(0,1), N(0,1e-4) and Glorot with ReLU are the contrasts.",
    quick={"depth": 5, "width": 256, "samples": 512, "factor": 5.0},
    full={"depth": 5, "width": 512, "samples": 512, "factor": 5.0},
    rules={
        # "Roughly constant": last/first within a factor 5 over the 5 layers of Glorot & Bengio's nets, where
        # their 'standard' init U(+-1/sqrt(m)) shrinks the variance 3x per layer, ~80x in all.
        "Q1.c": Rule("glorot_worst_factor", "<", 5.0, since="0.1.0"),
        "Q1.d": Rule("he_worst_factor", "<", 5.0, since="0.1.0"),  # the same criterion for ReLU + He
    },
    metrics={
        "glorot_worst_factor": Metric(
            "largest first-to-last layer variance factor, Glorot init, tanh and linear", unit="x"
        ),
        "he_worst_factor": Metric("largest first-to-last layer variance factor, He init, ReLU", unit="x"),
        "glorot_relu_per_layer_ratio": Metric("second moment per layer, Glorot init with ReLU", unit="x"),
        "standard_tanh_factor": Metric(
            "largest variance factor, the older U(-1/sqrt(m), 1/sqrt(m)) with tanh", unit="x"
        ),
    },
    takeaways={
        "Q1.c": "with Glorot's initialization the activation and gradient variances of a deep tanh or linear net "
        "change by at most {glorot_worst_factor} from the first layer to the last; the older 'standard' "
        "initialization changes them by {standard_tanh_factor}",
        "Q1.d": "with He's initialization a deep ReLU net's variances change by at most {he_worst_factor} over its "
        "depth; Glorot's variance with ReLU multiplies the second moment by {glorot_relu_per_layer_ratio} at every "
        "layer",
    },
    seeds=3,
    timeout=300,
    plot=_plot_propagation,
)
def propagation(params, seed):
    x_all, _, _, _ = held_out_digits(seed)
    g = torch.Generator().manual_seed(seed)
    x = x_all[torch.randperm(len(x_all), generator=g)[: params["samples"]]]  # (N, 64)
    depth, width = params["depth"], params["width"]
    sizes = [x.shape[1]] + [width] * depth
    out = {"act_var": {}, "grad_var": {}, "act_factor": {}, "grad_factor": {}}
    var_check = []
    for name, (act, kind) in _SCHEMES.items():
        weights = [_fill(kind, torch.empty(sizes[i + 1], sizes[i]), g).requires_grad_() for i in range(depth)]
        if kind == "glorot":
            # one large matrix per seed checks Var(W) = 2/(m+n) with a sampling error ~ sqrt(2/(m n)) ~ 0.5%
            w = _fill(kind, torch.empty(width, 4 * width, dtype=torch.float64), g)
            var_check.append(float(w.var()) / (2.0 / (5 * width)))
        acts, grads = _profile(x, weights, act, g)
        out["act_var"][name], out["grad_var"][name] = acts, grads
        out["act_factor"][name], out["grad_factor"][name] = _factor(acts), _factor(grads)
    var_factor = max(max(v, 1 / v) for v in var_check)
    glorot = [out[k][n] for k in ("act_factor", "grad_factor") for n in ("linear / Glorot", "tanh / Glorot")]
    out["glorot_var_ratio"] = var_check[0]
    out["glorot_worst_factor"] = max([*glorot, var_factor])
    out["he_worst_factor"] = max(out["act_factor"]["relu / He"], out["grad_factor"]["relu / He"])
    ratios = np.array(out["act_var"]["relu / Glorot"])
    out["glorot_relu_per_layer_ratio"] = float(np.exp(np.polyfit(np.arange(depth), np.log(ratios), 1)[0]))
    out["standard_tanh_factor"] = out["act_factor"]["tanh / standard U(+-1/sqrt(m))"]
    return out


# ------------------------------------------------------------------------------------ Q1.e orthogonal
def _teacher(params: dict, seed: int, g: torch.Generator) -> torch.Tensor:
    """The map M (out, in) the deep linear net learns from whitened inputs, so that the loss is 1/2 ||P - M||_F^2.

    ``linear_teacher``: a random Gaussian n x n matrix with N(0, 1/n) entries. ``digits``: the input-output
    correlation ``Sigma_yx = E[y z^T]`` of the 8x8 digits with one-hot labels ``y`` and PCA-whitened pixels ``z``
    (Saxe et al. 2014, sec. 2: with whitened inputs the squared error depends on the weights only through
    ``||W_L...W_1 - Sigma_yx||_F^2``, up to a constant); 10 x 61 of rank 9 (3 of the 64 pixels are constant).
    """
    if params["task"] == "linear_teacher":
        n = params["width"]
        return torch.randn(n, n, generator=g, dtype=torch.float64) / math.sqrt(n)  # (n, n)
    from deepbasics import data

    splits = data.digits(seed=seed, val_fraction=0.0, test_fraction=0.0, dtype=torch.float64)
    x, y = splits.tensors("train")  # (N, 64), (N,)
    x = x - x.mean(0)
    evals, evecs = torch.linalg.eigh(x.T @ x / len(x))
    keep = evals > 1e-8 * evals.max()  # drop the constant border pixels
    z = x @ evecs[:, keep] / evals[keep].sqrt()  # (N, d) with E[z z^T] = I
    return torch.nn.functional.one_hot(y, 10).to(z.dtype).T @ z / len(z)  # (10, d)


def _deep_linear_steps(
    depth: int, kind: str, teacher: torch.Tensor, params: dict, g: torch.Generator
) -> tuple[int | None, float, list[float]]:
    """Full-batch GD on ``1/2 ||W_L ... W_1 - M||_F^2`` (whitened inputs) for a grid of step sizes at once.

    Layer sizes ``in -> width x (L - 1) -> out`` for ``M`` of shape ``(out, in)``. Returns the fewest steps any
    grid step size needs to reach ``||P - M||^2 <= target ||M||^2`` (None if none does within ``max_steps``),
    the condition number of the product P at init (over its ``min(out, in)`` singular values), and those values.
    """
    from deepbasics import init, optim

    out_dim, in_dim = teacher.shape
    sizes = [in_dim] + [params["width"]] * (depth - 1) + [out_dim]
    lrs = torch.tensor([c / depth for c in params["lr_grid"]], dtype=teacher.dtype)  # (G,)
    grid = len(lrs)
    weights = []
    for i in range(depth):
        w = torch.empty(sizes[i + 1], sizes[i], dtype=teacher.dtype)
        if kind == "orthogonal":
            init.orthogonal_(w, generator=g)
        else:
            w.normal_(0.0, 1.0 / math.sqrt(sizes[i]), generator=g)  # Var = 1/fan_in: forward variance preserved
        weights.append(nn.Parameter(w.expand(grid, *w.shape).clone()))  # (G, out, in): the same init for every lr
    # lr_g enters the loss as a weight, so one SGD step with lr = 1 is W_g <- W_g - lr_g grad_g for every g.
    opt = optim.SGD(weights, lr=1.0)
    norm2 = float((teacher**2).sum())
    initial = None
    for step in range(params["max_steps"] + 1):
        prod = weights[0]
        for w in weights[1:]:
            prod = w @ prod  # (G, out, in)
        residual = ((prod - teacher) ** 2).sum((1, 2))  # (G,)
        rel = residual.detach() / norm2
        if initial is None:
            sv = torch.linalg.svdvals(prod[0].detach())
            initial = rel.clone()
        if bool((rel <= params["target"]).any()):
            return step, float(sv[0] / sv[-1]), sv.tolist()
        if step == params["max_steps"]:
            break
        alive = torch.isfinite(rel) & (rel < 1e3 * initial)  # diverged step sizes drop out of the race
        if not bool(alive.any()):
            break
        opt.zero_grad()
        (0.5 * torch.where(alive, lrs * residual, torch.zeros_like(residual))).sum().backward()
        opt.step()
    return None, float(sv[0] / sv[-1]), sv.tolist()


def _plot_orthogonal(outputs, params, outdir):
    import matplotlib.pyplot as plt

    from deepbasics.lab.tasks import TASKS

    depths = params["depths"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for seed, out in enumerate(outputs):
        for kind, color in (("orthogonal", "C0"), ("gaussian", "C3")):
            steps = np.array([s if s is not None else np.nan for s in out[f"steps_{kind}"]], dtype=float)
            ax1.loglog(depths, steps, "o-", color=color, alpha=0.7, label=kind if seed == 0 else None)
            failed = [d for d, s in zip(depths, out[f"steps_{kind}"], strict=True) if s is None]
            ax1.scatter(failed, [params["max_steps"]] * len(failed), marker="^", color=color)
            ax2.semilogy(depths, out[f"cond_{kind}"], "o-", color=color, alpha=0.7, label=kind if seed == 0 else None)
    ax1.axhline(params["max_steps"], color="grey", ls=":", label="step budget (triangles: not reached)")
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xticks(depths, [str(d) for d in depths])
        ax.minorticks_off()
    ax1.set(
        xlabel="depth L (layers)",
        ylabel=f"GD steps to ||P-M||^2 <= {params['target']:g} ||M||^2",
        title=f"Q1.e on {TASKS[params['task']].label}: training time vs depth (best step size)",
    )
    ax1.legend(fontsize=7)
    ax2.set(
        xlabel="depth L (layers)",
        ylabel="sigma_max / sigma_min of W_L...W_1 at init",
        title="singular-value spread of the product at init",
    )
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return [save_figure(fig, outdir, "deep_linear_depth")]


@experiment(
    ids=("Q1.e",),
    method="Deep linear nets W_L...W_1 learn a map M from whitened inputs by full-batch gradient descent on "
    "1/2 ||W_L...W_1 - M||_F^2 from random orthogonal or N(0, 1/fan_in) weights. M is a random Gaussian n x n teacher "
    "(hidden width n), or the input-output correlation of the whitened 8x8 digits (10 x 61, hidden width 64). For "
    "each depth we race a declared grid of step sizes c/L and count the steps of the fastest to reach "
    "||P - M||^2 <= target ||M||^2. The judged number is steps(deepest)/steps(shallowest) for orthogonal "
    "init; the Gaussian's steps and the product's singular-value spread at init are the contrast.",
    tasks=(
        Task(
            "linear_teacher",
            applies=True,
            why="Saxe et al. (2014, sec. 3) derive depth-independent learning for deep linear nets from "
            "orthogonal (decoupled) initial conditions on any input-output map; a random square map is the "
            "simplest one.",
        ),
        Task(
            "digits",
            applies=True,
            detail="whitened input-output map, deep linear net",
            why="Saxe et al. (2014, sec. 2 and their MNIST experiments) learn the input-output correlation of real "
            "data with deep linear nets of constant hidden width and compare orthogonal with scaled Gaussian "
            "initial weights over depth; this is that setting on the 8x8 digits.",
            # The step-size grid reaches 8/L: with the base grid's 2/L the fastest step size sat on the grid's upper
            # edge at every depth of a seed-0 prototype (see the rule's history).
            # quick: 120 steps (orthogonal nets fit within 40 here; slower Gaussian nets count as a lower bound)
            quick={
                "depths": [2, 8, 32],
                "width": 64,
                "lr_grid": [0.707, 1.0, 1.414, 2.0, 2.83, 4.0, 5.66, 8.0],
                "max_steps": 120,
            },
            full={
                "depths": [2, 4, 8, 16, 32],
                "width": 64,
                "lr_grid": [0.25, 0.354, 0.5, 0.707, 1.0, 1.414, 2.0, 2.83, 4.0, 5.66, 8.0],
                "max_steps": 500,
            },
        ),
    ),
    quick={
        "depths": [2, 4, 8, 16, 32],
        "width": 16,
        "lr_grid": [0.25, 0.354, 0.5, 0.707, 1.0, 1.414],
        "target": 0.01,
        "max_steps": 300,
    },
    full={
        "depths": [2, 3, 4, 6, 8, 12, 16, 24, 32],
        "width": 24,
        "lr_grid": [0.125, 0.177, 0.25, 0.354, 0.5, 0.707, 1.0, 1.414, 2.0],
        "target": 0.01,
        "max_steps": 500,
    },
    # "Does not degrade with depth": 16x more layers may cost at most 3x the steps (the step-size grid is only
    # resolved to a factor sqrt 2); a time growing in proportion to depth would give 16x.
    rules={
        "Q1.e": Rule(
            "orthogonal_depth_growth",
            "<",
            3.0,
            since="0.1.0",
            history=(
                Revision(
                    changed_in="0.2.0",
                    what="params",
                    was="one task (random Gaussian teacher); the digits task was first prototyped on seed 0 with the "
                    "base step-size grid c/L, c = 0.125 ... 2",
                    reason="on that prototype the fastest step size was the grid's largest at every depth, so the grid "
                    "did not resolve the optimum the rule assumes; the digits task's grid was extended to c = 8 "
                    "before its lab runs (the prototype had seen orthogonal growth 3.6x from depth 2 to 32).",
                ),
            ),
        )
    },
    metrics={
        "orthogonal_depth_growth": Metric("steps to fit, deepest over shallowest net, orthogonal init", unit="x"),
        "gaussian_depth_growth": Metric("steps to fit, deepest over shallowest net, Gaussian init", unit="x"),
    },
    takeaways={
        "Q1.e": "a deep linear net with orthogonal initial weights needs {orthogonal_depth_growth} the steps at the "
        "largest depth than at the smallest (Gaussian weights: {gaussian_depth_growth}, a lower bound where the "
        "step budget ran out)",
    },
    seeds=3,
    timeout=600,
    plot=_plot_orthogonal,
)
def orthogonal(params, seed):
    g = torch.Generator().manual_seed(seed)
    teacher = _teacher(params, seed, g)
    out = {}
    for kind in ("orthogonal", "gaussian"):
        steps, conds = [], []
        for depth in params["depths"]:
            s, cond, _ = _deep_linear_steps(depth, kind, teacher, params, g)
            steps.append(s)
            conds.append(cond)
        out[f"steps_{kind}"], out[f"cond_{kind}"] = steps, conds
        capped = [params["max_steps"] if s is None else s for s in steps]  # not reached: a lower bound
        out[f"{kind}_depth_growth"] = capped[-1] / capped[0]
        out[f"{kind}_growth_second_half"] = capped[-1] / capped[len(capped) // 2]  # reported, not judged
        out[f"{kind}_reached_all"] = float(all(s is not None for s in steps))
    return out
