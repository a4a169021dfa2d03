"""A llama.cpp vocabulary as aq's :class:`~aqcore.adapters.Vocabulary` (token bytes, EOS ids,
special tokens), built once per model file and cached in the process."""

from __future__ import annotations

import ctypes
import threading
from typing import Any

from aqcore.adapters import Vocabulary
from aqcore.errors import AdapterError

__all__ = ["build_vocabulary", "cached_vocabulary"]

_CACHE: dict[str, Vocabulary] = {}
_LOCK = threading.Lock()


def cached_vocabulary(llama_cpp: Any, vocab: Any, model_digest: str) -> Vocabulary:
    """The vocabulary of the model whose file has sha256 ``model_digest``, built on first use.

    Keyed by the file digest, so every adapter instance on the same model shares one copy.
    """
    with _LOCK:
        cached = _CACHE.get(model_digest)
        if cached is None:
            cached = _CACHE[model_digest] = build_vocabulary(llama_cpp, vocab)
        return cached


def build_vocabulary(llama_cpp: Any, vocab: Any) -> Vocabulary:
    """Read every token's bytes, the end-of-generation ids and the special tokens from ``vocab``
    (a ``llama_vocab_p``).

    Token bytes come from ``llama_token_to_piece`` with ``special=False`` and no left strip:
    exactly what llama.cpp's detokenizer writes for that token in the middle of a text, so the
    bytes of a generation concatenate to its detokenized text (SentencePiece's ``▁`` becomes a
    real space, byte tokens such as ``<0x0A>`` become the raw byte). Control and unknown tokens
    write nothing and are listed in ``special``. ``eos_ids`` is every id llama.cpp treats as an
    end of generation (EOS, EOT and end-of-turn tokens such as ``<|im_end|>`` or
    ``<end_of_turn>``).
    """
    n_tokens = int(llama_cpp.llama_vocab_n_tokens(vocab))
    if n_tokens <= 0:
        raise AdapterError(f"llamacpp: the model reports an empty vocabulary ({n_tokens} tokens)")
    to_piece = llama_cpp.llama_token_to_piece
    get_attr = llama_cpp.llama_vocab_get_attr
    is_eog = llama_cpp.llama_vocab_is_eog
    hidden = int(llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN)
    size = 256
    buf = ctypes.create_string_buffer(size)
    token_bytes: list[bytes] = [b""] * n_tokens
    special: list[int] = []
    eos: list[int] = []
    for token in range(n_tokens):
        n = to_piece(vocab, token, buf, size, 0, False)
        if n < 0:
            # A negative count is the size the piece needs.
            size = -n + 1
            buf = ctypes.create_string_buffer(size)
            n = to_piece(vocab, token, buf, size, 0, False)
            if n < 0:
                raise AdapterError(
                    f"llamacpp: cannot read the text of token {token} (llama.cpp returned {n})"
                )
        token_bytes[token] = buf.raw[:n]
        if get_attr(vocab, token) & hidden:
            special.append(token)
        if is_eog(vocab, token):
            eos.append(token)
    if not eos:
        raise AdapterError("llamacpp: the model's vocabulary has no end-of-generation token")
    return Vocabulary(token_bytes=tuple(token_bytes), eos_ids=frozenset(eos), special=frozenset(special))
