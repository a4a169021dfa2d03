"""Receipts that could not be appended (lineage store down): kept on local disk with everything
needed to seal them later, in order, so the chain has no gap once the store answers again."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..durable import LineQueues
from ..loop.outcome import LoopEvent
from ..models import GenerationResult


@dataclass
class PendingReceipt:
    """One invocation whose receipt is still to be sealed and appended."""

    result: GenerationResult
    events: list[LoopEvent]
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
            events=[LoopEvent(**e) for e in obj["events"]],
            started_us=int(obj["started_us"]),
            end_us=int(obj["end_us"]),
        )


class PendingReceipts:
    """One queue per chain under ``directory``."""

    def __init__(self, directory: str | Path) -> None:
        self.queues = LineQueues(directory)
        self.directory = self.queues.directory

    def add(self, chain: str, pending: PendingReceipt) -> None:
        self.queues.append(chain, pending.to_json())

    def count(self, chain: str) -> int:
        return len(self.queues.items(chain))

    def drain(self, chain: str, seal: Callable[[PendingReceipt], object]) -> int:
        """Seal pending receipts of ``chain`` in order; stop at the first failure (it and the
        rest stay). Returns how many were sealed."""
        return self.queues.drain(chain, PendingReceipt.from_json, seal)
