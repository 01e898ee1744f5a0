"""Q3.3 (part 3): two remedies for exploding gradients, gradient clipping and an L2 penalty, in one setting.

- **Q3.3.e** Clipping rescales ``g <- g min(1, c / ||g||)`` so one step moves the weights at most ``lr * c``
  (Pascanu, Mikolov & Bengio, "On the difficulty of training recurrent neural networks", ICML 2013, sec. 3.2,
  alg. 1).
- **Q3.3.f** An L2 penalty ``(l2 / 2) ||w||^2`` shrinks every weight by ``(1 - lr * l2)`` per step
  (Goodfellow, Bengio & Courville 2016, sec. 7.1.1): it acts on a time scale of ``1 / (lr * l2)`` steps.

The setting: 10-layer width-32 ReLU MLPs on digits with the He-normal std times 1, 1.5 or 2 (at 2x the gradient
norm at init is ~1e3 times the He one, :mod:`.q03_3_vanishing`, Q3.3.d), full-batch SGD over a grid of learning
rates. A grid cell "explodes" if, without the remedy, the gradient norm becomes non-finite or exceeds
``EXPLODE = 1e2`` times the He-init norm; both claims are judged on those cells only.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from deepbasics.lab import Metric, Rule, experiment, save_figure
from deepbasics.train import Callback

from ._deepnets import EXPLODE, curve, deep_mlp, digits_data, full_batch_fit, linear_layers, sgd

#: "Keeps training stable" / "limits explosion": the remedy must rescue at least half of the runs of the grid.
RESCUED = 0.5
#: A run is unstable if its loss or gradient became non-finite, its loss ever rose above BLOWUP times its initial
#: value (an order of magnitude: a blow-up, not noise), or it ends no lower than it started.
BLOWUP = 10.0
#: Reported, not judged: a run "collapsed" if it ends on the class-prior plateau (loss >= 0.95 ln 10) with a gradient
#: norm under 1e-3 of the He-init scale (dead ReLUs: it will never leave it); it "learned" if it ends below ln(10) / 2.
DEAD, PLATEAU, LEARNED = 1e-3, 0.95, 0.5


# ------------------------------------------------------------------------------------- Q3.3.e clipping
def _reference_grad_norm(params, seed, x, y) -> float:
    """Global gradient norm at init of the same net with He init (multiplier 1): the healthy scale."""
    model = deep_mlp("relu", params["layers"], params["width"], "he", torch.Generator().manual_seed(seed))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return float(torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters())))


def _grid(params, seed, x, y, reference: float, **fit_kwargs) -> list[dict]:
    """One run per (init multiplier, learning rate) cell of the grid, every cell from the seed's same draws.

    ``exploded``: the loss or gradient became non-finite, or the gradient norm (before clipping) exceeded
    ``EXPLODE`` times ``reference`` at some step. ``ok``: stable (see ``BLOWUP``); ``collapsed`` and ``learned``
    as described at ``DEAD``.
    """
    runs = []
    for mult in params["multipliers"]:
        for lr in params["lrs"]:
            g = torch.Generator().manual_seed(seed)
            model = deep_mlp("relu", params["layers"], params["width"], "he", g, multiplier=mult)
            history = full_batch_fit(model, sgd(model, lr), x, y, steps=params["steps"], **fit_kwargs)
            finite, losses = not history.nonfinite, history.step_loss
            peak = max((v for v in history.grad_norm if math.isfinite(v)), default=math.inf)
            ok = finite and max(losses) <= BLOWUP * losses[0] and losses[-1] < losses[0]
            collapsed = finite and losses[-1] >= PLATEAU * math.log(10) and history.grad_norm[-1] < DEAD * reference
            runs.append(
                {
                    "multiplier": mult,
                    "lr": lr,
                    "exploded": not finite or peak > EXPLODE * reference,
                    "ok": ok,
                    "collapsed": collapsed,
                    "learned": finite and losses[-1] < LEARNED * math.log(10),
                    "final_loss": losses[-1],
                    "curve": curve(losses),
                }
            )
    return runs


def _stable_fraction(base: list[dict], treated: list[dict]) -> float:
    """Fraction of ``treated`` runs that were stable, over the grid cells where ``base`` (no remedy) exploded.

    With no exploding cell there is no evidence either way: 0 is returned for both arms, so the difference that
    the rules judge is 0 (does not hold), and ``exploding_cells`` = 0 tells why.
    """
    cells = [i for i, run in enumerate(base) if run["exploded"]]
    return float(np.mean([treated[i]["ok"] for i in cells])) if cells else 0.0


def _plot_clipping(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, (plain, clipped) in enumerate(zip(outputs[0]["runs"]["none"], outputs[0]["runs"]["clip"], strict=True)):
        steps = np.arange(len(plain["curve"])) * max(1, params["steps"] // 200)
        label = f"x{plain['multiplier']:g} He, lr {plain['lr']:g}"
        ax1.semilogy(steps, np.array(plain["curve"], dtype=float), ":", color=f"C{i}")
        ax1.semilogy(
            np.arange(len(clipped["curve"])) * max(1, params["steps"] // 200),
            clipped["curve"],
            "-",
            color=f"C{i}",
            label=label,
        )
    ax1.axhline(math.log(10), color="k", lw=0.8, ls="--", label="ln 10 (class-prior plateau)")
    ax1.set(
        xlabel="full-batch SGD step",
        ylabel="training cross-entropy (nats, log)",
        title="Q3.3.e: dotted without, solid with clipping (seed 0)",
    )
    ax1.legend(fontsize=6)
    ok = {
        arm: [np.mean([r["ok"] for r in o["runs"][arm] if r is not None]) for o in outputs] for arm in ("none", "clip")
    }
    ax2.bar(["no clipping", f"clip {params['clip']:g}"], [np.mean(ok["none"]), np.mean(ok["clip"])], color=["C3", "C2"])
    ax2.set(
        ylabel="stable runs on exploding cells (fraction)",
        ylim=(0, 1),
        title=f"Q3.3.e: rescued fraction {np.mean([o['rescued_fraction'] for o in outputs]):.2f} (mean over seeds)",
    )
    return [save_figure(fig, outdir, "clipping_runs")]


@experiment(
    ids=("Q3.3.e",),
    method="10-layer width-32 ReLU MLPs with 1x, 1.5x or 2x the He-normal std (quick: 1x, 2x) are trained on digits "
    "with full-batch SGD over a grid of (partly high) learning rates, from one init with and without clipping the "
    "global gradient norm to 1 (fit(clip=1)). On the cells where the unclipped gradient exploded (non-finite, or "
    "> 1e2 times the He-init norm) we judge the fraction of stable runs (always finite, loss never above 10x its "
    "start, ending below it) with clipping minus without; runs collapsing onto the class-prior plateau are reported.",
    quick={
        "layers": 10,
        "width": 32,
        "multipliers": [1.0, 2.0],
        "lrs": [0.3, 1.0],
        "clip": 1.0,
        "steps": 100,
        "train_size": 256,
    },
    full={
        "layers": 10,
        "width": 32,
        "multipliers": [1.0, 1.5, 2.0],
        "lrs": [0.1, 0.3, 1.0, 3.0],
        "clip": 1.0,
        "steps": 400,
        "train_size": 512,
    },
    rules={"Q3.3.e": Rule("rescued_fraction", ">", RESCUED, since="0.1.0")},
    metrics={
        "rescued_fraction": Metric("share of exploding runs made stable by clipping", unit="points", scale=100),
        "stable_on_exploding_clip": Metric("stable share of exploding runs, clipped", unit="%", scale=100),
        "stable_on_exploding_none": Metric("stable share of exploding runs, not clipped", unit="%", scale=100),
    },
    takeaways={
        "Q3.3.e": "where the unclipped gradient explodes, {stable_on_exploding_clip} of the runs train stably with "
        "the gradient norm clipped to 1, against {stable_on_exploding_none} without",
    },
    seeds=3,
    timeout=900,
    plot=_plot_clipping,
)
def clipping(params, seed):
    x, y, _, _ = digits_data(seed, train_size=params["train_size"])
    reference = _reference_grad_norm(params, seed, x, y)
    runs = {
        "none": _grid(params, seed, x, y, reference),
        "clip": _grid(params, seed, x, y, reference, clip=params["clip"]),
    }
    stable = {arm: _stable_fraction(runs["none"], runs[arm]) for arm in runs}
    return {
        "runs": runs,
        "stable_on_exploding": stable,
        "stable_on_exploding_none": stable["none"],
        "stable_on_exploding_clip": stable["clip"],
        "rescued_fraction": stable["clip"] - stable["none"],
        "exploding_cells": sum(r["exploded"] for r in runs["none"]),
        "reference_grad_norm": reference,
        **{
            f"{k}_rate_{arm}": float(np.mean([r[k] for r in runs[arm]]))
            for k in ("ok", "collapsed", "learned")
            for arm in runs
        },
    }


# ------------------------------------------------------------------------------------- Q3.3.f L2 penalty
class _WeightNorm(Callback):
    """Log ``sqrt(sum_l ||W_l||^2)`` over the linear weights after every epoch (= step, full batch)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.weights = [m.weight for m in linear_layers(model)]

    def on_train_epoch_end(self, state) -> None:
        with torch.no_grad():
            state.history.log("weight_norm", float(torch.sqrt(sum(w.pow(2).sum() for w in self.weights))))


def _plot_l2(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.0))
    out = outputs[0]
    for i, l2 in enumerate([0.0, params["l2s"][-1]]):
        key = str(l2)
        ax1.plot(out["clipped"][key]["weight_norm"], color=f"C{i}", label=f"l2 = {l2:g}")
        ax2.semilogy(out["clipped"][key]["grad_norm"], color=f"C{i}", label=f"l2 = {l2:g}")
    ax1.set(
        xlabel="SGD step (lr 0.1, clipped at 1 so both runs survive)",
        ylabel="sqrt(sum_l ||W_l||^2)",
        title=f"Q3.3.f: weight norm, x{max(params['multipliers']):g} He init (seed 0)",
    )
    ax2.set(
        xlabel="SGD step",
        ylabel="global gradient norm before clipping (log)",
        title="Q3.3.f: gradient norm in the same runs",
    )
    keys = ["0.0"] + [str(l2) for l2 in params["l2s"]]
    means = [np.mean([o["stable_on_exploding"][k] for o in outputs]) for k in keys]
    ax3.bar([f"l2 = {float(k):g}" for k in keys], means, color=["C3"] + ["C0"] * len(params["l2s"]))
    ax3.set(
        ylabel="stable runs on exploding cells (fraction)",
        ylim=(0, 1),
        title="Q3.3.f: unclipped grid, mean over seeds",
    )
    for ax in (ax1, ax2):
        ax.legend(fontsize=8)
    return [save_figure(fig, outdir, "l2_weights_and_gradients")]


@experiment(
    ids=("Q3.3.f",),
    method="The exploding grid of Q3.3.e (10-layer ReLU MLPs, 1x-2x He std, full-batch SGD, several learning rates, "
    "no clipping) is trained with each L2 penalty l2 of a grid (quick: 0.1 only); judged, on the cells that explode "
    "without L2: fraction of stable runs (as in Q3.3.e) with the best l2 minus without. Reported from runs clipped at "
    "1 (so both survive): weight norm and late gradient norm, largest l2 vs none. L2 acts over ~1/(lr l2) steps.",
    quick={
        "layers": 10,
        "width": 32,
        "multipliers": [1.0, 2.0],
        "lrs": [0.3, 1.0],
        "l2s": [0.1],
        "steps": 100,
        "clipped_lr": 0.1,
        "train_size": 256,
    },
    full={
        "layers": 10,
        "width": 32,
        "multipliers": [1.0, 1.5, 2.0],
        "lrs": [0.1, 0.3, 1.0, 3.0],
        "l2s": [0.001, 0.01, 0.1],
        "steps": 400,
        "clipped_lr": 0.1,
        "train_size": 512,
    },
    rules={"Q3.3.f": Rule("rescued_fraction", ">", RESCUED, since="0.1.0")},  # the same bar as clipping in Q3.3.e
    metrics={
        "rescued_fraction": Metric("share of exploding runs made stable by L2", unit="points", scale=100),
        "weight_norm_ratio": Metric("weight norm, largest L2 over none", unit="x"),
        "peak_grad_ratio": Metric("peak gradient norm, largest L2 over none", unit="x"),
    },
    takeaways={
        "Q3.3.f": "an L2 penalty makes {rescued_fraction} more of the exploding runs stable; with the largest penalty "
        "the weight norm is {weight_norm_ratio} and the peak gradient norm {peak_grad_ratio} the unpenalized run's",
    },
    seeds=3,
    timeout=900,
    plot=_plot_l2,
)
def l2_penalty(params, seed):
    x, y, _, _ = digits_data(seed, train_size=params["train_size"])
    reference = _reference_grad_norm(params, seed, x, y)
    base = _grid(params, seed, x, y, reference)
    out = {"stable_on_exploding": {"0.0": _stable_fraction(base, base)}, "clipped": {}}
    out["exploding_cells"] = sum(r["exploded"] for r in base)
    for l2 in params["l2s"]:
        out["stable_on_exploding"][str(l2)] = _stable_fraction(base, _grid(params, seed, x, y, reference, l2=l2))
    best = max(out["stable_on_exploding"][str(l2)] for l2 in params["l2s"])
    out["rescued_fraction"] = best - out["stable_on_exploding"]["0.0"]
    out.update({f"stable_on_exploding_l2_{k}": v for k, v in out["stable_on_exploding"].items()})
    for l2 in (0.0, params["l2s"][-1]):
        model = deep_mlp(
            "relu",
            params["layers"],
            params["width"],
            "he",
            torch.Generator().manual_seed(seed),
            multiplier=max(params["multipliers"]),
        )
        history = full_batch_fit(
            model,
            sgd(model, params["clipped_lr"]),
            x,
            y,
            steps=params["steps"],
            clip=1.0,
            l2=l2,
            callbacks=[_WeightNorm(model)],
        )
        out["clipped"][str(l2)] = {
            "weight_norm": history["weight_norm"],
            "grad_norm": history.grad_norm,
            "final_loss": history.step_loss[-1],
        }
    none, most = out["clipped"]["0.0"], out["clipped"][str(params["l2s"][-1])]
    half = params["steps"] // 2
    out["weight_norm_ratio"] = most["weight_norm"][-1] / none["weight_norm"][-1]
    out["late_grad_ratio"] = float(np.median(most["grad_norm"][half:]) / np.median(none["grad_norm"][half:]))
    out["peak_grad_ratio"] = max(most["grad_norm"]) / max(none["grad_norm"])
    return out
