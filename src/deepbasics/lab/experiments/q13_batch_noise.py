"""Q13 (part 1): what the batch size changes: gradient noise, generalization and the critical batch size.

Letters: ``N`` training examples, ``B`` batch size, ``P`` parameters, ``g_n`` the gradient of example n's loss,
``G = (1/N) sum_n g_n`` the full-batch gradient, ``Sigma`` the per-example covariance of the ``g_n``.

- **Q13.a** A mini-batch of B examples drawn without replacement estimates G with mean squared error
  ``E|g_B - G|^2 = tr(Sigma) / B * (N - B) / (N - 1)`` (the finite-population correction; Cochran, *Sampling
  Techniques*, 1977, thm. 2.2): the error falls like ``1/sqrt(B)``, less than linear returns.
- **Q13.b, Q13.f** Steps to a target training loss, each batch size at its best learning rate from a grid:
  the steps fall like ``S(B) = S_min (1 + B_crit / B)`` (McCandlish et al. 2018, eq. 2.11) and level off past
  B_crit; the gradient noise scale ``B_simple = tr(Sigma) / |G|^2`` (:mod:`deepbasics.noise`) should predict
  B_crit. The same runs give test error and learning rate against B (Q13.b; Keskar et al. 2017; Goyal et al.
  2017 for the learning rate growing with B).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from deepbasics.lab import Metric, Rule, experiment, save_figure

#: Elements gathered at once when averaging mini-batches of per-example gradients (32 MB of float32).
CHUNK_ELEMENTS = 8_000_000


def _digits_mlp(hidden: list[int], seed: int) -> nn.Module:
    """``mlp([64, *hidden, 10])`` (ReLU), initialized from ``seed``."""
    from deepbasics import nn as dnn

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return dnn.mlp([64, *hidden, 10])


def _per_example_gradients(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Row n is the flattened gradient of example n's cross-entropy: (N, P), in parameter order.

    For a ``Sequential`` of ``Linear`` layers and parameter-free layers, the gradient of ``W`` for example n is the
    outer product ``delta_n a_n^T`` of the gradient at the layer's output and its input (and ``delta_n`` for the
    bias), so one backward pass of the summed loss gives all N of them (Goodfellow, "Efficient per-example
    gradient computations", arXiv:1510.01799, 2015). Tested against ``torch.func.vmap(grad)``.
    """
    inputs, outputs = [], []
    h = x  # (N, D_0)
    for layer in model:
        if isinstance(layer, nn.Linear):
            inputs.append(h)
            h = layer(h)  # (N, D_out)
            outputs.append(h)
        elif any(True for _ in layer.parameters()):
            raise TypeError(f"per-example gradients: expected Linear or parameter-free layers, got {layer!r}.")
        else:
            h = layer(h)
    loss = nn.functional.cross_entropy(h, y, reduction="sum")  # sum: each example's own gradient, unscaled
    deltas = torch.autograd.grad(loss, outputs)  # each (N, D_out)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    rows = []
    for layer, a, d in zip(linears, inputs, deltas, strict=True):
        rows.append(torch.einsum("no,ni->noi", d, a.detach()).reshape(len(x), -1))  # (N, D_out * D_in), as W
        if layer.bias is not None:
            rows.append(d)  # (N, D_out)
    return torch.cat(rows, dim=1)  # (N, P)


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
    model = _digits_mlp(params["hidden"], seed)
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
        grads = _per_example_gradients(model, x, y).detach().double()  # (N, P)
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


# ------------------------------------------------------- Q13.b / Q13.f steps to target, critical batch
def _steps_to_target(model: nn.Module, data_xy, batch: int, lr: float, params: dict, cap: int, seed: int):
    """Plain SGD with batches drawn with replacement until the full training loss is below the target.

    The full loss is checked every ``max(1, check_examples // batch)`` steps. Returns ``(steps, model)`` or
    ``(None, None)`` if the cap was reached or the loss diverged (non-finite or 10x its initial value).
    """
    from deepbasics import optim

    x, y = data_xy
    model = copy.deepcopy(model)
    opt = optim.SGD(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    every = max(1, params["check_examples"] // batch)
    with torch.no_grad():
        start = float(nn.functional.cross_entropy(model(x), y))
    for step in range(1, cap + 1):
        idx = torch.randint(len(x), (batch,), generator=g)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % every == 0:
            with torch.no_grad():
                full = float(nn.functional.cross_entropy(model(x), y))
            if not math.isfinite(full) or full > 10 * start:
                return None, None
            if full < params["target_loss"]:
                return step, model
    return None, None


def _fit_critical_batch(sizes: list[int], steps: list[int]) -> tuple[float, float]:
    """Least-squares fit of ``log S = log S_min + log(1 + B_crit / B)`` (McCandlish et al. 2018, eq. 2.11)."""
    from scipy.optimize import least_squares

    b, s = np.asarray(sizes, dtype=float), np.asarray(steps, dtype=float)

    def residual(theta: np.ndarray) -> np.ndarray:
        return theta[0] + np.log1p(np.exp(theta[1]) / b) - np.log(s)

    fit = least_squares(residual, x0=np.array([np.log(s.min()), np.log(np.median(b))]))
    return float(np.exp(fit.x[0])), float(np.exp(fit.x[1]))


def _plot_critical(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.2))
    for seed, out in enumerate(outputs):
        sizes = np.array(out["sizes_reached"], dtype=float)
        ax1.loglog(sizes, out["steps"], "o", color=f"C{seed}", label=f"seed {seed}: measured")
        grid = np.geomspace(sizes.min(), sizes.max(), 100)
        ax1.loglog(
            grid,
            out["s_min"] * (1 + out["b_crit"] / grid),
            "-",
            color=f"C{seed}",
            lw=1,
            label=f"fit: B_crit = {out['b_crit']:.0f}",
        )
        ax1.axvline(out["b_simple"], color=f"C{seed}", ls="--", lw=1, label=f"B_simple = {out['b_simple']:.0f}")
        ax2.semilogx(sizes, out["test_error"], "o-", color=f"C{seed}", label=f"seed {seed}")
        ax3.loglog(sizes, out["best_lr"], "o-", color=f"C{seed}", label=f"seed {seed}")
    ax1.set(
        xlabel="batch size B (examples)",
        ylabel=f"SGD steps to train loss {params['target_loss']}",
        title="Q13.f: steps to target vs B (best lr per B)",
    )
    ax2.set(
        xlabel="batch size B (examples)",
        ylabel="test error at the target (%)",
        title="Q13.b: test error vs B (same training loss)",
    )
    ax3.set(xlabel="batch size B (examples)", ylabel="best learning rate (grid)", title="Q13.b: tuned learning rate")
    for ax in (ax1, ax2, ax3):
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=6)
    return [save_figure(fig, outdir, "critical_batch_size")]


@experiment(
    ids=("Q13.b", "Q13.f"),
    method="A 64-128-10 MLP (one initialization per seed) is trained on the 1077 sklearn-digits training examples "
    "with plain SGD, batches drawn with replacement, until the full training loss falls below a target; for each "
    "batch size B the learning rate is the grid value that needs the fewest steps. Q13.b: test error at the moment "
    "the target is reached, against log2 B (judged: the fitted slope, positive if smaller batches generalize "
    "better). Q13.f: B_crit is fitted to the steps with S = S_min (1 + B_crit / B) and compared with "
    "deepbasics.noise.gradient_noise_scale, averaged over checkpoints evenly spaced in steps along the largest "
    "batch's run (B_crit is the step-weighted mean of the noise scale in McCandlish et al.'s model); judged: "
    "|log10(B_simple / B_crit)|. The exact B_simple from all per-example gradients is reported as a check.",
    quick={
        "sizes": [4, 16, 64, 256, 1024],
        "lrs": [5.0, 2.0, 1.0, 0.5, 0.2, 0.1, 0.05, 0.02],
        "hidden": [128],
        "target_loss": 0.15,
        "check_examples": 64,
        "max_steps": 5000,
        "noise_checkpoints": 4,
        "noise_batches": 50,
        "noise_b_small": 8,
        "noise_b_big": 128,
    },
    full={
        "sizes": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
        "lrs": [10.0, 5.0, 2.0, 1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01],
        "hidden": [128],
        "target_loss": 0.15,
        "check_examples": 32,
        "max_steps": 20000,
        "noise_checkpoints": 8,
        "noise_batches": 200,
        "noise_b_small": 8,
        "noise_b_big": 128,
    },
    rules={
        # "Smaller batches generalize better": test error rises with log2 B (a significant positive slope).
        "Q13.b": Rule("error_slope_per_doubling", ">", 0.0, spread="ci", since="0.1.0"),
        # "Predicts": within a factor of 4 (two doublings; B_crit itself is resolved on a doubling grid with a
        # learning-rate grid of factor ~2, so a tighter band would judge the grids, not the prediction).
        "Q13.f": Rule("abs_log10_ratio", "<", math.log10(4.0), since="0.1.0"),
    },
    metrics={
        "error_slope_per_doubling": Metric("test error change per doubling of the batch size", unit="points"),
        "best_batch": Metric("batch size with the lowest test error"),
        "lr_doublings_per_batch_doubling": Metric("learning-rate doublings per batch doubling"),
        "b_crit": Metric("critical batch size fitted to the step counts"),
        "b_simple": Metric("gradient noise scale B_simple"),
        "abs_log10_ratio": Metric("|log10(B_simple / B_crit)|", unit="decades"),
    },
    takeaways={
        "Q13.b": "each doubling of the batch size changes the test error by {error_slope_per_doubling} at equal "
        "training loss (positive: smaller batches generalize better), the lowest being at batch size {best_batch}; "
        "the best learning rate doubles {lr_doublings_per_batch_doubling} times per doubling of the batch",
        "Q13.f": "the gradient noise scale gives {b_simple} as the critical batch size; fitting S = S_min (1 + "
        "B_crit/B) to the step counts gives {b_crit}",
    },
    seeds=3,
    timeout=1200,
    plot=_plot_critical,
)
def critical_batch(params, seed):
    from deepbasics import data
    from deepbasics.noise import gradient_noise_scale

    splits = data.digits(seed=seed)
    train = splits.tensors("train")
    x_test, y_test = splits.tensors("test")
    base = _digits_mlp(params["hidden"], seed)
    sizes_reached, steps, best_lrs, test_error, trained = [], [], [], [], {}
    for b in params["sizes"]:
        best = None  # (steps, lr, model)
        for lr in params["lrs"]:  # largest first: diverging rates fail fast, then steps fall, then rise again
            cap = params["max_steps"] if best is None else best[0] - 1  # a slower run cannot be the best
            s, model = _steps_to_target(base, train, b, lr, params, cap, seed)
            if s is not None:
                best = (s, lr, model)
            elif best is not None:
                break  # past the fastest rate
        if best is None:
            continue
        sizes_reached.append(b)
        steps.append(best[0])
        best_lrs.append(best[1])
        trained[b] = best
        with torch.no_grad():
            test_error.append(100.0 * float((best[2](x_test).argmax(-1) != y_test).float().mean()))
    if len(sizes_reached) < 3:
        raise ValueError(
            f"only batch sizes {sizes_reached} reached the target loss {params['target_loss']}; the fits need 3. "
            "Raise max_steps or the target."
        )
    s_min, b_crit = _fit_critical_batch(sizes_reached, steps)

    # Noise scale along the largest batch's run (nearly full-batch descent), replayed to checkpoints at the
    # midpoints of n equal step intervals. With per-step progress dL/(1 + B_noise/B), the steps to the target are
    # S(B) = S_min + E_min / B, and B_crit = E_min / S_min is the step-weighted mean of B_noise along that run
    # (McCandlish et al. 2018, eqs. 2.8-2.11): so the checkpoints' B_simple are averaged uniformly in steps.
    ref_b = sizes_reached[-1]
    ref_steps, ref_lr = trained[ref_b][0], trained[ref_b][1]
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed + 12345)
    n_marks = params["noise_checkpoints"]
    marks = [round(ref_steps * (k + 0.5) / n_marks) for k in range(n_marks)]
    measured, exact = [], []
    x_train, y_train = train
    for mark in marks:
        snapshot = _replay(base, train, ref_b, ref_lr, mark, seed)
        ns = gradient_noise_scale(
            snapshot, loss_fn, train, params["noise_b_small"], params["noise_b_big"], params["noise_batches"], g
        )
        measured.append(ns.b_simple)
        grads = _per_example_gradients(snapshot, x_train, y_train).detach().double()  # (N, P): exact reference
        full = grads.mean(0)
        exact.append(float((grads - full).pow(2).sum(1).mean() / full.pow(2).sum()))
    if not all(math.isfinite(v) and v > 0 for v in measured):
        raise ValueError(f"unresolved noise-scale estimates {measured}; raise noise_batches.")
    b_simple = float(np.mean(measured))

    error_slope = float(np.polyfit(np.log2(sizes_reached), test_error, 1)[0])
    lr_slope = float(np.polyfit(np.log2(sizes_reached), np.log2(best_lrs), 1)[0])
    return {
        "sizes_reached": sizes_reached,
        "steps": steps,
        "best_lr": best_lrs,
        "test_error": test_error,
        "error_slope_per_doubling": error_slope,
        "best_batch": float(sizes_reached[int(np.argmin(test_error))]),
        "lr_doublings_per_batch_doubling": lr_slope,
        "s_min": s_min,
        "b_crit": b_crit,
        "b_simple": b_simple,
        "b_simple_exact": float(np.mean(exact)),
        "b_simple_checkpoints": measured,
        "b_simple_exact_checkpoints": exact,
        "checkpoint_steps": marks,
        "abs_log10_ratio": abs(math.log10(b_simple / b_crit)),
    }


def _replay(base: nn.Module, data_xy, batch: int, lr: float, num_steps: int, seed: int) -> nn.Module:
    """The model after ``num_steps`` steps of the run ``_steps_to_target(base, ..., batch, lr, ..., seed)``."""
    from deepbasics import optim

    x, y = data_xy
    model = copy.deepcopy(base)
    opt = optim.SGD(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(num_steps):
        idx = torch.randint(len(x), (batch,), generator=g)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model
