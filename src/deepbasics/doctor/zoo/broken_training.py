"""Broken setups, part 1: gradients, activations and the loss curve (FAQ Q3.3, Q15, Q11, Q3.1).

Each setup is a classic training mistake on a bundled dataset, built small enough that a probe run takes seconds
on a CPU. The description says what is wrong and which FAQ reasoning predicts the symptom; ``expected`` are the
codes the doctor must report, ``allowed`` the consequences it may also report. Part 2 is :mod:`.broken_inputs`.
"""

from __future__ import annotations

import torch
from torch import nn

from ...nn import mlp, resnet_mlp, rnn_classifier, small_cnn
from .parts import (
    LABEL_NOISE,
    cancer_pairs,
    digits_pairs,
    fill_bias_,
    normal_init_,
    scaled_init_,
    sgd,
)
from .registry import Case, setup

__all__: list[str] = []  # setups are reached through the registry, not by name


# --- gradients: vanishing and exploding (FAQ Q3.3) ---------------------------------------------------------


@setup(
    "sigmoid_deep_mlp",
    "A 10-layer sigmoid MLP on the digits: sigma' <= 1/4 per layer shrinks the input-side gradients by orders "
    "of magnitude (Glorot & Bengio 2010, section 4.2).",
    {"vanishing_gradient"},
    "mlp",
    allowed={"saturated_activation", "slow_convergence", "bad_init_scale", "saddle_point"},
    faq="Q3.3",
)
def _sigmoid_deep_mlp(seed: int) -> Case:
    train, val = digits_pairs(seed)
    model = mlp([64] + [32] * 9 + [10], activation="sigmoid")
    return Case(model, nn.CrossEntropyLoss(), train, val, sgd(0.1), 32, 150, "mlp")


@setup(
    "chaotic_tanh_mlp",
    "An 8-layer tanh MLP initialized with weights N(0, 16 / fan_in): in the chaotic phase back-propagated "
    "gradients grow layer by layer towards the input (Poole et al. 2016; Glorot & Bengio 2010).",
    {"exploding_gradient", "bad_init_scale"},
    "mlp",
    allowed={
        "saturated_activation",
        "diverging_loss",
        "oscillating_loss",
        "nonfinite",
        "slow_convergence",
        "ill_conditioned",
        "overfitting",
    },
    faq="Q3.3",
)
def _chaotic_tanh_mlp(seed: int) -> Case:
    train, val = digits_pairs(seed)
    model = scaled_init_(mlp([64] + [64] * 7 + [10], activation="tanh"), 4.0)
    return Case(model, nn.CrossEntropyLoss(), train, val, sgd(0.01), 32, 100, "mlp")


@setup(
    "big_init_residual",
    "A residual MLP whose blocks are initialized with weights N(0, 9): each identity-plus-branch block multiplies "
    "the signal and the gradient by ~|1 + W2 W1|, so they explode with depth (He et al. 2016b, section 3).",
    {"exploding_gradient", "bad_init_scale"},
    "residual",
    allowed={
        "diverging_loss",
        "oscillating_loss",
        "nonfinite",
        "slow_convergence",
        "ill_conditioned",
        "overfitting",
        "dead_relu",
    },
    faq="Q3.3",
)
def _big_init_residual(seed: int) -> Case:
    train, val = digits_pairs(seed)
    model = resnet_mlp(6, 32, 64, 10)
    scaled_init_(model, 6.0)
    return Case(model, nn.CrossEntropyLoss(), train, val, sgd(0.01), 32, 100, "residual")


# --- activations: dead and saturated units (FAQ Q15, Q3.3) ------------------------------------------------


@setup(
    "dead_relu_mlp",
    "A ReLU MLP whose hidden biases start at -5: every pre-activation is negative, the units output 0 for every "
    "example and receive no gradient (FAQ Q15).",
    {"dead_relu"},
    "mlp",
    allowed={"vanishing_gradient", "slow_convergence", "saddle_point"},
    faq="Q15",
)
def _dead_relu_mlp(seed: int) -> Case:
    train, val = digits_pairs(seed)
    model = fill_bias_(mlp([64, 64, 64, 10]), -5.0)
    return Case(model, nn.CrossEntropyLoss(), train, val, sgd(0.05), 32, 100, "mlp")


@setup(
    "dead_relu_cnn",
    "A small CNN whose convolution biases start at -5: the ReLU feature maps are zero everywhere (FAQ Q15).",
    {"dead_relu"},
    "cnn",
    allowed={"vanishing_gradient", "slow_convergence", "saddle_point"},
    faq="Q15",
)
def _dead_relu_cnn(seed: int) -> Case:
    train, val = digits_pairs(seed, images=True)
    model = fill_bias_(small_cnn(1, 10, (8, 16)), -5.0)
    return Case(model, nn.CrossEntropyLoss(), train, val, sgd(0.05), 32, 80, "cnn")


@setup(
    "saturated_sigmoid_mlp",
    "A sigmoid MLP initialized with weights N(0, 25): pre-activations of size ~40 pin every unit at 0 or 1, "
    "where sigma' ~ 0 (LeCun et al. 1998, section 4.4; FAQ Q3.3).",
    {"saturated_activation"},
    "mlp",
    allowed={
        "vanishing_gradient",
        "bad_init_scale",
        "slow_convergence",
        "saddle_point",
        "exploding_gradient",
        "diverging_loss",
        "oscillating_loss",
        "ill_conditioned",
    },
    faq="Q3.3",
)
def _saturated_sigmoid_mlp(seed: int) -> Case:
    train, val = digits_pairs(seed)
    model = normal_init_(mlp([64, 64, 64, 10], activation="sigmoid"), 5.0)
    return Case(model, nn.CrossEntropyLoss(), train, val, sgd(0.01), 32, 80, "mlp")


@setup(
    "saturated_tanh_cnn",
    "A tanh CNN initialized with weights N(0, 9): the feature maps sit at +-1, where tanh' ~ 0 (FAQ Q3.3).",
    {"saturated_activation"},
    "cnn",
    allowed={
        "vanishing_gradient",
        "bad_init_scale",
        "slow_convergence",
        "exploding_gradient",
        "diverging_loss",
        "oscillating_loss",
        "ill_conditioned",
        "saddle_point",
    },
    faq="Q3.3",
)
def _saturated_tanh_cnn(seed: int) -> Case:
    train, val = digits_pairs(seed, images=True)
    model = small_cnn(1, 10, (8, 16), activation="tanh")
    normal_init_(model, 3.0)
    return Case(model, nn.CrossEntropyLoss(), train, val, sgd(0.001), 32, 80, "cnn")


# --- the loss curve: diverging, oscillating, slow (FAQ Q11, Q3.1) ------------------------------------------


@setup(
    "lr10_sgd_mlp",
    "Plain SGD with learning rate 10 on a digits MLP: steps far beyond 2 / lambda_max overshoot and the loss "
    "grows (FAQ Q11, Q3.1).",
    {"diverging_loss"},
    "mlp",
    allowed={
        "nonfinite",
        "exploding_gradient",
        "dead_relu",
        "oscillating_loss",
        "saturated_activation",
        "ill_conditioned",
    },
    faq="Q11",
)
def _lr10_sgd_mlp(seed: int) -> Case:
    train, val = digits_pairs(seed)
    return Case(mlp([64, 64, 64, 10]), nn.CrossEntropyLoss(), train, val, sgd(10.0), 32, 100, "mlp")


@setup(
    "lr_huge_lstm",
    "SGD with learning rate 50 on an LSTM reading the digits row by row: the head and gate weights overshoot "
    "and the loss diverges (FAQ Q11).",
    {"diverging_loss"},
    "lstm",
    allowed={"nonfinite", "exploding_gradient", "oscillating_loss", "ill_conditioned"},
    faq="Q11",
)
def _lr_huge_lstm(seed: int) -> Case:
    train, val = digits_pairs(seed, rows=True)
    model = rnn_classifier("lstm", input_size=8, hidden_size=32, num_classes=10)
    return Case(model, nn.CrossEntropyLoss(), train, val, sgd(50.0), 32, 100, "lstm")


@setup(
    "high_lr_sgd_oscillation",
    "Full-batch gradient descent with learning rate 2 on a logistic regression of the breast-cancer data whose "
    "training labels are 30% flipped (a high loss floor): each step overshoots the valley and the loss bounces "
    "in a cycle between ~1.4 and ~4.9 without a trend, where lr 0.2 converges (FAQ Q3.1).",
    {"oscillating_loss"},
    "mlp",
    allowed={"ill_conditioned", "exploding_gradient", "slow_convergence"},
    faq="Q3.1",
)
def _high_lr_sgd_oscillation(seed: int) -> Case:
    (x, y), val = cancer_pairs(seed)
    generator = torch.Generator().manual_seed(seed)
    flip = torch.rand(len(y), generator=generator) < LABEL_NOISE  # (N,) bool
    y = torch.where(flip, 1 - y, y)
    return Case(mlp([30, 2]), nn.CrossEntropyLoss(), (x, y), val, sgd(2.0), None, 150, "mlp")


@setup(
    "tiny_lr_mlp",
    "SGD with learning rate 1e-5 on a digits MLP: the loss barely moves in the budget (FAQ Q3.1).",
    {"slow_convergence"},
    "mlp",
    allowed={"saddle_point"},
    faq="Q3.1",
)
def _tiny_lr_mlp(seed: int) -> Case:
    train, val = digits_pairs(seed)
    return Case(mlp([64, 64, 10]), nn.CrossEntropyLoss(), train, val, sgd(1e-5), 32, 150, "mlp")


@setup(
    "tiny_lr_lstm",
    "SGD with learning rate 1e-4 on an LSTM digits classifier: the loss stays near log(10) (FAQ Q3.1).",
    {"slow_convergence"},
    "lstm",
    allowed={"saddle_point", "vanishing_gradient"},
    faq="Q3.1",
)
def _tiny_lr_lstm(seed: int) -> Case:
    train, val = digits_pairs(seed, rows=True)
    model = rnn_classifier("lstm", input_size=8, hidden_size=32, num_classes=10)
    return Case(model, nn.CrossEntropyLoss(), train, val, sgd(1e-4), 32, 100, "lstm")
