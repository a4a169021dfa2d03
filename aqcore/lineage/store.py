"""The lineage store protocol: append-only receipt chains, one per conversation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..errors import UsageError

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ChainHead:
    """The last record of a chain: its sequence number and sha256 (hex) of its payload."""

    seq: int
    digest: str


@runtime_checkable
class LineageStore(Protocol):
    """Where receipts live. ``chain`` is a conversation key ``<tenant>:<agent>:<conversation>``.

    ``append`` is atomic: it stores ``envelope`` as record ``seq`` and moves the head only if the
    current head has sequence ``seq - 1`` and digest ``prev`` (for ``seq == 1``: no head).
    Otherwise it raises :class:`aqcore.errors.LineageError` and stores nothing.
    """

    url: str

    def append(self, chain: str, seq: int, prev: str, digest: str, envelope: bytes) -> None:
        """Append one signed envelope (JSON bytes) whose payload hashes to ``digest``."""

    def head(self, chain: str) -> ChainHead | None:
        """The chain's head, or None for an empty chain."""

    def records(self, chain: str) -> Iterator[bytes]:
        """Every envelope of the chain in stored order."""

    def chains(self, prefix: str = "") -> Iterator[str]:
        """Every chain whose key starts with ``prefix``."""

    def close(self) -> None:
        """Release handles."""


def check_append(chain: str, seq: int, prev: str, digest: str, envelope: bytes) -> None:
    """What every store checks first in append: well-formed arguments, named in the error."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise UsageError(f"lineage chain {chain!r}: seq must be an integer >= 1, got {seq!r}")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise UsageError(f"lineage chain {chain!r} seq {seq}: digest must be 64 lowercase hex characters")
    if seq > 1 and (not isinstance(prev, str) or not _HEX64.fullmatch(prev)):
        raise UsageError(f"lineage chain {chain!r} seq {seq}: prev must be 64 lowercase hex characters")
    if not isinstance(envelope, bytes | bytearray | memoryview) or not envelope:
        raise UsageError(f"lineage chain {chain!r} seq {seq}: envelope must be non-empty bytes")
