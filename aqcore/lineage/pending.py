"""Receipts that could not be appended (lineage store down): kept on local disk with everything
needed to seal them later, in order, so the chain has no gap once the store answers again."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..models import GenerationResult


@dataclass
class PendingEvent:
    kind: str
    index: int
    metric: str = ""
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class PendingReceipt:
    """One invocation whose receipt is still to be sealed and appended."""

    result: GenerationResult
    events: list[PendingEvent]
    started_us: int
    end_us: int

    def to_json(self) -> str:
        return json.dumps({
            "result": self.result.model_dump(mode="json"),
            "events": [asdict(e) for e in self.events],
            "started_us": self.started_us,
            "end_us": self.end_us,
        }, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> PendingReceipt:
        obj = json.loads(line)
        return cls(
            result=GenerationResult.model_validate(obj["result"]),
            events=[PendingEvent(**e) for e in obj["events"]],
            started_us=int(obj["started_us"]),
            end_us=int(obj["end_us"]),
        )


class PendingReceipts:
    """One JSON-lines file per chain under ``directory``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def _path(self, chain: str) -> Path:
        return self.directory / (hashlib.sha256(chain.encode()).hexdigest()[:32] + ".jsonl")

    @contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def add(self, chain: str, pending: PendingReceipt) -> None:
        path = self._path(chain)
        with self._locked(path):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (pending.to_json() + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)

    def count(self, chain: str) -> int:
        path = self._path(chain)
        if not path.exists():
            return 0
        return sum(1 for line in path.read_text().splitlines() if line.strip())

    def drain(self, chain: str, seal: Callable[[PendingReceipt], object]) -> int:
        """Seal pending receipts of ``chain`` in order; stop at the first failure (it and the
        rest stay). Returns how many were sealed."""
        path = self._path(chain)
        if not path.exists():
            return 0
        with self._locked(path):
            if not path.exists():
                return 0
            items = [PendingReceipt.from_json(line) for line in path.read_text().splitlines() if line.strip()]
            done = 0
            try:
                for item in items:
                    seal(item)
                    done += 1
            finally:
                rest = items[done:]
                if rest:
                    tmp = path.with_suffix(".tmp")
                    tmp.write_text("".join(i.to_json() + "\n" for i in rest))
                    os.replace(tmp, path)
                else:
                    path.unlink(missing_ok=True)
            return done
