"""Durable local queues: JSON-lines files that several processes on one host append to and
drain under an advisory lock. The state journal and the pending receipts use them, so that
nothing a store could not take is lost."""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class LineQueues:
    """One queue (a ``.jsonl`` file) per name under ``directory``; items are one line each."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, name: str) -> Path:
        return self.directory / (hashlib.sha256(name.encode()).hexdigest()[:32] + ".jsonl")

    @contextmanager
    def locked(self, name: str) -> Iterator[Path]:
        """Hold the queue's lock; yields its file path."""
        path = self.path(name)
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield path
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, name: str, line: str) -> None:
        """Append one item and fsync it before returning."""
        with self.locked(name) as path:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)

    @staticmethod
    def read(path: Path) -> list[str]:
        if not path.exists():
            return []
        return [line for line in path.read_text().splitlines() if line.strip()]

    def items(self, name: str) -> list[str]:
        if not self.path(name).exists():
            return []
        with self.locked(name) as path:
            return self.read(path)

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("*.jsonl")) if self.directory.exists() else []

    def drain(self, name: str, parse: Callable[[str], T], apply: Callable[[T], object]) -> int:
        """Apply the queue's items in order; each applied item is removed. Stops at the first
        failure (raised), keeping it and everything after it. Returns how many were applied."""
        if not self.path(name).exists():
            return 0
        with self.locked(name) as path:
            items = [parse(line) for line in self.read(path)]
            done = 0
            try:
                for item in items:
                    apply(item)
                    done += 1
            finally:
                rest = self.read(path)[done:]
                if rest:
                    tmp = path.with_suffix(".tmp")
                    tmp.write_text("".join(line + "\n" for line in rest))
                    os.replace(tmp, path)
                else:
                    path.unlink(missing_ok=True)
            return done
