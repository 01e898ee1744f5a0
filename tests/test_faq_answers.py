"""The FAQ's own answers: the shipped copy, the parser, and the mapping onto our question IDs."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepbasics import faq, faq_answers
from deepbasics.faq_answers import GISTS, SECTIONS, UNMAPPED, answer, faq_text, parse_sections

SHARED_FAQ = Path(__file__).resolve().parents[2] / "shared" / "faq" / "fundamentals-faq.zh.md"


@pytest.mark.skipif(not SHARED_FAQ.exists(), reason="shared/faq is not beside this checkout")
def test_the_shipped_faq_is_the_shared_one():
    assert faq_text() == SHARED_FAQ.read_text(encoding="utf-8"), "copy shared/faq/fundamentals-faq.zh.md again"


def test_every_faq_question_maps_to_a_section_and_every_section_is_accounted_for():
    keys = [s.key for s in parse_sections(faq_text())]
    from_faq = [q.id for q in faq.QUESTIONS if q.id in SECTIONS]
    assert set(SECTIONS) == set(from_faq), "a question of the FAQ table has no section, or a mapping is stale"
    for key in keys:
        mapped = any(key == s or key.startswith(s + ".") for s in SECTIONS.values())
        assert mapped or key in UNMAPPED, f"FAQ section {key} is neither mapped to a question nor in UNMAPPED"
    assert set(SECTIONS.values()) | set(UNMAPPED) <= set(keys)
    assert set(GISTS) == set(SECTIONS)
    beyond = [q.id for q in faq.QUESTIONS if q.id not in SECTIONS]
    assert all(answer(qid) is None for qid in beyond)


@pytest.mark.parametrize("question", [q for q in faq.QUESTIONS if q.id in SECTIONS], ids=lambda q: q.id)
def test_each_answer_is_its_section_with_subsections(question):
    found = answer(question.id)
    assert found is not None and found.question_id == question.id and found.gist.strip()
    assert 1 <= len(found.gist.split(". ")) <= 4, "a gist is one to three sentences"
    if found.has_text:
        assert "##" not in found.text.split("\n", 1)[0]  # the body starts with text, not its own heading
        assert "../../../pics" not in found.text and "](" not in found.text.replace("](http", "")
    else:
        assert found.gist.startswith("The FAQ has this heading"), "an empty section's gist says it is empty"
    # The FAQ leaves exactly the beyond-the-FAQ sections empty
    assert found.has_text == (not question.beyond_faq)


def test_known_answers():
    q31 = answer("Q3.1")
    assert q31.title == "3.1 病态" and "条件数" in q31.text and "#### 3.1.1 如何避免病态" in q31.text
    assert "[figure: precondition.png, not included]" in q31.text
    assert "sigmoid" in answer("Q3.3").text and "3.4" not in answer("Q3.3").text.split("\n")[0]
    assert answer("Q12").has_text and "中心极限定理" in answer("Q12").text
    assert not answer("CNN").has_text and answer("CNN").key == "CNN"


def test_parser_on_a_small_document():
    text = "# Part\n\n## 1. One\nbody 1\n```\n# not a heading\n```\n### 1.1 Sub\nsub ![](a/b/c.png)\n# CNN相关问题\n"
    sections = parse_sections(text)
    assert [(s.key, s.level) for s in sections] == [("Part", 1), ("1", 2), ("1.1", 3), ("CNN", 1)]
    assert sections[1].body == "body 1\n```\n# not a heading\n```"
    assert sections[2].body == "sub [figure: c.png, not included]"
    with pytest.raises(ValueError, match="repeated"):
        parse_sections("## 1. a\n## 1. b\n")
    assert faq_answers.__doc__ and "UNMAPPED" in faq_answers.__doc__
