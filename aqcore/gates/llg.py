"""llguidance tokenizers built from an aq :class:`~aqcore.adapters.Vocabulary` (token
granularity) or over raw bytes (unit granularity), cached because building one for a 49k
vocabulary takes a noticeable fraction of a second."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

import llguidance

from ..adapters import Vocabulary

_LOCK = threading.Lock()
_CACHE: dict[int, tuple[weakref.ref[Vocabulary], llguidance.LLTokenizer]] = {}
_BYTES: llguidance.LLTokenizer | None = None


class _GreedyEncoder:
    """What llguidance's TokenizerWrapper needs from a tokenizer: ids, EOS and an encoder.

    aq only knows the vocabulary's bytes, not the model's merge rules, so text is encoded by
    greedy longest match. llguidance uses the encoder for grammar literals only; the masks it
    computes accept every tokenisation of the allowed text whatever the encoder returns.
    """

    def __init__(self, tokens: Sequence[bytes], eos: int, special: Sequence[int]) -> None:
        self.tokens = list(tokens)
        self.eos_token_id = eos
        self.bos_token_id = None
        self.special_token_ids = list(special)
        self._ids: dict[bytes, int] = {}
        special_set = set(special)
        for i, data in enumerate(tokens):
            if i not in special_set and data and data not in self._ids:
                self._ids[data] = i
        self._longest = max((len(b) for b in self._ids), default=1)

    def __call__(self, text: Any) -> list[int]:
        data = text if isinstance(text, bytes) else str(text).encode("utf-8")
        out: list[int] = []
        i = 0
        while i < len(data):
            for length in range(min(self._longest, len(data) - i), 0, -1):
                token = self._ids.get(data[i : i + length])
                if token is not None:
                    out.append(token)
                    i += length
                    break
            else:
                raise ValueError(f"byte {data[i]:#04x} has no token in this vocabulary")
        return out


def _build(tokens: Sequence[bytes], eos_ids: Sequence[int], special: Sequence[int]) -> llguidance.LLTokenizer:
    special_set = set(special) | set(eos_ids)
    # llguidance marks special tokens with a leading 0xFF byte (never valid UTF-8).
    marked = [
        b"\xff" + (data or f"<|special_{i}|>".encode()) if i in special_set else data
        for i, data in enumerate(tokens)
    ]
    encoder = _GreedyEncoder(marked, eos_ids[0], sorted(special_set))
    return llguidance.LLTokenizer(llguidance.TokenizerWrapper(encoder), eos_token=list(eos_ids))


def tokenizer_for(vocab: Vocabulary) -> llguidance.LLTokenizer:
    """The llguidance tokenizer of ``vocab`` (built once per vocabulary object)."""
    key = id(vocab)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached[0]() is vocab:
            return cached[1]
    if not vocab.eos_ids:
        raise ValueError("the vocabulary has no end-of-sequence token; a grammar needs one to end")
    tokenizer = _build(vocab.token_bytes, sorted(vocab.eos_ids), sorted(vocab.special))
    with _LOCK:
        _CACHE[key] = (weakref.ref(vocab), tokenizer)
    return tokenizer


def byte_tokenizer() -> llguidance.LLTokenizer:
    """A tokenizer whose tokens are the 256 bytes plus EOS (id 256): unit validation feeds
    text to a matcher byte by byte."""
    global _BYTES
    if _BYTES is None:
        _BYTES = _build([bytes([i]) for i in range(256)] + [b"<|eos|>"], [256], [256])
    return _BYTES
