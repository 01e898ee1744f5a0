"""deepbasics.nn.builders: shapes, parameter counts, layer names, init options and validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepbasics import init as db_init
from deepbasics.nn import (
    BatchNorm1d,
    BatchNorm2d,
    Dropout,
    GRUCell,
    LayerNorm,
    LSTMCell,
    RNNClassifier,
    Unrolled,
    gradient_per_step,
    mlp,
    resnet_mlp,
    rnn_classifier,
    small_cnn,
)


def _count(model):
    return sum(p.numel() for p in model.parameters())


def test_mlp_shapes_names_and_parameter_count():
    model = mlp([64, 32, 16, 10], norm="batch", dropout=0.2, final_activation="sigmoid")
    names = [name for name, _ in model.named_children()]
    assert names == [
        "linear1", "norm1", "act1", "dropout1",
        "linear2", "norm2", "act2", "dropout2",
        "linear3", "final_act",
    ]  # fmt: skip
    assert isinstance(model.norm1, BatchNorm1d) and isinstance(model.dropout2, Dropout)
    assert _count(model) == (64 + 1) * 32 + (32 + 1) * 16 + (16 + 1) * 10 + 2 * (32 + 16)
    y = model(torch.randn(5, 64))
    assert y.shape == (5, 10) and ((y > 0) & (y < 1)).all()
    plain = mlp([3, 4, 2], norm="layer", bias=False, activation=nn.Tanh)
    assert isinstance(plain.norm1, LayerNorm) and isinstance(plain.act1, nn.Tanh)
    assert _count(plain) == 3 * 4 + 4 * 2 + 2 * 4


def test_mlp_callable_init_fills_weights_and_zeroes_biases():
    model = mlp([3, 5, 2], init=lambda w: w.fill_(0.5))
    for layer in (model.linear1, model.linear2):
        assert torch.equal(layer.weight, torch.full_like(layer.weight, 0.5))
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


def test_mlp_named_inits_use_deepbasics_init():
    gen = torch.Generator().manual_seed(1)
    glorot = mlp([200, 100, 100], init="glorot", generator=gen)
    bound = db_init.glorot_bound(200, 100)
    assert glorot.linear1.weight.abs().max() <= bound and glorot.linear1.weight.abs().max() > 0.95 * bound
    assert torch.equal(glorot.linear1.bias, torch.zeros(100))
    he = mlp([400, 300, 10], init="he", generator=gen)
    assert abs(he.linear1.weight.std().item() - (2 / 400) ** 0.5) < 0.02 * (2 / 400) ** 0.5 * 5
    ortho = mlp([32, 32, 32], init="orthogonal", generator=gen)
    w = ortho.linear2.weight.detach()
    torch.testing.assert_close(w @ w.T, torch.eye(32), atol=1e-5, rtol=0)
    same = [mlp([6, 4, 2], init="he", generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(same[0].linear1.weight, same[1].linear1.weight)  # the generator makes it reproducible


def test_small_cnn_for_8x8_digits():
    model = small_cnn()
    x = torch.randn(4, 1, 8, 8)
    assert model(x).shape == (4, 10)
    assert _count(model) == (1 * 9 + 1) * 16 + (16 * 9 + 1) * 32 + (32 * 2 * 2 + 1) * 10
    normed = small_cnn(in_channels=3, num_classes=5, channels=(8,), image_size=6, norm="batch", dropout=0.5)
    assert (
        isinstance(normed.norm1, BatchNorm2d)
        and normed.conv1.bias is None
        and "dropout" in dict(normed.named_children())
    )
    assert normed(torch.randn(2, 3, 6, 6)).shape == (2, 5)
    assert small_cnn(pool=False, channels=(4, 4))(x).shape == (4, 10)
    layered = small_cnn(norm="layer")
    assert layered(x).shape == (4, 10)


def test_resnet_mlp_shapes_and_parameter_count():
    model = resnet_mlp(depth=3, width=8, in_features=5, out_features=2, norm="batch")
    assert [n for n, _ in model.named_children()] == ["stem", "block1", "block2", "block3", "head"]
    assert _count(model) == (5 + 1) * 8 + 3 * (2 * (8 + 1) * 8 + 2 * 8) + (8 + 1) * 2
    assert model(torch.randn(4, 5)).shape == (4, 2)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "lnlstm"])
def test_rnn_classifier_unrolls_our_cells(cell):
    model = rnn_classifier(cell, input_size=8, hidden_size=12, num_classes=10)
    x = torch.randn(3, 8, 8)  # (B, T, I): digits read row by row
    logits, states = model.forward_unrolled(x)
    assert logits.shape == (3, 10) and isinstance(states, Unrolled) and len(states) == 8
    torch.testing.assert_close(logits, model.head(states.final[0] if cell in ("lstm", "lnlstm") else states.final))
    per_step = gradient_per_step(states, nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])))
    assert per_step.shape == (8,) and per_step[-1] > 0


def test_rnn_classifier_readout_and_synonym():
    model = rnn_classifier("gru", input_size=2, hidden_size=3, output_size=4, readout="mean", batch_first=False)
    assert isinstance(model, RNNClassifier) and isinstance(model.cell, GRUCell)
    x = torch.randn(5, 2, 2)  # (T, B, I)
    _, states = model.forward_unrolled(x)
    torch.testing.assert_close(model(x), model.head(states.hidden.mean(0)))
    assert isinstance(rnn_classifier(input_size=2, hidden_size=3, num_classes=2).cell, LSTMCell)


def test_bad_arguments_raise_clearly():
    with pytest.raises(ValueError, match="at least 2 layer sizes"):
        mlp([5])
    with pytest.raises(ValueError, match="sizes"):
        mlp([5, 0, 2])
    with pytest.raises(ValueError, match="norm"):
        mlp([5, 2], norm="group")
    with pytest.raises(ValueError, match="dropout"):
        mlp([5, 3, 2], dropout=1.0)
    with pytest.raises(ValueError, match="init"):
        mlp([5, 2], init="xavier")
    with pytest.raises(TypeError, match="init"):
        mlp([5, 2], init=3)
    with pytest.raises(ValueError, match="activation"):
        mlp([5, 2], activation="bogus")
    with pytest.raises(ValueError, match="at least 8 for 3 pooling stages"):
        small_cnn(channels=(4, 4, 4), image_size=4)
    with pytest.raises(ValueError, match="exactly one of num_classes and output_size"):
        rnn_classifier("lstm", input_size=2, hidden_size=3)
    with pytest.raises(ValueError, match="cell"):
        rnn_classifier("transformer", input_size=2, hidden_size=3, num_classes=2)
    with pytest.raises(ValueError, match="readout"):
        rnn_classifier("rnn", input_size=2, hidden_size=3, num_classes=2, readout="first")
    with pytest.raises(ValueError, match="depth"):
        resnet_mlp(0, 4, 2, 2)
