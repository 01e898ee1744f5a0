"""Q13 (part 1): the mini-batch gradient's error against the batch size.

Letters: ``N`` training examples, ``B`` batch size, ``P`` parameters, ``g_n`` the gradient of example n's loss,
``G = (1/N) sum_n g_n`` the full-batch gradient, ``Sigma`` the per-example covariance of the ``g_n``.

- **Q13.a** A mini-batch of B examples drawn without replacement estimates G with mean squared error
  ``E|g_B - G|^2 = tr(Sigma) / B * (N - B) / (N - 1)`` (the finite-population correction; Cochran, *Sampling
  Techniques*, 1977, thm. 2.2): the error falls like ``1/sqrt(B)``, less than linear returns.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from deepbasics.lab import Metric, Rule, experiment, save_figure

from ._q13_gradients import digits_mlp, per_example_gradients

#: Elements gathered at once when averaging mini-batches of per-example gradients (32 MB of float32).
CHUNK_ELEMENTS = 8_000_000


# ------------------------------------------------------------------------ Q13.a gradient error vs B
def _plot_error(outputs, params, outdir):
    import matplotlib.pyplot as plt

    sizes = np.array(params["sizes"], dtype=float)
    fig, ax = plt.subplots(figsize=(6.6, 4.4))
    for k, point in enumerate(("init", "trained")):
        for seed, out in enumerate(outputs):
            slope = out[f"slope_{point}"]
            ax.loglog(
                sizes,
                out[f"rel_error_{point}"],
                "o",
                color=f"C{k}",
                alpha=0.7,
                label=f"{point}: measured (slope {slope:.3f})" if seed == 0 else None,
            )
            ax.loglog(
                sizes,
                out[f"predicted_{point}"],
                "-",
                color=f"C{k}",
                lw=1,
                alpha=0.6,
                label=f"{point}: sqrt(tr Sigma (N-B) / (B (N-1))) / |G|" if seed == 0 else None,
            )
    ax.loglog(sizes, outputs[0]["rel_error_init"][0] * (sizes / sizes[0]) ** -0.5, "k:", label="1/sqrt(B)")
    ax.set(
        xlabel="batch size B (examples)",
        ylabel="RMS |g_B - G| / |G| (relative L2 error)",
        title="Q13.a: mini-batch gradient error, MLP on digits",
    )
    ax.legend(fontsize=7)
    return [save_figure(fig, outdir, "gradient_error_vs_batch")]


@experiment(
    ids=("Q13.a",),
    method="For an MLP with one hidden layer on the 1077 sklearn-digits training examples, at initialization and "
    "after 100 full-batch gradient steps, we compute every per-example gradient, draw `repeats` mini-batches of "
    "each size B without replacement and measure the RMS error of their mean against the full gradient G. The "
    "log-log slope of error against B is fitted per point; the judged number is the larger deviation of the two "
    "slopes from -1/2. The exact finite-population prediction is drawn alongside.",
    quick={"sizes": [1, 2, 4, 8, 16, 32, 64, 128], "repeats": 100, "hidden": [32], "train_steps": 100, "lr": 0.5},
    full={"sizes": [1, 2, 4, 8, 16, 32, 64, 128], "repeats": 500, "hidden": [64], "train_steps": 100, "lr": 0.5},
    # "Like 1/sqrt(B)": a slope within 0.1 of -0.5 (the correction (N-B)/(N-1) steepens it by < 0.03 for
    # B <= N/8; a linear return would be -1).
    rules={"Q13.a": Rule("max_slope_deviation", "<", 0.1, since="0.1.0")},
    metrics={
        "max_slope_deviation": Metric("larger deviation of the fitted slope from -1/2"),
        "slope_init": Metric("log-log slope of the mini-batch gradient error against B, at init"),
        "slope_trained": Metric("the same slope after training"),
    },
    takeaways={
        "Q13.a": "the mini-batch gradient's error falls like B to the power {slope_init} at initialization and "
        "{slope_trained} after training (1/sqrt(B) is -0.5)",
    },
    seeds=3,
    timeout=300,
    plot=_plot_error,
)
def gradient_error(params, seed):
    from deepbasics import data, optim

    splits = data.digits(seed=seed)
    x, y = splits.tensors("train")  # (N, 64), (N,)
    n = len(x)
    model = digits_mlp(params["hidden"], seed)
    g = torch.Generator().manual_seed(seed)
    sizes = params["sizes"]
    out: dict = {"sizes": sizes, "num_examples": n}
    for point in ("init", "trained"):
        if point == "trained":
            opt = optim.SGD(model.parameters(), lr=params["lr"])
            for _ in range(params["train_steps"]):
                loss = nn.functional.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            with torch.no_grad():
                out["train_loss"] = float(nn.functional.cross_entropy(model(x), y))
        grads = per_example_gradients(model, x, y).detach().double()  # (N, P)
        full = grads.mean(0)  # G, (P,)
        centered = (grads - full).float()  # (N, P): g_n - G
        trace_sigma = float((grads - full).pow(2).sum(1).mean())  # tr(Sigma), population covariance
        errors, predicted = [], []
        for b in sizes:
            idx = torch.rand(params["repeats"], n, generator=g).argsort(dim=1)[:, :b]  # (R, B) without replacement
            chunk = max(1, CHUNK_ELEMENTS // (b * centered.shape[1]))  # mini-batches per gather, bounds memory
            sq = [centered[rows].mean(1).double().pow(2).sum(1) for rows in idx.split(chunk)]  # |g_B - G|^2 each
            errors.append(float(torch.cat(sq).mean().sqrt() / full.norm()))
            predicted.append(math.sqrt(trace_sigma / b * (n - b) / (n - 1)) / float(full.norm()))
        slope = float(np.polyfit(np.log(sizes), np.log(errors), 1)[0])
        out[f"rel_error_{point}"], out[f"predicted_{point}"], out[f"slope_{point}"] = errors, predicted, slope
        out[f"max_rel_deviation_from_prediction_{point}"] = float(np.max(np.abs(np.array(errors) / predicted - 1)))
    out["max_slope_deviation"] = max(abs(out["slope_init"] + 0.5), abs(out["slope_trained"] + 0.5))
    return out
