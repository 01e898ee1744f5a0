r"""CNN (+, part 1): weight sharing.

- **CNN.a** A 3x3 convolution with ``C_in`` inputs and ``C_out`` outputs has ``9 C_in C_out + C_out`` parameters
  whatever the image size, a dense layer on the same map ``H W C_in x H' W' C_out``: sharing one small kernel over
  all positions is the prior that lets a CNN match an MLP with far fewer weights (LeCun et al. 1998, sec. II.A;
  Goodfellow, Bengio & Courville 2016, sec. 9.2).
"""

from __future__ import annotations

import torch

from deepbasics.lab import Rule, experiment, save_figure

from ._cnn import digit_images, fit_adam, test_accuracy
from ._q15_cnn_rnn import num_params

#: CNN.a: accuracies within one point count as matched (the digits test split has 360 images: 1 point is
#: about 4 images, near the seed-to-seed spread of one model's test accuracy).
MATCH_MARGIN = 0.01
#: CNN.a: "far fewer parameters" = less than a third of the MLP's at matched accuracy.
PARAM_RATIO_MIN = 3.0


# ------------------------------------------------------------------------------- CNN.a weight sharing
def _plot_sharing(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for kind, marker, color in (("cnn", "o", "C0"), ("mlp", "s", "C1")):
        for s, out in enumerate(outputs):
            ax.semilogx(
                out[f"{kind}_params"],
                out[f"{kind}_acc"],
                marker=marker,
                color=color,
                alpha=0.7,
                label=("CNN (deepbasics.nn.small_cnn)" if kind == "cnn" else "MLP (deepbasics.nn.mlp)")
                if s == 0
                else None,
            )
    for s, out in enumerate(outputs):
        ax.axhline(out["target"], color="grey", lw=0.6, ls=":", label="matched-accuracy target" if s == 0 else None)
    ax.set(
        xlabel="trainable parameters",
        ylabel="test accuracy (digits, 8x8)",
        title="CNN.a: accuracy vs parameters (one line per seed)",
    )
    ax.legend(fontsize=8)
    return [save_figure(fig, outdir, "params_vs_accuracy")]


@experiment(
    ids=("CNN.a",),
    method="CNNs (deepbasics.nn.small_cnn: two 3x3 conv + 2x2 max-pool stages, several widths) and one-hidden-layer "
    "MLPs (several widths) are trained on the same 8x8 digit images by mini-batch Adam (deepbasics.train.fit) for "
    "the same number of epochs. The target is the best MLP test accuracy minus one point; the judged number is the "
    "parameter count of the smallest MLP reaching it divided by that of the smallest CNN reaching it (0 if no CNN "
    "does).",
    quick={
        "cnn_channels": [[2, 4], [4, 8], [8, 16]],
        "mlp_hidden": [8, 16, 32, 64, 128],
        "train_size": 500,
        "epochs": 12,
        "batch_size": 64,
        "lr": 0.01,
    },
    full={
        "cnn_channels": [[2, 4], [4, 8], [8, 16], [16, 32]],
        "mlp_hidden": [8, 16, 32, 64, 128, 256],
        "train_size": None,
        "epochs": 40,
        "batch_size": 64,
        "lr": 0.01,
    },
    # "far fewer parameters at the same accuracy": PARAM_RATIO_MIN (3x) with a MATCH_MARGIN of one point.
    rules={"CNN.a": Rule("param_ratio", ">", PARAM_RATIO_MIN)},
    seeds=3,
    timeout=900,
    plot=_plot_sharing,
)
def weight_sharing(params, seed):
    from deepbasics import nn

    _, x, y, xt, yt = digit_images(seed, params["train_size"])
    out = {"cnn_params": [], "cnn_acc": [], "mlp_params": [], "mlp_acc": []}
    for channels in params["cnn_channels"]:
        torch.manual_seed(seed)
        model = nn.small_cnn(channels=channels)
        fit_adam(model, (x, y), epochs=params["epochs"], lr=params["lr"], batch_size=params["batch_size"], seed=seed)
        out["cnn_params"].append(num_params(model))
        out["cnn_acc"].append(test_accuracy(model, xt, yt))
    for hidden in params["mlp_hidden"]:
        torch.manual_seed(seed)
        model = nn.mlp([64, hidden, 10])
        flat = (x.flatten(1), y)  # (N, 64): the same pixels
        fit_adam(model, flat, epochs=params["epochs"], lr=params["lr"], batch_size=params["batch_size"], seed=seed)
        out["mlp_params"].append(num_params(model))
        out["mlp_acc"].append(test_accuracy(model, xt.flatten(1), yt))
    target = max(out["mlp_acc"]) - MATCH_MARGIN
    mlp_p = min(p for p, a in zip(out["mlp_params"], out["mlp_acc"], strict=True) if a >= target)
    cnn_ok = [p for p, a in zip(out["cnn_params"], out["cnn_acc"], strict=True) if a >= target]
    out["target"] = target
    out["mlp_params_at_target"] = mlp_p
    out["cnn_params_at_target"] = min(cnn_ok) if cnn_ok else None
    out["param_ratio"] = mlp_p / min(cnn_ok) if cnn_ok else 0.0
    out["best_cnn_acc"], out["best_mlp_acc"] = max(out["cnn_acc"]), max(out["mlp_acc"])
    return out
