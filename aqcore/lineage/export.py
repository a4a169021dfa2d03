"""Export files (keyring + chain heads + envelopes, one JSON value per line) and reading any
lineage file: an export, a JSONL store file, or bare envelopes one per line."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LineageError
from .canonical import canonical_bytes
from .keys import Keyring
from .store import ChainHead, LineageStore


def _matches(conversation: str | None, chain: str) -> bool:
    return conversation is None or chain == conversation or chain.rsplit(":", 1)[-1] == conversation


def export_store(
    store: LineageStore, out: str | os.PathLike[str], keyring: Keyring, *, conversation: str | None = None
) -> int:
    """Write ``out``: first line ``{"heads": {chain: {"digest", "seq"}}, "keyring": {...}}``, then
    every envelope of every chain (chain by chain, in stored order), one per line, byte for byte
    as stored. Written to a temporary file and renamed into place. Returns the record count."""
    out = Path(out)
    chains = [c for c in store.chains() if _matches(conversation, c)]
    heads: dict[str, Any] = {}
    lines: list[bytes] = []
    for chain in chains:
        lines.extend(store.records(chain))
        head = store.head(chain)
        if head is not None:
            heads[chain] = {"seq": head.seq, "digest": head.digest}
    first = canonical_bytes({"keyring": keyring.to_dict(), "heads": heads})
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(first + b"\n")
            for envelope in lines:
                f.write(envelope + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except OSError as exc:
        raise LineageError(f"cannot write export {out}: {exc.strerror}") from None
    return len(lines)


@dataclass
class LineageFile:
    """What a lineage file holds: records as ``(stored chain or None, envelope bytes)``."""

    records: list[tuple[str | None, bytes]] = field(default_factory=list)
    keyring: Keyring | None = None
    heads: dict[str, ChainHead] = field(default_factory=dict)


def read_lineage_file(path: str | os.PathLike[str]) -> LineageFile:
    """Read an export file, a JSONL store file or a file of bare envelopes.

    Lines that cannot be understood are kept as records, so the verifier reports them at their
    position instead of this function raising.

    :raises LineageError: only if the file cannot be read or its keyring line is malformed.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise LineageError(f"cannot read lineage file {path}: {exc.strerror}") from None
    result = LineageFile()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, line in enumerate(lines):
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            obj = None
        if number == 0 and isinstance(obj, dict) and set(obj) == {"keyring", "heads"}:
            result.keyring = Keyring.from_dict(obj["keyring"], f"keyring in {path}")
            result.heads = _heads(obj["heads"], path)
            continue
        if isinstance(obj, dict) and "envelope" in obj and isinstance(obj["envelope"], str):
            chain = obj.get("chain")
            result.records.append(
                (chain if isinstance(chain, str) else None, obj["envelope"].encode("utf-8"))
            )
        else:
            result.records.append((None, line))
    return result


def _heads(obj: Any, path: str | os.PathLike[str]) -> dict[str, ChainHead]:
    if not isinstance(obj, dict):
        raise LineageError(f"heads in {path} must be an object")
    heads = {}
    for chain, head in obj.items():
        if (
            not isinstance(head, dict)
            or type(head.get("seq")) is not int
            or not isinstance(head.get("digest"), str)
        ):
            raise LineageError(f"head of chain {chain} in {path} must be {{seq: int, digest: hex}}")
        heads[chain] = ChainHead(head["seq"], head["digest"])
    return heads
