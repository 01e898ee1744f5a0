"""The loss calls a script makes: output activation against the loss (loss_activation_mismatch at run time) and
evaluation passes recorded as validation losses (overfitting in unmodified loops), with the tap's bookkeeping."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from deepbasics.doctor import watch
from deepbasics.doctor.detectors import loss_activation_runtime
from deepbasics.doctor.losstap import INSPECT_EVERY, INSPECT_FIRST, LossWatch, inspected, producer_of, suspended
from deepbasics.doctor.records import LossCall

# ------------------------------------------------------------------------------------- recorded calls -> verdict

# fmt: off
PAIRING_TABLE = [
    # (name, record, expected severity or None, expected where)
    ("softmax module before CrossEntropyLoss", LossCall("cross_entropy", "softmax", "head", 3), "warning", "head"),
    ("probability rows into CrossEntropyLoss (no graph)", LossCall("cross_entropy", None, None, 3, probabilities=3),
     "warning", "model output"),
    ("one probability batch is not enough", LossCall("cross_entropy", None, None, 1, probabilities=1), None, None),
    ("functional softmax before CE", LossCall("cross_entropy", "softmax", None, 3), "warning", "softmax (functional)"),
    ("LogSoftmax before CrossEntropyLoss", LossCall("cross_entropy", "log_softmax", "3", 3), "warning", "3"),
    ("log-probability rows into CE", LossCall("cross_entropy", None, None, 4, log_probabilities=4), "warning",
     "model output"),
    ("logits into CrossEntropyLoss", LossCall("cross_entropy", None, None, 10), None, None),
    ("probabilities into NLLLoss", LossCall("nll_loss", "softmax", "out", 3), "warning", "out"),
    ("log-probabilities into NLLLoss", LossCall("nll_loss", "log_softmax", "out", 3, log_probabilities=3), None,
     None),
    ("sigmoid before BCEWithLogitsLoss", LossCall("binary_cross_entropy_with_logits", "sigmoid", "act", 3), "warning",
     "act"),
    ("values in [0, 1] on many calls into BCEWithLogits", LossCall("binary_cross_entropy_with_logits", None, None, 5,
     unit_interval=5), "warning", "model output"),
    ("small logits on a few calls", LossCall("binary_cross_entropy_with_logits", None, None, 3, unit_interval=3), None,
     None),
    ("sigmoid + MSE on 0/1 targets", LossCall("mse_loss", "sigmoid", "s", 3, binary_targets=3), "warning", "s"),
    ("sigmoid + MSE on continuous targets (reconstruction)", LossCall("mse_loss", "sigmoid", "s", 3), None, None),
    ("MSE on a linear output", LossCall("mse_loss", None, None, 3, binary_targets=3), None, None),
    ("MSE on balanced class indices 0..9", LossCall("mse_loss", None, None, 5, index_targets=5,
     target_counts=[16, 17, 15, 14, 18, 16, 16, 15, 17, 16]), "warning", "model output"),
    ("MSE on Poisson-like counts (a rare top value)", LossCall("mse_loss", None, None, 5, index_targets=5,
     target_counts=[22, 43, 43, 29, 14, 6, 2, 1]), None, None),
    ("MSE on 0/1/2 with a value missing", LossCall("mse_loss", None, None, 5, index_targets=5,
     target_counts=[30, 0, 30]), None, None),
    ("MSE on integer targets on one call only", LossCall("mse_loss", None, None, 5, index_targets=1,
     target_counts=[3, 3, 3, 3]), None, None),
]
# fmt: on


@pytest.mark.parametrize(("name", "record", "severity", "where"), PAIRING_TABLE, ids=[r[0] for r in PAIRING_TABLE])
def test_runtime_pairing_on_recorded_calls(name, record, severity, where):
    found = loss_activation_runtime([record])
    assert [f.severity.value for f in found] == ([severity] if severity else [])
    if found:
        assert found[0].code == "loss_activation_mismatch" and found[0].where == (where,)
        assert found[0].fix and found[0].evidence["calls_inspected"] == record.calls


# ----------------------------------------------------------------------------------------------- recording


def data(n=128, d=6, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return x, x[:, :classes].argmax(1)


def train(model, loss_fn, steps=12, target=None, opt=None, after=None):
    x, y = data()
    y = y if target is None else target(y)
    opt = opt or torch.optim.SGD(model.parameters(), lr=0.05)
    with watch(model, opt) as session:
        for i in range(steps):
            rows = slice((i * 16) % 112, (i * 16) % 112 + 16)
            opt.zero_grad()
            out = model(x[rows]) if after is None else after(model(x[rows]))
            loss = loss_fn(out, y[rows])
            loss.backward()
            opt.step()
            session.step(loss)
    return session


def pairing(session):
    return [(f.severity.value, f.where) for f in session.findings if f.code == "loss_activation_mismatch"]


def head(final=None, out=3):
    torch.manual_seed(0)
    layers = [nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, out)]
    return nn.Sequential(*layers, *([final] if final is not None else []))


def test_softmax_module_before_cross_entropy_is_named():
    session = train(head(nn.Softmax(dim=1)), nn.CrossEntropyLoss())
    assert pairing(session) == [("warning", ("3",))]
    (call,) = session.trace().loss_calls
    assert call.producer == "softmax" and call.module == "3" and call.probabilities == call.calls > 0


def test_functional_softmax_before_cross_entropy():
    # F.cross_entropy looked up at call time, as a script does (a reference taken before the watch is not seen)
    session = train(head(), lambda o, t: F.cross_entropy(o, t), after=lambda z: torch.softmax(z, dim=1).squeeze(0))
    assert pairing(session) == [("warning", ("softmax (functional)",))]


def test_log_softmax_before_cross_entropy_is_a_warning():
    session = train(head(nn.LogSoftmax(dim=1)), nn.CrossEntropyLoss())
    assert pairing(session) == [("warning", ("3",))]


def test_sigmoid_before_bce_with_logits():
    session = train(head(nn.Sigmoid(), out=1), nn.BCEWithLogitsLoss(), target=lambda y: (y == 0).float()[:, None])
    assert pairing(session) == [("warning", ("3",))]


def test_probabilities_into_nll_loss():
    session = train(head(nn.Softmax(dim=1)), nn.NLLLoss())
    assert pairing(session) == [("warning", ("3",))]


@pytest.mark.parametrize(
    ("model", "loss_fn", "target"),
    [
        (head(), nn.CrossEntropyLoss(), None),  # logits
        (head(nn.LogSoftmax(dim=1)), nn.NLLLoss(), None),  # log-probabilities
        (head(out=1), nn.BCEWithLogitsLoss(), lambda y: (y == 0).float()[:, None]),
        (head(nn.Sigmoid(), out=6), nn.MSELoss(), lambda y: torch.rand(len(y), 6)),  # reconstruction in [0, 1]
    ],
    ids=["logits+CE", "logsoftmax+NLL", "logits+BCEWithLogits", "sigmoid+MSE regression"],
)
def test_right_pairings_are_silent(model, loss_fn, target):
    assert pairing(train(model, loss_fn, target=target)) == []


def test_producer_is_read_through_views_and_not_past_other_ops():
    z = torch.randn(4, 3, requires_grad=True)
    assert producer_of(torch.softmax(z, 1).view(12))[0] == "softmax"
    assert producer_of(torch.sigmoid(z)[:, :1].squeeze(1))[0] == "sigmoid"
    assert producer_of(torch.softmax(z, 1) * 2)[0] is None  # a scaled softmax is not the softmax
    assert producer_of(z.detach())[0] is None


# --------------------------------------------------------------------------------------------- validation


def evaluate_in_batches(model, x, y, sizes, reduction="mean"):
    model.eval()
    with torch.no_grad():
        start = 0
        for size in sizes:
            F.cross_entropy(model(x[start : start + size]), y[start : start + size], reduction=reduction)
            start += size
    model.train()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_an_evaluation_pass_is_one_validation_loss_weighted_by_batch_size(reduction):
    model = head(nn.Dropout(0.1))
    x, y = data()
    xv, yv = data(25, seed=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    expected = []
    with watch(model, opt) as session:
        for i in range(6):
            opt.zero_grad()
            loss = F.cross_entropy(model(x[i * 16 : i * 16 + 16]), y[i * 16 : i * 16 + 16])
            loss.backward()
            opt.step()
            session.step(loss)
            if i % 2 == 1:
                evaluate_in_batches(model, xv, yv, (10, 10, 5), reduction)  # uneven last batch
                model.eval()
                with torch.no_grad(), suspended():  # the reference, hidden from the tap
                    expected.append((i, float(F.cross_entropy(model(xv), yv))))
                model.train()
    got = session.trace().val_losses
    assert [s for s, _ in got] == [s for s, _ in expected]
    assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-6)


def test_explicit_validation_losses_replace_the_tapped_ones():
    model = head()
    x, y = data()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with watch(model, opt) as session:
        for _ in range(4):
            opt.zero_grad()
            loss = F.cross_entropy(model(x[:16]), y[:16])
            loss.backward()
            opt.step()
            session.step(loss)
            evaluate_in_batches(model, x, y, (64, 64))
        session.log_val(0.5)
        evaluate_in_batches(model, x, y, (64, 64))
    assert session.trace().val_losses == [(3, 0.5)]


def test_losses_of_a_model_trained_in_eval_mode_are_not_validation_losses():
    model = head(nn.Dropout(0.5))
    model.eval()
    session = train(model, nn.CrossEntropyLoss())
    assert session.trace().val_losses == []
    assert {f.code for f in session.findings} >= {"eval_mode_training"}


@pytest.mark.slow
def test_overfitting_is_found_from_the_loops_own_evaluation_passes():
    g = torch.Generator().manual_seed(0)
    x, xv = torch.randn(48, 20, generator=g), torch.randn(400, 20, generator=g)
    flip = torch.rand(48, generator=g) < 0.3  # noisy labels: memorizing them is what the validation loss punishes
    y, yv = ((x[:, 0] > 0) ^ flip).long(), (xv[:, 0] > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 2))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with watch(model, opt) as session:
        for step in range(300):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            session.step(loss)
            if step % 15 == 14:
                evaluate_in_batches(model, xv, yv, (128, 128, 128, 16))
    val = session.trace().val_losses
    assert len(val) == 20 and val[-1][1] > 1.5 * min(v for _, v in val)  # the direct measurement: it rose
    assert "overfitting" in {f.code for f in session.findings}


def test_the_tap_is_shared_and_restored_and_suspended_hides_calls():
    original = F.cross_entropy
    a, b = LossWatch(head(), lambda: 0).attach(), LossWatch(head(), lambda: 0).attach()
    assert F.cross_entropy is not original and F.cross_entropy.__wrapped__ is original
    a.detach()
    assert F.cross_entropy is not original  # b still listens
    b.model.eval()  # an evaluation pass
    with suspended():
        F.cross_entropy(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    assert b._pass == []
    F.cross_entropy(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    assert len(b._pass) == 1
    b.detach()
    assert F.cross_entropy is original
    with pytest.raises(ValueError, match="batch_size"), watch(head()):  # the user's errors surface, unchanged
        F.cross_entropy(torch.randn(4, 3), torch.zeros(5, dtype=torch.long))
    assert F.cross_entropy is original


def test_class_indices_regressed_with_mse_are_named_and_real_valued_targets_are_not():
    classes = train(head(out=1), lambda o, t: F.mse_loss(o.squeeze(1), t), target=lambda y: y.float())
    assert pairing(classes) == [("warning", ("model output",))]
    (call,) = classes.trace().loss_calls
    assert call.index_targets == call.calls > 0 and len(call.target_counts) >= 3
    real = train(head(out=1), lambda o, t: F.mse_loss(o.squeeze(1), t), target=lambda y: y.float() + 0.5)
    assert pairing(real) == []
    several = train(head(out=3), nn.MSELoss(), target=lambda y: F.one_hot(y, 3).float() * 2)  # not one output
    assert pairing(several) == []


def test_inspected_calls_thin_out_as_the_run_grows():
    calls = [c for c in range(1, 20 * INSPECT_EVERY + 1) if inspected(c)]
    assert calls == [*range(1, INSPECT_FIRST + 1), *(INSPECT_EVERY * 2**k for k in range(5))]
