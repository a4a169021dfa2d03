"""commitments: what the agent committed to (a refund amount, an order id, a date), recorded
per slot at conversation or agent scope, and enforced in every later output of that scope.

Each extractor is a regular expression with named groups, in one of three shapes:

- a ``slot`` group and a ``value`` group: the slot is named by the text;
- a ``value`` group and the extractor's ``slot`` setting;
- any other named groups: each group that matched is a slot of that name.

Values are compared in a normal form (numbers: ``$1,250.00`` = ``1250``; text: normalised,
case-folded). Giving a slot another value than the one stored in state, or than the one
given earlier in the same invocation, is inadmissible. A match that could still grow is
held back until it is complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..gate import GateContext, MetricSettings, Step
from ..models import Commitment
from .common import cached_regex, compile_regex, pending, starters, violation
from .grounding import NUMBER, normalize_number
from .normalize import normalize
from .scanning import Scan, ScanningMetric

CommitmentScope = Literal["conversation", "agent"]


class Extractor(BaseModel):
    """One ``[[metrics.commitments.extractors]]`` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: str = Field(description="regular expression with named groups (matched case-insensitively)")
    slot: str | None = Field(default=None, description="the slot a 'value' group fills")
    scope: CommitmentScope = "conversation"

    @model_validator(mode="after")
    def _groups(self) -> Extractor:
        groups = set(compile_regex(self.pattern, ignore_case=True).groupindex)
        if not groups:
            raise ValueError(f"pattern {self.pattern!r} has no named group: name the value(s) it captures")
        if "slot" in groups and "value" not in groups:
            raise ValueError(f"pattern {self.pattern!r} has a 'slot' group but no 'value' group")
        if "value" in groups and "slot" not in groups and not self.slot:
            raise ValueError(
                f"pattern {self.pattern!r} has a 'value' group: set 'slot' or add a 'slot' group"
            )
        if self.slot and "value" not in groups:
            raise ValueError(f"'slot' is set but pattern {self.pattern!r} has no 'value' group")
        return self


class CommitmentsSettings(MetricSettings):
    """``[metrics.commitments]``."""

    extractors: list[Extractor] = Field(min_length=1)
    on_violation: Literal["rollback", "halt"] = "rollback"


def normalize_value(value: str) -> str:
    """The form values are compared in."""
    text = normalize(value).strip()
    bare = text.lstrip("$€£¥ ").rstrip()
    if cached_regex(NUMBER).fullmatch(bare):
        return normalize_number(bare)
    return text


def slot_name(text: str) -> str:
    """A slot named by matched text: normalised, words joined by underscores."""
    return "_".join(normalize(text).split())


@dataclass(frozen=True)
class _Made:
    slot: str
    value: str
    scope: CommitmentScope
    end: int  # raw offset where the match ends (for rollbacks)


class Commitments(ScanningMetric):
    """Records commitments and rejects contradictions of earlier ones."""

    name = "commitments"
    Settings = CommitmentsSettings
    settings: CommitmentsSettings

    def __init__(self, settings: CommitmentsSettings, context: GateContext) -> None:  # type: ignore[override]
        super().__init__(settings, context)
        self._extractors = [(e, compile_regex(e.pattern, ignore_case=True)) for e in settings.extractors]
        self._starters = [starters(pattern) for _, pattern in self._extractors]
        self._made: list[_Made] = []

    def _stored(self, scope: CommitmentScope, slot: str) -> Commitment | None:
        state = self.context.agent_state if scope == "agent" else self.context.conversation_state
        return state.commitments.get(slot)

    def _pairs(self, extractor: Extractor, groups: dict[str, str | None]) -> list[tuple[str, str]]:
        if "value" in groups:
            slot = groups.get("slot") or extractor.slot or ""
            value = groups["value"]
            return [(slot_name(slot), normalize_value(value))] if slot and value else []
        return [(name, normalize_value(v)) for name, v in groups.items() if v]

    def scan(self, step: Step, settled: int) -> Scan:
        text = step.text
        n = len(text)
        if self.fast and not step.is_final and settled >= n - len(step.candidate):
            # Nothing before the candidate is pending, so a match can only begin in it, at a
            # character that can begin one; where there is none the scan would find nothing.
            candidate = step.candidate
            if not any(begins.any_in(candidate) for begins in self._starters):
                return Scan(None, n)
        hold = n
        found: list[tuple[int, int, str, str, CommitmentScope]] = []
        for extractor, pattern in self._extractors:
            for match in pattern.finditer(text, settled, partial=not step.is_final):
                if match.end() == match.start():
                    continue
                if pending(match, text, step.is_final):
                    hold = min(hold, match.start())
                    break
                for slot, value in self._pairs(extractor, match.groupdict()):
                    found.append((match.start(), match.end(), slot, value, extractor.scope))
        if not found:
            return Scan(self.held(step, hold), hold)
        found.sort()
        known = {(m.scope, m.slot): m.value for m in self._made}
        new: list[_Made] = []
        for start, end, slot, value, scope in found:
            stored = self._stored(scope, slot)
            earlier = known.get((scope, slot))
            if stored is not None and stored.value != value:
                reason = (
                    f"{slot} was committed as {stored.value!r} (invocation {stored.invocation}, "
                    f"{scope} scope); the output gives {value!r}"
                )
            elif earlier is not None and earlier != value:
                reason = f"{slot} was given as {earlier!r} earlier in this output; now {value!r}"
            else:
                known[(scope, slot)] = value
                if stored is None:
                    new.append(_Made(slot, value, scope, end))
                continue
            return Scan(violation(self, self.settings.on_violation, step, start, end, reason), hold)
        return Scan(self.held(step, hold), hold, new)

    def committed(self, step: Step, scan: Scan) -> None:
        for made in scan.payload or ():
            if all((m.scope, m.slot) != (made.scope, made.slot) for m in self._made):
                self._made.append(made)

    def rolled_back(self, length: int) -> None:
        self._made = [m for m in self._made if m.end <= length]

    def commitments(self) -> list[Commitment]:
        invocation = self.context.scope.invocation
        return [
            Commitment(slot=m.slot, value=m.value, invocation=invocation, scope=m.scope) for m in self._made
        ]
