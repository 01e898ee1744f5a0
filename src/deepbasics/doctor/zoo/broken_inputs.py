"""Broken setups, part 2: generalization, curvature, inputs, losses and batch size (FAQ Q10, Q3, Q5, Q8, Q13, Q14).

Conventions as in :mod:`.broken_training`.
"""

from __future__ import annotations

import torch
from torch import nn

from ... import data as db_data
from ...nn import mlp, resnet_mlp, rnn_classifier, small_cnn
from .parts import (
    NaiveLogSoftmax,
    Scale,
    adam,
    binary_targets,
    cancer_pairs,
    digits_pairs,
    normal_init_,
    sgd,
)
from .registry import Case, setup

__all__: list[str] = []  # setups are reached through the registry, not by name


# --- generalization (FAQ Q10) --------------------------------------------------------------------------------


@setup(
    "overfit_mlp",
    "100 training digits for a ~100k-parameter MLP trained with Adam: the training loss goes to 0 while the "
    "validation loss turns up (FAQ Q10).",
    {"overfitting"},
    "mlp",
    faq="Q10",
)
def _overfit_mlp(seed: int) -> Case:
    train, val = digits_pairs(seed, train_size=100)
    model = mlp([64, 512, 128, 10])
    return Case(model, nn.CrossEntropyLoss(), train, val, adam(1e-3), None, 300, "mlp")


@setup(
    "overfit_residual",
    "A 4-block residual MLP (~70k parameters) on 60 breast-cancer examples: it memorizes them and the "
    "validation loss rises (FAQ Q10).",
    {"overfitting"},
    "residual",
    faq="Q10",
)
def _overfit_residual(seed: int) -> Case:
    train, val = cancer_pairs(seed, train_size=60)
    model = resnet_mlp(4, 96, 30, 2)
    return Case(model, nn.CrossEntropyLoss(), train, val, adam(1e-3), None, 300, "residual")


# --- curvature: ill conditioning and saddles (FAQ Q3.1, Q3.2) ----------------------------------------------


@setup(
    "ill_conditioned_features",
    "Logistic-regression-like MLP on breast-cancer features rescaled by factors from 0.01 to 10: the Hessian's "
    "eigenvalues follow the squared scales and its condition number is huge (LeCun et al. 1998, section 4.3).",
    {"ill_conditioned"},
    "mlp",
    allowed={"unnormalized_inputs", "slow_convergence", "oscillating_loss"},
    faq="Q3.1",
)
def _ill_conditioned_features(seed: int) -> Case:
    train, val = cancer_pairs(seed)
    scales = torch.logspace(-2, 1, train[0].shape[1], dtype=train[0].dtype)  # (F,) 0.01 .. 10
    train, val = (train[0] * scales, train[1]), (val[0] * scales, val[1])
    model = mlp([30, 2])
    return Case(model, nn.CrossEntropyLoss(), train, val, sgd(0.01), 32, 100, "mlp")


@setup(
    "saddle_linear_mlp",
    "A two-layer linear network started at (almost) zero: the origin is a saddle of the loss (Saxe et al. 2014; "
    "Dauphin et al. 2014), the gradient is ~0, the Hessian has negative eigenvalues and the loss stalls (FAQ Q3.2).",
    {"saddle_point"},
    "mlp",
    allowed={"slow_convergence", "vanishing_gradient", "bad_init_scale"},
    faq="Q3.2",
)
def _saddle_linear_mlp(seed: int) -> Case:
    generator = torch.Generator().manual_seed(seed)
    x, y = db_data.teacher_student(600, 8, 4, noise=0.05, generator=generator, out_features=4)
    train, val = (x[:400], y[:400]), (x[400:], y[400:])
    model = normal_init_(mlp([8, 8, 4], activation="identity", bias=False), 1e-4)  # no bias to learn meanwhile
    return Case(model, nn.MSELoss(), train, val, sgd(0.01), None, 100, "mlp", task="regression")


# --- inputs and losses (FAQ Q3.1, Q5, Q8, Q14) --------------------------------------------------------------


@setup(
    "unnormalized_breast_cancer_mlp",
    "The raw breast-cancer features (standard deviations from 3e-3 to 6e2, values up to 4254) fed to an MLP "
    "without standardization (LeCun et al. 1998, section 4.3; FAQ Q3.1).",
    {"unnormalized_inputs"},
    "mlp",
    allowed={
        "ill_conditioned",
        "oscillating_loss",
        "diverging_loss",
        "exploding_gradient",
        "slow_convergence",
        "dead_relu",
        "nonfinite",
    },
    faq="Q3.1",
)
def _unnormalized_breast_cancer_mlp(seed: int) -> Case:
    train, val = cancer_pairs(seed, standardize=False)
    return Case(mlp([30, 32, 2]), nn.CrossEntropyLoss(), train, val, sgd(1e-3), 32, 100, "mlp")


@setup(
    "unnormalized_digits_cnn",
    "Digits images multiplied by 1000 after standardization, fed to a CNN (FAQ Q3.1).",
    {"unnormalized_inputs"},
    "cnn",
    allowed={
        "ill_conditioned",
        "oscillating_loss",
        "diverging_loss",
        "exploding_gradient",
        "slow_convergence",
        "dead_relu",
        "nonfinite",
    },
    faq="Q3.1",
)
def _unnormalized_digits_cnn(seed: int) -> Case:
    train, val = digits_pairs(seed, images=True, scale=1e3)
    return Case(small_cnn(1, 10, (8, 16)), nn.CrossEntropyLoss(), train, val, sgd(1e-4), 32, 80, "cnn")


@setup(
    "unnormalized_lstm",
    "An LSTM reading digit rows multiplied by 1000: every gate saturates from the first step (FAQ Q3.1).",
    {"unnormalized_inputs"},
    "lstm",
    allowed={
        "ill_conditioned",
        "oscillating_loss",
        "diverging_loss",
        "slow_convergence",
        "saddle_point",
        "vanishing_gradient",
    },
    faq="Q3.1",
)
def _unnormalized_lstm(seed: int) -> Case:
    train, val = digits_pairs(seed, rows=True, scale=1e3)
    model = rnn_classifier("lstm", input_size=8, hidden_size=32, num_classes=10)
    return Case(model, nn.CrossEntropyLoss(), train, val, adam(1e-3), 32, 80, "lstm")


@setup(
    "naive_softmax_mlp",
    "An MLP whose forward computes log(exp(z) / sum exp(z)) on logits scaled by 50: exp overflows float32 and "
    "the loss becomes nan (FAQ Q8).",
    {"naive_softmax", "nonfinite"},
    "mlp",
    allowed={"diverging_loss", "exploding_gradient"},
    faq="Q8",
)
def _naive_softmax_mlp(seed: int) -> Case:
    train, val = digits_pairs(seed)
    model = mlp([64, 64, 10])
    model.add_module("scale", Scale(50.0))
    model.add_module("log_softmax", NaiveLogSoftmax(dim=1))
    return Case(model, nn.NLLLoss(), train, val, sgd(0.05), 32, 60, "mlp")


@setup(
    "naive_softmax_lstm",
    "An LSTM digits classifier followed by a naive log-softmax on logits scaled by 100 (FAQ Q8).",
    {"naive_softmax", "nonfinite"},
    "lstm",
    allowed={"diverging_loss", "exploding_gradient"},
    faq="Q8",
)
def _naive_softmax_lstm(seed: int) -> Case:
    train, val = digits_pairs(seed, rows=True)
    lstm = rnn_classifier("lstm", input_size=8, hidden_size=32, num_classes=10)
    model = nn.Sequential()
    model.add_module("rnn", lstm)
    model.add_module("scale", Scale(100.0))
    model.add_module("log_softmax", NaiveLogSoftmax(dim=1))
    return Case(model, nn.NLLLoss(), train, val, sgd(0.05), 32, 60, "lstm")


@setup(
    "softmax_ce_mlp",
    "An MLP ending in nn.Softmax trained with nn.CrossEntropyLoss, which applies log-softmax itself: the "
    "softmax is taken twice and the gradients shrink (FAQ Q5).",
    {"loss_activation_mismatch"},
    "mlp",
    allowed={"slow_convergence", "saturated_activation"},
    faq="Q5",
)
def _softmax_ce_mlp(seed: int) -> Case:
    train, val = digits_pairs(seed)
    model = mlp([64, 64, 10], final_activation=nn.Softmax(dim=1))
    return Case(model, nn.CrossEntropyLoss(), train, val, sgd(0.1), 32, 100, "mlp")


@setup(
    "softmax_ce_lstm",
    "An LSTM classifier ending in nn.Softmax, trained with nn.CrossEntropyLoss (FAQ Q5).",
    {"loss_activation_mismatch"},
    "lstm",
    allowed={"slow_convergence", "saturated_activation", "saddle_point"},
    faq="Q5",
)
def _softmax_ce_lstm(seed: int) -> Case:
    train, val = digits_pairs(seed, rows=True)
    model = nn.Sequential()
    model.add_module("rnn", rnn_classifier("lstm", input_size=8, hidden_size=32, num_classes=10))
    model.add_module("softmax", nn.Softmax(dim=1))
    return Case(model, nn.CrossEntropyLoss(), train, val, adam(1e-3), 32, 80, "lstm")


@setup(
    "sigmoid_mse_residual",
    "A residual MLP with a sigmoid output trained with MSE on 0/1 labels: the gradient carries a factor "
    "sigma'(z) that vanishes for confident wrong answers; cross-entropy on logits removes it (FAQ Q5).",
    {"loss_activation_mismatch"},
    "residual",
    allowed={"slow_convergence", "saturated_activation"},
    faq="Q5",
)
def _sigmoid_mse_residual(seed: int) -> Case:
    train, val = cancer_pairs(seed)
    model = resnet_mlp(2, 32, 30, 1)
    model.add_module("sigmoid", nn.Sigmoid())
    return Case(
        model, nn.MSELoss(), binary_targets(train), binary_targets(val), sgd(0.1), 32, 100, "residual", task="binary"
    )


@setup(
    "batchnorm_batch2_mlp",
    "An MLP with BatchNorm trained with batches of 2: the batch statistics are mostly noise and differ from "
    "the running averages used at evaluation (Ioffe 2017; FAQ Q14).",
    {"batchnorm_small_batch"},
    "mlp",
    allowed={"batch_size_advice", "oscillating_loss", "overfitting"},
    faq="Q14",
)
def _batchnorm_batch2_mlp(seed: int) -> Case:
    train, val = digits_pairs(seed)
    model = mlp([64, 64, 64, 10], norm="batch")
    return Case(model, nn.CrossEntropyLoss(), train, val, sgd(0.05), 2, 100, "mlp")


@setup(
    "batchnorm_batch2_cnn",
    "A CNN with BatchNorm2d trained with batches of 2 images (FAQ Q14).",
    {"batchnorm_small_batch"},
    "cnn",
    allowed={"batch_size_advice", "oscillating_loss", "overfitting"},
    faq="Q14",
)
def _batchnorm_batch2_cnn(seed: int) -> Case:
    train, val = digits_pairs(seed, images=True)
    model = small_cnn(1, 10, (8, 16), norm="batch")
    return Case(model, nn.CrossEntropyLoss(), train, val, sgd(0.05), 2, 80, "cnn")


# --- batch size (FAQ Q13) ------------------------------------------------------------------------------------


@setup(
    "tiny_batch_mlp",
    "Batches of 2 examples with plain SGD: the gradient noise scale B_simple = tr(Sigma) / |G|^2 is far above "
    "the batch size, so larger batches would cut the steps needed (McCandlish et al. 2018; FAQ Q13).",
    {"batch_size_advice"},
    "mlp",
    allowed={"oscillating_loss"},
    faq="Q13",
)
def _tiny_batch_mlp(seed: int) -> Case:
    train, val = digits_pairs(seed)
    return Case(mlp([64, 64, 10]), nn.CrossEntropyLoss(), train, val, sgd(0.01), 2, 100, "mlp")


@setup(
    "tiny_batch_cnn",
    "A small CNN trained two images at a time: the gradient noise dominates the signal (FAQ Q13).",
    {"batch_size_advice"},
    "cnn",
    allowed={"oscillating_loss"},
    faq="Q13",
)
def _tiny_batch_cnn(seed: int) -> Case:
    train, val = digits_pairs(seed, images=True)
    return Case(small_cnn(1, 10, (8, 16)), nn.CrossEntropyLoss(), train, val, sgd(0.05), 2, 100, "cnn")
