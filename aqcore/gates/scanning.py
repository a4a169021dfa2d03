"""The incremental scan the pattern metrics (pii, grounding, commitments) share.

Each step scans only the unsettled tail of the text: everything before ``settled`` has been
judged for good (admitted, redacted or rolled back). Matches that may still change are held
back, and the scan of the next step starts where they start. ``evaluate`` computes a
:class:`Scan` without changing the metric; ``on_commit`` applies it (the candidate might have
been rejected by another metric in between), ``on_rollback`` moves ``settled`` back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..gate import GateMetric, Step
from ..models import Observation, Verdict, VerdictKind
from .common import admit_hold, committed_length


@dataclass
class Scan:
    """What one step's scan found: the verdict, where the settled text will end once the
    candidate is committed, and metric-specific findings to apply on commit."""

    verdict: Verdict | None
    settled: int
    payload: Any = None


def merge_redactions(text: str, spans: list[tuple[int, int, str]]) -> tuple[int, int, str]:
    """One redaction (start, end, replacement) covering several (start, end, replacement)
    spans of ``text``: the text between spans is kept. Overlapping spans keep the first."""
    spans = sorted(spans)
    parts: list[str] = []
    cursor = spans[0][0]
    for start, end, replacement in spans:
        if start < cursor:
            continue
        parts.append(text[cursor:start] + replacement)
        cursor = end
    return spans[0][0], cursor, "".join(parts)


class ScanningMetric(GateMetric):
    """A gate metric that scans the unsettled tail of the text at each step."""

    # Whether ``scan`` may take its metric's shortcut past a tail that cannot hold a match (pii,
    # grounding: a quiet tail; commitments: no character that can begin an extractor's match).
    # Tests turn it off to compare verdicts with the full scan.
    fast: ClassVar[bool] = True

    def __init__(self, settings: Any, context: Any) -> None:
        super().__init__(settings, context)
        self._settled = 0
        self._last: tuple[str, Scan] | None = None

    def scan(self, step: Step, settled: int) -> Scan:
        """Judge ``step.text[settled:]`` (reading before it for context is fine)."""
        raise NotImplementedError

    def committed(self, step: Step, scan: Scan) -> None:
        """Apply ``scan.payload`` once the candidate is committed."""

    def rolled_back(self, length: int) -> None:
        """Forget findings beyond ``length``."""

    def evaluate(self, step: Step) -> Verdict | None:
        self._settled = min(self._settled, committed_length(step))
        scan = self.scan(step, self._settled)
        self._last = (step.text, scan)
        if step.is_final and (scan.verdict is None or scan.verdict.kind is VerdictKind.ADMIT):
            # No commit follows the final evaluation: what it settled is applied now.
            self._settled = len(step.text)
            self.committed(step, scan)
        return scan.verdict

    def on_commit(self, step: Step, observation: Observation) -> None:
        if self._last is not None and self._last[0] == step.text:
            scan = self._last[1]
        else:
            scan = self.scan(step, min(self._settled, committed_length(step)))
        self._last = None
        self._settled = min(scan.settled, len(step.text))
        self.committed(step, scan)

    def on_rollback(self, length: int) -> None:
        self._settled = min(self._settled, length)
        self._last = None
        self.rolled_back(length)

    def held(self, step: Step, hold_from: int) -> Verdict | None:
        """Admit, holding back ``step.text[hold_from:]``."""
        if hold_from >= len(step.text):
            return None
        return admit_hold(self, len(step.text) - hold_from)
