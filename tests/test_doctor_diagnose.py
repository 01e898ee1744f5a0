"""diagnose on broken setups built here (each must be found) and healthy ones (no warning or error), plus its
promises: the user's model and optimizer are untouched, the data are validated, errors are clear."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from deepbasics.data import digits
from deepbasics.doctor import Report, Severity, diagnose
from deepbasics.nn import mlp, resnet_mlp, small_cnn


@pytest.fixture(scope="module")
def digit_data():
    splits = digits(train_size=400, seed=0)
    x, y = splits.tensors("train")
    vx, vy = splits.tensors("val")
    return (x.float(), y), (vx[:200].float(), vy[:200])


def serious(report: Report) -> set[str]:
    return {f.code for f in report.by_severity(Severity.WARNING)}


def sgd(lr):
    return lambda params: torch.optim.SGD(params, lr=lr)


def test_deep_sigmoid_mlp_has_vanishing_gradients(digit_data):
    torch.manual_seed(0)
    model = mlp([64] + [32] * 9 + [10], activation="sigmoid")
    report = diagnose(model, nn.CrossEntropyLoss(), digit_data[0], optimizer=sgd(0.1), steps=40, batch_size=32,
                      curvature=False)  # fmt: skip
    assert report.has("vanishing_gradient")
    finding = next(f for f in report.findings if f.code == "vanishing_gradient")
    assert finding.where[0] == "linear1" and finding.evidence["gradient_ratio"] < 1e-3


def test_lr_10_diverges_and_the_nonfinite_op_is_located(digit_data):
    torch.manual_seed(0)
    model = mlp([64, 64, 64, 10])
    report = diagnose(model, nn.CrossEntropyLoss(), digit_data[0], optimizer=sgd(10.0), steps=40, batch_size=32)
    assert report.has("diverging_loss")
    if report.has("nonfinite"):
        located = next(f for f in report.findings if f.code == "nonfinite")
        assert located.evidence.get("op", "").startswith("aten.")
        assert report.history["nonfinite"]["op"] == located.evidence["op"]
        assert report.meta["steps_run"] < 40


def test_softmax_before_cross_entropy(digit_data):
    torch.manual_seed(0)
    model = mlp([64, 32, 10], final_activation=nn.Softmax(dim=1))
    report = diagnose(model, nn.CrossEntropyLoss(), digit_data[0], steps=5, batch_size=32, curvature=False)
    found = [f for f in report.static_findings if f.code == "loss_activation_mismatch"]
    assert found and found[0].where == ("final_act",)
    assert found[0].evidence["output_op"] == "aten._softmax"


def test_functional_softmax_and_mse_on_sigmoid_are_found():
    class Net(nn.Module):
        def __init__(self, out):
            super().__init__()
            self.fc = nn.Linear(4, 3)
            self.out = out

        def forward(self, x):
            return self.out(self.fc(x))

    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    report = diagnose(Net(lambda z: z.softmax(-1)), nn.functional.cross_entropy, (x, y), steps=2, curvature=False)
    assert report.has("loss_activation_mismatch")
    report = diagnose(Net(torch.sigmoid), nn.MSELoss(), (x, torch.rand(64, 3)), steps=2, curvature=False)
    assert report.has("loss_activation_mismatch")
    assert any("functional sigmoid" in note for note in report.notes)  # LayerStats cannot hook it: said in a note
    report = diagnose(Net(lambda z: z), nn.functional.cross_entropy, (x, y), steps=2, curvature=False)
    assert not report.has("loss_activation_mismatch")


def test_naive_softmax_overflow_is_found_and_located():
    class NaiveHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            e = torch.exp(100.0 * self.fc(x))
            return torch.log(e / e.sum(-1, keepdim=True))

    torch.manual_seed(0)
    x, y = torch.randn(64, 4) * 3, torch.randint(0, 3, (64,))
    report = diagnose(NaiveHead(), nn.NLLLoss(), (x, y), steps=3, curvature=False)
    assert report.has("naive_softmax") and report.has("nonfinite")
    naive = next(f for f in report.findings if f.code == "naive_softmax")
    assert "(root)" in naive.where


def test_inputs_times_1000_are_unnormalized(digit_data):
    torch.manual_seed(0)
    (x, y), _ = digit_data
    report = diagnose(mlp([64, 32, 10]), nn.CrossEntropyLoss(), (x * 1e3, y), steps=5, batch_size=32,
                      curvature=False)  # fmt: skip
    finding = next(f for f in report.static_findings if f.code == "unnormalized_inputs")
    assert finding.evidence["max_std"] > 100


def test_batchnorm_with_batches_of_2(digit_data):
    torch.manual_seed(0)
    model = mlp([64, 32, 32, 10], norm="batch")
    report = diagnose(model, nn.CrossEntropyLoss(), digit_data[0], steps=10, batch_size=2, curvature=False)
    finding = next(f for f in report.static_findings if f.code == "batchnorm_small_batch")
    assert finding.where == ("norm1", "norm2") and finding.evidence["batch_size"] == 2


def test_relu_with_bias_minus_5_is_dead(digit_data):
    torch.manual_seed(0)
    model = mlp([64, 64, 64, 10])
    with torch.no_grad():
        model.linear1.bias.fill_(-5.0)
        model.linear2.bias.fill_(-5.0)
    report = diagnose(model, nn.CrossEntropyLoss(), digit_data[0], optimizer=sgd(0.05), steps=30, batch_size=32,
                      curvature=False)  # fmt: skip
    finding = next(f for f in report.findings if f.code == "dead_relu")
    assert "act1" in finding.where


def healthy_cases(digit_data):
    (x, y), val = digit_data
    torch.manual_seed(0)
    images = (x.reshape(-1, 1, 8, 8), y)
    vimages = (val[0].reshape(-1, 1, 8, 8), val[1])
    return {
        "digits MLP, ReLU, Adam": (mlp([64, 64, 10], init="he"), (x, y), val, None),
        "small CNN, Adam": (small_cnn(1, 10, (8, 16)), images, vimages, None),
        "residual MLP, SGD momentum": (
            resnet_mlp(2, 32, 64, 10),
            (x, y),
            val,
            lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
        ),
    }


@pytest.mark.parametrize("name", ["digits MLP, ReLU, Adam", "small CNN, Adam", "residual MLP, SGD momentum"])
def test_healthy_setups_have_no_warnings(digit_data, name):
    model, train, val, opt = healthy_cases(digit_data)[name]
    report = diagnose(model, nn.CrossEntropyLoss(), train, val, optimizer=opt, steps=80, batch_size=32)
    assert serious(report) == set(), report.summary()
    assert report.history["curvature"] is not None  # small models get the Hessian check
    assert len(report.history["val_losses"]) >= 10


def test_user_model_and_optimizer_are_untouched(digit_data):
    torch.manual_seed(0)
    model = mlp([64, 32, 10], norm="batch", dropout=0.2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(opt.state_dict())
    model.eval()
    rng = torch.get_rng_state()
    report = diagnose(model, nn.CrossEntropyLoss(), digit_data[0], optimizer=opt, steps=20, batch_size=32)
    assert all(torch.equal(a, state[k]) for k, a in model.state_dict().items())
    assert opt.state_dict() == opt_state and not model.training
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(rng, torch.get_rng_state())  # the global random stream did not move
    assert report.meta["optimizer"] == "SGD" and report.meta["lr"] == 0.1


def test_optimizer_copy_keeps_param_groups(digit_data):
    model = mlp([64, 32, 10])
    opt = torch.optim.SGD(
        [{"params": model.linear1.parameters(), "lr": 0.01}, {"params": model.linear2.parameters(), "lr": 0.3}],
        momentum=0.5,
    )
    report = diagnose(model, nn.CrossEntropyLoss(), digit_data[0], optimizer=opt, steps=2, curvature=False)
    assert report.meta["lr"] == 0.01
    report = diagnose(model, nn.CrossEntropyLoss(), digit_data[0], optimizer=opt, steps=2, lr=0.5, curvature=False)
    assert report.meta["lr"] == 0.5


def test_dataloader_input_and_reproducibility(digit_data):
    (x, y), _ = digit_data
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    torch.manual_seed(0)
    model = mlp([64, 32, 10], dropout=0.1)
    report = diagnose(model, nn.CrossEntropyLoss(), loader, steps=15, curvature=False)
    assert report.meta["batch_size"] == 32 and len(report.history["losses"]) == 15
    a = diagnose(
        model, nn.CrossEntropyLoss(), (x, y), steps=15, batch_size=16, generator=torch.Generator().manual_seed(3)
    )
    b = diagnose(
        model, nn.CrossEntropyLoss(), (x, y), steps=15, batch_size=16, generator=torch.Generator().manual_seed(3)
    )
    assert a.history["losses"] == b.history["losses"]  # same generator: same data order and dropout masks


def test_report_serializes(digit_data, tmp_path):
    torch.manual_seed(0)
    model = mlp([64, 32, 10], final_activation=nn.Softmax(dim=1))
    report = diagnose(model, nn.CrossEntropyLoss(), digit_data[0], digit_data[1], steps=10, batch_size=32)
    text = report.to_json(tmp_path / "out" / "doctor.json")
    data = json.loads((tmp_path / "out" / "doctor.json").read_text())
    assert json.loads(text) == data
    again = Report.from_dict(data)
    assert again.codes() == report.codes()
    assert {f.code for f in again.static_findings} == {f.code for f in report.static_findings}
    assert "loss_activation_mismatch" in report.summary()


def test_big_models_skip_curvature_politely(monkeypatch, digit_data):
    from deepbasics.doctor import thresholds

    monkeypatch.setattr(thresholds, "CURVATURE_MAX_PARAMS", 10)
    report = diagnose(mlp([64, 32, 10]), nn.CrossEntropyLoss(), digit_data[0], steps=3)
    assert report.history["curvature"] is None
    assert any("curvature skipped" in note for note in report.notes)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("model",), {}, TypeError, "torch.nn.Module"),
        ((None, "loss"), {}, TypeError, "loss_fn"),
        ((None, None, torch.randn(8, 4)), {}, TypeError, "pair or a DataLoader"),
        ((None, None, (torch.randn(8, 4), torch.zeros(7))), {}, ValueError, r"\(8, 4\) and targets \(7,\)"),
        ((None, None, (torch.randn(8, 5), torch.zeros(8, dtype=torch.long))), {}, ValueError, r"inputs \(8, 5\)"),
        ((None, None, None), {"steps": 0}, ValueError, "steps"),
        ((None, None, None), {"lr": -1.0}, ValueError, "lr"),
        ((None, None, None), {"optimizer": "adam"}, TypeError, "optimizer"),
    ],
)
def test_bad_input(args, kwargs, error, match):
    model = nn.Sequential(nn.Linear(4, 3))
    defaults = [model, nn.CrossEntropyLoss(), (torch.randn(8, 4), torch.zeros(8, dtype=torch.long))]
    call = [a if a is not None else d for a, d in zip(args, defaults, strict=False)] + defaults[len(args) :]
    with pytest.raises(error, match=match):
        diagnose(*call, **{"steps": 2, "curvature": False, **kwargs})


def test_batch_size_with_a_loader_is_rejected():
    loader = DataLoader(TensorDataset(torch.randn(8, 4), torch.zeros(8, dtype=torch.long)), batch_size=4)
    with pytest.raises(ValueError, match="batch_size"):
        diagnose(nn.Linear(4, 3), nn.CrossEntropyLoss(), loader, batch_size=4)
