"""Verdicts per task: declaring tasks, combining their verdicts, and the runner, record and report with tasks.

The experiments below live in a private :class:`Registry`; worker processes find them by importing this module.
"""

from __future__ import annotations

import json
import re

import pytest

from deepbasics import lab
from deepbasics.lab import Metric, Registry, Result, Rule, Task, Verdict, save_figure
from deepbasics.lab.report import broken_links
from deepbasics.lab.tasks import TASKS, combine

H, N, I, E = Verdict.HOLDS, Verdict.DOES_NOT_HOLD, Verdict.INCONCLUSIVE, Verdict.ERROR
DIGITS = Task("digits", applies=False, why="too small for the claim")
MNIST1D = Task("mnist1d", applies=True, why="built for it")
SHUFFLED = Task("mnist1d_shuffled", applies=True, why="a second intended setting")

REG = Registry()


def _plot(outputs, params, outdir):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([out["gain"] for out in outputs], marker="o")
    ax.set(xlabel="seed", ylabel="gain (points)", title=f"gain on {params['task']}")
    return [save_figure(fig, outdir, "gain")]


@REG.experiment(
    ids=("Q10.a",),
    method="A test experiment: the gain is large on MNIST-1D and negative on the digits.",
    tasks=(DIGITS, Task("mnist1d", applies=True, why="built for it", quick={"gain": 5.0}, full={"gain": 6.0})),
    quick={"gain": -1.0, "noise": 0.1},
    full={"gain": -1.0, "noise": 0.1},
    rules={"Q10.a": Rule("gain", ">", 1.0, since="0.2.0")},
    metrics={"gain": Metric("test-accuracy gain", unit="points")},
    takeaways={"Q10.a": "the gain is {gain} ({gain.range} over {seeds} seeds)"},
    seeds=3,
    timeout=60,
    plot=_plot,
)
def gains(params, seed):
    return {"gain": params["gain"] + params["noise"] * seed, "task_seen": params["task"]}


@REG.experiment(
    ids=("Q9.a",),
    method="A test experiment that fails on one task only.",
    tasks=(DIGITS, MNIST1D),
    quick={},
    full={},
    rules={"Q9.a": Rule("x", ">", 0.0, since="0.2.0")},
    seeds=2,
    timeout=60,
)
def fails_on_digits(params, seed):
    if params["task"] == "digits":
        raise RuntimeError("deliberate failure on digits")
    return {"x": 1.0}


# ------------------------------------------------------------------------------------------ combine
@pytest.mark.parametrize(
    ("tasks", "verdicts", "expected", "scope"),
    [
        ((DIGITS, MNIST1D), (H, H), H, None),  # every task
        ((DIGITS, MNIST1D), (N, H), H, ("mnist1d",)),  # scoped to where it held, an intended task among them
        ((DIGITS, MNIST1D), (I, H), H, ("mnist1d",)),
        ((DIGITS, MNIST1D), (N, N), N, None),  # no task
        ((DIGITS, MNIST1D), (H, N), N, None),  # holds only where it is not meant to apply: not confirmed
        ((DIGITS, MNIST1D), (H, I), I, None),  # the intended task cannot tell
        ((DIGITS, MNIST1D), (N, I), I, None),
        ((DIGITS, MNIST1D), (H, E), E, None),  # a broken measurement is never outvoted
        ((MNIST1D, SHUFFLED), (H, N), H, ("mnist1d",)),  # every task intended: some hold -> scoped
        ((MNIST1D, SHUFFLED), (I, N), I, None),
        ((MNIST1D,), (N,), N, None),
    ],
)
def test_combine_follows_the_documented_rules(tasks, verdicts, expected, scope):
    combined = combine(tasks, verdicts)
    assert (combined.verdict, combined.scope) == (expected, scope)


def test_scope_sentence_names_the_tasks_and_where_the_claim_applies():
    sentence = combine((DIGITS, MNIST1D), (N, H)).sentence
    assert sentence == "Holds on MNIST-1D; does not hold on 8x8 digits. Meant to apply on: MNIST-1D."
    both = combine((MNIST1D, SHUFFLED), (I, I)).sentence
    assert both == "Is inconclusive on MNIST-1D and MNIST-1D, shuffled. Meant to apply on: every task."
    with pytest.raises(ValueError, match="one verdict per task"):
        combine((DIGITS,), (H, H))


# ----------------------------------------------------------------------------------- declarations
def test_task_params_merge_overrides_and_name_the_task():
    exp = REG.get("Q10.a")
    assert exp.task_names == ("digits", "mnist1d")
    assert exp.params(quick=True, task="mnist1d") == {"gain": 5.0, "noise": 0.1, "task": "mnist1d"}
    assert exp.params(quick=False, task="mnist1d")["gain"] == 6.0
    assert exp.params(quick=True, task="digits") == {"gain": -1.0, "noise": 0.1, "task": "digits"}
    with pytest.raises(ValueError, match=r"one of the experiment's tasks \['digits', 'mnist1d'\]"):
        exp.params(quick=True)
    assert TASKS["mnist1d"].label == "MNIST-1D" and MNIST1D.data.startswith("MNIST-1D")
    assert Task("digits", applies=True, why="x", detail="20-layer MLP").label == "8x8 digits (20-layer MLP)"


def _declare(**overrides):
    fields = {
        "ids": ("Q7.a",),
        "method": "Measures x.",
        "quick": {"n": 1},
        "full": {"n": 2},
        "rules": {"Q7.a": Rule("x", ">", 0.0)},
        "tasks": (DIGITS, MNIST1D),
    }
    fields.update(overrides)
    return Registry().experiment(**fields)(gains.run)


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"tasks": (DIGITS,)}, ValueError, r"at least one task where the claim is meant to apply \(applies=True\)"),
        ({"tasks": (MNIST1D, MNIST1D)}, ValueError, "each task once"),
        ({"tasks": MNIST1D}, TypeError, r"a tuple of Task\(\.\.\.\)"),
        ({"tasks": ("mnist1d",)}, TypeError, r"Task\(\.\.\.\) entries"),
        ({"quick": {"n": 1, "task": 0}, "full": {"n": 1, "task": 0}}, ValueError, "no parameter named 'task'"),
        (
            {"tasks": (Task("mnist1d", applies=True, why="w", quick={"epochs": 3}),)},
            ValueError,
            r"Task\('mnist1d'\)\.quick: expected overrides of the experiment's parameters \(n\), got unknown",
        ),
        ({"metrics": {"x": "accuracy"}}, TypeError, r"entries name: Metric\(\.\.\.\)"),
        ({"takeaways": {"Q7.b": "x"}}, ValueError, r"extra \['Q7.b'\]"),
        ({"takeaways": {"Q7.a": "x is {x}"}}, ValueError, r"a declared metric \(none declared\) or seeds, got 'x'"),
        ({"metrics": {"x": Metric("x")}, "takeaways": {"Q7.a": "{x:.2f}"}}, ValueError, "without a format spec"),
        ({"metrics": {"x": Metric("x")}, "takeaways": {"Q7.a": "{x.median}"}}, ValueError, "without a format spec"),
        ({"takeaways": {"Q7.a": "{unclosed"}}, ValueError, "a str.format template"),
    ],
)
def test_bad_task_and_word_declarations_are_rejected(overrides, error, match):
    with pytest.raises(error, match=match):
        _declare(**overrides)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "mnist2d", "applies": True, "why": "w"}, r"a task of the lab's table \(digits, mnist1d"),
        ({"name": "digits", "applies": 1, "why": "w"}, "Task.applies: expected True or False"),
        ({"name": "digits", "applies": True, "why": " "}, "Task.why"),
        ({"name": "digits", "applies": True, "why": "w", "quick": [1]}, "a dict of parameter overrides"),
    ],
)
def test_bad_tasks_are_rejected(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        Task(**kwargs)


# ------------------------------------------------------------------------- runner, record, report
def _run(out, only, **kwargs):
    return lab.run(only=only, quick=True, out=out, registry=REG, progress=False, **kwargs)


def test_every_task_is_run_judged_and_reported(tmp_path):
    out = tmp_path / "report"
    (result,) = _run(out, "Q10.a", jobs=1)
    assert result.verdict is H and result.scope == ("mnist1d",) and result.label == "holds on MNIST-1D"
    assert result.sentence == "Holds on MNIST-1D; does not hold on 8x8 digits. Meant to apply on: MNIST-1D."
    digits, mnist = result.tasks
    assert (digits.name, digits.verdict, digits.applies) == ("digits", N, False)
    assert (mnist.name, mnist.verdict, mnist.applies) == ("mnist1d", H, True)
    assert mnist.metrics["gain"] == [5.0, 5.1, 5.2] and digits.metrics["gain"] == [-1.0, -0.9, -0.8]
    assert result.metrics["mnist1d.gain"] == [5.0, 5.1, 5.2]  # the top level keeps name -> per-seed lists
    assert mnist.key_number == "test-accuracy gain: 5.1 points (mean of 3 seeds, ±0.1)"
    assert result.key_number == (
        "test-accuracy gain: 8x8 digits -0.9 points (mean of 3 seeds, ±0.1); "
        "MNIST-1D 5.1 points (mean of 3 seeds, ±0.1)"
    )
    assert mnist.takeaway == "The gain is 5.1 points (5 points to 5.2 points over 3 seeds)."
    assert result.takeaway == (
        "On 8x8 digits, the gain is -0.9 points (-1 points to -0.8 points over 3 seeds). "
        "On MNIST-1D, the gain is 5.1 points (5 points to 5.2 points over 3 seeds)."
    )
    assert result.rule_since == "0.2.0" and result.rule_history == ()
    assert result.figures == ("figures/Q10.a/digits/gain.png", "figures/Q10.a/mnist1d/gain.png")
    assert all((out / f).is_file() for f in result.figures)

    record = json.loads((out / ".cache" / "Q10.a.json").read_text())
    assert record["tasks"]["mnist1d"]["outputs"][0]["task_seen"] == "mnist1d"  # run saw params["task"]
    assert record["figures"] == ["digits/gain.png", "mnist1d/gain.png"] and record["outputs"] == []

    (row,) = json.loads((out / "results.json").read_text())
    assert row["verdict"] == "holds" and row["scope"] == ["mnist1d"]
    assert set(row["tasks"]) == {"digits", "mnist1d"}
    assert row["tasks"]["mnist1d"]["verdict"] == "holds" and row["tasks"]["digits"]["applies"] is False
    assert Result.from_dict(row) == result
    assert row["faq"]["key"] == "10" and row["faq"]["has_text"]

    html = (out / "index.html").read_text()
    assert "holds on MNIST-1D" in html and "Meant to apply on: MNIST-1D." in html
    assert "claim meant to apply?" in html and "built for it" in html
    assert "What the FAQ says" in html and "drop out" in html  # the FAQ's Chinese answer to Q10
    assert broken_links(out) == []
    md = (out / "report.md").read_text()
    assert "| MNIST-1D | yes | holds |" in md and "![Q10.a MNIST-1D](figures/Q10.a/mnist1d/gain.png)" in md


def test_a_failing_task_keeps_the_others_and_makes_the_claim_an_error(tmp_path, capsys):
    (result,) = lab.run(only="Q9.a", quick=True, out=tmp_path / "r", registry=REG, jobs=1)
    assert result.verdict is E and result.scope is None
    digits, mnist = result.tasks
    assert digits.verdict is E and "deliberate failure on digits" in digits.reason
    assert mnist.verdict is H and mnist.metrics["x"] == [1.0, 1.0]
    assert result.error.startswith("task digits: Traceback")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("lab: [")]
    assert re.fullmatch(r"lab: \[1/1\] Q9\.a error \[digits: error, mnist1d: holds\] \(\d+\.\d s\)", lines[0])
    again = lab.run(only="Q9.a", quick=True, out=tmp_path / "r", registry=REG, jobs=1, progress=False)
    assert not again[0].cached  # a record with a task error is never reused


def test_the_cache_key_covers_every_task(tmp_path):
    from deepbasics.lab.runner import cache_key

    exp = REG.get("Q10.a")
    params = {t: exp.params(True, t) for t in exp.task_names}
    key = cache_key(exp, params, (0, 1, 2))
    params["mnist1d"]["gain"] = 5.5
    assert cache_key(exp, params, (0, 1, 2)) != key
