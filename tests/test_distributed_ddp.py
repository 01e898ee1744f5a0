"""The doctor and the gradient noise scale in real data-parallel runs: 2 processes on localhost, gloo on CPU.

One ``torch.multiprocessing.spawn`` of two ranks runs every scenario in turn (a process start costs more than the
scenarios) and writes what each rank saw to JSON; the tests read it. A second test launches
``python -m torch.distributed.run --nproc_per_node 2 -m deepbasics doctor SCRIPT.py``. No GPU here: NCCL runs
the same code (nothing in the doctor's distributed path touches a device).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import subprocess
import sys
import textwrap
import time
import traceback
import warnings
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

WORLD = 2
DEADLINE = 240.0  # seconds for all scenarios; they take ~15 s on a loaded 2-core machine
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------------ the ranks' work


def shard(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's part of a learnable synthetic problem: 10 classes given by a random linear teacher."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1200, 64, generator=gen)  # (N, 64)
    y = (x @ torch.randn(64, 10, generator=gen)).argmax(1)  # (N,)
    return x[rank::WORLD], y[rank::WORLD]  # DistributedSampler's split: every WORLD-th example


def mlp() -> nn.Module:
    torch.manual_seed(0)  # the same start on every rank (DDP also broadcasts rank 0's weights)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def train_ddp(rank: int, steps: int, *, watched: bool, nan_at: int | None = None) -> tuple[nn.Module, object]:
    """Adam on an MLP under DDP, batch 32 per rank; rank 1's input gets a nan at step ``nan_at``."""
    from deepbasics.doctor import watch

    x, y = shard(rank)
    ddp = DistributedDataParallel(mlp())
    opt = torch.optim.Adam(ddp.parameters(), lr=3e-3)
    session = watch(ddp, opt).attach() if watched else None
    for step in range(steps):
        rows = torch.arange(step * 32, (step + 1) * 32) % x.shape[0]
        xb = x[rows].clone()
        if rank == 1 and step == nan_at:
            xb[0, 0] = math.nan
        opt.zero_grad()
        loss = nn.functional.cross_entropy(ddp(xb), y[rows])
        loss.backward()
        opt.step()
        if session is not None:
            session.step(loss)
    if session is not None:
        session.detach()
        session.finalize()
    return ddp.module, session


def scenario_healthy(rank: int) -> dict:
    plain, _ = train_ddp(rank, 60, watched=False)
    model, session = train_ddp(rank, 60, watched=True)
    same = all(torch.equal(p, q) for p, q in zip(plain.parameters(), model.parameters(), strict=True))
    return {
        "findings": [f.to_dict() for f in session.findings],
        "layers": session.stats.layer_order,
        "bit_identical": same,
        "distributed": session.to_dict().get("distributed"),
        "report": session.report(),
    }


def scenario_fault(rank: int) -> dict:
    _, session = train_ddp(rank, 30, watched=True, nan_at=5)
    return {"findings": [f.to_dict() for f in session.findings]}


def scenario_noise(rank: int) -> dict:
    """Least squares at a point where every residual is c: per-example gradient 2 c x_n, so B_simple has a closed
    form. The parameters stay fixed (no optimizer step): the DDP estimate and the single-process two-batch-size
    estimate measure the same quantity."""
    from deepbasics.doctor import watch
    from deepbasics.noise import gradient_noise_scale

    gen = torch.Generator().manual_seed(0)
    n, d, c, b_local, steps = 2000, 1000, 0.5, 8, 100
    x = torch.randn(n, d, generator=gen, dtype=torch.float64) + 0.25  # B_simple ~ 16
    model = nn.Linear(d, 1, bias=False).double()
    nn.init.normal_(model.weight, generator=gen)
    y = (x @ model.weight.detach()[0] - c)[:, None]  # (N, 1)
    per_example = 2 * c * x
    mean = per_example.mean(0)
    exact = float(((per_example - mean) ** 2).sum(1).mean() / (mean @ mean))
    ddp = DistributedDataParallel(model)
    draws = torch.Generator().manual_seed(100 + rank)  # each rank draws its own examples, with replacement
    with watch(ddp, noise_scale=True) as session:
        for _ in range(steps):
            rows = torch.randint(0, n, (b_local,), generator=draws)
            ddp.zero_grad()
            loss = nn.functional.mse_loss(ddp(x[rows]), y[rows])
            loss.backward()
            session.step(loss)
    out = {"ddp": session.noise_result, "exact": exact}
    if rank == 0:
        mse = nn.MSELoss()
        ref = gradient_noise_scale(model, mse, (x, y), b_local, WORLD * b_local, num_batches=steps, generator=gen)
        out["single"] = {"b_simple": ref.b_simple, "stderr": ref.stderr}
    return out


def scenario_noise_paths(rank: int) -> dict:
    """DDPNoiseScale's bookkeeping: ``every``, gradient accumulation under ``no_sync``, unequal batches, a custom
    communication hook."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    from deepbasics.noise import DDPNoiseScale

    def run(steps: int, batch: int, micro: int = 1, **kwargs) -> DDPNoiseScale:
        torch.manual_seed(0)
        ddp = DistributedDataParallel(nn.Linear(6, 2))
        tracker = DDPNoiseScale(ddp, **kwargs)
        gen = torch.Generator().manual_seed(rank)
        for _ in range(steps):
            ddp.zero_grad()
            for m in range(micro):  # the gradient is all-reduced after the last micro-batch only
                with ddp.no_sync() if m < micro - 1 else contextlib.nullcontext():
                    ddp(torch.randn(batch, 6, generator=gen)).pow(2).mean().backward()
        return tracker

    def summary(tracker: DDPNoiseScale) -> dict:
        out = {"syncs": tracker.syncs, "measurements": tracker.num_measurements, "pending": tracker.num_pending}
        try:
            scale = tracker.estimate()
            out.update(b_small=scale.b_small, b_big=scale.b_big, b_simple=scale.b_simple)
        except ValueError as error:
            out["error"] = str(error)
        return out | {"skipped": dict(tracker.skipped)}

    calls = []

    def counting_hook(state, bucket):
        calls.append(bucket.index())
        return allreduce_hook(state, bucket)

    return {
        "every": summary(run(23, 4, every=2, exchange_every=5)),
        "accumulated": summary(run(8, 3, micro=2, exchange_every=4)),
        "unequal": summary(run(8, 4 + 2 * rank, exchange_every=4, hook=counting_hook)) | {"calls": len(calls)},
    }


def scenario_alone(rank: int) -> dict:
    """No DDP, no collectives: rank 1's own model turns nan and its script raises inside ``watch``."""
    from deepbasics.doctor import watch

    torch.manual_seed(rank)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    raised = None
    try:
        with watch(model, opt) as session:
            for step in range(20):
                xb = torch.randn(16, 4)
                if rank == 1 and step == 3:
                    xb[0] = math.inf
                loss = ((model(xb) - xb[:, :1]) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                session.step(loss)
                if rank == 1 and step == 6:
                    raise RuntimeError("rank 1 gives up")
    except RuntimeError as error:
        raised = str(error)
    return {"findings": [f.to_dict() for f in session.findings], "raised": raised}


def scenario_runner(rank: int, tmp: Path) -> dict:
    """``run_script`` on each rank (the in-process runner of ``deepbasics doctor``): rank 1's data turns nan. Every
    rank must stop at its first non-finite loss *after* the all-reduce that spreads it, so that nobody waits."""
    from deepbasics.doctor.script import run_script

    script = tmp / "ddp_train.py"
    if rank == 0:
        script.write_text(DDP_SCRIPT)
    dist.barrier()
    started = time.perf_counter()
    result = run_script(script)
    return {
        "status": result.status,
        "seconds": time.perf_counter() - started,
        "findings": [f.to_dict() for f in result.findings],
        "json": result.to_dict().get("distributed"),
    }


def scenario_missing(rank: int) -> dict:
    """Rank 1 never reports (a session that is not finalized): rank 0 must give up after the timeout."""
    from deepbasics.doctor import watch

    os.environ["DEEPBASICS_DOCTOR_TIMEOUT"] = "1"
    model = nn.Linear(3, 1)
    session = watch(model).attach()
    for _ in range(3):
        loss = model(torch.randn(4, 3)).pow(2).mean()
        loss.backward()
        session.step(loss)
    session.detach()
    if rank == 1:
        return {}
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session.finalize()
    return {
        "seconds": time.perf_counter() - started,
        "warnings": [str(w.message) for w in caught],
        "notes": session.notes,
    }


def scenario_collective(rank: int) -> dict:
    from deepbasics.doctor.distributed import _gather_collective, rank_info

    return {"gathered": _gather_collective({"from": rank}, rank_info())}


def worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), DEEPBASICS_DOCTOR_TIMEOUT="60")
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=90))
    scenarios = {
        "healthy": lambda: scenario_healthy(rank),
        "fault": lambda: scenario_fault(rank),
        "noise": lambda: scenario_noise(rank),
        "noise_paths": lambda: scenario_noise_paths(rank),
        "alone": lambda: scenario_alone(rank),
        "runner": lambda: scenario_runner(rank, Path(out)),
        "collective": lambda: scenario_collective(rank),
        "missing": lambda: scenario_missing(rank),  # last: rank 1 skips a gather
    }
    results: dict = {"seconds": {}}
    try:
        for name, run in scenarios.items():
            started = time.perf_counter()
            results[name] = run()
            results["seconds"][name] = round(time.perf_counter() - started, 2)
    except BaseException:
        results["error"] = traceback.format_exc()
    Path(out, f"rank{rank}.json").write_text(json.dumps(results, default=str))
    dist.destroy_process_group()


DDP_SCRIPT = textwrap.dedent(
    """
    import os

    import torch
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = DistributedDataParallel(nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1)))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    data = torch.Generator().manual_seed(rank)
    for step in range(20):
        x = torch.randn(16, 8, generator=data)
        if rank == 1 and step == 7:
            x[0, 0] = float("nan")
        loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    if "DEEPBASICS_DESTROY" in os.environ:  # as scripts do; the doctor reports after it
        dist.destroy_process_group()
    """
)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Every rank's results. A rank still running after ``DEADLINE`` s is a deadlock: it is killed and the tests
    fail. Exit codes are not checked once a rank has written its results: gloo's teardown in this torch build
    occasionally aborts a process at exit ("terminate called without an active exception"), also in plain DDP
    runs without any deepbasics code."""
    out = tmp_path_factory.mktemp("ddp")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    context = mp.get_context("spawn")
    port = free_port()
    procs = [context.Process(target=worker, args=(r, port, str(out))) for r in range(WORLD)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + DEADLINE
    for p in procs:
        p.join(max(deadline - time.monotonic(), 1.0))
    hung = [r for r, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
    assert not hung, f"ranks {hung} still running after {DEADLINE} s: a deadlock"
    files = [Path(out, f"rank{r}.json") for r in range(WORLD)]
    missing = [(r, procs[r].exitcode) for r, f in enumerate(files) if not f.exists()]
    assert not missing, f"(rank, exit code) without results: {missing}"
    results = [json.loads(f.read_text()) for f in files]
    for r, res in enumerate(results):
        assert "error" not in res, f"rank {r} failed:\n{res['error']}"
    return results


def by_code(findings: list[dict], code: str, where: list[str] | None = None) -> list[dict]:
    return [f for f in findings if f["code"] == code and (where is None or f["where"] == where)]


# ------------------------------------------------------------------------------------------------ tests


def test_a_healthy_ddp_run_has_no_warnings_and_inner_layer_names(ranks):
    healthy = ranks[0]["healthy"]
    assert [f for f in healthy["findings"] if f["severity"] != "info"] == []
    assert healthy["layers"] and not any(name.startswith("module") for name in healthy["layers"])
    assert healthy["distributed"]["ranks_reported"] == [0, 1]
    assert healthy["bit_identical"] and ranks[1]["healthy"]["bit_identical"]  # hooks only: training unchanged


def test_a_nan_on_rank_one_is_reported_by_rank_zero_with_the_rank_that_started_it(ranks):
    (loss,) = by_code(ranks[0]["fault"]["findings"], "nonfinite", ["loss"])
    assert loss["severity"] == "error" and loss["ranks"] == [0, 1]
    assert loss["evidence"]["first_rank"] == 1
    assert loss["evidence"]["first_step_by_rank"] == {"1": 5, "0": 6}  # the all-reduce spread it one step later
    assert loss["step"] == 5 and "First on rank 1 at step 5" in loss["explanation"]
    own = ranks[1]["fault"]["findings"]  # rank 1 keeps its own findings, tagged with its rank
    assert by_code(own, "nonfinite", ["loss"])[0]["ranks"] == [1]


def test_a_rank_that_fails_alone_is_named_and_nobody_hangs(ranks):
    (loss,) = by_code(ranks[0]["alone"]["findings"], "nonfinite", ["loss"])
    assert loss["ranks"] == [1] and loss["evidence"]["only_on_ranks"] == [1]
    assert "Seen on rank 1 only" in loss["explanation"]
    assert ranks[1]["alone"]["raised"] == "rank 1 gives up" and ranks[0]["alone"]["raised"] is None


def test_the_ddp_noise_scale_matches_the_two_batch_size_estimate(ranks):
    noise0, noise1 = ranks[0]["noise"], ranks[1]["noise"]
    ddp, single, exact = noise0["ddp"], noise0["single"], noise0["exact"]
    assert noise1["ddp"] == ddp  # every rank holds the same statistics
    assert (ddp["b_small"], ddp["b_big"], ddp["measurements"]) == (8, 16, 100)
    assert abs(ddp["b_simple"] / single["b_simple"] - 1) < 0.15
    assert abs(ddp["b_simple"] - exact) < max(4 * ddp["stderr"], 0.1 * exact)


def test_the_noise_hook_counts_steps_micro_batches_and_drops_unequal_batches(ranks):
    paths = ranks[0]["noise_paths"]
    every = paths["every"]  # 23 backwards, every 2nd measured (12), exchanged in fives (10), 2 waiting
    assert (every["syncs"], every["measurements"], every["pending"]) == (23, 10, 2)
    accumulated = paths["accumulated"]  # two micro-batches of 3 per step: B_local = 6, B_big = 12
    assert (accumulated["b_small"], accumulated["b_big"], accumulated["measurements"]) == (6, 12, 8)
    unequal = paths["unequal"]  # rank 0 uses 4 examples, rank 1 uses 6: the formula does not apply
    assert unequal["skipped"] == {"unequal_batches": 8} and unequal["measurements"] == 0
    assert "unequal_batches" in unequal["error"] and unequal["calls"] == 8  # the custom hook did the reducing
    assert ranks[1]["noise_paths"]["every"] == every and ranks[1]["noise_paths"]["accumulated"] == accumulated


def test_the_script_runner_stops_every_rank_at_the_nan_without_a_deadlock(ranks):
    for r in range(WORLD):
        assert ranks[r]["runner"]["status"] == "nonfinite"
    (loss,) = by_code(ranks[0]["runner"]["findings"], "nonfinite", ["loss"])
    assert loss["ranks"] == [0, 1] and loss["evidence"]["first_rank"] == 1
    assert ranks[0]["runner"]["json"]["ranks"]["1"]["status"] == "nonfinite"


def test_rank_zero_gives_up_on_a_silent_rank_after_the_timeout(ranks):
    missing = ranks[0]["missing"]
    assert missing["seconds"] < 10
    assert any("rank(s) [1] did not report within 1 s" in w for w in missing["warnings"])
    assert any("1" in note and "did not report" in note for note in missing["notes"])


def test_the_collective_fallback_gathers_to_rank_zero(ranks):
    assert ranks[0]["collective"]["gathered"] == {"0": {"from": 0}, "1": {"from": 1}}
    assert ranks[1]["collective"]["gathered"] is None


# ------------------------------------------------------------------------------------------------ torchrun + CLI


def test_deepbasics_doctor_under_torchrun_writes_one_report(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DEEPBASICS_DESTROY": "1", "DEEPBASICS_DOCTOR_TIMEOUT": "60"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD)]
    command += ["-m", "deepbasics", "doctor", str(script), "--keep-going", "--out", str(tmp_path / "out.json")]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode != 0, done.stdout  # error findings: exit status 4 on both ranks
    report = json.loads((tmp_path / "out.json").read_text())
    assert not (tmp_path / "doctor.json").exists()  # written once, where asked, by rank 0 only
    (loss,) = by_code(report["findings"], "nonfinite", ["loss"])
    assert loss["ranks"] == [0, 1] and loss["evidence"]["first_rank"] == 1
    assert report["distributed"]["world_size"] == WORLD
    assert done.stdout.count("deepbasics doctor:") == 1, done.stdout  # one findings table: rank 0's
