r"""Q1: how to set the initial weights: the distribution matters little, the scale matters a lot.

- **Q1.a** Gaussian vs uniform weights of the *same* variance (``deepbasics.init.glorot_normal_`` vs
  ``glorot_uniform_``, both ``Var(W) = 2 / (m + n)``) train a digits MLP to the same test accuracy.
- **Q1.b** Multiplying the Glorot standard deviation by 0.01 ... 10 changes the trained loss and accuracy
  by tens of points (Glorot & Bengio 2010; Sutskever et al. 2013, sec. 3).
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
- **Q1.f** Zero or constant weights make all hidden units compute and receive the same thing, so they stay
  identical for ever (Goodfellow, Bengio & Courville 2016, sec. 8.4).

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

from deepbasics.lab import Rule, experiment, save_figure

_ACTS = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda s: s, "sigmoid": torch.sigmoid}


# ------------------------------------------------------------------------------------------------ helpers
def _digits(seed: int, train_size: int | None = None) -> tuple[torch.Tensor, ...]:
    """Standardized digits: train inputs/labels, and the validation + test splits pooled as held-out data."""
    from deepbasics import data

    splits = data.digits(seed=seed, train_size=train_size, dtype=torch.float32)
    x, y = splits.tensors("train")
    xv, yv = splits.tensors("val")
    xt, yt = splits.tensors("test")
    return x, y, torch.cat([xv, xt]), torch.cat([yv, yt])  # (N, 64), (N,), (M, 64), (M,)


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
    rules={"Q1.a": Rule("abs_acc_diff_pp", "<", 1.5, spread="ci")},
    seeds=3,
    timeout=300,
    plot=_plot_distribution,
)
def distribution(params, seed):
    from deepbasics import init
    from deepbasics import nn as dnn

    x, y, xe, ye = _digits(seed)
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
    rules={"Q1.b": Rule("acc_gap_pp", ">", 10.0)},
    seeds=3,
    timeout=300,
    plot=_plot_scale,
)
def scale(params, seed):
    from deepbasics import init
    from deepbasics import nn as dnn

    x, y, xe, ye = _digits(seed)
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
        "Q1.c": Rule("glorot_worst_factor", "<", 5.0),
        "Q1.d": Rule("he_worst_factor", "<", 5.0),  # the same criterion for ReLU + He
    },
    seeds=3,
    timeout=300,
    plot=_plot_propagation,
)
def propagation(params, seed):
    x_all, _, _, _ = _digits(seed)
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
def _deep_linear_steps(
    depth: int, kind: str, teacher: torch.Tensor, params: dict, g: torch.Generator
) -> tuple[int | None, float, list[float]]:
    """Full-batch GD on ``1/2 ||W_L ... W_1 - M||_F^2`` (whitened inputs) for a grid of step sizes at once.

    Returns the fewest steps any grid step size needs to reach ``||P - M||^2 <= target ||M||^2`` (None if none
    does within ``max_steps``), the condition number of the product P at init, and its singular values.
    """
    from deepbasics import init, optim

    n = teacher.shape[0]
    lrs = torch.tensor([c / depth for c in params["lr_grid"]], dtype=teacher.dtype)  # (G,)
    grid = len(lrs)
    weights = []
    for _ in range(depth):
        w = torch.empty(n, n, dtype=teacher.dtype)
        if kind == "orthogonal":
            init.orthogonal_(w, generator=g)
        else:
            w.normal_(0.0, 1.0 / math.sqrt(n), generator=g)  # Var = 1/n: forward variance preserved on average
        weights.append(nn.Parameter(w.expand(grid, n, n).clone()))  # (G, n, n): the same init for every lr
    # lr_g enters the loss as a weight, so one SGD step with lr = 1 is W_g <- W_g - lr_g grad_g for every g.
    opt = optim.SGD(weights, lr=1.0)
    norm2 = float((teacher**2).sum())
    initial = None
    for step in range(params["max_steps"] + 1):
        prod = weights[0]
        for w in weights[1:]:
            prod = w @ prod  # (G, n, n)
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
        title="Q1.e: training time vs depth (best step size)",
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
    method="Deep linear nets W_L...W_1 (width n, whitened inputs) learn a random Gaussian teacher map M by "
    "full-batch gradient descent on 1/2 ||W_L...W_1 - M||_F^2 from random orthogonal or N(0, 1/n) weights; for "
    "each depth we race a declared grid of step sizes c/L and count the steps of the fastest to reach "
    "||P - M||^2 <= target ||M||^2. The judged number is steps(deepest)/steps(shallowest) for orthogonal "
    "init; the Gaussian's steps and the product's singular-value spread at init are the contrast.",
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
    rules={"Q1.e": Rule("orthogonal_depth_growth", "<", 3.0)},
    seeds=3,
    timeout=600,
    plot=_plot_orthogonal,
)
def orthogonal(params, seed):
    g = torch.Generator().manual_seed(seed)
    n = params["width"]
    teacher = torch.randn(n, n, generator=g, dtype=torch.float64) / math.sqrt(n)  # (n, n)
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
    rules={"Q1.f": Rule("max_unit_difference", "<", 1e-5)},
    seeds=3,
    timeout=300,
    plot=_plot_symmetry,
)
def symmetry(params, seed):
    from deepbasics import init
    from deepbasics import nn as dnn

    x, y, xe, ye = _digits(seed)
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
