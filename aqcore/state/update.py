"""State updates: what one invocation changes, merged without loss into whatever version a
concurrent writer left (spend is a counter, commitments a set with conflict detection,
turns and sources are appended). Each update has an id, so replaying it twice changes nothing."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from ..models import AgentState, Commitment, ConversationState, ScopeState, Turn

MAX_APPLIED_IDS = 512


class StateUpdate(BaseModel):
    """The changes of one invocation to one scope document."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    key: str
    entropy: float = 0.0
    commitments: list[Commitment] = Field(default_factory=list)
    turn: Turn | None = None
    sources: list[str] = Field(default_factory=list)


def state_class(key: str) -> type[ScopeState]:
    return ConversationState if key.startswith("conversation/") else AgentState


def merge(doc: dict[str, Any] | None, update: StateUpdate) -> tuple[dict[str, Any], bool]:
    """Apply ``update`` to the stored document; returns (new document, changed)."""
    cls = state_class(update.key)
    state = cls.model_validate(doc) if doc else cls()
    if update.id in state.applied_updates:
        return state.model_dump(mode="json"), False
    state.entropy_spent += update.entropy
    for commitment in update.commitments:
        held = state.commitments.get(commitment.slot)
        if held is None:
            state.commitments[commitment.slot] = commitment
        elif held.value != commitment.value:
            # Two writers raced to commit different values: keep the first, never drop the second.
            state.conflicts.append(commitment)
    if isinstance(state, ConversationState):
        if update.turn is not None:
            state.turns.append(update.turn)
        for source in update.sources:
            if source not in state.sources:
                state.sources.append(source)
    state.applied_updates = [*state.applied_updates, update.id][-MAX_APPLIED_IDS:]
    return state.model_dump(mode="json"), True
