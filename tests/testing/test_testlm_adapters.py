"""NgramAdapter and NgramUnitAdapter honour the adapter protocols exactly."""

from __future__ import annotations

import numpy as np
import pytest

from aqcore.adapters import TokenAdapter, UnitAdapter, UnitRequest
from aqcore.errors import AdapterError
from aqcore.models import Message
from aqcore.testing import EOS_ID, NgramAdapter, NgramUnitAdapter, chat_prompt, default_model

MESSAGES = [
    Message(role="system", content="Be brief."),
    Message(role="user", content="Where is order A1234?"),
]


@pytest.fixture
def adapter() -> NgramAdapter:
    a = NgramAdapter()
    a.begin(MESSAGES)
    return a


def _greedy(adapter: NgramAdapter, n: int) -> list[np.ndarray]:
    """Accept ``n`` greedy tokens; the logits seen before each, copied."""
    seen = []
    for _ in range(n):
        logits = adapter.logits()
        seen.append(logits.copy())
        adapter.accept(int(np.argmax(logits)))
    seen.append(adapter.logits().copy())
    return seen


def test_protocol_and_identity() -> None:
    a = NgramAdapter()
    lm = default_model()
    assert isinstance(a, TokenAdapter)
    assert (a.granularity, a.name, a.model_name) == ("token", "test", "aq-test-ngram")
    assert a.model_digest == lm.digest
    assert a.vocab.size == lm.vocab_size
    assert a.vocab.eos_ids == frozenset({EOS_ID}) == a.vocab.special
    assert list(a.vocab.token_bytes) == list(lm.pieces)


def test_logits_are_the_model_log_probs_in_one_reused_buffer(adapter: NgramAdapter) -> None:
    lm = adapter.model
    prompt = lm.encode(chat_prompt(MESSAGES))
    first = adapter.logits()
    assert first.dtype == np.float32 and first.shape == (adapter.vocab.size,) and first.flags.writeable
    assert first.tobytes() == lm.log_probs(prompt).tobytes()
    token = int(np.argmax(first))
    adapter.accept(token)
    second = adapter.logits()
    assert second is first  # no new array per step
    assert second.tobytes() == lm.log_probs([*prompt, token]).tobytes()


def test_logits_are_computed_once_per_position(adapter: NgramAdapter) -> None:
    buf = adapter.logits()
    buf[:] = -np.inf  # the loop may write its masks into the view
    assert adapter.logits() is buf and np.isneginf(buf).all()
    adapter.accept(5)
    assert np.isfinite(adapter.logits()).all()


def test_accept_then_rollback_restores_bit_identical_logits(adapter: NgramAdapter) -> None:
    seen = _greedy(adapter, 12)
    generated = adapter.generated
    for k in (1, 3, 5):
        adapter.logits()[:] = 0.0  # scribbles of the loop must not survive a rollback
        adapter.rollback(k)
        assert adapter.generated == generated[: len(generated) - k]
        assert adapter.logits().tobytes() == seen[len(adapter.generated)].tobytes()
        # Re-decoding the same tokens returns to the same logits, too.
        for token in generated[len(adapter.generated) :]:
            adapter.accept(token)
        assert adapter.logits().tobytes() == seen[-1].tobytes()
    adapter.rollback(len(generated))
    assert adapter.logits().tobytes() == seen[0].tobytes()


def test_greedy_through_the_adapter_matches_the_model(adapter: NgramAdapter) -> None:
    tokens = []
    while len(tokens) < 80:
        token = int(np.argmax(adapter.logits()))
        if token in adapter.vocab.eos_ids:
            break
        adapter.accept(token)
        tokens.append(token)
    lm = adapter.model
    expected = lm.greedy(lm.encode(chat_prompt(MESSAGES)), 80)
    assert [*tokens, EOS_ID] == expected
    assert adapter.text == lm.decode(expected)


def test_rollback_beyond_the_generation_is_an_error(adapter: NgramAdapter) -> None:
    adapter.accept(10)
    adapter.accept(11)
    with pytest.raises(AdapterError, match=r"rollback\(3\).* 2 generated token"):
        adapter.rollback(3)
    with pytest.raises(AdapterError, match=r"rollback\(-1\)"):
        adapter.rollback(-1)
    with pytest.raises(AdapterError, match="needs an int"):
        adapter.rollback(1.0)  # type: ignore[arg-type]
    assert adapter.generated == (10, 11)
    adapter.rollback(0)
    adapter.begin(MESSAGES)  # a new generation: the previous one cannot be rolled back
    with pytest.raises(AdapterError, match=r"rollback\(1\).* 0 generated token"):
        adapter.rollback(1)


@pytest.mark.parametrize("bad", [-1, 10_000, 1.0, True, "3"])
def test_accept_rejects_non_ids(adapter: NgramAdapter, bad: object) -> None:
    with pytest.raises(AdapterError, match="accept"):
        adapter.accept(bad)  # type: ignore[arg-type]
    assert adapter.generated == ()


def test_accept_takes_numpy_ints(adapter: NgramAdapter) -> None:
    adapter.accept(np.int64(7))
    assert adapter.generated == (7,)


def test_calls_before_begin_or_after_close_are_errors() -> None:
    a = NgramAdapter()
    for call, args in (("logits", ()), ("accept", (1,)), ("rollback", (0,))):
        with pytest.raises(AdapterError, match=f"{call}\\(\\) before begin"):
            getattr(a, call)(*args)
    a.begin(MESSAGES)
    a.close()
    with pytest.raises(AdapterError, match="after close"):
        a.logits()
    with pytest.raises(AdapterError, match="after close"):
        a.begin(MESSAGES)


def _text(chunks: list[str]) -> str:
    return "".join(chunks)


def test_unit_adapter_streams_the_greedy_reply_in_chunks() -> None:
    units = NgramUnitAdapter(chunk_chars=6)
    lm = units.model
    assert isinstance(units, UnitAdapter)
    assert (units.granularity, units.name, units.model_digest) == ("unit", "test-units", lm.digest)
    chunks = list(units.stream(UnitRequest(messages=MESSAGES, max_tokens=80)))
    assert all(len(c) >= 6 for c in chunks[:-1]) and chunks[-1]
    assert _text(chunks) == lm.decode(lm.greedy(lm.encode(chat_prompt(MESSAGES)), 80))
    assert "<eos>" not in _text(chunks)


def test_unit_adapter_continues_after_the_prefix() -> None:
    units = NgramUnitAdapter()
    lm = units.model
    prefix = "I am sorry, but"
    text = _text(list(units.stream(UnitRequest(messages=MESSAGES, prefix=prefix, max_tokens=40))))
    assert text == lm.decode(lm.greedy(lm.encode(chat_prompt(MESSAGES) + prefix), 40))
    assert not text.startswith(prefix)


def test_unit_adapter_is_seeded_and_honours_temperature_and_max_tokens() -> None:
    units = NgramUnitAdapter()

    def run(seed: int | None, temperature: float = 1.0, max_tokens: int = 60) -> str:
        request = UnitRequest(messages=MESSAGES, seed=seed, temperature=temperature, max_tokens=max_tokens)
        return _text(list(units.stream(request)))

    assert run(3) == run(3)
    assert len({run(s) for s in range(6)}) > 1
    assert run(1, temperature=0.0) == run(2, temperature=0.0)
    assert run(3, max_tokens=0) == ""
    assert len(units.model.encode(run(4, max_tokens=5))) <= 5 + 1


def test_unit_adapter_rejects_bad_requests() -> None:
    units = NgramUnitAdapter()
    with pytest.raises(AdapterError, match="max_tokens must be >= 0"):
        units.stream(UnitRequest(messages=MESSAGES, max_tokens=-1))
    with pytest.raises(AdapterError, match="temperature must be >= 0"):
        units.stream(UnitRequest(messages=MESSAGES, temperature=-0.5))
    with pytest.raises(AdapterError, match="chunk_chars"):
        NgramUnitAdapter(chunk_chars=0)
    units.close()
    with pytest.raises(AdapterError, match="after close"):
        units.stream(UnitRequest(messages=MESSAGES))


def test_unit_adapter_takes_feedback() -> None:
    units = NgramUnitAdapter()
    request = UnitRequest(messages=MESSAGES, prefix="Thank you", feedback="Do not promise a refund.", seed=1)
    assert _text(list(units.stream(request)))
