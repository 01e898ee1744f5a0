r"""Q3.2 (part 1): saddle points: how common they are and what they look like.

- **Q3.2.a** In high dimension most critical points (``grad f = 0``) are saddles, and the fraction of negative
  Hessian eigenvalues (the index ``alpha``) grows with the value ``f`` (Bray & Dean 2007, PRL 98, 150201, for
  Gaussian random fields; Dauphin et al. 2014, "Identifying and attacking the saddle point problem", sec. 2-3,
  for network losses). Critical points are found by Newton's method on ``grad f = 0`` (all indices attract it).
- **Q3.2.b** At a saddle ``grad f = 0`` and ``H`` has eigenvalues of both signs (second-order test; checked with
  ``deepbasics.curvature.saddle_report``). The converse direction has an exception we report: a *degenerate*
  saddle such as a depth-3 linear net at 0 has ``H = 0``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from deepbasics.lab import Metric, Rule, experiment, save_figure

from ._q03_2_tanh_net import net_data, net_num_params, tanh_net_loss


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
    p = net_num_params(x.shape[1], hidden)

    def loss_one(theta):
        return tanh_net_loss(theta[None], x, y, hidden)[0]

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
    losses = tanh_net_loss(theta, x, y, hidden)
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
        "Q3.2.a": Rule("claim_margin", ">", 1.0, since="0.1.0"),
        # A characterization: every confirmed saddle (degenerate one aside) must pass the second-order test.
        "Q3.2.b": Rule("indefinite_fraction", ">=", 1.0, since="0.1.0"),
    },
    metrics={
        "claim_margin": Metric("worst of saddle share / 0.9 and rank correlation / 0.3"),
        "saddle_fraction": Metric("share of critical points that are saddles", unit="%", scale=100),
        "spearman": Metric("rank correlation of the saddle index with the function value"),
        "critical_points": Metric("critical points found"),
        "indefinite_fraction": Metric(
            "share of known saddles with a zero gradient and an indefinite Hessian", unit="%", scale=100
        ),
    },
    takeaways={
        "Q3.2.a": "{saddle_fraction} of the {critical_points} critical points found on a random high-dimensional "
        "function are saddles, and their share of downward directions rises with the function value (rank "
        "correlation {spearman})",
        "Q3.2.b": "{indefinite_fraction} of the saddles checked show a zero gradient and Hessian eigenvalues of both "
        "signs",
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
    x, y = net_data(params, g)
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
