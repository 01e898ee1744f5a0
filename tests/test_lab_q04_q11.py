"""Smoke tests of the lab experiments for FAQ Q4-Q8 and Q11: quick mode, one seed, the metrics every rule needs.

The verdicts are findings, not test outcomes: these tests check that each experiment runs, returns every metric
its rules name as a finite real number, returns the series its plot needs, and that the plots render. They also
check a few measurements that do not depend on the FAQ being right (the closed-form numbers an experiment
reports about its own inputs, e.g. the known lambda_max of the quadratic).
"""

from __future__ import annotations

import math
from numbers import Real

import pytest
import torch

from _lab_quick import quick_run
from deepbasics.lab.experiments import (
    q04_convexity,
    q05_cross_entropy,
    q06_regularization,
    q07_information,
    q08_softmax,
    q11_derivatives,
    q11_lr_limit,
)

EXPERIMENTS = {
    "Q4.a": q04_convexity.nonconvexity,
    "Q4.b": q04_convexity.good_minima,
    "Q4.c": q04_convexity.maxout,
    "Q5.a": q05_cross_entropy.mse_vs_ce,
    "Q6.a": q06_regularization.penalties,
    "Q7.a": q07_information.decomposition,
    "Q7.b": q07_information.minimizer,
    "Q7.c": q07_information.likelihood,
    "Q8.a": q08_softmax.overflow,
    "Q8.b": q08_softmax.log_softmax_underflow,
    "Q11.a": q11_derivatives.autodiff_vs_fd,
    "Q11.b": q11_derivatives.taylor,
    "Q11.c": q11_lr_limit.lr_limit,
}


def _quick(cid: str) -> dict:
    """``run(quick params, seed 0)``, computed once per experiment for the whole module."""
    return quick_run(EXPERIMENTS[cid], 0)


def test_every_claim_of_the_assignment_is_covered():
    covered = {cid for exp in EXPERIMENTS.values() for cid in exp.ids}
    expected = {"Q4.a", "Q4.b", "Q4.c", "Q5.a", "Q6.a", "Q6.b", "Q7.a", "Q7.b", "Q7.c", "Q8.a", "Q8.b"}
    expected |= {"Q11.a", "Q11.b", "Q11.c"}
    assert covered == expected
    for exp in EXPERIMENTS.values():
        assert exp.quick.keys() == exp.full.keys()
        assert len(exp.method.split(". ")) >= 2  # a method of at least two sentences


@pytest.mark.parametrize("cid", sorted(EXPERIMENTS))
def test_quick_run_returns_every_rule_metric_finite(cid):
    exp = EXPERIMENTS[cid]
    out = _quick(cid)
    for rule in exp.rules.values():
        assert rule.metric in out, f"{cid}: rule metric {rule.metric!r} missing from {sorted(out)}"
        value = out[rule.metric]
        assert isinstance(value, Real) and not isinstance(value, bool), (cid, rule.metric, type(value))
        assert math.isfinite(value), (cid, rule.metric, value)
    for key, value in out.items():  # every top-level number is finite too (nested series may hold nan for
        if isinstance(value, float):  # runs that diverged on purpose, e.g. Q11.c at lr > 2 / lambda_max)
            assert math.isfinite(value), (cid, key, value)


def test_composite_checks_match_their_worst_ratio():
    for cid in ("Q7.a", "Q7.b", "Q7.c", "Q8.a", "Q8.b", "Q11.a", "Q11.b", "Q6.a"):
        out = _quick(cid)
        assert out["worst_check_ratio"] == max(out["checks"].values())
        assert all(r >= 0 for r in out["checks"].values())


def test_measurements_independent_of_the_claims():
    # Q11.c measures the quadratic's lambda_max with Lanczos; Quadratic knows it exactly.
    assert _quick("Q11.c")["lambda_rel_err"] < 1e-3
    # Q8.a: deepbasics.numerics.softmax never returns inf/nan, whatever the naive version does.
    assert _quick("Q8.a")["stable_nonfinite_count"] == 0
    # Q5.a: the closed-form output-layer gradient equals autograd of the very loss that is trained.
    assert _quick("Q5.a")["formula_vs_autograd"] < 1e-9
    # Q4.c: the least-squares line through x^2 on a symmetric grid is the constant mean(x^2): max error
    # 4 - mean(x^2) at k = 1 (-> 4 - 4/3 for a dense grid).
    grid = torch.linspace(-2, 2, q04_convexity.maxout.quick["points"], dtype=torch.float64)
    assert _quick("Q4.c")["errors"]["x^2"][0] == pytest.approx(4 - (grid**2).mean().item(), rel=1e-6)


def test_lr_limit_follows_the_quadratic_model_on_each_task():
    exp = EXPERIMENTS["Q11.c"]
    factors = exp.params(quick=True, task="quadratic")["factors"]
    quad = quick_run(exp, 0, "quadratic")
    # on the quadratic every step multiplies the component by exactly |1 - 2c|: below the limit it shrinks
    # (c = 0.5 kills it in one step), above it it grows; early rates match theory to round-off
    for c, rate, growth in zip(factors, quad["early_rate"], quad["growth"], strict=True):
        if c != 0.5:
            assert rate == pytest.approx(abs(1 - 2 * c), rel=1e-3), (c, rate)
        assert (growth < 1) if c < 1 else (growth > 1), (c, growth)
    net = quick_run(exp, 0, "teacher_student")
    # on the network the linear phase still starts at the quadratic's rate for a rate just below the limit
    i = factors.index(0.9)
    assert net["early_rate"][i] == pytest.approx(0.8, abs=0.1)
    assert net["lambda_max"] > 0 and len(net["paths"]) == len(factors)


@pytest.mark.parametrize("cid", ["Q8.a", "Q11.c", "Q6.a"])
def test_plot_renders_png(cid, tmp_path):
    exp = EXPERIMENTS[cid]
    task = exp.tasks[0].name if exp.tasks else None
    paths = exp.plot([_quick(cid)], exp.params(quick=True, task=task), tmp_path)
    assert paths and all(p.suffix == ".png" and p.stat().st_size > 1000 for p in paths)
