"""The test language model behind aq's two adapter protocols: ``test`` (token granularity, with
logits) and ``test-units`` (unit granularity, text only, like a closed chat API)."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import Literal

import numpy as np

from ..adapters import UnitRequest, Vocabulary
from ..errors import AdapterError
from ..models import Message
from .base import TokenContextAdapter, chat_prompt
from .ngram import NgramLM, default_model
from .scripted import ScriptedAdapter, ScriptedUnitAdapter
from .tokenizer import EOS_ID

__all__ = ["NgramAdapter", "NgramUnitAdapter", "ScriptedAdapter", "ScriptedUnitAdapter"]

DEFAULT_MODEL_NAME = "aq-test-ngram"


class NgramAdapter(TokenContextAdapter):
    """:class:`aqcore.adapters.TokenAdapter` over an :class:`NgramLM`; logits are the model's
    natural-log next-token probabilities (a proper distribution), id 0 is ``<eos>``."""

    name = "test"

    def __init__(self, model: NgramLM | None = None, model_name: str = DEFAULT_MODEL_NAME) -> None:
        self.model = model or default_model()
        self.model_name = model_name
        self.model_digest = self.model.digest
        eos = frozenset({EOS_ID})
        self.vocab = Vocabulary(token_bytes=self.model.pieces, eos_ids=eos, special=eos)
        super().__init__()

    def _encode_prompt(self, messages: list[Message]) -> list[int]:
        return self.model.encode(chat_prompt(messages))

    def _fill(self, out: np.ndarray) -> None:
        # The model reads two tokens of context; avoid joining prompt and generation every step.
        gen = self._generated
        last = gen[-2:] if len(gen) >= 2 else (self._prompt[-2:] + gen)[-2:]
        np.copyto(out, self.model.log_probs(last))


class NgramUnitAdapter:
    """:class:`aqcore.adapters.UnitAdapter` over an :class:`NgramLM`: text chunks of a few
    characters, sampled at ``request.temperature`` (greedy at 0) with a generator seeded from
    ``request.seed`` (fresh entropy when None), continuing after ``request.prefix``."""

    granularity: Literal["unit"] = "unit"
    name = "test-units"

    def __init__(
        self, model: NgramLM | None = None, model_name: str = DEFAULT_MODEL_NAME, chunk_chars: int = 6
    ) -> None:
        if chunk_chars < 1:
            raise AdapterError(f"{self.name}: chunk_chars must be >= 1 (got {chunk_chars})")
        self.model = model or default_model()
        self.model_name = model_name
        self.model_digest = self.model.digest
        self.chunk_chars = chunk_chars
        self._closed = False

    def stream(self, request: UnitRequest) -> Iterator[str]:
        """Yield the continuation of ``request.prefix`` in chunks; ends at EOS or
        ``request.max_tokens`` tokens. Feedback, if any, is added to the prompt as a system line."""
        if self._closed:
            raise AdapterError(f"{self.name}: stream() after close()")
        if request.max_tokens < 0:
            raise AdapterError(f"{self.name}: max_tokens must be >= 0 (got {request.max_tokens})")
        if request.temperature < 0:
            raise AdapterError(f"{self.name}: temperature must be >= 0 (got {request.temperature})")
        messages = list(request.messages)
        if request.feedback:
            messages.append(Message(role="system", content=request.feedback))
        context = self.model.encode(chat_prompt(messages) + request.prefix)
        rng = np.random.default_rng(request.seed)
        return self._chunks(context, rng, request.temperature, request.max_tokens)

    def _chunks(
        self, context: list[int], rng: np.random.Generator, temperature: float, max_tokens: int
    ) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        window = context[-2:]
        for _ in range(max_tokens):
            token = self.model.next_token(window, rng, temperature)
            if token == EOS_ID:
                break
            window = [*window[-1:], token]
            pending += decoder.decode(self.model.pieces[token])
            if len(pending) >= self.chunk_chars:
                yield pending
                pending = ""
        pending += decoder.decode(b"", final=True)
        if pending:
            yield pending

    def close(self) -> None:
        """Release the adapter; later ``stream`` calls raise AdapterError."""
        self._closed = True
