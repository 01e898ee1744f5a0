r"""CNN (+, part 2): equivariance and pooling, receptive fields.

- **CNN.b** Convolution commutes with translation, ``conv(T_u x) = T_u conv(x)`` (away from the borders), so
  stacks of convolutions and pointwise nonlinearities are translation-equivariant; max pooling over a
  neighbourhood and global average pooling discard where a feature fired, which makes the output approximately
  invariant to small shifts (Goodfellow et al. 2016, sec. 9.3-9.4).
- **CNN.c** With kernel ``k_l``, stride ``s_l`` and dilation ``d_l`` at layer ``l``, the receptive field of one
  output unit is ``r_L = r_{L-1} + (k_L - 1) d_L prod_{l<L} s_l``, ``r_0 = 1`` (Araujo, Norris & Sim, "Computing
  receptive fields of convolutional neural networks", Distill 2019, eq. 2; Yu & Koltun 2016 for dilation).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn as tnn

from deepbasics.lab import Metric, Rule, experiment, save_figure

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


def _relative_change(model, x: torch.Tensor, shifted: torch.Tensor) -> float:
    """Mean over images of ``||f(shifted) - f(x)|| / ||f(x)||``."""
    with torch.no_grad():
        a, b = model(x).flatten(1), model(shifted).flatten(1)
    return float(((b - a).norm(dim=1) / a.norm(dim=1)).mean())


def _plot_shifts(outputs, params, outdir):
    import matplotlib.pyplot as plt

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
        xlabel="shift (pixels, along each axis in turn)",
        ylabel="||f(shifted) - f(x)|| / ||f(x)|| (logits)",
        title="CNN.b: output change under shifts, at init",
    )
    ax1.legend(fontsize=8)
    errs = [max(out["equivariance_error"], 1e-18) for out in outputs]
    ax2.bar(range(len(errs)), np.log10(errs), color="C2")
    ax2.axhline(math.log10(EQUIVARIANCE_TOL), color="k", ls="--", label=f"threshold {EQUIVARIANCE_TOL:g}")
    ax2.set_xticks(range(len(errs)), [f"seed {s}" for s in range(len(errs))])
    ax2.set(
        ylabel="log10 max |conv(shift x) - shift(conv x)| / max |conv x|",
        title="CNN.b: equivariance error, interior (float64)",
    )
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return [save_figure(fig, outdir, "shift_equivariance_invariance")]


@experiment(
    ids=("CNN.b",),
    method="Test digits are centred on a 16x16 blank canvas and shifted by whole pixels (deepbasics.data.shift). "
    "Equivariance: for the conv-ReLU-conv-ReLU feature maps of a randomly initialized small_cnn (float64) we compare "
    "conv(shift x) with shift(conv x) away from the zero-padded border. Invariance: the relative change of the "
    "logits under 1-pixel shifts for the same random conv stages followed by flatten+linear (no pooling), 2x2 max "
    "pooling, or max pooling plus global average pooling. The judged number counts two checks: equivariance error "
    "< 1e-10 and (max + global pooling's change) / (no pooling's change) < 0.75; max pooling alone is reported.",
    quick={"images": 64, "channels": [8, 16], "shifts": [1, 2, 3], "canvas": 16},
    full={"images": 128, "channels": [16, 32], "shifts": [1, 2, 3, 4], "canvas": 16},
    # Both halves of the claim: exact equivariance (EQUIVARIANCE_TOL) and pooling cutting the change by >= 25%
    # (POOLING_RATIO_MAX).
    rules={"CNN.b": Rule("checks_passed", ">=", 2, since="0.1.0")},
    metrics={
        "checks_passed": Metric("checks passed, of two"),
        "equivariance_error": Metric("largest relative equivariance error (interior, float64)"),
        "pooling_ratio": Metric("output change under 1-pixel shifts, max pooling over none", unit="x"),
        "global_pooling_ratio": Metric("output change under 1-pixel shifts, max + global pooling over none", unit="x"),
    },
    takeaways={
        "CNN.b": "convolution commutes with shifts to {equivariance_error}; under 1-pixel shifts the output changes "
        "{pooling_ratio} as much with max pooling and {global_pooling_ratio} as much with max plus global average "
        "pooling as without pooling",
    },
    seeds=3,
    timeout=300,
    plot=_plot_shifts,
)
def shifts(params, seed):
    from deepbasics import data, nn

    splits, *_, xt, _ = digit_images(seed, None)
    background = float(splits.standardizer(torch.zeros(1, 1, 1, 1)))  # the standardized value of a blank pixel
    pad = (params["canvas"] - 8) // 2
    x = torch.nn.functional.pad(xt[: params["images"]].double() - background, (pad, pad, pad, pad))  # (N, 1, 16, 16)
    x = x + background  # blank canvas with the digits' own background value
    c = params["channels"]
    # equivariance of the conv feature maps (no pooling), float64
    torch.manual_seed(seed)
    body = nn.small_cnn(channels=c, pool=False, image_size=params["canvas"]).double()
    features = tnn.Sequential(*[m for name, m in body.named_children() if name[:4] in ("conv", "act")])
    margin = len(c) + 1  # each 3x3 zero-padded conv spoils one border pixel; the shift one more
    with torch.no_grad():
        f_shift = features(data.shift(x, 1, 1, fill=background))
        shift_f = data.shift(features(x), 1, 1)
        inner = (slice(None), slice(None), slice(margin, -margin), slice(margin, -margin))
        err = (f_shift[inner] - shift_f[inner]).abs().max() / features(x)[inner].abs().max()
    out = {"equivariance_error": float(err), "change": {}}
    # invariance of the logits
    nets = {
        "no pooling": nn.small_cnn(channels=c, pool=False, image_size=params["canvas"]),
        "max pooling": nn.small_cnn(channels=c, pool=True, image_size=params["canvas"]),
        "max + global average pooling": _GlobalPoolCNN(c),
    }
    for name, net in nets.items():
        torch.manual_seed(seed)  # the same conv weights in all three nets
        for m in net.modules():
            if isinstance(m, tnn.Conv2d | tnn.Linear):
                m.reset_parameters()
        net = net.double().eval()
        changes = []
        for k in params["shifts"]:
            moved = [data.shift(x, dy, dx, fill=background) for dy, dx in ((k, 0), (-k, 0), (0, k), (0, -k))]
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


# ------------------------------------------------------------------------------ CNN.c receptive field
def _formula(layers: list[list[int]]) -> int:
    """``r_L = r_{L-1} + (k_L - 1) d_L prod_{l<L} s_l`` with ``r_0 = 1`` (Araujo et al. 2019, eq. 2)."""
    r, jump = 1, 1
    for k, s, d in layers:
        r += (k - 1) * d * jump
        jump *= s
    return r


def _measured(layers: list[list[int]], size: int, seed: int) -> int:
    """Width of the set of input pixels with a non-zero gradient of the central output unit (float64, tanh)."""
    gen = torch.Generator().manual_seed(seed)
    mods = []
    for k, s, d in layers:
        conv = tnn.Conv2d(2 if mods else 1, 2, k, stride=s, dilation=d).double()  # 'valid': no padding
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen, dtype=torch.float64))
            conv.bias.zero_()
        mods += [conv, tnn.Tanh()]
    net = tnn.Sequential(*mods)
    x = torch.randn(1, 1, size, size, generator=gen, dtype=torch.float64, requires_grad=True)
    y = net(x)  # (1, 2, h, w)
    h, w = y.shape[-2:]
    y[0, 0, h // 2, w // 2].backward()
    rows = (x.grad[0, 0].abs().sum(dim=1) > 0).nonzero().flatten()  # (r,) input rows that reach the unit
    cols = (x.grad[0, 0].abs().sum(dim=0) > 0).nonzero().flatten()
    height, width = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
    if height != width:
        raise ValueError(f"receptive field of {layers} is not square: {height} x {width}")
    return height


def _plot_receptive(outputs, params, outdir):
    import matplotlib.pyplot as plt

    out = outputs[0]
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    for i, (family, names) in enumerate(out["families"].items()):
        depth = [len(params["configs"][n]) for n in names]
        ax.plot(depth, [out["formula"][n] for n in names], "-", color=f"C{i}", alpha=0.6)
        ax.plot(depth, [out["measured"][n] for n in names], "o", color=f"C{i}", label=f"{family} (dots: measured)")
    ax.set_yscale("log", base=2)
    ax.set(
        xlabel="number of 3x3 conv layers",
        ylabel="receptive field (input pixels per side)",
        title="CNN.c: measured receptive field vs r_L = r_{L-1} + (k-1) d prod s (lines)",
    )
    ax.legend(fontsize=8)
    return [save_figure(fig, outdir, "receptive_field")]


def _configs(max_depth: int) -> dict[str, list[list[int]]]:
    """Stacks of 3x3 convs ``[kernel, stride, dilation]`` per layer: plain, strided, dilated, mixed."""
    out = {}
    for depth in range(1, max_depth + 1):
        out[f"plain{depth}"] = [[3, 1, 1]] * depth
        out[f"stride2_{depth}"] = [[3, 2, 1]] * depth
        out[f"dilated{depth}"] = [[3, 1, 2**i] for i in range(depth)]  # Yu & Koltun's exponential dilation
        out[f"mixed{depth}"] = [[3, 2 if i % 2 == 0 else 1, 1 + i % 3] for i in range(depth)]
    return out


@experiment(
    ids=("CNN.c",),
    method="Stacks of 3x3 convolutions with tanh (random float64 weights, no padding) are applied to one random "
    "input larger than any receptive field; we back-propagate from the central unit of the last map and measure "
    "the width of the set of input pixels with a non-zero gradient. Stacks: plain, stride 2 at every layer, "
    "dilation 1, 2, 4, ... and mixed strides/dilations, depths 1 to max_depth. The judged number is the largest "
    "absolute difference to r_L = r_{L-1} + (k-1) d prod(s).",
    quick={"configs": _configs(4), "size": 96},
    full={"configs": _configs(6), "size": 320},
    # Exact agreement (integer widths): any difference of 1 pixel or more fails.
    rules={"CNN.c": Rule("max_abs_error", "<", 0.5, spread="value", since="0.1.0")},
    metrics={
        "max_abs_error": Metric("largest difference between measured and predicted receptive field", unit="pixels"),
    },
    takeaways={
        "CNN.c": "measured receptive fields match r_L = r_(L-1) + (k - 1) d prod(s) to {max_abs_error}",
    },
    seeds=1,
    timeout=300,
    plot=_plot_receptive,
)
def receptive_field(params, seed):
    configs = params["configs"]
    formula = {name: _formula(layers) for name, layers in configs.items()}
    too_big = {n: r for n, r in formula.items() if r > params["size"] - 2}
    if too_big:
        raise ValueError(f"input size {params['size']} too small for receptive fields {too_big}; raise 'size'")
    measured = {name: _measured(layers, params["size"], seed) for name, layers in configs.items()}
    families: dict[str, list[str]] = {}
    for name in configs:
        families.setdefault(name.rstrip("0123456789").rstrip("_"), []).append(name)
    errors = [abs(measured[n] - formula[n]) for n in configs]
    return {"formula": formula, "measured": measured, "families": families, "max_abs_error": float(max(errors))}
