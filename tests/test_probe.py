"""LayerStats: values against independent recomputation, step counting, detaching, and never changing training."""

from __future__ import annotations

import json
import statistics
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from deepbasics.probe import LayerStats
from deepbasics.probe.layer_stats import next_recorded, recorded_step


def mlp(dropout: float = 0.0, bn: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(6, 12)]
    if bn:
        layers.append(nn.BatchNorm1d(12))
    layers += [nn.ReLU(), nn.Dropout(dropout), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 3)]
    return nn.Sequential(*layers)


def data(n: int = 16):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def train(model, opt, steps, x, y, accumulate=1):
    for _ in range(steps):
        opt.zero_grad()
        for _ in range(accumulate):
            nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def no_hooks_left(model: nn.Module, opt=None) -> bool:
    for m in model.modules():
        for d in (m._forward_hooks, m._forward_pre_hooks, m._backward_hooks, m._backward_pre_hooks):
            if d:
                return False
        if getattr(m, "_forward_hooks_always_called", None):
            return False
    if any(p._post_accumulate_grad_hooks for p in model.parameters() if p._post_accumulate_grad_hooks is not None):
        return False
    return opt is None or not (opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks)


def test_values_match_independent_recomputation(float64):
    model, (x, y) = mlp(), data()
    w0 = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with LayerStats(model, every=1, optimizer=opt) as stats:
        train(model, opt, 1, x, y)
    rec = stats.records()
    # Reference: the same network written out by hand at the initial weights, autograd for the gradients.
    params = {k: v.clone().requires_grad_(True) for k, v in w0.items()}
    h0 = x @ params["0.weight"].T + params["0.bias"]
    h1 = h0.relu()
    h3 = h1 @ params["3.weight"].T + params["3.bias"]
    h4 = h3.tanh()
    out = h4 @ params["5.weight"].T + params["5.bias"]
    grads = torch.autograd.grad(nn.functional.cross_entropy(out, y), list(params.values()))
    g = dict(zip(params, grads, strict=True))
    h1n, h4n, h3n = h1.detach().numpy(), h4.detach().numpy(), h3.detach().numpy()
    assert rec["1"]["act_mean"][0] == pytest.approx(h1n.mean(), rel=1e-12)
    assert rec["1"]["act_std"][0] == pytest.approx(h1n.std(), rel=1e-12)
    assert rec["1"]["zero_frac"][0] == pytest.approx(np.mean(h1n == 0))
    assert rec["1"]["dead_frac"][0] == pytest.approx(np.mean(np.all(h1n == 0, axis=0)))
    assert rec["4"]["sat_frac"][0] == pytest.approx(np.mean(np.abs(h4n) >= 1 - 1e-2))
    assert rec["4"]["preact_large_frac"][0] == pytest.approx(np.mean(np.abs(h3n) > 5))
    assert rec["0"]["act_std"][0] == pytest.approx(h0.detach().numpy().std(), rel=1e-12)
    for layer in ("0", "3", "5"):
        gn = np.sqrt(sum(np.sum(g[f"{layer}.{p}"].numpy() ** 2) for p in ("weight", "bias")))
        wn = np.sqrt(sum(np.sum(w0[f"{layer}.{p}"].numpy() ** 2) for p in ("weight", "bias")))
        assert rec[layer]["grad_norm"][0] == pytest.approx(gn, rel=1e-10)
        assert rec[layer]["weight_norm"][0] == pytest.approx(wn, rel=1e-12)
        assert rec[layer]["update_ratio"][0] == pytest.approx(0.1 * gn / wn, rel=1e-8)  # plain SGD: Δw = -lr g
    prec = stats.param_records()
    assert prec["0.bias"]["grad_norm"][0] == pytest.approx(np.linalg.norm(g["0.bias"].numpy()), rel=1e-10)


def test_dead_units_and_saturation_are_detected():
    model = nn.Sequential(nn.Linear(4, 10), nn.ReLU(), nn.Linear(10, 5), nn.Sigmoid())
    with torch.no_grad():
        model[0].bias[:4] = -1e3  # units 0..3 are negative for every input: dead
        model[2].weight.mul_(100)  # huge pre-activations: the sigmoid saturates
    x = torch.randn(32, 4)
    with LayerStats(model, every=1) as stats:
        model(x).sum().backward()
    last = stats.last()
    assert last["1"]["dead_frac"] == pytest.approx(0.4)
    with torch.no_grad():
        pre = model[2](model[1](model[0](x)))
    sat = ((pre.sigmoid() <= 1e-2) | (pre.sigmoid() >= 1 - 1e-2)).double().mean().item()
    assert sat > 0.5 and last["3"]["sat_frac"] == pytest.approx(sat)
    assert last["3"]["preact_large_frac"] == pytest.approx((pre.abs() > 5).double().mean().item())


def test_every_records_only_multiples_and_leaves_other_steps_unhooked():
    model, (x, y) = mlp(), data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    model[0].register_forward_pre_hook(lambda m, a: seen.append(len(m._forward_hooks)))
    stats = LayerStats(model, every=3, optimizer=opt, detect_functional=False)  # the detector hooks step 0 too
    train(model, opt, 10, x, y)
    assert stats.steps == [0, 3, 6, 9]
    assert seen == [1, 0, 0, 1, 0, 0, 1, 0, 0, 1]  # module hooks exist only during recorded steps
    assert all(len(v) == 4 for v in stats.records()["0"].values())
    stats.remove()


def test_recorded_step_thins_by_doubling_after_the_dense_records():
    every, dense = 3, 4
    steps = [s for s in range(1000) if recorded_step(s, every, dense)]
    assert steps[:dense] == [0, 3, 6, 9]  # the first `dense` records at the plain interval
    start = dense * every
    for k in range(5):  # each doubling of the run, [start 2^k, start 2^(k+1)), adds dense / 2 records
        window = [s for s in steps if start * 2**k <= s < start * 2 ** (k + 1)]
        assert len(window) == dense // 2
        assert all(s % (every * 2 ** (k + 1)) == 0 for s in window)
    assert [s for s in range(100) if recorded_step(s, 7)] == list(range(0, 100, 7))  # without dense: plain
    with pytest.raises(ValueError, match="even"):
        LayerStats(mlp(), every=2, dense_records=3)


@pytest.mark.parametrize(("every", "dense"), [(1, None), (3, None), (3, 4), (20, 10), (1, 2)])
def test_next_recorded_is_the_first_recorded_step_from_here(every, dense):
    # the schedule written out independently: multiples of `every` below D = dense * every, then in each window
    # [D 2^k, D 2^(k+1)) the multiples of every * 2^(k+1)
    if dense is None:
        recorded = list(range(0, 6000, every))
    else:
        start = dense * every
        recorded = list(range(0, start, every))
        for k in range(12):
            recorded += list(range(start << k, start << (k + 1), every << (k + 1)))
    recorded = [s for s in recorded if s < 6000]
    for step in range(recorded[-1] + 1):
        assert next_recorded(step, every, dense) == next(s for s in recorded if s >= step)
    assert [s for s in range(recorded[-1] + 1) if recorded_step(s, every, dense)] == recorded


@pytest.mark.parametrize("with_optimizer", [True, False])
def test_dense_records_are_the_steps_recorded(with_optimizer):
    model, (x, y) = mlp(), data()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    stats = LayerStats(model, every=2, optimizer=opt if with_optimizer else None, dense_records=2)
    train(model, opt, 40, x, y)
    assert stats.steps == [s for s in range(40) if recorded_step(s, 2, 2)] == [0, 2, 4, 8, 16, 32]
    assert all(v is not None for v in stats.records()["0"]["grad_norm"])
    stats.remove()


def test_step_counting_without_optimizer_skips_eval_and_no_grad_passes():
    model, (x, y) = mlp(), data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    stats = LayerStats(model, every=2)
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        with torch.no_grad():
            model(x)
        model.eval()
        model(x)
        model.train()
    assert stats.steps == [0, 2, 4]
    rec = stats.records()["0"]
    assert rec["update_ratio"][0] == pytest.approx(0.1 * rec["grad_norm"][0] / rec["weight_norm"][0], rel=1e-5)
    assert rec["update_ratio"][2] is None  # the last step is still open: its update is not measured yet
    assert all(v is not None and v > 0 for v in rec["grad_norm"])


def test_forward_and_optimizer_modes_agree(float64):
    out = []
    for use_opt in (True, False):
        torch.manual_seed(0)
        model, (x, y) = mlp(), data()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        with LayerStats(model, every=2, optimizer=opt if use_opt else None) as stats:
            train(model, opt, 5, x, y)
        out.append(stats.records())
    for layer in ("0", "1", "3"):
        for metric in ("act_mean", "grad_norm", "update_ratio"):
            a, b = out[0][layer].get(metric), out[1][layer].get(metric)
            if a is not None:
                assert a[:2] == pytest.approx(b[:2], rel=1e-10), (layer, metric)


def test_gradient_accumulation_reads_accumulated_gradient(float64):
    model, (x, y) = mlp(), data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ref = torch.autograd.grad(2 * nn.functional.cross_entropy(model(x), y), [model[0].weight])[0]
    with LayerStats(model, every=1, optimizer=opt) as stats:
        train(model, opt, 1, x, y, accumulate=2)
    assert stats.param_records()["0.weight"]["grad_norm"][0] == pytest.approx(ref.norm().item(), rel=1e-10)
    assert "0#1" not in stats.records()  # only the first forward of a step is recorded


@pytest.mark.parametrize("use_opt", [True, False])
def test_monitoring_never_changes_training(use_opt):
    """50 steps with dropout and BatchNorm: bit-identical parameters, buffers and RNG state."""
    results = []
    for attach in (False, True):
        torch.manual_seed(0)
        model, (x, y) = mlp(dropout=0.3, bn=True), data(32)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        stats = LayerStats(model, every=1, optimizer=opt if use_opt else None) if attach else None
        train(model, opt, 50, x, y)
        if stats is not None:
            assert len(stats.records()["0"]["step"]) == 50
            stats.remove()
        results.append((model.state_dict(), torch.get_rng_state(), [p.requires_grad for p in model.parameters()]))
    (a, rng_a, rg_a), (b, rng_b, rg_b) = results
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(rng_a, rng_b) and rg_a == rg_b


def test_remove_and_context_manager_leave_no_hooks():
    model, (x, _) = mlp(bn=True), data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for use_opt in (opt, None):
        with LayerStats(model, every=1, optimizer=use_opt) as stats:
            model(x).sum().backward()  # left mid-step: hooks of the open step must go too
            assert not no_hooks_left(model, opt)
        assert no_hooks_left(model, opt)
        stats.remove()  # idempotent
        assert stats.records()["0"]["act_mean"][0] is not None  # data stays readable


def test_exception_in_forward_disarms_module_hooks():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            self.fc(x)
            raise RuntimeError("boom")

    model = Boom()
    stats = LayerStats(model, every=1)
    with pytest.raises(RuntimeError, match="boom"):
        model(torch.randn(2, 3))
    assert not model.fc._forward_hooks
    stats.remove()
    assert no_hooks_left(model)


def test_shared_module_records_every_call():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 5)
            self.act = nn.ReLU()
            self.out = nn.Linear(5, 1)

        def forward(self, x):
            return self.out(self.act(self.fc(self.act(self.fc(x)))))

    model = Shared()
    x = torch.randn(8, 5)
    with LayerStats(model, every=1) as stats:
        model(x).sum().backward()
    assert stats.layer_order == ["fc", "act", "fc#1", "act#1", "out"]
    rec = stats.records()
    h = torch.relu(model.fc(x))
    assert rec["fc#1"]["act_mean"][0] == pytest.approx(model.fc(h).mean().item(), rel=1e-5)
    assert "grad_norm" in rec["fc"] and "grad_norm" not in rec["fc#1"]


def test_functional_activations_are_reported():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.act = nn.ReLU()

        def forward(self, x):
            return torch.sigmoid(self.act(self.fc(x)))

    model = nn.Sequential(Block(), nn.Linear(4, 2))
    with pytest.warns(UserWarning, match="functional sigmoid in '0'"), LayerStats(model, every=1) as stats:
        model(torch.randn(3, 4))
        model(torch.randn(3, 4))  # detection runs once
    assert stats.unsupported == ["functional sigmoid in '0' (Block)"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with LayerStats(mlp(), every=1) as clean:  # module activations only: nothing to report
            mlp()(torch.randn(2, 6))
    assert clean.unsupported == []


def test_tuple_outputs_and_custom_containers():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(3, 4, batch_first=True)
            self.head = nn.Sequential(nn.Tanh(), nn.Linear(4, 1))

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.head(out[:, -1])

    model = Net()
    with LayerStats(model, every=1) as stats:
        model(torch.randn(2, 5, 3)).sum().backward()
    rec = stats.records()
    assert stats.layer_order == ["rnn", "head.0", "head.1"]
    assert rec["rnn"]["act_mean"][0] is not None and rec["rnn"]["grad_norm"][0] > 0


def test_plain_data_summary_and_gradient_ratio():
    torch.manual_seed(0)
    depth = 8
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(16, 16), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(16, 1))
    x, opt = torch.randn(64, 16), torch.optim.SGD(model.parameters(), lr=0.1)
    with LayerStats(model, every=1, optimizer=opt, sync_every=2) as stats:
        for _ in range(5):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    blob = json.loads(json.dumps(stats.to_dict()))
    assert blob["steps"] == [0, 1, 2, 3, 4] and blob["layer_order"][0] == "0"
    summary = stats.summary()
    grads = stats.records()["0"]["grad_norm"]
    assert summary["0"]["grad_norm_median"] == statistics.median(grads)
    assert stats.last()["1"]["act_mean"] == stats.records()["1"]["act_mean"][-1]
    ratio = stats.gradient_ratio()
    assert ratio == summary["0"]["grad_norm_median"] / summary[str(2 * depth)]["grad_norm_median"]
    assert ratio < 0.01  # FAQ Q3.3.a: sigmoid depth makes gradients vanish towards the input


def test_sync_every_gives_the_same_numbers():
    out = []
    for sync in (None, 1):
        torch.manual_seed(0)
        model, (x, y) = mlp(), data()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with LayerStats(model, every=1, optimizer=opt, sync_every=sync) as stats:
            train(model, opt, 3, x, y)
            if sync:
                assert stats._log.pending <= 1  # flushed every recorded step; the open step's forward may wait
        out.append(stats.records())
    assert out[0] == out[1]


def test_bad_arguments():
    model = mlp()
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        LayerStats("model")
    with pytest.raises(ValueError, match="every"):
        LayerStats(model, every=0)
    with pytest.raises(TypeError, match="every"):
        LayerStats(model, every=2.0)
    with pytest.raises(TypeError, match="optimizer"):
        LayerStats(model, optimizer="sgd")
    with pytest.raises(ValueError, match="sat_tol"):
        LayerStats(model, sat_tol=-1.0)
    with pytest.raises(ValueError, match="sync_every"):
        LayerStats(model, sync_every=0)
    assert no_hooks_left(model)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_statistics_stay_on_the_device_until_read():
    model, (x, y) = mlp().cuda(), data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with LayerStats(model, every=1, optimizer=opt) as stats:
        train(model, opt, 3, x.cuda(), y.cuda())
        assert all(b.values.device.type == "cuda" for b in stats._log._blocks)
    assert stats.records()["0"]["grad_norm"][2] > 0
