"""deny_phrases: literal phrases and regexes that must never be released.

Matching runs on the normalised text (:mod:`aqcore.gates.normalize`), across token
boundaries: the metric keeps the normalised form of the committed text incrementally and
scans only the part that is not settled yet. Any suffix of the text that is a prefix of a
phrase (or a partial match of a regex) is held back, so a phrase split over any number of
tokens is caught before any of it is released, and a rollback never reaches released text.

Literal phrases go through one Aho-Corasick automaton (pyahocorasick): the cost per token
depends on the new text and the longest phrase, not on the number of phrases or the
vocabulary.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, ClassVar

import ahocorasick
from pydantic import Field, field_validator, model_validator

from ..gate import GateContext, GateMetric, MetricSettings, Step
from ..models import Observation, Verdict
from .common import Starters, ViolationAction, admit, committed_length, compile_regex, starters, violation
from .normalize import NormalizedText, normalize_phrase

if TYPE_CHECKING:
    import regex


class DenyPhrasesSettings(MetricSettings):
    """``[metrics.deny_phrases]``."""

    phrases: list[str] = Field(default_factory=list, description="literal phrases, matched normalised")
    regexes: list[str] = Field(
        default_factory=list,
        description="regular expressions matched on the normalised (case-folded) text",
    )
    on_violation: ViolationAction = "rollback"
    replacement: str = Field(default="[REDACTED]", description="released instead, for on_violation='redact'")

    @field_validator("phrases")
    @classmethod
    def _phrases(cls, value: list[str]) -> list[str]:
        for i, phrase in enumerate(value):
            if not normalize_phrase(phrase):
                raise ValueError(f"phrase [{i}] {phrase!r} is empty once normalised")
        return value

    @field_validator("regexes")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            compile_regex(pattern, ignore_case=True)
        return value

    @model_validator(mode="after")
    def _something(self) -> DenyPhrasesSettings:
        if not self.phrases and not self.regexes:
            raise ValueError("give at least one of 'phrases' or 'regexes'")
        return self


@dataclass
class _Matcher:
    """The compiled form of a settings object, shared by every invocation that uses it."""

    phrases: list[str]
    automaton: ahocorasick.Automaton | None
    longest: int
    regexes: list[regex.Pattern[str]] = field(default_factory=list)
    # per regex, which characters can begin a match (see common.Starters)
    starters: list[Starters] = field(default_factory=list)
    # The same phrases as a deterministic Aho-Corasick automaton walked in Python, one state
    # per normalised character, so that a step only reads its own new characters:
    # delta[s][c] is the next state (absent: the root), out[s] whether a phrase ends in s,
    # depth[s] the length of the longest suffix read so far that is a prefix of a phrase.
    delta: list[dict[str, int]] = field(default_factory=list)
    out: list[bool] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)

    def walk(self, state: int, text: str) -> tuple[int, bool]:
        """The state after reading ``text`` from ``state``, and whether a phrase ended."""
        delta, out = self.delta, self.out
        hit = False
        for c in text:
            state = delta[state].get(c, 0)
            if out[state]:
                hit = True
        return state, hit


def _dfa(phrases: list[str]) -> tuple[list[dict[str, int]], list[bool], list[int]]:
    goto: list[dict[str, int]] = [{}]
    depth, terminal = [0], [False]
    for phrase in phrases:
        state = 0
        for c in phrase:
            nxt = goto[state].get(c)
            if nxt is None:
                nxt = goto[state][c] = len(goto)
                goto.append({})
                depth.append(depth[state] + 1)
                terminal.append(False)
            state = nxt
        terminal[state] = True
    fail = [0] * len(goto)
    out = terminal[:]
    delta: list[dict[str, int]] = [{} for _ in goto]
    delta[0] = dict(goto[0])
    queue = deque(goto[0].values())
    while queue:  # breadth first: a failure state is complete before the states using it
        state = queue.popleft()
        out[state] = out[state] or out[fail[state]]
        if state:
            delta[state] = {**delta[fail[state]], **goto[state]}
        for c, child in goto[state].items():
            fail[child] = delta[fail[state]].get(c, 0) if state else 0
            queue.append(child)
    return delta, out, depth


def _matcher(settings: DenyPhrasesSettings) -> _Matcher:
    return _build_matcher(tuple(settings.phrases), tuple(settings.regexes))


@lru_cache(maxsize=64)
def _build_matcher(raw_phrases: tuple[str, ...], patterns: tuple[str, ...]) -> _Matcher:
    """Compile once per distinct configuration; every invocation under it shares the result."""
    phrases = sorted({normalize_phrase(p) for p in raw_phrases})
    regexes = [compile_regex(p, ignore_case=True) for p in patterns]
    automaton = None
    delta: list[dict[str, int]] = []
    out: list[bool] = []
    depth: list[int] = []
    if phrases:
        delta, out, depth = _dfa(phrases)
        automaton = ahocorasick.Automaton()
        for i, phrase in enumerate(phrases):
            automaton.add_word(phrase, (i, len(phrase)))
        automaton.make_automaton()
    return _Matcher(
        phrases=phrases,
        automaton=automaton,
        longest=max((len(p) for p in phrases), default=0),
        regexes=regexes,
        starters=[starters(r) for r in regexes],
        delta=delta,
        out=out,
        depth=depth,
    )


@dataclass
class _Analysis:
    text: str
    verdict: Verdict | None
    piece: tuple[str, list[int], list[int]]
    hold_norm: int  # normalised characters held back after this step
    state: int | None = None  # automaton state after the candidate
    clean: bool = True  # nothing was found (the verdict is an admit)
    regex_pending: bool = True  # a regex's partial match is held (True when not known)


class DenyPhrases(GateMetric):
    """Literal phrases and regexes that must never be released, whatever the spelling."""

    name = "deny_phrases"
    Settings = DenyPhrasesSettings
    settings: DenyPhrasesSettings
    # The incremental fast path; tests turn it off to compare verdicts with the full scan.
    fast: ClassVar[bool] = True

    def __init__(self, settings: DenyPhrasesSettings, context: GateContext) -> None:  # type: ignore[override]
        super().__init__(settings, context)
        self._m = _matcher(settings)
        self._norm = NormalizedText()
        self._hold_norm = 0  # normalised chars at the end of the committed text still unsettled
        self._redacted: list[tuple[int, int]] = []
        self._last: _Analysis | None = None
        self._state: int | None = 0  # automaton state after the committed text (None: unknown)
        # No match was ever committed since the last full rescan (a rollback, a resync): then
        # the committed text holds no phrase, and every suffix of it that is a prefix of a
        # phrase starts inside the held tail. Under that invariant the automaton state alone
        # says what the full scan of the tail would find.
        self._clean = True
        # No regex had a partial match in the committed text's tail: then a regex match can only
        # begin in the new text, at a character that can begin one (see _quick).
        self._regex_pending = False

    def evaluate(self, step: Step) -> Verdict | None:
        analysis = self._analyse(step)
        self._last = analysis
        return analysis.verdict

    def on_commit(self, step: Step, observation: Observation) -> None:
        analysis = (
            self._last if self._last is not None and self._last.text == step.text else self._analyse(step)
        )
        self._last = None
        self._norm.append_piece(step.candidate, *analysis.piece)
        self._hold_norm = analysis.hold_norm
        self._state = analysis.state
        self._regex_pending = analysis.regex_pending
        if not analysis.clean:
            self._clean = False
        verdict = analysis.verdict
        if verdict is not None and verdict.kind.value == "redact":
            self._redacted.append((verdict.start, verdict.end))

    def on_rollback(self, length: int) -> None:
        self._norm.truncate(length)
        # Unknown how much of what is left is a pending prefix: rescan the whole tail.
        self._hold_norm = len(self._norm.norm)
        self._redacted = [(s, e) for s, e in self._redacted if e <= length]
        self._last = None
        self._state = None
        self._clean = not self._redacted
        self._regex_pending = True

    # -- internals -------------------------------------------------------------------------

    def _sync(self, step: Step) -> None:
        """Rebuild the committed normal form if it drifted from the loop's text."""
        committed = committed_length(step)
        if self._norm.raw_len != committed:
            self._norm = NormalizedText.of(step.text[:committed])
            self._hold_norm = len(self._norm.norm)
            self._redacted = [(s, e) for s, e in self._redacted if e <= committed]
            self._state = None
            self._clean = not self._redacted
            self._regex_pending = True

    def _analyse(self, step: Step) -> _Analysis:
        self._sync(step)
        base = self._norm
        piece = base.piece(step.candidate)
        m = self._m
        if not m.phrases:
            return self._full(step, piece, None)
        if self._state is None:
            self._state = m.walk(0, base.norm)[0]
        state, hit = m.walk(self._state, piece[0])
        if self.fast and self._clean and not hit and not step.is_final:
            quick = self._quick(step, piece, state)
            if quick is not None:
                return quick
        return self._full(step, piece, state)

    def _quick(self, step: Step, piece: tuple[str, list[int], list[int]], state: int) -> _Analysis | None:
        """The full analysis's answer when no phrase ends in the candidate and the committed
        text is clean (see ``_clean``): the longest pending phrase prefix is the automaton
        state's depth; only the regexes are run over the held tail. None when a regex matches
        (the full analysis judges it)."""
        base = self._norm
        n0 = len(base.norm)
        total = n0 + len(piece[0])
        hold = total - self._m.depth[state]
        regex_pending = False
        if self._m.regexes:
            new = piece[0]
            norm: str | None = None
            scan_from = max(0, n0 - self._hold_norm)
            for pattern, begins in zip(self._m.regexes, self._m.starters, strict=True):
                if not self._regex_pending and not begins.any_in(new):
                    # nothing of this pattern was pending, and no match can begin in the new
                    # text: the scan would find nothing
                    continue
                if norm is None:
                    norm = base.norm + new
                for match in pattern.finditer(norm, scan_from, partial=True):
                    if match.end() == match.start():
                        continue
                    if not match.partial:
                        return None
                    hold = min(hold, match.start())
                    regex_pending = True
        verdict = None
        if hold < total:
            raw = base.starts[hold] if hold < n0 else piece[1][hold - n0]
            verdict = admit(self, step, raw)
        return _Analysis(step.text, verdict, piece, total - hold, state, regex_pending=regex_pending)

    def _full(self, step: Step, piece: tuple[str, list[int], list[int]], state: int | None) -> _Analysis:
        """Scan the whole unsettled tail with the automaton and the regexes."""
        base = self._norm
        norm = base.norm + piece[0]
        n0 = len(base.norm)
        scan_from = max(0, n0 - self._hold_norm)

        def raw_of(i: int) -> int:
            if i < n0:
                return base.starts[i]
            j = i - n0
            return piece[1][j] if j < len(piece[1]) else len(step.text)

        def raw_end(i: int) -> int:  # one past the raw character of normalised index i
            return base.ends[i] if i < n0 else piece[2][i - n0]

        found: list[tuple[int, int, str]] = []  # (norm start, norm end, what matched)
        hold = len(norm)
        m = self._m
        if m.automaton is not None:
            for end_index, (i, length) in m.automaton.iter(norm, scan_from):
                start = end_index - length + 1
                if not self._redacted_span(raw_of(start), raw_end(end_index)):
                    found.append((start, end_index + 1, f"phrase {m.phrases[i]!r}"))
            if not step.is_final:
                hold = self._prefix_hold(norm, len(norm) - scan_from)
        regex_pending = False
        for pattern in m.regexes:
            for match in pattern.finditer(norm, scan_from, partial=not step.is_final):
                if match.end() == match.start():
                    continue
                if match.partial:
                    hold = min(hold, match.start())
                    regex_pending = True
                elif not self._redacted_span(raw_of(match.start()), raw_end(match.end() - 1)):
                    found.append((match.start(), match.end(), f"pattern {pattern.pattern!r}"))

        def held(index: int) -> Verdict | None:
            return admit(self, step, raw_of(index) if index < len(norm) else None)

        if not found:
            return _Analysis(step.text, held(hold), piece, len(norm) - hold, state, regex_pending=regex_pending)
        found.sort()
        action = self.settings.on_violation
        if action != "redact":
            start, end, label = found[0]
            verdict = violation(self, action, step, raw_of(start), raw_end(end - 1), f"denied {label}")
            return _Analysis(step.text, verdict, piece, len(norm) - hold, state, clean=False)
        # One redaction covering every match found (a unit may hold several): the text between
        # matches is kept, each match is replaced.
        spans: list[tuple[int, int]] = []
        for start, end, _ in found:
            raw_span = (raw_of(start), raw_end(end - 1))
            if spans and raw_span[0] < spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], raw_span[1]))
            else:
                spans.append(raw_span)
        pieces, cursor = [], spans[0][0]
        for s_, e_ in spans:
            pieces.append(step.text[cursor:s_] + self.settings.replacement)
            cursor = e_
        labels = ", ".join(sorted({label for _, _, label in found}))
        verdict = violation(
            self, action, step, spans[0][0], spans[-1][1], f"denied {labels}", "".join(pieces)
        )
        last_norm_end = max(end for _, end, _ in found)
        hold = max(hold, last_norm_end)  # a new match may start after the redacted span only
        after = held(hold)
        if verdict.kind.value == "redact" and after is not None:
            verdict = verdict.model_copy(update={"hold": after.hold})
        return _Analysis(step.text, verdict, piece, len(norm) - hold, state, clean=False)

    def _prefix_hold(self, norm: str, bound: int) -> int:
        """Index where the longest suffix of ``norm`` that is a proper prefix of a phrase
        starts (``len(norm)`` when there is none). A longer suffix would have been held at
        the previous step, hence ``bound``."""
        automaton = self._m.automaton
        n = len(norm)
        for k in range(min(self._m.longest - 1, bound, n), 0, -1):
            if automaton.match(norm[n - k :]):  # type: ignore[union-attr]
                return n - k
        return n

    def _redacted_span(self, start: int, end: int) -> bool:
        return any(s < end and start < e for s, e in self._redacted)
