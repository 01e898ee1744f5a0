"""Q11 (part 2): the Hessian's top eigenvalue limits the learning rate (the FAQ leaves this section empty).

- **Q11.c** Along the top eigenvector ``v`` of ``H`` (eigenvalue ``lambda_max``) a gradient step multiplies the
  component of the gradient by ``1 - lr lambda_max``; its size exceeds 1 once ``lr > 2 / lambda_max``, so gradient
  descent diverges along ``v`` (Goodfellow et al., *Deep Learning*, 2016, sec. 4.3.1, eq. 4.9-4.10; LeCun,
  Simard & Pearlmutter, "Automatic learning rate maximization ...", NeurIPS 1993). That is exact on a quadratic.
  In a network the growth lasts only while the quadratic model holds: gradient descent can then "catapult" into a
  flatter region whose ``lambda_max < 2 / lr`` and converge there (Lewkowycz et al., "The large learning rate phase
  of deep learning: the catapult mechanism", 2020; Cohen et al., "Gradient descent on neural networks typically
  occurs at the edge of stability", ICLR 2021). The experiment records the final sharpness to tell the two apart.

References: Griewank & Walther, *Evaluating Derivatives* (2008); Nocedal & Wright, *Numerical Optimization*
(2006), sec. 8.1 (finite-difference errors) and thm. 2.1 (Taylor).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from deepbasics.lab import Metric, Revision, Rule, Task, experiment, save_figure

#: A run whose gradient component grows past this factor has left every quadratic model: counted as diverged.
GROWTH_CAP = 1e12
#: Steps over which the per-step growth factor of the linear phase is measured (before nonlinearity sets in).
EARLY = 5


# ------------------------------------------------------------------------------------------------ Q11.c lr limit
def _plot_lr(outputs, params, outdir):
    import matplotlib.pyplot as plt

    from deepbasics.lab.tasks import TASKS

    cs = params["factors"]
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    for i, c in enumerate(cs):
        for seed, out in enumerate(outputs):
            curve = np.clip(out["paths"][i], 1e-16, GROWTH_CAP)
            ax.semilogy(curve, color=f"C{i}", alpha=0.7, label=f"lr = {c} x 2/lambda_max" if seed == 0 else None)
        theory = np.abs(1 - 2 * c) ** np.arange(params["steps"] + 1, dtype=float)
        ax.semilogy(np.clip(theory, 1e-16, GROWTH_CAP), ":", color=f"C{i}", lw=1)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(
        xlabel="gradient-descent step",
        ylabel="|v . grad L(theta_t)| / |v . grad L(theta_0)|",
        title=f"Q11.c on {TASKS[params['task']].label}: top-eigenvector component\n(dotted: theory |1 - 2c|^t)",
    )
    ax.legend(fontsize=7)
    return [save_figure(fig, outdir, "lr_limit_top_eigenvector")]


class _LeastSquares(torch.nn.Module):
    """A linear model ``r @ x`` whose mean squared error has exactly the Hessian ``A`` of a Quadratic."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.x = torch.nn.Parameter(torch.zeros(dim, dtype=torch.float64))

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return rows @ self.x  # (N,)


def _component_path(model, loss_fn, x, y, lr: float, v: torch.Tensor, steps: int):
    """Run plain GD (deepbasics.optim.SGD) on a copy of ``model``; return the record of
    ``|v . grad L(theta_t)| / |v . grad L(theta_0)|`` (steps + 1 values) and the trained copy."""
    from deepbasics import autodiff, optim

    model = copy.deepcopy(model)
    _, params = autodiff.trainable_parameters(model)
    opt = optim.SGD(params, lr=lr)
    path, first = [], None
    for _ in range(steps + 1):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        if not torch.isfinite(loss):
            path += [GROWTH_CAP] * (steps + 1 - len(path))
            break
        loss.backward()
        a = abs(torch.dot(v, autodiff.flatten_params([p.grad for p in params])).item())
        first = a if first is None else first
        path.append(min(a / first, GROWTH_CAP) if math.isfinite(a) else GROWTH_CAP)
        opt.step()
    return path, model


@experiment(
    ids=("Q11.c",),
    method="Two problems: a quadratic of condition number 100 (full: 1000; deepbasics.optim.Quadratic, written as a "
    "least-squares model) and a tanh MLP pre-trained with Adam on teacher-student regression (MSE, float64). On each "
    "we measure lambda_max and its eigenvector v with deepbasics.curvature.hessian_eigenvalues, nudge the parameters "
    "along v, and run plain gradient descent at lr = c * 2 / lambda_max for several c around 1. We record the growth "
    "of the top-eigenvector component of the gradient, |v . grad L| (theory: |1 - 2c| per step); the judged number "
    "is the smallest margin over all c of -log10(growth) for c < 1 and +log10(growth) for c > 1 after the last step.",
    tasks=(
        Task(
            "quadratic",
            applies=True,
            why="The 2/lambda_max bound is derived on a quadratic, where it is exact (Goodfellow et al. 2016, sec. "
            "4.3.1; LeCun, Simard & Pearlmutter 1993 use it as the local model of a network's loss).",
        ),
        Task(
            "teacher_student",
            applies=True,
            detail="tanh MLP near a minimum",
            why="LeCun, Simard & Pearlmutter (1993) apply the bound to neural networks near a minimum; Lewkowycz et "
            "al. (2020) and Cohen et al. (2021) report that there gradient descent above it can catapult to a flatter "
            "region instead of diverging.",
        ),
    ),
    quick={
        "factors": [0.5, 0.9, 1.1, 1.5],
        "steps": 40,
        "dim": 20,
        "condition_number": 100.0,
        "examples": 200,
        "in_features": 5,
        "hidden": 16,
        "pretrain": 300,
        "nudge": 1e-2,
    },
    full={
        "factors": [0.5, 0.8, 0.9, 0.95, 1.05, 1.1, 1.2, 1.5],
        "steps": 100,
        "dim": 50,
        "condition_number": 1000.0,
        "examples": 1000,
        "in_features": 10,
        "hidden": 32,
        "pretrain": 2000,
        "nudge": 1e-2,
    },
    # Holds when every run below the limit shrinks the component and every run above grows it by at least a
    # factor 10 over the run (margin > 1 decade): far from the 0 that noise alone could produce. Theory after 40
    # steps: c = 0.9 shrinks it 0.8^40 = 1e-4, c = 1.1 grows it 1.2^40 = 1.5e3.
    rules={
        "Q11.c": Rule(
            "min_margin_decades",
            ">",
            1.0,
            since="0.1.0",
            history=(
                Revision(
                    changed_in="0.2.0",
                    what="metric",
                    was="the smallest margin over the quadratic and the network together (one task)",
                    reason="issue 15 judges each claim per task: the quadratic, where the bound is exact, and the "
                    "network, where a catapult can end the divergence, became two tasks with the same rule, each "
                    "judged on its own margin (the earlier single verdict, does not hold, came from the network).",
                ),
            ),
        )
    },
    metrics={
        "min_margin_decades": Metric("smallest margin of the lr = 2/lambda_max test", unit="decades"),
        "early_rate_max_err": Metric("largest error of the early growth rate against |1 - 2c|"),
    },
    takeaways={
        "Q11.c": "the top-eigenvector gradient component shrinks below lr = 2/lambda_max and grows above it with a "
        "smallest margin, over all rates, of {min_margin_decades}; its early growth rate is within "
        "{early_rate_max_err} of |1 - 2c|",
    },
    seeds=3,
    timeout=240,
    plot=_plot_lr,
)
def lr_limit(params, seed):
    from deepbasics import curvature, data, nn, optim

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    mse = torch.nn.MSELoss()
    if params["task"] == "quadratic":
        # the quadratic 1/2 (x - x*)^T A (x - x*) as the MSE of r x against r x*: Hessian 2 R^T R / N = A
        quad = optim.Quadratic(params["condition_number"], params["dim"], generator=g)
        n = params["dim"]
        evals, evecs = quad.eigenvalues, quad.eigenvectors
        x = math.sqrt(n / 2) * (evecs * evals.sqrt()) @ evecs.T  # (N, d): R = sqrt(N/2) A^{1/2}
        y = x @ quad.optimum
        model = _LeastSquares(n)
    else:
        # a tanh network near a minimum of a teacher-student regression
        x, y = data.teacher_student(
            params["examples"], params["in_features"], 8, noise=0.1, generator=g, dtype=torch.float64
        )
        model = nn.mlp([params["in_features"], params["hidden"], 1], activation="tanh").double()
        adam = optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(params["pretrain"]):
            adam.zero_grad()
            mse(model(x), y).backward()
            adam.step()
    top, vec = curvature.hessian_eigenvalues(model, mse, x, y, k=1, return_eigenvectors=True, generator=g)
    lam, v = top[0].item(), vec[:, 0]
    nudged = copy.deepcopy(model)
    with torch.no_grad():
        start = torch.nn.utils.parameters_to_vector(nudged.parameters())
        torch.nn.utils.vector_to_parameters(start + params["nudge"] * v, nudged.parameters())
    out = {"lambda_max": lam, "growth": [], "paths": [], "early_rate": [], "final_loss_ratio": []}
    out["final_lambda_max"] = []
    if params["task"] == "quadratic":
        out["lambda_max_exact"] = quad.lambda_max
        out["lambda_rel_err"] = abs(lam - quad.lambda_max) / quad.lambda_max
    margins = []
    for c in params["factors"]:
        lr = c * 2 / lam
        path, trained = _component_path(nudged, mse, x, y, lr, v, params["steps"])
        growth = max(path[-1], 1e-300)
        out["growth"].append(growth)
        out["paths"].append(path)
        margins.append(math.log10(growth) if c > 1 else -math.log10(growth))
        # the linear phase: the mean per-step factor over the first EARLY steps, against theory |1 - 2c|
        early = min(EARLY, len(path) - 1)
        out["early_rate"].append(float(max(path[early], 1e-300) ** (1 / early)))
        with torch.no_grad():
            first, end = mse(nudged(x), y).item(), mse(trained(x), y).item()
        out["final_loss_ratio"].append(end / first if math.isfinite(end) else GROWTH_CAP)
        sharp = float("nan")
        if math.isfinite(end):
            sharp = curvature.hessian_eigenvalues(trained, mse, x, y, k=1, generator=g)[0].item()
        out["final_lambda_max"].append(sharp)  # after a catapult: below 2 / lr
    out["margins"] = margins
    out["min_margin_decades"] = min(min(margins), math.log10(GROWTH_CAP))
    out["early_rate_max_err"] = max(
        abs(r - abs(1 - 2 * c))
        for r, c in zip(out["early_rate"], params["factors"], strict=True)
        if abs(1 - 2 * c) ** EARLY > 1e-8  # c = 0.5 kills the component in one step: no rate to measure
    )
    return out
