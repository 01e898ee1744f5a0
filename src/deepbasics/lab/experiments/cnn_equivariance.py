r"""CNN (+, part 2): equivariance and pooling, in 2-D on images and in 1-D on MNIST-1D signals.

- **CNN.b** Convolution commutes with translation, ``conv(T_u x) = T_u conv(x)`` (away from the borders), so
  stacks of convolutions and pointwise nonlinearities are translation-equivariant; max pooling over a
  neighbourhood and global average pooling discard where a feature fired, which makes the output approximately
  invariant to small shifts (Goodfellow et al. 2016, sec. 9.3-9.4).

An exact property of the operation, so both tasks are ones where the claim is meant to apply: 2-D convolutions
on images (the textbooks' setting) and 1-D convolutions on MNIST-1D signals, the setting of its reference CNN
(Greydanus & Kobak 2020). Receptive fields (CNN.c): :mod:`.cnn_receptive_field`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn as tnn

from deepbasics.lab import Metric, Rule, Task, experiment, save_figure

from ._cnn import digit_images

#: CNN.b: equivariance is exact in exact arithmetic; in float64 the interior error must be at rounding level.
EQUIVARIANCE_TOL = 1e-10
#: CNN.b: pooling "adds invariance" if max pooling followed by global average pooling cuts the relative output
#: change under 1-pixel shifts by at least 25% against the same convolutions without pooling.
POOLING_RATIO_MAX = 0.75


# ------------------------------------------------------------------------ CNN.b equivariance, pooling
class _GlobalPoolCNN(tnn.Module):
    """small_cnn's conv/pool stages, then global average pooling and a linear classifier (Lin et al. 2014)."""

    def __init__(self, channels: list[int], num_classes: int = 10) -> None:
        super().__init__()
        from deepbasics import nn

        body = nn.small_cnn(channels=channels, pool=True)
        self.features = tnn.Sequential(*[m for name, m in body.named_children() if name not in ("flatten", "fc")])
        self.fc = tnn.Linear(channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(-2, -1)))  # (N, C, h, w) -> (N, C) -> (N, classes)


class _Conv1dNet(tnn.Module):
    """The 1-D twin of small_cnn: per stage a 3-tap ``Conv1d`` (padding 1) and ReLU, then 2x max pooling if
    ``pool``; then a linear classifier on the flattened map, or on its mean over positions if ``global_pool``."""

    def __init__(self, channels: list[int], length: int, pool: bool, global_pool: bool = False) -> None:
        super().__init__()
        layers, prev = [], 1
        for c in channels:
            layers += [tnn.Conv1d(prev, c, 3, padding=1), tnn.ReLU()] + ([tnn.MaxPool1d(2)] if pool else [])
            prev = c
        self.features = tnn.Sequential(*layers)
        self.global_pool = global_pool
        side = length // 2 ** len(channels) if pool else length
        self.fc = tnn.Linear(prev if global_pool else prev * side, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)  # (N, C, L')
        return self.fc(h.mean(dim=-1) if self.global_pool else h.flatten(1))


def _shift1d(x: torch.Tensor, k: int, fill: float = 0.0) -> torch.Tensor:
    """``x`` (..., L) moved ``k`` positions to the right (left if ``k < 0``); vacated positions get ``fill``."""
    out = torch.full_like(x, fill)
    if k > 0:
        out[..., k:] = x[..., :-k]
    elif k < 0:
        out[..., :k] = x[..., -k:]
    else:
        out = x.clone()
    return out


def _relative_change(model, x: torch.Tensor, shifted: torch.Tensor) -> float:
    """Mean over images of ``||f(shifted) - f(x)|| / ||f(x)||``."""
    with torch.no_grad():
        a, b = model(x).flatten(1), model(shifted).flatten(1)
    return float(((b - a).norm(dim=1) / a.norm(dim=1)).mean())


def _plot_shifts(outputs, params, outdir):
    import matplotlib.pyplot as plt

    from deepbasics.lab.tasks import TASKS

    task = TASKS[params["task"]].label
    unit = "pixels, along each axis in turn" if params["task"] == "digits" else "positions"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    shifts = params["shifts"]
    for i, net in enumerate(("no pooling", "max pooling", "max + global average pooling")):
        curves = np.array([out["change"][net] for out in outputs])  # (S, len(shifts))
        ax1.errorbar(
            shifts,
            curves.mean(0),
            yerr=[curves.mean(0) - curves.min(0), curves.max(0) - curves.mean(0)],
            marker="o",
            color=f"C{i}",
            capsize=3,
            label=net,
        )
    ax1.set(
        xlabel=f"shift ({unit})",
        ylabel="||f(shifted) - f(x)|| / ||f(x)|| (logits)",
        title=f"CNN.b on {task}: output change under shifts, at init",
    )
    ax1.legend(fontsize=8)
    errs = [max(out["equivariance_error"], 1e-18) for out in outputs]
    ax2.bar(range(len(errs)), np.log10(errs), color="C2")
    ax2.axhline(math.log10(EQUIVARIANCE_TOL), color="k", ls="--", label=f"threshold {EQUIVARIANCE_TOL:g}")
    ax2.set_xticks(range(len(errs)), [f"seed {s}" for s in range(len(errs))])
    ax2.set(
        ylabel="log10 max |conv(shift x) - shift(conv x)| / max |conv x|",
        title=f"CNN.b on {task}: equivariance error, interior (float64)",
    )
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return [save_figure(fig, outdir, "shift_equivariance_invariance")]


def _canvas(params: dict, seed: int) -> tuple[torch.Tensor, float]:
    """Test inputs centred on a blank canvas (float64) and the blank value: digits (N, 1, c, c), MNIST-1D (N, 1, c)."""
    pad = (params["canvas"] - (8 if params["task"] == "digits" else 40)) // 2
    if params["task"] == "digits":
        splits, *_, xt, _ = digit_images(seed, None)
        background = float(splits.standardizer(torch.zeros(1, 1, 1, 1)))  # the standardized value of a blank pixel
        x = torch.nn.functional.pad(xt[: params["images"]].double() - background, (pad, pad, pad, pad))
        return x + background, background  # (N, 1, 16, 16): blank canvas with the digits' own background value
    from deepbasics import data

    xt, _ = data.mnist1d(val_fraction=0.0, dtype=torch.float64).tensors("test")  # (N, 40), zero-mean values
    return torch.nn.functional.pad(xt[: params["images"], None], (pad, pad)), 0.0  # (N, 1, 48)


def _moves(x: torch.Tensor, k: int, fill: float, two_d: bool) -> list[torch.Tensor]:
    """``x`` shifted by ``k`` both ways along every spatial axis."""
    from deepbasics import data

    if two_d:
        return [data.shift(x, dy, dx, fill=fill) for dy, dx in ((k, 0), (-k, 0), (0, k), (0, -k))]
    return [_shift1d(x, k, fill), _shift1d(x, -k, fill)]


@experiment(
    ids=("CNN.b",),
    method="Test inputs are centred on a blank canvas (8x8 digits on 16x16; MNIST-1D's 40 positions on 48) and "
    "shifted by whole pixels or positions. Equivariance: for the conv-ReLU-conv-ReLU feature maps of a randomly "
    "initialized CNN (small_cnn, or its 1-D twin with 3-tap Conv1d; float64) we compare conv(shift x) with "
    "shift(conv x) away from the zero-padded border. Invariance: the relative change of the logits under shifts by "
    "one for the same random conv stages followed by flatten+linear (no pooling), 2x max pooling, or max pooling "
    "plus global average pooling. The judged number counts two checks: equivariance error < 1e-10 and (max + "
    "global pooling's change) / (no pooling's change) < 0.75; max pooling alone is reported.",
    tasks=(
        Task(
            "digits",
            applies=True,
            why="2-D convolution on images, the setting of the textbook argument (Goodfellow et al. 2016, sec. 9.3).",
            detail="16x16 canvas",
        ),
        Task(
            "mnist1d",
            applies=True,
            why="1-D convolution is equally exact; MNIST-1D's digits sit anywhere in the signal, the nuisance its "
            "reference CNN must absorb (Greydanus & Kobak 2020).",
            detail="1-D convolutions, 48-position canvas",
            quick={"canvas": 48},
            full={"canvas": 48},
        ),
    ),
    quick={"images": 64, "channels": [8, 16], "shifts": [1, 2, 3], "canvas": 16},
    full={"images": 128, "channels": [16, 32], "shifts": [1, 2, 3, 4], "canvas": 16},
    # Both halves of the claim: exact equivariance (EQUIVARIANCE_TOL) and pooling cutting the change by >= 25%
    # (POOLING_RATIO_MAX).
    rules={"CNN.b": Rule("checks_passed", ">=", 2, since="0.1.0")},
    metrics={
        "checks_passed": Metric("checks passed, of two"),
        "equivariance_error": Metric("largest relative equivariance error (interior, float64)"),
        "pooling_ratio": Metric("output change under shifts by one, max pooling over none", unit="x"),
        "global_pooling_ratio": Metric("output change under shifts by one, max + global pooling over none", unit="x"),
    },
    takeaways={
        "CNN.b": "convolution commutes with shifts to {equivariance_error}; shifted by one pixel or position, the "
        "output changes {pooling_ratio} as much with max pooling and {global_pooling_ratio} as much with max plus "
        "global average pooling as without pooling",
    },
    seeds=3,
    timeout=300,
    plot=_plot_shifts,
)
def shifts(params, seed):
    from deepbasics import data, nn

    two_d = params["task"] == "digits"
    x, background = _canvas(params, seed)
    c = params["channels"]
    # equivariance of the conv feature maps (no pooling), float64
    torch.manual_seed(seed)
    if two_d:
        body = nn.small_cnn(channels=c, pool=False, image_size=params["canvas"]).double()
        features = tnn.Sequential(*[m for name, m in body.named_children() if name[:4] in ("conv", "act")])
    else:
        features = _Conv1dNet(c, params["canvas"], pool=False).features.double()
    margin = len(c) + 1  # each 3-tap zero-padded conv spoils one border pixel; the shift one more
    inner = (slice(None), slice(None)) + (slice(margin, -margin),) * (2 if two_d else 1)
    with torch.no_grad():
        if two_d:
            f_shift, shift_f = features(data.shift(x, 1, 1, fill=background)), data.shift(features(x), 1, 1)
        else:
            f_shift, shift_f = features(_shift1d(x, 1, background)), _shift1d(features(x), 1)
        err = (f_shift[inner] - shift_f[inner]).abs().max() / features(x)[inner].abs().max()
    out = {"equivariance_error": float(err), "change": {}}
    # invariance of the logits
    if two_d:
        nets = {
            "no pooling": nn.small_cnn(channels=c, pool=False, image_size=params["canvas"]),
            "max pooling": nn.small_cnn(channels=c, pool=True, image_size=params["canvas"]),
            "max + global average pooling": _GlobalPoolCNN(c),
        }
    else:
        nets = {
            "no pooling": _Conv1dNet(c, params["canvas"], pool=False),
            "max pooling": _Conv1dNet(c, params["canvas"], pool=True),
            "max + global average pooling": _Conv1dNet(c, params["canvas"], pool=True, global_pool=True),
        }
    for name, net in nets.items():
        torch.manual_seed(seed)  # the same conv weights in all three nets
        for m in net.modules():
            if isinstance(m, tnn.Conv2d | tnn.Conv1d | tnn.Linear):
                m.reset_parameters()
        net = net.double().eval()
        changes = []
        for k in params["shifts"]:
            moved = _moves(x, k, background, two_d)
            changes.append(float(np.mean([_relative_change(net, x, m) for m in moved])))
        out["change"][name] = changes
    out["pooling_ratio"] = out["change"]["max pooling"][0] / out["change"]["no pooling"][0]
    out["global_pooling_ratio"] = out["change"]["max + global average pooling"][0] / out["change"]["no pooling"][0]
    checks = {
        "equivariant": out["equivariance_error"] < EQUIVARIANCE_TOL,
        "pooling_reduces_change": out["global_pooling_ratio"] < POOLING_RATIO_MAX,
    }
    out["checks"] = checks
    out["checks_passed"] = float(sum(checks.values()))
    return out
