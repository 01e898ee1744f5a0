"""The first steps of a run (:mod:`deepbasics.doctor.firststeps`) and the exploding-at-start rule built on them
(:func:`deepbasics.doctor.detectors.gradients.exploding_at_start`): the probe's numbers against direct float64
computations, the rule on table-driven records, and the whole path on unmodified scripts."""

from __future__ import annotations

import math
import textwrap

import pytest
import torch
from torch import nn

from deepbasics.doctor import thresholds as T
from deepbasics.doctor.detectors.gradients import exploding_at_start
from deepbasics.doctor.firststeps import FIRST_BACKWARDS, MAX_CALLS, FirstSteps
from deepbasics.doctor.script import run_script


def _train(model, steps, x, y, loss_fn=nn.functional.mse_loss):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()


def test_probe_matches_direct_float64_norms():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))
    x, y = torch.randn(16, 5), torch.randn(16, 1)
    reference = [p.detach().clone() for p in model.parameters()]
    probe = FirstSteps(model)
    probe.attach()
    _train(model, FIRST_BACKWARDS + 2, x, y)
    probe.detach()
    out = probe.result()
    # forward: every submodule's output RMS at the first forward, in call order
    with torch.no_grad():
        w0, b0, w2, b2 = (t.double() for t in reference)
        h0 = x.double() @ w0.T + b0
        h1 = torch.tanh(h0)
        h2 = h1 @ w2.T + b2
    expected = [("0", h0), ("1", h1), ("2", h2)]
    assert [c for c, _ in out["forward"]] == [c for c, _ in expected]
    for (_, rms), (_, h) in zip(out["forward"], expected, strict=True):
        assert rms == pytest.approx(float(h.pow(2).mean().sqrt()), rel=1e-5)
    # backward: the first gradient of each weight matrix next to the weight's norm, before the update
    assert len(out["backwards"]) == FIRST_BACKWARDS
    first = out["backwards"][0]
    assert set(first) == {"0.weight", "2.weight"}  # >= 2-D parameters only
    h0.requires_grad_(True)
    w0r, w2r = reference[0].double().requires_grad_(True), reference[2].double().requires_grad_(True)
    pred = torch.tanh(x.double() @ w0r.T + reference[1].double()) @ w2r.T + reference[3].double()
    g0, g2 = torch.autograd.grad(nn.functional.mse_loss(pred, y.double()), (w0r, w2r))
    assert first["0.weight"][0] == pytest.approx(float(g0.norm()), rel=1e-4)
    assert first["2.weight"][0] == pytest.approx(float(g2.norm()), rel=1e-4)
    assert first["0.weight"][1] == pytest.approx(float(reference[0].double().norm()), rel=1e-6)


def test_probe_records_recurrent_time_steps_and_removes_its_hooks():
    torch.manual_seed(0)
    rnn = nn.RNN(1, 4, batch_first=True)
    model = nn.Sequential()  # a wrapper whose child is the RNN
    model.add_module("rnn", rnn)
    probe = FirstSteps(model)
    probe.attach()
    x = torch.randn(3, 7, 1)
    out, _ = model(x)
    expected = out.detach().double().pow(2).mean(dim=(0, 2)).sqrt()  # (T,)
    assert probe.result()["time_steps"]["rnn"] == pytest.approx(expected.tolist(), rel=1e-6)
    probe.detach()
    assert not rnn._forward_hooks and all(not p._post_accumulate_grad_hooks for p in rnn.parameters())


def test_probe_stops_watching_a_model_whose_root_never_runs():
    model = nn.Sequential(nn.Linear(2, 2))
    probe = FirstSteps(model)
    probe.attach()
    for _ in range(MAX_CALLS + 5):
        model[0](torch.randn(1, 2))  # the submodule alone, never the root
    assert len(probe.result()["forward"]) == MAX_CALLS and not model[0]._forward_hooks


def _first_steps(ratio=1.0, forward=(1.0, 2.0, 1.5), time=None, grad="finite"):
    g = {"finite": ratio, "inf": math.inf}[grad]
    out = {"forward": [[str(i), v] for i, v in enumerate(forward)], "backwards": [{"0.weight": [g, 1.0]}]}
    if time is not None:
        out["time_steps"] = {"rnn": list(time)}
    return out


GEOMETRIC = [1.3**t for t in range(60)]  # 1.3x per time step: 7e6 over 60 steps


@pytest.mark.parametrize(
    ("name", "first_steps", "nonfinite", "fires"),
    [
        ("huge first gradient", _first_steps(ratio=1e8), True, True),
        ("forward grows 1e9-fold with depth", _first_steps(forward=(0.5, 3.0, 1e4, 5e8)), True, True),
        ("hidden state grows 1.3x per time step", _first_steps(time=GEOMETRIC), True, True),
        ("JSON keeps numbers as strings", {"backwards": [{"w": ["1e12", "2.0"]}]}, True, True),
        ("the same evidence in a finite run", _first_steps(ratio=1e8), False, False),
        ("sane first steps, inf later (log(0), naive softmax)", _first_steps(ratio=0.5), True, False),
        ("raw inputs: first-layer gradient 341x the weight", _first_steps(ratio=341.0), True, False),
        ("only non-finite gradients: no growth measured", _first_steps(grad="inf"), True, False),
        ("nothing recorded", {}, True, False),
    ],
)
def test_exploding_at_start_table(name, first_steps, nonfinite, fires):
    found = exploding_at_start(first_steps, went_nonfinite=nonfinite)
    assert bool(found) == fires, name
    if fires:
        assert found[0].code == "exploding_gradient" and found[0].severity.value == "error" and found[0].where


def test_time_growth_evidence_names_the_rate():
    found = exploding_at_start(_first_steps(time=GEOMETRIC), went_nonfinite=True)
    growth = found[0].evidence["time_step_rms_growth"]["rnn"]
    assert growth["per_step"] == pytest.approx(1.3) and growth["factor"] >= T.EXPLOSION_FORWARD_GROWTH
    assert found[0].where[0] == "rnn"


IRNN = """
import torch
from torch import nn
torch.manual_seed(0)
cell_in, cell_rec, head = nn.Linear(1, 16), nn.Linear(16, 16, bias=False), nn.Linear(16, 1)
with torch.no_grad():
    cell_rec.weight.copy_(1.6 * torch.eye(16))
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.rec, self.head = cell_in, cell_rec, head
    def forward(self, x):
        h = x.new_zeros(x.shape[0], 16)
        for t in range(x.shape[1]):
            h = torch.relu(self.inp(x[:, t]) + self.rec(h))
        return self.head(h)
model = Net()
opt = torch.optim.SGD(model.parameters(), lr=1e-2)
for step in range(20):
    x = torch.rand(8, 40, 1)
    loss = nn.functional.mse_loss(model(x), x.mean(1))
    opt.zero_grad()
    loss.backward()
    opt.step()
"""

LOG_ZERO = """
import torch
from torch import nn
torch.manual_seed(0)
x = torch.randn(256, 10); y = (x[:, 0] > 0).float()
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.5)
for step in range(300):
    p = torch.sigmoid(model(x)).squeeze(1)  # exactly 0.0 or 1.0 in float32 once |logit| > ~17
    loss = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


def test_an_rnn_that_overflows_at_once_is_named_exploding(tmp_path):
    path = tmp_path / "irnn.py"
    path.write_text(textwrap.dedent(IRNN), encoding="utf-8")
    result = run_script(path)
    assert result.status == "nonfinite"
    found = [f for f in result.findings if f.code == "exploding_gradient"]
    assert found and found[0].severity.value == "error", [str(f) for f in result.findings]
    assert "rec.weight" in found[0].where


def test_a_log_of_zero_is_not_called_exploding(tmp_path):
    path = tmp_path / "logzero.py"
    path.write_text(textwrap.dedent(LOG_ZERO), encoding="utf-8")
    result = run_script(path)
    assert result.status == "nonfinite"
    assert "exploding_gradient" not in {f.code for f in result.findings}, [str(f) for f in result.findings]


LAZY_MANUAL = """
import torch
from torch import nn
torch.manual_seed(1)
model = nn.Sequential(*[m for _ in range(8) for m in (nn.LazyLinear(64), nn.ReLU())], nn.Linear(64, 1))
model(torch.randn(2, 20))  # materializes the lazy layers
for m in model:
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, std=1.0)  # ~11x He's std for fan_in 64: ~8x per layer
x = torch.randn(128, 20); y = x[:, :1] * 2
for step in range(30):
    loss = ((model(x) - y) ** 2).mean()
    model.zero_grad()
    loss.backward()
    with torch.no_grad():  # manual SGD, no optimizer object
        for p in model.parameters():
            p -= 1e-3 * p.grad
"""


def test_a_lazy_model_updated_by_hand_is_watched_and_its_explosion_named(tmp_path):
    path = tmp_path / "lazy.py"
    path.write_text(textwrap.dedent(LAZY_MANUAL), encoding="utf-8")
    result = run_script(path)  # a lazy module's uninitialized parameters once crashed the script watcher
    assert result.status == "nonfinite"
    errors = [f for f in result.findings if f.code == "exploding_gradient" and f.severity.value == "error"]
    assert errors, [str(f) for f in result.findings]
