"""Overhead of :class:`deepbasics.probe.LayerStats`: per-step training time with the probe / without it.

Two small real-data models (scikit-learn's bundled 8x8 digits, 1797 images, 10 classes):

- MLP 64-256-256-10 with ReLU, batch 64;
- CNN Conv(1->16, 3x3)-ReLU-Conv(16->32, 3x3)-ReLU-MaxPool(2)-Linear(512->10), batch 64.

Method: one model, one optimizer (SGD with momentum); blocks of ``--steps`` training steps alternate between
plain and probed, with the order swapped every repeat. A probe is attached before its block and removed after
it, and its first step (step 0: recorded, plus the one-time scan for functional activations) runs before the
timer starts and is reported on its own ("first step ms"), so the timed steps are the probe's steady state
(``--steps`` should be a multiple of ``every``). The ratio is the median over the ``--repeats`` interleaved
pairs of (probed per-step time / plain per-step time), for wall-clock time and for the process's CPU time (the
latter is less sensitive to other processes on a shared machine; on CUDA only the wall-clock ratio is
meaningful). The time of ``records()`` (the one host copy at the end) is reported separately.
Target: ratio <= 1.05 with the default settings.

Run: ``python benchmarks/probe_overhead.py [--repeats 15] [--steps 100] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _workloads import cnn, digits, mlp, time_block  # benchmarks/ is on sys.path when run as a script
from torch import nn

from deepbasics.probe import LayerStats


def measure(name: str, model: nn.Module, settings: dict, args: argparse.Namespace, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = model.to(device)
    x, y = digits(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    batch = 64
    n_batches = x.shape[0] // batch
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def step(i: int) -> None:
        j = (i % n_batches) * batch
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x[j : j + batch]), y[j : j + batch]).backward()
        opt.step()

    time_block(step, args.steps, sync)  # warm-up
    plain, probed, reads, firsts = [], [], [], []
    for r in range(args.repeats):
        for probe_first in (r % 2 == 1, r % 2 == 0):
            if probe_first:
                stats = LayerStats(model, optimizer=opt, **settings)
                firsts.append(time_block(step, 1, sync)[0])  # step 0: recorded + one-time activation scan
                probed.append(time_block(step, args.steps, sync))
                t0 = time.perf_counter()
                stats.records()
                reads.append(time.perf_counter() - t0)
                stats.remove()
            else:
                plain.append(time_block(step, args.steps, sync))
    # Ratio per interleaved pair, then the median: robust to slow drifts of the machine's load.
    wall = statistics.median(q[0] / p[0] for p, q in zip(plain, probed, strict=True))
    cpu = statistics.median(q[1] / p[1] for p, q in zip(plain, probed, strict=True))
    return {
        "model": name,
        "settings": ", ".join(f"{k}={v}" for k, v in settings.items()) or "default",
        "plain_us": statistics.median(p[0] for p in plain) * 1e6,
        "probed_us": statistics.median(q[0] for q in probed) * 1e6,
        "ratio": wall,
        "cpu_ratio": cpu,
        "read_ms": statistics.median(reads) * 1e3,
        "first_ms": statistics.median(firsts) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="interleaved blocks per configuration")
    parser.add_argument("--steps", type=int, default=100, help="training steps per block")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: least noise)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for name, build in (("digits MLP 64-256-256-10", mlp), ("digits CNN 16-32 conv", cnn)):
        for settings in ({}, {"every": 10}, {"every": 1}):
            rows.append(measure(name, build(), settings, args, device))
    print(f"device={device} threads={args.threads} repeats={args.repeats} steps/block={args.steps} (medians)")
    header = f"{'model':<26} {'settings':<10} {'plain us/step':>14} {'probed us/step':>15} {'ratio':>7}"
    header += f" {'cpu ratio':>9} {'first step ms':>13} {'records() ms':>13}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['model']:<26} {r['settings']:<10} {r['plain_us']:>14.1f} {r['probed_us']:>15.1f} "
            f"{r['ratio']:>7.3f} {r['cpu_ratio']:>9.3f} {r['first_ms']:>13.2f} {r['read_ms']:>13.2f}"
        )


if __name__ == "__main__":
    main()
