"""locate_nonfinite on injected faults: the right op, module, phase and kind; None when healthy."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.nn.modules import module as module_mod
from torch.utils._python_dispatch import _get_current_dispatch_mode

from deepbasics.nonfinite import NonFiniteReport, locate_nonfinite


class NaiveSoftmax(nn.Module):
    def forward(self, x):
        return x.exp() / x.exp().sum(-1, keepdim=True)  # overflows for logits > 88.7 in float32


class Classifier(nn.Module):
    def __init__(self, head: nn.Module):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        self.head = head

    def forward(self, x):
        return self.head(self.body(x) * 100.0)


def uninstrumented() -> bool:
    return (
        _get_current_dispatch_mode() is None
        and not module_mod._global_forward_hooks
        and not module_mod._global_forward_pre_hooks
    )


def test_naive_softmax_overflow_names_exp_and_submodule():
    torch.manual_seed(0)
    model, x = Classifier(NaiveSoftmax()), torch.randn(16, 4) * 5
    report = locate_nonfinite(lambda: model(x).sum())
    assert isinstance(report, NonFiniteReport)
    assert (report.op, report.module, report.phase, report.kind) == ("aten.exp.default", "head", "forward", "produced")
    assert report.inputs[0].finite and report.inputs[0].max > math.log(torch.finfo(torch.float32).max)
    assert report.outputs[0].n_posinf > 0
    assert "exp" in report.hint and "head" in str(report)
    assert uninstrumented()


def test_stable_softmax_is_healthy():
    torch.manual_seed(0)
    model, x = Classifier(nn.Softmax(dim=-1)), torch.randn(16, 4) * 5
    assert locate_nonfinite(lambda: model(x).sum()) is None
    assert uninstrumented()


def test_deepbasics_naive_softmax_overflows_at_exp():
    numerics = pytest.importorskip("deepbasics.numerics")
    if not hasattr(numerics, "naive_softmax"):
        pytest.skip("deepbasics.numerics.naive_softmax not available")
    report = locate_nonfinite(numerics.naive_softmax, torch.tensor([1000.0, 0.0]))
    assert report is not None and report.op == "aten.exp.default" and report.module is None


def test_log_of_zero():
    report = locate_nonfinite(lambda p: torch.log(p).sum(), torch.tensor([0.5, 0.0]))
    assert report.op == "aten.log.default" and report.outputs[0].n_neginf == 1


def test_division_by_zero():
    report = locate_nonfinite(lambda a, b: a / b, torch.tensor([1.0, 2.0]), torch.tensor([1.0, 0.0]))
    assert report.op == "aten.div.Tensor" and report.kind == "produced"
    assert report.inputs[1].min == 0.0 and report.outputs[0].n_posinf == 1


def test_inplace_overflow_is_produced_not_input():
    report = locate_nonfinite(lambda x: x.clone().exp_(), torch.tensor([100.0]))
    assert report.op == "aten.exp_.default" and report.kind == "produced"
    assert report.inputs[0].max == 100.0  # the range before the in-place op overwrote it


class Root(nn.Module):
    def forward(self, x):
        return torch.sqrt(x)  # finite at 0; its gradient 1 / (2 sqrt(x)) is not


def test_backward_only_fault_sqrt_at_zero():
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), Root())
    with torch.no_grad():
        model[0].weight.fill_(-1.0)
        model[0].bias.zero_()
    x = torch.ones(2, 3)
    assert torch.isfinite(model(x)).all()  # the forward is healthy
    report = locate_nonfinite(lambda: model(x).sum())
    assert report.phase == "backward" and report.backward_of == "SqrtBackward0"
    assert report.module == "2" and report.op == "aten.div.Tensor"
    assert locate_nonfinite(lambda: model(x).sum(), backward=False) is None


def test_backward_overflow_with_finite_forward():
    x = torch.tensor([1.7], requires_grad=True)
    report = locate_nonfinite(lambda: (x * 50).exp().sum())  # exp(85) is finite, d/dx = 50 exp(85) is not
    assert report.phase == "backward" and report.op == "aten.mul.Tensor" and report.backward_of == "MulBackward0"
    assert report.module is None


def test_nonfinite_parameter_is_reported_as_input():
    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh())
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    report = locate_nonfinite(model, torch.ones(1, 2))
    assert report.kind == "input" and report.module == "0" and "parameters" in report.hint
    assert any(r.n_nan == 1 for r in report.inputs)


def test_nonfinite_argument_is_reported_as_input():
    report = locate_nonfinite(lambda t: t * 2, torch.tensor([1.0, math.inf]))
    assert report.kind == "input" and report.op == "aten.mul.Tensor" and report.inputs[0].n_posinf == 1


def test_float64_threshold_is_higher():
    assert locate_nonfinite(torch.exp, torch.tensor([700.0], dtype=torch.float64)) is None
    assert locate_nonfinite(torch.exp, torch.tensor([710.0], dtype=torch.float64)).op == "aten.exp.default"


def test_report_is_plain_data_and_readable():
    report = locate_nonfinite(lambda: torch.log(torch.zeros(2)))
    blob = json.loads(json.dumps(report.to_dict()))
    assert blob["op"] == "aten.log.default" and blob["phase"] == "forward" and blob["inputs"][0]["max"] == 0.0
    text = str(report)
    assert text.startswith("aten.log.default (forward") and "outside any module" in text and "hint:" in text


def test_exception_propagates_and_instrumentation_is_removed():
    def broken():
        torch.ones(2).exp()
        raise KeyError("user bug")

    with pytest.raises(KeyError, match="user bug"):
        locate_nonfinite(broken)
    assert uninstrumented()


def test_not_callable_is_rejected():
    with pytest.raises(TypeError, match="fn: expected a callable"):
        locate_nonfinite(torch.ones(3))
