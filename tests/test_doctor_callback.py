"""DoctorCallback on deepbasics.train.fit: a healthy fit is quiet, a broken one is diagnosed, the validation losses
are the loop's own, the state survives a checkpoint, and the callback never changes the fit."""

from __future__ import annotations

import torch
from torch import nn

from deepbasics.doctor import DoctorCallback
from deepbasics.train import Callback, Checkpoint, fit


def data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return x, (x[:, 0] - x[:, 1] > 0).long()


def model(final=None):
    torch.manual_seed(0)
    layers = [nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 2)]
    return nn.Sequential(*layers, *([final] if final is not None else []))


def run(net, callbacks, epochs=6, lr=0.05, **kw):
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    history = fit(net, nn.CrossEntropyLoss(), opt, data(), data(128, 1), epochs=epochs, callbacks=callbacks,
                  generator=torch.Generator().manual_seed(0), **kw)  # fmt: skip
    return net, history


def test_the_callback_is_a_train_callback_and_a_healthy_fit_is_quiet(capsys):
    doctor = DoctorCallback(verbose=True)
    assert isinstance(doctor, Callback)
    _, history = run(model(), [doctor])
    assert doctor.session.num_steps == history.steps
    assert [v for _, v in doctor.session.trace().val_losses] == history.val_loss  # the loop's, not the tap's
    assert [f for f in doctor.findings if f.severity.value != "info"] == []
    assert "deepbasics doctor" in capsys.readouterr().out
    assert doctor.session.recorder.attached is False  # detached at fit's end


def test_a_softmax_before_cross_entropy_is_named_through_fit():
    doctor = DoctorCallback()
    run(model(nn.Softmax(dim=1)), [doctor], epochs=3)
    found = [f for f in doctor.findings if f.code == "loss_activation_mismatch"]
    assert found and found[0].where == ("4",)


def test_a_diverging_fit_is_diagnosed():
    doctor = DoctorCallback()
    run(model(), [doctor], epochs=3, lr=50.0, on_nonfinite="continue")
    assert {"nonfinite", "diverging_loss"} & {f.code for f in doctor.findings}


def test_the_callback_never_changes_the_fit():
    plain, h_plain = run(model(), [])
    watched, h_watched = run(model(), [DoctorCallback(layer_every=1, check_every=3)])
    assert h_plain.step_loss == h_watched.step_loss
    for a, b in zip(plain.state_dict().values(), watched.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_the_state_survives_a_checkpoint(tmp_path):
    first = DoctorCallback()
    run(model(), [first, Checkpoint(tmp_path / "ckpt.pt")], epochs=2)
    second = DoctorCallback()
    _, history = run(model(), [second, Checkpoint(tmp_path / "ckpt.pt")], epochs=4, resume_from=tmp_path / "ckpt.pt")
    assert second.session.num_steps == history.steps  # the first two epochs' steps, then the resumed ones
    assert len(second.session.trace().val_losses) == 4
