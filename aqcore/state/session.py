"""Loading and committing semantic state, with the degraded path of invariant 5: when the
store fails, times out or keeps conflicting, the invocation runs on what the local journal
holds, flagged ``partial``, and its updates are journalled for replay."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import StateConflict, StateUnavailable
from ..log import get_logger
from ..models import AgentState, ConversationState, Scope, StateStatus
from ..urls import mask_url
from .backend import StateBackend, Versioned
from .journal import Journal
from .keys import agent_key, conversation_key
from .update import StateUpdate, merge

log = get_logger("aq.state")
T = TypeVar("T")


@dataclass
class LoadedState:
    """An invocation's view of semantic state."""

    scope: Scope
    agent: AgentState
    conversation: ConversationState
    status: StateStatus = "full"
    degraded_reason: str | None = None
    sources: list[str] = field(default_factory=list)

    @property
    def degraded(self) -> bool:
        return self.status == "partial"


@dataclass
class CommitOutcome:
    committed: bool
    journalled: list[str] = field(default_factory=list)
    reason: str | None = None


class StateManager:
    """Talks to one backend with a deadline per call, a compare-and-set retry loop, and the
    journal as the fallback."""

    def __init__(
        self,
        backend: StateBackend,
        journal: Journal,
        *,
        timeout_s: float | None = 2.0,
        max_retries: int = 16,
    ) -> None:
        self.backend = backend
        self.store = mask_url(backend.url)  # messages end up in logs and signed receipts
        self.journal = journal
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        # see StateBackend: a backend that cannot hang needs no deadline thread
        self._deadline = timeout_s is not None and getattr(backend, "blocking", True)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one store operation (one or more backend calls) under the deadline; any failure
        or a missed deadline becomes StateUnavailable (StateConflict passes through).

        An operation is handed to the worker thread whole: each hand-off costs a thread switch
        (about 0.1 ms on a busy 2-core machine), so a scope's load is one, and an update's
        load, merge and compare-and-set, retries included, is another."""
        try:
            if not self._deadline:
                return fn(*args)
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="aq-state")
            future = self._executor.submit(fn, *args)
            try:
                return future.result(timeout=self.timeout_s)
            except concurrent.futures.TimeoutError:
                # The worker may still be stuck in the call: give the next call a fresh one.
                self._executor.shutdown(wait=False)
                self._executor = None
                raise StateUnavailable(
                    f"state store {self.store} did not answer within {self.timeout_s}s"
                ) from None
        except (StateUnavailable, StateConflict):
            raise
        except Exception as exc:
            raise StateUnavailable(f"state store {self.store}: {type(exc).__name__}: {exc}") from exc

    # -- load ---------------------------------------------------------------------------
    def load(self, scope: Scope) -> LoadedState:
        keys = (agent_key(scope), conversation_key(scope))
        try:
            for key in keys:
                self.replay(key)
            stored = self._call(self._load_all, keys)
        except (StateUnavailable, StateConflict) as exc:
            log.warning("state unavailable: running the degraded profile", scope=scope.conversation_key, error=str(exc))
            agent, conversation = (self._from_journal(key) for key in keys)
            return LoadedState(scope, agent, conversation, "partial", str(exc))  # type: ignore[arg-type]
        agent = AgentState.model_validate(stored[0].doc) if stored[0] else AgentState()
        conversation = ConversationState.model_validate(stored[1].doc) if stored[1] else ConversationState()
        if stored[0]:
            agent.version = stored[0].version
        if stored[1]:
            conversation.version = stored[1].version
        return LoadedState(scope, agent, conversation)

    def _load_all(self, keys: tuple[str, ...]) -> list[Versioned | None]:
        return [self.backend.load(key) for key in keys]

    def _from_journal(self, key: str) -> AgentState | ConversationState:
        """What this host knows without the store: the updates it journalled."""
        doc: dict[str, Any] | None = None
        for update in self.journal.pending(key):
            doc, _ = merge(doc, update)
        cls = ConversationState if key.startswith("conversation/") else AgentState
        return cls.model_validate(doc) if doc else cls()

    # -- commit -------------------------------------------------------------------------
    def apply(self, update: StateUpdate) -> int:
        """Merge ``update`` into the stored document with compare-and-set; returns the new
        version. Raises StateUnavailable or StateConflict."""
        return self._call(self._apply, update)

    def _apply(self, update: StateUpdate) -> int:
        for _ in range(self.max_retries + 1):
            held: Versioned | None = self.backend.load(update.key)
            version = held.version if held else 0
            doc, changed = merge(held.doc if held else None, update)
            if not changed:
                return version
            doc["version"] = version + 1
            if self.backend.compare_and_set(update.key, version, doc):
                return version + 1
        raise StateConflict(f"compare-and-set on {update.key} lost {self.max_retries + 1} times in a row")

    def commit(self, updates: list[StateUpdate]) -> CommitOutcome:
        """Commit every update, or journal the ones that could not be committed."""
        outcome = CommitOutcome(committed=True)
        for update in updates:
            try:
                if self.journal.pending(update.key):
                    raise StateUnavailable("older journalled updates of this key are not replayed yet")
                self.apply(update)
            except (StateUnavailable, StateConflict) as exc:
                self.journal.append(update)
                outcome.committed = False
                outcome.journalled.append(update.key)
                outcome.reason = str(exc)
                log.warning("state update journalled for replay", key=update.key, error=str(exc))
        return outcome

    def replay(self, key: str | None = None) -> int:
        """Replay journalled updates (of one key, or all). Raises StateUnavailable if the store
        is still away; what was applied before that is removed from the journal."""
        keys = [key] if key else self.journal.pending_keys()
        return sum(self.journal.drain(k, self.apply) for k in keys)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        self.backend.close()
