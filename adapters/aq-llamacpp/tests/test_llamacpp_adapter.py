"""The adapter on the real SmolLM2: zero-copy logits, greedy decoding equal to llama.cpp's own,
KV-cache rollback with bit-identical logits, prompt prefix reuse, and every error path."""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import pytest

from aqcore.adapters import TokenAdapter
from aqcore.errors import AdapterError, UsageError
from aqcore.models import Message

PROMPT = [Message(role="user", content="Write a short poem about the sea.")]

pytestmark = pytest.mark.smollm2


def test_is_a_token_adapter(smollm2: Any) -> None:
    assert isinstance(smollm2, TokenAdapter)
    assert smollm2.granularity == "token"
    assert smollm2.name == "llamacpp"
    assert smollm2.model_name == "smollm2"
    assert len(smollm2.model_digest) == 64 and int(smollm2.model_digest, 16) >= 0


def test_logits_are_a_zero_copy_view_of_llamacpps_buffer(smollm2: Any) -> None:
    import llama_cpp

    smollm2.begin(PROMPT)
    view = smollm2.logits()
    assert view.dtype == np.float32 and view.shape == (49152,)
    assert not view.flags.owndata
    pointer = llama_cpp.llama_get_logits_ith(smollm2.llama.ctx, -1)
    assert view.ctypes.data == ctypes.cast(pointer, ctypes.c_void_p).value
    assert np.shares_memory(view, np.ctypeslib.as_array(pointer, shape=(49152,)))
    # The same array is live across steps: llama.cpp writes the next logits into it.
    before = view.copy()
    smollm2.accept(int(np.argmax(view)))
    assert smollm2.logits() is view
    assert not np.array_equal(before, view)


def test_greedy_loop_equals_llamacpps_own_greedy_completion(smollm2: Any, greedy: Any) -> None:
    import llama_cpp

    prompt_ids = smollm2.tokenize_prompt(PROMPT)
    smollm2.begin(PROMPT)
    ours = greedy(smollm2, 24)
    reference = llama_cpp.Llama(model_path=str(smollm2.resolved.path), n_ctx=1024, verbose=False)
    try:
        out = reference.create_completion(prompt_ids, max_tokens=len(ours), temperature=0.0, top_k=1)
    finally:
        reference.close()
    assert len(ours) == 24
    assert smollm2.detokenize(ours).decode("utf-8") == out["choices"][0]["text"]


def test_greedy_decoding_is_reproducible(smollm2: Any, greedy: Any) -> None:
    smollm2.begin(PROMPT)
    first = greedy(smollm2, 16)
    first_logits = smollm2.logits().copy()
    smollm2.begin(PROMPT)
    assert greedy(smollm2, 16) == first
    assert np.array_equal(smollm2.logits(), first_logits)


@pytest.mark.parametrize("k", [1, 3, 8])
def test_rollback_then_redecode_gives_the_same_tokens_and_identical_logits(
    smollm2: Any, greedy: Any, k: int
) -> None:
    smollm2.begin(PROMPT)
    ids: list[int] = []
    logits: list[np.ndarray] = []
    for _ in range(12):
        row = smollm2.logits()
        logits.append(row.copy())
        ids.append(int(np.argmax(row)))
        smollm2.accept(ids[-1])
    smollm2.rollback(k)
    assert smollm2.generated == tuple(ids[: 12 - k])
    np.testing.assert_array_equal(smollm2.logits(), logits[12 - k])
    for step in range(12 - k, 12):
        row = smollm2.logits()
        np.testing.assert_array_equal(row, logits[step])  # bit-identical, not just close
        token = int(np.argmax(row))
        assert token == ids[step]
        smollm2.accept(token)
    assert smollm2.generated == tuple(ids)


def test_rollback_of_everything_returns_to_the_prompt_logits(smollm2: Any, greedy: Any) -> None:
    smollm2.begin(PROMPT)
    at_prompt = smollm2.logits().copy()
    produced = greedy(smollm2, 5)
    smollm2.rollback(len(produced))
    assert smollm2.generated == ()
    np.testing.assert_array_equal(smollm2.logits(), at_prompt)


def test_rollback_zero_keeps_the_tokens_and_restores_masked_logits(smollm2: Any, greedy: Any) -> None:
    smollm2.begin(PROMPT)
    greedy(smollm2, 3)
    before = (smollm2.generated, smollm2.logits().copy())
    smollm2.logits()[:1000] = -np.inf  # the loop may mask in place
    smollm2.rollback(0)
    assert smollm2.generated == before[0]
    np.testing.assert_array_equal(smollm2.logits(), before[1])


def test_rollback_beyond_the_generation_is_an_error(smollm2: Any, greedy: Any) -> None:
    smollm2.begin(PROMPT)
    greedy(smollm2, 2)
    with pytest.raises(AdapterError, match=r"rollback\(3\).*2 generated token"):
        smollm2.rollback(3)
    with pytest.raises(AdapterError, match=r"rollback\(-1\)"):
        smollm2.rollback(-1)
    with pytest.raises(AdapterError, match="needs an int"):
        smollm2.rollback(1.0)  # type: ignore[arg-type]
    with pytest.raises(AdapterError, match="needs an int"):
        smollm2.rollback(True)
    assert len(smollm2.generated) == 2, "a refused rollback leaves the context alone"


def test_begin_starts_a_new_generation(smollm2: Any, greedy: Any) -> None:
    smollm2.begin(PROMPT)
    greedy(smollm2, 4)
    smollm2.begin([Message(role="user", content="Say hello.")])
    assert smollm2.generated == ()
    with pytest.raises(AdapterError, match="0 generated"):
        smollm2.rollback(1)


def test_accept_rejects_ids_outside_the_vocabulary(smollm2: Any) -> None:
    smollm2.begin(PROMPT)
    for bad in (-1, 49152):
        with pytest.raises(AdapterError, match=r"out of range 0\.\.49151"):
            smollm2.accept(bad)
    with pytest.raises(AdapterError, match="needs an int"):
        smollm2.accept("12")  # type: ignore[arg-type]
    with pytest.raises(AdapterError, match="needs an int"):
        smollm2.accept(False)
    smollm2.accept(np.int64(12))  # numpy ids from argmax are fine
    assert smollm2.generated == (12,)


def test_multi_turn_prompt_reuses_the_prompt_prefix_with_identical_logits(smollm2: Any, greedy: Any) -> None:
    first_prompt = smollm2.tokenize_prompt(PROMPT)
    smollm2.begin(PROMPT)
    reply = smollm2.detokenize(greedy(smollm2, 10)).decode("utf-8")
    turn2 = [*PROMPT, Message(role="assistant", content=reply), Message(role="user", content="Shorter.")]
    ids = smollm2.tokenize_prompt(turn2)
    assert ids[: len(first_prompt)] == first_prompt
    # Only the previous prompt is reused, not the reply decoded token by token: llama.cpp's
    # single-token KV entries differ slightly from batched ones.
    assert smollm2._ctx.evaluate(ids) == len(first_prompt)
    reused = smollm2.logits().copy()
    smollm2._ctx.evaluate(ids, reuse_prefix=False)  # the same prompt in a fresh context
    np.testing.assert_array_equal(smollm2.logits(), reused)
    smollm2.begin(turn2)
    assert smollm2.generated == ()
    np.testing.assert_array_equal(smollm2.logits(), reused)


def test_calls_before_begin_and_after_close_are_errors(greedy: Any) -> None:
    from aq_llamacpp.adapter import LlamaCppAdapter

    adapter = LlamaCppAdapter("smollm2", n_ctx=128)
    for call, args in (("logits", ()), ("accept", (1,)), ("rollback", (0,))):
        with pytest.raises(AdapterError, match=rf"{call}\(\) before begin\(\)"):
            getattr(adapter, call)(*args)
    with pytest.raises(AdapterError, match="at least one message"):
        adapter.begin([])
    adapter.close()
    adapter.close()  # idempotent
    with pytest.raises(AdapterError, match=r"begin\(\) after close\(\)"):
        adapter.begin(PROMPT)
    with pytest.raises(AdapterError, match=r"logits\(\) after close\(\)|before begin"):
        adapter.logits()


def test_context_limits_are_errors_not_crashes(greedy: Any) -> None:
    from aq_llamacpp.adapter import LlamaCppAdapter

    with LlamaCppAdapter("smollm2", n_ctx=64) as adapter:
        n_ctx = adapter.n_ctx  # llama.cpp may round the size up
        assert n_ctx >= 64
        with pytest.raises(AdapterError, match=rf"prompt is \d+ tokens, the context holds {n_ctx}"):
            adapter.begin([Message(role="user", content="word " * n_ctx)])
        adapter.begin([Message(role="user", content="Count to one thousand.")])
        with pytest.raises(AdapterError, match="context is full"):
            for _ in range(n_ctx):
                adapter.accept(int(np.argmax(adapter.logits())))
        # Rolling back frees room: the adapter keeps working.
        adapter.rollback(4)
        adapter.accept(int(np.argmax(adapter.logits())))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"n_ctxx": 10}, r"unknown option\(s\) n_ctxx; accepted: n_ctx"),
        ({"n_ctx": "big"}, "n_ctx must be an integer"),
        ({"n_ctx": 4}, "n_ctx must be >= 16"),
        ({"n_gpu_layers": -2}, "n_gpu_layers must be >= -1"),
        ({"n_threads": 1.5}, "n_threads must be an integer"),
        ({"verbose": "maybe"}, "verbose must be true or false"),
        ({"chat_template": 3}, "chat_template must be a string"),
    ],
)
def test_bad_options_are_usage_errors(options: dict[str, Any], match: str) -> None:
    from aq_llamacpp.adapter import LlamaCppAdapter

    with pytest.raises(UsageError, match=match):
        LlamaCppAdapter("smollm2", **options)


def test_options_from_the_command_line_are_coerced() -> None:
    from aq_llamacpp.adapter import LlamaCppOptions

    options = LlamaCppOptions.from_mapping({"n_ctx": "4096", "n_gpu_layers": "-1", "verbose": "false"})
    assert (options.n_ctx, options.n_gpu_layers, options.verbose) == (4096, -1, False)


def test_a_file_that_is_not_a_model_is_an_adapter_error(tmp_path: Any, monkeypatch: Any) -> None:
    from aq_llamacpp.adapter import LlamaCppAdapter

    monkeypatch.setenv("AQ_CACHE_DIR", str(tmp_path / "cache"))
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"this is not a gguf file")
    with pytest.raises(AdapterError, match=r"cannot load model .*bogus\.gguf"):
        LlamaCppAdapter(str(bogus))


def test_chat_template_override(smollm2: Any) -> None:
    from aq_llamacpp.adapter import LlamaCppAdapter

    with LlamaCppAdapter("smollm2", n_ctx=128, chat_template="{{ messages[0].content }}|") as plain:
        assert plain.template.source == "option chat_template"
        assert plain.template.render(PROMPT) == "Write a short poem about the sea.|"
    with LlamaCppAdapter("smollm2", n_ctx=128, chat_template="zephyr") as builtin:
        assert builtin.template.render(PROMPT).startswith("<|user|>")
    with pytest.raises(AdapterError, match="does not compile"):
        LlamaCppAdapter("smollm2", n_ctx=128, chat_template="{% if %}")


def test_template_errors_are_adapter_errors() -> None:
    from aq_llamacpp.adapter import LlamaCppAdapter

    failing = "{{ raise_exception('only user turns here') }}"
    with LlamaCppAdapter("smollm2", n_ctx=128, chat_template=failing) as adapter:
        with pytest.raises(AdapterError, match="only user turns here"):
            adapter.begin(PROMPT)
