"""Q2 / Q12: why the Gaussian is the default: the central limit theorem, maximum entropy, and the densities.

- **Q2.a** Standardized sums ``Z_n = (X_1 + ... + X_n - n mu) / (sqrt(n) sigma)`` of exponential, uniform and
  Bernoulli draws approach N(0, 1); the Kolmogorov-Smirnov distance falls at least like ``n^(-1/2)``
  (Berry-Esseen; Feller 1971, vol. II, sec. XVI.5).
- **Q2.b** Among densities with variance ``sigma^2`` the normal maximizes ``h(p) = -E log p``:
  ``h(N) - h(p) = KL(p || N) >= 0`` (Cover & Thomas 2006, thm. 8.6.5). We search a random family.
- **Q2.c** ``deepbasics.gaussian``'s log-densities agree with SciPy's to rounding error.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from deepbasics.lab import Metric, Rule, experiment, save_figure

#: Mean of the KS statistic of N draws from the null (Kolmogorov): about sqrt(pi/2) ln 2 / sqrt(N).
KS_NULL_MEAN = math.sqrt(math.pi / 2) * math.log(2)
#: Q2.a: once this many consecutive n give a distance under the sampling-noise floor, larger n are not drawn: their
#: distances would sit at the floor too and are excluded from the fit anyway (only sums of uniforms, whose distance
#: falls like 1/n, get there within n <= 256).
BELOW_FLOOR_STOP = 2


def _sum_sampler(name: str, n: int, num_samples: int, g: torch.Generator) -> torch.Tensor:
    """``num_samples`` draws of the standardized sum ``Z_n`` of ``n`` iid variables of ``DISTRIBUTIONS[name]``.

    Sums whose law is known in closed form are drawn from it in O(1) per sample instead of O(n), which is the same
    distribution of ``Z_n``: n Exp(1) sum to Gamma(n, 1) and n Bernoulli(p) to Binomial(n, p) (Feller 1971, vol.
    II, sec. II.2; vol. I, sec. VI.1). Others (uniform) are summed draw by draw.
    """
    from deepbasics import gaussian

    dist = gaussian.DISTRIBUTIONS[name]()
    if dist.name == "exponential(1)":
        rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=g)))
        total = torch.from_numpy(rng.standard_gamma(float(n), num_samples))  # (N,)
    elif dist.name == "bernoulli(0.5)":
        count = torch.full((num_samples,), float(n), dtype=torch.float64)
        total = torch.binomial(count, torch.full_like(count, 0.5), generator=g)  # (N,)
    else:
        return gaussian.standardized_sum(name, n, num_samples, g)
    return (total - n * dist.mean) / math.sqrt(n * dist.var)


# ---------------------------------------------------------------------------------------------- Q2.a CLT
def _plot_clt(outputs, params, outdir):
    import matplotlib.pyplot as plt

    from deepbasics import gaussian

    ns = np.array(params["ns"], dtype=float)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, name in enumerate(params["distributions"]):
        color = f"C{i}"
        curves = np.array([[np.nan if d is None else d for d in out["ks"][name]] for out in outputs])  # (S, len(ns))
        slope = np.mean([out[f"slope_{name}"] for out in outputs])
        ax.loglog(ns, curves.mean(0), "o-", color=color, label=f"{name} (fitted slope {slope:.2f})")
        bound = [gaussian.berry_esseen_bound(gaussian.DISTRIBUTIONS[name](), int(n)) for n in ns]
        ax.loglog(ns, bound, ":", color=color, alpha=0.6)
    floor = params["floor_factor"] * KS_NULL_MEAN / math.sqrt(params["num_samples"])
    ax.axhline(floor, color="grey", lw=1, ls="--", label="sampling-noise floor (points below not fitted)")
    ax.loglog(ns, 0.5 / np.sqrt(ns), "k-", lw=0.8, alpha=0.5, label="0.5 / sqrt(n)")
    ax.set(
        xlabel="number of summed variables n",
        ylabel="KS distance to N(0, 1) (probability)",
        title="Q2.a: standardized sums approach the normal\n(dotted: Berry-Esseen bound)",
    )
    ax.legend(fontsize=7)
    return [save_figure(fig, outdir, "ks_distance_vs_n")]


@experiment(
    ids=("Q2.a",),
    method="For exponential, uniform and Bernoulli(1/2) variables we draw num_samples standardized sums Z_n "
    "for each n (sums of exponentials and Bernoullis from their exact Gamma and binomial laws) and measure the "
    "Kolmogorov-Smirnov distance of their empirical CDF to the standard normal CDF. "
    "Per distribution we fit the log-log slope of distance against n over the points above the KS "
    "sampling-noise floor (larger n are skipped after two below it); the judged number is the slowest (largest) of "
    "the three slopes.",
    quick={
        "ns": [1, 2, 3, 4, 6, 8, 12, 16, 24, 32],
        "num_samples": 50_000,
        "distributions": ["exponential", "uniform", "bernoulli"],
        "floor_factor": 1.5,
    },
    full={
        "ns": [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256],
        "num_samples": 1_000_000,
        "distributions": ["exponential", "uniform", "bernoulli"],
        "floor_factor": 2.0,
    },
    # 1/sqrt(n) is a slope of -0.5; -0.3 leaves room for noise yet rejects convergence slower than n^(-0.3).
    rules={"Q2.a": Rule("worst_slope", "<", -0.3, since="0.1.0")},
    metrics={
        "worst_slope": Metric("slowest log-log slope of the distance to the normal against n"),
        "slope_exponential": Metric("log-log slope, sums of exponentials"),
        "slope_uniform": Metric("log-log slope, sums of uniforms"),
        "slope_bernoulli": Metric("log-log slope, sums of Bernoullis"),
    },
    takeaways={
        "Q2.a": "the Kolmogorov-Smirnov distance of standardized sums to the normal falls like n to the power "
        "{slope_exponential} (exponential), {slope_uniform} (uniform) and {slope_bernoulli} (Bernoulli); 1/sqrt(n) "
        "is -0.5",
    },
    seeds=3,
    timeout=600,
    plot=_plot_clt,
)
def clt(params, seed):
    from deepbasics import gaussian

    g = torch.Generator().manual_seed(seed)
    ns = params["ns"]
    floor = params["floor_factor"] * KS_NULL_MEAN / math.sqrt(params["num_samples"])
    out = {"ks": {}, "noise_floor": floor}
    for name in params["distributions"]:
        ks: list[float | None] = []
        for n in ns:
            if len(ks) >= BELOW_FLOOR_STOP and all(d is None or d <= floor for d in ks[-BELOW_FLOOR_STOP:]):
                ks.append(None)  # not drawn: at the noise floor (see BELOW_FLOOR_STOP)
                continue
            ks.append(gaussian.ks_distance_to_normal(_sum_sampler(name, n, params["num_samples"], g)))
        keep = [i for i, d in enumerate(ks) if d is not None and d > floor]
        if len(keep) < 3:
            raise ValueError(
                f"{name}: only {len(keep)} KS distances above the noise floor {floor:.3g}; a slope needs 3. "
                "Raise num_samples or add smaller n."
            )
        slope = np.polyfit(np.log([ns[i] for i in keep]), np.log([ks[i] for i in keep]), 1)[0]
        out["ks"][name] = ks
        out[f"slope_{name}"] = float(slope)
    out["worst_slope"] = max(out[f"slope_{name}"] for name in params["distributions"])
    return out


# ------------------------------------------------------------------------------------ Q2.b max entropy
def _candidates(rng: np.random.Generator, per_family: int) -> list[tuple[str, float, object]]:
    """Unit-variance distributions: the four of the FAQ's table, then random members of three families.

    Returns ``(family, shape parameter, frozen scipy distribution)``; every variance is exactly 1.
    """
    from scipy import special, stats

    s3 = math.sqrt(3.0)
    named = [
        ("logistic", 0.0, stats.logistic(scale=s3 / math.pi)),
        ("triangular", 0.0, stats.triang(0.5, loc=-math.sqrt(6.0), scale=2 * math.sqrt(6.0))),
        ("laplace", 0.0, stats.laplace(scale=1 / math.sqrt(2.0))),
        ("uniform", 0.0, stats.uniform(loc=-s3, scale=2 * s3)),
    ]
    out = list(named)
    for beta in rng.uniform(0.5, 8.0, per_family):  # generalized normal; beta = 2 is the normal itself
        scale = math.sqrt(special.gamma(1 / beta) / special.gamma(3 / beta))
        out.append(("generalized normal", float(beta), stats.gennorm(beta, scale=scale)))
    for df in rng.uniform(2.5, 60.0, per_family):  # Student t, var = df / (df - 2)
        out.append(("Student t", float(df), stats.t(df, scale=math.sqrt((df - 2) / df))))
    for _ in range(per_family):  # two-component Gaussian mixtures, mean 0, variance 1
        w, delta = rng.uniform(0.2, 0.8), rng.uniform(0.5, 1.9)
        out.append(("Gaussian mixture", float(delta), _Mixture(w, delta)))
    return out


class _Mixture:
    """``w N(-(1-w) delta, s^2) + (1-w) N(w delta, s^2)`` with ``s^2 = 1 - w (1-w) delta^2``: mean 0, var 1."""

    def __init__(self, w: float, delta: float) -> None:
        self.w, self.means = w, ((w - 1) * delta, w * delta)
        self.s = math.sqrt(1 - w * (1 - w) * delta**2)

    def var(self) -> float:
        return self.s**2 + self.w * self.means[0] ** 2 + (1 - self.w) * self.means[1] ** 2

    def logpdf(self, x: float) -> float:
        c = -math.log(self.s) - 0.5 * math.log(2 * math.pi)
        a = math.log(self.w) + c - 0.5 * ((x - self.means[0]) / self.s) ** 2
        b = math.log(1 - self.w) + c - 0.5 * ((x - self.means[1]) / self.s) ** 2
        return float(np.logaddexp(a, b))

    def entropy(self) -> float:
        """``-int p log p dx`` by adaptive quadrature; the tails beyond 12 (>= 12 std) hold < 1e-30."""
        from scipy import integrate

        def integrand(x: float) -> float:
            lp = self.logpdf(x)
            return -math.exp(lp) * lp

        return integrate.quad(integrand, -12, 12, limit=200, epsabs=1e-12)[0]


def _plot_entropy(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    families = list(dict.fromkeys(f for out in outputs for f in out["families"]))
    jitter = np.random.default_rng(0)  # spreads the points of one family sideways, for visibility only
    for seed, out in enumerate(outputs):
        xs = [families.index(f) + jitter.uniform(-0.25, 0.25) for f in out["families"]]
        ax.scatter(xs, out["entropies"], s=12, alpha=0.6, label=f"seed {seed}")
    ax.axhline(outputs[0]["normal_entropy"], color="k", lw=1.2, label="normal, 1/2 log(2 pi e) = 1.419")
    ax.set_xticks(range(len(families)), families, rotation=20, fontsize=8)
    ax.set(ylabel="differential entropy h (nats)", title="Q2.b: unit-variance distributions vs the normal")
    ax.legend(fontsize=8)
    return [save_figure(fig, outdir, "entropy_at_unit_variance")]


@experiment(
    ids=("Q2.b",),
    method="We build unit-variance distributions: the logistic, triangular, Laplace and uniform of the FAQ's "
    "table plus random generalized-normal, Student-t and two-Gaussian-mixture members, and compute each "
    "differential entropy with SciPy (closed forms or numerical integration). The judged number is the "
    "normal's entropy minus the largest other one; deepbasics.gaussian.max_entropy_table is checked against "
    "the same SciPy values.",
    quick={"per_family": 10},
    full={"per_family": 200},
    rules={"Q2.b": Rule("margin", ">", 0.0, since="0.1.0")},
    metrics={
        "margin": Metric("normal entropy minus the largest other entropy at unit variance", unit="nats"),
        "normal_entropy": Metric("entropy of the unit-variance normal", unit="nats"),
    },
    takeaways={
        "Q2.b": "at unit variance the normal's entropy, {normal_entropy}, exceeds that of every other distribution "
        "tried by at least {margin}",
    },
    seeds=3,
    timeout=600,
    plot=_plot_entropy,
)
def max_entropy(params, seed):
    from scipy import stats

    from deepbasics import gaussian

    rng = np.random.default_rng(seed)
    candidates = _candidates(rng, params["per_family"])
    entropies = [float(dist.entropy()) for _, _, dist in candidates]
    variances = [float(dist.var()) for _, _, dist in candidates]
    h_normal = float(stats.norm.entropy())
    closest = int(np.argmax(entropies))
    table = gaussian.max_entropy_table(1.0)
    reference = {"normal": h_normal, **{name: h for (name, _, _), h in zip(candidates[:4], entropies[:4], strict=True)}}
    return {
        "margin": h_normal - entropies[closest],
        "table_max_abs_err": max(abs(table[name] - h) for name, h in reference.items()),
        "max_variance_err": max(abs(v - 1.0) for v in variances),
        "normal_entropy": h_normal,
        "closest": f"{candidates[closest][0]} ({candidates[closest][1]:.3g})",
        "families": [family for family, _, _ in candidates],
        "entropies": entropies,
    }


# -------------------------------------------------------------------------------------- Q2.c densities
def _plot_densities(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, key in (("univariate", "uni_errors"), ("multivariate", "mvn_errors")):
        errs = np.concatenate([out[key] for out in outputs])
        ax.hist(np.log10(np.maximum(errs, 1e-18)), bins=40, alpha=0.6, label=label)
    ax.axvline(-10, color="k", ls="--", label="threshold 1e-10")
    ax.set(
        xlabel="log10 |deepbasics logpdf - scipy logpdf| (nats; exact agreement drawn at -18)",
        ylabel="count of test points",
        title="Q2.c: our normal log-densities vs SciPy (float64)",
    )
    ax.legend(fontsize=8)
    return [save_figure(fig, outdir, "logpdf_error_histogram")]


@experiment(
    ids=("Q2.c",),
    method="At random points, means and variances (variances from 1e-2 to 1e2, points up to 8 standard "
    "deviations out) we compare deepbasics.gaussian.normal_logpdf with scipy.stats.norm.logpdf, and "
    "mvn_logpdf with scipy.stats.multivariate_normal.logpdf for random SPD covariances in dimensions 1 to 20, "
    "all in float64. The judged number is the largest absolute difference.",
    quick={"points": 2000, "dims": [1, 2, 3, 5, 10, 20], "mvn_points": 200},
    full={"points": 100_000, "dims": [1, 2, 3, 5, 10, 20, 50], "mvn_points": 2000},
    rules={"Q2.c": Rule("max_abs_err", "<", 1e-10, since="0.1.0")},
    metrics={
        "max_abs_err": Metric("largest absolute log-density difference to SciPy"),
        "uni_max_abs_err": Metric("largest difference, univariate"),
        "mvn_max_abs_err": Metric("largest difference, multivariate"),
    },
    takeaways={
        "Q2.c": "our univariate and multivariate normal log-densities agree with SciPy's to {uni_max_abs_err} and "
        "{mvn_max_abs_err} at worst",
    },
    seeds=3,
    timeout=300,
    plot=_plot_densities,
)
def densities(params, seed):
    from scipy import stats

    from deepbasics import gaussian

    rng = np.random.default_rng(seed)
    m = params["points"]
    mean, var = rng.uniform(-5, 5, m), 10 ** rng.uniform(-2, 2, m)
    x = mean + np.sqrt(var) * rng.uniform(-8, 8, m)
    ours = gaussian.normal_logpdf(torch.from_numpy(x), torch.from_numpy(mean), torch.from_numpy(var)).numpy()
    uni = np.abs(ours - stats.norm.logpdf(x, loc=mean, scale=np.sqrt(var)))
    mvn = []
    for d in params["dims"]:
        a = rng.standard_normal((d, d))
        cov = a @ a.T / d + 0.1 * np.eye(d)  # SPD, condition number up to a few hundred
        mu = rng.uniform(-3, 3, d)
        pts = mu + rng.standard_normal((params["mvn_points"], d)) @ np.linalg.cholesky(cov).T * 2.0
        ours = gaussian.mvn_logpdf(torch.from_numpy(pts), torch.from_numpy(mu), torch.from_numpy(cov)).numpy()
        mvn.append(np.abs(ours - stats.multivariate_normal(mu, cov).logpdf(pts)))
    mvn = np.concatenate(mvn)
    return {
        "max_abs_err": float(max(uni.max(), mvn.max())),
        "uni_max_abs_err": float(uni.max()),
        "mvn_max_abs_err": float(mvn.max()),
        "uni_errors": uni[:500],
        "mvn_errors": mvn[:500],
    }
