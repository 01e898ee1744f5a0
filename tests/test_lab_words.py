"""Numbers in words: formatting, metric units, key numbers and takeaway templates (deepbasics.lab.words)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deepbasics.lab import Metric
from deepbasics.lab.words import check_takeaways, human, key_number, render


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (0.0, "0"),
        (93.123, "93.1"),
        (5.321, "5.32"),
        (15210.0, "15,210"),
        (0.01234, "0.0123"),
        (1.234e-13, "1.23e-13"),
        (-0.2125, "-0.212"),
        (999.6, "1,000"),
        (2.5e9, "2.50e+09"),
        (math.inf, "inf"),
    ],
)
def test_human_numbers(x, text):
    assert human(x) == text


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300))
def test_human_keeps_three_significant_digits(x):
    """Whatever the magnitude, the text reads back within 0.5% (3 significant digits, or a rounded count)."""
    back = float(human(x).replace(",", ""))
    assert abs(back - x) <= 5e-3 * abs(x) + (0.5 if 1e3 <= abs(x) < 1e9 else 0.0)


@pytest.mark.parametrize(
    ("metric", "x", "text"),
    [
        (Metric("accuracy", unit="%", scale=100), 0.9312, "93.1%"),
        (Metric("ratio", unit="x"), 5.321, "5.32x"),
        (Metric("gap", unit="points", scale=100), 0.251, "25.1 points"),
        (Metric("count"), 15210.0, "15,210"),
        (Metric("time", unit="s", digits=2), 3.21, "3.2 s"),
    ],
)
def test_metric_format_uses_unit_and_scale(metric, x, text):
    assert metric.format(x) == text


def test_key_number_reads_as_words_with_the_spread():
    gap = Metric("accuracy gap", unit="points", scale=100)
    assert key_number("gap", gap, [0.25, 0.26, 0.244]) == "accuracy gap: 25.1 points (mean of 3 seeds, ±0.808)"
    assert key_number("gap", gap, [0.25]) == "accuracy gap: 25 points"
    assert key_number("claim_margin", None, [1.111, 1.111]) == "claim margin: 1.11 (mean of 2 seeds, ±0)"
    assert key_number("gap", gap, []) == "accuracy gap: not measured"
    assert "not all finite" in key_number("gap", gap, [0.1, math.nan])


def test_render_fills_means_and_statistics():
    metrics = {"acc": Metric("accuracy", unit="%", scale=100), "ratio": Metric("ratio", unit="x")}
    values = {"acc": [0.9, 0.92, 0.94], "ratio": [2.0, 4.0, 6.0]}
    text = render("{acc} ({acc.min} to {acc.max}, std {acc.std}); {ratio.range} over {seeds} seeds", metrics, values)
    assert text == "92% (90% to 94%, std 2%); 2x to 6x over 3 seeds"
    assert render("{other}", {}, {"other": [1.5]}) == "1.5"  # an undeclared metric reads plainly
    with pytest.raises(KeyError, match="'acc' has no finite value in every seed"):
        render("{acc}", metrics, {"acc": [0.9, math.nan]})
    with pytest.raises(KeyError, match="'acc'"):
        render("{acc}", metrics, {})


def test_check_takeaways_accepts_declared_placeholders():
    metrics = {"acc": Metric("accuracy")}
    assert check_takeaways({"Q1.a": "{acc.range} over {seeds} seeds"}, ["Q1.a"], metrics) == {
        "Q1.a": "{acc.range} over {seeds} seeds"
    }
    with pytest.raises(TypeError, match="a dict"):
        check_takeaways("x", ["Q1.a"], metrics)
    with pytest.raises(TypeError, match="a sentence"):
        check_takeaways({"Q1.a": ""}, ["Q1.a"], metrics)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"label": ""}, "Metric.label"),
        ({"label": "x", "unit": 3}, "Metric.unit"),
        ({"label": "x", "scale": math.nan}, "Metric.scale"),
        ({"label": "x", "digits": 0}, "Metric.digits"),
    ],
)
def test_bad_metrics_are_rejected(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        Metric(**kwargs)
