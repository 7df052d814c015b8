"""The builder's form read back into definitions the cohorts service takes, and the chart's
geometry (no browser)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.datastructures import FormData

from cohortsync.domain.cohorts import COUNT_OPERATORS, PROPERTY_OPERATORS, parse_definition
from cohortsync.domain.errors import BatchError
from cohortsync.services.mtu import Month
from cohortsync.web.builder import COUNT_LABELS, OPERATOR_LABELS, definition_from_form
from cohortsync.web.mtu_chart import HEIGHT, months_up_to, mtu_chart


def form(*fields: tuple[str, str]) -> FormData:
    return FormData(list(fields))


def test_every_property_operator_is_offered() -> None:
    assert list(OPERATOR_LABELS) == list(PROPERTY_OPERATORS)


def test_groups_conditions_negation_events_and_filters() -> None:
    posted = form(
        ("match", "any"),
        ("group", "g1"),
        ("g1.match", "all"),
        ("condition", "c1"),
        ("c1.group", "g1"),
        ("c1.kind", "event"),
        ("c1.event", "Purchase"),
        ("c1.count_op", ">="),
        ("c1.count", "2"),
        ("c1.last", "30"),
        ("c1.unit", "day"),
        ("c1.where", "w1"),
        ("w1.property", "amount"),
        ("w1.op", "gt"),
        ("w1.value", "20.5"),
        ("w1.type", "number"),
        ("condition", "c2"),
        ("c2.group", "g1"),
        ("c2.negate", "1"),
        ("c2.kind", "property"),
        ("c2.property", "plan"),
        ("c2.op", "in"),
        ("c2.value", "trial, free"),
        ("c2.type", "text"),
        ("group", "g2"),
        ("g2.match", "any"),
        ("condition", "c3"),
        ("c3.group", "g2"),
        ("c3.kind", "in_cohort"),
        ("c3.cohort", "12"),
        ("condition", "c4"),
        ("c4.group", "g2"),
        ("c4.kind", "property"),
        ("c4.property", "$email"),
        ("c4.op", "is_set"),
        ("c4.value", "ignored"),
    )
    definition = definition_from_form(posted)
    assert definition == {
        "any": [
            {
                "all": [
                    {
                        "event": "Purchase",
                        "count": {"op": ">=", "value": 2},
                        "within": {"last": 30, "unit": "day"},
                        "where": [{"property": "amount", "op": "gt", "value": 20.5}],
                    },
                    {"not": {"property": "plan", "op": "in", "value": ["trial", "free"]}},
                ]
            },
            {"any": [{"in_cohort": 12}, {"property": "$email", "op": "is_set"}]},
        ]
    }
    parse_definition(definition)  # the service's own validation accepts it


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [("34", "text", "34"), ("34", "number", 34), ("3.0", "number", 3.0), ("True", "boolean", True)],
)
def test_values_keep_the_chosen_type(value: str, kind: str, expected: Any) -> None:
    posted = form(
        ("condition", "c"),
        ("c.property", "p"),
        ("c.op", "equals"),
        ("c.value", value),
        ("c.type", kind),
    )
    condition = definition_from_form(posted)["all"][0]
    assert condition["value"] == expected and type(condition["value"]) is type(expected)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((), "add a condition"),
        ((("condition", "c"), ("c.kind", "event")), "Condition 1: name the event"),
        ((("condition", "c"), ("c.property", "")), "Condition 1: name the property"),
        (
            (("condition", "c"), ("c.property", "age"), ("c.value", "x"), ("c.type", "number")),
            "Condition 1: 'x' is not a number",
        ),
        (
            (("condition", "c"), ("c.kind", "event"), ("c.event", "E"), ("c.last", "-3")),
            "Condition 1: the window must be a whole number",
        ),
    ],
)
def test_what_is_missing_is_named(fields: tuple[tuple[str, str], ...], message: str) -> None:
    with pytest.raises(BatchError) as raised:
        definition_from_form(form(*fields))
    assert raised.value.message == message


def test_the_chart_scales_bars_to_the_largest_month() -> None:
    months = months_up_to(Month(2026, 2), 4)
    assert [str(m) for m in months] == ["2025-11", "2025-12", "2026-01", "2026-02"]
    chart = mtu_chart(
        [(str(m), v) for m, v in zip(months, [0, 50, 100, 25], strict=True)], "2026-01"
    )
    heights = [bar.height for bar in chart.bars]
    assert heights[0] == 0 and heights[2] == 2 * heights[1] == 4 * heights[3]
    assert all(bar.y + bar.height == chart.baseline < HEIGHT for bar in chart.bars)
    assert [bar.current for bar in chart.bars] == [False, False, True, False]
    assert all(a.x + a.width < b.x for a, b in zip(chart.bars, chart.bars[1:], strict=False))


def comparison(op: str, value: str, *kind: str) -> FormData:
    chosen = (("c.type", kind[0]),) if kind else ()
    return form(
        ("condition", "c"), ("c.property", "amount"), ("c.op", op), ("c.value", value), *chosen
    )


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("gt", "20", 20),
        ("lte", "2.5", 2.5),
        ("between", "10, 20", [10, 20]),
        ("gte", "2026-01-01", "2026-01-01"),  # a date stays a string
        ("equals", "20", "20"),  # equality keeps what was typed
    ],
)
def test_an_ordering_compares_numbers_when_a_number_is_typed(
    op: str, value: str, expected: Any
) -> None:
    condition = definition_from_form(comparison(op, value))["all"][0]
    assert condition["value"] == expected
    assert type(condition["value"]) is type(expected)
    parse_definition({"all": [condition]})


def test_an_explicit_type_wins() -> None:
    assert definition_from_form(comparison("gt", "20", "text"))["all"][0]["value"] == "20"
    assert definition_from_form(comparison("equals", "20", "number"))["all"][0]["value"] == 20


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", "1e999"])
def test_numbers_must_be_finite(value: str) -> None:
    with pytest.raises(BatchError) as raised:
        definition_from_form(comparison("gt", value, "number"))
    assert raised.value.message == f"Condition 1: {value!r} is not a finite number"
    # typed without a chosen type, it is compared as text, never as nan
    assert definition_from_form(comparison("gt", value))["all"][0]["value"] == value


@pytest.mark.parametrize("count", ["²", "٣x", "1.5", "-1", ""])
def test_a_count_that_is_not_a_whole_number_is_named(count: str) -> None:
    posted = form(("condition", "c"), ("c.kind", "event"), ("c.event", "E"), ("c.count", count))
    if not count:  # left empty: at least once
        assert definition_from_form(posted)["all"][0]["count"] == {"op": ">=", "value": 1}
        return
    with pytest.raises(BatchError) as raised:
        definition_from_form(posted)
    assert raised.value.message == "Condition 1: the count must be a whole number"


def test_count_labels_are_keyed_by_operator() -> None:
    assert set(COUNT_LABELS) == set(COUNT_OPERATORS)
    assert COUNT_LABELS == {
        ">=": "at least",
        ">": "more than",
        "=": "exactly",
        "!=": "not exactly",
        "<": "fewer than",
        "<=": "at most",
    }
