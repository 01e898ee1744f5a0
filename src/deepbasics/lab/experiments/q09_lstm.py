"""Q9: why the LSTM beats a plain RNN: longer memory, gradients that survive, but no cure for explosions.

- **Q9.a** On the adding problem (:func:`deepbasics.data.adding_problem`; Hochreiter & Schmidhuber 1997,
  section 5.4) an LSTM learns to add two values about ``T/2`` steps apart for longer sequences than a tanh RNN
  of the same width and training budget.
- **Q9.b** At initialization the gradient ``||dL/dh_t||`` reaching early steps falls off geometrically in a tanh
  RNN (a product of ``diag(phi') W_hh`` factors; Bengio, Simard & Frasconi 1994) and much more slowly in an
  LSTM, whose cell path ``dc_t/dc_{t-1} = diag(f_t)`` has no weight matrix or squashing (Hochreiter &
  Schmidhuber 1997, section 4, the constant error carousel).
- **Q9.c** The LSTM's gradient can still grow back through time (large recurrent weights), and a large step
  without clipping diverges where a clipped one does not (Pascanu, Mikolov & Bengio 2013, section 3.2).

The LSTMs here use the forget-gate bias ``b_f = 1`` (Gers, Schmidhuber & Cummins 2000, section 2; Jozefowicz,
Zaremba & Sutskever 2015, section 2.2, the default of Keras and TensorFlow): the usual LSTM recipe. PyTorch's
default initialization draws ``b_f`` near 0, i.e. ``f = sigma(b_f) ~ 1/2``; Q9.b reports that case too.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from deepbasics.lab import Metric, Rule, experiment, save_figure

#: A length counts as solved when the held-out MSE is below this fraction of the memoryless baseline
#: (always answering E[a + b] = 1, MSE 1/6): 10% of it means the two marked values are recovered to about
#: +-0.13, far beyond what any strategy that forgot the first value can reach (it keeps at least Var(a) = 1/12,
#: i.e. 50% of the baseline).
SOLVED_FRACTION = 0.1
#: The standard LSTM forget-gate bias (Gers et al. 2000; Jozefowicz et al. 2015).
FORGET_BIAS = 1.0
#: Per-step decays below this many decades per step count as "no decay" when forming the Q9.b ratio, so that
#: a flat (or growing) LSTM gradient gives a large finite ratio instead of a division by ~0.
DECAY_FLOOR = 1e-3


def _recurrent_model(kind: str, hidden: int, seed: int, *, forget_bias: float | None = FORGET_BIAS):
    """``rnn_classifier(kind)`` reading (B, T, 2) adding-problem inputs, one output, seeded init.

    ``forget_bias`` (LSTM only) sets ``b_ih + b_hh`` of the forget gate (rows H:2H in torch's i, f, g, o
    order) to that value; None keeps torch's U(-1/sqrt(H), 1/sqrt(H)) draw.
    """
    from deepbasics import nn as dnn

    with torch.random.fork_rng():
        torch.manual_seed(seed)  # module initializers draw from the global RNG; scoped to this block
        model = dnn.rnn_classifier(kind, input_size=2, hidden_size=hidden, output_size=1)
    if kind == "lstm" and forget_bias is not None:
        with torch.no_grad():
            model.cell.bias_ih[hidden : 2 * hidden].fill_(forget_bias)
            model.cell.bias_hh[hidden : 2 * hidden].zero_()
    return model


# ------------------------------------------------------------------------------ Q9.a longest lag learned
def _train_adding(kind: str, length: int, params: dict, seed: int) -> dict:
    """Train ``kind`` on the adding problem of length ``length`` until solved or out of budget.

    Adam (lr ``params["lr"]``), fresh batches every step, global-norm clipping at ``params["clip"]`` for both
    models (so that a failure is not an explosion); the held-out MSE is checked every ``eval_every`` steps.
    """
    from deepbasics import optim
    from deepbasics.data import ADDING_BASELINE_MSE, adding_problem

    g = torch.Generator().manual_seed(seed * 1000 + length)
    model = _recurrent_model(kind, params["hidden"], seed)
    opt = optim.Adam(model.parameters(), lr=params["lr"])
    x_val, y_val = adding_problem(params["val_size"], length, g)
    curve, steps = [], 0
    while steps < params["max_steps"]:
        for _ in range(params["eval_every"]):
            x, y = adding_problem(params["batch_size"], length, g)
            loss = (model(x) - y).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            optim.clip_grad_norm(model.parameters(), params["clip"])
            opt.step()
        steps += params["eval_every"]
        with torch.no_grad():
            ratio = float((model(x_val) - y_val).pow(2).mean()) / ADDING_BASELINE_MSE
        curve.append(ratio)
        if not math.isfinite(ratio) or ratio < SOLVED_FRACTION:
            break
    return {"solved": bool(curve[-1] < SOLVED_FRACTION), "steps": steps, "curve": curve}


def _plot_lags(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    lengths = params["lengths"]
    for k, kind in enumerate(("rnn", "lstm")):
        for seed, out in enumerate(outputs):
            best = [min(out["runs"][kind][str(t)]["curve"]) if str(t) in out["runs"][kind] else np.nan for t in lengths]
            ax1.semilogy(lengths, best, "o-", color=f"C{k}", alpha=0.7, label=f"{kind.upper()}" if seed == 0 else None)
            for t, run in out["runs"][kind].items():
                xs = params["eval_every"] * np.arange(1, len(run["curve"]) + 1)
                ax2.semilogy(xs, run["curve"], color=f"C{k}", alpha=0.25 + 0.75 * int(t) / max(lengths))
    for ax in (ax1, ax2):
        ax.axhline(SOLVED_FRACTION, color="k", ls="--", lw=1, label=f"solved: MSE < {SOLVED_FRACTION} x baseline")
        ax.axhline(1.0, color="grey", ls=":", lw=1, label="memoryless baseline (MSE 1/6)")
    ax1.set_xscale("log", base=2)
    ax1.set(
        xlabel="sequence length T (time steps; markers ~T/2 apart)",
        ylabel="best held-out MSE / baseline MSE",
        title="Q9.a: adding problem, RNN vs LSTM (one line per seed)",
    )
    ax2.set(
        xlabel="training step (Adam updates)",
        ylabel="held-out MSE / baseline MSE",
        title="Q9.a: learning curves (darker = longer T)",
    )
    ax1.legend(fontsize=7)
    return [save_figure(fig, outdir, "adding_problem_lengths")]


@experiment(
    ids=("Q9.a",),
    method="A tanh RNN and an LSTM (b_f = 1) of the same width are trained with Adam and gradient clipping on the "
    "adding problem for doubling sequence lengths T, each length from a fresh initialization with a fixed budget "
    "of updates; a length is solved when the held-out MSE falls below 10% of the memoryless baseline (1/6). Lengths "
    "are tried in increasing order until one fails; the judged number is the longest length the LSTM solves divided "
    "by the RNN's (an RNN that solves none is credited with half the shortest length).",
    quick={
        "lengths": [4, 8, 16],
        "hidden": 32,
        "batch_size": 32,
        "lr": 0.01,
        "clip": 1.0,
        "max_steps": 250,
        "eval_every": 25,
        "val_size": 256,
    },
    full={
        "lengths": [4, 8, 16, 32],
        "hidden": 64,
        "batch_size": 64,
        "lr": 0.01,
        "clip": 1.0,
        "max_steps": 1200,
        "eval_every": 25,
        "val_size": 512,
    },
    # "Much longer lags": at least one doubling of the length grid, i.e. twice as long.
    rules={"Q9.a": Rule("length_ratio", ">=", 2.0, since="0.1.0")},
    metrics={
        "length_ratio": Metric("longest length solved, LSTM over RNN", unit="x"),
        "longest_rnn": Metric("longest sequence the tanh RNN solves", unit="steps"),
        "longest_lstm": Metric("longest sequence the LSTM solves", unit="steps"),
    },
    takeaways={
        "Q9.a": "on the adding problem the LSTM solves sequences of {longest_lstm}, the tanh RNN of {longest_rnn}",
    },
    seeds=3,
    timeout=1800,
    plot=_plot_lags,
)
def longest_lag(params, seed):
    lengths = params["lengths"]
    out: dict = {"runs": {}}
    for kind in ("rnn", "lstm"):
        longest, runs = 0, {}
        for length in lengths:
            run = _train_adding(kind, length, params, seed)
            runs[str(length)] = run
            if not run["solved"]:
                break  # longer sequences only get harder: stop at the first failure
            longest = length
        out["runs"][kind] = runs
        out[f"longest_{kind}"] = longest
        out[f"steps_{kind}"] = {t: r["steps"] for t, r in runs.items() if r["solved"]}
    out["length_ratio"] = out["longest_lstm"] / max(out["longest_rnn"], lengths[0] / 2)
    return out


# -------------------------------------------------------------------- Q9.b gradient reaching early steps
def _gradient_profile(kind: str, params: dict, seed: int, *, forget_bias: float | None = FORGET_BIAS) -> np.ndarray:
    """``||dL/dh_t||`` for t = 1..T at initialization (float64), loss = MSE of the final readout."""
    from deepbasics import nn as dnn
    from deepbasics.data import adding_problem

    model = _recurrent_model(kind, params["hidden"], seed, forget_bias=forget_bias).double()
    g = torch.Generator().manual_seed(seed)
    x, y = adding_problem(params["batch_size"], params["length"], g, dtype=torch.float64)
    prediction, states = model.forward_unrolled(x)
    loss = (prediction - y).pow(2).mean()
    return dnn.gradient_per_step(states, loss).numpy()


def _decay_per_step(norms: np.ndarray) -> float:
    """Decades of gradient norm lost per step going back in time: the fitted slope of log10 ||dL/dh_t|| on t."""
    return float(np.polyfit(np.arange(len(norms)), np.log10(norms), 1)[0])


def _plot_profiles(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    steps = np.arange(1, params["length"] + 1)
    labels = {
        "rnn": "tanh RNN",
        "lstm": f"LSTM, b_f = {FORGET_BIAS:g}",
        "lstm_default": "LSTM, torch default init (b_f ~ 0)",
    }
    for k, (key, label) in enumerate(labels.items()):
        curves = np.log10(np.array([out["profiles"][key] for out in outputs]))  # (S, T)
        decay = np.mean([out[f"decay_{key}"] for out in outputs])
        for seed, c in enumerate(curves):
            ax.plot(
                steps, c, color=f"C{k}", alpha=0.6, label=f"{label} ({decay:.3f} decades/step)" if seed == 0 else None
            )
    ax.set(
        xlabel="time step t (loss at the last step T)",
        ylabel="log10 ||dL/dh_t|| (gradient norm)",
        title=f"Q9.b: gradient reaching step t at initialization (T = {params['length']})",
    )
    ax.legend(fontsize=7)
    return [save_figure(fig, outdir, "gradient_per_step")]


@experiment(
    ids=("Q9.b",),
    method="At initialization, a tanh RNN and an LSTM (b_f = 1) of the same width read a batch of adding-problem "
    "sequences in float64; deepbasics.nn.gradient_per_step gives ||dL/dh_t|| for the MSE of the last step's "
    "readout. We fit the slope of log10 ||dL/dh_t|| against t (decades lost per step going back in time); the "
    "judged number is the RNN's decay divided by the LSTM's. The LSTM with PyTorch's default init is reported too.",
    quick={"length": 48, "hidden": 32, "batch_size": 16},
    full={"length": 128, "hidden": 64, "batch_size": 128},
    # "Much faster": the RNN loses at least twice as many decades per step, so over any lag its surviving
    # gradient is at most the square of the LSTM's.
    rules={"Q9.b": Rule("decay_ratio", ">", 2.0, since="0.1.0")},
    metrics={
        "decay_ratio": Metric("gradient decay per step back in time, RNN over LSTM", unit="x"),
        "decay_rnn": Metric("gradient lost per step back in time, tanh RNN", unit="decades"),
        "decay_lstm": Metric("gradient lost per step back in time, LSTM", unit="decades"),
    },
    takeaways={
        "Q9.b": "going back in time the gradient loses {decay_rnn} per step in a tanh RNN and {decay_lstm} in an LSTM "
        "with forget-gate bias 1",
    },
    seeds=3,
    timeout=300,
    plot=_plot_profiles,
)
def gradient_decay(params, seed):
    profiles = {
        "rnn": _gradient_profile("rnn", params, seed),
        "lstm": _gradient_profile("lstm", params, seed),
        "lstm_default": _gradient_profile("lstm", params, seed, forget_bias=None),
    }
    out: dict = {"profiles": {k: v.tolist() for k, v in profiles.items()}}
    for key, norms in profiles.items():
        out[f"decay_{key}"] = _decay_per_step(norms)
        out[f"attenuation_decades_{key}"] = float(np.log10(norms[-1] / norms[0]))
    out["decay_ratio"] = out["decay_rnn"] / max(out["decay_lstm"], DECAY_FLOOR)
    out["decay_ratio_default_init"] = out["decay_rnn"] / max(out["decay_lstm_default"], DECAY_FLOOR)
    return out


# ------------------------------------------------------------------------ Q9.c exploding gradients
def _sgd_run(params: dict, seed: int, clip: float | None) -> dict:
    """Plain SGD at a large learning rate on the adding problem, with or without global-norm clipping."""
    from deepbasics import optim
    from deepbasics.data import ADDING_BASELINE_MSE, adding_problem

    model = _recurrent_model("lstm", params["hidden"], seed)
    opt = optim.SGD(model.parameters(), lr=params["train_lr"])
    g = torch.Generator().manual_seed(seed)
    norms, losses = [], []
    for _ in range(params["train_steps"]):
        x, y = adding_problem(params["batch_size"], params["train_length"], g)
        loss = (model(x) - y).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is None:
            norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
        else:
            norm = optim.clip_grad_norm(model.parameters(), clip)  # the norm before clipping
        norms.append(float(norm))
        losses.append(loss.item() / ADDING_BASELINE_MSE)
        if not (math.isfinite(norms[-1]) and math.isfinite(losses[-1])):
            break  # the run has diverged; a further step would only propagate inf/nan
        opt.step()
    diverged = not (math.isfinite(norms[-1]) and math.isfinite(losses[-1]))
    return {"grad_norms": norms, "losses": losses, "diverged": diverged}


def _plot_explosion(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    steps = np.arange(1, params["length"] + 1)
    for k, scale in enumerate(params["scales"]):
        for seed, out in enumerate(outputs):
            ax1.plot(
                steps,
                np.log10(out["profiles"][str(scale)]),
                color=f"C{k}",
                alpha=0.6,
                label=f"W_hh x {scale:g}" if seed == 0 else None,
            )
    ax1.set(
        xlabel="time step t (loss at the last step T)",
        ylabel="log10 ||dL/dh_t||",
        title="Q9.c: LSTM gradient through time vs recurrent-weight scale",
    )
    ax1.legend(fontsize=7)
    for seed, out in enumerate(outputs):
        for key, color, label in (("unclipped", "C3", "no clipping"), ("clipped", "C2", f"clip at {params['clip']:g}")):
            norms = np.asarray(out["training"][key]["grad_norms"], dtype=float)
            norms = np.where(np.isfinite(norms), norms, np.nan)
            ax2.semilogy(
                np.arange(1, len(norms) + 1), norms, color=color, alpha=0.7, label=label if seed == 0 else None
            )
    ax2.set(
        xlabel="SGD step",
        ylabel="global gradient norm before clipping",
        title=f"Q9.c: LSTM trained with SGD, lr = {params['train_lr']:g} (lines end at inf/nan)",
    )
    ax2.legend(fontsize=7)
    return [save_figure(fig, outdir, "lstm_exploding_gradients")]


@experiment(
    ids=("Q9.c",),
    method="An LSTM (b_f = 1) at initialization, with its recurrent weights W_hh multiplied by each scale of a grid, "
    "reads adding-problem sequences in float64; the judged number is the largest growth of ||dL/dh_t|| from the "
    "last step back to the first, in decades, over the grid. Separately the unscaled LSTM is trained with plain SGD "
    "at a large learning rate with and without global-norm clipping, and we report whether each run diverges.",
    quick={
        "length": 50,
        "hidden": 32,
        "batch_size": 32,
        "scales": [1, 4, 8],
        "train_lr": 1.0,
        "train_length": 10,
        "train_steps": 40,
        "clip": 1.0,
    },
    full={
        "length": 100,
        "hidden": 64,
        "batch_size": 64,
        "scales": [1, 2, 3, 4, 6, 8],
        "train_lr": 1.0,
        "train_length": 20,
        "train_steps": 200,
        "clip": 1.0,
    },
    # Exploding: the gradient at the first step is more than 10x the one at the last (it grows, not decays, going
    # back in time, and a longer sequence multiplies the growth).
    rules={"Q9.c": Rule("max_growth_decades", ">", 1.0, since="0.1.0")},
    metrics={
        "max_growth_decades": Metric("largest growth of the gradient back through time", unit="decades"),
        "unclipped_diverged": Metric("unclipped runs that diverge", unit="%", scale=100),
        "clipped_diverged": Metric("clipped runs that diverge", unit="%", scale=100),
    },
    takeaways={
        "Q9.c": "with larger recurrent weights an LSTM's gradient grows by up to {max_growth_decades} from the last "
        "step back to the first; at a large learning rate {unclipped_diverged} of unclipped runs diverge, "
        "{clipped_diverged} of clipped ones",
    },
    seeds=3,
    timeout=600,
    plot=_plot_explosion,
)
def exploding(params, seed):
    from deepbasics import nn as dnn
    from deepbasics.data import adding_problem

    profiles, growth = {}, {}
    g = torch.Generator().manual_seed(seed)
    x, y = adding_problem(params["batch_size"], params["length"], g, dtype=torch.float64)
    for scale in params["scales"]:
        model = _recurrent_model("lstm", params["hidden"], seed).double()
        with torch.no_grad():
            model.cell.weight_hh.mul_(scale)
        prediction, states = model.forward_unrolled(x)
        norms = dnn.gradient_per_step(states, (prediction - y).pow(2).mean()).numpy()
        profiles[str(scale)] = norms.tolist()
        growth[str(scale)] = float(np.log10(norms[0] / norms[-1]))
    training = {"unclipped": _sgd_run(params, seed, None), "clipped": _sgd_run(params, seed, params["clip"])}
    worst = max(growth, key=growth.get)
    return {
        "max_growth_decades": growth[worst],
        "worst_scale": float(worst),
        "growth_decades": growth,
        "profiles": profiles,
        "training": training,
        "unclipped_diverged": float(training["unclipped"]["diverged"]),
        "clipped_diverged": float(training["clipped"]["diverged"]),
        "clipped_final_loss_ratio": float(np.mean(training["clipped"]["losses"][-10:])),
    }
