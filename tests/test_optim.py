"""deepbasics.optim optimizers against torch.optim: one table of settings for every optimizer.

As in PyTorch's own optimizer tests, each row is (optimizer, hyperparameters); every row is run on the
Rosenbrock function and on a small MLP in float64, with both of our kernels, next to the torch.optim
class with the same arguments.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
import torch

import deepbasics.optim as dbo

NAMES = ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW"]


@dataclass(frozen=True)
class Case:
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.name + ("-" + ",".join(f"{k}={v}" for k, v in self.kwargs.items()) if self.kwargs else "")


CASES = [
    Case("SGD"),
    Case("SGD", {"momentum": 0.9}),
    Case("SGD", {"momentum": 0.9, "dampening": 0.5}),
    Case("SGD", {"momentum": 0.9, "nesterov": True}),
    Case("SGD", {"momentum": 0.9, "weight_decay": 0.1}),
    Case("SGD", {"weight_decay": 0.1, "maximize": True}),
    Case("SGD", {"momentum": 0.5, "nesterov": True, "weight_decay": 0.01, "maximize": True}),
    Case("Adagrad"),
    Case("Adagrad", {"lr_decay": 0.01}),
    Case("Adagrad", {"weight_decay": 0.1, "initial_accumulator_value": 0.1}),
    Case("Adagrad", {"eps": 1e-3, "maximize": True}),
    Case("RMSprop"),
    Case("RMSprop", {"centered": True}),
    Case("RMSprop", {"momentum": 0.9}),
    Case("RMSprop", {"centered": True, "momentum": 0.5, "weight_decay": 0.1}),
    Case("RMSprop", {"alpha": 0.9, "eps": 1e-4, "maximize": True}),
    Case("Adadelta"),
    Case("Adadelta", {"rho": 0.5, "eps": 1e-4}),
    Case("Adadelta", {"weight_decay": 0.1, "maximize": True}),
    Case("Adam"),
    Case("Adam", {"amsgrad": True}),
    Case("Adam", {"weight_decay": 0.1}),
    Case("Adam", {"betas": (0.5, 0.9), "eps": 1e-4, "amsgrad": True, "maximize": True}),
    Case("Adam", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    Case("AdamW"),
    Case("AdamW", {"weight_decay": 0.5, "amsgrad": True}),
    Case("AdamW", {"maximize": True}),
]

# The setting of each optimizer with the most state, for the state-dict tests.
FULL_STATE = {
    "SGD": {"momentum": 0.9, "nesterov": True},
    "Adagrad": {"lr_decay": 0.01, "initial_accumulator_value": 0.1},
    "RMSprop": {"centered": True, "momentum": 0.5},
    "Adadelta": {"weight_decay": 0.01},
    "Adam": {"amsgrad": True, "weight_decay": 0.01},
    "AdamW": {"amsgrad": True},
}


# ----------------------------------------------------------------------------------------------- problems
class Rosenbrock:
    """f(x, y) = (1 - x)² + 100 (y - x²)², with x and y as two separate parameters (two tensors per group)."""

    lrs: ClassVar[dict[str, float]] = {
        "SGD": 2e-4,
        "Adagrad": 0.1,
        "RMSprop": 1e-3,
        "Adadelta": 1.0,
        "Adam": 1e-2,
        "AdamW": 1e-2,
    }

    @staticmethod
    def init() -> list[torch.Tensor]:
        return [torch.tensor([-1.5], requires_grad=True), torch.tensor([[2.0]], requires_grad=True)]

    @staticmethod
    def loss(params: list[torch.Tensor]) -> torch.Tensor:
        x, y = params[0].sum(), params[1].sum()
        return (1 - x) ** 2 + 100 * (y - x**2) ** 2

    @staticmethod
    def backward(params: list[torch.Tensor], sign: float) -> None:
        """Set the analytic gradient of sign * f (faster than autograd; checked against it below)."""
        with torch.no_grad():
            x, y = params
            gx = sign * (-2 * (1 - x) - 400 * x * (y.reshape(1) - x**2))
            gy = sign * 200 * (y - x.reshape(1, 1) ** 2)
            for p, g in ((x, gx), (y, gy)):
                p.grad = g if p.grad is None else p.grad.add_(g)


class MLP:
    """Mean squared error of a 5-8-3 tanh network on 32 fixed samples, as a function of its 4 parameters."""

    lrs: ClassVar[dict[str, float]] = {
        "SGD": 0.05,
        "Adagrad": 0.1,
        "RMSprop": 1e-2,
        "Adadelta": 1.0,
        "Adam": 1e-2,
        "AdamW": 1e-2,
    }

    @staticmethod
    def init() -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(1)
        shapes = [(8, 5), (8,), (3, 8), (3,)]
        return [(0.5 * torch.randn(s, generator=g, dtype=torch.float64)).requires_grad_() for s in shapes]

    _g = torch.Generator().manual_seed(2)
    x = torch.randn(32, 5, generator=_g, dtype=torch.float64)  # (N, 5)
    y = torch.randn(32, 3, generator=_g, dtype=torch.float64)  # (N, 3)

    @staticmethod
    def loss(params: list[torch.Tensor]) -> torch.Tensor:
        w1, b1, w2, b2 = params
        return ((torch.tanh(MLP.x @ w1.T + b1) @ w2.T + b2 - MLP.y) ** 2).mean()

    @staticmethod
    def backward(params: list[torch.Tensor], sign: float) -> None:
        (sign * MLP.loss(params)).backward()


PROBLEMS = [Rosenbrock, MLP]


def make(lib: str, case: Case, params: Any, problem: type, **extra: Any) -> torch.optim.Optimizer:
    cls = getattr(dbo if lib == "ours" else torch.optim, case.name)
    return cls(params, lr=problem.lrs[case.name], **{**case.kwargs, **extra})


def train(opt: torch.optim.Optimizer, params: list[torch.Tensor], problem: type, steps: int, maximize: bool) -> None:
    for _ in range(steps):
        opt.zero_grad()
        problem.backward(params, -1.0 if maximize else 1.0)  # maximize=True ascends -f: still descends f
        opt.step()


def test_rosenbrock_gradient_is_autograds(float64):
    params = [torch.tensor([-0.7], requires_grad=True), torch.tensor([[1.3]], requires_grad=True)]
    expected = torch.autograd.grad(Rosenbrock.loss(params), params)
    Rosenbrock.backward(params, 1.0)
    for p, g in zip(params, expected, strict=True):
        torch.testing.assert_close(p.grad, g, atol=1e-12, rtol=1e-12)


def max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max((x.detach() - y.detach()).abs().max().item() for x, y in zip(a, b, strict=True))


def state_tensors(opt: torch.optim.Optimizer) -> list[dict[str, torch.Tensor]]:
    return [opt.state_dict()["state"][i] for i in sorted(opt.state_dict()["state"])]


_RUNS: dict[tuple[str, str, str], tuple[list[torch.Tensor], torch.optim.Optimizer]] = {}


def run(lib: str, case: Case, problem: type, foreach: bool) -> tuple[list[torch.Tensor], torch.optim.Optimizer]:
    """The 200-step run of ``lib``'s optimizer in float64, computed once per (lib, kernel, case, problem)."""
    key = (lib + str(foreach), case.id, problem.__name__)
    if key not in _RUNS:
        dtype = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)  # the dtype of state["step"], as under the float64 fixture
        params = problem.init()
        opt = make(lib, case, params, problem, foreach=foreach)
        train(opt, params, problem, 200, case.kwargs.get("maximize", False))
        torch.set_default_dtype(dtype)
        _RUNS[key] = (params, opt)
    return _RUNS[key]


# ------------------------------------------------------------------------------------- trajectory vs torch
@pytest.mark.parametrize("foreach", [False, True], ids=["reference", "foreach"])
@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_200_steps_match_torch(case, problem, foreach, float64):
    theirs, torch_opt = run("torch", case, problem, foreach=False)  # torch's default kernel on CPU
    ours, opt = run("ours", case, problem, foreach=foreach)

    moved = max_diff(ours, problem.init())
    assert all(bool(torch.isfinite(p).all()) for p in ours)
    assert moved > 1e-3, f"the run barely moved ({moved:.1e}), so the comparison would be vacuous"
    assert max_diff(ours, theirs) <= 1e-6
    # same state names and values, same per-group keys: the state dicts are interchangeable
    for mine, ref in zip(state_tensors(opt), state_tensors(torch_opt), strict=True):
        assert mine.keys() == ref.keys()
        for key in ref:
            torch.testing.assert_close(mine[key], ref[key], atol=1e-6, rtol=0)
    assert opt.param_groups[0].keys() == torch_opt.param_groups[0].keys()


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_foreach_kernel_equals_reference_kernel(case, problem, float64):
    reference, _ = run("ours", case, problem, foreach=False)
    fast, _ = run("ours", case, problem, foreach=True)
    for a, b in zip(reference, fast, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_foreach_handles_mixed_dtypes(name):
    # one float32 and one float64 parameter: the foreach kernel splits them into (device, dtype) buckets
    runs = []
    for foreach in (False, True):
        params = [torch.ones(3, dtype=torch.float32, requires_grad=True), torch.ones(2, 2, dtype=torch.float64) * 2]
        params[1].requires_grad_()
        opt = getattr(dbo, name)(params, lr=0.01, foreach=foreach)
        for _ in range(5):
            opt.zero_grad()
            (params[0].pow(3).sum() + params[1].pow(2).sum().float()).backward()
            opt.step()
        runs.append(params)
    for a, b in zip(*runs, strict=True):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b)


# ------------------------------------------------------------------------------ groups, schedulers, closure
@pytest.mark.parametrize("name", NAMES)
def test_param_groups_with_different_lr_match_torch(name, float64):
    lr = MLP.lrs[name]
    results = []
    for lib in (dbo, torch.optim):
        params = MLP.init()
        opt = getattr(lib, name)([{"params": params[:2]}], lr=lr)
        train(opt, params, MLP, 20, False)
        # a second group, added mid-training, with its own lr and weight decay
        opt.add_param_group({"params": params[2:], "lr": lr / 10, "weight_decay": 0.01})
        train(opt, params, MLP, 60, False)
        results.append(params)
    assert max_diff(*results) <= 1e-10
    assert max_diff(results[0][2:], MLP.init()[2:]) > 1e-3


@pytest.mark.parametrize(
    "scheduler",
    [
        lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=15, gamma=0.5),
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=60),
    ],
    ids=["StepLR", "CosineAnnealingLR"],
)
@pytest.mark.parametrize("name", NAMES)
def test_lr_schedulers_give_the_same_trajectory_as_torch(name, scheduler, float64):
    results, lr_histories = [], []
    for lib in (dbo, torch.optim):
        params = MLP.init()
        opt = getattr(lib, name)(params, lr=MLP.lrs[name])
        sched = scheduler(opt)
        history = []
        for _ in range(60):
            opt.zero_grad()
            MLP.loss(params).backward()
            opt.step()
            sched.step()
            history.append(opt.param_groups[0]["lr"])
        results.append(params)
        lr_histories.append(history)
    assert lr_histories[0] == lr_histories[1]
    assert len(set(lr_histories[0])) > 2  # the schedule really changed the learning rate
    assert max_diff(*results) <= 1e-10


@pytest.mark.parametrize("name", NAMES)
def test_step_with_closure_returns_the_loss(name, float64):
    params = MLP.init()
    opt = getattr(dbo, name)(params, lr=MLP.lrs[name])

    def closure():
        opt.zero_grad()
        loss = MLP.loss(params)
        loss.backward()
        return loss

    first = opt.step(closure)
    torch.testing.assert_close(first, MLP.loss(MLP.init()))
    assert opt.step() is None


# ------------------------------------------------------------------------------------------- state dicts
def _full_state_run(lib: Any, name: str, params: list[torch.Tensor], steps: int) -> torch.optim.Optimizer:
    opt = getattr(lib, name)(params, lr=MLP.lrs[name], **FULL_STATE[name])
    train(opt, params, MLP, steps, False)
    return opt


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_mid_training_continues_identically(name, float64):
    params = MLP.init()
    opt = _full_state_run(dbo, name, params, 30)
    saved_state, saved_params = copy.deepcopy(opt.state_dict()), [p.detach().clone() for p in params]
    train(opt, params, MLP, 30, False)

    resumed = [p.clone().requires_grad_() for p in saved_params]
    opt2 = getattr(dbo, name)(resumed, lr=MLP.lrs[name], **FULL_STATE[name])
    opt2.load_state_dict(saved_state)
    train(opt2, resumed, MLP, 30, False)
    for a, b in zip(params, resumed, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("direction", ["torch->ours", "ours->torch"])
@pytest.mark.parametrize("name", NAMES)
def test_state_dicts_are_interchangeable_with_torch(name, direction, float64):
    src_lib, dst_lib = (torch.optim, dbo) if direction == "torch->ours" else (dbo, torch.optim)
    params = MLP.init()
    src = _full_state_run(src_lib, name, params, 30)
    copies = [p.detach().clone().requires_grad_() for p in params]
    dst = getattr(dst_lib, name)(copies, lr=MLP.lrs[name], **FULL_STATE[name])
    dst.load_state_dict(copy.deepcopy(src.state_dict()))
    train(src, params, MLP, 30, False)
    train(dst, copies, MLP, 30, False)
    assert max_diff(params, copies) <= 1e-12


def test_old_state_dict_with_a_float_step_still_loads(float64):
    params = MLP.init()
    opt = _full_state_run(dbo, "Adam", params, 5)
    state = copy.deepcopy(opt.state_dict())
    for s in state["state"].values():
        s["step"] = float(s["step"])  # the pre-1.12 format
    opt2 = dbo.Adam(params, lr=MLP.lrs["Adam"], **FULL_STATE["Adam"])
    opt2.load_state_dict(state)
    assert all(torch.is_tensor(s["step"]) and s["step"].item() == 5 for s in opt2.state.values())
    train(opt2, params, MLP, 2, False)
    assert all(s["step"].item() == 7 for s in opt2.state.values())


def test_loaded_state_asking_for_an_unsupported_kernel_fails_clearly():
    p = torch.zeros(2, requires_grad=True)
    opt = dbo.Adam([p])
    state = opt.state_dict()
    state["param_groups"][0]["fused"] = True
    opt.load_state_dict(state)
    p.grad = torch.ones(2)
    with pytest.raises(ValueError, match="fused: expected False or None"):
        opt.step()


# --------------------------------------------------------------------------------- grads and bookkeeping
@pytest.mark.parametrize("foreach", [False, True], ids=["reference", "foreach"])
@pytest.mark.parametrize("name", NAMES)
def test_params_with_grad_none_are_skipped(name, foreach):
    used, unused = torch.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    opt = getattr(dbo, name)([used, unused], lr=0.1, weight_decay=0.1, foreach=foreach)
    used.sum().mul(2).backward()
    opt.step()
    assert unused.grad is None
    assert torch.equal(unused, torch.ones(3))
    assert len(opt.state[unused]) == 0
    assert not torch.equal(used, torch.ones(3))


@pytest.mark.parametrize("foreach", [False, True], ids=["reference", "foreach"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_step_leaves_the_gradients_untouched(case, foreach, float64):
    params = MLP.init()
    opt = make("ours", case, params, MLP, foreach=foreach)
    for _ in range(2):  # the second step exercises the existing-state branches
        opt.zero_grad()
        MLP.loss(params).backward()
        grads = [p.grad.clone() for p in params]
        opt.step()
        for p, g in zip(params, grads, strict=True):
            assert torch.equal(p.grad, g)


@pytest.mark.parametrize("name", NAMES)
def test_zero_grad(name):
    p = torch.ones(3, requires_grad=True)
    opt = getattr(dbo, name)([p])
    p.sum().backward()
    opt.zero_grad(set_to_none=False)
    assert torch.equal(p.grad, torch.zeros(3))
    opt.zero_grad()
    assert p.grad is None


@pytest.mark.parametrize("foreach", [False, True], ids=["reference", "foreach"])
@pytest.mark.parametrize("name", NAMES)
def test_complex_parameters_match_torch(name, foreach):
    target = torch.tensor([1.0 + 2.0j, -0.5 + 0.25j], dtype=torch.complex128)
    results = []
    for lib, fe in ((dbo, foreach), (torch.optim, False)):
        p = torch.zeros(2, dtype=torch.complex128, requires_grad=True)
        opt = getattr(lib, name)([p], lr=0.05, foreach=fe, **FULL_STATE[name])
        for _ in range(30):
            opt.zero_grad()
            (p - target).abs().pow(2).sum().backward()
            opt.step()
        results.append(p)
    torch.testing.assert_close(results[0], results[1], atol=1e-12, rtol=0)


@pytest.mark.filterwarnings("ignore:Sparse invariant checks:UserWarning")  # raised inside torch.optim.Adagrad
@pytest.mark.parametrize("kwargs", [{"lr": 0.1}, {"lr": 0.1, "momentum": 0.9}], ids=["plain", "momentum"])
@pytest.mark.parametrize("name", ["SGD", "Adagrad"])
def test_sparse_gradients_match_torch(name, kwargs):
    if name == "Adagrad":
        kwargs = {"lr": 0.1}
    results = []
    for lib in (dbo, torch.optim):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(10, 3, sparse=True)
        opt = getattr(lib, name)(emb.parameters(), **kwargs)
        for step in range(5):
            opt.zero_grad()
            emb(torch.tensor([step, 2, 2, 7])).pow(2).sum().backward()
            opt.step()
        results.append(emb.weight.detach())
    torch.testing.assert_close(results[0], results[1], atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["RMSprop", "Adadelta", "Adam", "AdamW"])
def test_dense_only_optimizers_reject_sparse_gradients(name):
    emb = torch.nn.Embedding(4, 2, sparse=True)
    opt = getattr(dbo, name)(emb.parameters())
    emb(torch.tensor([1])).sum().backward()
    with pytest.raises(ValueError, match="grad: expected a dense gradient"):
        opt.step()


def test_adagrad_rejects_weight_decay_with_sparse_gradients():
    emb = torch.nn.Embedding(4, 2, sparse=True)
    opt = dbo.Adagrad(emb.parameters(), weight_decay=0.1)
    emb(torch.tensor([1])).sum().backward()
    with pytest.raises(ValueError, match="weight_decay: expected 0 with sparse gradients"):
        opt.step()


# Through two steps for the settings whose state torch updates autograd-safely; amsgrad and centered
# RMSprop overwrite a saved state in place, so (in torch too) only one step can be differentiated.
DIFFERENTIABLE = [
    ("SGD", {"momentum": 0.9, "nesterov": True}, 2),
    ("Adagrad", {"lr_decay": 0.01, "initial_accumulator_value": 0.1}, 2),
    ("RMSprop", {"momentum": 0.5, "weight_decay": 0.1}, 2),
    ("RMSprop", {"centered": True, "momentum": 0.5}, 1),
    ("Adadelta", {"weight_decay": 0.01}, 2),
    ("Adam", {"weight_decay": 0.01}, 2),
    ("Adam", {"amsgrad": True}, 1),
    ("AdamW", {}, 2),
]


@pytest.mark.parametrize(("name", "kwargs", "steps"), DIFFERENTIABLE, ids=[f"{d[0]}-{d[1]}" for d in DIFFERENTIABLE])
def test_differentiable_step_gives_torchs_hypergradients(name, kwargs, steps, float64):
    """d(params after the steps)/d(initial params, gradient scale), through the update, as torch computes it."""
    results = []
    for lib in (dbo, torch.optim):
        p0 = torch.tensor([0.3, -0.7, 1.1], requires_grad=True)
        g = torch.tensor([0.5, -0.2, 0.9], requires_grad=True)
        p = p0.clone()
        opt = getattr(lib, name)([p], lr=0.1, differentiable=True, **kwargs)
        for _ in range(steps):
            p.grad = g * p.clone()  # depends on the current parameters (clone: p changes in place)
            opt.step()
        results.append(torch.autograd.grad((p * torch.tensor([1.0, 2.0, 3.0])).sum(), (p0, g)))
    for ours, theirs in zip(*results, strict=True):
        assert ours.abs().sum() > 0
        torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=1e-12)


# ------------------------------------------------------------------------------------ construction & errors
@pytest.mark.parametrize("name", NAMES)
def test_constructor_signature_is_torchs(name):
    ours = inspect.signature(getattr(dbo, name)).parameters
    theirs = inspect.signature(getattr(torch.optim, name)).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        (p.name, p.kind, p.default) for p in theirs.values()
    ]


@pytest.mark.parametrize("name", NAMES)
def test_defaults_and_group_keys_are_torchs(name):
    p = torch.zeros(2, requires_grad=True)
    ours, theirs = getattr(dbo, name)([p]), getattr(torch.optim, name)([p])
    assert ours.defaults == theirs.defaults
    assert isinstance(ours, torch.optim.Optimizer)


def test_tensor_lr_is_read_as_a_float():
    opt = dbo.SGD([torch.zeros(2, requires_grad=True)], lr=torch.tensor(0.25))
    assert opt.param_groups[0]["lr"] == 0.25


BAD = [
    ("SGD", {"lr": -0.1}, ValueError, r"lr: expected a value in \[0, inf\), got -0.1"),
    ("SGD", {"lr": float("nan")}, ValueError, "lr: expected a finite number"),
    ("SGD", {"lr": "0.1"}, TypeError, "lr: expected a real number"),
    ("SGD", {"lr": torch.tensor([0.1, 0.2])}, ValueError, "lr: expected a float or a 1-element tensor"),
    ("SGD", {"momentum": -0.1}, ValueError, "momentum: expected a value in"),
    ("SGD", {"momentum": 1.0}, ValueError, "momentum: expected a value in"),
    ("SGD", {"dampening": 1.5}, ValueError, "dampening: expected"),
    ("SGD", {"weight_decay": -1e-4}, ValueError, "weight_decay: expected"),
    ("SGD", {"nesterov": True}, ValueError, "nesterov: expected momentum > 0 and dampening == 0"),
    ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, ValueError, "nesterov: expected momentum > 0"),
    ("SGD", {"nesterov": 1, "momentum": 0.9}, TypeError, "nesterov: expected True or False"),
    ("SGD", {"maximize": "yes"}, TypeError, "maximize: expected True or False"),
    ("SGD", {"fused": True}, ValueError, "fused: expected False or None"),
    ("SGD", {"foreach": True, "differentiable": True}, ValueError, "foreach: expected False or None"),
    ("Adagrad", {"lr_decay": -0.1}, ValueError, "lr_decay: expected"),
    ("Adagrad", {"initial_accumulator_value": -1.0}, ValueError, "initial_accumulator_value: expected"),
    ("Adagrad", {"eps": -1e-10}, ValueError, "eps: expected"),
    ("RMSprop", {"alpha": 1.5}, ValueError, "alpha: expected"),
    ("RMSprop", {"momentum": -0.5}, ValueError, "momentum: expected"),
    ("RMSprop", {"capturable": True}, ValueError, "capturable: expected False or None"),
    ("Adadelta", {"rho": 1.1}, ValueError, "rho: expected"),
    ("Adadelta", {"eps": -1.0}, ValueError, "eps: expected"),
    ("Adam", {"betas": (1.0, 0.999)}, ValueError, r"betas\[0\]: expected a value in \[0, 1\)"),
    ("Adam", {"betas": (0.9, -0.1)}, ValueError, r"betas\[1\]: expected"),
    ("Adam", {"betas": (0.9,)}, TypeError, "betas: expected a pair"),
    ("Adam", {"eps": -1e-8}, ValueError, "eps: expected"),
    ("Adam", {"weight_decay": -0.1}, ValueError, "weight_decay: expected"),
    ("Adam", {"amsgrad": None}, TypeError, "amsgrad: expected True or False"),
    ("AdamW", {"betas": (0.9, 1.0)}, ValueError, r"betas\[1\]: expected"),
    ("AdamW", {"foreach": "fast"}, TypeError, "foreach: expected None, True or False"),
]


@pytest.mark.parametrize(("name", "kwargs", "exc", "match"), BAD, ids=[f"{b[0]}-{b[1]}" for b in BAD])
def test_bad_hyperparameters_raise(name, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        getattr(dbo, name)([torch.zeros(2, requires_grad=True)], **kwargs)


@pytest.mark.parametrize("name", NAMES)
def test_bad_param_group_is_rejected(name):
    opt = getattr(dbo, name)([torch.zeros(2, requires_grad=True)])
    with pytest.raises(ValueError, match="lr: expected"):
        opt.add_param_group({"params": [torch.zeros(2, requires_grad=True)], "lr": -1.0})
    with pytest.raises(TypeError, match="param_group: expected a dict with a 'params' key"):
        opt.add_param_group([torch.zeros(2, requires_grad=True)])
    with pytest.raises(ValueError, match="param_group: expected a dict with a 'params' key, got keys"):
        opt.add_param_group({"lr": 0.1})
    assert len(opt.param_groups) == 1


def test_empty_parameter_list_raises():
    with pytest.raises(ValueError, match="empty parameter list"):
        dbo.Adam([])
