"""The local journal: state updates that could not be committed (store down, slow or
conflicting) are appended here durably and replayed when the store answers again."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from ..durable import LineQueues
from ..urls import store_identity
from .update import StateUpdate


def aq_home() -> Path:
    """Where aq keeps local state: ``$AQ_HOME``, else ``$XDG_STATE_HOME/aq``, else
    ``~/.local/state/aq``."""
    base = os.environ.get("AQ_HOME") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "aq"
    )
    return Path(base)


def default_journal_dir() -> Path:
    return aq_home() / "journal"


class Journal:
    """One queue per store and key (several processes on one host may journal the same key)."""

    def __init__(self, directory: str | Path, store_url: str) -> None:
        # keyed by the store, not by how a client reaches it: a worker restarted with other
        # timeouts or credentials must find (and replay) what it journalled before
        digest = hashlib.sha256(store_identity(store_url).encode()).hexdigest()[:16]
        self.queues = LineQueues(Path(directory) / digest)
        self.directory = self.queues.directory
        self.store_url = store_url

    def append(self, update: StateUpdate) -> None:
        self.queues.append(update.key, update.model_dump_json())

    def pending(self, key: str) -> list[StateUpdate]:
        return [StateUpdate.model_validate_json(line) for line in self.queues.items(key)]

    def has_pending(self) -> bool:
        return bool(self.queues.files())

    def pending_keys(self) -> list[str]:
        keys = []
        for path in self.queues.files():
            lines = self.queues.read(path)
            if lines:
                keys.append(StateUpdate.model_validate_json(lines[0]).key)
        return keys

    def drain(self, key: str, apply: Callable[[StateUpdate], object]) -> int:
        """Apply pending updates of ``key`` in order with ``apply(update)``; each one applied is
        removed. Stops at the first failure, keeping it and the rest. Returns how many applied."""
        return self.queues.drain(key, StateUpdate.model_validate_json, apply)
