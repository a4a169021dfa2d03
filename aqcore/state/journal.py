"""The local journal: state updates that could not be committed (store down, slow or
conflicting) are appended here durably and replayed when the store answers again."""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .update import StateUpdate


def default_journal_dir() -> Path:
    base = os.environ.get("AQ_HOME") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "aq"
    )
    return Path(base) / "journal"


class Journal:
    """One JSON-lines file per store and key, guarded by an advisory lock (several processes
    on one host may journal the same key)."""

    def __init__(self, directory: str | Path, store_url: str) -> None:
        digest = hashlib.sha256(store_url.encode()).hexdigest()[:16]
        self.directory = Path(directory) / digest
        self.store_url = store_url

    def _path(self, key: str) -> Path:
        return self.directory / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".jsonl")

    @contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, update: StateUpdate) -> None:
        path = self._path(update.key)
        line = update.model_dump_json() + "\n"
        with self._locked(path):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)

    def pending(self, key: str) -> list[StateUpdate]:
        path = self._path(key)
        if not path.exists():
            return []
        with self._locked(path):
            return self._read(path)

    @staticmethod
    def _read(path: Path) -> list[StateUpdate]:
        if not path.exists():
            return []
        updates = []
        for line in path.read_text().splitlines():
            if line.strip():
                updates.append(StateUpdate.model_validate_json(line))
        return updates

    def has_pending(self) -> bool:
        return self.directory.exists() and any(self.directory.glob("*.jsonl"))

    def pending_keys(self) -> list[str]:
        if not self.directory.exists():
            return []
        keys = []
        for path in sorted(self.directory.glob("*.jsonl")):
            updates = self._read(path)
            if updates:
                keys.append(updates[0].key)
        return keys

    def drain(self, key: str, apply: Callable[[StateUpdate], object]) -> int:
        """Apply pending updates of ``key`` in order with ``apply(update)``; each one applied is
        removed. Stops at the first failure, keeping it and the rest. Returns how many applied."""
        path = self._path(key)
        if not path.exists():
            return 0
        with self._locked(path):
            updates = self._read(path)
            done = 0
            try:
                for update in updates:
                    apply(update)
                    done += 1
            finally:
                rest = updates[done:]
                if rest:
                    tmp = path.with_suffix(".tmp")
                    tmp.write_text("".join(u.model_dump_json() + "\n" for u in rest))
                    os.replace(tmp, path)
                else:
                    path.unlink(missing_ok=True)
            return done
