"""Q10: curing overfitting: seven remedies on one over-parameterized network trained on little data.

- **Q10.a** A 64-256-256-10 ReLU MLP (about 85k weights) trained on 100 handwritten digits fits them
  perfectly and overfits. Each remedy the FAQ lists is applied on its own, with the same optimizer and budget:

  ========================  ==============================================================================
  dropout                   inverted dropout after each hidden layer (Srivastava et al. 2014)
  L1 / L2                   ``l1 sum|w|`` / ``(l2 / 2) sum w^2`` on the weights (Goodfellow et al. 2016, 7.1)
  batch normalization       ``mlp(norm="batch")`` (Ioffe & Szegedy 2015)
  data augmentation         random 1-pixel shifts, 10-degree rotations or pixel noise (Simard et al. 2003)
  early stopping            stop on the validation loss, keep the best weights (Prechelt 1998)
  ensemble                  average the predicted probabilities of 5 independently initialized baselines
  ========================  ==============================================================================

  A remedy with a setting (dropout rate, L1, L2 strength, kind of augmentation) picks it from a small declared
  grid by validation error, as a practitioner would; the validation set (100 held-out digits) is the one early
  stopping also uses. Each remedy is repeated over ``repeats`` initializations and its test errors averaged.

Two tasks (:mod:`deepbasics.lab.tasks`): 100 sklearn digits, and 1,000 MNIST-1D signals (Greydanus & Kobak
2020), on which an MLP fits its training set and stays far below it on the test set (the paper: 100% against
68% with 4,000 signals), the heavy overfitting the remedies are meant for. On MNIST-1D the augmentations are
1-D: a shift of the signal by up to ``k`` positions (edge values repeated; the generator itself places each
pattern at a random offset) or Gaussian noise.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deepbasics.lab import Metric, Revision, Rule, Task, experiment, save_figure

#: The remedies, in the FAQ's order (dropout, regularization, batch normalization; augmentation, early
#: stopping, ensembles).
REMEDIES = ("dropout", "l1", "l2", "batchnorm", "augmentation", "early_stopping", "ensemble")


#: Input features per task: 8x8 digit images (flattened) or 40-point MNIST-1D signals.
INPUTS = {"digits": 64, "mnist1d": 40}


def _model(params: dict, seed: int, *, norm: str | None = None, dropout: float = 0.0) -> nn.Module:
    """Flatten the inputs ((N, 1, 8, 8) images or (N, 40) signals), then ``mlp([D, *hidden, 10])``, from ``seed``."""
    from deepbasics import nn as dnn

    sizes = [INPUTS[params["task"]], *params["hidden"], 10]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), dnn.mlp(sizes, norm=norm, dropout=dropout))


class RandomShift1d:
    """Shift each signal of ``(N, L)`` by an independent integer ``d`` in ``{-k, ..., k}``: ``out[n, j] =
    x[n, clamp(j - d_n, 0, L - 1)]`` (the edge value fills the vacated positions)."""

    def __init__(self, max_shift: int, generator: torch.Generator) -> None:
        self.max_shift, self.generator = max_shift, generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, length = x.shape
        d = torch.randint(-self.max_shift, self.max_shift + 1, (n, 1), generator=self.generator)  # (N, 1)
        source = (torch.arange(length).unsqueeze(0) - d).clamp(0, length - 1)  # (N, L)
        return x.gather(1, source)


def _error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Classification error in percent (eval mode)."""
    model.eval()
    with torch.no_grad():
        return 100.0 * float((model(x).argmax(-1) != y).float().mean())


def _train(model: nn.Module, train: object, params: dict, seed: int, **fit_kwargs) -> nn.Module:
    """Adam, full batch, ``params["epochs"]`` epochs (or fewer with an early-stopping callback)."""
    from deepbasics import optim
    from deepbasics.train import fit

    fit(
        model,
        nn.CrossEntropyLoss(),
        optim.Adam(model.parameters(), lr=params["lr"]),
        train,
        epochs=params["epochs"],
        batch_size=None,
        metrics={},
        generator=torch.Generator().manual_seed(seed),
        **fit_kwargs,
    )
    return model


def _plot(outputs, params, outdir):
    import matplotlib.pyplot as plt

    names = ["baseline", *REMEDIES]
    test = np.array([[out["test_error"][n] for n in names] for out in outputs])  # (S, R + 1)
    gap = np.array([[out["gap"][n] for n in names] for out in outputs])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    xs = np.arange(len(names))
    for ax, values, label in ((ax1, test, "test error (%)"), (ax2, gap, "test error - train error (pp)")):
        ax.bar(xs, values.mean(0), color=["grey"] + ["C0"] * len(REMEDIES), alpha=0.7)
        for s in range(values.shape[0]):
            ax.plot(xs, values[s], "k.", alpha=0.6, label="one seed" if s == 0 else None)
        ax.axhline(values[:, 0].mean(), color="grey", ls="--", lw=1, label="baseline (mean of seeds)")
        ax.set_xticks(xs, names, rotation=30, fontsize=8)
        ax.set(ylabel=label)
        ax.legend(fontsize=7)
    unit = "signals (MNIST-1D)" if params["task"] == "mnist1d" else "digits"
    ax1.set_title(f"Q10.a: test error, MLP on {params['train_size']} {unit}")
    ax2.set_title(f"Q10.a: generalization gap, {params['train_size']} {unit}")
    return [save_figure(fig, outdir, "remedies")]


@experiment(
    ids=("Q10.a",),
    method="A ReLU MLP with two hidden layers of 256 is trained with full-batch Adam for a fixed number of epochs on "
    "a stratified subsample (a new one per seed) of 100 sklearn digits or 1,000 MNIST-1D signals, then each remedy is "
    "applied on its own with the same budget; dropout rate, L1/L2 strength and the kind of augmentation are picked "
    "from small grids by error on held-out validation examples (100 digits, 500 signals), the set early stopping "
    "monitors. Test error on the 360 test digits or the 1,000 MNIST-1D test signals is averaged over repeated "
    "initializations; the baseline's is the mean of the 5 independently initialized models that also form the "
    "ensemble. The judged number is the fraction of the seven remedies whose test error is below the baseline's.",
    tasks=(
        Task(
            "digits",
            applies=True,
            why="the FAQ's setting: a network with 850 weights per example fits 100 digits perfectly and its test "
            "error is several times its training error.",
            detail="100 training digits",
        ),
        Task(
            "mnist1d",
            applies=True,
            why="Greydanus & Kobak (2020) report an MLP at 100% training and 68% test accuracy on MNIST-1D: heavy "
            "overfitting, the regime every remedy of the FAQ's list is meant for (Srivastava et al. 2014, "
            "Goodfellow et al. 2016, ch. 7).",
            detail="1,000 training signals; 300 in quick mode",
            # Fixed before the first MNIST-1D run of the rule: 1-D augmentations (shift, noise), 500 validation
            # signals, 200 full-batch steps (the baseline then fits its 1,000 signals: 0% training error, ~56% test
            # error in a probe of one baseline), one repeat per remedy (a training costs ~10x one on 100 digits; the
            # 5-member baseline mean and 3 seeds carry the spread).
            quick={
                "train_size": 300,
                "val_size": 200,
                "hidden": [128, 128],
                "epochs": 100,
                "augmentation": ["shift:2"],
                "ensemble_size": 3,
            },
            full={
                "train_size": 1000,
                "val_size": 500,
                "epochs": 200,
                "repeats": 1,
                "augmentation": ["shift:2", "shift:4", "noise:0.3"],
                "patience": 30,
            },
        ),
    ),
    quick={
        "train_size": 100,
        "val_size": 100,
        "hidden": [256, 256],
        "lr": 1e-3,
        "epochs": 60,
        "repeats": 1,
        "dropout": [0.5],
        "l1": [1e-4],
        "l2": [1e-2],
        "augmentation": ["shift:1"],
        "patience": 10,
        "ensemble_size": 5,
    },
    full={
        "train_size": 100,
        "val_size": 100,
        "hidden": [256, 256],
        "lr": 1e-3,
        "epochs": 100,
        "repeats": 2,
        "dropout": [0.2, 0.5],
        "l1": [1e-5, 1e-4, 1e-3],
        "l2": [1e-3, 1e-2, 1e-1],
        "augmentation": ["shift:1", "rotation:10", "noise:0.3"],
        "patience": 20,
        "ensemble_size": 5,
    },
    # The claim says *each* remedy lowers test error: all seven must, in every seed.
    rules={
        "Q10.a": Rule(
            "fraction_helping",
            ">=",
            1.0,
            since="0.1.0",
            history=(
                Revision(
                    changed_in="0.2.0",
                    what="params",
                    was="MNIST-1D (quick mode): 60 epochs",
                    reason="in the first quick run the baseline did not fit its 300 training signals (24% training "
                    "error), so it was not the overfitting model the claim is about; quick mode now trains 100 epochs "
                    "(full mode, 200 epochs, was set from a probe of the baseline alone)",
                ),
            ),
        )
    },
    metrics={
        "fraction_helping": Metric("share of the seven remedies that lower the test error", unit="%", scale=100),
        "improvement_dropout": Metric("test error removed by dropout", unit="points"),
        "improvement_l1": Metric("test error removed by L1", unit="points"),
        "improvement_l2": Metric("test error removed by L2", unit="points"),
        "improvement_batchnorm": Metric("test error removed by BatchNorm", unit="points"),
        "improvement_augmentation": Metric("test error removed by augmentation", unit="points"),
        "improvement_early_stopping": Metric("test error removed by early stopping", unit="points"),
        "improvement_ensemble": Metric("test error removed by an ensemble", unit="points"),
    },
    takeaways={
        "Q10.a": "{fraction_helping} of the seven remedies lower the test error; test error removed: dropout "
        "{improvement_dropout}, L1 {improvement_l1}, L2 {improvement_l2}, BatchNorm {improvement_batchnorm}, "
        "augmentation {improvement_augmentation}, early stopping {improvement_early_stopping}, ensemble "
        "{improvement_ensemble}",
    },
    seeds=3,
    timeout=2400,  # wall seconds for both tasks on a loaded machine (900 timed out)
    plot=_plot,
)
def remedies(params, seed):
    from deepbasics import data
    from deepbasics.train import EarlyStopping, ensemble_predict

    if params["task"] == "mnist1d":  # validation: 20% of the standard training split; train_size from the rest
        splits = data.mnist1d(val_fraction=0.2, train_size=params["train_size"], seed=seed, dtype=torch.float32)
    else:
        splits = data.digits(as_images=True, train_size=params["train_size"], seed=seed)
    x_train, y_train = splits.tensors("train")
    x_val, y_val = splits.tensors("val")
    keep = torch.randperm(len(x_val), generator=torch.Generator().manual_seed(seed))[: params["val_size"]]
    x_val, y_val = x_val[keep], y_val[keep]
    x_test, y_test = splits.tensors("test")
    train = (x_train, y_train)

    chosen: dict[str, list] = {}

    def pick(name: str, grid: list, build) -> nn.Module:
        """Train one model per setting in ``grid``; return the one with the lowest validation error."""
        best = None
        for value in grid:
            model = build(value)
            err = _error(model, x_val, y_val)
            if best is None or err < best[0]:
                best = (err, value, model)
        chosen.setdefault(name, []).append(best[1])
        return best[2]

    if params["task"] == "digits":  # standardized images have a non-zero background: shifted-in pixels get it
        background = float(splits.standardizer(torch.zeros(1, 1, 1, 1)).flatten()[0])

    def augmented(name: str, s: int):
        """A full-batch loader applying the augmentation ``kind:size`` with its own seeded stream."""
        g = torch.Generator().manual_seed(s)
        kind, _, size = name.partition(":")
        if params["task"] == "mnist1d":  # signals (N, 40): shifts along the signal, or noise
            make = {
                "shift": lambda v: RandomShift1d(int(v), g),
                "noise": lambda v: data.GaussianNoise(float(v), generator=g),
            }
        else:
            make = {
                "shift": lambda v: data.RandomShift(int(v), fill=background, generator=g),
                "rotation": lambda v: data.RandomRotation(float(v), fill=background, generator=g),
                "noise": lambda v: data.GaussianNoise(float(v), generator=g),
            }
        if kind not in make:
            raise ValueError(f"augmentation {name!r}: expected one of {sorted(make)} on {params['task']}.")
        return data.loader(train, batch_size=None, seed=s, transform=make[kind](size))

    def remedy_models(s: int) -> dict[str, nn.Module]:
        """Every remedy but the ensemble, from initialization seed ``s`` (that of baseline member ``s``)."""
        stopper = EarlyStopping(monitor="val_loss", patience=params["patience"], restore_best=True)
        models = {
            "dropout": pick(
                "dropout", params["dropout"], lambda p: _train(_model(params, s, dropout=p), train, params, s)
            ),
            "l1": pick("l1", params["l1"], lambda v: _train(_model(params, s), train, params, s, l1=v)),
            "l2": pick("l2", params["l2"], lambda v: _train(_model(params, s), train, params, s, l2=v)),
            "batchnorm": _train(_model(params, s, norm="batch"), train, params, s),
            "augmentation": pick(
                "augmentation", params["augmentation"], lambda a: _train(_model(params, s), augmented(a, s), params, s)
            ),
            "early_stopping": _train(_model(params, s), train, params, s, val=(x_val, y_val), callbacks=[stopper]),
        }
        chosen.setdefault("early_stopping_epoch", []).append(-1 if stopper.best_epoch is None else stopper.best_epoch)
        return models

    members = [
        _train(_model(params, seed * 100 + m), train, params, seed * 100 + m) for m in range(params["ensemble_size"])
    ]
    test_errors: dict[str, list[float]] = {name: [] for name in REMEDIES if name != "ensemble"}
    train_errors: dict[str, list[float]] = {name: [] for name in test_errors}
    for r in range(params["repeats"]):
        models = remedy_models(seed * 100 + r)  # paired with baseline member r: same initialization
        for name, model in models.items():
            test_errors[name].append(_error(model, x_test, y_test))
            train_errors[name].append(_error(model, x_train, y_train))

    test_error = {name: float(np.mean(v)) for name, v in test_errors.items()}
    train_error = {name: float(np.mean(v)) for name, v in train_errors.items()}
    member_test = [_error(m, x_test, y_test) for m in members]
    member_train = [_error(m, x_train, y_train) for m in members]
    with torch.no_grad():
        test_error["ensemble"] = 100.0 * float((ensemble_predict(members, x_test).argmax(-1) != y_test).float().mean())
        train_error["ensemble"] = 100.0 * float(
            (ensemble_predict(members, x_train).argmax(-1) != y_train).float().mean()
        )
    test_error["baseline"], train_error["baseline"] = float(np.mean(member_test)), float(np.mean(member_train))

    out = {
        "test_error": test_error,
        "train_error": train_error,
        "gap": {name: test_error[name] - train_error[name] for name in test_error},
        "baseline_member_test_errors": member_test,
        "chosen": chosen,
    }
    helped = [test_error[name] < test_error["baseline"] for name in REMEDIES]
    out["fraction_helping"] = float(np.mean(helped))
    for name in REMEDIES:  # percentage points of test error removed by each remedy (positive = better)
        out[f"improvement_{name}"] = test_error["baseline"] - test_error[name]
        out[f"gap_reduction_{name}"] = out["gap"]["baseline"] - out["gap"][name]
    return out
