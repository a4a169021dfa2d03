"""The Redis state backend: one hash per key (``v`` version, ``d`` JSON document), written only
by a compare-and-set Lua script."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from aqcore.errors import StateUnavailable
from aqcore.state.backend import Versioned, check_version

from . import checks, scripts
from .client import RedisStore, decode
from .keys import state_key_of, state_scan_pattern, state_storage_key

_SCAN_COUNT = 1000


class RedisStateBackend(RedisStore):
    """:class:`aqcore.state.backend.StateBackend` in Redis
    (``redis://host:6379/0?connect_timeout=0.2&timeout=0.5``).

    ``client`` replaces the client built from the URL (e.g. one configured for Sentinel).
    """

    error = StateUnavailable
    script_source = scripts.COMPARE_AND_SET

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
            done = self._run_script(keys=[storage], args=[str(expected_version), str(expected_version + 1), body])
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
