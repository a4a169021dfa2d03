"""What a loop hands back to the runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..models import Emission, Observation


@dataclass
class LoopEvent:
    """A lifecycle event that is not an observation (rollback, reject, redact, halt, refusal)."""

    kind: str
    index: int
    metric: str = ""
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoopOutcome:
    text: str
    finish_reason: str
    observations: list[Observation]
    emissions: list[Emission]
    events: list[LoopEvent]
    verdicts: dict[str, dict[str, int]]
    rollbacks: int
    steps: int
