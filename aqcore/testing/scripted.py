"""Scripted adapters for exact loop tests: the test decides every logit or every text chunk, and
the adapter records what the loop did with it."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from ..adapters import UnitRequest, Vocabulary
from ..errors import AdapterError
from ..models import Message
from .base import TokenContextAdapter
from .tokenizer import EOS_PIECE

Script = Callable[[tuple[int, ...]], "np.ndarray | Sequence[float] | Mapping[int, float]"]
"""Logits for the next step given the ids generated so far: a full vector, or a mapping of
token id to logit where every other token gets the adapter's ``fill`` value."""

UnitResponse = str | Sequence["str | BaseException"]


def _as_bytes(piece: str | bytes) -> bytes:
    return piece.encode("utf-8") if isinstance(piece, str) else bytes(piece)


def _ids(value: int | Iterable[int]) -> frozenset[int]:
    return frozenset({value}) if isinstance(value, int) else frozenset(value)


class ScriptedAdapter(TokenContextAdapter):
    """A :class:`aqcore.adapters.TokenAdapter` whose logits come from ``script``.

    ``fill`` is the logit of tokens a mapping leaves out: very low but finite by default, so
    softmax, entropy and surprisal stay finite (pass ``-np.inf`` to exclude them outright).
    Every successful call is recorded in :attr:`calls`; :attr:`accepted` lists every accepted
    id in order (rolled-back ones included), :attr:`rollbacks` every ``k`` rolled back, and
    :attr:`script_calls` how often the script ran (once per position reached).
    """

    name = "test"

    def __init__(
        self,
        vocab: Sequence[str | bytes],
        script: Script,
        *,
        eos: int | Iterable[int] = 0,
        special: Iterable[int] | None = None,
        fill: float = -1e4,
        model_name: str = "scripted",
    ) -> None:
        pieces = tuple(_as_bytes(p) for p in vocab)
        if not pieces:
            raise AdapterError("ScriptedAdapter: the vocabulary is empty")
        eos_ids = _ids(eos)
        special_ids = eos_ids if special is None else frozenset(special)
        bad = sorted(i for i in eos_ids | special_ids if not 0 <= i < len(pieces))
        if not eos_ids or bad:
            raise AdapterError(
                f"ScriptedAdapter: eos/special ids must be non-empty ids in 0..{len(pieces) - 1} (bad: {bad})"
            )
        self.vocab = Vocabulary(token_bytes=pieces, eos_ids=eos_ids, special=special_ids)
        self.model_name = model_name
        listing = "\n".join(p.hex() for p in pieces)
        self.model_digest = hashlib.sha256(f"aq-scripted\n{listing}".encode()).hexdigest()
        self.script = script
        self.fill = float(fill)
        self.calls: list[tuple[str, Any]] = []
        self.accepted: list[int] = []
        self.rollbacks: list[int] = []
        self.script_calls = 0
        super().__init__()

    @classmethod
    def from_sequence(
        cls,
        vocab: Sequence[str | bytes],
        ids: Sequence[int],
        *,
        eos: int | Iterable[int] = 0,
        preferred: float = 10.0,
        other: float = 0.0,
        **kwargs: Any,
    ) -> ScriptedAdapter:
        """An adapter that strongly prefers ``ids`` and then EOS: at position ``n`` token
        ``ids[n]`` gets logit ``preferred`` and every other token ``other``. The preference goes
        by position, so after a rollback or a banned token the script picks up where it is."""
        eos_first = min(_ids(eos))
        size = len(vocab)
        bad = [i for i in ids if not 0 <= i < size]
        if bad:
            raise AdapterError(f"ScriptedAdapter.from_sequence: ids {bad} are outside 0..{size - 1}")
        sequence = tuple(ids)

        def script(generated: tuple[int, ...]) -> np.ndarray:
            n = len(generated)
            logits = np.full(size, other, dtype=np.float32)
            logits[sequence[n] if n < len(sequence) else eos_first] = preferred
            return logits

        return cls(vocab, script, eos=eos, **kwargs)

    @classmethod
    def from_pieces(
        cls, pieces: Sequence[str | bytes], *, extra: Sequence[str | bytes] = (), **kwargs: Any
    ) -> ScriptedAdapter:
        """An adapter that writes exactly ``pieces`` (one token each) then ``<eos>``: the
        vocabulary is ``<eos>`` (id 0) and the distinct pieces of ``pieces`` and ``extra``."""
        vocab: dict[bytes, int] = {EOS_PIECE: 0}
        for piece in (*pieces, *extra):
            vocab.setdefault(_as_bytes(piece), len(vocab))
        ids = [vocab[_as_bytes(p)] for p in pieces]
        return cls.from_sequence(list(vocab), ids, eos=0, **kwargs)

    def token_id(self, piece: str | bytes) -> int:
        """The id of ``piece`` (the first, where pieces repeat)."""
        try:
            return list(self.vocab.token_bytes).index(_as_bytes(piece))
        except ValueError:
            raise AdapterError(f"ScriptedAdapter: {piece!r} is not in the vocabulary") from None

    def begin(self, messages: list[Message]) -> None:
        super().begin(messages)
        self.calls.append(("begin", list(messages)))

    def accept(self, token_id: int) -> None:
        super().accept(token_id)
        self.calls.append(("accept", int(token_id)))
        self.accepted.append(int(token_id))

    def rollback(self, k: int) -> None:
        super().rollback(k)
        self.calls.append(("rollback", int(k)))
        self.rollbacks.append(int(k))

    def close(self) -> None:
        super().close()
        self.calls.append(("close", None))

    @property
    def closed(self) -> bool:
        return self._closed

    def _encode_prompt(self, messages: list[Message]) -> list[int]:
        return []  # the script sees only what was generated

    def _fill(self, out: np.ndarray) -> None:
        self.script_calls += 1
        result = self.script(self.generated)
        if isinstance(result, Mapping):
            out.fill(self.fill)
            for token, logit in result.items():
                if not 0 <= token < out.shape[0]:
                    raise AdapterError(
                        f"ScriptedAdapter: script gave a logit for id {token}, outside 0..{out.shape[0] - 1}"
                    )
                out[token] = logit
            return
        values = np.asarray(result, dtype=np.float32)
        if values.shape != out.shape:
            shapes = f"shape {values.shape}, expected {out.shape}"
            raise AdapterError(f"ScriptedAdapter: script returned logits of {shapes}")
        np.copyto(out, values)


class ScriptedUnitAdapter:
    """A :class:`aqcore.adapters.UnitAdapter` that answers each ``stream`` call with the next
    scripted response, so re-requests can get a different continuation.

    A response is a string (yielded in chunks of ``chunk_chars``) or a sequence of chunks
    yielded as given; an exception in that sequence is raised when reached (an API failing
    mid-stream). Each request is recorded, deep-copied, in :attr:`requests`. A ``stream``
    call beyond the scripted responses raises AdapterError.
    """

    granularity: Literal["unit"] = "unit"
    name = "test-units"

    def __init__(
        self,
        responses: Sequence[UnitResponse],
        *,
        chunk_chars: int = 5,
        model_name: str = "scripted-units",
    ) -> None:
        if chunk_chars < 1:
            raise AdapterError(f"ScriptedUnitAdapter: chunk_chars must be >= 1 (got {chunk_chars})")
        self.responses = list(responses)
        self.chunk_chars = chunk_chars
        self.model_name = model_name
        self.model_digest = hashlib.sha256(repr(self.responses).encode()).hexdigest()
        self.requests: list[UnitRequest] = []
        self.closed = False

    @property
    def prefixes(self) -> list[str]:
        return [r.prefix for r in self.requests]

    @property
    def feedbacks(self) -> list[str | None]:
        return [r.feedback for r in self.requests]

    def stream(self, request: UnitRequest) -> Iterator[str]:
        """Record ``request`` and return the chunks of the next scripted response."""
        if self.closed:
            raise AdapterError("ScriptedUnitAdapter: stream() after close()")
        call = len(self.requests) + 1
        if call > len(self.responses):
            raise AdapterError(
                f"ScriptedUnitAdapter: stream() call {call} but only {len(self.responses)} "
                f"response(s) were scripted (prefix {request.prefix!r})"
            )
        self.requests.append(copy.deepcopy(request))
        return self._chunks(self.responses[call - 1])

    def _chunks(self, response: UnitResponse) -> Iterator[str]:
        if isinstance(response, str):
            for start in range(0, len(response), self.chunk_chars):
                yield response[start : start + self.chunk_chars]
            return
        for chunk in response:
            if isinstance(chunk, BaseException):
                raise chunk
            yield chunk

    def close(self) -> None:
        """Mark the adapter closed; later ``stream`` calls raise AdapterError."""
        self.closed = True
