"""What a loop hands back to the runtime."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..models import Emission, Observation, Verdict

if TYPE_CHECKING:
    from .release import ReleaseBuffer


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


class LoopEvents:
    """What both loops share: recording interventions (and telling ``on_event`` as they happen)
    and giving up with the policy's refusal."""

    def __init__(self, release: ReleaseBuffer, refusal: str) -> None:
        self.out = release
        self.refusal = refusal
        self.events: list[LoopEvent] = []
        self.on_event: Callable[[LoopEvent], None] | None = None

    def _record(self, event: LoopEvent) -> None:
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def _event(self, kind: str, index: int, verdict: Verdict | None, **detail: Any) -> None:
        self._record(
            LoopEvent(kind, index, metric=getattr(verdict, "metric", ""), reason=getattr(verdict, "reason", ""),
                      detail=detail)
        )

    def _refuse(self, why: str, position: int) -> Generator[Emission, None, str]:
        """Give up on this generation: release the policy's refusal instead of held text."""
        self._record(LoopEvent("refusal", position, reason=why))
        if self.refusal:
            sep = " " if self.out.released and not self.out.output.endswith((" ", "\n")) else ""
            yield self.out.emit_text(sep + self.refusal, final=True)
        return "refused"
