"""What the test token adapters share: the chat template, the decode context, accept/rollback
bookkeeping with typed errors, and a logits buffer computed once per position."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import numpy as np

from ..adapters import Vocabulary
from ..errors import AdapterError
from ..models import Message
from .ngram import REPLY_PREFIX


def chat_prompt(messages: list[Message]) -> str:
    """The test models' chat template: one ``role: content`` line per message, then the
    assistant's turn (``assistant: ``), which is also how every training reply starts."""
    lines = "".join(f"{m.role}: {' '.join(m.content.splitlines())}\n" for m in messages)
    return lines + REPLY_PREFIX


class TokenContextAdapter(ABC):
    """A token adapter over a context of ids: ``begin`` sets the prompt, ``accept`` and
    ``rollback`` move the generation, ``logits`` fills one reusable float32 buffer per position.

    Like llama.cpp's logits view, the buffer is the same array object at every step and the loop
    may write into it; after ``accept`` or ``rollback`` it is recomputed from the model.
    """

    granularity: Literal["token"] = "token"
    name: str
    model_name: str
    model_digest: str
    vocab: Vocabulary

    def __init__(self) -> None:
        self._prompt: list[int] = []
        self._generated: list[int] = []
        self._buffer = np.empty(self.vocab.size, dtype=np.float32)
        self._fresh = False
        self._begun = False
        self._closed = False

    @property
    def generated(self) -> tuple[int, ...]:
        """The ids accepted in this generation and not rolled back."""
        return tuple(self._generated)

    @property
    def text(self) -> str:
        """The text of :attr:`generated` (special tokens add nothing)."""
        special = self.vocab.special
        data = b"".join(self.vocab.token_bytes[i] for i in self._generated if i not in special)
        return data.decode("utf-8", errors="replace")

    def begin(self, messages: list[Message]) -> None:
        """Start a fresh generation after ``messages``."""
        self._check_open("begin")
        self._prompt = self._encode_prompt(messages)
        self._generated = []
        self._fresh = False
        self._begun = True

    def logits(self) -> np.ndarray:
        """The next-token logits, float32 of shape (vocab.size,): the same buffer every step."""
        self._check_ready("logits")
        if not self._fresh:
            self._fill(self._buffer)
            self._fresh = True
        return self._buffer

    def accept(self, token_id: int) -> None:
        """Commit ``token_id``; AdapterError when it is not an id of the vocabulary."""
        self._check_ready("accept")
        if isinstance(token_id, bool) or not isinstance(token_id, int | np.integer):
            raise AdapterError(f"{self.name}: accept() needs an int token id, got {type(token_id).__name__}")
        if not 0 <= token_id < self.vocab.size:
            last = self.vocab.size - 1
            raise AdapterError(f"{self.name}: accept({token_id}): token id out of range 0..{last}")
        self._generated.append(int(token_id))
        self._fresh = False

    def rollback(self, k: int) -> None:
        """Drop the last ``k`` accepted tokens; AdapterError when ``k`` is negative or larger
        than the number of tokens generated so far (the prompt cannot be rolled back)."""
        self._check_ready("rollback")
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise AdapterError(f"{self.name}: rollback() needs an int, got {type(k).__name__}")
        if not 0 <= k <= len(self._generated):
            raise AdapterError(
                f"{self.name}: rollback({k}) but this generation has {len(self._generated)} "
                f"generated token(s); k must be 0..{len(self._generated)}"
            )
        if k:
            del self._generated[-k:]
        self._fresh = False

    def close(self) -> None:
        """Release the adapter; any later call raises AdapterError."""
        self._closed = True

    @property
    def context(self) -> list[int]:
        """Prompt ids followed by generated ids."""
        return self._prompt + self._generated

    def _check_open(self, call: str) -> None:
        if self._closed:
            raise AdapterError(f"{self.name}: {call}() after close()")

    def _check_ready(self, call: str) -> None:
        self._check_open(call)
        if not self._begun:
            raise AdapterError(f"{self.name}: {call}() before begin()")

    @abstractmethod
    def _encode_prompt(self, messages: list[Message]) -> list[int]:
        """The prompt ids for ``messages``."""

    @abstractmethod
    def _fill(self, out: np.ndarray) -> None:
        """Write the logits after :attr:`context` into ``out``."""
