r"""Q3.1 (part 2): what else lowers the iteration count, and where ill-conditioning comes from.

With ``H`` the Hessian, ``kappa = lambda_max(H) / lambda_min(H)``. On ``f(x) = 1/2 (x - x*)^T A (x - x*)``
(:class:`deepbasics.optim.quadratic.Quadratic`, eigenvalues log-spaced in ``[1, kappa]``):

- **Q3.1.c** momentum (Polyak's heavy ball, ``~ sqrt(kappa)`` steps), a step-size schedule (cyclic Chebyshev
  steps ``1/nu_i`` at the Chebyshev nodes ``nu_i`` of ``[mu, L]``: Young 1953; Agarwal, Goel & Zhang 2021) and
  mini-batch SGD (many updates per pass over the data; Bottou, Curtis & Nocedal 2018, sec. 4) each need fewer
  iterations / passes than plain gradient descent.
- **Q3.1.d** a network's Hessian inherits the scale of its inputs: for logistic regression
  ``H = 1/N sum_n p_n (1 - p_n) x~_n x~_n^T`` with ``x~ = (x, 1)``, so features whose standard deviations span
  ``3e-3 .. 6e2`` (breast cancer, raw) give eigenvalues spread by their squares (LeCun et al. 1998,
  "Efficient BackProp", sec. 4.3).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from deepbasics.lab import Metric, Rule, experiment, save_figure

from ._q03_1_quadratic import quadratic_problem


# --------------------------------------------------------------------------------- Q3.1.c SGD, schedule, momentum
def chebyshev_steps(lam_min: float, lam_max: float, period: int) -> list[float]:
    """Step sizes ``1 / nu_i`` at the ``period`` Chebyshev nodes of ``[lam_min, lam_max]``, in a stable order.

    ``nu_i = (L + mu)/2 + (L - mu)/2 cos((2i - 1) pi / (2 period))``: after one period the error polynomial
    ``prod_i (1 - lambda / nu_i)`` is the Chebyshev polynomial scaled to 1 at 0, whose maximum over
    ``[mu, L]`` is ``1 / T_period((L + mu)/(L - mu))`` (Young 1953). Large and small steps alternate so that
    the transient growth of the stiff components stays bounded.
    """
    nodes = [
        (lam_max + lam_min) / 2 + (lam_max - lam_min) / 2 * math.cos((2 * i - 1) * math.pi / (2 * period))
        for i in range(1, period + 1)
    ]  # descending
    order, lo, hi = [], 0, period - 1
    while lo <= hi:
        order.append(lo)  # a small step (large node) first, then a large one
        lo += 1
        if lo <= hi:
            order.append(hi)
            hi -= 1
    return [1.0 / nodes[i] for i in order]


def _scheduled_gd(q, x0: torch.Tensor, steps: list[float], tol: float, max_iter: int) -> tuple[int | None, list]:
    """Gradient descent on a Quadratic with ``deepbasics.optim.SGD`` and a periodic LambdaLR schedule."""
    from deepbasics import optim

    x = torch.nn.Parameter(x0.clone())
    opt = optim.SGD([x], lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: steps[t % len(steps)])
    e0 = float((x0 - q.optimum).norm())
    errors = [1.0]
    for t in range(1, max_iter + 1):
        x.grad = q.grad(x.detach())
        opt.step()
        sched.step()
        errors.append(float((x.detach() - q.optimum).norm()) / e0)
        if errors[-1] <= tol:
            return t, errors
    return None, errors


def _regression(params: dict, g: torch.Generator):
    """Least squares on badly scaled features: x_j = s_j z_j, s_j log-spaced in [1, sqrt(kappa)], y = x.w + noise."""
    n, d = params["samples"], params["features"]
    scales = torch.logspace(0, 0.5 * math.log10(params["kappa"]), d, dtype=torch.float64)  # (d,)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * scales  # (N, d)
    y = x @ torch.randn(d, generator=g, dtype=torch.float64) + params["noise"] * torch.randn(
        n, generator=g, dtype=torch.float64
    )  # (N,)
    h = x.T @ x / n  # Hessian of 1/(2N) ||X w - y||^2, (d, d)
    w_opt = torch.linalg.solve(h, x.T @ y / n)
    return x, y, h, w_opt


def _sgd_epochs(x, y, h, w_opt, lr: float, batch: int, target: float, max_epochs: int, g) -> tuple[float | None, list]:
    """Passes over the data (fractional) until the excess loss is <= target of its initial value."""
    from deepbasics import optim

    n, d = x.shape
    w = torch.nn.Parameter(torch.zeros(d, dtype=torch.float64))
    opt = optim.SGD([w], lr=lr)

    def excess() -> float:
        e = w.detach() - w_opt
        return float(e @ h @ e) / 2

    e0 = excess()
    per_epoch = n // batch
    curve = [1.0]
    for epoch in range(max_epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(per_epoch):
            idx = perm[i * batch : (i + 1) * batch]
            opt.zero_grad()
            (0.5 * (x[idx] @ w - y[idx]).pow(2).mean()).backward()
            opt.step()
            rel = excess() / e0
            if not math.isfinite(rel) or rel > 1e6:
                return None, curve
            if i == per_epoch - 1 or rel <= target:
                curve.append(rel)
            if rel <= target:
                return epoch + (i + 1) / per_epoch, curve
    return None, curve


def _gd_epochs(h, w_opt, lr: float, target: float, max_iter: int) -> tuple[int | None, list]:
    """Full-batch gradient descent on the same least squares (one iteration = one pass over the data)."""
    w = torch.zeros_like(w_opt)
    e0 = float(w_opt @ h @ w_opt) / 2
    curve = [1.0]
    for t in range(1, max_iter + 1):
        w = w - lr * (h @ (w - w_opt))  # the full-batch gradient X^T (X w - y) / N = H (w - w_opt)
        curve.append(float((w - w_opt) @ h @ (w - w_opt)) / 2 / e0)
        if curve[-1] <= target:
            return t, curve
    return None, curve


def _plot_accel(outputs, params, outdir):
    import matplotlib.pyplot as plt

    out = outputs[0]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4))
    for name, color in (("gd", "C0"), ("heavy_ball", "C1"), ("chebyshev", "C2")):
        ax1.semilogy(out["quad_errors"][name], color=color, label=name.replace("_", " "))
    ax1.axhline(params["tol"], color="grey", ls=":")
    ax1.set(
        xlabel="iteration (one full gradient each)",
        ylabel="||x - x*|| / ||x0 - x*||",
        title=f"Q3.1.c: quadratic, kappa = {params['kappa']:g} (seed 0)",
    )
    ax1.legend(fontsize=7)
    ax2.semilogy(np.arange(len(out["reg_gd_curve"])), out["reg_gd_curve"], "C0", label="full-batch GD")
    ax2.semilogy(
        np.arange(len(out["reg_sgd_curve"])), out["reg_sgd_curve"], "C3", label=f"SGD, batch {params['batch']}"
    )
    ax2.axhline(params["target"], color="grey", ls=":", label="target")
    ax2.set(
        xlabel="passes over the data (epochs)",
        ylabel="excess loss / initial excess loss",
        title="least squares, badly scaled features",
    )
    ax2.set_xlim(0, min(len(out["reg_gd_curve"]), 4 * len(out["reg_sgd_curve"]) + 10))
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return [save_figure(fig, outdir, "sgd_schedule_momentum")]


@experiment(
    ids=("Q3.1.c",),
    method="On a random quadratic of condition number `kappa`, gradient descent with its optimal constant step is "
    "compared with Polyak's heavy ball (optimal parameters) and with a periodic step-size schedule (cyclic "
    "Chebyshev steps, period 8, via torch's LambdaLR on deepbasics.optim.SGD), in iterations to tol. On least "
    "squares with features scaled over sqrt(kappa), full-batch GD (optimal step) is compared with mini-batch "
    "SGD (best step of `sgd_lr_grid` / L) in passes over the data to reach `target` relative excess loss. "
    "The judged number is the smallest of the three speedups; SGD's speedup per update is reported too.",
    quick={
        "kappa": 100,
        "dim": 20,
        "tol": 1e-6,
        "period": 8,
        "samples": 1024,
        "features": 10,
        "noise": 0.5,
        "batch": 32,
        "target": 1e-3,
        "sgd_lr_grid": [0.25, 0.5, 1.0, 2.0, 4.0],
        "max_epochs": 30,
    },
    full={
        "kappa": 1000,
        "dim": 100,
        "tol": 1e-8,
        "period": 8,
        "samples": 4096,
        "features": 20,
        "noise": 0.5,
        "batch": 32,
        "target": 1e-3,
        "sgd_lr_grid": [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
        "max_epochs": 100,
    },
    # "Reduce the iterations": at least a third fewer (ratio > 1.5) for each of the three, in every seed.
    rules={"Q3.1.c": Rule("min_speedup", ">", 1.5, since="0.1.0")},
    metrics={
        "min_speedup": Metric("smallest speedup over gradient descent of momentum, a step schedule and SGD", unit="x"),
        "speedup_momentum": Metric("speedup of heavy-ball momentum", unit="x"),
        "speedup_schedule": Metric("speedup of a Chebyshev step schedule", unit="x"),
        "speedup_sgd_epochs": Metric("speedup of mini-batch SGD, in passes over the data", unit="x"),
    },
    takeaways={
        "Q3.1.c": "against plain gradient descent, heavy-ball momentum needs {speedup_momentum} fewer iterations, a "
        "Chebyshev step schedule {speedup_schedule} fewer, and mini-batch SGD {speedup_sgd_epochs} fewer passes "
        "over the data",
    },
    seeds=3,
    timeout=300,
    plot=_plot_accel,
)
def acceleration(params, seed):
    from deepbasics.optim import quadratic

    g = torch.Generator().manual_seed(seed)
    q, x0 = quadratic_problem(params["kappa"], params["dim"], g)
    tol = params["tol"]
    gd = quadratic.gradient_descent(q, x0, tol=tol, max_iter=100_000)
    hb = quadratic.heavy_ball(q, x0, tol=tol, max_iter=100_000)
    steps = chebyshev_steps(q.lambda_min, q.lambda_max, params["period"])
    cheb, cheb_errors = _scheduled_gd(q, x0, steps, tol, gd.iterations)
    x, y, h, w_opt = _regression(params, g)
    eig = torch.linalg.eigvalsh(h)
    lam_min, lam_max = float(eig[0]), float(eig[-1])
    gd_epochs, gd_curve = _gd_epochs(h, w_opt, 2.0 / (lam_max + lam_min), params["target"], 100_000)
    best, best_curve, best_c = None, [], None
    for c in params["sgd_lr_grid"]:
        epochs, curve = _sgd_epochs(
            x,
            y,
            h,
            w_opt,
            c / lam_max,
            params["batch"],
            params["target"],
            params["max_epochs"],
            torch.Generator().manual_seed(seed),
        )
        if epochs is not None and (best is None or epochs < best):
            best, best_curve, best_c = epochs, curve, c
    updates_per_epoch = params["samples"] // params["batch"]
    speedup_sgd = gd_epochs / (best if best is not None else params["max_epochs"])  # censored: a lower bound
    speedups = {
        "momentum": gd.iterations / hb.iterations,
        "schedule": gd.iterations / (cheb if cheb is not None else gd.iterations),
        "sgd_epochs": speedup_sgd,
    }
    return {
        "min_speedup": min(speedups.values()),
        "speedup_momentum": speedups["momentum"],
        "speedup_schedule": speedups["schedule"],
        "speedup_sgd_epochs": speedups["sgd_epochs"],
        "speedup_sgd_updates": gd_epochs / (best * updates_per_epoch) if best is not None else 0.0,
        "sgd_best_lr_times_L": best_c,
        "regression_kappa": lam_max / lam_min,
        "iterations": {"gd": gd.iterations, "heavy_ball": hb.iterations, "chebyshev": cheb},
        "epochs": {"gd": gd_epochs, "sgd": best},
        "quad_errors": {"gd": gd.errors.tolist(), "heavy_ball": hb.errors.tolist(), "chebyshev": cheb_errors},
        "reg_gd_curve": gd_curve,
        "reg_sgd_curve": best_curve,
    }


# ------------------------------------------------------------------------------- Q3.1.d inputs and the Hessian
def _logistic(train_x: torch.Tensor, train_y: torch.Tensor, steps: int, lr: float) -> tuple[torch.nn.Module, float]:
    from deepbasics import optim

    model = torch.nn.Linear(train_x.shape[1], 1, dtype=torch.float64)
    torch.nn.init.zeros_(model.weight)  # a convex problem: start from 0, the same point for both inputs
    torch.nn.init.zeros_(model.bias)
    opt = optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        _bce(model(train_x), train_y).backward()
        opt.step()
    with torch.no_grad():
        acc = float(((model(train_x).squeeze(-1) > 0).double() == train_y).double().mean())
    return model, acc


def _bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of logits (N, 1) against 0/1 targets (N,)."""
    return torch.nn.functional.binary_cross_entropy_with_logits(logits.squeeze(-1), targets)


def _plot_inputs(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for seed, out in enumerate(outputs):
        for name, color in (("raw", "C3"), ("standardized", "C0")):
            ev = np.array(out[f"eigenvalues_{name}"])
            ax.semilogy(
                np.arange(1, len(ev) + 1),
                ev[::-1],
                "o-",
                ms=3,
                color=color,
                alpha=0.6,
                label=f"{name} (kappa {out[f'kappa_{name}']:.2g})" if seed == 0 else None,
            )
    ax.set(
        xlabel="eigenvalue index (descending)",
        ylabel="Hessian eigenvalue (loss units / param^2)",
        title="Q3.1.d: logistic-regression Hessian, breast cancer\nraw vs standardized inputs",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return [save_figure(fig, outdir, "hessian_spectrum_inputs")]


@experiment(
    ids=("Q3.1.d",),
    method="Logistic regression (a one-layer network, 31 parameters) is trained on the breast-cancer training "
    "split with raw and with standardized features (same recipe: Adam from zero, float64). At the trained "
    "weights the exact Hessian of the mean cross-entropy (deepbasics.autodiff.loss_hessian) gives kappa = "
    "lambda_max / lambda_min; deepbasics.curvature.condition_number (Lanczos) is run alongside. The judged "
    "number is kappa(raw) / kappa(standardized).",
    quick={"steps": 300, "lr": 0.01},
    full={"steps": 2000, "lr": 0.01},
    # "Lowers" the condition number: by more than an order of magnitude, so that it matters for GD (Q3.1.a).
    rules={"Q3.1.d": Rule("kappa_ratio", ">", 10.0, since="0.1.0")},
    metrics={
        "kappa_ratio": Metric("Hessian condition number, raw over standardized inputs", unit="x"),
        "kappa_raw": Metric("condition number with raw inputs"),
        "kappa_standardized": Metric("condition number with standardized inputs"),
    },
    takeaways={
        "Q3.1.d": "logistic regression on raw breast-cancer features has a Hessian condition number of {kappa_raw}; "
        "standardized inputs bring it to {kappa_standardized}, {kappa_ratio} lower",
    },
    seeds=3,
    timeout=300,
    plot=_plot_inputs,
)
def inputs(params, seed):
    from deepbasics import autodiff, curvature, data

    out = {}
    for name, standardize in (("raw", False), ("standardized", True)):
        splits = data.breast_cancer(seed=seed, standardize=standardize, dtype=torch.float64)
        x, y = splits.tensors("train")
        y = y.to(torch.float64)
        model, acc = _logistic(x, y, params["steps"], params["lr"])
        eig = torch.linalg.eigvalsh(autodiff.loss_hessian(model, _bce, x, y))  # (31,) ascending
        if float(eig[0]) <= 0:
            raise RuntimeError(f"{name}: the logistic Hessian should be positive definite, got min eig {eig[0]:.3g}")
        report = curvature.curvature_report(model, _bce, x, y, generator=torch.Generator().manual_seed(seed))
        out[f"kappa_{name}"] = float(eig[-1] / eig[0])
        out[f"lanczos_kappa_{name}"] = report.condition_number if math.isfinite(report.condition_number) else None
        out[f"lanczos_message_{name}"] = report.message
        out[f"eigenvalues_{name}"] = eig.tolist()
        out[f"train_acc_{name}"] = acc
        out[f"feature_std_span_{name}"] = float(x.std(0).max() / x.std(0).min())
    out["kappa_ratio"] = out["kappa_raw"] / out["kappa_standardized"]
    out["log10_kappa_ratio"] = math.log10(out["kappa_ratio"])
    return out
