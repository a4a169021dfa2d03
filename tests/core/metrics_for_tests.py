"""Small but real gate metrics used to drive the loop in tests."""

from __future__ import annotations

import re
from typing import ClassVar

import numpy as np

from aqcore.gate import GateMetric, Mask, MetricSettings, Step
from aqcore.models import Observation, Verdict, VerdictKind


class PhraseSettings(MetricSettings):
    phrase: str = "password"
    action: str = "rollback"


class Phrase(GateMetric):
    """Rolls back (or halts on) a literal phrase, holding back any suffix that could start it."""

    name: ClassVar[str] = "phrase"
    Settings = PhraseSettings

    def evaluate(self, step: Step) -> Verdict | None:
        phrase = self.settings.phrase
        text = step.text
        start = text.find(phrase, max(0, step.released - len(phrase)))
        if start >= 0:
            kind = VerdictKind.HALT if self.settings.action == "halt" else VerdictKind.ROLLBACK
            return self.verdict(kind, chars=len(text) - start, reason=f"phrase {phrase!r}")
        if step.is_final:
            return None
        for n in range(min(len(phrase) - 1, len(text)), 0, -1):
            if phrase.startswith(text[-n:]):
                return self.verdict(VerdictKind.ADMIT, hold=n)
        return None


class RejectPieceSettings(MetricSettings):
    piece: str


class RejectPiece(GateMetric):
    name: ClassVar[str] = "reject_piece"
    Settings = RejectPieceSettings

    def evaluate(self, step: Step) -> Verdict | None:
        if step.candidate == self.settings.piece:
            return self.verdict(VerdictKind.REJECT, reason="piece")
        return None


class Digits(GateMetric):
    """Redacts runs of 7+ digits/dashes; holds back a trailing run that may grow into one."""

    name: ClassVar[str] = "digits"
    pattern = re.compile(r"\d[\d-]{6,}\d")

    def evaluate(self, step: Step) -> Verdict | None:
        text = step.text
        trailing = re.search(r"[\d-]+$", text)
        if trailing and not step.is_final:
            return self.verdict(VerdictKind.ADMIT, hold=len(trailing.group()))
        for match in self.pattern.finditer(text, step.released):
            if match.end() <= len(text):
                return self.verdict(
                    VerdictKind.REDACT, start=match.start(), end=match.end(), replacement="[REDACTED:number]"
                )
        return None


class HaltPieceSettings(MetricSettings):
    piece: str


class HaltPiece(GateMetric):
    name: ClassVar[str] = "halt_piece"
    Settings = HaltPieceSettings

    def evaluate(self, step: Step) -> Verdict | None:
        if step.candidate == self.settings.piece:
            return self.verdict(VerdictKind.HALT, reason="halt piece")
        return None


class HoldAllSettings(MetricSettings):
    """Holds everything back until the end (a metric that decides only on the whole text)."""


class HoldAll(GateMetric):
    name: ClassVar[str] = "hold_all"
    Settings = HoldAllSettings

    def evaluate(self, step: Step) -> Verdict | None:
        return None if step.is_final else self.verdict(VerdictKind.ADMIT, hold=len(step.text))


class BanIdsSettings(MetricSettings):
    ids: list[int] = []  # noqa: RUF012
    only_eos: bool = False


class BanIds(GateMetric):
    """A pre-sampling mask: bans ids, or (only_eos) allows nothing but EOS."""

    name: ClassVar[str] = "ban_ids"
    Settings = BanIdsSettings

    def mask(self, step: Step) -> Mask | None:
        if self.settings.only_eos:
            assert step.scaled_logits is not None
            allowed = np.zeros(step.scaled_logits.shape[0], dtype=bool)
            for eos in self.context.vocab.eos_ids:  # type: ignore[union-attr]
                allowed[eos] = True
            return Mask(allowed=allowed, stop_reason="budget_exhausted")
        return Mask(banned=np.array(self.settings.ids, dtype=np.int64))


class Probe(GateMetric):
    """Records what it sees, for closure and holdback assertions."""

    name: ClassVar[str] = "probe"
    seen: ClassVar[list[tuple[int, int, int | None, int]]] = []
    committed: ClassVar[list[Observation]] = []
    rollbacks: ClassVar[list[tuple[int, int]]] = []

    def evaluate(self, step: Step) -> Verdict | None:
        last = step.observations[-1].token_id if step.observations else None
        Probe.seen.append((step.index, len(step.observations), last, step.released))
        return None

    def on_commit(self, step: Step, observation: Observation) -> None:
        Probe.committed.append(observation)
        self._released = step.released

    def on_rollback(self, length: int) -> None:
        Probe.rollbacks.append((length, getattr(self, "_released", 0)))

    @classmethod
    def reset(cls) -> None:
        cls.seen, cls.committed, cls.rollbacks = [], [], []


class BadRollbackSettings(MetricSettings):
    after: int = 3


class BadRollback(GateMetric):
    """A broken metric: asks to roll back everything after some text was released."""

    name: ClassVar[str] = "bad_rollback"
    Settings = BadRollbackSettings

    def evaluate(self, step: Step) -> Verdict | None:
        if step.released > 0 and step.index >= self.settings.after:
            return self.verdict(VerdictKind.ROLLBACK, chars=len(step.text))
        return None
