"""What the static checks measure: the traced forward (output op, loss ops, naive softmax, linear chains), the
weight table (fans against torch's own computation) and input statistics (against numpy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepbasics.doctor.trace import (
    batchnorm_layers,
    input_statistics,
    layer_kinds,
    linear_chains,
    trace_forward,
    weight_layers,
)
from deepbasics.nn import mlp, resnet_mlp, small_cnn


@pytest.mark.parametrize(
    ("model", "loss_fn", "target", "output_op", "loss_ops"),
    [
        (mlp([4, 3]), nn.CrossEntropyLoss(), "labels", "aten.addmm", ["aten._log_softmax", "aten.nll_loss_forward"]),
        (mlp([4, 3], final_activation=nn.Softmax(1)), nn.CrossEntropyLoss(), "labels", "aten._softmax", None),
        (mlp([4, 3], final_activation=nn.LogSoftmax(1)), nn.NLLLoss(), "labels", "aten._log_softmax",
         ["aten.nll_loss_forward"]),
        (mlp([4, 3], final_activation="sigmoid"), nn.BCEWithLogitsLoss(), "probs", "aten.sigmoid",
         ["aten.binary_cross_entropy_with_logits"]),
        (mlp([4, 3], final_activation="sigmoid"), F.mse_loss, "probs", "aten.sigmoid", ["aten.mse_loss"]),
    ],
)  # fmt: skip
def test_output_op_and_loss_ops(model, loss_fn, target, output_op, loss_ops):
    x = torch.randn(5, 4)
    y = torch.randint(0, 3, (5,)) if target == "labels" else torch.rand(5, 3)
    trace = trace_forward(model, loss_fn, x, y)
    assert trace.output_op == output_op
    if loss_ops is not None:
        assert trace.loss_ops == loss_ops
    assert trace.output_module == list(dict(model.named_children()))[-1]


def test_naive_softmax_pattern_and_not_the_stable_one():
    class Naive(nn.Module):
        def forward(self, z):
            e = z.exp()
            return e / e.sum(-1, keepdim=True)

    class Stable(nn.Module):
        def forward(self, z):
            e = torch.exp(z - z.amax(-1, keepdim=True))
            return e / e.sum(-1, keepdim=True)

    class Unrelated(nn.Module):
        def forward(self, z):
            return z.exp() / z.abs().sum(-1, keepdim=True)

    x = torch.randn(3, 4)
    assert trace_forward(nn.Sequential(nn.Linear(4, 4), Naive()), None, x, None).naive_softmax_sites == ["1"]
    assert trace_forward(nn.Sequential(Stable()), None, x, None).naive_softmax_sites == []  # max subtracted
    assert trace_forward(nn.Sequential(Unrelated()), None, x, None).naive_softmax_sites == []
    assert trace_forward(nn.Sequential(nn.Softmax(-1)), None, x, None).naive_softmax_sites == []


def test_trace_leaves_the_model_as_it_was():
    model = mlp([4, 8, 3], norm="batch", dropout=0.5)
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(6, 4), torch.randint(0, 3, (6,))
    rng = torch.get_rng_state()
    trace_forward(model, nn.CrossEntropyLoss(), x, y)
    assert model.training and all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())


def test_linear_chains():
    x = torch.randn(3, 8)
    linear = mlp([8, 8, 4], activation="identity")
    trace = trace_forward(linear, None, x, None)
    assert linear_chains(trace, layer_kinds(linear)) == [("linear1", "linear2")]
    relu = mlp([8, 8, 4], dropout=0.2)
    assert linear_chains(trace_forward(relu, None, x, None), layer_kinds(relu)) == []
    direct = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1), nn.Linear(8, 4))
    assert linear_chains(trace_forward(direct, None, x, None), layer_kinds(direct)) == [("0", "2")]
    residual = resnet_mlp(2, 8, 8, 4)  # the stem also feeds the skip connection: not a collapse
    assert linear_chains(trace_forward(residual, None, x, None), layer_kinds(residual)) == []


def test_weight_layers_fans_match_torch():
    model = small_cnn(1, 10, (4, 8))
    trace = trace_forward(model, None, torch.randn(2, 1, 8, 8), None)
    table = weight_layers(model, trace)
    modules = dict(model.named_modules())
    assert [row["name"] for row in table] == ["conv1", "conv2", "fc"]
    for row in table:
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(modules[row["name"]].weight)
        assert (row["fan_in"], row["fan_out"]) == (fan_in, fan_out)
        assert row["std"] == pytest.approx(modules[row["name"]].weight.std(correction=0).item(), rel=1e-5)
    assert [row["activation"] for row in table] == ["relu", "relu", None]


def test_layer_kinds_and_batchnorm():
    model = mlp([4, 8, 8, 2], activation="tanh", norm="batch", final_activation="sigmoid")
    kinds = layer_kinds(model)
    assert kinds["linear1"] == "matrix" and kinds["act1"] == "bounded" and kinds["norm1"] == "norm"
    assert batchnorm_layers(model) == ["norm1", "norm2"]
    assert batchnorm_layers(nn.Sequential(nn.BatchNorm1d(3))) == ["0"]
    assert layer_kinds(nn.Sequential(nn.ReLU()))["0"] == "relu"


@pytest.mark.parametrize("shape", [(50, 7), (20, 6, 5), (10, 3, 4, 4), (30,)])
def test_input_statistics_match_numpy(shape):
    x = torch.randn(*shape, dtype=torch.float64) * 3 + 1
    means, stds = input_statistics(x)
    a = x.numpy()
    if a.ndim == 1:
        a = a[:, None]
    elif a.ndim == 3:
        a = a.reshape(-1, a.shape[-1])
    elif a.ndim == 4:
        a = np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])
    np.testing.assert_allclose(means, a.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stds, a.std(0), rtol=1e-12)
    assert input_statistics(torch.arange(6)) == ([], [])  # token ids are not scaled
