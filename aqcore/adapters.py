"""What an adapter provides to the loop. Full prose in docs/adapters.md."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from .models import Message

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Vocabulary:
    """A model's vocabulary as bytes, so metrics reason about text, not one model's ids.

    ``token_bytes[i]`` is what token ``i`` adds to the output; special tokens (control tokens
    such as ``<|im_end|>``) are listed in ``special`` and add nothing to the text.
    """

    token_bytes: Sequence[bytes]
    eos_ids: frozenset[int]
    special: frozenset[int] = field(default_factory=frozenset)

    @property
    def size(self) -> int:
        return len(self.token_bytes)


@runtime_checkable
class TokenAdapter(Protocol):
    """A model that exposes logits: aq drives the decode loop token by token."""

    granularity: Literal["token"]
    name: str
    model_name: str
    model_digest: str
    vocab: Vocabulary

    def begin(self, messages: list[Message]) -> None:
        """Apply the chat template to ``messages`` and evaluate the prompt (fresh context)."""

    def logits(self) -> np.ndarray:
        """The next-token logits as a float32 view of shape (vocab.size,), valid until the next
        ``accept`` or ``rollback``. Must not copy per step; the loop never writes into it."""

    def accept(self, token_id: int) -> None:
        """Commit ``token_id`` to the context and advance."""

    def rollback(self, k: int) -> None:
        """Drop the last ``k`` accepted tokens of this generation from the context."""

    def close(self) -> None:
        """Release the model's resources."""


@dataclass
class UnitRequest:
    """What the unit loop asks a closed API for: a continuation after ``prefix``."""

    messages: list[Message]
    prefix: str = ""
    feedback: str | None = None
    seed: int | None = None
    temperature: float = 0.0
    max_tokens: int = 256
    options: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class UnitAdapter(Protocol):
    """A model that gives text only (closed chat APIs): aq judges whole output units."""

    granularity: Literal["unit"]
    name: str
    model_name: str
    model_digest: str

    def stream(self, request: UnitRequest) -> Iterator[str]:
        """Yield text chunks of the continuation of ``request.prefix``. The loop cuts units."""

    def close(self) -> None:
        """Release connections."""


Adapter = TokenAdapter | UnitAdapter
