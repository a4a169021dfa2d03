"""pii: personal data that must not be released: email addresses, phone numbers, payment
cards (Luhn-checked), US social security numbers and IBANs (mod-97 checked).

``on_violation = "redact"`` releases ``[REDACTED:<kind>]`` in place of the match (the model
keeps its own text); ``rollback`` makes the model re-decode from the start of the match;
``halt`` stops. A match that could still grow (a partial match, or a complete one at the end
of the text) is held back, so no part of it is released before it is judged.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Literal

from pydantic import Field, field_validator

from ..gate import GateContext, MetricSettings, Step
from .common import cached_regex, pending, violation
from .scanning import Scan, ScanningMetric, merge_redactions

PiiKind = Literal["email", "phone", "card", "ssn", "iban"]
ALL_KINDS: tuple[PiiKind, ...] = ("email", "phone", "card", "ssn", "iban")

_PATTERNS: dict[str, str] = {
    "email": r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])",
    "phone": r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){2,4}(?![\w])",
    "card": r"(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])",
    "ssn": r"(?<![\d-])\d{3}([- ])\d{2}\1\d{4}(?![\d-])",
    "iban": r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])",
}
# When several kinds match the same text, the more specific (checksummed) one names it.
_PRIORITY = {"card": 0, "iban": 1, "ssn": 2, "email": 3, "phone": 4}


def luhn_ok(digits: str) -> bool:
    """The Luhn check used by payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    """ISO 13616 check: move the first four characters to the end, letters to numbers, mod 97."""
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def ssn_ok(text: str) -> bool:
    """US SSN rules: no area 000, 666 or 9xx, no group 00, no serial 0000."""
    digits = "".join(c for c in text if c.isdigit())
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


# The quiet-tail fast path (see Pii._quiet_hold). Every pattern needs a digit or "@" to match,
# and a partial match can only start with a digit, "+", "(" (phone), an email's local part or
# an IBAN's two capital letters.
_TRIGGERS = frozenset(string.digits + "@+(")
_EMAIL_RUN = string.ascii_letters + string.digits + "_.+-"  # [\w.+-] on ASCII
_EMAIL_RUN_SET = frozenset(_EMAIL_RUN)
_ALNUM = frozenset(string.ascii_letters + string.digits)
_UPPER = frozenset(string.ascii_uppercase)

_VALID: dict[str, Callable[[str], bool]] = {
    "email": lambda s: True,
    "phone": lambda s: 10 <= len(_digits(s)) <= 15,
    "card": lambda s: 13 <= len(_digits(s)) <= 19 and luhn_ok(_digits(s)),
    "ssn": ssn_ok,
    "iban": iban_ok,
}


class PiiSettings(MetricSettings):
    """``[metrics.pii]``."""

    kinds: list[PiiKind] = Field(default_factory=lambda: list(ALL_KINDS), min_length=1)
    on_violation: Literal["redact", "rollback", "halt"] = "redact"
    replacement: str = Field(
        default="[REDACTED:{kind}]", description="released for a redacted match; {kind} is the kind"
    )

    @field_validator("replacement")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(kind="email")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"replacement template {value!r} is invalid: only {{kind}} may be used ({exc})"
            ) from None
        return value




class Pii(ScanningMetric):
    """Email, phone, payment card, US SSN and IBAN detection with holdback."""

    name = "pii"
    Settings = PiiSettings
    settings: PiiSettings

    def __init__(self, settings: PiiSettings, context: GateContext) -> None:  # type: ignore[override]
        super().__init__(settings, context)
        self._patterns = [(kind, cached_regex(_PATTERNS[kind])) for kind in settings.kinds]
        self._email = "email" in settings.kinds
        self._iban = "iban" in settings.kinds

    def _quiet_hold(self, text: str, settled: int) -> int | None:
        """The hold the full scan would compute, without running a regex, when the unsettled
        tail ``text[settled:]`` is ASCII with no digit, "@", "+" or "(" (the usual case): then
        no pattern can match in it, and the only pending (partial) matches are an email local
        part (a run of ``[\\w.+-]`` reaching the end) and an IBAN country code (one or two
        capitals ending the text). None: run the full scan."""
        tail = text[settled:]
        if not tail.isascii() or not _TRIGGERS.isdisjoint(tail):
            return None
        n = len(text)
        hold = n
        if self._email:
            run = settled + len(tail.rstrip(_EMAIL_RUN))  # start of the trailing [\w.+-] run
            if run < n:
                if run > settled or settled == 0:
                    hold = run  # preceded by an ASCII non-run character, or the start
                else:
                    before = text[settled - 1]
                    if not before.isascii():
                        return None  # \w on a non-ASCII character: let the regex decide
                    if before not in _EMAIL_RUN_SET:
                        hold = run
                    # else the run starts before ``settled``: no match may start inside it
        if self._iban and n and text[n - 1] in _UPPER:
            if n >= 2 and text[n - 2] in _UPPER:
                start = n - 2  # two capitals: a match can only start at the first
            else:
                start = n - 1
            if start >= settled and (start == 0 or text[start - 1] not in _ALNUM):
                hold = min(hold, start)
        return hold

    def scan(self, step: Step, settled: int) -> Scan:
        text = step.text
        if self.fast and not step.is_final:
            quiet = self._quiet_hold(text, settled)
            if quiet is not None:
                return Scan(self.held(step, quiet), quiet)
        n = len(text)
        hold = n
        found: list[tuple[int, int, int, str]] = []  # (start, priority, -end, kind)
        for kind, pattern in self._patterns:
            for match in pattern.finditer(text, settled, partial=not step.is_final):
                if match.end() == match.start():
                    continue
                if pending(match, text, step.is_final):
                    hold = min(hold, match.start())
                    break
                if _VALID[kind](match.group()):
                    found.append((match.start(), _PRIORITY[kind], -match.end(), kind))
        # A complete match that overlaps a pending one waits for it: "4111 1111 1111" is a
        # phone number only until the fourth group makes it a card.
        changed = True
        while changed:
            changed = False
            for start, _, neg_end, _ in found:
                if -neg_end > hold and start < hold:
                    hold, changed = start, True
        found = [f for f in found if -f[2] <= hold]
        if not found:
            return Scan(self.held(step, hold), hold)
        found.sort()
        chosen: list[tuple[int, int, str]] = []
        for start, _, neg_end, found_kind in found:
            if chosen and start < chosen[-1][1]:
                continue
            chosen.append((start, -neg_end, found_kind))
        reason = "personal data: " + ", ".join(sorted({k for _, _, k in chosen}))
        action = self.settings.on_violation
        if action != "redact":
            start, end, _ = chosen[0]
            return Scan(violation(self, action, step, start, end, reason), hold)
        start, end, replacement = merge_redactions(
            text, [(s, e, self.settings.replacement.format(kind=k)) for s, e, k in chosen]
        )
        verdict = violation(self, action, step, start, end, reason, replacement)
        hold = max(hold, end)
        after = self.held(step, hold)
        if after is not None and verdict.kind.value == "redact":
            verdict = verdict.model_copy(update={"hold": after.hold})
        return Scan(verdict, hold)
