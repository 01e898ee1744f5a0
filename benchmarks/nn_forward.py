"""Benchmark: deepbasics.nn against torch.nn, forward + backward, measured in the same run.

    python benchmarks/nn_forward.py [--repeats 30] [--device cpu|cuda] [--threads 1] [--quick]

Two comparisons, each the median time of ``--repeats`` forward+backward passes (after warm-up), ours and
torch's interleaved repeat by repeat so that load from other processes hits both alike:

1. ``BatchNorm1d``/``BatchNorm2d`` (training mode, closed-form backward) vs ``torch.nn.BatchNorm1d/2d``.
   Target: ratio ours/torch <= 1.5. Torch's kernel is one fused C++ loop per direction; ours is ~6 fused
   tensor ops per direction plus a Python ``autograd.Function`` call, a fixed overhead of roughly 100 us on
   CPU that dominates small inputs (there the ratio is higher; the table shows where the target holds).
2. An LSTM over T=50 steps: our :class:`~deepbasics.nn.LSTMCell` looped by :func:`~deepbasics.nn.unroll` vs
   ``torch.nn.LSTM`` with the same weights. No target: ``torch.nn.LSTM`` is a single ATen call that computes
   the input projections of all steps in one GEMM and runs each step's gate arithmetic in fused C++ (on CUDA,
   cuDNN fuses the whole recurrence into a few persistent kernels), while ``unroll`` dispatches ~10 ops and
   autograd nodes per step from Python. That cost buys the per-step states and gradients that the FAQ's Q9
   measurements need; use ``torch.nn.LSTM`` for speed.

Timings depend on the machine and its load; the printed table names the device and thread count.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from deepbasics.nn import BatchNorm1d, BatchNorm2d, LSTMCell, unroll

BN_CASES = [  # (label, shape); BN1d for 2-D/3-D shapes, BN2d for 4-D
    ("BatchNorm1d (N, C)", (64, 128)),
    ("BatchNorm1d (N, C)", (512, 256)),
    ("BatchNorm1d (N, C)", (4096, 512)),
    ("BatchNorm1d (N, C, L)", (64, 64, 128)),
    ("BatchNorm2d (N, C, H, W)", (32, 16, 8, 8)),
    ("BatchNorm2d (N, C, H, W)", (64, 32, 16, 16)),
    ("BatchNorm2d (N, C, H, W)", (64, 64, 32, 32)),
]
LSTM_CASE = {"T": 50, "B": 32, "I": 32, "H": 64}
BN_TARGET = 1.5


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_pair(ours: Callable[[], None], theirs: Callable[[], None], repeats: int, device: torch.device) -> tuple:
    """Median seconds of ``ours()`` and ``theirs()``, interleaved (order alternating), after 3 warm-up calls."""
    for _ in range(3):
        ours()
        theirs()
    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    for r in range(repeats):
        order = (("ours", ours), ("theirs", theirs)) if r % 2 == 0 else (("theirs", theirs), ("ours", ours))
        for name, fn in order:
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["ours"]), statistics.median(times["theirs"])


def bench_batchnorm(shape: tuple[int, ...], repeats: int, device: torch.device) -> tuple[float, float]:
    channels = shape[1]
    spatial = len(shape) == 4
    ours_cls, torch_cls = (BatchNorm2d, torch.nn.BatchNorm2d) if spatial else (BatchNorm1d, torch.nn.BatchNorm1d)
    ours, theirs = ours_cls(channels).to(device), torch_cls(channels).to(device)
    x = torch.randn(shape, device=device, requires_grad=True)
    dy = torch.randn(shape, device=device)

    def run(module: torch.nn.Module) -> Callable[[], None]:
        def step() -> None:
            x.grad = None
            module(x).backward(dy)

        return step

    return time_pair(run(ours), run(theirs), repeats, device)


def bench_lstm(repeats: int, device: torch.device) -> tuple[float, float]:
    T, B, I, H = (LSTM_CASE[k] for k in "TBIH")
    cell = LSTMCell(I, H).to(device)
    layer = torch.nn.LSTM(I, H).to(device)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(layer, f"{name}_l0").copy_(getattr(cell, name))
    x = torch.randn(T, B, I, device=device, requires_grad=True)
    out_ours, out_theirs = unroll(cell, x).hidden, layer(x)[0]
    torch.testing.assert_close(out_ours, out_theirs, atol=1e-5, rtol=1e-5)  # same computation

    def ours() -> None:
        unroll(cell, x, retain_grad=False).hidden.sum().backward()

    def theirs() -> None:
        layer(x)[0].sum().backward()

    return time_pair(ours, theirs, repeats, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU (default 1)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and only the smaller cases")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    repeats = 5 if args.quick else args.repeats
    cases = BN_CASES[:3] + BN_CASES[4:6] if args.quick else BN_CASES
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"
    print(f"deepbasics.nn vs torch.nn, forward + backward, median of {repeats} (torch {torch.__version__}, {name})\n")
    header = f"{'case':<28}{'shape':<20}{'ours (ms)':>11}{'torch (ms)':>12}{'ratio':>8}  target"
    print(header)
    print("-" * len(header))
    for label, shape in cases:
        t_ours, t_theirs = bench_batchnorm(shape, repeats, device)
        ratio = t_ours / t_theirs
        verdict = "ok" if ratio <= BN_TARGET else f"> {BN_TARGET}"
        print(f"{label:<28}{shape!s:<20}{t_ours * 1e3:>11.3f}{t_theirs * 1e3:>12.3f}{ratio:>8.2f}  {verdict}")
    t_ours, t_theirs = bench_lstm(max(3, repeats // 3), device)
    shape = "T={T} B={B} I={I} H={H}".format(**LSTM_CASE)
    label = "LSTM: unroll vs nn.LSTM"
    print(f"{label:<28}{shape:<20}{t_ours * 1e3:>11.3f}{t_theirs * 1e3:>12.3f}{t_ours / t_theirs:>8.2f}  none")
    print("\nBatchNorm target: ratio <= 1.5. LSTM: no target (torch.nn.LSTM runs fused kernels; see the docstring).")


if __name__ == "__main__":
    main()
