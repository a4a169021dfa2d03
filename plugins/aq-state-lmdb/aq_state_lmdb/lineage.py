"""The LMDB lineage store: each chain's envelopes keyed by sequence, and its head, written in one
transaction after the head check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aqcore.errors import LineageError
from aqcore.lineage.store import ChainHead, check_append
from aqcore.state.keys import check_chain

from . import codec, environment
from .options import parse_url

_PAGE = 64  # envelopes read per read transaction


class LmdbLineageStore:
    """:class:`aqcore.lineage.store.LineageStore` over the ``records`` and ``heads`` databases
    of an LMDB environment, shared with the state backend of the same URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._shared = environment.acquire(parse_url(url))
        self._closed = False

    def _run(self, fn: Any, *, write: bool, action: str) -> Any:
        if self._closed:
            raise LineageError(f"LMDB lineage store {self.url} is closed")
        return self._shared.run(fn, write=write, error=LineageError, action=action)

    def append(self, chain: str, seq: int, prev: str, digest: str, envelope: bytes) -> None:
        """Store ``envelope`` as record ``seq`` and move the head, if the head is ``(seq-1, prev)``."""
        c = check_chain(chain).encode()
        check_append(chain, seq, prev, digest, envelope)
        record = bytes(envelope)

        def put(txn: Any, dbs: dict[bytes, Any]) -> None:
            raw = txn.get(c, db=dbs[b"heads"])
            head = codec.decode_head(raw) if raw is not None else None
            if seq == 1 and head is not None:
                raise LineageError(
                    f"lineage chain {chain!r}: seq 1 refused, the chain already has head seq {head[0]}"
                )
            if seq > 1 and head != (seq - 1, prev):
                found = f"head seq {head[0]} digest {head[1]}" if head else "no head"
                raise LineageError(
                    f"lineage chain {chain!r}: seq {seq} with prev {prev} refused, the store has {found}"
                )
            if not txn.put(codec.record_key(c, seq), record, db=dbs[b"records"], overwrite=False):
                raise LineageError(f"lineage chain {chain!r}: record seq {seq} already exists without a head")
            txn.put(c, codec.encode_head(seq, digest), db=dbs[b"heads"])

        self._run(put, write=True, action=f"append to chain {chain!r}")

    def head(self, chain: str) -> ChainHead | None:
        """The chain's head, or None."""
        c = check_chain(chain).encode()
        raw = self._run(
            lambda txn, dbs: txn.get(c, db=dbs[b"heads"]), write=False, action=f"head of {chain!r}"
        )
        if raw is None:
            return None
        seq, digest = codec.decode_head(raw)
        return ChainHead(seq, digest)

    def records(self, chain: str) -> Iterator[bytes]:
        """Every envelope of the chain, by sequence."""
        prefix = check_chain(chain).encode() + b"\x00"
        start = prefix
        while True:
            page = self._run(
                lambda txn, dbs, start=start: _page(txn, dbs[b"records"], start, prefix),
                write=False,
                action=f"read records of {chain!r}",
            )
            yield from (value for _, value in page)
            if len(page) < _PAGE:
                return
            start = page[-1][0] + b"\x00"

    def chains(self, prefix: str = "") -> Iterator[str]:
        """Every chain whose name starts with ``prefix``."""
        start = prefix.encode()
        while True:
            page = self._run(
                lambda txn, dbs, start=start: _page(txn, dbs[b"heads"], start, prefix.encode(), values=False),
                write=False,
                action=f"list chains under {prefix!r}",
            )
            yield from (key.decode() for key, _ in page)
            if len(page) < _PAGE:
                return
            start = page[-1][0] + b"\x00"

    def close(self) -> None:
        """Release this store's share of the environment."""
        if not self._closed:
            self._closed = True
            environment.release(self._shared)


def _page(
    txn: Any, db: Any, start: bytes, prefix: bytes, *, values: bool = True
) -> list[tuple[bytes, bytes]]:
    found: list[tuple[bytes, bytes]] = []
    cursor = txn.cursor(db=db)
    if not cursor.set_range(start):
        return found
    for key, value in cursor.iternext(keys=True, values=True):
        if not key.startswith(prefix) or len(found) == _PAGE:
            break
        found.append((bytes(key), bytes(value) if values else b""))
    return found
