"""Q4: hidden layers give up the convexity of training; why it is worth it.

- **Q4.a** Even one hidden layer makes the training loss non-convex. A convex ``L`` satisfies
  ``L((1 - a) theta_A + a theta_B) <= max(L(theta_A), L(theta_B))`` on every segment and has a positive semi-definite
  Hessian everywhere; a loss barrier on the segment between two trained networks, or a negative Hessian
  eigenvalue, certifies non-convexity (Goodfellow, Vinyals & Saxe, "Qualitatively characterizing neural network
  optimization problems", ICLR 2015; Blum & Rivest 1993 for the NP-hardness the FAQ cites).
- **Q4.b** Plain gradient descent still finds minima that are good enough: independent runs reach similar losses
  (Choromanska et al., "The loss surfaces of multilayer networks", AISTATS 2015, sec. 5).
- **Q4.c** A maxout unit ``h(x) = max_j (w_j x + b_j)`` can approximate any convex function to arbitrary precision
  (Goodfellow et al., "Maxout networks", ICML 2013, sec. 4): the error falls as the number of pieces ``k`` grows
  (like ``k^-2`` for a smooth function: each piece covers an interval of width ~1/k with a quadratic error).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from deepbasics.lab import Metric, Rule, experiment, save_figure
from deepbasics.train import Callback

#: A loss barrier below this (nats) is treated as rounding: float64 losses of order 1 carry ~1e-15 of error.
BARRIER_NOISE = 1e-6

#: A negative eigenvalue smaller than this fraction of lambda_max is treated as numerical noise (Lanczos on
#: float64 Hessian-vector products is accurate to ~1e-12 of lambda_max; 1e-6 is conservative).
EIG_NOISE_REL = 1e-6

#: Evidence ratios above this are reported as this.
EVIDENCE_CAP = 1e9


def _load(
    name: str, seed: int, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Train and test tensors and the number of classes, for ``"circles"`` or ``"digits"``."""
    from deepbasics import data

    if name == "circles":
        x, y = data.circles(600, noise=0.1, factor=0.5, seed=seed, dtype=dtype)
        return x[:400], y[:400], x[400:], y[400:], 2
    if name == "digits":
        splits = data.digits(seed=seed, dtype=dtype)
        return *splits.tensors("train"), *splits.tensors("test"), 10
    raise ValueError(f"dataset: expected 'circles' or 'digits', got {name!r}. Fix the experiment parameters.")


class _HessianProbe(Callback):
    """Before the optimizer steps listed in ``at``: the extreme Hessian eigenvalues of the training loss."""

    def __init__(self, at: list[int], data: tuple[torch.Tensor, torch.Tensor], generator: torch.Generator) -> None:
        self.at, self.data, self.generator = set(at), data, generator
        self.records: list[dict[str, float]] = []

    def on_train_batch_start(self, state) -> None:
        from deepbasics import curvature

        if state.step not in self.at:
            return
        res = curvature.hessian_eigen(
            state.model, state.loss_fn, *self.data, k=1, which="both", tol=1e-6, generator=self.generator
        )
        top, bottom = res.eigenvalues.tolist()
        noise = max(float(res.residuals[1]), EIG_NOISE_REL * abs(top))
        self.records.append({"step": state.step, "lambda_max": top, "lambda_min": bottom, "noise": noise})


# --------------------------------------------------------------------------------------------- Q4.a non-convexity
def _plot_nonconvex(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4), layout="constrained")
    alphas = np.linspace(0, 1, params["alphas"])
    for seed, out in enumerate(outputs):
        ax1.plot(alphas, out["line_loss"], "o-", ms=3, label=f"seed {seed} (barrier {out['barrier']:.3g} nats)")
        steps = [r["step"] for r in out["hessian"]]
        ratio = [max(-r["lambda_min"] / r["lambda_max"], 1e-12) for r in out["hessian"]]
        ax2.semilogy(steps, ratio, "s-", label=f"seed {seed}")
    ax1.set(
        xlabel="a on the segment (1 - a) theta_A + a theta_B",
        ylabel="training loss (nats)",
        title="Q4.a: loss between two trained networks",
    )
    ax1.legend(fontsize=8)
    ax2.axhline(EIG_NOISE_REL, color="k", ls="--", label="noise floor")
    ax2.set(
        xlabel="training step",
        ylabel="-lambda_min / lambda_max (drawn at >= 1e-12)",
        title="Q4.a: negative Hessian curvature along training",
    )
    ax2.legend(fontsize=8)
    return [save_figure(fig, outdir, "nonconvexity")]


@experiment(
    ids=("Q4.a",),
    method="Two one-hidden-layer tanh networks (independent initializations) are trained on the same data with full-"
    "batch Adam (cross-entropy, float64); we evaluate the training loss on the straight segment between the two "
    "solutions (barrier = its maximum minus the larger endpoint loss) and, at checkpoints along the first run, the "
    "extreme Hessian eigenvalues (deepbasics.curvature, Lanczos). The judged number is the larger of barrier / 1e-6 "
    "nats and -lambda_min / max(Lanczos residual, 1e-6 lambda_max): above 1, non-convexity is certified beyond noise.",
    quick={
        "dataset": "circles",
        "hidden": 16,
        "steps": 300,
        "lr": 0.05,
        "checkpoints": [0, 10, 30, 100, 299],
        "alphas": 21,
    },
    full={
        "dataset": "digits",
        "hidden": 32,
        "steps": 500,
        "lr": 0.01,
        "checkpoints": [0, 10, 30, 100, 300, 499],
        "alphas": 41,
    },
    # 1: either certificate exceeds its numerical-noise floor (see BARRIER_NOISE and EIG_NOISE_REL); a convex
    # loss can exceed neither, whatever the data.
    rules={"Q4.a": Rule("nonconvexity_evidence", ">", 1.0, since="0.1.0")},
    metrics={
        "nonconvexity_evidence": Metric("evidence of non-convexity over numerical noise", unit="x"),
        "barrier": Metric("loss barrier between two solutions", unit="nats"),
        "min_lambda_ratio": Metric("most negative Hessian eigenvalue over the largest"),
    },
    takeaways={
        "Q4.a": "the training loss rises by {barrier} on the straight path between two trained solutions, and along "
        "training the Hessian has eigenvalues down to {min_lambda_ratio} times its largest",
    },
    seeds=3,
    timeout=240,
    plot=_plot_nonconvex,
)
def nonconvexity(params, seed):
    from deepbasics import autodiff, nn, optim, train

    x, y, _, _, classes = _load(params["dataset"], seed)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    thetas, probe = [], None
    for run in range(2):
        torch.manual_seed(1000 * seed + run)  # independent initializations
        model = nn.mlp([x.shape[1], params["hidden"], classes], activation="tanh").double()
        callbacks = []
        if run == 0:
            probe = _HessianProbe(params["checkpoints"], (x, y), g)
            callbacks = [probe]
        train.fit(
            model,
            loss_fn,
            optim.Adam(model.parameters(), lr=params["lr"]),
            (x, y),
            epochs=params["steps"],
            batch_size=None,
            metrics={},
            callbacks=callbacks,
        )
        _, ps = autodiff.trainable_parameters(model)
        thetas.append(autodiff.flatten_params([p.detach() for p in ps]))
    names, ps = autodiff.trainable_parameters(model)
    line = []
    with torch.no_grad():
        for a in np.linspace(0, 1, params["alphas"]):
            theta = (1 - a) * thetas[0] + a * thetas[1]
            weights = dict(zip(names, autodiff.unflatten(theta, ps), strict=True))
            line.append(loss_fn(torch.func.functional_call(model, weights, (x,)), y).item())
    barrier = max(line) - max(line[0], line[-1])
    curvature_evidence = max(max(-r["lambda_min"], 0.0) / r["noise"] for r in probe.records)
    evidence = min(max(barrier / BARRIER_NOISE, curvature_evidence), EVIDENCE_CAP)
    return {
        "nonconvexity_evidence": evidence,
        "barrier": barrier,
        "barrier_evidence": min(max(barrier / BARRIER_NOISE, 0.0), EVIDENCE_CAP),
        "curvature_evidence": min(curvature_evidence, EVIDENCE_CAP),
        "endpoint_losses": [line[0], line[-1]],
        "min_lambda_ratio": min(r["lambda_min"] / r["lambda_max"] for r in probe.records),
        "line_loss": line,
        "hessian": probe.records,
    }


# ------------------------------------------------------------------------------------------- Q4.b good minima
def _plot_minima(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4), layout="constrained")
    for seed, out in enumerate(outputs):
        for r, curve in enumerate(out["train_curves"]):
            ax1.semilogy(curve, color=f"C{seed}", alpha=0.6, lw=1, label=f"seed {seed}" if r == 0 else None)
        ax2.scatter([seed] * len(out["test_losses"]), out["test_losses"], color=f"C{seed}", s=18)
    ax1.set(
        xlabel="gradient-descent step (full batch)",
        ylabel="training loss (nats)",
        title="Q4.b: independent runs, plain gradient descent",
    )
    ax1.legend(fontsize=8)
    ax2.set(
        xlabel="lab seed (each point: one initialization)",
        ylabel="final test loss (nats)",
        title="Q4.b: final test losses agree",
    )
    ax2.set_xticks(range(len(outputs)))
    return [save_figure(fig, outdir, "independent_runs")]


@experiment(
    ids=("Q4.b",),
    method="Several one-hidden-layer tanh networks with independent initializations are trained on the digits "
    "training split by plain full-batch gradient descent (deepbasics.optim.SGD, no momentum; deepbasics.train.fit). "
    "We record each run's final test loss L_r and the test loss at initialization L_0 (mean over runs). The judged "
    "number is (max_r L_r - min_r L_r) / (L_0 - min_r L_r): how far apart the runs end, as a fraction of what training "
    "gained; small means every run found an equally good minimum.",
    quick={"runs": 4, "hidden": 16, "steps": 150, "lr": 0.5},
    full={"runs": 8, "hidden": 32, "steps": 600, "lr": 0.5},
    # 0.05: runs that end within 5% of the loss reduction training achieved are equally good for any practical
    # purpose; a landscape with bad local minima would leave some runs a sizeable part of the way up.
    rules={"Q4.b": Rule("spread_over_gain", "<", 0.05, since="0.1.0")},
    metrics={
        "spread_over_gain": Metric("spread of final test losses over the loss gained by training", unit="%", scale=100),
        "min_test_accuracy": Metric("lowest test accuracy over runs", unit="%", scale=100),
        "max_test_accuracy": Metric("highest test accuracy over runs", unit="%", scale=100),
    },
    takeaways={
        "Q4.b": "independently initialized runs of plain gradient descent end within {spread_over_gain} of each "
        "other, relative to what training gained; their test accuracies range from {min_test_accuracy} to "
        "{max_test_accuracy}",
    },
    seeds=3,
    timeout=240,
    plot=_plot_minima,
)
def good_minima(params, seed):
    from deepbasics import nn, optim, train

    x, y, xt, yt, classes = _load("digits", seed, torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss()
    finals, initials, accs, curves = [], [], [], []
    for run in range(params["runs"]):
        torch.manual_seed(1000 * seed + run)
        model = nn.mlp([x.shape[1], params["hidden"], classes], activation="tanh")
        initials.append(train.evaluate(model, loss_fn, (xt, yt))["loss"])
        history = train.fit(
            model,
            loss_fn,
            optim.SGD(model.parameters(), lr=params["lr"]),
            (x, y),
            epochs=params["steps"],
            batch_size=None,
            metrics={},
        )
        result = train.evaluate(model, loss_fn, (xt, yt))
        finals.append(result["loss"])
        accs.append(result["accuracy"])
        curves.append(history.train_loss[:: max(1, params["steps"] // 100)])
    gain = float(np.mean(initials)) - min(finals)
    return {
        "spread_over_gain": (max(finals) - min(finals)) / gain,
        "test_losses": finals,
        "test_loss_cv": float(np.std(finals) / np.mean(finals)),
        "initial_test_loss": float(np.mean(initials)),
        "min_test_accuracy": min(accs),
        "max_test_accuracy": max(accs),
        "train_curves": curves,
    }


# ---------------------------------------------------------------------------------------------- Q4.c maxout
_FUNCTIONS = {
    "x^2": lambda t: t * t,
    "|x| + e^x": lambda t: t.abs() + t.exp(),
    "log(1 + e^(3x))": lambda t: torch.nn.functional.softplus(3 * t),
}


def _plot_maxout(outputs, params, outdir):
    import matplotlib.pyplot as plt

    ks = np.array(params["pieces"], dtype=float)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    for i, name in enumerate(params["functions"]):
        errs = np.array([out["errors"][name] for out in outputs])  # (S, len(ks))
        slope = np.mean([out["slopes"][name] for out in outputs])
        ax.loglog(ks, errs.mean(0), "o-", color=f"C{i}", label=f"{name} (slope {slope:.2f})")
    ax.loglog(ks, outputs[0]["errors"][params["functions"][0]][0] * ks**-2.0, "k:", label="k^-2")
    ax.set(
        xlabel="number of affine pieces k",
        ylabel="max |maxout(x) - f(x)| on [-2, 2]",
        title="Q4.c: maxout approximates convex functions",
    )
    ax.legend(fontsize=8)
    return [save_figure(fig, outdir, "maxout_error_vs_pieces")]


@experiment(
    ids=("Q4.c",),
    method="Maxout units (deepbasics.activations.Maxout, k affine pieces; one output unit per function) are fitted by "
    "LBFGS to the least-squares error of convex functions of one variable on [-2, 2] (float64), their pieces starting "
    "as tangents at one random point in each of k equal cells (a piece that is never the maximum gets no gradient, "
    "so a default init wastes pieces). We measure the maximum error on a 8x finer grid for each k and fit the "
    "log-log slope against k. The judged number is the worst (largest) slope over the functions.",
    quick={
        "functions": ["x^2", "|x| + e^x", "log(1 + e^(3x))"],
        "pieces": [1, 2, 4, 8, 16, 32],
        "points": 256,
        "iterations": 100,
    },
    full={
        "functions": ["x^2", "|x| + e^x", "log(1 + e^(3x))"],
        "pieces": [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64],
        "points": 2048,
        "iterations": 500,
    },
    # Arbitrary precision needs a falling error; the best k-piece approximation of a C^2 function falls like k^-2,
    # and a slope below -1 requires at least k^-1, which no plateau (slope -> 0) can fake.
    rules={"Q4.c": Rule("worst_slope", "<", -1.0, since="0.1.0")},
    metrics={
        "worst_slope": Metric("slowest log-log slope of the maxout error against the number of pieces"),
        "max_error_at_kmax": Metric("largest error with the most pieces"),
    },
    takeaways={
        "Q4.c": "the maximum error of a maxout fit to a convex function falls like k to the power {worst_slope} or "
        "faster with k pieces, down to {max_error_at_kmax} with the most pieces",
    },
    seeds=3,
    timeout=240,
    plot=_plot_maxout,
)
def maxout(params, seed):
    from deepbasics import activations

    g = torch.Generator().manual_seed(seed)
    names = params["functions"]
    fns = [_FUNCTIONS[name] for name in names]
    grid = torch.linspace(-2, 2, params["points"], dtype=torch.float64)[:, None]  # (N, 1)
    fine = torch.linspace(-2, 2, 8 * params["points"] + 1, dtype=torch.float64)[:, None]  # (8N + 1, 1)
    target = torch.cat([f(grid) for f in fns], dim=1)  # (N, U): one column per function
    target_fine = torch.cat([f(fine) for f in fns], dim=1)
    errors = {name: [] for name in names}
    init_errors = {name: [] for name in names}
    for k in params["pieces"]:
        unit = activations.Maxout(1, len(fns), k, dtype=torch.float64)  # weight (U, k, 1), bias (U, k)
        cells = torch.arange(k, dtype=torch.float64) + torch.rand(len(fns), k, generator=g, dtype=torch.float64)
        anchors = (-2 + 4 * cells / k).requires_grad_()  # (U, k): one random point per cell of width 4/k
        values = torch.stack([f(a) for f, a in zip(fns, anchors, strict=True)])  # (U, k)
        (slopes,) = torch.autograd.grad(values.sum(), anchors)  # f'(a): each f acts elementwise
        with torch.no_grad():  # tangent j of function u: f(a) + f'(a) (x - a)
            unit.weight.copy_(slopes[..., None])
            unit.bias.copy_(values - slopes * anchors)
            for name, err in zip(names, (unit(fine) - target_fine).abs().amax(0).tolist(), strict=True):
                init_errors[name].append(err)
        lbfgs = torch.optim.LBFGS(
            unit.parameters(),
            lr=1,
            max_iter=params["iterations"],
            tolerance_grad=1e-12,
            tolerance_change=1e-15,
            history_size=20,
            line_search_fn="strong_wolfe",
        )

        def closure(unit=unit, lbfgs=lbfgs):
            lbfgs.zero_grad()
            loss = ((unit(grid) - target) ** 2).mean()  # the columns do not interact: U separate fits
            loss.backward()
            return loss

        lbfgs.step(closure)
        with torch.no_grad():
            for name, err in zip(names, (unit(fine) - target_fine).abs().amax(0).tolist(), strict=True):
                errors[name].append(err)
    slopes = {name: float(np.polyfit(np.log(params["pieces"]), np.log(errors[name]), 1)[0]) for name in names}
    return {
        "worst_slope": max(slopes.values()),
        "slopes": slopes,
        "error_ratio_kmax_over_k1": max(errors[n][-1] / errors[n][0] for n in names),
        "errors": errors,
        "init_errors": init_errors,
        "max_error_at_kmax": max(errors[n][-1] for n in names),
        "log10_min_error": math.log10(min(min(e) for e in errors.values())),
    }
