"""watch / DoctorSession: hooks never change training (bit for bit, with dropout and BatchNorm), findings on a
broken run, optimizer discovery, state round trip, JSON, TensorBoard, bad input."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch
from torch import nn

from deepbasics.doctor import DoctorSession, Finding, findings_from_records, watch
from deepbasics.nn import mlp


def data(n=256, d=16, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, :classes].argmax(1) + (x[:, 0] > 1).long()) % classes
    return x, y


def train(model, steps=50, session_kwargs=None, *, batch=16, lr=0.05):
    """Train with SGD+momentum; optionally under watch(**session_kwargs). Returns (model, session)."""
    torch.manual_seed(1)  # dropout's stream
    x, y = data()
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    session = None
    if session_kwargs is not None:
        session = watch(model, opt, loss_fn=loss_fn, **session_kwargs).attach()
    for step in range(steps):
        rows = torch.arange(step * batch, (step + 1) * batch) % x.shape[0]
        opt.zero_grad()
        loss = loss_fn(model(x[rows]), y[rows])
        loss.backward()
        opt.step()
        if session is not None:
            session.step(loss, batch=(x[rows], y[rows]))
    if session is not None:
        session.detach()
        session.finalize()
    return model, session


def fresh():
    torch.manual_seed(0)
    return mlp([16, 32, 32, 4], norm="batch", dropout=0.3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # defaults
        {"every": 1, "layer_every": 1, "check_every": 7},  # everything recorded, detectors mid-run
        {"layer_every": 3, "curvature": True, "noise_scale": True, "expensive_every": 10},  # the expensive checks
    ],
    ids=["defaults", "dense", "expensive"],
)
def test_watch_never_changes_training_bit_for_bit(kwargs):
    plain, _ = train(fresh())
    watched, session = train(fresh(), session_kwargs=kwargs)
    for (name, a), (_, b) in zip(plain.state_dict().items(), watched.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert session.num_steps == 50 and len(session.losses) == 50
    assert torch.equal(torch.get_rng_state(), torch.get_rng_state())  # sanity
    if kwargs.get("curvature"):
        assert session.curvature_result is not None and session.noise_result is not None


def test_the_global_random_stream_is_not_consumed_by_expensive_checks():
    model = fresh()
    x, y = data()
    session = watch(model, loss_fn=nn.CrossEntropyLoss(), curvature=True, noise_scale=True).attach()
    model(x[:16]).sum().backward()
    session.step(1.0, batch=(x[:32], y[:32]))
    torch.manual_seed(5)
    before = torch.get_rng_state()
    session.finalize()
    assert torch.equal(before, torch.get_rng_state())
    session.detach()


def test_watch_finds_vanishing_gradients_in_a_deep_sigmoid_net():
    torch.manual_seed(0)
    model = mlp([16] + [32] * 9 + [4], activation="sigmoid")
    _, session = train(model, steps=60, session_kwargs={"layer_every": 5}, lr=0.1)
    codes = {f.code for f in session.findings}
    assert "vanishing_gradient" in codes
    finding = next(f for f in session.findings if f.code == "vanishing_gradient")
    assert finding.where[0] == "linear1"
    assert "vanishing_gradient" in session.report()


def test_healthy_run_has_no_warnings():
    torch.manual_seed(0)
    model = mlp([16, 32, 4])
    _, session = train(model, steps=100, session_kwargs={}, lr=0.05)
    assert [f for f in session.findings if f.severity.value != "info"] == []


def test_optimizer_is_discovered_without_being_passed():
    model = fresh()
    opt = torch.optim.Adam(model.parameters())
    other = torch.optim.SGD([nn.Parameter(torch.zeros(2))], lr=0.1)
    x, y = data()
    with watch(model) as session:
        other.step()  # an optimizer of something else is ignored
        assert session.optimizer is None
        nn.CrossEntropyLoss()(model(x[:16]), y[:16]).backward()
        opt.step()
        session.step(0.5)
    assert session.optimizer is opt
    assert session.to_dict()["meta"]["optimizer"] == "Adam"
    assert session.batch_size == 16


def test_nonfinite_loss_and_float_losses():
    model = fresh()
    with watch(model) as session:
        for loss in [2.3, 2.2, 2.1, math.nan, math.nan]:
            session.step(loss)
    nonfinite = [f for f in session.findings if f.code == "nonfinite"]
    assert nonfinite and nonfinite[0].step == 3


def test_state_dict_round_trip_and_json():
    torch.manual_seed(0)
    model = mlp([16] + [32] * 9 + [4], activation="sigmoid")
    _, session = train(model, steps=30, session_kwargs={"layer_every": 5}, lr=0.1)
    state = json.loads(json.dumps(session.state_dict()))  # plain data
    restored = DoctorSession(model)
    restored.load_state_dict(state)
    assert restored.num_steps == 30 and restored.losses == session.losses
    assert {f.code for f in restored.findings} == {f.code for f in session.findings}
    with restored:  # keeps recording after the restored steps
        train(model, steps=10)
    assert restored.trace().layers["linear1"]["step"][-1] >= 30
    text = json.dumps(session.to_dict())
    assert json.loads(text)["meta"]["steps"] == 30
    with pytest.raises(KeyError, match="num_steps"):
        DoctorSession(model).load_state_dict({})


def test_findings_from_records_matches_the_session():
    torch.manual_seed(0)
    model = mlp([16] + [32] * 9 + [4], activation="sigmoid")
    _, session = train(model, steps=40, session_kwargs={"layer_every": 5}, lr=0.1)
    trace = session.trace()
    found = findings_from_records(
        [v for _, v in trace.losses], layers=trace.layers, order=trace.order, kinds=trace.kinds
    )
    assert {f.code for f in found} == {f.code for f in session.findings}
    assert all(isinstance(f, Finding) for f in found)


class FakeWriter:
    def __init__(self):
        self.scalars = []

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))


def test_tensorboard_writer_receives_scalars():
    writer = FakeWriter()
    train(fresh(), steps=20, session_kwargs={"tensorboard": writer, "layer_every": 5})
    tags = {t for t, _, _ in writer.scalars}
    assert "doctor/loss" in tags and "doctor/findings" in tags
    assert any(t.startswith("doctor/grad_norm/") for t in tags)
    assert (
        sum(t == "doctor/loss" for t in tags) == 1 and len([s for s in writer.scalars if s[0] == "doctor/loss"]) == 20
    )


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is not None, reason="TensorBoard is installed")
def test_tensorboard_path_without_tensorboard_warns(tmp_path):
    with pytest.warns(UserWarning, match="TensorBoard is not installed"):
        session = watch(fresh(), tensorboard=tmp_path)
    assert session._writer is None


def test_expensive_checks_without_a_batch_leave_a_note():
    model = fresh()
    with watch(model, curvature=True) as session:
        session.step(1.0)
    assert any("batch=(x, y)" in note for note in session.notes)


def test_bad_input():
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        watch("model")
    with pytest.raises(ValueError, match="every"):
        watch(fresh(), every=0)
    with pytest.raises(TypeError, match="optimizer"):
        watch(fresh(), optimizer="sgd")
    with pytest.raises(TypeError, match="tensorboard"):
        watch(fresh(), tensorboard=3)
    with pytest.raises(TypeError, match="loss_fn"):
        watch(fresh(), loss_fn=3)
    session = watch(fresh())
    with pytest.raises(ValueError, match="scalar"):
        session.step(torch.ones(3))


def test_attach_and_detach_are_idempotent():
    model = fresh()
    session = watch(model)
    assert session.attach() is session.attach()
    session.detach()
    session.detach()
    assert not model._forward_pre_hooks


def test_watch_accepts_lazy_modules_before_their_first_forward():
    model = nn.Sequential(nn.LazyLinear(16), nn.Tanh(), nn.LazyLinear(3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 5), torch.randint(0, 3, (32,))
    with watch(model, optimizer) as session:
        for _ in range(3):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            session.step(loss)
    assert isinstance(session.findings, list)
