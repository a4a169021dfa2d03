"""grounding: numbers (and quoted spans) released must occur in the sources."""

from __future__ import annotations

import pytest
from gatedriver import run

from aqcore.errors import PolicyError
from aqcore.gates.grounding import normalize_number, numbers_in
from aqcore.models import ConversationState

SOURCES = ["Order 48213 was charged $1,250.00 on 2024-03-05. Refunds take 5 business days."]


@pytest.mark.parametrize(
    ("raw", "norm"),
    [("1,250.00", "1250"), ("1250", "1250"), ("1250.0", "1250"), ("007", "7"), ("3.50", "3.5"), ("0", "0")],
)
def test_number_normal_form(raw: str, norm: str) -> None:
    assert normalize_number(raw) == norm


def test_numbers_in_text() -> None:
    assert numbers_in(SOURCES[0]) == {"48213", "1250", "2024", "03", "05", "5"} - {"03", "05"} | {"3", "5"}


def test_grounded_numbers_pass_in_any_format() -> None:
    pieces = ["Your order ", "48", "213", " was charged ", "1250", " dollars", " ($1,", "250.", "00)."]
    outcome = run({"grounding": {}}, pieces, sources=SOURCES)
    assert outcome.verdicts == []
    assert outcome.released == "".join(pieces)


def test_ungrounded_number_is_rolled_back_before_release() -> None:
    pieces = ["You get ", "1,", "300", " dollars back."]
    outcome = run({"grounding": {}}, pieces, sources=SOURCES)
    assert outcome.kinds() == ["rollback"]
    assert "1,300" in outcome.verdicts[0].reason
    assert "300" not in outcome.released and "1," not in outcome.released


def test_growing_number_is_held_until_complete() -> None:
    # "12" is not in the sources but "1250" is: nothing is judged before the number ends.
    outcome = run({"grounding": {}}, ["It is ", "1", "2", "5", "0", "."], sources=SOURCES)
    assert outcome.verdicts == []
    assert outcome.released == "It is 1250."


def test_decimal_point_keeps_the_number_open() -> None:
    outcome = run({"grounding": {}}, ["Pay ", "1250", ".", "5", " now"], sources=SOURCES)
    assert outcome.kinds() == ["rollback"]
    assert "1250" not in outcome.released


def test_number_at_the_very_end_is_checked() -> None:
    outcome = run({"grounding": {}}, ["Total ", "99"], sources=SOURCES)
    assert outcome.released == "Total "
    assert outcome.kinds() == ["rollback"]


def test_prompt_and_conversation_sources_count() -> None:
    state = ConversationState(sources=["ticket 777"])
    outcome = run(
        {"grounding": {}},
        ["Ticket 777 about order 555."],
        prompt="my order is 555",
        conversation_state=state,
    )
    assert outcome.verdicts == []
    no_prompt = run(
        {"grounding": {"include_prompt": False}},
        ["order 555."],
        prompt="my order is 555",
        conversation_state=state,
    )
    assert no_prompt.kinds() == ["rollback"]


def test_min_digits_and_ignore() -> None:
    outcome = run({"grounding": {"min_digits": 2, "ignore": ["24"]}}, ["Step 1: wait 24 hours."], sources=[])
    assert outcome.verdicts == []


def test_quoted_spans() -> None:
    table = {"grounding": {"numbers": False, "quoted_spans": True}}
    ok = run(
        table,
        ["The policy says ", '"Refunds take ', 'five business days"', "."],
        sources=["Refunds   take FIVE business days, always."],
    )
    assert ok.verdicts == []
    bad = run(table, ["The policy says ", '"Refunds are ', 'instant"', "."], sources=SOURCES)
    assert bad.kinds() == ["rollback"]
    assert bad.released == "The policy says ."


def test_halt() -> None:
    outcome = run({"grounding": {"on_violation": "halt"}}, ["Pay ", "99", " now"], sources=SOURCES)
    assert outcome.kinds() == ["halt"]
    assert outcome.released == "Pay "


def test_unit_granularity() -> None:
    outcome = run(
        {"grounding": {}},
        ["Order 48213 is fine. ", "It cost 999 dollars. ", "Bye."],
        sources=SOURCES,
        granularity="unit",
    )
    assert outcome.released == "Order 48213 is fine. Bye."
    assert "999" in outcome.verdicts[0].reason


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"numbers": False}, "metrics.grounding"),
        ({"on_violation": "redact"}, "metrics.grounding.on_violation"),
        ({"on_violation": "reject"}, "metrics.grounding.on_violation"),
        ({"ignore": ["twelve"]}, "metrics.grounding.ignore"),
        ({"min_digits": 0}, "metrics.grounding.min_digits"),
        ({"source": "x"}, "metrics.grounding.source"),
    ],
)
def test_bad_config(table: dict, key: str) -> None:
    with pytest.raises(PolicyError) as info:
        run({"grounding": table}, [])
    assert info.value.key == key, str(info.value)
