"""Stored forms: a state value is its version (8 bytes, big-endian) followed by the document as
compact UTF-8 JSON; a chain head is the sequence number (8 bytes) followed by the hex digest."""

from __future__ import annotations

import json
import re
import struct
from typing import Any

from aqcore.errors import UsageError

_U64 = struct.Struct(">Q")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def encode_doc(key: str, version: int, doc: dict[str, Any]) -> bytes:
    if not isinstance(doc, dict):
        raise UsageError(f"state document for {key!r} must be a JSON object, got {type(doc).__name__}")
    try:
        body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"state document for {key!r} is not JSON-serialisable: {exc}") from exc
    return _U64.pack(version) + body.encode()


def decode_doc(raw: bytes) -> tuple[int, dict[str, Any]]:
    return _U64.unpack_from(raw)[0], json.loads(raw[_U64.size :])


def version_of(raw: bytes | None) -> int:
    return 0 if raw is None else _U64.unpack_from(raw)[0]


def encode_head(seq: int, digest: str) -> bytes:
    return _U64.pack(seq) + digest.encode("ascii")


def decode_head(raw: bytes) -> tuple[int, str]:
    return _U64.unpack_from(raw)[0], raw[_U64.size :].decode("ascii")


def record_key(chain: bytes, seq: int) -> bytes:
    # NUL never occurs in a chain name, so one chain's records sort together, by sequence.
    return chain + b"\x00" + _U64.pack(seq)
