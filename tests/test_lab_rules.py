"""Verdict rules: a table of recorded per-seed metrics -> expected verdict, and the t-interval against SciPy."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from deepbasics.lab import Rule, Verdict, evaluate

H, N, I, E = Verdict.HOLDS, Verdict.DOES_NOT_HOLD, Verdict.INCONCLUSIVE, Verdict.ERROR

CASES = [
    # all_seeds: every seed on the holding side / none / some
    (Rule("x", ">", 0.0), [1.0, 2.0, 3.0], H),
    (Rule("x", ">", 0.0), [-1.0, -2.0, 0.0], N),
    (Rule("x", ">", 0.0), [1.0, -1.0, 2.0], I),
    (Rule("x", ">", 0.0), [0.0, 1.0], I),  # 0 is not > 0
    (Rule("x", ">=", 0.0), [0.0, 1.0], H),
    (Rule("x", "<", -0.3), [-0.5, -0.45, -0.52], H),
    (Rule("x", "<=", 1.0), [1.0], H),
    (Rule("x", "<=", 1.0), [1.5, 2.0], N),
    # ci: the t-interval of the mean entirely on one side, or straddling the threshold
    (Rule("x", ">", 2.0, spread="ci"), [10.0, 11.0, 12.0], H),
    (Rule("x", ">", 2.0, spread="ci"), [-10.0, -11.0, -12.0], N),
    (Rule("x", ">", 2.0, spread="ci"), [0.0, 2.5, 5.0], I),
    (Rule("x", ">", 2.0, spread="ci"), [3.0, 3.0, 3.0], H),  # zero spread: the interval is the point 3
    (Rule("x", ">", 2.0, spread="ci"), [2.0, 2.0], N),  # the point 2 is not > 2 ...
    (Rule("x", ">=", 2.0, spread="ci"), [2.0, 2.0], H),  # ... but it is >= 2
    (Rule("x", "<", 0.0, spread="ci"), [-1.0, 5.0, -1.0], I),  # every seed but one agrees: still straddles
    (Rule("x", ">", 0.0, spread="ci"), [1.0], I),  # one seed has no interval
    (Rule("x", ">", 0.0, spread="ci", confidence=0.5), [0.5, 1.5, 3.0], H),
    # value: one deterministic number, never inconclusive
    (Rule("err", "<", 1e-10, spread="value"), [1e-15], H),
    (Rule("err", "<", 1e-10, spread="value"), [1e-3], N),
    (Rule("err", "<", 1e-10, spread="value"), [1e-10], N),
]


@pytest.mark.parametrize(("rule", "values", "expected"), CASES)
def test_verdict_table(rule, values, expected):
    judgement = evaluate(rule, [{rule.metric: v, "other": "raw"} for v in values])
    assert judgement.verdict is expected, judgement.reason
    assert judgement.why.startswith(expected.value + ": ")


@pytest.mark.parametrize(
    ("outputs", "match"),
    [
        ([{"y": 1.0}], "expected it in the output of seed 0, got only: y"),
        ([{"x": 1.0}, {"x": math.nan}], "finite number in seed 1"),
        ([{"x": math.inf}], "finite number in seed 0"),
        ([{"x": [1.0, 2.0]}], "expected a real number in seed 0, got list"),
        ([{"x": True}], "expected a real number in seed 0, got bool"),
        ([], "no seed produced an output"),
    ],
)
@pytest.mark.parametrize("spread", ["all_seeds", "ci", "value"])
def test_bad_measurements_are_errors_never_verdicts(outputs, match, spread):
    judgement = evaluate(Rule("x", ">", 0.0, spread=spread), outputs)
    assert judgement.verdict is E
    assert match in judgement.reason


def test_reason_names_the_measured_numbers():
    reason = evaluate(Rule("ratio", ">", 2.0), [{"ratio": 12.3}, {"ratio": 11.0}, {"ratio": 13.0}]).reason
    assert reason == "ratio > 2 in 3/3 seeds (mean 12.1, range [11, 13])"
    reason = evaluate(Rule("ratio", ">", 2.0), [{"ratio": 1.0}, {"ratio": 3.0}], seeds=[7, 8]).reason
    assert reason.startswith("ratio > 2 in 1/2 seeds")
    assert evaluate(Rule("e", "<", 1e-10, spread="value"), [{"e": 1e-3}]).reason == "e = 0.001 is not < 1e-10"


@given(
    values=st.lists(st.floats(-100, 100, allow_nan=False), min_size=2, max_size=8),
    confidence=st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_ci_matches_scipy_t_interval(values, confidence):
    """The interval's ends, found from the verdict, agree with scipy.stats.t.interval."""
    mean, sem = sum(values) / len(values), stats.sem(values)
    if not sem > 1e-6 * max(1.0, abs(mean)):
        return  # a (near-)zero spread has no interval to probe
    lo, hi = stats.t.interval(confidence, len(values) - 1, loc=mean, scale=sem)
    outputs = [{"x": v} for v in values]
    eps = 1e-6 * (hi - lo)
    assert evaluate(Rule("x", ">", lo - eps, spread="ci", confidence=confidence), outputs).verdict is H
    assert evaluate(Rule("x", ">", lo + eps, spread="ci", confidence=confidence), outputs).verdict is I
    assert evaluate(Rule("x", "<", hi + eps, spread="ci", confidence=confidence), outputs).verdict is H
    assert evaluate(Rule("x", "<", hi - eps, spread="ci", confidence=confidence), outputs).verdict is I
    assert evaluate(Rule("x", "<", lo - eps, spread="ci", confidence=confidence), outputs).verdict is N


def test_rule_describes_itself():
    assert Rule("slope", "<", -0.3).describe() == "slope < -0.3 in every seed"
    assert "95% t-confidence interval over seeds entirely above" in Rule("r", ">", 2, spread="ci").describe()
    assert Rule("e", "<", 1e-10, spread="value").describe() == "e < 1e-10 (one deterministic measurement)"
    assert str(Verdict.DOES_NOT_HOLD) == "does_not_hold" and Verdict.HOLDS == "holds"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"metric": "x", "op": "=>", "threshold": 0}, ValueError, "Rule.op: expected one of"),
        ({"metric": "x", "op": "==", "threshold": 0}, ValueError, "Rule.op"),
        ({"metric": "x", "op": ">", "threshold": math.nan}, ValueError, "Rule.threshold: expected a finite"),
        ({"metric": "x", "op": ">", "threshold": "1"}, TypeError, "Rule.threshold: expected a real number"),
        ({"metric": "x", "op": ">", "threshold": 0, "spread": "mean"}, ValueError, "Rule.spread"),
        ({"metric": "my metric", "op": ">", "threshold": 0}, ValueError, "Rule.metric"),
        ({"metric": 3, "op": ">", "threshold": 0}, TypeError, "Rule.metric"),
        ({"metric": "x", "op": ">", "threshold": 0, "confidence": 0.9}, ValueError, 'unless spread="ci"'),
        ({"metric": "x", "op": ">", "threshold": 0, "spread": "ci", "confidence": 1.0}, ValueError, "confidence"),
    ],
)
def test_bad_rules_are_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        Rule(**kwargs)
