"""Q5: why cross-entropy beats mean squared error for sigmoid and softmax output layers.

- **Q5.a** With ``a = sigma(z)`` and per-example losses summed over the K output units (``N`` examples),

      MSE, l = 1/2 sum_k (a_k - y_k)^2:   dL/dz = (a - y) a (1 - a) / N     (vanishes when a saturates)
      cross-entropy:                      dL/dz = (a - y) / N               (proportional to the error)

  and for softmax outputs ``p``: cross-entropy gives ``(p - y) / N``, MSE ``J_softmax^T (p - y) / N`` whose entries all
  carry a factor ``p_j``. A network whose outputs start saturated on the wrong answer therefore barely moves under
  MSE and learns at once under cross-entropy (:func:`deepbasics.losses.output_layer_gradient`; Nielsen, *Neural
  Networks and Deep Learning*, 2015, ch. 3; Goodfellow et al., *Deep Learning*, 2016, sec. 6.2.2).
"""

from __future__ import annotations

import torch

from deepbasics.lab import Metric, Rule, experiment, save_figure
from deepbasics.train import Callback


def _onehot(y: torch.Tensor, k: int, like: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(y, k).to(like.dtype)


def _loss(kind: str, output: str):
    """The per-example loss summed over units, averaged over the batch: the convention of output_layer_gradient."""
    from deepbasics import activations, losses, numerics

    def loss_fn(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t = _onehot(y, z.shape[1], z)  # (N, K)
        if kind == "ce" and output == "softmax":
            return losses.cross_entropy(z, y)
        if kind == "ce":  # binary cross-entropy of each sigmoid unit, summed over units
            return losses.binary_cross_entropy_with_logits(z, t, reduction="sum") / len(z)
        a = numerics.softmax(z, dim=1) if output == "softmax" else activations.sigmoid(z)
        return 0.5 * ((a - t) ** 2).sum() / len(z)

    return loss_fn


class _StopAtAccuracy(Callback):
    """Stop once the training accuracy of an epoch (one full-batch step) reaches ``target``."""

    def __init__(self, target: float) -> None:
        self.target = target

    def on_train_epoch_end(self, state) -> None:
        if state.history.train_metrics["accuracy"][-1] >= self.target:
            state.should_stop, state.stop_reason = True, f"train accuracy >= {self.target}"


def _saturate(model: torch.nn.Module, output: str, wrong_class: int, scale: float) -> None:
    """Bias the output layer so every input is assigned to ``wrong_class`` with confidence ~ 1 - e^-scale."""
    last = model.linear2
    with torch.no_grad():
        last.bias.fill_(-scale if output == "sigmoid" else 0.0)
        last.bias[wrong_class] = scale


def _plot(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4), layout="constrained")
    styles = {"ce": "-", "mse": "--"}
    for i, output in enumerate(params["outputs"]):
        for kind in ("ce", "mse"):
            for seed, out in enumerate(outputs):
                curve = out["curves"][f"{output}_{kind}"]
                label = f"{output} + {kind.upper()}" if seed == 0 else None
                ax1.plot(range(1, len(curve) + 1), curve, styles[kind], color=f"C{i}", alpha=0.7, label=label)
    ax1.axhline(params["target"], color="k", lw=0.8, ls=":", label="target accuracy")
    ax1.set(
        xlabel="full-batch gradient step (best lr of the grid)",
        ylabel="training accuracy",
        title="Q5.a: training from a saturated, wrong start",
    )
    ax1.legend(fontsize=7)
    labels = [f"{o}\n{k.upper()}" for o in params["outputs"] for k in ("ce", "mse")]
    for seed, out in enumerate(outputs):
        vals = [out["grad_at_start"][f"{o}_{k}"] for o in params["outputs"] for k in ("ce", "mse")]
        ax2.scatter(range(len(labels)), vals, label=f"seed {seed}")
    ax2.set_yscale("log")
    ax2.set_xticks(range(len(labels)), labels, fontsize=8)
    ax2.set(ylabel="mean |dL/dz| at the output layer, start", title="Q5.a: output-layer gradient when saturated")
    ax2.legend(fontsize=8)
    return [save_figure(fig, outdir, "mse_vs_cross_entropy")]


@experiment(
    ids=("Q5.a",),
    method="A 64-32-10 tanh network on a digits training subset gets sigmoid or softmax outputs whose biases put "
    "every input in one wrong class with confidence 1 - e^-10 (saturated and wrong). From that same start we train "
    "with MSE and with cross-entropy by full-batch gradient descent (deepbasics.optim.SGD, each loss with its best "
    "learning rate of a shared grid) and count the steps until the training accuracy reaches the target (a run that "
    "never does counts as the budget). The judged number is the smaller over the two output types of "
    "steps(MSE) / steps(CE); the output-layer gradients at the start come from "
    "deepbasics.losses.output_layer_gradient.",
    quick={
        "outputs": ["sigmoid", "softmax"],
        "train_size": 200,
        "hidden": 32,
        "saturation": 10.0,
        "lrs": [0.3, 1.0, 3.0],
        "budget": 100,
        "target": 0.9,
    },
    full={
        "outputs": ["sigmoid", "softmax"],
        "train_size": 1000,
        "hidden": 32,
        "saturation": 10.0,
        "lrs": [0.3, 1.0, 3.0, 10.0],
        "budget": 1000,
        "target": 0.9,
    },
    # "Trains faster" by a margin that matters: cross-entropy must need fewer than half the steps of MSE. The budget
    # caps the measurable ratio at budget / steps(CE), far above 2 when cross-entropy needs ~10 steps.
    rules={"Q5.a": Rule("min_step_ratio", ">", 2.0, since="0.1.0")},
    metrics={
        "min_step_ratio": Metric(
            "steps to the target accuracy, MSE over cross-entropy, the smaller over output types", unit="x"
        ),
        "gradient_ratio_sigmoid": Metric("output-layer gradient, cross-entropy over MSE, saturated sigmoid", unit="x"),
        "gradient_ratio_softmax": Metric("output-layer gradient, cross-entropy over MSE, saturated softmax", unit="x"),
    },
    takeaways={
        "Q5.a": "from saturated, wrong outputs MSE needs at least {min_step_ratio} the steps of cross-entropy; at the "
        "start cross-entropy's output-layer gradient is {gradient_ratio_sigmoid} MSE's for sigmoid and "
        "{gradient_ratio_softmax} for softmax outputs",
    },
    seeds=3,
    timeout=300,
    plot=_plot,
)
def mse_vs_ce(params, seed):
    from deepbasics import data, losses, nn, optim, train

    splits = data.digits(seed=seed, train_size=params["train_size"])
    x, y = splits.tensors("train")
    k = splits.num_classes
    wrong = seed % k
    out = {"steps": {}, "best_lr": {}, "curves": {}, "grad_at_start": {}, "formula_vs_autograd": 0.0}
    ratios = []
    for output in params["outputs"]:
        torch.manual_seed(seed)
        start = nn.mlp([x.shape[1], params["hidden"], k], activation="tanh")
        _saturate(start, output, wrong, params["saturation"])
        with torch.no_grad():
            z0 = start(x)
        for kind in ("ce", "mse"):
            loss_fn = _loss(kind, output)
            # closed form at the start, checked in float64 against autograd of the very loss we train with
            name = kind if output == "softmax" or kind == "mse" else "bce"
            formula = losses.output_layer_gradient(name, output, z0.double(), _onehot(y, k, z0.double()))
            z = z0.double().requires_grad_()
            (auto,) = torch.autograd.grad(loss_fn(z, y), z)
            out["formula_vs_autograd"] = max(
                out["formula_vs_autograd"], ((formula - auto).abs().max() / auto.abs().max()).item()
            )
            out["grad_at_start"][f"{output}_{kind}"] = formula.abs().mean().item()
            best = None
            for lr in params["lrs"]:
                model = nn.mlp([x.shape[1], params["hidden"], k], activation="tanh")
                model.load_state_dict(start.state_dict())
                history = train.fit(
                    model,
                    loss_fn,
                    optim.SGD(model.parameters(), lr=lr),
                    (x, y),
                    epochs=params["budget"],
                    batch_size=None,
                    callbacks=[_StopAtAccuracy(params["target"])],
                    on_nonfinite="stop",
                )
                acc = history.train_metrics.get("accuracy", [0.0])
                reached = [i + 1 for i, a in enumerate(acc) if a >= params["target"]]
                steps = reached[0] if reached else params["budget"]
                if best is None or steps < best[0]:
                    best = (steps, lr, acc)
            out["steps"][f"{output}_{kind}"], out["best_lr"][f"{output}_{kind}"] = best[0], best[1]
            out["curves"][f"{output}_{kind}"] = best[2]
        ratios.append(out["steps"][f"{output}_mse"] / out["steps"][f"{output}_ce"])
        out[f"gradient_ratio_{output}"] = out["grad_at_start"][f"{output}_ce"] / out["grad_at_start"][f"{output}_mse"]
    out["min_step_ratio"] = float(min(ratios))
    out["step_ratios"] = [float(r) for r in ratios]
    out["mse_reached_target"] = [out["steps"][f"{o}_mse"] < params["budget"] for o in params["outputs"]]
    return out
