"""The test LM's tokenizer: a real sub-word vocabulary that can encode any text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aqcore.testing import EOS_ID, EOS_PIECE, Tokenizer, bundled_text, default_model
from aqcore.testing.tokenizer import learn_pieces


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return default_model().tokenizer


def test_vocabulary_is_eos_bytes_and_learned_pieces(tok: Tokenizer) -> None:
    assert tok.pieces[EOS_ID] == EOS_PIECE
    assert tok.pieces[1:257] == tuple(bytes([b]) for b in range(256))
    assert 300 <= tok.size <= 600
    learned = tok.pieces[257:]
    assert all(len(p) > 1 for p in learned)
    assert len(set(tok.pieces)) == tok.size
    assert b" order" in learned and b" refund" in b"".join(learned)


def test_words_are_split_into_sub_word_tokens(tok: Tokenizer) -> None:
    ids = tok.encode("Your refund for order A1234 is $25.00.")
    assert EOS_ID not in ids
    pieces = [tok.pieces[i] for i in ids]
    assert b" order" in pieces
    # Rarer words and numbers span several tokens: the phrases a gate matches cross boundaries.
    assert len(tok.encode(" A1234")) > 1
    assert len(tok.encode(" patience")) > 1
    assert len(ids) < len("Your refund for order A1234 is $25.00.")


def test_greedy_longest_match(tok: Tokenizer) -> None:
    ids = tok.encode(" order")
    assert [tok.pieces[i] for i in ids] == [b" order"]


@settings(max_examples=300)
@given(st.text())
def test_any_unicode_text_round_trips(text: str) -> None:
    tok = default_model().tokenizer
    ids = tok.encode(text)
    assert all(0 < i < tok.size for i in ids)
    assert tok.decode(ids) == text


@settings(max_examples=200)
@given(st.binary())
def test_any_bytes_round_trip(data: bytes) -> None:
    tok = default_model().tokenizer
    assert tok.decode_bytes(tok.encode(data)) == data


def test_decode_skips_eos_and_replaces_cut_characters(tok: Tokenizer) -> None:
    ids = tok.encode("café")
    assert tok.decode([EOS_ID, *ids, EOS_ID]) == "café"
    assert tok.decode(tok.encode("é".encode()[:1])) == "\ufffd"


def test_learning_is_deterministic() -> None:
    text = bundled_text()
    assert learn_pieces(text, 300) == learn_pieces(text, 300)
    assert learn_pieces(text, 50) == learn_pieces(text, 300)[: 257 + 50]


def test_tokenizer_rejects_incomplete_vocabularies() -> None:
    with pytest.raises(ValueError, match="pieces\\[0\\]"):
        Tokenizer([b"x"])
    with pytest.raises(ValueError, match="lack 1 single bytes"):
        Tokenizer([EOS_PIECE, *(bytes([b]) for b in range(255))])
    with pytest.raises(ValueError, match="duplicate piece b'ab'"):
        Tokenizer([EOS_PIECE, *(bytes([b]) for b in range(256)), b"ab", b"ab"])


def test_every_public_name_resolves() -> None:
    import aqcore.testing

    for name in aqcore.testing.__all__:
        assert getattr(aqcore.testing, name) is not None
