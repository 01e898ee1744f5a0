"""deepbasics.doctor.distributed and deepbasics.noise's data-parallel estimate, in one process.

The store protocol is driven with an in-memory ``torch.distributed.HashStore`` playing every rank in turn; the
real multi-process runs (DDP over gloo, torchrun) are in ``tests/test_distributed_ddp.py``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn

from deepbasics import noise
from deepbasics.doctor import distributed as D
from deepbasics.doctor.findings import Finding, Severity

# ------------------------------------------------------------------------------------------------ ddp_noise_scale


def mccandlish_by_hand(small: np.ndarray, big: np.ndarray, b_small: int, b_big: int) -> float:
    """Appendix A.1 written out: unbiased |G|^2 and tr(Sigma) per measurement, each averaged, then the ratio."""
    g2 = (b_big * big - b_small * small) / (b_big - b_small)
    trace = (small - big) / (1 / b_small - 1 / b_big)
    return float(trace.mean() / g2.mean())


def test_ddp_noise_scale_is_appendix_a1_with_the_ranks_averaged():
    rng = np.random.default_rng(0)
    local = rng.uniform(2.0, 3.0, size=(4, 30))  # (W, n): |G_r|^2 of 4 ranks over 30 steps
    global_ = rng.uniform(1.0, 1.5, size=30)
    expected = mccandlish_by_hand(local.mean(0), global_, 8, 32)
    got = noise.ddp_noise_scale(torch.tensor(local), torch.tensor(global_), b_local=8, world_size=4)
    assert got.b_small == 8 and got.b_big == 32 and got.num_measurements == 30
    assert got.b_simple == pytest.approx(expected, rel=1e-12)
    averaged = noise.ddp_noise_scale(local.mean(0).tolist(), global_.tolist(), b_local=8, world_size=4)
    assert averaged.b_simple == pytest.approx(expected, rel=1e-12)


def test_ddp_noise_scale_recovers_the_closed_form_of_least_squares():
    """W ranks simulated in one process: each draws its own B_local rows; the all-reduce is the mean of the ranks'
    gradients. At residual c the per-example gradient of (x.w - y)^2 is 2 c x_n, so B_simple = tr Cov(x) / |E x|^2
    (population moments over the data set), the independent reference."""
    gen = torch.Generator().manual_seed(0)
    n, d, c, world, b_local, steps = 2000, 1000, 0.5, 2, 8, 80
    x = torch.randn(n, d, generator=gen, dtype=torch.float64) + 0.25  # (N, d): B_simple ~ d / (d / 16) = 16
    per_example = 2 * c * x  # (N, d) gradients g_n
    mean = per_example.mean(0)
    exact = float(((per_example - mean) ** 2).sum(1).mean() / (mean @ mean))
    rows = torch.randint(0, n, (steps, world, b_local), generator=gen)
    g_rank = per_example[rows].mean(2)  # (steps, W, d): each rank's mean gradient
    local = (g_rank**2).sum(2).T  # (W, steps)
    global_ = (g_rank.mean(1) ** 2).sum(1)  # (steps,)
    got = noise.ddp_noise_scale(local, global_, b_local=b_local, world_size=world)
    assert abs(got.b_simple - exact) < max(4 * got.stderr, 0.1 * exact), (got, exact)
    assert got.stderr < 0.05 * exact


def test_ddp_noise_scale_rejects_bad_inputs():
    with pytest.raises(ValueError, match="world_size"):
        noise.ddp_noise_scale([1.0, 2.0], [0.5, 0.6], b_local=4, world_size=1)
    with pytest.raises(ValueError, match=r"shape \(n,\) or \(world_size=2, n\)"):
        noise.ddp_noise_scale(torch.ones(3, 5), torch.ones(5), b_local=4, world_size=2)
    with pytest.raises(ValueError, match="the same non-zero number"):
        noise.ddp_noise_scale(torch.ones(2, 5), torch.ones(4), b_local=4, world_size=2)
    with pytest.raises(ValueError, match="b_local"):
        noise.ddp_noise_scale([1.0], [0.5], b_local=0, world_size=2)


def test_ddp_noise_scale_class_needs_ddp_with_two_ranks():
    with pytest.raises(TypeError, match="DistributedDataParallel"):
        noise.DDPNoiseScale(nn.Linear(2, 1))
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        ddp = nn.parallel.DistributedDataParallel(nn.Linear(2, 1))
        with pytest.raises(ValueError, match="at least 2 ranks"):
            noise.DDPNoiseScale(ddp)
    finally:
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------------------ merging


def finding(code: str, where: tuple[str, ...], step: int | None, severity: str = "error", **evidence) -> Finding:
    return Finding(code, Severity(severity), where, evidence, f"{code} explained.", "fix it", step=step)


def test_merge_unites_ranks_and_says_which_rank_went_first():
    per_rank = {
        0: [finding("nonfinite", ("loss",), 6, value=float("nan")), finding("dead_relu", ("1",), 20, "warning")],
        1: [finding("nonfinite", ("loss",), 5, value=float("inf")), finding("dead_relu", ("1",), 20, "error")],
    }
    merged = D.merge_rank_findings(per_rank)
    assert [(f.code, f.where) for f in merged] == [("nonfinite", ("loss",)), ("dead_relu", ("1",))]
    loss, dead = merged
    assert loss.ranks == (0, 1) and loss.step == 5
    assert loss.evidence["first_rank"] == 1 and loss.evidence["value"] == math.inf  # rank 1's evidence
    assert loss.evidence["first_step_by_rank"] == {"1": 5, "0": 6}
    assert "First on rank 1 at step 5, then rank 0 at step 6" in loss.explanation
    assert "all-reduce" in loss.explanation and "only_on_ranks" not in loss.evidence
    assert dead.severity == Severity.ERROR and dead.ranks == (0, 1)  # the worse severity of the two
    assert dead.explanation == "dead_relu explained."  # same step everywhere: nothing to add
    assert Finding.from_dict(loss.to_dict()).evidence["first_step_by_rank"] == {"1": 5, "0": 6}


def test_merge_marks_a_finding_of_one_rank_only():
    per_rank = {0: [], 1: [finding("diverging_loss", ("loss",), 12)], 2: []}
    (only,) = D.merge_rank_findings(per_rank)
    assert only.ranks == (1,) and only.evidence["only_on_ranks"] == [1] and only.evidence["first_rank"] == 1
    assert "Seen on rank 1 only, of 3 ranks" in only.explanation


def test_merge_keeps_different_places_apart_and_unions_ranks_already_tagged():
    per_rank = {
        0: [finding("dead_relu", ("1",), 3, "warning"), finding("dead_relu", ("3",), 3, "warning")],
        2: D.tag_ranks([finding("dead_relu", ("1",), 3, "warning")], 2),
    }
    merged = D.merge_rank_findings(per_rank)
    assert [(f.where, f.ranks) for f in merged] == [(("1",), (0, 2)), (("3",), (0,))]


def test_merge_with_one_reporting_rank_only_tags_it():
    (f,) = D.merge_rank_findings({3: [finding("overfitting", ("val",), 7, "warning", gl=6.0)]})
    assert f.ranks == (3,) and dict(f.evidence) == {"gl": 6.0} and f.explanation == "overfitting explained."


def test_tag_ranks_leaves_tagged_findings_alone():
    tagged = D.tag_ranks([finding("nonfinite", ("loss",), 1), finding("nonfinite", ("0",), 1)], 4)
    assert [f.ranks for f in tagged] == [(4,), (4,)]
    assert D.tag_ranks(tagged, 9)[0].ranks == (4,)


# ------------------------------------------------------------------------------------------------ rank detection


def test_rank_info_reads_torchrun_variables(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert D.rank_info() == D.RankInfo(0, 1, 0, False) and not D.rank_info().distributed
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    info = D.rank_info()
    assert (info.rank, info.world_size, info.local_rank, info.initialized) == (3, 4, 1, False)
    assert info.distributed and not info.is_main
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="0 <= RANK < WORLD_SIZE"):
        D.rank_info()
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ValueError, match="environment variable RANK: expected an integer"):
        D.rank_info()


def test_unwrap_model_strips_data_parallel_wrappers():
    inner = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    assert D.unwrap_model(nn.DataParallel(nn.DataParallel(inner))) is inner
    assert D.unwrap_model(inner) is inner


# ------------------------------------------------------------------------------------------------ the store protocol


def ranks_of(world: int) -> list[D.RankInfo]:
    return [D.RankInfo(r, world, r, True) for r in range(world)]


def test_gather_payloads_through_a_store_without_waiting_on_the_senders():
    store = dist.HashStore()
    main, one, two = ranks_of(3)
    assert D.gather_payloads({"x": [1, 2]}, tag="t", store=store, info=one) is None  # returns at once
    assert D.gather_payloads({"x": float("nan")}, tag="t", store=store, info=two) is None
    got = D.gather_payloads({"x": "rank 0"}, tag="t", store=store, info=main, timeout=5)
    assert sorted(got) == [0, 1, 2] and got[0] == {"x": "rank 0"} and got[1] == {"x": [1, 2]}
    assert math.isnan(got[2]["x"])


def test_rank_zero_stops_waiting_at_the_timeout_and_names_the_missing_rank():
    store = dist.HashStore()
    main, one, _ = ranks_of(3)
    D.gather_payloads({"n": 1}, tag="late", store=store, info=one)
    with pytest.warns(UserWarning, match=r"rank\(s\) \[2\] did not report within 0.2 s"):
        got = D.gather_payloads({"n": 0}, tag="late", store=store, info=main, timeout=0.2)
    assert sorted(got) == [0, 1]


def test_gather_findings_merges_on_rank_zero_and_returns_its_own_elsewhere():
    store = dist.HashStore()
    main, one = ranks_of(2)
    mine = D.gather_findings([finding("nonfinite", ("loss",), 4)], tag="f", store=store, info=one)
    assert [f.ranks for f in mine] == [(1,)]
    merged = D.gather_findings([finding("nonfinite", ("loss",), 5)], tag="f", store=store, info=main, timeout=5)
    assert len(merged) == 1 and merged[0].ranks == (0, 1) and merged[0].evidence["first_rank"] == 1
    alone = [finding("nonfinite", ("loss",), 5)]
    assert D.gather_findings(alone, info=D.RankInfo()) == alone


def test_done_signal_lets_the_other_ranks_wait_a_bounded_time():
    store = dist.HashStore()
    main, one = ranks_of(2)
    assert not D.wait_done("run", store=store, info=one, timeout=0.1)
    D.signal_done("run", store=store, info=main)
    assert D.wait_done("run", store=store, info=one, timeout=0.1)
    assert D.wait_done("anything", info=main)


def test_a_rank_that_cannot_reach_the_store_warns_and_goes_on():
    class BrokenStore:
        def set(self, key: str, value: str) -> None:
            raise RuntimeError("connection refused")

    with pytest.warns(UserWarning, match="could not send its findings: connection refused"):
        assert D.gather_payloads({}, tag="x", store=BrokenStore(), info=ranks_of(2)[1]) is None


def test_timeouts_are_checked(monkeypatch):
    with pytest.raises(ValueError, match="timeout"):
        D.gather_payloads({}, timeout=0.0, info=ranks_of(2)[1], store=dist.HashStore())
    monkeypatch.setenv("DEEPBASICS_DOCTOR_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="DEEPBASICS_DOCTOR_TIMEOUT: expected a positive number"):
        D.gather_payloads({}, info=ranks_of(2)[1], store=dist.HashStore())
    monkeypatch.setenv("DEEPBASICS_DOCTOR_TIMEOUT", "0.1")
    store = dist.HashStore()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = D.gather_payloads({}, tag="env", store=store, info=ranks_of(2)[0])
    assert got == {0: {}} and "within 0.1 s" in str(caught[0].message)


def test_a_single_process_gets_its_own_payload_back():
    assert D.gather_payloads({"a": 1}, info=D.RankInfo()) == {0: {"a": 1}}
