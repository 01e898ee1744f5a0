"""Overhead of :func:`deepbasics.doctor.watch`: per-step training time watched / plain, same process.

Two small real-data models (scikit-learn's bundled 8x8 digits, 1797 images, 10 classes), batch 64, SGD with
momentum:

- MLP 64-256-256-10 with ReLU;
- CNN Conv(1->16, 3x3)-ReLU-Conv(16->32, 3x3)-ReLU-MaxPool(2)-Linear(512->10).

Method: one model and optimizer; blocks of ``--steps`` steps alternate between plain and watched (the session
attached before the block -- ``session.step(loss)`` called every step -- and detached after it, with its final
detector run timed separately), the order swapped every repeat. Reported: the median over repeats of the
per-pair ratio watched / plain, wall clock and process CPU time, and the milliseconds of ``finalize()`` (the one
host copy plus every detector). Target with the defaults (loss every step, layer statistics every 20 steps,
detectors every 100): ratio <= 1.05.

``--long N`` adds whole runs of N steps (one session kept for the run, as a real script has): a check reads the
whole recorded trace, so this is where a check whose cost grows with the run shows up. Each of plain and watched
runs twice, alternating; reported: watched / plain CPU time.

Run: ``python benchmarks/doctor_overhead.py [--repeats 15] [--steps 100] [--threads 1] [--device cpu] [--long 3000]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _workloads import cnn, digits, mlp, time_block  # benchmarks/ is on sys.path when run as a script
from torch import nn

from deepbasics.doctor import watch


def measure(name: str, model: nn.Module, settings: dict, args: argparse.Namespace, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = model.to(device)
    x, y = digits(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    batch = 64
    n_batches = x.shape[0] // batch
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    session = None

    def step(i: int) -> None:
        j = (i % n_batches) * batch
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[j : j + batch]), y[j : j + batch])
        loss.backward()
        opt.step()
        if session is not None:
            session.step(loss)

    time_block(step, args.steps, sync)  # warm-up
    plain, watched, finals = [], [], []
    for r in range(args.repeats):
        for watch_first in (r % 2 == 1, r % 2 == 0):
            if watch_first:
                session = watch(model, opt, **settings).attach()
                watched.append(time_block(step, args.steps, sync))
                session.detach()
                t0 = time.perf_counter()
                session.finalize()
                finals.append(time.perf_counter() - t0)
                session = None
            else:
                plain.append(time_block(step, args.steps, sync))
    # Ratio per interleaved pair, then the median: robust to slow drifts of the machine's load.
    return {
        "model": name,
        "settings": ", ".join(f"{k}={v}" for k, v in settings.items()) or "default",
        "plain_us": statistics.median(p[0] for p in plain) * 1e6,
        "watched_us": statistics.median(q[0] for q in watched) * 1e6,
        "ratio": statistics.median(q[0] / p[0] for p, q in zip(plain, watched, strict=True)),
        "cpu_ratio": statistics.median(q[1] / p[1] for p, q in zip(plain, watched, strict=True)),
        "finalize_ms": statistics.median(finals) * 1e3,
    }


def measure_long(name: str, build: object, steps: int, device: torch.device) -> dict:
    """Whole runs of ``steps`` steps, plain and watched (one session per run), twice each, alternating."""
    x, y = digits(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times: dict[bool, list[float]] = {False: [], True: []}
    for watched in (False, True, True, False):
        torch.manual_seed(0)
        model = build().to(device)  # type: ignore[operator]
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        session = watch(model, opt).attach() if watched else None
        sync()
        start = time.process_time()
        for i in range(steps):
            j = (i % (x.shape[0] // 64)) * 64
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x[j : j + 64]), y[j : j + 64])
            loss.backward()
            opt.step()
            if session is not None:
                session.step(loss)
        if session is not None:
            session.detach()
            session.finalize()
        sync()
        times[watched].append(time.process_time() - start)
    ratio = statistics.median(times[True]) / statistics.median(times[False])
    return {"model": name, "steps": steps, "cpu_ratio": ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="interleaved blocks per configuration")
    parser.add_argument("--steps", type=int, default=100, help="training steps per block")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: least noise)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--long", type=int, default=0, help="also time whole runs of this many steps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for name, build in (("digits MLP 64-256-256-10", mlp), ("digits CNN 16-32 conv", cnn)):
        for settings in ({}, {"layer_every": 1}):
            rows.append(measure(name, build(), settings, args, device))
    print(f"device={device} threads={args.threads} repeats={args.repeats} steps/block={args.steps} (medians)")
    header = f"{'model':<26} {'settings':<14} {'plain us/step':>14} {'watched us/step':>16} {'ratio':>7}"
    header += f" {'cpu ratio':>9} {'finalize ms':>12}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['model']:<26} {r['settings']:<14} {r['plain_us']:>14.1f} {r['watched_us']:>16.1f} "
            f"{r['ratio']:>7.3f} {r['cpu_ratio']:>9.3f} {r['finalize_ms']:>12.2f}"
        )
    if args.long:
        for name, build in (("digits MLP 64-256-256-10", mlp), ("digits CNN 16-32 conv", cnn)):
            r = measure_long(name, build, args.long, device)
            print(f"whole run of {r['steps']} steps, {r['model']}: watched / plain CPU time {r['cpu_ratio']:.3f}")


if __name__ == "__main__":
    main()
