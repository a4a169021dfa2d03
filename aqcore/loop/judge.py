"""Asking every enabled metric (and gate plugins) about one step, and combining the answers:
halt > rollback > reject > redact > admit; the hold is the largest any metric asks for."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

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


@dataclass
class Judgement:
    """The combined answer for one step."""

    kind: VerdictKind = VerdictKind.ADMIT
    hold: int = 0
    chars: int = 0
    decisive: Verdict | None = None
    redactions: list[Verdict] = field(default_factory=list)
    interventions: list[Verdict] = field(default_factory=list)


ADMITTED = Judgement()  # shared answer when nothing judges (never mutated)


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
        verdicts: list[Verdict] = []
        for metric in self.evaluators:
            try:
                verdict = metric.evaluate(step)
            except Exception as exc:
                raise GateError(f"gate metric {metric.name!r} failed on step {step.index}: {exc}") from exc
            if verdict is not None:
                verdicts.append(verdict)
        if self.plugin_gate is not None:
            verdicts.extend(v for v in self.plugin_gate(step, self.context) if v is not None)
        result = Judgement()
        for verdict in verdicts:
            if not isinstance(verdict, Verdict):
                raise GateError(f"gate returned {verdict!r} on step {step.index}; expected a Verdict or None")
            kind = verdict.kind
            if kind is VerdictKind.ADMIT:
                result.hold = max(result.hold, verdict.hold)
                continue
            result.interventions.append(verdict)
            if kind is VerdictKind.REDACT:
                result.redactions.append(verdict)
                result.hold = max(result.hold, verdict.hold)
            if _SEVERITY[kind] > _SEVERITY[result.kind] or (
                kind is result.kind is VerdictKind.ROLLBACK and verdict.chars > result.chars
            ):
                result.kind = kind
                result.decisive = verdict
                result.chars = verdict.chars if kind is VerdictKind.ROLLBACK else result.chars
        return result

    def count(self, verdict: Verdict) -> None:
        self.counts[(verdict.metric, verdict.kind.value)] += 1

    def counts_by_metric(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (metric, kind), n in sorted(self.counts.items()):
            out.setdefault(metric, {})[kind] = n
        return out
