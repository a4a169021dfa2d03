"""The in-memory state backend (``memory:`` or ``memory:<name>``): one process, shared by every
runtime in it that names the same store. For tests and throwaway sessions."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..hookspecs import hookimpl
from .backend import Versioned

_STORES: dict[str, MemoryBackend] = {}
_STORES_LOCK = threading.Lock()


class MemoryBackend:
    """A dict of versioned documents behind a lock."""

    blocking = False  # no I/O: nothing to give up on, so no deadline thread

    def __init__(self, url: str = "memory:") -> None:
        self.url = url
        self._docs: dict[str, Versioned] = {}
        self._lock = threading.Lock()

    def load(self, key: str) -> Versioned | None:
        with self._lock:
            held = self._docs.get(key)
            return Versioned(held.version, copy.deepcopy(held.doc)) if held else None

    def compare_and_set(self, key: str, expected_version: int, doc: dict[str, Any]) -> bool:
        with self._lock:
            held = self._docs.get(key)
            if (held.version if held else 0) != expected_version:
                return False
            self._docs[key] = Versioned(expected_version + 1, copy.deepcopy(doc))
            return True

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._docs.pop(key, None) is not None

    def keys(self, prefix: str) -> Iterator[str]:
        with self._lock:
            found = sorted(k for k in self._docs if k.startswith(prefix))
        yield from found

    def close(self) -> None:
        """Documents stay in the process-wide store; nothing to release."""


def open_memory(url: str) -> MemoryBackend:
    with _STORES_LOCK:
        if url not in _STORES:
            _STORES[url] = MemoryBackend(url)
        return _STORES[url]


@hookimpl
def aq_register_state_backends(register: Callable[..., None]) -> None:
    register("memory", open_memory, description="in-process dict (not persistent)")
