"""Holdback and release: text reaches the consumer only when no metric can still roll it back
(invariant 2), only at unit/token boundaries, and with redactions applied."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

from ..models import Confidence, Emission, StateStatus


@dataclass
class Redaction:
    start: int
    end: int
    replacement: str


@dataclass
class ReleaseBuffer:
    """Tracks what of the invocation's text is out (``released``) and what is held.

    ``boundaries`` are the text lengths after each committed token or unit: release stops only
    there, so a later rollback of whole tokens can never cut into released text.
    """

    state_status: StateStatus
    confidence: Confidence
    on_emit: Callable[[Emission], None] | None
    released: int = 0
    output_chars: int = 0
    boundaries: list[int] = field(default_factory=list)
    redactions: list[Redaction] = field(default_factory=list)
    emissions: list[Emission] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)

    def commit_boundary(self, length: int) -> None:
        self.boundaries.append(length)

    def truncate(self, keep: int) -> None:
        """Drop boundaries past ``keep`` committed steps and redactions beyond the cut."""
        del self.boundaries[keep:]
        length = self.boundaries[-1] if self.boundaries else 0
        self.redactions = [r for r in self.redactions if r.end <= length]

    def add_redaction(self, start: int, end: int, replacement: str) -> bool:
        """Record a redaction of ``text[start:end]``; False if it would touch released text."""
        if start < self.released or end < start:
            return False
        for existing in self.redactions:
            if existing.start < end and start < existing.end:
                if start >= existing.start and end <= existing.end:
                    return True  # already covered
                existing.start, existing.end = min(existing.start, start), max(existing.end, end)
                existing.replacement = replacement
                return True
        self.redactions.append(Redaction(start, end, replacement))
        self.redactions.sort(key=lambda r: r.start)
        return True

    def release(self, text: str, hold: int, *, final: bool = False) -> Emission | None:
        """Release everything up to the last boundary that leaves ``hold`` characters held."""
        boundaries = self.boundaries
        if not hold and not self.redactions and not final and boundaries and boundaries[-1] == len(text):
            # the common step: the text ends at a boundary, nothing is held or redacted
            if len(text) <= self.released:
                return None
            piece = text[self.released :]
            self.released = len(text)
            return self._emit(piece, redacted=False, final=False)
        if final:
            limit = len(text)
        else:
            safe = len(text) - hold
            idx = bisect.bisect_right(boundaries, safe)
            limit = boundaries[idx - 1] if idx else 0
        for r in self.redactions:
            if r.start < limit < r.end:
                limit = r.start  # never release half of a redacted span
        if limit <= self.released:
            return None
        out: list[str] = []
        cursor = self.released
        redacted = False
        for r in self.redactions:
            if r.start >= limit:
                break
            if r.end <= cursor:
                continue
            out.append(text[cursor:r.start])
            out.append(r.replacement)
            cursor = r.end
            redacted = True
        out.append(text[cursor:limit])
        piece = "".join(out)
        self.released = limit
        self.redactions = [r for r in self.redactions if r.end > limit]
        return self._emit(piece, redacted=redacted, final=final)

    def emit_text(self, piece: str, *, final: bool) -> Emission:
        """Release text that is not part of the model's output (the policy's refusal)."""
        return self._emit(piece, redacted=False, final=final)

    def _emit(self, piece: str, *, redacted: bool, final: bool) -> Emission:
        emission = Emission(
            text=piece,
            offset=self.output_chars,
            state_status=self.state_status,
            confidence=self.confidence,
            redacted=redacted,
            final=final,
        )
        self.output_chars += len(piece)
        self.pieces.append(piece)
        self.emissions.append(emission)
        if self.on_emit is not None:
            self.on_emit(emission)
        return emission

    @property
    def output(self) -> str:
        return "".join(self.pieces)
