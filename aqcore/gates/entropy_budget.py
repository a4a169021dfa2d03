"""entropy_budget: a surprisal budget in nats per invocation, conversation and agent lifetime.

The surprisal of a token is ``s = -ln p(x)`` under the model's distribution at the sampling
temperature, before gate masks. A token is admissible only if its surprisal fits in the
smallest remaining budget; the mask enforces that before sampling with one vectorised
comparison over the scaled logits (``log p(i) = scaled_logits[i] - log_z``, so
``s(i) <= remaining  <=>  scaled_logits[i] >= log_z - remaining``). End-of-sequence tokens
always stay allowed, so that the invocation can end; when only they are left it ends with
``budget_exhausted``.

Optionally, when the distribution's entropy is above ``max_token_entropy``, sampling is
restricted to the most likely tokens holding ``restrict_mass`` of the probability. That costs
an extra pass (an exp over the vocabulary), so it is only done when configured.

Budgets come from the policy's ``[budgets]`` table; spend already stored in state counts
against the conversation and agent budgets. The loop stores the spend per scope.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import Field

from ..gate import GateContext, GateMetric, Mask, MetricSettings, Step
from ..models import Observation, Verdict, VerdictKind

if TYPE_CHECKING:
    import numpy as np

STOP_REASON = "budget_exhausted"
_SLACK = 1e-6  # float32 logits vs float64 sums: never reject a token the mask let through


class EntropyBudgetSettings(MetricSettings):
    """``[metrics.entropy_budget]``. The budgets themselves are the policy's ``[budgets]``."""

    max_token_entropy: float | None = Field(
        default=None, gt=0, description="nats; above it, sampling is restricted to the top set"
    )
    restrict_mass: float = Field(
        default=0.9, gt=0, le=1, description="probability mass of the top set kept above max_token_entropy"
    )


class EntropyBudget(GateMetric):
    """Masks tokens whose surprisal would overrun the smallest remaining budget."""

    name = "entropy_budget"
    Settings = EntropyBudgetSettings
    settings: EntropyBudgetSettings

    def __init__(self, settings: EntropyBudgetSettings, context: GateContext) -> None:  # type: ignore[override]
        super().__init__(settings, context)
        budgets = context.policy.budgets
        self._invocation = budgets.invocation
        # Remaining budget of the stored scopes, before this invocation's spend.
        stored = [
            budgets.conversation - context.conversation_state.entropy_spent
            if budgets.conversation is not None
            else None,
            budgets.agent - context.agent_state.entropy_spent if budgets.agent is not None else None,
        ]
        self._stored_left = min((b for b in stored if b is not None), default=None)
        # the tightest budget, spent or not (min(a, b) - s == min(a - s, b - s) in floating point)
        self._limit = min((b for b in (self._invocation, self._stored_left) if b is not None), default=None)
        vocab = context.vocab
        self._eos: np.ndarray | None = None
        if vocab is not None:
            import numpy as np  # only token adapters give a vocabulary; aq starts without numpy

            self._eos = np.fromiter(sorted(vocab.eos_ids), dtype=np.intp)
        self._eos_set = vocab.eos_ids if vocab is not None else frozenset()
        self._buffer: np.ndarray | None = None
        self._spent_count = 0
        self._spent = 0.0

    @property
    def bounded(self) -> bool:
        """Whether any budget applies."""
        return self._limit is not None

    def spent(self, observations: list[Observation]) -> float:
        """This invocation's spend so far (kept incrementally; recomputed after a rollback)."""
        n = len(observations)
        count = self._spent_count
        if n == count + 1:  # the usual step: one more observation
            self._spent += observations[-1].surprisal
        elif n < count:
            self._spent = math.fsum(o.surprisal for o in observations)
        elif n > count:
            self._spent += math.fsum(o.surprisal for o in observations[count:])
        self._spent_count = n
        return self._spent

    def remaining(self, observations: list[Observation]) -> float | None:
        """The smallest remaining budget in nats (None: unbounded)."""
        limit = self._limit
        return None if limit is None else limit - self.spent(observations)

    def mask(self, step: Step) -> Mask | None:
        logits = step.scaled_logits
        if logits is None:
            return None
        allowed: np.ndarray | None = None
        remaining = self.remaining(step.observations)
        cap = self.settings.max_token_entropy
        if remaining is not None and cap is None:
            # a threshold, not an array: the loop only builds a mask when the best token fails it
            return Mask(min_logit=step.log_z - max(remaining, 0.0) - _SLACK, stop_reason=STOP_REASON)
        import numpy as np

        if remaining is not None:
            if self._buffer is None or self._buffer.shape != logits.shape:
                self._buffer = np.empty(logits.shape, dtype=bool)
            # One pass, no temporaries: the buffer is reused at every step.
            allowed = np.greater_equal(logits, step.log_z - max(remaining, 0.0) - _SLACK, out=self._buffer)
        if cap is not None:
            top = self._top_set(logits, step.log_z, cap)
            if top is not None:
                allowed = top if allowed is None else np.logical_and(allowed, top, out=allowed)
        if allowed is None:
            return None
        if self._eos is not None and self._eos.size:
            allowed[self._eos] = True
        return Mask(allowed=allowed, stop_reason=STOP_REASON)

    def _top_set(self, logits: np.ndarray, log_z: float, cap: float) -> np.ndarray | None:
        """The smallest set of most likely tokens holding ``restrict_mass``, if the entropy of
        the distribution is above ``cap``; else None."""
        import numpy as np

        logp = logits - np.float32(log_z)
        p = np.exp(logp)
        finite = np.isfinite(logp)
        entropy = -float(np.dot(p[finite], logp[finite]))
        if entropy <= cap:
            return None
        # Only tokens with non-negligible probability can be in the top set; sorting those
        # instead of the whole vocabulary keeps this pass cheap.
        candidates = np.flatnonzero(p >= 1e-9)
        order = candidates[np.argsort(p[candidates], kind="stable")[::-1]]
        cumulative = np.cumsum(p[order], dtype=np.float64)
        k = int(np.searchsorted(cumulative, self.settings.restrict_mass * cumulative[-1])) + 1
        top = np.zeros(logits.shape, dtype=bool)
        top[order[:k]] = True
        return top

    def evaluate(self, step: Step) -> Verdict | None:
        if step.is_final:
            return None
        remaining = self.remaining(step.observations)
        if remaining is None:
            return None
        if step.candidate_id is None:
            # Unit granularity: no distribution to mask, so the budget is checked per unit.
            if remaining <= 0 or step.surprisal > remaining + _SLACK:
                return self.verdict(VerdictKind.HALT, reason=STOP_REASON)
            return None
        if step.candidate_id in self._eos_set:
            return None
        if step.surprisal > remaining + _SLACK:
            return self.verdict(
                VerdictKind.REJECT,
                reason=f"surprisal {step.surprisal:.3f} nats exceeds the remaining budget {remaining:.3f}",
            )
        return None
