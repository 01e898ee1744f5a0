"""Benchmark: deepbasics.curvature against PyHessian at equal accuracy (issue 17).

Runs as ``python benchmarks/curvature.py [--seeds 5] [--repeats 3] [--trace-seeds 20] [--models mlp-init,cnn]
[--baseline REV] [--device cpu|cuda] [--threads 1]``, or ``--rules`` for the stopping-rule study below.
Models (float32, the first 512 scikit-learn digits, standardized, cross-entropy): a 3-layer tanh MLP 64-32-32-10
at initialization and after 300 full-batch Adam steps, a small CNN (two 3x3 conv + max-pool blocks) and an LSTM
reading the 8 image rows, both after 200 Adam steps; for the condition number, least squares on the digits (a
positive definite Hessian). ``--baseline REV`` also runs the library as of git revision REV (e.g. ``main``) in the
same process, interleaved: the before/after comparison.

Reference: the dense Hessian of a float64 copy of the model (columns H e_j by batched double backward, written
here independently of the library), its eigenvalues by ``torch.linalg.eigvalsh``, its trace and the Hutchinson
variance 2 (|H|_F^2 - sum_i H_ii^2) of one Rademacher probe.

What "equal accuracy" means, declared before the runs:
- Extreme eigenvalues (deterministic up to the random start vector): relative error <= ACCURACY = 1e-3 against
  the dense reference in *every* seed. Ours is asked for ``tol=ACCURACY``; its stopping rule bounds the error.
  PyHessian's power iteration stops when the relative change of the estimate falls below its ``tol``, which
  does not bound the error, so it is run at tol = 1e-3, 1e-4, ... and compared at the loosest tol whose worst
  error over the seeds meets ACCURACY (``maxIter`` raised to 10000 so that the tol, not the cap, decides).
- Trace (a stochastic estimate): relative error <= ACCURACY in at least CONFIDENCE = 90% of seeds. Ours is asked
  for ``tol=ACCURACY`` at ``confidence`` 0.9, 0.95, 0.99 in turn and compared at the first whose hit rate over
  ``--trace-seeds`` seeds reaches 90%. PyHessian's Hutchinson estimate (Rademacher probes) is a mean of N i.i.d.
  samples of variance sigma^2 (known exactly from the dense H), so by the central limit theorem it meets the
  same target with N_90 = (z_0.95 sigma / (ACCURACY |tr H|))^2 samples; its own stopping rule (relative change of
  the running mean < tol) is not used (``tol=-inf`` makes it draw exactly ``maxIter`` samples; ``tol=0`` does not:
  it stops at once whenever the running mean is negative). Where N_90 is beyond what fits in a benchmark, its time
  is N_90 times its measured time per sample (labelled "projected"); its HVP count is N_90 either way.

Timing: every method runs in this one process, interleaved (seed by seed, in rotating order) and repeated;
times are medians, construction of the gradient graph included for both libraries. HVPs of PyHessian are
counted by wrapping ``pyhessian.hessian.hessian_vector_product``.

Stopping-rule calibration (ours only, printed per model): achieved relative error / tol and the HVPs used against
the *oracle*, the first Lanczos step whose Ritz values are within tol of the dense eigenvalues (same start vector):
what a rule that knew the answer would have paid. ``--rules`` compares the residual rule (|lambda - theta| <= r,
used) with the gap rule (|lambda - theta| <= r^2 / gap, gap estimated from the other Ritz values), the change rule
(the Ritz values moved by less than tol since the last step: the test of power iteration) and the gap rule guarded by
r <= 3 tol, on the dense Hessians of random small networks: how often each stops with an error above tol, and at what
cost.

PyHessian 0.1 (``pip install --no-deps pyhessian``; the ``bench`` extra) works unchanged with torch 2.13 for
``eigenvalues`` and ``trace``; the only accommodation is ``tol=-inf`` above. Without it, the comparison columns
are skipped. On CUDA (``--device cuda``, the default when a GPU is present) both run on the GPU and the timer
synchronizes the device.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import io
import math
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn

from deepbasics import curvature
from deepbasics.curvature.lanczos import lanczos, resolution_floor

try:  # optional: the library we compare with
    pyhessian = importlib.import_module("pyhessian.hessian")  # the module (pyhessian/__init__ re-exports a class)
except ImportError:  # pragma: no cover - depends on the environment
    pyhessian = None

ACCURACY = 1e-3  # relative error both tools must reach (issue 17)
CONFIDENCE = 0.9  # for the trace: the fraction of seeds within ACCURACY
Z_TWO_SIDED = 1.6448536269514722  # standard normal quantile at (1 + CONFIDENCE) / 2 = 0.95
OUR_CONFIDENCES = (0.9, 0.95, 0.99)
PYHESSIAN_TOLS = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7)
PYHESSIAN_MAX_ITER = 10_000
TRACE_TIMING_SAMPLES = 200  # PyHessian trace samples actually timed per run when N_90 is larger
EXAMPLES = 512
LOSS = nn.CrossEntropyLoss()

warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")  # PyHessian's .backward


# --------------------------------------------------------------------------------------------------------------------
# Workloads


class RowLSTM(nn.Module):
    """An LSTM reading an 8x8 digit row by row (8 steps of 8 pixels), classified from its last hidden state."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x.view(-1, 8, 8))  # (B, 8 rows, 8 pixels) -> (B, 8, H)
        return self.head(out[:, -1])  # (B, 10)


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 10))


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),  # (B, 64) -> (B, 1, 8, 8)
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # (B, 8, 4, 4)
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # (B, 16, 2, 2)
        nn.Flatten(),  # (B, 64)
        nn.Linear(64, 10),
    )


WORKLOADS: dict[str, tuple[Callable[[], nn.Module], int]] = {  # name -> (architecture, Adam steps)
    "mlp-init": (_mlp, 0),
    "mlp-trained": (_mlp, 300),
    "cnn": (_cnn, 200),
    "lstm": (RowLSTM, 200),
}


def digits(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The first EXAMPLES digits, pixels standardized (N, 64), and their labels (N,)."""
    data = load_digits()
    x = torch.tensor(data.data[:EXAMPLES], dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-6)  # (N, 64)
    return x.to(device), torch.tensor(data.target[:EXAMPLES]).to(device)


def workload(name: str, device: torch.device) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The model (float32, on ``device``) trained for its Adam steps, and the batch."""
    x, y = digits(torch.device("cpu"))
    architecture, steps = WORKLOADS[name]
    torch.manual_seed(0)
    model = architecture()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        LOSS(model(x), y).backward()
        optimizer.step()
    model.zero_grad(set_to_none=True)
    return model.to(device), x.to(device), y.to(device)


# --------------------------------------------------------------------------------------------------------------------
# Dense float64 reference and the library before the change


@dataclass(frozen=True)
class Reference:
    eigenvalues: torch.Tensor  # ascending, float64, CPU
    trace: float
    hutchinson_variance: float  # of one Rademacher sample g^T H g: 2 (|H|_F^2 - sum_i H_ii^2)


def dense_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss=LOSS, chunk: int = 64) -> torch.Tensor:
    """The (P, P) Hessian of a float64 copy of ``model``, column block by column block (batched double backward)."""
    model = copy.deepcopy(model).double().eval()
    params = [p for p in model.parameters() if p.requires_grad]
    sizes = [p.numel() for p in params]
    dim = sum(sizes)
    grads = torch.autograd.grad(loss(model(x.double()), y), params, create_graph=True)
    eye = torch.eye(dim, dtype=torch.float64, device=x.device)
    columns = []
    for block in eye.split(chunk):  # (c, P) unit vectors
        parts = [b.reshape(len(block), *p.shape) for b, p in zip(block.split(sizes, dim=1), params, strict=True)]
        try:
            hv = torch.autograd.grad(grads, params, parts, retain_graph=True, is_grads_batched=True)
            columns.append(torch.cat([h.reshape(len(block), -1) for h in hv], 1))  # (c, P)
        except RuntimeError:  # no batching rule for some op: one column at a time
            for e in block:
                hv = torch.autograd.grad(grads, params, list(e.split(sizes)), retain_graph=True)
                columns.append(torch.cat([h.reshape(1, -1) for h in hv], 1))
    h = torch.cat(columns).cpu()
    return (h + h.T) / 2  # (P, P), symmetric up to rounding before this


def dense_reference(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss=LOSS) -> Reference:
    h = dense_hessian(model, x, y, loss)
    diagonal = h.diagonal()
    return Reference(
        eigenvalues=torch.linalg.eigvalsh(h),
        trace=float(diagonal.sum()),
        hutchinson_variance=2 * (float((h * h).sum()) - float((diagonal * diagonal).sum())),
    )


def load_baseline(revision: str):
    """``deepbasics.curvature`` as of a git revision, imported next to the current one as deepbasics_baseline."""
    repository = Path(__file__).resolve().parents[1]
    archive = subprocess.run(
        ["git", "-C", str(repository), "archive", revision, "src/deepbasics"], capture_output=True, check=True
    ).stdout
    root = Path(tempfile.mkdtemp(prefix="deepbasics-baseline-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    (root / "src" / "deepbasics").rename(root / "deepbasics_baseline")  # its imports are relative: it runs as is
    sys.path.insert(0, str(root))
    return importlib.import_module("deepbasics_baseline.curvature")


# --------------------------------------------------------------------------------------------------------------------
# The methods: each returns (value, HVPs)


def ours_top(library, model, x, y, seed: int) -> tuple[float, int]:
    g = torch.Generator().manual_seed(seed)
    result = library.hessian_eigen(model, LOSS, x, y, k=1, which="largest", tol=ACCURACY, generator=g)
    return float(result.eigenvalues[0]), result.num_hvps


def ours_trace(model, x, y, seed: int, confidence: float) -> tuple[float, int]:
    g = torch.Generator().manual_seed(seed)
    estimate = curvature.hessian_trace_estimate(model, LOSS, x, y, tol=ACCURACY, confidence=confidence, generator=g)
    return estimate.value, estimate.num_hvps


def baseline_trace(library, model, x, y, seed: int) -> tuple[float, int]:
    """The library before issue 17: Hutch++ with a fixed budget of 90 products and no accuracy target."""
    estimate = library.hessian_trace_estimate(model, LOSS, x, y, generator=torch.Generator().manual_seed(seed))
    return estimate.value, estimate.num_hvps


def _counting_pyhessian(call: Callable[[], float]) -> tuple[float, int]:
    counter = {"hvps": 0}
    original = pyhessian.hessian_vector_product

    def counting(*args, **kwargs):
        counter["hvps"] += 1
        return original(*args, **kwargs)

    pyhessian.hessian_vector_product = counting
    try:
        value = call()
    finally:
        pyhessian.hessian_vector_product = original
    return value, counter["hvps"]


def pyhessian_top(model, x, y, seed: int, tol: float) -> tuple[float, int]:
    def call() -> float:
        torch.manual_seed(seed)  # PyHessian draws its start vector from the global RNG
        h = pyhessian.hessian(model, LOSS, data=(x, y), cuda=x.device.type == "cuda")
        values, _ = h.eigenvalues(maxIter=PYHESSIAN_MAX_ITER, tol=tol)
        return values[0]

    try:
        return _counting_pyhessian(call)
    finally:
        model.zero_grad(set_to_none=True)  # PyHessian leaves a graph-holding .grad behind


def pyhessian_trace(model, x, y, seed: int, samples: int) -> tuple[float, int]:
    def call() -> float:
        torch.manual_seed(seed)
        h = pyhessian.hessian(model, LOSS, data=(x, y), cuda=x.device.type == "cuda")
        vhv = h.trace(maxIter=samples, tol=-math.inf)  # exactly `samples` Rademacher samples
        return sum(vhv) / len(vhv)

    try:
        return _counting_pyhessian(call)
    finally:
        model.zero_grad(set_to_none=True)


# --------------------------------------------------------------------------------------------------------------------
# Interleaved timing


@dataclass(eq=False)  # identity semantics: runs are collected in dicts
class Runs:
    """One method over seeds and repeats: HVPs, wall times and relative errors against the reference."""

    label: str
    run: Callable[[int], tuple[float, int]]
    exact: float
    hvps: dict[int, int] = field(default_factory=dict)
    errors: dict[int, float] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)

    def once(self, seed: int, sync: Callable[[], None], timed: bool = True) -> None:
        sync()
        start = time.perf_counter()
        value, hvps = self.run(seed)
        sync()
        if timed:
            self.seconds.append(time.perf_counter() - start)
        self.hvps[seed] = hvps
        self.errors[seed] = abs(value - self.exact) / abs(self.exact)

    @property
    def time(self) -> float:
        return statistics.median(self.seconds) if self.seconds else math.nan

    @property
    def mean_hvps(self) -> float:
        return statistics.mean(self.hvps.values())

    def max_error(self) -> float:
        return max(self.errors.values())

    def hit_rate(self) -> float:
        return sum(e <= ACCURACY for e in self.errors.values()) / len(self.errors)

    def row(self, note: str = "", hvps: float | None = None, seconds: float | None = None) -> str:
        hvps = self.mean_hvps if hvps is None else hvps
        seconds = self.time if seconds is None else seconds
        return f"  {self.label:<56} {self.max_error():>9.1e} {hvps:>9.1f} {1e3 * seconds:>11.1f}  {note}"


def interleave(methods: list[Runs], seeds: int, repeats: int, sync: Callable[[], None]) -> None:
    """Run every method on every seed ``repeats`` times, rotating the order so no method always goes first."""
    for repeat in range(repeats):
        for seed in range(seeds):
            shift = (repeat * seeds + seed) % len(methods)
            for runs in methods[shift:] + methods[:shift]:
                runs.once(seed, sync)


# --------------------------------------------------------------------------------------------------------------------
# One model


def compare(name: str, device: torch.device, args: argparse.Namespace, baseline) -> dict[str, float]:
    model, x, y = workload(name, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    ref = dense_reference(model, x, y)
    lam_max = float(ref.eigenvalues[-1])
    print(
        f"== {name}: P = {sum(p.numel() for p in model.parameters())}, {len(x)} examples, float32 on {device}; dense "
        f"float64 reference ({time.perf_counter() - start:.0f} s): lambda_max {lam_max:.6g}, lambda_min "
        f"{float(ref.eigenvalues[0]):.6g}, trace {ref.trace:.6g}"
    )
    header = f"  {'method':<56} {'max err':>9} {'HVPs':>9} {'time [ms]':>11}"
    print(header + "\n  " + "-" * (len(header) - 2))
    ours_top(curvature, model, x, y, 0)  # warm-up: first autograd calls allocate

    # Top eigenvalue: PyHessian's loosest tol meeting ACCURACY in every seed, then everything timed interleaved.
    top = Runs("top eigenvalue: deepbasics Lanczos, tol 1e-3", lambda s: ours_top(curvature, model, x, y, s), lam_max)
    timed = [top]
    if baseline is not None:
        label = f"top eigenvalue: deepbasics before ({args.baseline}), tol 1e-3"
        timed.append(Runs(label, lambda s: ours_top(baseline, model, x, y, s), lam_max))
    powers: list[Runs] = []
    for tol in PYHESSIAN_TOLS if pyhessian is not None else ():
        power = Runs(f"top eigenvalue: PyHessian power, tol {tol:g}", None, lam_max)
        power.run = lambda s, tol=tol: pyhessian_top(model, x, y, s, tol)
        for seed in range(args.seeds):
            power.once(seed, sync, timed=False)  # the interleaved runs below are the timed ones
        powers.append(power)
        if power.max_error() <= ACCURACY:
            break
    matched = powers[-1] if powers and powers[-1].max_error() <= ACCURACY else None
    timed += list(dict.fromkeys(p for p in [*powers[:1], matched] if p is not None))
    interleave(timed, args.seeds, args.repeats, sync)
    for runs in dict.fromkeys(timed + powers):
        print(runs.row("" if runs.seconds else "(untimed)"))
    out: dict[str, float] = {"top_hvps": top.mean_hvps, "top_error": top.max_error()}
    if matched is not None:
        out["top_time_ratio"] = top.time / matched.time
        out["top_hvp_ratio"] = top.mean_hvps / matched.mean_hvps
        out["pyhessian_tol"] = float(matched.label.rsplit(" ", 1)[-1])
    if baseline is not None:
        out["before_time_ratio"] = timed[1].time / matched.time if matched is not None else math.nan
        out["before_hvps"] = timed[1].mean_hvps
        out["after_over_before"] = top.time / timed[1].time

    # Trace: our first confidence level whose hit rate reaches CONFIDENCE; PyHessian's N_90 from the exact variance.
    sigma = math.sqrt(ref.hutchinson_variance)
    needed = max(2, math.ceil((Z_TWO_SIDED * sigma / (ACCURACY * abs(ref.trace))) ** 2))
    for confidence in OUR_CONFIDENCES:
        trace = Runs(
            f"trace: deepbasics adaptive, tol 1e-3, confidence {confidence:g}",
            lambda s, c=confidence: ours_trace(model, x, y, s, c),
            ref.trace,
        )
        for seed in range(args.trace_seeds):
            trace.once(seed, sync, timed=False)
        if trace.hit_rate() >= CONFIDENCE:
            break
    methods = [trace]
    if baseline is not None:
        label = f"trace: deepbasics before ({args.baseline}), Hutch++ 90 HVPs"
        before = Runs(label, lambda s: baseline_trace(baseline, model, x, y, s), ref.trace)
        for seed in range(args.trace_seeds):
            before.once(seed, sync, timed=False)
        methods.append(before)
    samples = min(needed, TRACE_TIMING_SAMPLES)
    hutchinson = None
    if pyhessian is not None:
        label = "trace: PyHessian Hutchinson (accuracy by the CLT)"
        hutchinson = Runs(label, lambda s: pyhessian_trace(model, x, y, s, samples), ref.trace)
        methods.append(hutchinson)
    interleave(methods, min(args.seeds, 3), args.repeats, sync)  # timed; hit rates come from all trace seeds
    for runs in methods:
        if runs is hutchinson:
            projected = hutchinson.time * needed / samples
            note = f"N_90 = {needed} samples" + (f", time projected from {samples}" if needed > samples else "")
            print(
                hutchinson.row(note, hvps=needed, seconds=projected).replace(f"{hutchinson.max_error():>9.1e}", " " * 9)
            )
        else:
            print(runs.row(f"within 1e-3: {runs.hit_rate():.0%} of {len(runs.errors)} seeds"))
    out.update(trace_hvps=trace.mean_hvps, trace_hit_rate=trace.hit_rate(), trace_confidence=trace_confidence(trace))
    if hutchinson is not None:
        out["trace_time_ratio"] = trace.time / (hutchinson.time * needed / samples)
        out["trace_hvp_ratio"] = trace.mean_hvps / needed

    ratios = []
    if "top_time_ratio" in out:
        ratios.append(
            f"top eigenvalue time {out['top_time_ratio']:.2f} (HVPs {out['top_hvp_ratio']:.2f}) vs PyHessian at "
            f"tol {out['pyhessian_tol']:g}"
        )
    if "trace_time_ratio" in out:
        ratios.append(f"trace time {out['trace_time_ratio']:.2g} (HVPs {out['trace_hvp_ratio']:.2g})")
    if ratios:
        print("  ours / PyHessian at equal accuracy: " + "; ".join(ratios) + "  (target <= 0.5)")
    calibration(model, x, y, ref, args.seeds)
    print()
    return out


def trace_confidence(runs: Runs) -> float:
    return float(runs.label.rsplit(" ", 1)[-1])


def calibration(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ref: Reference, seeds: int) -> None:
    """Our stopping rule against the dense spectrum: achieved error / allowed for the k-th eigenvalue and for the
    nearest one (what the residual certifies), and the HVPs used against the oracle's."""
    exact = ref.eigenvalues
    floor = resolution_floor(torch.float32) * float(exact.abs().max())
    print(
        "  stopping rule, worst over seeds of error / allowed (allowed = max(tol |lambda|, eps^(2/3) |H|)) for the "
        "k-th eigenvalue, for the nearest one (certified: <= 1), and HVPs used / the oracle's (sums over seeds):"
    )
    for which in ("largest", "smallest", "both"):
        for k in (1, 3):
            picked = {"largest": exact[-k:], "smallest": exact[:k], "both": torch.cat([exact[:k], exact[-k:]])}
            truth = picked[which].flip(0)
            cells = []
            for tol in (1e-2, 1e-3, 1e-4):
                allowed = torch.clamp(tol * truth.abs(), min=floor)
                kth, nearest, used, oracle = 0.0, 0.0, 0, 0
                for seed in range(seeds):
                    g = torch.Generator().manual_seed(seed)
                    result = curvature.hessian_eigen(model, LOSS, x, y, k=k, which=which, tol=tol, generator=g)
                    values = result.eigenvalues.double().cpu()
                    kth = max(kth, float(((values - truth).abs() / allowed).max()))
                    distance = (values[:, None] - exact[None, :]).abs().min(1).values
                    nearest = max(nearest, float((distance / torch.clamp(tol * values.abs(), min=floor)).max()))
                    used += result.num_hvps
                    oracle += oracle_steps(model, x, y, seed, which, k, truth, allowed, result.num_hvps)
                cells.append(f"tol {tol:g}: {kth:6.2g} {nearest:6.2g} {used:>4}/{oracle:<4}")
            print(f"    {which:<8} k={k}  " + " | ".join(cells))


def oracle_steps(model, x, y, seed, which, k, truth, allowed, limit) -> int:
    """The first Lanczos step (same start vector as hessian_eigen) whose Ritz values are within ``allowed``."""
    found = []

    def record(d) -> bool:
        theta = d.ritz()[0]
        if theta.numel() >= truth.numel():
            picked = {"largest": theta[-k:], "smallest": theta[:k], "both": torch.cat([theta[:k], theta[-k:]])}
            if bool(((picked[which].flip(0) - truth).abs() <= allowed).all()):
                found.append(d.num_steps)
                return True
        return False

    with curvature.hessian_operator(model, LOSS, x, y) as operator:
        g = torch.Generator().manual_seed(seed)
        start = torch.randn(operator.dim, generator=g, dtype=operator.dtype).to(operator.device)
        lanczos(operator.matvec, start, limit, stop=record)
    return found[0] if found else limit


def condition(device: torch.device, seeds: int) -> None:
    """condition_number(tol) on least squares over the digits (a positive definite Hessian) against the dense one."""
    x, y = digits(device)
    raw = torch.tensor(load_digits().data[:EXAMPLES])
    x = x[:, (raw.std(0) > 0.5).to(device)]  # the 50 pixels that vary: [X 1]^T [X 1] is invertible (kappa ~ 170)
    targets = y.float()[:, None]  # regress the digit's value
    torch.manual_seed(0)
    model = nn.Linear(x.shape[1], 1).to(device)
    exact = dense_reference(model, x, targets, loss=nn.MSELoss()).eigenvalues
    kappa = float(exact[-1] / exact[0])
    print(f"== condition number, least squares on the digits: P = {exact.numel()}, dense kappa {kappa:.6g}")
    for tol in (1e-2, 1e-3, 1e-4):
        errors, hvps = [], []
        for seed in range(seeds):
            g = torch.Generator().manual_seed(seed)
            report = curvature.curvature_report(model, nn.MSELoss(), x, targets, tol=tol / (2 + tol), generator=g)
            value = curvature.condition_number(model, nn.MSELoss(), x, targets, tol=tol, generator=g.manual_seed(seed))
            errors.append(abs(value - kappa) / kappa)
            hvps.append(report.num_hvps)
        worst, mean_hvps = max(errors), statistics.mean(hvps)
        print(f"  tol {tol:g}: worst relative error {worst:.2g} ({worst / tol:.2g} x tol), {mean_hvps:.0f} HVPs")
    print()


# --------------------------------------------------------------------------------------------------------------------
# --rules: the residual rule against the gap rule on random small networks


def random_network(seed: int) -> tuple[nn.Module, Callable, torch.Tensor, torch.Tensor]:
    """A small float64 network and batch; even seeds regress c outputs (near-copies of eigenvalues), odd classify."""
    g = torch.Generator().manual_seed(seed)
    d_in, hidden, classes = (int(torch.randint(lo, hi, (1,), generator=g)) for lo, hi in ((2, 8), (3, 12), (2, 5)))
    torch.manual_seed(seed)
    act = [nn.Tanh(), nn.ReLU(), nn.Sigmoid(), nn.GELU()][seed % 4]
    model = nn.Sequential(nn.Linear(d_in, hidden), act, nn.Linear(hidden, classes)).double()
    n = int(torch.randint(10, 60, (1,), generator=g))
    x = torch.randn(n, d_in, generator=g, dtype=torch.float64) * float(0.3 + 3 * torch.rand(1, generator=g))
    if seed % 2:
        return model, nn.CrossEntropyLoss(), x, torch.randint(0, classes, (n,), generator=g)
    return model, nn.MSELoss(), x, torch.randn(n, classes, generator=g, dtype=torch.float64)


def gap_bounds(theta: torch.Tensor, residuals: torch.Tensor) -> torch.Tensor:
    """min(r_i, r_i^2 / delta_i), delta_i = min_j!=i |theta_i - theta_j| - r_j (r_i where delta_i <= 0)."""
    delta = (theta[:, None] - theta[None, :]).abs() - residuals[None, :]
    delta.fill_diagonal_(math.inf)
    delta = delta.min(1).values
    sharper = torch.minimum(residuals, residuals**2 / delta.clamp_min(1e-300))
    return torch.where(delta > 0, sharper, residuals)


#: The rules compared by ``--rules``: the residual bound (used), the gap bound (Kato-Temple with the gap estimated from
#: the other Ritz values), the change of the wanted Ritz values since the previous step (what power iteration's
#: tolerance, PyHessian's included, tests), the gap bound guarded by a residual of at most 3 tol, and the oracle.
RULES = ("residual", "gap", "change", "gap, residual <= 3 tol", "oracle")


def stopping_steps(h: torch.Tensor, exact: torch.Tensor, which: str, k: int, start_seed: int) -> dict:
    """{rule: (steps, whether the wanted values were then within tol)} for each of :data:`RULES`, from one Lanczos
    run on the dense ``h``."""
    truth = exact[-k:] if which == "largest" else exact[:k]
    floor = resolution_floor(torch.float64) * float(exact.abs().max())
    decided: dict[str, tuple[int, bool]] = {}
    previous: list[torch.Tensor] = []

    def decide(d) -> bool:
        theta, _, residuals = d.ritz()
        m = theta.numel()
        if m <= k:
            return False
        idx = list(range(m - k, m)) if which == "largest" else list(range(k))
        allowed = torch.clamp(ACCURACY / (1 + ACCURACY) * theta[idx].abs(), min=floor)
        error = (theta[idx] - truth).abs()
        correct = bool((error <= torch.clamp(ACCURACY * truth.abs(), min=floor)).all())
        gap = gap_bounds(theta, residuals)[idx]
        change = (theta[idx] - previous[-1]).abs() if previous else torch.full_like(allowed, math.inf)
        guarded = torch.where(residuals[idx] <= 3 * allowed, gap, torch.full_like(gap, math.inf))
        previous.append(theta[idx].clone())
        bounds = {"residual": residuals[idx], "gap": gap, "change": change, "gap, residual <= 3 tol": guarded}
        for rule, bound in bounds.items():
            if rule not in decided and bool((bound <= allowed).all()):
                decided[rule] = (m, correct)
        if "oracle" not in decided and correct:
            decided["oracle"] = (m, True)
        return len(decided) == len(RULES)

    start = torch.randn(h.shape[0], generator=torch.Generator().manual_seed(start_seed), dtype=torch.float64)
    last = lanczos(lambda v: h @ v, start, h.shape[0], stop=decide)
    return {rule: decided.get(rule, (last.num_steps, True)) for rule in RULES}


def rules(networks: int, starts: int) -> None:
    """How often each stopping rule stops with an error above tol (tol = ACCURACY), and after how many steps."""
    tally: dict[tuple[str, int, str], list[int]] = {}  # (which, k, rule) -> [failures, cases, steps]
    for seed in range(networks):
        model, loss, x, y = random_network(seed)
        h = dense_hessian(model, x, y, loss)
        exact = torch.linalg.eigvalsh(h)
        for which in ("largest", "smallest"):
            for k in (1, 3):
                for start_seed in range(starts):
                    for rule, (steps, correct) in stopping_steps(h, exact, which, k, start_seed).items():
                        entry = tally.setdefault((which, k, rule), [0, 0, 0])
                        entry[0] += not correct
                        entry[1] += 1
                        entry[2] += steps
    print(f"stopping rules on {networks} random small networks x {starts} start vectors, tol {ACCURACY:g} (float64):")
    for (which, k, rule), (failures, cases, steps) in sorted(tally.items()):
        share = f"{failures:>3}/{cases} ({failures / cases:.0%})"
        print(f"  {which:<8} k={k} {rule:<22} error above tol in {share}, mean steps {steps / cases:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="start vectors per eigenvalue method (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per seed (default 3)")
    parser.add_argument("--trace-seeds", type=int, default=20, help="seeds for the trace's hit rate (default 20)")
    parser.add_argument("--models", default=",".join(WORKLOADS), help=f"comma-separated subset of {list(WORKLOADS)}")
    parser.add_argument("--baseline", default=None, help="also run the library at this git revision (e.g. main)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on the CPU (default 1)")
    parser.add_argument("--rules", action="store_true", help="only the stopping-rule study on random small networks")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.rules:
        rules(networks=40, starts=5)
        return
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = sorted(set(names) - set(WORKLOADS))
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {list(WORKLOADS)}")
    device = torch.device(args.device)
    baseline = load_baseline(args.baseline) if args.baseline else None
    label = "PyHessian 0.1" if pyhessian is not None else "PyHessian not installed: our columns only"
    print(f"accuracy {ACCURACY:g} (trace: in {CONFIDENCE:.0%} of seeds); {args.threads} thread(s); {label}\n")
    summary = {name: compare(name, device, args, baseline) for name in names}
    condition(device, args.seeds)
    print("summary (ours / PyHessian at equal accuracy; target <= 0.5):")
    for name, out in summary.items():
        out = {"top_time_ratio": math.nan, "pyhessian_tol": math.nan, "trace_time_ratio": math.nan, **out}
        get = out.__getitem__
        line = (
            f"  {name:<12} top eigenvalue: time {get('top_time_ratio'):.2f}, HVPs {out['top_hvps']:.1f} (PyHessian "
            f"tol {get('pyhessian_tol'):g}) | trace: time {get('trace_time_ratio'):.2g}, HVPs {out['trace_hvps']:.0f}, "
            f"within tol {out['trace_hit_rate']:.0%} at confidence {out['trace_confidence']:g}"
        )
        if "before_hvps" in out:
            line += (
                f" | before: top time ratio {out['before_time_ratio']:.2f}, HVPs {out['before_hvps']:.1f}; "
                f"after/before time {out['after_over_before']:.2f}"
            )
        print(line)


if __name__ == "__main__":
    main()
