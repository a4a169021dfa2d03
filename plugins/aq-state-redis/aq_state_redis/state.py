"""The Redis state backend: one hash per key (``v`` version, ``d`` JSON document), written only
by a compare-and-set Lua script."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from redis.commands.core import Script

from aqcore.errors import StateUnavailable
from aqcore.state.backend import Versioned, check_version

from . import checks, scripts
from .client import Client, decode, make_client, translated
from .keys import state_key_of, state_scan_pattern, state_storage_key
from .options import parse_url

_SCAN_COUNT = 1000


class RedisStateBackend:
    """:class:`aqcore.state.backend.StateBackend` in Redis
    (``redis://host:6379/0?connect_timeout=0.2&timeout=0.5``).

    ``client`` replaces the client built from the URL (e.g. one configured for Sentinel).
    """

    def __init__(self, url: str, *, client: Client | None = None) -> None:
        self.url = url
        self._options = parse_url(url)
        # built on first use: a cluster client reads the slot map when it is built, and a
        # cluster that is down then must raise StateUnavailable from the call, not from opening
        self._client = client
        self._script: Script | None = None

    @property
    def _redis(self) -> Client:
        if self._client is None:
            self._client = make_client(self._options)
        return self._client

    def _cas(self, keys: list[str], args: list[Any]) -> Any:
        if self._script is None:
            self._script = self._redis.register_script(scripts.COMPARE_AND_SET)
        return self._script(keys=keys, args=args)

    def _io(self, action: str) -> Any:
        return translated(StateUnavailable, self._options.display, action)

    def load(self, key: str) -> Versioned | None:
        """The document stored under ``key``, or None."""
        storage = state_storage_key(key)
        with self._io(f"load {key!r}"):
            version, body = self._redis.hmget(storage, "v", "d")
        if version is None or body is None:
            return None
        return Versioned(int(version), json.loads(body))

    def compare_and_set(self, key: str, expected_version: int, doc: dict[str, Any]) -> bool:
        """Store ``doc`` as version ``expected_version + 1`` if ``expected_version`` is current."""
        check_version(key, expected_version)
        storage = state_storage_key(key)
        body = checks.encode_doc(key, doc)
        with self._io(f"compare-and-set {key!r}"):
            done = self._cas(keys=[storage], args=[str(expected_version), str(expected_version + 1), body])
        return bool(int(done))

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""
        storage = state_storage_key(key)
        with self._io(f"delete {key!r}"):
            return bool(self._redis.delete(storage))

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key starting with ``prefix`` (SCAN: no server-blocking KEYS; order unspecified;
        a key written during the scan may or may not appear)."""
        pattern = state_scan_pattern(prefix)
        seen: set[str] = set()
        with self._io(f"list keys under {prefix!r}"):
            for raw in self._redis.scan_iter(match=pattern, count=_SCAN_COUNT, _type="hash"):
                key = state_key_of(decode(raw))
                # SCAN may return a key twice when the keyspace is rehashed mid-scan
                if key is not None and key.startswith(prefix) and key not in seen:
                    seen.add(key)
                    yield key

    def close(self) -> None:
        """Close the connection pool (or every node's, on a cluster)."""
        if self._client is None:
            return
        with self._io("close"):
            self._client.close()
