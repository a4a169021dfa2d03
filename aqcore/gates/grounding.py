"""grounding: numbers (and, if enabled, quoted spans) released must occur in the source set.

Numbers are compared in a normal form (``1,250.00`` = ``1250`` = ``1250.0``); quoted spans
in the normalised text form of :mod:`aqcore.gates.normalize`. The source set is the
invocation's sources (``sources=[...]`` / ``--source FILE``), the conversation's stored
sources and, unless ``include_prompt = false``, the prompt. A number that is still being
written (at the end of the text, or followed only by ``.``/``,`` and digits) and an open
quotation are held back until they are complete.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..gate import GateContext, MetricSettings, Step
from .common import cached_regex, violation
from .normalize import normalize
from .scanning import Scan, ScanningMetric

NUMBER = r"(?<![\d.,])\d+(?:,\d{3})*(?:\.\d+)?"
_NUMBER_TAIL = r"[.,]\d*"
_QUOTE = r"[\"“]([^\"”\n]+)[\"”]"
_DIGITS = frozenset(string.digits)
_QUOTES = frozenset("\"“")


def normalize_number(text: str) -> str:
    """``1,250.00`` → ``1250``; ``007`` → ``7``; ``3.50`` → ``3.5``."""
    text = text.replace(",", "")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.lstrip("0") or "0"


def numbers_in(text: str) -> set[str]:
    """Every number of ``text``, normalised."""
    return {normalize_number(m.group()) for m in cached_regex(NUMBER).finditer(text)}


class GroundingSettings(MetricSettings):
    """``[metrics.grounding]``."""

    numbers: bool = True
    quoted_spans: bool = False
    include_prompt: bool = Field(
        default=True, description="numbers and quotes of the prompt count as sources"
    )
    min_digits: int = Field(default=1, ge=1, description="numbers with fewer digits are not checked")
    ignore: list[str] = Field(default_factory=list, description="numbers always admissible (e.g. '1', '24')")
    min_quote_chars: int = Field(default=8, ge=1, description="shorter quotations are not checked")
    on_violation: Literal["rollback", "halt"] = "rollback"

    @field_validator("ignore")
    @classmethod
    def _numbers(cls, value: list[str]) -> list[str]:
        for item in value:
            if not cached_regex(NUMBER).fullmatch(item.strip()):
                raise ValueError(f"{item!r} is not a number")
        return value

    @model_validator(mode="after")
    def _something(self) -> GroundingSettings:
        if not self.numbers and not self.quoted_spans:
            raise ValueError("enable at least one of 'numbers' or 'quoted_spans'")
        return self


@dataclass
class _Sources:
    numbers: set[str]
    text: str  # normalised, for quoted spans


class Grounding(ScanningMetric):
    """Numbers and quotations must come from the sources."""

    name = "grounding"
    Settings = GroundingSettings
    settings: GroundingSettings

    def __init__(self, settings: GroundingSettings, context: GateContext) -> None:  # type: ignore[override]
        super().__init__(settings, context)
        texts = list(context.sources) + list(context.conversation_state.sources)
        if settings.include_prompt and context.prompt:
            texts.append(context.prompt)
        numbers: set[str] = set()
        for text in texts:
            numbers |= numbers_in(text)
        numbers |= {normalize_number(n.strip()) for n in settings.ignore}
        quote_text = "\n".join(normalize(t) for t in texts) if settings.quoted_spans else ""
        self._sources = _Sources(numbers, quote_text)


    def scan(self, step: Step, settled: int) -> Scan:
        text = step.text
        n = len(text)
        final = step.is_final
        if self.fast:
            # Every number starts with a digit, every quotation with a quote mark: an ASCII
            # tail without them can hold neither (complete or pending).
            tail = text[settled:]
            if tail.isascii() and _DIGITS.isdisjoint(tail) and (
                not self.settings.quoted_spans or _QUOTES.isdisjoint(tail)
            ):
                return Scan(None, n)
        hold = n
        bad: tuple[int, int, str] | None = None
        if self.settings.numbers:
            tail = cached_regex(_NUMBER_TAIL)
            for match in cached_regex(NUMBER).finditer(text, settled):
                if not final and (match.end() == n or tail.fullmatch(text, match.end())):
                    hold = min(hold, match.start())
                    break
                digits = sum(c.isdigit() for c in match.group())
                value = normalize_number(match.group())
                if digits >= self.settings.min_digits and value not in self._sources.numbers:
                    bad = (match.start(), match.end(), f"the number {match.group()!r} is not in the sources")
                    break
        if self.settings.quoted_spans:
            for match in cached_regex(_QUOTE).finditer(text, settled, partial=not final):
                if match.partial:
                    hold = min(hold, match.start())
                    break
                quoted = normalize(match.group(1)).strip()
                if len(quoted) >= self.settings.min_quote_chars and quoted not in self._sources.text:
                    if bad is None or match.start() < bad[0]:
                        bad = (
                            match.start(),
                            match.end(),
                            f"the quotation {match.group()!r} is not in the sources",
                        )
                    break
        if bad is not None:
            return Scan(violation(self, self.settings.on_violation, step, bad[0], bad[1], bad[2]), hold)
        return Scan(self.held(step, hold), hold)
