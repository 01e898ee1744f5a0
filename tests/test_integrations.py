"""The Lightning callback: driven by a fake minimal trainer (hook by hook), and inside the real
``lightning.pytorch.Trainer`` (skipped where Lightning is absent, required in CI)."""

from __future__ import annotations

import os
import sys
import types

import pytest
import torch
from torch import nn

from deepbasics.integrations import lightning as pl_adapter


@pytest.fixture
def fake_lightning(monkeypatch):
    """A stand-in ``lightning.pytorch`` module with a bare ``Callback`` base class."""

    class Callback:
        pass

    pkg, sub = types.ModuleType("lightning"), types.ModuleType("lightning.pytorch")
    sub.Callback = Callback
    pkg.pytorch = sub
    monkeypatch.setitem(sys.modules, "lightning", pkg)
    monkeypatch.setitem(sys.modules, "lightning.pytorch", sub)
    return Callback


class FakeTrainer:
    def __init__(self, optimizer):
        self.optimizers = [optimizer]
        self.callback_metrics: dict[str, torch.Tensor] = {}
        self.sanity_checking = False
        self.global_step = 0
        self.logged: list[dict] = []
        self.logger = types.SimpleNamespace(log_metrics=lambda metrics, step: self.logged.append(metrics))


def _fit(callback, model, lr, steps=60):
    """What Lightning's fit loop does around our hooks: fit start, batches, validation epochs, fit end."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    trainer = FakeTrainer(opt)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, 0] > 0).long()
    callback.on_fit_start(trainer, model)
    for step in range(steps):
        i = (step * 32) % 256
        loss = nn.functional.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
        trainer.global_step += 1
        callback.on_train_batch_end(trainer, model, {"loss": loss.detach()}, (x[i : i + 32], y[i : i + 32]), step)
        if step % 10 == 9:
            with torch.no_grad():
                trainer.callback_metrics["val_loss"] = nn.functional.cross_entropy(model(x), y)
            callback.on_validation_epoch_end(trainer, model)
    callback.on_fit_end(trainer, model)
    return trainer


def test_without_lightning_construction_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "lightning", None)
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    monkeypatch.setitem(sys.modules, "pytorch_lightning", None)
    with pytest.raises(ImportError, match=r"pip install deepbasics\[lightning\]"):
        pl_adapter.DoctorCallback()


def test_callback_is_a_lightning_callback_and_watches_a_healthy_fit(fake_lightning, capsys):
    callback = pl_adapter.DoctorCallback(verbose=True)
    assert isinstance(callback, fake_lightning) and isinstance(callback, pl_adapter.DoctorCallback)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    trainer = _fit(callback, model, lr=0.1)
    assert callback.session.num_steps == 60 and len(callback.session.val_losses) == 6
    assert callback.session.optimizer is trainer.optimizers[0]
    assert not [f for f in callback.findings if f.severity.value != "info"]
    assert trainer.logged and trainer.logged[-1]["doctor/error"] == 0.0
    assert "deepbasics doctor" in capsys.readouterr().out
    assert callback.state_dict()["num_steps"] == 60


def test_callback_reports_a_diverging_fit(fake_lightning):
    callback = pl_adapter.DoctorCallback(verbose=False)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    with torch.no_grad():
        model[2].weight.mul_(1e3)
    _fit(callback, model, lr=1e3, steps=30)
    assert {"diverging_loss", "nonfinite"} & {f.code for f in callback.findings}
    assert not callback.session.recorder.attached  # detached


def test_callback_resumes_a_saved_state(fake_lightning):
    first = pl_adapter.DoctorCallback(verbose=False)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    _fit(first, model, lr=0.1, steps=20)
    second = pl_adapter.DoctorCallback(verbose=False)
    second.load_state_dict(first.state_dict())
    _fit(second, model, lr=0.1, steps=20)
    assert second.session.num_steps == 40


# --------------------------------------------------------------------------------- the real Lightning Trainer


def _real_lightning():
    """``lightning.pytorch``; a skip where it is absent, a failure where CI requires it (``.ci/run`` sets
    ``DEEPBASICS_REQUIRE_LIGHTNING=1``, so the real-Trainer tests can never be skipped silently there)."""
    try:
        import lightning.pytorch as pl
    except ImportError:
        if os.environ.get("DEEPBASICS_REQUIRE_LIGHTNING") == "1":
            pytest.fail("DEEPBASICS_REQUIRE_LIGHTNING=1 but `lightning` is not installed: CI must run these tests.")
        pytest.skip("lightning is not installed (pip install deepbasics[lightning])")
    return pl


def _fit_real(pl, tmp_path, final=None, epochs=4):
    from torch.utils.data import DataLoader, TensorDataset

    class Classifier(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            layers = [nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2)]
            self.net = nn.Sequential(*layers, *([final] if final is not None else []))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", nn.functional.cross_entropy(self(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, 0] > 0).long()
    train = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=g)
    val = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=32)
    callback = pl_adapter.DoctorCallback(verbose=False)
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=[callback])  # fmt: skip
    trainer.fit(Classifier(), train, val)
    return callback, trainer


LIGHTNING_WARNINGS = pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated")


@LIGHTNING_WARNINGS
def test_real_lightning_trainer_runs_the_callback(tmp_path):
    pl = _real_lightning()
    callback, trainer = _fit_real(pl, tmp_path)
    assert isinstance(callback, pl.Callback)
    session = callback.session
    assert session.num_steps == trainer.global_step == 32  # 8 batches x 4 epochs, one loss each
    assert session.optimizer is trainer.optimizers[0]
    assert len(session.trace().val_losses) >= 4  # one per validation epoch
    assert not [f for f in callback.findings if f.severity.value != "info"], [str(f) for f in callback.findings]
    assert not session.recorder.attached


@LIGHTNING_WARNINGS
def test_real_lightning_trainer_names_a_softmax_before_cross_entropy(tmp_path):
    pl = _real_lightning()
    callback, _ = _fit_real(pl, tmp_path, final=nn.Softmax(dim=1), epochs=2)
    found = [f for f in callback.findings if f.code == "loss_activation_mismatch"]
    assert found and found[0].where == ("net.4",)
