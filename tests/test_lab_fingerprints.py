"""Rules declared before the run, visibly: a rule cannot change without keeping its earlier form and the reason.

``src/deepbasics/lab/rule_fingerprints.json`` records every claim's rule. The first test fails whenever a rule of
the lab differs from the record without a history entry, and its message says exactly what to add.
"""

from __future__ import annotations

import json

import pytest

from deepbasics import lab
from deepbasics._version import __version__
from deepbasics.lab import Registry, Revision, Rule
from deepbasics.lab import fingerprints as fp
from deepbasics.lab._files import read_json


def test_every_rule_of_the_lab_matches_its_record_or_explains_the_change():
    lab.experiments()  # imports every experiment module into the default registry
    found = fp.problems(lab.REGISTRY, read_json(fp.FILE))
    assert not found, "\n".join(found)


def test_every_rule_declares_its_version_and_history_versions_are_ordered():
    for exp in lab.experiments():
        for cid, rule in exp.rules.items():
            assert rule.since is not None, cid
            versions = [r.changed_in for r in rule.history]
            assert versions == sorted(versions, key=lambda v: tuple(map(int, v.split(".")))), cid


def test_the_disclosed_changes_of_0_1_0_are_in_the_history():
    """The closing note of 0.1.0 lists the rules changed after their results were seen; each keeps that history."""
    history = {cid: rule.history for exp in lab.experiments() for cid, rule in exp.rules.items()}
    expected = {
        "Q6.a": ["metric"],
        "Q13.d": ["metric", "rule"],
        "Q13.e": ["metric", "rule"],
        "Q14.b": ["rule"],
        "Q14.e": ["metric", "rule"],
        "Q15.a": ["params"],
        "Q15.b": ["metric"],
    }
    disclosed = {cid: [r.what for r in h if r.changed_in == "0.1.0"] for cid, h in history.items()}
    assert {cid: whats for cid, whats in disclosed.items() if whats} == expected  # 0.2.0 adds its own entries
    assert [r.what for r in history["REF.mnist1d"]] == ["rule"]  # changed in 0.2.0, before it landed
    for cid in ("Q13.d", "Q13.e", "Q14.b", "Q14.e"):  # every seed instead of a t-interval with 3 seeds
        (old,) = [r.old for r in history[cid] if r.what == "rule"]
        assert old.spread == "ci" and old.metric == next(e for e in lab.experiments() if cid in e.ids).rules[cid].metric


def test_the_changes_of_0_2_0_made_after_a_look_at_results_are_in_the_history():
    """Issue 15's conversions: every rule, metric or parameter set after a look at a probe or a result says so."""
    history = {cid: rule.history for exp in lab.experiments() for cid, rule in exp.rules.items()}
    expected = {
        "REF.mnist1d": ["rule"],  # tolerance declared before the first full run, then widened: see its reason
        "Q1.e": ["params"],  # digits task: step grid widened after a seed-0 prototype
        "Q11.c": ["metric"],  # margin per task instead of the minimum over both
        "Q6.a": ["params"],  # MNIST-1D: 512 units / 2,000 epochs cut to 256 / 1,000 for cost, after a probe
        "Q6.b": ["params"],
        "Q10.a": ["params"],  # quick epochs raised: the baseline had not fit its training set
        "Q13.b": ["params"],  # MNIST-1D quick parameters cut for cost
        "Q13.f": ["params"],
        "Q14.c": ["params"],  # quick size and epochs set after the plain net failed to fit
        "Q14.d": ["params"],  # full MNIST-1D grid cut after a probe
        "Q15.b": ["params"],  # MNIST-1D quick run cut, full run without the rate 0.01
        "Q15.c": ["params"],  # MNIST-1D quick run cut
        "CNN.c": ["metric"],  # MNIST-1D field measured through tanh, not ReLU
    }
    changed = {cid: [r.what for r in h if r.changed_in == "0.2.0"] for cid, h in history.items()}
    assert {cid: whats for cid, whats in changed.items() if whats} == expected
    for cid in expected:
        for revision in history[cid]:
            assert revision.reason.strip(), cid


def run_x(params, seed):
    return {"x": 1.0}


def _registry(rule: Rule) -> Registry:
    registry = Registry()
    registry.experiment(ids="Q7.a", method="m", quick={}, full={}, rules={"Q7.a": rule})(run_x)
    return registry


def test_a_changed_rule_without_history_fails_with_the_exact_fix(tmp_path):
    path = tmp_path / "fingerprints.json"
    fp.record(_registry(Rule("x", ">", 3.0, since="0.1.0")), path)
    recorded = json.loads(path.read_text())
    assert recorded["Q7.a"]["source"] == 'Rule("x", ">", 3.0)'

    changed = _registry(Rule("x", ">", 2.0, since="0.1.0"))
    (problem,) = fp.problems(changed, recorded)
    assert "Q7.a: its rule changed from `x > 3 in every seed` (recorded) to `x > 2 in every seed`" in problem
    assert f'history=(Revision(changed_in="{__version__}", old=Rule("x", ">", 3.0), reason="<why>"),)' in problem
    with pytest.raises(ValueError, match="without a history entry"):
        fp.record(changed, path)  # the record cannot move forward without the history

    explained = _registry(
        Rule("x", ">", 2.0, since="0.1.0", history=(Revision(changed_in="0.2.0", old=Rule("x", ">", 3.0), reason="r"),))
    )
    assert fp.problems(explained, recorded) == [
        "Q7.a: its rule changed and its history explains it: run `python -m deepbasics.lab.fingerprints` to record it."
    ]
    fp.record(explained, path)
    assert fp.problems(explained, json.loads(path.read_text())) == []


def test_new_unversioned_and_removed_rules_are_reported():
    recorded = {"Q7.b": {"rule": "y > 0 in every seed", "fingerprint": "0" * 16, "since": "0.1.0"}}
    found = fp.problems(_registry(Rule("x", ">", 1.0)), recorded)
    assert any(p.startswith('Q7.a: its Rule declares no version: add since="') for p in found)
    assert any(p.startswith("Q7.a: a new rule `x > 1 in every seed`, not recorded yet") for p in found)
    assert any(p.startswith("Q7.b: recorded, but no experiment declares it any more") for p in found)
    assert fp.problems(_registry(Rule("x", ">", 1.0)), None)[0].endswith("to record every rule.")


def test_fingerprint_covers_what_decides_the_verdict_only():
    base = Rule("x", ">", 1.0)
    assert base.fingerprint == Rule("x", ">", 1, since="0.2.0").fingerprint  # version and history are not the rule
    assert (
        base.fingerprint == Rule("x", ">", 1.0, history=(Revision("0.1.0", "r", old=Rule("x", ">", 2.0)),)).fingerprint
    )
    for other in (Rule("y", ">", 1.0), Rule("x", ">=", 1.0), Rule("x", ">", 1.5), Rule("x", ">", 1.0, spread="ci")):
        assert other.fingerprint != base.fingerprint
    assert (
        Rule("x", ">", 1.0, spread="ci", confidence=0.9).source() == 'Rule("x", ">", 1.0, spread="ci", confidence=0.9)'
    )


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Rule("x", ">", 1, since="0.2"), 'Rule.since: expected a version "MAJOR.MINOR.PATCH"'),
        (lambda: Rule("x", ">", 1, since="99.0.0"), "a version up to this package's"),
        (lambda: Rule("x", ">", 1, history=("old",)), r"a tuple of Revision"),
        (lambda: Revision("0.1.0", "r"), 'the previous Rule exactly when what="rule"'),
        (lambda: Revision("0.1.0", "r", old=Rule("x", ">", 1), what="params"), "exactly when"),
        (lambda: Revision("0.1.0", "r", what="params"), "Revision.was: expected the previous params in words"),
        (lambda: Revision("0.1.0", " ", old=Rule("x", ">", 1)), "Revision.reason"),
        (lambda: Revision("0.1.0", "r", what="threshold", was="w"), "Revision.what"),
    ],
)
def test_bad_versions_and_revisions_are_rejected(make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make()


def test_history_is_shown_by_lab_list(capsys, monkeypatch):
    from deepbasics.cli import main

    monkeypatch.setenv("COLUMNS", "400")  # no folding inside the table's cells
    with pytest.raises(SystemExit):
        main(["lab", "list"])
    out = capsys.readouterr().out
    assert "changed in 0.1.0; was: speedup > 1 for the mean" in out and "(since 0.1.0)" in out


def test_history_is_shown_under_the_claim_in_the_report(tmp_path):
    from deepbasics.lab import Result, write_report

    history = ({"changed_in": "0.1.0", "what": "rule", "was": "x > 3 in every seed", "reason": "too strict"},)
    result = Result(
        id="Q7.a",
        question_id="Q7",
        question="q",
        claim="c",
        verdict=lab.Verdict.HOLDS,
        reason="x > 2 in 3/3 seeds",
        rule="x > 2 in every seed",
        metric="x",
        metrics={"x": [3.0, 3.0, 3.0]},
        rule_since="0.1.0",
        rule_history=history,
    )
    write_report([result], tmp_path)
    html, md = (tmp_path / "index.html").read_text(), (tmp_path / "report.md").read_text()
    assert "declared in deepbasics 0.1.0" in html and "Rule history" in html
    assert "Changed in 0.1.0 (rule): was <i>x &gt; 3 in every seed</i>. Why: too strict" in html
    assert "Rule history: changed in 0.1.0 (rule): was *x > 3 in every seed*. Why: too strict" in md
    row = json.loads((tmp_path / "results.json").read_text())[0]
    assert row["rule_history"] == list(history) and row["rule_since"] == "0.1.0"
