"""Small helpers the built-in metrics share: regex compilation with clear errors, turning a
violation into the verdict its ``on_violation`` action asks for, and the "pending match"
rule for patterns that may still grow."""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING, Literal

from ..models import Verdict, VerdictKind

if TYPE_CHECKING:
    import regex

    from ..gate import GateMetric, Step

ViolationAction = Literal["rollback", "reject", "redact", "halt"]

_KINDS: dict[str, VerdictKind] = {
    "rollback": VerdictKind.ROLLBACK,
    "reject": VerdictKind.REJECT,
    "redact": VerdictKind.REDACT,
    "halt": VerdictKind.HALT,
}


@cache
def cached_regex(pattern: str, ignore_case: bool = False) -> regex.Pattern[str]:
    """``regex.compile`` once per pattern; the module is imported on first use so that
    discovering the built-in metrics stays cheap."""
    import regex

    return regex.compile(pattern, regex.IGNORECASE if ignore_case else 0)


def compile_regex(pattern: str, *, ignore_case: bool = False) -> regex.Pattern[str]:
    """Compile ``pattern`` with the ``regex`` module (which supports partial matching, used to
    hold back text that could still become a match). Raises ValueError naming the pattern."""
    import regex

    try:
        compiled = cached_regex(pattern, ignore_case)
    except regex.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    if compiled.match("") is not None:
        raise ValueError(f"regular expression {pattern!r} matches the empty string")
    return compiled


def committed_length(step: Step) -> int:
    """Length of the invocation's committed text (``step.text`` without the candidate)."""
    return len(step.text) - len(step.candidate)


def violation(
    metric: GateMetric,
    action: ViolationAction,
    step: Step,
    start: int,
    end: int,
    reason: str,
    replacement: str = "",
) -> Verdict:
    """The verdict for an inadmissible span ``step.text[start:end]`` under ``action``.

    A span that reaches into released text cannot be rolled back or redacted any more (the
    holdback should have prevented it); failing closed with ``halt`` is the only safe answer.
    """
    if action in ("rollback", "redact", "reject") and start < step.released:
        return metric.verdict(
            VerdictKind.HALT, reason=f"{reason} (the match reaches into text already released)"
        )
    if action == "reject" and step.is_final:
        # Nothing is left to resample at the end: retract the span instead.
        action = "rollback"
    kind = _KINDS[action]
    if kind is VerdictKind.ROLLBACK:
        return metric.verdict(kind, chars=len(step.text) - start, reason=reason)
    if kind is VerdictKind.REDACT:
        return metric.verdict(kind, start=start, end=end, replacement=replacement, reason=reason)
    return metric.verdict(kind, reason=reason)


def admit_hold(metric: GateMetric, hold: int) -> Verdict:
    """``admit`` holding back ``hold`` characters. Verdicts are frozen, so one object per
    (metric, hold) is built once and reused: this runs at every token."""
    cache: dict[int, Verdict] | None = metric.__dict__.get("_admit_cache")
    if cache is None:
        cache = metric.__dict__["_admit_cache"] = {}
    verdict = cache.get(hold)
    if verdict is None:
        verdict = cache[hold] = metric.verdict(VerdictKind.ADMIT, hold=hold)
    return verdict


def admit(metric: GateMetric, step: Step, hold_from: int | None) -> Verdict | None:
    """Admit, holding back ``step.text[hold_from:]`` when a match is pending there."""
    if hold_from is None or hold_from >= len(step.text):
        return None
    return admit_hold(metric, len(step.text) - hold_from)


# Constructs that make the first character of a match a poor witness of where one can start:
# look-arounds and \B, \G, \K, \M read or move outside the match, fuzzy matching may replace the
# first character, \X may extend what came before, (?r) matches backwards, conditionals branch on
# groups. A pattern with any of them (or anything that looks like one) is always scanned.
_CONTEXT_SENSITIVE = re.compile(r"\(\?<[=!]|\(\?[=!(]|\\[BGKMX]|\(\?[a-zA-Z-]*r|\{[^}]*[eids]\s*[<=]")
_STARTERS_CACHE_LIMIT = 4096


class Starters:
    r"""Which characters can begin a match (complete or partial) of a pattern.

    A character ``c`` is counted when ``pattern.match(c, partial=True)`` finds a match: on ``c``
    alone every assertion at the start sees its most permissive context (``\b``, ``^`` and
    ``\A`` hold there), so this over-approximates the characters that can begin a match
    anywhere in a text. A scan that had nothing pending can therefore skip
    text none of whose characters can begin a match. Patterns whose first character is not
    such a witness (see ``_CONTEXT_SENSITIVE``) say every character can."""

    def __init__(self, pattern: regex.Pattern[str]) -> None:
        import regex

        self._pattern = pattern
        self.exact = not _CONTEXT_SENSITIVE.search(pattern.pattern) and not pattern.flags & regex.REVERSE
        self._known: dict[str, bool] = {}

    def any_in(self, text: str) -> bool:
        """Whether a match could begin at some character of ``text``."""
        if not self.exact:
            return True
        known = self._known
        for char in text:
            begins = known.get(char)
            if begins is None:
                begins = self._pattern.match(char, partial=True) is not None
                if len(known) < _STARTERS_CACHE_LIMIT:
                    known[char] = begins
            if begins:
                return True
        return False


@cache
def starters(pattern: regex.Pattern[str]) -> Starters:
    """One :class:`Starters` per compiled pattern, shared by every invocation."""
    return Starters(pattern)


_CONTINUATION = frozenset(" .-/()+\u00a0")


def pending(match: regex.Match[str], text: str, is_final: bool) -> bool:
    """Whether a match found with ``partial=True`` may still change: a partial match, or a
    complete one followed only by characters that could continue it (an email's domain may
    grow after ``.``, a card number after a space or ``-``), unless the text is final."""
    if is_final:
        return False
    if match.partial:
        return True
    return all(c in _CONTINUATION for c in text[match.end() :])
