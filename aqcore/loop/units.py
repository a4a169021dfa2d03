"""The governed loop at unit granularity, for models that give text but no logits
(docs/adapters.md): stream units into a buffer, judge each complete unit, release admitted
units, and re-request the continuation with feedback when a unit is inadmissible."""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator

from ..adapters import UnitAdapter, UnitRequest
from ..gate import GateContext, Step
from ..models import Emission, Message, Observation, VerdictKind
from .judge import Judge
from .outcome import LoopEvents, LoopOutcome
from .release import ReleaseBuffer

# A sentence ends at . ! ? (with closing quotes/brackets) followed by whitespace, or at a newline.
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s+|\n+")


def cut_units(buffer: str, size: str | int) -> tuple[list[str], str]:
    """Split complete units off the front of ``buffer``; returns (units, rest)."""
    units: list[str] = []
    if isinstance(size, int):
        while len(buffer) >= size:
            units.append(buffer[:size])
            buffer = buffer[size:]
        return units, buffer
    start = 0
    for match in _SENTENCE_END.finditer(buffer):
        units.append(buffer[start:match.end()])
        start = match.end()
    return units, buffer[start:]


class UnitLoop(LoopEvents):
    """Drives one generation on a unit adapter under the bound metrics."""

    def __init__(
        self,
        adapter: UnitAdapter,
        judge: Judge,
        context: GateContext,
        release: ReleaseBuffer,
        request: UnitRequest,
        *,
        unit_size: str | int,
        max_rerequests: int,
        refusal: str,
    ) -> None:
        self.adapter = adapter
        self.judge = judge
        self.context = context
        self.request = request
        self.unit_size = unit_size
        self.max_rerequests = max_rerequests
        self.text = ""
        self.observations: list[Observation] = []
        LoopEvents.__init__(self, release, refusal)
        self.rerequests = 0
        self.steps = 0

    def run(self, messages: list[Message]) -> Generator[Emission, None, LoopOutcome]:
        finish = yield from self._generate()
        return LoopOutcome(
            text=self.out.output,
            finish_reason=finish,
            observations=self.observations,
            emissions=self.out.emissions,
            events=self.events,
            verdicts=self.judge.counts_by_metric(),
            rollbacks=self.rerequests,
            steps=self.steps,
        )

    def _units(self, request: UnitRequest) -> Iterator[tuple[str, bool]]:
        buffer = ""
        for chunk in self.adapter.stream(request):
            buffer += chunk
            units, buffer = cut_units(buffer, self.unit_size)
            for unit in units:
                yield unit, False
        if buffer:
            yield buffer, True

    def _generate(self) -> Generator[Emission, None, str]:
        request = self.request
        while True:
            restart: str | None = None
            stream = self._units(request)
            try:
                for unit, _last in stream:
                    self.steps += 1
                    outcome = yield from self._judge_unit(unit)
                    if outcome == "accepted":
                        continue
                    if outcome.startswith("finish:"):
                        return outcome[7:]
                    restart = outcome
                    break
            finally:
                close = getattr(stream, "close", None)
                if close:
                    close()
            if restart is None:
                finish = yield from self._finish()
                if finish is None:
                    restart = self._last_feedback
                else:
                    return finish
            self.rerequests += 1
            if self.rerequests > self.max_rerequests:
                return (yield from self._refuse("max_rerequests", len(self.observations)))
            request = UnitRequest(
                messages=request.messages,
                prefix=self.text,
                feedback=restart,
                seed=request.seed,
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                options=request.options,
            )

    _last_feedback: str = ""

    def _judge_unit(self, unit: str) -> Generator[Emission, None, str]:
        """Returns accepted | finish:<reason> | <feedback for a re-request>."""
        step = Step(
            index=len(self.observations),
            text=self.text + unit,
            candidate=unit,
            candidate_id=None,
            released=self.out.released,
            surprisal=0.0,
            observations=self.observations,
        )
        verdict = self.judge.judge(step)
        for v in verdict.interventions:
            self.judge.count(v)
        kind = verdict.kind
        if kind is VerdictKind.HALT:
            self._event("halt", step.index, verdict.decisive)
            return "finish:halted"
        if kind in (VerdictKind.REJECT, VerdictKind.ROLLBACK):
            chars = verdict.chars if kind is VerdictKind.ROLLBACK else len(unit)
            feedback = self._feedback(verdict.decisive)
            if chars > len(unit) and not self._retract(len(step.text) - chars):
                self._event("gate_error", step.index, verdict.decisive, problem="rollback reaches released text")
                return "finish:gate_error"
            self._event("rerequest", step.index, verdict.decisive, chars=chars)
            return feedback
        for v in verdict.redactions:
            if not self.out.add_redaction(v.start, v.end, v.replacement):
                return "finish:gate_error"
            self._event("redact", step.index, v, start=v.start, end=v.end)
        self.text = step.text
        observation = Observation(index=step.index, text=unit, verdicts=list(verdict.interventions))
        self.observations.append(observation)
        self.out.commit_boundary(len(self.text))
        for metric in self.judge.committers:
            metric.on_commit(step, observation)
        emission = self.out.release(self.text, verdict.hold)
        if emission is not None:
            yield emission
        return "accepted"

    def _retract(self, target: int) -> bool:
        """Drop committed, unreleased units so that at most ``target`` characters remain."""
        if target < self.out.released:
            return False
        keep = len(self.out.boundaries)
        while keep and self.out.boundaries[keep - 1] > target:
            keep -= 1
        self.out.truncate(keep)
        del self.observations[keep:]
        self.text = self.text[: self.out.boundaries[-1] if self.out.boundaries else 0]
        for metric in self.judge.rollbackers:
            metric.on_rollback(len(self.text))
        return True

    @staticmethod
    def _feedback(verdict) -> str:  # type: ignore[no-untyped-def]
        reason = getattr(verdict, "reason", "") or "the previous continuation was not admissible"
        return f"Rewrite the continuation: {reason}."

    def _finish(self) -> Generator[Emission, None, str | None]:
        step = Step(
            index=len(self.observations), text=self.text, candidate="", candidate_id=None,
            released=self.out.released, surprisal=0.0, observations=self.observations, is_final=True,
        )
        verdict = self.judge.judge(step)
        for v in verdict.interventions:
            self.judge.count(v)
        if verdict.kind is VerdictKind.HALT:
            return "halted"
        if verdict.kind in (VerdictKind.REJECT, VerdictKind.ROLLBACK):
            if not self._retract(len(self.text) - max(verdict.chars, 0)):
                return "gate_error"
            self._last_feedback = self._feedback(verdict.decisive)
            return None
        for v in verdict.redactions:
            if not self.out.add_redaction(v.start, v.end, v.replacement):
                return "gate_error"
        emission = self.out.release(self.text, 0, final=True)
        if emission is not None:
            yield emission
        return "stop"
