r"""Q3.2: saddle points: how common they are, what they look like, and which optimizers leave them fast.

- **Q3.2.a** In high dimension most critical points (``grad f = 0``) are saddles, and the fraction of negative
  Hessian eigenvalues (the index ``alpha``) grows with the value ``f`` (Bray & Dean 2007, PRL 98, 150201, for
  Gaussian random fields; Dauphin et al. 2014, "Identifying and attacking the saddle point problem", sec. 2-3,
  for network losses). Critical points are found by Newton's method on ``grad f = 0`` (all indices attract it).
- **Q3.2.b** At a saddle ``grad f = 0`` and ``H`` has eigenvalues of both signs (second-order test; checked with
  ``deepbasics.curvature.saddle_report``). The converse direction has an exception we report: a *degenerate*
  saddle such as a depth-3 linear net at 0 has ``H = 0``.
- **Q3.2.c** Starting ``eps`` away from a saddle, gradient descent, heavy-ball momentum, AdaDelta (Zeiler 2012)
  and Adam (Kingma & Ba 2015) from ``deepbasics.optim`` race to a loss below the saddle's.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from deepbasics.lab import Rule, experiment, save_figure


# ----------------------------------------------------------------------------------------- test functions
class RandomField:
    r"""A random smooth function ``f(x) = sum_m a_m cos(w_m . x + phi_m)`` on ``R^d`` (random Fourier features).

    ``w_m ~ N(0, I_d)``, ``phi_m ~ U(0, 2 pi)``, ``a_m ~ N(0, 2/M)``: as ``M -> inf`` this is the stationary
    Gaussian field with covariance ``exp(-|x - y|^2 / 2)`` (Rahimi & Recht 2007), the model of Bray & Dean.
    :meth:`evaluate` returns ``f (K,)``, ``grad (K, d)`` and ``H (K, d, d)`` in closed form for ``x (K, d)``.
    """

    def __init__(self, dim: int, features: int, g: torch.Generator) -> None:
        self.w = torch.randn(features, dim, generator=g, dtype=torch.float64)  # (M, d)
        self.phi = torch.rand(features, generator=g, dtype=torch.float64) * 2 * math.pi  # (M,)
        self.a = torch.randn(features, generator=g, dtype=torch.float64) * math.sqrt(2.0 / features)  # (M,)
        self.outer = (self.w[:, :, None] * self.w[:, None, :]).flatten(1)  # (M, d * d): w_m w_m^T, one GEMM later

    def evaluate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = x @ self.w.T + self.phi  # (K, M)
        f = (self.a * torch.cos(z)).sum(1)  # (K,)
        grad = -(self.a * torch.sin(z)) @ self.w  # (K, d)
        d = self.w.shape[1]
        hess = -((self.a * torch.cos(z)) @ self.outer).view(-1, d, d)  # -sum_m a_m cos(z_km) w_m w_m^T, (K, d, d)
        return f, grad, hess


def _tanh_net_loss(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, hidden: int) -> torch.Tensor:
    """Half mean squared error of ``tanh`` nets ``x -> w2 . tanh(W1 x + b1) + b2`` for each row of ``theta``.

    ``theta`` (G, P) holds ``W1 (H, D), b1 (H,), w2 (1, H), b2 (1,)`` flattened in that order, the order of
    ``deepbasics.nn.mlp([D, H, 1], "tanh").parameters()``; returns (G,).
    """
    g, d = theta.shape[0], x.shape[1]
    w1 = theta[:, : hidden * d].reshape(g, hidden, d)
    b1 = theta[:, hidden * d : hidden * (d + 1)]
    w2 = theta[:, hidden * (d + 1) : hidden * (d + 2)]
    b2 = theta[:, -1]
    h = torch.tanh(torch.einsum("ghd,nd->gnh", w1, x) + b1[:, None, :])  # (G, N, H)
    pred = (h * w2[:, None, :]).sum(-1) + b2[:, None]  # (G, N)
    return 0.5 * (pred - y).pow(2).mean(1)


def _net_data(params: dict, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    from deepbasics import data

    x, y = data.teacher_student(
        params["net_samples"], params["net_in"], params["net_teacher"], params["net_noise"], g, dtype=torch.float64
    )
    return x, y[:, 0]  # (N, D), (N,)


def _num_params(d: int, hidden: int) -> int:
    return hidden * (d + 2) + 1


def _classify(eig: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index (fraction of eigenvalues < -t) and saddle flag (eigenvalues > t and < -t), t = 1e-6 max|lambda|."""
    t = 1e-6 * eig.abs().amax(-1, keepdim=True)
    neg, pos = (eig < -t).sum(-1), (eig > t).sum(-1)
    return neg.double() / eig.shape[-1], (neg > 0) & (pos > 0)


def _dedupe(points: torch.Tensor, values: torch.Tensor, tol: float) -> list[int]:
    """Indices of the first of each group of points closer than ``tol`` (in position and value)."""
    if len(points) == 0:
        return []
    near = (torch.cdist(points, points) <= tol) & ((values[:, None] - values[None, :]).abs() <= tol)  # (K, K)
    keep: list[int] = []
    for i in range(len(points)):
        if not any(bool(near[i, j]) for j in keep):
            keep.append(i)
    return keep


# ------------------------------------------------------------------------------------ critical-point searches
def _field_critical_points(params: dict, g: torch.Generator) -> dict:
    """Newton's method x <- x - H^-1 grad f (steps clipped to 0.5) from uniform starts in [-2, 2]^d."""
    field = RandomField(params["dim"], params["features"], g)
    x = (torch.rand(params["starts"], params["dim"], generator=g, dtype=torch.float64) * 2 - 1) * 2.0  # (K, d)
    for _ in range(params["newton_iters"]):
        _, grad, hess = field.evaluate(x)
        step = -torch.linalg.solve(hess, grad[..., None])[..., 0]  # (K, d)
        x = x + step * torch.clamp(0.5 / step.norm(dim=1, keepdim=True), max=1.0)  # a trust region of 0.5
    f, grad, hess = field.evaluate(x)
    critical = grad.norm(dim=1) < params["grad_tol"]
    keep = _dedupe(x[critical], f[critical], 1e-6)
    f, hess = f[critical][keep], hess[critical][keep]
    index, saddle = _classify(torch.linalg.eigvalsh(hess))
    return {"values": f.tolist(), "index": index.tolist(), "saddle": saddle.tolist(), "certified": int(critical.sum())}


def _net_critical_points(params: dict, x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> dict:
    """Levenberg-Marquardt on 1/2 |grad L|^2: (H^2 + lam I) step = -H grad (Gauss-Newton on the residual grad L).

    Newton-type steps are attracted by critical points of every index (Dauphin et al. 2014, sec. 4; Pennington &
    Bahri 2017). Points whose |grad L| stays above ``grad_tol`` are not critical and are dropped.
    """
    from torch.func import grad, hessian, vmap

    hidden = params["net_hidden"]
    p = _num_params(x.shape[1], hidden)

    def loss_one(theta):
        return _tanh_net_loss(theta[None], x, y, hidden)[0]

    grad_fn, hess_fn = vmap(grad(loss_one)), vmap(hessian(loss_one))
    k = params["net_starts"]
    scale = torch.exp(torch.empty(k, 1, dtype=torch.float64).uniform_(math.log(0.1), math.log(3.0), generator=g))
    theta = torch.randn(k, p, generator=g, dtype=torch.float64) * scale  # (K, P), starts at several scales
    lam = torch.full((k,), 1e-3, dtype=torch.float64)
    eye = torch.eye(p, dtype=torch.float64)
    gr = grad_fn(theta)
    gnorm = gr.norm(dim=1)
    for _ in range(params["lm_iters"]):
        h = hess_fn(theta)  # (K, P, P)
        step = -torch.linalg.solve(h @ h + lam[:, None, None] * eye, (h @ gr[..., None]))[..., 0]
        new = theta + step
        gr_new = grad_fn(new)
        better = gr_new.norm(dim=1) < gnorm
        theta = torch.where(better[:, None], new, theta)
        gr = torch.where(better[:, None], gr_new, gr)
        gnorm = gr.norm(dim=1)
        lam = torch.where(better, lam * 0.3, lam * 10.0).clamp(1e-12, 1e8)  # Marquardt's damping rule
    critical = gnorm < params["grad_tol"]
    losses = _tanh_net_loss(theta, x, y, hidden)
    keep = _dedupe(theta[critical], losses[critical], 1e-6)
    points, losses = theta[critical][keep], losses[critical][keep]
    index, saddle = _classify(torch.linalg.eigvalsh(hess_fn(points))) if len(points) else (torch.zeros(0),) * 2
    return {
        "points": points,
        "values": losses.tolist(),
        "index": index.tolist(),
        "saddle": [bool(s) for s in saddle],
        "certified": int(critical.sum()),
        "median_final_grad_norm": float(gnorm.median()),
    }


# --------------------------------------------------------------------------- models for the second-order test
class _Vector(nn.Module):
    """A 'model' whose output is its parameter vector, so that curvature tools see ``f(theta)`` as a loss."""

    def __init__(self, theta: torch.Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(theta.clone())

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.theta


def _canonical_saddles(params: dict, x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> dict:
    """(model, loss_fn, inputs, targets) at known saddles: x^2 - y^2, a depth-2 linear net at 0, the zero tanh net,
    and the degenerate depth-3 linear net at 0 (H = 0)."""
    from deepbasics import nn as dnn

    n = params["linear_width"]
    teacher = torch.randn(n, n, generator=g, dtype=torch.float64) / math.sqrt(n)  # (n, n)
    eye = torch.eye(n, dtype=torch.float64)  # whitened inputs: the rows of I

    def linear_net(depth):
        net = nn.Sequential(*[nn.Linear(n, n, bias=False, dtype=torch.float64) for _ in range(depth)])
        for layer in net:
            nn.init.zeros_(layer.weight)
        return net

    def linear_loss(out, target):
        return 0.5 * (out - target).pow(2).sum() / n  # 1/(2n) ||P - M||_F^2 with P^T = net(I)

    zero_net = dnn.mlp([x.shape[1], params["net_hidden"], 1], "tanh")
    with torch.no_grad():
        for p in zero_net.parameters():
            p.zero_()
        zero_net.linear2.bias.fill_(float(y.mean()))  # the only nonzero weight: the best constant prediction
    zero_net = zero_net.double()
    dummy = torch.zeros(1, 1, dtype=torch.float64)
    return {
        "x^2 - y^2": (_Vector(torch.zeros(2, dtype=torch.float64)), lambda o, t: o[0] ** 2 - o[1] ** 2, dummy, dummy),
        "linear net, depth 2, at 0": (linear_net(2), linear_loss, eye, teacher.T),
        "tanh net at 0": (zero_net, lambda o, t: 0.5 * (o[:, 0] - t).pow(2).mean(), x, y),
        "linear net, depth 3, at 0 (degenerate)": (linear_net(3), linear_loss, eye, teacher.T),
    }


def _value_witness(model: nn.Module, loss_fn, inputs, targets, eps: float, g: torch.Generator, directions: int):
    """Saddle by function values alone: some direction lowers f and some raises it, at distance ``eps``.

    Directions: the dense Hessian's eigenvectors (``deepbasics.autodiff.loss_hessian``) and random unit vectors
    (these catch third-order saddles whose Hessian is 0). Returns (lowest change, highest change).
    """
    from deepbasics import autodiff

    params = [p for p in model.parameters() if p.requires_grad]
    theta = nn.utils.parameters_to_vector(params).detach()
    _, vecs = torch.linalg.eigh(autodiff.loss_hessian(model, loss_fn, inputs, targets))
    rand = torch.randn(directions, len(theta), generator=g, dtype=theta.dtype)
    dirs = torch.cat([vecs.T, rand / rand.norm(dim=1, keepdim=True)])
    dirs = torch.cat([dirs, -dirs])  # (2 (P + R), P)
    changes = []
    with torch.no_grad():
        base = float(loss_fn(model(inputs), targets))
        for d in dirs:
            nn.utils.vector_to_parameters(theta + eps * d, params)
            changes.append(float(loss_fn(model(inputs), targets)) - base)
        nn.utils.vector_to_parameters(theta, params)
    return min(changes), max(changes)


def _second_order(model, loss_fn, inputs, targets, params: dict, g: torch.Generator) -> dict:
    from deepbasics import curvature

    low, high = _value_witness(model, loss_fn, inputs, targets, params["witness_eps"], g, params["witness_dirs"])
    report = curvature.saddle_report(
        model, loss_fn, inputs, targets, grad_tol=params["saddle_grad_tol"], generator=torch.Generator().manual_seed(0)
    )
    floor = 1e-12 * max(1.0, abs(report.loss))  # changes below this are rounding
    return {
        "saddle_by_values": low < -floor and high > floor,
        "verdict": report.verdict.value,
        "grad_norm": report.grad_norm,
        "lambda_min": report.lambda_min,
        "lambda_max": report.lambda_max,
        "indefinite": report.verdict.value == "saddle",
    }


def _plot_critical(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4))
    for seed, out in enumerate(outputs):
        ax1.scatter(
            out["field"]["values"],
            out["field"]["index"],
            s=8,
            alpha=0.6,
            label=f"seed {seed}: rho = {out['spearman']:.2f}, saddles {100 * out['saddle_fraction']:.0f}%",
        )
        net = out["net"]
        if net["values"]:
            ax2.scatter(net["values"], net["index"], s=25, alpha=0.7, label=f"seed {seed}: {len(net['values'])} points")
    ax1.set(
        xlabel="f at the critical point",
        ylabel="index (fraction of negative Hessian eigenvalues)",
        title=f"Q3.2.a: random field in {params['dim']} dims",
    )
    ax1.legend(fontsize=7)
    ax2.set(
        xlabel="training loss (1/2 MSE)",
        ylabel="index",
        title=f"tanh net {params['net_in']}-{params['net_hidden']}-1: certified critical points",
    )
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return [save_figure(fig, outdir, "critical_points_index_vs_value")]


@experiment(
    ids=("Q3.2.a", "Q3.2.b"),
    method="Q3.2.a: Newton's method from `starts` random points finds critical points (|grad| < grad_tol) of a "
    "random smooth function on R^dim (random-Fourier-feature Gaussian field), each classified by its Hessian "
    "eigenvalues; the judged number is min(saddle fraction / 0.9, Spearman(index, value) / 0.3), so both parts "
    "of the claim must pass. The same search (Levenberg-Marquardt on |grad L|^2) on a tiny tanh net with "
    "teacher-student data is reported. Q3.2.b: at x^2 - y^2, a depth-2 linear net at 0, the zero tanh net and "
    "up to `net_checked` saddles of the net, all confirmed as saddles by function values (f falls and rises "
    "within eps), deepbasics.curvature.saddle_report must find |grad| <= tol and eigenvalues of both signs; "
    "the degenerate depth-3 linear net at 0 is reported apart.",
    quick={
        "dim": 10,
        "features": 400,
        "starts": 128,
        "newton_iters": 40,
        "grad_tol": 1e-9,
        "net_in": 2,
        "net_hidden": 4,
        "net_teacher": 4,
        "net_samples": 32,
        "net_noise": 0.1,
        "net_starts": 24,
        "lm_iters": 40,
        "linear_width": 4,
        "witness_eps": 1e-3,
        "witness_dirs": 64,
        "saddle_grad_tol": 1e-6,
        "net_checked": 5,
    },
    full={
        "dim": 20,
        "features": 1000,
        "starts": 512,
        "newton_iters": 60,
        "grad_tol": 1e-9,
        "net_in": 2,
        "net_hidden": 4,
        "net_teacher": 4,
        "net_samples": 64,
        "net_noise": 0.1,
        "net_starts": 64,
        "lm_iters": 60,
        "linear_width": 6,
        "witness_eps": 1e-3,
        "witness_dirs": 256,
        "saddle_grad_tol": 1e-6,
        "net_checked": 20,
    },
    rules={
        # Both parts: "far more often saddles" = at least 9 saddles per minimum or maximum (fraction > 0.9), and
        # "the higher the loss, the more negative directions" = a rank correlation > 0.3, clearly above the
        # chance level of ~100 points (|rho| ~ 0.1). claim_margin = min(fraction / 0.9, rho / 0.3) > 1.
        "Q3.2.a": Rule("claim_margin", ">", 1.0),
        # A characterization: every confirmed saddle (degenerate one aside) must pass the second-order test.
        "Q3.2.b": Rule("indefinite_fraction", ">=", 1.0),
    },
    seeds=3,
    timeout=600,
    plot=_plot_critical,
)
def critical_points(params, seed):
    from scipy import stats

    g = torch.Generator().manual_seed(seed)
    field = _field_critical_points(params, g)
    if len(field["values"]) < 10:
        raise RuntimeError(f"only {len(field['values'])} critical points certified; raise starts or newton_iters")
    x, y = _net_data(params, g)
    net = _net_critical_points(params, x, y, g)
    checks = {}
    for name, (model, loss_fn, inputs, targets) in _canonical_saddles(params, x, y, g).items():
        checks[name] = _second_order(model, loss_fn, inputs, targets, params, g)
    from deepbasics import nn as dnn

    net_saddle_points = [pt for pt, is_saddle in zip(net["points"], net["saddle"], strict=True) if is_saddle]
    for i, point in enumerate(net_saddle_points[: params["net_checked"]]):
        model = dnn.mlp([x.shape[1], params["net_hidden"], 1], "tanh").double()
        nn.utils.vector_to_parameters(point, model.parameters())
        checks[f"tanh net critical point {i}"] = _second_order(
            model, lambda o, t: 0.5 * (o[:, 0] - t).pow(2).mean(), x, y, params, g
        )
    judged = {k: v for k, v in checks.items() if "degenerate" not in k and v["saddle_by_values"]}
    degenerate = checks["linear net, depth 3, at 0 (degenerate)"]
    net_saddles = sum(net["saddle"])
    spearman = float(stats.spearmanr(field["index"], field["values"]).statistic)
    saddle_fraction = float(np.mean(field["saddle"]))
    return {
        "claim_margin": min(saddle_fraction / 0.9, spearman / 0.3),
        "spearman": spearman,
        "saddle_fraction": saddle_fraction,
        "critical_points": len(field["values"]),
        "net_certified_points": len(net["values"]),
        "net_saddle_fraction": net_saddles / len(net["values"]) if net["values"] else None,
        "net_median_final_grad_norm": net["median_final_grad_norm"],
        "indefinite_fraction": float(np.mean([v["indefinite"] for v in judged.values()])),
        "saddles_checked": len(judged),
        "max_grad_norm_at_saddles": max(v["grad_norm"] for v in judged.values()),
        "degenerate_saddle_by_values": degenerate["saddle_by_values"],
        "degenerate_verdict": degenerate["verdict"],
        "degenerate_max_abs_eig": max(abs(degenerate["lambda_min"]), abs(degenerate["lambda_max"])),
        "checks": checks,
        "field": field,
        "net": {k: v for k, v in net.items() if k != "points"},
    }


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

    x, y = _net_data(params, g)
    hidden = params["net_hidden"]
    p = _num_params(x.shape[1], hidden)
    zero_net = torch.zeros(p, dtype=torch.float64)
    zero_net[-1] = y.mean()  # w = 0, b2 = mean(y): a strict saddle of every tanh net (grad = 0, H indefinite)

    def tanh_net(theta):
        return _tanh_net_loss(theta, x, y, hidden)

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
    rules={"Q3.2.c": Rule("adaptive_speedup", ">", 2.0)},
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
