"""Every claim of the lab reads in words: a metric description for its judged number and a takeaway template
that renders with real quick-mode outputs of every task (issue 15 item 5).

Outputs come from :mod:`_lab_quick`, shared with the per-question experiment tests, so each experiment runs once.
"""

from __future__ import annotations

import pytest

from _lab_quick import quick_outputs
from deepbasics import lab
from deepbasics.lab._files import to_jsonable
from deepbasics.lab.result import scalar_metrics
from deepbasics.lab.words import key_number, render

EXPERIMENTS = lab.experiments()


def test_every_claim_declares_a_takeaway_and_its_judged_metric():
    missing = []
    for exp in EXPERIMENTS:
        for cid, rule in exp.rules.items():
            if cid not in exp.takeaways:
                missing.append(f"{cid}: no takeaway template (takeaways={{{cid!r}: '...'}})")
            if rule.metric not in exp.metrics:
                missing.append(f"{cid}: its judged metric {rule.metric!r} has no Metric(...) description")
    assert not missing, "\n".join(missing)


@pytest.mark.slow
@pytest.mark.parametrize("exp", EXPERIMENTS, ids=lambda e: e.id)
def test_takeaways_render_with_real_outputs(exp):
    for task, output in quick_outputs(exp).items():
        values = scalar_metrics([to_jsonable(output, "output")])
        for cid, template in exp.takeaways.items():
            text = render(template, exp.metrics, values)  # KeyError names a metric the run did not return
            assert "{" not in text and "}" not in text, (cid, task, text)
            rule = exp.rules[cid]
            number = key_number(rule.metric, exp.metrics[rule.metric], values[rule.metric])
            assert number.startswith(exp.metrics[rule.metric].label + ": "), number
