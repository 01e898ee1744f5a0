"""Overhead of the doctor in a data-parallel run: per-step time watched / plain, 2 processes, same run.

Two ranks (``torch.multiprocessing.spawn``, gloo on CPU, or NCCL with ``--device cuda`` and two GPUs) train the
digits MLP 64-256-256-10 (scikit-learn's bundled 8x8 digits) under ``DistributedDataParallel``, batch 64 per rank,
SGD with momentum. Configurations, each against plain DDP:

- ``watch``: :func:`deepbasics.doctor.watch` on the DDP model with its defaults (loss every step, layer statistics
  every 20 steps, detectors every 100 steps), findings gathered to rank 0 after each block (not timed);
- ``noise hook``: :class:`deepbasics.noise.DDPNoiseScale`'s communication hook measuring every step (a norm of
  each gradient bucket before and after the all-reduce, and every 20 steps one all-reduce of 60 numbers), on a
  second DDP replica of the same model (a DDP model takes one hook, for good);
- ``py hook``: the floor of any Python communication hook, DDP's own ``allreduce_hook`` (what the noise hook
  wraps) in place of the built-in C++ reduction, on a third replica.

Method: blocks of ``--steps`` steps alternate between plain and instrumented, the order swapped every repeat, both
ranks in lock-step (collectives). Reported by rank 0: the median over repeats of the per-pair ratio instrumented /
plain of wall-clock and process CPU time per step, for each rank. Target: ratio <= 1.05.

Run: ``python benchmarks/ddp_overhead.py [--repeats 10] [--steps 60] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import warnings
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _workloads import digits, mlp, time_block  # benchmarks/ is on sys.path when run as a script
from torch import nn
from torch.nn.parallel import DistributedDataParallel

BATCH = 64
CONFIGS = ("watch", "noise hook", "py hook")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ratios(plain: list[tuple[float, float]], other: list[tuple[float, float]]) -> dict[str, float]:
    return {
        "plain_us": statistics.median(p[0] for p in plain) * 1e6,
        "other_us": statistics.median(q[0] for q in other) * 1e6,
        "ratio": statistics.median(q[0] / p[0] for p, q in zip(plain, other, strict=True)),
        "cpu_ratio": statistics.median(q[1] / p[1] for p, q in zip(plain, other, strict=True)),
    }


def worker(rank: int, world: int, port: int, args: argparse.Namespace) -> None:
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    from deepbasics.doctor import watch
    from deepbasics.noise import DDPNoiseScale

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    cuda = args.device == "cuda"
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    x, y = digits(device)  # (N, 64), (N,)
    shard = torch.arange(rank, x.shape[0], world, device=device)  # this rank's examples
    n_batches = shard.numel() // BATCH
    loss_fn = nn.CrossEntropyLoss()

    def make() -> tuple[nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = DistributedDataParallel(mlp().to(device), device_ids=[rank] if cuda else None)
        return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def stepper(model: nn.Module, opt: torch.optim.Optimizer, holder: dict) -> Callable[[int], None]:
        def step(i: int) -> None:
            rows = shard[(i % n_batches) * BATCH : (i % n_batches + 1) * BATCH]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[rows]), y[rows])
            loss.backward()
            opt.step()
            if holder.get("session") is not None:
                holder["session"].step(loss)

        return step

    plain_model, plain_opt = make()
    hooked_model, hooked_opt = make()
    noise = DDPNoiseScale(hooked_model)
    py_model, py_opt = make()
    py_model.register_comm_hook(None, allreduce_hook)
    plain_step = stepper(plain_model, plain_opt, {})
    holder: dict = {}
    watched_step = stepper(plain_model, plain_opt, holder)
    others = {"noise hook": stepper(hooked_model, hooked_opt, {}), "py hook": stepper(py_model, py_opt, {})}
    for step in (plain_step, *others.values()):
        time_block(step, args.steps, sync)  # warm-up (DDP rebuilds its buckets after the first step)

    results = {}
    for name in CONFIGS:
        plain, other = [], []
        for r in range(args.repeats):
            for instrumented_first in (r % 2 == 1, r % 2 == 0):
                if not instrumented_first:
                    plain.append(time_block(plain_step, args.steps, sync))
                elif name == "watch":
                    holder["session"] = watch(plain_model, plain_opt).attach()
                    other.append(time_block(watched_step, args.steps, sync))
                    session, holder["session"] = holder["session"], None
                    session.detach()
                    session.finalize()  # not timed: the end-of-run detectors and the gather to rank 0
                else:
                    other.append(time_block(others[name], args.steps, sync))
        results[name] = ratios(plain, other)
    results["b_simple"] = noise.estimate().b_simple if noise.num_measurements else float("nan")
    gathered: list = [None] * world
    dist.all_gather_object(gathered, results)
    if rank == 0:
        print(f"{world} ranks, device={args.device}, backend={dist.get_backend()}, batch {BATCH}/rank, "
              f"repeats={args.repeats}, steps/block={args.steps} (medians)")  # fmt: skip
        header = f"{'rank':>4} {'config':<11} {'plain us/step':>14} {'with us/step':>13} {'ratio':>7} {'cpu ratio':>9}"
        print(header)
        print("-" * len(header))
        for r, res in enumerate(gathered):
            for name in CONFIGS:
                q = res[name]
                print(f"{r:>4} {name:<11} {q['plain_us']:>14.1f} {q['other_us']:>13.1f} {q['ratio']:>7.3f} "
                      f"{q['cpu_ratio']:>9.3f}")  # fmt: skip
        print(f"B_simple measured by the hook over the run: {gathered[0]['b_simple']:.1f}")
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="interleaved block pairs per configuration")
    parser.add_argument("--steps", type=int, default=60, help="training steps per block")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    world = 2
    if args.device == "cuda" and torch.cuda.device_count() < world:
        raise SystemExit(f"--device cuda needs {world} GPUs, found {torch.cuda.device_count()}")
    mp.spawn(worker, args=(world, free_port(), args), nprocs=world)


if __name__ == "__main__":
    main()
