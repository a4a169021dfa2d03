"""Every built-in metric through the real loop (runtime + scripted test adapters)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aqcore.errors import PolicyError
from aqcore.gates.normalize import normalize
from aqcore.testing.scripted import ScriptedAdapter, ScriptedUnitAdapter

HERE = Path(__file__).parent
REFUND = {
    "extractors": [{"pattern": r"refund of \$?(?P<value>\d[\d,]*(?:\.\d\d)?)", "slot": "refund_amount"}]
}


def gen(runtime, prompt: str = "hi", **kw):  # type: ignore[no-untyped-def]
    return runtime.generate(prompt, agent="a", conversation=kw.pop("conversation", "c"), **kw)


@pytest.mark.parametrize(
    "variant", ["wire the money", "WIRE\u200b the  MO\u00adNEY", "ｗｉｒｅ the mo\u0301ney"]
)
def test_deny_phrases(make_runtime, variant: str) -> None:  # type: ignore[no-untyped-def]
    pieces = ["Please ", *[variant[i : i + 2] for i in range(0, len(variant), 2)], " today."]
    runtime = make_runtime(
        ScriptedAdapter.from_pieces(pieces), {"metrics": {"deny_phrases": {"phrases": ["wire the money"]}}}
    )
    result = gen(runtime)
    assert "wire the money" not in normalize("".join(e.text for e in result.emissions))
    assert result.verdicts["deny_phrases"]["rollback"] >= 1


def test_pii_redacts_in_the_stream(make_runtime) -> None:  # type: ignore[no-untyped-def]
    pieces = ["Write ", "to ", "jo", "hn@ex", "ample", ".com", " or ", "call ", "555-", "123-", "4567", "."]
    runtime = make_runtime(ScriptedAdapter.from_pieces(pieces), {"metrics": {"pii": {}}})
    result = gen(runtime)
    released = "".join(e.text for e in result.emissions)
    assert released == "Write to [REDACTED:email] or call [REDACTED:phone]."
    assert result.verdicts["pii"]["redact"] == 2


def test_grounding_rolls_back_then_refuses(make_runtime) -> None:  # type: ignore[no-untyped-def]
    runtime = make_runtime(
        ScriptedAdapter.from_pieces(["You ", "get ", "99", "9 ", "back."]),
        {"max_rollbacks": 0, "refusal": "I cannot confirm that amount.", "metrics": {"grounding": {}}},
    )
    result = gen(runtime, sources=["The refund is 1250 dollars."])
    assert "999" not in result.text
    assert result.text.endswith("I cannot confirm that amount.")


def test_grounding_admits_sourced_numbers(make_runtime) -> None:  # type: ignore[no-untyped-def]
    runtime = make_runtime(
        ScriptedAdapter.from_pieces(["You ", "get ", "1,", "250", ".00 ", "back."]),
        {"metrics": {"grounding": {}}},
    )
    result = gen(runtime, sources=["The refund is 1250 dollars."])
    assert result.text == "You get 1,250.00 back."


def test_commitments_persist_across_invocations(make_runtime) -> None:  # type: ignore[no-untyped-def]
    policy = {"metrics": {"commitments": REFUND}}
    first = make_runtime(ScriptedAdapter.from_pieces(["A ", "refund of ", "$1,250", " is due."]), policy)
    result = gen(first)
    assert [(c.slot, c.value) for c in result.commitments] == [("refund_amount", "1250")]
    second = make_runtime(
        ScriptedAdapter.from_pieces(["A ", "refund of ", "$1,300", " is due."]), policy, store=first.store_url
    )
    contradicted = gen(second)
    assert "1,300" not in contradicted.text
    assert contradicted.verdicts["commitments"]["rollback"] >= 1


def test_commitments_hold_across_two_processes(tmp_path: Path) -> None:
    pytest.importorskip("aq_state_lmdb")
    store = f"lmdb:{tmp_path / 'state'}"
    env = {**os.environ, "AQ_HOME": str(tmp_path / "home"), "PYTHONPATH": os.pathsep.join(sys.path)}

    def worker(pieces: list[str]) -> dict:
        done = subprocess.run(
            [
                sys.executable,
                str(HERE / "loop_worker.py"),
                store,
                str(tmp_path / "journal"),
                json.dumps(pieces),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    first = worker(["We ", "issued a ", "refund of ", "$1,250", "."])
    assert first["state_status"] == "full"
    assert [(c["slot"], c["value"]) for c in first["commitments"]] == [("refund_amount", "1250")]
    second = worker(["Your ", "refund of ", "$2,000", " is on its way."])
    assert "2,000" not in second["text"]
    assert second["verdicts"]["commitments"]["rollback"] >= 1
    same = worker(["The ", "refund of ", "1250", " stands."])
    assert same["verdicts"] == {} and same["text"] == "The refund of 1250 stands."


def test_entropy_budget_ends_with_budget_exhausted(make_runtime) -> None:  # type: ignore[no-untyped-def]
    pieces = ["<eos>", "a", "b", "c", "d"]

    def script(generated: tuple[int, ...]) -> dict[int, float]:
        return {1: 2.0, 2: 1.5, 3: 1.0, 4: 0.5, 0: -2.0}  # each token costs ~1 nat

    adapter = ScriptedAdapter(pieces, script, eos=0, fill=-30.0)
    runtime = make_runtime(
        adapter, {"budgets": {"invocation": 5.0}, "max_tokens": 50, "metrics": {"entropy_budget": {}}}
    )
    result = gen(runtime, temperature=1.0, seed=7)
    assert result.finish_reason == "budget_exhausted"
    assert 0 < result.entropy_spent["invocation"] <= 5.0 + 1e-6
    assert 0 < len(result.text) < 50


def test_entropy_budget_spend_carries_over_the_conversation(make_runtime) -> None:  # type: ignore[no-untyped-def]
    adapter = ScriptedAdapter(["<eos>", "a", "b"], lambda g: {1: 1.0, 2: 1.0, 0: -5.0}, eos=0)
    runtime = make_runtime(
        adapter, {"budgets": {"conversation": 3.0}, "max_tokens": 20, "metrics": {"entropy_budget": {}}}
    )
    first = gen(runtime, temperature=1.0, seed=1)
    second = gen(runtime, temperature=1.0, seed=2)
    assert first.finish_reason == second.finish_reason == "budget_exhausted"
    assert len(first.text) == 4  # ln 2 ≈ 0.69 nats a token: four fit in 3 nats
    assert second.text == ""


def test_unit_adapter_with_every_text_metric(make_runtime) -> None:  # type: ignore[no-untyped-def]
    adapter = ScriptedUnitAdapter(["Order 48213 ships today. Mail me at a@b.io now. Wire the money. Bye."])
    runtime = make_runtime(
        adapter,
        {
            "metrics": {
                "pii": {},
                "deny_phrases": {"phrases": ["wire the money"], "on_violation": "redact"},
                "grounding": {},
                "commitments": REFUND,
            }
        },
    )
    result = gen(runtime, sources=["order 48213"])
    assert result.text == "Order 48213 ships today. Mail me at [REDACTED:email] now. [REDACTED]. Bye."


def test_unknown_metric_setting_names_the_key(make_runtime) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PolicyError) as info:
        make_runtime(ScriptedAdapter.from_pieces(["x"]), {"metrics": {"pii": {"kind": ["email"]}}})
    assert info.value.key == "metrics.pii.kind"


def test_redaction_keeps_the_pending_text_after_it_held(make_runtime) -> None:  # type: ignore[no-untyped-def]
    # The first token completes an email (redacted) and starts a phone number ("555-") that
    # pii holds back with the redact verdict; the second completes the phone number.
    runtime = make_runtime(
        ScriptedAdapter.from_pieces(["mail a@b.io 555-", "123-4567 end"]), {"metrics": {"pii": {}}}
    )
    result = gen(runtime)
    assert result.text == "mail [REDACTED:email] [REDACTED:phone] end"
