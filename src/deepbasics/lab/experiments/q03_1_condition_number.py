r"""Q3.1 (part 1): ill-conditioning: the condition number sets the iteration count; preconditioning lowers it.

With ``H`` the Hessian, ``kappa = lambda_max(H) / lambda_min(H)``. On ``f(x) = 1/2 (x - x*)^T A (x - x*)``
(:class:`deepbasics.optim.quadratic.Quadratic`, eigenvalues log-spaced in ``[1, kappa]``):

- **Q3.1.a** gradient descent with the best constant step ``2 / (L + mu)`` contracts the error by
  ``(kappa - 1) / (kappa + 1)`` per step, so it needs ``~ kappa/2 ln(1/tol)`` steps: linear in kappa
  (Nocedal & Wright 2006, thm. 3.3).
- **Q3.1.b** preconditioning ``x <- x - gamma P grad f`` has the rate of ``kappa(PA)``; ``P = A^-1`` gives
  ``kappa = 1``: one step (Newton); ``P = diag(A)^-1`` (Jacobi) fixes badly scaled coordinates only.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from deepbasics.lab import Metric, Rule, experiment, save_figure

from ._q03_1_quadratic import quadratic_problem


# ------------------------------------------------------------------------------------------ Q3.1.a GD vs kappa
def _plot_gd(outputs, params, outdir):
    import matplotlib.pyplot as plt

    kappas = params["kappas"]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for seed, out in enumerate(outputs):
        ax.loglog(kappas, out["iterations"], "o-", alpha=0.7, label=f"seed {seed} (slope {out['slope']:.2f})")
    ax.loglog(kappas, outputs[0]["bound"], "k--", label="bound ceil(ln tol / ln((k-1)/(k+1)))")
    ax.set(
        xlabel="condition number kappa = lambda_max / lambda_min",
        ylabel=f"GD iterations to tol {params['tol']:g}",
        title="Q3.1.a: gradient-descent iterations vs condition number",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return [save_figure(fig, outdir, "iterations_vs_kappa")]


@experiment(
    ids=("Q3.1.a",),
    method="Gradient descent with the optimal constant step 2/(L + mu) runs on random quadratics "
    "(deepbasics.optim.quadratic.Quadratic, rotated eigenbasis, dimension `dim`) of condition numbers `kappas` "
    "from a random start until ||x - x*|| <= tol ||x0 - x*||. The judged number is the log-log slope of "
    "iterations against kappa (least squares); the theoretical bound is drawn for comparison.",
    quick={"kappas": [10, 30, 100, 300, 1000], "dim": 20, "tol": 1e-6},
    full={"kappas": [3, 10, 30, 100, 300, 1000, 3000, 10000], "dim": 100, "tol": 1e-8},
    # Linear growth is slope 1; > 0.5 rejects the sqrt(kappa) growth of accelerated methods and anything flatter.
    rules={"Q3.1.a": Rule("slope", ">", 0.5, since="0.1.0")},
    metrics={
        "slope": Metric("log-log slope of iterations against the condition number"),
    },
    takeaways={
        "Q3.1.a": "gradient descent's iterations to a fixed accuracy grow like the condition number to the power "
        "{slope} (1 is linear growth)",
    },
    seeds=3,
    timeout=300,
    plot=_plot_gd,
)
def gd_iterations(params, seed):
    from deepbasics.optim import quadratic

    g = torch.Generator().manual_seed(seed)
    iterations, bound = [], []
    for kappa in params["kappas"]:
        q, x0 = quadratic_problem(kappa, params["dim"], g)
        bound.append(quadratic.iterations_to_tolerance(quadratic.gradient_descent_rate(kappa), params["tol"]))
        traj = quadratic.gradient_descent(q, x0, tol=params["tol"], max_iter=10 * bound[-1])
        if not traj.converged:
            raise RuntimeError(
                f"GD did not converge at kappa={kappa} within {10 * bound[-1]} steps (bound {bound[-1]})"
            )
        iterations.append(traj.iterations)
    slope = float(np.polyfit(np.log(params["kappas"]), np.log(iterations), 1)[0])
    return {
        "slope": slope,
        "iterations": iterations,
        "bound": bound,
        "max_iterations_over_bound": max(i / b for i, b in zip(iterations, bound, strict=True)),
    }


# -------------------------------------------------------------------------------------- Q3.1.b preconditioning
def _plot_precond(outputs, params, outdir):
    import matplotlib.pyplot as plt

    out = outputs[0]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for name, color in (("plain", "C0"), ("jacobi_rotated", "C1"), ("jacobi_axis", "C2"), ("exact", "C3")):
        ax1.semilogy(out["errors"][name], color=color, label=name.replace("_", ", "))
    ax1.axhline(params["tol"], color="grey", ls=":", label="tolerance")
    ax1.set(
        xlabel="iteration", ylabel="||x - x*|| / ||x0 - x*||", title=f"Q3.1.b: kappa = {params['kappas'][0]:g}, seed 0"
    )
    ax1.legend(fontsize=7)
    kappas = params["kappas"]
    styles = (
        ("plain", "C0", "o-"),
        ("jacobi_rotated", "C1", "s-"),
        ("jacobi_axis", "C2", "x--"),
        ("exact", "C3", "o:"),
    )
    for name, color, style in styles:
        its = np.mean([o["iterations"][name] for o in outputs], axis=0)
        ax2.loglog(kappas, its, style, color=color, ms=8 if name == "jacobi_axis" else 5, label=name.replace("_", ", "))
    ax2.set(
        xlabel="condition number kappa",
        ylabel="iterations to tolerance (mean over seeds)",
        title="preconditioner P: none, diag(A)^-1, A^-1",
    )
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return [save_figure(fig, outdir, "preconditioning")]


@experiment(
    ids=("Q3.1.b",),
    method="On quadratics of condition number `kappas` we run gradient descent with P = I, P = diag(A)^-1 "
    "(Jacobi) and P = A^-1, each with its optimal step 2/(lambda_max(PA) + lambda_min(PA)), on a rotated "
    "problem and, for Jacobi, also on an axis-aligned (badly scaled) one. The judged number is the smallest, "
    "over kappa, of iterations(plain) / iterations(P = A^-1).",
    quick={"kappas": [10, 100, 1000], "dim": 20, "tol": 1e-6},
    full={"kappas": [4, 10, 100, 1000, 10000], "dim": 100, "tol": 1e-8},
    # The FAQ's figure: 4 iterations become 1, a ratio of 4.
    rules={"Q3.1.b": Rule("min_speedup_exact", ">=", 4.0, since="0.1.0")},
    metrics={
        "min_speedup_exact": Metric(
            "iterations saved by P = inverse Hessian, smallest over condition numbers", unit="x"
        ),
        "exact_iterations_max": Metric("iterations with P = inverse Hessian, at most"),
        "jacobi_axis_iterations_max": Metric("iterations with Jacobi on an axis-aligned problem, at most"),
    },
    takeaways={
        "Q3.1.b": "preconditioning with the inverse Hessian cuts gradient descent's iterations by at least "
        "{min_speedup_exact} (it needs {exact_iterations_max}); Jacobi preconditioning of a badly scaled, "
        "axis-aligned problem needs {jacobi_axis_iterations_max}",
    },
    seeds=3,
    timeout=300,
    plot=_plot_precond,
)
def preconditioning(params, seed):
    from deepbasics.optim import quadratic

    g = torch.Generator().manual_seed(seed)
    tol = params["tol"]
    its = {"plain": [], "exact": [], "jacobi_rotated": [], "jacobi_axis": []}
    errors = {}
    for i, kappa in enumerate(params["kappas"]):
        q, x0 = quadratic_problem(kappa, params["dim"], g)
        axis, _ = quadratic_problem(kappa, params["dim"], g, rotate=False)
        runs = {
            "plain": quadratic.gradient_descent(q, x0, tol=tol, max_iter=100_000),
            "exact": quadratic.preconditioned_gradient_descent(q, torch.linalg.inv(q.hessian()), x0, tol=tol),
            "jacobi_rotated": quadratic.preconditioned_gradient_descent(
                q, quadratic.jacobi_preconditioner(q), x0, tol=tol, max_iter=100_000
            ),
            "jacobi_axis": quadratic.preconditioned_gradient_descent(
                axis, quadratic.jacobi_preconditioner(axis), x0, tol=tol, max_iter=100_000
            ),
        }
        for name, traj in runs.items():
            its[name].append(traj.iterations if traj.converged else math.nan)
            if i == 0:
                errors[name] = traj.errors.tolist()
    speedups = [p / e for p, e in zip(its["plain"], its["exact"], strict=True)]
    return {
        "min_speedup_exact": min(speedups),
        "exact_iterations_max": max(its["exact"]),
        "speedup_jacobi_rotated": [p / j for p, j in zip(its["plain"], its["jacobi_rotated"], strict=True)],
        "jacobi_axis_iterations_max": max(its["jacobi_axis"]),
        "iterations": its,
        "errors": errors,
    }
