"""Tests for deepbasics.train.checkpoint: bit-exact resume, atomic writes, weights_only-safe payloads."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

import deepbasics.train.checkpoint as ckpt_mod
from deepbasics import data
from deepbasics.train import Checkpoint, EarlyStopping, atomic_save, fit

COMPARED = ("train_loss", "val_loss", "step_loss", "grad_norm", "lr", "step_lr", "train_metrics", "val_metrics")


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=g)
    return x, (x[:, 0] + x[:, 1] > 0).long()


def _parts(init_seed: int):
    torch.manual_seed(init_seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    return model, opt, sched


def _train(path, epochs, resume_from=None, init_seed=0):
    x, y = _data()
    model, opt, sched = _parts(init_seed)
    callbacks = [EarlyStopping(patience=50), Checkpoint(path)]
    h = fit(
        model,
        nn.CrossEntropyLoss(),
        opt,
        (x, y),
        (x[:10], y[:10]),
        epochs=epochs,
        batch_size=8,
        scheduler=sched,
        callbacks=callbacks,
        resume_from=resume_from,
    )
    return model, h


def _equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_between_epochs_reaches_the_same_parameters(tmp_path):
    torch.manual_seed(7)
    full, h_full = _train(tmp_path / "full.pt", epochs=4)
    torch.manual_seed(7)
    _train(tmp_path / "run.pt", epochs=2)  # "killed" after epoch 2
    torch.manual_seed(12345)  # a different global RNG and init: everything must come from the checkpoint
    resumed, h_res = _train(tmp_path / "run.pt", epochs=4, resume_from=tmp_path / "run.pt", init_seed=99)
    assert _equal(full, resumed)
    for key in COMPARED:
        assert getattr(h_full, key) == getattr(h_res, key), key
    assert h_res.epochs == 4 and len(h_res.epoch_time) == 4


def test_resume_without_rng_restore_would_differ(tmp_path, monkeypatch):
    """The equality above depends on the RNG streams being restored (dropout masks, shuffling)."""
    torch.manual_seed(7)
    full, _ = _train(tmp_path / "full.pt", epochs=4)
    torch.manual_seed(7)
    _train(tmp_path / "run.pt", epochs=2)
    monkeypatch.setattr("deepbasics.train.loop.set_rng_state", lambda *a, **k: None)
    torch.manual_seed(12345)
    resumed, _ = _train(tmp_path / "run.pt", epochs=4, resume_from=tmp_path / "run.pt")
    assert not _equal(full, resumed)


def test_resume_with_seeded_loader_and_augmentation(tmp_path):
    g = torch.Generator().manual_seed(1)
    images, labels = torch.rand(24, 1, 8, 8, generator=g), torch.arange(24) % 3

    def run(epochs, path, resume_from=None):
        torch.manual_seed(0)
        aug = data.Compose(
            [
                data.RandomShift(1, generator=torch.Generator().manual_seed(2)),
                data.GaussianNoise(0.1, generator=torch.Generator().manual_seed(3)),
            ]
        )
        train = data.loader((images, labels), batch_size=8, seed=4, transform=aug)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        fit(
            model,
            nn.CrossEntropyLoss(),
            opt,
            train,
            epochs=epochs,
            callbacks=[Checkpoint(path)],
            resume_from=resume_from,
        )
        return model

    full = run(3, tmp_path / "a.pt")
    run(1, tmp_path / "b.pt")
    assert _equal(full, run(3, tmp_path / "b.pt", resume_from=tmp_path / "b.pt"))
    assert len(torch.load(tmp_path / "b.pt", weights_only=True)["rng"]["generators"]) == 3  # loader, shift, noise


def test_checkpoint_contents_load_with_weights_only(tmp_path):
    _train(tmp_path / "c.pt", epochs=2)
    payload = torch.load(tmp_path / "c.pt", weights_only=True)
    assert payload["epoch"] == 1 and payload["format"] == ckpt_mod.FORMAT
    assert set(payload) >= {"model", "optimizer", "scheduler", "callbacks", "history", "rng"}
    assert payload["history"]["train_loss"] == Checkpoint.load(tmp_path / "c.pt")["history"]["train_loss"]
    assert payload["callbacks"]["EarlyStopping"]["best_state"] is not None
    assert os.listdir(tmp_path) == ["c.pt"]  # no temporary file left behind


def test_every_and_last_epoch(tmp_path):
    x, y = _data()
    model, opt, _ = _parts(0)
    cp = Checkpoint(tmp_path / "c.pt", every=2)
    fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=5, callbacks=[cp])
    assert cp.saved_epochs == [1, 3, 4]


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    atomic_save({"a": torch.ones(2)}, path)
    real_save = torch.save

    def crash(obj, f, *args, **kwargs):
        real_save(obj, f)
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"a": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["c.pt"]
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))


def test_unsafe_payload_is_refused_before_writing(tmp_path):
    with pytest.raises(TypeError, match=r"checkpoint\['x'\]\[1\].*float64"):
        atomic_save({"x": [1.0, np.float64(2.0)]}, tmp_path / "c.pt")
    with pytest.raises(TypeError, match="object"):
        atomic_save({"x": object()}, tmp_path / "c.pt")
    assert not any(tmp_path.iterdir())


def test_manual_resume_and_bad_files(tmp_path):
    _train(tmp_path / "c.pt", epochs=2)
    model, opt, sched = _parts(5)
    next_epoch, history = Checkpoint.resume(
        tmp_path / "c.pt", model, opt, sched, [EarlyStopping(patience=50)], generators=[torch.Generator()]
    )
    assert next_epoch == 2 and history.epochs == 2 and sched.last_epoch == 2
    with pytest.raises(FileNotFoundError, match="existing checkpoint"):
        Checkpoint.load(tmp_path / "missing.pt")
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="checkpoint"):
        Checkpoint.load(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="generator state"):
        Checkpoint.resume(tmp_path / "c.pt", model, opt, sched, generators=[])
    with pytest.raises(ValueError, match="every"):
        Checkpoint(tmp_path / "c.pt", every=0)


def test_resuming_a_stopped_run_trains_no_further(tmp_path):
    x = torch.ones(4, 1)

    def run(epochs, resume_from=None):
        model = nn.Linear(1, 1, bias=False)
        nn.init.zeros_(model.weight)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        cbs = [EarlyStopping(patience=2), Checkpoint(tmp_path / "c.pt")]
        h = fit(
            model,
            nn.MSELoss(),
            opt,
            (x, x),
            (x, 0.5 * x),
            epochs=epochs,
            batch_size=None,
            callbacks=cbs,
            resume_from=resume_from,
        )
        return model, h

    model, h = run(10)
    again, h2 = run(20, resume_from=tmp_path / "c.pt")
    assert h2.epochs == h.epochs == 5 and h2.stop_reason == h.stop_reason
    assert torch.equal(model.weight, again.weight)  # best weights restored from the saved EarlyStopping state
