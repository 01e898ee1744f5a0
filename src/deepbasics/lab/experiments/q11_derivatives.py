"""Q11 (part 1): the Jacobian and the Hessian, exact and as a Taylor model (the FAQ leaves this section empty).

- **Q11.a** Automatic differentiation gives the Jacobian ``J_ij = d f_i / d x_j`` and the Hessian
  ``H_ij = d^2 f / (d x_i d x_j)`` exactly (to rounding); central finite differences agree with them to their own
  truncation/rounding error, and ``H`` is symmetric when ``f`` is twice continuously differentiable (Schwarz).
- **Q11.b** ``L(theta + t d) = L + t g.d + t^2/2 d^T H d + O(t^3)``: the second-order Taylor model predicts the
  change of the loss with an error ``O(t^3)``, the first-order one only ``O(t^2)`` because it ignores curvature.

References: Griewank & Walther, *Evaluating Derivatives* (2008); Nocedal & Wright, *Numerical Optimization*
(2006), sec. 8.1 (finite-difference errors) and thm. 2.1 (Taylor).
"""

from __future__ import annotations

import numpy as np
import torch

from deepbasics.lab import Metric, Rule, experiment, save_figure

#: Worst-check ratios above this are reported as this (a non-finite ratio would make the verdict "error").
RATIO_CAP = 1e9


def _ratio(value: float, op: str, limit: float) -> float:
    """How far a sub-check is from failing: < 1 passes, > 1 fails (``value / limit`` or ``limit / value``)."""
    if not np.isfinite(value):
        return RATIO_CAP
    r = value / limit if op == "<" else (limit / value if value > 0 else RATIO_CAP)
    return float(min(r, RATIO_CAP))


def _flat_loss(model: torch.nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor):
    """``(theta0, L)``: the model's flat trainable parameters and the mean loss as a function of a flat vector."""
    from deepbasics import autodiff

    names, params = autodiff.trainable_parameters(model)
    theta0 = autodiff.flatten_params([p.detach() for p in params])  # (P,)

    def loss_of(theta: torch.Tensor) -> torch.Tensor:
        weights = dict(zip(names, autodiff.unflatten(theta, params), strict=True))
        return loss_fn(torch.func.functional_call(model, weights, (x,)), y)

    return theta0, loss_of


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a - ref).abs().max() / ref.abs().max()).item()


# ------------------------------------------------------------------------------------------ Q11.a autodiff vs FD
def _plot_fd(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4), layout="constrained")
    eps = np.array(params["fd_steps"])
    for seed, out in enumerate(outputs):
        ax1.loglog(eps, out["fd_error_curve"], "o-", label=f"seed {seed}")
    mean = np.mean([out["fd_error_curve"] for out in outputs], axis=0)
    big, small = np.argmax(eps), np.argmin(eps)  # guide lines through the two ends of the mean curve
    ax1.loglog(eps, mean[big] * (eps / eps[big]) ** 2, "k:", lw=1, label="truncation ~ h^2")
    ax1.loglog(eps, mean[small] * eps[small] / eps, "k--", lw=1, label="rounding ~ 1 / h")
    ax1.set(
        xlabel="finite-difference step h",
        ylabel="max |J_FD - J_autodiff| / max |J|",
        title="Q11.a: FD Jacobian error against autodiff",
    )
    ax1.legend(fontsize=8)
    names = ["jacobian_err", "input_hessian_err", "loss_hessian_err", "hessian_asymmetry"]
    limits = [params["jac_tol"], params["hess_tol"], params["hess_tol"], params["sym_tol"]]
    for seed, out in enumerate(outputs):
        ax2.scatter(range(4), [max(out[n], 1e-18) for n in names], label=f"seed {seed}")
    ax2.scatter(range(4), limits, marker="_", s=400, color="k", label="threshold")
    ax2.set_yscale("log")
    ax2.set_xticks(range(4), ["J vs FD", "H(x) vs FD", "loss H vs FD", "|H - H^T|"], fontsize=8)
    ax2.set(ylabel="max relative difference\n(exact drawn at 1e-18)", title="Q11.a: autodiff agrees; H is symmetric")
    ax2.legend(fontsize=8)
    return [save_figure(fig, outdir, "autodiff_vs_finite_differences")]


@experiment(
    ids=("Q11.a",),
    method="In float64 we compare deepbasics.autodiff's Jacobian (reverse and forward mode) of a random tanh MLP's "
    "output with respect to its input, its Hessian of a scalar output, and loss_hessian (cross-entropy of a small "
    "tanh MLP over all its parameters) with central finite differences (finite_difference_jacobian, h = 1e-6; "
    "finite_difference_hessian, h = 1e-4), and measure max |H - H^T| / max |H|. The judged number is the worst of "
    "the four relative errors as a ratio to its limit (holds below 1); the FD error against h is plotted.",
    quick={
        "in_features": 5,
        "hidden": 8,
        "out_features": 3,
        "net": [3, 4, 3],
        "examples": 32,
        "fd_steps": [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10],
        "jac_tol": 1e-6,
        "hess_tol": 1e-5,
        "sym_tol": 1e-12,
    },
    full={
        "in_features": 10,
        "hidden": 16,
        "out_features": 4,
        "net": [4, 6, 3],
        "examples": 128,
        "fd_steps": [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10],
        "jac_tol": 1e-6,
        "hess_tol": 1e-5,
        "sym_tol": 1e-12,
    },
    # Limits from the finite differences' own error (Nocedal & Wright sec. 8.1): h = 1e-6 central differences carry
    # ~h^2 + 1e-16/h = 1e-10 relative error, h = 1e-4 second differences ~h^2 + 1e-16/h^2 = 1e-8; 1e-6 and 1e-5
    # leave 3-4 orders of margin for larger derivatives. Forward-over-reverse is not symmetric by construction, so
    # its asymmetry is pure rounding: ~1e-16, and 1e-12 would catch any real asymmetry.
    rules={"Q11.a": Rule("worst_check_ratio", "<", 1.0, since="0.1.0")},
    metrics={
        "worst_check_ratio": Metric("worst of the four checks as a fraction of its limit"),
        "jacobian_err": Metric("relative error of the Jacobian against finite differences"),
        "loss_hessian_err": Metric("relative error of the loss Hessian against finite differences"),
        "hessian_asymmetry": Metric("relative asymmetry of the Hessian"),
    },
    takeaways={
        "Q11.a": "autodiff Jacobians and Hessians agree with finite differences to a relative {jacobian_err} and "
        "{loss_hessian_err}, and the Hessian is symmetric to {hessian_asymmetry}",
    },
    seeds=3,
    timeout=180,
    plot=_plot_fd,
)
def autodiff_vs_fd(params, seed):
    from deepbasics import autodiff, nn

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    d, h, m = params["in_features"], params["hidden"], params["out_features"]
    net = nn.mlp([d, h, m], activation="tanh").double()
    x = torch.randn(d, generator=g, dtype=torch.float64)

    def f(v: torch.Tensor) -> torch.Tensor:  # R^d -> R^m
        return net(v)

    jac_rev, jac_fwd = autodiff.jacobian(f, x), autodiff.jacobian(f, x, mode="forward")  # (m, d)
    jac_fd = autodiff.finite_difference_jacobian(f, x)
    jacobian_err = max(_rel(jac_rev, jac_fd), _rel(jac_fwd, jac_fd))
    curve = [_rel(autodiff.finite_difference_jacobian(f, x, eps=e), jac_rev) for e in params["fd_steps"]]

    def scalar(v: torch.Tensor) -> torch.Tensor:  # R^d -> R: log-sum-exp of the outputs, smooth
        return torch.logsumexp(net(v), dim=-1)

    h_in = autodiff.hessian(scalar, x)  # (d, d)
    input_hessian_err = _rel(h_in, autodiff.finite_difference_hessian(scalar, x))
    hvp_err = _rel(autodiff.hvp(scalar, x, jac_fd[0].clone()), h_in @ jac_fd[0])

    # the loss Hessian over every parameter of a small classifier
    sizes = params["net"]
    model = nn.mlp(sizes, activation="tanh").double()
    xs = torch.randn(params["examples"], sizes[0], generator=g, dtype=torch.float64)
    ys = torch.randint(0, sizes[-1], (params["examples"],), generator=g)
    loss_fn = torch.nn.CrossEntropyLoss()
    h_loss = autodiff.loss_hessian(model, loss_fn, xs, ys)  # (P, P)
    theta0, loss_of = _flat_loss(model, loss_fn, xs, ys)
    loss_hessian_err = _rel(h_loss, autodiff.finite_difference_hessian(loss_of, theta0))
    asym = max((h_loss - h_loss.T).abs().max().item() / h_loss.abs().max().item(), _rel(h_in.T, h_in))
    checks = {
        "jacobian": _ratio(jacobian_err, "<", params["jac_tol"]),
        "input_hessian": _ratio(max(input_hessian_err, hvp_err), "<", params["hess_tol"]),
        "loss_hessian": _ratio(loss_hessian_err, "<", params["hess_tol"]),
        "symmetry": _ratio(asym, "<", params["sym_tol"]),
    }
    return {
        "worst_check_ratio": max(checks.values()),
        "checks": checks,
        "jacobian_err": jacobian_err,
        "input_hessian_err": input_hessian_err,
        "hvp_err": hvp_err,
        "loss_hessian_err": loss_hessian_err,
        "hessian_asymmetry": asym,
        "num_params": int(theta0.numel()),
        "fd_error_curve": curve,
    }


# -------------------------------------------------------------------------------------------------- Q11.b Taylor
def _plot_taylor(outputs, params, outdir):
    import matplotlib.pyplot as plt

    ts = np.array(params["steps"])
    fig, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    for seed, out in enumerate(outputs):
        ax.loglog(
            ts,
            out["first_order_err"],
            "o-",
            color="C0",
            alpha=0.7,
            label=f"first order (slope {out['slope_first']:.2f})" if seed == 0 else None,
        )
        ax.loglog(
            ts,
            out["second_order_err"],
            "s-",
            color="C1",
            alpha=0.7,
            label=f"second order (slope {out['slope_second']:.2f})" if seed == 0 else None,
        )
    ref1, ref2 = outputs[0]["first_order_err"][0], outputs[0]["second_order_err"][0]
    ax.loglog(ts, ref1 * (ts / ts[0]) ** 2, "k:", lw=1, label="t^2")
    ax.loglog(ts, ref2 * (ts / ts[0]) ** 3, "k--", lw=1, label="t^3")
    ax.set(
        xlabel="step length t along a unit direction (parameter units)",
        ylabel="median |L(theta + t d) - Taylor model| (nats)",
        title="Q11.b: Taylor models of the loss change (all seeds)",
    )
    ax.legend(fontsize=8)
    return [save_figure(fig, outdir, "taylor_error_vs_step")]


@experiment(
    ids=("Q11.b",),
    method="At the initial parameters of a tanh MLP on the circles data (cross-entropy, float64) we step a length t "
    "along random unit directions d and compare the true change L(theta + t d) - L(theta) with the first-order model "
    "t g.d and the second-order model t g.d + t^2/2 d^T H d (H d by deepbasics.autodiff.hvp). Per seed we take the "
    "median error over directions and fit log-log slopes against t. The judged number is the worst of three checks "
    "as a ratio to its limit (holds below 1): second-order slope > 2.5, first-order slope < 2.5, and second-order "
    "error < 1e-2 of the first-order error at the smallest t.",
    quick={"hidden": 16, "examples": 200, "directions": 20, "steps": [1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1]},
    full={
        "hidden": 32,
        "examples": 1000,
        "directions": 200,
        "steps": [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1],
    },
    # Taylor's theorem gives slopes 3 and 2; 2.5 is the midpoint, so each check asks which order the error has.
    # "Much smaller" = two orders of magnitude at the smallest step (theory: ratio ~ t |L'''| / |L''| ~ 1e-3).
    rules={"Q11.b": Rule("worst_check_ratio", "<", 1.0, since="0.1.0")},
    metrics={
        "worst_check_ratio": Metric("worst of the three checks as a fraction of its limit"),
        "slope_first": Metric("log-log slope of the first-order model's error against the step"),
        "slope_second": Metric("log-log slope of the second-order model's error against the step"),
        "err_ratio_smallest_step": Metric("second- over first-order error at the smallest step"),
    },
    takeaways={
        "Q11.b": "the first-order Taylor model's error grows like t^{slope_first} with the step t, the second-order "
        "model's like t^{slope_second}; at the smallest step it is {err_ratio_smallest_step} of the first-order "
        "error",
    },
    seeds=3,
    timeout=120,
    plot=_plot_taylor,
)
def taylor(params, seed):
    from deepbasics import autodiff, data, nn

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x, y = data.circles(params["examples"], noise=0.1, seed=seed, dtype=torch.float64)
    model = nn.mlp([2, params["hidden"], 2], activation="tanh").double()
    theta0, loss_of = _flat_loss(model, torch.nn.CrossEntropyLoss(), x, y)
    with torch.no_grad():
        base = loss_of(theta0)
    grad = torch.func.grad(loss_of)(theta0)  # (P,)
    ts = params["steps"]
    e1 = np.zeros((params["directions"], len(ts)))
    e2 = np.zeros_like(e1)
    for i in range(params["directions"]):
        d = torch.randn(theta0.shape, generator=g, dtype=torch.float64)
        d = d / d.norm()
        curv = torch.dot(d, autodiff.hvp(loss_of, theta0, d)).item()  # d^T H d
        slope = torch.dot(grad, d).item()
        with torch.no_grad():
            for j, t in enumerate(ts):
                change = (loss_of(theta0 + t * d) - base).item()
                e1[i, j] = abs(change - t * slope)
                e2[i, j] = abs(change - t * slope - 0.5 * t * t * curv)
    first, second = np.median(e1, axis=0), np.median(e2, axis=0)
    slope_first = float(np.polyfit(np.log(ts), np.log(first), 1)[0])
    slope_second = float(np.polyfit(np.log(ts), np.log(second), 1)[0])
    small_ratio = float(second[0] / first[0])
    checks = {
        "second_order_is_cubic": _ratio(slope_second, ">", 2.5),
        "first_order_is_quadratic": _ratio(slope_first, "<", 2.5),
        "second_much_smaller": _ratio(small_ratio, "<", 1e-2),
    }
    return {
        "worst_check_ratio": max(checks.values()),
        "checks": checks,
        "slope_first": slope_first,
        "slope_second": slope_second,
        "err_ratio_smallest_step": small_ratio,
        "first_order_err": first.tolist(),
        "second_order_err": second.tolist(),
    }
