"""The state backend protocol: versioned JSON documents with compare-and-set."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..errors import UsageError


@dataclass(frozen=True)
class Versioned:
    """A stored document and its version (version 0 means absent)."""

    version: int
    doc: dict[str, Any]


@runtime_checkable
class StateBackend(Protocol):
    """Where semantic state lives. Keys look like ``agent/<tenant>:<agent>`` or
    ``conversation/<tenant>:<agent>:<conversation>``; every key starts with its kind and then
    the tenant, so tenants never share a key.

    Backends raise :class:`aqcore.errors.StateUnavailable` when they cannot answer (down,
    timeout); anything else they raise is treated the same way by the runtime.

    The runtime runs each store operation on a worker thread so that it can give up on one
    that hangs. A backend whose calls do no I/O and cannot hang may say so with a class
    attribute ``blocking = False``; its calls then run on the caller's thread, which saves a
    thread hand-off (about 0.1 ms) per operation. Without the attribute a backend counts as
    blocking.
    """

    url: str

    def load(self, key: str) -> Versioned | None:
        """The document stored under ``key``, or None if there is none."""

    def compare_and_set(self, key: str, expected_version: int, doc: dict[str, Any]) -> bool:
        """Store ``doc`` with version ``expected_version + 1`` if the stored version is
        ``expected_version`` (0: the key must be absent). Return False on a version mismatch."""

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key starting with ``prefix``."""

    def close(self) -> None:
        """Release connections or handles."""


def check_version(key: str, expected_version: int) -> None:
    """What every backend checks first in compare_and_set."""
    if isinstance(expected_version, bool) or not isinstance(expected_version, int) or expected_version < 0:
        raise UsageError(f"expected_version for {key!r} must be an integer >= 0, got {expected_version!r}")
