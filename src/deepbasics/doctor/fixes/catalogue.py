"""The catalogue :data:`FIXES`: what each fix does to a :class:`~deepbasics.doctor.zoo.Case`, and its code.

Each function takes a case whose model is already a copy, changes it (model, data, loss, optimizer factory,
batch size or budget) and returns it, or raises :class:`~deepbasics.doctor.fixes.base.NotApplicable`.
Optimizer changes wrap ``case.make_optimizer`` and edit the new optimizer's ``defaults`` and ``param_groups``,
so ``diagnose``, which rebuilds an optimizer from its class and hyperparameters, keeps them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from ...data import Standardizer
from ...nn import BatchNorm2d, GroupNorm, LayerNorm, ResidualBlock
from ..case import Case
from ..faulty import NaiveLogSoftmax
from .base import Fix, NotApplicable
from .surgery import (
    BATCHNORMS,
    NORMS,
    SQUASHING,
    clipped,
    insert_dropout,
    insert_norms,
    output_activations,
    reinit,
    replace_modules,
    set_module,
)

CLIP_NORM = 1.0  # Pascanu et al. (2013) found thresholds around the average gradient norm work; 1 is the usual
WEIGHT_DECAY = 1e-2
DROPOUT = 0.5  # Srivastava et al. (2014), sec. 6: p = 0.5 for hidden units
BATCH_FACTOR = 16


def _fixup_line(case: Case) -> str:
    blocks = sum(isinstance(m, ResidualBlock) for m in case.model.modules())
    if not blocks:
        return ""
    return f"\n# residual branches (Fixup): for each block, block.linear2.weight.data *= {blocks} ** -0.5"


def _init_fix(scheme: str) -> Callable[[Case], Case]:
    def apply(case: Case) -> Case:
        if not any(isinstance(m, nn.Linear | nn.Conv2d) for m in case.model.modules()):
            raise NotApplicable("no Linear or Conv2d layer to re-initialize")
        reinit(case.model, scheme)
        return case

    return apply


def _swap_to_relu(case: Case) -> Case:
    if not replace_modules(case.model, SQUASHING, lambda m: nn.ReLU(), hidden=True):
        raise NotApplicable("no hidden sigmoid or tanh module")
    reinit(case.model, "he")
    return case


def _leaky_relu(case: Case) -> Case:
    if not replace_modules(case.model, (nn.ReLU,), lambda m: nn.LeakyReLU(0.01), hidden=True):
        raise NotApplicable("no ReLU module")
    reinit(case.model, "he")
    return case


def _norm_fix(kind: str) -> Callable[[Case], Case]:
    def apply(case: Case) -> Case:
        if any(isinstance(m, NORMS) for m in case.model.modules()):
            raise NotApplicable("the model is already normalized")
        if kind == "batch" and (case.batch_size or len(case.train_data[0])) < 16:
            raise NotApplicable("batches are too small for BatchNorm (FAQ Q14)")
        if not insert_norms(case.model, kind):
            raise NotApplicable("no linear/conv layer followed by an activation inside an nn.Sequential")
        return case

    return apply


def _batchnorm_to_layer(case: Case) -> Case:
    def make(bn: nn.Module) -> nn.Module:
        c = bn.num_features
        layer = GroupNorm(1, c) if isinstance(bn, nn.BatchNorm2d | BatchNorm2d) else LayerNorm(c)
        ref = next(bn.parameters(), None)
        return layer if ref is None else layer.to(ref.device, ref.dtype)

    if not replace_modules(case.model, BATCHNORMS, make, hidden=False):
        raise NotApplicable("no BatchNorm layer")
    return case


def _optimizer_fix(change: Callable[[torch.optim.Optimizer], torch.optim.Optimizer]) -> Callable[[Case], Case]:
    def apply(case: Case) -> Case:
        make = case.make_optimizer
        return case.replace(make_optimizer=lambda params: change(make(params)))

    return apply


def _set_hyper(opt: torch.optim.Optimizer, key: str, value: Callable[[float], float]) -> torch.optim.Optimizer:
    if key not in opt.defaults:
        raise NotApplicable(f"{type(opt).__name__} has no {key!r} hyperparameter")
    opt.defaults[key] = value(opt.defaults[key])
    for group in opt.param_groups:  # diagnose rebuilds the optimizer from these
        group[key] = value(group[key])
    return opt


def _clip(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    if type(opt).__name__.startswith("Clipped"):
        raise NotApplicable("gradients are already clipped")
    hyper = {k: v for k, v in opt.param_groups[0].items() if k in opt.defaults}
    params = [p for group in opt.param_groups for p in group["params"]]
    return clipped(type(opt))(params, **hyper)


def _adam(case: Case) -> Case:
    if isinstance(case.optimizer(copy.deepcopy(case.model)), torch.optim.Adam):
        raise NotApplicable("the optimizer is already Adam")
    return case.replace(make_optimizer=lambda params: torch.optim.Adam(params, lr=1e-3))


def _standardize(case: Case) -> Case:
    x = case.train_data[0]
    if not x.is_floating_point():
        raise NotApplicable("inputs are not floating point (token ids?)")
    flat = x.transpose(0, 1).reshape(x.shape[1], -1) if x.dim() > 1 else x.reshape(1, -1)  # (F, N * rest)
    if x.dim() == 3:  # sequences (N, T, I): statistics per input channel I
        flat = x.reshape(-1, x.shape[-1]).T  # (I, N * T)
    if bool((flat.mean(1).abs() < 0.1).all() and ((flat.std(1) - 1).abs() < 0.1).all()):
        raise NotApplicable("inputs are already standardized")
    if x.dim() == 3:
        st = Standardizer.fit(x.reshape(-1, x.shape[-1]))

        def f(t: torch.Tensor) -> torch.Tensor:
            return st(t.reshape(-1, t.shape[-1])).reshape(t.shape)
    else:
        st = Standardizer.fit(x)
        f = st
    val = None if case.val_data is None else (f(case.val_data[0]), case.val_data[1])
    return case.replace(train_data=(f(x), case.train_data[1]), val_data=val)


def _stable_softmax(case: Case) -> Case:
    if not replace_modules(case.model, (NaiveLogSoftmax,), lambda m: nn.LogSoftmax(dim=m.dim), hidden=False):
        raise NotApplicable("no naive softmax module to swap (a naive softmax inside forward needs a code change)")
    return case


def _fix_output(case: Case) -> Case:
    outputs = output_activations(case.model)
    loss = case.loss_fn
    acts = {n: case.model.get_submodule(n) for n in outputs}
    if isinstance(loss, nn.CrossEntropyLoss):
        bad = [n for n, m in acts.items() if isinstance(m, nn.Softmax | nn.LogSoftmax)]
        if bad:
            for n in bad:
                set_module(case.model, n, nn.Identity())
            return case
    if isinstance(loss, nn.NLLLoss):
        bad = [n for n, m in acts.items() if isinstance(m, nn.Softmax)]
        if bad:
            for n in bad:
                set_module(case.model, n, nn.LogSoftmax(dim=acts[n].dim))
            return case
    if isinstance(loss, nn.MSELoss | nn.BCELoss | nn.BCEWithLogitsLoss):
        bad = [n for n, m in acts.items() if isinstance(m, nn.Sigmoid)]
        if bad and case.task == "binary":
            for n in bad:
                set_module(case.model, n, nn.Identity())
            return case.replace(loss_fn=nn.BCEWithLogitsLoss(), binary_threshold=0.0)
    raise NotApplicable("no output activation that conflicts with the loss")


def _new_batch(case: Case) -> int:
    n = len(case.train_data[0])
    return min(n, max(32, (case.batch_size or n) * BATCH_FACTOR))


def _larger_batch(case: Case) -> Case:
    old, new = case.batch_size or len(case.train_data[0]), _new_batch(case)
    if new <= old:
        raise NotApplicable("the batch is already the whole training set or large")
    factor = math.sqrt(new / old)
    case = _optimizer_fix(lambda opt: _set_hyper(opt, "lr", lambda lr: lr * factor))(case)
    return case.replace(batch_size=new)


def _dropout(case: Case) -> Case:
    if not insert_dropout(case.model, DROPOUT):
        raise NotApplicable("no hidden activation inside an nn.Sequential to follow with dropout")
    return case


def _early_stopping(case: Case) -> Case:
    best = case.best_step
    if best is None or best >= case.steps:
        raise NotApplicable("no validation curve with a minimum before the end of the run")
    return case.replace(steps=max(1, best))


def _lr_snippet(factor: float) -> Callable[[Case], str]:
    def code(case: Case) -> str:
        lr = case.optimizer(copy.deepcopy(case.model)).param_groups[0].get("lr")
        new = "?" if lr is None else f"{lr * factor:g}"
        return f"optimizer = {_opt_name(case)}(model.parameters(), lr={new}, ...)  # was lr={lr:g}"

    return code


def _opt_name(case: Case) -> str:
    return f"torch.optim.{type(case.optimizer(copy.deepcopy(case.model))).__name__}"


FIXES: dict[str, Fix] = {
    f.name: f
    for f in (
        Fix(
            "he_init",
            {
                "exploding_gradient",
                "vanishing_gradient",
                "bad_init_scale",
                "dead_relu",
                "saturated_activation",
                "saddle_point",
            },
            _init_fix("he"),
            lambda c: (
                "for m in model.modules():\n    if isinstance(m, (nn.Linear, nn.Conv2d)):\n"
                "        nn.init.kaiming_normal_(m.weight, nonlinearity='relu'); nn.init.zeros_(m.bias)"
                + _fixup_line(c)
            ),
            "He re-initialization (W ~ N(0, 2/fan_in), zero biases)",
        ),
        Fix(
            "glorot_init",
            {"exploding_gradient", "vanishing_gradient", "bad_init_scale", "saturated_activation", "saddle_point"},
            _init_fix("glorot"),
            "for m in model.modules():\n    if isinstance(m, (nn.Linear, nn.Conv2d)):\n"
            "        nn.init.xavier_uniform_(m.weight); nn.init.zeros_(m.bias)",
            "Glorot re-initialization (W ~ U(+-sqrt(6/(fan_in+fan_out))), zero biases)",
        ),
        Fix(
            "swap_to_relu",
            {"vanishing_gradient", "saturated_activation"},
            _swap_to_relu,
            "# hidden layers: nn.ReLU() instead of nn.Sigmoid()/nn.Tanh(), then He init\n"
            "nn.init.kaiming_normal_(linear.weight, nonlinearity='relu')",
            "hidden sigmoid/tanh replaced by ReLU, with He init",
        ),
        Fix(
            "leaky_relu",
            {"dead_relu"},
            _leaky_relu,
            "# hidden layers: nn.LeakyReLU(0.01) instead of nn.ReLU(), then He init",
            "ReLU replaced by LeakyReLU(0.01), with He init",
        ),
        Fix(
            "insert_batchnorm",
            {"vanishing_gradient", "exploding_gradient", "saturated_activation", "bad_init_scale", "ill_conditioned"},
            _norm_fix("batch"),
            "nn.Sequential(nn.Linear(n_in, n), nn.BatchNorm1d(n), nn.ReLU(), ...)  # norm before each activation",
            "BatchNorm after each hidden linear/conv layer",
        ),
        Fix(
            "insert_layernorm",
            {"vanishing_gradient", "exploding_gradient", "saturated_activation", "bad_init_scale", "ill_conditioned"},
            _norm_fix("layer"),
            "nn.Sequential(nn.Linear(n_in, n), nn.LayerNorm(n), nn.ReLU(), ...)  # norm before each activation",
            "LayerNorm (GroupNorm(1, C) for images) after each hidden linear/conv layer",
        ),
        Fix(
            "batchnorm_to_layer",
            {"batchnorm_small_batch"},
            _batchnorm_to_layer,
            "nn.LayerNorm(n)  # instead of nn.BatchNorm1d(n); nn.GroupNorm(1, c) instead of nn.BatchNorm2d(c)",
            "BatchNorm replaced by LayerNorm/GroupNorm, which do not depend on the batch",
        ),
        Fix(
            "clip_gradients",
            {"exploding_gradient", "diverging_loss", "nonfinite"},
            _optimizer_fix(_clip),
            f"loss.backward()\ntorch.nn.utils.clip_grad_norm_(model.parameters(), max_norm={CLIP_NORM:g})\n"
            "optimizer.step()",
            f"global gradient-norm clipping at {CLIP_NORM:g}",
        ),
        Fix(
            "lr_down",
            {"diverging_loss", "oscillating_loss", "nonfinite", "exploding_gradient", "dead_relu"},
            _optimizer_fix(lambda o: _set_hyper(o, "lr", lambda lr: lr * 0.1)),
            _lr_snippet(0.1),
            "learning rate x 0.1",
        ),
        Fix(
            "lr_halve",
            {"oscillating_loss", "diverging_loss"},
            _optimizer_fix(lambda o: _set_hyper(o, "lr", lambda lr: lr * 0.5)),
            _lr_snippet(0.5),
            "learning rate x 0.5 (back below the stability edge 2 / lambda_max)",
        ),
        Fix(
            "lr_up",
            {"slow_convergence", "saddle_point"},
            _optimizer_fix(lambda o: _set_hyper(o, "lr", lambda lr: lr * 10.0)),
            _lr_snippet(10.0),
            "learning rate x 10",
        ),
        Fix(
            "adam",
            {
                "slow_convergence",
                "ill_conditioned",
                "saddle_point",
                "vanishing_gradient",
                "oscillating_loss",
                "diverging_loss",
            },
            _adam,
            "optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)",
            "switch to Adam(lr=1e-3)",
        ),
        Fix(
            "standardize_inputs",
            {"unnormalized_inputs", "ill_conditioned", "nonfinite"},
            _standardize,
            "mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-8)\n"
            "x_train, x_val = (x_train - mean) / std, (x_val - mean) / std  # training statistics only",
            "inputs standardized with training-split statistics",
        ),
        Fix(
            "stable_softmax",
            {"naive_softmax", "nonfinite"},
            _stable_softmax,
            "log_probs = torch.log_softmax(logits, dim=1)  # not torch.log(torch.exp(z) / torch.exp(z).sum(1))",
            "naive log(exp/sum exp) replaced by the stable log-softmax",
        ),
        Fix(
            "fix_output",
            {"loss_activation_mismatch"},
            _fix_output,
            "# return logits: no nn.Softmax before nn.CrossEntropyLoss; no sigmoid before the loss:\n"
            "loss_fn = nn.CrossEntropyLoss()  # or nn.BCEWithLogitsLoss() for one output unit",
            "output activation removed so the loss gets logits",
        ),
        Fix(
            "larger_batch",
            {"batchnorm_small_batch", "batch_size_advice", "oscillating_loss"},
            _larger_batch,
            lambda c: f"loader = DataLoader(train, batch_size={_new_batch(c)}, shuffle=True)  # was {c.batch_size}",
            f"batch size x {BATCH_FACTOR} (at least 32) with lr x sqrt of the ratio",
        ),
        Fix(
            "weight_decay",
            {"overfitting"},
            _optimizer_fix(lambda o: _set_hyper(o, "weight_decay", lambda _: WEIGHT_DECAY)),
            lambda c: f"optimizer = {_opt_name(c)}(model.parameters(), ..., weight_decay={WEIGHT_DECAY:g})",
            f"L2 weight decay {WEIGHT_DECAY:g}",
        ),
        Fix(
            "dropout",
            {"overfitting"},
            _dropout,
            f"nn.Sequential(nn.Linear(n_in, n), nn.ReLU(), nn.Dropout({DROPOUT:g}), ...)",
            f"Dropout({DROPOUT:g}) after each hidden activation",
        ),
        Fix(
            "early_stopping",
            {"overfitting"},
            _early_stopping,
            lambda c: (
                f"# stop after {c.best_step} steps (the best validation loss), or use\n"
                "deepbasics.train.EarlyStopping(monitor='val_loss', patience=...)"
            ),
            "training stopped at the step of best validation loss",
        ),
    )
}
