"""The Redis lineage store: a Stream of envelopes per conversation (entry id ``<seq>-0``) and a
head key ``<seq>:<digest>``, appended together by one Lua script after the head check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from aqcore.errors import LineageError
from aqcore.lineage.store import ChainHead, check_append

from . import scripts
from .client import RedisStore, decode
from .keys import chain_keys, chain_of, chain_scan_pattern

_PAGE = 128
_SCAN_COUNT = 1000


class RedisLineageStore(RedisStore):
    """:class:`aqcore.lineage.store.LineageStore` in Redis. A chain's stream and head share the
    conversation's hash tag, so the store works on Redis Cluster unchanged."""

    error = LineageError
    script_source = scripts.APPEND

    def append(self, chain: str, seq: int, prev: str, digest: str, envelope: bytes) -> None:
        """Store ``envelope`` as record ``seq`` and move the head, if the head is ``(seq-1, prev)``."""
        stream, head_key = chain_keys(chain)
        check_append(chain, seq, prev, digest, envelope)
        expected = "" if seq == 1 else f"{seq - 1}:{prev}"
        with self._io(f"append seq {seq} to chain {chain!r}"):
            done, current = self._run_script(
                keys=[stream, head_key], args=[str(seq), expected, f"{seq}:{digest}", digest, bytes(envelope)]
            )
        if int(done):
            return
        found = f"head {decode(current)}" if current else "no head"
        if seq == 1:
            raise LineageError(f"lineage chain {chain!r}: seq 1 refused, the chain already has {found}")
        raise LineageError(
            f"lineage chain {chain!r}: seq {seq} with prev {prev} refused, the store has {found}"
        )

    def head(self, chain: str) -> ChainHead | None:
        """The chain's head, or None."""
        _, head_key = chain_keys(chain)
        with self._io(f"read the head of {chain!r}"):
            raw = self._redis.get(head_key)
        if raw is None:
            return None
        seq, _, digest = decode(raw).partition(":")
        return ChainHead(int(seq), digest)

    def records(self, chain: str) -> Iterator[bytes]:
        """Every envelope of the chain, by sequence (read in pages with XRANGE)."""
        stream, _ = chain_keys(chain)
        start = "-"
        while True:
            with self._io(f"read the records of {chain!r}"):
                page = cast(
                    "list[tuple[bytes, dict[bytes, bytes]]]", self._redis.xrange(stream, start, "+", _PAGE)
                )
            for _, fields in page:
                yield fields[b"envelope"]
            if len(page) < _PAGE:
                return
            start = "(" + decode(page[-1][0])

    def chains(self, prefix: str = "") -> Iterator[str]:
        """Every chain whose name starts with ``prefix`` (SCAN over the head keys)."""
        seen: set[str] = set()
        with self._io(f"list chains under {prefix!r}"):
            for raw in self._redis.scan_iter(
                match=chain_scan_pattern(prefix), count=_SCAN_COUNT, _type="string"
            ):
                chain = chain_of(decode(raw))
                if chain is not None and chain.startswith(prefix) and chain not in seen:
                    seen.add(chain)
                    yield chain
