"""Time ``optimizer.step()``: deepbasics.optim's foreach kernels against torch.optim's, in the same run.

A 784-2048-2048-10 MLP (about 5.8M float32 parameters) on the CPU gets fixed random gradients once; then,
for Adam, AdamW and SGD with momentum, an optimizer of each library updates its own copy of the parameters.
Each repeat times a block of ``--steps`` consecutive steps of one library, then of the other (the order
alternates between repeats, so a drift in machine load hits both), after ``--warmup`` untimed steps each.
The table reports the median time per step over the repeats and the ratio ours / torch (target <= 1.2).
One intra-op thread by default: both libraries run the same memory-bound element-wise ops, and on a
shared machine extra threads mostly add scheduling noise (``--threads 0`` uses torch's default).

    python benchmarks/optim_step.py [--repeats 11] [--steps 5] [--warmup 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable

import torch

import deepbasics.optim as dbo

SIZES = (784, 2048, 2048, 10)

OPTIMIZERS: dict[str, tuple[Callable[..., torch.optim.Optimizer], Callable[..., torch.optim.Optimizer], dict]] = {
    "Adam": (dbo.Adam, torch.optim.Adam, {"lr": 1e-3}),
    "AdamW": (dbo.AdamW, torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 1e-2}),
    "SGD-momentum": (dbo.SGD, torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9}),
}


def make_params(seed: int = 0) -> list[torch.Tensor]:
    """Weights and biases of the MLP, each with a fixed random gradient."""
    g = torch.Generator().manual_seed(seed)
    params = []
    for fan_in, fan_out in itertools.pairwise(SIZES):
        for shape in ((fan_out, fan_in), (fan_out,)):
            p = (torch.randn(shape, generator=g) * fan_in**-0.5).requires_grad_()
            p.grad = torch.randn(shape, generator=g) * 1e-2
            params.append(p)
    return params


def time_steps(opt: torch.optim.Optimizer, steps: int) -> float:
    """Seconds per step, averaged over ``steps`` consecutive steps."""
    start = time.perf_counter()
    for _ in range(steps):
        opt.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11, help="timed blocks per library (median taken)")
    parser.add_argument("--steps", type=int, default=5, help="steps per timed block")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per library first")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    n_params = sum(p.numel() for p in make_params())
    print(
        f"MLP {'-'.join(map(str, SIZES))}: {n_params / 1e6:.2f}M float32 parameters, {torch.get_num_threads()} threads"
    )
    print(f"torch {torch.__version__}; medians over {args.repeats} blocks of {args.steps} steps\n")
    print(f"{'optimizer':<14}{'ours ms/step':>14}{'torch ms/step':>15}{'ours/torch':>12}")
    for name, (ours_cls, torch_cls, kwargs) in OPTIMIZERS.items():
        opts = {
            "ours": ours_cls(make_params(), foreach=True, **kwargs),
            "torch": torch_cls(make_params(), foreach=True, **kwargs),
        }
        for opt in opts.values():
            time_steps(opt, args.warmup)
        times: dict[str, list[float]] = {"ours": [], "torch": []}
        for r in range(args.repeats):
            order = ("ours", "torch") if r % 2 == 0 else ("torch", "ours")
            for lib in order:
                times[lib].append(time_steps(opts[lib], args.steps))
        ours, theirs = statistics.median(times["ours"]), statistics.median(times["torch"])
        print(f"{name:<14}{ours * 1e3:>14.2f}{theirs * 1e3:>15.2f}{ours / theirs:>12.3f}")


if __name__ == "__main__":
    main()
