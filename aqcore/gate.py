"""Gate metrics: the base class every metric (built-in or third-party) derives from, and what
it sees at bind time (:class:`GateContext`) and at each step (:class:`Step`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from .models import AgentState, Commitment, ConversationState, Observation, Scope, Verdict, VerdictKind

if TYPE_CHECKING:
    import numpy as np

    from .adapters import Vocabulary
    from .policy import Policy

Action = Literal["mask", "reject", "rollback", "redact", "halt"]


class MetricSettings(BaseModel):
    """Base of a metric's settings (the ``[metrics.<name>]`` table of a policy). Unknown keys
    are rejected so that a typo never silently disables a rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class GateContext:
    """What a metric is bound to for one invocation."""

    policy: Policy
    scope: Scope
    agent_state: AgentState
    conversation_state: ConversationState
    sources: list[str]
    vocab: Vocabulary | None
    granularity: Literal["token", "unit"]
    temperature: float
    degraded: bool
    prompt: str = ""


@dataclass
class Mask:
    """A pre-sampling restriction. ``banned``: token ids that must not be drawn; ``allowed``:
    a boolean array over the vocabulary (None: everything); ``min_logit``: tokens whose scaled
    logit is below it are not allowed, end-of-sequence tokens excepted (a threshold costs the
    loop no pass over the vocabulary when the best token passes it). ``stop_reason`` is the
    finish reason if, after this mask, only end-of-sequence tokens remain."""

    banned: np.ndarray | None = None
    allowed: np.ndarray | None = None
    min_logit: float | None = None
    stop_reason: str | None = None


@dataclass(slots=True)
class Step:
    """One candidate under judgement.

    ``text`` is the invocation's committed text with the candidate appended; ``candidate``
    is what the candidate adds; ``released`` is how many characters of ``text`` have already
    reached the consumer (they can never be rolled back). ``observations`` holds every
    committed step before this one (recursive closure).
    """

    index: int
    text: str
    candidate: str
    candidate_id: int | None
    released: int
    surprisal: float
    observations: list[Observation]
    is_final: bool = False
    scaled_logits: np.ndarray | None = None
    log_z: float = 0.0


class GateMetric:
    """Base class of gate metrics.

    Subclasses set ``name`` and ``Settings`` and override what they need:
    :meth:`mask` (token granularity, before sampling), :meth:`evaluate` (each candidate),
    :meth:`on_commit`, :meth:`on_rollback` and :meth:`state_updates`. A metric object lives for
    one invocation.
    """

    name: ClassVar[str] = ""
    Settings: ClassVar[type[MetricSettings]] = MetricSettings

    def __init__(self, settings: MetricSettings, context: GateContext) -> None:
        self.settings = settings
        self.context = context

    def mask(self, step: Step) -> Mask | None:
        """Restrict the next draw. ``step.text`` is the committed text (no candidate yet)."""
        return None

    def evaluate(self, step: Step) -> Verdict | None:
        """Judge ``step.candidate``. None means admit with nothing held back."""
        return None

    def on_commit(self, step: Step, observation: Observation) -> None:
        """The candidate was committed."""

    def on_rollback(self, length: int) -> None:
        """The text was cut back to ``length`` characters."""

    def commitments(self) -> list[Commitment]:
        """Commitments this invocation made, to be persisted in state."""
        return []

    def verdict(self, kind: VerdictKind, **fields: Any) -> Verdict:
        """A verdict signed with this metric's name."""
        return Verdict(metric=self.name, kind=kind, **fields)

    @classmethod
    def overrides(cls, method: str) -> bool:
        """Whether this metric implements ``method`` (the loop skips the ones it does not)."""
        return getattr(cls, method) is not getattr(GateMetric, method)
