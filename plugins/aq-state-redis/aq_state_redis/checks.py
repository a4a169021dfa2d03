"""Argument checks shared by the state backend and the lineage store."""

from __future__ import annotations

import json
import re
from typing import Any

from aqcore.errors import UsageError

_HEX64 = re.compile(r"[0-9a-f]{64}")


def encode_doc(key: str, doc: dict[str, Any]) -> bytes:
    """``doc`` as compact UTF-8 JSON, or :class:`UsageError` naming the key."""
    if not isinstance(doc, dict):
        raise UsageError(f"state document for {key!r} must be a JSON object, got {type(doc).__name__}")
    try:
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise UsageError(f"state document for {key!r} is not JSON-serialisable: {exc}") from exc


def check_version(key: str, expected_version: int) -> None:
    if isinstance(expected_version, bool) or not isinstance(expected_version, int) or expected_version < 0:
        raise UsageError(f"expected_version for {key!r} must be an integer >= 0, got {expected_version!r}")


def check_append(chain: str, seq: int, prev: str, digest: str, envelope: bytes) -> None:
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise UsageError(f"lineage chain {chain!r}: seq must be an integer >= 1, got {seq!r}")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise UsageError(f"lineage chain {chain!r} seq {seq}: digest must be 64 lowercase hex characters")
    if seq > 1 and (not isinstance(prev, str) or not _HEX64.fullmatch(prev)):
        raise UsageError(f"lineage chain {chain!r} seq {seq}: prev must be 64 lowercase hex characters")
    if not isinstance(envelope, bytes | bytearray | memoryview) or not envelope:
        raise UsageError(f"lineage chain {chain!r} seq {seq}: envelope must be non-empty bytes")
