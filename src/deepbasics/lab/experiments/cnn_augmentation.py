r"""CNN (+, part 3): data augmentation, on 8x8 digit images and on MNIST-1D signals.

- **CNN.d** Label-preserving distortions (shifts, small rotations, pixel noise; :mod:`deepbasics.data.augment`)
  enlarge a small training set (Simard, Steinkraus & Platt 2003, sec. 2): each epoch the network sees a fresh
  distorted copy of every example, so it cannot memorize the few originals.

Simard et al.'s recipe is to distort along the variations the data already contain. MNIST-1D (Greydanus & Kobak
2020) is generated with known ones (``mnist1d.transform``): a circular translation, an amplitude scale
``1 + 0.4 (u - 1/2)``, correlated and i.i.d. noise; the distortions here mirror them, which makes them
label-preserving by construction. On 8x8 digits, one pixel is an eighth of the image and a 10-degree rotation
resamples it bilinearly.
"""

from __future__ import annotations

import torch

from deepbasics.lab import Metric, Rule, Task, experiment, save_figure

from ._cnn import digit_images, fit_adam, test_accuracy
from ._mnist1d import CNN as Mnist1dCNN

#: MNIST-1D's generator scales every signal by ``1 + SCALE_COEFF (u - 1/2)``, u ~ U(0, 1) (``scale_coeff``).
SCALE_COEFF = 0.4


class _RandomRoll:
    """Roll every signal ``(N, L)`` circularly by an independent integer in ``{-max_shift, ..., max_shift}``.

    MNIST-1D's generator translates circularly (``np.roll``, ``mnist1d.transform.translate``), so a roll keeps the
    label.
    """

    def __init__(self, max_shift: int, generator: torch.Generator) -> None:
        self.max_shift, self.generator = max_shift, generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, length = x.shape
        k = torch.randint(-self.max_shift, self.max_shift + 1, (n,), generator=self.generator)  # (N,)
        idx = (torch.arange(length)[None, :] - k[:, None]) % length  # (N, L): out[i, t] = x[i, t - k_i]
        return x.gather(1, idx)


class _RandomScale:
    """Multiply every signal by an independent ``1 + coeff (u - 1/2)``, u ~ U(0, 1) (MNIST-1D's own scaling)."""

    def __init__(self, coeff: float, generator: torch.Generator) -> None:
        self.coeff, self.generator = coeff, generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.rand(x.shape[0], 1, generator=self.generator, dtype=x.dtype)  # (N, 1)
        return x * (1.0 + self.coeff * (u - 0.5))


# ------------------------------------------------------------------------------- CNN.d augmentation
def _plot_augment(outputs, params, outdir):
    import matplotlib.pyplot as plt

    from deepbasics.lab.tasks import TASKS

    arms = list(outputs[0]["test_acc"])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for s, out in enumerate(outputs):
        ax.plot(range(len(arms)), [100 * out["test_acc"][a] for a in arms], "o-", alpha=0.7, label=f"seed {s}")
    ax.set_xticks(range(len(arms)), arms, rotation=15)
    task = TASKS[params["task"]].label
    ax.set(
        ylabel="test accuracy (%)",
        title=f"CNN.d on {task}: augmentation with {params['train_size']} training examples",
    )
    ax.legend(fontsize=8)
    return [save_figure(fig, outdir, "augmentation")]


def _setup(params: dict, seed: int, gen: torch.Generator):
    """Training and test data, the distortions by name, and a builder of the task's CNN."""
    from deepbasics import data, nn

    if params["task"] == "digits":
        splits, x, y, xt, yt = digit_images(seed, params["train_size"])  # (N, 1, 8, 8)
        fill = float(splits.standardizer(torch.zeros(1, 1, 1, 1)))  # blank pixels after standardization
        parts = {
            "shift": data.RandomShift(params["max_shift"], fill=fill, generator=gen),
            "rotation": data.RandomRotation(params["max_degrees"], fill=fill, generator=gen),
            "noise": data.GaussianNoise(params["noise_std"], generator=gen),
        }
        return (x, y, xt, yt), parts, lambda: nn.small_cnn(channels=params["channels"])
    splits = data.mnist1d(val_fraction=0.0, seed=seed, train_size=params["train_size"], dtype=torch.float32)
    (x, y), (xt, yt) = splits.tensors("train"), splits.tensors("test")  # (N, 40); the full 1,000-signal test set
    parts = {
        "shift": _RandomRoll(params["max_shift"], gen),
        "scale": _RandomScale(SCALE_COEFF, gen),
        "noise": data.GaussianNoise(params["noise_std"], generator=gen),
    }
    return (x, y, xt, yt), parts, lambda: Mnist1dCNN(params["channels"])


@experiment(
    ids=("CNN.d",),
    method="On each task a CNN is trained on a small stratified training subset by mini-batch Adam for a fixed number "
    "of epochs, without augmentation and with a fresh random distortion of every training example in every batch "
    "(each distortion alone in full mode, and all composed). 8x8 digits: small_cnn, shifts up to 1 pixel, rotations "
    "up to 10 degrees, Gaussian noise (deepbasics.data). MNIST-1D: the paper's CNN, circular shifts up to 4 "
    "positions, amplitude scaling by 1 +- 20% and Gaussian noise, the generator's own nuisances. Both arms start "
    "from the same weights; test accuracy is measured on the full test split. The judged number is the "
    "test-accuracy gain of the composed augmentation over none.",
    tasks=(
        Task(
            "digits",
            applies=True,
            why="a small image set, the claim's own setting: 150 training images.",
            detail="150 training images",
        ),
        Task(
            "mnist1d",
            applies=True,
            why="Simard et al. (2003, sec. 2) distort along the variations the data contain; MNIST-1D's generator "
            "names them (translation, scale, noise), so the distortions are label-preserving by construction.",
            detail="500 training signals, 16-channel reference CNN",
            # Adam at the paper's lr 1e-2; 500 of the 4,000 training signals (a small set, as the claim says); 16
            # channels instead of the paper's 25 to fit the lab's budget.
            quick={"train_size": 500, "channels": 16, "epochs": 30, "batch_size": 50, "lr": 0.01, "max_shift": 4},
            full={"train_size": 500, "channels": 16, "epochs": 100, "batch_size": 50, "lr": 0.01, "max_shift": 4},
        ),
    ),
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
        "acc_none": Metric("test accuracy without augmentation", unit="%", scale=100),
        "acc_all": Metric("test accuracy with augmentation", unit="%", scale=100),
    },
    takeaways={
        "CNN.d": "the distortions together change test accuracy from {acc_none} to {acc_all}, by {gain_all} at an "
        "equal number of epochs ({gain_all.range} over {seeds} seeds)",
    },
    seeds=3,
    timeout=900,
    plot=_plot_augment,
)
def augmentation(params, seed):
    from deepbasics import data

    gen = torch.Generator().manual_seed(seed)
    (x, y, xt, yt), parts, build = _setup(params, seed, gen)
    arms = {"none": None, **(parts if params["single"] else {}), "all": data.Compose(list(parts.values()))}
    torch.manual_seed(seed)
    start = build().state_dict()
    out = {"test_acc": {}, "train_acc": {}}
    for name, transform in arms.items():
        model = build()
        model.load_state_dict(start)
        batches = data.loader((x, y), params["batch_size"], seed=seed, transform=transform)  # fresh draws per batch
        fit_adam(model, batches, epochs=params["epochs"], lr=params["lr"], batch_size=params["batch_size"], seed=seed)
        out["test_acc"][name] = test_accuracy(model, xt, yt)
        out["train_acc"][name] = test_accuracy(model, x, y)
    out["acc_none"], out["acc_all"] = out["test_acc"]["none"], out["test_acc"]["all"]
    out["gain_all"] = out["acc_all"] - out["acc_none"]
    return out
