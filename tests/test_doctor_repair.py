"""Fixes (each against an independent reference) and repair (verified on copies; the user's model untouched)."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from sklearn.preprocessing import StandardScaler
from torch import nn

from deepbasics.doctor import zoo
from deepbasics.doctor.findings import CODES
from deepbasics.doctor.fixes import CANDIDATES, FIXES, Fix, NotApplicable, candidates_for, clipped, get_fix
from deepbasics.doctor.repairing import ORDER, evaluate_case, improved, repair, repair_case, train_case
from deepbasics.doctor.zoo import Case, NaiveLogSoftmax
from deepbasics.nn import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, mlp, small_cnn


def _case(model: nn.Module, *, x=None, y=None, loss=None, opt=None, batch=16, task="classification") -> Case:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g) if x is None else x
    y = torch.randint(0, 3, (len(x),), generator=g) if y is None else y
    opt = opt or (lambda p: torch.optim.SGD(p, lr=0.1))
    return Case(model, loss or nn.CrossEntropyLoss(), (x, y), (x[:16], y[:16]), opt, batch, 20, "mlp", task)


# --- the catalogue -------------------------------------------------------------------------------------------


def test_catalogue_is_complete_and_ordered():
    assert set(CANDIDATES) == set(CODES) and sorted(ORDER) == sorted(CODES)
    for code, names in CANDIDATES.items():
        for name in names:
            assert name == "he_or_glorot" or code in FIXES[name].applies_to, (code, name)
    with pytest.raises(ValueError, match="catalogue"):
        get_fix("magic")
    with pytest.raises(ValueError, match="closed vocabulary"):
        Fix("x", {"bogus"}, lambda c: c, "")


def test_he_or_glorot_follows_the_activation():
    assert candidates_for("bad_init_scale", _case(mlp([6, 8, 3])))[0].name == "he_init"
    assert candidates_for("bad_init_scale", _case(mlp([6, 8, 3], activation="tanh")))[0].name == "glorot_init"


def test_he_init_matches_torch_kaiming_variance():
    torch.manual_seed(0)
    case = get_fix("he_init")(_case(mlp([400, 400, 3])))
    w = case.model.linear1.weight
    assert abs(w.std().item() / math.sqrt(2 / 400) - 1) < 0.02
    ref = nn.init.kaiming_normal_(torch.empty(400, 400), nonlinearity="relu")
    assert abs(w.std().item() / ref.std().item() - 1) < 0.03
    assert torch.count_nonzero(case.model.linear1.bias) == 0


def test_glorot_init_bound():
    case = get_fix("glorot_init")(_case(mlp([300, 100, 3], activation="tanh")))
    bound = math.sqrt(6 / (300 + 100))
    w = case.model.linear1.weight
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound


def test_swap_to_relu_keeps_output_activation():
    model = mlp([6, 8, 8, 1], activation="sigmoid", final_activation="sigmoid")
    case = get_fix("swap_to_relu")(_case(model))
    assert isinstance(case.model.act1, nn.ReLU) and isinstance(case.model.act2, nn.ReLU)
    assert isinstance(case.model.final_act, nn.Sigmoid)
    with pytest.raises(NotApplicable):
        get_fix("swap_to_relu")(_case(mlp([6, 8, 3])))


def test_insert_norms_and_batchnorm_to_layer():
    case = get_fix("insert_batchnorm")(_case(mlp([6, 8, 8, 3])))
    assert [type(m) for m in case.model if isinstance(m, BatchNorm1d)] == [BatchNorm1d, BatchNorm1d]
    assert case.model(torch.randn(4, 6)).shape == (4, 3)
    with pytest.raises(NotApplicable, match="too small"):
        get_fix("insert_batchnorm")(_case(mlp([6, 8, 3]), batch=2))
    cnn = get_fix("batchnorm_to_layer")(_case(small_cnn(1, 3, (4,), norm="batch")))
    assert isinstance(cnn.model.norm1, GroupNorm) and not any(isinstance(m, BatchNorm2d) for m in cnn.model.modules())
    vec = get_fix("batchnorm_to_layer")(_case(mlp([6, 8, 3], norm="batch")))
    assert isinstance(vec.model.norm1, LayerNorm)


def test_fix_output_returns_logits():
    torch.manual_seed(0)
    model = mlp([6, 8, 3], final_activation=nn.Softmax(dim=1))
    logits = nn.Sequential(*list(model.children())[:-1])
    x = torch.randn(5, 6)
    expected = logits(x)
    case = get_fix("fix_output")(_case(model))
    torch.testing.assert_close(case.model(x), expected)
    binary = mlp([6, 1], final_activation="sigmoid")
    y = torch.randint(0, 2, (64, 1)).float()
    fixed = get_fix("fix_output")(_case(binary, y=y, loss=nn.MSELoss(), task="binary"))
    assert isinstance(fixed.loss_fn, nn.BCEWithLogitsLoss) and fixed.binary_threshold == 0.0
    with pytest.raises(NotApplicable):
        get_fix("fix_output")(_case(mlp([6, 3])))


def test_stable_softmax_equals_log_softmax_and_stays_finite(float64):
    model = nn.Sequential(nn.Linear(6, 3), NaiveLogSoftmax(dim=1))
    z = torch.tensor([[1.0, 2.0, 3.0], [800.0, 0.0, -5.0]])
    assert not torch.isfinite(model[1](z)).all()
    case = get_fix("stable_softmax")(_case(model, x=torch.randn(64, 6)))
    torch.testing.assert_close(case.model[1](z), torch.log_softmax(z, dim=1))
    assert torch.isfinite(case.model[1](z)).all()


def test_standardize_matches_sklearn_and_uses_training_statistics(float64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g) * torch.logspace(-2, 3, 6) + 50.0
    case = get_fix("standardize_inputs")(_case(mlp([6, 3]), x=x))
    scaler = StandardScaler().fit(x.numpy())
    np.testing.assert_allclose(case.train_data[0].numpy(), scaler.transform(x.numpy()), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(case.val_data[0].numpy(), scaler.transform(x[:16].numpy()), rtol=1e-10, atol=1e-10)
    with pytest.raises(NotApplicable, match="already"):
        get_fix("standardize_inputs")(case)
    seq = torch.randn(32, 5, 4, generator=g) * 1e3  # (N, T, I): statistics per input channel
    out = get_fix("standardize_inputs")(_case(nn.Linear(4, 3), x=seq)).train_data[0]
    torch.testing.assert_close(out.mean(dim=(0, 1)), torch.zeros(4), atol=1e-10, rtol=0)


def test_learning_rate_fixes_and_weight_decay():
    case = _case(mlp([6, 3]), opt=lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9))
    for name, lr in (("lr_down", 0.02), ("lr_up", 2.0), ("lr_halve", 0.1)):
        opt = get_fix(name)(case).optimizer()
        assert opt.param_groups[0]["lr"] == pytest.approx(lr) and opt.param_groups[0]["momentum"] == 0.9
    assert get_fix("weight_decay")(case).optimizer().param_groups[0]["weight_decay"] == pytest.approx(1e-2)
    assert isinstance(get_fix("adam")(case).optimizer(), torch.optim.Adam)
    assert case.optimizer().param_groups[0]["lr"] == 0.2  # the original factory is untouched


def test_clipped_optimizer_equals_manual_clipping(float64):
    torch.manual_seed(0)
    a = nn.Linear(5, 2)
    b = copy.deepcopy(a)
    x, y = torch.randn(8, 5) * 100, torch.randn(8, 2)
    opt_a = clipped(torch.optim.SGD, 0.5)(a.parameters(), lr=0.1)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1)
    for model, opt in ((a, opt_a), (b, opt_b)):
        nn.functional.mse_loss(model(x), y).backward()
        if opt is opt_b:
            nn.utils.clip_grad_norm_(b.parameters(), 0.5)
        opt.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)
    with pytest.raises(NotApplicable, match="already"):
        get_fix("clip_gradients")(get_fix("clip_gradients")(_case(mlp([6, 3])))).optimizer()


def test_larger_batch_and_composition():
    case = _case(mlp([6, 8, 3]), batch=2)
    bigger = get_fix("larger_batch")(case)
    assert bigger.batch_size == 32
    assert bigger.optimizer().param_groups[0]["lr"] == pytest.approx(0.1 * 4)  # sqrt(32 / 2)
    both = get_fix("he_init").then(get_fix("lr_down"))
    assert both.name == "he_init+lr_down" and both.applies_to >= {"dead_relu", "diverging_loss"}
    done = both(case.replace(model=copy.deepcopy(case.model)))
    assert done.optimizer().param_groups[0]["lr"] == pytest.approx(0.01)
    assert "kaiming_normal_" in both.snippet(case) and "lr=0.01" in both.snippet(case)


# --- the metric and training --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "task", "expected"),
    [
        # n = 100, p = 0.5: se = 0.05
        ({"val_loss": 1.0, "val_accuracy": 0.50}, {"val_loss": 1.0, "val_accuracy": 0.56}, "classification", True),
        ({"val_loss": 1.0, "val_accuracy": 0.50}, {"val_loss": 1.0, "val_accuracy": 0.53}, "classification", False),
        ({"val_loss": 1.0, "val_accuracy": 0.50}, {"val_loss": 0.9, "val_accuracy": 0.47}, "classification", True),
        ({"val_loss": 1.0, "val_accuracy": 0.50}, {"val_loss": 0.5, "val_accuracy": 0.44}, "classification", False),
        ({"val_loss": 1.0, "val_accuracy": 0.50}, {"val_loss": 0.995, "val_accuracy": 0.50}, "classification", False),
        ({"val_loss": math.nan, "val_accuracy": 0.1}, {"val_loss": 2.0, "val_accuracy": 0.1}, "classification", True),
        # p = 1: se falls back to one example (0.01)
        ({"val_loss": 0.2, "val_accuracy": 1.0}, {"val_loss": 0.1, "val_accuracy": 0.99}, "classification", False),
        ({"val_loss": 1.0}, {"val_loss": 0.98}, "regression", True),
        ({"val_loss": 1.0}, {"val_loss": math.inf}, "regression", False),
    ],
)
def test_improved_table(before, after, task, expected):
    assert improved(before, after, task, n_val=100) is expected


def test_train_case_is_deterministic_and_leaves_the_case_alone():
    case = _case(mlp([6, 8, 3]))
    state = copy.deepcopy(case.model.state_dict())
    a, b = train_case(case, seed=3), train_case(case, seed=3)
    for k, v in case.model.state_dict().items():
        assert torch.equal(v, state[k])
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    metrics = evaluate_case(a, case)
    assert set(metrics) == {"val_loss", "val_accuracy", "split"} and metrics["split"] == "val"


# --- repair ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_repair_softmax_before_cross_entropy_and_never_touches_the_users_model():
    case = zoo.get("softmax_ce_mlp").build(0)
    state = copy.deepcopy(case.model.state_dict())
    result = repair_case(case, curvature=False)
    assert result.success, result.summary()
    assert [f.name for f in result.applied] == ["fix_output"]
    assert (
        "loss_activation_mismatch" in result.before.codes() and "loss_activation_mismatch" not in result.after.codes()
    )
    assert result.metrics_after["val_accuracy"] > result.metrics_before["val_accuracy"]
    assert isinstance(case.model.final_act, nn.Softmax)  # the user's model keeps its layers and weights
    for k, v in case.model.state_dict().items():
        assert torch.equal(v, state[k])
    assert result.model is not case.model and not isinstance(result.model.final_act, nn.Softmax)
    assert "CrossEntropyLoss" in result.code
    json.dumps(result.to_dict())


@pytest.mark.slow
def test_repair_restricted_to_an_unrelated_fix_does_not_succeed():
    case = zoo.get("softmax_ce_mlp").build(0)
    result = repair_case(case, candidates=["weight_decay"], curvature=False)
    assert not result.success and not result.applied and result.model is None
    assert result.after is result.before


@pytest.mark.slow
def test_repair_function_on_plain_tensors():
    torch.manual_seed(0)
    model = mlp([6, 16, 3], bias=True)
    with torch.no_grad():
        model.linear1.bias.fill_(-8.0)  # every hidden ReLU dead
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = copy.deepcopy(model.state_dict())
    result = repair(model, nn.CrossEntropyLoss(), (x, y), (x[:64], y[:64]), opt, steps=60, batch_size=32,
                    curvature=False)  # fmt: skip
    assert "dead_relu" in result.before.codes()
    assert result.success, result.summary()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert opt.param_groups[0]["lr"] == 0.1


def test_repair_bad_arguments():
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    with pytest.raises(TypeError, match=r"nn\.Module"):
        repair(lambda t: t, nn.CrossEntropyLoss(), (x, y))  # type: ignore[arg-type]
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="at most one"):
        repair(model, nn.CrossEntropyLoss(), (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
               make_optimizer=lambda p: torch.optim.SGD(p, lr=0.1))  # fmt: skip
    with pytest.raises(TypeError, match="pair of tensors"):
        repair(model, nn.CrossEntropyLoss(), torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y)))
    with pytest.raises(ValueError, match="task"):
        repair(model, nn.CrossEntropyLoss(), (x, y), task="ranking")


def test_public_repair_is_the_function_even_after_its_module_is_imported():
    import deepbasics as db
    import deepbasics.doctor.repairing  # a submodule import must not shadow the function

    assert callable(db.doctor.repair) and db.doctor.repair is repair
