"""The LMDB state backend: versioned JSON documents, compare-and-set in one write transaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aqcore.errors import StateUnavailable
from aqcore.state.backend import Versioned, check_version
from aqcore.state.keys import check_state_key

from . import codec, environment
from .options import parse_url

_PAGE = 256  # keys read per read transaction, so that no reader is held open across yields


class LmdbStateBackend:
    """:class:`aqcore.state.backend.StateBackend` over the ``state`` database of an LMDB
    environment (``lmdb:///dir?map_size=256MiB&sync=true``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._shared = environment.acquire(parse_url(url))
        self._closed = False

    @property
    def path(self) -> str:
        """The environment directory."""
        return self._shared.path

    def _run(self, fn: Any, *, write: bool, action: str) -> Any:
        if self._closed:
            raise StateUnavailable(f"LMDB state backend {self.url} is closed")
        return self._shared.run(fn, write=write, error=StateUnavailable, action=action)

    def load(self, key: str) -> Versioned | None:
        """The document stored under ``key``, or None."""
        k = check_state_key(key).encode()
        raw = self._run(lambda txn, dbs: txn.get(k, db=dbs[b"state"]), write=False, action=f"load {key!r}")
        if raw is None:
            return None
        version, doc = codec.decode_doc(raw)
        return Versioned(version, doc)

    def compare_and_set(self, key: str, expected_version: int, doc: dict[str, Any]) -> bool:
        """Store ``doc`` as version ``expected_version + 1`` if ``expected_version`` is current."""
        check_version(key, expected_version)
        k = check_state_key(key).encode()
        value = codec.encode_doc(key, expected_version + 1, doc)

        def cas(txn: Any, dbs: dict[bytes, Any]) -> bool:
            db = dbs[b"state"]
            if codec.version_of(txn.get(k, db=db)) != expected_version:
                return False
            txn.put(k, value, db=db)
            return True

        return bool(self._run(cas, write=True, action=f"compare-and-set {key!r}"))

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""
        k = check_state_key(key).encode()
        return bool(
            self._run(lambda txn, dbs: txn.delete(k, db=dbs[b"state"]), write=True, action=f"delete {key!r}")
        )

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key starting with ``prefix``, in byte order."""
        start = prefix.encode()
        while True:
            page = self._run(
                lambda txn, dbs, start=start: _page(txn, dbs[b"state"], start, prefix.encode()),
                write=False,
                action=f"list keys under {prefix!r}",
            )
            yield from (k.decode() for k in page)
            if len(page) < _PAGE:
                return
            start = page[-1] + b"\x00"

    def close(self) -> None:
        """Release this backend's share of the environment."""
        if not self._closed:
            self._closed = True
            environment.release(self._shared)


def _page(txn: Any, db: Any, start: bytes, prefix: bytes) -> list[bytes]:
    found: list[bytes] = []
    cursor = txn.cursor(db=db)
    if not cursor.set_range(start):
        return found
    for key in cursor.iternext(keys=True, values=False):
        if not key.startswith(prefix) or len(found) == _PAGE:
            break
        found.append(bytes(key))
    return found
