"""A scripted driver for gate-metric tests: feeds candidate strings to metrics exactly as the
token (or unit) loop does (judge, commit, rollback, release with holdback and redactions),
using the loop's own Judge and ReleaseBuffer. The scripted "model" skips a candidate that was
rejected or rolled back and goes on with the rest of the script, so a test can assert what
reaches the consumer whatever the metric decides."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aqcore.gate import GateContext, GateMetric, Step
from aqcore.gates.builtin import BUILTIN_METRICS
from aqcore.loop.judge import Judge
from aqcore.loop.release import ReleaseBuffer
from aqcore.models import AgentState, ConversationState, Observation, Scope, Verdict, VerdictKind
from aqcore.policy import Policy, build_policy

METRICS = {m.name: m for m in BUILTIN_METRICS}


def policy(metrics: dict[str, Any] | None = None, **top: Any) -> Policy:
    """A validated policy with the given ``[metrics.*]`` tables."""
    return build_policy({"name": "test", **top, "metrics": metrics or {}}, METRICS)


def context(
    pol: Policy,
    *,
    sources: Sequence[str] = (),
    prompt: str = "",
    vocab: Any = None,
    granularity: Literal["token", "unit"] = "token",
    agent_state: AgentState | None = None,
    conversation_state: ConversationState | None = None,
    invocation: str = "inv1",
) -> GateContext:
    return GateContext(
        policy=pol,
        scope=Scope(agent="a", conversation="c", invocation=invocation),
        agent_state=agent_state or AgentState(),
        conversation_state=conversation_state or ConversationState(),
        sources=list(sources),
        vocab=vocab,
        granularity=granularity,
        temperature=1.0,
        degraded=False,
        prompt=prompt,
    )


def bind(pol: Policy, ctx: GateContext) -> list[GateMetric]:
    return [METRICS[name](settings, ctx) for name, settings in pol.metrics.items()]


@dataclass
class Outcome:
    released: str
    text: str
    finish: str
    verdicts: list[Verdict] = field(default_factory=list)
    metrics: list[GateMetric] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return [v.kind.value for v in self.verdicts]


def drive(
    metrics: list[GateMetric],
    ctx: GateContext,
    pieces: Iterable[str],
    *,
    surprisals: Iterable[float] | None = None,
) -> Outcome:
    """Run ``pieces`` (one candidate each) through ``metrics`` as the loop would."""
    judge = Judge(metrics, ctx, None)
    out = ReleaseBuffer("full", "normal", on_emit=lambda e: None)
    text = ""
    ends: list[int] = []
    observations: list[Observation] = []
    seen: list[Verdict] = []
    s_iter = iter(surprisals) if surprisals is not None else None
    finish = "stop"
    for piece in pieces:
        surprisal = next(s_iter) if s_iter is not None else 0.0
        step = Step(
            index=len(observations),
            text=text + piece,
            candidate=piece,
            candidate_id=0 if ctx.granularity == "token" else None,
            released=out.released,
            surprisal=surprisal,
            observations=observations,
        )
        verdict = judge.judge(step)
        seen.extend(verdict.interventions)
        kind = verdict.kind
        if kind is VerdictKind.HALT:
            return Outcome(out.output, text, "halted", seen, metrics)
        if kind is VerdictKind.REJECT:
            continue
        if kind is VerdictKind.ROLLBACK:
            target = len(step.text) - verdict.chars
            assert target >= out.released, f"rollback into released text: {verdict}"
            keep = len(ends)
            while keep and ends[keep - 1] > target:
                keep -= 1
            del ends[keep:]
            del observations[keep:]
            text = text[: ends[-1] if ends else 0]
            out.truncate(keep)
            for metric in judge.rollbackers:
                metric.on_rollback(len(text))
            continue
        for v in verdict.redactions:
            assert out.add_redaction(v.start, v.end, v.replacement), f"redaction into released text: {v}"
        text = step.text
        ends.append(len(text))
        observation = Observation(index=len(observations), token_id=0, text=piece, surprisal=surprisal)
        observations.append(observation)
        out.commit_boundary(len(text))
        for metric in judge.committers:
            metric.on_commit(step, observation)
        # A redaction's hold counts like an admit's (the span after it may still be pending).
        out.release(text, max([verdict.hold, *(v.hold for v in verdict.redactions)]))
    # The final evaluation resolves whatever is still pending.
    for _ in range(8):
        step = Step(
            index=len(observations),
            text=text,
            candidate="",
            candidate_id=None,
            released=out.released,
            surprisal=0.0,
            observations=observations,
            is_final=True,
        )
        verdict = judge.judge(step)
        seen.extend(verdict.interventions)
        if verdict.kind is VerdictKind.HALT:
            return Outcome(out.output, text, "halted", seen, metrics)
        if verdict.kind is VerdictKind.ROLLBACK:
            target = len(text) - verdict.chars
            assert target >= out.released, f"rollback into released text: {verdict}"
            keep = len(ends)
            while keep and ends[keep - 1] > target:
                keep -= 1
            del ends[keep:]
            del observations[keep:]
            text = text[: ends[-1] if ends else 0]
            out.truncate(keep)
            for metric in judge.rollbackers:
                metric.on_rollback(len(text))
            continue
        for v in verdict.redactions:
            assert out.add_redaction(v.start, v.end, v.replacement), f"redaction into released text: {v}"
        break
    out.release(text, 0, final=True)
    return Outcome(out.output, text, finish, seen, metrics)


def run(metrics_tables: dict[str, Any], pieces: Iterable[str], **ctx_args: Any) -> Outcome:
    """Validate a policy, bind its metrics and drive ``pieces`` through them."""
    pol = policy(metrics_tables)
    ctx = context(pol, **ctx_args)
    return drive(bind(pol, ctx), ctx, pieces)
