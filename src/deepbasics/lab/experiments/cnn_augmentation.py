r"""CNN (+, part 3): data augmentation.

- **CNN.d** Label-preserving distortions (shifts, small rotations, pixel noise; :mod:`deepbasics.data.augment`)
  enlarge a small training set (Simard, Steinkraus & Platt 2003, sec. 2).
"""

from __future__ import annotations

import torch

from deepbasics.lab import Metric, Rule, experiment, save_figure

from ._cnn import digit_images, fit_adam, test_accuracy


# ------------------------------------------------------------------------------- CNN.d augmentation
def _plot_augment(outputs, params, outdir):
    import matplotlib.pyplot as plt

    arms = list(outputs[0]["test_acc"])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for s, out in enumerate(outputs):
        ax.plot(range(len(arms)), [out["test_acc"][a] for a in arms], "o-", alpha=0.7, label=f"seed {s}")
    ax.set_xticks(range(len(arms)), arms, rotation=15)
    ax.set(ylabel="test accuracy", title=f"CNN.d: augmentation with {params['train_size']} training digits")
    ax.legend(fontsize=8)
    return [save_figure(fig, outdir, "augmentation")]


@experiment(
    ids=("CNN.d",),
    method="A small_cnn is trained on a small stratified subset of the digits by mini-batch Adam for a fixed number "
    "of epochs, without augmentation and with a fresh random distortion of every training image in every batch "
    "(RandomShift up to 1 pixel, RandomRotation up to 10 degrees, GaussianNoise, from deepbasics.data, each alone "
    "in full mode and composed). Both start from the same weights; test accuracy is measured on the full test "
    "split. The judged number is the test-accuracy gain of the composed augmentation over none.",
    quick={
        "train_size": 150,
        "channels": [8, 16],
        "epochs": 60,
        "batch_size": 32,
        "lr": 0.003,
        "max_shift": 1,
        "max_degrees": 10.0,
        "noise_std": 0.2,
        "single": False,
    },
    full={
        "train_size": 150,
        "channels": [8, 16],
        "epochs": 100,
        "batch_size": 32,
        "lr": 0.003,
        "max_shift": 1,
        "max_degrees": 10.0,
        "noise_std": 0.2,
        "single": True,
    },
    # "Improves test accuracy": a positive mean gain whose 95% t-interval over seeds excludes 0.
    rules={"CNN.d": Rule("gain_all", ">", 0.0, spread="ci", since="0.1.0")},
    metrics={
        "gain_all": Metric("test-accuracy gain of augmentation", unit="points", scale=100),
    },
    takeaways={
        "CNN.d": "shifts, rotations and noise together change test accuracy by {gain_all} at an equal number of "
        "epochs ({gain_all.range} over {seeds} seeds)",
    },
    seeds=3,
    timeout=900,
    plot=_plot_augment,
)
def augmentation(params, seed):
    from deepbasics import data, nn

    splits, x, y, xt, yt = digit_images(seed, params["train_size"])
    fill = float(splits.standardizer(torch.zeros(1, 1, 1, 1)))  # blank pixels after standardization
    gen = torch.Generator().manual_seed(seed)
    parts = {
        "shift": data.RandomShift(params["max_shift"], fill=fill, generator=gen),
        "rotation": data.RandomRotation(params["max_degrees"], fill=fill, generator=gen),
        "noise": data.GaussianNoise(params["noise_std"], generator=gen),
    }
    arms = {"none": None, **(parts if params["single"] else {}), "all": data.Compose(list(parts.values()))}
    torch.manual_seed(seed)
    start = nn.small_cnn(channels=params["channels"]).state_dict()
    out = {"test_acc": {}, "train_acc": {}}
    for name, transform in arms.items():
        model = nn.small_cnn(channels=params["channels"])
        model.load_state_dict(start)
        batches = data.loader((x, y), params["batch_size"], seed=seed, transform=transform)  # fresh draws per batch
        fit_adam(model, batches, epochs=params["epochs"], lr=params["lr"], batch_size=params["batch_size"], seed=seed)
        out["test_acc"][name] = test_accuracy(model, xt, yt)
        out["train_acc"][name] = test_accuracy(model, x, y)
    out["gain_all"] = out["test_acc"]["all"] - out["test_acc"]["none"]
    return out
