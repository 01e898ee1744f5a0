"""The fault zoo: registry rules, coverage of every code, deterministic builds, and diagnose on a subset.

The diagnose checks run a small subset to keep CI fast (``benchmarks/doctor_zoo.py`` runs them all):
broken ``dead_relu_mlp``, ``softmax_ce_mlp``, ``batchnorm_batch2_cnn``, ``naive_softmax_mlp`` and healthy
``healthy_mlp_iris_sgd``, ``healthy_resnet_cancer``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepbasics.doctor import zoo
from deepbasics.doctor.codes import TABLE
from deepbasics.doctor.findings import CODES, Finding, Severity
from deepbasics.doctor.zoo import ARCHITECTURES, Case, Registry, Setup


def _finding(code: str, severity: str = "warning") -> Finding:
    return Finding(code, Severity(severity), ("layer",), {}, "", "")


def _tiny_case(seed: int = 0) -> Case:
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    return Case(nn.Linear(3, 2), nn.CrossEntropyLoss(), (x, y), None, lambda p: torch.optim.SGD(p, lr=0.1), 4, 5, "mlp")


# --- registry ------------------------------------------------------------------------------------------------


def test_every_code_diagnose_can_find_has_a_broken_setup():
    table = zoo.coverage()
    assert set(table) == {row.code for row in TABLE if "diagnose" in row.seen_by}
    assert all(table.values()), {c: n for c, n in table.items() if not n}
    assert set(table) < set(CODES)  # the practice codes need the user's own loop (tests/test_doctor_practice.py)


def test_healthy_and_broken_cover_every_architecture():
    assert len(zoo.healthy()) >= 8
    for arch in ARCHITECTURES:
        assert any(s.architecture == arch for s in zoo.broken()), arch
        assert any(s.architecture == arch for s in zoo.healthy()), arch
    assert {s.name for s in zoo.setups("cnn")} == {s.name for s in zoo.setups() if s.architecture == "cnn"}


def test_names_unique_and_descriptions_present():
    names = [s.name for s in zoo.setups()]
    assert len(names) == len(set(names))
    assert all(len(s.description) > 20 for s in zoo.setups())
    assert all(s.faq for s in zoo.broken())
    assert all(not (s.expected & s.allowed) for s in zoo.setups())


def test_every_setup_builds_a_case_whose_loss_runs():
    for s in zoo.setups():
        case = s.build(0)
        assert case.name == s.name and case.architecture == s.architecture
        x, y = case.train_data
        assert len(x) == len(y) > 0
        with torch.no_grad():
            loss = case.loss_fn(case.model(x[:4]), y[:4])
        assert loss.dim() == 0, s.name
        assert isinstance(case.optimizer(), torch.optim.Optimizer)


def test_build_is_deterministic_per_seed_and_leaves_the_global_rng_alone():
    setup = zoo.get("dead_relu_mlp")
    state = torch.random.get_rng_state()
    a, b, c = setup.build(0), setup.build(0), setup.build(1)
    assert torch.equal(torch.random.get_rng_state(), state)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert torch.equal(a.train_data[0], b.train_data[0])
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.model.parameters(), c.model.parameters(), strict=True))
    a.train_data[0].add_(1.0)  # a caller mutating its case must not change the next build
    assert torch.equal(setup.build(0).train_data[0], b.train_data[0])


def test_get_unknown_name_suggests_close_ones():
    with pytest.raises(ValueError, match="dead_relu_mlp"):
        zoo.get("dead_relu_mpl")


def test_setup_validation():
    with pytest.raises(ValueError, match="closed vocabulary"):
        Setup("x_setup", "a description", frozenset({"not_a_code"}), _tiny_case, "mlp")
    with pytest.raises(ValueError, match="architecture"):
        Setup("x_setup", "a description", frozenset(), _tiny_case, "transformer")
    with pytest.raises(ValueError, match="snake_case"):
        Setup("bad name", "a description", frozenset(), _tiny_case, "mlp")
    with pytest.raises(TypeError, match="seed -> Case"):
        Setup("x_setup", "a description", frozenset(), 3, "mlp")  # type: ignore[arg-type]
    wrong = Setup("x_setup", "d", frozenset(), lambda seed: _tiny_case(seed).replace(architecture="cnn"), "mlp")
    with pytest.raises(ValueError, match="architecture 'mlp'"):
        wrong.build(0)
    with pytest.raises(TypeError, match="a Case"):
        Setup("y_setup", "d", frozenset(), lambda seed: 3, "mlp").build(0)
    with pytest.raises(ValueError, match="integer"):
        zoo.get("dead_relu_mlp").build(-1)


def test_registry_rejects_duplicates():
    registry = Registry()
    s = Setup("x_setup", "d", frozenset(), _tiny_case, "mlp")
    registry.add(s)
    with pytest.raises(ValueError, match="unique"):
        registry.add(s)
    assert "x_setup" in registry and len(registry) == 1 and registry.names() == ["x_setup"]


def test_case_validation():
    case = _tiny_case()
    with pytest.raises(ValueError, match="task"):
        case.replace(task="ranking")
    with pytest.raises(ValueError, match="steps"):
        case.replace(steps=0)
    with pytest.raises(TypeError, match="make_optimizer"):
        case.replace(make_optimizer=3)
    assert case.num_parameters == 8


@pytest.mark.parametrize(
    ("expected", "allowed", "found", "missed", "false"),
    [
        ({"dead_relu"}, set(), [("dead_relu", "error")], set(), set()),
        ({"dead_relu"}, set(), [], {"dead_relu"}, set()),
        ({"dead_relu"}, {"slow_convergence"}, [("dead_relu", "error"), ("slow_convergence", "warning")], set(), set()),
        ({"dead_relu"}, set(), [("dead_relu", "error"), ("overfitting", "warning")], set(), {"overfitting"}),
        (set(), set(), [("batch_size_advice", "info")], set(), set()),  # info advice is never false
        (set(), set(), [("nonfinite", "error")], set(), {"nonfinite"}),
    ],
)
def test_score_table(expected, allowed, found, missed, false):
    s = Setup("x_setup", "d", frozenset(expected), _tiny_case, "mlp", frozenset(allowed))
    score = s.score([_finding(c, sev) for c, sev in found])
    assert score.missed == missed and score.false == false
    assert score.passed == (not missed and not false)


# --- diagnose on a subset (the full matrix is benchmarks/doctor_zoo.py) --------------------------------------

SUBSET = ["dead_relu_mlp", "softmax_ce_mlp", "batchnorm_batch2_cnn", "naive_softmax_mlp", "healthy_mlp_iris_sgd",
          "healthy_resnet_cancer"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", SUBSET)
def test_diagnose_finds_what_the_setup_expects(name):
    from deepbasics.doctor.repairing import diagnose_case

    setup = zoo.get(name)
    report = diagnose_case(setup.build(0), seed=0, curvature=False)
    score = setup.score(report.findings)
    assert not score.missed, f"{name}: missed {sorted(score.missed)}; found {sorted(score.found)}"
    assert not score.false, f"{name}: false findings {sorted(score.false)}"
