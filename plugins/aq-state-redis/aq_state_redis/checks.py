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
