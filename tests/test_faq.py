"""The coverage table must only point at things that exist."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

from deepbasics import faq

CLAIMS_MD = Path(__file__).resolve().parents[2] / "shared" / "faq" / "claims.md"


def test_question_ids_are_unique():
    ids = [q.id for q in faq.QUESTIONS]
    assert len(ids) == len(set(ids))


def test_claim_ids_belong_to_their_question():
    for q in faq.QUESTIONS:
        for cid in q.claims:
            assert cid.startswith(q.id + "."), (q.id, cid)


@pytest.mark.skipif(not CLAIMS_MD.exists(), reason="shared/faq/claims.md is not beside this checkout")
def test_every_claim_of_claims_md_is_in_the_table():
    ids = set(re.findall(r"^- ((?:Q\d+(?:\.\d+)*|CNN|RNN)\.[a-z])\b", CLAIMS_MD.read_text(), flags=re.M))
    assert ids, "claims.md parsed to nothing"
    reproductions = {cid for q in faq.QUESTIONS if q.id == "REF" for cid in q.claims}  # published results, not FAQ
    assert ids == set(faq.CLAIMS) - reproductions


@pytest.mark.parametrize("question", faq.QUESTIONS, ids=lambda q: q.id)
def test_every_module_imports(question):
    for name in question.modules:
        importlib.import_module(name)


def test_lab_coverage_comes_from_the_registry(capsys):
    """``deepbasics faq`` lists, per question, exactly the claims that a registered experiment measures."""
    from deepbasics import lab
    from deepbasics.cli import main

    registered = {cid for exp in lab.experiments() for cid in exp.ids}
    with pytest.raises(SystemExit):
        main(["faq", "--json"])
    rows = json.loads(capsys.readouterr().out)
    listed = {cid for row in rows for cid in row["lab"]}
    assert listed == registered
    for row in rows:
        assert all(faq.question_of(cid).id == row["id"] for cid in row["lab"]), row
    assert not hasattr(faq.QUESTIONS[0], "lab")  # no hand-kept copy that could drift


def test_doctor_codes_are_in_the_vocabulary():
    wanted = {code for q in faq.QUESTIONS for code in q.doctor}
    if not wanted:
        pytest.skip("no doctor code listed yet")
    from deepbasics.doctor import CODES

    assert wanted <= set(CODES), sorted(wanted - set(CODES))


def test_question_of_rejects_unknown_ids():
    assert faq.question_of("Q3.3.a").id == "Q3.3"
    with pytest.raises(ValueError, match="known claim ID"):
        faq.question_of("Q99.z")


def test_cli_prints_every_question(capsys):
    from deepbasics.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["faq", "--json"])
    assert exit_info.value.code in (0, None)
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == [q.id for q in faq.QUESTIONS]
