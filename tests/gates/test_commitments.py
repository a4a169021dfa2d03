"""commitments: a slot keeps the value the agent first committed to."""

from __future__ import annotations

import pytest
from gatedriver import bind, context, drive, policy, run

from aqcore.errors import PolicyError
from aqcore.gates.commitments import normalize_value
from aqcore.models import AgentState, Commitment, ConversationState

REFUND = r"refund of \$?(?P<value>\d[\d,]*(?:\.\d\d)?)"
ORDER = r"order (?:id |number |#)?(?P<order_id>[A-Z]{2,4}-\d{3,8})"
TABLE = {
    "commitments": {
        "extractors": [
            {"pattern": REFUND, "slot": "refund_amount"},
            {"pattern": ORDER},
            {
                "pattern": r"(?P<slot>delivery date|pickup date) (?:is|will be) (?P<value>\w+ \d{1,2})",
                "scope": "agent",
            },
        ]
    }
}


def stored(slot: str, value: str, scope: str = "conversation") -> dict[str, Commitment]:
    return {slot: Commitment(slot=slot, value=value, invocation="earlier", scope=scope)}  # type: ignore[arg-type]


def test_values_compare_in_normal_form() -> None:
    assert normalize_value("$1,250.00") == normalize_value("1250") == "1250"
    assert normalize_value("  March  5 ") == "march 5"


def test_first_commitments_are_recorded() -> None:
    outcome = run(TABLE, ["We issued a ", "refund of $", "1,250", ".00 for order ", "AB-1234", "."])
    assert outcome.verdicts == []
    (metric,) = outcome.metrics
    made = {c.slot: (c.value, c.scope, c.invocation) for c in metric.commitments()}
    assert made == {
        "refund_amount": ("1250", "conversation", "inv1"),
        "order_id": ("ab-1234", "conversation", "inv1"),
    }


def test_same_value_in_another_format_is_fine() -> None:
    state = ConversationState(commitments=stored("refund_amount", "1250"))
    outcome = run(TABLE, ["A refund of 1250 dollars."], conversation_state=state)
    assert outcome.verdicts == []
    assert outcome.metrics[0].commitments() == []  # nothing new


def test_conflict_with_stored_commitment_is_rolled_back() -> None:
    state = ConversationState(commitments=stored("refund_amount", "1250"))
    outcome = run(TABLE, ["You get a ", "refund of $", "1,300", " today."], conversation_state=state)
    assert outcome.kinds() == ["rollback"]
    assert "refund_amount was committed as '1250' (invocation earlier" in outcome.verdicts[0].reason
    assert "1,300" not in outcome.released and "refund of" not in outcome.released


def test_conflict_within_one_invocation() -> None:
    outcome = run(TABLE, ["Order AB-1234 ", "is late; ", "order AB-9999 ", "is not."])
    assert outcome.kinds() == ["rollback"]
    assert "given as 'ab-1234' earlier" in outcome.verdicts[0].reason
    assert outcome.released == "Order AB-1234 is late; "


def test_agent_scope_uses_agent_state() -> None:
    agent = AgentState(commitments=stored("delivery_date", "march 5", "agent"))
    ok = run(TABLE, ["The delivery date is March 5."], agent_state=agent)
    assert ok.verdicts == []
    bad = run(TABLE, ["The delivery date ", "will be ", "April 2."], agent_state=agent)
    assert bad.kinds() == ["rollback"]
    conv_only = run(
        TABLE,
        ["The delivery date is April 2."],
        conversation_state=ConversationState(commitments=stored("delivery_date", "march 5")),
    )
    assert conv_only.verdicts == []  # the extractor's scope is agent


def test_rollback_forgets_commitments_made_after_the_cut() -> None:
    pol = policy(TABLE)
    ctx = context(pol)
    metrics = bind(pol, ctx)
    drive(metrics, ctx, ["order AB-1234 "])
    assert [c.value for c in metrics[0].commitments()] == ["ab-1234"]
    metrics[0].on_rollback(0)
    assert metrics[0].commitments() == []


def test_growing_value_is_held() -> None:
    state = ConversationState(commitments=stored("refund_amount", "1250"))
    # "refund of $1" would conflict; it is only judged once the amount is complete.
    outcome = run(TABLE, ["A refund of $", "1", "2", "5", "0", " is due."], conversation_state=state)
    assert outcome.verdicts == []


def test_halt() -> None:
    table = {"commitments": {**TABLE["commitments"], "on_violation": "halt"}}
    state = ConversationState(commitments=stored("order_id", "ab-1234"))
    outcome = run(table, ["About ", "order ZZ-1111", " now"], conversation_state=state)
    assert outcome.finish == "halted"
    assert outcome.released == "About "


@pytest.mark.parametrize(
    ("extractor", "message"),
    [
        ({"pattern": "refund (\\d+)"}, "no named group"),
        ({"pattern": "(?P<value>\\d+)"}, "set 'slot' or add a 'slot' group"),
        ({"pattern": "(?P<slot>\\w+) (?P<x>\\d+)"}, "no 'value' group"),
        ({"pattern": "(?P<amount>\\d+)", "slot": "x"}, "no 'value' group"),
        ({"pattern": "(?P<value>[a-"}, "invalid regular expression"),
    ],
)
def test_bad_extractors(extractor: dict, message: str) -> None:
    with pytest.raises(PolicyError, match=message) as info:
        run({"commitments": {"extractors": [extractor]}}, [])
    assert info.value.key == "metrics.commitments.extractors[0]"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({}, "metrics.commitments.extractors"),
        ({"extractors": []}, "metrics.commitments.extractors"),
        (
            {"extractors": [{"pattern": "(?P<v>x)", "scope": "tenant"}]},
            "metrics.commitments.extractors[0].scope",
        ),
        ({"extractors": [{"pattern": "(?P<v>x)", "regex": "y"}]}, "metrics.commitments.extractors[0].regex"),
        (
            {"extractors": [{"pattern": "(?P<v>x)"}], "on_violation": "redact"},
            "metrics.commitments.on_violation",
        ),
    ],
)
def test_bad_config(table: dict, key: str) -> None:
    with pytest.raises(PolicyError) as info:
        run({"commitments": table}, [])
    assert info.value.key == key, str(info.value)
