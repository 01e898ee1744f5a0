"""Report (JSON round trip, queries, rich text), the explanation table and the threshold module."""

from __future__ import annotations

import json
import math

import pytest

from deepbasics.doctor import CODES, FAQ_QUESTION, Finding, Report, Severity
from deepbasics.doctor import thresholds as T
from deepbasics.doctor.explain import EXPLANATIONS, FIXES, explain, fix_for, make_finding
from deepbasics.doctor.records import RunTrace
from deepbasics.doctor.report import render_findings


def findings():
    return [
        make_finding("dead_relu", "warning", ("act1",), {"dead_fraction_by_layer": {"act1": 0.9}}, detail="90%."),
        make_finding("nonfinite", Severity.ERROR, ("loss",), {"value": math.nan}, step=7),
        make_finding("batch_size_advice", "info", ("batch",), {"ratio": 40.0}),
    ]


def test_report_queries():
    report = Report(findings=findings(), static_findings=[], history={"losses": [(0, 2.3), (1, 2.0)]})
    assert report.codes() == {"dead_relu", "nonfinite", "batch_size_advice"}
    assert report.has("dead_relu") and not report.has("overfitting")
    assert [f.code for f in report.by_severity("warning")] == ["dead_relu", "nonfinite"]
    assert [f.code for f in report.by_severity("error")] == ["nonfinite"]
    assert not report.ok and Report().ok


def test_report_json_round_trip(tmp_path):
    static = [make_finding("unnormalized_inputs", "warning", ("inputs",), {"max_std": 600.0})]
    report = Report(findings=static + findings(), static_findings=static, notes=["n"], meta={"steps": 3})
    text = report.to_json(tmp_path / "a" / "r.json")
    data = json.loads(text)
    assert data == json.loads((tmp_path / "a" / "r.json").read_text())
    assert data["findings"][0]["faq"] == FAQ_QUESTION["unnormalized_inputs"]
    again = Report.from_dict(data)
    assert [f.code for f in again.findings] == [f.code for f in report.findings]
    assert [f.code for f in again.static_findings] == ["unnormalized_inputs"]
    assert again.notes == ["n"] and again.meta == {"steps": 3}


def test_summary_lists_most_severe_first_with_fix_and_faq():
    report = Report(findings=findings(), history={"losses": [(0, 2.3), (1, 2.0)]}, meta={"steps": 2},
                    notes=["curvature skipped: big"])  # fmt: skip
    text = report.summary()
    assert text.index("nonfinite") < text.index("dead_relu") < text.index("batch_size_advice")
    assert "FAQ Q15" in text and "LeakyReLU" in text and "note: curvature skipped" in text
    assert "1 error" in text and "loss 2.3 -> 2" in text
    assert "\x1b[" not in text  # plain text, no ANSI colour codes
    assert str(report) == text


def test_render_without_findings():
    assert "no findings" in render_findings([])


def test_every_code_has_text_and_faq():
    assert set(EXPLANATIONS) == set(FIXES) == set(CODES)
    for code in CODES:
        assert len(explain(code)) > 80 and fix_for(code)
        if FAQ_QUESTION[code] == "practice":  # the bugs users report most, beyond the FAQ
            assert "FAQ" not in explain(code)
        else:
            assert FAQ_QUESTION[code].startswith("Q") and "FAQ" in explain(code)
    with pytest.raises(ValueError, match="expected one of"):
        explain("nope")


def test_make_finding_prepends_detail():
    f = make_finding("overfitting", "warning", ["validation"], {"a": 1}, detail="Val rose.", step=4)
    assert isinstance(f, Finding) and f.explanation.startswith("Val rose. ") and f.step == 4
    assert f.where == ("validation",)


def test_every_threshold_is_documented_in_the_source():
    import inspect

    source = inspect.getsource(T)
    for name in T.__all__:
        line = next(i for i, text in enumerate(source.splitlines()) if text.startswith(f"{name} ="))
        above = source.splitlines()[line - 1]
        assert above.startswith("#") or source.splitlines()[line - 2].startswith("#"), name
        assert isinstance(getattr(T, name), (int, float))


def test_a_report_reads_back_as_the_records_a_watched_run_gives():
    history = {"losses": [[0, 2.3], [1, 2.0]], "val_losses": [[1, 2.1]], "layers": {"0": {"step": [0]}}}
    history.update(order=["0"], kinds={"0": "matrix"}, curvature=None, noise=None)  # as JSON gives it back
    report = Report(history=history, meta={"batch_size": 16})
    trace = report.trace()
    assert trace.losses == [(0, 2.3), (1, 2.0)] and trace.val_losses == [(1, 2.1)] and trace.batch_size == 16
    assert RunTrace.from_dict(trace.to_dict()) == trace
