"""The per-token fast paths of the text metrics (pii and grounding skip the regex scan of a
quiet tail; deny_phrases walks its automaton incrementally and, like commitments, skips a
regex when nothing of it is pending and no new character can begin a match; ASCII pieces
normalise without the per-character fold) give exactly the verdicts of the full scan: same verdict at every step
(kind, hold, span, replacement, reason), same released text, over random texts cut into
random tokens."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from gatedriver import bind, context, drive, policy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aqcore.gates.commitments import Commitments
from aqcore.gates.deny_phrases import DenyPhrases
from aqcore.gates.grounding import Grounding
from aqcore.gates.normalize import NormalizedText, fold_char
from aqcore.gates.pii import Pii
from aqcore.models import Verdict

PII_FRAGMENTS = [
    "mail me at ", "ann.lee+x@shop.example.com", "a@b", "x@y.", "@", "+", "(", ")", "-", ".", "_",
    " ", "  ", "\n", "+1 (555) 123-4567", "555 123 4567", "4111 1111 1111 1111", "123-45-6789",
    "GB82 WEST 1234 5698 7654 32", "GB", "G", "I", "A", "AB", "ABC", "Zorath", "word", "é", "ß",
    "\u00a0", "٣", "0", "12", "x", "I am", " ok", "DE89 3704 0044 0532 0130 00", "call ",
    "x.AB", "a-I", "_GB", "é.DE", "ÉA", "-", "a.b-c_d",
]
# Texts whose every cut into one- and two-character tokens is checked: capitals after a
# character that continues an email local part (the IBAN hold is then the smaller one), runs
# that start before the settled point, non-ASCII before a run.
PII_TEXTS = [
    "x.AB then x-I and y_GB", "café.DE89 and éAB", "see a.b-c_d@ex.com now",
    "I paid GB82 WEST 1234 5698 7654 32.", "call +1 (555) 123-4567 or x@y.io",
    "ÉA or ßB", "A", "AB", "ABC DE", "ann.lee+x@shop.example.com", "(a) +b",
]
DENY_FRAGMENTS = [
    "wire", " the", " money", "Wire ", "THE ", "mo", "ney", "gift", " card", "gift card",
    "guaranteed", " refund", "tell me", " your", " password", "share", "this is legal advice",
    "cvv", " is", " 4", "security code", ": 9", "cvc", "CVV:", "1", "s", "c", "t", "w", "g", " ",
    "  ", "\n", "\u200b", "\u00ad", "ﬁ", "Ｗｉｒｅ", "é", "e\u0301", "the money", "wire the",
    "gift  card", "x", ".", "money.",
]
GROUNDING_FRAGMENTS = [
    "the order ", "1,250.00", "1250", "42", "7", "3.50", ".", ",", " ", "\"quoted text here\"",
    "“curly quote”", "\"", "“", "word", "٣", "é", "12", "99", " items", "2024-03-05", "$",
]

COMMITMENT_FRAGMENTS = [
    "Your ", "refund", " of", " is", " $", "25", ".00", "30", ",", "Refund ", "REFUND OF ", "amount",
    " amount is ", "order", " ", "#", "AB-", "1234", "XYZ-9876", "order id ", "no. ", "r", "o", "e",
    "f", "d", "\n", "é", "and", " the", ".", "total ", "total 12",
]
COMMITMENTS = {
    "extractors": [
        {
            "pattern": r"refund (?:of|amount of|amount is|is) \$?(?P<value>\d[\d,]*(?:\.\d{2})?)",
            "slot": "refund_amount",
        },
        {"pattern": r"order (?:id |number |no\. ?|#)?(?P<order_id>[A-Z]{2,4}-\d{3,10})"},
        {"pattern": r"(?<=total )(?P<value>\d+)", "slot": "total"},  # a look-behind: always scanned
    ],
}

DENY = {
    "phrases": [
        "wire the money", "gift card", "guaranteed refund", "this is legal advice",
        "tell me your password", "share your password",
    ],
    "regexes": [r"\b(?:cvv|cvc|security code)\s*(?:is|:)\s*\d"],
}


def _record(metrics: list[Any]) -> list[Verdict | None]:
    seen: list[Verdict | None] = []
    for metric in metrics:
        evaluate = metric.evaluate

        def recording(step: Any, evaluate: Any = evaluate, name: str = metric.name) -> Verdict | None:
            verdict = evaluate(step)
            seen.append((name, step.text, verdict))  # type: ignore[arg-type]
            return verdict

        metric.evaluate = recording
    return seen


def _run(table: dict[str, Any], pieces: list[str], fast: bool, cls: type, **ctx: Any) -> tuple[Any, ...]:
    pol = policy(table)
    c = context(pol, **ctx)
    metrics = bind(pol, c)
    for metric in metrics:
        if isinstance(metric, cls):
            metric.fast = fast  # type: ignore[attr-defined]
    seen = _record(metrics)
    outcome = drive(metrics, c, pieces)
    return outcome.released, outcome.text, outcome.finish, seen


def _cut(text: str, cuts: set[int]) -> list[str]:
    points = sorted({c for c in cuts if 0 < c < len(text)})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _same(table: dict[str, Any], pieces: list[str], cls: type, **ctx: Any) -> None:
    slow = _run(table, pieces, False, cls, **ctx)
    fast = _run(table, pieces, True, cls, **ctx)
    assert fast == slow


CUTS = st.sets(st.integers(min_value=1, max_value=120), max_size=40)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.sampled_from(PII_FRAGMENTS), min_size=1, max_size=12),
    cuts=CUTS,
    action=st.sampled_from(["redact", "rollback"]),
    kinds=st.sampled_from([None, ["email"], ["iban"], ["phone", "card", "ssn"], ["email", "iban"]]),
)
def test_pii_fast_path_gives_the_full_scans_verdicts(
    parts: list[str], cuts: set[int], action: str, kinds: list[str] | None
) -> None:
    table: dict[str, Any] = {"on_violation": action}
    if kinds is not None:
        table["kinds"] = kinds
    _same({"pii": table}, _cut("".join(parts), cuts), Pii)


@pytest.mark.parametrize("text", PII_TEXTS)
@pytest.mark.parametrize("width", [1, 2, 3])
@pytest.mark.parametrize("action", ["redact", "rollback"])
@pytest.mark.parametrize("kinds", [None, ["email"], ["iban"]])
def test_pii_fast_path_on_every_small_cut(text: str, width: int, action: str, kinds: list[str] | None) -> None:
    table: dict[str, Any] = {"on_violation": action}
    if kinds is not None:
        table["kinds"] = kinds
    _same({"pii": table}, [text[i : i + width] for i in range(0, len(text), width)], Pii)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.sampled_from(DENY_FRAGMENTS), min_size=1, max_size=12),
    cuts=CUTS,
    action=st.sampled_from(["rollback", "redact", "reject"]),
    regexes=st.booleans(),
)
def test_deny_phrases_fast_path_gives_the_full_scans_verdicts(
    parts: list[str], cuts: set[int], action: str, regexes: bool
) -> None:
    table = {"phrases": DENY["phrases"], "on_violation": action}
    if regexes:
        table["regexes"] = DENY["regexes"]
    _same({"deny_phrases": table}, _cut("".join(parts), cuts), DenyPhrases)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.sampled_from(GROUNDING_FRAGMENTS), min_size=1, max_size=12),
    cuts=CUTS,
    quoted=st.booleans(),
)
def test_grounding_fast_path_gives_the_full_scans_verdicts(parts: list[str], cuts: set[int], quoted: bool) -> None:
    table = {"quoted_spans": quoted, "min_digits": 1, "min_quote_chars": 4}
    sources = ["order 1,250.00 of 42 items", '"quoted text here"']
    _same({"grounding": table}, _cut("".join(parts), cuts), Grounding, sources=sources)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.sampled_from(PII_FRAGMENTS + DENY_FRAGMENTS + GROUNDING_FRAGMENTS), min_size=1, max_size=14),
    cuts=CUTS,
)
def test_support_policy_metrics_together_fast_equals_full(parts: list[str], cuts: set[int]) -> None:
    table = {
        "deny_phrases": DENY,
        "pii": {"on_violation": "redact"},
        "grounding": {"min_digits": 2},
    }
    pieces = _cut("".join(parts), cuts)
    runs = []
    for fast in (False, True):
        pol = policy(table)
        c = context(pol, sources=["order 1,250.00 of 42 items"])
        metrics = bind(pol, c)
        for metric in metrics:
            metric.fast = fast  # type: ignore[attr-defined]
        seen = _record(metrics)
        outcome = drive(metrics, c, pieces)
        runs.append((outcome.released, outcome.text, outcome.finish, seen))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("code", range(128))
def test_ascii_fold_is_lower_or_space(code: int) -> None:
    char = chr(code)
    assert fold_char(char) == (" " if char.isspace() else char.lower())


@settings(max_examples=500, deadline=None)
@given(pieces=st.lists(st.text(alphabet=st.sampled_from("aZ \t\n\x0b\x1c.-é\u200b ﬁ"), max_size=6), max_size=10))
def test_ascii_piece_equals_the_per_character_fold(pieces: list[str]) -> None:
    fast = NormalizedText()
    slow_norm, slow_starts, slow_ends, space, pos = "", [], [], False, 0
    for piece in pieces:
        fast.extend(piece)
        for char in piece:
            for c in fold_char(char):
                if c == " ":
                    if space:
                        continue
                    space = True
                else:
                    space = False
                slow_norm += c
                slow_starts.append(pos)
                slow_ends.append(pos + 1)
            pos += 1
    assert (fast.norm, fast.starts, fast.ends, fast.raw_len) == (slow_norm, slow_starts, slow_ends, pos)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.sampled_from(COMMITMENT_FRAGMENTS), min_size=1, max_size=14),
    cuts=CUTS,
    extractors=st.sampled_from([slice(0, 1), slice(1, 2), slice(0, 3)]),
)
def test_commitments_fast_path_gives_the_full_scans_verdicts(
    parts: list[str], cuts: set[int], extractors: slice
) -> None:
    table = {"extractors": COMMITMENTS["extractors"][extractors]}
    _same({"commitments": table}, _cut("".join(parts), cuts), Commitments)


@pytest.mark.parametrize(
    "text", ["Your refund of $25.00 and then a refund of $30", "order #AB-1234, order XYZ-9876", "a total 12, total 7"]
)
@pytest.mark.parametrize("width", [1, 2, 3])
def test_commitments_fast_path_on_every_small_cut(text: str, width: int) -> None:
    _same({"commitments": COMMITMENTS}, [text[i : i + width] for i in range(0, len(text), width)], Commitments)
