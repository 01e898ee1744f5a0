"""What a watched run's first steps show about the setup (:mod:`deepbasics.doctor.graphscan`), how much of a
recurrent layer's first input reaches its last state (:mod:`deepbasics.doctor.recurrent`), and the loss rebuilt from
a script's first step (:mod:`deepbasics.doctor.lossbatch`)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepbasics.doctor import watch
from deepbasics.doctor.detectors import vanishing_through_time
from deepbasics.doctor.graphscan import InputMoments, naive_softmax_nodes
from deepbasics.doctor.lossbatch import capture, expect
from deepbasics.doctor.recurrent import temporal_ratio
from deepbasics.doctor.trace import input_statistics


def _naive_keepdim(z):
    e = torch.exp(z)
    return e / e.sum(1, keepdim=True)


def _naive_two_exps(z):
    return torch.exp(z) / torch.exp(z).sum(1)[:, None]


def _stable(z):
    e = torch.exp(z - z.amax(1, keepdim=True))
    return e / e.sum(1, keepdim=True)


def _stable_detached(z):
    e = torch.exp(z - z.max(1, keepdim=True).values.detach())
    return e / e.sum(1, keepdim=True)


@pytest.mark.parametrize(
    ("softmax", "naive"),
    [
        (_naive_keepdim, True),
        (_naive_two_exps, True),
        (_stable, False),
        (_stable_detached, False),
        (lambda z: torch.softmax(z, 1), False),
        (lambda z: torch.exp(z) / 3.0, False),  # a division by a constant is not a softmax
        (lambda z: torch.exp(z) / torch.exp(2 * z).sum(1, keepdim=True), False),  # a sum of another exp
    ],
    ids=["keepdim", "two exps + unsqueeze", "minus amax", "minus detached max", "torch.softmax", "exp / c", "other"],
)
def test_naive_softmax_is_found_in_the_autograd_graph_and_only_there(softmax, naive):
    w = torch.randn(4, 3, requires_grad=True)
    p = softmax(torch.randn(5, 4) @ w)
    loss = -torch.log(p[:, 0]).mean()
    assert bool(naive_softmax_nodes(loss)) is naive


class _Softmax(nn.Module):
    def forward(self, z):
        return _naive_keepdim(z)


class _Pool(nn.Module):  # the naive softmax inside a larger module: attention weights over time
    def __init__(self):
        super().__init__()
        self.score = nn.Linear(3, 1)

    def forward(self, h):  # (N, T, 3)
        return (_naive_keepdim(self.score(h).squeeze(-1)).unsqueeze(-1) * h).sum(1)


@pytest.mark.parametrize(
    ("build", "site"),
    [
        (lambda: (nn.Sequential(nn.Linear(4, 3), _Softmax()), torch.randn(8, 4)), "1"),
        (lambda: (nn.Sequential(nn.Linear(4, 3), nn.ReLU(), _Pool()), torch.randn(8, 5, 4)), "2"),
    ],
    ids=["softmax module", "inside an attention pool"],
)
def test_watch_names_the_module_that_computes_the_naive_softmax(build, site):
    model, x = build()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with watch(model) as session:
        for _ in range(3):
            out = model(x)
            loss = -torch.log(out[..., 0].clamp_min(1e-6)).mean() if out.dim() == 2 else out.square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            session.step(loss)
    found = [f for f in session.findings if f.code == "naive_softmax"]
    assert found and found[0].where == (site,), [str(f) for f in session.findings]


def test_a_stable_softmax_model_gets_no_naive_softmax_finding():
    model = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with watch(model) as session:
        for _ in range(3):
            loss = -torch.log(model(torch.randn(8, 4))[:, 0]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            session.step(loss)
    assert "naive_softmax" not in {f.code for f in session.findings}


@pytest.mark.parametrize(
    "shape", [(32, 5), (16, 7, 3), (8, 3, 4, 4), (20,)], ids=["(N,F)", "(N,T,F)", "(N,C,H,W)", "(N,)"]
)
def test_input_moments_give_the_statistics_of_all_accumulated_batches(shape):
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(*shape, generator=g) * 50 + 3 for _ in range(3)]
    moments = InputMoments(samples=8)
    for b in batches:
        moments.add(b)
    moments.add(torch.randint(0, 5, shape))  # integer inputs (token ids) are skipped
    means, stds = moments.statistics()
    ref_means, ref_stds = input_statistics(torch.cat(batches).double())
    assert means == pytest.approx(ref_means, rel=1e-9, abs=1e-9) and stds == pytest.approx(ref_stds, rel=1e-9)


def test_unnormalized_inputs_are_found_by_watch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g) * torch.tensor([1.0, 1e3, 1e-2, 5.0])
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    with watch(model) as session:
        for i in range(0, 256, 32):
            loss = F.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            session.step(loss)
    assert "unnormalized_inputs" in {f.code for f in session.findings}


# ------------------------------------------------------------------------------------------------ through time
def _reference_ratio(rnn: nn.RNNBase, x: torch.Tensor) -> float:
    """The same quantity from the full Jacobian d h_T / d x (float64), contracted with the same direction v."""
    v = torch.randn(rnn.hidden_size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rnn = rnn.double().eval()

    def last_state(inp):
        return (rnn(inp)[0][:, -1] * v).sum()

    jac = torch.autograd.functional.jacobian(last_state, x.double())  # (N, T, F)
    per_step = jac.transpose(0, 1).reshape(x.shape[1], -1).norm(dim=1)
    return float(per_step[0] / per_step[-1])


@pytest.mark.parametrize("cell", [nn.RNN, nn.LSTM, nn.GRU])
def test_the_through_time_ratio_matches_the_full_jacobian(cell):
    torch.manual_seed(0)
    rnn = cell(3, 5, batch_first=True).double()
    x = torch.randn(4, 12, 3, dtype=torch.float64)
    got = temporal_ratio(rnn, x)
    assert got["steps"] == 12
    assert got["ratio"] == pytest.approx(_reference_ratio(rnn, x), rel=1e-6)


def test_a_long_tanh_rnn_loses_its_first_input_and_a_short_one_does_not():
    torch.manual_seed(0)
    rnn = nn.RNN(1, 32, batch_first=True)
    assert temporal_ratio(rnn, torch.randn(16, 60, 1))["ratio"] < 1e-8  # measured ~1e-14 at default init
    assert temporal_ratio(rnn, torch.randn(16, 3, 1))["ratio"] > 1e-2


@pytest.mark.parametrize(
    ("ratio", "losses", "found"),
    [
        (1e-9, [0.693] * 60, True),  # vanishing and stalled
        (1e-9, [0.693 * (0.97**i) for i in range(60)], False),  # vanishing but the loss falls: it learns anyway
        (0.5, [0.693] * 60, False),  # stalled for another reason
        (1e-9, [0.693] * 10, False),  # too few losses to call it stalled
    ],
)
def test_vanishing_through_time_needs_a_small_ratio_and_a_stalled_loss(ratio, losses, found):
    out = vanishing_through_time({"rnn": {"ratio": ratio, "steps": 60}}, losses)
    assert bool(out) is found
    if found:
        assert out[0].code == "vanishing_gradient" and out[0].where == ("rnn",)


# ------------------------------------------------------------------------------------------------ loss rebuilt
def _flat():
    x = torch.randn(6, 4)
    return x, (lambda out: out), torch.randint(0, 3, (6,)), F.cross_entropy, {}


def _sequence():  # (N, T, V) logits flattened to (N T, V), as language models do
    x = torch.randn(6, 2, 4)
    return x, (lambda out: out.reshape(-1, 3)), torch.randint(0, 3, (12,)), F.cross_entropy, {"label_smoothing": 0.1}


def _sliced():  # one output of three: not the same values in the same order
    x = torch.randn(6, 4)
    return x, (lambda out: out[:, 0]), torch.randn(6), F.mse_loss, {}


@pytest.mark.parametrize(("case", "captured"), [(_flat, True), (_sequence, True), (_sliced, False)],
                         ids=["identity", "reshape of a sequence", "slice"])  # fmt: skip
def test_the_rebuilt_loss_is_the_scripts_loss_or_nothing(case, captured):
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, head, target, loss_fn, kwargs = case()
    out = model(x)
    got = capture(expect(x, out), loss_fn, loss_fn.__name__, head(out), target, kwargs)
    assert (got is not None) is captured
    if got is not None:
        with torch.no_grad():
            want = loss_fn(head(out), target, **kwargs)
            assert float(got.loss_fn(model(got.x), got.y)) == pytest.approx(float(want), rel=1e-6)
