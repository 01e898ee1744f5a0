"""The doctor's calibration corpus (``benchmarks/doctor_corpus``): every bug verified by a direct measurement.

Nothing here asks the doctor. Each script runs in this process exactly as ``python SCRIPT.py --seed 0 QUICK...``
would (``runpy``, ``sys.argv`` set, its quick budget from the manifest) under a :class:`Recorder` that only reads:

- global module forward (pre-)hooks: the root models (outermost module with trainable parameters run with gradients
  on), their first input and every output's max |value|, the dead fraction of ``nn.ReLU`` outputs, the saturated
  fraction of ``nn.Tanh``/``nn.Sigmoid`` outputs, the row sums of ``nn.Softmax`` outputs, BatchNorm batch sizes;
- a global optimizer step pre-hook: the parameters each optimizer holds, their gradient norms, the train/eval mode of
  the model that owns them, and every parameter's value when first seen (to tell later whether it ever moved);
- a wrapped ``Tensor.backward``: the loss, and the gradient already sitting in each optimizer's parameters before it;
- wrapped functional losses (``F.cross_entropy`` & co, which ``nn.CrossEntropyLoss`` & co call): the value, whether
  gradients were on (training) or off (a validation pass), and what the loss was given (row sums, log-sum-exp,
  range, targets).

Then one check per script measures its bug (a healthy script: that it learns and stays finite). The thresholds
are far from the measured values (each check's comment says what was measured at seed 0 with the quick budget).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import itertools
import json
import math
import re
import runpy
import statistics
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.module import (
    register_module_forward_hook,
    register_module_forward_pre_hook,
    register_module_full_backward_hook,
)
from torch.optim.optimizer import register_optimizer_step_pre_hook

CORPUS = Path(__file__).resolve().parent.parent / "benchmarks" / "doctor_corpus"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))
#: The held-out split (``heldout/``): written before the calibration, scored once at its end; its scripts are named
#: ``heldout/<name>`` here.
HELDOUT_MANIFEST = json.loads((CORPUS / "heldout" / "manifest.json").read_text(encoding="utf-8"))
ENTRIES = {e["script"].removesuffix(".py"): e for e in MANIFEST["scripts"]}
ENTRIES.update({"heldout/" + e["script"].removesuffix(".py"): e for e in HELDOUT_MANIFEST["scripts"]})
LOSS_FUNCTIONS = ("cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy_with_logits", "binary_cross_entropy")
FLOAT32_EXP_OVERFLOW = 88.72  # log(float32 max): exp(z) is inf above it
FLOAT32_SIGMOID_ONE = 16.7  # float32 sigmoid(z) rounds to exactly 1.0 above ~16.6


def _norm(t: torch.Tensor | None) -> float:
    return 0.0 if t is None else float(t.detach().float().norm())


# ------------------------------------------------------------------------------------------------ recording
@dataclass
class Observation:
    """What one run of a script did (see the module docstring)."""

    stdout: str = ""
    error: BaseException | None = None
    losses: list[dict[str, Any]] = field(default_factory=list)  # functional loss calls
    backward: list[dict[str, Any]] = field(default_factory=list)  # Tensor.backward calls
    steps: list[dict[str, Any]] = field(default_factory=list)  # optimizer steps
    roots: list[nn.Module] = field(default_factory=list)  # trained models, in order of first training forward
    inputs: dict[int, torch.Tensor] = field(default_factory=dict)  # root index -> its first training input
    outputs: list[float] = field(default_factory=list)  # max |output| of every training forward of a root
    probes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # per module class name
    grad_flow: list[list[tuple[int, float]]] = field(default_factory=list)  # per backward: (module id, ||dL/dout||)
    first_values: dict[int, torch.Tensor] = field(default_factory=dict)  # parameter id -> value when first seen
    params: dict[int, nn.Parameter] = field(default_factory=dict)

    def train_losses(self, fn: str | None = None) -> list[float]:
        return [c["value"] for c in self.losses if c["train"] and fn in (None, c["fn"])]

    def val_losses(self, fn: str | None = None) -> list[float]:
        return [c["value"] for c in self.losses if not c["train"] and fn in (None, c["fn"])]

    def backward_losses(self) -> list[float]:
        return [b["loss"] for b in self.backward]

    def moved(self, param_id: int) -> float:
        """max |value now - value when first seen| of one parameter."""
        return float((self.params[param_id].detach() - self.first_values[param_id]).abs().max())


class Recorder:
    """Global read-only hooks around one script run (module docstring); use :meth:`installed`."""

    def __init__(self, probes: dict[str, Callable[..., dict[str, Any] | None]] | None, grad_flow: bool) -> None:
        self.obs = Observation()
        self.extra_probes = probes or {}
        self.record_grad_flow = grad_flow
        self.depth = 0
        self.last_root: nn.Module | None = None
        self.optimizers: dict[int, torch.optim.Optimizer] = {}

    def _pre(self, module: nn.Module, args: Any) -> None:
        """An outermost call with gradients on, of a module with trainable parameters, is a training forward of a
        root model (whatever its train/eval mode: training in eval mode is one of the bugs)."""
        if self.depth == 0 and torch.is_grad_enabled() and any(p.requires_grad for p in module.parameters()):
            if not any(m is module for m in self.obs.roots):
                self.obs.roots.append(module)
                x = args[0] if args else None
                if isinstance(x, torch.Tensor):
                    self.obs.inputs[len(self.obs.roots) - 1] = x.detach().clone()
            self.last_root = module
        self.depth += 1

    def _post(self, module: nn.Module, args: Any, output: Any) -> None:
        self.depth = max(0, self.depth - 1)
        train = torch.is_grad_enabled() and module.training
        if (
            self.depth == 0
            and module is self.last_root
            and torch.is_grad_enabled()
            and isinstance(output, torch.Tensor)
        ):
            self.obs.outputs.append(float(output.detach().abs().max()))
        name = type(module).__name__
        probe = self.extra_probes.get(name) or next((f for t, f in DEFAULT_PROBES if type(module) is t), None)
        if probe is not None and isinstance(output, torch.Tensor):
            with torch.no_grad():
                entry = probe(module, args, output)
            if entry is not None:
                entry["train"] = train
                self.obs.probes.setdefault(name, []).append(entry)

    def _backward_hook(self, module: nn.Module, grad_input: Any, grad_output: Any) -> None:
        if isinstance(module, nn.Linear) and self.obs.grad_flow and grad_output and grad_output[0] is not None:
            self.obs.grad_flow[-1].append((id(module), _norm(grad_output[0])))

    def _step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.optimizers[id(optimizer)] = optimizer
        params = [p for g in optimizer.param_groups for p in g["params"]]
        ids = {id(p) for p in params}
        owners = [r for r in self.obs.roots if any(id(p) in ids for p in r.parameters())]
        root_params = list(self.last_root.parameters()) if self.last_root is not None else []
        for p in [*params, *root_params]:
            if id(p) not in self.obs.first_values:
                self.obs.first_values[id(p)] = p.detach().clone()
                self.obs.params[id(p)] = p
        self.obs.steps.append(
            {
                "optimizer": id(optimizer),
                "params": ids,
                "grads": [_norm(p.grad) for p in params],
                "has_grad": [p.grad is not None for p in params],
                "owners_training": [r.training for r in owners],
                "eval_layers": sum(
                    1
                    for r in owners
                    for m in r.modules()
                    if isinstance(m, nn.Dropout | nn.modules.batchnorm._BatchNorm) and not m.training
                ),
                "root_grads": {id(p): _norm(p.grad) for p in root_params if p.grad is not None},
            }
        )

    def _loss(self, fn: str, input: Any, target: Any, out: Any) -> None:
        if not isinstance(out, torch.Tensor) or out.numel() != 1 or not isinstance(input, torch.Tensor):
            return
        train = torch.is_grad_enabled() and out.requires_grad
        with torch.no_grad():
            x = input.detach().float()
            entry: dict[str, Any] = {"fn": fn, "value": float(out), "train": train, "shape": tuple(x.shape)}
            entry["min"], entry["max"] = float(x.min()), float(x.max())
            if x.dim() >= 2 and x.shape[1] > 1 and fn in ("cross_entropy", "nll_loss"):
                rows = x.movedim(1, -1)  # class dimension last
                entry["row_sum_dev"] = float((rows.sum(-1) - 1).abs().max())
                entry["lse_dev"] = float(torch.logsumexp(rows, -1).abs().max())
            if isinstance(target, torch.Tensor):
                t = target.detach()
                entry["target"] = t.clone() if t.numel() <= 4096 else None
                entry["input"] = x.clone() if x.numel() <= 4096 else None
        self.obs.losses.append(entry)

    def _before_backward(self, tensor: Any) -> None:
        stale = {
            oid: sum(_norm(p.grad) for g in opt.param_groups for p in g["params"])
            for oid, opt in self.optimizers.items()
        }
        value = float(tensor.detach()) if isinstance(tensor, torch.Tensor) and tensor.numel() == 1 else math.nan
        self.obs.backward.append({"loss": value, "stale": stale})
        if self.record_grad_flow:
            self.obs.grad_flow.append([])

    @contextlib.contextmanager
    def installed(self):
        handles = [
            register_module_forward_pre_hook(self._pre),
            register_module_forward_hook(self._post),
            register_optimizer_step_pre_hook(self._step),
        ]
        if self.record_grad_flow:
            handles.append(register_module_full_backward_hook(self._backward_hook))
        saved_backward = torch.Tensor.backward
        saved_losses = {name: getattr(F, name) for name in LOSS_FUNCTIONS}
        recorder = self

        def backward(tensor, *args, **kwargs):
            recorder._before_backward(tensor)
            return saved_backward(tensor, *args, **kwargs)

        def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
            def wrapped(input, target, *args, **kwargs):
                out = fn(input, target, *args, **kwargs)
                recorder._loss(name, input, target, out)
                return out

            return wrapped

        torch.Tensor.backward = backward  # type: ignore[method-assign]
        for name, fn in saved_losses.items():
            setattr(F, name, wrap(name, fn))
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()
            torch.Tensor.backward = saved_backward  # type: ignore[method-assign]
            for name, fn in saved_losses.items():
                setattr(F, name, fn)


def _relu_probe(module: nn.Module, args: Any, out: torch.Tensor) -> dict[str, Any] | None:
    """Fraction of units (features, channels x positions) that are zero for every example of the batch."""
    if out.dim() < 2 or out.shape[0] < 2:
        return None
    return {"dead": float((out.reshape(out.shape[0], -1) <= 0).all(0).float().mean())}


def _squash_probe(module: nn.Module, args: Any, out: torch.Tensor) -> dict[str, Any]:
    """Fraction of outputs within 1e-2 of a bound of tanh (+-1) or sigmoid (0, 1)."""
    low = -1.0 if isinstance(module, nn.Tanh) else 0.0
    near = ((out - low).abs() < 1e-2) | ((1.0 - out).abs() < 1e-2)
    return {"saturated": float(near.float().mean())}


def _batchnorm_probe(module: nn.Module, args: Any, out: torch.Tensor) -> dict[str, Any]:
    return {"batch": int(args[0].shape[0])}


def _softmax_probe(module: nn.Module, args: Any, out: torch.Tensor) -> dict[str, Any]:
    dim = module.dim if module.dim is not None else -1
    return {"row_sum_dev": float((out.sum(dim) - 1).abs().max())}


DEFAULT_PROBES = [
    (nn.ReLU, _relu_probe),
    (nn.Tanh, _squash_probe),
    (nn.Sigmoid, _squash_probe),
    (nn.BatchNorm1d, _batchnorm_probe),
    (nn.BatchNorm2d, _batchnorm_probe),
    (nn.Softmax, _softmax_probe),
]


def observe(
    name: str, seed: int, extra: list[str] | None = None, *, probes=None, grad_flow: bool = False
) -> Observation:
    """Run ``benchmarks/doctor_corpus/NAME.py --seed SEED QUICK... EXTRA...`` in this process under a Recorder."""
    args = ["--seed", str(seed), *ENTRIES[name]["quick_args"], *(extra or [])]
    recorder = Recorder(probes, grad_flow)
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [str(CORPUS / f"{name}.py"), *args]
    out = io.StringIO()
    try:
        with recorder.installed(), contextlib.redirect_stdout(out):
            runpy.run_path(str(CORPUS / f"{name}.py"), run_name="__main__")
    except Exception as exc:
        recorder.obs.error = exc
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    recorder.obs.stdout = out.getvalue()
    if recorder.obs.error is not None:  # no corpus script raises: its bug shows in the numbers, not as a crash
        raise AssertionError(f"{name} --seed {seed} raised {recorder.obs.error!r}") from recorder.obs.error
    return recorder.obs


# ------------------------------------------------------------------------------------------------ helpers
def head(values: list[float], fraction: float = 0.1) -> float:
    """Median of the first ``fraction`` of the values (at least 3)."""
    return statistics.median(values[: max(3, int(len(values) * fraction))])


def tail(values: list[float], fraction: float = 0.1) -> float:
    return statistics.median(values[-max(3, int(len(values) * fraction)) :])


def first_nonfinite(values: list[float]) -> int | None:
    return next((i for i, v in enumerate(values) if not math.isfinite(v)), None)


def turns_nonfinite_within(obs: Observation, steps: int) -> bool:
    """Whether a loss that went into a backward pass was inf/nan within the first ``steps`` of them."""
    end = first_nonfinite(obs.backward_losses())
    return end is not None and end < steps


def printed(obs: Observation, label: str) -> list[float]:
    """Every number the script printed right after ``label`` (e.g. ``"val loss"``)."""
    return [float(m) for m in re.findall(re.escape(label) + r"[:= ]+\s*(-?[\d.]+(?:e[-+]?\d+)?)", obs.stdout)]


def all_finite(obs: Observation) -> bool:
    return all(math.isfinite(v) for v in obs.backward_losses() + [c["value"] for c in obs.losses])


def swing(values: list[float]) -> float:
    """Median |L_t - L_{t-1}| / median L over the second half of a loss trace."""
    half = values[len(values) // 2 :]
    return statistics.median(abs(a - b) for a, b in zip(half[1:], half[:-1], strict=False)) / statistics.median(half)


CHECKS: dict[str, Callable[[int], None]] = {}


def check(name: str) -> Callable[[Callable[[int], None]], Callable[[int], None]]:
    """Register the check of one script: ``fn(seed)`` runs it and asserts its measurements."""

    def register(fn: Callable[[int], None]) -> Callable[[int], None]:
        CHECKS[name] = fn
        return fn

    return register


def assert_learns(obs: Observation, drop: float) -> None:
    """Every loss finite, and the last 10% of the training losses at most ``drop`` x the first 10%."""
    assert all_finite(obs)
    trace = obs.train_losses() or obs.backward_losses()
    assert len(trace) >= 10
    assert tail(trace) < drop * head(trace), (head(trace), tail(trace))


# ------------------------------------------------------------------------------------------------ healthy
#: Healthy scripts checked by "learns" alone: name -> (drop: last/first 10% of the training loss at most this,
#: printed label of an accuracy, its least value). Measured at seeds 0-2 with the quick budget: drops 0.05-0.45,
#: accuracies 0.7-1.0 (chance: 0.1 digits, 0.25 transformer task, 0.33 wine/iris).
LEARNS: dict[str, tuple[float, str | None, float]] = {
    "healthy_lstm_digits_rows": (0.5, "val acc", 0.6),
    "healthy_warmup_cosine": (0.2, None, 0.0),
    "healthy_onecycle_wine": (0.3, "test acc", 0.85),
    "healthy_clip_resmlp": (0.3, "held-out accuracy", 0.8),
    "healthy_transformer_encoder": (0.5, "val acc", 0.5),
    "healthy_mha_patches": (0.6, "val acc", 0.4),
    "healthy_logreg_iris": (0.6, "training accuracy", 0.85),
}


def _learns_check(name: str, drop: float, label: str | None, least: float) -> Callable[[int], None]:
    def run(seed: int) -> None:
        obs = observe(name, seed)
        assert_learns(obs, drop)
        if label is not None:
            assert printed(obs, label)[-1] > least

    return run


for _name, _spec in LEARNS.items():
    check(_name)(_learns_check(_name, *_spec))


@check("healthy_val_wine_sgd")
def _(seed):
    obs = observe("healthy_val_wine_sgd", seed)
    assert_learns(obs, 0.3)
    val = printed(obs, "val loss")
    assert val[-1] < 0.4 * val[0]  # measured 0.67-0.77 -> 0.06-0.18 in 10 epochs


@check("healthy_val_diabetes_huber")
def _(seed):
    obs = observe("healthy_val_diabetes_huber", seed)
    assert all_finite(obs)
    val = printed(obs, "val loss")
    assert val[-1] < 0.95 * val[0]  # standardized targets: 0.27-0.29 -> ~0.23 (R^2 ~ 0.5 is this data's level)


@check("healthy_mlp_digits")
def _(seed):
    obs = observe("healthy_mlp_digits", seed)
    assert_learns(obs, 0.2)
    test_loss = printed(obs, "test loss")
    assert test_loss[-1] < 0.3 * test_loss[0] and printed(obs, "test acc")[-1] > 0.85


@check("healthy_cnn_digits")
def _(seed):
    obs = observe("healthy_cnn_digits", seed)
    assert_learns(obs, 0.5)  # SGD + momentum sits near log(10) for most of the first epoch, then falls
    test_loss = printed(obs, "Average loss")
    assert test_loss[-1] < 0.5 * test_loss[0]  # measured 2.21 -> 0.75 in 3 epochs (0.12 after 8)


@check("healthy_regression_diabetes")
def _(seed):
    obs = observe("healthy_regression_diabetes", seed)
    assert_learns(obs, 0.8)  # standardized target: 0.6 -> 0.4 in 15 epochs; R^2 ~ 0.5 is this data set's level
    val = printed(obs, "val mse")
    assert val[-1] < 0.8 * val[0]


@check("healthy_gru_sine")
def _(seed):
    obs = observe("healthy_gru_sine", seed)
    assert_learns(obs, 0.2)
    assert tail(obs.train_losses()) < 0.05 * obs.train_losses()[0]  # ~0.6 at the first step, ~0.005 at the end
    assert printed(obs, "val")[-1] < 0.05


@check("healthy_tbptt_lstm")
def _(seed):
    obs = observe("healthy_tbptt_lstm", seed)
    assert_learns(obs, 0.75)  # log(16) = 2.77 at the start, the chain's entropy ~1 at the end


@check("healthy_gan_gaussian")
def _(seed):
    obs = observe("healthy_gan_gaussian", seed)
    assert all_finite(obs)
    assert len(obs.roots) == 2 and len({s["optimizer"] for s in obs.steps}) == 2  # two models, two optimizers
    mean_err = printed(obs, "|mean err|")
    assert mean_err[-1] < 0.5 < mean_err[0]  # the generator's samples moved onto the data's mean (2, -1)


@check("healthy_vae_digits")
def _(seed):
    obs = observe("healthy_vae_digits", seed)
    assert all_finite(obs)
    train = printed(obs, "Average loss")
    # the first average is over the first epoch, already partly trained (measured 36 -> 27 nats after 5 epochs)
    assert train[-1] < 0.8 * train[0] and printed(obs, "Test loss")[-1] < 0.8 * train[0]


@check("healthy_finetune_frozen")
def _(seed):
    obs = observe("healthy_finetune_frozen", seed)
    assert all_finite(obs)
    finetune = [float(a) for a in re.findall(r"\[finetune\].*train acc ([\d.]+)", obs.stdout)]
    assert finetune[-1] > 0.7  # 3 groups: chance is ~0.4 (measured 0.80 after 3 epochs, 0.89 after 6)


@check("healthy_grad_accumulation")
def _(seed):
    obs = observe("healthy_grad_accumulation", seed)
    assert_learns(obs, 0.3)
    assert len(obs.backward) >= 3.9 * len(obs.steps)  # four backward passes per optimizer step


@check("healthy_lbfgs_cancer")
def _(seed):
    obs = observe("healthy_lbfgs_cancer", seed)
    assert all_finite(obs)
    assert len(obs.backward) > len(obs.steps)  # the closure runs several forward/backward passes per step
    assert printed(obs, "test acc")[-1] > 0.9 and obs.backward_losses()[-1] < 0.3 * obs.backward_losses()[0]


@check("healthy_manual_sgd_iris")
def _(seed):
    obs = observe("healthy_manual_sgd_iris", seed)
    assert not obs.steps  # no optimizer object
    assert_learns(obs, 0.3)


@check("healthy_tied_lm")
def _(seed):
    obs = observe("healthy_tied_lm", seed)
    model = obs.roots[0]
    assert model.decoder.weight is model.embedding.weight  # tied
    assert_learns(obs, 0.6)


@check("healthy_bf16_autocast")
def _(seed):
    obs = observe("healthy_bf16_autocast", seed)
    assert "torch.bfloat16" in obs.stdout  # the logits really were computed in bfloat16
    assert_learns(obs, 0.3)


@check("healthy_bn_dropout_cancer")
def _(seed):
    obs = observe("healthy_bn_dropout_cancer", seed)
    assert_learns(obs, 0.6)
    assert all(s["owners_training"] == [True] and s["eval_layers"] == 0 for s in obs.steps)
    assert printed(obs, "acc")[-1] > 0.9


@check("healthy_plateau_friedman")
def _(seed):
    obs = observe("healthy_plateau_friedman", seed)
    assert_learns(obs, 0.3)
    val = printed(obs, "val")
    assert val[-1] < 0.3 * val[0]


# ------------------------------------------------------------------------------------------------ broken
def stale_fraction(obs: Observation) -> float:
    """Fraction of the backward passes after the first step that find the previous step's gradient still in the
    parameters of the optimizer that stepped (a zeroed or None gradient has norm 0)."""
    stale = [b["stale"].get(obs.steps[0]["optimizer"], 0.0) > 0 for b in obs.backward[1:]]
    return sum(stale) / len(stale)


@check("broken_missing_zero_grad")
def _(seed):
    obs = observe("broken_missing_zero_grad", seed)
    assert stale_fraction(obs) == 1.0  # every backward adds onto the gradient the last step already used
    grad = [sum(s["grads"]) for s in obs.steps]
    assert tail(grad) > 10 * head(grad)  # so the gradient the optimizer sees keeps growing: measured ~1e3x


@check("broken_zero_grad_per_epoch")
def _(seed):
    obs = observe("broken_zero_grad_per_epoch", seed)
    assert stale_fraction(obs) > 0.9  # all but the first backward of each epoch (measured 0.98)
    grad = [sum(s["grads"]) for s in obs.steps]
    assert tail(grad) > 3 * head(grad)


@check("broken_zero_grad_before_step")
def _(seed):
    obs = observe("broken_zero_grad_before_step", seed)
    assert all(g == 0.0 for s in obs.steps for g in s["grads"])  # the optimizer only ever sees zero gradients
    assert max(obs.moved(i) for i in obs.steps[0]["params"]) == 0.0  # so no weight ever moved


@check("broken_optimizer_other_model")
def _(seed):
    obs = observe("broken_optimizer_other_model", seed)
    trained = {id(p) for p in obs.roots[0].parameters()}
    assert trained.isdisjoint(obs.steps[0]["params"])  # the optimizer holds another model's parameters
    assert max(obs.moved(i) for i in trained) == 0.0
    assert tail(obs.train_losses()) > 0.95 * math.log(10)


@check("broken_optimizer_head_only")
def _(seed):
    obs = observe("broken_optimizer_head_only", seed)
    model = obs.roots[0]
    encoder = {id(p) for p in model.encoder.parameters()}
    assert encoder.isdisjoint(obs.steps[0]["params"])
    assert all(encoder <= set(s["root_grads"]) and min(s["root_grads"][i] for i in encoder) > 0 for s in obs.steps)
    assert max(obs.moved(i) for i in encoder) == 0.0  # gradients every step, never applied
    assert min(obs.moved(id(p)) for p in model.head.parameters()) > 0


@check("broken_head_replaced_after_optimizer")
def _(seed):
    obs = observe("broken_head_replaced_after_optimizer", seed)
    model = obs.roots[0]
    finetune = [s for s in obs.steps if s["optimizer"] != obs.steps[0]["optimizer"]]
    assert finetune and all(not any(s["has_grad"]) for s in finetune)  # its parameters never get a gradient
    new_head = {id(p) for p in model.classifier.parameters()}
    assert new_head.isdisjoint(finetune[0]["params"])
    assert all(new_head <= set(s["root_grads"]) for s in finetune)  # the new head gets gradients ...
    assert max(obs.moved(i) for i in new_head) == 0.0  # ... that nothing applies


@check("broken_eval_mode_training")
def _(seed):
    obs = observe("broken_eval_mode_training", seed)
    assert all(s["owners_training"] == [False] and s["eval_layers"] == 2 for s in obs.steps)  # BatchNorm + Dropout
    assert all(bn["batch"] == 64 or not bn["train"] for bn in obs.probes.get("BatchNorm1d", []))


@check("broken_no_train_after_val")
def _(seed):
    obs = observe("broken_no_train_after_val", seed)
    modes = [s["owners_training"] == [True] for s in obs.steps]
    per_epoch = len(obs.steps) // 2
    assert all(modes[:per_epoch]) and not any(modes[per_epoch + 1 :])  # epoch 1 in train mode, epoch 2 in eval mode
    assert obs.steps[-1]["eval_layers"] == 3  # two BatchNorm2d and one Dropout


@check("broken_softmax_before_ce")
def _(seed):
    obs = observe("broken_softmax_before_ce", seed)
    calls = [c for c in obs.losses if c["fn"] == "cross_entropy" and c["train"]]
    assert all(c["row_sum_dev"] < 1e-5 and c["min"] >= 0 for c in calls)  # probabilities, fed as logits
    assert tail(obs.train_losses()) > 1.4  # CE of a softmax of probabilities is >= log(10) - 1 + ...: stuck high


@check("broken_logsoftmax_before_ce")
def _(seed):
    obs = observe("broken_logsoftmax_before_ce", seed)
    calls = [c for c in obs.losses if c["fn"] == "cross_entropy" and c["train"]]
    assert all(c["lse_dev"] < 1e-4 and c["max"] <= 1e-6 for c in calls)  # log-probabilities, fed as logits


@check("broken_sigmoid_before_bce_logits")
def _(seed):
    obs = observe("broken_sigmoid_before_bce_logits", seed)
    calls = [c for c in obs.losses if c["fn"] == "binary_cross_entropy_with_logits" and c["train"]]
    assert all(c["min"] >= 0.0 and c["max"] <= 1.0 for c in calls)  # probabilities, fed as logits
    bound = math.log(1 + math.exp(-1))  # the smallest BCE-with-logits of an input in [0, 1]
    assert min(obs.train_losses()) > bound


@check("broken_softmax_into_nll")
def _(seed):
    obs = observe("broken_softmax_into_nll", seed)
    calls = [c for c in obs.losses if c["fn"] == "nll_loss" and c["train"]]
    assert all(c["row_sum_dev"] < 1e-5 and c["min"] >= 0 for c in calls)  # probabilities, not log-probabilities
    assert max(obs.train_losses()) <= 0  # so the "loss" -p[y] is negative


@check("broken_grad_accum_unscaled")
def _(seed):
    obs = observe("broken_grad_accum_unscaled", seed)
    assert len(obs.backward) == 8 * len(obs.steps)
    assert obs.backward_losses() == obs.train_losses()  # backward gets the micro-batch mean, not mean / 8
    fixed = observe("broken_grad_accum_unscaled", seed, ["--lr", str(0.3 / 8)])  # the same update as dividing by 8
    assert tail(obs.train_losses()) > 10 * tail(fixed.train_losses())
    assert tail(fixed.train_losses()) < 0.5 * head(fixed.train_losses())


def _linear_grad_flow(obs: Observation, backward: int) -> list[float]:
    """||dL/d output|| of each nn.Linear at one backward pass, input side first."""
    return [norm for _, norm in reversed(obs.grad_flow[backward])]  # hooks fire from the output side


@check("broken_exploding_init")
def _(seed):
    with warnings.catch_warnings():  # the hooks fire on module outputs: the input data does not require gradients
        warnings.filterwarnings("ignore", "Full backward hook is firing")
        obs = observe("broken_exploding_init", seed, grad_flow=True)
    flow = _linear_grad_flow(obs, 0)
    assert flow[0] > 100 * flow[-1]  # the gradient grows ~2x per layer towards the input (measured ~500x)
    assert first_nonfinite(obs.backward_losses()) is not None  # and the run blows up (measured at step 3)
    assert obs.backward_losses()[1] > 10 * obs.backward_losses()[0]


@check("broken_exploding_irnn_loop")
def _(seed):
    obs = observe("broken_exploding_irnn_loop", seed)
    model = obs.roots[0]
    w_rec = obs.first_values[id(model.cell.rec.weight)]  # the recurrent matrix before the first update
    assert float(torch.linalg.eigvals(w_rec.double()).abs().max()) > 1.4  # spectral radius 1.5: growth per step
    # targets in [0.5, 1.5]: a sane first MSE is below 1; 1.5^50 growth gives ~7e16 (measured)
    assert obs.backward_losses()[0] > 1e6
    assert max(obs.steps[0]["grads"]) > 1e6  # the first gradient (measured ~1e17 on the recurrent matrix)
    assert turns_nonfinite_within(obs, 5)


@check("broken_exploding_resmlp_noscale")
def _(seed):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Full backward hook is firing")
        obs = observe("broken_exploding_resmlp_noscale", seed, grad_flow=True)
    flow = _linear_grad_flow(obs, 0)
    assert flow[0] > 1e4 * flow[-1]  # ||dL/d out|| grows ~2x per block towards the input (measured ~1e9x)
    assert obs.backward_losses()[0] > 1e3  # cross-entropy of an untrained 10-class model is ~2.3 (measured ~3e9)
    assert turns_nonfinite_within(obs, 5)


@check("broken_exploding_deep_cnn")
def _(seed):
    obs = observe("broken_exploding_deep_cnn", seed)
    model = obs.roots[0]
    x = obs.inputs[0]
    with torch.no_grad():  # the untrained model's activations, layer by layer, from the recorded initial weights
        h, rms = x, []
        for m in model:
            if isinstance(m, nn.Conv2d):
                h = F.conv2d(h, obs.first_values[id(m.weight)], obs.first_values[id(m.bias)], padding=m.padding)
                rms.append(float(h.pow(2).mean().sqrt()))
            elif isinstance(m, nn.ReLU):
                h = torch.relu(h)
    assert rms[-1] > 1e4 * rms[0]  # the signal grows ~6x per convolution (measured ~1e7 over 10)
    assert obs.backward_losses()[0] > 1e3  # an untrained 10-class model's cross-entropy is ~2.3
    assert turns_nonfinite_within(obs, 5)


@check("broken_vanishing_sigmoid")
def _(seed):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Full backward hook is firing")
        obs = observe("broken_vanishing_sigmoid", seed, grad_flow=True)
    flow = _linear_grad_flow(obs, 0)
    assert flow[0] < 1e-4 * flow[-1]  # ~1/4 per sigmoid layer towards the input
    grads = obs.steps[-1]["grads"]  # weight gradients, input side first (weight, bias per layer)
    assert grads[0] < 1e-3 * grads[-4]
    assert tail(obs.train_losses()) > 0.95 * math.log(10)


@check("broken_vanishing_tanh_rnn")
def _(seed):
    obs = observe("broken_vanishing_tanh_rnn", seed)
    model, x = obs.roots[0], obs.inputs[0].clone().requires_grad_(True)
    model(x).sum().backward()
    per_step = x.grad.norm(dim=(0, 2))  # ||d output / d x_t|| for every time step t
    assert per_step[0] < 1e-4 * per_step[-1]  # the first step, which carries the label, does not reach the output
    assert tail(obs.train_losses()) > 0.95 * math.log(2)


@check("broken_dead_relu_bias")
def _(seed):
    obs = observe("broken_dead_relu_bias", seed)
    dead = [p["dead"] for p in obs.probes["ReLU"] if p["train"]]
    assert min(dead) > 0.95  # every unit outputs 0 for every example of every batch
    assert tail(obs.train_losses()) > 0.95 * math.log(10)


@check("broken_dead_relu_lr")
def _(seed):
    obs = observe("broken_dead_relu_lr", seed)
    dead = [p["dead"] for p in obs.probes["ReLU"] if p["train"]]
    assert head(dead[0::2], 0.05) < 0.2 and tail(dead[1::2]) > 0.9  # second ReLU layer: alive at first, then dead
    assert tail(obs.train_losses()) > 0.95 * math.log(10)


@check("broken_saturated_tanh")
def _(seed):
    obs = observe("broken_saturated_tanh", seed)
    saturated = [p["saturated"] for p in obs.probes["Tanh"] if p["train"]]
    assert statistics.median(saturated) > 0.5  # most tanh outputs within 1e-2 of +-1 (measured 0.7-0.8)
    assert printed(obs, "test acc")[-1] < 0.9  # and they generalize poorly (measured 0.82; He/Glorot init: ~0.96)


@check("broken_diverging_lr")
def _(seed):
    obs = observe("broken_diverging_lr", seed)
    losses = obs.backward_losses()
    end = first_nonfinite(losses)
    assert end is not None and max(losses[:end]) > 1e6 * losses[0]  # geometric growth to overflow


@check("broken_oscillating_lr")
def _(seed):
    obs = observe("broken_oscillating_lr", seed)
    sane = observe("broken_oscillating_lr", seed, ["--lr", "1e-3"])
    losses, reference = obs.train_losses(), sane.train_losses()
    assert all_finite(obs)
    assert tail(losses, 0.5) > 2.5 * tail(reference, 0.5)  # hovers far above what lr 1e-3 reaches (measured 3.6x)
    late = losses[len(losses) // 2 :]
    assert max(late) > 1.5 * statistics.median(late) and swing(losses) > 0.15  # and jumps (measured 2.3x, 0.33)


@check("broken_lr_too_small")
def _(seed):
    obs = observe("broken_lr_too_small", seed)
    losses = obs.train_losses()
    assert tail(losses) > 0.97 * head(losses)
    assert max(obs.moved(i) for i in obs.steps[0]["params"]) < 1e-3


@check("broken_unnormalized_inputs")
def _(seed):
    obs = observe("broken_unnormalized_inputs", seed)
    std = obs.inputs[0].std(0)
    assert std.max() > 100 and std.max() / std.min() > 1e4  # area ~3e2 vs smoothness ~1e-2


@check("broken_batchnorm_batch2")
def _(seed):
    obs = observe("broken_batchnorm_batch2", seed)
    batches = {p["batch"] for p in obs.probes["BatchNorm1d"] if p["train"]}
    assert batches == {2}


@check("broken_naive_softmax")
def _(seed):
    captured: list[torch.Tensor] = []

    def softmax_input(module, args, out):  # the script's own Softmax module
        if not captured:
            captured.append(args[0].detach().clone())
        return None

    obs = observe("broken_naive_softmax", seed, probes={"Softmax": softmax_input})
    assert first_nonfinite(obs.backward_losses()) == 0
    logits = captured[0]
    assert logits.max() > FLOAT32_EXP_OVERFLOW and not torch.isfinite(torch.exp(logits)).all()
    assert torch.isfinite(torch.log_softmax(logits, dim=1)).all()  # the stable form of the same numbers


@check("broken_log_zero_loss")
def _(seed):
    obs = observe("broken_log_zero_loss", seed)
    end = first_nonfinite(obs.backward_losses())
    assert end is not None and end > 10  # trains for a while first
    assert obs.outputs[end] > FLOAT32_SIGMOID_ONE  # a logit whose float32 sigmoid is exactly 0 or 1
    assert torch.sigmoid(torch.tensor(obs.outputs[end])) == 1.0


def overfits(name: str, seed: int, *, parts: int, rise: float, memorized: float) -> list[float]:
    """The measurement behind every overfitting script: the validation loss is lowest within the first ``1/parts``
    of its evaluations and ends above ``rise`` times that minimum, while the training loss ends below ``memorized``
    times it (the training set is being memorized). Returns the validation losses from the minimum on."""
    obs = observe(name, seed)
    val, train = obs.val_losses(), obs.train_losses()
    best = val.index(min(val))
    assert best < len(val) // parts and val[-1] > rise * min(val)  # the validation loss climbs from an early minimum
    assert tail(train) < memorized * min(val)  # while the training loss goes towards 0
    return val[best:]


@check("broken_overfitting")
def _(seed):
    overfits("broken_overfitting", seed, parts=2, rise=1.2, memorized=0.01)


@check("broken_overfit_cancer_labelnoise")
def _(seed):  # measured: minimum by epoch 12, then 1.9-5x by epoch 60; flipped labels memorized (~1e-3)
    overfits("broken_overfit_cancer_labelnoise", seed, parts=4, rise=2.0, memorized=0.1)


@check("broken_overfit_digits_tiny_train")
def _(seed):  # measured +8% to +26% from a minimum at step 40-70; the 60 training images memorized (~0.003)
    rise = overfits("broken_overfit_digits_tiny_train", seed, parts=4, rise=1.05, memorized=0.05)
    assert all(b > a for a, b in itertools.pairwise(rise))  # and it rises at every evaluation after the minimum


@check("broken_labels_shuffled")
def _(seed):
    obs = observe("broken_labels_shuffled", seed)
    assert tail(obs.train_losses()) > 0.9 * math.log(10)  # stuck at chance
    assert printed(obs, "val acc")[-1] < 0.2


@check("broken_labels_off_by_one")
def _(seed):
    obs = observe("broken_labels_off_by_one", seed)
    assert tail(obs.train_losses()) > 0.9 * math.log(5)


@check("broken_mse_class_indices")
def _(seed):
    obs = observe("broken_mse_class_indices", seed)
    calls = [c for c in obs.losses if c["fn"] == "mse_loss" and c["train"]]
    assert all(len(c["shape"]) == 1 for c in calls)  # one number per example ...
    target = torch.cat([c["target"] for c in calls])
    assert bool((target == target.round()).all()) and set(target.unique().tolist()) == set(range(10))  # class ids
    assert printed(obs, "test accuracy (rounded)")[-1] < 0.6


@check("broken_ill_conditioned_regression")
def _(seed):
    obs = observe("broken_ill_conditioned_regression", seed)
    call = obs.losses[-1]
    x, y = obs.inputs[0].double(), call["target"].double()
    curvature = torch.linalg.eigvalsh(x.T @ x / len(x))
    assert curvature.max() / curvature.min() > 1e4  # condition number of the (mean squared error) Hessian
    design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    solution = torch.linalg.lstsq(design, y).solution
    optimum = float(((design @ solution - y) ** 2).mean())
    losses = obs.train_losses()
    assert losses[-1] > 10 * optimum and losses[-1] > 0.99 * losses[len(losses) // 2]  # stalled, far above


@check("broken_saddle_deep_linear")
def _(seed):
    obs = observe("broken_saddle_deep_linear", seed)
    assert sum(obs.steps[0]["grads"]) < 1e-6  # the gradient at the initial point (products of 1e-3 weights)
    losses = obs.train_losses()
    assert tail(losses, 0.2) > 0.9 * head(losses, 0.2)  # no progress, although the teacher is linear (optimum 0)


# ------------------------------------------------------------------------------------------------ held out
#: Held-out healthy scripts checked by "learns" alone (same meaning as LEARNS; measured at seeds 0-2, quick budget).
HELDOUT_LEARNS: dict[str, tuple[float, str | None, float]] = {
    "heldout/healthy_conv1d_waveforms": (0.6, "val acc", 0.5),
    "heldout/healthy_packed_gru": (0.95, "val acc", 0.6),
    "heldout/healthy_seq2seq_transformer": (0.9, "token acc", 0.15),
    "heldout/healthy_autoencoder_digits": (0.6, None, 0.0),
    "heldout/healthy_bn_cnn_digits": (0.3, None, 0.0),
    "heldout/healthy_trainer_amp_cancer": (0.5, "val acc", 0.9),
    "heldout/healthy_embeddingbag_topics": (0.6, "acc", 0.8),
    "heldout/healthy_earlystop_diabetes": (0.9, None, 0.0),  # SmoothL1 on a noisy target: 0.28 -> 0.23
    "heldout/healthy_ema_iris": (0.5, "acc", 0.8),
}
for _name, _spec in HELDOUT_LEARNS.items():
    check(_name)(_learns_check(_name, *_spec))


@check("heldout/healthy_compiled_wine")
def _(seed):
    obs = observe("heldout/healthy_compiled_wine", seed)
    assert "compiled with aot_eager" in obs.stdout or "torch.compile unavailable" in obs.stdout
    assert_learns(obs, 0.3)
    assert printed(obs, "acc")[-1] > 0.85


@check("heldout/broken_zero_grad_wrong_module")
def _(seed):
    obs = observe("heldout/broken_zero_grad_wrong_module", seed)
    student = obs.steps[-1]["optimizer"]
    first = next(i for i, s in enumerate(obs.steps) if s["optimizer"] == student)
    stale = [b["stale"].get(student, 0.0) > 0 for b in obs.backward[first + 1 :]]
    assert sum(stale) / len(stale) == 1.0  # every student backward adds onto gradients its optimizer already used
    grad = [sum(s["grads"]) for s in obs.steps if s["optimizer"] == student]
    assert tail(grad) > 10 * head(grad)


@check("heldout/broken_gru_eval_after_logging")
def _(seed):
    obs = observe("heldout/broken_gru_eval_after_logging", seed)
    modes = [s["owners_training"] == [True] for s in obs.steps]
    assert all(modes[:25]) and not any(modes[25:])  # the first validation (after step 24) leaves eval mode on
    assert all(s["eval_layers"] == 1 for s in obs.steps[25:])  # the Dropout module (and the GRU's own dropout)


@check("heldout/broken_functional_softmax_ce")
def _(seed):
    obs = observe("heldout/broken_functional_softmax_ce", seed)
    calls = [c for c in obs.losses if c["fn"] == "cross_entropy" and c["train"]]
    assert all(c["row_sum_dev"] < 1e-5 and c["min"] >= 0 for c in calls)  # probabilities, fed as logits
    assert min(obs.train_losses()) > math.log(1 + 3 / math.e) - 1e-6  # the least CE of probabilities, 4 classes


@check("heldout/broken_exploding_relu_rnn")
def _(seed):
    obs = observe("heldout/broken_exploding_relu_rnn", seed)
    # targets ~N(0, 1): a sane first MSE is O(1); the hidden state grows ~1.6x per step over 60 steps instead
    assert obs.backward_losses()[0] > 1e6
    assert obs.steps[0]["grads"][1] > 1e6  # ||dL/dW_hh|| at the first step (measured ~5e13)
    assert turns_nonfinite_within(obs, 5)


@check("heldout/broken_optimizer_on_ema")
def _(seed):
    obs = observe("heldout/broken_optimizer_on_ema", seed)
    trained = {id(p) for p in obs.roots[0].parameters()}
    assert trained.isdisjoint(obs.steps[0]["params"])  # the optimizer holds the EMA copy's tensors
    assert not any(any(s["has_grad"]) for s in obs.steps)  # which never receive a gradient
    assert max(obs.moved(i) for i in trained) == 0.0  # and the trained model never moves


@check("heldout/broken_overfit_wine_noise")
def _(seed):
    overfits("heldout/broken_overfit_wine_noise", seed, parts=4, rise=1.1, memorized=0.01)


@check("heldout/broken_transformer_adam_tiny_lr")
def _(seed):
    obs = observe("heldout/broken_transformer_adam_tiny_lr", seed)
    losses = obs.train_losses()
    assert tail(losses) > 0.97 * head(losses)
    assert max(obs.moved(i) for i in obs.steps[0]["params"]) < 1e-3  # ~1e-6 per step, 150 steps


@check("heldout/broken_unnormalized_wine")
def _(seed):
    obs = observe("heldout/broken_unnormalized_wine", seed)
    std = obs.inputs[0].std(0)
    assert std.max() > 100 and std.max() / std.min() > 1e3  # proline vs hue / nonflavanoid phenols


@check("heldout/broken_bn_cnn_batch4")
def _(seed):
    obs = observe("heldout/broken_bn_cnn_batch4", seed)
    assert {p["batch"] for p in obs.probes["BatchNorm2d"] if p["train"]} == {4}


@check("heldout/broken_dead_relu_cnn")
def _(seed):
    obs = observe("heldout/broken_dead_relu_cnn", seed)
    dead = [p["dead"] for p in obs.probes["ReLU"] if p["train"]]
    assert min(dead) == 1.0  # every unit of both ReLU layers is zero for every image of every batch
    model = obs.roots[0]
    assert max(obs.moved(id(p)) for p in [*model.conv1.parameters(), *model.conv2.parameters()]) == 0.0


@check("heldout/broken_naive_softmax_attention")
def _(seed):
    scores: list[torch.Tensor] = []  # the attention scores of every training forward

    def pool_scores(module, args, out):  # called under no_grad by the recorder; every forward here trains
        if module.training:
            scores.append((module.key(args[0]) @ module.query / module.temperature).detach())
        return None

    obs = observe("heldout/broken_naive_softmax_attention", seed, probes={"SharpAttentionPool": pool_scores})
    end = first_nonfinite(obs.backward_losses())
    assert end is not None and end < 60  # within the first epoch (measured: step 28 at seed 0)
    # the last finite step: the weights turned nan in its backward, where d(e / S)/dS = -e / S^2 and S^2 = sum(exp)^2
    # overflows once a score exceeds 88.7 / 2 (measured: max score 46 at step 27, seed 0)
    s = scores[end - 1].clone().requires_grad_(True)
    weights = torch.exp(s) / torch.exp(s).sum(1, keepdim=True)  # the module's formula
    (grad,) = torch.autograd.grad(weights[:, 0].sum(), s)
    assert torch.isfinite(weights).all() and not torch.isfinite(grad).all()
    (stable,) = torch.autograd.grad(torch.softmax(s, dim=1)[:, 0].sum(), s)
    assert torch.isfinite(stable).all()  # the stable form of the same scores


@check("heldout/broken_vanishing_sigmoid_cancer")
def _(seed):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Full backward hook is firing")
        obs = observe("heldout/broken_vanishing_sigmoid_cancer", seed, grad_flow=True)
    flow = _linear_grad_flow(obs, 0)
    assert flow[0] < 1e-3 * flow[-1]  # ~1/4 per sigmoid layer over 10 layers
    assert tail(obs.train_losses()) > 0.9 * math.log(2)  # and the classifier stays near chance


@check("heldout/broken_ill_conditioned_polyfit")
def _(seed):
    obs = observe("heldout/broken_ill_conditioned_polyfit", seed)
    call = obs.losses[-1]
    x, y = obs.inputs[0].double(), call["target"].double()
    curvature = torch.linalg.eigvalsh(x.T @ x / len(x))
    assert curvature.max() / curvature.min() > 1e6  # condition number of the mean-squared-error Hessian
    design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    optimum = float(((design @ torch.linalg.lstsq(design, y).solution - y) ** 2).mean())
    losses = obs.train_losses()
    assert losses[-1] > 100 * optimum and losses[-1] > 0.95 * losses[len(losses) // 2]  # stalled, far above


# ------------------------------------------------------------------------------------------------ the tests
def test_manifest_lists_every_script_once():
    for folder, manifest in ((CORPUS, MANIFEST), (CORPUS / "heldout", HELDOUT_MANIFEST)):
        on_disk = sorted(p.name for p in folder.glob("*.py"))
        listed = [e["script"] for e in manifest["scripts"]]
        assert sorted(listed) == on_disk and len(set(listed)) == len(listed)
    assert sorted(CHECKS) == sorted(ENTRIES)
    kinds = [e["kind"] for e in MANIFEST["scripts"]]
    assert kinds.count("healthy") >= 18 and kinds.count("broken") >= 27
    heldout = [e["kind"] for e in HELDOUT_MANIFEST["scripts"]]
    assert heldout.count("healthy") >= 8 and heldout.count("broken") >= 8
    assert all(e["split"] == "heldout" for e in HELDOUT_MANIFEST["scripts"])


def test_manifest_codes_are_in_the_vocabulary():
    vocabulary = set(re.findall(r"`([a-z_]+)`", _codes_paragraph()))
    for entry in MANIFEST["scripts"] + HELDOUT_MANIFEST["scripts"]:
        assert entry["kind"] in ("healthy", "broken")
        assert set(entry["cause"]) | set(entry["symptoms"]) <= vocabulary, entry["script"]
        assert bool(entry["cause"]) == (entry["kind"] == "broken"), entry["script"]
        assert not set(entry["cause"]) & set(entry["symptoms"]), entry["script"]


def _codes_paragraph() -> str:
    """The closed vocabulary as the corpus was written against it (ARCHITECTURE.md, "Finding codes")."""
    return (
        "`nonfinite`, `exploding_gradient`, `vanishing_gradient`, `dead_relu`, `saturated_activation`, "
        "`diverging_loss`, `oscillating_loss`, `slow_convergence`, `overfitting`, `ill_conditioned`, `saddle_point`, "
        "`bad_init_scale`, `unnormalized_inputs`, `batchnorm_small_batch`, `loss_activation_mismatch`, "
        "`naive_softmax`, `batch_size_advice`, `missing_zero_grad`, `parameters_not_updated`, `eval_mode_training`"
    )


def test_scripts_are_plain_pytorch():
    """No deepbasics import and nothing downloaded: torch, numpy, scikit-learn's bundled data, the standard library."""
    allowed = {"argparse", "math", "random", "sys", "copy", "numpy", "torch", "sklearn"}
    for path in [*CORPUS.glob("*.py"), *(CORPUS / "heldout").glob("*.py")]:
        imported = re.findall(r"^\s*(?:from|import)\s+([a-zA-Z_][\w]*)", path.read_text(encoding="utf-8"), re.M)
        assert set(imported) <= allowed, (path.name, set(imported) - allowed)
        assert "fetch_" not in path.read_text(encoding="utf-8"), path.name  # sklearn's downloaders


RUNS = [
    (name, seed) for name in sorted(ENTRIES) for seed in ((0, 1, 2) if ENTRIES[name]["kind"] == "healthy" else (0,))
]


@pytest.mark.parametrize(("name", "seed"), RUNS, ids=[f"{n}-s{s}" for n, s in RUNS])
def test_script(name, seed):
    """Runs the script with its quick budget and measures its bug (a healthy one, for seeds 0-2: that it learns)."""
    CHECKS[name](seed)


# ------------------------------------------------------------------------------------------------ the benchmark
def _benchmark():
    spec = importlib.util.spec_from_file_location("doctor_corpus_benchmark", CORPUS.parent / "doctor_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _raw(findings=(), rc=0, status="ok", stderr="", report=True):
    models = [
        {"name": "Net", "findings": [{"code": c, "severity": s, "where": [], "evidence": {}} for c, s in findings]}
    ]
    body = {"status": status, "error": None, "traceback": None, "models": models}
    return {"rc": rc, "stderr": stderr, "report": body if report else None, "seconds": 1.0}


BROKEN = {"script": "b.py", "kind": "broken", "cause": ["dead_relu"], "symptoms": ["slow_convergence"]}
HEALTHY = {"script": "h.py", "kind": "healthy", "cause": [], "symptoms": []}
TRACEBACK = 'Traceback (most recent call last):\n  File "/x/src/deepbasics/doctor/watch.py", line 3\nKeyError: 1'


@pytest.mark.parametrize(
    ("entry", "raw", "expected"),
    [
        (BROKEN, _raw([("dead_relu", "warning")]), "cause named"),
        (BROKEN, _raw([("dead_relu", "error"), ("nonfinite", "error")]), "cause named"),
        (BROKEN, _raw([("dead_relu", "info"), ("slow_convergence", "warning")]), "symptom only"),  # info never counts
        (BROKEN, _raw([("dead_relu", "info")]), "missed"),
        (BROKEN, _raw([("overfitting", "warning")]), "missed"),
        (BROKEN, _raw([("dead_relu", "error")], rc=3, status="nonfinite"), "cause named"),
        (HEALTHY, _raw([("batch_size_advice", "info")]), "clean"),
        (HEALTHY, _raw([("overfitting", "warning")]), "false finding"),
        (HEALTHY, _raw(rc=3, status="nonfinite"), "crash"),
        (BROKEN, _raw([("dead_relu", "warning")], rc=1, status="script_error"), "crash"),
        (BROKEN, _raw(rc=None, report=False), "crash"),
        (BROKEN, _raw(report=False), "crash"),
        (HEALTHY, _raw(stderr=TRACEBACK), "crash"),
    ],
)
def test_benchmark_classifies_runs(entry, raw, expected):
    row = _benchmark().classify(entry, 0, raw)
    assert row["class"] == expected
    assert (row["crash"] is not None) == (expected == "crash")


def test_benchmark_totals_count_warnings_and_errors_on_healthy_runs_only():
    bench = _benchmark()
    rows = [
        bench.classify(HEALTHY, 0, _raw([("overfitting", "warning"), ("ill_conditioned", "error"), ("x", "info")])),
        bench.classify(HEALTHY, 1, _raw()),
        bench.classify(BROKEN, 0, _raw([("dead_relu", "warning"), ("overfitting", "warning")])),
        bench.classify(BROKEN, 0, _raw()),
    ]
    totals = bench.totals(rows)
    assert totals["false_findings"] == 2 and totals["healthy_runs_with_false_findings"] == 1
    assert totals["cause_named"] == 1 and totals["cause_named_pct"] == 50.0 and totals["missed"] == 1
    assert rows[2]["extra"] == ["overfitting"] and totals["crashes"] == 0
