"""The data aq passes around: scopes, semantic state, observations, verdicts, emissions, results."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

StateStatus = Literal["full", "partial"]
Confidence = Literal["normal", "reduced"]

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@")


def _check_id(value: str, field: str) -> str:
    if not value or len(value) > 128 or not set(value) <= _ID_CHARS:
        raise ValueError(
            f"{field} must be 1-128 characters of letters, digits and -_.@ (got {value!r})"
        )
    return value


class _Model(BaseModel):
    # validators are built on first use, not at import: aq starts in a fraction of the time
    model_config = ConfigDict(defer_build=True)


class Scope(_Model):
    """Where an invocation lives: tenant ⊃ agent ⊃ conversation ⊃ invocation."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    tenant: str = "default"
    agent: str
    conversation: str
    invocation: str = Field(default_factory=lambda: uuid.uuid4().hex)

    @field_validator("tenant", "agent", "conversation", "invocation")
    @classmethod
    def _valid_id(cls, value: str, info: Any) -> str:
        return _check_id(value, info.field_name)

    @property
    def agent_key(self) -> str:
        return f"{self.tenant}:{self.agent}"

    @property
    def conversation_key(self) -> str:
        return f"{self.tenant}:{self.agent}:{self.conversation}"


class Commitment(_Model):
    """A value the agent committed to for a slot, and the invocation that made it."""

    slot: str
    value: str
    invocation: str
    scope: Literal["conversation", "agent"] = "conversation"


class Turn(_Model):
    """One finished invocation as seen by later turns (the trajectory)."""

    invocation: str
    prompt: str
    text: str
    finish_reason: str
    state_status: StateStatus = "full"


class ScopeState(_Model):
    """State shared by the agent and conversation scopes. Versioned for compare-and-set."""

    version: int = 0
    entropy_spent: float = 0.0
    commitments: dict[str, Commitment] = Field(default_factory=dict)
    conflicts: list[Commitment] = Field(default_factory=list)
    constraints: list[str] = Field(default_factory=list)
    context: dict[str, Any] = Field(default_factory=dict)
    applied_updates: list[str] = Field(
        default_factory=list, description="ids of the last updates merged, for idempotent journal replay"
    )


class AgentState(ScopeState):
    """Lifetime state of an agent."""


class ConversationState(ScopeState):
    """State of one user thread: the trajectory of turns and the sources in force."""

    turns: list[Turn] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)


class VerdictKind(StrEnum):
    ADMIT = "admit"
    REJECT = "reject"
    ROLLBACK = "rollback"
    REDACT = "redact"
    HALT = "halt"


class Verdict(_Model):
    """A gate metric's judgement of one step.

    - ``admit``: the candidate may be committed; ``hold`` trailing characters of the text
      (candidate included) must not be released yet because a partial match is pending.
    - ``reject``: ban the candidate at this position and resample.
    - ``rollback``: retract the last ``chars`` characters (candidate included) and re-decode.
    - ``redact``: release ``replacement`` in place of ``text[start:end]``.
    - ``halt``: stop the invocation now; nothing still held back is released.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    metric: str
    kind: VerdictKind = VerdictKind.ADMIT
    hold: int = 0
    chars: int = 0
    start: int = 0
    end: int = 0
    replacement: str = ""
    reason: str = ""


@dataclass(slots=True, kw_only=True)
class Observation:
    """What one committed token or unit produced. Re-enters state before the next step.

    A plain slotted dataclass, not a pydantic model: the loop makes one per token, and a
    dataclass costs a few µs less each time (pydantic still validates and serialises it as a
    field of :class:`GenerationResult`)."""

    index: int
    text: str
    token_id: int | None = None
    logprob: float | None = None
    entropy: float | None = None
    surprisal: float = 0.0
    verdicts: list[Verdict] = dataclass_field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class Emission:
    """Text released to the consumer (a slotted dataclass, made per released piece)."""

    text: str
    offset: int
    state_status: StateStatus = "full"
    confidence: Confidence = "normal"
    redacted: bool = False
    final: bool = False


class Message(_Model):
    """A chat message."""

    role: Literal["system", "user", "assistant"]
    content: str


class GenerationResult(_Model):
    """Everything an invocation produced."""

    text: str
    finish_reason: str
    scope: Scope
    state_status: StateStatus = "full"
    confidence: Confidence = "normal"
    degraded_reason: str | None = None
    state_committed: bool = True
    tokens: int = 0
    rollbacks: int = 0
    verdicts: dict[str, dict[str, int]] = Field(default_factory=dict)
    entropy_spent: dict[str, float] = Field(default_factory=dict)
    observations: list[Observation] = Field(default_factory=list)
    emissions: list[Emission] = Field(default_factory=list)
    commitments: list[Commitment] = Field(default_factory=list)
    model: str = ""
    model_digest: str = ""
    adapter: str = ""
    policy_name: str = ""
    policy_digest: str = ""
    receipt: dict[str, Any] | None = None
