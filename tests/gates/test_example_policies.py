"""The example policies load, their degraded profiles apply, and they govern a real loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from aqcore.gates.builtin import BUILTIN_METRICS
from aqcore.policy import load_policy
from aqcore.testing.scripted import ScriptedAdapter

POLICIES = Path(__file__).parents[2] / "examples" / "policies"
METRICS = {m.name: m for m in BUILTIN_METRICS}


@pytest.mark.parametrize("name", ["support-agent", "creative-writer"])
def test_policy_validates(name: str) -> None:
    policy = load_policy(POLICIES / f"{name}.toml", METRICS)
    assert policy.name == name
    assert "deny_phrases" in policy.metrics and "entropy_budget" in policy.metrics
    degraded = policy.degraded_policy(METRICS)
    assert degraded.budgets.invocation is not None
    assert degraded.budgets.invocation < (policy.budgets.invocation or float("inf"))


def test_support_agent_degraded_profile_is_stricter() -> None:
    policy = load_policy(POLICIES / "support-agent.toml", METRICS)
    degraded = policy.degraded_policy(METRICS)
    assert policy.metrics["pii"].on_violation == "redact"  # type: ignore[attr-defined]
    assert degraded.metrics["pii"].on_violation == "rollback"  # type: ignore[attr-defined]
    assert degraded.metrics["grounding"].min_digits == 1  # type: ignore[attr-defined]
    assert degraded.max_tokens == 128


def test_support_agent_governs_a_reply(make_runtime) -> None:  # type: ignore[no-untyped-def]
    policy = load_policy(POLICIES / "support-agent.toml", METRICS)
    pieces = [
        "Your ", "order ", "AB-", "48213", " gets a ", "refund of ", "$1,", "250.00", ". ",
        "Questions: ", "help@", "shop.example", ".com", ". No need to ", "wire the ", "money", ".",
    ]
    runtime = make_runtime(ScriptedAdapter.from_pieces(pieces), policy.raw)
    result = runtime.generate(
        "Where is my refund for order AB-48213?", agent="support", conversation="t1",
        sources=["Order AB-48213: refund approved, 1250.00 USD."],
    )
    expected = "Your order AB-48213 gets a refund of $1,250.00. Questions: [REDACTED:email]"
    assert result.text.startswith(expected)
    assert "wire the money" not in result.text
    made = {(c.slot, c.value) for c in result.commitments}
    assert made == {("refund_amount", "1250"), ("order_id", "ab-48213")}
