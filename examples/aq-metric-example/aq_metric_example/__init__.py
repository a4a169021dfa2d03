"""aq-metric-example: a gate metric that keeps the model from shouting.

A word of ``min_letters`` or more letters, all upper case, is inadmissible: the model rolls
back to the start of the word and writes something else (or the invocation halts). A word
still being written that is all upper case so far is held back, so no part of a shouted word
ever reaches the consumer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from pydantic import Field

from aqcore import GateMetric, MetricSettings, Step, Verdict, VerdictKind, hookimpl

_WORD = re.compile(r"[^\W\d_]+")  # a run of letters


class NoShoutingSettings(MetricSettings):
    """``[metrics.no_shouting]``."""

    min_letters: int = Field(default=4, ge=2, description="shorter capitalised words (OK, USA) are fine")
    on_violation: Literal["rollback", "halt"] = "rollback"


class NoShouting(GateMetric):
    """Rejects words written entirely in capitals."""

    name = "no_shouting"
    Settings = NoShoutingSettings
    settings: NoShoutingSettings

    def evaluate(self, step: Step) -> Verdict | None:
        text = step.text
        # Only words touching the candidate can have changed: start at the word it extends.
        start = len(text) - len(step.candidate)
        while start > 0 and text[start - 1].isalpha():
            start -= 1
        for match in _WORD.finditer(text, start):
            word = match.group()
            growing = match.end() == len(text) and not step.is_final
            if not word.isupper():
                continue
            if growing:
                # "SHO" may become "SHOUT": hold it until the word is complete.
                return self.verdict(VerdictKind.ADMIT, hold=len(text) - match.start())
            if len(word) >= self.settings.min_letters:
                reason = f"{word!r} is shouting; write it in normal case"
                if self.settings.on_violation == "halt":
                    return self.verdict(VerdictKind.HALT, reason=reason)
                return self.verdict(VerdictKind.ROLLBACK, chars=len(text) - match.start(), reason=reason)
        return None


@hookimpl
def aq_register_gate_metrics(register: Callable[..., None]) -> None:
    """Make ``[metrics.no_shouting]`` available to every aq policy."""
    register(NoShouting)
