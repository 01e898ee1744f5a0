"""Q7: entropy, KL divergence and cross-entropy (the FAQ leaves this section empty; the claims are textbook).

For distributions ``p, q`` over K outcomes (nats): ``H(p) = -sum p log p``, ``H(p, q) = -sum p log q``,
``KL(p || q) = sum p log(p / q)``.

- **Q7.a** ``H(p, q) = H(p) + KL(p || q)``; ``KL >= 0`` with equality iff ``p = q`` (Gibbs' inequality);
  ``KL(p || q) != KL(q || p)`` in general (Cover & Thomas 2006, sec. 2.3 and thm. 2.6.3).
- **Q7.b** ``H(p)`` does not depend on ``q``, so minimizing ``H(p, q)`` over ``q`` is minimizing ``KL(p || q)``, and
  the minimizer is ``q = p``.
- **Q7.c** For a classifier ``q(y | x)``, the mean cross-entropy loss ``-(1/N) sum_n log q(y_n | x_n)`` is the
  negative log-likelihood per example, so minimizing it is maximum-likelihood estimation (Goodfellow et al.,
  *Deep Learning*, 2016, sec. 5.5 and 6.2.1.1).
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


def _dirichlet(n: int, k: int, g: torch.Generator) -> torch.Tensor:
    """(n, k) float64 rows uniform on the probability simplex: Dirichlet(1, ..., 1) as normalized Exp(1) draws."""
    u = torch.rand(n, k, generator=g, dtype=torch.float64).clamp_min(1e-300)
    e = -torch.log(u)  # Exp(1) by inversion (torch's Gamma sampler takes no generator)
    return e / e.sum(-1, keepdim=True)


# ----------------------------------------------------------------------------------------------- Q7.a identity
def _plot_identity(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4), layout="constrained")
    for seed, out in enumerate(outputs):
        ax1.scatter(out["kl_pq_sample"], out["kl_qp_sample"], s=6, alpha=0.5, label=f"seed {seed}")
        deltas = np.array(params["deltas"])
        ax2.loglog(deltas, out["kl_near"], "o-", label=f"seed {seed}")
    lim = max(max(out["kl_pq_sample"] + out["kl_qp_sample"]) for out in outputs)
    ax1.plot([0, lim], [0, lim], "k--", lw=1, label="KL(p||q) = KL(q||p)")
    ax1.set(xlabel="KL(p || q) (nats)", ylabel="KL(q || p) (nats)", title="Q7.a: KL is not symmetric")
    ax1.legend(fontsize=8)
    ax2.loglog(deltas, 0.5 * deltas**2 * outputs[0]["kl_near"][0] / (0.5 * deltas[0] ** 2), "k:", label="slope 2")
    ax2.set(
        xlabel="perturbation size delta (q = p e^{delta z} / Z)",
        ylabel="mean KL(p || q) (nats)",
        title="Q7.a: KL > 0, -> 0 only as q -> p",
    )
    ax2.legend(fontsize=8)
    return [save_figure(fig, outdir, "kl_asymmetry_and_positivity")]


@experiment(
    ids=("Q7.a",),
    method="For random pairs (p, q) drawn uniformly from the simplex (K = 2 to 100 outcomes) and for q = p e^{delta z} "
    "/ Z close to p (delta down to 1e-4) we compute H(p), H(p, q) and KL(p || q) with deepbasics.information in "
    "float64. The judged number is the worst of four checks as a ratio to its limit (holds below 1): |H(p, q) - H(p) - "
    "KL(p || q)| < 1e-12, agreement with scipy.stats.entropy < 1e-12, no pair with q != p has KL <= 0 and KL(p || p) "
    "= 0 exactly, and max |KL(p || q) - KL(q || p)| > 0.01 nats.",
    quick={"sizes": [2, 3, 10, 100], "pairs": 300, "deltas": [1e-1, 1e-2, 1e-3, 1e-4]},
    full={"sizes": [2, 3, 5, 10, 30, 100, 1000], "pairs": 5000, "deltas": [1e-1, 3e-2, 1e-2, 1e-3, 1e-4, 1e-5]},
    # 1e-12: the terms are O(1) nats and a sum of K <= 1000 float64 terms carries rounding below K * 1.1e-16 * log K,
    # about 1e-12 at worst; 0.01 nats of asymmetry is ten billion times the rounding, so a symmetric KL cannot pass.
    rules={"Q7.a": Rule("worst_check_ratio", "<", 1.0, since="0.1.0")},
    metrics={
        "worst_check_ratio": Metric("worst of the four checks as a fraction of its limit"),
        "identity_max_abs_err": Metric("largest error of H(p, q) = H(p) + KL(p || q)", unit="nats"),
        "max_asymmetry": Metric("largest |KL(p || q) - KL(q || p)|", unit="nats"),
    },
    takeaways={
        "Q7.a": "H(p, q) = H(p) + KL(p || q) holds to {identity_max_abs_err}, KL is never negative, and KL(p || q) "
        "and KL(q || p) differ by up to {max_asymmetry}",
    },
    seeds=3,
    timeout=120,
    plot=_plot_identity,
)
def decomposition(params, seed):
    from scipy import stats

    from deepbasics import information

    g = torch.Generator().manual_seed(seed)
    identity_err, scipy_err, asym, violations = 0.0, 0.0, 0.0, 0
    kl_pq_sample, kl_qp_sample = [], []
    for k in params["sizes"]:
        p = _dirichlet(params["pairs"], k, g)  # (n, K)
        q = _dirichlet(params["pairs"], k, g)
        h_p, h_pq = information.entropy(p), information.cross_entropy(p, q)
        kl_pq, kl_qp = information.kl_divergence(p, q), information.kl_divergence(q, p)
        identity_err = max(identity_err, (h_pq - h_p - kl_pq).abs().max().item())
        scipy_err = max(
            scipy_err,
            float(np.abs(kl_pq.numpy() - stats.entropy(p.numpy(), q.numpy(), axis=-1)).max()),
            float(np.abs(h_p.numpy() - stats.entropy(p.numpy(), axis=-1)).max()),
        )
        asym = max(asym, (kl_pq - kl_qp).abs().max().item())
        violations += int((kl_pq <= 0).sum()) + int((information.kl_divergence(p, p) != 0).sum())
        kl_pq_sample += kl_pq[:50].tolist()
        kl_qp_sample += kl_qp[:50].tolist()
    # q -> p: KL(p || p e^{dz}/Z) = delta^2 Var_p(z) / 2 + O(delta^3) > 0
    k = params["sizes"][-1]
    p = _dirichlet(params["pairs"], k, g)
    z = torch.randn(p.shape, generator=g, dtype=torch.float64)
    kl_near = []
    for delta in params["deltas"]:
        q = p * torch.exp(delta * z)
        q = q / q.sum(-1, keepdim=True)
        kl = information.kl_divergence(p, q)
        violations += int((kl <= 0).sum())
        kl_near.append(kl.mean().item())
    near_slope = float(np.polyfit(np.log(params["deltas"]), np.log(kl_near), 1)[0])
    checks = {
        "identity": _ratio(identity_err, "<", 1e-12),
        "scipy_agreement": _ratio(scipy_err, "<", 1e-12),
        "kl_positive_except_p_eq_q": _ratio(float(violations), "<", 0.5),
        "asymmetry": _ratio(asym, ">", 0.01),
    }
    return {
        "worst_check_ratio": max(checks.values()),
        "checks": checks,
        "identity_max_abs_err": identity_err,
        "scipy_max_abs_err": scipy_err,
        "kl_violations": violations,
        "max_asymmetry": asym,
        "near_slope": near_slope,
        "kl_near": kl_near,
        "kl_pq_sample": kl_pq_sample,
        "kl_qp_sample": kl_qp_sample,
    }


# ----------------------------------------------------------------------------------------------- Q7.b minimizer
def _plot_minimizer(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4), layout="constrained")
    for seed, out in enumerate(outputs):
        steps = out["record_steps"]
        ax1.loglog(steps, out["max_abs_diff_path"], label=f"seed {seed}: max |q_t - p|")
        ax1.loglog(steps, out["kl_path"], "--", label=f"seed {seed}: max KL(p || q_t)")
        ax2.scatter(out["p_sample"], out["q_sample"], s=10, alpha=0.6, label=f"seed {seed}")
    t = np.array(outputs[0]["record_steps"], dtype=float)
    ax1.loglog(t, 1 / (2 * t), "k:", label="1 / (lr t), the slowest coordinate's rate")
    ax1.axhline(1e-3, color="grey", ls="--", lw=1, label="threshold 1e-3")
    ax1.set(
        xlabel="gradient-descent step t",
        ylabel="distance to p (probability / nats)",
        title="Q7.b: minimizing H(p, q) over q drives q to p",
    )
    ax1.legend(fontsize=7)
    ax2.plot([0, 1], [0, 1], "k--", lw=1, label="q* = p")
    ax2.set(xlabel="p_k (target probability)", ylabel="q*_k (minimizer found)", title="Q7.b: q* against p")
    ax2.legend(fontsize=8)
    return [save_figure(fig, outdir, "cross_entropy_minimizer")]


@experiment(
    ids=("Q7.b",),
    method="For p drawn uniformly from the simplex (K outcomes, several p per seed) we minimize the cross-entropy "
    "H(p, softmax(theta)) = -sum p log_softmax(theta) over theta by plain gradient descent (deepbasics.optim.SGD, "
    "lr 2 = 1/L, float64) from a random theta ~ N(0, I), and at 25 recorded steps check that its value equals "
    "deepbasics.information's H(p) + KL(p || q) and its gradient equals that of KL(p || q). The judged number is the "
    "worst of two checks as a ratio to its limit (holds below 1): max |q* - p| < 1e-3 at the end, and the largest "
    "value or gradient gap < 1e-12 along the path.",
    quick={"outcomes": 10, "distributions": 20, "steps": 2000},
    full={"outcomes": 10, "distributions": 200, "steps": 20000},
    # The Hessian in theta, diag(q) - q q^T, is the covariance of a one-hot vector, so lambda_max <= 1/2 (Popoviciu)
    # and lr = 2 = 1/L is a safe step. On this convex problem the slowest coordinate (q_k >> p_k, dq/dt ~ -lr q^2)
    # closes its gap like 1 / (lr t) = 2.5e-4 after 2000 steps: 1e-3 is an optimization tolerance, 100 times
    # below the mean probability 1/K = 0.1, chosen from that rate and not from a run.
    rules={"Q7.b": Rule("worst_check_ratio", "<", 1.0, since="0.1.0")},
    metrics={
        "worst_check_ratio": Metric("worst of the two checks as a fraction of its limit"),
        "max_abs_diff": Metric("largest |q* - p| after minimizing the cross-entropy"),
        "max_objective_gap": Metric("largest gap between the cross-entropy and H(p) + KL(p || q)"),
    },
    takeaways={
        "Q7.b": "minimizing the cross-entropy over q ends within {max_abs_diff} of q = p, and along the way it equals "
        "H(p) + KL(p || q) to {max_objective_gap}",
    },
    seeds=3,
    timeout=120,
    plot=_plot_minimizer,
)
def minimizer(params, seed):
    from deepbasics import information, numerics, optim

    g = torch.Generator().manual_seed(seed)
    p = _dirichlet(params["distributions"], params["outcomes"], g)  # (B, K)
    theta = torch.randn(p.shape, generator=g, dtype=torch.float64).requires_grad_()
    opt = optim.SGD([theta], lr=2.0)
    steps = params["steps"]
    record = sorted({round(float(x)) for x in np.geomspace(1, steps, 25)})
    diff_path, kl_path, gap = [], [], 0.0
    for t in range(1, steps + 1):
        opt.zero_grad()
        # a sum over the B independent problems, so each row's gradient is that of its own H(p_b, q_b)
        loss = -(p * numerics.log_softmax(theta)).sum()
        loss.backward()
        if t in record:  # the same objective through deepbasics.information: H(p, q) = H(p) + KL(p || q)
            kl = information.kl_divergence_from_logits(torch.log(p), theta).sum()
            (grad_kl,) = torch.autograd.grad(kl, theta)
            value_gap = (loss - information.entropy(p).sum() - kl).abs().item() / loss.item()
            gap = max(gap, value_gap, (theta.grad - grad_kl).abs().max().item())
        opt.step()
        if t in record:
            with torch.no_grad():
                q = torch.softmax(theta, -1)
                diff_path.append((q - p).abs().max().item())
                kl_path.append(information.kl_divergence(p, q).max().item())
    with torch.no_grad():
        q = torch.softmax(theta, -1)
        max_diff = (q - p).abs().max().item()
        max_kl = information.kl_divergence(p, q).max().item()
    checks = {"q_equals_p": _ratio(max_diff, "<", 1e-3), "same_objective_as_kl": _ratio(gap, "<", 1e-12)}
    return {
        "worst_check_ratio": max(checks.values()),
        "checks": checks,
        "max_abs_diff": max_diff,
        "max_kl": max_kl,
        "max_objective_gap": gap,
        "record_steps": record,
        "max_abs_diff_path": diff_path,
        "kl_path": kl_path,
        "p_sample": p[:3].reshape(-1).tolist(),
        "q_sample": q[:3].reshape(-1).tolist(),
    }


# ---------------------------------------------------------------------------------------------- Q7.c likelihood
def _plot_likelihood(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4), layout="constrained")
    labels = ["digits MLP (init)", "digits MLP (trained)", "logistic regression"]
    for seed, out in enumerate(outputs):
        ax1.scatter(range(3), np.maximum(out["ce_nll_gaps"], 1e-18), label=f"seed {seed}")
        ax2.scatter(out["coef_sklearn"], out["coef_ours"], s=12, label=f"seed {seed}")
    ax1.axhline(1e-12, color="k", ls="--", label="threshold 1e-12")
    ax1.set_yscale("log")
    ax1.set_xticks(range(3), labels, fontsize=8)
    ax1.set(
        ylabel="|CrossEntropyLoss - NLL| / NLL\n(exact agreement drawn at 1e-18)",
        title="Q7.c: mean cross-entropy = NLL per example",
    )
    ax1.legend(fontsize=8)
    lim = max(max(abs(c) for c in out["coef_sklearn"]) for out in outputs) * 1.05
    ax2.plot([-lim, lim], [-lim, lim], "k--", lw=1, label="equal")
    ax2.set(
        xlabel="sklearn maximum-likelihood coefficient",
        ylabel="CE-trained coefficient (LBFGS)",
        title="Q7.c: CE minimizer = maximum-likelihood fit",
    )
    ax2.legend(fontsize=8)
    return [save_figure(fig, outdir, "cross_entropy_is_nll")]


def _nll(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``-(1/N) sum_n log q(y_n | x_n)`` from the model's probabilities (softmax, then log of the picked entry)."""
    probs = torch.softmax(logits, dim=-1)  # (N, C)
    return -torch.log(probs.gather(1, y[:, None])).mean()


@experiment(
    ids=("Q7.c",),
    method="We compare torch.nn.CrossEntropyLoss with the negative log-likelihood -(1/N) sum log q(y|x) computed from "
    "the model's probabilities, in float64, for a digits MLP at initialization and after some Adam steps and for a "
    "logistic regression on the ten 'mean' features of breast cancer, trained by minimizing the cross-entropy with "
    "LBFGS; its log-likelihood is compared with sklearn's maximum-likelihood fit (LogisticRegression, no penalty). "
    "The judged number is the worst of two checks as a ratio to its limit (holds below 1): CE vs NLL relative gap "
    "< 1e-12, and relative log-likelihood gap to sklearn's optimum < 1e-6.",
    quick={"hidden": 32, "mlp_steps": 50, "features": 10},
    full={"hidden": 128, "mlp_steps": 500, "features": 10},
    # 1e-12: the two computations differ only by rounding (log of a rounded probability, |log p| <= 40 here);
    # 1e-6: two optimizers stopped at gradient tolerances <= 1e-10 agree in the optimal loss to second order.
    rules={"Q7.c": Rule("worst_check_ratio", "<", 1.0, since="0.1.0")},
    metrics={
        "worst_check_ratio": Metric("worst of the two checks as a fraction of its limit"),
        "ce_nll_max_rel_gap": Metric("relative gap between cross-entropy and negative log-likelihood"),
        "loglik_rel_gap": Metric("relative gap to sklearn's maximum likelihood"),
    },
    takeaways={
        "Q7.c": "the cross-entropy equals the negative log-likelihood to a relative {ce_nll_max_rel_gap}, and "
        "minimizing it reaches sklearn's maximum likelihood to a relative {loglik_rel_gap}",
    },
    seeds=3,
    timeout=180,
    plot=_plot_likelihood,
)
def likelihood(params, seed):
    import warnings

    from sklearn.linear_model import LogisticRegression

    from deepbasics import data, nn, optim

    torch.manual_seed(seed)
    ce = torch.nn.CrossEntropyLoss()
    gaps = []
    # (1) a 10-class MLP on digits, before and after training
    digits = data.digits(seed=seed, dtype=torch.float64)
    x, y = digits.tensors("train")
    model = nn.mlp([64, params["hidden"], 10], activation="tanh").double()
    for _ in range(2):
        with torch.no_grad():
            logits = model(x)
            gaps.append((abs(ce(logits, y) - _nll(logits, y)) / _nll(logits, y)).item())
        opt = optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(params["mlp_steps"]):
            opt.zero_grad()
            ce(model(x), y).backward()
            opt.step()
    # (2) logistic regression on breast cancer, fitted by minimizing the cross-entropy
    bc = data.breast_cancer(seed=seed, dtype=torch.float64)
    xb, yb = bc.tensors("train")
    xb = xb[:, : params["features"]]
    lin = torch.nn.Linear(xb.shape[1], 2).double()
    lbfgs = torch.optim.LBFGS(
        lin.parameters(),
        lr=1,
        max_iter=5000,
        tolerance_grad=1e-12,
        tolerance_change=1e-16,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure():
        lbfgs.zero_grad()
        loss = ce(lin(xb), yb)
        loss.backward()
        return loss

    lbfgs.step(closure)
    with torch.no_grad():
        logits = lin(xb)
        ours = ce(logits, yb).item()
        gaps.append((abs(ce(logits, yb) - _nll(logits, yb)) / _nll(logits, yb)).item())
        coef = (lin.weight[1] - lin.weight[0]).numpy()  # log-odds of class 1 vs 0: the identified parameters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's deprecation notes about spelling "no penalty"
        sk = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000, solver="newton-cg").fit(xb.numpy(), yb.numpy())
    prob = sk.predict_proba(xb.numpy())
    sk_nll = float(-np.mean(np.log(prob[np.arange(len(yb)), yb.numpy()])))
    ll_gap = abs(ours - sk_nll) / sk_nll
    coef_gap = float(np.abs(coef - sk.coef_[0]).max() / np.abs(sk.coef_[0]).max())
    checks = {"ce_equals_nll": _ratio(max(gaps), "<", 1e-12), "likelihood_matches_mle": _ratio(ll_gap, "<", 1e-6)}
    return {
        "worst_check_ratio": max(checks.values()),
        "checks": checks,
        "ce_nll_gaps": gaps,
        "ce_nll_max_rel_gap": max(gaps),
        "nll_ours": ours,
        "nll_sklearn": sk_nll,
        "loglik_rel_gap": ll_gap,
        "coef_rel_gap": coef_gap,
        "coef_ours": coef.tolist(),
        "coef_sklearn": sk.coef_[0].tolist(),
    }
