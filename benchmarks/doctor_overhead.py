"""Overhead of :func:`deepbasics.doctor.watch`: a training run watched / the same run plain, same process.

Two small real-data models (scikit-learn's bundled 8x8 digits, 1797 images, 10 classes), batch 64, SGD with
momentum:

- MLP 64-256-256-10 with ReLU (a plain step ~1.2 ms on one CPU thread: the worst case for per-step costs);
- CNN Conv(1->16, 3x3)-ReLU-Conv(16->32, 3x3)-ReLU-MaxPool(2)-Linear(512->10).

Headline (the target, ratio <= 1.05): **whole runs** of ``--run-steps`` steps (default 1,000 and 3,000, i.e. 36
and 107 epochs of the digits), each from a fresh model: plain, and watched the way a user watches (``with watch(model,
optimizer) as session:`` around the loop, ``session.step(loss)`` every step, the detectors at the exit included).
Plain and watched runs alternate, the order swapped every repeat; reported: the median over ``--runs`` repeats of the
per-pair ratio of wall-clock and of process CPU time (CPU time is the steadier of the two on a shared machine).
A whole run pays everything once, as a user does: the first steps' one-time work (graph scan, input moments, the
first layer records), the layer records (every 20 steps for the first 10, then thinning with the run), the periodic
checks and the final one.

Script mode, the same whole runs as an unmodified script: ``python train.py`` against ``deepbasics doctor train.py``
(subprocesses, one thread each, alternating); the script times its own training loop, so the ratio is the loop's,
without the interpreter's start, the imports and the doctor's final report (its end-of-run curvature check included
there: printed apart, as the commands' whole wall times).

Also printed, as before this benchmark measured whole runs: the **first 100 steps** after attaching (blocks of 100
steps, plain and watched alternating, a fresh session per block, its final check timed apart as ``finalize ms``).
That block holds the one-time startup work and 5 layer records in 100 steps, so it is an upper bound on what a short
run pays per step, not the steady cost; ``layer_every=1`` shows the cost of recording every step.

**Where the extra time goes**: every step of 3 pairs of plain and watched whole runs timed alone; per pair, the
watched minus the plain time of each step summed per kind of step (the first 10 steps, layer-record steps, check
steps, all other steps) and the exit; the median over the pairs. "Other steps" is what the hooks cost every step
(the noisiest sum: ~5% of a plain step's time, over thousands of steps); the rest is the periodic and one-time work,
which a longer run amortizes (records and checks are O(log steps)).

Run: ``python benchmarks/doctor_overhead.py [--runs 5] [--run-steps 1000,3000] [--breakdown-runs 3]
[--script-runs 3] [--repeats 11] [--steps 100] [--threads 1] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

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


def whole_run(build: object, device: torch.device, steps: int, watched: bool, step_times: list[float] | None = None
              ) -> tuple[float, float, float]:  # fmt: skip
    """One run of ``steps`` steps from a fresh model, plain or watched as a user watches (``with watch(...)``);
    returns (wall s, process CPU s, exit s: the ``with`` block's end, detectors included). ``step_times``: each
    step's wall seconds are appended to it."""
    x, y = digits(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    batches = x.shape[0] // 64
    torch.manual_seed(0)
    model = build().to(device)  # type: ignore[operator]
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sync()
    w0, c0 = time.perf_counter(), time.process_time()
    with watch(model, opt) if watched else contextlib.nullcontext() as session:
        for i in range(steps):
            j = (i % batches) * 64
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x[j : j + 64]), y[j : j + 64])
            loss.backward()
            opt.step()
            if session is not None:
                session.step(loss)
            if step_times is not None:
                sync()
                step_times.append(time.perf_counter() - t0)
        t_end = time.perf_counter()
    sync()
    wall = time.perf_counter()
    return wall - w0, time.process_time() - c0, wall - t_end


def measure_runs(name: str, build: object, steps: int, runs: int, device: torch.device) -> dict:
    """Whole runs of ``steps`` steps from a fresh model, plain and watched (``with watch(...)``), alternating."""
    whole_run(build, device, steps, False)  # warm-up: allocator, kernels, imports
    pairs = []
    for r in range(runs):
        times = {}
        for watched in (r % 2 == 1, r % 2 == 0):
            times[watched] = whole_run(build, device, steps, watched)
        pairs.append((times[False], times[True]))
    return {
        "model": name,
        "steps": steps,
        "plain_s": statistics.median(p[0] for p, _ in pairs),
        "ratio": statistics.median(q[0] / p[0] for p, q in pairs),
        "cpu_ratio": statistics.median(q[1] / p[1] for p, q in pairs),
    }


def measure_breakdown(name: str, build: object, steps: int, runs: int, device: torch.device) -> dict:
    """Where a whole run's extra time goes: every step of ``runs`` pairs of plain and watched runs timed alone; per
    pair, the watched minus the plain time of each step summed per kind of step -- the first steps (one-time probes),
    layer-record steps (also the practice windows and most loss inspections), check steps, and the rest (the hooks
    every step runs) -- plus the exit (detectors, report data); reported: the median over the pairs. A pair's two runs
    are adjacent in time, so the machine's slow drifts cancel; the "other steps" sum is still the noisiest: ~1% of a
    plain step, times thousands of steps."""
    from deepbasics.doctor.recording import DENSE_LAYER_RECORDS
    from deepbasics.doctor.schedule import Schedule
    from deepbasics.probe.layer_stats import DEFAULT_EVERY, recorded_step

    schedule = Schedule()
    checks = {i for i in range(steps) if schedule.check_due(i + 1)}

    def kind(i: int) -> str:
        if i < 10:
            return "first 10 steps"
        if i in checks:
            return "check steps"
        return "layer-record steps" if recorded_step(i, DEFAULT_EVERY, DENSE_LAYER_RECORDS) else "other steps"

    kinds = [kind(i) for i in range(steps)]
    names = ["first 10 steps", "layer-record steps", "check steps", "other steps", "exit"]
    whole_run(build, device, steps, False)
    pairs: list[dict[str, float]] = []
    plain_s = []
    for r in range(runs):
        times: dict[bool, list[float]] = {False: [], True: []}
        exits = {w: whole_run(build, device, steps, w, times[w])[2] for w in (r % 2 == 1, r % 2 == 0)}
        extra = dict.fromkeys(names, 0.0)
        for i, (p, q) in enumerate(zip(times[False], times[True], strict=True)):
            extra[kinds[i]] += q - p
        extra["exit"] = exits[True]
        pairs.append(extra)
        plain_s.append(sum(times[False]))
    counts = {n: kinds.count(n) for n in names[:-1]} | {"exit": 1}
    median = {n: statistics.median(pair[n] for pair in pairs) for n in names}
    return {"model": name, "steps": steps, "plain_s": statistics.median(plain_s), "extra_s": median, "counts": counts}


SCRIPT = """
import argparse, json, time
import torch
from sklearn.datasets import load_digits
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=1000)
parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
args = parser.parse_args()
torch.set_num_threads(1)
torch.manual_seed(0)
data = load_digits()
x = torch.tensor(data.data, dtype=torch.float32) / 16.0
y = torch.tensor(data.target)
if args.model == "mlp":
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
else:
    model = nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(512, 10),
    )
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()
start, cpu = time.perf_counter(), time.process_time()
for i in range(args.steps):
    j = (i % 28) * 64
    optimizer.zero_grad()
    loss = loss_fn(model(x[j : j + 64]), y[j : j + 64])
    loss.backward()
    optimizer.step()
print(json.dumps({"loop_s": time.perf_counter() - start, "loop_cpu_s": time.process_time() - cpu}))
"""


def measure_script(model: str, steps: int, runs: int) -> dict:
    """The training loop of an unmodified script, plain and under ``deepbasics doctor``, as subprocesses."""
    folder = Path(tempfile.mkdtemp(prefix="doctor-overhead-"))
    script = folder / "train.py"
    script.write_text(textwrap.dedent(SCRIPT), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    commands = {
        False: [sys.executable, str(script), "--steps", str(steps), "--model", model],
        True: [sys.executable, "-m", "deepbasics", "doctor", str(script), "--out", str(folder / "doctor.json"), "--",
               "--steps", str(steps), "--model", model],
    }  # fmt: skip

    def run(watched: bool) -> tuple[float, float, float]:
        start = time.perf_counter()
        done = subprocess.run(commands[watched], capture_output=True, text=True, cwd=folder, env=env, check=False)
        wall = time.perf_counter() - start
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith('{"loop_s"')), None)
        if line is None:
            raise RuntimeError(f"{' '.join(commands[watched])} printed no timing:\n{done.stdout}\n{done.stderr}")
        timing = json.loads(line)
        return timing["loop_s"], timing["loop_cpu_s"], wall

    pairs = []
    for r in range(runs):
        times = {}
        for watched in (r % 2 == 1, r % 2 == 0):
            times[watched] = run(watched)
        pairs.append((times[False], times[True]))
    return {
        "model": model,
        "steps": steps,
        "ratio": statistics.median(q[0] / p[0] for p, q in pairs),
        "cpu_ratio": statistics.median(q[1] / p[1] for p, q in pairs),
        "plain_wall_s": statistics.median(p[2] for p, _ in pairs),
        "doctor_wall_s": statistics.median(q[2] for _, q in pairs),
    }


def print_header(header: str) -> None:
    """A table's header line and its rule."""
    print(header)
    print("-" * len(header))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="whole runs per model, length and variant")
    parser.add_argument("--run-steps", default="1000,3000", help="comma-separated lengths of the whole runs")
    parser.add_argument("--breakdown-runs", type=int, default=3, help="run pairs for the breakdown (0: skip)")
    parser.add_argument("--script-runs", type=int, default=3, help="script-mode runs per model (0: skip)")
    parser.add_argument("--repeats", type=int, default=11, help="interleaved 100-step blocks per configuration")
    parser.add_argument("--steps", type=int, default=100, help="training steps per block")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: least noise)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    models = (("digits MLP 64-256-256-10", mlp), ("digits CNN 16-32 conv", cnn))
    lengths = [int(n) for n in args.run_steps.split(",") if n.strip()]
    print(f"device={device} threads={args.threads}; medians of per-pair ratios watched / plain")
    print(f"\nwhole runs ({args.runs} pairs each; target: ratio <= 1.05)")
    header = f"{'model':<26} {'steps':>6} {'plain s':>8} {'ratio':>7} {'cpu ratio':>9}"
    print_header(header)
    for name, build in models:
        for steps in lengths:
            r = measure_runs(name, build, steps, args.runs, device)
            print(f"{r['model']:<26} {r['steps']:>6} {r['plain_s']:>8.2f} {r['ratio']:>7.3f} {r['cpu_ratio']:>9.3f}")
    if args.breakdown_runs:
        print(f"\nwhere the extra time goes: medians over {args.breakdown_runs} pairs of plain and watched runs")
        header = f"{'model':<26} {'steps':>6} {'kind of step':<20} {'count':>6} {'extra ms':>9} {'% of plain':>11}"
        print_header(header)
        for name, build in models:
            for steps in lengths:
                r = measure_breakdown(name, build, steps, args.breakdown_runs, device)
                for kind, extra in r["extra_s"].items():
                    share = 100 * extra / r["plain_s"]
                    print(f"{r['model']:<26} {steps:>6} {kind:<20} {r['counts'][kind]:>6} {extra * 1e3:>9.1f} "
                          f"{share:>10.1f}%")  # fmt: skip
                total = sum(r["extra_s"].values())
                print(f"{r['model']:<26} {steps:>6} {'total':<20} {'':>6} {total * 1e3:>9.1f} "
                      f"{100 * total / r['plain_s']:>10.1f}%")  # fmt: skip
    if args.script_runs:
        print(f"\nscript mode: the script's own loop timing ({args.script_runs} pairs each; target: ratio <= 1.05)")
        header = f"{'model':<26} {'steps':>6} {'ratio':>7} {'cpu ratio':>9} {'command s plain / doctor':>26}"
        print_header(header)
        for label, model in (("digits MLP 64-256-256-10", "mlp"), ("digits CNN 16-32 conv", "cnn")):
            for steps in lengths:
                r = measure_script(model, steps, args.script_runs)
                walls = f"{r['plain_wall_s']:.1f} / {r['doctor_wall_s']:.1f}"
                print(f"{label:<26} {steps:>6} {r['ratio']:>7.3f} {r['cpu_ratio']:>9.3f} {walls:>26}")
    print(f"\nfirst {args.steps} steps after attaching ({args.repeats} blocks each; startup in, final check apart)")
    header = f"{'model':<26} {'settings':<14} {'plain us/step':>14} {'watched us/step':>16} {'ratio':>7}"
    header += f" {'cpu ratio':>9} {'finalize ms':>12}"
    print_header(header)
    for name, build in models:
        for settings in ({}, {"layer_every": 1}):
            r = measure(name, build(), settings, args, device)
            print(
                f"{r['model']:<26} {r['settings']:<14} {r['plain_us']:>14.1f} {r['watched_us']:>16.1f} "
                f"{r['ratio']:>7.3f} {r['cpu_ratio']:>9.3f} {r['finalize_ms']:>12.2f}"
            )


if __name__ == "__main__":
    main()
