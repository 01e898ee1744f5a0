"""Healthy setups: well-configured runs of the same architectures, on which the doctor must stay quiet.

Each follows the textbook recipe for its architecture: standardized inputs, He/Glorot-scale initialization
(torch's defaults or ours), logits into ``nn.CrossEntropyLoss``, a learning rate well inside the stable
range, batches of 16 or more with BatchNorm. A warning or error on any of them is a false finding (info-level
advice such as ``batch_size_advice`` is allowed). They also exercise what must NOT trigger a detector: a
noisy mini-batch loss, dropout, BatchNorm, layer norm, momentum and the first steps of training.
"""

from __future__ import annotations

from torch import nn

from ... import data as db_data
from ...nn import mlp, resnet_mlp, rnn_classifier, small_cnn
from .parts import adam, cancer_pairs, digits_pairs, sgd, splits_pairs
from .registry import Case, setup

__all__: list[str] = []

_HEALTHY_ALLOWED = {"batch_size_advice"}


@setup(
    "healthy_mlp_digits",
    "ReLU MLP, He init, Adam 1e-3, batches of 32 on the digits.",
    (),
    "mlp",
    allowed=_HEALTHY_ALLOWED,
)
def _healthy_mlp_digits(seed: int) -> Case:
    train, val = digits_pairs(seed)
    model = mlp([64, 64, 64, 10], init="he")
    return Case(model, nn.CrossEntropyLoss(), train, val, adam(1e-3), 32, 150, "mlp")


@setup(
    "healthy_mlp_iris_sgd", "Tanh MLP, Glorot init, SGD with momentum 0.9 on iris.", (), "mlp", allowed=_HEALTHY_ALLOWED
)
def _healthy_mlp_iris_sgd(seed: int) -> Case:
    train, val = splits_pairs(db_data.iris(seed=seed))  # 150 examples: cheap to load
    model = mlp([4, 16, 3], activation="tanh", init="glorot")
    return Case(model, nn.CrossEntropyLoss(), train, val, sgd(0.05, momentum=0.9), 16, 120, "mlp")


@setup(
    "healthy_mlp_wine_batchnorm",
    "ReLU MLP with BatchNorm, batches of 32, SGD+momentum (lr 0.01) for 40 steps on wine.",
    (),
    "mlp",
    allowed=_HEALTHY_ALLOWED,
)
def _healthy_mlp_wine_batchnorm(seed: int) -> Case:
    train, val = splits_pairs(db_data.wine(seed=seed))
    model = mlp([13, 32, 32, 3], norm="batch")
    return Case(model, nn.CrossEntropyLoss(), train, val, sgd(0.01, momentum=0.9), 32, 40, "mlp")


@setup(
    "healthy_mlp_cancer_dropout",
    "ReLU MLP with dropout 0.2, Adam, on standardized breast cancer.",
    (),
    "mlp",
    allowed=_HEALTHY_ALLOWED,
)
def _healthy_mlp_cancer_dropout(seed: int) -> Case:
    train, val = cancer_pairs(seed)
    model = mlp([30, 64, 32, 2], dropout=0.2, init="he")
    return Case(model, nn.CrossEntropyLoss(), train, val, adam(1e-3), 32, 120, "mlp")


@setup(
    "healthy_cnn_digits",
    "Small CNN (8, 16 channels), Adam 1e-3, batches of 32 on 8x8 digits.",
    (),
    "cnn",
    allowed=_HEALTHY_ALLOWED,
)
def _healthy_cnn_digits(seed: int) -> Case:
    train, val = digits_pairs(seed, images=True)
    return Case(small_cnn(1, 10, (8, 16)), nn.CrossEntropyLoss(), train, val, adam(1e-3), 32, 120, "cnn")


@setup(
    "healthy_cnn_digits_batchnorm",
    "Small CNN with BatchNorm2d, SGD+momentum, batches of 32.",
    (),
    "cnn",
    allowed=_HEALTHY_ALLOWED,
)
def _healthy_cnn_digits_batchnorm(seed: int) -> Case:
    train, val = digits_pairs(seed, images=True)
    model = small_cnn(1, 10, (8, 16), norm="batch")
    return Case(model, nn.CrossEntropyLoss(), train, val, sgd(0.01, momentum=0.9), 32, 80, "cnn")


@setup(
    "healthy_lstm_digits",
    "LSTM reading the digits row by row, Adam 3e-3, batches of 32.",
    (),
    "lstm",
    allowed=_HEALTHY_ALLOWED,
)
def _healthy_lstm_digits(seed: int) -> Case:
    train, val = digits_pairs(seed, rows=True)
    model = rnn_classifier("lstm", input_size=8, hidden_size=32, num_classes=10)
    return Case(model, nn.CrossEntropyLoss(), train, val, adam(3e-3), 32, 120, "lstm")


@setup(
    "healthy_gru_digits",
    "GRU reading the digits row by row, mean readout, Adam 3e-3.",
    (),
    "lstm",
    allowed=_HEALTHY_ALLOWED,
)
def _healthy_gru_digits(seed: int) -> Case:
    train, val = digits_pairs(seed, rows=True)
    model = rnn_classifier("gru", input_size=8, hidden_size=32, num_classes=10, readout="mean")
    return Case(model, nn.CrossEntropyLoss(), train, val, adam(3e-3), 32, 120, "lstm")


@setup(
    "healthy_resnet_cancer",
    "Residual MLP (3 blocks, width 32), Adam on breast cancer.",
    (),
    "residual",
    allowed=_HEALTHY_ALLOWED,
)
def _healthy_resnet_cancer(seed: int) -> Case:
    train, val = cancer_pairs(seed)
    model = resnet_mlp(3, 32, 30, 2)
    return Case(model, nn.CrossEntropyLoss(), train, val, adam(1e-3), 32, 100, "residual")


@setup(
    "healthy_resnet_digits_layernorm",
    "Residual MLP with LayerNorm (4 blocks, width 32), SGD+momentum on digits.",
    (),
    "residual",
    allowed=_HEALTHY_ALLOWED,
)
def _healthy_resnet_digits_layernorm(seed: int) -> Case:
    train, val = digits_pairs(seed)
    model = resnet_mlp(4, 32, 64, 10, norm="layer")
    return Case(model, nn.CrossEntropyLoss(), train, val, sgd(0.01, momentum=0.9), 32, 80, "residual")
