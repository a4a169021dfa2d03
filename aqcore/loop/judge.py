"""Asking every enabled metric (and gate plugins) about one step, and combining the answers:
halt > rollback > reject > redact > admit; the hold is the largest any metric asks for."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import GateError
from ..gate import GateContext, GateMetric, Step
from ..models import Verdict, VerdictKind

_SEVERITY = {
    VerdictKind.ADMIT: 0,
    VerdictKind.REDACT: 1,
    VerdictKind.REJECT: 2,
    VerdictKind.ROLLBACK: 3,
    VerdictKind.HALT: 4,
}

PluginGate = Callable[[Step, GateContext], list[Verdict | None]]


@dataclass(frozen=True, slots=True)
class Judgement:
    """The combined answer for one step (shared between steps when it is a plain admit)."""

    kind: VerdictKind = VerdictKind.ADMIT
    hold: int = 0
    chars: int = 0
    decisive: Verdict | None = None
    redactions: tuple[Verdict, ...] = ()
    interventions: tuple[Verdict, ...] = ()


ADMITTED = Judgement()  # every metric admits and holds nothing back
_HELD: dict[int, Judgement] = {}  # admits that hold back n characters, made once each


def held(hold: int) -> Judgement:
    """The shared admit that holds back ``hold`` characters."""
    judgement = _HELD.get(hold)
    if judgement is None:
        judgement = _HELD.setdefault(hold, Judgement(hold=hold))
    return judgement


class Judge:
    """Binds the metrics that judge candidates, and counts their interventions."""

    def __init__(self, metrics: list[GateMetric], context: GateContext, plugin_gate: PluginGate | None) -> None:
        self.metrics = metrics
        self.context = context
        self.evaluators = [m for m in metrics if type(m).overrides("evaluate")]
        self.maskers = [m for m in metrics if type(m).overrides("mask")]
        self.committers = [m for m in metrics if type(m).overrides("on_commit")]
        self.rollbackers = [m for m in metrics if type(m).overrides("on_rollback")]
        self.plugin_gate = plugin_gate
        self.counts: Counter[tuple[str, str]] = Counter()
        # no metric looks at candidates or commits: the loop may skip building steps
        self.idle = not self.evaluators and not self.committers and plugin_gate is None

    def judge(self, step: Step) -> Judgement:
        hold = 0
        interventions: list[Verdict] | None = None
        for metric in self.evaluators:
            try:
                verdict = metric.evaluate(step)
            except Exception as exc:
                raise GateError(f"gate metric {metric.name!r} failed on step {step.index}: {exc}") from exc
            if verdict is None:
                continue
            if not isinstance(verdict, Verdict):
                raise GateError(
                    f"gate metric {metric.name!r} returned {verdict!r} on step {step.index}; "
                    "expected a Verdict or None"
                )
            if verdict.kind is VerdictKind.ADMIT:
                if verdict.hold > hold:
                    hold = verdict.hold
            elif interventions is None:
                interventions = [verdict]
            else:
                interventions.append(verdict)
        if self.plugin_gate is not None:
            for verdict in self.plugin_gate(step, self.context):
                if verdict is None:
                    continue
                if not isinstance(verdict, Verdict):
                    raise GateError(f"gate returned {verdict!r} on step {step.index}; expected a Verdict or None")
                if verdict.kind is VerdictKind.ADMIT:
                    hold = max(hold, verdict.hold)
                elif interventions is None:
                    interventions = [verdict]
                else:
                    interventions.append(verdict)
        if interventions is None:
            return held(hold) if hold else ADMITTED
        return _combine(hold, interventions)

    def count(self, verdict: Verdict) -> None:
        self.counts[(verdict.metric, verdict.kind.value)] += 1

    def counts_by_metric(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (metric, kind), n in sorted(self.counts.items()):
            out.setdefault(metric, {})[kind] = n
        return out


def _combine(hold: int, interventions: list[Verdict]) -> Judgement:
    """halt > rollback > reject > redact; among rollbacks the longest; redactions add holds."""
    kind = VerdictKind.ADMIT
    chars = 0
    decisive: Verdict | None = None
    redactions: list[Verdict] = []
    for verdict in interventions:
        if verdict.kind is VerdictKind.REDACT:
            redactions.append(verdict)
            hold = max(hold, verdict.hold)
        if _SEVERITY[verdict.kind] > _SEVERITY[kind] or (
            verdict.kind is kind is VerdictKind.ROLLBACK and verdict.chars > chars
        ):
            kind = verdict.kind
            decisive = verdict
            chars = verdict.chars if kind is VerdictKind.ROLLBACK else chars
    return Judgement(kind, hold, chars, decisive, tuple(redactions), tuple(interventions))
