"""Scripted adapters do exactly what the test says and record what the loop did."""

from __future__ import annotations

import numpy as np
import pytest

from aqcore.adapters import TokenAdapter, UnitAdapter, UnitRequest
from aqcore.errors import AdapterError
from aqcore.models import Message
from aqcore.testing import ScriptedAdapter, ScriptedUnitAdapter

MESSAGES = [Message(role="user", content="hi")]


def _greedy_text(adapter: ScriptedAdapter, limit: int = 50) -> str:
    adapter.begin(MESSAGES)
    for _ in range(limit):
        token = int(np.argmax(adapter.logits()))
        if token in adapter.vocab.eos_ids:
            break
        adapter.accept(token)
    return adapter.text


def test_from_pieces_forces_exact_text_across_token_boundaries() -> None:
    adapter = ScriptedAdapter.from_pieces(["Call ", "5", "55-01", "23 or ", "e", "mail ", "a@b", ".com"])
    assert isinstance(adapter, TokenAdapter)
    assert adapter.vocab.token_bytes[0] == b"<eos>" and adapter.vocab.eos_ids == frozenset({0})
    assert _greedy_text(adapter) == "Call 555-0123 or email a@b.com"
    assert adapter.accepted == list(range(1, 9))


def test_from_pieces_reuses_repeated_pieces_and_adds_extra() -> None:
    adapter = ScriptedAdapter.from_pieces(["ab", "ab", "c"], extra=["zz"])
    assert list(adapter.vocab.token_bytes) == [b"<eos>", b"ab", b"c", b"zz"]
    assert _greedy_text(adapter) == "ababc"
    assert adapter.token_id("zz") == 3
    with pytest.raises(AdapterError, match="not in the vocabulary"):
        adapter.token_id("nope")


def test_from_sequence_prefers_by_position_and_then_eos() -> None:
    vocab = [b"<eos>", b"a", b"b", b"c"]
    adapter = ScriptedAdapter.from_sequence(vocab, [1, 2, 3], eos=0)
    adapter.begin(MESSAGES)
    logits = adapter.logits()
    assert logits.tolist() == [0.0, 10.0, 0.0, 0.0]
    adapter.accept(3)  # the loop banned the scripted token and took another
    assert int(np.argmax(adapter.logits())) == 2  # the script carries on at position 1
    adapter.rollback(1)
    assert int(np.argmax(adapter.logits())) == 1
    for token in (1, 2, 3):
        adapter.accept(token)
    assert int(np.argmax(adapter.logits())) == 0
    assert adapter.rollbacks == [1]
    assert adapter.calls[0] == ("begin", MESSAGES)
    assert adapter.calls[1:] == [("accept", 3), ("rollback", 1), ("accept", 1), ("accept", 2), ("accept", 3)]


def test_mapping_scripts_fill_the_rest() -> None:
    adapter = ScriptedAdapter(["<e>", "x", "y"], lambda gen: {1: 2.5} if not gen else {0: 0.0}, fill=-50.0)
    adapter.begin(MESSAGES)
    assert adapter.logits().tolist() == [-50.0, 2.5, -50.0]
    adapter.accept(1)
    assert adapter.logits().tolist() == [0.0, -50.0, -50.0]
    default = ScriptedAdapter(["<e>", "x"], lambda gen: {1: 0.0})
    default.begin(MESSAGES)
    low = default.logits()[0]
    assert np.isfinite(low) and np.exp(low) == 0.0  # finite, but no probability mass


def test_script_runs_once_per_position_and_the_buffer_is_reused() -> None:
    adapter = ScriptedAdapter.from_sequence(["<e>", "x"], [1, 1])
    adapter.begin(MESSAGES)
    first = adapter.logits()
    assert adapter.logits() is first and adapter.script_calls == 1
    adapter.accept(1)
    assert adapter.logits() is first and adapter.script_calls == 2


def test_bad_scripts_and_vocabularies_are_errors() -> None:
    wrong_shape = ScriptedAdapter(["<e>", "x"], lambda gen: np.zeros(3))
    wrong_shape.begin(MESSAGES)
    with pytest.raises(AdapterError, match=r"shape \(3,\), expected \(2,\)"):
        wrong_shape.logits()
    wrong_id = ScriptedAdapter(["<e>", "x"], lambda gen: {7: 1.0})
    wrong_id.begin(MESSAGES)
    with pytest.raises(AdapterError, match=r"id 7, outside 0\.\.1"):
        wrong_id.logits()
    with pytest.raises(AdapterError, match="empty"):
        ScriptedAdapter([], lambda gen: {})
    with pytest.raises(AdapterError, match=r"bad: \[5\]"):
        ScriptedAdapter(["<e>", "x"], lambda gen: {}, eos=5)
    with pytest.raises(AdapterError, match=r"ids \[9\] are outside"):
        ScriptedAdapter.from_sequence(["<e>", "x"], [1, 9])


def test_scripted_rollback_errors_name_k_and_the_generated_count() -> None:
    adapter = ScriptedAdapter.from_pieces(["a", "b"])
    adapter.begin(MESSAGES)
    adapter.accept(1)
    with pytest.raises(AdapterError, match=r"rollback\(2\) but this generation has 1 generated token"):
        adapter.rollback(2)
    assert adapter.rollbacks == []
    adapter.close()
    assert adapter.closed and adapter.calls[-1] == ("close", None)


def test_unit_adapter_serves_each_response_once_and_records_requests() -> None:
    units = ScriptedUnitAdapter(["Your refund is $25.00. ", ["Sorry, ", "I cannot say."]], chunk_chars=5)
    assert isinstance(units, UnitAdapter)
    assert (units.granularity, units.name) == ("unit", "test-units")
    first = UnitRequest(messages=list(MESSAGES), seed=1)
    assert list(units.stream(first)) == ["Your ", "refun", "d is ", "$25.0", "0. "]
    second = UnitRequest(messages=MESSAGES, prefix="Your refund is ", feedback="no numbers")
    assert list(units.stream(second)) == ["Sorry, ", "I cannot say."]
    assert units.prefixes == ["", "Your refund is "]
    assert units.feedbacks == [None, "no numbers"]
    first.messages.append(Message(role="user", content="changed later"))
    assert units.requests[0].messages == MESSAGES  # recorded as it was when sent
    with pytest.raises(AdapterError, match=r"stream\(\) call 3 but only 2 response\(s\)"):
        units.stream(UnitRequest(messages=MESSAGES))


def test_unit_adapter_can_fail_mid_stream() -> None:
    units = ScriptedUnitAdapter([["Hello ", AdapterError("connection reset"), "never"]])
    stream = units.stream(UnitRequest(messages=MESSAGES))
    assert next(stream) == "Hello "
    with pytest.raises(AdapterError, match="connection reset"):
        next(stream)


def test_unit_adapter_bad_use() -> None:
    with pytest.raises(AdapterError, match="chunk_chars"):
        ScriptedUnitAdapter(["x"], chunk_chars=0)
    units = ScriptedUnitAdapter(["x"])
    units.close()
    with pytest.raises(AdapterError, match="after close"):
        units.stream(UnitRequest(messages=MESSAGES))
