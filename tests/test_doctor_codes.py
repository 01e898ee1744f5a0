"""The code table is the single source: every derived view (vocabulary, text, transient set, repair order and
candidates, explained-by, FAQ coverage, zoo coverage, the --codes reference) agrees with it, and its rows point only
at things that exist."""

from __future__ import annotations

import pytest

from deepbasics import faq
from deepbasics.doctor import CODES, FAQ_QUESTION, Finding
from deepbasics.doctor.codes import PRACTICE, SEEN_BY, TABLE, CodeSpec, codes_for_question, markdown, spec
from deepbasics.doctor.detectors import DETECTORS, resolve
from deepbasics.doctor.explain import EXPLANATIONS, FIXES
from deepbasics.doctor.fixes import CANDIDATES
from deepbasics.doctor.fixes import FIXES as CATALOGUE
from deepbasics.doctor.repairing import ORDER


def test_the_vocabulary_is_the_table():
    assert CODES == ORDER == tuple(row.code for row in TABLE)
    assert dict(FAQ_QUESTION) == {row.code: row.faq for row in TABLE}
    assert dict(EXPLANATIONS) == {row.code: row.explanation for row in TABLE}
    assert dict(FIXES) == {row.code: row.fix for row in TABLE}
    assert dict(CANDIDATES) == {row.code: row.candidates for row in TABLE}
    assert {"missing_zero_grad", "parameters_not_updated", "eval_mode_training"} <= set(codes_for_question(PRACTICE))


def test_rows_point_only_at_things_that_exist():
    questions = {q.id for q in faq.QUESTIONS}
    for row in TABLE:
        assert row.faq == PRACTICE or row.faq in questions, row.code
        for name in row.candidates:
            assert name == "he_or_glorot" or name in CATALOGUE, (row.code, name)
            fixes = ("he_init", "glorot_init") if name == "he_or_glorot" else (name,)
            assert all(row.code in CATALOGUE[f].applies_to for f in fixes), (row.code, name)
        assert row.seen_by <= set(SEEN_BY) and row.seen_by
        assert row.title and len(row.explanation) > 80 and row.fix


def test_every_code_has_a_detector_that_can_emit_it():
    assert {code for d in DETECTORS for code in d.codes} == set(CODES)


def test_faq_coverage_is_derived_from_the_table():
    for q in faq.QUESTIONS:
        assert q.doctor == codes_for_question(q.id)
    listed = {code for q in faq.QUESTIONS for code in q.doctor}
    assert listed == {row.code for row in TABLE}  # the practice codes under the FAQ's "practice" row
    (practice,) = [q for q in faq.QUESTIONS if q.id == "practice"]
    assert set(practice.doctor) == {row.code for row in TABLE if row.practice} and practice.beyond_faq


def test_explained_by_drops_the_symptom_only_when_its_cause_is_present():
    symptom = Finding("slow_convergence", "warning", ("loss",), {}, "", "")
    cause = Finding("parameters_not_updated", "error", ("2",), {}, "", "")
    assert resolve([symptom]) == [symptom]
    assert resolve([symptom, cause]) == [cause]
    assert "missing_zero_grad" in spec("parameters_not_updated").explained_by


def test_no_persistent_code_is_explained_by_a_transient_one():
    """What lets the periodic checks skip the transient detectors (run_detectors(transient=False)): resolve() then
    drops the same persistent findings as with every detector."""
    for row in TABLE:
        if not row.transient:
            assert not any(spec(cause).transient for cause in row.explained_by), row.code


def test_transient_codes_are_replaced_at_each_check():
    from deepbasics.doctor.schedule import refresh

    old = [Finding("overfitting", "warning", ("validation",), {}, "", "", step=3),
           Finding("dead_relu", "warning", ("1",), {}, "", "", step=2)]  # fmt: skip
    assert spec("overfitting").transient and not spec("dead_relu").transient
    assert [f.code for f in refresh(old, [])] == ["dead_relu"]


def test_unknown_codes_and_bad_rows_are_rejected_with_the_vocabulary():
    with pytest.raises(ValueError, match="missing_zero_grad"):
        Finding("no_such_code", "warning", (), {}, "", "")
    with pytest.raises(ValueError, match="snake_case"):
        CodeSpec("Bad Code", "Q1", "warning", False, "t", "e", "f")
    with pytest.raises(ValueError, match="question id"):
        CodeSpec("x", "chapter 3", "warning", False, "t", "e", "f")
    with pytest.raises(ValueError, match="seen_by"):
        CodeSpec("x", "Q1", "warning", False, "t", "e", "f", seen_by={"lab"})


def test_the_reference_lists_every_code_and_the_cli_prints_it(capsys):
    text = markdown()
    assert all(f"`{row.code}`" in text for row in TABLE)
    from deepbasics.cli import main

    with pytest.raises(SystemExit) as done:
        main(["doctor", "--codes"])
    assert done.value.code in (0, None)
    assert capsys.readouterr().out.strip() == text
