"""Q3.3 (part 2): exploding gradients, and which of the two is more common. Remedies: :mod:`.q03_3_remedies`.

- **Q3.3.d** With weights ``s`` times the Glorot/He scale the per-layer factor is about ``s`` (linear, ReLU) or
  ``sqrt(chi) > 1`` (tanh in the chaotic phase; Schoenholz et al. 2017, sec. 3): the gradient explodes with depth.
- **Q3.3.j** Over a population of plausible configurations at initialization, vanishing is more frequent.

Gradient profiles and the vanishing/exploding thresholds are defined in :mod:`._deepnets`.
"""

from __future__ import annotations

import numpy as np
import torch

from deepbasics.lab import Metric, Rule, experiment, save_figure

from ._deepnets import (
    EXPLODE,
    VANISH,
    backprop_profile,
    deep_mlp,
    digits_data,
    log10_ratio,
)

# ------------------------------------------------------------------------------------- Q3.3.d large init
_ACT_SCHEME = {"identity": "glorot", "tanh": "glorot", "relu": "he"}


def _plot_init_scale(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    mults, depths, d = params["multipliers"], params["depths"], params["judged_depth"]
    for i, act in enumerate(params["activations"]):
        g1 = np.array([out["first_grad"][act][str(d)] for out in outputs])  # (S, M)
        ax1.loglog(mults, np.exp(np.log(g1).mean(0)), "o-", color=f"C{i}", label=f"{act} ({_ACT_SCHEME[act]} x s)")
        for m, style in ((1.0, "o--"), (params["large"], "s-")):
            r = np.array([[out["error_ratio"][act][str(k)][str(m)] for k in depths] for out in outputs])
            ax2.semilogy(depths, 10 ** np.log10(r).mean(0), style, color=f"C{i}", label=f"{act}, s = {m:g}")
    ax1.set_xticks(mults, [f"{m:g}" for m in mults], minor=False)
    ax1.xaxis.set_minor_formatter(plt.NullFormatter())
    ax1.set(
        xlabel="init std multiplier s (x Glorot / He std)",
        ylabel="||dL/dW_1|| at init (L2 norm)",
        title=f"Q3.3.d: first-layer gradient vs init scale ({d} layers)",
    )
    ax1.legend(fontsize=7)
    ax2.axhline(EXPLODE, color="grey", ls="--", lw=0.8, label=f"exploding: ratio > {EXPLODE:g}")
    ax2.set(
        xlabel="number of linear layers",
        ylabel="||dL/dz_1|| / ||dL/dz_L|| (ratio)",
        title="Q3.3.d: back-propagated error, first / last layer",
    )
    ax2.legend(fontsize=6, ncol=2)
    return [save_figure(fig, outdir, "exploding_vs_init_scale")]


@experiment(
    ids=("Q3.3.d",),
    method="Deep width-64 MLPs with linear, tanh (Glorot-normal) or ReLU (He-normal) units get weights s times "
    "the recommended std; at initialization we backpropagate the cross-entropy of 256 digits and record "
    "||dL/dW_1|| and the back-propagated error ratio ||dL/dz_1|| / ||dL/dz_L|| (the weight-gradient ratio hides "
    "scale-driven explosion in linear/ReLU nets, see _deepnets). Judged at 16 layers: the worst activation's "
    "log10 error ratio at s = 4 minus 2 (exploding), and 2 minus the largest one at s = 1; the smaller margin.",
    quick={
        "activations": ["identity", "tanh", "relu"],
        "depths": [2, 4, 8, 16],
        "multipliers": [0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
        "large": 4.0,
        "judged_depth": 16,
        "width": 64,
        "batch": 256,
    },
    full={
        "activations": ["identity", "tanh", "relu"],
        "depths": [2, 3, 4, 6, 8, 12, 16, 24],
        "multipliers": [0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0, 5.6, 8.0],
        "large": 4.0,
        "judged_depth": 16,
        "width": 64,
        "batch": 1077,
    },
    # "too large" = 4x the recommended std (16x the variance), declared before the run; exploding = ratio > 1e2
    rules={"Q3.3.d": Rule("margin_decades", ">", 0.0, since="0.1.0")},
    metrics={
        "margin_decades": Metric("smaller margin of the explosion test", unit="decades"),
        "min_log10_ratio_large": Metric("log10 error growth at 4x the recommended init, smallest over activations"),
        "max_log10_ratio_standard": Metric("log10 error growth at the recommended init, largest over activations"),
    },
    takeaways={
        "Q3.3.d": "at 16 layers, weights 4 times the recommended scale make the back-propagated error grow by at "
        "least 10^{min_log10_ratio_large} from the last layer to the first, against at most "
        "10^{max_log10_ratio_standard} at the recommended scale",
    },
    seeds=3,
    timeout=600,
    plot=_plot_init_scale,
)
def init_scale(params, seed):
    x, y, _, _ = digits_data(seed, dtype=torch.float64)
    x, y = x[: params["batch"]], y[: params["batch"]]
    mults = sorted(set(params["multipliers"]) | {1.0, params["large"]})
    out = {"first_grad": {}, "error_ratio": {}}
    for act in params["activations"]:
        out["first_grad"][act], out["error_ratio"][act] = {}, {}
        for depth in params["depths"]:
            grads, ratios = [], {}
            for m in mults:
                g = torch.Generator().manual_seed(seed)  # the same draws, rescaled, for every multiplier
                model = deep_mlp(act, depth, params["width"], _ACT_SCHEME[act], g, multiplier=m).double()
                prof = backprop_profile(model, x, y)
                ratios[str(m)] = prof["error"][0] / prof["error"][-1]
                if m in params["multipliers"]:
                    grads.append(prof["weight"][0])
            out["first_grad"][act][str(depth)] = grads
            out["error_ratio"][act][str(depth)] = ratios
    d = str(params["judged_depth"])
    large = min(log10_ratio(out["error_ratio"][a][d][str(params["large"])], 1.0) for a in params["activations"])
    standard = max(log10_ratio(out["error_ratio"][a][d]["1.0"], 1.0) for a in params["activations"])
    out.update(min_log10_ratio_large=large, max_log10_ratio_standard=standard)
    out["margin_decades"] = float(min(large - np.log10(EXPLODE), np.log10(EXPLODE) - standard))
    return out


# ------------------------------------------------------------------------------------- Q3.3.j which is more common
_SCHEMES = ["default", "glorot", "he", "N(0,1)", "N(0,0.01)"]


def _plot_population(outputs, params, outdir):
    import matplotlib.pyplot as plt

    rows = [r for out in outputs for r in out["configs"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11.5, 4.3), gridspec_kw={"width_ratios": [3, 2]})
    jitter = np.random.default_rng(0)  # spreads points sideways, for visibility only
    markers = dict(zip(_SCHEMES, "o^sDv", strict=True))
    for i, act in enumerate(params["activations"]):
        for scheme in _SCHEMES:
            pts = [r for r in rows if r["activation"] == act and r["scheme"] == scheme]
            xs = [r["depth"] + jitter.uniform(-0.3, 0.3) for r in pts]
            ax1.scatter(
                xs,
                [r["log10_error_ratio"] for r in pts],
                s=14,
                color=f"C{i}",
                marker=markers[scheme],
                alpha=0.7,
                label=f"{act}" if scheme == "default" else None,
            )
    for scheme in _SCHEMES:
        ax1.scatter([], [], color="grey", marker=markers[scheme], label=f"init {scheme}")
    for t in (VANISH, EXPLODE):
        ax1.axhline(np.log10(t), color="k", ls="--", lw=0.8)
    ax1.set(
        xlabel="number of linear layers",
        ylabel="log10 ||dL/dz_1|| / ||dL/dz_L||",
        title="Q3.3.j: random configurations at init (dashed: 1e-2 / 1e2)",
    )
    values = [r["log10_error_ratio"] for r in rows]
    ax1.set_ylim(min(min(values), -3) - 1, max(max(values), 3) + 1)
    ax1.legend(fontsize=6, ncol=2)
    frac = {
        s: [
            np.mean([r["class"] == c for r in rows if r["scheme"] == s] or [0])
            for c in ("vanishing", "neither", "exploding")
        ]
        for s in _SCHEMES
    }
    bottom = np.zeros(len(_SCHEMES))
    for k, (c, color) in enumerate((("vanishing", "C0"), ("neither", "0.7"), ("exploding", "C3"))):
        vals = np.array([frac[s][k] for s in _SCHEMES])
        ax2.bar(_SCHEMES, vals, bottom=bottom, color=color, label=c)
        bottom += vals
    ax2.set(ylabel="fraction of configurations", title="Q3.3.j: outcome by init scheme (all seeds)")
    ax2.tick_params(axis="x", labelsize=7, rotation=20)
    ax2.legend(fontsize=7)
    return [save_figure(fig, outdir, "vanishing_vs_exploding_population")]


@experiment(
    ids=("Q3.3.j",),
    method="We sample MLP configurations uniformly: 4-16 linear layers, width 16/32/64/128, sigmoid/tanh/ReLU/GELU "
    "units, init torch default / Glorot / He / N(0,1) / N(0,0.01); at initialization each is classified by the "
    "back-propagated error ratio ||dL/dz_1|| / ||dL/dz_L|| on 256 digits as vanishing (< 1e-2), exploding (> 1e2) "
    "or neither. Judged: fraction vanishing minus fraction exploding. The answer depends on the population "
    "sampled (e.g. more N(0,1) inits would raise the exploding share); the weight-gradient classification is reported.",
    quick={
        "population": 60,
        "min_layers": 4,
        "max_layers": 16,
        "widths": [16, 32, 64, 128],
        "activations": ["sigmoid", "tanh", "relu", "gelu"],
        "batch": 256,
    },
    full={
        "population": 400,
        "min_layers": 4,
        "max_layers": 16,
        "widths": [16, 32, 64, 128],
        "activations": ["sigmoid", "tanh", "relu", "gelu"],
        "batch": 256,
    },
    rules={"Q3.3.j": Rule("vanish_minus_explode", ">", 0.0, since="0.1.0")},  # "more often": a strictly larger fraction
    metrics={
        "vanish_minus_explode": Metric("share vanishing minus share exploding", unit="points", scale=100),
        "frac_vanishing": Metric("share of sampled nets with vanishing gradients", unit="%", scale=100),
        "frac_exploding": Metric("share of sampled nets with exploding gradients", unit="%", scale=100),
    },
    takeaways={
        "Q3.3.j": "of the network configurations sampled, at initialization {frac_vanishing} have vanishing and "
        "{frac_exploding} exploding gradients",
    },
    seeds=3,
    timeout=600,
    plot=_plot_population,
)
def population(params, seed):
    x, y, _, _ = digits_data(seed, dtype=torch.float64)
    x, y = x[: params["batch"]], y[: params["batch"]]
    rng = np.random.default_rng(seed)
    configs = []
    for k in range(params["population"]):
        layers = int(rng.integers(params["min_layers"], params["max_layers"] + 1))
        act = str(rng.choice(params["activations"]))
        scheme = str(rng.choice(_SCHEMES))
        width = int(rng.choice(params["widths"]))
        g = torch.Generator().manual_seed(seed * 100_003 + k)
        prof = backprop_profile(deep_mlp(act, layers, width, scheme, g).double(), x, y)
        err = log10_ratio(prof["error"][0], prof["error"][-1])
        wgt = log10_ratio(prof["weight"][0], prof["weight"][-1])
        configs.append(
            {
                "depth": layers,
                "activation": act,
                "scheme": scheme,
                "width": width,
                "log10_error_ratio": err,
                "log10_weight_ratio": wgt,
                "class": _classify(err),
                "weight_class": _classify(wgt),
            }
        )
    out = {"configs": configs}
    for key, tag in (("class", ""), ("weight_class", "weight_")):
        out[f"{tag}frac_vanishing"] = float(np.mean([c[key] == "vanishing" for c in configs]))
        out[f"{tag}frac_exploding"] = float(np.mean([c[key] == "exploding" for c in configs]))
    out["vanish_minus_explode"] = out["frac_vanishing"] - out["frac_exploding"]
    return out


def _classify(log10_r: float) -> str:
    if log10_r < np.log10(VANISH):
        return "vanishing"
    return "exploding" if log10_r > np.log10(EXPLODE) else "neither"
