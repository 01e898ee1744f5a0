"""The experiment registry (declaration checks), ``--only`` selection, and the authoring guide's example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import deepbasics.lab as lab
from deepbasics import faq
from deepbasics.lab import Experiment, Registry, Rule, save_figure
from deepbasics.lab.selection import parse_only, prefixes


def run_ok(params, seed):
    return {"x": 1.0}


def run_other(params, seed):
    return {"x": 2.0}


def _declare(registry=None, fn=run_ok, **overrides):
    fields = {
        "ids": ("Q7.a",),
        "method": "Measures x.",
        "quick": {"n": 1},
        "full": {"n": 10},
        "rules": {"Q7.a": Rule("x", ">", 0.0)},
    }
    fields.update(overrides)
    return (Registry() if registry is None else registry).experiment(**fields)(fn)


def test_declared_experiment_exposes_the_faq_texts():
    exp = _declare(ids=("Q3.3.a", "Q3.3.b"), rules={"Q3.3.a": Rule("x", ">", 0), "Q3.3.b": Rule("x", "<", 5)})
    assert isinstance(exp, Experiment)
    assert exp.id == "Q3.3.a" and exp.ids == ("Q3.3.a", "Q3.3.b")
    assert exp.question == faq.question_of("Q3.3.a").title and exp.question_id == "Q3.3"
    assert exp.claim == faq.CLAIMS["Q3.3.a"] and dict(exp.claims) == {c: faq.CLAIMS[c] for c in exp.ids}
    assert exp.run({}, 0) == {"x": 1.0} and exp.name == f"{__name__}.run_ok"
    assert exp.params(quick=True) == {"n": 1} and exp.params(quick=False) == {"n": 10}


def test_params_are_plain_json_and_copied():
    exp = _declare(quick={"sizes": (1, 2)}, full={"sizes": (3,)})
    params = exp.params(quick=True)
    assert params == {"sizes": [1, 2]}  # tuples arrive as lists, as they would from the cache
    params["sizes"].append(99)
    assert exp.params(quick=True) == {"sizes": [1, 2]}


def test_a_single_id_may_be_a_string():
    assert _declare(ids="Q7.a").ids == ("Q7.a",)


def test_seed_list_and_its_override():
    exp = _declare(seeds=4)
    assert exp.seed_list() == (0, 1, 2, 3) and exp.seed_list(2) == (0, 1)
    deterministic = _declare(seeds=1, rules={"Q7.a": Rule("x", ">", 0, spread="value")})
    assert deterministic.seed_list(5) == (0,)  # a deterministic measurement runs once


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"seed": 3}, TypeError, r"unknown seed\. Did you mean seeds\?"),
        (
            {"param": {}},
            TypeError,
            "expected only the fields ids, method, quick, full, rules, tasks, metrics, takeaways, seeds, timeout, plot",
        ),
        ({"ids": ("Q7.z",)}, ValueError, "claim IDs from deepbasics.faq.CLAIMS, got 'Q7.z'. Did you mean Q7"),
        ({"ids": ()}, ValueError, "one or more distinct claim IDs"),
        ({"ids": ("Q7.a", "Q7.a")}, ValueError, "one or more distinct claim IDs"),
        ({"ids": ("Q7.a", "Q8.a")}, ValueError, "sibling claims of one question"),
        ({"rules": Rule("x", ">", 0)}, TypeError, r"a dict \{claim_id: Rule\}"),
        ({"rules": {}}, ValueError, r"missing \['Q7.a'\]"),
        ({"rules": {"Q7.a": Rule("x", ">", 0), "Q7.b": Rule("x", ">", 0)}}, ValueError, r"extra \['Q7.b'\]"),
        ({"rules": {"Q7.a": ("x", ">", 0)}}, TypeError, r"rules\['Q7.a'\]: expected a Rule"),
        ({"quick": {"n": 1, "m": 2}}, ValueError, r"the same parameter names, got differences \['m'\]"),
        ({"quick": {"n": object()}}, TypeError, "quick: expected JSON data"),
        ({"full": [1, 2]}, TypeError, "full: expected a dict with string keys"),
        ({"method": "  "}, TypeError, "method"),
        ({"seeds": 0}, ValueError, "seeds"),
        ({"seeds": 3, "rules": {"Q7.a": Rule("x", "<", 1, spread="value")}}, ValueError, "seeds=1 with a"),
        ({"seeds": 1, "rules": {"Q7.a": Rule("x", "<", 1, spread="ci")}}, ValueError, "at least 2 seeds"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"plot": lambda outputs: []}, TypeError, "plot: expected a function plot"),
    ],
)
def test_bad_declarations_are_rejected(overrides, error, match):
    with pytest.raises(error, match=match):
        _declare(**overrides)


def test_run_must_take_params_and_seed_and_live_at_module_level():
    with pytest.raises(TypeError, match=r"run: expected a function run\(params: dict, seed: int\)"):
        _declare(fn=lambda params: {})

    def local(params, seed):
        return {}

    with pytest.raises(ValueError, match="defined at module level"):
        _declare(fn=local)


def test_one_claim_belongs_to_one_experiment():
    registry = Registry()
    _declare(registry)
    with pytest.raises(ValueError, match=r"Q7\.a in both .*run_ok and .*run_other"):
        _declare(registry, fn=run_other)
    _declare(registry, ids=("Q7.a", "Q7.b"), rules={"Q7.a": Rule("x", ">", 0), "Q7.b": Rule("x", ">", 0)})
    assert [e.ids for e in registry] == [("Q7.a", "Q7.b")]  # re-declaring the same function replaces it


def test_registry_orders_and_selects_by_faq_order():
    registry = Registry()
    _declare(registry, fn=run_other, ids="Q8.a", rules={"Q8.a": Rule("x", ">", 0)})
    _declare(registry, ids=("Q7.b", "Q7.c"), rules={"Q7.b": Rule("x", ">", 0), "Q7.c": Rule("x", ">", 0)})
    assert [e.id for e in registry.experiments()] == ["Q7.b", "Q8.a"]
    assert registry.claim_ids() == ["Q7.b", "Q7.c", "Q8.a"] and "Q7.c" in registry and len(registry) == 2
    assert [e.id for e in registry.select("Q7.c")] == ["Q7.b"]  # the experiment that covers the claim
    assert [e.id for e in registry.select(["Q8", "q7.*"])] == ["Q7.b", "Q8.a"]
    assert registry.get("Q7.c").id == "Q7.b"
    with pytest.raises(KeyError, match=r"covered: Q7\.b, Q7\.c, Q8\.a"):
        registry.get("Q1.a")
    with pytest.raises(ValueError, match=r"\(Q7.a is in the FAQ but no experiment covers it yet\)"):
        registry.select("Q7.a")


KNOWN = ["Q2.a", "Q3.1.a", "Q3.3.a", "Q3.3.b", "Q30.a", "CNN.a"]


@pytest.mark.parametrize(
    ("only", "expected"),
    [
        (None, None),
        ("Q3", ["Q3.1.a", "Q3.3.a", "Q3.3.b"]),  # not Q30
        ("Q30", ["Q30.a"]),
        ("Q3.3", ["Q3.3.a", "Q3.3.b"]),
        ("Q3.3.a", ["Q3.3.a"]),
        ("Q3.*", ["Q3.1.a", "Q3.3.a", "Q3.3.b"]),
        ("cnn", ["CNN.a"]),
        ("Q2, CNN", ["Q2.a", "CNN.a"]),
        (["Q3.1", "Q2,Q30"], ["Q2.a", "Q3.1.a", "Q30.a"]),  # repeated and comma-separated; FAQ order
        (["Q3.3.a", "Q3.3"], ["Q3.3.a", "Q3.3.b"]),  # overlaps counted once
    ],
)
def test_only_selects_ids_and_prefixes(only, expected):
    assert parse_only(only, KNOWN) == expected


@pytest.mark.parametrize(("only", "bad"), [("Q4", "'Q4'"), ("Q3.3.c", "'Q3.3.c'"), (["Q2", "Q3.", "X"], "'X'")])
def test_unknown_only_lists_valid_prefixes(only, bad):
    with pytest.raises(ValueError, match=re.escape(bad)) as info:
        parse_only(only, KNOWN)
    assert "Valid prefixes: Q2, Q3, Q3.1, Q3.3, Q30, CNN." in str(info.value)


@pytest.mark.parametrize("only", ["", " , ", []])
def test_empty_only_is_an_error(only):
    with pytest.raises(ValueError, match="at least one claim ID or prefix"):
        parse_only(only, KNOWN)


def test_only_rejects_non_strings():
    with pytest.raises(TypeError, match="claim IDs or prefixes as strings"):
        parse_only([3], KNOWN)


def test_prefixes():
    assert prefixes(["Q3.1.a", "Q3.3.b", "CNN.a"]) == ["Q3", "Q3.1", "Q3.3", "CNN"]


def test_default_registry_discovers_experiment_modules():
    found = lab.experiments()
    assert callable(lab.experiments)  # the function, not the subpackage of the same name
    assert all(isinstance(e, Experiment) for e in found)
    modules = {e.module for e in found}
    files = {p.stem for p in Path(lab.__file__).parent.joinpath("experiments").glob("[!_]*.py")}
    assert {m.rsplit(".", 1)[1] for m in modules} == files
    ids = [cid for e in found for cid in e.ids]
    assert len(ids) == len(set(ids)) and set(ids) <= set(faq.CLAIMS)


def _docstring_example() -> str:
    start = lab.__doc__.index("``run(params, seed) -> dict``::\n") + len("``run(params, seed) -> dict``::\n")
    block = lab.__doc__[start : lab.__doc__.index("\nThe contract")]
    return "\n".join(line[4:] for line in block.splitlines())


def test_the_authoring_guide_example_runs(tmp_path):
    """The example in ``deepbasics.lab``'s docstring declares a working experiment whose claim holds."""
    registry = Registry()
    code = _docstring_example().replace("from deepbasics.lab import Metric, Rule, experiment, save_figure", "")
    namespace = {"__name__": "lab_docstring_example", "Rule": Rule, "experiment": registry.experiment}
    namespace["Metric"] = lab.Metric
    namespace["save_figure"] = save_figure
    exec(compile(code, "<deepbasics.lab docstring>", "exec"), namespace)
    exp = namespace["batch_noise"]
    assert exp.id == "Q13.a" and exp.plot is not None
    outputs = [exp.run(exp.params(quick=True), seed) for seed in range(2)]
    assert all(-0.6 < out["slope"] < -0.4 for out in outputs), outputs  # 1/sqrt(B) is -0.5
    assert lab.evaluate(exp.rules["Q13.a"], outputs).verdict == "holds"
    assert exp.rules["Q13.a"].since == "0.2.0" and "slope" in exp.metrics
    text = lab.words.render(exp.takeaways["Q13.a"], exp.metrics, {"slope": [o["slope"] for o in outputs]})
    assert text.startswith("the mini-batch gradient's error falls like B to the power -0.")
    (path,) = exp.plot(outputs, exp.params(quick=True), tmp_path)
    assert path.read_bytes().startswith(b"\x89PNG")
