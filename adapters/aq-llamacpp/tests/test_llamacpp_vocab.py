"""The vocabulary as bytes: sizes, EOS and special tokens from the GGUF, token bytes that
concatenate to llama.cpp's own detokenization, and the llguidance tokenizer built on it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from aqcore.models import Message

PROMPT = [Message(role="user", content="Write a short poem about the sea.")]


def _single_id(adapter: Any, text: str) -> int:
    ids = adapter.llama.tokenize(text.encode(), add_bos=False, special=True)
    assert len(ids) == 1, f"{text!r} is not one token: {ids}"
    return int(ids[0])


@pytest.mark.smollm2
def test_smollm2_vocabulary(smollm2: Any) -> None:
    vocab = smollm2.vocab
    assert vocab.size == 49152
    im_end, im_start, eot = (_single_id(smollm2, t) for t in ("<|im_end|>", "<|im_start|>", "<|endoftext|>"))
    assert {im_end, eot} <= vocab.eos_ids
    assert im_start not in vocab.eos_ids
    assert {im_end, im_start, eot} <= vocab.special
    assert all(vocab.token_bytes[i] == b"" for i in vocab.special)
    assert all(isinstance(b, bytes) for b in vocab.token_bytes)
    # GPT-2 style byte-level BPE: the leading-space marker becomes a real space.
    paris = smollm2.llama.tokenize(b" Paris", add_bos=False, special=False)
    assert b"".join(vocab.token_bytes[i] for i in paris) == b" Paris"
    newline = smollm2.llama.tokenize(b"\n", add_bos=False, special=False)
    assert [vocab.token_bytes[i] for i in newline] == [b"\n"]


@pytest.mark.smollm2
def test_generation_bytes_concatenate_to_llamacpps_detokenization(smollm2: Any, greedy: Any) -> None:
    for prompt in (PROMPT, [Message(role="user", content="List three French words with accents, é or è.")]):
        smollm2.begin(prompt)
        ids = greedy(smollm2, 40)
        assert len(ids) > 5
        joined = b"".join(smollm2.vocab.token_bytes[i] for i in ids)
        assert joined == smollm2.detokenize(ids)
        assert joined.decode("utf-8") == smollm2.text


@pytest.mark.smollm2
def test_every_token_matches_llamacpps_piece(smollm2: Any) -> None:
    # One llama_detokenize call per token over a slice of the vocabulary, plus the longest
    # pieces (llama-cpp-python's own Llama.detokenize loses pieces over 32 bytes).
    vocab = smollm2.vocab
    longest = sorted(range(vocab.size), key=lambda i: len(vocab.token_bytes[i]))[-20:]
    assert len(vocab.token_bytes[longest[-1]]) > 32
    for i in [*range(0, vocab.size, 97), *longest]:
        assert vocab.token_bytes[i] == smollm2.detokenize([i]), i


@pytest.mark.smollm2
def test_vocabulary_is_built_once_per_model(smollm2: Any) -> None:
    from aq_llamacpp.adapter import LlamaCppAdapter

    with LlamaCppAdapter("smollm2", n_ctx=128) as other:
        assert other.vocab is smollm2.vocab


@pytest.mark.smollm2
def test_llguidance_tokenizer_agrees_with_the_vocabulary(smollm2: Any) -> None:
    import llguidance
    from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

    tokenizer = smollm2.llguidance_tokenizer()
    assert smollm2.llguidance_tokenizer() is tokenizer, "built once per adapter"
    assert tokenizer.vocab_size == smollm2.vocab.size
    assert set(tokenizer.eos_tokens) == set(smollm2.vocab.eos_ids)
    text = "The sea is 42 miles wide."
    assert tokenizer.tokenize_str(text) == smollm2.llama.tokenize(text.encode(), add_bos=False, special=False)

    matcher = llguidance.LLMatcher(tokenizer, llguidance.LLMatcher.grammar_from_regex(r"[0-9]{1,3}"))
    assert not matcher.is_error(), matcher.get_error()
    mask = allocate_token_bitmask(1, tokenizer.vocab_size)
    fill_next_token_bitmask(matcher, mask)
    bits = np.unpackbits(mask.view(np.uint8), bitorder="little")[: tokenizer.vocab_size].astype(bool)
    allowed = np.flatnonzero(bits)
    assert {smollm2.vocab.token_bytes[i] for i in allowed} == {str(d).encode() for d in range(10)}


@pytest.mark.gemma
def test_gemma3_loads_with_a_262k_vocabulary(gemma3: Any, greedy: Any) -> None:
    vocab = gemma3.vocab
    assert vocab.size == 262144
    end_of_turn, eos = _single_id(gemma3, "<end_of_turn>"), _single_id(gemma3, "<eos>")
    assert {end_of_turn, eos} <= vocab.eos_ids
    assert {end_of_turn, eos} <= vocab.special
    # SentencePiece: "▁" is a real space, byte-fallback tokens are raw bytes.
    sea = gemma3.llama.tokenize(b" the sea", add_bos=False, special=False)
    assert b"".join(vocab.token_bytes[i] for i in sea) == b" the sea"
    assert gemma3.template.source == "llama.cpp built-in 'gemma'"
    prompt = gemma3.tokenize_prompt(PROMPT)
    assert prompt[0] == gemma3.llama.token_bos()
    gemma3.begin(PROMPT)
    assert gemma3.logits().shape == (262144,)
    ids = greedy(gemma3, 24)
    assert b"".join(vocab.token_bytes[i] for i in ids) == gemma3.detokenize(ids)
    before = gemma3.generated
    gemma3.rollback(5)
    assert greedy(gemma3, 5) == list(before[-5:])


@pytest.mark.gemma
def test_loading_is_silent_on_stderr_by_default(capfd: pytest.CaptureFixture[str]) -> None:
    from aq_llamacpp.adapter import LlamaCppAdapter

    # Gemma 3's sliding-window KV cache makes llama.cpp log while creating the context.
    with LlamaCppAdapter("gemma3-270m", n_ctx=256):
        pass
    assert capfd.readouterr().err == ""
